"""The three selections built from the kernels, as prepared pipelines.

prepare_*() does every host-side step once (launch geometry, buffers), so that run() is a sequence
of kernel launches with no host synchronisation: it can be timed, or captured in a CUDA graph.
Queries can be processed in chunks (query_chunk) so a whole prefill never holds a [L, L] score
matrix: one chunk's scores are all that exist at a time.

    flat:          scores -> topk
    hisa:          pool -> block_scores -> block_topk -> token_scores -> token_topk
                   (fused_token=True: pool -> block_scores -> block_topk -> token_fused)
                   token_scores: the Gluon gather kernel on Hopper for chunks of at least
                   GLUON_GATHER_MIN_ROWS queries where it takes the shapes, else the Triton one
    block-sparse:  pool -> block_scores -> block_topk -> expand

Prepared.stages holds each stage as a callable over all chunks, in pipeline order, for per-stage
timing; with one chunk, running them in order is exactly run().

stage1 ("relu", the paper's rule, or "raw") is how block_scores ranks blocks for HISA and
block-sparse: "raw" is the same kernel launch with its ReLU compiled out (kernels/flat_scores.py,
RELU=False), so it costs exactly what "relu" costs. The references are kernels/hisa_naive.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .flat_scores import launch_scores, scores_plan
from .group_max import group_count, launch_group_max
from .gather_scores import launch_gather_scores
from .gather_scores_wgmma import gather_wgmma_fits, launch_gather_scores_wgmma
from .hisa_naive import STAGE1_RULES, check_stage1_rule, pool_keys_ref
from .pooling import pool_mean
from .token_stage_fused import fits as fused_token_fits
from .token_stage_fused import launch_token_stage, token_stage_scratch
from .topk import launch_topk, scratch_for

FP8 = torch.float8_e4m3fn


@dataclass
class Prepared:
    run: Callable[[], torch.Tensor]
    stages: dict = field(default_factory=dict)
    flops: int = 0          # tensor-core FLOPs of one run
    bytes: int = 0          # fewest bytes one run must move through memory
    out: torch.Tensor | None = None
    state: dict = field(default_factory=dict)


def _dense(q, k, w, ks, ke, k_scale):
    """The kernels index the last dimension with stride 1: hand them dense tensors (no copy when
    they already are)."""
    return (q.contiguous(), k.contiguous(), w.contiguous(), ks.contiguous(), ke.contiguous(),
            None if k_scale is None else k_scale.contiguous())


def _chunks(T: int, query_chunk: int | None):
    c = T if not query_chunk else max(1, int(query_chunk))
    return [(t0, min(T, t0 + c)) for t0 in range(0, T, c)] or [(0, 0)]


def _esize(t):
    return t.element_size()


def _scores_stage(q, keys, w, ks, ke, key_scale, buf, chunks, plans, force_ends=False, relu=True):
    def stage():
        for (t0, t1), plan in zip(chunks, plans):
            launch_scores(q[t0:t1], keys, w[t0:t1], ks[t0:t1], ke[t0:t1], key_scale,
                          out=buf[: t1 - t0], plan=plan, force_ends=force_ends, relu=relu)
    return stage


def _topk_stage(buf, k, row_len, base, out, chunks, scratch, block_map=None, map_block_size=1, cfg=None):
    def stage():
        for t0, t1 in chunks:
            launch_topk(buf[: t1 - t0], k, row_len[t0:t1], None if base is None else base[t0:t1],
                        None if block_map is None else block_map[t0:t1], map_block_size,
                        out=out[t0:t1], scratch=scratch, config=cfg)
    return stage


def _interleave(stage_fns_per_chunk):
    """run(): every stage for chunk 0, then chunk 1, ... (buffers are per chunk)."""
    def run():
        for fns in stage_fns_per_chunk:
            for fn in fns:
                fn()
    return run


def _per_chunk(stage_builder, chunks):
    return [[f for f in stage_builder([c])] for c in chunks]


# ---- routing and work counts (one copy: the pipelines and the speed command's FLOP column) ----

def _pairs(ks, ke) -> int:
    return int((ke.long() - ks.long()).sum()) if ks.numel() else 0


def visible_blocks(ks, ke, block_size: int):
    """Blocks holding a visible key, per query: (ke - 1) // B - ks // B + 1 (0 for an empty range)."""
    ks, ke = ks.long(), ke.long()
    n = torch.div(ke - 1, block_size, rounding_mode="floor") - torch.div(ks, block_size, rounding_mode="floor") + 1
    return torch.where(ke > ks, n, torch.zeros_like(n))


def hisa_routes(ks, ke, block_size: int, blocks: int, chunks):
    """Split query chunks into (hisa_chunks, trivial_chunks). A chunk is trivial when every one of
    its queries sees at most m blocks: HISA keeps all of them there and equals flat by definition,
    so the flat pipeline runs it (a causal prefill's first chunks, a short context). Counting keys
    instead (ke - ks <= m * B) is wrong for an unaligned ks: m * B keys can span m + 1 blocks."""
    nblk = visible_blocks(ks, ke, block_size)
    most = [int(nblk[a:b].max()) if b > a else 0 for a, b in chunks]
    hisa = [c for c, n in zip(chunks, most) if n > blocks]
    trivial = [c for c, n in zip(chunks, most) if n <= blocks]
    return hisa, trivial


def _block_pairs(ks, ke, block_size: int, chunks) -> int:
    nblk = visible_blocks(ks, ke, block_size)
    return sum(int(nblk[a:b].sum()) for a, b in chunks) if ks.numel() else 0


def flat_flops(ks, ke, H: int, D: int) -> int:
    """Tensor-core FLOPs of the flat pipeline: 2 * H * D per visible (query, key) pair."""
    return _pairs(ks, ke) * 2 * H * D


def hisa_flops(ks, ke, H: int, D: int, block_size: int, blocks: int, chunks, trivial) -> int:
    """HISA: every visible (query, block) pair on pooled keys plus m * B gathered keys per query
    (the gather kernel scores whole kept blocks), 2 * H * D each; trivial chunks as flat."""
    rows = sum(b - a for a, b in chunks)
    work = _block_pairs(ks, ke, block_size, chunks) + rows * blocks * block_size
    return work * 2 * H * D + sum(flat_flops(ks[a:b], ke[a:b], H, D) for a, b in trivial)


def block_sparse_flops(ks, ke, H: int, D: int, block_size: int, blocks: int, chunks) -> int:
    """Block-sparse: the block scores alone (its kept keys are taken whole, not scored)."""
    return _block_pairs(ks, ke, block_size, chunks) * 2 * H * D


def selection_flops(method: str, ks, ke, H: int, D: int, *, topk: int, block_size: int, blocks: int,
                    query_chunk=None) -> int:
    """The FLOPs our pipeline of `method` does on these query ranges: what a backend of that
    method is charged when it does not report its own work (same routing, same chunks)."""
    chunks = _chunks(ks.shape[0], query_chunk)
    if method == "flat":
        return flat_flops(ks, ke, H, D)
    if method == "hisa":
        hisa, trivial = hisa_routes(ks, ke, block_size, blocks, chunks)
        return hisa_flops(ks, ke, H, D, block_size, blocks, hisa, trivial)
    if method == "block-sparse":
        return block_sparse_flops(ks, ke, H, D, block_size, max(topk // block_size, 1), chunks)
    raise ValueError(f"unknown method {method!r}")


# The pruned top-k bounds a row's k-th score by the k-th largest of its group maxima: the bound is
# only as good as the groups are many. With W / G = 4k groups, about 2-3k entries of a random row
# pass it; fewer groups leave too many, more cost the group-maxima pass more bytes.
GROUPS_PER_K = 4
PRUNE_MIN_GROUP = 2
PRUNE_MAX_GROUP = 64


def pruning_group(width: int, k: int, fits=None) -> int:
    """Group size of the pruned flat top-k for rows up to `width` keys: the largest power of two
    G <= PRUNE_MAX_GROUP with width / G >= GROUPS_PER_K * k, doubled while fits(G) says a row would
    have more groups (unaligned starts included) than the pruned kernel holds; 0 (no pruning) when
    even G = 2 leaves too few groups or no G <= PRUNE_MAX_GROUP fits."""
    g = width // (GROUPS_PER_K * max(k, 1))
    if g < PRUNE_MIN_GROUP:
        return 0
    g = min(1 << (g.bit_length() - 1), PRUNE_MAX_GROUP)
    while fits is not None and not fits(g):
        if g >= PRUNE_MAX_GROUP:
            return 0
        g *= 2
    return g


def _groups_fit(ks, ke, width, k):
    """G -> whether every row of [ks, ke) spans at most as many groups of G aligned positions as
    the pruned top-k prunes with (GCAP held in registers + one step of TILE_G past them, for
    rows not aligned to G); one host sync per G."""
    from .topk_pruned import topk_pruned_config

    a, n = ks.long(), (ke - ks).long()

    def fits(g):
        most = int(((a % g + n + g - 1) // g).max()) if n.numel() else 0
        cfg = topk_pruned_config(width, k, g)
        return most <= cfg["GCAP"] + cfg["TILE_G"]
    return fits


def prepare_flat(q, k, w, ks, ke, k_scale=None, *, topk=2048, query_chunk=None, score_config=None,
                 topk_cfg=None, out=None, prune=False):
    """prune: the top-k reads only the groups of a row that can hold a top-k score
    (kernels/topk_pruned.py; the same selection), bounded by the rows' group maxima, which a
    streaming pass over the scores computes (kernels/group_max.py). Chunks whose rows are too short
    for a useful bound (pruning_group == 0) run the plain top-k."""
    q, k, w, ks, ke, k_scale = _dense(q, k, w, ks, ke, k_scale)
    T, H, D = q.shape
    chunks = _chunks(T, query_chunk)
    plans = [scores_plan(ks[a:b], ke[a:b], H, score_config, fp8=q.dtype == FP8, D=D, esize=_esize(q))
             for a, b in chunks]
    groups = [0] * len(plans)
    if prune:
        from .topk_pruned import launch_topk_pruned, scratch_for_pruned, topk_pruned_config

        def group_for(p, a, b):
            if p["width"] <= topk_pruned_config(p["width"], topk)["CAP"]:
                return 0            # every row fits the top-k's registers: nothing to prune
            return pruning_group(p["width"], topk, _groups_fit(ks[a:b], ke[a:b], p["width"], topk))
        groups = [group_for(p, a, b) for p, (a, b) in zip(plans, chunks)]
    width = max(p["width"] for p in plans)
    rows = max(b - a for a, b in chunks)
    buf = torch.empty((max(rows, 1), max(width, 1)), dtype=torch.float32, device=q.device)
    scratch = scratch_for(rows, width, topk, q.device, topk_cfg)
    row_len = (ke - ks).to(torch.int32)
    if out is None:
        out = torch.empty((T, topk), dtype=torch.int32, device=q.device)
    gmax = None
    pscratch = {}
    if any(groups):
        ncols = max(group_count(p["width"], g) for p, g in zip(plans, groups) if g)
        gmax = torch.empty((max(rows, 1), ncols), dtype=torch.float32, device=q.device)
        # the candidate lists (up to 40 KB a row) are shared by every group size; only the list of
        # passing group ids is sized by the groups a row can have
        for g in sorted(set(groups) - {0}):
            if not pscratch:
                pscratch[g] = scratch_for_pruned(rows, width, topk, q.device, group_size=g)
                continue
            first = next(iter(pscratch.values()))
            cfg = topk_pruned_config(width, topk, g, rows, q.device)
            glist = torch.empty((first[2].shape[0], cfg["GCAP"] + cfg["TILE_G"]), dtype=torch.int32, device=q.device)
            pscratch[g] = (first[0], first[1], glist, first[3], first[4])

    def pruned_topk(cs):
        def stage():
            for t0, t1 in cs:
                g = groups[chunks.index((t0, t1))]
                if g:
                    launch_group_max(buf[: t1 - t0], row_len[t0:t1], ks[t0:t1], g, out=gmax[: t1 - t0])
                    launch_topk_pruned(buf[: t1 - t0], gmax[: t1 - t0], topk, row_len[t0:t1], ks[t0:t1], g,
                                       out=out[t0:t1], scratch=pscratch[g])
                else:
                    launch_topk(buf[: t1 - t0], topk, row_len[t0:t1], ks[t0:t1], out=out[t0:t1],
                                scratch=scratch, config=topk_cfg)
        return stage

    def build(cs):
        ps = [plans[chunks.index(c)] for c in cs]
        scores = _scores_stage(q, k, w, ks, ke, k_scale, buf, cs, ps)
        if gmax is not None:
            return [scores, pruned_topk(cs)]
        return [scores, _topk_stage(buf, topk, row_len, ks, out, cs, scratch, cfg=topk_cfg)]

    stages = dict(zip(("scores", "topk"), build(chunks)))
    pairs = _pairs(ks, ke)
    nbytes = (q.numel() * _esize(q) + k.numel() * _esize(k) + (4 * k.shape[0] if k_scale is not None else 0)
              + w.numel() * 4 + pairs * 8 + T * topk * 4)
    if gmax is not None:
        # the scores' read is the group-maxima pass's; it writes the maxima, which the top-k reads
        # back with at least the k groups that reach the bound
        for (a, b), g in zip(chunks, groups):
            if g:
                nbytes += _pairs(ks[a:b], ke[a:b]) * 8 // g + (b - a) * topk * g * 4
    run = _interleave(_per_chunk(build, chunks))
    return Prepared(run=_returning(run, out), stages=stages, flops=flat_flops(ks, ke, H, D), bytes=nbytes,
                    out=out, state=dict(groups=groups, pruned_scratch=pscratch))


def _returning(run, out):
    def f():
        run()
        return out
    return f


def pool_keys(k, k_scale, block_size, pooling="mean", out=None, out_scale=None):
    """Pooled keys in the dtype the block-score kernel takes (fp8 keys -> fp8 + per-block scale)."""
    if pooling == "mean":
        return pool_mean(k, k_scale, block_size, out=out, out_scale=out_scale)
    kbar = pool_keys_ref(k, k_scale, block_size, pooling, dtype=torch.float32)
    if k.dtype == FP8:
        scale = kbar.abs().amax(-1).clamp_min(1e-12) / torch.finfo(FP8).max
        return (kbar / scale[:, None]).to(FP8), scale.float()
    return kbar.to(k.dtype), None


def _block_stages(q, k, w, ks, ke, k_scale, B, m, chunks, pooling, include_pooling, kept_out, score_config,
                  stage1="relu"):
    """Stages shared by HISA and block-sparse: pool, block scores, block top-m -> kept_out.
    stage1 "raw" scores blocks without the ReLU (same launch, same cost)."""
    relu = check_stage1_rule(stage1)
    T, H, D = q.shape
    kbar, kbar_scale = pool_keys(k, k_scale, B, pooling)
    bks = torch.div(ks, B, rounding_mode="floor").to(torch.int32)
    bke = (torch.div(ke - 1, B, rounding_mode="floor") + 1).to(torch.int32)
    plans = [scores_plan(bks[a:b], bke[a:b], H, score_config, fp8=q.dtype == FP8, D=D, esize=_esize(kbar),
                         pooled=True)
             for a, b in chunks]
    bwidth = max(p["width"] for p in plans)
    rows = max(b - a for a, b in chunks)
    J = torch.empty((max(rows, 1), max(bwidth, 1)), dtype=torch.float32, device=q.device)
    scratch = scratch_for(rows, bwidth, m, q.device)
    brow = (bke - bks).to(torch.int32)

    def pool():
        pool_keys(k, k_scale, B, pooling, out=kbar, out_scale=kbar_scale)

    def build(cs):
        ps = [plans[chunks.index(c)] for c in cs]
        return [_scores_stage(q, kbar, w, bks, bke, kbar_scale, J, cs, ps, force_ends=True, relu=relu),
                _topk_stage(J, m, brow, bks, kept_out, cs, scratch)]

    block_pairs = _block_pairs(ks, ke, B, chunks)
    info = dict(kbar=kbar, kbar_scale=kbar_scale, block_pairs=block_pairs,
                pool_bytes=k.numel() * _esize(k) + kbar.numel() * _esize(kbar),
                block_bytes=block_pairs * 8 + kbar.numel() * _esize(kbar) + T * m * 4)
    return (pool if include_pooling else None), build, info


# Query rows per chunk from which HISA's token scores use the Gluon gather kernel where it takes the
# shapes (kernels/gather_scores_wgmma.py): measured on an H200 at 1024 queries (0.159-0.167 ms
# against 0.189-0.194 for the Triton kernel, docs/performance.md); decode batches keep the Triton
# kernel, whose launch rules were tuned for them and where the Gluon one was not timed.
GLUON_GATHER_MIN_ROWS = 4 * 132


def prepare_hisa(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, blocks=64, pooling="mean",
                 query_chunk=None, include_pooling=True, score_config=None, stage1="relu", fused_token=False,
                 fused_config=None, gather="auto"):
    """fused_token: stage 2 as one kernel (kernels/token_stage_fused.py, stage "token_fused")
    instead of token_scores + token_topk; same selection. Only where a query's m * B candidates
    fit registers (<= token_stage_fused.MAX_ROW): wider rows keep the two-kernel path, whose top-k
    streams rows of any width.
    gather: "auto" (the Gluon gather kernel for chunks of >= GLUON_GATHER_MIN_ROWS queries where
    gather_wgmma_fits), "triton" or "gluon" (wherever it fits); state["gather"] says which ran."""
    check_stage1_rule(stage1)      # before anything is allocated, trivial inputs included
    if gather not in ("auto", "triton", "gluon"):
        raise ValueError(f"gather must be auto, triton or gluon, got {gather!r}")
    q, k, w, ks, ke, k_scale = _dense(q, k, w, ks, ke, k_scale)
    T, H, D = q.shape
    B, m = block_size, blocks
    fused = fused_token and fused_token_fits(m, B)
    all_chunks = _chunks(T, query_chunk)
    chunks, trivial = hisa_routes(ks, ke, B, m, all_chunks)
    out = torch.empty((T, topk), dtype=torch.int32, device=q.device)
    flat_parts = [(c, prepare_flat(q[c[0]:c[1]], k, w[c[0]:c[1]], ks[c[0]:c[1]], ke[c[0]:c[1]], k_scale,
                                   topk=topk, out=out[c[0]:c[1]])) for c in trivial]
    if not chunks:
        run = _interleave([[p.run] for _, p in flat_parts])
        return Prepared(run=_returning(run, out), stages={"trivial_flat": run},
                        flops=sum(p.flops for _, p in flat_parts), bytes=sum(p.bytes for _, p in flat_parts),
                        out=out, state=dict(kept=None, kbar=None, kbar_scale=None))
    rows = max(b - a for a, b in chunks)
    kept = torch.full((T, m), -1, dtype=torch.int32, device=q.device)   # stays -1 for trivial chunks
    pool, block_build, info = _block_stages(q, k, w, ks, ke, k_scale, B, m, chunks, pooling,
                                            include_pooling, kept, score_config, stage1)
    if fused:
        fscratch = token_stage_scratch(rows, m, B, q.device, fused_config)
    else:
        cand = torch.empty((max(rows, 1), m * B), dtype=torch.float32, device=q.device)
        scratch = scratch_for(rows, m * B, topk, q.device)
        full = torch.full((T,), m * B, dtype=torch.int32, device=q.device)

    gluon_ok = gather != "triton" and not fused and gather_wgmma_fits(q, k, B)
    min_rows = GLUON_GATHER_MIN_ROWS if gather == "auto" else 1

    def token_scores(cs):
        launches = [launch_gather_scores_wgmma if gluon_ok and t1 - t0 >= min_rows else launch_gather_scores
                    for t0, t1 in cs]

        def stage():
            for (t0, t1), launch in zip(cs, launches):
                launch(q[t0:t1], k, w[t0:t1], kept[t0:t1], ks[t0:t1], ke[t0:t1], B, k_scale, out=cand[: t1 - t0])
        return stage

    def token_fused(cs):
        def stage():
            for t0, t1 in cs:
                launch_token_stage(q[t0:t1], k, w[t0:t1], kept[t0:t1], ks[t0:t1], ke[t0:t1], B, topk, k_scale,
                                   out=out[t0:t1], scratch=fscratch,
                                   config=None if fused_config is None else dict(fused_config))
        return stage

    def build(cs):
        if fused:
            return block_build(cs) + [token_fused(cs)]
        return block_build(cs) + [token_scores(cs),
                                  _topk_stage(cand, topk, full, None, out, cs, scratch, kept, B)]

    names = ("block_scores", "block_topk") + (("token_fused",) if fused else ("token_scores", "token_topk"))
    stages = dict(zip(names, build(chunks)))
    if pool is not None:
        stages = {"pool": pool, **stages}
    per_chunk = [[p.run] for _, p in flat_parts] + _per_chunk(build, chunks)
    if pool is not None:
        per_chunk[len(flat_parts)] = [pool] + per_chunk[len(flat_parts)]
    if flat_parts:
        stages["trivial_flat"] = _interleave([[p.run] for _, p in flat_parts])
    cand_n = sum(b - a for a, b in chunks) * m * B
    flops = hisa_flops(ks, ke, H, D, B, m, chunks, trivial)
    nbytes = (q.numel() * _esize(q) + w.numel() * 4 + info["block_bytes"] + (info["pool_bytes"] if pool else 0)
              # (the fused stage's scores never leave the chip's L2: no 4 B write + 4 B read each)
              + cand_n * (D * _esize(k) + (4 if k_scale is not None else 0) + (0 if fused else 8)) + T * topk * 4
              + sum(p.bytes for _, p in flat_parts))
    used_gluon = gluon_ok and any(t1 - t0 >= min_rows for t0, t1 in chunks)
    return Prepared(run=_returning(_interleave(per_chunk), out), stages=stages, flops=flops, bytes=nbytes,
                    out=out, state=dict(kept=kept, trivial=trivial, fused_token=fused,
                                        gather=None if fused else ("gluon" if used_gluon else "triton"), **info))


def prepare_block_sparse(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, pooling="mean",
                         query_chunk=None, include_pooling=True, score_config=None, stage1="relu"):
    check_stage1_rule(stage1)
    q, k, w, ks, ke, k_scale = _dense(q, k, w, ks, ke, k_scale)
    T, H, D = q.shape
    B = block_size
    m1 = max(topk // B, 1)
    chunks = _chunks(T, query_chunk)
    rows = max(b - a for a, b in chunks)
    kept = torch.empty((T, m1), dtype=torch.int32, device=q.device)
    pool, block_build, info = _block_stages(q, k, w, ks, ke, k_scale, B, m1, chunks, pooling,
                                            include_pooling, kept, score_config, stage1)
    offs = torch.arange(B, device=q.device, dtype=torch.int32)
    cand = torch.empty((max(rows, 1), m1 * B), dtype=torch.float32, device=q.device)
    scratch = scratch_for(rows, m1 * B, topk, q.device)
    full = torch.full((T,), m1 * B, dtype=torch.int32, device=q.device)
    out = torch.empty((T, topk), dtype=torch.int32, device=q.device)

    def expand(cs):
        def stage():
            for t0, t1 in cs:
                kb = kept[t0:t1]
                pos = kb[:, :, None] * B + offs
                vis = (kb[:, :, None] >= 0) & (pos >= ks[t0:t1, None, None]) & (pos < ke[t0:t1, None, None])
                cand[: t1 - t0] = torch.where(vis, 0.0, float("-inf")).view(t1 - t0, m1 * B)
                launch_topk(cand[: t1 - t0], topk, full[t0:t1], None, kb, B, out=out[t0:t1], scratch=scratch)
        return stage

    def build(cs):
        return block_build(cs) + [expand(cs)]

    stages = dict(zip(("block_scores", "block_topk", "expand"), build(chunks)))
    if pool is not None:
        stages = {"pool": pool, **stages}
    per_chunk = _per_chunk(build, chunks)
    if pool is not None:
        per_chunk[0] = [pool] + per_chunk[0]
    flops = block_sparse_flops(ks, ke, H, D, B, m1, chunks)
    nbytes = (q.numel() * _esize(q) + w.numel() * 4 + info["block_bytes"] + (info["pool_bytes"] if pool else 0)
              + T * topk * 4)
    return Prepared(run=_returning(_interleave(per_chunk), out), stages=stages, flops=flops, bytes=nbytes,
                    out=out, state=dict(kept=kept, **info))


def prepare_pool_update(k, k_scale, block_size, kbar, kbar_scale, block_ids):
    """Decode: after one new key per sequence, recompute the pooled key of the block it landed in."""
    def run():
        pool_mean(k, k_scale, block_size, out=kbar, out_scale=kbar_scale, block_ids=block_ids)
    return run


def flat_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, query_chunk=4096, prune=False):
    return prepare_flat(q, k, w, ks, ke, k_scale, topk=topk, query_chunk=query_chunk, prune=prune).run()


def hisa_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, blocks=64, pooling="mean",
                query_chunk=4096, stage1="relu", fused_token=False):
    return prepare_hisa(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                        pooling=pooling, query_chunk=query_chunk, stage1=stage1, fused_token=fused_token).run()


def block_sparse_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, pooling="mean",
                        query_chunk=4096, stage1="relu"):
    return prepare_block_sparse(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, pooling=pooling,
                                query_chunk=query_chunk, stage1=stage1).run()


__all__ = ["Prepared", "selection_flops", "hisa_routes", "visible_blocks", "prepare_flat", "prepare_hisa", "prepare_block_sparse", "prepare_pool_update",
           "flat_select", "hisa_select", "block_sparse_select", "pool_keys", "STAGE1_RULES"]
