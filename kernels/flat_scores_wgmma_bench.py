"""The flat score kernel alone on the GPU: the Triton kernel against the Gluon kernel's variants.

    python -m kernels.flat_scores_wgmma_bench [--out DIR] [--lengths 32768,131072] [--configs "STAGES=3;..."]

One 1024-query chunk at the tail of L (kernels/profile_chunk.chunk_inputs), random and structured
inputs. Each variant writes into a NaN-filled buffer; every visible score is compared with the
Triton kernel's (largest difference relative to the row's largest score; an unwritten score stays
NaN and fails), then the kernel is timed with triton.testing.do_bench (L2 flushed). TFLOP/s count
2 * H * D per visible (query, key) pair. The record of which score kernel the flat pipeline uses.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from kernels import flat_scores, indexers
from kernels.flat_scores_wgmma import default_config, launch_scores_wgmma
from kernels.profile_chunk import chunk_inputs
from kernels.topk_bench import bench, bench_timing, parse_config, write_record, require_gpu


def compare(out, ref, width_per_row):
    """Largest |out - ref| over visible scores, relative to each row's largest |ref|; NaN if any
    visible score was not written."""
    cols = torch.arange(out.shape[1], device=out.device)
    vis = cols[None, :] < width_per_row[:, None]
    if torch.isnan(out[vis]).any():
        return float("nan")
    scale = ref.abs().where(vis, 0).amax(1, keepdim=True).clamp_min(1e-30)
    return float(((out - ref).abs() / scale).where(vis, 0).max())


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="32768,131072")
    ap.add_argument("--kinds", default="random,structured")
    ap.add_argument("--configs", default="SLOT_SYNC=1;W_IN_REGS=0:SLOT_SYNC=1;STAGES=3")
    ap.add_argument("--rep", type=int, default=60)
    a = ap.parse_args(argv)
    require_gpu("flat_scores_wgmma_bench")
    variants = {"wgmma": {}, **{spec: parse_config(spec) for spec in a.configs.split(";") if spec}}
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        for kind in a.kinds.split(","):
            q, k, w, ks, ke, ksc = chunk_inputs(L, kind)
            T, H, D = q.shape
            flops = indexers.flat_flops(ks, ke, H, D)
            plan = flat_scores.scores_plan(ks, ke, H)
            ref = torch.full((T, plan["width"]), float("nan"), device="cuda")
            flat_scores.launch_scores(q, k, w, ks, ke, ksc, out=ref, plan=plan)
            ms = bench(lambda: flat_scores.launch_scores(q, k, w, ks, ke, ksc, out=ref, plan=plan), a.rep)[0]
            rec = dict(L=L, kind=kind, variant="triton", rel_err=0.0, ms=ms, tflops=flops / ms / 1e9)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
            width_per_row = (ke - ks).long()
            for name, cfg in variants.items():
                c = default_config(H, D, q.element_size())
                c.update(cfg)

                p = flat_scores.scores_plan(ks, ke, H, config=dict(BLOCK_Q=c["BLOCK_Q"], BLOCK_N=c["BLOCK_N"]))
                out = torch.full_like(ref, float("nan"))
                try:
                    launch_scores_wgmma(q, k, w, ks, ke, ksc, out, p["grid"], p["split_n"], config=c)
                    torch.cuda.synchronize()
                    err = compare(out, ref, width_per_row)
                    ms = bench(lambda: launch_scores_wgmma(q, k, w, ks, ke, ksc, out, p["grid"], p["split_n"],
                                                           config=c), a.rep)[0]
                    rec = dict(L=L, kind=kind, variant=name, rel_err=err, ms=ms, tflops=flops / ms / 1e9)
                except Exception as e:      # a variant that does not compile or run: recorded, not fatal
                    rec = dict(L=L, kind=kind, variant=name, error=f"{type(e).__name__}: {str(e)[:300]}")
                rows.append(rec)
                print(json.dumps(rec), flush=True)
            del ref
            torch.cuda.empty_cache()
    write_record(a.out, "flat_scores_wgmma_bench", bench_timing(a.rep), rows=rows)
    print(f"{'L':>7} {'kind':<11}{'variant':<28}{'rel_err':>10}{'ms':>8}{'TFLOP/s':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['L']:>7} {r['kind']:<11}{r['variant']:<28} {r['error'][:60]}")
        else:
            print(f"{r['L']:>7} {r['kind']:<11}{r['variant']:<28}{r['rel_err']:>10.2e}{r['ms']:>8.3f}{r['tflops']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
