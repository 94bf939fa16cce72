"""Figures drawn from an iou run (layers.csv, per_query.csv, optional speed_grid.csv): IoU
distribution per layer, IoU against query position, and the (block size, blocks kept) grid as
fidelity against speedup with its Pareto front.

Trivial queries (they see at most m*B keys, so HISA equals flat by construction) are left out of
every distribution, as in the tool's own aggregates; each page says how many were left out."""
from __future__ import annotations

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib import cm
from matplotlib.colors import Normalize

from .style import backend_colour, caption, fmt_len, footer, mode_key, new_figure, normal_method  # noqa: F401

CDF_EXACT_MAX = 1000      # longer distributions are drawn through 1001 quantiles (actual data values)
POSITION_BINS = 32


def truthy(column: pd.Series) -> pd.Series:
    """The 'trivial' column as booleans, whether it was written as 0/1 or True/False."""
    if column.dtype == bool:
        return column
    return column.astype(str).str.strip().str.lower().isin(("1", "1.0", "true", "yes"))


def method_key(name):
    order = ("flat", "hisa", "block-sparse")
    n = normal_method(name)
    return (order.index(n) if n in order else len(order), n)


def _point_cols(frame):
    return ["block_size", "blocks"] + (["pooling"] if "pooling" in frame.columns else [])


def grid_points(run) -> list[tuple]:
    """The (block_size, blocks[, pooling]) points of the run, in a fixed sorted order."""
    layers = run.tables["layers"]
    cols = _point_cols(layers)
    pts = layers[cols].drop_duplicates()
    return sorted((tuple(r) for r in pts.itertuples(index=False)),
                  key=lambda p: tuple(str(x) if i == 2 else x for i, x in enumerate(p)))


def point_label(point) -> str:
    if point is None:   # layers.csv without rows: the pages pool whatever per_query.csv holds
        return "all grid points"
    text = f"B={int(point[0])}, m={int(point[1])}"
    if len(point) > 2 and str(point[2]) not in ("", "nan", "mean"):
        text += f", {point[2]}"
    return text


DEFAULT_POOLING = "mean"   # the paper's pooling, and the one the speed kernels time


def _pooling_of(point) -> str:
    return str(point[2]) if len(point) > 2 else DEFAULT_POOLING


def _speed_pooling(speed_run) -> str:
    cfg = (speed_run.meta.get("speed") or {}).get("config") if speed_run is not None else None
    return str(cfg.get("pooling", DEFAULT_POOLING)) if isinstance(cfg, dict) else DEFAULT_POOLING


def chosen_point(iou_run, speed_run=None):
    """The grid point the distribution pages show: the configuration (block size, blocks, pooling) the
    speed run timed most often when it is one of the grid's points, else the first configuration of
    iou.json, else the first point with mean pooling, else the first point."""
    points = grid_points(iou_run)
    if len(points) <= 1:
        return points[0] if points else None
    if speed_run is not None:
        hisa = speed_run.tables["speed"]
        hisa = hisa[(hisa["backend"].str.strip() == "hisa") & (hisa["status"].str.strip() == "ok")]
        if {"block_size", "blocks"} <= set(hisa.columns) and not hisa.empty:
            counts = hisa.groupby(["block_size", "blocks"]).size().sort_index()
            if not counts.empty:
                best = tuple(counts[counts == counts.max()].index[0])
                pooling = _speed_pooling(speed_run)
                for p in points:
                    if (p[0], p[1]) == best and _pooling_of(p) == pooling:
                        return p
    meta = iou_run.meta.get("iou", {})
    runs = meta.get("runs") if isinstance(meta.get("runs"), list) else [meta]
    cfg = runs[0].get("config") if runs and isinstance(runs[0], dict) else None
    if isinstance(cfg, dict):
        for p in points:
            try:
                same = (p[0], p[1]) == (float(cfg.get("block_size")), float(cfg.get("blocks")))
            except (TypeError, ValueError):
                break
            if same and _pooling_of(p) == str(cfg.get("pooling", _pooling_of(p))):
                return p
    for p in points:
        if _pooling_of(p) == DEFAULT_POOLING:
            return p
    return points[0]


def _select(frame, point):
    mask = pd.Series(True, index=frame.index)
    for col, value in zip(_point_cols(frame), point):
        mask &= frame[col] == value
    return frame[mask]


def layer_order(run) -> list[str]:
    """Layers in the order the tool wrote them (model order), first appearance in layers.csv."""
    seen = {}
    for name in list(run.tables["layers"]["layer"]) + list(run.tables["per_query"]["layer"]):
        seen.setdefault(str(name), None)
    return list(seen)


def _nontrivial(frame):
    if "trivial" in frame.columns:
        return frame[~truthy(frame["trivial"])]
    return frame


def cdf_points(values: np.ndarray):
    """(x, y) of the empirical CDF: exact for short samples, else 1001 quantiles of the data."""
    values = np.sort(np.asarray(values, dtype=float))
    n = len(values)
    if n <= CDF_EXACT_MAX:
        return values, np.arange(1, n + 1) / n
    probs = np.linspace(0.0, 1.0, 1001)[1:]
    return np.quantile(values, probs, method="inverted_cdf"), probs


def iou_layers(run, speed_run=None):
    pq = run.tables["per_query"]
    if pq.empty:
        return None, [f"IoU per layer: {run.name}/per_query.csv has no rows"]
    point = chosen_point(run, speed_run)
    rows = _select(pq, point) if point is not None else pq
    kept = _nontrivial(rows)
    methods = sorted(kept["method"].astype(str).unique(), key=method_key)
    if kept.empty or not methods:
        return None, [f"IoU per layer: {run.name} has only trivial queries at {point_label(point)}"]
    layers = [l for l in layer_order(run) if (kept["layer"].astype(str) == l).any()]
    fig = new_figure()
    axes = fig.subplots(1, len(methods), squeeze=False, sharey=True)[0]
    norm = Normalize(vmin=0, vmax=max(len(layers) - 1, 1))
    cmap = matplotlib.colormaps["viridis"]
    for ax, method in zip(axes, methods):
        mrows = kept[kept["method"].astype(str) == method]
        for i, layer in enumerate(layers):
            vals = mrows.loc[mrows["layer"].astype(str) == layer, "iou"].dropna().to_numpy()
            if len(vals) == 0:
                continue
            x, y = cdf_points(vals)
            (line,) = ax.plot(x, y, drawstyle="steps-post", color=cmap(norm(i)), linewidth=1.0,
                              label=(f"layer {layer}" if layer.isdigit() else layer) if len(layers) <= 12 else None)
            line.set_gid(f"iou-cdf|{normal_method(method)}|{layer}")
        x, y = cdf_points(mrows["iou"].dropna().to_numpy())
        (line,) = ax.plot(x, y, drawstyle="steps-post", color="black", linestyle="--", linewidth=1.4,
                          label="all layers")
        line.set_gid(f"iou-cdf|{normal_method(method)}|all")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("IoU with the flat top-k selection (per query)")
        ax.set_ylabel("share of queries with IoU <= x (CDF)")
        n_q = len(mrows)
        ax.set_title(f"{normal_method(method)}: {n_q} non-trivial queries, {len(layers)} layers")
        ax.legend(loc="upper left", fontsize=6.5)
    if len(layers) > 12:
        fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="layer (index in model order)")
    n_trivial = len(rows) - len(kept)
    fig.suptitle(f"IoU distribution per layer at {point_label(point)}, {source_label(run)}\n"
                 f"({n_trivial} trivial query rows left out: HISA equals flat there)")
    parts = []
    for method in methods:
        mrows = kept[kept["method"].astype(str) == method]
        by_layer = mrows.groupby(mrows["layer"].astype(str))["iou"].mean()
        parts.append(f"{normal_method(method)} median IoU {mrows['iou'].median():.2f} (worst layer "
                     f"{by_layer.idxmin()}: mean {by_layer.min():.2f})")
    caption(fig, "; ".join(parts) + ". A curve further right keeps more of flat's selection.")
    footer(fig, [run])
    return fig, []


def binned_position(frame, bins=POSITION_BINS):
    """Equal-width bins over query position: (centres, mean, p5, p95, count) of IoU per bin, empty
    bins dropped. Bin i holds positions in [edge_i, edge_i+1), the last bin also its right edge."""
    pos = frame["q_pos"].to_numpy(dtype=float)
    iou = frame["iou"].to_numpy(dtype=float)
    lo, hi = float(pos.min()), float(pos.max())
    nb = max(1, min(bins, len(np.unique(pos))))
    edges = np.linspace(lo, hi, nb + 1) if hi > lo else np.array([lo, lo + 1.0])
    idx = np.clip(np.searchsorted(edges, pos, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        v = iou[idx == b]
        if len(v):
            out.append(((edges[b] + edges[b + 1]) / 2, v.mean(), np.percentile(v, 5), np.percentile(v, 95), len(v)))
    return np.array(out).T if out else np.empty((5, 0))


def iou_position(run, speed_run=None):
    pq = run.tables["per_query"]
    if pq.empty:
        return None, [f"IoU by position: {run.name}/per_query.csv has no rows"]
    point = chosen_point(run, speed_run)
    rows = _select(pq, point) if point is not None else pq
    kept = _nontrivial(rows).dropna(subset=["q_pos", "iou"])
    methods = sorted(kept["method"].astype(str).unique(), key=method_key)
    if kept.empty:
        return None, [f"IoU by position: {run.name} has only trivial queries at {point_label(point)}"]
    fig = new_figure()
    ax = fig.subplots()
    for method in methods:
        m = kept[kept["method"].astype(str) == method]
        centres, mean, p5, p95, _ = binned_position(m)
        colour = backend_colour(method, methods)
        (line,) = ax.plot(centres, mean, color=colour, marker="o", markersize=3,
                          label=f"{normal_method(method)}: mean per bin")
        line.set_gid(f"iou-position|{normal_method(method)}|mean")
        ax.fill_between(centres, p5, p95, color=colour, alpha=0.18, linewidth=0,
                        label=f"{normal_method(method)}: p5-p95 per bin")
    ax.xaxis.set_major_formatter(lambda v, _pos: fmt_len(v) if v >= 1024 and v % 1024 == 0 else f"{v:g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"query position (tokens; up to {POSITION_BINS} equal-width bins, all layers pooled)")
    ax.set_ylabel("IoU with the flat top-k selection")
    ax.legend(loc="lower left")
    fig.suptitle(f"IoU against query position at {point_label(point)}, {source_label(run)}\n"
                 f"({len(rows) - len(_nontrivial(rows))} trivial query rows left out)")
    parts = []
    for method in methods:
        m = kept[kept["method"].astype(str) == method]
        cut = m["q_pos"].quantile(0.5)
        early, late = m.loc[m["q_pos"] <= cut, "iou"].mean(), m.loc[m["q_pos"] > cut, "iou"].mean()
        if late == late:
            parts.append(f"{normal_method(method)} {early:.2f} in the first half of positions, {late:.2f} in the second")
    caption(fig, "Mean IoU: " + "; ".join(parts) + " (later queries see more keys, so more can differ)."
            if parts else "IoU by query position.")
    footer(fig, [run])
    return fig, []


def fidelity_by_point(run) -> pd.DataFrame:
    """Per grid point: HISA fidelity = mean over layers of layers.csv iou_mean."""
    layers = run.tables["layers"]
    hisa = layers[layers["method"].map(normal_method) == "hisa"].dropna(subset=["iou_mean"])
    cols = _point_cols(layers)
    if hisa.empty:
        return pd.DataFrame(columns=cols + ["fidelity"])
    fid = hisa.groupby(cols, sort=True, dropna=False)["iou_mean"].mean().reset_index()
    return fid.rename(columns={"iou_mean": "fidelity"})


def _point(fid, row) -> tuple:
    return tuple(getattr(row, c) for c in _point_cols(fid))


def speedup_by_point(iou_run, speed_run, fid: pd.DataFrame):
    """Speedup for each grid point, and where it came from: speed_grid.csv of the iou run, else the
    speed run's hisa rows of the same (block_size, blocks) at one (mode, length) shared by as many
    points as possible. A timing covers only the pooling it ran with (speed_grid.csv's pooling
    column, the speed run's config, else mean pooling): other poolings get none.
    Returns (series aligned with fid, source text or None, notes)."""
    notes = []
    grid = iou_run.tables.get("speed_grid")
    if grid is not None and not grid.empty:
        g = grid.dropna(subset=["speedup"])
        if g.duplicated(["block_size", "blocks"]).any():
            notes.append(f"grid: {iou_run.name}/speed_grid.csv has several rows per point; their median is used")
        keys = ["block_size", "blocks"] + (["pooling"] if "pooling" in g.columns else [])
        med = g.groupby(keys)["speedup"].median()
        values = [med.get(tuple(getattr(r, k) for k in keys), np.nan)
                  if "pooling" in keys or _pooling_of(_point(fid, r)) == DEFAULT_POOLING else np.nan
                  for r in fid.itertuples()]
        return pd.Series(values, index=fid.index, dtype=float), f"{iou_run.name}/speed_grid.csv", notes
    if speed_run is None:
        return pd.Series(np.nan, index=fid.index), None, notes
    rows = speed_run.tables["speed"]
    if not {"block_size", "blocks", "speedup"} <= set(rows.columns):
        return pd.Series(np.nan, index=fid.index), None, notes
    hisa = rows[(rows["backend"].str.strip() == "hisa") & (rows["status"].str.strip() == "ok")
                & rows["speedup"].notna()].copy()
    hisa["mode"] = hisa["mode"].str.strip()
    if "batch" in hisa.columns:
        # Decode rows of one length differ by batch: compare configurations at the smallest batch.
        hisa = hisa[hisa["batch"] == hisa.groupby(["mode", "length"])["batch"].transform("min")]
    wanted = {(r.block_size, r.blocks) for r in fid.itertuples()}
    hisa = hisa[[(b, m) in wanted for b, m in zip(hisa["block_size"], hisa["blocks"])]]
    if hisa.empty:
        return pd.Series(np.nan, index=fid.index), None, notes
    counts = hisa.groupby(["mode", "length"]).apply(
        lambda g: g[["block_size", "blocks"]].drop_duplicates().shape[0], include_groups=False)
    best = sorted(counts.items(), key=lambda kv: (-kv[1], mode_key(kv[0][0]), -kv[0][1]))[0][0]
    at = hisa[(hisa["mode"] == best[0]) & (hisa["length"] == best[1])]
    med = at.groupby(["block_size", "blocks"])["speedup"].median()
    pooling = _speed_pooling(speed_run)
    values = [med.get((r.block_size, r.blocks), np.nan) if _pooling_of(_point(fid, r)) == pooling else np.nan
              for r in fid.itertuples()]
    source = f"{speed_run.name}, {best[0]} mode at L={fmt_len(best[1])}"
    return pd.Series(values, index=fid.index, dtype=float), source, notes


def pareto_mask(speed: np.ndarray, fidelity: np.ndarray) -> np.ndarray:
    """Points no other point beats on both axes (at least as good on both, better on one)."""
    n = len(speed)
    front = np.ones(n, dtype=bool)
    for i in range(n):
        better_eq = (speed >= speed[i]) & (fidelity >= fidelity[i])
        strictly = (speed > speed[i]) | (fidelity > fidelity[i])
        if np.any(better_eq & strictly):
            front[i] = False
    return front


def source_label(run) -> str:
    """What tensors an iou run measured, from its config: captured model tensors or a synthetic dump."""
    meta = run.meta.get("iou", {})
    entries = meta.get("runs") if isinstance(meta.get("runs"), list) else [meta]
    cfg = entries[0].get("config") if entries and isinstance(entries[0], dict) else None
    if not isinstance(cfg, dict):
        return "dump of unknown origin"
    dump = str(cfg.get("dump") or "?").replace("\\", "/").rsplit("/", 1)[-1]
    if str(cfg.get("source")) == "synthetic":
        return f"synthetic dump {dump}"
    if cfg.get("source") == "real" or cfg.get("model"):
        return f"captured {cfg.get('model') or 'model'} tensors ({dump})"
    return f"dump {dump}"


def _topk_of(run):
    meta = run.meta.get("iou", {})
    entries = meta.get("runs") if isinstance(meta.get("runs"), list) else [meta]
    cfg = entries[0].get("config") if entries and isinstance(entries[0], dict) else None
    return cfg.get("topk") if isinstance(cfg, dict) else None


def is_synthetic(run) -> bool:
    return source_label(run).startswith("synthetic")


def _grid_command(run) -> str:
    meta = run.meta.get("iou", {})
    entries = meta.get("runs") if isinstance(meta.get("runs"), list) else [meta]
    cfg = entries[0].get("config") if entries and isinstance(entries[0], dict) else {}
    cfg = cfg if isinstance(cfg, dict) else {}
    topk = int(cfg.get("topk") or 2048)
    b = max(32, topk // 16)
    m = max(2, topk // (b // 2))    # covers top-k at the smallest block size
    return (f"hisa-bench iou --dump {cfg.get('dump') or 'DUMP'} --topk {topk} --block-size {b // 2},{b},{b * 2} "
            f"--blocks {m},{2 * m},{4 * m}")


def _draw_grid(ax, run, speed_run):
    """One (B, m) grid on ax: fidelity against speedup with its Pareto front when at least two points
    were timed, else fidelity against blocks kept (one line per B) with the speedups that exist
    written beside their points. Returns (runs drawn from, notes, caption text)."""
    fid = fidelity_by_point(run)
    speed, source, notes = speedup_by_point(run, speed_run, fid)
    fid = fid.assign(speedup=speed.to_numpy())
    have = fid.dropna(subset=["speedup"])
    from_speed_run = source is not None and speed_run is not None and source.startswith(speed_run.name)
    runs = [run] + ([speed_run] if from_speed_run else [])
    best = fid.sort_values("fidelity", ascending=False, kind="stable").iloc[0]
    worst = fid.sort_values("fidelity", kind="stable").iloc[0]
    what = (f"{'synthetic' if is_synthetic(run) else 'captured'}: IoU {best['fidelity']:.2f} at "
            f"{point_label(_point(fid, best))} down to {worst['fidelity']:.2f} at {point_label(_point(fid, worst))}")
    topk = _topk_of(run)
    ax.set_title(source_label(run) + (f", top-k {topk}" if topk else ""), fontsize=9)
    ax.set_ylabel("HISA IoU with flat (mean over layers of the per-layer mean)")
    if len(have) < 2:
        if have.empty:
            notes.append(f"grid: {run.name}: no speedup measured for its grid points (no speed_grid.csv, no "
                         "matching speed run rows): fidelity alone is drawn")
        cols = ["block_size"] + (["pooling"] if "pooling" in fid.columns and fid["pooling"].nunique() > 1 else [])
        for key, part in fid.groupby(cols, sort=True):
            key = key if isinstance(key, tuple) else (key,)
            label = f"B={int(key[0])}" + (f", {key[1]} pooling" if len(key) > 1 else "")
            part = part.sort_values("blocks")
            (line,) = ax.plot(part["blocks"], part["fidelity"], marker="o", label=label)
            line.set_gid(f"grid-fidelity|{label}")
            for r in part.dropna(subset=["speedup"]).itertuples():
                ax.annotate(f"{r.speedup:.2g}x faster ({source.split(', ', 1)[-1]})", (r.blocks, r.fidelity), textcoords="offset points",
                            xytext=(5, -10), fontsize=7)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(sorted(fid["blocks"].unique())))
        ax.xaxis.set_major_formatter("{x:g}")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("blocks kept m (more blocks: closer to flat, more work)")
        ax.legend(loc="lower right", title="block size", fontsize=7)
        ax.margins(x=0.08, y=0.1)
        return runs, notes, what
    missing = fid[fid["speedup"].isna()]
    if not missing.empty:
        notes.append("grid: no speedup for " + "; ".join(point_label(tuple(r)) for r in
                                                         missing[_point_cols(fid)].itertuples(index=False)))
    sp = have["speedup"].to_numpy(dtype=float)
    fy = have["fidelity"].to_numpy(dtype=float)
    front = pareto_mask(sp, fy)
    (pts,) = ax.plot(sp, fy, linestyle="none", marker="o", color="#1f77b4", label="grid point")
    pts.set_gid("grid|points")
    order = np.argsort(sp[front], kind="stable")
    (fr,) = ax.plot(sp[front][order], fy[front][order], color="#d62728", marker="*", markersize=11,
                    linestyle="--", label="Pareto front (no other point is both faster and more faithful)")
    fr.set_gid("grid|front")
    for (label, x, y) in zip([point_label(tuple(r)) for r in have[_point_cols(fid)].itertuples(index=False)], sp, fy):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8, label="1x = flat indexer speed")
    ax.margins(x=0.12, y=0.08)   # room for the point labels
    ax.set_xscale("log", base=2)
    ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if min(sp.min(), 1) / 1.5 <= t <= sp.max() * 1.5]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter("{x:g}x")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"HISA speedup over flat (from {source})")
    ax.legend(loc="lower left", fontsize=7)
    return runs, notes, what


def grid_pareto(run, speed_run=None, others=()):
    """The (B, m) grid page. A run with one grid point has no grid to draw: the page is left to a run
    that has one, and the note says which command would fill it. When another iou run measured a grid
    on the other kind of tensors (captured vs synthetic), it is drawn beside, labelled."""
    fid = fidelity_by_point(run)
    if fid.empty:
        return None, [f"grid: {run.name}/layers.csv has no hisa rows"]
    if len(fid) < 2:
        return None, [f"grid: {run.name} measured one (B, m) point; a grid run fills this page, e.g. "
                      f"`{_grid_command(run)}`"]
    companion = next((o for o in others if is_synthetic(o) != is_synthetic(run) and len(fidelity_by_point(o)) >= 2),
                     None)
    panels = [run] + ([companion] if companion is not None else [])
    if companion is not None and is_synthetic(run):
        panels.reverse()     # captured tensors first
    fig = new_figure()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    runs, notes, whats = [], [], []
    for ax, r in zip(axes, panels):
        used, n, what = _draw_grid(ax, r, speed_run)
        runs += [u for u in used if u not in runs]
        notes += n
        whats.append(what)
    fig.suptitle("HISA fidelity over the (block size B, blocks kept m) grid; up (and right) is better")
    caption(fig, "More blocks kept buy fidelity: " + "; ".join(whats) + ".")
    footer(fig, runs)
    fig.hisa_bench_runs = runs     # the summary lists every run a page drew from
    return fig, notes
