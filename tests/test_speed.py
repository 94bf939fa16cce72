"""`hisa-bench speed` on the CPU (Triton interpreter, tiny shapes): the run folder and its rows,
output formats, user backends through the accuracy gate, and one-line errors for bad options."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import speed_main

REPO = Path(__file__).resolve().parent.parent
# the smallest shapes that still run every stage: 4 queries, 2 heads, D = 16, top-32 of 128 keys
TINY = ["--device", "cpu", "--lengths", "128", "--queries", "4", "--heads", "2", "--dim", "16", "--topk", "32",
        "--block-size", "16", "--blocks", "2", "--rep-ms", "0", "--warmup-ms", "0"]
# (chunk and decode keep the pooled keys up to date instead of a pool stage: pool_update_ms)
HISA_STAGES = ("block_scores", "block_topk", "token_scores", "token_topk")
TIMING = ("median_ms", "p20_ms", "p80_ms", "tflops", "flops", "speedup")

USER_BACKENDS = '''
import torch
from hisa_bench import api


def good(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return api.flat_select(q, k, w, ks, ke, k_scale, topk=topk, backend="reference")


def good_hisa(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return api.hisa_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                           backend="reference")
good_hisa.method = "hisa"


def first_k(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return torch.arange(topk, dtype=torch.int32).repeat(q.shape[0], 1)


def int64(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks).long()


def short(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)[:, :-1]


def raises(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    raise ValueError("deliberate failure in user code")


def raises_bare(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    raise RuntimeError


def raises_api_error(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return api.flat_select(q, k, w, ks, ke, k_scale, topk=0)


def good_bs(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return api.block_sparse_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size,
                                   backend="reference")
good_bs.method = "block-sparse"


# ---- cheats: each must be failed-accuracy, never timed ----
def _none(q, topk):
    return torch.full((q.shape[0], topk), -1, dtype=torch.int32)


def _first_only(sel):
    sel = sel.clone()
    sel[:, 1:] = -1
    return sel


def hisa_none(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _none(q, topk)
hisa_none.method = "hisa"


def hisa_first_only(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _first_only(good_hisa(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks))
hisa_first_only.method = "hisa"


def hisa_is_flat(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    # the flat top-k passed off as HISA: keys from more blocks than it may keep
    return good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)
hisa_is_flat.method = "hisa"


def bs_none(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _none(q, topk)
bs_none.method = "block-sparse"


def bs_first_only(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _first_only(good_bs(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks))
bs_first_only.method = "block-sparse"


def bs_drops_last(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    sel = good_bs(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)
    n = (sel >= 0).sum(1)
    sel[torch.arange(sel.shape[0]), n - 1] = -1
    return sel
bs_drops_last.method = "block-sparse"


def flat_none(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _none(q, topk)


def flat_first_only(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    return _first_only(good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks))


def flat_repeats_best(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    sel = good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)
    return sel[:, :1].repeat(1, topk)


def flat_neighbour(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    # right scores, but of keys outside the query's range (another sequence's cache, the future)
    sel = good(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)
    return torch.where(sel >= 0, sel + 1, sel)
'''
USER_NAMES = ("good", "good_hisa", "first_k", "int64", "short", "raises", "raises_bare", "raises_api_error",
              "good_bs", "hisa_none", "hisa_first_only", "hisa_is_flat", "bs_none", "bs_first_only",
              "bs_drops_last", "flat_none", "flat_first_only", "flat_repeats_best", "flat_neighbour")
CHEATS = USER_NAMES[9:]


def _subprocess(args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "hisa_bench.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """One run with our three backends and the user backends, chunk and decode, stages on."""
    tmp = tmp_path_factory.mktemp("speed")
    (tmp / "user_backends.py").write_text(USER_BACKENDS)
    user = [f"{tmp / 'user_backends.py'}:{n}" for n in USER_NAMES]
    # the baseline is listed last on purpose: it must still run first at each shape point
    backends = ",".join(["hisa", "block-sparse", *user[:5], "hisa", "flat", *user[5:]])
    p = _subprocess(["speed", *TINY, "--mode", "chunk,decode", "--batch", "2", "--backend", backends, "--format", "json",
                     "--out", str(tmp / "runs"), "--tag", "t"])
    # the cheats' rows fail: the run is written and printed, then the command exits 4
    assert p.returncode == 4, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("hisa-bench: error: ") and "rows failed (" in last and "failed-accuracy" in last, last
    return p, tmp / "runs", {n: u for n, u in zip(USER_NAMES, user)}


def _rows(main_run, mode=None, backend=None):
    rows = json.loads(main_run[0].stdout)["rows"]
    return [r for r in rows if (mode is None or r["mode"] == mode) and (backend is None or r["backend"] == backend)]


def test_json_stdout_is_one_object(main_run):
    p, runs, _ = main_run
    out = json.loads(p.stdout)                      # fails on anything besides one JSON document
    assert set(out) >= {"config", "rows", "run"}
    assert p.stdout.strip().count("\n") == 0
    folder = Path(out["run"])
    assert folder.parent == runs and folder.name.startswith("speed-") and folder.name.endswith("-t")
    assert f"run folder: {folder}" in p.stderr


def test_run_folder_files(main_run):
    p, runs, _ = main_run
    folder = Path(json.loads(p.stdout)["run"])
    assert sorted(x.name for x in runs.iterdir()) == [folder.name]          # no .tmp-* left
    assert sorted(x.name for x in folder.iterdir()) == ["env.json", "speed.csv", "speed.json"]
    env = json.loads((folder / "env.json").read_text())
    assert env["device"] == "cpu-interpreter"
    assert env["gpu"] is None or torch.cuda.is_available()     # --device cpu works beside a GPU too
    assert env["kernels"].startswith("interpreted")
    assert env["timing"]["method"].startswith("wall clock")                 # not do_bench on a CPU
    assert "speed" in env["command"] and "--device cpu" in env["command"]
    saved = json.loads((folder / "speed.json").read_text())
    assert saved["rows"] == json.loads(p.stdout)["rows"]
    assert saved["config"]["baseline"] == "flat" and saved["config"]["backends"][0] == "flat"
    assert "not GPU timings" in saved["label"]
    csv = pd.read_csv(folder / "speed.csv")
    assert len(csv) == len(saved["rows"])
    assert csv["backend"].tolist() == [r["backend"] for r in saved["rows"]]
    assert csv["status"].tolist() == [r["status"] for r in saved["rows"]]
    # whole numbers stay whole in the CSV even where flat leaves them empty
    text = (folder / "speed.csv").read_text()
    assert ",16.0," not in text and ",2.0," not in text


def test_rows_of_our_backends(main_run):
    rows = _rows(main_run)
    ours = [r for r in rows if r["backend"] in ("flat", "hisa", "block-sparse")]
    # each backend once per shape point, baseline first, although listed last and hisa twice
    assert [(r["mode"], r["backend"]) for r in ours] == [
        ("chunk", "flat"), ("chunk", "hisa"), ("chunk", "block-sparse"),
        ("decode", "flat"), ("decode", "hisa"), ("decode", "block-sparse")]
    assert rows[0]["backend"] == "flat" and rows[len(rows) // 2]["backend"] == "flat"
    for r in ours:
        assert r["status"] == "ok", r
        assert r["device"] == "cpu-interpreter" and r["checked"] is True
        assert 0 < r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
        assert (r["heads"], r["dim"], r["topk"], r["length"]) == (2, 16, 32, 128)
    for mode, queries, batch in (("chunk", 4, 1), ("decode", 2, 2)):
        flat = _rows(main_run, mode, "flat")[0]
        assert flat["speedup"] == 1.0 and flat["baseline"] == "flat"
        assert (flat["queries"], flat["batch"]) == (queries, batch)
        for name in ("hisa", "block-sparse"):
            r = _rows(main_run, mode, name)[0]
            assert r["speedup"] == pytest.approx(flat["median_ms"] / r["median_ms"])
    # flat does every visible pair: chunk ke = 125..128, decode two sequences of 128 keys
    assert _rows(main_run, "chunk", "flat")[0]["flops"] == (125 + 126 + 127 + 128) * 2 * 2 * 16
    assert _rows(main_run, "decode", "flat")[0]["flops"] == 2 * 128 * 2 * 2 * 16
    hisa = _rows(main_run, "chunk", "hisa")[0]
    assert (hisa["block_size"], hisa["blocks"]) == (16, 2)
    assert _rows(main_run, "chunk", "block-sparse")[0]["blocks"] == 32 // 16


def test_stage_columns(main_run):
    hisa = _rows(main_run, "chunk", "hisa")[0]
    for s in HISA_STAGES:
        assert hisa[f"stage_{s}_ms"] > 0
    # stages are timed one by one, each a part of the whole call (loose: 3 samples on a busy CPU)
    assert max(hisa[f"stage_{s}_ms"] for s in HISA_STAGES) < hisa["median_ms"] * 2
    flat = _rows(main_run, "chunk", "flat")[0]
    assert flat["stage_scores_ms"] > 0 and flat["stage_topk_ms"] > 0
    assert all(flat.get(f"stage_{s}_ms") is None for s in HISA_STAGES)
    for mode in ("decode", "chunk"):
        row = _rows(main_run, mode, "hisa")[0]
        assert row["pool_update_ms"] > 0
        assert row.get("stage_pool_ms") is None        # pooled keys kept up to date instead


def test_user_backends(main_run):
    _, _, user = main_run
    for mode in ("chunk", "decode"):
        good = _rows(main_run, mode, user["good"])[0]
        assert good["status"] == "ok" and good["note"] == "" and good["median_ms"] > 0
        assert good["speedup"] > 0
        assert _rows(main_run, mode, user["good_hisa"])[0]["status"] == "ok"
        assert _rows(main_run, mode, user["good_bs"])[0]["status"] == "ok"
        # a backend that does not report its work is charged what ours of its method does
        for name, ours in (("good", "flat"), ("good_hisa", "hisa"), ("good_bs", "block-sparse")):
            assert _rows(main_run, mode, user[name])[0]["flops"] == _rows(main_run, mode, ours)[0]["flops"], name
        assert _rows(main_run, mode, "hisa")[0]["flops"] != _rows(main_run, mode, "flat")[0]["flops"]
        for name in CHEATS:
            r = _rows(main_run, mode, user[name])[0]
            assert r["status"] == "failed-accuracy", (name, r)
            assert r["note"].startswith("query "), (name, r)
            assert all(r.get(c) is None for c in TIMING), (name, r)
        for name, note in (("first_k", "query"), ("int64", "returned torch.int64"),
                           ("short", "(4, 31)" if mode == "chunk" else "(2, 31)")):
            r = _rows(main_run, mode, user[name])[0]
            assert r["status"] == "failed-accuracy", r
            assert note in r["note"]
            assert all(r.get(c) is None for c in TIMING), r
        for name, note in (("raises", "ValueError: deliberate failure in user code"),
                           ("raises_bare", "RuntimeError"),
                           ("raises_api_error", "HisaBenchError: topk must be at least 1, got 0")):
            r = _rows(main_run, mode, user[name])[0]
            assert r["status"] == "error" and r["note"] == note, r
            assert all(r.get(c) is None for c in TIMING)


def test_failed_rows_in_csv_have_empty_timing(main_run):
    p, _, user = main_run
    csv = pd.read_csv(Path(json.loads(p.stdout)["run"]) / "speed.csv")
    bad = csv[csv["backend"] == user["first_k"]]
    assert len(bad) == 2 and bad["median_ms"].isna().all() and bad["speedup"].isna().all()
    assert csv[csv["status"] == "ok"]["median_ms"].notna().all()


def test_csv_format_prints_only_csv(tmp_path):
    """Also the prefill workload: all 16 queries of a 16-token sequence, in query chunks of 8."""
    p = _subprocess(["speed", "--device", "cpu", "--mode", "prefill", "--lengths", "16", "--queries", "8",
                     "--heads", "2", "--dim", "16", "--topk", "16", "--block-size", "16", "--blocks", "2",
                     "--rep-ms", "0", "--backend", "flat", "--no-stages", "--format", "csv", "--out", str(tmp_path)])
    assert p.returncode == 0, p.stderr
    folder = next(tmp_path.iterdir())
    assert p.stdout == (folder / "speed.csv").read_text()
    lines = p.stdout.splitlines()
    assert lines[0].startswith("mode,length,batch,queries,backend,") and len(lines) == 2
    row = pd.read_csv(folder / "speed.csv").iloc[0]
    assert (row["status"], row["mode"], row["queries"], row["speedup"]) == ("ok", "prefill", 16, 1.0)
    assert row["flops"] == (16 * 17 // 2) * 2 * 2 * 16            # every causal pair, once
    assert not any(c.startswith("stage_") for c in lines[0].split(","))   # --no-stages


def test_table_format_labels_interpreter_timings(tmp_path):
    # a fresh process, as the console script: --device cpu interprets the kernels there even on a
    # machine with a GPU (this test process may hold compiled ones)
    p = _subprocess(["speed", *TINY, "--backend", "flat", "--no-stages", "--no-check", "--out", str(tmp_path)])
    out, err = p.stdout, p.stderr
    assert p.returncode == 0, err
    assert "NOT GPU timings" in out and "flat" in out and "unchecked" in out
    assert "run folder:" in err and "run folder:" not in out
    rows = pd.read_csv(next(tmp_path.iterdir()) / "speed.csv")
    assert rows["status"].tolist() == ["unchecked"] and (rows["checked"] == False).all()  # noqa: E712
    assert rows["median_ms"].notna().all() and rows["speedup"].tolist() == [1.0]


def test_device_the_loaded_kernels_cannot_serve(tmp_path, capfd, monkeypatch):
    """A process whose kernels were loaded for the other device says so on one line (a Python
    session that compiled them, then asks for --device cpu)."""
    from kernels import _runtime

    monkeypatch.setattr(_runtime, "DEVICE", "cuda")       # as if compiled for a GPU in this process
    code = _main([*TINY, "--backend", "flat", "--out", str(tmp_path / "runs")], fresh=False)      # --device cpu
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "the kernels were already loaded for" in err and "fresh process" in err
    assert not (tmp_path / "runs").exists()


# ---- bad input: one line on stderr, non-zero exit, nothing written ---------------------------

_main = speed_main


BAD = [
    (["--lengths", "12q"], "length '12q'"),
    (["--mode", "foo"], "--mode"),
    (["--mode", ","], "--mode"),
    (["--dtype", "int4"], "--dtype"),
    (["--format", "xml"], "--format"),
    (["--heads", "0"], "--heads must be 1..128, got 0"),
    (["--heads", "129"], "--heads must be 1..128, got 129"),
    (["--dim", "20"], "--dim must be a multiple of 16"),
    (["--dim", "0"], "--dim must be a multiple of 16"),
    (["--queries", "-3"], "--queries must be at least 1"),
    (["--queries", "0"], "--queries must be at least 1"),
    (["--topk", "0"], "--topk must be at least 1"),
    (["--block-size", "48"], "--block-size must be a power of two"),
    (["--blocks", "1"], "--blocks must be at least 2"),
    (["--blocks", "4", "--block-size", "32", "--topk", "512"], "4 x 32 = 128 < 512"),
    (["--topk", "16", "--block-size", "16", "--blocks", "2"], "block-sparse"),
    (["--batch", "0"], "--batch"),
    (["--batch", "2,x"], "--batch"),
    (["--rep-ms", "-1"], "--rep-ms"),
    (["--warmup-ms", "nan"], "--warmup-ms"),
    (["--backend", "nosuch"], "backend 'nosuch'"),
    (["--backend", "/nonexistent.py:f"], "no such file /nonexistent.py"),
    (["--backend", "os:nosuchfunction"], "has no callable"),
    (["--tag", "../up"], "--tag"),
    (["--heads", "abc"], "'--heads'"),          # click's own parse error, also on one line
    (["--nosuchoption"], "--nosuchoption"),
    (["--lengths", "16385"], "lengths up to 16384"),
    (["--lengths", "32k"], "lengths up to 16384"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input(tmp_path, capfd, args, message):
    out_dir = tmp_path / "runs"
    code = _main(["--device", "cpu", "--lengths", "128", "--out", str(out_dir), "--format", "json", *args])
    out, err = capfd.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hisa-bench: error: "), err
    assert message in err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_bad_input_through_the_entry_point(tmp_path):
    p = _subprocess(["speed", "--device", "cpu", "--lengths", "12q", "--out", str(tmp_path / "runs")])
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [p.stderr.strip()] and p.stderr.startswith("hisa-bench: error: length '12q'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_gpu(tmp_path, capfd):
    code = _main(["--device", "cuda", "--out", str(tmp_path / "runs")])
    out, err = capfd.readouterr()
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and err.startswith("hisa-bench: error: no CUDA GPU")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args,message", [(["--mode", "foo"], "--mode"), (["--tag", "a/b"], "--tag"),
                                          (["--backend", "/nonexistent.py:f"], "no such file")])
def test_option_errors_come_before_the_gpu_check(tmp_path, capfd, args, message):
    code = _main(["--device", "cuda", *args, "--out", str(tmp_path / "runs")])
    assert code == 2 and message in capfd.readouterr().err


def test_help_text(capfd):
    code = _main(["--help"])
    out, _ = capfd.readouterr()
    assert code == 0
    text = " ".join(out.split())
    for opt in ("--lengths", "--mode", "--queries", "--batch", "--heads", "--dim", "--topk", "--block-size",
                "--blocks", "--dtype", "--backend", "--format", "--out", "--device", "--rep-ms", "--stages"):
        assert opt in text
    assert "bf16 or fp16" in text and "file.py:function" in text and "CPU" in text


def test_decode_where_every_query_is_trivial(tmp_path):
    # m*B covers the whole context: HISA runs the flat pipeline and has no pooled state to update
    proc = _subprocess(["speed", "--device", "cpu", "--mode", "decode", "--lengths", "256", "--batch", "2",
                        "--block-size", "32", "--blocks", "8", "--topk", "64", "--rep-ms", "1", "--no-stages",
                        "--format", "json", "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    hisa = [r for r in rows if r["backend"] == "hisa"][0]
    assert hisa.get("pool_update_ms") is None


def test_rates_above_the_measured_ceiling_are_flagged(capsys):
    from hisa_bench.backends import resolve
    from hisa_bench.commands.speed import _print_table
    from hisa_bench.measure.speed import SweepConfig, run_sweep
    from hisa_bench.measure.timing import TimingSettings
    from tests.conftest import DEVICE

    cfg = SweepConfig(modes=["chunk"], lengths=[128], batches=[1], queries=4, heads=2, dim=16, topk=32,
                      block_sizes=[16], blocks=[2], device=DEVICE, stages=False)
    settings = TimingSettings(0.0, 0.0, 1)
    rows = list(run_sweep(cfg, resolve(["flat", "hisa"]), settings, ceilings={"fp8_matmul_tflops": 1e-9}))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for r in rows:
        assert "above the measured fp8 matmul ceiling" in r["tflops_flag"] and "ceiling" in r["note"]
    _print_table(rows, DEVICE == "cpu")
    assert capsys.readouterr().out.count("above ceiling!") == 2
    rows = list(run_sweep(cfg, resolve(["flat"]), settings, ceilings={"fp8_matmul_tflops": 1e9}))
    assert rows[0]["status"] == "ok" and rows[0].get("tflops_flag") is None and rows[0]["note"] == ""


def test_selection_flops_is_what_our_pipelines_count(device):
    from kernels import indexers
    from tests.helpers import make_inputs

    # a causal prefill in query chunks of 16: the first chunks are trivial (flat), later ones HISA
    T, H, D, B, m, k = 64, 2, 16, 8, 3, 16
    ks = torch.zeros(T, dtype=torch.int32)
    ke = torch.arange(1, T + 1, dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, T, "fp8", device, ks=ks, ke=ke)
    kw = dict(topk=k, block_size=B, blocks=m, query_chunk=16)
    for method, prep in (("flat", indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k, query_chunk=16)),
                         ("hisa", indexers.prepare_hisa(q, k_, w, ks, ke, ksc, **kw)),
                         ("block-sparse", indexers.prepare_block_sparse(q, k_, w, ks, ke, ksc, topk=k, block_size=B,
                                                                        query_chunk=16))):
        assert prep.flops == indexers.selection_flops(method, ks, ke, H, D, **kw) > 0, method
    pairs = T * (T + 1) // 2
    assert indexers.selection_flops("flat", ks, ke, H, D, **kw) == pairs * 2 * H * D
    hisa = indexers.selection_flops("hisa", ks, ke, H, D, **kw)
    assert 0 < hisa and hisa != pairs * 2 * H * D


STICKY_BACKEND = '''
import torch

def faults(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks):
    raise RuntimeError("CUDA error: an illegal memory access was encountered\\nCUDA kernel errors might be reported later")
'''


def test_a_sticky_cuda_error_keeps_the_rows_before_it(tmp_path):
    """After an illegal address the process cannot use the GPU again: the row that hit it is an
    error row, the rows measured before it are written, and the command ends on one line with a
    non-zero exit, not a traceback. (Simulated by a backend that raises the CUDA error's text.)"""
    (tmp_path / "sticky.py").write_text(STICKY_BACKEND)
    bad = f"{tmp_path / 'sticky.py'}:faults"
    p = _subprocess(["speed", *TINY, "--mode", "chunk,decode", "--batch", "2", "--backend",
                     f"hisa,{bad},block-sparse", "--no-stages", "--format", "json", "--out", str(tmp_path / "runs")])
    assert p.returncode == 5, p.stderr
    assert p.stdout == ""
    err = [line for line in p.stderr.splitlines() if line.startswith("hisa-bench: error:")]
    assert len(err) == 1 and "illegal memory access" in err[0] and "rows measured before it" in err[0]
    assert "Traceback" not in p.stderr
    folder = next((tmp_path / "runs").iterdir())
    saved = json.loads((folder / "speed.json").read_text())
    assert [(r["mode"], r["backend"], r["status"]) for r in saved["rows"]] == [
        ("chunk", "flat", "ok"), ("chunk", "hisa", "ok"), ("chunk", bad, "error")]
    assert "illegal memory access" in saved["rows"][-1]["note"] and "illegal memory access" in saved["aborted"]
    assert len(pd.read_csv(folder / "speed.csv")) == 3
    assert (folder / "env.json").exists()


@pytest.mark.parametrize("mode", ["decode", "chunk"])
def test_step_time_includes_the_pooled_key_update(mode, monkeypatch, tmp_path):
    """Our HISA's decode and chunk medians time the pooled-key update of the step's new keys and
    then the selection, as serving runs a step; pool_update_ms is the update alone. Flat has no
    pooled keys to update."""
    import kernels.indexers as indexers
    import hisa_bench.measure.speed as speed_measure
    from tests.helpers import kernel_device, run_cli

    log, per_timed_call, updated = [], [], []
    real_update = indexers.prepare_pool_update

    def counting_update(*a, **k):
        run = real_update(*a, **k)
        updated.append(sorted(a[-1].tolist()))           # the block ids it re-pools

        def counted():
            log.append("update")
            run()
        return counted

    def one_call(fn, *a, **k):
        before = len(log)
        fn()
        per_timed_call.append(len(log) - before)
        return 1.0, 1.0, 1.0

    monkeypatch.setattr(indexers, "prepare_pool_update", counting_update)
    monkeypatch.setattr(speed_measure, "time_call", one_call)
    args = [a if a != "cpu" else kernel_device() for a in TINY]
    code, out, err = run_cli(["speed", *args, "--mode", mode, "--batch", "2", "--backend", "flat,hisa",
                              "--inputs", "random", "--no-stages", "--format", "json", "--out", str(tmp_path)])
    assert code == 0, err
    flat, hisa = json.loads(out)["rows"]
    assert hisa["status"] == "ok" and hisa["pool_update_ms"] == 1.0
    # timed calls in order: flat's median, HISA's median (update + selection), HISA's update alone
    assert per_timed_call == [0, 1, 1]
    assert flat.get("pool_update_ms") is None
    # the blocks (B 16) of the step's new keys: decode, the last key of each of 2 sequences of 128
    # (packed: 127 and 255); chunk, the 4 queries' own keys 124-127, one block
    assert updated == ([[7, 15]] if mode == "decode" else [[7]])


def test_every_selection_mode_is_timed_from_a_cuda_graph(monkeypatch):
    """Decode, chunk and prefill calls (and their stages) ask time_call for CUDA-graph replays;
    on a CPU time_call falls back to the wall clock, and env.json's timing says how each mode is timed."""
    import hisa_bench.measure.speed as speed_measure
    from hisa_bench.backends import resolve
    from hisa_bench.measure.speed import SweepConfig, run_sweep
    from hisa_bench.measure.timing import TimingSettings
    from tests.conftest import DEVICE

    asked = []

    def recording(fn, settings, device, info=None):
        fn()
        asked.append(settings.cuda_graph)
        return 1.0, 1.0, 1.0

    monkeypatch.setattr(speed_measure, "time_call", recording)
    for mode in ("prefill", "chunk", "decode"):
        asked.clear()
        cfg = SweepConfig(modes=[mode], lengths=[128], batches=[2], queries=4, heads=2, dim=16, topk=32,
                          block_sizes=[16], blocks=[2], device=DEVICE, stages=True)
        rows = list(run_sweep(cfg, resolve(["flat", "hisa"]), TimingSettings(0.0, 0.0, 1)))
        assert [r["status"] for r in rows] == ["ok", "ok"], rows
        assert len(asked) > 2 and all(asked), (mode, asked)
    timing = TimingSettings().as_dict("cuda")
    assert timing["chunk"] == timing["prefill"] == "as decode" and timing["decode"].startswith("CUDA graph")
    assert TimingSettings().as_dict("cpu")["prefill"] == "eager"
