"""HISA's token stage on the GPU: the fused kernel (kernels/token_stage_fused.py) against the two-kernel
path (gather scores + block-mapped top-k), checked first, then timed, alone and in the whole chunk.

    PYTHONPATH=. python -m kernels.token_stage_bench --out DIR [--lengths 32768,65536,131072]
                                                     [--inputs random,structured] [--rep 100]

Each (length, inputs): the chunk workload of the speed command (1024 queries at the tail of L, H 64,
D 128 fp8, top-2048, B 128, m 64; hisa_bench/workloads.py, structured inputs from
hisa_bench/inputs/synthetic.py), the kept blocks from the HISA pipeline's own stage 1, then
  1. check: every fused variant against the two-kernel selection on every row, as sets; a row may
     differ only where the fused selection is still a right top-k under the two-kernel candidate
     scores (tie-aware, kernels/checks.py), and no output slot may stay unwritten (-7 poison);
     the fused kernel's scratch scores are compared bit for bit with the gathered scores;
  2. time (triton.testing.do_bench, L2 flushed; median, p20, p80 ms): gather scores, token top-k,
     both (the unfused token stage), each fused variant, and the whole HISA chunk (prepare_hisa
     run(), pooling included) unfused, fused with the default config and fused with the fastest
     variant.
A short table is printed last; everything goes to DIR/token_stage_bench.json with the environment
stamp. Not the product's measurement (`hisa-bench speed --backend hisa,hisa-fused` is); the record of
which fused config to keep. Needs a CUDA GPU; importing it does not.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import triton
import triton.testing

# candidate configs of the fused kernel (None: the launcher's own choice for the shape)
VARIANTS = {
    "fused": None,
    "fused 2-bit steps": dict(STEP_BITS=2),
    "fused 4 warps": dict(num_warps=4),
    # Triton 3.6's ptxas gives the default 167 registers per thread (one 8-warp program per SM, so
    # no program's MMAs overlap another's selection); capped at 128 (a few bytes spill): two
    "fused maxnreg 128": dict(maxnreg=128),
    "fused 2-bit maxnreg 128": dict(STEP_BITS=2, maxnreg=128),
    "fused 2 queries/program": dict(QPP=2),
    "fused 2 stages": dict(num_stages=2),
}
MAX_CHECKED_ROWS = 64          # differing rows checked tie-aware (each a full [ks, ke) row on the host)


def bench(fn, rep, device="cuda"):
    fn()
    if device != "cuda":
        # the interpreter's smoke run (--device cpu): three wall-clock calls, not GPU timings
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        return [times[1], times[0], times[2]]
    torch.cuda.synchronize()
    return triton.testing.do_bench(fn, warmup=10, rep=rep, quantiles=[0.5, 0.2, 0.8])


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _same_sets(a, b):
    """Per row: whether a and b hold the same positions (order free, -1 padding included)."""
    return (torch.sort(a, 1).values == torch.sort(b, 1).values).all(1)


def _tie_aware_bad(sel, cand, kept, ks, ke, rows, k, B):
    """Rows (of `rows`) whose selection is not a right top-k under the gathered candidate scores."""
    from kernels.checks import selection_errors

    bad = []
    ar = torch.arange(B, device=sel.device)
    for t in rows:
        pos = (kept[t].long()[:, None] * B + ar).flatten()
        ok = (pos >= ks[t]) & (pos < ke[t]) & (kept[t].long().repeat_interleave(B) >= 0)
        rel = torch.full((int(ke[t] - ks[t]),), float("-inf"), device=sel.device)
        rel[(pos[ok] - ks[t]).long()] = cand[t][ok]
        if selection_errors(sel[t:t + 1], rel[None], ks[t:t + 1], (ke - ks)[t:t + 1], k):
            bad.append(int(t))
    return bad


def run_point(L, inputs, a, log):
    from hisa_bench.workloads import make_workload
    from kernels import indexers
    from kernels.gather_scores import launch_gather_scores
    from kernels.token_stage_fused import launch_token_stage, token_stage_scratch
    from kernels.topk import launch_topk, scratch_for

    k, B, m, dev = a.k, a.block_size, a.blocks, a.device
    t0 = time.time()
    wl = make_workload("chunk", L, queries=a.queries, heads=a.heads, dim=a.dim, dtype=a.dtype, device=dev,
                       block_size=B, inputs=inputs, topk=k)
    args = (wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale)
    plain = indexers.prepare_hisa(*args, topk=k, block_size=B, blocks=m)
    plain.run()
    _sync(dev)
    kept = plain.state["kept"]
    q, kk, w, ks, ke, ksc = (t.contiguous() if t is not None else None for t in args)
    M = q.shape[0]
    rec = dict(length=L, inputs=inputs, queries=M, heads=a.heads, dim=a.dim, dtype=a.dtype, topk=k,
               block_size=B, blocks=m, hisa_rows=int((kept >= 0).any(1).sum()))

    # the unfused token stage, exactly as the pipeline launches it
    cand = torch.empty((M, m * B), dtype=torch.float32, device=dev)
    full = torch.full((M,), m * B, dtype=torch.int32, device=dev)
    scr = scratch_for(M, m * B, k, dev)
    out_u = torch.empty((M, k), dtype=torch.int32, device=dev)

    def gather():
        launch_gather_scores(q, kk, w, kept, ks, ke, B, ksc, out=cand)

    def token_topk():
        launch_topk(cand, k, full, None, kept, B, out=out_u, scratch=scr)

    def unfused():
        gather()
        token_topk()

    unfused()
    _sync(dev)
    ref = out_u.clone()

    # 1. checks, every variant, every row
    fused_fns, checks = {}, {}
    for name in a.variants:
        cfg = VARIANTS[name]
        out_f = torch.full((M, k), -7, dtype=torch.int32, device=dev)
        fscr = token_stage_scratch(M, m, B, dev, cfg)
        fn = (lambda out_f, fscr, cfg: lambda: launch_token_stage(
            q, kk, w, kept, ks, ke, B, k, ksc, out=out_f, scratch=fscr,
            config=None if cfg is None else dict(cfg)))(out_f, fscr, cfg)
        try:
            fn()
            _sync(dev)
        except Exception as e:     # a config the compiler refuses: recorded, not timed
            checks[name] = dict(error=str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__)
            continue
        same = _same_sets(out_f, ref)
        differ = torch.nonzero(~same).flatten().tolist()
        bad = _tie_aware_bad(out_f, cand, kept, ks, ke, differ[:MAX_CHECKED_ROWS], k, B)
        c = dict(rows=M, rows_differing=len(differ), rows_checked_tie_aware=min(len(differ), MAX_CHECKED_ROWS),
                 rows_wrong=len(bad), wrong_rows=bad[:8], unwritten=int((out_f == -7).sum()))
        if (cfg or {}).get("QPP", 1) == 1:    # one scratch row per query: its scores, bit for bit
            c["scores_bitwise_equal"] = bool(torch.equal(fscr[:M, : m * B], cand))
            c["scores_max_abs_diff"] = float((fscr[:M, : m * B] - cand).nan_to_num(0.0, 0.0, 0.0).abs().max())
        c["ok"] = c["rows_wrong"] == 0 and c["unwritten"] == 0 and len(differ) <= MAX_CHECKED_ROWS
        checks[name] = c
        if c["ok"]:
            fused_fns[name] = fn
    rec["checks"] = checks
    log(f"L={L} {inputs}: checked in {time.time() - t0:.1f} s: "
        + ", ".join(f"{n} {'ok' if c.get('ok') else 'FAILED'}" for n, c in checks.items()))

    # 2. timings
    ms = {}
    for name, fn in (("gather scores", gather), ("token topk", token_topk), ("unfused", unfused)):
        ms[name] = bench(fn, a.rep, dev)
    for name, fn in fused_fns.items():
        ms[name] = bench(fn, a.rep, dev)
    best = min(fused_fns, key=lambda n: ms[n][0]) if fused_fns else None
    rec["best_fused"] = best
    fused = indexers.prepare_hisa(*args, topk=k, block_size=B, blocks=m, fused_token=True)
    ms["chunk unfused"] = bench(plain.run, a.rep, dev)
    if "fused" in fused_fns:
        fused.out.fill_(-7)
        sel = fused.run()
        _sync(dev)
        rec["chunk_fused_same_sets_rows"] = int(_same_sets(sel, plain.out).sum())
        ms["chunk fused"] = bench(fused.run, a.rep, dev)
    if best not in (None, "fused"):
        fused_best = indexers.prepare_hisa(*args, topk=k, block_size=B, blocks=m, fused_token=True,
                                           fused_config=VARIANTS[best])
        ms["chunk fused best"] = bench(fused_best.run, a.rep, dev)
    rec["ms"] = {n: dict(median=v[0], p20=v[1], p80=v[2]) for n, v in ms.items()}
    rec["seconds"] = time.time() - t0
    return rec


def _variant_table(results, names):
    """Median ms of every fused variant per point (columns v0, v1, ... named in the legend)."""
    lines = ["fused variants, median ms: " + "; ".join(f"v{i} = {n}" for i, n in enumerate(names)),
             f"{'L':>7} {'inputs':<10} " + " ".join(f"{'v' + str(i):>7}" for i in range(len(names)))]
    for r in results:
        cells = []
        for n in names:
            c = r["checks"].get(n, {})
            cells.append(f"{r['ms'][n]['median']:>7.3f}" if n in r["ms"] else f"{'err' if 'error' in c else 'wrong':>7}")
        lines.append(f"{r['length']:>7} {r['inputs']:<10} " + " ".join(cells))
    return "\n".join(lines)


def _table(results):
    lines = [f"{'L':>7} {'inputs':<10} {'gather':>7} {'topk':>7} {'unfused':>8} {'fused':>7} {'best':>7} "
             f"{'best variant':<24} {'chunk':>7} {'chunk-f':>8} {'chunk-fb':>8} check"]
    for r in results:
        ms = r["ms"]

        def cell(n, w=7):
            return f"{ms[n]['median']:>{w}.3f}" if n in ms else f"{'-':>{w}}"
        best = r["best_fused"]
        ok = all(c.get("ok") for c in r["checks"].values())
        lines.append(f"{r['length']:>7} {r['inputs']:<10} {cell('gather scores')} {cell('token topk')} "
                     f"{cell('unfused', 8)} {cell('fused')} {cell(best) if best else '-':>7} {str(best):<24} "
                     f"{cell('chunk unfused')} {cell('chunk fused', 8)} {cell('chunk fused best', 8)} "
                     f"{'ok' if ok else 'FAILED'}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="32768,65536,131072")
    ap.add_argument("--inputs", default="random,structured")
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=64)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--dtype", default="fp8")
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--rep", type=int, default=100, help="ms of timed repetitions per measurement")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"fused configs to check and time, a comma list of: {', '.join(VARIANTS)}")
    ap.add_argument("--device", default="cuda", help="cuda; cpu only as a smoke run of this script through "
                    "the Triton interpreter (tiny shapes, wall-clock figures that say nothing about speed)")
    a = ap.parse_args(argv)
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown or not a.variants:
        print(f"token_stage_bench: --variants: unknown {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    from kernels import _runtime     # (decides compiled or interpreted kernels; no GPU needed to import)

    if a.device not in ("cuda", "cpu"):
        print(f"token_stage_bench: --device must be cuda or cpu, got {a.device!r}", file=sys.stderr)
        return 2
    if a.device == "cpu" and not _runtime.INTERPRETED:
        print("token_stage_bench: --device cpu needs the interpreter (TRITON_INTERPRET=1)", file=sys.stderr)
        return 2
    if a.device == "cuda" and not torch.cuda.is_available():
        print("token_stage_bench: needs a CUDA GPU (none found)", file=sys.stderr)
        return 2
    if a.device == "cuda" and _runtime.INTERPRETED:
        print("token_stage_bench: TRITON_INTERPRET is set: unset it to time compiled kernels", file=sys.stderr)
        return 2
    from hisa_bench.environment import stamp

    os.makedirs(a.out, exist_ok=True)
    start = time.time()
    results = []
    for L in (int(x) for x in a.lengths.split(",")):
        for inputs in a.inputs.split(","):
            rec = run_point(L, inputs, a, lambda s: print(s, file=sys.stderr, flush=True))
            if a.device == "cuda":       # (the point's tensors are gone with its frame)
                torch.cuda.empty_cache()
            results.append(rec)
            print(json.dumps(rec), flush=True)
    env = stamp(command="python -m kernels.token_stage_bench " + " ".join(sys.argv[1:] if argv is None else argv),
                timing=dict(method="triton.testing.do_bench (L2 flushed)", rep_ms=a.rep, warmup_ms=10,
                            quantiles=[0.5, 0.2, 0.8]) if a.device == "cuda" else dict(
                    method="wall clock, 3 calls (interpreter smoke run: not GPU timings)"),
                device="cuda" if a.device == "cuda" else "cpu-interpreter")
    path = os.path.join(a.out, "token_stage_bench.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dict(env=env, variants={n: VARIANTS[n] for n in a.variants}, results=results,
                       seconds=time.time() - start), f, indent=1)
    os.replace(tmp, path)
    print(f"wrote {path} ({time.time() - start:.0f} s)", file=sys.stderr)
    print(_variant_table(results, a.variants))
    print("ms (median): gather + topk = unfused token stage; fused = one kernel; chunk = whole HISA chunk "
          "(unfused / fused default / fused best variant)")
    print(_table(results))
    return 0 if all(all(c.get("ok") for c in r["checks"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
