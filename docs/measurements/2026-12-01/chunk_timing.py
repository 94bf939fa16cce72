"""How much of a chunk's measured time is the GPU's: one 1024-query chunk (kernels/profile_chunk
inputs) timed three ways on the same prepared pipeline:
  eager  - the speed command's method: triton.testing.do_bench (L2 flushed before each call), the
           Python launches of each call issued as it runs;
  graph  - the same call captured once in a CUDA graph, replays timed with CUDA events (L2 flushed
           between replays): what the GPU takes when launches cost nothing;
  kernels- the sum of the call's kernel durations (torch.profiler, CUDA activity), averaged over
           20 calls: the GPU busy time alone, without the gaps between kernels.
    PYTHONPATH=. python docs/measurements/2026-12-01/chunk_timing.py [--lengths 65536,131072]
"""
import argparse
import json

import torch
import triton.testing

from hisa_bench.measure.timing import TimingSettings, capture_graph, _time_graph
from kernels import indexers
from kernels.profile_chunk import chunk_inputs

ap = argparse.ArgumentParser()
ap.add_argument("--lengths", default="65536,131072")
ap.add_argument("--kinds", default="random,structured")
ap.add_argument("--out", default=None)
a = ap.parse_args()
if not torch.cuda.is_available():
    raise SystemExit("error: chunk_timing.py times kernels on a CUDA GPU, and none is available")
rows = []
for L in [int(x) for x in a.lengths.split(",")]:
    for kind in a.kinds.split(","):
        q, k, w, ks, ke, ksc = chunk_inputs(L, kind)
        pipes = {"hisa": indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=2048, block_size=128, blocks=64),
                 "flat": indexers.prepare_flat(q, k, w, ks, ke, ksc, topk=2048)}
        for name, p in pipes.items():
            p.run()
            torch.cuda.synchronize()
            eager = triton.testing.do_bench(p.run, warmup=10, rep=100, quantiles=[0.5])
            graph, why = capture_graph(p.run)
            gmed = _time_graph(graph, TimingSettings(rep_ms=100))[0] if graph is not None else float("nan")
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(20):
                    p.run()
                torch.cuda.synchronize()
            per = {}
            for e in prof.key_averages():
                if e.device_type == torch.autograd.DeviceType.CUDA:
                    per[e.key[:40]] = getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0)) / 20 / 1e3
            kern = sum(per.values())
            r = dict(L=L, kind=kind, pipe=name, eager_ms=eager, graph_ms=gmed, kernels_ms=kern,
                     kernels={k_: round(v, 4) for k_, v in per.items()})
            rows.append(r)
            print(json.dumps(r), flush=True)
        del pipes
        torch.cuda.empty_cache()
if a.out:
    json.dump(rows, open(a.out, "w"), indent=1)
print(f"{'L':>7} {'kind':<11}{'pipe':<6}{'eager':>8}{'graph':>8}{'kernels':>9}")
for r in rows:
    print(f"{r['L']:>7} {r['kind']:<11}{r['pipe']:<6}{r['eager_ms']:>8.4f}{r['graph_ms']:>8.4f}{r['kernels_ms']:>9.4f}")
