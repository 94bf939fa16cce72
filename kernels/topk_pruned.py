"""Row-wise top-k that reads only the groups of a row that can hold a top-k score ("pruned" top-k).

Same rows, same result as kernels/topk.launch_topk (relative layout: entry j of row t is position
base[t] + j, valid for j < row_len[t]; -inf never selected; ties at the k-th key to the lowest
positions; -1 in the slots past min(k, valid entries); output order not sorted), given beside the
scores their GROUP MAXIMA (computed by kernels/group_max.py): gmax[t, g] = max of row t's scores
over group g, where groups are G consecutive ABSOLUTE positions. With a = base[t] % G, group g covers the offsets
j in [g*G - a, (g+1)*G - a) that lie in [0, row_len[t]); a row has cdiv(a + row_len[t], G) groups
(later columns of gmax are never read). -inf marks a group without a valid score.

Why it is exact: let B be the k-th largest valid group maximum of a row. k distinct entries (one
per group) score at least B, so the row's k-th largest score s_k is >= B. Every entry scoring
>= s_k (the top k and every entry tied with the k-th) therefore scores >= B, and its group's
maximum is >= B too. Listing every entry with score >= B from the groups whose maximum is >= B
lists all of them; the k best of that list, ties to the lowest positions, are the row's top k.
Since >= k valid maxima exist, the row has >= k valid entries, so exactly k positions are written.
Scores compare as the order-preserving uint32 keys of kernels/topk.py (-0.0 == +0.0).

One program per row:
  1. row_len <= CAP: the short-row body of kernels/topk.py (registers only).
  2. the row's first min(n_groups, GCAP) group maxima are loaded as keys; with fewer than k valid
     ones (or more than GCAP + TILE_G groups) the row takes topk.py's long-row body (narrowing
     passes) unchanged. So do rows with fewer than MIN_GROUP_RATIO * k valid groups, where pruning
     would rarely pay.
  3. B = the k-th largest of these group keys, by topk.py's bisection in registers (a subset's
     k-th largest maximum is a bound too: the up to TILE_G groups past GCAP, e.g. the 8193rd
     group of a 128K row not aligned to G, are only tested against B).
  4. the ids of the groups whose maximum is >= B are listed (ascending, cumsum compaction, in a
     per-row scratch of GCAP + TILE_G). When every valid group passes (masses of equal scores
     at B: ReLU zeros, equal rows) nothing is pruned: the narrowing (path "wide"), whose
     streaming passes beat reading the row group by group (H200, 1024 rows x 131072: zeros
     0.86 ms narrowing against 2.64 by groups, equal 0.86 against 1.37). Otherwise they are read
     TILE_G groups a step: a [TILE_G, G] load masked by
     0 <= j < row_len, entries with key >= B appended to the row's candidate list (position order,
     cumsum compaction) while it has room (LIST_CAP, 4 * CAP). Only passing groups are touched. The
     pass also counts c_ge (keys >= B) and c_gt (keys > B); once the list is full it goes on
     counting only while c_gt < k (past that only the narrowing can resolve the row).
  5. c_ge <= CAP: the list is resolved in registers (topk.py's _write_from_registers, need = k).
  6. c_ge > CAP but c_gt < k (c_ge >= k always): the k-th key IS B. A second pass over the
     passing groups writes every key > B and the first k - c_gt keys == B (position order: the
     lowest positions win ties) straight to the output, no list (as topk.py's last pass does for
     a single-key interval); it stops once k positions are written. The rows this serves: ReLU
     zeros when fewer than k keys are positive (B = 0.0, every zero a candidate), all-equal rows.
  7. CAP < c_ge <= LIST_CAP and c_gt >= k (rows where whole groups pass: recency windows, rows
     rising monotonically, about k * G candidates; on the speed command's structured rows at
     W = 128K, 8.8K-11.2K): topk.py's narrowing streamed over the LIST instead of the row (path
     "listed"): 16-way counting passes until the interval holds at most CAP keys or one key, then
     a last pass over the list writes the keys above it and lists the interval's keys in a
     second, CAP-long region (resolved in registers; a one-key interval takes the
     lowest-positioned ties). 8 bytes per listed key per pass instead of 4 per row entry.
  8. c_ge > LIST_CAP and c_gt >= k (crowded rows: clustered scores): topk.py's long-row body over
     the whole row.
Bytes per pruned row: 4 * n_groups (the group maxima) + 4 * G per passing group (about k groups
for spread-out scores: k * G entries, a quarter of one full pass at G = 16, k = 2048, W = 128K)
+ 8 per passing group (its id written and read back) + 8 per candidate written and read back
+ 4 per output index. A listed row: the candidate pass, then 4 per listed key per counting pass
(2-3 of them) and 8 in the last pass, 8 per key of the final interval. A tied row: the group maxima + the counting pass over its passing groups
(4 * G + 8 each) + the first LIST_CAP candidates written (8 each) + the second pass (4 per passing
group: its maximum, read again, and its id; 4 * G per group it reads: the groups up to where the
ties' quota is filled, then only those whose maximum is above B, up to where the k-th position
is written) + 4 per output index. With every group passing (ReLU zeros, fewer than k
positives) that is one read of the row plus the quota's groups and the < k groups holding a
positive. The radix kernel streams the whole row 2-4 times.
Fallback rows cost what launch_topk costs, plus the group maxima (and, for crowded rows, the
counting pass up to where c_gt reached k past the full list).

A debugging aid, path_out[t], says which path a row took (PATH_* below): tests use it to prove
each path runs, the benchmark to report how many rows were pruned.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2
from .topk import (FULL, MANY_ROWS_PER_SM, _add_counts, _digit_shift, _kth_in_registers, _long_row, _packed_fields,
                   _pad_unused, _pick, _short_row, _sm_count, _sub_range, _to_key, _write_listed, topk_config,
                   topk_scratch)

PATH_SHORT = 0          # row_len <= CAP: registers only
PATH_PRUNED = 1         # group maxima bound, candidates from passing groups only
PATH_FEW_GROUPS = 2     # fewer than k (MIN_GROUP_RATIO * k) valid group maxima: full narrowing
PATH_MANY_GROUPS = 3    # more than GCAP + TILE_G groups: full narrowing
PATH_CROWDED = 4        # more than CAP candidates and >= k keys above the bound: full narrowing
PATH_WIDE = 6           # every valid group reaches the bound (nothing to prune): full narrowing
PATH_TIED = 5           # more than CAP candidates, fewer than k above the bound: the k-th key is the
                        # bound, a second pass over the passing groups writes the result
PATH_LISTED = 7         # more than CAP candidates (at most LIST_CAP), >= k above the bound: narrowing
                        # over the candidate list instead of the row
PATH_NAMES = {PATH_SHORT: "short", PATH_PRUNED: "pruned", PATH_FEW_GROUPS: "few_groups",
              PATH_MANY_GROUPS: "many_groups", PATH_CROWDED: "crowded", PATH_TIED: "tied", PATH_WIDE: "wide",
              PATH_LISTED: "listed"}
# the same codes as the kernel sees them (a jitted function reads only constexpr globals)
_SHORT = tl.constexpr(PATH_SHORT)
_PRUNED = tl.constexpr(PATH_PRUNED)
_FEW_GROUPS = tl.constexpr(PATH_FEW_GROUPS)
_MANY_GROUPS = tl.constexpr(PATH_MANY_GROUPS)
_CROWDED = tl.constexpr(PATH_CROWDED)
_TIED = tl.constexpr(PATH_TIED)
_WIDE = tl.constexpr(PATH_WIDE)
_LISTED = tl.constexpr(PATH_LISTED)


@triton.jit
def _group_tile(srow, gl, live, n, a, G: tl.constexpr, TILE_G: tl.constexpr):
    """The entries of the groups gl (TILE_G ids; those with live false are not read): row offsets,
    keys, mask."""
    j = gl[:, None] * G - a + tl.arange(0, G)[None, :]
    m = live[:, None] & (j >= 0) & (j < n)
    kx = _to_key(tl.load(srow + j, mask=m, other=float("-inf")))
    return j, kx, m


@triton.jit
def _rank_in_tile(flag):
    """1-based rank of each set entry of a [TILE_G, G] tile in position order (groups in order,
    entries in order within a group), and the tile's count."""
    in_group = tl.sum(flag, axis=1)
    rank = (tl.cumsum(in_group, axis=0) - in_group)[:, None] + tl.cumsum(flag, axis=1)
    return rank, tl.sum(in_group, axis=0)


@triton.jit
def _list_from_groups(srow, glist, npass, n, a, bound, k, LIST_K, LIST_I, list_base,
                      G: tl.constexpr, TILE_G: tl.constexpr, LIST_CAP: tl.constexpr):
    """List (position order, at most LIST_CAP stored) every entry with key >= bound of the npass
    passing groups whose ids glist holds (ascending). Returns (n_ge, n_gt): how many keys are
    >= bound and > bound. Once the list is full the pass goes on counting while n_gt < k (the
    tied pass may still resolve the row) and stops when n_gt >= k (only the narrowing can)."""
    n_in = n * 0
    n_gt = n * 0
    p0 = n * 0
    t = tl.arange(0, TILE_G)
    gl = tl.load(glist + t, mask=t < npass, other=0)
    while (p0 < npass) & ((n_in <= LIST_CAP) | (n_gt < k)):
        # the next tile's group ids are in flight while this tile is read
        gl_next = tl.load(glist + p0 + TILE_G + t, mask=p0 + TILE_G + t < npass, other=0)
        j, kx, m = _group_tile(srow, gl, p0 + t < npass, n, a, G, TILE_G)
        inb = (m & (kx >= bound)).to(tl.int32)
        rank, cnt = _rank_in_tile(inb)
        cpos = n_in + rank - 1
        st = (inb != 0) & (cpos < LIST_CAP)
        tl.store(LIST_K + list_base + cpos, kx.to(tl.int32, bitcast=True), mask=st)
        tl.store(LIST_I + list_base + cpos, j, mask=st)
        n_in += cnt
        n_gt += tl.sum(tl.sum((m & (kx > bound)).to(tl.int32), axis=1), axis=0)
        gl = gl_next
        p0 += TILE_G
    return n_in, n_gt


@triton.jit
def _write_tied(srow, grow, glist, npass, n, a, bound, need, k, orow, base, G: tl.constexpr, TILE_G: tl.constexpr):
    """The k-th key is the bound itself (fewer than k keys above it, need = k - those): every key
    > bound and the first `need` keys == bound (position order) of the passing groups go straight
    to orow, no candidate list. Once `need` ties are taken only groups whose maximum (grow) is
    above the bound are read; stops once k positions are written."""
    written = n * 0
    n_eq = n * 0
    p0 = n * 0
    t = tl.arange(0, TILE_G)
    gl = tl.load(glist + t, mask=t < npass, other=0)
    while (p0 < npass) & (written < k):
        gl_next = tl.load(glist + p0 + TILE_G + t, mask=p0 + TILE_G + t < npass, other=0)
        # groups at the bound hold nothing above it: skip them once the ties' quota is filled
        in_list = p0 + t < npass
        gk = _to_key(tl.load(grow + gl, mask=in_list, other=float("-inf")))
        live = in_list & ((gk > bound) | (tl.zeros([TILE_G], tl.int32) + n_eq < need))
        j, kx, m = _group_tile(srow, gl, live, n, a, G, TILE_G)
        eq = (m & (kx == bound)).to(tl.int32)
        eq_rank, eq_cnt = _rank_in_tile(eq)
        take = (m & (kx > bound)) | ((eq != 0) & (n_eq + eq_rank <= need))
        rank, cnt = _rank_in_tile(take.to(tl.int32))
        tl.store(orow + written + rank - 1, base + j, mask=take)
        written += cnt
        n_eq += eq_cnt
        gl = gl_next
        p0 += TILE_G


@triton.jit
def _narrow_list(LIST_K, LIST_I, list_base, n_list, bound, k, orow, row, base, CAND_K, CAND_I, cand_base,
                 CAP: tl.constexpr, TILE: tl.constexpr):
    """The k best of a candidate list of n_list keys >= bound (CAP < n_list <= LIST_CAP, at least k
    of them > bound; uint32 keys and row offsets in position order): kernels/topk.py's narrowing,
    streaming over the list instead of the row. (Its counting step is written out as in topk.py's
    _long_row: as a shared jitted helper it changes ptxas's allocation there, 596 -> 628 B spilled
    for 131072-wide rows at 128 registers, not re-timed on the GPU.) Each pass counts the interval's keys in 16
    sub-ranges until it holds at most CAP keys or one key; then the keys above it go straight to
    orow, the interval's keys are listed at cand_base (a region apart from the list being read)
    for the caller to resolve in registers, or, for a one-key interval, the lowest-positioned ties
    are taken. Returns (keys listed, how many of them to take, positions written, whether the
    list is to be resolved).
    (The 8-bit packed counters hold up to 255 tiles: the launcher keeps LIST_CAP <= 255 * TILE.)"""
    # the list (this program's own stores) is read back by other threads: order them
    tl.debug_barrier()
    lo = bound
    hi = (bound * 0) + FULL
    above = n_list * 0
    cnt = n_list
    t = tl.arange(0, TILE)
    while (lo < hi) & (cnt > CAP):
        dshift = _digit_shift(lo, hi)
        a0 = tl.zeros([TILE], dtype=tl.int32)
        a1 = tl.zeros([TILE], dtype=tl.int32)
        a2 = tl.zeros([TILE], dtype=tl.int32)
        a3 = tl.zeros([TILE], dtype=tl.int32)
        mn = tl.full([TILE], FULL, dtype=tl.uint32)
        mx = tl.zeros([TILE], dtype=tl.uint32)
        kx = tl.load(LIST_K + list_base + t, mask=t < n_list, other=0).to(tl.uint32, bitcast=True)
        for j0 in range(0, n_list, TILE):
            # the next tile's load is in flight while this one is counted
            kx_next = tl.load(LIST_K + list_base + j0 + TILE + t, mask=j0 + TILE + t < n_list,
                              other=0).to(tl.uint32, bitcast=True)
            inside = (kx != 0) & (kx >= lo) & (kx <= hi)
            q, f = _packed_fields(kx, inside, lo, dshift)
            a0 += tl.where(q == 0, f, 0)
            a1 += tl.where(q == 1, f, 0)
            a2 += tl.where(q == 2, f, 0)
            a3 += tl.where(q == 3, f, 0)
            mn = tl.minimum(mn, tl.where(inside, kx, FULL))
            mx = tl.maximum(mx, tl.where(inside, kx, 0))
            kx = kx_next
        counts = tl.zeros([16], dtype=tl.int32)
        counts = _add_counts(counts, 0, a0)
        counts = _add_counts(counts, 1, a1)
        counts = _add_counts(counts, 2, a2)
        counts = _add_counts(counts, 3, a3)
        b, ab, cnt = _pick(counts, tl.maximum(k - above, 1))
        above += ab
        blo, bhi = _sub_range(lo, hi, dshift, b)
        lo = tl.maximum(blo, tl.min(mn, axis=0))
        hi = tl.minimum(bhi, tl.max(mx, axis=0))
    # last pass over the list: keys above [lo, hi] out, the interval's keys listed (or ties taken)
    need = k - above
    written = n_list * 0
    n_in = n_list * 0
    for j0 in range(0, n_list, TILE):
        lm = j0 + t < n_list
        kx = tl.load(LIST_K + list_base + j0 + t, mask=lm, other=0).to(tl.uint32, bitcast=True)
        j = tl.load(LIST_I + list_base + j0 + t, mask=lm, other=0)
        take = lm & (kx > hi)
        inb = lm & (kx >= lo) & (kx <= hi)
        if lo == hi:
            take = take | (inb & (n_in + tl.cumsum(inb.to(tl.int32), axis=0) <= need))
        else:
            cpos = n_in + tl.cumsum(inb.to(tl.int32), axis=0) - 1
            tl.store(CAND_K + cand_base + cpos, kx.to(tl.int32, bitcast=True), mask=inb)
            tl.store(CAND_I + cand_base + cpos, j, mask=inb)
        pos = written + tl.cumsum(take.to(tl.int32), axis=0) - 1
        tl.store(orow + pos, base + j, mask=take)
        written += tl.sum(take.to(tl.int32), axis=0)
        n_in += tl.sum(inb.to(tl.int32), axis=0)
    # (the caller resolves the interval's list: one inlined copy of the register resolution)
    return n_in, need, written, lo < hi


@triton.jit
def _topk_pruned_kernel(
    S, GMAX, ROW_LEN, BASE, OUT, CAND_K, CAND_I, GLIST, LIST_K, LIST_I, PATH,
    k, min_groups, stride_s, stride_g, stride_o,
    G: tl.constexpr, CAP: tl.constexpr, LIST_CAP: tl.constexpr, GCAP: tl.constexpr, TILE_G: tl.constexpr, TILE: tl.constexpr,
    K_PAD: tl.constexpr, HAS_BASE: tl.constexpr, HAS_PATH: tl.constexpr,
):
    row = tl.program_id(0)
    n = tl.load(ROW_LEN + row)
    base = n * 0
    if HAS_BASE:
        base = tl.load(BASE + row)
    srow = S + row.to(tl.int64) * stride_s
    orow = OUT + row.to(tl.int64) * stride_o
    kk = n * 0
    path = n * 0 + _SHORT

    if n <= CAP:
        kk = _short_row(srow, n, k, orow, row, base, ROW_LEN, 0, CAP, False, 1)
    else:
        a = base % G
        ng = (a + n + G - 1) // G
        grow = GMAX + row.to(tl.int64) * stride_g
        cand_base = row.to(tl.int64) * CAP
        list_base = row.to(tl.int64) * LIST_CAP
        path = n * 0 + _MANY_GROUPS
        # defaults of the rows that take no candidate pass: straight to the narrowing
        n_in = n * 0 + LIST_CAP + 1
        n_gt = n * 0 + k
        npass = n * 0
        bound = (n * 0).to(tl.uint32)
        glist = GLIST + row.to(tl.int64) * (GCAP + TILE_G)
        if ng <= GCAP + TILE_G:
            # the bound comes from the first GCAP groups: the k-th largest of a subset of the
            # maxima is still reached by k distinct entries. The up to TILE_G groups past them (a
            # row of W = GCAP * G not aligned to G has one more group) are listed when they pass.
            gi = tl.arange(0, GCAP)
            gk = _to_key(tl.load(grow + gi, mask=gi < ng, other=float("-inf")))
            gok = gk != 0
            path = n * 0 + _FEW_GROUPS
            if tl.sum(gok.to(tl.int32), axis=0) >= min_groups:      # (min_groups >= k)
                bound, _ = _kth_in_registers(gk, gok, k)
                # the passing groups' ids, ascending (bound >= 1: invalid groups never pass)
                gp = gk >= bound
                ti = GCAP + tl.arange(0, TILE_G)
                tk = _to_key(tl.load(grow + ti, mask=ti < ng, other=float("-inf")))
                tp = tk >= bound
                n_valid = tl.sum(gok.to(tl.int32), axis=0) + tl.sum((tk != 0).to(tl.int32), axis=0)
                n_head = tl.sum(gp.to(tl.int32), axis=0)
                npass = n_head + tl.sum(tp.to(tl.int32), axis=0)
                tl.store(glist + tl.cumsum(gp.to(tl.int32), axis=0) - 1, gi, mask=gp)
                tl.store(glist + n_head + tl.cumsum(tp.to(tl.int32), axis=0) - 1, ti, mask=tp)
                tl.debug_barrier()                 # (the ids are read back by other threads)
                if npass < n_valid:
                    n_in, n_gt = _list_from_groups(srow, glist, npass, n, a, bound, k, LIST_K, LIST_I,
                                                   list_base, G, TILE_G, LIST_CAP)
                    path = tl.where(n_in <= CAP, _PRUNED,
                                    tl.where(n_gt < k, _TIED, tl.where(n_in <= LIST_CAP, _LISTED, _CROWDED)))
                else:
                    # every group reaches the bound (masses of equal scores at it: ReLU zeros, equal
                    # rows): nothing is pruned, and reading the row group by group (twice, for a tie
                    # at the bound) costs more than the narrowing's streaming passes
                    path = n * 0 + _WIDE
        # the list resolved in registers at the end: the pruned rows' candidates or the listed rows'
        # final interval (one inlined copy of topk.py's register resolution for both)
        res_k = LIST_K
        res_i = LIST_I
        res_base = list_base
        res_n = n_in
        res_need = n * 0 + k
        res_written = n * 0
        resolve = n_in <= CAP
        if n_in <= CAP:
            # >= k valid group maxima: >= k valid entries, all k slots are written
            kk = n * 0 + k
        elif n_gt < k:
            # more than CAP keys >= bound but fewer than k above it: the k-th key is the bound
            _write_tied(srow, grow, glist, npass, n, a, bound, k - n_gt, k, orow, base, G, TILE_G)
            kk = n * 0 + k
        elif n_in <= LIST_CAP:
            # more than CAP candidates, >= k of them above the bound, all listed: narrow over the list
            res_n, res_need, res_written, resolve = _narrow_list(LIST_K, LIST_I, list_base, n_in, bound, k, orow,
                                                                 row, base, CAND_K, CAND_I, cand_base, CAP, TILE)
            res_k = CAND_K
            res_i = CAND_I
            res_base = cand_base
            kk = n * 0 + k
        else:
            # the long-row body rewrites the candidate list: order it after this program's stores
            tl.debug_barrier()
            kk = _long_row(srow, n, k, orow, row, base, ROW_LEN, 0, CAND_K, CAND_I, CAP, TILE, False, 1)
        if resolve:
            _write_listed(res_k, res_i, res_base, res_n, res_need, res_written, orow, row, base, ROW_LEN, 0, CAP,
                          False, 1)
    _pad_unused(orow, kk, k, K_PAD)
    if HAS_PATH:
        tl.store(PATH + row, path)


def topk_pruned_config(width: int, k: int, group_size: int = 16, rows: int | None = None, device=None):
    """CAP: short-row capacity and candidate-list length; GCAP: group maxima held in registers;
    TILE_G: groups per step of the candidate and tied passes; TILE: keys per step of the fallback
    passes. The launch's warps and register cap depend on the row count too (as in
    kernels/topk.topk_config); CAP, GCAP and TILE_G (the scratch's shape) do not.

    Measured on an H200 (rows of 131072, k = 2048, G = 16, group maxima given; exact), ms:
      rows  kind        radix   4 warps+128 regs  +TILE_G=32  4 warps  8 warps  2 warps  torch
      1024  random      1.158   0.569             0.546       1.001    0.979    0.964    1.657
      1024  structured  1.420   0.579             0.554       1.010    1.002    0.972    1.676
      1024  window      1.147   0.613             0.567       1.038    1.036    1.015    1.673
      1024  clusters    1.720   2.158             2.138       2.956    4.021    2.643    1.620
        64  random      0.271   0.256 (8 warps: 0.149; 16 warps: 0.106-0.109)          0.191
    (TILE_G = 64 unless named; the warp columns without a register cap; clusters: every row
    crowded, before the tied path.) Many rows: register-bound programs, small and capped win.
    Few rows (at most MANY_ROWS_PER_SM programs per SM): each row's passes are the critical
    path, so 16 warps per row (measured at TILE_G = 64; TILE_G is one for both, the scratch's
    shape may not depend on the row count)."""
    if INTERPRETED:
        # pinned and tiny (the interpreter pays per operation): tests pass their own to reach each path
        cap = max(16, min(next_pow2(width), 256))
        return dict(CAP=cap, LIST_CAP=4 * cap, GCAP=64, TILE_G=8, TILE=256, MIN_GROUP_RATIO=1.0, num_warps=4)
    cap = 8192
    if width <= cap:
        # every row is short: the short-row body of kernels/topk.py, with its launch choice
        short = topk_config(width, k, rows, device)
        return dict(short, LIST_CAP=short["CAP"], GCAP=16, TILE_G=16, MIN_GROUP_RATIO=1.0)
    gcap = max(16, next_pow2(width // group_size))       # (+ TILE_G: the extra group of unaligned rows)
    # MIN_GROUP_RATIO: with fewer than about 1.5 k groups (W = 32K at G = 16, k = 2048) the bound is
    # near the smallest group maximum and more than CAP candidates pass on random rows (a torch
    # simulation of make_rows: ~11K candidates at 1.0 k groups, ~3.3K at 1.5 k, ~2.3K at 4 k), so
    # those rows go straight to the narrowing instead of aborting a candidate pass first.
    # LIST_CAP: crowded rows (recency windows: whole groups above the bound, 8.8K-11.2K candidates
    # at W = 128K on the speed command's structured rows) narrow over a list of up to 4 * CAP
    cfg = dict(CAP=cap, LIST_CAP=4 * cap, GCAP=min(gcap, 8192), TILE_G=32, TILE=1024, MIN_GROUP_RATIO=1.5)
    if rows is not None and rows <= MANY_ROWS_PER_SM * _sm_count(device):
        return dict(cfg, num_warps=16)
    return dict(cfg, num_warps=4, maxnreg=128)


def _merged_config(width, k, group_size, rows, device, config):
    """The launch config with the caller's overrides; a CAP given without LIST_CAP gets 4 * CAP."""
    cfg = topk_pruned_config(width, k, group_size, rows, device)
    if config:
        cfg.update(config)
        if "CAP" in config and "LIST_CAP" not in config:
            cfg["LIST_CAP"] = 4 * cfg["CAP"]
    if not cfg["CAP"] <= cfg["LIST_CAP"] <= 255 * cfg["TILE"]:
        # (the list's narrowing packs its counts in 8-bit fields per tile slot: 255 tiles at most)
        raise ValueError(f"LIST_CAP must lie in [CAP, 255 * TILE], got {cfg['LIST_CAP']}")
    return cfg


def launch_topk_pruned(scores, gmax, k: int, row_len, base=None, group_size: int = 16, *, out=None,
                       scratch=None, config=None, path_out=None):
    """int32 [T, k] selection equal to kernels/topk.launch_topk's (see module docstring), given
    the group maxima gmax [T, >= max n_groups] (float32) of groups of group_size absolute
    positions. path_out: optional int32 [T] that receives each row's PATH_* code. No validation:
    callers pass consistent shapes and int32 row_len/base."""
    T, W = scores.shape
    G = int(group_size)
    if G < 1 or G & (G - 1):
        raise ValueError(f"group_size must be a power of two, got {group_size}")
    cfg = _merged_config(W, k, G, T, scores.device, config)
    if INTERPRETED or not cfg.get("maxnreg", 1):
        cfg.pop("maxnreg", None)          # (maxnreg 0 or None: no register cap)
    cap = cfg.pop("CAP")
    min_groups = max(k, math.ceil(cfg.pop("MIN_GROUP_RATIO") * k))
    if out is None:
        out = torch.empty((T, k), dtype=torch.int32, device=scores.device)
    if T == 0:
        return out
    long_rows = W > cap
    glen = cfg["GCAP"] + cfg["TILE_G"]
    list_cap = cfg["LIST_CAP"]
    rows = T if long_rows else 1
    if (scratch is None or len(scratch) != 5 or scratch[0].shape[1] != cap or scratch[2].shape[1] != glen
            or scratch[3].shape[1] != list_cap or scratch[0].shape[0] < rows):
        scratch = pruned_scratch(rows, cap, glen, scores.device, list_cap)
    cand_k, cand_i, glist, list_k, list_i = scratch
    _topk_pruned_kernel[(T,)](
        scores, gmax, row_len, base if base is not None else row_len, out, cand_k, cand_i, glist, list_k, list_i,
        path_out if path_out is not None else row_len,
        k, min_groups, scores.stride(0), gmax.stride(0), out.stride(0),
        G=G, CAP=cap, K_PAD=next_pow2(k), HAS_BASE=base is not None, HAS_PATH=path_out is not None, **cfg,
    )
    return out


def scratch_for_pruned(rows: int, width: int, k: int, device, config=None, group_size: int = 16):
    """The scratch launch_topk_pruned needs for rows of this width (allocate once, reuse)."""
    cfg = _merged_config(width, k, group_size, rows, device, config)
    return pruned_scratch(rows if width > cfg["CAP"] else 1, cfg["CAP"], cfg["GCAP"] + cfg["TILE_G"], device,
                          cfg["LIST_CAP"])


def pruned_scratch(rows: int, cap: int, glen: int, device, list_cap: int | None = None):
    """Per row: the CAP-long list of the narrowing's final interval (keys, row offsets), the
    passing groups' ids (GCAP + TILE_G) and the candidate pass's list (keys, row offsets;
    LIST_CAP each, 4 * CAP unless given). Short rows only (rows = 1) need none of it but the
    arguments. 1024 rows at CAP = 8192, LIST_CAP = 32768: 320 MiB."""
    list_cap = 4 * cap if list_cap is None else list_cap
    return topk_scratch(rows, cap, device) + (torch.empty((rows, glen), dtype=torch.int32, device=device),) \
        + topk_scratch(rows, list_cap, device)
