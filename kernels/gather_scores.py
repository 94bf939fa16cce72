"""HISA stage 2: exact token scores inside each query's kept blocks, gathered, never a dense scan.

    cand[t, i * B + r] = I[t, kept[t, i] * B + r]   if that key is visible to t, else -inf

One program owns one query (its H x D tile stays on chip) and a run of its kept blocks; each kept
block is B contiguous keys, so a "gather" is one contiguous [B, D] tile load per block. The product
is keys x heads, so the head sum runs along the accumulator's columns. kept[t, i] = -1 (fewer
visible blocks than m) gives a row of -inf.

FLOPs: 2 * H * D * B per kept block; bytes: B * D (+4 B) per kept block, 4 B per written score.
The torch reference is kernels/hisa_naive.py (hisa_select_ref scores the same candidates).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2, padded_dim


@triton.jit
def _score_rows(q, w, K, K_SCALE, out_row, n, ok, j, d, d_ok, stride_kn,
                HAS_SCALE: tl.constexpr, UPCAST: tl.constexpr):
    """Scores of one tile of keys n (rows of a kept block) into out_row[j]."""
    kt = tl.load(K + n[:, None].to(tl.int64) * stride_kn + d[None, :], mask=ok[:, None] & d_ok[None, :],
                 other=0.0)
    if UPCAST:
        kt = kt.to(tl.float32)
    s = tl.dot(kt, tl.trans(q))                                   # [rows, HP]
    s = tl.sum(tl.maximum(s, 0.0) * w[None, :], axis=1)           # [rows]
    if HAS_SCALE:
        s = s * tl.load(K_SCALE + n, mask=ok, other=0.0)
    s = tl.where(ok, s, float("-inf"))
    tl.store(out_row + j, s)


@triton.jit
def _query_tile(t, Q, W, KS, KE, stride_qt, stride_qh, stride_wt,
                H: tl.constexpr, D: tl.constexpr, HP: tl.constexpr, DP: tl.constexpr, UPCAST: tl.constexpr):
    """Query t's [HP, DP] tile (zeros past H and D), its head weights and its key range [ks, ke)."""
    h = tl.arange(0, HP)
    h_ok = h < H
    d = tl.arange(0, DP)
    d_ok = d < D
    q = tl.load(Q + t.to(tl.int64) * stride_qt + h[:, None] * stride_qh + d[None, :],
                mask=h_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    w = tl.load(W + t * stride_wt + h, mask=h_ok, other=0.0)
    return q, w, tl.load(KS + t), tl.load(KE + t)


@triton.jit
def _score_kept_blocks(q, w, K, K_SCALE, KEPT, out_row, t, i_begin, i_end, ks, ke, stride_kn, stride_kept,
                       D: tl.constexpr, DP: tl.constexpr, BS: tl.constexpr, SUB: tl.constexpr,
                       HAS_SCALE: tl.constexpr, UPCAST: tl.constexpr):
    """Scores of query t's kept blocks i_begin..i_end-1 into out_row[i * BS + r] (the gather
    kernel's layout; the fused token stage writes its scratch row the same way)."""
    d = tl.arange(0, DP)
    d_ok = d < D
    if SUB == BS:
        # a whole block per tile (the tuned shapes)
        r = tl.arange(0, BS)
        for i in range(i_begin, i_end):
            b = tl.load(KEPT + t * stride_kept + i)
            n = b * BS + r
            ok = (n >= ks) & (n < ke)  # b = -1 gives n < 0 <= ks
            _score_rows(q, w, K, K_SCALE, out_row, n, ok, i * BS + r, d, d_ok, stride_kn,
                        HAS_SCALE, UPCAST)
    else:
        # large blocks, heads or head dims: SUB rows of a block per tile, to fit shared memory and
        # registers
        r = tl.arange(0, SUB)
        for i in range(i_begin, i_end):
            b = tl.load(KEPT + t * stride_kept + i)
            for r0 in range(0, BS, SUB):
                n = b * BS + r0 + r
                ok = (n >= ks) & (n < ke)
                _score_rows(q, w, K, K_SCALE, out_row, n, ok, i * BS + r0 + r, d, d_ok, stride_kn,
                            HAS_SCALE, UPCAST)


@triton.jit
def _gather_scores_kernel(
    Q, K, K_SCALE, W, KEPT, KS, KE, OUT,
    M, stride_qt, stride_qh, stride_kn, stride_wt, stride_kept, stride_ot,
    H: tl.constexpr, D: tl.constexpr, HP: tl.constexpr, DP: tl.constexpr, BS: tl.constexpr,
    BLOCKS_PER_PROG: tl.constexpr, HAS_SCALE: tl.constexpr, UPCAST: tl.constexpr, SUB: tl.constexpr,
):
    t = tl.program_id(0)
    piece = tl.program_id(1)
    q, w, ks, ke = _query_tile(t, Q, W, KS, KE, stride_qt, stride_qh, stride_wt, H, D, HP, DP, UPCAST)
    out_row = OUT + t.to(tl.int64) * stride_ot
    i0 = piece * BLOCKS_PER_PROG
    _score_kept_blocks(q, w, K, K_SCALE, KEPT, out_row, t, i0, tl.minimum(i0 + BLOCKS_PER_PROG, M), ks, ke,
                       stride_kn, stride_kept, D, DP, BS, SUB, HAS_SCALE, UPCAST)


SMEM_LIMIT = 232448                 # Hopper, per block (see flat_scores.py)
SMEM_BUDGET = SMEM_LIMIT - 32 * 1024
ACC_PER_THREAD = 64                 # fp32 accumulator registers per thread the tuned shape uses


def _fit(cfg: dict, hp: int, dp: int, esize: int, bs: int) -> dict:
    """Rows of a block per tile (SUB) and warps so that the [SUB, HP] accumulator stays within
    ACC_PER_THREAD registers per thread and the query plus num_stages key tiles fit shared
    memory. H = 64, D = 128, B = 128 (the tuned shape) keeps whole blocks, 4 warps, 3 stages."""
    cfg = dict(cfg)
    sub = bs
    while sub > 16 and sub * hp > ACC_PER_THREAD * 32 * cfg["num_warps"]:
        if cfg["num_warps"] < 8:
            cfg["num_warps"] = 8
        else:
            sub //= 2

    def smem():
        return (hp + cfg["num_stages"] * sub) * dp * esize

    while smem() > SMEM_BUDGET:
        if cfg["num_stages"] > 2:
            cfg["num_stages"] -= 1
        elif sub > 16:
            sub //= 2
        else:
            break
    cfg["SUB"] = sub
    return cfg


def gather_config(T: int, m: int, hp: int = 64, dp: int = 128, esize: int = 1, bs: int = 128):
    if INTERPRETED:
        return dict(BLOCKS_PER_PROG=m, num_warps=4, num_stages=1, SUB=bs)
    # split a query's blocks over several programs when there are too few queries to fill the GPU:
    # about 4 programs per SM (a 64-query decode batch: 8 blocks each, 0.032 ms against 0.033 with 4)
    per = m if T >= 4 * 132 else max(4, triton.cdiv(m * T, 4 * 132))
    return _fit(dict(BLOCKS_PER_PROG=min(m, per), num_warps=4, num_stages=3), hp, dp, esize, bs)


def launch_gather_scores(q, k, w, kept, ks, ke, block_size: int, k_scale=None, *, out=None, config=None):
    T, H, D = q.shape
    m = kept.shape[1]
    if out is None:
        out = torch.empty((T, m * block_size), dtype=torch.float32, device=q.device)
    if T == 0:
        return out
    hp, dp = max(16, next_pow2(H)), padded_dim(D, q.element_size())
    cfg = gather_config(T, m, hp, dp, q.element_size(), block_size)
    if config:
        cfg.update(config)
    per = cfg.pop("BLOCKS_PER_PROG")
    _gather_scores_kernel[(T, triton.cdiv(m, per))](
        q, k, k_scale if k_scale is not None else w, w, kept, ks, ke, out,
        m, q.stride(0), q.stride(1), k.stride(0), w.stride(0), kept.stride(0), out.stride(0),
        H=H, D=D, HP=hp, DP=dp, BS=block_size,
        BLOCKS_PER_PROG=per, HAS_SCALE=k_scale is not None, UPCAST=INTERPRETED, **cfg,
    )
    return out
