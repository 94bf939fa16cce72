"""Group maxima of score rows in one streaming pass: the pruned top-k's bound, taken from the scores.

    gmax[t, g] = max of row t's valid scores over group g
    (groups of G consecutive ABSOLUTE positions: with a = base[t] % G, group g covers the offsets
    j in [g*G - a, (g+1)*G - a) that lie in [0, row_len[t]); a row has cdiv(a + row_len[t], G) groups)

This is the layout kernels/topk_pruned.py reads and the reference is
kernels/topk_pruned_naive.group_max_ref. Written by the score kernel's epilogue instead, the
maxima cost it about 20% on an H200 (0.42 ms of 2.2 at 128K: the group reduction's layout change
of the accumulator in every key tile); that variant was measured and removed (docs/performance.md).
This pass reads each score once more, 4 bytes per score, at streaming bandwidth.

Grid: (rows, pieces of GROUPS_PER_PROG groups). Each step loads a [TILE_GROUPS, G] block, a row's
consecutive scores, and reduces along G. Columns past a row's groups are not written.
Bytes: 4 per score read, 4 / G per score written.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2


@triton.jit
def _group_max_kernel(S, ROW_LEN, BASE, OUT, stride_s, stride_o, GROUPS_PER_PROG,
                      G: tl.constexpr, TILE_GROUPS: tl.constexpr, HAS_BASE: tl.constexpr):
    row = tl.program_id(0)
    piece = tl.program_id(1)
    n = tl.load(ROW_LEN + row)
    a = 0
    if HAS_BASE:
        a = tl.load(BASE + row) % G
    n_groups = (a + n + G - 1) // G
    srow = S + row.to(tl.int64) * stride_s
    orow = OUT + row.to(tl.int64) * stride_o
    g_begin = piece * GROUPS_PER_PROG
    g_end = tl.minimum(n_groups, g_begin + GROUPS_PER_PROG)
    within = tl.arange(0, G)
    for g0 in range(g_begin, g_end, TILE_GROUPS):
        g = g0 + tl.arange(0, TILE_GROUPS)
        j = g[:, None] * G - a + within[None, :]
        ok = (j >= 0) & (j < n) & (g[:, None] < g_end)
        x = tl.load(srow + j, mask=ok, other=float("-inf"))
        tl.store(orow + g, tl.max(x, axis=1), mask=g < g_end)


def group_count(width: int, group_size: int) -> int:
    """Columns a group-maxima buffer needs for rows up to `width` keys: a row starting at ks spans
    groups ks // G .. (ks + width - 1) // G, at most cdiv(G - 1 + width, G) of them."""
    return -(-(group_size - 1 + max(width, 1)) // group_size)


def group_max_config(width: int, group_size: int):
    if INTERPRETED:
        return dict(TILE_GROUPS=8, GROUPS_PER_PROG=64, num_warps=4)
    # 2048 scores a step; 16 steps a program (8192 / 32768 keys) keep enough programs per row count
    tile = max(1, 2048 // group_size)
    return dict(TILE_GROUPS=next_pow2(tile), GROUPS_PER_PROG=16 * next_pow2(tile), num_warps=4)


def launch_group_max(scores, row_len, base, group_size: int, *, out=None, config=None):
    """float32 [T, >= max groups] group maxima of the rows (see module docstring). No validation:
    callers pass int32 row_len / base and a power-of-two group_size."""
    T, W = scores.shape
    G = int(group_size)
    cfg = group_max_config(W, G)
    if config:
        cfg.update(config)
    n_max = group_count(W, G)
    if out is None:
        out = torch.empty((T, n_max), dtype=torch.float32, device=scores.device)
    if T == 0:
        return out
    per_prog = cfg.pop("GROUPS_PER_PROG")
    grid = (T, triton.cdiv(n_max, per_prog))
    _group_max_kernel[grid](scores, row_len, base if base is not None else row_len, out,
                            scores.stride(0), out.stride(0), per_prog, G=G,
                            HAS_BASE=base is not None, **cfg)
    return out
