"""What the speed command times on: `--inputs random,structured,PATH.pt` (the structured generator,
a dump's own tensors in chunk, prefill and decode) and `--mode topk` (the row top-k alone against
torch.topk, with its correctness gate). CPU, tiny shapes, Triton interpreter."""
import json
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hisa_bench import api
from hisa_bench.errors import HisaBenchError
from hisa_bench.inputs.dump import save_dump
from hisa_bench.inputs.synthetic import SyntheticConfig, generate, structured_qkw
from hisa_bench.workloads import load_dump_source, make_workload, parse_inputs
from kernels.flat_scores_naive import flat_scores_ref
from tests.conftest import gpu_only
from tests.helpers import speed_main

TINY = ["--device", "cpu", "--queries", "4", "--heads", "2", "--dim", "16", "--topk", "32",
        "--block-size", "16", "--blocks", "2", "--rep-ms", "0", "--warmup-ms", "0"]


_main = speed_main


@pytest.fixture(scope="module")
def dump_path(tmp_path_factory):
    """A small synthetic dump: 256 keys, 8 recorded queries, H = 3, D = 32 (not the CLI's 2 / 16)."""
    layers, meta = generate(SyntheticConfig(seed=5, layers=2, keys=256, queries=8, heads=3, dim=32, topics=4,
                                            needles=2, adversarial=1, query_tail=0.0))
    path = tmp_path_factory.mktemp("dump") / "tiny.pt"
    save_dump(path, layers, meta)
    return path


def _scores(wl):
    return flat_scores_ref(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, dtype=torch.float32)


# --- the structured generator --------------------------------------------------------------------

def test_structured_rows_have_zeros_sinks_recency_and_sparse_rows():
    L, M, k = 4096, 48, 128
    wl = make_workload("chunk", L, queries=M, heads=4, dim=32, device="cpu", inputs="structured", topk=k, seed=1)
    assert wl.info["inputs"] == "structured"
    assert (wl.q.shape, wl.k.shape, wl.k_scale.shape) == ((M, 4, 32), (L, 32), (L,))
    s = _scores(wl)
    valid = torch.isfinite(s)
    zeros = ((s == 0) & valid).sum() / valid.sum()
    assert 0.3 < zeros < 0.9                                      # masses of exact zeros
    positive = (s > 0).sum(1)
    assert (positive < k).any() and (positive > 4 * k).any()      # some rows keep fewer than k above zero
    top = torch.topk(s, k, dim=1).indices
    newest = (top >= (wl.ke - wl.ks)[:, None] - 512).float().mean()
    assert newest > 0.3                                            # recency: the newest 1/8 holds much of it
    sinks = (s[:, :4] > 0).float().mean()
    assert sinks > 0.9                                             # sinks score above zero for the rows
    # the same seed gives the same tensors; another seed others
    again = make_workload("chunk", L, queries=M, heads=4, dim=32, device="cpu", inputs="structured", topk=k, seed=1)
    assert torch.equal(again.k.float(), wl.k.float()) and torch.equal(again.w, wl.w)
    other = make_workload("chunk", L, queries=M, heads=4, dim=32, device="cpu", inputs="structured", topk=k, seed=2)
    assert not torch.equal(other.k.float(), wl.k.float())


def test_structured_differs_from_random_and_keeps_shapes_in_every_mode():
    for mode, extra in (("chunk", {}), ("prefill", {"queries": 16}), ("decode", {"batch": 3, "ragged": True})):
        r = make_workload(mode, 200, heads=2, dim=16, device="cpu", block_size=32, topk=16, **extra)
        s = make_workload(mode, 200, heads=2, dim=16, device="cpu", block_size=32, topk=16, inputs="structured",
                          **extra)
        assert (r.q.shape, r.k.shape, r.w.shape) == (s.q.shape, s.k.shape, s.w.shape)
        assert torch.equal(r.ks, s.ks) and torch.equal(r.ke, s.ke)
        assert not torch.equal(r.k.float(), s.k.float())
    # decode: every packed sequence starts with its own sinks (keys at its first positions)
    wl = make_workload("decode", 256, batch=2, heads=2, dim=16, device="cpu", block_size=128, topk=16,
                       inputs="structured", seed=3)
    kf = wl.k.float() * wl.k_scale[:, None]
    assert torch.allclose(kf[0:4].mean(0) / kf[0:4].mean(0).norm(), kf[256:260].mean(0) / kf[256:260].mean(0).norm(),
                          atol=0.35)


def test_structured_generation_is_vectorised():
    """Seconds for 256K keys x D = 128 on a CPU (a Python loop over keys would take minutes)."""
    L = 256 * 1024
    t0 = time.perf_counter()
    q, k, w = structured_qkw(torch.arange(L), torch.arange(L - 64, L), torch.zeros(64, dtype=torch.int32),
                             torch.arange(L - 63, L + 1).int(), heads=8, dim=128, topk=2048)
    assert time.perf_counter() - t0 < 30
    assert k.shape == (L, 128) and torch.isfinite(k).all() and torch.isfinite(q).all()


@gpu_only
def test_structured_on_gpu_at_1m_keys_takes_seconds():
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    wl = make_workload("chunk", 1 << 20, queries=1024, device="cuda", inputs="structured")
    torch.cuda.synchronize()
    assert time.perf_counter() - t0 < 10
    assert wl.k.shape == (1 << 20, 128) and wl.k.is_cuda


# --- dumps as inputs -------------------------------------------------------------------------------

def test_dump_chunk_takes_recorded_queries_cycled(dump_path):
    src = load_dump_source(str(dump_path))
    layer = torch.load(dump_path, weights_only=True)["layers"][0]
    q_pos = layer["q_pos"]
    # 12 queries from a dump with 8: every recorded query below L, cycled, at its own position
    wl = make_workload("chunk", 256, queries=12, device="cpu", inputs=src, dtype="bf16")
    assert wl.queries == 12 and wl.k.shape == (256, 32) and wl.q.shape[1:] == (3, 32)
    assert torch.equal(torch.sort(torch.unique(wl.ke.long() - 1)).values, q_pos)
    assert (wl.ks == 0).all()
    i = int(torch.nonzero(q_pos == int(wl.ke[0]) - 1)[0, 0])
    assert torch.equal(wl.q[0], layer["q"][i].to(torch.bfloat16)) and torch.equal(wl.w[0], layer["w"][i])
    assert torch.equal(wl.k, layer["k"].to(torch.bfloat16))
    assert "cycled to 12" in wl.info["inputs_note"]
    # a shorter length keeps only the keys and the queries below it; fewer queries than recorded
    wl = make_workload("chunk", 200, queries=3, device="cpu", inputs=src)
    below = q_pos[q_pos < 200]
    assert wl.k.shape[0] == 200 and torch.equal(wl.ke.long() - 1, below[-3:])
    # fp8 like random inputs: the same quantisation
    q8, k8, w8, sc = api.quantize_fp8(layer["q"][q_pos < 200][-3:], layer["k"][:200], layer["w"][q_pos < 200][-3:])
    assert torch.equal(wl.k.float(), k8.float()) and torch.equal(wl.k_scale, sc) and torch.equal(wl.w, w8)


def test_dump_prefill_and_decode(dump_path):
    src = load_dump_source(str(dump_path))
    q_pos = src.q_pos
    wl = make_workload("prefill", 100, queries=16, device="cpu", inputs=src, dtype="bf16")
    assert wl.queries == 100 and torch.equal(wl.ke.long(), torch.arange(1, 101)) and wl.query_chunk == 16
    rec = q_pos[q_pos < 100]
    for p in (0, 50, 99):
        nearest = rec[(rec - p).abs().argmin()] if len(rec) else None
        row = int(torch.nonzero(q_pos == nearest)[0, 0])
        assert torch.equal(wl.q[p], src.q[row].to(torch.bfloat16))
    # decode: each sequence ends at the latest recorded query below L
    wl = make_workload("decode", 256, batch=2, device="cpu", inputs=src, block_size=64, dtype="bf16")
    last = int(q_pos[-1])
    assert torch.equal(wl.ke.long() - wl.ks.long(), torch.tensor([last + 1, last + 1]))
    assert int(wl.ks[1]) % 64 == 0
    assert torch.equal(wl.k[int(wl.ks[1]): int(wl.ke[1])], src.k[: last + 1].to(torch.bfloat16))
    ragged = make_workload("decode", 256, batch=4, ragged=True, device="cpu", inputs=src, block_size=64)
    lens = ragged.ke.long() - ragged.ks.long()
    assert set((lens - 1).tolist()) <= set(q_pos.tolist())


def test_dump_errors(dump_path, tmp_path):
    src = load_dump_source(str(dump_path))
    with pytest.raises(HisaBenchError, match="the dump has 256 keys: lengths up to 256"):
        make_workload("chunk", 257, device="cpu", inputs=src)
    with pytest.raises(HisaBenchError, match="no recorded query at a position below 2"):
        make_workload("chunk", 2, device="cpu", inputs=src)
    with pytest.raises(HisaBenchError, match="no layer 'nope'"):
        load_dump_source(f"{dump_path}@nope")
    assert load_dump_source(f"{dump_path}@layer01").layer == "layer01"
    layers, meta = generate(SyntheticConfig(keys=64, queries=4, heads=2, dim=24, topics=2, needles=1, adversarial=0))
    save_dump(tmp_path / "d24.pt", layers, meta)
    with pytest.raises(HisaBenchError, match="D = 24; the kernels take"):
        load_dump_source(str(tmp_path / "d24.pt"))
    with pytest.raises(HisaBenchError, match="unknown input 'noise'"):
        parse_inputs("random,noise")


# --- the CLI: --inputs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs_run(dump_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    argv = ["speed", *TINY, "--lengths", "128", "--inputs", f"random,structured,{dump_path}", "--format", "json",
            "--out", str(out)]
    from tests.helpers import run_cli
    code, stdout, err = run_cli(argv)
    assert code == 0, err
    return json.loads(stdout)


def test_rows_say_their_inputs(inputs_run, dump_path):
    rows = inputs_run["rows"]
    assert inputs_run["config"]["inputs"] == ["random", "structured", "tiny.pt"]
    assert [r["inputs"] for r in rows] == ["random"] * 3 + ["structured"] * 3 + ["tiny.pt"] * 3
    assert [r["backend"] for r in rows[:3]] == ["flat", "hisa", "block-sparse"]
    for r in rows:
        assert r["status"] == "ok" and r["checked"] is True, r          # the accuracy gate ran on every kind
    for r in rows[:6]:
        assert (r["heads"], r["dim"]) == (2, 16) and r["note"] == ""
    for r in rows[6:]:
        assert (r["heads"], r["dim"]) == (3, 32)                      # the dump's own H and D win
        assert "the dump's H = 3, D = 32 (not --heads 2 --dim 16)" in r["note"] and "tiny.pt layer" in r["note"]
        assert r["flops"] > 0
    assert rows[3]["speedup"] == 1.0 and rows[6]["speedup"] == 1.0      # a baseline per inputs
    folder = Path(inputs_run["run"])
    csv = pd.read_csv(folder / "speed.csv")
    assert csv["inputs"].tolist() == [r["inputs"] for r in rows]
    assert json.loads((folder / "speed.json").read_text())["config"]["inputs"] == ["random", "structured", "tiny.pt"]


def test_dump_prefill_decode_through_the_cli(dump_path, tmp_path):
    from tests.helpers import run_cli
    code, out, err = run_cli(["speed", *TINY, "--lengths", "64", "--mode", "prefill,decode", "--batch", "2",
                              "--backend", "flat", "--inputs", str(dump_path), "--format", "json", "--no-stages",
                              "--out", str(tmp_path)])
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["mode"], r["status"], r["inputs"]) for r in rows] == [("prefill", "ok", "tiny.pt"),
                                                                     ("decode", "ok", "tiny.pt")]
    assert "nearest recorded position" in rows[0]["note"] and "ends at a recorded query" in rows[1]["note"]


BAD = [
    (["--inputs", "random,noise"], "--inputs: unknown input 'noise'"),
    (["--inputs", "window"], "'window' is a row kind of --mode topk"),
    (["--inputs", "/nonexistent/dump.pt"], "/nonexistent/dump.pt: no such file"),
    (["--inputs", "DUMP", "--lengths", "512"], "the dump has 256 keys: lengths up to 256 with these inputs, got 512"),
    (["--inputs", "GARBAGE"], "not a dump: it is"),
    (["--inputs", ","], "--inputs: expected a comma list"),
    (["--mode", "topk,chunk"], "--mode topk times the row top-k alone"),
    (["--mode", "topk", "--inputs", "DUMP", "--lengths", "1k"], "lengths up to 256"),
    (["--inputs", "random,DUMP", "--lengths", "16,128"], "no recorded query at a position below 16"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_inputs(args, message, dump_path, tmp_path, capfd):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a dump at all")
    args = [a.replace("DUMP", str(dump_path)).replace("GARBAGE", str(garbage)) for a in args]
    out_dir = tmp_path / "runs"
    code = _main(["--device", "cpu", "--lengths", "128", "--out", str(out_dir), "--format", "json", *args])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("hisa-bench: error: "), err
    assert message in err, err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


# --- --mode topk ------------------------------------------------------------------------------------

def test_topk_mode_rows(dump_path, tmp_path):
    from tests.helpers import run_cli
    code, out, err = run_cli(["speed", "--device", "cpu", "--mode", "topk", "--lengths", "100,200", "--queries", "4",
                              "--topk", "8", "--rep-ms", "0", "--inputs", f"causal,zeros,{dump_path}", "--format",
                              "json", "--out", str(tmp_path)])
    assert code == 0, err
    res = json.loads(out)
    rows = res["rows"]
    kinds = ["causal", "zeros", "tiny.pt"]
    assert res["config"]["backends"] == ["torch.topk", "topk"] and res["config"]["baseline"] == "torch.topk"
    assert [(r["length"], r["inputs"], r["backend"]) for r in rows] == [
        (W, kind, b) for W in (100, 200) for kind in kinds for b in ("torch.topk", "topk")]
    for r in rows:
        assert r["mode"] == "topk" and r["status"] == "ok" and r["checked"] is True, r
        assert r["baseline"] == "torch.topk" and r["topk"] == 8 and r["queries"] == 4
        assert r["median_ms"] > 0 and r["gbps"] > 0
    for base, ours in zip(rows[::2], rows[1::2]):
        assert base["speedup"] == 1.0
        assert ours["speedup"] == pytest.approx(base["median_ms"] / ours["median_ms"])
    folder = Path(res["run"])
    csv = pd.read_csv(folder / "speed.csv")
    assert set(csv["mode"]) == {"topk"} and csv["inputs"].tolist() == [r["inputs"] for r in rows]


def test_topk_mode_inputs_default_to_every_row_kind(dump_path):
    from types import SimpleNamespace

    from hisa_bench.inputs.score_rows import KINDS
    from hisa_bench.measure.inputs_option import resolve_inputs

    cfg = SimpleNamespace(lengths=[128], device="cpu")
    assert [s.label for s in resolve_inputs(None, cfg, topk_mode=True)] == list(KINDS)
    assert [s.label for s in resolve_inputs(f"all,{dump_path}", cfg, topk_mode=True)] == list(KINDS) + ["tiny.pt"]
    assert [s.label for s in resolve_inputs("window,random", cfg, topk_mode=True)] == ["window", "random"]
    assert [s.label for s in resolve_inputs(None, cfg)] == ["random"]                     # CPU default
    assert [s.label for s in resolve_inputs(None, SimpleNamespace(lengths=[128], device="cuda"))] == \
        ["random", "structured"]


def test_topk_mode_fails_a_broken_topk(monkeypatch, tmp_path):
    import kernels.topk as topk_kernels
    from tests.helpers import kernel_device, run_cli

    real = topk_kernels.launch_topk

    def off_by_one(scores, k, row_len, *a, out=None, **kw):
        res = real(scores, k, row_len, *a, out=out, **kw)
        res[1, 0] = (res[1, 0] + 1) % int(row_len[1])          # one wrong position in one row
        return res

    monkeypatch.setattr(topk_kernels, "launch_topk", off_by_one)
    code, out, err = run_cli(["speed", "--device", kernel_device(), "--mode", "topk", "--lengths", "64", "--queries", "3",
                              "--topk", "4", "--rep-ms", "0", "--inputs", "random", "--format", "json",
                              "--out", str(tmp_path)])
    assert code == 4 and err.strip().splitlines()[-1].startswith("hisa-bench: error: 1 of 2 rows failed (1 failed-accuracy)"), err
    base, ours = json.loads(out)["rows"]
    assert base["status"] == "ok"
    assert ours["status"] == "failed-accuracy" and "row 1" in ours["note"], ours
    assert ours.get("median_ms") is None and ours.get("speedup") is None


def test_exact_check_is_tie_aware_and_strict():
    from hisa_bench.measure.topk_speed import exact_errors, torch_topk_selection

    s = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0, float("-inf")], [2.0, -0.0, 0.0, 5.0, float("-inf"), 1.0]])
    good = torch.tensor([[1, 2], [3, 0]], dtype=torch.int32)
    assert exact_errors(good, s, 2) == []
    assert exact_errors(torch.tensor([[3, 1], [0, 3]], dtype=torch.int32), s, 2) == []     # other tied entries
    assert exact_errors(torch_topk_selection(s, 2), s, 2) == []
    assert exact_errors(torch.tensor([[0, 1], [3, 0]], dtype=torch.int32), s, 2)             # 1.0 is not top-2
    assert exact_errors(torch.tensor([[1, 1], [3, 0]], dtype=torch.int32), s, 2)             # duplicate
    assert exact_errors(torch.tensor([[1, -7], [3, 0]], dtype=torch.int32), s, 2)            # unwritten
    assert exact_errors(torch.tensor([[1, 2], [3, -1]], dtype=torch.int32), s, 2)            # too few
    # k beyond the valid entries: -1 exactly in the unused slots, -inf never selected
    full = torch.tensor([[1, 2, 3, 0, 4, -1, -1]], dtype=torch.int32)
    assert exact_errors(full, s[:1], 7) == []
    assert exact_errors(torch.tensor([[1, 2, 3, 0, 4, 5, -1]], dtype=torch.int32), s[:1], 7)
    assert exact_errors(torch_topk_selection(s[:1], 7), s[:1], 7) == []


def test_row_statistics():
    from hisa_bench.inputs.stats import row_statistics

    s = torch.tensor([[5.0, 0.0, 0.0, 0.0, 2.0, 1.0, 0.0, -1.0]])
    st = row_statistics(s, torch.tensor([8]), k=2, window=2)
    assert st["zeros"] == 0.5 and st["negative"] == 0.125
    assert st["fewer_than_k_positive"] == 0.0 and st["tied_kth"] == 0.0
    assert st["newest"] == 0.0 and st["first_block"] == 1.0
    st = row_statistics(s, torch.tensor([8]), k=4, window=4)
    assert st["fewer_than_k_positive"] == 1.0 and st["tied_kth"] == 1.0     # 4th place: a tied zero
    assert st["newest"] == 0.5     # 5.0 at 0, 2.0 at 4, 1.0 at 5, and the lowest tied zero at 1


@gpu_only
def test_gpu_speed_on_every_input_kind(tmp_path):
    """Compiled kernels at a real shape on random, structured and the captured dump: the accuracy
    gate passes on each (the dump at its own 4096 keys)."""
    from tests.helpers import run_cli
    dump = Path(__file__).resolve().parent.parent / "reports" / "dumps" / "smollm2-135m.pt"
    code, out, err = run_cli(["speed", "--lengths", "4k", "--queries", "256", "--rep-ms", "20",
                              "--inputs", f"random,structured,{dump}", "--format", "json", "--out", str(tmp_path)])
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {r["inputs"] for r in rows} == {"random", "structured", "smollm2-135m.pt"}
    assert all(r["status"] == "ok" for r in rows), [(r["backend"], r["inputs"], r["note"]) for r in rows]


@gpu_only
def test_gpu_topk_mode_at_32k(tmp_path):
    from tests.helpers import run_cli
    code, out, err = run_cli(["speed", "--mode", "topk", "--lengths", "32k", "--queries", "128", "--rep-ms", "20",
                              "--format", "json", "--out", str(tmp_path)])
    rows = json.loads(out)["rows"]
    assert code == (0 if all(r["status"] == "ok" for r in rows) else 4), err
    assert len(rows) == 14
    assert all(r["status"] == "ok" for r in rows if r["backend"] == "torch.topk")
    # ours is either exact on every row (then timed) or reported as failing, never silently wrong
    assert all(r["status"] in ("ok", "failed-accuracy") for r in rows)


def test_chunk_step_updates_the_blocks_of_its_newest_keys_on_a_dump(dump_path, monkeypatch):
    """A chunk step re-pools the blocks of its M newest keys (those ending at its last query's
    range), not the blocks of every recorded query: a dump's queries stand all over the context."""
    from types import SimpleNamespace

    import kernels.indexers as indexers
    from hisa_bench.measure.speed import _pool_update

    seen = []
    monkeypatch.setattr(indexers, "prepare_pool_update", lambda k, sc, B, kbar, kbar_sc, ids: seen.append(ids))
    wl = make_workload("chunk", 256, queries=4, device="cpu", inputs=load_dump_source(str(dump_path)))
    own = sorted({(int(e) - 1) // 16 for e in wl.ke})               # the blocks of the queries' own keys
    assert len(own) > 1                                               # recorded queries far apart
    backend = SimpleNamespace(method="hisa", ours=True)
    prepared = SimpleNamespace(state=dict(kbar=torch.zeros(1), kbar_scale=None))
    _pool_update(backend, prepared, wl, 16, "chunk")
    end = int(wl.ke.max())
    assert seen[-1].tolist() == list(range((end - 4) // 16, (end - 1) // 16 + 1))
    assert len(seen[-1]) < len(own)
    _pool_update(backend, prepared, wl, 16, "decode")                # decode: each query's own key
    assert seen[-1].tolist() == own
