"""Indexer backends for `hisa-bench speed`: registered callables with one standard signature.

    fn(q, k, w, ks, ke, k_scale, *, topk, block_size, blocks) -> int32 [T, topk]

(q [T, H, D], k [N, D], w [T, H] float32, ks/ke int32 [T], k_scale float32 [N] or None; positions
absolute, -1 in unused slots; api.py documents the semantics.) A callable may also carry
  .method   "flat" | "hisa" | "block-sparse": which semantics the accuracy gate checks (default flat)
  .stage1   "relu" | "raw": the stage-1 rule a hisa / block-sparse backend ranks blocks by, which the
            accuracy gate checks its kept blocks against (default relu, the paper's rule)
  .prepare  same arguments plus query_chunk / include_pooling -> kernels.indexers.Prepared, to time
            without host work and per stage.
Ours are registered the same way; "flat" is the baseline. A user backend is named on the command
line as module:function or path/to/file.py:function.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import HisaBenchError

BASELINE = "flat"


@dataclass
class Backend:
    name: str
    fn: Callable
    method: str = "flat"
    prepare: Callable | None = None
    ours: bool = True
    stage1: str = "relu"


# the names _ours() registers, in its order (messages list them without importing the kernels)
OUR_NAMES = ("flat", "flat-pruned", "hisa", "hisa-raw", "hisa-fused", "block-sparse", "flat-torch")


def _ours():
    from kernels import indexers

    def flat(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.flat_select(q, k, w, ks, ke, k_scale, topk=topk)

    def flat_pruned(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.flat_select(q, k, w, ks, ke, k_scale, topk=topk, prune=True)

    def hisa(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.hisa_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks)

    def hisa_raw(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.hisa_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                                    stage1="raw")

    def hisa_fused(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.hisa_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                                    fused_token=True)

    def block_sparse(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64):
        return indexers.block_sparse_select(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size)

    def prep_flat(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                  include_pooling=True):
        return indexers.prepare_flat(q, k, w, ks, ke, k_scale, topk=topk, query_chunk=query_chunk)

    def prep_flat_pruned(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                         include_pooling=True):
        return indexers.prepare_flat(q, k, w, ks, ke, k_scale, topk=topk, query_chunk=query_chunk, prune=True)

    def prep_hisa(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                  include_pooling=True):
        return indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                                     query_chunk=query_chunk, include_pooling=include_pooling)

    def prep_hisa_raw(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                      include_pooling=True):
        return indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                                     query_chunk=query_chunk, include_pooling=include_pooling, stage1="raw")

    def prep_hisa_fused(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                        include_pooling=True):
        # stage 2 as one kernel (kernels/token_stage_fused.py) where m * B fits registers
        return indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks,
                                     query_chunk=query_chunk, include_pooling=include_pooling, fused_token=True)

    def prep_bs(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, query_chunk=None,
                include_pooling=True):
        return indexers.prepare_block_sparse(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size,
                                             query_chunk=query_chunk, include_pooling=include_pooling)

    return {
        "flat": Backend("flat", flat, "flat", prep_flat),
        # flat with the pruned top-k: the score kernel also writes group maxima, and the top-k reads
        # only the groups that can hold a top-k score (the same selection)
        "flat-pruned": Backend("flat-pruned", flat_pruned, "flat", prep_flat_pruned),
        "hisa": Backend("hisa", hisa, "hisa", prep_hisa),
        # HISA under the raw stage-1 rule (block scores without the ReLU: the same kernels, the same cost)
        "hisa-raw": Backend("hisa-raw", hisa_raw, "hisa", prep_hisa_raw, stage1="raw"),
        "hisa-fused": Backend("hisa-fused", hisa_fused, "hisa", prep_hisa_fused),
        "block-sparse": Backend("block-sparse", block_sparse, "block-sparse", prep_bs),
        "flat-torch": Backend("flat-torch", flat_torch, "flat", None),
    }


def flat_torch(q, k, w, ks, ke, k_scale, *, topk, block_size=128, blocks=64, chunk=256):
    """Plain PyTorch flat indexer (bf16 matmul, ReLU, weighted head sum, torch.topk), in query
    chunks: the floor our kernels must beat by far."""
    T, H, D = q.shape
    kf = (k.float() * k_scale[:, None]).to(torch.bfloat16) if k_scale is not None else k.to(torch.bfloat16)
    out = torch.full((T, topk), -1, dtype=torch.int32, device=q.device)
    ks_l, ke_l = ks.tolist(), ke.tolist()
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        lo, hi = min(ks_l[t0:t1]), max(ke_l[t0:t1])
        s = torch.einsum("thd,nd->thn", q[t0:t1].to(torch.bfloat16), kf[lo:hi]).relu_()
        s = torch.einsum("thn,th->tn", s.float(), w[t0:t1])
        pos = torch.arange(lo, hi, device=q.device)
        vis = (pos[None] >= ks[t0:t1, None]) & (pos[None] < ke[t0:t1, None])
        s.masked_fill_(~vis, float("-inf"))
        kk = min(topk, hi - lo)
        v, i = torch.topk(s, kk, dim=1)
        out[t0:t1, :kk] = torch.where(torch.isfinite(v), i + lo, -1).to(torch.int32)
    return out


def load_external(spec: str) -> Backend:
    """'module:function' or 'path/to/file.py:function' -> Backend (name = the spec)."""
    if ":" not in spec:
        raise HisaBenchError(f"backend {spec!r}: expected one of ours ({', '.join(OUR_NAMES)}) "
                             f"or module:function / file.py:function")
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py") or os.sep in target:
            if not os.path.isfile(target):
                raise HisaBenchError(f"backend {spec!r}: no such file {target}")
            mod_spec = importlib.util.spec_from_file_location(f"hisa_bench_user_{abs(hash(target))}", target)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except HisaBenchError:
        raise
    except Exception as e:  # user code: report, don't crash
        raise HisaBenchError(f"backend {spec!r}: cannot import {target}: {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise HisaBenchError(f"backend {spec!r}: {target} has no callable {attr!r}")
    method = getattr(fn, "method", "flat")
    if method not in ("flat", "hisa", "block-sparse"):
        raise HisaBenchError(f"backend {spec!r}: .method must be flat, hisa or block-sparse, got {method!r}")
    from kernels.hisa_naive import STAGE1_RULES

    stage1 = getattr(fn, "stage1", "relu")
    if stage1 not in STAGE1_RULES:
        raise HisaBenchError(f"backend {spec!r}: .stage1 must be {' or '.join(STAGE1_RULES)} (the rules the "
                             f"accuracy gate checks), got {stage1!r}")
    return Backend(spec, fn, method, getattr(fn, "prepare", None), ours=False, stage1=stage1)


def resolve(names: list[str]) -> list[Backend]:
    ours = _ours()
    # the baseline runs first at every shape point (speedups are against it), each backend once
    out = [ours[BASELINE]]
    for n in dict.fromkeys(names):
        if n != BASELINE:
            out.append(ours[n] if n in ours else load_external(n))
    return out
