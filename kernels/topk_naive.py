"""Plain-torch reference for kernels/topk.py.

Rows are in the relative layout of the score kernels: scores[t, j] belongs to position base[t] + j
and is valid for j < row_len[t]. -inf entries are never selected. Among equal scores the lower
position wins (a stable sort), which is the reproducible tie rule of the fidelity figures.
"""
from __future__ import annotations

import torch


def topk_ref(scores, k: int, row_len, base=None):
    """int32 [T, k]: absolute positions (base + j) of the k best valid entries, best first, -1 pad."""
    T, W = scores.shape
    j = torch.arange(W, device=scores.device)
    valid = (j[None, :] < row_len.long()[:, None]) & (scores > float("-inf"))
    s = torch.where(valid, scores, torch.full_like(scores, float("-inf")))
    kk = min(k, W)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :kk]
    chosen_valid = torch.gather(valid, 1, order)
    pos = order + (base.long()[:, None] if base is not None else 0)
    out = torch.full((T, k), -1, dtype=torch.int32, device=scores.device)
    out[:, :kk] = torch.where(chosen_valid, pos, torch.full_like(pos, -1)).to(torch.int32)
    return out
