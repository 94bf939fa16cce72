"""Per-query key masks of one layer: which keys each query of each KV group may attend to.

The selection score is the indexer proxy `capture` writes (hisa_bench/capture/gqa_proxy.py): for KV
group g, keys centred over the window (k -= mean), the group's query heads as indexer heads, w = 1/H,
I[t, s] = mean_h relu(q[t, h] . k[s]) over s <= t. Selections are the float64 torch references
(measure/select.py, measure/stage1.py) with the lowest-position tie rule, so CPU and GPU give the
same masks. Every query position is a query (perplexity needs them all)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..measure.select import topk_mask
from ..measure.stage1 import Stage1Scorer, select_masks
from .grid import Point


@dataclass
class LayerSelection:
    masks: list              # per KV group: bool [T, T], True = the query attends to the key
    iou: torch.Tensor | None  # [groups, T] IoU with the flat top-k of the same k (None for dense/flat)
    trivial: torch.Tensor    # [T] bool: the query sees so few keys that the method equals flat


def proxy_inputs(q: torch.Tensor, k: torch.Tensor, group: int, group_size: int):
    """(q [T, H, D], k centred float64 [T, D], w [T, H]) of one KV group: the dump's GQA proxy."""
    kc = k[:, group].double()
    kc = kc - kc.mean(0, keepdim=True)
    qg = q[:, group * group_size:(group + 1) * group_size]
    w = torch.full(qg.shape[:2], 1.0 / group_size, dtype=torch.float64, device=q.device)
    return qg, kc, w


def causal_scores(q64, k64, w64, q_pos):
    """(I [c, n] float64 with -inf past each query, visible bool [c, n]) for queries at q_pos over
    keys 0..n-1: the flat reference's scores (kernels/flat_scores_naive.py) in one product, with no
    per-row loop (a per-row loop syncs the GPU once per query)."""
    s = (torch.einsum("chd,nd->chn", q64, k64).clamp_min(0) * w64[:, :, None]).sum(1)
    visible = torch.arange(k64.shape[0], device=k64.device)[None, :] <= q_pos[:, None]
    return torch.where(visible, s, torch.full_like(s, float("-inf"))), visible


def _chunk_rows(n: int, budget_bytes: int) -> int:
    # about a dozen [rows, n] float64 tensors live at once (scores, masks, gathers)
    return max(1, min(n, budget_bytes // (n * 8 * 12)))


def select_layer(point: Point, q: torch.Tensor, k: torch.Tensor, group_size: int,
                 budget_bytes: int = 1 << 28) -> LayerSelection:
    n = q.shape[0]
    dev = q.device
    pos = torch.arange(n, device=dev)
    causal = pos[None, :] <= pos[:, None]
    if point.method == "dense":
        return LayerSelection([causal] * k.shape[1], None, torch.ones(n, dtype=torch.bool, device=dev))
    visible = pos + 1
    span = point.topk if point.method == "flat" else point.kept_blocks() * point.block_size
    trivial = visible <= span
    masks, ious = [], []
    rows = _chunk_rows(n, budget_bytes)
    for g in range(k.shape[1]):
        qg, kc, w = proxy_inputs(q, k, g, group_size)
        scorer = Stage1Scorer(kc)
        mask = torch.zeros((n, n), dtype=torch.bool, device=dev)
        iou = torch.ones(n, dtype=torch.float64, device=dev)
        for t0 in range(0, n, rows):
            t1 = min(n, t0 + rows)
            ks = torch.zeros(t1 - t0, dtype=torch.long, device=dev)
            ke = pos[t0:t1] + 1
            flat, valid = causal_scores(qg[t0:t1].double(), kc[:t1], w[t0:t1], pos[t0:t1])
            F = topk_mask(flat, valid, point.topk)[0]
            if point.method == "flat":
                S = F
            else:
                S = select_masks(flat, valid, ks, ke, scorer, qg[t0:t1].double(), w[t0:t1], topk=point.topk,
                                 block_size=point.block_size, blocks=point.blocks, stage1=point.stage1,
                                 block_sparse=(point.method == "block-sparse"))[0]
                inter = torch.count_nonzero(F & S, dim=1).double()
                union = torch.count_nonzero(F | S, dim=1).double()
                iou[t0:t1] = inter / union
            mask[t0:t1, :flat.shape[1]] = S
        masks.append(mask)
        ious.append(iou)
    return LayerSelection(masks, None if point.method == "flat" else torch.stack(ious), trivial)
