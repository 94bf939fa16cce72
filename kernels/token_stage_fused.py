"""HISA stage 2 in one kernel: score each query's kept blocks and select its top-k, no second launch.

The unfused path is two launches: kernels/gather_scores.py writes [M, m*B] float32 candidate scores
and kernels/topk.py (short-row register path) reads them back. Here one program owns one query (or
QPP queries, one after the other):

  1. scores: for each kept block, one [B, D] key tile against the query's [H, D] tile (which stays
     on chip), ReLU, weighted head sum -- the very loop the gather kernel uses (_score_kept_blocks), so
     the math and the -inf of invisible keys and of kept = -1 slots are the same;
  2. the m*B scores go to this program's own scratch row (32 KB at m = 64, B = 128, written and
     read back by the same program within microseconds, so it should not leave L2; no other
     program reads it);
  3. after a barrier, the row is loaded back into registers once and the k-th key is found by the
     register bisection of topk.py's short rows (its helpers are imported, not copied); the output
     is written through the block map: candidate slot j -> kept[t, j // B] * B + j % B.

So the semantics are exactly gather_scores + launch_topk(block_map=kept): absolute positions, -1 in
unused slots (k larger than the visible candidates), -inf never selected, ties at the k-th score to
the lowest candidate slot (kept order, as the unfused path). What this saves: the second launch, the
[M, m*B] round trip through HBM, and, where two programs share an SM, one program's score MMAs
overlap the other's selection (integer/ALU work); whether they share one depends on the registers
ptxas gives the kernel (token_stage_config says what is known). None of this is measured yet:
kernels/token_stage_bench.py is the measurement.

The selection stops its bisection at the first threshold that exactly r keys reach (topk.py's
_threshold_in_registers: no tie can be involved then), which on random scores comes several steps
before the 32nd (H200, as an option here before it was the rule: 0.52 against 0.56 ms for 1024
queries); when k >= the valid candidates there is no bisection at all.

STEP_BITS=2 (a variant, exact, with the same early exit): two bits per bisection step, three thresholds
counted in one reduction, so at most 16 reductions instead of 32.

Rows must fit registers: m*B <= MAX_ROW (8192 fp32 over 8 warps = 32 registers per thread). Wider
rows take the unfused path (kernels/indexers.py routes them).
The torch reference of what is selected is kernels/hisa_naive.py (hisa_select_ref with kept given).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2, padded_dim
from .gather_scores import _fit, _query_tile, _score_kept_blocks
from .topk import FULL, _bit_length, _map_index, _to_key, _write_from_registers

MAX_ROW = 8192          # candidates per query held in registers (m * B)


@triton.jit
def _add_pair(a0, a1, b0, b1):
    return a0 + b0, a1 + b1


@triton.jit
def _kth_two_bits(ck, ok, r, n_ok):
    """topk._threshold_in_registers's bisection (without its zero shortcut) with two bits per step: three thresholds t + j * 2^s (j = 1..3) counted in one
    two-operand reduction (the counts of the first two packed in 14-bit fields of one int32: at most
    8192 keys each), so 16 reductions instead of 32 where no early exit comes. Same result."""
    lo = tl.min(tl.where(ok, ck, FULL), axis=0)
    hi = tl.max(tl.where(ok, ck, 0), axis=0)
    nb = _bit_length(hi - lo).to(tl.int32)
    nb = nb + (nb & 1)                                       # an even number of bits to resolve
    t = lo
    i = nb * 0
    done = (n_ok == r).to(tl.int32)
    while (i < nb) & (done == 0):
        one = tl.full([], 1, tl.uint32) << (nb - 2 - i).to(tl.uint32)     # (nb - 2 - i <= 30)
        c1 = t + one
        c2 = t + 2 * one
        c3 = t + 3 * one
        packed = (ok & (ck >= c1)).to(tl.int32) + ((ok & (ck >= c2)).to(tl.int32) << 14)
        n12, n3 = tl.reduce((packed, (ok & (ck >= c3)).to(tl.int32)), 0, _add_pair)
        n1 = n12 & 0x3FFF
        n2 = n12 >> 14
        # a threshold is taken when enough keys reach it and it lies in (t, hi] (no wrap-around);
        # v3 implies v2 implies v1, since counts fall as thresholds rise
        v1 = (n1 >= r) & (c1 > t) & (c1 <= hi)
        v2 = (n2 >= r) & (c2 > t) & (c2 <= hi)
        v3 = (n3 >= r) & (c3 > t) & (c3 <= hi)
        n = tl.where(v3, n3, tl.where(v2, n2, tl.where(v1, n1, -1)))
        t = tl.where(v3, c3, tl.where(v2, c2, tl.where(v1, c1, t)))
        done = (n == r).to(tl.int32)
        i += 2
    return t, done


@triton.jit
def _write_two_bits(ck, ci, ok, need, n_ok, orow, row, KEPT, stride_kept, BS: tl.constexpr):
    """topk._write_from_registers with the two-bit threshold (the same tie rule, by a prefix sum)."""
    thr, exact = _kth_two_bits(ck, ok, need, n_ok)
    n_gt = tl.sum((ok & (ck > thr)).to(tl.int32), axis=0)
    eq = ok & (ck == thr)
    take = (ok & (ck > thr)) | (eq & (tl.cumsum(eq.to(tl.int32), axis=0) <= need - n_gt))
    pos = tl.cumsum(take.to(tl.int32), axis=0) - 1
    tl.store(orow + pos, _map_index(ci, row, 0, KEPT, stride_kept, True, BS, take), mask=take)


@triton.jit
def _one_query(t, Q, K, K_SCALE, W, KEPT, KS, KE, OUT, srow, M, k,
               stride_qt, stride_qh, stride_kn, stride_wt, stride_kept, stride_ot,
               H: tl.constexpr, D: tl.constexpr, HP: tl.constexpr, DP: tl.constexpr, BS: tl.constexpr,
               SUB: tl.constexpr, CAP: tl.constexpr, K_PAD: tl.constexpr, HAS_SCALE: tl.constexpr,
               UPCAST: tl.constexpr, STEP_BITS: tl.constexpr):
    q, w, ks, ke = _query_tile(t, Q, W, KS, KE, stride_qt, stride_qh, stride_wt, H, D, HP, DP, UPCAST)
    # 1-2. the kept blocks' scores into this program's scratch row (slot i * B + r), with the gather
    # kernel's own loop
    _score_kept_blocks(q, w, K, K_SCALE, KEPT, srow, t, 0, M, ks, ke, stride_kn, stride_kept,
                       D, DP, BS, SUB, HAS_SCALE, UPCAST)
    # the row (this program's own stores) is read back by other threads: order them
    tl.debug_barrier()
    # 3. select in registers, write through the block map
    ci = tl.arange(0, CAP)
    ck = _to_key(tl.load(srow + ci, mask=ci < M * BS, other=float("-inf")))
    ok = ck != 0
    n_ok = tl.sum(ok.to(tl.int32), axis=0)
    kk = tl.minimum(k, n_ok)
    orow = OUT + t.to(tl.int64) * stride_ot
    if kk > 0:
        if STEP_BITS == 2:
            _write_two_bits(ck, ci, ok, kk, n_ok, orow, t, KEPT, stride_kept, BS)
        else:
            _write_from_registers(ck, ci, ok, n_ok, kk, 0, orow, t, 0, KEPT, stride_kept, CAP, True, BS)
    o = tl.arange(0, K_PAD)
    tl.store(orow + o, tl.full([K_PAD], -1, tl.int32), mask=(o >= kk) & (o < k))


@triton.jit
def _token_stage_kernel(
    Q, K, K_SCALE, W, KEPT, KS, KE, OUT, SCRATCH,
    T, M, k, stride_qt, stride_qh, stride_kn, stride_wt, stride_kept, stride_ot, stride_sc,
    H: tl.constexpr, D: tl.constexpr, HP: tl.constexpr, DP: tl.constexpr, BS: tl.constexpr,
    SUB: tl.constexpr, CAP: tl.constexpr, K_PAD: tl.constexpr, QPP: tl.constexpr,
    HAS_SCALE: tl.constexpr, UPCAST: tl.constexpr, STEP_BITS: tl.constexpr,
):
    tl.static_assert(CAP < 16384)     # (the two-bit steps pack counts of up to CAP keys in 14 bits)
    pid = tl.program_id(0)
    srow = SCRATCH + pid.to(tl.int64) * stride_sc
    if QPP == 1:
        _one_query(pid, Q, K, K_SCALE, W, KEPT, KS, KE, OUT, srow, M, k,
                   stride_qt, stride_qh, stride_kn, stride_wt, stride_kept, stride_ot,
                   H, D, HP, DP, BS, SUB, CAP, K_PAD, HAS_SCALE, UPCAST, STEP_BITS)
    else:
        for t in range(pid * QPP, tl.minimum(pid * QPP + QPP, T)):
            # the previous query's row has been read back by every thread before it is overwritten
            # (pid * 0 + t: a tensor; the interpreter's loop variable is a plain int)
            tl.debug_barrier()
            _one_query(pid * 0 + t, Q, K, K_SCALE, W, KEPT, KS, KE, OUT, srow, M, k,
                       stride_qt, stride_qh, stride_kn, stride_wt, stride_kept, stride_ot,
                       H, D, HP, DP, BS, SUB, CAP, K_PAD, HAS_SCALE, UPCAST, STEP_BITS)


def fits(blocks: int, block_size: int) -> bool:
    """Whether the fused kernel takes rows of m * B candidates (they must fit registers)."""
    return blocks * block_size <= MAX_ROW


def token_stage_config(T: int, m: int, bs: int, hp: int = 64, dp: int = 128, esize: int = 1) -> dict:
    """Launch config for (queries, m, B, padded H, padded D, element size). CAP: the row in
    registers (a power of two >= m * B). 8 warps: 8192 fp32 keys are 32 registers per thread (the
    short-row top-k measured 8 warps best at 8K-wide rows); the score tiles then fit the gather
    kernel's rule (_fit: SUB rows of a block per tile and num_stages so the [SUB, HP] accumulator
    and the query plus the stages' key tiles fit registers and shared memory for every H <= 128,
    D <= 256).
    Registers per thread at the tuned shape (ptxas for sm_90): 123 with Triton 3.9 (two programs
    per SM), 167 with Triton 3.6 (one); config maxnreg=128 caps them (Triton 3.6: 4 B spilled) so
    that two programs share an SM, one's MMAs beside the other's selection. Measured on the H200
    (docs/performance.md, 2026-11-30 second session): default 0.55-0.57 ms for 1024 queries,
    maxnreg 128 0.39, two-bit steps + maxnreg 128 0.37, against 0.36 for the two unfused kernels;
    the default stays as measured in the headline runs, and the fused stage stays off by default."""
    cap = max(16, next_pow2(m * bs))
    if INTERPRETED:
        return dict(CAP=cap, QPP=1, SUB=bs, num_warps=4, num_stages=1, STEP_BITS=1)
    cfg = _fit(dict(num_warps=8 if cap >= 1024 else 4, num_stages=3), hp, dp, esize, bs)
    return dict(CAP=cap, QPP=1, STEP_BITS=1, **cfg)


def token_stage_scratch(rows: int, m: int, bs: int, device, config=None):
    """float32 [programs, CAP]: one scratch row per program (allocate once, reuse across calls)."""
    qpp = (config or {}).get("QPP", 1)
    cap = max(16, next_pow2(m * bs))
    return torch.empty((max(1, triton.cdiv(rows, qpp)), cap), dtype=torch.float32, device=device)


def launch_token_stage(q, k, w, kept, ks, ke, block_size: int, topk: int, k_scale=None, *,
                       out=None, scratch=None, config=None):
    """int32 [T, topk] selection of HISA stage 2 (module docstring), in one launch. kept: int32
    [T, m] absolute block ids, -1 in unused slots; requires m * block_size <= MAX_ROW. No other
    validation: callers pass consistent, dense tensors (as kernels/indexers.py does)."""
    T, H, D = q.shape
    m = kept.shape[1]
    if not fits(m, block_size):
        raise ValueError(f"fused token stage: m * B = {m * block_size} candidates exceed {MAX_ROW}")
    if out is None:
        out = torch.empty((T, topk), dtype=torch.int32, device=q.device)
    if T == 0:
        return out
    hp, dp = max(16, next_pow2(H)), padded_dim(D, q.element_size())
    cfg = token_stage_config(T, m, block_size, hp, dp, q.element_size())
    if config:
        cfg.update(config)
    qpp = cfg.pop("QPP")
    cap = cfg.pop("CAP")
    progs = triton.cdiv(T, qpp)
    if scratch is None or scratch.shape[0] < progs or scratch.shape[1] != cap:
        scratch = torch.empty((progs, cap), dtype=torch.float32, device=q.device)
    _token_stage_kernel[(progs,)](
        q, k, k_scale if k_scale is not None else w, w, kept, ks, ke, out, scratch,
        T, m, topk, q.stride(0), q.stride(1), k.stride(0), w.stride(0), kept.stride(0), out.stride(0),
        scratch.stride(0),
        H=H, D=D, HP=hp, DP=dp, BS=block_size, CAP=cap, K_PAD=next_pow2(topk), QPP=qpp,
        HAS_SCALE=k_scale is not None, UPCAST=INTERPRETED, **cfg,
    )
    return out


__all__ = ["MAX_ROW", "fits", "launch_token_stage", "token_stage_config", "token_stage_scratch"]
