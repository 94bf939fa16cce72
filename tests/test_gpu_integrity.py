"""Compiled kernels on a GPU: every head count and head dim the API accepts, 64-bit key offsets
in a packed cache past 2^31 elements, and decode timing of a backend that cannot be captured in a
CUDA graph. Skipped without a GPU (the CPU side of each is tested in the interpreter)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import gpu_only

pytestmark = gpu_only
REPO = Path(__file__).resolve().parent.parent

TOPK, B, M = 256, 64, 8        # m * B = 512 >= top-k; 4K keys = 64 blocks > m


def _prepare(method, wl):
    from kernels import indexers

    args = (wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale)
    if method == "flat":
        return indexers.prepare_flat(*args, topk=TOPK)
    if method == "hisa":
        return indexers.prepare_hisa(*args, topk=TOPK, block_size=B, blocks=M)
    return indexers.prepare_block_sparse(*args, topk=TOPK, block_size=B)


@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize("D", [16, 64, 128, 192, 256])
@pytest.mark.parametrize("H", [1, 4, 16, 64, 128])
def test_every_head_count_and_dim_compiles_and_selects_right(H, D, dtype):
    """Chunk (64 queries at the tail of 4K keys: the shared-keys config) and decode (4 packed
    sequences: one query per program) for flat, HISA and block-sparse, checked tie-aware against
    float32 references on every query, with each pipeline's output poisoned first."""
    from hisa_bench.measure import accuracy
    from hisa_bench.workloads import make_workload

    for wl in (make_workload("chunk", 4096, queries=64, heads=H, dim=D, dtype=dtype, device="cuda", block_size=B),
               make_workload("decode", 4096, batch=4, heads=H, dim=D, dtype=dtype, device="cuda", block_size=B,
                             ragged=True)):
        for method in ("flat", "hisa", "block-sparse"):
            prep = _prepare(method, wl)
            prep.out.fill_(-7)
            sel = prep.run()
            torch.cuda.synchronize()
            assert not (sel == -7).any(), (method, wl.mode)
            problems = accuracy.check(method, sel, wl, list(range(wl.queries)), topk=TOPK, block_size=B, blocks=M,
                                      kept=prep.state.get("kept"))
            assert not problems, (method, wl.mode, problems[:3])


def test_key_offsets_past_2_to_the_31():
    """A packed cache of N keys with N * D just above 2^31: queries that see only the last keys,
    or keys on both sides of the 2^31 element boundary, get the same scores and selections as the
    float32 reference on those keys (32-bit offsets wrapped into the start of the cache)."""
    from hisa_bench.measure import accuracy
    from hisa_bench.workloads import Workload
    from kernels import indexers
    from kernels.flat_scores import launch_scores
    from kernels.pooling import pool_mean

    D, H, FP8 = 128, 16, torch.float8_e4m3fn
    N = (1 << 31) // D + 1000                        # N * D = 2^31 + 128000
    g = torch.Generator(device="cuda").manual_seed(0)
    k = torch.empty(N, D, dtype=FP8, device="cuda")
    for a in range(0, N, 1 << 22):                   # fill in pieces: no 8 GB float32 temporary
        k[a:a + (1 << 22)] = torch.randn(min(1 << 22, N - a), D, device="cuda", generator=g).to(FP8)
    k_scale = torch.rand(N, device="cuda", generator=g) + 0.5
    boundary = (1 << 31) // D
    ranges = [(N - 300, N), (N - 5003, N - 7), (boundary - 700, boundary + 900), (0, 1000)]
    T = len(ranges)
    q = torch.randn(T, H, D, device="cuda", generator=g).to(FP8)
    w = torch.randn(T, H, device="cuda", generator=g) / H
    ks = torch.tensor([a for a, _ in ranges], dtype=torch.int32, device="cuda")
    ke = torch.tensor([b for _, b in ranges], dtype=torch.int32, device="cuda")

    out = torch.full((T, 5000), float("nan"), device="cuda")
    launch_scores(q, k, w, ks, ke, k_scale, out=out)
    for t, (a, b) in enumerate(ranges):
        ref = ((q[t].float() @ (k[a:b].float() * k_scale[a:b, None]).T).clamp_min(0) * w[t][:, None]).sum(0)
        got = out[t, : b - a]
        assert not torch.isnan(got).any()
        assert ((got - ref).norm() / ref.norm()).item() < 5e-4, t

    # the pooled key of the cache's last block, recomputed alone (decode's update)
    nb = -(-N // B)
    kbar = torch.zeros(nb, D, dtype=FP8, device="cuda")
    kbar_scale = torch.zeros(nb, device="cuda")
    last = torch.tensor([nb - 1, boundary // B], dtype=torch.int32, device="cuda")
    pool_mean(k, k_scale, B, out=kbar, out_scale=kbar_scale, block_ids=last)
    for b in last.tolist():
        keys = k[b * B: min(N, (b + 1) * B)].float() * k_scale[b * B: min(N, (b + 1) * B), None]
        got = kbar[b].float() * kbar_scale[b]
        assert torch.allclose(got, keys.mean(0), rtol=0.07, atol=float(kbar_scale[b]) * 2), b

    wl = Workload("decode", N, T, q, k, w, ks, ke, k_scale)
    for method in ("flat", "hisa", "block-sparse"):
        prep = _prepare(method, wl)
        sel = prep.run()
        assert not accuracy.check(method, sel, wl, list(range(T)), topk=TOPK, block_size=B, blocks=M,
                                  kept=prep.state.get("kept")), method
    del k, kbar
    torch.cuda.empty_cache()


SYNCING_BACKEND = '''
from hisa_bench import api


def syncs(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    int(ks.min())                 # reads a value on the host: cannot be captured in a CUDA graph
    return api.flat_select(q, k, w, ks, ke, k_scale, topk=topk)
'''


def test_every_mode_falls_back_to_eager_for_a_syncing_backend(tmp_path):
    """Decode, chunk and prefill are timed as CUDA-graph replays; a backend that cannot be captured
    is timed eagerly and its row says why, and the rows after it are captured again."""
    (tmp_path / "syncing.py").write_text(SYNCING_BACKEND)
    user = f"{tmp_path / 'syncing.py'}:syncs"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "hisa_bench.cli", "speed", "--mode", "decode,chunk,prefill", "--lengths", "4k",
                        "--batch", "2,8", "--inputs", "random", "--heads", "64", "--dim", "128", "--topk", "256", "--block-size", "64",
                        "--blocks", "8", "--backend", f"{user},hisa,block-sparse", "--rep-ms", "20",
                        "--warmup-ms", "5", "--no-stages", "--format", "json", "--out", str(tmp_path / "runs")],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout)["rows"]
    # the baseline (flat) and the three named backends: decode at 2 batches, chunk, prefill
    assert len(rows) == 16 and {r["mode"] for r in rows} == {"decode", "chunk", "prefill"}
    for r in rows:
        assert r["status"] == "ok", r          # the rows after the failed capture are fine too
        if r["backend"] == user:
            assert r["timing"].startswith("eager (graph capture failed:"), r
        else:
            assert r["timing"] == "cuda-graph", r


def test_failed_capture_leaves_the_context_usable():
    from hisa_bench.measure.timing import TimingSettings, time_call

    x = torch.arange(10, device="cuda")
    settings = TimingSettings(warmup_ms=1, rep_ms=5, min_reps=3, cuda_graph=True)
    info = {}
    med, _, _ = time_call(lambda: int(x.sum()), settings, "cuda", info=info)
    assert med > 0 and info["timing"].startswith("eager (graph capture failed:")
    assert not torch.cuda.is_current_stream_capturing()
    info = {}
    y = torch.zeros(10, device="cuda")
    time_call(lambda: y.add_(1), settings, "cuda", info=info)
    assert info["timing"] == "cuda-graph"
    torch.cuda.synchronize()
    assert float(y[0]) > 0
