"""The needle-in-a-haystack heatmap from a needle run (needle.csv): for each method, the share of
trials in which the needle key was selected, by needle depth and context length."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .iou_figures import method_key
from .style import caption, fmt_len, footer, new_figure, normal_method

ANNOTATE_MAX_CELLS = 240   # beyond this many cells per panel the numbers would not be readable


def kept_value(frame: pd.DataFrame) -> pd.Series:
    """Per row, the kept share: kept_rate where written, else kept (0/1)."""
    if "kept_rate" in frame.columns:
        value = frame["kept_rate"]
        if "kept" in frame.columns:
            value = value.fillna(frame["kept"])
        return value
    return frame["kept"]


def needle_grid(frame: pd.DataFrame, method: str):
    """(depths, lengths, matrix[depth, length]) of one method; a cell is the mean kept share of its
    rows (one row per cell, or one per trial), NaN where nothing was measured."""
    rows = frame[frame["method"].astype(str) == method].assign(_v=lambda f: kept_value(f))
    rows = rows.dropna(subset=["length", "depth", "_v"])
    depths = np.array(sorted(rows["depth"].unique()), dtype=float)
    lengths = np.array(sorted(rows["length"].unique()), dtype=float)
    cell = rows.groupby(["depth", "length"])["_v"].mean()
    matrix = np.full((len(depths), len(lengths)), np.nan)
    for (d, l), v in cell.items():
        matrix[np.searchsorted(depths, d), np.searchsorted(lengths, l)] = v
    return depths, lengths, matrix


def needle(run):
    table = run.tables["needle"]
    if table.empty:
        return None, [f"needle: {run.name}/needle.csv has no rows"]
    methods = sorted(table["method"].astype(str).unique(), key=method_key)
    fig = new_figure()
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    image = None
    for ax, method in zip(axes, methods):
        depths, lengths, matrix = needle_grid(table, method)
        image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap="RdYlGn", aspect="auto",
                          origin="upper", interpolation="nearest")
        image.set_gid(f"needle|{normal_method(method)}")
        ax.set_xticks(range(len(lengths)), [fmt_len(v) for v in lengths], rotation=45 if len(lengths) > 8 else 0)
        ax.set_yticks(range(len(depths)), [f"{d:.2f}" for d in depths])
        ax.grid(False)
        if matrix.size <= ANNOTATE_MAX_CELLS:
            size = 10 if matrix.size <= 40 else 8 if matrix.size <= 120 else 6.5
            for i in range(matrix.shape[0]):
                for j in range(matrix.shape[1]):
                    v = matrix[i, j]
                    if not np.isnan(v):
                        # white on the dark ends of the colour map, black in its light middle
                        ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=size, weight="bold",
                                color="white" if v < 0.2 or v > 0.85 else "black")
        ax.set_xlabel("context length L (tokens)")
        ax.set_ylabel("needle depth (position / length)")
        ax.set_title(normal_method(method))
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="needle kept (share of trials)", shrink=0.8)
    trials = ""
    if "trials" in table.columns and table["trials"].notna().any():
        t = sorted({int(v) for v in table["trials"].dropna()})
        trials = f" ({'/'.join(map(str, t))} trials per cell)"
    fig.suptitle("Needle in a haystack: is the needle key in the selection?" + trials)
    parts = []
    for method in methods:
        _, _, matrix = needle_grid(table, method)
        vals = matrix[~np.isnan(matrix)]
        if len(vals):
            parts.append(f"{normal_method(method)} keeps it in {vals.mean():.0%}")
    caption(fig, "Share of trials that keep the needle: " + ", ".join(p.replace(" keeps it in", "") for p in parts)
                 + "; every share below "
                 "flat's is a key the flat indexer would have attended to and the method lost.")
    footer(fig, [run], "grey: not measured")
    return fig, []
