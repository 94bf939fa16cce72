"""Exact top-k as a boolean mask, with a reproducible tie rule and a flag for boundary ties.

Sorting whole rows is what the plain references do; here the k-th value is found with
torch.topk and only the entries equal to it are resolved by position, which is exact and much
cheaper on 32K-wide rows.
"""
from __future__ import annotations

import torch

TIE_RULES = ("low", "recent")


def topk_mask(scores: torch.Tensor, valid: torch.Tensor, k: int, tie: str = "low"):
    """Mask of the k best valid entries of each row (all valid entries when fewer).

    tie 'low': among equal scores the lower position wins; 'recent': the higher one wins.
    Returns (mask bool [N, W], tied bool [N]); tied is True where more entries equal the k-th
    kept score than there were places left for them, so the choice depended on the tie rule.
    """
    n, width = scores.shape
    neg = torch.full_like(scores, float("-inf"))
    s = torch.where(valid, scores, neg)
    kk = min(k, width)
    kth = torch.topk(s, kk, dim=1, largest=True, sorted=False).values.amin(1)   # [N]
    gt = valid & (s > kth[:, None])
    eq = valid & (s == kth[:, None])
    need = k - torch.count_nonzero(gt, dim=1)                                  # places left
    n_eq = torch.count_nonzero(eq, dim=1)
    tied = n_eq > need
    if tie not in TIE_RULES:
        raise ValueError(f"tie rule {tie!r}: expected one of {', '.join(TIE_RULES)}")
    take = eq
    rows = torch.nonzero(tied).flatten()
    if rows.numel():
        # only rows with more equal entries than places need the positional rule
        e = eq[rows]
        rank = e.cumsum(1) if tie == "low" else e.flip(1).cumsum(1).flip(1)
        take = eq.clone()
        take[rows] = e & (rank <= need[rows, None])
    return gt | take, tied


def first_n_mask(mask: torch.Tensor, n: int) -> torch.Tensor:
    """Keep only the n lowest-position True entries of each row."""
    return mask & (mask.cumsum(1) <= n)


__all__ = ["TIE_RULES", "topk_mask", "first_n_mask"]
