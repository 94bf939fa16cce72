"""Report pages of `hisa-bench quality` runs (and of iou runs measured with --stage1): does the
selection matter?

  quality_ppl_k    perplexity against top-k per method (dense as a line), from the newest quality
                   run that holds two or more k
  quality_layers   per-layer perplexity change (one sparse layer at a time) against that layer's
                   mean IoU with flat: does IoU predict harm? (Spearman rank correlation on the page)
  quality_stage1   stage-1 rules side by side: IoU and score recall (iou run) and perplexity
                   (quality run), the winner named

Self-contained: it finds quality-* folders itself (they are not one of loading.KINDS), reads files
only, and leaves every other page alone. Without quality runs it adds nothing."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import HisaBenchError
from .style import backend_colour, footer, new_figure
from .loading import gpu_label

QUALITY_NAME = re.compile(r"^quality-(\d{8}-\d{6})(?:-(.+))?$")
ORACLE = "oracle"      # a ceiling, never the winner


@dataclass
class QualityRun:
    path: Path
    env: dict
    meta: dict
    rows: pd.DataFrame
    layers: pd.DataFrame
    layer_ppl: pd.DataFrame | None
    missing: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def gpu(self) -> str:
        return gpu_label(self.env)

    @property
    def where(self) -> str:
        """'CPU' or the GPU's name, and the context: every figure says where it was measured."""
        ctx = (self.meta.get("config") or {}).get("context")
        dev = "CPU" if (self.meta.get("config") or {}).get("device") != "cuda" else self.gpu
        return f"{dev}, context {ctx}"


def is_quality_dir(path) -> bool:
    p = Path(path)
    return bool(QUALITY_NAME.match(p.name)) or (p / "quality.json").is_file()


def split_dirs(run_dirs):
    """(quality folders, the other folders) of the folders named on the command line."""
    quality = [Path(p) for p in run_dirs if is_quality_dir(p)]
    return quality, [p for p in run_dirs if not is_quality_dir(p)]


def _read(path: Path, what: str):
    if not path.is_file():
        raise HisaBenchError(f"missing result file {path}")
    try:
        return json.loads(path.read_text()) if what == "json" else pd.read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise HisaBenchError(f"corrupt {what.upper()} {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def load_quality(path) -> QualityRun:
    path = Path(path)
    if not path.is_dir():
        raise HisaBenchError(f"quality run folder {path} does not exist")
    env, meta = _read(path / "env.json", "json"), _read(path / "quality.json", "json")
    rows, layers = _read(path / "quality.csv", "csv"), _read(path / "layers.csv", "csv")
    for col in ("method", "topk", "ppl"):
        if col not in rows.columns:
            raise HisaBenchError(f"{path / 'quality.csv'} lacks the column {col} (see docs/results-format.md)")
    lp = _read(path / "layer_ppl.csv", "csv") if (path / "layer_ppl.csv").is_file() else None
    return QualityRun(path, env if isinstance(env, dict) else {}, meta if isinstance(meta, dict) else {},
                      rows, layers, lp)


def find_runs(runs_dir, explicit=()) -> tuple[list, list]:
    """(quality runs newest first, iou run folders newest first) to draw from: the named quality
    folders, else every quality-* folder under runs_dir."""
    if explicit:
        quality = [Path(p) for p in explicit]
        ious = []
    else:
        d = Path(runs_dir)
        entries = sorted(d.iterdir()) if d.is_dir() else []
        quality = [p for p in entries if p.is_dir() and QUALITY_NAME.match(p.name)]
        ious = [p for p in entries if p.is_dir() and re.match(r"^iou-\d{8}-\d{6}", p.name)]
    key = lambda p: (QUALITY_NAME.match(p.name) or re.match(r"^\w+-(\d{8}-\d{6})", p.name)).group(1)  # noqa: E731
    quality = sorted(quality, key=lambda p: (key(p) if QUALITY_NAME.match(p.name) else "", p.name), reverse=True)
    ious = sorted(ious, key=lambda p: (key(p), p.name), reverse=True)
    return [load_quality(p) for p in quality], ious


def has_stage1_variants(iou_dir) -> bool:
    """An iou run measured with --stage1 rules besides the paper's (methods 'hisa/<rule>')."""
    try:
        methods = pd.read_csv(Path(iou_dir) / "layers.csv", usecols=["method"])["method"].astype(str)
    except (OSError, ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False
    return bool(methods.str.contains("/").any())


def demote_stage1_iou(candidates: dict) -> dict:
    """kind -> [Run, ...] newest first, with the iou runs measured with stage-1 variants moved behind
    the others: the IoU pages draw one panel per method, and a stage-1 comparison (drawn on the
    quality_stage1 page) would crowd them. Such a run still serves when it is the only one."""
    out = dict(candidates)
    iou = out.get("iou")
    if isinstance(iou, (list, tuple)):
        out["iou"] = sorted(iou, key=lambda r: has_stage1_variants(r.path))     # stable: newest first within
    return out


def _stage1(frame: pd.DataFrame) -> pd.Series:
    return frame["stage1"].fillna("relu").astype(str) if "stage1" in frame.columns else pd.Series("relu", index=frame.index)


# ------------------------------------------------------------------------------- perplexity vs k
def ppl_vs_k(run: QualityRun):
    rows = run.rows
    sparse = rows[rows["method"] != "dense"]
    if sparse["topk"].nunique() < 2:
        return None
    fig = new_figure()
    ax = fig.subplots()
    dense = rows.loc[rows["method"] == "dense", "ppl"]
    if len(dense):
        ax.axhline(float(dense.iloc[0]), color="black", linestyle="--", linewidth=1.2,
                   label=f"dense {float(dense.iloc[0]):.3f}")
    st = _stage1(sparse)
    relu = sparse[st == "relu"]
    series = []
    for method in ("flat", "hisa", "block-sparse"):
        m = relu[relu["method"] == method]
        if m.empty:
            continue
        if method == "flat":
            series.append(("flat", m))
        elif method == "hisa":
            # one line per m*B/k ratio and B: the same candidate budget relative to k
            ratio = (m["blocks"] * m["block_size"] / m["topk"]).round(2)
            for (b, r), grp in m.assign(_r=ratio).groupby(["block_size", "_r"]):
                series.append((f"hisa B={int(b)} m*B={r:g}k", grp))
        else:
            for b, grp in m.groupby("block_size"):
                series.append((f"block-sparse B={int(b)}", grp))
    markers = {"flat": "o", "hisa": "s", "block-sparse": "^"}
    shade = {}
    for label, grp in series:
        base = label.split()[0]
        shade[base] = shade.get(base, 0) + 1
        g = grp.sort_values("topk")
        (line,) = ax.plot(g["topk"], g["ppl"], marker=markers[base], label=label,
                          color=backend_colour(base), alpha=max(0.35, 1.0 - 0.25 * (shade[base] - 1)))
        line.set_gid(f"quality-ppl|{label}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("top-k (keys each query attends to)")
    ax.set_ylabel("perplexity (log scale)")
    ax.legend(fontsize=7)
    ax.set_title(f"Perplexity of {run.meta.get('model', {}).get('model', 'the model')} with every chosen layer "
                 f"attending only to its selection ({run.where})")
    footer(fig, [run])
    return fig


# ------------------------------------------------------------------------------- per layer
def spearman(x, y) -> float | None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return None
    rx, ry = pd.Series(x[ok]).rank().to_numpy(), pd.Series(y[ok]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def per_layer(run: QualityRun):
    lp = run.layer_ppl
    if lp is None or lp.empty:
        return None
    fig = new_figure()
    ax1, ax2 = fig.subplots(1, 2)
    texts = []
    for label, grp in lp.groupby("label", sort=False):
        method = str(grp["method"].iloc[0])
        colour = backend_colour(method, lp["method"].unique())
        g = grp.sort_values("layer")
        ax2.plot(g["layer"], g["d_dense_pct"], marker="o", markersize=3, label=label, color=colour)
        iou = g["iou_mean"] if "iou_mean" in g.columns else pd.Series(dtype=float)
        if iou.notna().sum() >= 1:
            pts = ax1.scatter(g["iou_mean"], g["d_dense_pct"], color=colour, label=label, s=18)
            pts.set_gid(f"quality-layers|{label}")
            for _, r in g.iterrows():
                ax1.annotate(str(int(r["layer"])), (r["iou_mean"], r["d_dense_pct"]), fontsize=6,
                             xytext=(2, 2), textcoords="offset points")
            rho = spearman(g["iou_mean"], g["d_dense_pct"])
            rho_err = spearman(g["attn_rel_err"], g["d_dense_pct"]) if "attn_rel_err" in g.columns else None
            texts.append(f"{label}: Spearman(IoU, harm) = {'-' if rho is None else f'{rho:+.2f}'}, "
                         f"Spearman(attention error, harm) = {'-' if rho_err is None else f'{rho_err:+.2f}'}")
    ax1.set_xlabel("layer's mean IoU with the flat selection (non-trivial queries)")
    ax1.set_ylabel("perplexity change vs dense, only this layer sparse (%)")
    ax1.set_title("Does IoU predict harm? (numbers: layer)")
    ax1.legend(fontsize=7)
    ax2.axhline(0, color="black", linewidth=0.8)
    ax2.set_xlabel("layer")
    ax2.set_ylabel("perplexity change vs dense (%)")
    ax2.set_title("Harm of one sparse layer, by layer")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Per-layer perplexity change ({run.where})\n" + "\n".join(texts), fontsize=9)
    footer(fig, [run])
    return fig


# ------------------------------------------------------------------------------- stage-1 rules
def _iou_topk(d: Path):
    try:
        obj = json.loads((d / "iou.json").read_text())
        cfg = (obj.get("runs") or [obj])[0].get("config", {})
        return float(cfg["topk"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def _iou_stage1(iou_dirs, ratio=None):
    """{rule: (iou_mean, score_recall_mean)} of HISA in the newest iou run measured with several
    stage-1 rules (methods hisa/<rule>), at the grid point whose m*B/k is nearest `ratio` (the
    quality run's candidate budget; the first point when not given); and the run's name and config."""
    for d in iou_dirs:
        f = Path(d) / "layers.csv"
        if not f.is_file():
            continue
        try:
            layers = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        hisa = layers[layers["method"].astype(str).str.match(r"^hisa(/|$)")]
        if hisa["method"].nunique() < 2:
            continue
        pts = hisa[["block_size", "blocks"]].drop_duplicates().itertuples(index=False)
        pts = [tuple(int(x) for x in p) for p in pts]
        topk = _iou_topk(Path(d))
        at = pts[0]
        if ratio is not None and topk:
            at = min(pts, key=lambda p: (abs(p[0] * p[1] / topk - ratio), pts.index(p)))
        sel = hisa[(hisa["block_size"] == at[0]) & (hisa["blocks"] == at[1])]
        if "pooling" in sel.columns:
            sel = sel[sel["pooling"].astype(str) == "mean"]
        out = {}
        for method, grp in sel.groupby("method", sort=False):
            rule = method.split("/", 1)[1] if "/" in method else "relu"
            # pooled over layers, weighted by non-trivial queries, as iou's 'overall'
            n = (grp["queries"] - grp["trivial"]).clip(lower=0)
            wsum = float(n.sum()) or 1.0
            out[rule] = (float((grp["iou_mean"] * n).sum() / wsum), float((grp["score_recall_mean"] * n).sum() / wsum))
        env = {}
        try:
            env = json.loads((Path(d) / "env.json").read_text())
        except (OSError, ValueError):
            pass
        return out, Path(d).name, at, env
    return {}, None, None, {}


def stage1_page(quality_runs, iou_dirs):
    """Rules side by side; None when neither a quality run nor an iou run compares rules."""
    qrun = next((r for r in quality_runs if _stage1(r.rows[r.rows["method"] == "hisa"]).nunique() >= 2), None)
    ppl, flat_ppl, hisa_point = {}, None, None
    if qrun is not None:
        h = qrun.rows[qrun.rows["method"] == "hisa"]
        first = h.iloc[0]
        hisa_point = (int(first["topk"]), int(first["block_size"]), int(first["blocks"]))
        h = h[(h["topk"] == first["topk"]) & (h["block_size"] == first["block_size"]) & (h["blocks"] == first["blocks"])]
        for _, r in h.iterrows():
            ppl[str(r["stage1"]) if pd.notna(r["stage1"]) else "relu"] = float(r["ppl"])
        f = qrun.rows[(qrun.rows["method"] == "flat") & (qrun.rows["topk"] == first["topk"])]
        flat_ppl = float(f["ppl"].iloc[0]) if len(f) else None
    ratio = hisa_point[1] * hisa_point[2] / hisa_point[0] if hisa_point else None
    iou, iou_name, iou_point, iou_env = _iou_stage1(iou_dirs, ratio)
    if not ppl and not iou:
        return None, []
    rules = list(dict.fromkeys(list(iou) + list(ppl)))
    fig = new_figure()
    axes = fig.subplots(1, 3)
    x = np.arange(len(rules))
    colours = ["#7f7f7f" if r == ORACLE else ("#d62728" if r == "relu" else "#1f77b4") for r in rules]
    panels = [
        ("mean IoU with flat", [iou.get(r, (np.nan, np.nan))[0] for r in rules], iou_name),
        ("score recall", [iou.get(r, (np.nan, np.nan))[1] for r in rules], iou_name),
        ("perplexity", [ppl.get(r, np.nan) for r in rules], qrun.name if qrun else None),
    ]
    for ax, (title, vals, src) in zip(axes, panels):
        bars = ax.bar(x, vals, color=colours)
        for b, r in zip(bars, rules):
            b.set_gid(f"quality-stage1|{title}|{r}")
        ax.set_xticks(x, rules, rotation=35, ha="right", fontsize=7)
        finite = [v for v in vals if np.isfinite(v)]
        if title == "perplexity" and flat_ppl is not None and finite:
            finite.append(flat_ppl)          # the flat line must be on the page
        if finite:
            lo, hi = min(finite), max(finite)
            pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 0.05
            ax.set_ylim(lo - pad, hi + pad)
        for xi, v in zip(x, vals):
            if np.isfinite(v):
                ax.annotate(f"{v:.3f}", (xi, v), ha="center", va="bottom", fontsize=6.5)
        if title == "perplexity" and flat_ppl is not None:
            ax.axhline(flat_ppl, color=backend_colour("flat"), linestyle="--", linewidth=1, label=f"flat {flat_ppl:.3f}")
            ax.legend(fontsize=7)
        ax.set_title(f"{title}" + ("" if src else " (no run)"))
    lines = []
    cands = [r for r in rules if r != ORACLE]
    if ppl:
        best = min((r for r in cands if r in ppl), key=lambda r: ppl[r])
        base = ppl.get("relu")
        gap = None
        if base is not None and flat_ppl is not None and base != flat_ppl:
            gap = (base - ppl[best]) / (base - flat_ppl)
        lines.append(f"perplexity winner: {best} ({ppl[best]:.3f} vs the paper's relu {base if base is None else f'{base:.3f}'}"
                     + (f", flat {flat_ppl:.3f}; closes {100 * gap:.0f}% of HISA's gap to flat" if gap is not None else "")
                     + f") at k={hisa_point[0]} B={hisa_point[1]} m={hisa_point[2]}, {qrun.where}")
    if iou:
        best = max((r for r in cands if r in iou), key=lambda r: iou[r][0])
        base = iou.get("relu", (None,))[0]
        lines.append(f"IoU winner: {best} ({iou[best][0]:.3f}, " + (f"{iou[best][0] - base:+.3f} over relu" if base is not None else "")
                     + (f"; the oracle ceiling is {iou[ORACLE][0]:.3f}" if ORACLE in iou else "")
                     + f") at B={iou_point[0]} m={iou_point[1]}, {iou_name}")
    fig.suptitle("Stage-1 rules side by side (red: the paper's rule; grey: the oracle, a ceiling that needs every "
                 "flat score)\n" + "\n".join(lines), fontsize=9)

    class _Src:   # the footer wants name, env and gpu
        def __init__(self, name, env):
            self.name, self.env = name, env
            gpu = env.get("gpu")
            self.gpu = gpu["name"] if isinstance(gpu, dict) and gpu.get("name") else f"no GPU ({env.get('device') or 'cpu'})"

    srcs = ([qrun] if qrun else []) + ([_Src(iou_name, iou_env)] if iou_name else [])
    footer(fig, srcs)
    return fig, []


def quality_pages(runs_dir, explicit=(), iou_dirs=()) -> tuple[list, list]:
    """[(page name, figure)] and notes. explicit: quality folders named on the command line."""
    runs, ious = find_runs(runs_dir, explicit)
    ious = [Path(p) for p in iou_dirs] or ious
    if not runs and not ious:
        return [], []
    pages, notes = [], []
    grid = next((r for r in runs if r.rows.loc[r.rows["method"] != "dense", "topk"].nunique() >= 2), None)
    if grid is not None:
        pages.append(("quality_ppl_k", ppl_vs_k(grid)))
    elif runs:
        notes.append("quality: no run holds two or more top-k values: perplexity against k not drawn")
    layered = next((r for r in runs if r.layer_ppl is not None and not r.layer_ppl.empty), None)
    if layered is not None:
        pages.append(("quality_layers", per_layer(layered)))
    elif runs:
        notes.append("quality: no run with --per-layer: per-layer perplexity against IoU not drawn")
    fig, why = stage1_page(runs, ious)
    notes += why
    if fig is not None:
        pages.append(("quality_stage1", fig))
    return pages, notes
