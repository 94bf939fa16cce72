"""`hisa-bench report`: turn saved run folders into reports/report.pdf and reports/figures/*.png.

Reads result files only (docs/results-format.md): it never times anything, never imports the
kernels or torch, and never touches a GPU. docs/report.md describes the pages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .loading import KINDS, latest_runs, load_runs

# Which pages come from which run kinds, in report order; the summary comes first, the
# environment last.
_WHAT_NEEDS = {
    "speed": "latency, speedup, stage breakdown, throughput and inputs pages",
    "iou": "IoU per layer, IoU by position and grid pages",
    "needle": "needle heatmap",
}


@dataclass
class Report:
    pdf: Path
    pngs: list
    runs: dict
    notes: list = field(default_factory=list)
    pages: list = field(default_factory=list)


def make_pages(runs: dict):
    """Build every figure the runs allow: ([(name, figure)], notes). Call inside style.report_style()."""
    from . import inputs_figures, iou_figures, needle_figures, pages, speed_figures

    notes = []
    for run in runs.values():
        notes.extend(run.missing)
    for kind in _WHAT_NEEDS:        # a topk run is optional: without one, there is no topk page, silently
        if kind not in runs:
            notes.append(f"no {kind} run: left out: {_WHAT_NEEDS[kind]}")
    speed, iou, needle_run = runs.get("speed"), runs.get("iou"), runs.get("needle")
    plan = []
    if speed is not None:
        plan += [("latency", speed_figures.latency, (speed,)), ("speedup", speed_figures.speedup, (speed,)),
                 ("stages", speed_figures.stages, (speed,)), ("throughput", speed_figures.throughput, (speed,)),
                 ("inputs", inputs_figures.inputs_compare, (speed,))]
    if runs.get("topk") is not None:
        plan.append(("topk", inputs_figures.topk_page, (runs["topk"],)))
    if iou is not None:
        plan += [("iou_layers", iou_figures.iou_layers, (iou, speed)),
                 ("iou_position", iou_figures.iou_position, (iou, speed)),
                 ("grid", iou_figures.grid_pareto, (iou, speed))]
    if needle_run is not None:
        plan.append(("needle", needle_figures.needle, (needle_run,)))
    figures = []
    for name, fn, args in plan:
        fig, why = fn(*args)
        notes.extend(why)
        if fig is not None:
            figures.append((name, fig))
    out = []
    for i, fig in enumerate(pages.summary_pages(runs, notes)):
        out.append(("summary" if i == 0 else f"summary-{i + 1}", fig))
    out += figures
    for i, fig in enumerate(pages.environment_pages(runs)):
        out.append(("environment" if i == 0 else f"environment-{i + 1}", fig))
    return out, notes


def build_report(run_dirs=(), runs_dir="reports/runs", out_dir="reports", on_page=None, on_total=None) -> Report:
    """Render the report. run_dirs: run folders to read (at most one per kind); empty: the newest
    folder of each kind in runs_dir. on_total(n) / on_page(name) report progress."""
    from .output import write_pages
    from .style import report_style

    paths = [Path(p) for p in run_dirs] if run_dirs else latest_runs(runs_dir)
    runs = load_runs(paths)
    with report_style():
        pages, notes = make_pages(runs)
        if on_total:
            on_total(len(pages))
        pdf, pngs = write_pages(pages, out_dir, on_page)
    return Report(pdf=pdf, pngs=pngs, runs=runs, notes=notes, pages=pages)
