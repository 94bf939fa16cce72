"""Report pages of quality runs (hisa_bench/report/quality_figures.py): drawn from the files, the
values plotted are the CSV values, the stage-1 winner is named, and nothing changes without them."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from hisa_bench.report import build_report
from hisa_bench.report.quality_figures import quality_pages, spearman, split_dirs
from hisa_bench.report.style import report_style

ENV = {"created": "2026-11-30T00:00:00+00:00", "gpu": None, "device": "cpu", "torch": "x", "triton": "y",
       "git_commit": "abc", "command": "hisa-bench quality", "timing": {}}


def row(label, method, k=None, b=None, m=None, s=None, ppl=10.0, iou=None):
    return {"label": label, "method": method, "topk": k, "block_size": b, "blocks": m, "stage1": s, "ppl": ppl,
            "d_dense_pct": 0.0, "d_flat_pct": None, "iou_mean": iou, "attn_rel_err_mean": 0.1, "tokens": 511,
            "sparse_layers": "0,1"}


def quality_run(root, name, rows, layer_ppl=None):
    d = root / name
    d.mkdir(parents=True)
    (d / "env.json").write_text(json.dumps(ENV))
    (d / "quality.json").write_text(json.dumps({"config": {"context": 512, "device": "cpu"},
                                                "model": {"model": "SmolLM2"}, "rows": rows}))
    pd.DataFrame(rows).to_csv(d / "quality.csv", index=False)
    pd.DataFrame([{"label": "dense", "method": "dense", "layer": 0, "iou_mean": None, "attn_rel_err": 0.0}]).to_csv(
        d / "layers.csv", index=False)
    if layer_ppl is not None:
        pd.DataFrame(layer_ppl).to_csv(d / "layer_ppl.csv", index=False)
    return d


def iou_run(root, name, values):
    d = root / name
    d.mkdir(parents=True)
    (d / "env.json").write_text(json.dumps(ENV))
    recs = [{"block_size": 32, "blocks": 16, "pooling": "mean", "method": m, "layer": l, "queries": 10, "trivial": 2,
             "iou_mean": v[i], "score_recall_mean": v[i] / 2} for m, v in values.items() for i, l in enumerate(["a", "b"])]
    pd.DataFrame(recs).to_csv(d / "layers.csv", index=False)
    pd.DataFrame([{"block_size": 32, "blocks": 16, "method": "hisa", "layer": "a", "q_pos": 5, "iou": 0.5,
                   "trivial": False}]).to_csv(d / "per_query.csv", index=False)
    (d / "iou.json").write_text(json.dumps({"config": {"block_size": 32, "blocks": 16}, "layers": [], "overall": {}}))
    return d


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    grid = [row("dense", "dense", ppl=20.0), row("flat k=32", "flat", 32, ppl=24.0), row("flat k=64", "flat", 64, ppl=22.0),
            row("hisa k=32 B=16 m=4", "hisa", 32, 16, 4, "relu", 27.0, 0.5),
            row("hisa k=64 B=16 m=8", "hisa", 64, 16, 8, "relu", 25.0, 0.6)]
    lp = [{"label": "hisa k=64 B=16 m=8", "method": "hisa", "topk": 64, "block_size": 16, "blocks": 8, "stage1": "relu",
           "layer": i, "ppl": 20 + i, "d_dense_pct": 5.0 * i, "iou_mean": 0.9 - 0.1 * i, "attn_rel_err": 0.1 * i}
          for i in range(4)]
    quality_run(root, "quality-20261130-100000-grid", grid, lp)
    stage = [row("dense", "dense", ppl=20.0), row("flat k=64", "flat", 64, ppl=22.0),
             row("hisa k=64 B=16 m=8", "hisa", 64, 16, 8, "relu", 26.0),
             row("hisa k=64 B=16 m=8 raw", "hisa", 64, 16, 8, "raw", 25.0),
             row("hisa k=64 B=16 m=8 ucb", "hisa", 64, 16, 8, "ucb", 23.0),
             row("hisa k=64 B=16 m=8 oracle", "hisa", 64, 16, 8, "oracle", 22.5)]
    quality_run(root, "quality-20261130-110000-stage1", stage)
    iou_run(root, "iou-20261130-120000-stage1", {"hisa": [0.5, 0.6], "hisa/raw": [0.55, 0.6], "hisa/ucb": [0.6, 0.7],
                                                  "hisa/oracle": [0.8, 0.8]})
    return root


def _gid(fig, prefix):
    out = {}
    for ax in fig.axes:
        for art in list(ax.lines) + list(ax.patches) + list(ax.collections):
            g = art.get_gid()
            if g and g.startswith(prefix):
                out[g] = art
    return out


def test_pages_are_drawn_from_the_files(runs):
    with report_style():
        pages, notes = quality_pages(runs)
    names = [n for n, _ in pages]
    assert names == ["quality_ppl_k", "quality_layers", "quality_stage1"] and notes == []
    figs = dict(pages)
    lines = _gid(figs["quality_ppl_k"], "quality-ppl|")
    assert list(lines["quality-ppl|flat"].get_ydata()) == [24.0, 22.0]
    assert list(lines["quality-ppl|hisa B=16 m*B=2k"].get_ydata()) == [27.0, 25.0]
    pts = _gid(figs["quality_layers"], "quality-layers|")["quality-layers|hisa k=64 B=16 m=8"]
    assert [tuple(p) for p in pts.get_offsets()] == [(0.9 - 0.1 * i, 5.0 * i) for i in range(4)]
    assert "Spearman(IoU, harm) = -1.00" in figs["quality_layers"]._suptitle.get_text()
    bars = _gid(figs["quality_stage1"], "quality-stage1|")
    assert bars["quality-stage1|perplexity|ucb"].get_height() == 23.0
    # pooled over layers weighted by non-trivial queries: (0.6 + 0.7) / 2
    assert bars["quality-stage1|mean IoU with flat|ucb"].get_height() == pytest.approx(0.65)
    title = figs["quality_stage1"]._suptitle.get_text()
    assert "perplexity winner: ucb" in title and "closes 75% of HISA's gap to flat" in title   # (26-23)/(26-22)
    assert "IoU winner: ucb" in title and "oracle ceiling is 0.800" in title   # the oracle is never the winner
    assert "CPU, context 512" in title


def test_report_inserts_quality_pages_before_the_environment(runs, tmp_path):
    iou_dir = runs / "iou-20261130-120000-stage1"
    q = sorted(p for p in runs.iterdir() if p.name.startswith("quality-"))
    assert split_dirs([iou_dir] + q) == (q, [iou_dir])
    rep = build_report([iou_dir] + q, out_dir=tmp_path / "out")
    names = [n for n, _ in rep.pages]
    assert names[-4:] == ["quality_ppl_k", "quality_layers", "quality_stage1", "environment"]
    assert (tmp_path / "out" / "figures" / "quality_stage1.png").is_file()


def test_a_new_report_replaces_old_quality_figures(runs, tmp_path):
    """The old figures folder's files are carried over only when this report does not draw a page
    of that name: an old quality PNG must never replace the one drawn now (it did)."""
    iou_dir = runs / "iou-20261130-120000-stage1"
    q = sorted(p for p in runs.iterdir() if p.name.startswith("quality-"))
    figs = tmp_path / "out" / "figures"
    figs.mkdir(parents=True)
    for name in ("quality_ppl_k.png", "quality_stage1.png", "notes.txt"):
        (figs / name).write_bytes(b"stale")
    build_report([iou_dir] + q, out_dir=tmp_path / "out")
    assert (figs / "quality_ppl_k.png").read_bytes()[:4] == b"\x89PNG"
    assert (figs / "quality_stage1.png").read_bytes()[:4] == b"\x89PNG"
    assert (figs / "notes.txt").read_bytes() == b"stale"          # a file of the user's stays


def test_no_quality_runs_adds_nothing(tmp_path):
    with report_style():
        assert quality_pages(tmp_path) == ([], [])


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None


def test_iou_pages_keep_the_newest_run_without_stage1_variants(runs):
    from hisa_bench.report.loading import load_run
    from hisa_bench.report.quality_figures import demote_stage1_iou

    stage = load_run(runs / "iou-20261130-120000-stage1")
    assert demote_stage1_iou({"iou": [stage]})["iou"] == [stage]      # the only one still serves
    plain = load_run(iou_run(runs, "iou-20261130-090000-plain", {"hisa": [0.5, 0.6], "block-sparse": [0.3, 0.4]}))
    assert demote_stage1_iou({"iou": [stage, plain]})["iou"] == [plain, stage]
