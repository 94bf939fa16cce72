"""The flat pipeline with and without the pruned top-k, on the GPU: what each stage costs. (A variant
whose group maxima came from the score kernel's epilogue was timed here and removed: 3.18 against
2.93 ms for the pass at 128K on random inputs, docs/performance.md.)

    python -m kernels.flat_pruned_bench [--out DIR] [--lengths 32768,65536,131072] [--rep 60]

One 1024-query chunk at the tail of L (kernels/profile_chunk.chunk_inputs), random and structured
inputs; every variant's selection checked equal (as sorted sets) to plain flat's; whole-pipeline
and per-stage medians from triton.testing.do_bench (L2 flushed). Not the product's measurement
(`hisa-bench speed --backend flat,flat-pruned` is); the record of the pruned top-k's stage costs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from kernels import indexers
from kernels.profile_chunk import K, chunk_inputs
from kernels.topk_bench import bench, bench_timing, write_record, require_gpu   # the kernel benches' timing and record

VARIANTS = {
    "flat": dict(prune=False),
    "pruned": dict(prune=True),
}


def median_ms(fn, rep):
    return bench(fn, rep)[0]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="32768,65536,131072")
    ap.add_argument("--kinds", default="random,structured")
    ap.add_argument("--rep", type=int, default=60)
    a = ap.parse_args(argv)
    require_gpu("flat_pruned_bench")
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        for kind in a.kinds.split(","):
            q, k, w, ks, ke, ksc = chunk_inputs(L, kind)
            ref = None
            for name, kw in VARIANTS.items():
                prep = indexers.prepare_flat(q, k, w, ks, ke, ksc, topk=K, **kw)
                got = prep.run().clone()
                torch.cuda.synchronize()
                srt = torch.sort(got, 1).values
                if ref is None:
                    ref = srt
                rec = dict(L=L, kind=kind, variant=name, groups=prep.state.get("groups"),
                           exact=bool(torch.equal(srt, ref)), ms=median_ms(prep.run, a.rep))
                for stage, fn in prep.stages.items():
                    rec[f"{stage}_ms"] = median_ms(fn, a.rep)
                rec["tflops_scores"] = prep.flops / rec["scores_ms"] / 1e9
                rows.append(rec)
                print(json.dumps(rec), flush=True)
                del prep
            torch.cuda.empty_cache()
    write_record(a.out, "flat_pruned_bench", bench_timing(a.rep), rows=rows)
    print(f"{'L':>7} {'kind':<11}{'variant':<16}{'exact':>6}{'ms':>8}{'scores':>8}{'topk':>8}{'TFLOP/s':>9}")
    for r in rows:
        print(f"{r['L']:>7} {r['kind']:<11}{r['variant']:<16}{str(r['exact']):>6}{r['ms']:>8.3f}"
              f"{r['scores_ms']:>8.3f}{r['topk_ms']:>8.3f}{r['tflops_scores']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
