"""HISA decode (one query per sequence, packed caches) on the GPU under launch variants of its stages.

    python -m kernels.decode_bench [--out DIR] [--lengths 32768,131072] [--batch 64] [--variants all]

The workload is the speed command's (hisa_bench/workloads.make_workload, mode decode); each call is
what serving pays per step: the pooled-key update of the block each sequence's new key landed in,
then the selection. Every variant's selection is checked equal (as sorted sets) to the default's;
the call and each stage are timed as CUDA-graph replays with L2 flushed between them, as the speed
command times decode. Variants change one launch rule at a time:

  tokW   the token top-k (rows of m * B candidates, few rows) with W warps (default 8)
  blkW   the block top-m (rows of visible blocks, few rows) with W warps (default 4 up to 1024
         blocks; 8 before 2026-12-01)
  (tokreg, blkreg, bothreg, at 289bd17 only: the top-k's short rows written from registers
         instead of by a streaming pass; the pass measured slower and was removed)
  splitN the block-score kernel's key range cut into pieces of at least N keys when the queries
         give fewer programs than SMs (default 256; 2048 before 2026-12-01)
  gathP  the gather kernel with P kept blocks per program (default: about 4 programs per SM, 8
         blocks each for 64 queries; 8 programs per SM before 2026-12-01)

The record of why the decode launches are what they are; `hisa-bench speed --mode decode` is the
product's measurement.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import torch

from hisa_bench.measure.timing import TimingSettings, capture_graph, _time_graph
from hisa_bench.workloads import make_workload
from kernels import flat_scores, gather_scores, indexers, topk
from kernels.topk_bench import write_record, require_gpu

B, M_BLOCKS, K = 128, 64, 2048
FEW_ROWS = 256        # the variants apply to launches of at most this many rows (a decode batch)


@contextlib.contextmanager
def _patched(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _topk_override(width_pred, cfg_update):
    orig = topk.topk_config

    def cfg(width, k, rows=None, device=None):
        c = orig(width, k, rows, device)
        if rows is not None and rows <= FEW_ROWS and width_pred(width):
            c.update(cfg_update)
        return c
    return _patched(topk, "topk_config", cfg)


def _gather_override(per):
    orig = gather_scores.gather_config

    def cfg(T, m, *a, **kw):
        c = orig(T, m, *a, **kw)
        c["BLOCKS_PER_PROG"] = min(m, per)
        return c
    return _patched(gather_scores, "gather_config", cfg)


def variants(spec: str):
    token = lambda w: w > 2048        # noqa: E731  (m * B = 8192 candidates)
    block = lambda w: w <= 2048       # noqa: E731  (L / B <= 1024 blocks)
    every = {
        "default": contextlib.nullcontext,
        "tok4": lambda: _topk_override(token, dict(num_warps=4)),
        "tok16": lambda: _topk_override(token, dict(num_warps=16)),
        "tok32": lambda: _topk_override(token, dict(num_warps=32)),
        "blk2": lambda: _topk_override(block, dict(num_warps=2)),
        "blk4": lambda: _topk_override(block, dict(num_warps=4)),
        "blk8": lambda: _topk_override(block, dict(num_warps=8)),
        "blk16": lambda: _topk_override(block, dict(num_warps=16)),
        "split2048": lambda: _patched(flat_scores, "SHORT_SPLIT_KEYS", 2048),
        "split1024": lambda: _patched(flat_scores, "SHORT_SPLIT_KEYS", 1024),
        "split512": lambda: _patched(flat_scores, "SHORT_SPLIT_KEYS", 512),
        "split256": lambda: _patched(flat_scores, "SHORT_SPLIT_KEYS", 256),
        "split128": lambda: _patched(flat_scores, "SHORT_SPLIT_KEYS", 128),
        "gath2": lambda: _gather_override(2),
        "gath8": lambda: _gather_override(8),
        "gath4": lambda: _gather_override(4),
        "gath16": lambda: _gather_override(16),
    }
    if spec == "all":
        return every
    names = ["default"] + [v for v in spec.split(",") if v and v != "default"]
    unknown = [v for v in names if v not in every]
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)} (known: {', '.join(every)})")
    return {v: every[v] for v in names}


def graph_ms(fn, settings):
    graph, why = capture_graph(fn)
    if graph is None:
        raise RuntimeError(f"graph capture failed: {why}")
    return _time_graph(graph, settings)[0]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="32768,131072")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--inputs", default="random,structured")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--rep-ms", type=float, default=40.0)
    a = ap.parse_args(argv)
    require_gpu("decode_bench")
    settings = TimingSettings(rep_ms=a.rep_ms)
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        for kind in a.inputs.split(","):
            wl = make_workload("decode", L, batch=a.batch, inputs=kind, block_size=B, topk=K)
            ref = None
            for name, ctx in variants(a.variants).items():
                with ctx():
                    prep = indexers.prepare_hisa(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, topk=K, block_size=B,
                                                 blocks=M_BLOCKS, include_pooling=False)
                    st = prep.state
                    update = indexers.prepare_pool_update(wl.k, wl.k_scale, B, st["kbar"], st["kbar_scale"],
                                                          wl.last_blocks)

                    def call():
                        update()
                        return prep.run()
                    srt = torch.sort(call().clone(), 1).values
                    ref = srt if ref is None else ref
                    rec = dict(L=L, inputs=kind, batch=a.batch, variant=name, exact=bool(torch.equal(srt, ref)),
                               ms=graph_ms(call, settings), update_ms=graph_ms(update, settings))
                    for stage, fn in prep.stages.items():
                        rec[f"{stage}_ms"] = graph_ms(fn, settings)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    write_record(a.out, "decode_bench", settings.as_dict(), rows=rows)
    print(f"{'L':>7} {'inputs':<11}{'variant':<11}{'exact':>6}{'ms':>8}{'update':>8}{'bscore':>8}{'btopk':>8}"
          f"{'tscore':>8}{'ttopk':>8}")
    for r in rows:
        print(f"{r['L']:>7} {r['inputs']:<11}{r['variant']:<11}{str(r['exact']):>6}{r['ms']:>8.4f}"
              f"{r['update_ms']:>8.4f}{r['block_scores_ms']:>8.4f}{r['block_topk_ms']:>8.4f}"
              f"{r['token_scores_ms']:>8.4f}{r['token_topk_ms']:>8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
