"""The report's inputs page (one backend on random vs structured vs dump) and topk page (a
`--mode topk` run), from small run folders written here (fixtures with arbitrary numbers, never
results), and the way a topk run is told apart from a chunk/prefill/decode sweep."""
import json
from pathlib import Path

import pandas as pd

from hisa_bench.report import build_report
from hisa_bench.report.loading import latest_runs, load_run
from tests.test_report import _env

INPUTS = ("random", "structured", "smollm2-135m.pt")
KINDS = ("random", "structured", "window", "zeros", "equal", "causal", "clusters", "smollm2-135m.pt")


def _ms(backend, inputs, L):
    return round(L / 4096 * (1 + INPUTS.index(inputs) * 0.25) * (0.5 if backend == "hisa" else 1.0), 6)


def _write(path: Path, rows, modes):
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "speed.csv", index=False)
    (path / "speed.json").write_text(json.dumps({"config": {"modes": modes}, "rows": rows}))
    (path / "env.json").write_text(json.dumps(_env()))
    return path


def make_inputs_run(parent, name="speed-20261130-100000"):
    rows = []
    for L in (1024, 4096):
        for inputs in INPUTS:
            for backend in ("flat", "hisa"):
                ms = _ms(backend, inputs, L)
                rows.append({"mode": "chunk", "length": L, "batch": 1, "queries": 1024, "backend": backend,
                             "baseline": "flat", "inputs": inputs, "status": "ok", "median_ms": ms,
                             "p20_ms": ms, "p80_ms": ms, "speedup": _ms("flat", inputs, L) / ms,
                             "heads": 3 if inputs.endswith(".pt") else 64, "dim": 128, "topk": 2048,
                             "block_size": 128 if backend == "hisa" else "", "blocks": 64 if backend == "hisa" else "",
                             "note": ""})
    return _write(Path(parent) / name, rows, ["chunk"])


def make_topk_run(parent, name="speed-20261130-110000"):
    rows = []
    for W in (32768, 131072):
        for i, kind in enumerate(KINDS):
            ref = W / 32768 * 0.5
            ours = ref / (1.5 + i)
            for backend, ms in (("torch.topk", ref), ("topk", ours)):
                rows.append({"mode": "topk", "length": W, "batch": 1, "queries": 1024, "backend": backend,
                             "baseline": "torch.topk", "inputs": kind, "status": "ok", "median_ms": round(ms, 6),
                             "p20_ms": ms, "p80_ms": ms, "speedup": round(ref / ms, 6), "topk": 2048, "note": ""})
    return _write(Path(parent) / name, rows, ["topk"])


def _bars(fig, prefix):
    return {p.get_gid(): p.get_height() for ax in fig.axes for p in ax.patches
            if p.get_gid() and p.get_gid().startswith(prefix)}


def test_inputs_and_topk_pages(tmp_path):
    runs = tmp_path / "runs"
    make_inputs_run(runs)
    make_topk_run(runs)
    # the topk run is newer, yet the sweep is still the speed run: they are different kinds
    assert [p.name for p in latest_runs(runs)] == ["speed-20261130-100000", "speed-20261130-110000"]
    assert load_run(runs / "speed-20261130-110000").kind == "topk"
    report = build_report(runs_dir=runs, out_dir=tmp_path / "out")
    pages = dict(report.pages)
    assert "inputs" in pages and "topk" in pages
    assert (tmp_path / "out" / "figures" / "inputs.png").is_file() and (tmp_path / "out" / "figures" / "topk.png").is_file()
    bars = _bars(pages["inputs"], "inputs|")
    for backend in ("flat", "hisa"):
        for inputs in INPUTS:
            for L, label in ((1024, "chunk\n1K"), (4096, "chunk\n4K")):
                assert bars[f"inputs|{backend}|{inputs}|{label}"] == _ms(backend, inputs, L)
    bars = _bars(pages["topk"], "topk|")
    assert len(bars) == 2 * len(KINDS) * 2
    assert bars["topk|128K|torch.topk|zeros"] == 2.0
    assert abs(bars["topk|32K|topk|window"] - 0.5 / 3.5) < 1e-6
    texts = [t.get_text() for ax in pages["topk"].axes for t in ax.texts]
    assert "1.50x" in texts and "8.50x" in texts
    # the latency page keeps rows of different inputs apart: one line per (backend, inputs)
    lines = {ln.get_gid(): list(ln.get_ydata()) for ax in pages["latency"].axes for ln in ax.get_lines()
             if ln.get_gid()}
    assert lines["latency|chunk|flat [structured]"] == [_ms("flat", "structured", 1024), _ms("flat", "structured", 4096)]
    assert lines["latency|chunk|hisa [smollm2-135m.pt]"] == [_ms("hisa", "smollm2-135m.pt", L) for L in (1024, 4096)]
    summary = "\n".join(t.get_text() for fig in [pages["summary"]] for t in fig.texts)
    assert "speed-20261130-110000" in summary and "torch.topk" in summary and "smollm2-135m.pt" in summary


def test_one_input_kind_draws_no_inputs_page(tmp_path):
    runs = tmp_path / "runs"
    path = make_inputs_run(runs)
    frame = pd.read_csv(path / "speed.csv")
    frame[frame["inputs"] == "random"].to_csv(path / "speed.csv", index=False)
    report = build_report(runs_dir=runs, out_dir=tmp_path / "out")
    names = [n for n, _ in report.pages]
    assert "inputs" not in names and "topk" not in names
    assert not any("inputs" in n or "topk" in n for n in report.notes)
