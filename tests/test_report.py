"""`hisa-bench report` on small run folders built here, in tmp_path, in the formats of
docs/results-format.md. These folders are test fixtures made by the test, never results: their
numbers are arbitrary and exist only to check that the report draws exactly what the files say."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hisa_bench.errors import HisaBenchError
from hisa_bench.report import build_report
from hisa_bench.report.loading import latest_runs

REPO = Path(__file__).resolve().parent.parent
LENGTHS = [8192, 16384, 32768, 65536]
SPEED_STAGES = ["pool", "block_scores", "block_topk", "token_scores", "token_topk"]


def _env(device="cuda", gpu="NVIDIA H200", command="hisa-bench fixture"):
    return {
        "created": "2026-11-29T10:00:00+00:00",
        "gpu": {"name": gpu, "capability": "9.0", "multiprocessors": 132, "memory_gib": 139.8,
                "driver": "565.57", "clocks": {"sm_mhz": "1980", "mem_mhz": "3201", "sm_max_mhz": "1980"}}
        if gpu else None,
        "device": device, "kernels": "compiled", "torch": "2.13", "triton": "3.9", "cuda": "12.8",
        "python": "3.11.7", "platform": "Linux", "git_commit": "0123456789abcdef", "command": command,
        "timing": {"warmup": 3, "rep": 20}, "env": {},
    }


def make_speed_run(parent, name="speed-20261129-100000", modes=("chunk", "prefill", "decode"), ceilings=None,
                   seed=0, gpu=True):
    rng = np.random.default_rng(seed)
    rows = []
    for mode in modes:
        for L in LENGTHS:
            for batch in ([1, 8] if mode == "decode" else [1]):
                flat_ms = L / 8192 * (1.0 if mode != "prefill" else L / 4096) * rng.uniform(0.9, 1.1)
                for backend in ("flat", "hisa", "block-sparse"):
                    ms = flat_ms if backend == "flat" else flat_ms * rng.uniform(0.1, 1.5)
                    row = {"mode": mode, "length": L, "batch": batch, "queries": 1024, "backend": backend,
                           "baseline": "flat", "status": "ok", "median_ms": round(ms, 6),
                           "p20_ms": round(ms * 0.97, 6), "p80_ms": round(ms * 1.03, 6),
                           "tflops": round(rng.uniform(100, 900), 3), "flops": 1.0e12,
                           "gbps": round(rng.uniform(100, 3000), 3), "speedup": round(flat_ms / ms, 6),
                           "peak_mem_gb": 1.5, "heads": 64, "dim": 128, "topk": 2048, "block_size": 128,
                           "blocks": 64, "dtype": "fp8", "note": ""}
                    for s in SPEED_STAGES:
                        row[f"stage_{s}_ms"] = round(ms / 5 * rng.uniform(0.5, 1.5), 6) if backend == "hisa" else ""
                    row["stage_scores_ms"] = round(ms * 0.7, 6) if backend == "flat" else ""
                    row["stage_topk_ms"] = round(ms * 0.3, 6) if backend == "flat" else ""
                    row["pool_update_ms"] = round(ms * 0.01, 6) if (mode == "decode" and backend == "hisa") else ""
                    rows.append(row)
    # one failed row: empty timing columns, as the contract says
    failed = dict(rows[0], backend="hisa", length=131072, status="oom", note="out of memory")
    for col in ("median_ms", "p20_ms", "p80_ms", "tflops", "gbps", "speedup", *[f"stage_{s}_ms" for s in SPEED_STAGES]):
        failed[col] = ""
    rows.append(failed)
    frame = pd.DataFrame(rows)
    path = Path(parent) / name
    path.mkdir(parents=True)
    frame.to_csv(path / "speed.csv", index=False)
    meta = {"config": {"modes": list(modes), "lengths": LENGTHS}, "rows": rows}
    if ceilings:
        meta["ceilings"] = ceilings
    (path / "speed.json").write_text(json.dumps(meta))
    env = _env(command="hisa-bench speed --fixture") if gpu else _env(device="cpu", gpu=None)
    (path / "env.json").write_text(json.dumps(env))
    return path


def make_iou_run(parent, name="iou-20261129-100500", points=((64, 32), (128, 16), (128, 64)), layers=3,
                 queries=40, speed_grid=True, seed=1):
    rng = np.random.default_rng(seed)
    per_query, layer_rows, runs = [], [], []
    for n_point, point in enumerate(points):
        bs, m = point[:2]
        pooling = point[2] if len(point) > 2 else "mean"
        for layer in range(layers):
            for method in ("hisa", "block_sparse"):
                pos = np.arange(queries) * 256 + 100
                visible = pos + 1
                trivial = visible <= bs * m
                iou = np.where(trivial & (method == "hisa"), 1.0, rng.uniform(0.3, 1.0, queries)).round(6)
                for q in range(queries):
                    per_query.append({"block_size": bs, "blocks": m, "pooling": pooling, "method": method,
                                      "layer": f"blk.{layer}", "query": q, "q_pos": int(pos[q]),
                                      "visible": int(visible[q]), "trivial": bool(trivial[q]), "iou": iou[q],
                                      "recall": iou[q], "score_recall": 1.0, "top1_recall": 1.0,
                                      "top16_recall": 1.0, "top128_recall": 1.0})
                nt = iou[~trivial]
                layer_rows.append({"block_size": bs, "blocks": m, "pooling": pooling, "method": method,
                                   "layer": f"blk.{layer}", "queries": queries, "trivial": int(trivial.sum()),
                                   "iou_mean": round(float(nt.mean()), 6), "iou_p1": round(float(np.percentile(nt, 1)), 6),
                                   "iou_p5": round(float(np.percentile(nt, 5)), 6), "iou_min": float(nt.min()),
                                   "recall_mean": round(float(nt.mean()), 6), "score_recall_mean": 1.0,
                                   "top1_recall": 1.0, "top16_recall": 1.0, "top128_recall": 1.0})
        pooled = {}
        for method in ("hisa", "block_sparse"):
            vals = [r["iou"] for r in per_query if r["method"] == method and not r["trivial"]
                    and (r["block_size"], r["blocks"], r["pooling"]) == (bs, m, pooling)]
            pooled[method] = {"iou_mean": float(np.mean(vals)), "iou_min": float(np.min(vals))}
        overall = {"queries": layers * queries, "trivial": int(trivial.sum()) * layers, "tied_flat": n_point,
                   "tied_block": 10 + n_point, **pooled}
        runs.append({"config": {"block_size": bs, "blocks": m, "pooling": pooling}, "layers": [], "overall": overall})
    path = Path(parent) / name
    path.mkdir(parents=True)
    pd.DataFrame(layer_rows).to_csv(path / "layers.csv", index=False)
    pd.DataFrame(per_query).to_csv(path / "per_query.csv", index=False)
    (path / "iou.json").write_text(json.dumps({"runs": runs} if len(points) > 1 else runs[0]))
    if speed_grid:
        grid = [{"block_size": bs, "blocks": m, "hisa_ms": round(0.1 * m / bs + 0.2, 6), "flat_ms": 1.0}
                for bs, m in sorted({p[:2] for p in points})]
        for g in grid:
            g["speedup"] = round(g["flat_ms"] / g["hisa_ms"], 6)
        pd.DataFrame(grid).to_csv(path / "speed_grid.csv", index=False)
    (path / "env.json").write_text(json.dumps(_env(device="cpu", gpu=None, command="hisa-bench iou --fixture")))
    return path


def make_needle_run(parent, name="needle-20261129-101000", seed=2):
    rng = np.random.default_rng(seed)
    rows = []
    for method in ("flat", "hisa", "block-sparse"):
        for L in LENGTHS[:3]:
            for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
                kept = rng.integers(0, 2, 4)
                rows.append({"method": method, "length": L, "depth": depth, "kept": int(kept[0]),
                             "rank": int(rng.integers(-1, 2048)), "trials": 4, "kept_rate": float(kept.mean())})
    path = Path(parent) / name
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "needle.csv", index=False)
    (path / "env.json").write_text(json.dumps(_env(device="cpu", gpu=None, command="hisa-bench needle --fixture")))
    return path


def page_count(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf.read_bytes()))


def _lines(fig, prefix):
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith(prefix):
                out[gid] = (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
    return out


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    make_speed_run(runs)
    make_iou_run(runs)
    make_needle_run(runs)
    report = build_report(runs_dir=runs, out_dir=root / "out")
    return root, report


def _page(report, name):
    return dict(report.pages)[name]


def _csv(path, name):
    return pd.read_csv(path / name)


# --- the whole report --------------------------------------------------------------------------

def test_full_report_has_every_page_and_png(full):
    root, report = full
    names = [n for n, _ in report.pages]
    assert names == ["summary", "latency", "speedup", "stages", "throughput", "iou_layers", "iou_position", "grid",
                     "needle", "environment"]
    assert report.pdf == root / "out" / "report.pdf"
    assert page_count(report.pdf) == len(names)
    for n in names:
        png = root / "out" / "figures" / f"{n}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = report.pdf.read_bytes()
    assert b"/CreationDate" not in data and b"/ModDate" not in data
    assert report.notes == []
    # no temporary files left behind
    assert not [p for p in (root / "out").rglob("*") if p.name.startswith(".tmp-")]


def test_same_inputs_give_identical_bytes(full):
    root, report = full
    again = build_report(runs_dir=root / "runs", out_dir=root / "again")
    assert again.pdf.read_bytes() == report.pdf.read_bytes()
    for png in report.pngs:
        assert (root / "again" / "figures" / png.name).read_bytes() == png.read_bytes(), png.name


def test_every_figure_names_its_source_run_and_gpu(full):
    _, report = full
    for name, fig in report.pages:
        text = " ".join(t.get_text() for t in fig.texts)
        assert "source:" in text, name
    latency_text = " ".join(t.get_text() for t in _page(report, "latency").texts)
    assert "speed-20261129-100000" in latency_text and "NVIDIA H200" in latency_text
    needle_text = " ".join(t.get_text() for t in _page(report, "needle").texts)
    assert "needle-20261129-101000" in needle_text and "no GPU (cpu)" in needle_text


# --- speed pages draw the numbers of speed.csv ---------------------------------------------------

def test_latency_and_speedup_lines_are_the_csv_values(full):
    root, report = full
    rows = _csv(root / "runs" / "speed-20261129-100000", "speed.csv")
    rows = rows[rows["status"] == "ok"]
    lat = _lines(_page(report, "latency"), "latency|")
    spd = _lines(_page(report, "speedup"), "speedup|")
    n_checked = 0
    for (mode, backend, batch), g in rows.groupby(["mode", "backend", "batch"]):
        label = backend if mode != "decode" else f"{backend}, batch {batch}"
        g = g.sort_values("length")
        x, y = lat[f"latency|{mode}|{label}"]
        np.testing.assert_array_equal(x, g["length"].to_numpy(float))
        np.testing.assert_array_equal(y, g["median_ms"].to_numpy(float))
        if backend != "flat":
            x, y = spd[f"speedup|{mode}|{label}"]
            np.testing.assert_array_equal(y, g["speedup"].to_numpy(float))
        n_checked += 1
    assert n_checked == 3 * 3 + 3  # chunk, prefill x 3 backends; decode x 3 backends x 2 batches
    assert not any("flat" == k.split("|")[2] for k in spd)  # the baseline is a reference line, not a series


def test_stage_bars_stack_the_csv_stage_medians(full):
    root, report = full
    rows = _csv(root / "runs" / "speed-20261129-100000", "speed.csv")
    hisa = rows[(rows["status"] == "ok") & (rows["backend"] == "hisa")]
    fig = _page(report, "stages")
    assert [ax.get_title() for ax in fig.axes] == ["chunk", "prefill", "decode"]
    for ax in fig.axes:
        mode = ax.get_title()
        want = hisa[hisa["mode"] == mode].sort_values(["length", "batch"])
        bars = {c.get_label(): c for c in ax.containers}
        for stage in SPEED_STAGES:
            heights = [p.get_height() for p in bars[stage]]
            np.testing.assert_allclose(heights, want[f"stage_{stage}_ms"].to_numpy(float), rtol=1e-12)
        # stacked: each bar starts where the previous stage ended
        bottoms = [p.get_y() for p in bars["token_topk"]]
        below = want[[f"stage_{s}_ms" for s in SPEED_STAGES[:-1]]].sum(axis=1).to_numpy(float)
        np.testing.assert_allclose(bottoms, below, rtol=1e-12)
        assert ("pool update (one new token)" in bars) == (mode == "decode")
        (median,) = [l for l in ax.get_lines() if l.get_gid() == f"stages|{mode}|median"]
        np.testing.assert_array_equal(median.get_ydata(), want["median_ms"].to_numpy(float))


def test_throughput_draws_csv_values_and_h200_reference_ceilings(full):
    root, report = full
    rows = _csv(root / "runs" / "speed-20261129-100000", "speed.csv")
    fig = _page(report, "throughput")
    lines = _lines(fig, "throughput-")
    g = rows[(rows["mode"] == "chunk") & (rows["backend"] == "hisa") & (rows["status"] == "ok")].sort_values("length")
    np.testing.assert_array_equal(lines["throughput-tflops|chunk|hisa"][1], g["tflops"].to_numpy(float))
    np.testing.assert_array_equal(lines["throughput-gbps|chunk|hisa"][1], g["gbps"].to_numpy(float))
    ceilings = {l.get_gid(): l.get_ydata()[0] for ax in fig.axes for l in ax.get_lines()
                if (l.get_gid() or "").startswith("ceiling-")}
    assert ceilings["ceiling-tflops|fp8 matmul (torch._scaled_mm)"] == 1242.0
    assert ceilings["ceiling-tflops|bf16 dense matmul"] == 744.0
    assert ceilings["ceiling-gbps|device copy (read+write)"] == 4260.0
    legend_text = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts)
    legend_title = " ".join(ax.get_legend().get_title().get_text() for ax in fig.axes if ax.get_legend())
    assert "1242 TFLOP/s" in legend_text and "anchors.md" in legend_title


def test_ceilings_measured_by_the_run_replace_the_reference(tmp_path):
    from hisa_bench.report import speed_figures
    from hisa_bench.report.loading import load_run
    from hisa_bench.report.style import report_style

    run = load_run(make_speed_run(tmp_path, modes=("chunk",), ceilings={"fp8_mma_tflops": 987.5, "hbm_tbps": 4.1}))
    with report_style():
        fig, notes = speed_figures.throughput(run)
    found = sorted((l.get_gid(), l.get_ydata()[0]) for ax in fig.axes for l in ax.get_lines()
                   if (l.get_gid() or "").startswith("ceiling-"))
    assert found == [("ceiling-gbps|hbm", 4100.0), ("ceiling-tflops|fp8 mma", 987.5)]
    assert "speed.json" in fig.axes[0].get_legend().get_title().get_text()
    # a run without a GPU gets no H200 reference lines: they say nothing about it
    cpu = load_run(make_speed_run(tmp_path, name="speed-20261129-110000", modes=("chunk",), gpu=False))
    with report_style():
        fig, notes = speed_figures.throughput(cpu)
    assert not [l for ax in fig.axes for l in ax.get_lines() if (l.get_gid() or "").startswith("ceiling-")]
    assert any("no ceilings drawn" in n for n in notes)
    assert "not GPU speeds" in fig.get_suptitle()


def test_several_block_configurations_become_several_lines(tmp_path):
    from hisa_bench.report import iou_figures, speed_figures
    from hisa_bench.report.loading import load_run
    from hisa_bench.report.style import report_style

    path = make_speed_run(tmp_path, modes=("chunk",))
    rows = pd.read_csv(path / "speed.csv", dtype=str, keep_default_na=False)
    extra = rows[(rows["backend"] == "hisa") & (rows["status"] == "ok")].copy()
    extra["block_size"], extra["blocks"] = "64", "32"
    extra["median_ms"] = (extra["median_ms"].astype(float) * 0.5).round(6).astype(str)
    extra["speedup"] = (extra["speedup"].astype(float) * 2).round(6).astype(str)
    pd.concat([rows, extra]).to_csv(path / "speed.csv", index=False)
    speed = load_run(path)
    iou = load_run(make_iou_run(tmp_path, speed_grid=False))
    with report_style():
        lat, _ = speed_figures.latency(speed)
        grid, notes = iou_figures.grid_pareto(iou, speed)
    lines = _lines(lat, "latency|chunk|hisa")
    assert sorted(lines) == ["latency|chunk|hisa (B=128, m=64)", "latency|chunk|hisa (B=64, m=32)"]
    np.testing.assert_array_equal(lines["latency|chunk|hisa (B=64, m=32)"][1],
                                  extra.sort_values("length", key=lambda c: c.astype(int))["median_ms"].astype(float).to_numpy())
    x, _ = _lines(grid, "grid|")["grid|points"]
    ok = speed.tables["speed"]
    at = ok[(ok["backend"] == "hisa") & (ok["length"] == 65536) & (ok["status"] == "ok")]
    assert sorted(x) == sorted(at["speedup"])   # both timed points, read at the longest chunk length


# --- iou pages draw the numbers of layers.csv / per_query.csv / speed_grid.csv -------------------

def test_iou_cdf_is_the_per_query_values(full):
    root, report = full
    pq = _csv(root / "runs" / "iou-20261129-100500", "per_query.csv")
    lines = _lines(_page(report, "iou_layers"), "iou-cdf|")
    # the speed run timed B=128, m=64, so that grid point is the one shown
    at = pq[(pq["block_size"] == 128) & (pq["blocks"] == 64) & (~pq["trivial"])]
    for (method, layer), g in at.groupby(["method", "layer"]):
        x, y = lines[f"iou-cdf|{method.replace('_', '-')}|{layer}"]
        np.testing.assert_array_equal(x, np.sort(g["iou"].to_numpy(float)))
        np.testing.assert_allclose(y, np.arange(1, len(g) + 1) / len(g))
    assert len(lines) == 2 * (3 + 1)   # 2 methods x (3 layers + all layers)


def test_iou_position_bins_are_the_per_query_means(full):
    root, report = full
    pq = _csv(root / "runs" / "iou-20261129-100500", "per_query.csv")
    lines = _lines(_page(report, "iou_position"), "iou-position|")
    at = pq[(pq["block_size"] == 128) & (pq["blocks"] == 64) & (~pq["trivial"]) & (pq["method"] == "hisa")]
    x, y = lines["iou-position|hisa|mean"]
    # the fixture has 8 non-trivial positions, so each bin holds one position (all 3 layers)
    expected = at.groupby("q_pos")["iou"].mean()
    assert len(y) == len(expected)
    np.testing.assert_allclose(y, expected.to_numpy(), rtol=1e-12)
    assert x.min() >= expected.index.min() and x.max() <= expected.index.max()


def test_grid_points_and_pareto_front(full):
    root, report = full
    layers = _csv(root / "runs" / "iou-20261129-100500", "layers.csv")
    grid = _csv(root / "runs" / "iou-20261129-100500", "speed_grid.csv")
    fid = layers[layers["method"] == "hisa"].groupby(["block_size", "blocks"])["iou_mean"].mean()
    sp = grid.set_index(["block_size", "blocks"])["speedup"]
    lines = _lines(_page(report, "grid"), "grid|")
    x, y = lines["grid|points"]
    pts = sorted(zip(x, y))
    assert pts == sorted(zip(sp[fid.index].to_numpy(float), fid.to_numpy(float)))
    # front: points that no other point beats on both axes, computed here by brute force
    front = sorted((s, f) for s, f in pts if not any(s2 >= s and f2 >= f and (s2, f2) != (s, f) for s2, f2 in pts))
    fx, fy = lines["grid|front"]
    assert sorted(zip(fx, fy)) == front and len(front) >= 1


def test_grid_speedup_from_the_speed_run_without_speed_grid(tmp_path):
    from hisa_bench.report import iou_figures
    from hisa_bench.report.loading import load_run
    from hisa_bench.report.style import report_style

    iou = load_run(make_iou_run(tmp_path, speed_grid=False))
    speed = load_run(make_speed_run(tmp_path, modes=("chunk",)))
    with report_style():
        fig, notes = iou_figures.grid_pareto(iou, speed)
        alone, alone_notes = iou_figures.grid_pareto(iou, None)
    rows = speed.tables["speed"]
    want = rows[(rows["backend"] == "hisa") & (rows["mode"] == "chunk") & (rows["length"] == 65536)]["speedup"]
    # Only B=128, m=64 was timed (at the longest chunk length): one timed point is no speed/fidelity
    # trade-off, so the page draws fidelity against m and writes that point's speedup beside it.
    assert "grid|points" not in _lines(fig, "grid|")
    assert set(_lines(fig, "grid-fidelity|")) == {"grid-fidelity|B=64", "grid-fidelity|B=128"}
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == [f"{float(want.iloc[0]):.2g}x faster (chunk mode at L=64K)"]
    assert any("fidelity alone" in n for n in alone_notes)
    assert not any("fidelity alone" in n for n in notes)
    assert set(_lines(alone, "grid-fidelity|")) == {"grid-fidelity|B=64", "grid-fidelity|B=128"}


def test_pooling_grid_shows_mean_pooling_and_times_only_it(tmp_path):
    from hisa_bench.report import iou_figures
    from hisa_bench.report.loading import load_run
    from hisa_bench.report.style import report_style

    # iou.json lists the max-pooling point first; the distributions still show the paper's mean pooling
    # only when the speed run timed it; without a speed run they show iou.json's first configuration.
    iou = load_run(make_iou_run(tmp_path, points=((128, 32, "max"), (128, 32, "mean"), (128, 64, "mean"),
                                                  (128, 64, "quest"))))
    speed = load_run(make_speed_run(tmp_path, modes=("chunk",)))
    assert iou_figures.chosen_point(iou, speed) == (128.0, 64.0, "mean")
    assert iou_figures.chosen_point(iou, None) == (128.0, 32.0, "max")
    with report_style():
        fig, notes = iou_figures.grid_pareto(iou, speed)
    x, y = _lines(fig, "grid|")["grid|points"]
    assert len(x) == 2   # speed_grid.csv has no pooling column: it timed mean pooling only
    assert any("no speedup for B=128, m=32, max; B=128, m=64, quest" in n for n in notes)


# --- needle -----------------------------------------------------------------------------------

def test_needle_heatmap_is_the_kept_rate(full):
    root, report = full
    table = _csv(root / "runs" / "needle-20261129-101000", "needle.csv")
    fig = _page(report, "needle")
    images = {im.get_gid(): im for ax in fig.axes for im in ax.get_images()}
    assert set(images) == {"needle|flat", "needle|hisa", "needle|block-sparse"}
    for method, g in table.groupby("method"):
        want = g.pivot(index="depth", columns="length", values="kept_rate").sort_index().sort_index(axis=1)
        np.testing.assert_array_equal(np.asarray(images[f"needle|{method}"].get_array()), want.to_numpy())


# --- partial, missing and corrupt results ---------------------------------------------------------

def test_only_an_iou_run_renders_its_pages_and_says_what_is_missing(tmp_path, capsys):
    from hisa_bench.cli import main

    make_iou_run(tmp_path / "runs", points=((128, 64),), speed_grid=False)
    with pytest.raises(SystemExit) as info:
        main(["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert info.value.code == 0
    err = capsys.readouterr().err
    assert "no speed run" in err and "no needle run" in err
    # one (B, m) point is no grid: no near-empty grid page, but the command that would fill it
    assert "measured one (B, m) point; a grid run fills this page" in err and "--block-size 64,128,256" in err
    assert page_count(tmp_path / "out" / "report.pdf") == 4   # summary, 2 iou pages, environment
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == [
        "environment.png", "iou_layers.png", "iou_position.png", "summary.png"]


def test_summary_shows_the_pooled_figures_of_the_shown_grid_point(full):
    root, report = full
    meta = json.loads((root / "runs" / "iou-20261129-100500" / "iou.json").read_text())
    (shown,) = [r for r in meta["runs"] if (r["config"]["block_size"], r["config"]["blocks"]) == (128, 64)]
    text = " ".join(t.get_text() for t in _page(report, "summary").texts)
    assert f"tied at the HISA m-th block {shown['overall']['tied_block']}" in text
    assert f"{shown['overall']['hisa']['iou_mean']:.4g}" in text


def test_speed_run_without_decode_rows(tmp_path):
    from hisa_bench.report import make_pages
    from hisa_bench.report.loading import load_runs
    from hisa_bench.report.style import report_style

    runs = load_runs([make_speed_run(tmp_path / "runs", modes=("chunk", "prefill"))])
    with report_style():
        pages, notes = make_pages(runs)
    pages = dict(pages)
    assert any("no decode rows" in n for n in notes)
    assert "no decode rows" in " ".join(t.get_text() for t in pages["summary"].texts)
    assert [ax.get_title().split(":")[0] for ax in pages["latency"].axes] == ["chunk", "prefill"]


def test_stale_pngs_of_an_earlier_report_are_removed(tmp_path):
    make_needle_run(tmp_path / "runs")
    (tmp_path / "out" / "figures").mkdir(parents=True)
    (tmp_path / "out" / "figures" / "latency.png").write_bytes(b"old")
    (tmp_path / "out" / "figures" / "mine.png").write_bytes(b"not ours")
    build_report(runs_dir=tmp_path / "runs", out_dir=tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert names == ["environment.png", "mine.png", "needle.png", "summary.png"]


def _expect_error(paths, match):
    with pytest.raises(HisaBenchError, match=match) as info:
        build_report(paths, out_dir=paths[0].parent / "out")
    assert "\n" not in str(info.value)


def test_corrupt_json_names_the_file(tmp_path):
    run = make_speed_run(tmp_path)
    (run / "speed.json").write_text('{"config": {"lengths": [1, 2}')
    _expect_error([run], re.escape(str(run / "speed.json")))


def test_corrupt_env_and_missing_files_name_the_file(tmp_path):
    run = make_needle_run(tmp_path)
    (run / "env.json").write_text("not json")
    _expect_error([run], r"corrupt JSON in .*needle-20261129-101000/env\.json")
    run = make_iou_run(tmp_path)
    (run / "per_query.csv").unlink()
    _expect_error([run], r"missing result file .*per_query\.csv")


def test_bad_csv_cells_and_columns_name_the_file(tmp_path):
    run = make_speed_run(tmp_path)
    rows = pd.read_csv(run / "speed.csv", dtype=str, keep_default_na=False)
    rows.loc[3, "median_ms"] = "fast"
    rows.to_csv(run / "speed.csv", index=False)
    _expect_error([run], r"speed\.csv: column 'median_ms' holds 'fast'")
    run = make_needle_run(tmp_path, name="needle-20261129-120000")
    pd.read_csv(run / "needle.csv").drop(columns=["depth"]).to_csv(run / "needle.csv", index=False)
    _expect_error([run], r"needle\.csv lacks the column\(s\) depth")
    (run / "needle.csv").write_text("")
    _expect_error([run], r"corrupt CSV .*needle\.csv: the file is empty")


def test_cli_error_is_one_line_and_nonzero(tmp_path, capsys):
    from hisa_bench.cli import main

    run = make_speed_run(tmp_path)
    (run / "speed.json").write_text("{")
    with pytest.raises(SystemExit) as info:
        main(["report", str(run), "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(run / "speed.json") in err[0]
    assert not (tmp_path / "out" / "report.pdf").exists()


def test_latest_run_of_each_kind(tmp_path):
    runs = tmp_path / "runs"
    make_speed_run(runs, name="speed-20261128-235959")
    make_speed_run(runs, name="speed-20261129-080000-h200")
    make_iou_run(runs, name="iou-20261129-090000")
    (runs / ".tmp-speed-20261130-000000-abc").mkdir()   # an unfinished run
    (runs / "notes").mkdir()
    assert [p.name for p in latest_runs(runs)] == ["speed-20261129-080000-h200", "iou-20261129-090000"]
    with pytest.raises(HisaBenchError, match="no run folders in"):
        latest_runs(tmp_path / "runs" / "notes")
    with pytest.raises(HisaBenchError, match="two speed runs given"):
        build_report([runs / "speed-20261128-235959", runs / "speed-20261129-080000-h200"], out_dir=tmp_path / "o")


def test_report_never_imports_torch_or_the_kernels(tmp_path):
    make_needle_run(tmp_path / "runs")
    code = ("import sys; from hisa_bench.report import build_report; "
            f"build_report(runs_dir={str(tmp_path / 'runs')!r}, out_dir={str(tmp_path / 'out')!r}); "
            "bad = [m for m in sys.modules if m == 'torch' or m == 'triton' or m.startswith('kernels')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
