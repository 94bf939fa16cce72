"""One chunk of flat and of HISA, each kernel launched once inside a profiled range, for Nsight
Compute's counters (what limits each kernel: FLOPs, bytes, occupancy, stalls).

    ncu --clock-control none --profile-from-start off --csv --page details \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        python -m kernels.profile_chunk [--length 131072] [--inputs random|structured] [--extra hisa-fused,flat-pruned]

The kernels are compiled and run once before the range starts, so the profile holds only the
launches of one timed call. Not a benchmark: `hisa-bench speed` times; this explains.
"""
from __future__ import annotations

import argparse

import torch

from hisa_bench import api
from kernels import indexers
from kernels.topk_bench import require_gpu

H, D, K, B, M_BLOCKS, QUERIES = 64, 128, 2048, 128, 64, 1024


def chunk_inputs(L: int, kind: str, seed: int = 0):
    ks = torch.zeros(QUERIES, dtype=torch.int32, device="cuda")
    ke = (L - QUERIES + 1 + torch.arange(QUERIES, device="cuda")).to(torch.int32)
    if kind == "structured":
        from hisa_bench.inputs.synthetic import structured_qkw
        q, k, w = structured_qkw(torch.arange(L), ke.long() - 1, ks, ke, heads=H, dim=D, topk=K, seed=seed,
                                 device="cuda")
    else:
        g = torch.Generator(device="cuda").manual_seed(seed)
        q = torch.randn(QUERIES, H, D, device="cuda", generator=g)
        k = torch.randn(L, D, device="cuda", generator=g)
        w = torch.randn(QUERIES, H, device="cuda", generator=g) / H
    q, k, w, k_scale = api.quantize_fp8(q, k, w)
    return q, k, w.contiguous(), ks, ke, k_scale


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, default=131072)
    ap.add_argument("--inputs", default="random", choices=("random", "structured"))
    ap.add_argument("--extra", default="", help="comma list of further pipelines: hisa-fused, flat-pruned")
    args = ap.parse_args()
    require_gpu("profile_chunk")
    q, k, w, ks, ke, k_scale = chunk_inputs(args.length, args.inputs)
    pipes = {
        "flat": indexers.prepare_flat(q, k, w, ks, ke, k_scale, topk=K),
        "hisa": indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=K, block_size=B, blocks=M_BLOCKS),
    }
    for name in filter(None, args.extra.split(",")):
        if name == "flat-pruned":
            pipes[name] = indexers.prepare_flat(q, k, w, ks, ke, k_scale, topk=K, prune=True)
        if name == "hisa-fused":
            pipes[name] = indexers.prepare_hisa(q, k, w, ks, ke, k_scale, topk=K, block_size=B, blocks=M_BLOCKS,
                                                fused_token=True)
    for p in pipes.values():      # compile and warm up outside the profiled range
        p.run()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    for p in pipes.values():
        p.run()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()
    print("profiled:", ", ".join(pipes), f"L={args.length} inputs={args.inputs}")


if __name__ == "__main__":
    main()
