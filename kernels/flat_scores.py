"""Flat lightning-indexer scores in one fused Triton kernel.

    I[t, s] = k_scale[s] * sum_h w[t, h] * relu(q[t, h] . k[s])      for ks[t] <= s < ke[t]

One program owns BLOCK_Q queries x all H heads (BLOCK_Q * H rows of Q, held on chip for the whole
loop) and streams BLOCK_N-key tiles of K through one matrix product per tile. ReLU, the head
weights, the head sum and the key scale are applied in registers, so nothing of size T x N x H ever
reaches memory. Axis 1 of the grid splits the key range into SPLIT_N-key pieces so that short query
batches (decode) still fill the GPU.

Output layout is *relative*: out[t, j] is the score of key ks[t] + j, for j < ke[t] - ks[t]. Columns
past a row's own range are not written. The top-k kernel reads each row only inside its range.

FLOPs: 2 * H * D per visible (query, key) pair. Bytes: keys D (+4 for the scale) per key per
program that reads them, 4 per written score.

With FORCE_ENDS, the first and the last visible position of every row get +inf: HISA's block stage
uses this kernel on pooled keys and must always keep those two blocks.

RELU off drops the ReLU (one max per product less): sum_h w[t, h] * (q[t, h] . k[s]). HISA's block
stage uses it for the `raw` stage-1 rule (hisa_bench/measure/stage1.py), whose scores can be
negative; the top-k kernel orders negative scores like any others.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._runtime import INTERPRETED, next_pow2, padded_dim


@triton.jit
def _flat_scores_kernel(
    Q, K, K_SCALE, W, KS, KE, OUT,
    T, N_KEYS, SPLIT_N,
    stride_qt, stride_qh, stride_kn, stride_wt, stride_ot,
    H: tl.constexpr, D: tl.constexpr, HP: tl.constexpr, DP: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_SCALE: tl.constexpr, FORCE_ENDS: tl.constexpr, KEYS_AS_A: tl.constexpr,
    UPCAST: tl.constexpr, RELU: tl.constexpr,
):
    pid_q = tl.program_id(0)
    pid_s = tl.program_id(1)
    R: tl.constexpr = BLOCK_Q * HP

    # The query tile: rows are (query, head) pairs; padded heads and queries load zeros and w = 0.
    rows = tl.arange(0, R)
    t_row = pid_q * BLOCK_Q + rows // HP
    h_row = rows % HP
    row_ok = (t_row < T) & (h_row < H)
    d = tl.arange(0, DP)
    d_ok = d < D
    q = tl.load(Q + t_row[:, None].to(tl.int64) * stride_qt + h_row[:, None] * stride_qh + d[None, :],
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:  # the interpreter computes low-precision arithmetic wrongly: work in float32
        q = q.to(tl.float32)
    w = tl.load(W + t_row * stride_wt + h_row, mask=row_ok, other=0.0)

    tq = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    tq_ok = tq < T
    ks = tl.load(KS + tq, mask=tq_ok, other=2147483647)
    ke = tl.load(KE + tq, mask=tq_ok, other=0)
    lo = tl.min(ks, axis=0)
    hi = tl.max(ke, axis=0)
    # Tiles are aligned to BLOCK_N in absolute positions; this program takes one SPLIT_N piece.
    n_begin = (lo // BLOCK_N) * BLOCK_N + pid_s * SPLIT_N
    n_end = tl.minimum(hi, n_begin + SPLIT_N)

    # Key offsets n * D pass 2^31 in a large packed cache (decode, 128K x 160 sequences): the tile's
    # base pointer advances in 64-bit, once per tile; the in-tile offsets stay 32-bit and
    # loop-invariant, so the inner loop does no 64-bit multiply.
    r = tl.arange(0, BLOCK_N)
    k_in_tile = r[:, None] * stride_kn + d[None, :]
    k_tile = K + n_begin.to(tl.int64) * stride_kn
    for n0 in range(n_begin, n_end, BLOCK_N):
        n = n0 + r
        n_ok = n < N_KEYS
        kt = tl.load(k_tile + k_in_tile, mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        k_tile += BLOCK_N * stride_kn
        if UPCAST:
            kt = kt.to(tl.float32)
        if KEYS_AS_A:
            # keys x (query, head): the head sum runs along the accumulator's columns (in-warp).
            s = tl.dot(kt, tl.trans(q))
            if RELU:
                s = tl.maximum(s, 0.0)
            s = s * w[None, :]
            s = tl.sum(tl.reshape(s, [BLOCK_N, BLOCK_Q, HP]), axis=2)
        else:
            s = tl.dot(q, tl.trans(kt))
            if RELU:
                s = tl.maximum(s, 0.0)
            s = s * w[:, None]
            s = tl.trans(tl.sum(tl.reshape(s, [BLOCK_Q, HP, BLOCK_N]), axis=1))
        if HAS_SCALE:
            s = s * tl.load(K_SCALE + n, mask=n_ok, other=0.0)[:, None]
        vis = (n[:, None] >= ks[None, :]) & (n[:, None] < ke[None, :]) & tq_ok[None, :]
        if FORCE_ENDS:
            ends = (n[:, None] == ks[None, :]) | (n[:, None] == ke[None, :] - 1)
            s = tl.where(ends, float("inf"), s)
        rel = n[:, None] - ks[None, :]
        tl.store(OUT + tq[None, :].to(tl.int64) * stride_ot + rel, s, mask=vis)


# Hopper's shared memory per block (H100 / H200: 227 KB). The budget keeps 32 KB for what the
# compiler adds (barriers, layout-conversion scratch of the head sum: up to 16 KB measured for H = 1);
# `python -m kernels.compile_check` measures every shape of the grid against the limit itself.
SMEM_LIMIT = 232448
SMEM_BUDGET = SMEM_LIMIT - 32 * 1024


def shared_bytes(cfg: dict, hp: int, dp: int, esize: int) -> int:
    """Shared memory the staged tiles take: the query tile (BLOCK_Q * HP rows) held for the whole
    loop, plus num_stages key tiles in flight."""
    return (cfg["BLOCK_Q"] * hp + cfg["num_stages"] * cfg["BLOCK_N"]) * dp * esize


def fit_shared(cfg: dict, hp: int, dp: int, esize: int) -> dict:
    """Shrink a config until its tiles fit the budget: fewer stages first (down to 2: one tile
    loads while one is used), then fewer query rows (keys are re-read by more programs), then
    narrower key tiles. Shapes that fit keep their config untouched."""
    cfg = dict(cfg)
    while shared_bytes(cfg, hp, dp, esize) > SMEM_BUDGET:
        if cfg["num_stages"] > 2:
            cfg["num_stages"] -= 1
        elif cfg["BLOCK_Q"] > 1 and cfg["BLOCK_Q"] * hp > 64:
            cfg["BLOCK_Q"] //= 2
        elif cfg["BLOCK_N"] > 16:
            cfg["BLOCK_N"] //= 2
        else:
            break
    return cfg


# Tuned on an H200 for H = 64, D = 128 (docs/performance.md: 256 query-head rows x 64 keys per step
# won for fp8 and bf16); larger tiles per shape are cut to fit shared memory (fit_shared). The
# interpreter gets one small pinned config.
def _config(hp: int, fp8: bool = True, dp: int = 128, esize: int | None = None):
    if INTERPRETED:
        return dict(BLOCK_Q=max(1, 64 // hp), BLOCK_N=64, num_warps=4, num_stages=1, KEYS_AS_A=True)
    esize = esize if esize is not None else (1 if fp8 else 2)
    # at most 64 queries per program: with 1-2 heads, 256 rows are 128-256 queries whose per-query
    # ranges and masks spill registers (ptxas: 336 B at H = 1). 16-bit keys of D > 128 take 32-key
    # tiles: 64 spill with Triton 3.9 (up to 360 B), 32 spill with neither 3.6 nor 3.9.
    block_n = 32 if esize >= 2 and dp >= 256 else 64
    return fit_shared(dict(BLOCK_Q=min(64, max(1, 256 // hp)), BLOCK_N=block_n, num_warps=8,
                           num_stages=5 if fp8 else 3, KEYS_AS_A=True), hp, dp, esize)


# Shortest key piece a program takes when the key range is split over programs: 2048 keys, or
# SHORT_SPLIT_KEYS when the queries alone give fewer programs than SMs (decode batches). HISA's
# block scores in decode (64 queries x 1024 pooled keys at 128K) ran 0.020 ms as 64 programs of
# 1024 keys and 0.012 as 256 programs of 256; in a 1024-query chunk, cutting the same 1024 pooled
# keys into 3 pieces made them slower (0.033 -> 0.041 ms): each piece reloads its 256-row query
# tile (kernels/decode_bench.py; docs/performance.md, 2026-12-01).
MIN_SPLIT_KEYS = 2048
SHORT_SPLIT_KEYS = 256


def _span(ks, ke, block_q, block_n):
    """Longest key range a program of block_q consecutive queries must cover."""
    T = ks.shape[0]
    n_qblocks = triton.cdiv(T, block_q)
    pad = n_qblocks * block_q - T
    ks_g = torch.nn.functional.pad(ks.long(), (0, pad), value=2**31 - 1).view(n_qblocks, block_q)
    ke_g = torch.nn.functional.pad(ke.long(), (0, pad), value=0).view(n_qblocks, block_q)
    return int((ke_g.max(1).values - (ks_g.min(1).values // block_n) * block_n).max().item())


# HISA's block scores (rows of pooled keys, L / B long: 256-1024 at 32K-128K with B 128) in
# programs of 128 query-head rows and 4 warps instead of the flat rule's 256 and 8. Measured on an
# H200, a 1024-query chunk (kernels.hisa_stage_bench, CUDA-graph replays, two rounds, gpu14):
# 0.0292-0.0293 against 0.0357-0.0358 ms at 128K, 0.0193-0.0194 against 0.0231 at 64K (maxnreg=128:
# 0.0308 / 0.0201; 128 rows at 8 warps: 0.0320 / 0.0208). The flat rule's 256-row programs take 143
# registers, one program per SM; a row of 1024 pooled keys is only 16 key steps, too few to hide
# each program's start. Only where that was measured: queries that share their keys (a chunk, not a
# decode batch) and enough of them that the flat rule's programs already number one per SM (from
# 525 queries at 64 heads); fewer queries keep the flat rule and its key split (decode batches,
# small chunks), as do fewer than 16 heads (below).
POOLED_ROWS, POOLED_WARPS, POOLED_MIN_HEADS = 128, 4, 16


def scores_plan(ks, ke, H: int, config=None, split_n=None, fp8=True, D: int = 128, esize: int | None = None,
                pooled: bool = False):
    """Launch geometry for a set of query ranges (host ints; computing it syncs once).
    D and esize (bytes per q / k element) size the tiles to fit shared memory. pooled: the keys are
    HISA's pooled block keys (short rows; POOLED_ROWS above)."""
    T = ks.shape[0]
    hp = max(next_pow2(H), 1)
    esize = esize if esize is not None else (1 if fp8 else 2)
    cfg = dict(_config(hp, fp8, padded_dim(D, esize), esize))
    if config:
        cfg.update(config)
    block_q, block_n = cfg["BLOCK_Q"], cfg["BLOCK_N"]
    width = int((ke - ks).max().item()) if T else 0
    span = _span(ks, ke, block_q, block_n) if T else 0
    if span > 2 * width + block_n and not (config and "BLOCK_Q" in config):
        # the queries of one program do not share keys (decode batches, packed sequences):
        # one query per program, or each would score its neighbours' keys too
        block_q = cfg["BLOCK_Q"] = max(1, 16 // hp)
        span = _span(ks, ke, block_q, block_n)
    elif (pooled and not INTERPRETED and hp >= POOLED_MIN_HEADS and not (config and "BLOCK_Q" in config)
          and span <= width + block_n and triton.cdiv(T, block_q) >= 132):
        # queries that share their keys (a chunk), over pooled keys: smaller programs (POOLED_ROWS).
        # With fewer heads a program holds more queries, whose masks take registers: at 4 warps,
        # 32 queries of 4 heads spill (ptxas, Triton 3.9), so the flat rule stands there
        block_q = cfg["BLOCK_Q"] = POOLED_ROWS // hp
        span = _span(ks, ke, block_q, block_n) if T else 0
        if "num_warps" not in (config or {}):
            cfg["num_warps"] = POOLED_WARPS
    if block_q * hp < 16:  # tl.dot needs at least 16 rows/columns
        block_q = cfg["BLOCK_Q"] = 16 // hp
        span = _span(ks, ke, block_q, block_n) if T else 0
    n_qblocks = triton.cdiv(T, block_q) if T else 0
    if split_n is None:
        # enough programs to fill the machine, without pieces so small that reloading Q dominates
        piece = SHORT_SPLIT_KEYS if n_qblocks < 132 else MIN_SPLIT_KEYS
        pieces = max(1, min(triton.cdiv(max(span, 1), piece), triton.cdiv(4 * 132, max(n_qblocks, 1))))
        split_n = triton.cdiv(triton.cdiv(max(span, 1), pieces), block_n) * block_n
    split_n = max(block_n, (split_n // block_n) * block_n)
    n_split = triton.cdiv(max(span, 1), split_n)
    return dict(width=width, grid=(n_qblocks, n_split), split_n=split_n, hp=hp, cfg=cfg)


def launch_scores(q, k, w, ks, ke, k_scale=None, *, out=None, force_ends=False, plan=None,
                  config=None, relu=True):
    """Low-level launcher: no validation (hisa_bench.api has the checked entry points).
    relu=False leaves out the ReLU (HISA's raw stage-1 rule on pooled keys).

    Returns out[T, width] with out[t, j] = I[t, ks[t] + j] for j < ke[t] - ks[t]; other columns
    are left as they were.
    """
    T, H, D = q.shape
    if plan is None:
        plan = scores_plan(ks, ke, H, config, fp8=q.dtype == torch.float8_e4m3fn, D=D, esize=q.element_size())
    width = plan["width"]
    if out is None:
        out = torch.empty((T, max(width, 1)), dtype=torch.float32, device=q.device)
    if T == 0 or width <= 0:
        return out
    cfg = dict(plan["cfg"])
    block_q = cfg.pop("BLOCK_Q")
    scale = k_scale if k_scale is not None else w  # dummy pointer when unused
    _flat_scores_kernel[plan["grid"]](
        q, k, scale, w, ks, ke, out,
        T, k.shape[0], plan["split_n"],
        q.stride(0), q.stride(1), k.stride(0), w.stride(0), out.stride(0),
        H=H, D=D, HP=plan["hp"], DP=padded_dim(D, q.element_size()), BLOCK_Q=block_q,
        HAS_SCALE=k_scale is not None, FORCE_ENDS=force_ends, UPCAST=INTERPRETED, RELU=bool(relu),
        **cfg,
    )
    return out
