"""Row-wise top-k by radix select: a small, bounded number of passes whatever the scores look like.

Rows are in the relative layout of the score kernels: row t holds row_len[t] valid scores; entry j
maps to position base[t] + j (or, with a block map, to map[t, j // BS] * BS + j % BS, which is how
HISA's stage 2 translates candidate slots back to absolute key positions). -inf entries are never
selected; slots past the number of valid entries are -1.

Scores become uint32 keys whose unsigned order is the float order (-0.0 and +0.0 are one key;
-inf is 0 = invalid). The k-th largest key is found by narrowing an interval of keys [lo, hi] that
holds it: each step counts the keys of the interval in 16 equal sub-ranges (a 4-bit digit of
key - lo), keeps the sub-range where the k-th key lies (the counts say exactly how many keys are
above it), and shrinks it further to the smallest and largest key actually inside. The counts are
8-bit fields packed four to an int32 (one add per key instead of 16 compares), so a step costs a
few integer operations per key and one set of reductions per pass. Ties and masses of equal
scores end the search early (the interval collapses to one key); no data takes more than eight
steps (32 bits, 4 per step).

One program per row:
  * short rows (row_len <= CAP): the row is loaded into registers once; the k-th key is found there
    by bisection over the bits that its smallest and largest key leave open (one reduction per bit
    beats 16-way counts when the keys are already on chip).
  * long rows: each step is a streaming pass over the row, until the interval holds at most CAP
    keys (typically 1-3 passes) or a single key (ties). Then one last pass writes the keys above the
    interval straight to the output and lists the interval's keys (at most CAP, in position order),
    which are resolved in registers by the same bisection; with a single-key interval it takes the
    lowest-positioned ties directly. No sampling, no per-segment slots, no fallback path.
Ties at the k-th key go to the lowest positions in every path, so results are reproducible and equal
the torch reference (kernels/topk_naive.py) as sets.
Output order: the keys above the final interval first (position order), then the rest; not sorted.
Bytes: 4 per score per pass (2-4 passes; the rows of a chunk are re-read from L2 when they fit),
8 per listed candidate, 4 per output index.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2

FULL = tl.constexpr(0xFFFFFFFF)   # the largest uint32 key


@triton.jit
def _to_key(x):
    """float32 -> uint32 with the same order; -0.0 -> +0.0; -inf (and the all-ones NaN) -> 0 = invalid."""
    x = tl.where(x == 0.0, 0.0, x)
    b = x.to(tl.uint32, bitcast=True)
    sign = b >> 31
    key = tl.where(sign == 1, FULL - b, b | (tl.full([], 1, tl.uint32) << 31))     # FULL - b = ~b
    return tl.where(x == float("-inf"), tl.full([], 0, tl.uint32), key)


@triton.jit
def _bit_length(w):
    """Bits needed to write the uint32 w (0 for 0)."""
    bits = (w * 0).to(tl.uint32)
    for i in tl.static_range(32):
        bits += ((w >> i) != 0).to(tl.uint32)
    return bits


@triton.jit
def _digit_shift(lo, hi):
    """Shift that maps key - lo, for keys in [lo, hi], onto a 4-bit digit (0..15)."""
    return tl.maximum(_bit_length(hi - lo), 4) - 4


@triton.jit
def _packed_fields(kx, inside, lo, dshift):
    """Per key: (digit // 4, a one in the 8-bit field digit % 4 of an int32), zero outside."""
    d = ((kx - lo) >> dshift).to(tl.int32)
    f = tl.where(inside, 1, 0) << ((d & 3) * 8)
    return d >> 2, f


@triton.jit
def _add_counts(counts, q, acc):
    """Add the counts of digits 4q .. 4q+3: the four 8-bit fields of acc, summed over the tensor."""
    bins = tl.arange(0, 16)
    for r in tl.static_range(4):
        counts += tl.where(bins == 4 * q + r, tl.sum((acc >> (8 * r)) & 255, axis=0), 0)
    return counts


@triton.jit
def _pick(counts, r):
    """The sub-range where the r-th largest key lies (r >= 1): (digit, keys above it, keys in it)."""
    bins = tl.arange(0, 16)
    at_or_above = tl.sum(counts, axis=0) - tl.cumsum(counts, axis=0) + counts
    b = tl.max(tl.where(at_or_above >= r, bins, 0), axis=0)
    above = tl.sum(tl.where(bins > b, counts, 0), axis=0)
    inside = tl.sum(tl.where(bins == b, counts, 0), axis=0)
    return b, above, inside


@triton.jit
def _sub_range(lo, hi, dshift, b):
    """Keys of digit b: [lo + b << dshift, lo + (b + 1) << dshift - 1], clipped to hi."""
    blo = lo + (b.to(tl.uint32) << dshift)
    width = (tl.full([], 1, tl.uint32) << dshift) - 1
    bhi = tl.where(hi - blo > width, blo + width, hi)
    return blo, bhi


@triton.jit
def _threshold_in_registers(ck, ok, r, n_ok):
    """(t, exact): the r best of ck[ok] (1 <= r <= n_ok = count(ok)) are the keys above t plus the
    lowest-positioned ties at t. exact = 1 when exactly r keys reach t (every key >= t is taken; t
    need not be a key).

    First, one reduction asks whether the r-th key is the zero score's: ReLU scores hold a mass of
    exact zeros (queries whose heads all miss a key), and when the r-th key falls in it no
    bisection can separate the ties (structured inputs, HISA's token rows: 28% of rows at 32K).
    Otherwise, bisection over the bits that the smallest and largest key leave open (none for
    all-equal keys; one reduction per bit, which beats narrowing by 16 sub-ranges when the keys sit
    in registers), stopped as soon as a threshold is reached by exactly r keys: random rows of 8192
    stop after about 20 of their 32 bits (the last bits only separate the r-th key from its
    neighbours below)."""
    tl.static_assert(ck.shape[0] <= 16384, "two counts below share one int32 in 16-bit fields")
    zero = tl.full([], 0x80000000, tl.uint32)                # _to_key(0.0)
    # two counts (each at most the row's 16384) in 16-bit fields of one int32: one reduction
    both = tl.sum((ck > zero).to(tl.int32) + ((ck >= zero).to(tl.int32) << 16), axis=0)
    n_gt0 = both & 0xFFFF
    n_ge0 = both >> 16
    at_zero = (n_gt0 < r) & (n_ge0 >= r)
    lo = tl.min(tl.where(ok, ck, FULL), axis=0)
    hi = tl.max(tl.where(ok, ck, 0), axis=0)
    nb = _bit_length(hi - lo).to(tl.int32)
    t = tl.where(at_zero, zero, lo)
    i = tl.where(at_zero, nb, 0)                             # the zero key: no bisection
    # every valid key taken, or every key from zero up: no bisection either
    exact = ((n_ok == r) | (at_zero & (n_ge0 == r))).to(tl.int32)
    while (i < nb) & (exact == 0):
        cand = t + (tl.full([], 1, tl.uint32) << (nb - 1 - i).to(tl.uint32))
        # (no `ok &`: every caller's ok is ck != 0, and cand > lo >= 1 excludes the zero keys)
        c = tl.sum((ck >= cand).to(tl.int32), axis=0)
        step = (c >= r) & (cand > t) & (cand <= hi)          # cand > t: no wrap-around
        t = tl.where(step, cand, t)
        exact = (step & (c == r)).to(tl.int32)
        i += 1
    return t, exact


@triton.jit
def _kth_in_registers(ck, ok, r):
    """Exact r-th largest key among ck[ok] (1 <= r <= count(ok)) and how many keys are above it."""
    t, exact = _threshold_in_registers(ck, ok, r, tl.sum(ok.to(tl.int32), axis=0))
    if exact:
        # the r-th largest key is the smallest key reaching t (t >= 1: zero keys never do)
        t = tl.min(tl.where(ck >= t, ck, FULL), axis=0)
    return t, tl.sum((ok & (ck > t)).to(tl.int32), axis=0)


@triton.jit
def _map_index(j, row, base, MAP, stride_m, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr, mask):
    if HAS_MAP:
        blk = tl.load(MAP + row * stride_m + j // MAP_BS, mask=mask, other=-1)
        return blk * MAP_BS + j % MAP_BS
    else:
        return base + j


@triton.jit
def _write_from_registers(ck, ci, ok, n_ok, need, written, orow, row, base, MAP, stride_m,
                          CAP: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr):
    """Write the `need` best of the n_ok candidates ck[ok] (ci: their row offsets, in position order,
    CAP of them) to orow[written:written + need]; ties at the threshold go to the lowest positions."""
    thr, _ = _threshold_in_registers(ck, ok, need, n_ok)
    # thr >= 1, so neither comparison takes an invalid (zero) key
    above = ck > thr
    eq = ck == thr
    ties = need - tl.sum(above.to(tl.int32), axis=0)          # ties to take at thr, in position order
    n_eq = tl.sum(eq.to(tl.int32), axis=0)
    # the first `ties` of them: those at list slots below p, the smallest slot bound that holds
    # that many, found by bisection on the slot; it runs only when some ties are left out (no
    # iteration for rows without such ties: a prefix sum there cost every row a second scan, and
    # behind a branch it spilled more and measured slower, docs/performance.md)
    # (stopped where a bound holds exactly `ties` of them: after 2 steps for equal rows)
    slot = tl.arange(0, CAP)
    p_lo = n_eq * 0
    p_hi = n_eq * 0 + CAP
    found = (n_eq <= ties).to(tl.int32)
    while (found == 0) & (p_hi - p_lo > 1):
        mid = (p_lo + p_hi) // 2
        c = tl.sum((eq & (slot < mid)).to(tl.int32), axis=0)
        p_hi = tl.where(c >= ties, mid, p_hi)
        p_lo = tl.where(c >= ties, p_lo, mid)
        found = (c == ties).to(tl.int32)
    take = above | (eq & (slot < p_hi))
    pos = written + tl.cumsum(take.to(tl.int32), axis=0) - 1
    tl.store(orow + pos, _map_index(ci, row, base, MAP, stride_m, HAS_MAP, MAP_BS, take), mask=take)


@triton.jit
def _short_row(srow, n, k, orow, row, base, MAP, stride_m, CAP: tl.constexpr,
               HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr):
    """A row of at most CAP entries: every entry is a candidate, held in registers. Returns the
    number of positions written, min(k, valid entries)."""
    ci = tl.arange(0, CAP)
    ck = _to_key(tl.load(srow + ci, mask=ci < n, other=float("-inf")))
    ok = ck != 0
    n_ok = tl.sum(ok.to(tl.int32), axis=0)
    kk = tl.minimum(k, n_ok)
    if kk > 0:
        _write_from_registers(ck, ci, ok, n_ok, kk, 0, orow, row, base, MAP, stride_m, CAP, HAS_MAP, MAP_BS)
    return kk


@triton.jit
def _write_listed(CAND_K, CAND_I, cand_base, n_in, need, written, orow, row, base, MAP, stride_m,
                  CAP: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr):
    """Resolve a candidate list of n_in <= CAP keys and row offsets (position order) that this
    program stored at cand_base: its `need` best go to orow[written:written + need]."""
    # the list (this program's own stores) is read back by other threads: order them
    tl.debug_barrier()
    c = tl.arange(0, CAP)
    cok = c < n_in
    ck = tl.load(CAND_K + cand_base + c, mask=cok, other=0).to(tl.uint32, bitcast=True)
    ci = tl.load(CAND_I + cand_base + c, mask=cok, other=0)
    _write_from_registers(ck, ci, cok, n_in, need, written, orow, row, base, MAP, stride_m, CAP, HAS_MAP, MAP_BS)


@triton.jit
def _long_row(srow, n, k, orow, row, base, MAP, stride_m, CAND_K, CAND_I,
              CAP: tl.constexpr, TILE: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr):
    """A row longer than CAP: narrowing passes, then the last pass (module docstring). Returns the
    number of positions written, min(k, valid entries)."""
    # narrowing passes: [lo, hi] holds the k-th key; cnt keys lie in it, `above` above it
    lo = (n * 0 + 1).to(tl.uint32)
    hi = (n * 0).to(tl.uint32) + FULL
    above = n * 0
    cnt = n
    kk = n * 0 + k
    first = True
    while (lo < hi) & (cnt > CAP):
        dshift = _digit_shift(lo, hi)
        # per-slot counters in 8-bit fields, emptied into `counts` every 255 tiles
        counts = tl.zeros([16], dtype=tl.int32)
        mn = tl.full([TILE], FULL, dtype=tl.uint32)
        mx = tl.zeros([TILE], dtype=tl.uint32)
        for c0 in range(0, n, 255 * TILE):
            a0 = tl.zeros([TILE], dtype=tl.int32)
            a1 = tl.zeros([TILE], dtype=tl.int32)
            a2 = tl.zeros([TILE], dtype=tl.int32)
            a3 = tl.zeros([TILE], dtype=tl.int32)
            c1 = tl.minimum(c0 + 255 * TILE, n)
            x = tl.load(srow + c0 + tl.arange(0, TILE), mask=c0 + tl.arange(0, TILE) < c1, other=float("-inf"))
            for j0 in range(c0, c1, TILE):
                jn = j0 + TILE + tl.arange(0, TILE)
                # the next tile's load is in flight while this one is counted
                x_next = tl.load(srow + jn, mask=jn < c1, other=float("-inf"))
                kx = _to_key(x)
                inside = (kx != 0) & (kx >= lo) & (kx <= hi)
                q, f = _packed_fields(kx, inside, lo, dshift)
                a0 += tl.where(q == 0, f, 0)
                a1 += tl.where(q == 1, f, 0)
                a2 += tl.where(q == 2, f, 0)
                a3 += tl.where(q == 3, f, 0)
                mn = tl.minimum(mn, tl.where(inside, kx, FULL))
                mx = tl.maximum(mx, tl.where(inside, kx, 0))
                x = x_next
            counts = _add_counts(counts, 0, a0)
            counts = _add_counts(counts, 1, a1)
            counts = _add_counts(counts, 2, a2)
            counts = _add_counts(counts, 3, a3)
        if first:
            kk = tl.minimum(k, tl.sum(counts, axis=0))     # the first pass counts every valid key
            first = False
        b, a, cnt = _pick(counts, tl.maximum(kk - above, 1))
        above += a
        blo, bhi = _sub_range(lo, hi, dshift, b)
        lo = tl.maximum(blo, tl.min(mn, axis=0))
        hi = tl.minimum(bhi, tl.max(mx, axis=0))
        if kk == 0:
            hi = lo                                        # nothing valid: stop
    if kk > 0:
        # last pass: keys above [lo, hi] go straight out (position order); the keys inside it
        # are listed (at most CAP), or, when it is a single key, the lowest-positioned ties taken
        need = kk - above
        written = n * 0
        n_in = n * 0
        cand_base = row.to(tl.int64) * CAP
        x = tl.load(srow + tl.arange(0, TILE), mask=tl.arange(0, TILE) < n, other=float("-inf"))
        for j0 in range(0, n, TILE):
            j = j0 + tl.arange(0, TILE)
            jn = j + TILE
            x_next = tl.load(srow + jn, mask=jn < n, other=float("-inf"))
            kx = _to_key(x)
            x = x_next
            take = kx > hi
            inb = (kx != 0) & (kx >= lo) & (kx <= hi)
            if lo == hi:
                take = take | (inb & (n_in + tl.cumsum(inb.to(tl.int32), axis=0) <= need))
            else:
                cpos = n_in + tl.cumsum(inb.to(tl.int32), axis=0) - 1
                tl.store(CAND_K + cand_base + cpos, kx.to(tl.int32, bitcast=True), mask=inb)
                tl.store(CAND_I + cand_base + cpos, j, mask=inb)
            pos = written + tl.cumsum(take.to(tl.int32), axis=0) - 1
            tl.store(orow + pos, _map_index(j, row, base, MAP, stride_m, HAS_MAP, MAP_BS, take), mask=take)
            written += tl.sum(take.to(tl.int32), axis=0)
            n_in += tl.sum(inb.to(tl.int32), axis=0)
        if lo < hi:
            _write_listed(CAND_K, CAND_I, cand_base, n_in, need, written, orow, row, base, MAP, stride_m,
                          CAP, HAS_MAP, MAP_BS)
    return kk


@triton.jit
def _pad_unused(orow, kk, k, K_PAD: tl.constexpr):
    """-1 in the slots kk .. k-1."""
    o = tl.arange(0, K_PAD)
    tl.store(orow + o, tl.full([K_PAD], -1, tl.int32), mask=(o >= kk) & (o < k))


@triton.jit
def _topk_kernel(
    S, ROW_LEN, BASE, MAP, OUT, CAND_K, CAND_I,
    k, stride_s, stride_m, stride_o,
    CAP: tl.constexpr, TILE: tl.constexpr, K_PAD: tl.constexpr,
    HAS_BASE: tl.constexpr, HAS_MAP: tl.constexpr, MAP_BS: tl.constexpr, LONG: tl.constexpr = True,
):
    row = tl.program_id(0)
    n = tl.load(ROW_LEN + row)
    base = 0
    if HAS_BASE:
        base = tl.load(BASE + row)
    srow = S + row.to(tl.int64) * stride_s
    orow = OUT + row.to(tl.int64) * stride_o
    kk = n * 0

    if not LONG:
        # no row is longer than CAP (the launcher knows from the width): the long-row path is not
        # compiled, and does not weigh on the register allocation of the short one
        kk = _short_row(srow, n, k, orow, row, base, MAP, stride_m, CAP, HAS_MAP, MAP_BS)
    elif n <= CAP:
        kk = _short_row(srow, n, k, orow, row, base, MAP, stride_m, CAP, HAS_MAP, MAP_BS)
    else:
        kk = _long_row(srow, n, k, orow, row, base, MAP, stride_m, CAND_K, CAND_I, CAP, TILE, HAS_MAP, MAP_BS)
    _pad_unused(orow, kk, k, K_PAD)


# Rows per SM above which a launch is occupancy-bound rather than latency-bound (see topk_config).
MANY_ROWS_PER_SM = 2


def _sm_count(device=None) -> int:
    try:
        return torch.cuda.get_device_properties(device or torch.cuda.current_device()).multi_processor_count
    except Exception:       # no CUDA: only the interpreter, which ignores the launch config
        return 132


def topk_config(width: int, k: int, rows: int | None = None, device=None):
    """CAP: candidates held in registers (and a long row's candidate-list length); TILE: keys per
    step of a streaming pass; the launch's warps and register cap depend on the row count too.

    Measured on an H200 (docs/performance.md, "Row top-k launch by row count"), ms:
      rows  width    8 warps  4 warps+128 regs  2 warps  1 warp
      1024  1024     0.041    0.026             0.027    0.020
      1024  8192     0.166    0.119             0.166    0.216
      1024  131072   2.094    1.164             1.278    1.614
        64  8192     0.025    0.033             0.077    0.175
        64  131072   0.273    0.371             0.547    1.115
    Many rows (a chunk): programs are register-bound at one or two per SM, so small programs with
    capped registers win. Few rows (decode: fewer programs than SMs): each row's reductions and
    streaming passes are the critical path, so more warps per row win."""
    if INTERPRETED:
        # whole rows in one step where possible: the interpreter pays per operation, not per element
        return dict(CAP=max(16, min(next_pow2(width), 2048)), TILE=1024, num_warps=4)
    cap = 8192
    many = rows is None or rows > MANY_ROWS_PER_SM * _sm_count(device)
    if width <= cap:
        # short rows: registers only
        cap = max(16, next_pow2(width))
        # (these launches compile the short-row path only, LONG=False: HISA's token top-k at 4 warps
        # and 128 registers spills 304 B instead of 1.6 KB and ran 0.103 ms against 0.119-0.127.
        # Writing the positions by a streaming pass instead spilled nothing but measured slower:
        # 0.107 ms for 1024 rows of 8192, 0.030 against 0.024 for 64 rows; docs/performance.md)
        if not many:
            # 4 warps for HISA's block top-m in decode (1024 blocks: 0.0128 against 0.0134 ms with 8)
            return dict(CAP=cap, TILE=1024, num_warps=8 if cap > 1024 else 4)
        if cap <= 1024:
            return dict(CAP=cap, TILE=1024, num_warps=1)
        return dict(CAP=cap, TILE=1024, num_warps=4, maxnreg=128)
    # long rows: streaming passes with the next 1024-key tile in flight
    if not many:
        return dict(CAP=cap, TILE=1024, num_warps=8)
    return dict(CAP=cap, TILE=1024, num_warps=4, maxnreg=128)


def launch_topk(scores, k: int, row_len, base=None, block_map=None, map_block_size: int = 1,
                *, out=None, scratch=None, config=None):
    """int32 [T, k] selection (see module docstring). No validation: callers pass consistent
    shapes (row_len <= scores.shape[1], int32 row_len/base/block_map)."""
    T, W = scores.shape
    cfg = topk_config(W, k, T, scores.device)
    if config:
        cfg.update(config)
    cap = cfg.pop("CAP")
    if out is None:
        out = torch.empty((T, k), dtype=torch.int32, device=scores.device)
    if T == 0:
        return out
    long_rows = W > cap
    if scratch is None or scratch[0].shape[1] != cap or (long_rows and scratch[0].shape[0] < T):
        scratch = topk_scratch(T if long_rows else 1, cap, scores.device)
    cand_k, cand_i = scratch
    dummy = row_len
    _topk_kernel[(T,)](
        scores, row_len, base if base is not None else dummy,
        block_map if block_map is not None else dummy, out, cand_k, cand_i,
        k, scores.stride(0), block_map.stride(0) if block_map is not None else 0, out.stride(0),
        CAP=cap, K_PAD=next_pow2(k),
        HAS_BASE=base is not None, HAS_MAP=block_map is not None, MAP_BS=map_block_size, LONG=long_rows, **cfg,
    )
    return out


def scratch_for(rows: int, width: int, k: int, device, config=None):
    """The scratch launch_topk needs for rows of this width (allocate once, reuse across calls)."""
    cfg = topk_config(width, k, rows, device)
    if config:
        cfg.update(config)
    cap = cfg["CAP"]
    return topk_scratch(rows if width > cap else 1, cap, device)


def topk_scratch(rows: int, cap: int, device):
    """Per-row candidate lists for rows longer than CAP: keys and row offsets."""
    return (torch.empty((rows, cap), dtype=torch.int32, device=device),
            torch.empty((rows, cap), dtype=torch.int32, device=device))
