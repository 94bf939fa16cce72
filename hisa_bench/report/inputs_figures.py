"""Figures about what the timed tensors held (speed.csv `inputs` column, docs/inputs.md):

  inputs  the same backend on random vs structured vs dump inputs, side by side: median ms per
          (mode, length) as grouped bars, one panel per backend, one bar colour per input kind
  topk    a `--mode topk` run: ms per row kind x width, ours (topk) against torch.topk, with the
          ratio written over each pair

Each function returns (figure or None, notes), like speed_figures. Every bar carries a gid
"<figure>|<panel>|<series>|<group>" so that tests can read back what was drawn."""
from __future__ import annotations

import pandas as pd

from .speed_figures import _cpu_warning, ok_rows
from .style import backend_key, fmt_len, footer, mode_key, new_figure

_INPUT_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
                  "#ccb974", "#64b5cd")
# random and structured, then the other row kinds of inputs/score_rows.py (not imported: the report
# never imports torch), then dumps by name
SYNTHETIC_ORDER = ("random", "structured", "window", "zeros", "equal", "causal", "clusters")


def input_key(label: str):
    """random, structured, the other row kinds, then the rest (dumps) by name."""
    label = str(label)
    return (SYNTHETIC_ORDER.index(label) if label in SYNTHETIC_ORDER else len(SYNTHETIC_ORDER), label)


def inputs_of(frame) -> list[str]:
    if "inputs" not in frame.columns:
        return []
    return sorted(frame["inputs"].dropna().astype(str).str.strip().unique(), key=input_key)


def _with_inputs(run):
    ok = ok_rows(run)
    if "inputs" in ok.columns:
        ok["inputs"] = ok["inputs"].astype(str).str.strip()
    return ok


def _grouped_bars(ax, groups, series, value, gid_prefix, colours):
    """groups: x labels; series: [(label, {group: value})]; bars side by side within each group."""
    n = max(len(series), 1)
    width = 0.8 / n
    for i, (label, values) in enumerate(series):
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        hs = [values.get(grp, float("nan")) for grp in groups]
        bars = ax.bar(xs, hs, width=width * 0.95, color=colours[i % len(colours)], label=label)
        for grp, patch in zip(groups, bars.patches):
            patch.set_gid(f"{gid_prefix}|{label}|{grp}")
    ax.set_xticks(range(len(groups)), groups, fontsize=7 if len(groups) > 8 else None)


def inputs_compare(run):
    """The same backend timed on each input kind, side by side (chunk / prefill / decode runs)."""
    ok = _with_inputs(run)
    kinds = inputs_of(ok)
    if ok.empty or len(kinds) < 2:
        return None, []       # timed on one kind of inputs: nothing to compare, and nothing missing
    ok = ok[ok["mode"] != "topk"]
    backends = sorted(ok["backend"].unique(), key=backend_key)
    fig = new_figure()
    axes = fig.subplots(1, len(backends), squeeze=False)[0]
    for ax, backend in zip(axes, backends):
        rows = ok[ok["backend"] == backend]
        keys = sorted({(m, int(b), int(L)) for m, b, L in zip(rows["mode"], rows["batch"], rows["length"])},
                      key=lambda x: (mode_key(x[0]), x[1], x[2]))
        labels = [f"{m}\n{fmt_len(L)}" + (f" b{b}" if m == "decode" else "") for m, b, L in keys]
        series = []
        for kind in kinds:
            sub = rows[rows["inputs"] == kind]
            # several block configurations of one backend: the fastest stands for it here
            vals = {}
            for (m, b, L), lab in zip(keys, labels):
                at = sub[(sub["mode"] == m) & (sub["batch"] == b) & (sub["length"] == L)]
                if not at.empty:
                    vals[lab] = float(at["median_ms"].min())
            series.append((kind, vals))
        _grouped_bars(ax, labels, series, "median_ms", f"inputs|{backend}", _INPUT_COLOURS)
        ax.set_yscale("log")
        ax.set_ylabel("median ms per call")
        ax.set_title(backend)
        ax.legend(loc="upper left", title="inputs", title_fontsize=7)
    fig.suptitle("The same backend on each kind of inputs (median ms per call; lower is faster)" + _cpu_warning(run))
    footer(fig, [run], "random: i.i.d. normal; structured: synthetic with sinks, recency, topics, exact zeros; "
                       "a file name: that dump's own q/k/w (docs/inputs.md)")
    return fig, []


def topk_page(run):
    """ms per row kind x width: ours against torch.topk, one panel per width."""
    ok = _with_inputs(run)
    ok = ok[ok["mode"] == "topk"]
    if ok.empty:
        return None, [f"topk: {run.name} has no ok --mode topk rows"]
    widths = sorted(ok["length"].unique())
    kinds = inputs_of(ok)
    fig = new_figure()
    axes = fig.subplots(1, len(widths), squeeze=False)[0]
    backends = ["topk", "torch.topk"] + sorted(set(ok["backend"]) - {"topk", "torch.topk"})
    colours = ("#d62728", "#7f7f7f", "#9467bd")
    for ax, W in zip(axes, widths):
        rows = ok[ok["length"] == W]
        series = []
        for b in backends:
            sub = rows[rows["backend"] == b]
            if not sub.empty:
                series.append((b, {k: float(v) for k, v in zip(sub["inputs"], sub["median_ms"])}))
        _grouped_bars(ax, kinds, series, "median_ms", f"topk|{fmt_len(W)}", colours)
        ours = dict(zip(rows.loc[rows["backend"] == "topk", "inputs"], rows.loc[rows["backend"] == "topk", "median_ms"]))
        ref = dict(zip(rows.loc[rows["backend"] == "torch.topk", "inputs"],
                       rows.loc[rows["backend"] == "torch.topk", "median_ms"]))
        top = max(rows["median_ms"].max(), 1e-9)
        for i, kind in enumerate(kinds):
            if kind in ours and kind in ref and ours[kind] > 0:
                ax.text(i, top * 1.08, f"{ref[kind] / ours[kind]:.2f}x", ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, top * 1.25)
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_ylabel("median ms (all rows, one call)")
        q = rows["queries"].dropna()
        k = rows["topk"].dropna() if "topk" in rows.columns else pd.Series(dtype=float)
        ax.set_title(f"rows {fmt_len(W)} wide" + (f", {int(q.iloc[0])} rows" if len(q) else "")
                     + (f", k = {int(k.iloc[0])}" if len(k) else ""))
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle("Row top-k alone: ours (topk) against torch.topk on each row kind (number: torch.topk ms / ours)"
                 + _cpu_warning(run))
    footer(fig, [run], "row kinds: hisa_bench/inputs/score_rows.py; a file name: a dump's own scores")
    return fig, []


__all__ = ["inputs_compare", "topk_page", "input_key", "inputs_of"]
