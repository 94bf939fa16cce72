"""HISA's stages on the GPU under launch-config variants of its block-score kernel.

    python -m kernels.hisa_stage_bench [--out DIR] [--lengths 65536,131072] [--configs "maxnreg=128"]
                                       [--rounds 2]

One 1024-query chunk at the tail of L (kernels/profile_chunk.chunk_inputs), random inputs; each
variant's selection checked equal (as sorted sets) to the default's; whole-pipeline and per-stage
medians of CUDA-graph replays, L2 flushed between them, as the speed command times a chunk (timed
eagerly with do_bench, the 10-40 us stages read up to 3x apart from one variant to the next).
--rounds repeats every variant in turn, so the spread between rounds shows the noise. The record of
why the block-score launch is what it is; `hisa-bench speed` is the product's measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from kernels import indexers
from kernels.profile_chunk import B, K, M_BLOCKS, chunk_inputs
from hisa_bench.measure.timing import TimingSettings
from kernels.decode_bench import graph_ms
from kernels.topk_bench import parse_config, write_record, require_gpu   # the kernel benches' tools


def median_ms(fn, rep):
    return graph_ms(fn, TimingSettings(rep_ms=rep))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="65536,131072")
    ap.add_argument("--configs", default="maxnreg=128", help="';'-separated block-score configs")
    ap.add_argument("--rep", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.rep < 1:
        raise SystemExit(f"error: --rounds and --rep must be at least 1, got {a.rounds} and {a.rep}")
    require_gpu("hisa_stage_bench")
    variants = {"default": None, **{spec: parse_config(spec) for spec in a.configs.split(";") if spec}}
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        q, k, w, ks, ke, ksc = chunk_inputs(L, "random")
        ref = None
        for rnd, (name, cfg) in ((rnd, v) for rnd in range(a.rounds) for v in variants.items()):
            prep = indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=K, block_size=B, blocks=M_BLOCKS,
                                         score_config=cfg)
            srt = torch.sort(prep.run().clone(), 1).values
            ref = srt if ref is None else ref
            rec = dict(L=L, variant=name, round=rnd, exact=bool(torch.equal(srt, ref)), ms=median_ms(prep.run, a.rep))
            for stage, fn in prep.stages.items():
                rec[f"{stage}_ms"] = median_ms(fn, a.rep)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    write_record(a.out, "hisa_stage_bench", dict(method="CUDA-graph replays, L2 flushed between them "
                                                 "(hisa_bench.measure.timing)", statistic="median", rep_ms=a.rep,
                                                 rounds=a.rounds), rows=rows)
    for r in rows:
        print(f"{r['L']:>7} {r['round']:>2} {r['variant']:<16}{str(r['exact']):>6}{r['ms']:>8.3f} block_scores "
              f"{r['block_scores_ms']:.4f} block_topk {r['block_topk_ms']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
