"""`hisa-bench report`: turn saved run folders into reports/report.pdf and reports/figures/*.png.

Reads result files only (docs/results-format.md): it never times anything, never imports the
kernels or torch, and never touches a GPU. docs/report.md describes the pages."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .loading import KINDS, all_runs, kind_of, latest_runs, load_run, load_runs

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


def _as_candidates(runs: dict) -> dict:
    """kind -> [Run, ...] newest first; a plain kind -> Run mapping is one candidate per kind."""
    return {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in runs.items() if v}


# Figure pages in report order: (page name, run kind, drawing function, takes the speed run too).
def _plan():
    from . import inputs_figures, iou_figures, needle_figures, speed_figures

    return [("latency", "speed", speed_figures.latency, False), ("speedup", "speed", speed_figures.speedup, False),
            ("stages", "speed", speed_figures.stages, False), ("throughput", "speed", speed_figures.throughput, False),
            ("inputs", "speed", inputs_figures.inputs_compare, False),
            ("topk", "topk", inputs_figures.topk_page, False),
            ("iou_layers", "iou", iou_figures.iou_layers, True),
            ("iou_position", "iou", iou_figures.iou_position, True),
            ("grid", "iou", iou_figures.grid_pareto, True),
            ("needle", "needle", needle_figures.needle, False)]


def make_pages(runs: dict):
    """Build every figure the runs allow: ([(name, figure)], notes). Call inside style.report_style().

    runs: kind -> Run, or kind -> [Run, ...] newest first. Each figure comes from the newest run that
    has its data: an older run fills a page the newest cannot (say the newest iou run has only trivial
    queries), and the notes say which run was skipped and why, so a good page is never replaced by
    nothing."""
    from . import pages

    candidates = _as_candidates(runs)
    notes = []
    for kind in _WHAT_NEEDS:        # a topk run is optional: without one, there is no topk page, silently
        if kind not in candidates:
            notes.append(f"no {kind} run: left out: {_WHAT_NEEDS[kind]}")
    used = {}          # run name -> Run, in the order first used
    primary = {}       # kind -> the run most pages of that kind came from (the first used)
    figures = []
    speed_for_iou = None
    for name, kind, fn, with_speed in _plan():
        why_not = []
        for run in candidates.get(kind, []):
            if name == "grid":     # a grid of the other kind of tensors goes beside it
                fig, why = fn(run, speed_for_iou, others=[o for o in candidates[kind] if o is not run])
            else:
                fig, why = fn(run, speed_for_iou) if with_speed else fn(run)
            if fig is None:
                why_not.extend(why)
                continue
            notes.extend(why)
            if why_not:
                shown = list(dict.fromkeys(why_not))
                notes.append(f"{name}: drawn from {run.name}, the newest run with its data; skipped newer: "
                             + "; ".join(shown[:2]) + (f" (and {len(shown) - 2} more)" if len(shown) > 2 else ""))
            figures.append((name, fig))
            used.setdefault(run.name, run)
            for other in getattr(fig, "hisa_bench_runs", ()):
                if other.kind == kind:
                    used.setdefault(other.name, other)
            primary.setdefault(kind, run)
            if kind == "speed" and speed_for_iou is None:
                speed_for_iou = run
            break
        else:
            notes.extend(why_not)
    for kind, runs_of_kind in candidates.items():
        primary.setdefault(kind, runs_of_kind[0])
        used.setdefault(runs_of_kind[0].name, runs_of_kind[0])
        for run in runs_of_kind:
            if run.name in used:
                notes.extend(n for n in run.missing if n not in notes)
    primary = {k: primary[k] for k in KINDS if k in primary}
    out = []
    for i, fig in enumerate(pages.summary_pages(primary, notes, extra=[r for r in used.values()
                                                                       if r is not primary.get(r.kind)])):
        out.append(("summary" if i == 0 else f"summary-{i + 1}", fig))
    out += figures
    for i, fig in enumerate(pages.environment_pages({r.name: r for r in used.values()})):
        out.append(("environment" if i == 0 else f"environment-{i + 1}", fig))
    return out, notes


def _load_candidates(runs_dir) -> tuple[dict, list]:
    """Every run folder of each kind in runs_dir, newest first; a folder that cannot be read is left
    out with a note (an older good run still serves), unless no run of its kind can be read."""
    from ..errors import HisaBenchError

    candidates, notes, errors = {}, [], {}
    for path in all_runs(runs_dir):
        try:
            run = load_run(path)
        except HisaBenchError as e:
            notes.append(f"skipped {path.name}: {e}")
            errors.setdefault(kind_of(path), e)
            continue
        candidates.setdefault(run.kind, []).append(run)
    for kind, err in errors.items():
        if kind not in candidates:
            raise err
    return candidates, notes


def build_report(run_dirs=(), runs_dir="reports/runs", out_dir="reports", on_page=None, on_total=None) -> Report:
    """Render the report. run_dirs: run folders to read (at most one per kind); empty: every run
    folder in runs_dir, each page from the newest that has its data. on_total(n) / on_page(name)
    report progress."""
    from .output import write_pages
    from .style import report_style

    from .quality_figures import demote_stage1_iou, quality_pages, split_dirs

    quality_dirs, run_dirs = split_dirs(run_dirs or ())   # quality-* folders have their own pages
    if run_dirs or quality_dirs:
        runs, load_notes = load_runs([Path(p) for p in run_dirs]), []
    else:
        runs, load_notes = _load_candidates(runs_dir)
        runs = demote_stage1_iou(runs)
    with report_style():
        pages, notes = make_pages(runs)
        notes = load_notes + notes
        extra, why = quality_pages(runs_dir, quality_dirs, [r.path for r in runs.values()
                                                            if getattr(r, "kind", None) == "iou"] if quality_dirs else ())
        at = next((i for i, (name, _) in enumerate(pages) if name.startswith("environment")), len(pages))
        pages[at:at] = extra
        notes += why
        if on_total:
            on_total(len(pages))
        pdf, pngs = write_pages(pages, out_dir, on_page)
    shown = {k: (v[0] if isinstance(v, list) else v) for k, v in runs.items()}
    return Report(pdf=pdf, pngs=pngs, runs=shown, notes=notes, pages=pages)
