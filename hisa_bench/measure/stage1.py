"""Stage-1 rules: how HISA ranks blocks before it scores tokens inside the kept ones.

Every rule starts from the same pooled keys (measure/pooling.py) and keeps the same blocks by force
(the first visible block and the block of the last visible key); they differ in the score that ranks
the other blocks:

  relu           J = sum_h w relu(q_h . kbar)                      the paper's rule (the default)
  raw            J = sum_h w (q_h . kbar)                          no ReLU: never an exact zero
  relu-tiebreak  rank by the ReLU score; among equal ReLU scores by the raw score (then position)
  erelu          J = sum_h w E[relu(q_h . k)] for k drawn from the block, with q_h . k taken as
                 Gaussian: mean mu = q_h . kbar, variance s^2 = sum_d q_hd^2 var_d(block), so
                 E = mu Phi(mu/s) + s phi(mu/s). This is the block's mean flat score under that
                 model; the paper's relu(mu) is its s -> 0 limit and, by Jensen, never above it.
  ucb            J = sum_h w relu(mu + z s), z = sqrt(2 ln B): the expected best key of the block
                 under the same model, an upper-confidence score that favours spread-out blocks.
  centroids2/4   two (four) centroids per block: the block's halves (quarters) are mean-pooled
                 and J is the sum of their paper scores, sum_c sum_h w relu(q_h . kbar_c).
  oracle         not a method: rank blocks by how many flat top-k keys they hold (then by those
                 keys' score mass). HISA then keeps c of the k flat keys and IoU = c / (2k - c), so
                 keeping the blocks that hold the most of them is the best any stage-1 rule can do
                 at this (k, B, m) under the forcing rule. It needs every flat score (the cost HISA
                 avoids): a ceiling, not a method.

Why: on real tensors relu(q . kbar) is exactly 0 for many blocks (every head's dot with the mean is
negative), so the lowest-position tie rule, not the scores, picks many kept blocks. raw and
relu-tiebreak give those blocks an order; erelu and ucb also use how spread the block's keys are,
which the mean alone throws away; centroids2/4 keep a finer picture of the block. erelu and ucb cost
one more [heads x blocks] product (q^2 against the per-channel variances) on top of the paper's,
centroidsC costs C times the paper's block scores; raw and relu-tiebreak cost nothing extra.

erelu, ucb and centroidsC need mean pooling.
"""
from __future__ import annotations

import math

import torch

from ..errors import HisaBenchError
from .pooling import BlockScorer, kept_blocks, pool_keys
from .select import TIE_RULES, topk_mask

STAGE1 = ("relu", "raw", "relu-tiebreak", "erelu", "ucb", "centroids2", "centroids4", "oracle")
DEFAULT_STAGE1 = "relu"
NEEDS_MEAN = ("erelu", "ucb", "centroids2", "centroids4")


def check_stage1(name: str, pooling: str = "mean") -> str:
    if name not in STAGE1:
        raise HisaBenchError(f"--stage1: {name!r} is not one of {', '.join(STAGE1)}")
    if name in NEEDS_MEAN and pooling != "mean":
        raise HisaBenchError(f"--stage1 {name} needs mean pooling, got {pooling!r}")
    return name


def method_label(method: str, stage1: str) -> str:
    """'hisa' under the paper's rule; 'hisa/raw' etc. under another stage-1 rule."""
    return method if stage1 == DEFAULT_STAGE1 else f"{method}/{stage1}"


def split_label(label: str) -> tuple[str, str]:
    """Inverse of method_label."""
    base, _, rule = label.partition("/")
    return base, rule or DEFAULT_STAGE1


class Stage1Scorer(BlockScorer):
    """BlockScorer with the per-block channel variances that erelu and ucb need, cached per B."""

    def variance(self, block_size: int) -> torch.Tensor:
        key = (block_size, "var")
        if key not in self._cache:
            mean = self.pooled(block_size, "mean")
            sq = pool_keys(self.k64 * self.k64, block_size, "mean")
            self._cache[key] = (sq - mean * mean).clamp_min(0)
        return self._cache[key]

    def rank_keys(self, q64, w64, block_size: int, pooling: str, stage1: str) -> list[torch.Tensor]:
        """[J] or [J, tie-breaker]: absolute block scores [Nq, nb] to rank by, most significant first."""
        check_stage1(stage1, pooling)
        if stage1 == "relu":
            return [self.scores(q64, w64, block_size, pooling)]
        if stage1 == "oracle":
            raise HisaBenchError("stage-1 rule oracle needs the flat scores: use select_masks")
        if stage1.startswith("centroids"):
            c = int(stage1[len("centroids"):])
            if block_size % c:
                raise HisaBenchError(f"--stage1 {stage1}: block size {block_size} does not split into {c}")
            sub = self.scores(q64, w64, block_size // c, "mean")          # [Nq, sub-blocks]
            nb = -(-self.k64.shape[0] // block_size)
            sub = torch.nn.functional.pad(sub, (0, nb * c - sub.shape[1]))
            return [sub.view(sub.shape[0], nb, c).sum(2)]
        if stage1 in ("raw", "relu-tiebreak"):
            raw = self._raw(q64, w64, block_size, pooling)
            return [raw] if stage1 == "raw" else [self.scores(q64, w64, block_size, pooling), raw]
        mu = torch.einsum("thd,bd->thb", q64, self.pooled(block_size, "mean"))
        s = torch.einsum("thd,bd->thb", q64 * q64, self.variance(block_size)).sqrt()
        if stage1 == "ucb":
            z = math.sqrt(2.0 * math.log(block_size))
            e = (mu + z * s).clamp_min(0)
        else:   # erelu: E[relu(X)], X ~ N(mu, s^2); relu(mu) where s == 0
            safe = torch.where(s > 0, s, torch.ones_like(s))
            a = mu / safe
            normal = torch.distributions.Normal(torch.zeros((), dtype=mu.dtype, device=mu.device),
                                                torch.ones((), dtype=mu.dtype, device=mu.device))
            e = torch.where(s > 0, mu * normal.cdf(a) + safe * normal.log_prob(a).exp(), mu.clamp_min(0))
        return [(e * w64[:, :, None]).sum(1)]

    def _raw(self, q64, w64, block_size, pooling):
        if pooling == "quest":
            ub = (torch.einsum("thd,bd->thb", q64.clamp_min(0), self.pooled(block_size, "max"))
                  + torch.einsum("thd,bd->thb", q64.clamp_max(0), self.pooled(block_size, "min")))
            return (ub * w64[:, :, None]).sum(1)
        if pooling == "mean+max":
            return self._raw(q64, w64, block_size, "mean") + self._raw(q64, w64, block_size, "max")
        kind = {"mean": "mean", "max": "max"}[pooling]
        return torch.einsum("thd,bd,th->tb", q64, self.pooled(block_size, kind), w64)


def lex_topk_mask(keys: list[torch.Tensor], valid: torch.Tensor, k: int, tie: str = "low"):
    """Mask of the k best valid entries per row ranked by keys lexicographically (keys[0] first),
    remaining ties by position (tie rule). Returns (mask, tied) like select.topk_mask; tied marks rows
    whose k-th and (k+1)-th entries are equal in every key."""
    if len(keys) == 1:
        return topk_mask(keys[0], valid, k, tie)
    if tie not in TIE_RULES:
        raise ValueError(f"tie rule {tie!r}: expected one of {', '.join(TIE_RULES)}")
    n, width = valid.shape
    neg = torch.tensor(float("-inf"), dtype=keys[0].dtype, device=valid.device)
    keys = [torch.where(valid, key, neg) for key in keys]
    order = torch.arange(width, device=valid.device).expand(n, width)
    if tie == "recent":
        order = order.flip(1)
    # stable sorts from the least significant key to the most significant one
    for key in reversed(keys):
        idx = torch.sort(torch.gather(key, 1, order), dim=1, descending=True, stable=True).indices
        order = torch.gather(order, 1, idx)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(width, device=valid.device).expand(n, width))
    mask = valid & (rank < k)
    if k >= width:
        return mask, torch.zeros(n, dtype=torch.bool, device=valid.device)
    at, nxt = order[:, k - 1:k], order[:, k:k + 1]
    same = torch.ones(n, dtype=torch.bool, device=valid.device)
    for key in keys:
        same &= (torch.gather(key, 1, at) == torch.gather(key, 1, nxt)).squeeze(1)
    tied = same & torch.gather(valid, 1, nxt).squeeze(1)
    return mask, tied


def kept_blocks_by(keys: list[torch.Tensor], ks, ke, block_size: int, blocks: int, tie: str = "low"):
    """measure.pooling.kept_blocks for lexicographic keys: the same visibility and forcing (the
    forced blocks get +inf in the most significant key)."""
    if len(keys) == 1:
        return kept_blocks(keys[0], ks, ke, block_size, blocks, tie)
    nq, nb = keys[0].shape
    b = torch.arange(nb, device=keys[0].device)[None, :]
    bs = (ks.long() // block_size)[:, None]
    be = ((ke.long() - 1) // block_size + 1)[:, None]
    visible = (b >= bs) & (b < be)
    forced = (b == bs) | (b == be - 1)
    first = torch.where(forced, torch.full_like(keys[0], float("inf")), keys[0])
    return lex_topk_mask([first] + list(keys[1:]), visible, blocks, tie)


def select_masks(flat, valid, ks, ke, scorer: Stage1Scorer, q64, w64, *, topk: int, block_size: int,
                 blocks: int, pooling: str = "mean", stage1: str = DEFAULT_STAGE1, tie: str = "low",
                 block_sparse: bool = False):
    """HISA (or block-sparse) selection masks in the relative layout of flat [c, W] (float64 flat
    scores, -inf where not visible). Returns (mask [c, W], tied_block [c])."""
    from .select import first_n_mask

    width = flat.shape[1]
    j = torch.arange(width, device=flat.device)
    nb = -(-scorer.k64.shape[0] // block_size)
    blk = ((ks[:, None] + j[None, :]) // block_size).clamp(max=nb - 1)
    if stage1 == "oracle":
        F = topk_mask(flat, valid, topk, tie)[0]
        zero = torch.zeros((flat.shape[0], nb), dtype=flat.dtype, device=flat.device)
        count = zero.clone().scatter_add_(1, blk, (F & valid).to(flat.dtype))
        mass = zero.scatter_add_(1, blk, torch.where(F, flat, torch.zeros_like(flat)))
        keys = [count, mass]
    else:
        keys = scorer.rank_keys(q64, w64, block_size, pooling, stage1)
    if block_sparse:
        kept, tied = kept_blocks_by(keys, ks, ke, block_size, max(topk // block_size, 1), tie)
        return first_n_mask(torch.gather(kept, 1, blk) & valid, topk), tied
    kept, tied = kept_blocks_by(keys, ks, ke, block_size, blocks, tie)
    return topk_mask(flat, torch.gather(kept, 1, blk) & valid, topk, tie)[0], tied


def select_positions(q, k, w, ks, ke, *, topk: int, block_size: int, blocks: int, pooling: str = "mean",
                     stage1: str = DEFAULT_STAGE1, block_sparse: bool = False, k_scale=None) -> torch.Tensor:
    """int32 [T, topk] absolute positions (-1 padded), like hisa_bench.api.hisa_select, for any stage-1
    rule; float64 scores and the lowest-position tie rule on any device."""
    from kernels.flat_scores_naive import dequantize_keys, flat_scores_ref

    flat = flat_scores_ref(q, k, w, ks, ke, k_scale)
    valid = torch.isfinite(flat)
    scorer = Stage1Scorer(dequantize_keys(k, k_scale))
    mask, _ = select_masks(flat, valid, ks.long(), ke.long(), scorer, q.double(), w.double(), topk=topk,
                           block_size=block_size, blocks=blocks, pooling=pooling, stage1=stage1,
                           block_sparse=block_sparse)
    out = torch.full((q.shape[0], topk), -1, dtype=torch.int32, device=q.device)
    for i in range(q.shape[0]):
        pos = torch.nonzero(mask[i]).flatten()[:topk] + ks[i].long()
        out[i, :len(pos)] = pos.to(torch.int32)
    return out


__all__ = ["STAGE1", "DEFAULT_STAGE1", "check_stage1", "method_label", "split_label", "Stage1Scorer",
           "lex_topk_mask", "kept_blocks_by", "select_masks", "select_positions"]
