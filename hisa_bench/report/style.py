"""Shared look of every report page: fixed fonts and sizes (independent of the user's matplotlibrc),
Agg canvases (no pyplot, no GUI backend, no global figure state), the footer naming the source runs,
and a fixed colour per backend, method and stage so that one name has one colour on every page."""
from __future__ import annotations

import contextlib

import matplotlib
import matplotlib.ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PAGE_SIZE = (11.69, 8.27)   # A4 landscape, inches
PNG_DPI = 100

# Everything that decides how a page looks or how its bytes are written; applied over matplotlib's
# defaults so that a user's style cannot change the output.
RC = {
    "font.family": "DejaVu Sans",
    "font.monospace": ["DejaVu Sans Mono"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,        # embed TrueType subsets: selectable text, stable bytes
    "pdf.compression": 6,
    "svg.hashsalt": "hisa-bench",
    "path.simplify": False,    # plotted points stay exactly the file's values
    "savefig.dpi": PNG_DPI,
    "figure.dpi": 100,
    "image.interpolation": "nearest",
}

BACKEND_ORDER = ("flat", "flat-pruned", "hisa", "hisa-fused", "block-sparse", "flat-torch")
_BACKEND_COLOURS = {"flat": "#1f77b4", "flat-pruned": "#17becf", "hisa": "#d62728", "block-sparse": "#2ca02c", "flat-torch": "#7f7f7f"}
_EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#ff7f0e", "#aec7e8")
STAGE_ORDER = ("pool", "block_scores", "block_topk", "token_scores", "token_topk", "token_fused", "scores", "topk")
_STAGE_COLOURS = ("#8dd3c7", "#80b1d3", "#bebada", "#fb8072", "#fdb462", "#b3de69", "#fccde5",
                  "#d9d9d9", "#bc80bd", "#ccebc5")
MODE_ORDER = ("chunk", "prefill", "decode")
MODE_MARKERS = {"chunk": "o", "prefill": "s", "decode": "^"}


@contextlib.contextmanager
def report_style():
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        yield


def new_figure(size=PAGE_SIZE) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    # Leave a strip at the bottom for the caption and the footer, which the layout engine does not
    # know about.
    fig.get_layout_engine().set(rect=(0.0, 0.065, 1.0, 0.935))
    return fig


def caption(fig: Figure, text: str):
    """The one line under a figure that says what to conclude from it (above the source footer)."""
    fig.text(0.5, 0.034, text, fontsize=9, style="italic", ha="center", va="bottom", wrap=True, gid="caption")


def footer(fig: Figure, runs, extra: str = ""):
    """Name the run folders a page was drawn from, and the GPU and commit of each."""
    parts = []
    for run in runs:
        if run is None:
            continue
        commit = str(run.env.get("git_commit") or "unknown commit")
        parts.append(f"{run.name} ({run.gpu}; commit {commit[:8]}{'-dirty' if commit.endswith('-dirty') else ''})")
    if extra:
        parts.append(extra)
    # Pack the sources into lines that fit the page width (about 200 characters at this size).
    lines, line = [], "source: " if parts else "source: none"
    for i, part in enumerate(parts):
        piece = ("" if i == 0 else "; ") + part
        if len(line) + len(piece) > 200 and line.strip():
            lines.append(line.rstrip())
            line = "        " + part
        else:
            line += piece
    lines.append(line)
    fig.text(0.005, 0.004, "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else ""), fontsize=6.5 if len(lines) == 1
             else 6, color="#444444", ha="left", va="bottom", linespacing=1.1)


def backend_key(name: str):
    name = str(name)
    return (BACKEND_ORDER.index(name) if name in BACKEND_ORDER else len(BACKEND_ORDER), name)


def backend_colour(name: str, others=()) -> str:
    """Fixed colours for the known backends; others take the extra colours in sorted-name order."""
    name = normal_method(name)
    if name in _BACKEND_COLOURS:
        return _BACKEND_COLOURS[name]
    extra = sorted({normal_method(o) for o in others} - set(_BACKEND_COLOURS))
    idx = extra.index(name) if name in extra else 0
    return _EXTRA_COLOURS[idx % len(_EXTRA_COLOURS)]


def normal_method(name) -> str:
    """`block_sparse` (JSON key style) and `block-sparse` (CLI style) are one method."""
    return str(name).strip().lower().replace("_", "-")


def stage_key(stage: str):
    return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)


def stage_colour(stage: str, all_stages) -> str:
    ordered = sorted(set(all_stages), key=stage_key)
    return _STAGE_COLOURS[ordered.index(stage) % len(_STAGE_COLOURS)]


def mode_key(mode: str):
    return (MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER), str(mode))


def fmt_len(n) -> str:
    """Context lengths as people say them: 8192 -> 8K, 131072 -> 128K, 1000 -> 1000."""
    n = int(round(float(n)))
    if n >= 1024 and n % 1024 == 0:
        k = n // 1024
        return f"{k // 1024}M" if k >= 1024 and k % 1024 == 0 else f"{k}K"
    return str(n)


def fmt_num(x, digits=3) -> str:
    if x is None:
        return "-"
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if x != x:
        return "-"
    return f"{x:.{digits}g}"


def set_length_ticks(ax, lengths):
    """Log-2 x axis with a labelled tick at each measured length."""
    ax.set_xscale("log", base=2)
    ticks = sorted({float(v) for v in lengths})
    if ticks:
        ax.set_xticks(ticks, [fmt_len(t) for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def _plain(value, _pos=None) -> str:
    return f"{value:g}"


# Tick mantissas tried in turn, sparse to dense, until at least MIN_TICKS fall inside the data.
_TICK_MANTISSAS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0),
                   (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0))
MIN_TICKS = 4


def log_ticks(low: float, high: float) -> list[float]:
    """Readable tick values for a log axis over [low, high]: decades over a wide range, 1-2-5 or denser
    steps over a narrow one, so that at least MIN_TICKS labelled ticks fall inside the data (a range of
    0.33-0.49 gets 0.35, 0.4, 0.45 rather than only the 0.5 and 1 beyond it)."""
    import math

    if not (low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)):
        return []
    low, high = min(low, high), max(low, high)
    best = []
    for mantissas in _TICK_MANTISSAS:
        ticks = []
        for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
            for m in mantissas:
                v = float(f"{m * 10.0 ** e:.6g}")
                if low * (1 - 1e-9) <= v <= high * (1 + 1e-9):
                    ticks.append(v)
        best = ticks
        if len(ticks) >= MIN_TICKS:
            break
    if len(best) > 10:   # too dense to read: thin evenly
        step = math.ceil(len(best) / 8)
        best = best[::step]
    if len(best) < 2:    # the data is (nearly) one value: label its ends
        best = sorted({float(f"{low:.3g}"), float(f"{high:.3g}")})
    return sorted(set(best))


def tick_label(v: float) -> str:
    """0.35, 2, 500, 2000 (never 2e+03)."""
    return f"{v:.0f}" if v >= 1000 else f"{v:.3g}"


def plain_log_y(ax, base=10, suffix=""):
    """Log y axis labelled 0.4, 0.5, 1, 2, 5, 10 ... instead of 5x10^-1 (easier to read off), with
    ticks that cover the data however narrow its range. Call it after plotting."""
    ax.set_yscale("log", base=base)
    low, high = ax.dataLim.intervaly
    ticks = log_ticks(low, high)
    if ticks:
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: tick_label(v) + suffix))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def figure_legend(fig, axes, title=None):
    """One legend for the whole figure, right of the last axes of the first row, each label once
    (first-seen order). Attached to an axes (not the figure) so that the layout engine makes room."""
    axes = list(axes)
    seen = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        top = [ax for ax in axes if ax.get_subplotspec().rowspan.start == 0][-1]
        top.legend(list(seen.values()), list(seen), loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7,
                   title=title, title_fontsize=7)
