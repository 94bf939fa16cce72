"""The text pages of the report: a summary (runs, headline numbers, what is missing) and the
environment of each run (GPU, versions, commit, command). Drawn as monospace text on report-sized
figures so that the PDF and the PNGs hold the same pages."""
from __future__ import annotations

import json
import textwrap

import pandas as pd

from .iou_figures import _nontrivial, _select, chosen_point, layer_order, method_key, point_label, source_label
from .needle_figures import needle_grid
from .speed_figures import _config_label, ok_rows
from .style import backend_key, fmt_len, fmt_num, footer, mode_key, new_figure, normal_method

LINES_PER_PAGE = 50
WRAP = 150


def table(header, rows) -> list[str]:
    """A fixed-width text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]]


def text_pages(title: str, lines: list[str], runs) -> list:
    """Lay lines out top-down, LINES_PER_PAGE per page; the title repeats on continuation pages."""
    wrapped = []
    for line in lines:
        wrapped.extend(textwrap.wrap(line, WRAP, subsequent_indent="      ", drop_whitespace=False,
                                     replace_whitespace=False) or [""])
    per_page, size = LINES_PER_PAGE, 8.0
    pages = max(1, -(-len(wrapped) // per_page))
    # A last page of a few lines would be a near-empty page: squeeze them onto the pages before, in a
    # smaller font, when that keeps the text readable.
    if pages > 1 and len(wrapped) - (pages - 1) * per_page < 15:
        squeezed = -(-len(wrapped) // (pages - 1))
        if squeezed * 0.8 <= per_page * 1.0 / 0.8 and squeezed <= int(per_page / 0.75):
            per_page, size = squeezed, 8.0 * LINES_PER_PAGE / squeezed
    chunks = [wrapped[i:i + per_page] for i in range(0, len(wrapped), per_page)] or [[]]
    figures = []
    for n, chunk in enumerate(chunks):
        fig = new_figure()
        heading = title if n == 0 else f"{title} (continued, {n + 1}/{len(chunks)})"
        fig.text(0.03, 0.965, heading, fontsize=14, weight="bold", va="top", ha="left")
        fig.text(0.03, 0.915, "\n".join(chunk), fontsize=size, family="monospace", va="top", ha="left",
                 linespacing=1.25)
        footer(fig, runs)
        figures.append(fig)
    return figures


def _speed_summary(run) -> list[str]:
    rows = run.tables["speed"]
    ok = ok_rows(run)
    lines = [f"Speed ({run.name}, GPU: {run.gpu}): rows at the longest length measured per mode and batch"]
    if not run.on_gpu:
        lines.append("  NOTE: this run did not time on a GPU (Triton interpreter on the CPU): its times are not GPU speeds.")
    body = []
    for mode in sorted(ok["mode"].unique(), key=mode_key):
        m = ok[ok["mode"] == mode]
        for batch in sorted(m["batch"].unique()):
            b = m[m["batch"] == batch]
            at = b[b["length"] == b["length"].max()]
            at = at.assign(_k=at["backend"].map(backend_key)).sort_values(
                ["_k"] + [c for c in ("block_size", "blocks") if c in at.columns], kind="stable")
            for _, r in at.iterrows():
                body.append([mode, fmt_len(r["length"]), int(r["batch"]),
                             r["backend"] + (" (unchecked)" if str(r["status"]).strip() == "unchecked" else ""),
                             ", ".join(x for x in (_config_label(r), str(r.get("inputs") or "").strip()) if x) or "-",
                             fmt_num(r["median_ms"], 4), fmt_num(r.get("speedup"), 3) + ("x" if pd.notna(r.get("speedup")) else ""),
                             fmt_num(r.get("tflops"), 4), fmt_num(r.get("gbps"), 4)])
    if body:
        lines += ["  " + l for l in table(["mode", "L", "batch", "backend", "config", "median ms", "speedup",
                                           "TFLOP/s", "GB/s"], body)]
    else:
        lines.append("  no row was timed (status ok or unchecked)")
    if not rows.empty:
        status = rows["status"].str.strip().value_counts().sort_index()
        lines.append("  rows by status: " + ", ".join(f"{k} {v}" for k, v in status.items()))
        bad = rows[rows["status"].str.strip() != "ok"]
        for _, r in bad.head(10).iterrows():
            note = str(r.get("note", "") or "").strip()
            lines.append(f"    {r['status']}: {r['mode']} L={fmt_len(r['length'])} {r['backend']}" + (f" ({note})" if note else ""))
        if len(bad) > 10:
            lines.append(f"    ... and {len(bad) - 10} more")
    return lines


def _iou_summary(run, speed_run) -> list[str]:
    point = chosen_point(run, speed_run)
    layers = run.tables["layers"]
    lines = [f"Fidelity ({run.name}, {source_label(run)}): " + (f"at {point_label(point)}" if point else "no grid point")]
    if point is None:
        return lines
    at = _select(layers, point)
    body = []
    order = layer_order(run)
    for method in sorted(at["method"].astype(str).unique(), key=method_key):
        m = at[at["method"].astype(str) == method].dropna(subset=["iou_mean"])
        if m.empty:
            continue
        worst = m.sort_values("iou_mean", kind="stable").iloc[0]
        body.append([normal_method(method), len(m), fmt_num(m["iou_mean"].mean(), 4),
                     f"{fmt_num(worst['iou_mean'], 4)} (layer {worst['layer']})",
                     fmt_num(m["iou_min"].min(), 4) if "iou_min" in m.columns else "-",
                     fmt_num(m["recall_mean"].mean(), 4) if "recall_mean" in m.columns else "-",
                     int(m["trivial"].sum()) if "trivial" in m.columns and m["trivial"].notna().all() else "-"])
    if body:
        lines += ["  " + l for l in table(["method", "layers", "IoU (mean of layer means)", "worst layer mean",
                                           "min IoU", "recall (mean)", "trivial queries"], body)]
    overall = _overall_for(run, point)
    if overall:
        body = []
        for key in sorted((k for k, v in overall.items() if isinstance(v, dict)), key=method_key):
            o = overall[key]
            body.append([normal_method(key)] + [fmt_num(o.get(c), 4) for c in
                                                 ("iou_mean", "iou_p1", "iou_p5", "iou_min", "recall_mean",
                                                  "score_recall_mean", "top1_recall", "top16_recall", "top128_recall")])
        if body:
            lines.append("  pooled over all layers (iou.json 'overall', non-trivial queries):")
            lines += ["    " + l for l in table(["method", "IoU mean", "p1", "p5", "min", "recall", "score recall",
                                                 "top1", "top16", "top128"], body)]
        counts = [f"{label} {overall[k]}" for k, label in (("queries", "queries"), ("trivial", "trivial"),
                                                           ("tied_flat", "tied at the flat k-th score"),
                                                           ("tied_block", "tied at the HISA m-th block"))
                  if k in overall]
        if counts:
            lines.append("  " + ", ".join(counts) + " (tied queries' figures depend on the tie rule)")
    pq = _select(run.tables["per_query"], point)
    lines.append(f"  per_query.csv at this point: {len(pq)} rows, {len(_nontrivial(pq))} non-trivial; "
                 f"{len(order)} layers")
    return lines


def _overall_for(run, point):
    """iou.json's 'overall' object of the grid point shown, or None."""
    meta = run.meta.get("iou", {})
    entries = meta.get("runs") if isinstance(meta.get("runs"), list) else [meta]
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("overall"), dict):
            continue
        cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        try:
            same = (float(cfg.get("block_size")), float(cfg.get("blocks"))) == (float(point[0]), float(point[1]))
        except (TypeError, ValueError):
            same = len(entries) == 1
        if same and (len(point) < 3 or str(cfg.get("pooling", point[2])) == str(point[2])):
            return entry["overall"]
    return None


def _needle_summary(run) -> list[str]:
    table_ = run.tables["needle"]
    lines = [f"Needle ({run.name}): share of trials in which the needle key was selected"]
    body = []
    for method in sorted(table_["method"].astype(str).unique(), key=method_key):
        depths, lengths, matrix = needle_grid(table_, method)
        vals = matrix[~pd.isna(matrix)]
        if len(vals) == 0:
            continue
        body.append([normal_method(method), len(vals), fmt_num(vals.mean(), 4), fmt_num(vals.min(), 4),
                     f"{fmt_len(lengths.min())}-{fmt_len(lengths.max())}"])
    if body:
        lines += ["  " + l for l in table(["method", "cells", "mean kept", "worst cell", "lengths"], body)]
    return lines


def summary_pages(runs: dict, notes: list[str], extra=()) -> list:
    lines = ["Runs read (each page from the newest run that has its data, unless runs are named):"]
    for kind in ("speed", "topk", "iou", "needle"):
        run = runs.get(kind)
        if run is None and kind == "topk":
            continue
        if run is None:
            lines.append(f"  {kind:<7} none")
            continue
        lines.append(f"  {kind:<7} {run.name}   GPU: {run.gpu}   created {run.env.get('created', '?')}   "
                     f"commit {run.env.get('git_commit') or '?'}")
    for run in extra:
        lines.append(f"  {run.kind:<7} {run.name}   GPU: {run.gpu}   (also drawn: see the footers)")
    lines.append("")
    if "speed" in runs:
        lines += _speed_summary(runs["speed"]) + [""]
    if "topk" in runs:
        lines += _speed_summary(runs["topk"]) + [""]
    if "iou" in runs:
        lines += _iou_summary(runs["iou"], runs.get("speed")) + [""]
    if "needle" in runs:
        lines += _needle_summary(runs["needle"]) + [""]
    lines.append("Missing or not drawn:" if notes else "Missing or not drawn: nothing")
    lines += [f"  - {n}" for n in notes]
    return text_pages("hisa-bench report: summary", lines, list(runs.values()))


def _env_lines(run) -> list[str]:
    env = run.env
    gpu = env.get("gpu")
    if isinstance(gpu, dict):
        gpu_text = (f"{gpu.get('name')} (sm {gpu.get('capability')}, {gpu.get('multiprocessors')} SMs, "
                    f"{gpu.get('memory_gib')} GiB, driver {gpu.get('driver') or '?'}, "
                    f"clocks {json.dumps(gpu.get('clocks'), sort_keys=True) if gpu.get('clocks') else '?'})")
    else:
        gpu_text = "none"
    fields = [
        ("created", env.get("created")),
        ("gpu", gpu_text),
        ("device", env.get("device")),
        ("kernels", env.get("kernels")),
        ("torch", f"{env.get('torch')} (cuda {env.get('cuda')})"),
        ("triton", env.get("triton")),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("git commit", env.get("git_commit")),
        ("command", env.get("command")),
        ("timing", json.dumps(env.get("timing"), sort_keys=True) if env.get("timing") else "-"),
        ("env vars", json.dumps(env.get("env"), sort_keys=True) if env.get("env") else "-"),
    ]
    meta = run.meta.get(run.kind) if isinstance(run.meta.get(run.kind), dict) else {}
    if isinstance(meta.get("config"), dict):
        fields.append(("config", json.dumps(meta["config"], sort_keys=True, default=str)))
    elif isinstance(meta.get("runs"), list):   # an iou grid: one config per grid point
        configs = [r.get("config") for r in meta["runs"] if isinstance(r, dict) and isinstance(r.get("config"), dict)]
        # what every point shares once, then only what differs, one short entry per point
        keys = sorted({k for c in configs for k in c})
        common = {k: configs[0].get(k) for k in keys if all(json.dumps(c.get(k), default=str) ==
                                                           json.dumps(configs[0].get(k), default=str) for c in configs)}
        fields.append(("config", json.dumps(common, sort_keys=True, default=str)))
        varying = [k for k in keys if k not in common]
        points = ["(" + ", ".join(f"{k}={c.get(k)}" for k in varying) + ")" for c in configs]
        fields.append((f"{len(configs)} points", " ".join(points)))
    return [f"{run.kind} run {run.name}"] + [f"  {k:<11} {'-' if v is None else v}" for k, v in fields] + [""]


def environment_pages(runs: dict) -> list:
    lines = []
    for run in runs.values():
        lines += _env_lines(run)
    return text_pages("hisa-bench report: environment of each run", lines, list(runs.values()))
