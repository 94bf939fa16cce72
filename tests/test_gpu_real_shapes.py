"""The kernels at real shapes (H=64, D=128, top-k 2048, L up to 256K), compiled on a GPU.
Skipped without one; on the CPU the same kernels are covered by the interpreter tests."""
import pytest
import torch

from tests.conftest import gpu_only

pytestmark = gpu_only

H, D, K, B = 64, 128, 2048, 128


def _chunk(L, M=256, dtype="fp8"):
    from kernels.tuning import chunk_inputs   # the same inputs the tuning sweep checks

    return chunk_inputs(L, Mq=M, dtype=dtype)


def _ref_rows(*args):
    from kernels.tuning import ref_scores_rows

    return ref_scores_rows(*args)


@pytest.mark.parametrize("L", [32768, 131072])
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
def test_flat_and_hisa_at_real_shapes(L, dtype):
    from kernels import indexers
    from kernels.checks import selection_errors
    from kernels.flat_scores import launch_scores

    q, k, w, ks, ke, ksc = _chunk(L, dtype=dtype)
    rows = [0, 97, 128, 254, 255]
    ref = _ref_rows(q, k, w, ks, ke, ksc, rows)
    got = launch_scores(q, k, w, ks, ke, ksc)[rows][:, : ref.shape[1]]
    fin = torch.isfinite(ref)
    err = ((got[fin] - ref[fin]).norm() / ref[fin].norm()).item()
    assert err < (5e-4 if dtype == "fp8" else 1e-5)
    sel = indexers.flat_select(q, k, w, ks, ke, ksc, topk=K)
    assert not selection_errors(sel[rows], ref, ks[rows], (ke - ks)[rows], K, rtol=2e-3, atol=1e-3)
    prep = indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=K, block_size=B, blocks=64)
    hsel = prep.run()
    kept = prep.state["kept"]
    for i, t in enumerate(rows):
        kb = kept[t][kept[t] >= 0].long()
        assert kb.numel() == 64 and {0, (int(ke[t]) - 1) // B} <= set(kb.tolist())
        pos = (kb[:, None] * B + torch.arange(B, device="cuda")).flatten()
        pos = pos[pos < ke[t]]
        cand = torch.full_like(ref[i], float("-inf"))
        cand[pos] = ref[i][pos]
        assert not selection_errors(hsel[t:t + 1], cand[None], ks[t:t + 1], (ke - ks)[t:t + 1], K,
                                    rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("W", [8192, 65536, 262144])
def test_topk_rows_up_to_256k(W):
    from kernels.checks import selection_errors
    from kernels.topk import launch_topk

    T = 64
    s = torch.randn(T, W, device="cuda")
    s[1] = s[1].clamp_min(0.5)                       # masses of ties at the k-th value
    row_len = torch.randint(W // 2, W + 1, (T,), device="cuda", dtype=torch.int32)
    row_len[0] = W
    base = torch.arange(T, device="cuda", dtype=torch.int32) * 3
    out = torch.full((T, K), -7, dtype=torch.int32, device="cuda")
    launch_topk(s, K, row_len, base, out=out)
    assert not (out == -7).any()
    assert not selection_errors(out, s, base, row_len, K, rtol=0, atol=0)


def test_decode_batch_packed_caches():
    from hisa_bench.measure import accuracy
    from hisa_bench.workloads import make_workload
    from kernels import indexers

    wl = make_workload("decode", 65536, batch=16, device="cuda", ragged=True)
    for method, prep in (("flat", indexers.prepare_flat(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, topk=K)),
                         ("hisa", indexers.prepare_hisa(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, topk=K,
                                                        block_size=B, blocks=64))):
        sel = prep.run()
        assert not accuracy.check(method, sel, wl, list(range(16)), topk=K, block_size=B, blocks=64,
                                  kept=prep.state.get("kept"))
