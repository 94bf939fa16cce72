"""HISA's gather kernel alone on the GPU: the Triton kernel against the Gluon kernel's variants.

    python -m kernels.gather_scores_wgmma_bench [--out DIR] [--lengths 65536,131072] [--kinds random,structured]
                                                [--configs "STAGES=3;SUB=64:STAGES=4:GROUP=4"] [--rep 60]

One 1024-query chunk at the tail of L (kernels/profile_chunk.chunk_inputs: fp8, H = 64, D = 128),
random and structured inputs, and the kept blocks HISA's block stage picks for it (m = 64 blocks of
B = 128 keys, kernels.indexers.prepare_hisa's state["kept"]). The Triton kernel writes the
reference into a NaN-filled buffer; each Gluon variant writes into another: rel_err is the largest
difference over the reference's finite scores relative to the row's largest |score|, NaN when a
candidate was left unwritten or -inf is not exactly where the reference has it (counted in
`unwritten`, `inf_mismatch`). Each kernel is timed with triton.testing.do_bench (L2 flushed).
TFLOP/s count 2 * H * D * m * B * T: both kernels score every kept block whole.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from kernels import indexers
from kernels.gather_scores import launch_gather_scores
from kernels.gather_scores_wgmma import default_config, gather_wgmma_fits, launch_gather_scores_wgmma
from kernels.profile_chunk import B, K, M_BLOCKS, chunk_inputs
from kernels.topk_bench import bench, bench_timing, parse_config, require_gpu, write_record


def compare(out, ref):
    """(rel_err, unwritten, inf_mismatch): the largest |out - ref| over the reference's finite
    scores relative to each row's largest |ref|, NaN unless every candidate was written and -inf
    sits exactly where the reference has it."""
    unwritten = int(torch.isnan(out).sum())
    inf_mismatch = int(((out == float("-inf")) != (ref == float("-inf"))).sum())
    vis = torch.isfinite(ref)
    scale = ref.abs().where(vis, 0).amax(1, keepdim=True).clamp_min(1e-30)
    err = float(((out - ref).abs() / scale).where(vis, 0).max()) if vis.any() else 0.0
    return (float("nan") if unwritten or inf_mismatch else err), unwritten, inf_mismatch


def kept_blocks(q, k, w, ks, ke, k_scale):
    """int32 [T, m]: the blocks HISA's block stage keeps for these queries (one run of the pipeline)."""
    prep = indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=K, block_size=B, blocks=M_BLOCKS)
    prep.run()
    torch.cuda.synchronize()
    return prep.state["kept"].clone()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="65536,131072")
    ap.add_argument("--kinds", default="random,structured")
    ap.add_argument("--configs", default="SUB=64:STAGES=4:GROUP=4;GROUP=2;STAGES=3;A_IN_REGS=1",
                    help="';'-separated variants, each over the default config (default_config)")
    ap.add_argument("--triton-configs", default="",
                    help="variants of the Triton kernel's launch config, timed beside its default")
    ap.add_argument("--rep", type=int, default=60)
    a = ap.parse_args(argv)
    require_gpu("gather_scores_wgmma_bench")
    variants = {"wgmma": {}, **{spec: parse_config(spec) for spec in a.configs.split(";") if spec}}
    rows = []
    for L in [int(x) for x in a.lengths.split(",")]:
        for kind in a.kinds.split(","):
            q, k, w, ks, ke, ksc = chunk_inputs(L, kind)
            T, H, D = q.shape
            if not gather_wgmma_fits(q, k, B):
                raise SystemExit(f"error: the Gluon gather kernel does not take H={H} D={D} {q.dtype} B={B} here "
                                 "(kernels.gather_scores_wgmma.gather_wgmma_fits)")
            kept = kept_blocks(q, k, w, ks, ke, ksc)
            m = kept.shape[1]
            flops = 2 * H * D * m * B * T
            ref = torch.full((T, m * B), float("nan"), device="cuda")
            launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=ref)
            ms = bench(lambda: launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=ref), a.rep)[0]
            rec = dict(L=L, kind=kind, variant="triton", rel_err=0.0, ms=ms, tflops=flops / ms / 1e9,
                       kept_none=int((kept < 0).sum()))
            rows.append(rec)
            print(json.dumps(rec), flush=True)
            for spec in filter(None, a.triton_configs.split(";")):
                tc = parse_config(spec)
                out = torch.full_like(ref, float("nan"))
                launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=out, config=tc)
                torch.cuda.synchronize()
                err, unwritten, inf_mismatch = compare(out, ref)
                ms = bench(lambda: launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=out, config=tc), a.rep)[0]
                rec = dict(L=L, kind=kind, variant=f"triton {spec}", rel_err=err, unwritten=unwritten,
                           inf_mismatch=inf_mismatch, ms=ms, tflops=flops / ms / 1e9)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
            for name, cfg in variants.items():
                c = {**default_config(H, D, q.element_size(), B), **cfg}
                out = torch.full_like(ref, float("nan"))
                try:
                    launch_gather_scores_wgmma(q, k, w, kept, ks, ke, B, ksc, out=out, config=c)
                    torch.cuda.synchronize()
                    err, unwritten, inf_mismatch = compare(out, ref)
                    ms = bench(lambda: launch_gather_scores_wgmma(q, k, w, kept, ks, ke, B, ksc, out=out, config=c),
                               a.rep)[0]
                    rec = dict(L=L, kind=kind, variant=name, rel_err=err, unwritten=unwritten,
                               inf_mismatch=inf_mismatch, ms=ms, tflops=flops / ms / 1e9, config=c)
                except Exception as e:      # a variant that does not compile or run: recorded, not fatal
                    rec = dict(L=L, kind=kind, variant=name, error=f"{type(e).__name__}: {str(e)[:300]}")
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    write_record(a.out, "gather_scores_wgmma_bench", bench_timing(a.rep), rows=rows)
    print(f"{'L':>7} {'kind':<11}{'variant':<28}{'rel_err':>10}{'ms':>8}{'TFLOP/s':>9}")
    for r in rows:
        if "error" in r:
            print(f"{r['L']:>7} {r['kind']:<11}{r['variant']:<28} {r['error'][:60]}")
        else:
            print(f"{r['L']:>7} {r['kind']:<11}{r['variant']:<28}{r['rel_err']:>10.2e}{r['ms']:>8.3f}"
                  f"{r['tflops']:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
