"""Plain-torch references for the whole selections: flat, HISA and the block-sparse baseline,
written straight from docs/semantics.md with the lowest-position tie rule.

stage1 picks how HISA and block-sparse rank blocks, among the rules the kernels have (STAGE1_RULES):
'relu' (the paper: sum_h w relu(q_h . kbar)) or 'raw' (sum_h w (q_h . kbar), no ReLU). The other
rules of hisa_bench/measure/stage1.py have no kernel and no reference here."""
from __future__ import annotations

import torch

from .flat_scores_naive import dequantize_keys, flat_scores_ref
from .topk_naive import topk_ref

STAGE1_RULES = ("relu", "raw")   # the stage-1 rules the kernels (kernels/indexers.py) implement


def check_stage1_rule(stage1: str) -> bool:
    """ReLU on (True) or off (False) in the block scores; ValueError for a rule without a kernel."""
    if stage1 not in STAGE1_RULES:
        raise ValueError(f"stage-1 rule {stage1!r}: the kernels have {', '.join(STAGE1_RULES)}")
    return stage1 == "relu"


def pool_keys_ref(k, k_scale, block_size: int, pooling: str = "mean", dtype=torch.float64):
    """[ceil(N / B), D] pooled keys over the positions that exist (a short last block divides by
    its real count). pooling: 'mean' (the paper) or 'max' (element-wise max)."""
    kf = dequantize_keys(k, k_scale, dtype)
    N, D = kf.shape
    nb = -(-N // block_size)
    pad = nb * block_size - N
    if pooling == "mean":
        sums = torch.nn.functional.pad(kf, (0, 0, 0, pad)).view(nb, block_size, D).sum(1)
        counts = torch.full((nb,), block_size, dtype=dtype, device=k.device)
        counts[-1] = block_size - pad
        return sums / counts[:, None]
    if pooling == "max":
        return torch.nn.functional.pad(kf, (0, 0, 0, pad), value=float("-inf")).view(nb, block_size, D).amax(1)
    raise ValueError(f"unknown pooling {pooling!r}")


def block_ranges(ks, ke, block_size: int):
    """Visible block range [bs, be) of each query: the blocks that hold a visible key."""
    return ks // block_size, (ke - 1) // block_size + 1


def block_scores_ref(q, kbar, w, ks, ke, block_size: int, stage1: str = "relu"):
    """Relative-layout block scores J with the first and last visible block forced to +inf."""
    relu = check_stage1_rule(stage1)
    bs, be = block_ranges(ks.long(), ke.long(), block_size)
    return flat_scores_ref(q, kbar, w, bs, be, None, force_ends=True, relu=relu), bs, be


def kept_blocks_ref(q, k, w, ks, ke, k_scale, block_size: int, blocks: int, pooling="mean", stage1="relu"):
    """int32 [T, blocks]: absolute ids of the kept blocks (forced ends first by score), -1 pad."""
    kbar = pool_keys_ref(k, k_scale, block_size, pooling)
    J, bs, be = block_scores_ref(q, kbar, w, ks, ke, block_size, stage1)
    return topk_ref(J, blocks, be - bs, bs)


def _select_in_blocks(flat_rel, ks, ke, kept, block_size: int, topk: int):
    """Top-k of the flat scores over the visible keys of the kept blocks (lower position wins)."""
    T = kept.shape[0]
    m = kept.shape[1]
    kept_sorted = torch.sort(torch.where(kept < 0, torch.iinfo(torch.int32).max, kept), dim=1).values
    pos = kept_sorted.long()[:, :, None] * block_size + torch.arange(block_size, device=kept.device)
    pos = pos.view(T, m * block_size)                                      # ascending positions
    ok = (kept_sorted.long().repeat_interleave(block_size, 1) < torch.iinfo(torch.int32).max)
    ok &= (pos >= ks.long()[:, None]) & (pos < ke.long()[:, None])
    rel = (pos - ks.long()[:, None]).clamp(0, flat_rel.shape[1] - 1)
    cand = torch.where(ok, torch.gather(flat_rel, 1, rel), torch.full(rel.shape, float("-inf"),
                                                                    dtype=flat_rel.dtype, device=rel.device))
    chosen = topk_ref(cand, topk, torch.full((T,), m * block_size, device=kept.device))
    out = torch.where(chosen >= 0, torch.gather(pos, 1, chosen.long().clamp_min(0)), -1)
    return out.to(torch.int32)


def flat_select_ref(q, k, w, ks, ke, k_scale=None, *, topk=2048, flat_rel=None):
    if flat_rel is None:
        flat_rel = flat_scores_ref(q, k, w, ks, ke, k_scale)
    return topk_ref(flat_rel, topk, ke.long() - ks.long(), ks)


def hisa_select_ref(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, blocks=64,
                    pooling="mean", flat_rel=None, kept=None, stage1="relu"):
    if kept is None:
        kept = kept_blocks_ref(q, k, w, ks, ke, k_scale, block_size, blocks, pooling, stage1)
    if flat_rel is None:
        flat_rel = flat_scores_ref(q, k, w, ks, ke, k_scale)
    return _select_in_blocks(flat_rel, ks, ke, kept, block_size, topk)


def block_sparse_select_ref(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128,
                            pooling="mean", kept=None, stage1="relu"):
    """Keep m' = topk // B blocks by the HISA stage-1 rule; select every visible key in them."""
    m1 = max(topk // block_size, 1)
    if kept is None:
        kept = kept_blocks_ref(q, k, w, ks, ke, k_scale, block_size, m1, pooling, stage1)
    T = kept.shape[0]
    kept_sorted = torch.sort(torch.where(kept < 0, torch.iinfo(torch.int32).max, kept), dim=1).values.long()
    pos = (kept_sorted[:, :, None] * block_size + torch.arange(block_size, device=kept.device)).view(T, -1)
    ok = (kept_sorted.repeat_interleave(block_size, 1) < torch.iinfo(torch.int32).max)
    ok &= (pos >= ks.long()[:, None]) & (pos < ke.long()[:, None])
    # compact the visible positions to the front (stable), pad with -1
    order = torch.sort((~ok).to(torch.int8), dim=1, stable=True).indices
    sel = torch.where(torch.gather(ok, 1, order), torch.gather(pos, 1, order), -1)
    out = torch.full((T, topk), -1, dtype=torch.int32, device=kept.device)
    n = min(topk, sel.shape[1])
    out[:, :n] = sel[:, :n].to(torch.int32)
    return out
