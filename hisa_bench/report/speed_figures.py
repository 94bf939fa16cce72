"""Figures drawn from a speed run (speed.csv): latency, speedup, HISA stage breakdown, and achieved
TFLOP/s and GB/s against the GPU's ceilings.

Each function returns (figure or None, notes): the notes say what could not be drawn and why.
Every plotted line carries a gid "<figure>|<mode>|<series label>" so that tests (and anyone
auditing a page) can read back exactly which numbers were drawn."""
from __future__ import annotations

import pandas as pd

from ..results import timed
from .ceilings import ceilings_for
from .style import (backend_colour, backend_key, caption, figure_legend, fmt_len, footer, fmt_num, mode_key, new_figure,
                    plain_log_y, set_length_ticks, stage_colour, stage_key)

_LINESTYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def ok_rows(run) -> pd.DataFrame:
    rows = run.tables["speed"]
    ok = rows[rows["status"].map(timed) & rows["median_ms"].notna()].copy()
    ok["mode"] = ok["mode"].str.strip()
    ok["backend"] = ok["backend"].str.strip()
    return ok


def modes_of(frame) -> list[str]:
    return sorted(frame["mode"].unique(), key=mode_key)


def _config_label(row) -> str:
    parts = []
    if "block_size" in row and pd.notna(row["block_size"]):
        parts.append(f"B={int(row['block_size'])}")
    if "blocks" in row and pd.notna(row["blocks"]):
        parts.append(f"m={int(row['blocks'])}")
    return ", ".join(parts)


def series(frame: pd.DataFrame, mode: str):
    """Split one mode's rows into plotted series, in a fixed order: one per backend (and decode batch);
    a backend measured at one length under several block configurations splits further by
    (block_size, blocks). Yields (label, backend, index within backend, rows sorted by length)."""
    rows = frame[frame["mode"] == mode]
    out = []
    kinds = _input_kinds(rows)
    if len(kinds) > 1:      # one series per (backend, inputs): rows timed on different tensors never merge
        for kind in kinds:
            for label, backend, sub, g in series(rows[rows["inputs"].astype(str).str.strip() == kind].drop(
                    columns="inputs"), mode):
                out.append((f"{label} [{kind}]", backend, sub * len(kinds) + kinds.index(kind), g))
        return out
    for backend in sorted(rows["backend"].unique(), key=backend_key):
        per_backend = rows[rows["backend"] == backend]
        batches = sorted(per_backend["batch"].unique()) if mode == "decode" else [None]
        sub = 0
        for batch in batches:
            group = per_backend if batch is None else per_backend[per_backend["batch"] == batch]
            label = backend if batch is None else f"{backend}, batch {int(batch)}"
            cols = [c for c in ("block_size", "blocks") if c in group.columns]
            if group["length"].duplicated().any() and cols:
                keyed = group.assign(_cfg=group.apply(_config_label, axis=1))
                for cfg in sorted(keyed["_cfg"].unique(), key=_cfg_sort_key):
                    part = keyed[keyed["_cfg"] == cfg].drop(columns="_cfg")
                    out.append((f"{label} ({cfg})" if cfg else label, backend, sub,
                                part.drop_duplicates("length", keep="last").sort_values("length")))
                    sub += 1
            else:
                out.append((label, backend, sub, group.drop_duplicates("length", keep="last").sort_values("length")))
                sub += 1
    return out


def _input_kinds(frame) -> list[str]:
    """The input kinds (speed.csv `inputs`) of these rows: random, structured, then the rest."""
    if "inputs" not in frame.columns:
        return []
    from .inputs_figures import input_key
    return sorted({str(x).strip() for x in frame["inputs"] if str(x).strip()}, key=input_key)


def _cfg_sort_key(cfg: str):
    # "B=128, m=64" -> (128, 64) so that configurations sort numerically.
    nums = []
    for part in cfg.split(","):
        try:
            nums.append(int(part.split("=")[1]))
        except (IndexError, ValueError):
            nums.append(-1)
    return (nums, cfg)


def _cpu_warning(run) -> str:
    if run.on_gpu:
        return ""
    return "\n(times from a run without a GPU, through the Triton interpreter: not GPU speeds)"


def _at_longest(ok, backend, col):
    """(mode, length, value) of backend's col at the longest length of its first mode (batch 1 if any)."""
    rows = ok[(ok["backend"] == backend) & ok[col].notna()]
    if rows.empty:
        return None
    mode = modes_of(rows)[0]
    rows = rows[rows["mode"] == mode]
    rows = rows[rows["batch"] == rows["batch"].min()]
    top = rows[rows["length"] == rows["length"].max()]
    return mode, top["length"].iloc[0], float(top[col].median())


def _latency_caption(ok) -> str:
    flat, hisa = _at_longest(ok, "flat", "median_ms"), _at_longest(ok, "hisa", "median_ms")
    if flat is None or hisa is None or (flat[0], flat[1]) != (hisa[0], hisa[1]):
        return "Lower is faster; a line that rises more slowly than flat's scales better with context length."
    mode, L = flat[0], fmt_len(flat[1])
    verdict = "faster" if hisa[2] < flat[2] else "slower"
    return (f"At {L} ({mode}) HISA takes {fmt_num(hisa[2], 3)} ms against flat's {fmt_num(flat[2], 3)} ms: "
            f"{verdict}; a flatter line scales better with context length.")


def latency(run):
    ok = ok_rows(run)
    if ok.empty:
        return None, [f"latency: {run.name} has no ok rows"]
    modes = modes_of(ok)
    fig = new_figure()
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    backends = ok["backend"].unique()
    for ax, mode in zip(axes, modes):
        for label, backend, sub, g in series(ok, mode):
            colour = backend_colour(backend, backends)
            (line,) = ax.plot(g["length"], g["median_ms"], color=colour, marker=_MARKERS[sub % len(_MARKERS)],
                              linestyle=_LINESTYLES[sub % len(_LINESTYLES)], label=label)
            line.set_gid(f"latency|{mode}|{label}")
            if {"p20_ms", "p80_ms"} <= set(g.columns) and g[["p20_ms", "p80_ms"]].notna().all().all():
                ax.fill_between(g["length"], g["p20_ms"], g["p80_ms"], color=colour, alpha=0.15, linewidth=0)
        set_length_ticks(ax, ok.loc[ok["mode"] == mode, "length"])
        plain_log_y(ax)
        ax.set_xlabel("context length L (tokens" + ("; longest in batch)" if mode == "decode" else ")"))
        ax.set_ylabel("median latency per call (ms)")
        ax.set_title(f"{mode}: scores + top-k, end to end")
        ax.legend(loc="upper left")
    fig.suptitle("Latency against context length (median; band: p20-p80)" + _cpu_warning(run))
    caption(fig, _latency_caption(ok))
    footer(fig, [run])
    return fig, []


def speedup(run):
    ok = ok_rows(run)
    notes = []
    if ok.empty:
        return None, [f"speedup: {run.name} has no ok rows"]
    if "speedup" not in ok.columns:
        return None, [f"speedup: {run.name}/speed.csv has no speedup column"]
    baseline = ok["baseline"].astype(str).str.strip()
    others = ok[(ok["backend"] != baseline) & ok["speedup"].notna()]
    if others.empty:
        return None, [f"speedup: {run.name} has no ok rows of a backend other than the baseline"]
    modes = modes_of(others)
    fig = new_figure()
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    backends = ok["backend"].unique()
    for ax, mode in zip(axes, modes):
        base_names = sorted(set(baseline[ok["mode"] == mode]))
        for label, backend, sub, g in series(others, mode):
            (line,) = ax.plot(g["length"], g["speedup"], color=backend_colour(backend, backends),
                              marker=_MARKERS[sub % len(_MARKERS)], linestyle=_LINESTYLES[sub % len(_LINESTYLES)],
                              label=label)
            line.set_gid(f"speedup|{mode}|{label}")
        ax.axhline(1.0, color="black", linewidth=0.8, label=f"= baseline ({', '.join(base_names)})")
        set_length_ticks(ax, others.loc[others["mode"] == mode, "length"])
        plain_log_y(ax, base=2, suffix="x")
        ax.set_xlabel("context length L (tokens)")
        ax.set_ylabel("speedup over baseline (baseline median / median)")
        ax.set_title(f"{mode}")
        ax.legend(loc="best")
    fig.suptitle("Speedup against context length (above 1x: faster than the flat indexer)" + _cpu_warning(run))
    caption(fig, _speedup_caption(others))
    footer(fig, [run])
    return fig, notes


def _speedup_caption(others) -> str:
    hisa = others[others["backend"] == "hisa"]
    if hisa.empty:
        return "Above the 1x line a backend is faster than the flat indexer."
    mode = modes_of(hisa)[0]
    rows = hisa[hisa["mode"] == mode]
    rows = rows[rows["batch"] == rows["batch"].min()].groupby("length")["speedup"].median()
    lo, hi = rows.index.min(), rows.index.max()
    return (f"HISA's speedup over flat ({mode}) goes from {rows[lo]:.2g}x at {fmt_len(lo)} to {rows[hi]:.2g}x at "
            f"{fmt_len(hi)}: " + ("it grows with context length." if rows[hi] > rows[lo] else
                                   "it does not grow with context length here."))


def stage_columns(frame) -> list[str]:
    cols = [c for c in frame.columns if c.startswith("stage_") and c.endswith("_ms") and frame[c].notna().any()]
    return sorted(cols, key=lambda c: stage_key(c[len("stage_"):-len("_ms")]))


def stages(run):
    ok = ok_rows(run)
    hisa = ok[ok["backend"] == "hisa"]
    cols = stage_columns(hisa)
    if hisa.empty or not cols:
        return None, [f"stage breakdown: {run.name} has no ok hisa rows with stage_<name>_ms columns"]
    modes = modes_of(hisa)
    fig = new_figure()
    axes = fig.subplots(1, len(modes), squeeze=False)[0]
    stage_names = [c[len("stage_"):-len("_ms")] for c in cols]
    for ax, mode in zip(axes, modes):
        rows = hisa[hisa["mode"] == mode]
        sort_cols = ["length", "batch"] + [c for c in ("block_size", "blocks") if c in rows.columns]
        rows = rows.sort_values(sort_cols, kind="stable")
        many_cfg = rows.duplicated(["length", "batch"] + (["inputs"] if "inputs" in rows.columns else [])).any()
        labels = []
        for _, r in rows.iterrows():
            label = fmt_len(r["length"])
            if mode == "decode":
                label += f"\nb={int(r['batch'])}"
            if many_cfg:
                label += "\n" + _config_label(r)
            if len(_input_kinds(rows)) > 1:
                label += "\n" + str(r["inputs"]).strip()
            labels.append(label)
        x = list(range(len(rows)))
        bottom = [0.0] * len(rows)
        for col, name in zip(cols, stage_names):
            heights = rows[col].fillna(0.0).tolist()
            ax.bar(x, heights, bottom=bottom, color=stage_colour(name, stage_names), label=name,
                   edgecolor="white", linewidth=0.5)
            bottom = [b + h for b, h in zip(bottom, heights)]
        if mode in ("decode", "chunk") and "pool_update_ms" in rows.columns and rows["pool_update_ms"].notna().any():
            heights = rows["pool_update_ms"].fillna(0.0).tolist()
            ax.bar(x, heights, bottom=bottom, color="white", edgecolor="#555555", hatch="///",
                   linewidth=0.5, label="pool update (" + ("one new token" if mode == "decode" else "the chunk's blocks") + ")")
        (line,) = ax.plot(x, rows["median_ms"], linestyle="none", marker="_", markersize=18, color="black",
                          markeredgewidth=2, label="end-to-end median")
        line.set_gid(f"stages|{mode}|median")
        if len(x) > 8:   # many bars: one line per label, turned, so that neighbours do not overlap
            ax.set_xticks(x, [l.replace("\n", " ") for l in labels], fontsize=6.5, rotation=90)
        else:
            ax.set_xticks(x, labels, fontsize=7 if len(x) > 6 else None)
        ax.set_xlabel("context length L" + (" / decode batch b" if mode == "decode" else ""))
        ax.set_ylabel("time per call (ms, stage medians)")
        ax.set_title(f"{mode}")
        ax.legend(loc="best")
    fig.suptitle("HISA time per stage (stacked stage medians; bar = end-to-end median)" + _cpu_warning(run))
    last = hisa[(hisa["mode"] == modes[0])]
    last = last[last["length"] == last["length"].max()].iloc[0]
    shares = {n: float(last[c]) for c, n in zip(cols, stage_names) if pd.notna(last[c])}
    if shares:
        top = max(shares, key=shares.get)
        caption(fig, f"At {fmt_len(last['length'])} ({modes[0]}) the largest stage is {top} "
                     f"({100 * shares[top] / max(sum(shares.values()), 1e-12):.0f}% of the stage time): "
                     "that is where HISA's time goes.")
    footer(fig, [run])
    return fig, []


def throughput(run):
    """A grid: rows = TFLOP/s and GB/s, columns = modes; ceilings as horizontal lines in every panel
    of their unit; one legend for the figure."""
    ok = ok_rows(run)
    notes = []
    panels = [(c, u) for c, u in (("tflops", "TFLOP/s"), ("gbps", "GB/s"))
              if c in ok.columns and ok[c].notna().any()]
    if ok.empty or not panels:
        return None, [f"throughput: {run.name} has no ok rows with tflops or gbps"]
    for c in ("tflops", "gbps"):
        if c not in [p[0] for p in panels]:
            notes.append(f"throughput: {run.name} has no {c} values; those panels are left out")
    ceilings, measured = ceilings_for(run)
    if not measured and not run.on_gpu:
        # The H200 reference says nothing about a run made without a GPU, and would squash its lines.
        ceilings = []
        notes.append(f"throughput: {run.name} ran without a GPU: no ceilings drawn")
    modes = modes_of(ok[ok[[c for c, _ in panels]].notna().any(axis=1)])
    fig = new_figure()
    grid = fig.subplots(len(panels), len(modes), squeeze=False)
    backends = ok["backend"].unique()
    for row, (col, unit) in enumerate(panels):
        for ax, mode in zip(grid[row], modes):
            rows = ok[ok[col].notna() & (ok["mode"] == mode)]
            for label, backend, sub, g in series(rows, mode):
                (line,) = ax.plot(g["length"], g[col], color=backend_colour(backend, backends),
                                  marker=_MARKERS[sub % len(_MARKERS)], linestyle=_LINESTYLES[sub % len(_LINESTYLES)],
                                  label=label)
                line.set_gid(f"throughput-{col}|{mode}|{label}")
            for i, c in enumerate(x for x in ceilings if x.unit == unit):
                ax.axhline(c.value, color="black", linewidth=0.9, linestyle=_LINESTYLES[(i + 1) % len(_LINESTYLES)],
                           label=f"ceiling: {c.label}, {c.value:g} {c.unit}",
                           gid=f"ceiling-{col}|{c.label}")
            set_length_ticks(ax, rows["length"] if not rows.empty else ok["length"])
            plain_log_y(ax)
            ax.set_xlabel("context length L (tokens)")
            what = "MMA work" if col == "tflops" else "bytes moved"
            ax.set_ylabel(f"achieved {unit}\n({what} / median time)")
            ax.set_title(f"{mode}: {'compute' if col == 'tflops' else 'memory traffic'}")
    sources = sorted({c.source.replace(", measured", ",\nmeasured") for c in ceilings})
    figure_legend(fig, grid.ravel(), title=("ceilings:\n" + "\n".join(sources)) if sources else None)
    title = "Achieved throughput against the GPU's ceilings" if ceilings else "Achieved throughput (no ceilings drawn)"
    if ceilings and not measured:
        title += " (ceilings: H200 reference lines, not measured in this run"
        title += ")" if "H200" in run.gpu else f"; the run's GPU is {run.gpu})"
    fig.suptitle(title + _cpu_warning(run))
    if "tflops" in ok.columns and ok["tflops"].notna().any():
        best = ok.loc[ok["tflops"].idxmax()]
        near = max((c for c in ceilings if c.unit == "TFLOP/s"), key=lambda c: c.value, default=None)
        caption(fig, f"Highest compute rate: {best['backend']} at {fmt_len(best['length'])} ({best['mode']}), "
                     f"{fmt_num(best['tflops'], 3)} TFLOP/s" + (f" = {100 * best['tflops'] / near.value:.0f}% of the "
                                                               f"{near.label} ceiling" if near else "")
                     + "; near a ceiling, a kernel has little left to gain.")
    footer(fig, [run], "flat: flat-equivalent work; other backends: the MMA work they do (speed.csv 'flops'); "
                       "bytes: inputs read once, outputs written once")
    return fig, notes
