"""Row top-k on the GPU: correctness and speed on every row kind, over widths, beside torch.topk.

    python -m kernels.topk_bench [--out DIR] [--widths 8192,32768,...] [--rows 1024] [--pruned]

Each (kind, width): rows from hisa_bench/inputs/score_rows.py (64 distinct rows repeated to --rows),
our selection checked against the stable-sort reference as sets (lowest positions win ties) on
sampled rows, then timed with triton.testing.do_bench (L2 flushed) next to torch.topk. Not the
product's measurement (`hisa-bench speed --mode topk` is); the record of why the kernel is what it is.

--pruned adds kernels/topk_pruned.py beside the radix kernel: the group maxima it reads (groups of
--group-size absolute positions; row t starts at position t * 7 so groups are unaligned) come from
kernels/topk_pruned_naive.group_max_ref once, outside the timing (the score kernel writes them);
the rows' paths (pruned / fallbacks) are counted and reported as pruned_paths.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import torch
import triton.testing

from hisa_bench.inputs.score_rows import KINDS, make_rows
from kernels.topk import launch_topk, scratch_for
from kernels.topk_naive import topk_ref
from kernels.topk_pruned import PATH_NAMES, launch_topk_pruned, scratch_for_pruned
from kernels.topk_pruned_naive import group_max_ref


def bench(fn, rep=100):
    fn()
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=10, rep=rep, quantiles=[0.5, 0.2, 0.8])


def require_gpu(name: str):
    """The kernel benches time compiled kernels: without a CUDA GPU, one line and a non-zero exit."""
    if not torch.cuda.is_available():
        raise SystemExit(f"error: python -m kernels.{name} times kernels on a CUDA GPU, and none is available")
    from kernels._runtime import INTERPRETED
    if INTERPRETED:
        raise SystemExit(f"error: python -m kernels.{name} times compiled kernels: unset TRITON_INTERPRET")


def bench_timing(rep) -> dict:
    """How bench() times, for a record's environment stamp."""
    return dict(method="triton.testing.do_bench (CUDA events, L2 flushed before each call), one untimed "
                       "call first", statistic="median, p20, p80", warmup_ms=10, rep_ms=rep)


def parse_config(spec: str) -> dict:
    """'NAME=NUMBER:NAME=NUMBER' (a launch config on the kernel benches' command lines) -> dict;
    a malformed one ends the script with one line."""
    cfg = {}
    for kv in filter(None, spec.split(":")):
        key, sep, val = kv.partition("=")
        try:
            if not (key and sep):
                raise ValueError
            cfg[key] = float(val) if "." in val else int(val)
        except ValueError:
            raise SystemExit(f"error: config {spec!r}: {kv!r} is not NAME=NUMBER") from None
    return cfg


def write_record(out_dir: str, name: str, timing: dict, **payload) -> str:
    """DIR/<name>.json for a kernel bench: the environment stamp (GPU, driver, versions, commit,
    command, timing settings) and the payload, written to a temporary file and then renamed."""
    from hisa_bench.environment import stamp

    command = " ".join(["python -m kernels." + name] + [shlex.quote(a) for a in sys.argv[1:]])
    path = os.path.join(out_dir, name + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(dict(env=stamp(command=command, timing=timing), **payload), f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def variants():
    out = {"radix": lambda s, k, rl, o, scr, base=None: launch_topk(s, k, rl, base, out=o, scratch=scr)}
    try:
        from kernels import topk_prev    # the previous kernel, when the file is carried along
        out["previous"] = lambda s, k, rl, o, scr, base=None: topk_prev.launch_topk(s, k, rl, base, out=o)
    except ImportError:
        pass
    return out


def _pruned_variant(gmax, group_size, cfg, T, W, k, rec, name):
    """The pruned kernel on these rows; counts each row's path into rec (first call only)."""
    scr = scratch_for_pruned(T, W, k, "cuda", config=cfg or None, group_size=group_size)
    path = torch.full((T,), -1, dtype=torch.int32, device="cuda")
    state = {"first": True}

    def fn(s, k, rl, o, _scr, base):
        if state["first"]:
            launch_topk_pruned(s, gmax, k, rl, base, group_size, out=o, scratch=scr, config=dict(cfg), path_out=path)
            counts = torch.bincount(path.long().clamp(min=0), minlength=len(PATH_NAMES)).tolist()
            rec[f"{name.replace('pruned', 'pruned_paths', 1)}"] = {
                PATH_NAMES[i]: c for i, c in enumerate(counts) if c and i in PATH_NAMES}
            state["first"] = False
            return o
        return launch_topk_pruned(s, gmax, k, rl, base, group_size, out=o, scratch=scr, config=dict(cfg))
    return fn


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--widths", default="8192,32768,131072,1048576")
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--configs", default="", help="extra radix configs, e.g. TILE=8192:num_warps=8;TILE=2048")
    ap.add_argument("--pruned", action="store_true", help="also time kernels/topk_pruned.py (group maxima given)")
    ap.add_argument("--group-size", type=int, default=16, help="positions per group of the pruned kernel")
    ap.add_argument("--pruned-configs", default="",
                    help="extra pruned configs, e.g. num_warps=8:maxnreg=0;TILE_G=128;MIN_GROUP_RATIO=1.0 "
                         "(maxnreg=0: no cap)")
    a = ap.parse_args(argv)
    require_gpu("topk_bench")
    widths = [int(x) for x in a.widths.split(",")]
    results = []
    vs = variants()
    for spec in [c for c in a.configs.split(";") if c]:
        cfg = parse_config(spec)
        vs[f"radix {spec}"] = (lambda cfg: lambda s, k, rl, o, scr, base=None: launch_topk(
            s, k, rl, base, out=o, config=dict(cfg)))(cfg)
    pruned = {}
    if a.pruned:
        pruned["pruned"] = {}
        for spec in [c for c in a.pruned_configs.split(";") if c]:
            pruned[f"pruned {spec}"] = parse_config(spec)
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
            base = None
            run = dict(vs)
            if pruned:
                # unaligned rows (base % G != 0), the same positions for every variant
                base = (torch.arange(T, device="cuda", dtype=torch.int32) * 7).contiguous()
                gmax = group_max_ref(s, rl, base, a.group_size)      # outside the timing
                for name, cfg in pruned.items():
                    run[name] = _pruned_variant(gmax, a.group_size, cfg, T, W, k, rec, name)
            ref = topk_ref(s[:8], k, rl[:8], base[:8] if base is not None else None)
            for name, fn in run.items():
                o = torch.full((T, k), -7, dtype=torch.int32, device="cuda")
                try:
                    fn(s, k, rl, o, scr, base)
                    torch.cuda.synchronize()
                    ok = [set(x for x in o[i].tolist() if x >= 0) == set(x for x in ref[i].tolist() if x >= 0)
                          for i in range(8)]
                    rec[f"{name}_exact"] = all(ok) and not bool((o == -7).any())
                    rec[f"{name}_ms"] = bench(lambda: fn(s, k, rl, o, scr, base))[0]
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
            run = None
            torch.cuda.empty_cache()
    write_record(a.out, "topk_bench", bench_timing(100), results=results)
    names = list(vs) + list(pruned)
    print(f"{'kind':<11}{'W':>8} " + " ".join(f"{n[:18]:>18}" for n in names) + f"{'torch':>9}")
    for r in results:
        cells = []
        for n in names:
            cells.append(f"{r[n + '_ms']:.3f}{'' if r.get(n + '_exact') else '!'}" if n + "_ms" in r else "err")
        print(f"{r['kind']:<11}{r['width']:>8} " + " ".join(f"{c:>18}" for c in cells)
              + f"{r.get('torch_ms', float('nan')):>9.3f}" + (f"  {r['pruned_paths']}" if "pruned_paths" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
