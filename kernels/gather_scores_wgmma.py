"""HISA stage 2 (the token scores inside each query's kept blocks) on Hopper, written in Gluon: key
tiles by TMA, asynchronous warpgroup MMAs that overlap the previous product's epilogue.

    cand[t, i * B + r] = I[t, kept[t, i] * B + r]   if that key is visible to t, else -inf
    I[t, n] = k_scale[n] * sum_h w[t, h] * relu(q[t, h] . k[n])

Same contract and output layout as kernels/gather_scores.py (its torch reference is
kernels/hisa_naive.py). What differs is how a program spends its time. The Triton kernel is bound by
issue and latency (Nsight Compute, 1024 queries, m = 64, B = 128: 22K instructions per warp), its
warps stalled waiting for each product right after issuing it, on the tile copy's barrier and on the
per-key scale load inside the loop. Here one program (query t, a run of its kept blocks) cuts each
block into tiles of SUB keys (a whole 128-key block by default) and:
  - copies key tiles by TMA into a ring of STAGES shared buffers, each completing on its own
    mbarrier, STAGES tiles ahead (a block is B contiguous keys, so a tile is one box of a 2-D
    descriptor over k; the kept ids are scalars, read one refill ahead);
  - issues each product [16 * num_warps keys (64: one warpgroup) x H / HEAD_SPLIT heads] (a slice of
    the tile, KSPLIT = SUB / (16 * num_warps) per tile)
    asynchronously before the previous one's epilogue (ReLU, head weights, head sum, scale,
    store), so the tensor cores work while the CUDA cores do. Copying whole blocks halves the
    copies, barrier waits and refills per key against 64-key tiles: every copy's bookkeeping runs
    in all four warps (and the compiler puts a CTA barrier beside each mbarrier operation), so it
    is paid per key. Products are pipelined within a group of GROUP tiles, and a group retires all of its own:
    ptxas serializes every product of a loop whose in-flight product crosses the back edge and is
    then read (C7514); between groups the other programs on the SM keep the tensor cores busy;
  - refills a slot as soon as the products that read it have completed, before their epilogue;
  - loads the next key slice's scales before waiting for the current product, so their latency
    hides behind that wait and its epilogue.
The query tile [H, D] is one TMA load held for the whole run, the head weights sit in registers;
the MMA reads the keys from shared memory (A_IN_REGS: loaded to registers first).
Two accumulators are live at once (the one in the epilogue, the one on the tensor cores); H = 128
takes its heads in two products of 64 (HEAD_SPLIT) to keep them at 32 registers each. Keys past N
are zero-filled by TMA; invisible keys and kept = -1 (the load then reads block 0) are masked to
-inf in the epilogue, never by the load.

FLOPs: 2 * H * D * B per kept block; bytes: B * D (+4 B of scale) per kept block, 4 B per written
score. Shared memory per program: (H + STAGES * SUB) * D elements (fp8 H64 D128, 2 x 128 keys: 40 KB).

HISA's pipeline uses it on Hopper for chunks of at least indexers.GLUON_GATHER_MIN_ROWS queries where
it takes the shape (0.159-0.167 against 0.189-0.194 ms for the Triton kernel, 1024 queries, H200);
decode batches keep the Triton kernel. `python -m kernels.gather_scores_wgmma_bench` compares the two. `gather_wgmma_fits` says which
shapes it takes (Hopper GPUs only, H of 64 or 128, rows of 32, 64 or 128 bytes, B a multiple of 64).
Gluon kernels do not run in the Triton interpreter: tests/test_gather_scores_wgmma.py compares it
with the reference on a Hopper GPU, and kernels.compile_check compiles it for sm_90 on any machine.
"""
from __future__ import annotations

import torch
import triton

from .gather_scores import gather_config

from ._gluon import (HAVE_GLUON, TensorDescriptor, fence_async_shared, gl, gluon, mbarrier, warpgroup_mma,
                     warpgroup_mma_wait)
from ._gluon import barrier_ring, invalidate_ring
from ._gluon import cta_barrier as _cta_barrier
from ._gluon import tma_load as _tma_load


if HAVE_GLUON:
    @gluon.jit
    def _gather_scores_wgmma_kernel(
        q_desc, k_desc, K_SCALE, W, KEPT, KS, KE, OUT,
        M, stride_wt, stride_kept, stride_ot,
        H: gl.constexpr, BS: gl.constexpr, K_INSTR: gl.constexpr, HEAD_SPLIT: gl.constexpr, STAGES: gl.constexpr,
        GROUP: gl.constexpr, BLOCKS_PER_PROG: gl.constexpr, HAS_SCALE: gl.constexpr, A_IN_REGS: gl.constexpr,
        SLOT_SYNC: gl.constexpr, num_warps: gl.constexpr,
    ):
        SUB: gl.constexpr = k_desc.block_type.shape[0]   # keys per copied tile
        D: gl.constexpr = k_desc.block_type.shape[1]
        MK: gl.constexpr = 16 * num_warps              # keys per product: a warp takes 16
        KSPLIT: gl.constexpr = SUB // MK               # products along the keys of one tile
        TPB: gl.constexpr = BS // SUB                  # tiles per kept block
        UPB: gl.constexpr = BS // MK                   # product key slices per kept block
        HN: gl.constexpr = H // HEAD_SPLIT             # heads per product
        gl.static_assert(TPB * SUB == BS, "a kept block is a whole number of key tiles")
        gl.static_assert(HEAD_SPLIT == 1 or HEAD_SPLIT == 2, "the heads in one or two products (w0, w1 below)")
        gl.static_assert(STAGES >= 2, "a slot is refilled while the next tile's product reads another")
        gl.static_assert(SUB % (16 * num_warps) == 0, "a warp takes 16-key slices of a tile, a warpgroup 64 keys")

        t = gl.program_id(0)
        i0 = gl.program_id(1) * BLOCKS_PER_PROG
        n_tiles = (gl.minimum(i0 + BLOCKS_PER_PROG, M) - i0) * TPB     # >= TPB: every program has a block
        n_units = n_tiles * KSPLIT                                     # product key slices
        kept_row = KEPT + t.to(gl.int64) * stride_kept + i0
        out_row = OUT + t.to(gl.int64) * stride_ot + i0 * BS          # slice u writes out_row[u * MK + r]
        ks = gl.load(KS + t)
        ke = gl.load(KE + t)

        # one product: [MK keys, HN heads], keys split over the warps (16 rows each)
        mma: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[num_warps, 1],
                                                      instr_shape=[16, HN, K_INSTR])
        keys_l: gl.constexpr = gl.SliceLayout(1, mma)
        heads_l: gl.constexpr = gl.SliceLayout(0, mma)

        # shared memory: the query tile, the key ring, the barriers (STAGES slots + the query's)
        q_smem = gl.allocate_shared_memory(q_desc.dtype, [H, D], q_desc.layout)
        k_bufs = gl.allocate_shared_memory(k_desc.dtype, [STAGES, SUB, D], k_desc.layout)
        bars = barrier_ring(STAGES + 1)
        q_bar = bars.index(STAGES)

        mbarrier.expect(q_bar, q_desc.block_type.nbytes)
        _tma_load(q_desc, [t * H, 0], q_bar, q_smem)
        for i in gl.static_range(STAGES):
            b = gl.load(kept_row + i // TPB, mask=i < n_tiles, other=0)
            _load_tile(k_desc, b, i, n_tiles, bars.index(i), k_bufs.index(i), BS, SUB, TPB)
        # the block of the next tile to copy (tile STAGES), read one refill ahead of its use
        fill_b = gl.load(kept_row + STAGES // TPB, mask=STAGES < n_tiles, other=0)

        # the head weights of each product (w1 = w0 when one product takes every head)
        hh = gl.arange(0, HN, layout=heads_l)
        w0 = gl.load(W + t * stride_wt + hh)
        w1 = gl.load(W + t * stride_wt + (HEAD_SPLIT - 1) * HN + hh)
        r = gl.arange(0, MK, layout=keys_l)
        zero = gl.zeros([MK, HN], gl.float32, layout=mma)

        # The tiles in groups of GROUP (and the GROUP - 1 or fewer left over one by one): within a
        # group each product is issued before the previous one is waited for, so it runs on the
        # tensor cores during that one's epilogue; a group retires all of its products. (A product
        # in flight across the loop's back edge, its accumulator read after a wait for all but one,
        # makes ptxas serialize every product, C7514.)
        n, scale = _tile_keys(kept_row, 0, n_units, r, K_SCALE, ks, ke, BS, MK, UPB, HAS_SCALE)
        mbarrier.wait(q_bar, 0)
        n_grouped = n_tiles // GROUP * GROUP
        for j0 in range(0, n_grouped, GROUP):
            fill_b, n, scale = _tile_group(
                j0, n, scale, fill_b, n_tiles, q_smem, k_bufs, bars, k_desc, kept_row, out_row, K_SCALE, ks, ke,
                w0, w1, r, zero, mma, GROUP, BS, SUB, TPB, MK, KSPLIT, HN, HEAD_SPLIT, STAGES, K_INSTR, HAS_SCALE,
                A_IN_REGS, SLOT_SYNC)
        for j0 in range(n_grouped, n_tiles):
            fill_b, n, scale = _tile_group(
                j0, n, scale, fill_b, n_tiles, q_smem, k_bufs, bars, k_desc, kept_row, out_row, K_SCALE, ks, ke,
                w0, w1, r, zero, mma, 1, BS, SUB, TPB, MK, KSPLIT, HN, HEAD_SPLIT, STAGES, K_INSTR, HAS_SCALE,
                A_IN_REGS, SLOT_SYNC)
        invalidate_ring(bars, STAGES + 1)


    @gluon.jit
    def _tile_group(j0, n, scale, fill_b, n_tiles, q_smem, k_bufs, bars, k_desc, kept_row, out_row, K_SCALE, ks, ke,
                    w0, w1, r, zero, mma: gl.constexpr, NT: gl.constexpr, BS: gl.constexpr, SUB: gl.constexpr,
                    TPB: gl.constexpr, MK: gl.constexpr, KSPLIT: gl.constexpr, HN: gl.constexpr,
                    HEAD_SPLIT: gl.constexpr, STAGES: gl.constexpr, K_INSTR: gl.constexpr, HAS_SCALE: gl.constexpr,
                    A_IN_REGS: gl.constexpr, SLOT_SYNC: gl.constexpr):
        """Scores of tiles j0 .. j0 + NT - 1 (n, scale: the key positions and scales of tile j0's
        first key slice), their NT * KSPLIT * HEAD_SPLIT products one ahead of the epilogues.
        Product p takes key slice p // HEAD_SPLIT of the group (MK keys: tile j0 + that // KSPLIT,
        rows (that % KSPLIT) * MK..) and heads (p % HEAD_SPLIT) * HN... Returns the block of the
        next refill and the next group's first key slice's positions and scales."""
        P: gl.constexpr = NT * KSPLIT * HEAD_SPLIT
        UPB: gl.constexpr = BS // MK
        n_units = n_tiles * KSPLIT
        mbarrier.wait(bars.index(j0 % STAGES), (j0 // STAGES) & 1)
        acc = _product(k_bufs.index(j0 % STAGES), 0, q_smem.slice(0, HN), zero, mma, MK, KSPLIT, K_INSTR, A_IN_REGS)
        for p in gl.static_range(P):
            us = p // HEAD_SPLIT                 # the product's key slice within the group
            j = j0 + us // KSPLIT                # its tile
            u = j0 * KSPLIT + us                 # its key slice within the program
            if p % HEAD_SPLIT == HEAD_SPLIT - 1:
                # the next key slice's positions and scales, before waiting for this product:
                # their latency hides behind the wait and this slice's epilogue
                n_next, scale_next = _tile_keys(kept_row, u + 1, n_units, r, K_SCALE, ks, ke, BS, MK, UPB,
                                                HAS_SCALE)
            if p + 1 < P:
                # the next product runs on the tensor cores during this one's epilogue; the first
                # of a tile waits for the tile's copy
                us1 = (p + 1) // HEAD_SPLIT
                j1 = j0 + us1 // KSPLIT
                if (p + 1) % (KSPLIT * HEAD_SPLIT) == 0:
                    mbarrier.wait(bars.index(j1 % STAGES), (j1 // STAGES) & 1)
                nxt = _product(k_bufs.index(j1 % STAGES), (p + 1) // HEAD_SPLIT % KSPLIT,
                               q_smem.slice((p + 1) % HEAD_SPLIT * HN, HN), zero, mma, MK, KSPLIT, K_INSTR,
                               A_IN_REGS)
                cur = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            else:
                cur = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
            if (p + 1) % (KSPLIT * HEAD_SPLIT) == 0:
                # tile j's products have completed: refill its slot now, before the epilogue, so the
                # copy has the longest time to land
                fill_b = _refill(k_desc, k_bufs, bars, kept_row, fill_b, j, n_tiles, BS, SUB, TPB, STAGES,
                                 A_IN_REGS, SLOT_SYNC)
            if p % HEAD_SPLIT == 0:
                sc = _head_sum(cur, w0)
            else:
                sc = sc + _head_sum(cur, w1)
            if p % HEAD_SPLIT == HEAD_SPLIT - 1:
                _store_scores(sc, n, scale, ks, ke, out_row + u * MK + r, HAS_SCALE)
                n = n_next
                scale = scale_next
            if p + 1 < P:
                acc = nxt
        return fill_b, n, scale


    @gluon.jit
    def _load_tile(k_desc, b, jj, n_tiles, bar, buf, BS: gl.constexpr, SUB: gl.constexpr, TPB: gl.constexpr):
        """TMA copy of tile jj (rows (jj % TPB) * SUB.. of kept block b; block 0 for b = -1, masked
        later) into buf, completing on bar; nothing past the program's last tile."""
        ok = jj < n_tiles
        mbarrier.expect(bar, k_desc.block_type.nbytes, pred=ok)
        _tma_load(k_desc, [gl.maximum(b, 0) * BS + (jj % TPB) * SUB, 0], bar, buf, pred=ok)


    @gluon.jit
    def _tile_keys(kept_row, u, n_units, r, K_SCALE, ks, ke, BS: gl.constexpr, MK: gl.constexpr, UPB: gl.constexpr,
                   HAS_SCALE: gl.constexpr):
        """Key positions of key slice u (MK keys; negative for kept = -1, and past the program's
        last slice) and their scales (0 where invisible)."""
        b = gl.load(kept_row + u // UPB, mask=u < n_units, other=-1)
        n = b * BS + (u % UPB) * MK + r
        if HAS_SCALE:
            scale = gl.load(K_SCALE + n, mask=(n >= ks) & (n < ke), other=0.0)
        else:
            scale = gl.full(r.shape, 1.0, gl.float32, layout=r.type.layout)
        return n, scale


    @gluon.jit
    def _product(buf, s: gl.constexpr, q_heads, zero, mma: gl.constexpr, MK: gl.constexpr, KSPLIT: gl.constexpr,
                 K_INSTR: gl.constexpr, A_IN_REGS: gl.constexpr):
        """Issue (asynchronously) the product of key slice s (MK keys) of the tile in buf with the
        query rows q_heads: [MK keys, HN heads], the keys as the MMA's A operand (loaded to
        registers, or read from shared memory), the query rows as B."""
        if KSPLIT > 1:
            buf = buf.slice(s * MK, MK)
        if A_IN_REGS:
            a = buf.load(gl.DotOperandLayout(operand_index=0, parent=mma, k_width=K_INSTR // 8))
        else:
            a = buf
        return warpgroup_mma(a, q_heads.permute((1, 0)), zero, use_acc=False, is_async=True)


    @gluon.jit
    def _refill(k_desc, k_bufs, bars, kept_row, fill_b, j, n_tiles, BS: gl.constexpr, SUB: gl.constexpr,
                TPB: gl.constexpr, STAGES: gl.constexpr, A_IN_REGS: gl.constexpr, SLOT_SYNC: gl.constexpr):
        """Tile j's products have completed: copy tile j + STAGES (of block fill_b) into its slot.
        Returns the block of the tile the next refill copies. With the keys in registers and one
        warpgroup the wait for tile j's product already implies that every warp is done with the
        slot (a warpgroup product starts only once every warp has issued it, its shared-memory reads
        done); otherwise (SLOT_SYNC) all warps meet at a barrier first."""
        if A_IN_REGS:
            fence_async_shared()      # order the generic reads of the slot before the TMA write
        if SLOT_SYNC:
            _cta_barrier()
        _load_tile(k_desc, fill_b, j + STAGES, n_tiles, bars.index(j % STAGES), k_bufs.index(j % STAGES), BS, SUB,
                   TPB)
        return gl.load(kept_row + (j + STAGES + 1) // TPB, mask=j + STAGES + 1 < n_tiles, other=0)


    @gluon.jit
    def _head_sum(acc, w):
        """sum_h w[h] * relu(acc[:, h]) of one product."""
        return gl.sum(gl.maximum(acc, 0.0) * w[None, :], axis=1)


    @gluon.jit
    def _store_scores(s, n, scale, ks, ke, ptrs, HAS_SCALE: gl.constexpr):
        """One key slice's scores: scaled, -inf where the key is not visible (a negative n, from
        kept = -1, is below every ks)."""
        if HAS_SCALE:
            s = s * scale
        gl.store(ptrs, gl.where((n >= ks) & (n < ke), s, float("-inf")))


def _gl_dtype(dtype):
    return {torch.float8_e4m3fn: gl.float8e4nv, torch.bfloat16: gl.bfloat16, torch.float16: gl.float16}[dtype]


def gather_wgmma_fits(q, k, block_size: int) -> bool:
    """Shapes this kernel takes: a Hopper GPU, H of 64 or 128 (the MMA's N, two products of 64 for
    128), rows of 32, 64 or 128 bytes (fp8 D in 32, 64, 128; 16-bit D in 16, 32, 64: one swizzled
    TMA box row, at most 128 bytes; other widths are not compiled or tested), B a multiple of the
    64-key tile, contiguous q and k rows with 16-byte aligned strides and bases (TMA). Everything else
    stays on the Triton kernel (kernels/gather_scores.py)."""
    if not HAVE_GLUON or not q.is_cuda or q.dim() != 3 or k.dim() != 2:
        return False
    if torch.cuda.get_device_capability(q.device)[0] != 9:
        return False
    T, H, D = q.shape
    es = q.element_size()
    return (q.dtype in (torch.float8_e4m3fn, torch.bfloat16, torch.float16) and k.dtype == q.dtype
            and H in (64, 128) and D * es in (32, 64, 128) and k.shape[1] == D
            and block_size > 0 and block_size % 64 == 0
            and q.is_contiguous() and q.data_ptr() % 16 == 0
            and k.stride(1) == 1 and (k.stride(0) * es) % 16 == 0 and k.data_ptr() % 16 == 0)


def default_config(H: int, D: int, esize: int, block_size: int = 128) -> dict:
    """Products of 64 keys, the keys read by the MMA from shared memory, one warpgroup:
    - H = 64: each copy brings a whole block of 128 keys (SUB=128, two products along its keys, in
      groups of one copy) into a ring of 2 slots. Measured on an H200 against 64-key copies in 4
      slots in groups of 4 (1024 queries, m 64: 0.163-0.169 against 0.178-0.186 ms, gpu14): half the
      copies, barrier waits and refills per key, 12-15% fewer instructions per 64 keys (sm_90 SASS,
      Triton 3.6). Blocks of 64 keys keep 64-key copies.
    - H = 128: 64-key copies, each in two products of 64 heads (HEAD_SPLIT) in groups of 2 tiles;
      two [64, 128] accumulators alone would hold 128 registers per thread. Whole-block copies
      there (4 products per copy) take 173 registers (bf16 D 64), one program fewer per SM: not
      measured, not used.
    Keys in registers (A_IN_REGS) only add instructions and registers (a tile's keys feed one
    product each): 138-166 registers per thread against 96-128 without (kernels.compile_check)."""
    if H == 64 and block_size % 128 == 0:
        return dict(SUB=128, STAGES=2, HEAD_SPLIT=1, GROUP=1, A_IN_REGS=False, num_warps=4)
    return dict(SUB=64, STAGES=4, HEAD_SPLIT=max(1, H // 64), GROUP=max(1, 256 // H), A_IN_REGS=False,
                num_warps=4)


# A query's kept blocks in programs of at most 16 (4 programs per query at m 64). 1024 one-query
# programs fill 1.55 waves of the 660 slots an H200 holds (5 per SM: 96 registers, 41 KB of shared
# memory each); smaller programs even out the last wave. Measured at 1024 queries, m 64 (gpu16), ms,
# 64K random / structured, 128K random / structured: 0.159 / 0.160 / 0.165 / 0.159 against
# 0.165 / 0.164 / 0.166 / 0.165 with one program per query (22 blocks: 0.161 / 0.161 / 0.167 /
# 0.159; 8: 0.160 / 0.161 / 0.169 / 0.161).
MAX_BLOCKS_PER_PROG = 16


def launch_gather_scores_wgmma(q, k, w, kept, ks, ke, block_size: int, k_scale=None, *, out=None, config=None):
    """out[t, i * B + r] as kernels.gather_scores.launch_gather_scores writes it (float32 [T, m * B]).
    config: SUB, STAGES, HEAD_SPLIT, GROUP, A_IN_REGS, num_warps (default_config), BLOCKS_PER_PROG
    (gather_config's rule, at most MAX_BLOCKS_PER_PROG), SLOT_SYNC (a barrier before each refill; on unless the keys are in
    registers of a single warpgroup). Shapes: gather_wgmma_fits."""
    T, H, D = q.shape
    m = kept.shape[1]
    if out is None:
        out = torch.empty((T, m * block_size), dtype=torch.float32, device=q.device)
    if T == 0 or m == 0:
        return out
    es = q.element_size()
    # split a query's blocks over several programs when there are too few queries, as the Triton kernel
    # does, and into pieces of at most MAX_BLOCKS_PER_PROG
    cfg = dict(default_config(H, D, es, block_size),
               BLOCKS_PER_PROG=min(MAX_BLOCKS_PER_PROG, gather_config(T, m)["BLOCKS_PER_PROG"]))
    if config:
        cfg.update(config)
    per, sub = int(cfg.pop("BLOCKS_PER_PROG")), int(cfg.pop("SUB"))
    if block_size % sub:
        raise ValueError(f"block size {block_size} is not a multiple of the {sub}-key tile")
    if H % cfg["HEAD_SPLIT"]:
        raise ValueError(f"{H} heads do not split into {cfg['HEAD_SPLIT']} products")
    cfg["A_IN_REGS"] = bool(cfg["A_IN_REGS"])
    cfg["SLOT_SYNC"] = bool(cfg.get("SLOT_SYNC", not (cfg["A_IN_REGS"] and cfg["num_warps"] == 4)))
    dt = _gl_dtype(q.dtype)
    q2 = q.view(T * H, D)
    q_desc = TensorDescriptor(q2, list(q2.shape), list(q2.stride()), [H, D],
                              gl.NVMMASharedLayout.get_default_for([H, D], dt))
    k_desc = TensorDescriptor(k, list(k.shape), list(k.stride()), [sub, D],
                              gl.NVMMASharedLayout.get_default_for([sub, D], dt))
    _gather_scores_wgmma_kernel[(T, triton.cdiv(m, per))](
        q_desc, k_desc, k_scale if k_scale is not None else w, w, kept, ks, ke, out,
        m, w.stride(0), kept.stride(0), out.stride(0),
        H=H, BS=block_size, K_INSTR=256 // (8 * es), BLOCKS_PER_PROG=per, HAS_SCALE=k_scale is not None, **cfg,
    )
    return out
