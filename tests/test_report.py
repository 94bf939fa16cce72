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
                   seed=0):
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
    (path / "env.json").write_text(json.dumps(_env(command="hisa-bench speed --fixture")))
    return path


def make_iou_run(parent, name="iou-20261129-100500", points=((64, 32), (128, 16), (128, 64)), layers=3,
                 queries=40, speed_grid=True, seed=1):
    rng = np.random.default_rng(seed)
    per_query, layer_rows, runs = [], [], []
    for bs, m in points:
        for layer in range(layers):
            for method in ("hisa", "block_sparse"):
                pos = np.arange(queries) * 256 + 100
                visible = pos + 1
                trivial = visible <= bs * m
                iou = np.where(trivial & (method == "hisa"), 1.0, rng.uniform(0.3, 1.0, queries)).round(6)
                for q in range(queries):
                    per_query.append({"block_size": bs, "blocks": m, "pooling": "mean", "method": method,
                                      "layer": f"blk.{layer}", "query": q, "q_pos": int(pos[q]),
                                      "visible": int(visible[q]), "trivial": bool(trivial[q]), "iou": iou[q],
                                      "recall": iou[q], "score_recall": 1.0, "top1_recall": 1.0,
                                      "top16_recall": 1.0, "top128_recall": 1.0})
                nt = iou[~trivial]
                layer_rows.append({"block_size": bs, "blocks": m, "pooling": "mean", "method": method,
                                   "layer": f"blk.{layer}", "queries": queries, "trivial": int(trivial.sum()),
                                   "iou_mean": round(float(nt.mean()), 6), "iou_p1": round(float(np.percentile(nt, 1)), 6),
                                   "iou_p5": round(float(np.percentile(nt, 5)), 6), "iou_min": float(nt.min()),
                                   "recall_mean": round(float(nt.mean()), 6), "score_recall_mean": 1.0,
                                   "top1_recall": 1.0, "top16_recall": 1.0, "top128_recall": 1.0})
        runs.append({"config": {"block_size": bs, "blocks": m, "pooling": "mean"}, "layers": [], "overall": {}})
    path = Path(parent) / name
    path.mkdir(parents=True)
    pd.DataFrame(layer_rows).to_csv(path / "layers.csv", index=False)
    pd.DataFrame(per_query).to_csv(path / "per_query.csv", index=False)
    (path / "iou.json").write_text(json.dumps({"runs": runs} if len(points) > 1 else runs[0]))
    if speed_grid:
        grid = [{"block_size": bs, "blocks": m, "hisa_ms": round(0.1 * m / bs + 0.2, 6), "flat_ms": 1.0}
                for bs, m in points]
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
