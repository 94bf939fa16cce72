"""Kernel tuning sweep for one GPU session: checks correctness at real shapes first, then times
kernel variants. Not part of the product's measurements (`hisa-bench speed` is); its numbers go to
docs/performance.md as the record of why the default configs are what they are.

    python -m kernels.tuning --out DIR [--quick]
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

from hisa_bench import api
from kernels import indexers
from kernels.checks import selection_errors
from kernels.flat_scores import launch_scores, scores_plan
from kernels.topk import launch_topk, scratch_for

H, D, K, B, M = 64, 128, 2048, 128, 1024


def bench(fn, rep=200):
    fn()
    torch.cuda.synchronize()
    med, p20, p80 = triton.testing.do_bench(fn, warmup=25, rep=rep, quantiles=[0.5, 0.2, 0.8])
    return med, p20, p80


def chunk_inputs(L, Mq=M, dtype="fp8", seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(Mq, H, D, device="cuda", generator=g)
    k = torch.randn(L, D, device="cuda", generator=g)
    w = torch.randn(Mq, H, device="cuda", generator=g) / H
    ks = torch.zeros(Mq, dtype=torch.int32, device="cuda")
    ke = (L - Mq + 1 + torch.arange(Mq, device="cuda")).to(torch.int32)
    if dtype == "fp8":
        q, k, w, ksc = api.quantize_fp8(q, k, w)
    else:
        q, k, ksc = q.to(torch.bfloat16), k.to(torch.bfloat16), None
    return q, k, w.contiguous(), ks, ke, ksc


def ref_scores_rows(q, k, w, ks, ke, ksc, rows):
    """float32 reference scores (relative layout) for a few rows, on the GPU."""
    kf = k.float() * (ksc[:, None] if ksc is not None else 1)
    out = []
    for t in rows:
        s = (q[t].float() @ kf[ks[t]:ke[t]].T).clamp_min(0)
        out.append((s * w[t][:, None]).sum(0))
    width = max(x.numel() for x in out)
    return torch.stack([torch.nn.functional.pad(x, (0, width - x.numel()), value=float("-inf")) for x in out])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--lengths", default="32768,65536,131072")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--flat-variants", default="all", help="all, or none: time only the default config")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
               "checks": [], "flat": [], "topk": [], "hisa": [], "torch_ref": []}
    t_start = time.time()

    def log(*a):
        print(*a, flush=True)

    # ---- correctness at real shapes --------------------------------------------------------
    for L in (lengths[0], lengths[-1]):
        for dtype in ("fp8", "bf16"):
            q, k, w, ks, ke, ksc = chunk_inputs(L, dtype=dtype)
            rows = list(range(0, M, 97)) + [M - 2, M - 1]
            ref = ref_scores_rows(q, k, w, ks, ke, ksc, rows)
            got = launch_scores(q, k, w, ks, ke, ksc)
            g = got[rows][:, : ref.shape[1]]
            fin = torch.isfinite(ref)
            err = ((g[fin] - ref[fin]).norm() / ref[fin].norm()).item()
            sel = indexers.flat_select(q, k, w, ks, ke, ksc, topk=K)
            probs = selection_errors(sel[rows], ref, ks[rows], (ke - ks)[rows], K, rtol=1e-3, atol=1e-3)
            hs = indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=K, block_size=B, blocks=64)
            hsel = hs.run()
            kept = hs.state["kept"]
            hprobs = []
            for i, t in enumerate(rows):
                cand = torch.full_like(ref[i], float("-inf"))
                kb = kept[t][kept[t] >= 0].long()
                pos = (kb[:, None] * B + torch.arange(B, device="cuda")).flatten()
                pos = pos[pos < ke[t]]
                cand[pos] = ref[i][pos]
                hprobs += selection_errors(hsel[t:t + 1], cand[None], ks[t:t + 1], (ke - ks)[t:t + 1], K,
                                           rtol=1e-3, atol=1e-3)
            results["checks"].append(dict(L=L, dtype=dtype, rel_err=err, flat_problems=probs, hisa_problems=hprobs))
            log(f"check L={L} {dtype}: rel err {err:.2e}, flat {'OK' if not probs else probs}, "
                f"hisa {'OK' if not hprobs else hprobs}")

    # ---- flat score kernel variants ---------------------------------------------------------
    variants = []
    for keys_as_a in (True, False):
        for bq in (1, 2, 4):
            for bn in (64, 128):
                for nw in (4, 8):
                    for ns in (3, 4, 5):
                        if not keys_as_a and (bq != 2 or ns == 5):
                            continue
                        if bq * 64 * bn > 256 * 128 or (bq >= 4 and nw == 4):
                            continue
                        variants.append(dict(KEYS_AS_A=keys_as_a, BLOCK_Q=bq, BLOCK_N=bn, num_warps=nw,
                                             num_stages=ns))
    if args.quick:
        variants = variants[:6]
    if args.flat_variants == "none":
        variants = [None]
    for L in lengths:
      try:
        q, k, w, ks, ke, ksc = chunk_inputs(L)
        pairs = int((ke - ks).sum())
        flops = pairs * 2 * H * D
        out = torch.empty(M, L, device="cuda")
        for cfg in variants:
            try:
                plan = scores_plan(ks, ke, H, cfg)
                ms = bench(lambda: launch_scores(q, k, w, ks, ke, ksc, out=out, plan=plan), rep=100)
                results["flat"].append(dict(L=L, cfg=cfg, ms=ms[0], p20=ms[1], p80=ms[2], tflops=flops / ms[0] / 1e9))
            except Exception as e:  # a config the compiler rejects (e.g. out of shared memory)
                results["flat"].append(dict(L=L, cfg=cfg, error=str(e)[:200]))
        ranked = sorted((r for r in results["flat"] if r["L"] == L and "ms" in r), key=lambda r: -r["tflops"])
        for r in ranked[:4]:
            log(f"flat L={L}: {r['tflops']:.0f} TFLOP/s {r['ms']:.3f} ms {r['cfg']}")
        errs = [r for r in results["flat"] if r["L"] == L and "error" in r]
        if errs:
            log(f"flat L={L}: {len(errs)} configs failed, e.g. {errs[0]}")
        bf16_variants = [dict(KEYS_AS_A=True, BLOCK_Q=bq, BLOCK_N=bn, num_warps=8, num_stages=ns)
                         for bq in (1, 2, 4) for bn in (64, 128) for ns in (3, 4) if bq * bn <= 256]
        # bf16 with the default config
        qb, kb, wb, _, _, _ = chunk_inputs(L, dtype="bf16")
        bres = []
        for cfg in (bf16_variants if L == lengths[0] and args.flat_variants == "all" else []) + [None]:
            try:
                plan = scores_plan(ks, ke, H, cfg)
                ms = bench(lambda: launch_scores(qb, kb, wb, ks, ke, None, out=out, plan=plan), rep=100)
                bres.append(dict(L=L, cfg=cfg or "default", dtype="bf16", ms=ms[0], tflops=flops / ms[0] / 1e9))
            except Exception as e:
                bres.append(dict(L=L, cfg=cfg, dtype="bf16", error=str(e)[:200]))
        results["flat_bf16"] = results.get("flat_bf16", []) + bres
        for r in sorted((r for r in bres if "ms" in r), key=lambda r: -r["tflops"])[:3]:
            log(f"flat bf16 L={L}: {r['tflops']:.0f} TFLOP/s {r['ms']:.3f} ms {r['cfg']}")
        # plain torch floor at the first length only (it materialises [M*H, L])
        if L == lengths[0]:
            kbf = k.to(torch.bfloat16) if k.dtype != torch.bfloat16 else k
            qbf = qb.reshape(M * H, D)

            def torch_flat():
                s = (qbf @ kbf.T).view(M, H, L).relu_()
                return torch.einsum("mhl,mh->ml", s, wb.to(s.dtype))
            ms = bench(torch_flat, rep=100)
            results["torch_ref"].append(dict(L=L, what="plain torch flat logits bf16", ms=ms[0]))
            log(f"plain torch flat L={L}: {ms[0]:.3f} ms")

        # ---- top-k over the real scores --------------------------------------------------------
        launch_scores(q, k, w, ks, ke, ksc, out=out)
        row_len = (ke - ks).int()
        ms_t = bench(lambda: torch.topk(out, K, dim=1), rep=100)
        results["topk"].append(dict(L=L, what="torch.topk", ms=ms_t[0]))
        # (kernels/topk_bench.py times the top-k on every row kind; here, rows of real scores)
        for cfg in ([dict(CAP=8192, TILE=1024, num_warps=2),
                     dict(CAP=8192, TILE=2048, num_warps=4),
                     dict(CAP=4096, TILE=1024, num_warps=2)]):
            try:
                scr = scratch_for(M, L, K, "cuda", dict(cfg))
                o = torch.empty(M, K, dtype=torch.int32, device="cuda")
                ms = bench(lambda: launch_topk(out, K, row_len, ks, out=o, scratch=scr, config=dict(cfg)), rep=100)
                ok = set(o[5].tolist()) == set(torch.topk(out[5, : row_len[5]], K).indices.tolist())
                ok = ok and not selection_errors(o[::97], out[::97], ks[::97], row_len[::97], K)
                results["topk"].append(dict(L=L, cfg=cfg, ms=ms[0], p20=ms[1], p80=ms[2], row5_equal_torch=ok))
            except Exception as e:
                results["topk"].append(dict(L=L, cfg=cfg, error=str(e)[:200]))
        best = min((r for r in results["topk"] if r["L"] == L and "cfg" in r and "ms" in r), key=lambda r: r["ms"])
        for r in results["topk"]:
            if r["L"] == L and "cfg" in r:
                log(f"topk L={L}: {r.get('ms', float('nan')):.3f} ms ok={r.get('row5_equal_torch')} {r['cfg']} {r.get('error', '')}")
        log(f"topk L={L}: torch {ms_t[0]:.3f} ms, ours best {best['ms']:.3f} ms ({ms_t[0] / best['ms']:.1f}x) {best['cfg']}")

        # ---- HISA pipeline, per stage -----------------------------------------------------------
        for m in (64,):
            hs = indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=K, block_size=B, blocks=m)
            tot = bench(hs.run, rep=100)
            st = {name: bench(fn, rep=50)[0] for name, fn in hs.stages.items()}
            fl = indexers.prepare_flat(q, k, w, ks, ke, ksc, topk=K)
            ftot = bench(fl.run, rep=100)
            results["hisa"].append(dict(L=L, m=m, ms=tot[0], stages=st, flat_ms=ftot[0], speedup=ftot[0] / tot[0],
                                        flat_stages={n: bench(f, rep=50)[0] for n, f in fl.stages.items()}))
            log(f"hisa L={L} m={m}: {tot[0]:.3f} ms vs flat {ftot[0]:.3f} ms ({ftot[0] / tot[0]:.2f}x) "
                + " ".join(f"{n}={v:.3f}" for n, v in st.items()))
            # stage-2 variants and the token top-k against torch.topk on the same candidates
            kept = hs.state["kept"]
            cand = torch.empty(M, m * B, device="cuda")
            from kernels.gather_scores import launch_gather_scores
            for cfg in [dict(BLOCKS_PER_PROG=m, num_warps=4, num_stages=ns) for ns in (2, 3, 4)] + \
                       [dict(BLOCKS_PER_PROG=m, num_warps=8, num_stages=3), dict(BLOCKS_PER_PROG=16, num_warps=4, num_stages=3)]:
                try:
                    ms = bench(lambda: launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=cand, config=dict(cfg)), rep=50)
                    results["hisa"].append(dict(L=L, stage2_cfg=cfg, ms=ms[0], tflops=M * m * B * 2 * H * D / ms[0] / 1e9))
                    log(f"  stage2 {cfg}: {ms[0]:.3f} ms {M * m * B * 2 * H * D / ms[0] / 1e9:.0f} TFLOP/s")
                except Exception as e:
                    log(f"  stage2 {cfg}: error {str(e)[:150]}")
            full = torch.full((M,), m * B, dtype=torch.int32, device="cuda")
            ms = bench(lambda: torch.topk(cand, K, dim=1), rep=50)
            log(f"  token topk: torch.topk {ms[0]:.3f} ms")
            for cfg in [dict(CAP=8192, num_warps=16), dict(CAP=8192, num_warps=8), dict(CAP=8192, num_warps=32)]:
                try:
                    o = torch.empty(M, K, dtype=torch.int32, device="cuda")
                    ms2 = bench(lambda: launch_topk(cand, K, full, None, kept, B, out=o, config=dict(cfg)), rep=50)
                    results["hisa"].append(dict(L=L, token_topk_cfg=cfg, ms=ms2[0], torch_ms=ms[0]))
                    log(f"  token topk {cfg}: {ms2[0]:.3f} ms")
                    o2 = torch.empty(M, m, dtype=torch.int32, device="cuda")
                    J = torch.randn(M, 1024, device="cuda")
                    ms3 = bench(lambda: launch_topk(J, m, full // 8, None, out=o2, config=dict(cfg)), rep=50)
                    log(f"  block topk (1024 -> {m}) {cfg}: {ms3[0]:.3f} ms")
                except Exception as e:
                    log(f"  token topk {cfg}: error {str(e)[:150]}")
        del out
        torch.cuda.empty_cache()
      except Exception as e:
        import traceback
        traceback.print_exc()
        log(f"L={L} section failed: {e}")
      finally:
        with open(os.path.join(args.out, "tuning.json"), "w") as f:
            json.dump(results, f, indent=1)
    results["seconds"] = time.time() - t_start
    with open(os.path.join(args.out, "tuning.json"), "w") as f:
        json.dump(results, f, indent=1)
    log(f"done in {results['seconds']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
