"""HISA stage 0: mean-pool keys into blocks of B positions.

kbar[b] = mean of k[s] over the positions s of block b that exist (a short last block divides by
its real count). fp8 keys are dequantised with their per-key scale, averaged in float32 and
re-quantised to fp8 with one scale per block (amax / 448), so the block-score kernel runs on the
same fp8 tensor-core path as the flat scores. Other dtypes keep their dtype.

Bytes: N * D (+4 N) read, N / B * D (+4) written: a few microseconds at 128K keys.
The torch reference is kernels/hisa_naive.py: pool_keys_ref.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import FP8_MAX, INTERPRETED, next_pow2


FP8_MAX_C = tl.constexpr(FP8_MAX)


@triton.jit
def _pool_mean_kernel(
    K, K_SCALE, OUT, OUT_SCALE, BLOCK_IDS, N, stride_kn, stride_on, FIRST_BLOCK,
    D: tl.constexpr, DP: tl.constexpr, BS: tl.constexpr, ROWS: tl.constexpr,
    HAS_SCALE: tl.constexpr, QUANT: tl.constexpr, HAS_IDS: tl.constexpr,
):
    if HAS_IDS:
        blk = tl.load(BLOCK_IDS + tl.program_id(0))
    else:
        blk = FIRST_BLOCK + tl.program_id(0)
    d = tl.arange(0, DP)
    d_ok = d < D
    acc = tl.zeros([DP], dtype=tl.float32)
    for r0 in range(0, BS, ROWS):
        n = blk * BS + r0 + tl.arange(0, ROWS)
        ok = n < N
        kt = tl.load(K + n[:, None].to(tl.int64) * stride_kn + d[None, :], mask=ok[:, None] & d_ok[None, :],
                     other=0.0).to(tl.float32)
        if HAS_SCALE:
            kt = kt * tl.load(K_SCALE + n, mask=ok, other=0.0)[:, None]
        acc += tl.sum(kt, axis=0)
    count = tl.minimum(N - blk * BS, BS).to(tl.float32)
    mean = acc / count
    if QUANT:
        scale = tl.maximum(tl.max(tl.abs(mean), axis=0) / FP8_MAX_C, 1e-12)
        tl.store(OUT_SCALE + blk, scale)
        mean = tl.minimum(tl.maximum(mean / scale, -FP8_MAX_C), FP8_MAX_C)  # rounding may exceed 448
    tl.store(OUT + blk.to(tl.int64) * stride_on + d, mean.to(OUT.dtype.element_ty), mask=d_ok)


def pool_mean(k, k_scale, block_size: int, *, out=None, out_scale=None, first_block: int = 0,
              n_blocks: int | None = None, block_ids=None):
    """Pooled keys [ceil(N / B), D] (fp8 keys: fp8 pooled keys and a float32 [nb] scale).

    first_block / n_blocks, or an int32 tensor block_ids, recompute only some blocks (decode:
    the block each sequence's new token landed in), updating out in place."""
    N, D = k.shape
    nb = triton.cdiv(N, block_size)
    quant = k.dtype == torch.float8_e4m3fn
    if out is None:
        out = torch.empty((nb, D), dtype=k.dtype, device=k.device)
    final = out
    if quant and INTERPRETED:
        # the interpreter's float32 -> fp8 rounding is wrong next to binade edges (-125.7 -> -64):
        # write float32 there and let torch round
        out = torch.empty((nb, D), dtype=torch.float32, device=k.device)
    if quant and out_scale is None:
        out_scale = torch.empty((nb,), dtype=torch.float32, device=k.device)
    if block_ids is not None:
        n_blocks = block_ids.shape[0]
    n_blocks = nb - first_block if n_blocks is None else n_blocks
    if n_blocks <= 0:
        return out, out_scale
    # whole block in one load when it fits (one pass, more bytes in flight)
    rows = min(block_size, 16 if INTERPRETED else max(16, 16384 // max(16, next_pow2(D))))
    _pool_mean_kernel[(n_blocks,)](
        k, k_scale if k_scale is not None else k, out, out_scale if quant else out,
        block_ids if block_ids is not None else out, N,
        k.stride(0), out.stride(0), first_block,
        D=D, DP=max(16, next_pow2(D)), BS=block_size, ROWS=rows,
        HAS_SCALE=k_scale is not None, QUANT=quant, HAS_IDS=block_ids is not None,
        num_warps=4 if INTERPRETED else 8,
    )
    if final is not out:
        rows = (block_ids.long() if block_ids is not None
                else torch.arange(first_block, first_block + n_blocks, device=k.device))
        final[rows] = out[rows].to(final.dtype)
    return final, out_scale
