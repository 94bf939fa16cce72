"""Plain-torch references for kernels/topk_pruned.py: the group maxima (kernels/group_max.py) and
the pruning bound. The selection itself is kernels/topk_naive.topk_ref (the pruned kernel must
give the same sets).

Groups are G consecutive ABSOLUTE positions: with a = base[t] % G, group g of row t covers the
offsets j in [g*G - a, (g+1)*G - a) that lie in [0, row_len[t]); the row has cdiv(a + row_len, G)
groups.
"""
from __future__ import annotations

import torch


def n_groups_ref(row_len, base, group_size: int):
    """int64 [T]: groups per row, cdiv(base % G + row_len, G)."""
    G = int(group_size)
    a = base.long() % G if base is not None else torch.zeros_like(row_len.long())
    return (a + row_len.long() + G - 1) // G


def group_max_ref(scores, row_len, base, group_size: int):
    """float32 [T, max n_groups]: gmax[t, g] = max of row t's valid-range scores in group g
    (-inf when none is > -inf); -inf in the columns past a row's n_groups."""
    T, W = scores.shape
    G = int(group_size)
    row_len = row_len.long()
    a = base.long() % G if base is not None else torch.zeros_like(row_len)
    ng = n_groups_ref(row_len, base, G)
    n_max = int(ng.max()) if T else 0
    # offsets of every group slot, row by row: j = slot - a
    j = torch.arange(n_max * G, device=scores.device)[None, :] - a[:, None]
    inside = (j >= 0) & (j < row_len[:, None]) & (j < W)
    vals = torch.gather(scores.float(), 1, j.clamp(0, max(W - 1, 0)))
    vals = torch.where(inside, vals, torch.full_like(vals, float("-inf")))
    return vals.view(T, n_max, G).amax(dim=2)


def pruning_bound_ref(gmax, n_groups, k: int):
    """float32 [T]: the k-th largest valid (> -inf) group maximum among each row's first
    n_groups[t] columns (a lower bound on the row's k-th largest score); -inf for a row with fewer
    than k valid maxima (no bound: the kernel takes the full narrowing there)."""
    T, NG = gmax.shape
    cols = torch.arange(NG, device=gmax.device)[None, :]
    g = torch.where(cols < n_groups.long()[:, None], gmax.float(), torch.full_like(gmax, float("-inf")))
    if k > NG:
        return torch.full((T,), float("-inf"), device=gmax.device)
    kth = torch.topk(g, k, dim=1).values[:, -1]
    enough = (g > float("-inf")).sum(1) >= k
    return torch.where(enough, kth, torch.full_like(kth, float("-inf")))
