"""Row-wise top-k selection by exact threshold search, one program per row.

Rows are in the relative layout of the score kernels: row t holds row_len[t] valid scores; entry j
maps to position base[t] + j (or, with a block map, to map[t, j // BS] * BS + j % BS, which is how
HISA's stage 2 translates candidate slots back to absolute key positions). -inf entries are never
selected; slots past the number of valid entries are -1.

Scores become uint32 keys whose unsigned order is the float order (0 = invalid), and the k-th
largest key is found exactly by bisection over its 32 bits. The cost is in *where* the keys live:
  * short rows (row_len <= CAP): the whole row is loaded into registers once;
  * long rows: a strided sample (SAMPLE keys, groups of 8 contiguous scores so each 32-byte sector
    read is fully used) gives a threshold that, with high probability, a bit more than k keys
    pass. One streaming pass writes those candidates (in position order) to a per-row scratch
    buffer, and the exact search runs on at most CAP candidates in registers;
  * if the sample misled (too few or too many candidates, e.g. masses of tied scores), an exact
    fallback narrows the threshold 4 bits per streaming pass (8 passes), then writes the result.
Bytes: one read of the row (plus the 1/16 sample) in the common case; 4 bytes per output index.
Ties at the threshold go to the lowest positions, in every path, so results are reproducible.
Output order: ascending position (not by score).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2


@triton.jit
def _to_key(x):
    """float32 -> uint32 with the same order; -inf (and the all-ones NaN) -> 0 = invalid."""
    b = x.to(tl.uint32, bitcast=True)
    sign = b >> 31
    key = tl.where(sign == 1, ~b, b | (tl.full([], 1, tl.uint32) << 31))
    return tl.where(x == float("-inf"), tl.full([], 0, tl.uint32), key)


@triton.jit
def _kth_key(keys, r, BITS: tl.constexpr, TOP_BITS: tl.constexpr = 32):
    """Largest t with count(keys >= t) >= r (r >= 1): the r-th largest key, found BITS bits at a
    time (2^BITS - 1 counts per step, all reduced across the program at once). With TOP_BITS < 32
    only the leading bits are resolved and t is rounded down: a lower bound, cheaper."""
    t = tl.full([], 0, tl.uint32)
    dig = tl.arange(0, 1 << BITS).to(tl.uint32)
    for step in tl.static_range(TOP_BITS // BITS):
        shift = 32 - BITS * (step + 1)
        cands = t | (dig << shift)                                            # [2^BITS]
        counts = tl.sum((keys[None, :] >= cands[:, None]).to(tl.int32), axis=1)
        best = tl.max(tl.where(counts >= r, dig, 0), axis=0)
        t = t | (best << shift)
    return t


@triton.jit
def _map_index(j, row, base, MAP, stride_m, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr, mask):
    if HAS_MAP:
        blk = tl.load(MAP + row * stride_m + j // MAP_BS, mask=mask, other=-1)
        return blk * MAP_BS + j % MAP_BS
    else:
        return base + j


@triton.jit
def _topk_kernel(
    S, ROW_LEN, BASE, MAP, OUT, SCR_K, SCR_I, SCR_N,
    k, stride_s, stride_m, stride_o,
    CAP: tl.constexpr, SAMPLE: tl.constexpr, TILE: tl.constexpr, K_PAD: tl.constexpr,
    HAS_BASE: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr, ALL_VALID: tl.constexpr,
    BITS: tl.constexpr,
):
    row = tl.program_id(0)
    n = tl.load(ROW_LEN + row)
    base = 0
    if HAS_BASE:
        base = tl.load(BASE + row)
    srow = S + row.to(tl.int64) * stride_s
    scr_k = SCR_K + row.to(tl.int64) * CAP
    scr_i = SCR_I + row.to(tl.int64) * CAP
    orow = OUT + row.to(tl.int64) * stride_o
    c_idx = tl.arange(0, CAP)

    if n <= CAP:
        # short row: every entry is a candidate
        x = tl.load(srow + c_idx, mask=c_idx < n, other=float("-inf"))
        ck = _to_key(x)
        ci = c_idx
        nv = tl.sum((ck != 0).to(tl.int32), axis=0)
        exact = True
    else:
        # threshold from a strided sample: about 1.5 k + 16 sample-ranks' worth of the row passes
        # (only the leading 16 bits: a lower bound is all this needs)
        s_idx = tl.arange(0, SAMPLE)
        stride = n // (SAMPLE // 8)
        sk = _to_key(tl.load(srow + (s_idx // 8) * stride + s_idx % 8))
        r = tl.minimum((k * SAMPLE * 3) // (2 * n) + 16, SAMPLE)
        t_lo = tl.maximum(_kth_key(sk, r, BITS, 16), 1)
        # one streaming pass: candidates (key >= t_lo) to scratch. Slots come from an atomic
        # counter, so the pass has no program-wide scan; candidate order is arbitrary and ties
        # are broken by position explicitly below.
        counter = SCR_N + row
        tl.store(counter, 0)
        tl.debug_barrier()
        nv = n
        if not ALL_VALID:
            nv = n * 0
        for j0 in range(0, n, TILE):
            j = j0 + tl.arange(0, TILE)
            kx = _to_key(tl.load(srow + j, mask=j < n, other=float("-inf")))
            if not ALL_VALID:
                nv += tl.sum((kx != 0).to(tl.int32), axis=0)
            m = kx >= t_lo
            pos = tl.atomic_add(counter + tl.zeros([TILE], tl.int32), 1, mask=m)
            ok = m & (pos < CAP)
            tl.store(scr_k + pos, kx.to(tl.int32, bitcast=True), mask=ok)
            tl.store(scr_i + pos, j, mask=ok)
        # order the other threads' scratch stores and counter updates before our loads
        tl.debug_barrier()
        cnt = tl.atomic_add(counter, 0)
        exact = (cnt <= CAP) & (cnt >= tl.minimum(k, nv))
        ld = c_idx < tl.minimum(cnt, CAP)
        ck = tl.load(scr_k + c_idx, mask=ld, other=0).to(tl.uint32, bitcast=True)
        ci = tl.load(scr_i + c_idx, mask=ld, other=0)

    kk = tl.minimum(k, nv)
    if exact:
        thr = _kth_key(ck, tl.maximum(kk, 1), BITS)
        gt = ck > thr
        need = kk - tl.sum(gt.to(tl.int32), axis=0)
        eq = (ck == thr) & (ck != 0)
        n_eq = tl.sum(eq.to(tl.int32), axis=0)
        if n_eq > need:
            # more tied candidates than slots: the lowest positions win (reproducible results)
            lim = _kth_key(tl.where(eq, ~ci.to(tl.uint32, bitcast=True), 0), tl.maximum(need, 1), BITS)
            eq = eq & (~ci.to(tl.uint32, bitcast=True) >= lim)  # need >= 1 here
        take = gt | eq
        pos = tl.cumsum(take.to(tl.int32), axis=0) - 1
        tl.store(orow + pos, _map_index(ci, row, base, MAP, stride_m, HAS_MAP, MAP_BS, take), mask=take)
    else:
        # exact fallback: narrow the threshold 4 bits per pass over the whole row
        thr = tl.full([], 0, tl.uint32)
        dig = tl.arange(0, 16).to(tl.uint32)
        for p in tl.static_range(8):
            cands = thr | (dig << (28 - 4 * p))
            counts = tl.zeros([16], dtype=tl.int32)
            for j0 in range(0, n, TILE):
                j = j0 + tl.arange(0, TILE)
                kx = _to_key(tl.load(srow + j, mask=j < n, other=float("-inf")))
                counts += tl.sum((kx[None, :] >= cands[:, None]).to(tl.int32), axis=1)
            best = tl.max(tl.where(counts >= tl.maximum(kk, 1), dig, 0), axis=0)
            # (4 bits per pass over the whole row: the fallback is for rows the sample misjudged)
            thr = thr | (best << (28 - 4 * p))
        n_gt = 0
        for j0 in range(0, n, TILE):
            j = j0 + tl.arange(0, TILE)
            kx = _to_key(tl.load(srow + j, mask=j < n, other=float("-inf")))
            n_gt += tl.sum((kx > thr).to(tl.int32), axis=0)
        need = kk - n_gt
        eq_seen = 0
        written = 0
        for j0 in range(0, n, TILE):
            j = j0 + tl.arange(0, TILE)
            kx = _to_key(tl.load(srow + j, mask=j < n, other=float("-inf")))
            eq = (kx == thr) & (kx != 0)
            take = (kx > thr) | (eq & (eq_seen + tl.cumsum(eq.to(tl.int32), axis=0) <= need))
            pos = written + tl.cumsum(take.to(tl.int32), axis=0) - 1
            tl.store(orow + pos, _map_index(j, row, base, MAP, stride_m, HAS_MAP, MAP_BS, take), mask=take)
            eq_seen += tl.sum(eq.to(tl.int32), axis=0)
            written += tl.sum(take.to(tl.int32), axis=0)

    # unused slots
    o = tl.arange(0, K_PAD)
    tl.store(orow + o, tl.full([K_PAD], -1, tl.int32), mask=(o >= kk) & (o < k))


def topk_config(width: int, k: int):
    if INTERPRETED:
        # whole rows in one step where possible: the interpreter pays per operation, not per element
        return dict(CAP=max(16, min(next_pow2(width), 2048)), SAMPLE=256, TILE=1024, BITS=4, num_warps=4)
    cap = max(4 * next_pow2(k), 4096)
    cap = min(cap, max(next_pow2(width), 16)) if width <= cap else max(cap, 8192 if k <= 2048 else cap)
    return dict(CAP=cap, SAMPLE=4096, TILE=4096, BITS=2, num_warps=8 if cap <= 4096 else 16)


def launch_topk(scores, k: int, row_len, base=None, block_map=None, map_block_size: int = 1,
                *, out=None, scratch=None, config=None, all_valid=False):
    """int32 [T, k] selection (see module docstring). No validation: callers pass consistent
    shapes (row_len <= scores.shape[1], int32 row_len/base/block_map)."""
    T, W = scores.shape
    cfg = topk_config(W, k)
    if config:
        cfg.update(config)
    cap = cfg.pop("CAP")
    if out is None:
        out = torch.empty((T, k), dtype=torch.int32, device=scores.device)
    if T == 0:
        return out
    if scratch is None:
        scratch = topk_scratch(T if W > cap else 1, cap, scores.device)
    scr_k, scr_i, scr_n = scratch
    dummy = row_len
    _topk_kernel[(T,)](
        scores, row_len, base if base is not None else dummy,
        block_map if block_map is not None else dummy, out, scr_k, scr_i, scr_n,
        k, scores.stride(0), block_map.stride(0) if block_map is not None else 0, out.stride(0),
        CAP=cap, K_PAD=next_pow2(k), HAS_BASE=base is not None, HAS_MAP=block_map is not None,
        MAP_BS=map_block_size, ALL_VALID=all_valid, **cfg,
    )
    return out


def topk_scratch(rows: int, cap: int, device):
    """Per-row candidate buffers (keys, indices, counter) for rows longer than CAP."""
    return (torch.empty((rows, cap), dtype=torch.int32, device=device),
            torch.empty((rows, cap), dtype=torch.int32, device=device),
            torch.empty((rows,), dtype=torch.int32, device=device))
