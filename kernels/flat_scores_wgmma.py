"""Flat lightning-indexer scores on Hopper, written in Gluon: asynchronous warpgroup MMAs overlap the
epilogue of the previous product.

    I[t, s] = k_scale[s] * sum_h w[t, h] * relu(q[t, h] . k[s])      for ks[t] <= s < ke[t]

Same contract and output layout as kernels/flat_scores.py (its torch reference is
kernels/flat_scores_naive.py). What differs is how a program spends its time. In the Triton kernel
every key tile's product [BLOCK_N keys x (BLOCK_Q * H)] is waited for before its epilogue (ReLU,
head weights, head sum, store) runs on the CUDA cores, so the tensor cores idle during the epilogue
(Nsight Compute, 128K chunk: 2.0M MMA cycles and 2.0M issue cycles per scheduler took 3.8M).
Here each tile's product is split by query: the MMA of query b + 1 is issued asynchronously before
the epilogue of query b, so the two run at the same time. Key tiles arrive by TMA into a ring of
STAGES shared-memory buffers, each completing on its own mbarrier; the program's query tile
[BLOCK_Q * H, D] is one TMA load held for the whole loop; the head weights and the per-query ranges
are loaded into registers once.

Not used by the pipeline: on an H200 it measured within -1% to +8% of the Triton kernel in the same
runs (969-1023 against 896-991 TFLOP/s), its epilogue as issue-latency-bound as the Triton one's
(docs/performance.md, 2026-12-01). `python -m kernels.flat_scores_wgmma_bench` times it;
`wgmma_fits` says which shapes it takes (fp8 and 16-bit inputs that TMA takes, Hopper GPUs only).
Gluon kernels do not run in the Triton interpreter: tests/test_flat_scores_wgmma.py compares it with
the reference on a Hopper GPU, and kernels.compile_check compiles it for sm_90 on any machine.
"""
from __future__ import annotations

import torch
import triton

from ._gluon import (HAVE_GLUON, TensorDescriptor, fence_async_shared, gl, gluon, mbarrier, warpgroup_mma,
                     warpgroup_mma_wait)
from ._gluon import barrier_ring, invalidate_ring
from ._gluon import cta_barrier as _cta_barrier
from ._gluon import tma_load as _tma_load


if HAVE_GLUON:
    @gluon.jit
    def _flat_scores_wgmma_kernel(
        q_desc, k_desc, K_SCALE, W, KS, KE, OUT,
        T, SPLIT_N, stride_wt, stride_ot,
        H: gl.constexpr, BLOCK_Q: gl.constexpr, BLOCK_N: gl.constexpr, K_INSTR: gl.constexpr,
        STAGES: gl.constexpr, HAS_SCALE: gl.constexpr, A_IN_REGS: gl.constexpr, W_IN_REGS: gl.constexpr,
        SLOT_SYNC: gl.constexpr, num_warps: gl.constexpr,
    ):
        pid_q = gl.program_id(0)
        pid_s = gl.program_id(1)
        R: gl.constexpr = BLOCK_Q * H
        gl.static_assert(BLOCK_Q <= 4, "at most 4 queries per program (the per-query values below)")
        D: gl.constexpr = k_desc.block_type.shape[1]

        # one query's product: [BLOCK_N keys, H heads], keys split over the warps (16 rows each)
        mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                      instr_shape=[16, H, K_INSTR])
        keys_l: gl.constexpr = gl.SliceLayout(1, mma)
        heads_l: gl.constexpr = gl.SliceLayout(0, mma)
        small_l: gl.constexpr = gl.BlockedLayout([BLOCK_Q], [32], [num_warps], [0])
        flat_l: gl.constexpr = gl.BlockedLayout([1], [32], [num_warps], [0])

        # this program's key range: the union of its queries' ranges, one SPLIT_N piece of it
        tq = pid_q * BLOCK_Q + gl.arange(0, BLOCK_Q, layout=small_l)
        tq_ok = tq < T
        lo = gl.min(gl.load(KS + tq, mask=tq_ok, other=2147483647), axis=0)
        hi = gl.max(gl.load(KE + tq, mask=tq_ok, other=0), axis=0)
        n_begin = (lo // BLOCK_N) * BLOCK_N + pid_s * SPLIT_N
        n_end = gl.minimum(hi, n_begin + SPLIT_N)
        n_tiles = gl.cdiv(gl.maximum(n_end - n_begin, 0), BLOCK_N)

        # shared memory: the query tile, the key ring, the head weights, the barriers
        q_smem = gl.allocate_shared_memory(q_desc.dtype, [R, D], q_desc.layout)
        k_bufs = gl.allocate_shared_memory(k_desc.dtype, [STAGES, BLOCK_N, D], k_desc.layout)
        w_smem = gl.allocate_shared_memory(gl.float32, [R], gl.SwizzledSharedLayout(1, 1, 1, order=[0]))
        bars = barrier_ring(STAGES + 1)
        q_bar = bars.index(STAGES)

        mbarrier.expect(q_bar, q_desc.block_type.nbytes)
        _tma_load(q_desc, [pid_q * R, 0], q_bar, q_smem)
        for i in gl.static_range(STAGES):
            mbarrier.expect(bars.index(i), k_desc.block_type.nbytes, pred=i < n_tiles)
            _tma_load(k_desc, [n_begin + i * BLOCK_N, 0], bars.index(i), k_bufs.index(i),
                                            pred=i < n_tiles)

        wi = gl.arange(0, R, layout=flat_l)
        wq = pid_q * BLOCK_Q + wi // H
        w_smem.store(gl.load(W + wq * stride_wt + wi % H, mask=wq < T, other=0.0))
        _cta_barrier()
        mbarrier.wait(q_bar, 0)

        # per-query values, loaded before the loop (the loop's stores could alias them, so the
        # compiler would reload them per tile): each query's output row, shifted by its range start,
        # and its range; BLOCK_Q <= 4
        orow0, ks0, ke0 = _query_row(OUT, KS, KE, pid_q * BLOCK_Q, T, stride_ot)
        orow1, ks1, ke1 = _query_row(OUT, KS, KE, pid_q * BLOCK_Q + 1, T, stride_ot)
        orow2, ks2, ke2 = _query_row(OUT, KS, KE, pid_q * BLOCK_Q + 2, T, stride_ot)
        orow3, ks3, ke3 = _query_row(OUT, KS, KE, pid_q * BLOCK_Q + 3, T, stride_ot)
        if W_IN_REGS:
            w0 = w_smem.slice(0, H).load(heads_l)
            w1 = w_smem.slice((1 % BLOCK_Q) * H, H).load(heads_l)
            w2 = w_smem.slice((2 % BLOCK_Q) * H, H).load(heads_l)
            w3 = w_smem.slice((3 % BLOCK_Q) * H, H).load(heads_l)

        r = gl.arange(0, BLOCK_N, layout=keys_l)
        zero = gl.zeros([BLOCK_N, H], gl.float32, layout=mma)
        for j in range(n_tiles):
            slot = j % STAGES
            mbarrier.wait(bars.index(slot), (j // STAGES) & 1)
            if A_IN_REGS:
                a = k_bufs.index(slot).load(gl.DotOperandLayout(operand_index=0, parent=mma, k_width=K_INSTR // 8))
            else:
                a = k_bufs.index(slot)
            n = n_begin + j * BLOCK_N + r
            if HAS_SCALE:
                scale = gl.load(K_SCALE + n, mask=n < n_end, other=0.0)
            acc = warpgroup_mma(a, q_smem.slice(0, H).permute((1, 0)), zero, use_acc=False, is_async=True)
            for b in gl.static_range(BLOCK_Q):
                if b + 1 < BLOCK_Q:
                    # the next query's product runs on the tensor cores during this query's epilogue
                    nxt = warpgroup_mma(a, q_smem.slice((b + 1) * H, H).permute((1, 0)), zero, use_acc=False,
                                        is_async=True)
                    cur = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
                else:
                    cur = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
                if b == 0:
                    orow, ks_t, ke_t = orow0, ks0, ke0
                elif b == 1:
                    orow, ks_t, ke_t = orow1, ks1, ke1
                elif b == 2:
                    orow, ks_t, ke_t = orow2, ks2, ke2
                else:
                    orow, ks_t, ke_t = orow3, ks3, ke3
                if W_IN_REGS:
                    if b == 0:
                        wb = w0
                    elif b == 1:
                        wb = w1
                    elif b == 2:
                        wb = w2
                    else:
                        wb = w3
                else:
                    wb = w_smem.slice(b * H, H).load(heads_l)
                s = gl.sum(gl.maximum(cur, 0.0) * wb[None, :], axis=1)
                if HAS_SCALE:
                    s = s * scale
                gl.store(orow + n, s, mask=(n >= ks_t) & (n < ke_t))
                if b + 1 < BLOCK_Q:
                    acc = nxt
            # every warp is done with this slot: refill it. With the keys in registers and one
            # warpgroup, the issuing thread's wait above already implies it (a warpgroup product
            # starts only once every warp has issued it, so every warp's shared-memory reads of the
            # slot are done); otherwise (SLOT_SYNC) all warps meet at a barrier first
            if A_IN_REGS:
                fence_async_shared()      # order the generic reads of the slot before the TMA write
            if SLOT_SYNC:
                _cta_barrier()
            nj = j + STAGES
            mbarrier.expect(bars.index(slot), k_desc.block_type.nbytes, pred=nj < n_tiles)
            _tma_load(k_desc, [n_begin + nj * BLOCK_N, 0], bars.index(slot),
                                            k_bufs.index(slot), pred=nj < n_tiles)
        invalidate_ring(bars, STAGES + 1)


    @gluon.jit
    def _query_row(OUT, KS, KE, t, T, stride_ot):
        """Query t's output row shifted by its range start (out[t, n - ks] = row[n]) and its range;
        an empty range past the last query."""
        ks = gl.load(KS + t, mask=t < T, other=0)
        ke = gl.load(KE + t, mask=t < T, other=0)
        return OUT + t.to(gl.int64) * stride_ot - ks, ks, ke


def _gl_dtype(dtype):
    return {torch.float8_e4m3fn: gl.float8e4nv, torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}[dtype]


def wgmma_fits(q, k, relu=True, force_ends=False) -> bool:
    """Shapes this kernel takes: a Hopper GPU, H of 64 or 128 (a TMA box of at most 256 query-head
    rows, at most 4 queries per program), rows of 32 to 128 bytes (fp8 D <= 128, 16-bit D <= 64:
    larger rows spill registers or overflow shared memory, `python -m kernels.compile_check`),
    contiguous 2-D views."""
    if not HAVE_GLUON or not q.is_cuda or not relu or force_ends:
        return False
    if torch.cuda.get_device_capability(q.device)[0] != 9:
        return False
    T, H, D = q.shape
    es = q.element_size()
    return (q.dtype in (torch.float8_e4m3fn, torch.bfloat16, torch.float16) and k.dtype == q.dtype
            and H in (64, 128) and D % 16 == 0 and 32 <= D * es <= 128
            and q.is_contiguous() and k.stride(1) == 1 and (k.stride(0) * es) % 16 == 0)


def default_config(H: int, D: int, esize: int) -> dict:
    return dict(BLOCK_Q=max(1, 256 // H), BLOCK_N=64, STAGES=4, A_IN_REGS=True, W_IN_REGS=True, num_warps=4)


def launch_scores_wgmma(q, k, w, ks, ke, k_scale, out, grid, split_n, config=None):
    """out[t, j] = I[t, ks[t] + j] (kernels/flat_scores.py's layout). grid: (query blocks of
    config BLOCK_Q, key pieces of split_n keys), as kernels.flat_scores.scores_plan computes it."""
    T, H, D = q.shape
    cfg = default_config(H, D, q.element_size())
    if config:
        cfg.update(config)
    bq, bn = cfg.pop("BLOCK_Q"), cfg.pop("BLOCK_N")
    cfg.setdefault("SLOT_SYNC", not (cfg["A_IN_REGS"] and cfg["num_warps"] == 4))
    dt = _gl_dtype(q.dtype)
    q2 = q.view(T * H, D)
    q_layout = gl.NVMMASharedLayout.get_default_for([bq * H, D], dt)
    k_layout = gl.NVMMASharedLayout.get_default_for([bn, D], dt)
    q_desc = TensorDescriptor(q2, list(q2.shape), list(q2.stride()), [bq * H, D], q_layout)
    k_desc = TensorDescriptor(k, list(k.shape), list(k.stride()), [bn, D], k_layout)
    _flat_scores_wgmma_kernel[grid](
        q_desc, k_desc, k_scale if k_scale is not None else w, w, ks, ke, out,
        T, split_n, w.stride(0), out.stride(0),
        H=H, BLOCK_Q=bq, BLOCK_N=bn, K_INSTR=256 // (8 * q.element_size()),
        HAS_SCALE=k_scale is not None, **cfg,
    )
    return out
