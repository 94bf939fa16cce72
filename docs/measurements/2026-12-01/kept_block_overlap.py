"""How many kept blocks do neighbouring queries of a chunk share? (the key-tile reuse a gather over
query groups could get). CPU, torch reference: PYTHONPATH=. python docs/measurements/2026-12-01/kept_block_overlap.py"""
import torch, sys
sys.path.insert(0, ".")
from hisa_bench.workloads import make_workload
from kernels.hisa_naive import kept_blocks_ref
torch.manual_seed(0)
B, m = 128, 64
for kind in ("random", "structured"):
    for L in (16384, 32768):
        wl = make_workload("chunk", L, queries=256, heads=16, dim=64, dtype="fp8", device="cpu", inputs=kind, block_size=B)
        kept = kept_blocks_ref(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, B, m)
        T = kept.shape[0]
        def share(g):
            out = []
            for t0 in range(0, T - g + 1, g):
                sets = [set(kept[t].tolist()) - {-1} for t in range(t0, t0 + g)]
                union = set().union(*sets)
                out.append(sum(len(s) for s in sets) / len(union))
            return sum(out) / len(out)
        print(kind, L, "kept per query", m, "| tiles loaded per union, reuse factor: pairs %.2f, quads %.2f, 8 %.2f" % (share(2), share(4), share(8)))
