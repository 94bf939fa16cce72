"""Row top-k on the GPU: correctness and speed on every row kind, over widths, beside torch.topk.

    python -m kernels.topk_bench [--out DIR] [--widths 8192,32768,...] [--rows 1024]

Each (kind, width): rows from hisa_bench/inputs/score_rows.py (64 distinct rows repeated to --rows),
our selection checked against the stable-sort reference as sets (lowest positions win ties) on
sampled rows, then timed with triton.testing.do_bench (L2 flushed) next to torch.topk. Not the
product's measurement (`hisa-bench speed --mode topk` is); the record of why the kernel is what it is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import triton.testing

from hisa_bench.inputs.score_rows import KINDS, make_rows
from kernels.topk import launch_topk, scratch_for
from kernels.topk_naive import topk_ref


def bench(fn, rep=100):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=10, rep=rep, quantiles=[0.5, 0.2, 0.8])


def variants():
    out = {"radix": lambda s, k, rl, o, scr: launch_topk(s, k, rl, None, out=o, scratch=scr)}
    try:
        from kernels import topk_prev    # the previous kernel, when the file is carried along
        out["previous"] = lambda s, k, rl, o, scr: topk_prev.launch_topk(s, k, rl, None, out=o)
    except ImportError:
        pass
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--widths", default="8192,32768,131072,1048576")
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--configs", default="", help="extra radix configs, e.g. TILE=8192:num_warps=8;TILE=2048")
    a = ap.parse_args(argv)
    widths = [int(x) for x in a.widths.split(",")]
    results = []
    vs = variants()
    for spec in [c for c in a.configs.split(";") if c]:
        cfg = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in spec.split(":")}
        vs[f"radix {spec}"] = (lambda cfg: lambda s, k, rl, o, scr: launch_topk(s, k, rl, None, out=o, config=dict(cfg)))(cfg)
    for W in widths:
        k = a.k if W > 1024 else 64       # 1024-wide rows: HISA's block top-m at 128K
        for kind in a.kinds.split(","):
            s64, rl64 = make_rows(kind, 64, W, k=k, seed=W, device="cuda")
            rep = max(1, a.rows // 64)
            s = s64.repeat(rep, 1).contiguous()
            rl = rl64.repeat(rep).contiguous()
            T = s.shape[0]
            scr = scratch_for(T, W, k, "cuda")
            rec = dict(kind=kind, width=W, rows=T, k=k)
            ref = topk_ref(s[:8], k, rl[:8])
            for name, fn in vs.items():
                o = torch.full((T, k), -7, dtype=torch.int32, device="cuda")
                try:
                    fn(s, k, rl, o, scr)
                    torch.cuda.synchronize()
                    ok = [set(x for x in o[i].tolist() if x >= 0) == set(x for x in ref[i].tolist() if x >= 0)
                          for i in range(8)]
                    rec[f"{name}_exact"] = all(ok) and not bool((o == -7).any())
                    rec[f"{name}_ms"] = bench(lambda: fn(s, k, rl, o, scr))[0]
                except Exception as e:
                    rec[f"{name}_error"] = str(e).strip().splitlines()[-1][:160]
            kk = min(k, W)
            try:
                sm = s.masked_fill(torch.arange(W, device="cuda")[None] >= rl[:, None].long(), float("-inf"))
                rec["torch_ms"] = bench(lambda: torch.topk(sm, kk, dim=1))[0]
                del sm
            except Exception as e:
                rec["torch_error"] = str(e)[:120]
            results.append(rec)
            print(json.dumps(rec), flush=True)
            del s, s64, scr
            torch.cuda.empty_cache()
    with open(os.path.join(a.out, "topk_bench.json"), "w") as f:
        json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                       triton=triton.__version__, results=results), f, indent=1)
    names = list(vs)
    print(f"{'kind':<11}{'W':>8} " + " ".join(f"{n[:18]:>18}" for n in names) + f"{'torch':>9}")
    for r in results:
        cells = []
        for n in names:
            cells.append(f"{r[n + '_ms']:.3f}{'' if r.get(n + '_exact') else '!'}" if n + "_ms" in r else "err")
        print(f"{r['kind']:<11}{r['width']:>8} " + " ".join(f"{c:>18}" for c in cells)
              + f"{r.get('torch_ms', float('nan')):>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
