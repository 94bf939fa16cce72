"""Row-wise top-k selection by exact threshold search.

Rows are in the relative layout of the score kernels: row t holds row_len[t] valid scores; entry j
maps to position base[t] + j (or, with a block map, to map[t, j // BS] * BS + j % BS, which is how
HISA's stage 2 translates candidate slots back to absolute key positions). -inf entries are never
selected; slots past the number of valid entries are -1.

Scores become uint32 keys whose unsigned order is the float order (0 = invalid), and the k-th
largest key is found exactly by bisection over its 32 bits, in registers.
  * short rows (row_len <= CAP): one program per row loads the whole row and selects;
  * long rows, three launches so that the one pass over the row runs on many programs at once:
      1. threshold: one program per row takes a strided sample (SAMPLE keys in groups of 8
         contiguous scores, so every 32-byte sector read is used) and picks a key t_lo that,
         with high probability, a bit more than k keys of the row reach;
      2. compact: one program per SEG-long segment of a row writes its keys >= t_lo (in position
         order) to that segment's CAP / n_segments slots of a scratch row;
      3. select: one program per row gathers the candidates (at most CAP) and selects exactly.
    If the sample misled (a segment overflowed, or too few candidates, e.g. masses of tied
    scores), step 3 falls back to narrowing the threshold 4 bits per pass over the whole row.
Bytes: one read of each row (plus the 1/16 sample), the candidates twice, 4 per output index.
Ties at the threshold go to the lowest positions in every path, so results are reproducible.
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
def _kth_key(keys, r, TOP_BITS: tl.constexpr = 32):
    """Largest t with count(keys >= t) >= r (r >= 1): the r-th largest key, by bisection. With
    TOP_BITS < 32 only the leading bits are resolved and t is rounded down: a cheaper lower bound.
    (One bit per step: 2- and 4-bit steps, several counts per step, were slower on an H200.)"""
    t = tl.full([], 0, tl.uint32)
    for b in tl.static_range(TOP_BITS):
        cand = t | (tl.full([], 1, tl.uint32) << (31 - b))
        c = tl.sum((keys >= cand).to(tl.int32), axis=0)
        t = tl.where(c >= r, cand, t)
    return t


@triton.jit
def _sample_threshold_kernel(S, ROW_LEN, T_LO, k, stride_s, CAP: tl.constexpr, SAMPLE: tl.constexpr):
    """Launch 1 of 3 for long rows: a lower bound t_lo on the k-th key, from a sample."""
    row = tl.program_id(0)
    n = tl.load(ROW_LEN + row)
    if n > CAP:
        srow = S + row.to(tl.int64) * stride_s
        s_idx = tl.arange(0, SAMPLE)
        stride = n // (SAMPLE // 8)
        sk = _to_key(tl.load(srow + (s_idx // 8) * stride + s_idx % 8))
        # about 1.5 k + 16 sample-ranks' worth of the row should pass (k * S / n of them on average)
        r = tl.minimum((k * SAMPLE * 3) // (2 * n) + 16, SAMPLE)
        tl.store(T_LO + row, tl.maximum(_kth_key(sk, r, 16), 1).to(tl.int32, bitcast=True))


@triton.jit
def _compact_kernel(S, ROW_LEN, T_LO, SCR_K, SCR_I, SCR_C, SCR_V, stride_s,
                    CAP: tl.constexpr, SEG: tl.constexpr, SLOTS: tl.constexpr, NSEG_P: tl.constexpr):
    """Launch 2 of 3: segment `seg` of a long row writes its candidates (key >= t_lo) to its
    SLOTS scratch slots, and their count (may exceed SLOTS: the row then falls back)."""
    row = tl.program_id(0)
    seg = tl.program_id(1)
    n = tl.load(ROW_LEN + row)
    if n > CAP:
        t_lo = tl.load(T_LO + row).to(tl.uint32, bitcast=True)
        j = seg * SEG + tl.arange(0, SEG)
        kx = _to_key(tl.load(S + row.to(tl.int64) * stride_s + j, mask=j < n, other=float("-inf")))
        m = kx >= t_lo
        pos = tl.cumsum(m.to(tl.int32), axis=0) - 1
        ok = m & (pos < SLOTS)
        base = row.to(tl.int64) * CAP + seg * SLOTS
        tl.store(SCR_K + base + pos, kx.to(tl.int32, bitcast=True), mask=ok)
        tl.store(SCR_I + base + pos, j, mask=ok)
        tl.store(SCR_C + row * NSEG_P + seg, tl.sum(m.to(tl.int32), axis=0))
        tl.store(SCR_V + row * NSEG_P + seg, tl.sum((kx != 0).to(tl.int32), axis=0))


@triton.jit
def _map_index(j, row, base, MAP, stride_m, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr, mask):
    if HAS_MAP:
        blk = tl.load(MAP + row * stride_m + j // MAP_BS, mask=mask, other=-1)
        return blk * MAP_BS + j % MAP_BS
    else:
        return base + j


@triton.jit
def _topk_kernel(
    S, ROW_LEN, BASE, MAP, OUT, SCR_K, SCR_I, SCR_C, SCR_V,
    k, stride_s, stride_m, stride_o,
    CAP: tl.constexpr, SEG: tl.constexpr, SLOTS: tl.constexpr, NSEG_P: tl.constexpr,
    TILE: tl.constexpr, K_PAD: tl.constexpr,
    HAS_BASE: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr,
):
    row = tl.program_id(0)
    n = tl.load(ROW_LEN + row)
    base = 0
    if HAS_BASE:
        base = tl.load(BASE + row)
    srow = S + row.to(tl.int64) * stride_s
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
        # launch 3 of 3: gather the segments' candidates (position order) into registers
        seg = tl.arange(0, NSEG_P)
        seg_ok = seg < tl.cdiv(n, SEG)
        cnts = tl.load(SCR_C + row * NSEG_P + seg, mask=seg_ok, other=0)
        nv = tl.sum(tl.load(SCR_V + row * NSEG_P + seg, mask=seg_ok, other=0), axis=0)
        exact = (tl.max(cnts, axis=0) <= SLOTS) & (tl.sum(cnts, axis=0) >= tl.minimum(k, nv))
        slot = tl.arange(0, SLOTS)
        at = row.to(tl.int64) * CAP + seg[:, None] * SLOTS + slot[None, :]
        ld = slot[None, :] < cnts[:, None]
        ck = tl.reshape(tl.load(SCR_K + at, mask=ld, other=0).to(tl.uint32, bitcast=True), [CAP])
        ci = tl.reshape(tl.load(SCR_I + at, mask=ld, other=0), [CAP])

    kk = tl.minimum(k, nv)
    if exact:
        thr = _kth_key(ck, tl.maximum(kk, 1))
        gt = ck > thr
        need = kk - tl.sum(gt.to(tl.int32), axis=0)
        eq = (ck == thr) & (ck != 0)
        n_eq = tl.sum(eq.to(tl.int32), axis=0)
        if n_eq > need:
            # more tied candidates than slots: the lowest positions win (reproducible results)
            lim = _kth_key(tl.where(eq, ~ci.to(tl.uint32, bitcast=True), 0), tl.maximum(need, 1))
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
    """CAP: candidates held in registers; SEG: keys per compaction program; SAMPLE: sample size."""
    if INTERPRETED:
        # whole rows in one step where possible: the interpreter pays per operation, not per element
        return dict(CAP=max(16, min(next_pow2(width), 2048)), SAMPLE=256, SEG=1024, TILE=1024, num_warps=4)
    cap = max(4 * next_pow2(k), 8192)
    if width <= cap:
        cap = max(16, next_pow2(width))
    # SEG 2048 beat 4096 and 8192 on an H200 (docs/performance.md)
    return dict(CAP=cap, SAMPLE=4096, SEG=2048, TILE=4096, num_warps=8 if cap <= 4096 else 16)


def launch_topk(scores, k: int, row_len, base=None, block_map=None, map_block_size: int = 1,
                *, out=None, scratch=None, config=None):
    """int32 [T, k] selection (see module docstring). No validation: callers pass consistent
    shapes (row_len <= scores.shape[1], int32 row_len/base/block_map)."""
    T, W = scores.shape
    cfg = topk_config(W, k)
    if config:
        cfg.update(config)
    cap, seg, sample = cfg.pop("CAP"), cfg.pop("SEG"), cfg.pop("SAMPLE")
    if out is None:
        out = torch.empty((T, k), dtype=torch.int32, device=scores.device)
    if T == 0:
        return out
    long_rows = W > cap
    nseg_p = next_pow2(triton.cdiv(W, seg)) if long_rows else 1
    slots = max(1, cap // nseg_p)
    if scratch is None or scratch[0].shape[1] != cap or scratch[2].shape[1] != nseg_p or \
            (long_rows and scratch[0].shape[0] < T):
        scratch = topk_scratch(T if long_rows else 1, cap, scores.device, nseg_p)
    scr_k, scr_i, scr_c, scr_v, t_lo = scratch
    if long_rows:
        _sample_threshold_kernel[(T,)](scores, row_len, t_lo, k, scores.stride(0), CAP=cap, SAMPLE=sample,
                                       num_warps=8 if not INTERPRETED else 4)
        _compact_kernel[(T, triton.cdiv(W, seg))](scores, row_len, t_lo, scr_k, scr_i, scr_c, scr_v,
                                                  scores.stride(0), CAP=cap, SEG=seg, SLOTS=slots,
                                                  NSEG_P=nseg_p, num_warps=4)
    dummy = row_len
    _topk_kernel[(T,)](
        scores, row_len, base if base is not None else dummy,
        block_map if block_map is not None else dummy, out, scr_k, scr_i, scr_c, scr_v,
        k, scores.stride(0), block_map.stride(0) if block_map is not None else 0, out.stride(0),
        CAP=cap, SEG=seg, SLOTS=slots, NSEG_P=nseg_p, K_PAD=next_pow2(k),
        HAS_BASE=base is not None, HAS_MAP=block_map is not None, MAP_BS=map_block_size, **cfg,
    )
    return out


def scratch_for(rows: int, width: int, k: int, device, config=None):
    """The scratch launch_topk needs for rows of this width (allocate once, reuse across calls)."""
    cfg = topk_config(width, k)
    if config:
        cfg.update(config)
    cap, seg = cfg["CAP"], cfg["SEG"]
    long_rows = width > cap
    return topk_scratch(rows if long_rows else 1, cap, device, next_pow2(triton.cdiv(width, seg)) if long_rows else 1)


def topk_scratch(rows: int, cap: int, device, nseg_p: int = 1):
    """Per-row candidate buffers for rows longer than CAP: keys, indices, per-segment candidate and
    valid counts, and the sampled threshold."""
    return (torch.empty((rows, cap), dtype=torch.int32, device=device),
            torch.empty((rows, cap), dtype=torch.int32, device=device),
            torch.empty((rows, nseg_p), dtype=torch.int32, device=device),
            torch.empty((rows, nseg_p), dtype=torch.int32, device=device),
            torch.empty((rows,), dtype=torch.int32, device=device))
