"""Compile every kernel, with the configs the GPU uses, for an sm_90 (Hopper) target, without a GPU.

The interpreter runs the kernels' logic on a CPU but never compiles them; this catches what only
the compiler rejects (constexpr misuse, unsupported layouts, shared-memory overflow) before any GPU
time is spent.

    TRITON_INTERPRET=0 python -m kernels.compile_check
"""
from __future__ import annotations

import os
import sys

os.environ["TRITON_INTERPRET"] = "0"   # before kernels import: compile, don't interpret

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402


def _compile(fn, sig: dict, consts: dict, num_warps=4, num_stages=3, cc=90):
    signature = dict(sig)
    for name in consts:
        signature[name] = "constexpr"
    src = ASTSource(fn=fn, signature=signature, constexprs=consts)
    return triton.compile(src, target=GPUTarget("cuda", cc, 32), options={"num_warps": num_warps,
                                                                        "num_stages": num_stages})


def cases():
    from kernels import flat_scores, gather_scores, pooling, topk

    yield "flat_scores fp8 H64 D128", flat_scores._flat_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=64, D=128, HP=64, DP=128, BLOCK_Q=4, BLOCK_N=64, HAS_SCALE=True,
                                                FORCE_ENDS=False, KEYS_AS_A=True, UPCAST=False), 8, 5
    yield "flat_scores bf16 H3 D48 forced", flat_scores._flat_scores_kernel, dict(
        Q="*bf16", K="*bf16", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=3, D=48, HP=4, DP=64, BLOCK_Q=64, BLOCK_N=64, HAS_SCALE=False,
                                                FORCE_ENDS=True, KEYS_AS_A=True, UPCAST=False), 8, 3
    yield "flat_scores fp8 H128 D256 (largest shape)", flat_scores._flat_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=128, D=256, HP=128, DP=256, BLOCK_Q=2, BLOCK_N=64, HAS_SCALE=True,
                                                FORCE_ENDS=False, KEYS_AS_A=True, UPCAST=False), 8, 5
    yield "gather scores bf16 H128 D256", gather_scores._gather_scores_kernel, dict(
        Q="*bf16", K="*bf16", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32", OUT="*fp32",
        M="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32", stride_wt="i32", stride_kept="i32",
        stride_ot="i32"), dict(H=128, D=256, HP=128, DP=256, BS=256, BLOCKS_PER_PROG=16, HAS_SCALE=False,
                               UPCAST=False), 4, 3
    for cap, nw, has_map in ((8192, 16, False), (8192, 16, True), (1024, 8, False), (16, 4, False)):
        yield f"topk CAP{cap} map={has_map}", topk._topk_kernel, dict(
            S="*fp32", ROW_LEN="*i32", BASE="*i32", MAP="*i32", OUT="*i32", CAND_K="*i32", CAND_I="*i32",
            k="i32", stride_s="i32", stride_m="i32", stride_o="i32"), dict(
            CAP=cap, TILE=4096, K_PAD=2048, HAS_BASE=not has_map, HAS_MAP=has_map, MAP_BS=128), nw, 3
    yield "pool mean fp8", pooling._pool_mean_kernel, dict(
        K="*fp8e4nv", K_SCALE="*fp32", OUT="*fp8e4nv", OUT_SCALE="*fp32", BLOCK_IDS="*i32", N="i32",
        stride_kn="i32", stride_on="i32", FIRST_BLOCK="i32"), dict(D=128, DP=128, BS=128, ROWS=128, HAS_SCALE=True,
                                                                 QUANT=True, HAS_IDS=False), 8, 3
    yield "gather scores fp8", gather_scores._gather_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32", OUT="*fp32",
        M="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32", stride_wt="i32", stride_kept="i32",
        stride_ot="i32"), dict(H=64, D=128, HP=64, DP=128, BS=128, BLOCKS_PER_PROG=64, HAS_SCALE=True,
                               UPCAST=False), 4, 3


def main():
    failed = 0
    for name, fn, sig, consts, nw, ns in cases():
        try:
            k = _compile(fn, sig, consts, nw, ns)
            print(f"ok    {name}: {k.metadata.shared} B shared memory")
        except Exception as e:  # report every kernel, then fail
            failed += 1
            msg = str(e).strip().splitlines()
            print(f"FAIL  {name}: {msg[-1] if msg else type(e).__name__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
