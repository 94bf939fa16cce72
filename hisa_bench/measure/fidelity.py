"""How faithful HISA and block-sparse selections are to the flat indexer, per query and per layer.

Follows docs/semantics.md ("Fidelity metrics"): per query F is the flat top-k and
S an approximate selection, both over the keys the query sees (ks..ke-1; plain causal dumps:
0..q_pos inclusive).

  iou           |F n S| / |F u S|
  recall        |F n S| / |F|
  score_recall  sum of I over S / sum of I over F (1.0 for any exact top-k, ties or not;
                1.0 when the flat sum is exactly 0, since then nothing was lost)
  topR_recall   share of the R best flat keys that S kept, R = 1, 16, 128
  trivial       the query sees at most m*B keys: HISA equals flat by construction. Counted,
                left out of every aggregate (for block-sparse too, so both methods are
                averaged over the same queries).

Flat scores are computed once per layer in float64 (kernels.flat_scores_naive.flat_scores_ref)
and every grid point (block size, blocks, pooling) reuses them; selections are exact top-k masks
with a fixed tie rule (measure/select.py), equal to kernels.hisa_naive with tie rule 'low'.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import HisaBenchError
from .pooling import check_pooling, kept_blocks
from .select import TIE_RULES, first_n_mask, topk_mask
from .stage1 import DEFAULT_STAGE1, Stage1Scorer, check_stage1, select_masks, split_label

METHODS = ("hisa", "block-sparse")
TOP_R = (1, 16, 128)
METRICS = ["iou", "recall", "score_recall"] + [f"top{r}_recall" for r in TOP_R]
STAT_KEYS = ["iou_mean", "iou_p1", "iou_p5", "iou_min", "recall_mean", "score_recall_mean"] + \
            [f"top{r}_recall" for r in TOP_R]
PER_QUERY_COLUMNS = ["block_size", "blocks", "pooling", "method", "layer", "query", "q_pos", "visible",
                     "trivial"] + METRICS
LAYER_COLUMNS = ["block_size", "blocks", "pooling", "method", "layer", "queries", "trivial"] + STAT_KEYS


def json_key(method: str) -> str:
    return method.replace("-", "_")


@dataclass(frozen=True)
class GridPoint:
    block_size: int
    blocks: int
    pooling: str

    def block_sparse_blocks(self, topk: int) -> int:
        # the paper's lower bound keeps as many blocks as fit in the top-k budget
        return max(topk // self.block_size, 1)


def check_blocks(block_sizes, blocks):
    """--block-size values are powers of two >= 16; --blocks values keep at least the two forced blocks."""
    for b in block_sizes:
        if b < 16 or b & (b - 1):
            raise HisaBenchError(f"--block-size: expected powers of two >= 16, got {b}")
    for m in blocks:
        if m < 2:
            raise HisaBenchError(f"--blocks: expected at least 2 (first and last block are forced), got {m}")


def make_grid(topk: int, block_sizes, blocks, poolings):
    """Every (block size, blocks, pooling) combination that can cover top-k; and the skipped ones."""
    if topk < 1:
        raise HisaBenchError(f"--topk: expected at least 1, got {topk}")
    check_blocks(block_sizes, blocks)
    for p in poolings:
        check_pooling(p)
    points, skipped = [], []
    for b, m, p in itertools.product(block_sizes, blocks, poolings):
        (points if m * b >= topk else skipped).append(GridPoint(b, m, p))
    if not points:
        raise HisaBenchError(f"no grid point covers top-k {topk}: need blocks x block size >= {topk}")
    return points, skipped


def query_ranges(layer: dict):
    """ks, ke (int64) of the dump's queries: packed ranges when given, else 0..q_pos inclusive."""
    if "ks" in layer and "ke" in layer:
        return layer["ks"].long(), layer["ke"].long()
    q_pos = layer["q_pos"].long()
    return torch.zeros_like(q_pos), q_pos + 1


def _keys64(layer: dict, device) -> torch.Tensor:
    k = layer["k"].to(device=device, dtype=torch.float64)
    if "k_scale" in layer:
        k = k * layer["k_scale"].to(device=device, dtype=torch.float64)[:, None]
    return k


def _chunks(ks, ke, budget_bytes: int):
    """Query chunks whose dense [c, width] float64 work (about 12 copies) fits the budget."""
    n = ks.shape[0]
    width = (ke - ks).tolist()
    t0 = 0
    while t0 < n:
        t1, w = t0 + 1, width[t0]
        while t1 < n and (t1 + 1 - t0) * max(w, width[t1]) * 8 * 12 <= budget_bytes:
            w = max(w, width[t1])
            t1 += 1
        yield t0, t1
        t0 = t1


def _ratio(num, den):
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.ones_like(num))


def _count(mask):
    return torch.count_nonzero(mask, dim=1).double()


def _metrics(flat, F, nF, sumF, tops, S):
    """Per-query metrics of selection mask S against the flat mask F (all [c, W]); nF = |F|."""
    inter = _count(F & S)
    union = nF + _count(S) - inter
    out = {
        "iou": _ratio(inter, union),
        "recall": _ratio(inter, nF),
        "score_recall": _ratio(torch.where(S, flat, torch.zeros_like(flat)).sum(1), sumF),
    }
    for r, (top, n_top) in tops.items():
        out[f"top{r}_recall"] = _ratio(_count(top & S), n_top)
    return out


ENGINES = ("reference", "kernels")


def _mask_from_positions(sel, ks, width):
    """int32 [c, k] absolute positions (-1 = none) -> bool [c, width] in the relative layout."""
    mask = torch.zeros((sel.shape[0], width), dtype=torch.bool, device=sel.device)
    rel = sel.long() - ks[:, None]
    rows = torch.arange(sel.shape[0], device=sel.device)[:, None].expand_as(rel)
    ok = sel >= 0
    mask[rows[ok], rel[ok]] = True
    return mask


def _kernel_selections(layer, t0, t1, ks, ke, topk, points, methods, device):
    """Flat and per-point HISA / block-sparse masks from our Triton kernels (engine "kernels").
    The kernels run on their own device (kernels._runtime.DEVICE: CUDA when compiled, the CPU when
    interpreted), whatever --device the metrics use; selections come back to `device`."""
    from kernels import indexers
    from kernels._runtime import DEVICE as kdev

    q = layer["q"][t0:t1].to(kdev).contiguous()
    k = layer["k"].to(kdev).contiguous()
    w = layer["w"][t0:t1].to(device=kdev, dtype=torch.float32).contiguous()
    k_scale = layer["k_scale"].to(kdev).contiguous() if "k_scale" in layer else None
    ks32, ke32 = ks.to(kdev, torch.int32).contiguous(), ke.to(kdev, torch.int32).contiguous()
    width = int((ke - ks).max())

    def mask(sel):
        return _mask_from_positions(sel.to(ks.device), ks, width)

    flat = mask(indexers.flat_select(q, k, w, ks32, ke32, k_scale, topk=topk))
    per_point = {}
    for p in points:
        for method in methods:
            kind, rule = split_label(method)     # 'hisa/raw': HISA under the raw stage-1 rule
            if kind == "hisa":
                sel = indexers.hisa_select(q, k, w, ks32, ke32, k_scale, topk=topk, block_size=p.block_size,
                                           blocks=p.blocks, pooling=p.pooling, stage1=rule)
            else:
                sel = indexers.block_sparse_select(q, k, w, ks32, ke32, k_scale, topk=topk,
                                                   block_size=p.block_size, pooling=p.pooling, stage1=rule)
            per_point[(p, method)] = mask(sel)
    return flat, per_point


def measure_layer(layer: dict, points, *, topk: int, methods, tie: str = "low", device="cpu",
                  budget_bytes: int = 1 << 29, advance=None, engine: str = "reference"):
    """Per-query metrics of one layer for every grid point: a DataFrame in PER_QUERY_COLUMNS
    order plus tied_flat and tied_block flags.

    engine "reference": every selection from float64 scores with the tie rule (the same figures on
    any device). engine "kernels": the flat, HISA and block-sparse selections come from our Triton
    kernels (fp32 accumulation; exact ties to the lower position, near-ties as rounding falls);
    the metrics still weigh them with the float64 scores."""
    from kernels.flat_scores_naive import flat_scores_ref

    if engine not in ENGINES:
        raise HisaBenchError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "kernels":
        bad = sorted({p.pooling for p in points} - {"mean", "max"})
        if bad:
            raise HisaBenchError(f"--engine kernels takes pooling mean or max, got {', '.join(bad)}")
        if tie != "low":
            raise HisaBenchError("--engine kernels breaks ties towards lower positions: use --tie-rule low")
        from kernels.hisa_naive import STAGE1_RULES

        other = sorted({split_label(m)[1] for m in methods} - set(STAGE1_RULES))
        if other:
            raise HisaBenchError(f"--engine kernels has the stage-1 rules {' and '.join(STAGE1_RULES)} only, "
                                 f"not {', '.join(other)}: use --engine reference for those")
    if tie not in TIE_RULES:
        raise HisaBenchError(f"--tie-rule: expected one of {', '.join(TIE_RULES)}, got {tie!r}")
    ks_all, ke_all = (t.to(device) for t in query_ranges(layer))
    q_pos = layer["q_pos"].long()
    q = layer["q"].to(device)
    w = layer["w"].to(device)
    k_scale = layer["k_scale"].to(device) if "k_scale" in layer else None
    k64 = _keys64(layer, device)
    for label in methods:
        kind, rule = split_label(label)
        if kind not in METHODS:
            raise HisaBenchError(f"method {label!r}: expected one of {', '.join(METHODS)}")
        for p in points:
            check_stage1(rule, p.pooling)
    scorer = Stage1Scorer(k64)
    frames = []
    for t0, t1 in _chunks(ks_all.cpu(), ke_all.cpu(), budget_bytes):
        ks, ke = ks_all[t0:t1], ke_all[t0:t1]
        flat = flat_scores_ref(q[t0:t1], layer["k"].to(device), w[t0:t1], ks, ke, k_scale)   # [c, W] f64
        c, width = flat.shape
        visible = ke - ks
        j = torch.arange(width, device=device)
        valid = j[None, :] < visible[:, None]
        F, tied_flat = topk_mask(flat, valid, topk, tie)
        if engine == "kernels":
            F, kernel_sel = _kernel_selections(layer, t0, t1, ks, ke, topk, points, methods, device)
        sumF = torch.where(F, flat, torch.zeros_like(flat)).sum(1)
        nF = visible.clamp(max=topk).double()           # |F| = min(k, visible keys)
        tops = {r: (topk_mask(flat, valid, r, tie)[0], visible.clamp(max=r).double()) for r in TOP_R}
        q64 = q[t0:t1].to(torch.float64)
        w64 = w[t0:t1].to(torch.float64)
        for p in points:
            B = p.block_size
            J = scorer.scores(q64, w64, B, p.pooling)
            blk = ((ks[:, None] + j[None, :]) // B).clamp(max=J.shape[1] - 1)
            kept, tied_block = kept_blocks(J, ks, ke, B, p.blocks, tie)
            trivial = visible <= p.blocks * B
            base = {
                "block_size": B, "blocks": p.blocks, "pooling": p.pooling,
                "layer": layer["name"], "query": np.arange(t0, t1), "q_pos": q_pos[t0:t1].numpy(),
                "visible": visible.cpu().numpy(), "trivial": trivial.cpu().numpy(),
                "tied_flat": tied_flat.cpu().numpy(), "tied_block": tied_block.cpu().numpy(),
            }
            for method in methods:
                kind, rule = split_label(method)
                if engine == "kernels":
                    S = kernel_sel[(p, method)]
                elif rule != DEFAULT_STAGE1:   # another stage-1 rule (measure/stage1.py)
                    S = select_masks(flat, valid, ks, ke, scorer, q64, w64, topk=topk, block_size=B,
                                     blocks=p.blocks, pooling=p.pooling, stage1=rule, tie=tie,
                                     block_sparse=(kind == "block-sparse"))[0]
                elif method == "hisa":
                    cand = torch.gather(kept, 1, blk) & valid
                    S = topk_mask(flat, cand, topk, tie)[0]
                else:  # block-sparse
                    kept_bs, _ = kept_blocks(J, ks, ke, B, p.block_sparse_blocks(topk), tie)
                    S = first_n_mask(torch.gather(kept_bs, 1, blk) & valid, topk)
                m = _metrics(flat, F, nF, sumF, tops, S)
                frames.append(pd.DataFrame({**base, "method": method,
                                            **{k: v.cpu().numpy() for k, v in m.items()}}))
        if advance is not None:
            advance(t1 - t0)
    df = pd.concat(frames, ignore_index=True)
    return df[PER_QUERY_COLUMNS + ["tied_flat", "tied_block"]]


def _stats(rows: pd.DataFrame) -> dict:
    if rows.empty:
        return {k: None for k in STAT_KEYS}
    iou = rows["iou"].to_numpy()
    return {
        "iou_mean": float(iou.mean()),
        "iou_p1": float(np.percentile(iou, 1)),
        "iou_p5": float(np.percentile(iou, 5)),
        "iou_min": float(iou.min()),
        "recall_mean": float(rows["recall"].mean()),
        "score_recall_mean": float(rows["score_recall"].mean()),
        **{f"top{r}_recall": float(rows[f"top{r}_recall"].mean()) for r in TOP_R},
    }


def _group_summary(rows: pd.DataFrame, methods) -> dict:
    """queries / trivial / tie counts and per-method stats of one group of per-query rows."""
    first = rows[rows["method"] == methods[0]]
    nontrivial = first[~first["trivial"]]
    out = {
        "queries": int(len(first)),
        "trivial": int(first["trivial"].sum()),
        # tie counts are over the queries that enter the aggregates
        "tied_flat": int(nontrivial["tied_flat"].sum()),
        "tied_block": int(nontrivial["tied_block"].sum()),
    }
    for method in methods:
        mrows = rows[(rows["method"] == method) & ~rows["trivial"]]
        out[json_key(method)] = _stats(mrows)
    return out


def _buckets(rows: pd.DataFrame, methods) -> list:
    """Aggregates per context-length bucket (visible keys in (2^(i-1), 2^i]), non-trivial only."""
    nt = rows[~rows["trivial"]]
    if nt.empty:
        return []
    hi = np.power(2, np.ceil(np.log2(nt["visible"].to_numpy().astype(float)))).astype(np.int64)
    nt = nt.assign(_hi=hi)
    out = []
    for top, grp in nt.groupby("_hi", sort=True):
        entry = {"visible_from": int(top // 2 + 1), "visible_to": int(top),
                 "queries": int((grp["method"] == methods[0]).sum())}
        for method in methods:
            entry[json_key(method)] = _stats(grp[grp["method"] == method])
        out.append(entry)
    return out


def summarize_point(per_query: pd.DataFrame, point: GridPoint, config: dict, methods, layer_names):
    """The result object of one grid point (docs/results-format.md, iou run)."""
    rows = per_query[(per_query["block_size"] == point.block_size) & (per_query["blocks"] == point.blocks)
                     & (per_query["pooling"] == point.pooling)]
    layers = []
    for name in layer_names:
        lrows = rows[rows["layer"] == name]
        layers.append({"name": name, **_group_summary(lrows, methods), "buckets": _buckets(lrows, methods)})
    overall = _group_summary(rows, methods)
    overall["buckets"] = _buckets(rows, methods)
    cfg = dict(config, block_size=point.block_size, blocks=point.blocks, pooling=point.pooling)
    if "block-sparse" in methods:
        cfg["block_sparse_blocks"] = point.block_sparse_blocks(config["topk"])
    return {"config": cfg, "layers": layers, "overall": overall}


def layers_frame(results: list) -> pd.DataFrame:
    """layers.csv: one row per (grid point, layer, method)."""
    recs = []
    for res in results:
        cfg = res["config"]
        for layer in res["layers"]:
            for method in cfg["methods"]:
                recs.append({"block_size": cfg["block_size"], "blocks": cfg["blocks"], "pooling": cfg["pooling"],
                             "method": method, "layer": layer["name"], "queries": layer["queries"],
                             "trivial": layer["trivial"], **layer[json_key(method)]})
    return pd.DataFrame(recs, columns=LAYER_COLUMNS)


__all__ = ["METHODS", "TOP_R", "GridPoint", "make_grid", "query_ranges", "measure_layer",
           "summarize_point", "layers_frame", "json_key", "PER_QUERY_COLUMNS", "LAYER_COLUMNS"]
