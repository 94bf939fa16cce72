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

BACKEND_ORDER = ("flat", "hisa", "block-sparse", "flat-torch")
_BACKEND_COLOURS = {"flat": "#1f77b4", "hisa": "#d62728", "block-sparse": "#2ca02c", "flat-torch": "#7f7f7f"}
_EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")
STAGE_ORDER = ("pool", "block_scores", "block_topk", "token_scores", "token_topk", "scores", "topk")
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
    # Leave a strip at the bottom for the footer, which the layout engine does not know about.
    fig.get_layout_engine().set(rect=(0.0, 0.035, 1.0, 0.965))
    return fig


def footer(fig: Figure, runs, extra: str = ""):
    """Name the run folders a page was drawn from, and the GPU and commit of each."""
    parts = []
    for run in runs:
        if run is None:
            continue
        commit = str(run.env.get("git_commit") or "unknown commit")
        parts.append(f"{run.name} (GPU: {run.gpu}; commit {commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''})")
    text = "source: " + "; ".join(parts) if parts else "source: none"
    if extra:
        text += "  |  " + extra
    fig.text(0.005, 0.006, text, fontsize=6.5, color="#444444", ha="left", va="bottom")


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


def plain_log_y(ax, base=10):
    """Log y axis labelled 0.5, 1, 2, 5, 10 ... instead of 5x10^-1 (easier to read off). Call it after
    plotting: the tick spacing depends on the range of the data."""
    ax.set_yscale("log", base=base)
    low, high = ax.dataLim.intervaly
    # 1-2-5 ticks read best over a few decades; over many, ticks at the decades only.
    if base == 10 and low > 0 and high / low <= 1e3:
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_plain))
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
