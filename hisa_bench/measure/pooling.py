"""Stage-1 block scores J[t, b] under several poolings, and the kept-block rule.

All poolings work on absolute blocks b = s // B of the keys that exist (a short last block uses
its real count), in float64 so that every device ranks blocks the same way:

  mean      kbar = mean of the block's keys; J = sum_h w relu(q_h . kbar)        (the paper)
  max       kmax = element-wise max;          J = sum_h w relu(q_h . kmax)
  mean+max  the sum of the two block scores above
  quest     per-channel bound: ub_h = sum_d max(q_hd kmax_d, q_hd kmin_d) >= q_h . k for every
            key k of the block (Quest-style), J = sum_h w relu(ub_h). It never ranks a block
            below a key it holds, so a lone needle cannot be averaged away as it can under mean.
"""
from __future__ import annotations

import torch

from ..errors import HisaBenchError
from .select import topk_mask

POOLINGS = ("mean", "max", "mean+max", "quest")


def check_pooling(name: str) -> str:
    if name not in POOLINGS:
        raise HisaBenchError(f"pooling {name!r}: expected one of {', '.join(POOLINGS)}")
    return name


def _blocked(k64: torch.Tensor, block_size: int, fill: float):
    n, d = k64.shape
    nb = -(-n // block_size)
    pad = nb * block_size - n
    return torch.nn.functional.pad(k64, (0, 0, 0, pad), value=fill).view(nb, block_size, d), pad


def pool_keys(k64: torch.Tensor, block_size: int, kind: str) -> torch.Tensor:
    """[nb, D] pooled keys: kind 'mean' (over the real count), 'max' or 'min' (element-wise)."""
    if kind == "mean":
        blocks, pad = _blocked(k64, block_size, 0.0)
        counts = torch.full((blocks.shape[0],), float(block_size), dtype=k64.dtype, device=k64.device)
        counts[-1] = block_size - pad
        return blocks.sum(1) / counts[:, None]
    if kind == "max":
        return _blocked(k64, block_size, float("-inf"))[0].amax(1)
    if kind == "min":
        return _blocked(k64, block_size, float("inf"))[0].amin(1)
    raise ValueError(kind)


class BlockScorer:
    """Pooled keys of one layer, cached per (block size, kind), turned into block scores."""

    def __init__(self, k64: torch.Tensor):
        self.k64 = k64
        self._cache = {}

    def pooled(self, block_size: int, kind: str) -> torch.Tensor:
        key = (block_size, kind)
        if key not in self._cache:
            self._cache[key] = pool_keys(self.k64, block_size, kind)
        return self._cache[key]

    def scores(self, q64, w64, block_size: int, pooling: str) -> torch.Tensor:
        """[Nq, nb] absolute block scores J (no visibility mask, no forcing)."""
        def head_sum(dots):                                   # dots [Nq, H, nb]
            return (dots.clamp_min(0) * w64[:, :, None]).sum(1)

        if pooling == "mean":
            return head_sum(torch.einsum("thd,bd->thb", q64, self.pooled(block_size, "mean")))
        if pooling == "max":
            return head_sum(torch.einsum("thd,bd->thb", q64, self.pooled(block_size, "max")))
        if pooling == "mean+max":
            return self.scores(q64, w64, block_size, "mean") + self.scores(q64, w64, block_size, "max")
        if pooling == "quest":
            ub = (torch.einsum("thd,bd->thb", q64.clamp_min(0), self.pooled(block_size, "max"))
                  + torch.einsum("thd,bd->thb", q64.clamp_max(0), self.pooled(block_size, "min")))
            return head_sum(ub)
        raise HisaBenchError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")


def kept_blocks(J: torch.Tensor, ks, ke, block_size: int, blocks: int, tie: str = "low"):
    """The HISA stage-1 rule on absolute block scores J [Nq, nb].

    Visible blocks are those holding a visible key, [ks // B, (ke - 1) // B + 1). The first
    visible block and the block of the last visible key are forced (+inf), and exactly
    min(blocks, visible blocks) are kept. Returns (kept bool [Nq, nb], tied bool [Nq]) where tied
    marks queries whose m-th kept block had an equal-scoring rival left out.
    """
    nq, nb = J.shape
    b = torch.arange(nb, device=J.device)[None, :]
    bs = (ks.long() // block_size)[:, None]
    be = ((ke.long() - 1) // block_size + 1)[:, None]
    visible = (b >= bs) & (b < be)
    forced = (b == bs) | (b == be - 1)
    Jf = torch.where(forced, torch.full_like(J, float("inf")), J)
    return topk_mask(Jf, visible, blocks, tie)


__all__ = ["POOLINGS", "check_pooling", "pool_keys", "BlockScorer", "kept_blocks"]
