"""Compile every kernel, with the configs the GPU uses, for an sm_90 (Hopper) target, without a GPU.

The interpreter runs the kernels' logic on a CPU but never compiles them; this catches what only
the compiler rejects (constexpr misuse, unsupported layouts, shared-memory overflow) before any GPU
time is spent.

    TRITON_INTERPRET=0 python -m kernels.compile_check [--grid]

Shared memory is checked against Hopper's per-block limit and, with ptxas at hand, registers and
spills are reported: --grid covers every (H, D, dtype) the API accepts, with the configs the
launchers choose for that shape.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"   # before kernels import: compile, don't interpret

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402


SMEM_LIMIT = 232448      # bytes of shared memory one block may use on an H100 / H200


def _compile(fn, sig: dict, consts: dict, num_warps=4, num_stages=3, cc=90, options=None):
    # a constexpr parameter that a case leaves out takes its default, as it does at a launch
    consts = {**{p.name: p.default for p in fn.params if p.is_constexpr and p.has_default and p.name not in sig},
              **consts}
    signature = dict(sig)
    for name in consts:
        signature[name] = "constexpr"
    # As the JIT specialises a launch on aligned tensors whose strides are multiples of 16: that
    # enables vectorised, asynchronous (pipelined) loads, the variant that needs the most shared
    # memory. Without these hints the compiler does not pipeline and the figures are too low.
    attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name, ty in sig.items()
             if not ty.startswith("tensordesc")}
    if getattr(fn, "is_gluon", lambda: False)():
        from triton.experimental.gluon._runtime import GluonASTSource

        src = GluonASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    else:
        src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", cc, 32),
                          options={"num_warps": num_warps, "num_stages": num_stages, **(options or {})})


def _ptxas(cc=90):
    """The ptxas this Triton compiles sm_<cc> with (its versions pick different ones)."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        path = get_ptxas(cc).path
        if path and os.path.isfile(path):
            return path
    except Exception:  # an older or newer layout: fall back to the bundled or installed one
        pass
    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    return path if os.path.isfile(path) else shutil.which("ptxas")


def _ptxas_report(kernel, cc=90):
    """What ptxas -v says about the kernel's PTX (its stderr), or None when no ptxas is at hand."""
    ptxas = _ptxas(cc)
    if not ptxas:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as f:
            f.write(kernel.asm["ptx"])
        proc = subprocess.run([ptxas, f"-arch=sm_{cc}a", "-v", src, "-o", os.path.join(tmp, "k.cubin")],
                              capture_output=True, text=True)
    return proc.stderr


def _parse_registers(report):
    regs = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores", report)
    return (int(regs.group(1)) if regs else None), (int(spills.group(1)) if spills else 0)


def registers(kernel, cc=90):
    """(registers per thread, spill store bytes) from ptxas -v on the kernel's PTX, or (None, None)
    when no ptxas is at hand. (The GPU driver reports n_spills at load time; without a GPU, ptxas
    is asked the same question.)"""
    report = _ptxas_report(kernel, cc)
    return (None, None) if report is None else _parse_registers(report)


def wgmma_serialized(report) -> bool:
    """ptxas made every asynchronous warpgroup MMA wait for itself ("wgmma.mma_async instructions
    are serialized due to ...", C7514 and its siblings: register pressure, a call boundary, a
    divergent path), which undoes a Gluon kernel's overlap of products and epilogues."""
    return report is not None and ("C7514" in report or "wgmma.mma_async instructions are serialized" in report)


def cases():
    from kernels import flat_scores, gather_scores, pooling, topk

    yield "flat_scores fp8 H64 D128", flat_scores._flat_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=64, D=128, HP=64, DP=128, BLOCK_Q=4, BLOCK_N=64, HAS_SCALE=True,
                                                FORCE_ENDS=False, KEYS_AS_A=True, UPCAST=False, RELU=True), 8, 5
    yield "flat_scores bf16 H3 D48 forced", flat_scores._flat_scores_kernel, dict(
        Q="*bf16", K="*bf16", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=3, D=48, HP=4, DP=64, BLOCK_Q=64, BLOCK_N=64, HAS_SCALE=False,
                                                FORCE_ENDS=True, KEYS_AS_A=True, UPCAST=False, RELU=True), 8, 3
    # HISA's block stage in a chunk under the raw stage-1 rule: pooled keys, forced ends, no ReLU,
    # its launch in a chunk (flat_scores.POOLED_ROWS; the grid has the ReLU rule's for every shape)
    yield "flat_scores fp8 H64 D128 forced raw", flat_scores._flat_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=64, D=128, HP=64, DP=128, BLOCK_Q=2, BLOCK_N=64, HAS_SCALE=True,
                                                FORCE_ENDS=True, KEYS_AS_A=True, UPCAST=False, RELU=False), 4, 5
    yield "flat_scores fp8 H128 D256 (largest shape)", flat_scores._flat_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
        T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
        stride_wt="i32", stride_ot="i32"), dict(H=128, D=256, HP=128, DP=256, BLOCK_Q=2, BLOCK_N=64, HAS_SCALE=True,
                                                FORCE_ENDS=False, KEYS_AS_A=True, UPCAST=False, RELU=True), 8, 5
    yield "gather scores bf16 H128 D256", gather_scores._gather_scores_kernel, dict(
        Q="*bf16", K="*bf16", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32", OUT="*fp32",
        M="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32", stride_wt="i32", stride_kept="i32",
        stride_ot="i32"), dict(H=128, D=256, HP=128, DP=256, BS=256, BLOCKS_PER_PROG=16, HAS_SCALE=False,
                               UPCAST=False, SUB=32), 8, 2
    # the row top-k with the launch configs topk_config picks: few rows (decode) and many (a chunk),
    # rows of 1024 (HISA's block top-m at 128K), 8192 (its token top-k) and 131072 (flat at 128K)
    for width, rows, has_map in ((131072, 64, False), (131072, 1024, False), (8192, 64, True),
                                 (8192, 1024, True), (1024, 64, False), (1024, 1024, False), (16, 1024, False)):
        cfg = topk.topk_config(width, 2048, rows)
        cap, nw = cfg.pop("CAP"), cfg.pop("num_warps")
        yield f"topk W{width} rows{rows} map={has_map}", topk._topk_kernel, dict(
            S="*fp32", ROW_LEN="*i32", BASE="*i32", MAP="*i32", OUT="*i32", CAND_K="*i32", CAND_I="*i32",
            k="i32", stride_s="i32", stride_m="i32", stride_o="i32"), dict(
            CAP=cap, TILE=cfg.pop("TILE"), K_PAD=2048, HAS_BASE=not has_map, HAS_MAP=has_map, MAP_BS=128,
            LONG=width > cap), nw, 3, cfg
    # the pruned top-k with the GPU's config for 128K rows in groups of 16 (flat-pruned at 128K)
    from kernels import topk_pruned

    for what, rows in (("", None), (" few rows", 64)):      # 4 warps capped at 128 registers; 16 warps
        cfg = topk_pruned.topk_pruned_config(131072, 2048, 16, rows)
        cfg.pop("MIN_GROUP_RATIO")      # (a launch argument, not a constant)
        nw = cfg.pop("num_warps")
        opts = {"maxnreg": cfg.pop("maxnreg")} if cfg.get("maxnreg") else {}
        cfg.pop("maxnreg", None)
        yield f"topk_pruned W131072 G16{what}", topk_pruned._topk_pruned_kernel, dict(
            S="*fp32", GMAX="*fp32", ROW_LEN="*i32", BASE="*i32", OUT="*i32", CAND_K="*i32", CAND_I="*i32",
            GLIST="*i32", LIST_K="*i32", LIST_I="*i32", PATH="*i32", k="i32", min_groups="i32", stride_s="i32", stride_g="i32",
            stride_o="i32"), dict(G=16, K_PAD=2048, HAS_BASE=True, HAS_PATH=False, **cfg), nw, 3, opts
    from kernels import group_max

    for g in (4, 16):
        gcfg = group_max.group_max_config(131072, g)
        gcfg.pop("GROUPS_PER_PROG")
        yield f"group_max G{g}", group_max._group_max_kernel, dict(
            S="*fp32", ROW_LEN="*i32", BASE="*i32", OUT="*fp32", stride_s="i32", stride_o="i32",
            GROUPS_PER_PROG="i32"), dict(G=g, TILE_GROUPS=gcfg["TILE_GROUPS"], HAS_BASE=True), gcfg["num_warps"], 3
    yield "pool mean fp8", pooling._pool_mean_kernel, dict(
        K="*fp8e4nv", K_SCALE="*fp32", OUT="*fp8e4nv", OUT_SCALE="*fp32", BLOCK_IDS="*i32", N="i32",
        stride_kn="i32", stride_on="i32", FIRST_BLOCK="i32"), dict(D=128, DP=128, BS=128, ROWS=128, HAS_SCALE=True,
                                                                 QUANT=True, HAS_IDS=False), 8, 3
    yield from _token_fused_cases()
    yield from _wgmma_cases()
    yield from _gather_wgmma_cases()
    yield "gather scores fp8", gather_scores._gather_scores_kernel, dict(
        Q="*fp8e4nv", K="*fp8e4nv", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32", OUT="*fp32",
        M="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32", stride_wt="i32", stride_kept="i32",
        stride_ot="i32"), dict(H=64, D=128, HP=64, DP=128, BS=128, BLOCKS_PER_PROG=64, HAS_SCALE=True,
                               UPCAST=False, SUB=128), 4, 3


def _wgmma_cases():
    """The Gluon score kernel (kernels/flat_scores_wgmma.py; not in the pipeline: measured no faster
    than the Triton kernel) for the shapes wgmma_fits takes: fp8 H64 D128 and H128 D128, bf16 H128
    D64, with its default config and with the query tile and weights in shared memory only."""
    from kernels import flat_scores_wgmma as fw

    if not fw.HAVE_GLUON:
        return
    import torch
    from triton.runtime.jit import mangle_type

    for dtype, H, D, extra in ((torch.float8_e4m3fn, 64, 128, {}),
                               (torch.float8_e4m3fn, 64, 128, dict(W_IN_REGS=False, SLOT_SYNC=True)),
                               (torch.float8_e4m3fn, 128, 128, {}), (torch.bfloat16, 128, 64, {})):
        cfg = {**fw.default_config(H, D, 1), **extra}
        bq, bn, nw = cfg.pop("BLOCK_Q"), cfg.pop("BLOCK_N"), cfg.pop("num_warps")
        cfg.setdefault("SLOT_SYNC", False)
        gdt = fw._gl_dtype(dtype)
        q2 = torch.zeros(bq * H, D, dtype=dtype)
        k = torch.zeros(bn, D, dtype=dtype)
        descs = [fw.TensorDescriptor(x, list(x.shape), list(x.stride()), [x.shape[0], D],
                                     fw.gl.NVMMASharedLayout.get_default_for([x.shape[0], D], gdt)) for x in (q2, k)]
        name = f"flat_scores_wgmma {str(dtype).split('.')[-1]} H{H} D{D}" + "".join(f" {a}={v}" for a, v in extra.items())
        yield name, fw._flat_scores_wgmma_kernel, dict(
            q_desc=mangle_type(descs[0]), k_desc=mangle_type(descs[1]), K_SCALE="*fp32", W="*fp32", KS="*i32",
            KE="*i32", OUT="*fp32", T="i32", SPLIT_N="i32", stride_wt="i32", stride_ot="i32"), dict(
            H=H, BLOCK_Q=bq, BLOCK_N=bn, K_INSTR=256 // (8 * q2.element_size()), HAS_SCALE=dtype == torch.float8_e4m3fn,
            num_warps=nw, **cfg), nw, cfg["STAGES"]


def _gather_wgmma_cases():
    """The Gluon gather kernel (kernels/gather_scores_wgmma.py; HISA's chunks use it on Hopper) for the shapes
    gather_wgmma_fits takes, B = 128, m = 64, 1024 queries: fp8 H64 D128 with its default config
    (whole-block copies, two 64-key products each), with the keys loaded to registers and with 64-key
    copies (two per block: the layout B = 64 takes), bf16 H128 D64 (two products of 64 heads per tile)."""
    from kernels import gather_scores_wgmma as gw
    from kernels.gather_scores import gather_config

    if not gw.HAVE_GLUON:
        return
    import torch
    from triton.runtime.jit import mangle_type

    for dtype, H, D, extra in ((torch.float8_e4m3fn, 64, 128, {}),
                               (torch.float8_e4m3fn, 64, 128, dict(A_IN_REGS=True)),
                               (torch.float8_e4m3fn, 64, 128, dict(SUB=64, STAGES=4, GROUP=4)),
                               (torch.bfloat16, 128, 64, {})):
        es = torch.empty(0, dtype=dtype).element_size()
        cfg = {**gw.default_config(H, D, es), **extra}
        sub, nw = cfg.pop("SUB"), cfg.pop("num_warps")
        cfg.setdefault("SLOT_SYNC", not (cfg["A_IN_REGS"] and nw == 4))
        gdt = gw._gl_dtype(dtype)
        q2 = torch.zeros(4 * H, D, dtype=dtype)
        k = torch.zeros(4 * 128, D, dtype=dtype)
        descs = [gw.TensorDescriptor(x, list(x.shape), list(x.stride()), [rows, D],
                                     gw.gl.NVMMASharedLayout.get_default_for([rows, D], gdt))
                 for x, rows in ((q2, H), (k, sub))]
        name = f"gather_scores_wgmma {str(dtype).split('.')[-1]} H{H} D{D} B128 SUB{sub}" + "".join(
            f" {a}={v}" for a, v in extra.items())
        yield name, gw._gather_scores_wgmma_kernel, dict(
            q_desc=mangle_type(descs[0]), k_desc=mangle_type(descs[1]), K_SCALE="*fp32", W="*fp32", KEPT="*i32",
            KS="*i32", KE="*i32", OUT="*fp32", M="i32", stride_wt="i32", stride_kept="i32", stride_ot="i32"), dict(
            H=H, BS=128, K_INSTR=256 // (8 * es),
            BLOCKS_PER_PROG=min(gw.MAX_BLOCKS_PER_PROG, gather_config(1024, 64)["BLOCKS_PER_PROG"]),
            HAS_SCALE=es == 1, num_warps=nw, **cfg), nw, cfg["STAGES"]


def _token_fused_cases():
    """HISA's fused token stage with the launcher's configs: the tuned shape (each way of selecting),
    the largest and the smallest (H, D); 8192 candidates per row (m = 64, B = 128)."""
    from kernels import token_stage_fused
    from kernels._runtime import next_pow2, padded_dim

    for dtype, H, D, select in (("fp8", 64, 128, {}),
                                ("fp8", 64, 128, dict(STEP_BITS=2)), ("bf16", 128, 256, {}), ("fp8", 1, 16, {})):
        t, es = DTYPES[dtype]
        hp, dp = max(16, next_pow2(H)), padded_dim(D, es)
        cfg = token_stage_fused.token_stage_config(1024, 64, 128, hp, dp, es)
        cfg.update(select)
        nw, ns = cfg.pop("num_warps"), cfg.pop("num_stages")
        yield (f"token_fused {dtype} H{H} D{D}" + "".join(f" {key}={v}" for key, v in select.items()),
               token_stage_fused._token_stage_kernel, dict(
                   Q=f"*{t}", K=f"*{t}", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32",
                   OUT="*i32", SCRATCH="*fp32", T="i32", M="i32", k="i32", stride_qt="i32", stride_qh="i32",
                   stride_kn="i32", stride_wt="i32", stride_kept="i32", stride_ot="i32", stride_sc="i32"),
               dict(H=H, D=D, HP=hp, DP=dp, BS=128, K_PAD=2048, HAS_SCALE=dtype == "fp8", UPCAST=False, **cfg),
               nw, ns)


GRID_H = (1, 4, 16, 32, 64, 128)
GRID_D = (16, 64, 128, 192, 256)
DTYPES = {"fp8": ("fp8e4nv", 1), "bf16": ("bf16", 2), "fp32": ("fp32", 4)}
# fp32 (tf32 tensor cores; the API takes it, nothing tuned for it): the widest tiles only
FP32_GRID = dict(heads=(1, 16, 128), dims=(128, 256), dtypes=("fp32",))


def _score_sig(t):
    return dict(Q=f"*{t}", K=f"*{t}", K_SCALE="*fp32", W="*fp32", KS="*i32", KE="*i32", OUT="*fp32",
                T="i32", N_KEYS="i32", SPLIT_N="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32",
                stride_wt="i32", stride_ot="i32")


def _gather_sig(t):
    return dict(Q=f"*{t}", K=f"*{t}", K_SCALE="*fp32", W="*fp32", KEPT="*i32", KS="*i32", KE="*i32",
                OUT="*fp32", M="i32", stride_qt="i32", stride_qh="i32", stride_kn="i32", stride_wt="i32",
                stride_kept="i32", stride_ot="i32")


def grid_cases(heads=GRID_H, dims=GRID_D, dtypes=("fp8", "bf16"), block_sizes=(128,)):
    """Every kernel config the launchers choose for (H, D, dtype): the flat score kernel for a
    query chunk (keys shared by its queries), for decode (one query per program) and for HISA's
    block scores in a chunk where they take their own launch (pooled keys: scores_plan's choice for
    4096 queries over 1024 pooled keys), the HISA gather kernel, and pooling."""
    import torch

    from kernels import flat_scores, gather_scores, pooling
    from kernels._runtime import next_pow2, padded_dim

    # (4096 queries: enough for the pooled launch at every head count it applies to, 16 and more)
    pooled_ks = torch.zeros(4096, dtype=torch.int32)
    pooled_ke = 1017 + torch.arange(4096, dtype=torch.int32) // 512

    for dtype in dtypes:
        t, es = DTYPES[dtype]
        fp8 = dtype == "fp8"
        for H in heads:
            for D in dims:
                hp, dp = next_pow2(H), padded_dim(D, es)
                chunk = flat_scores._config(hp, fp8, dp, es)
                decode = dict(chunk, BLOCK_Q=max(1, 16 // hp))
                pooled = flat_scores.scores_plan(pooled_ks, pooled_ke, H, fp8=fp8, D=D, esize=es, pooled=True)["cfg"]
                # (with fewer heads the block stage keeps the chunk's launch)
                for what, cfg in (("chunk", chunk), ("decode", decode)) + (
                        (("pooled", pooled),) if hp >= flat_scores.POOLED_MIN_HEADS else ()):
                    cfg = dict(cfg)
                    nw, ns = cfg.pop("num_warps"), cfg.pop("num_stages")
                    yield (f"flat_scores {dtype} H{H} D{D} {what}", flat_scores._flat_scores_kernel, _score_sig(t),
                           dict(H=H, D=D, HP=hp, DP=dp, HAS_SCALE=fp8, FORCE_ENDS=what == "pooled", UPCAST=False,
                                RELU=True, **cfg), nw, ns)
                ghp = max(16, hp)
                for bs in block_sizes:
                    cfg = gather_scores.gather_config(4096, 64, ghp, dp, es, bs)
                    nw, ns = cfg.pop("num_warps"), cfg.pop("num_stages")
                    yield (f"gather_scores {dtype} H{H} D{D} B{bs}", gather_scores._gather_scores_kernel,
                           _gather_sig(t), dict(H=H, D=D, HP=ghp, DP=dp, BS=bs, HAS_SCALE=fp8, UPCAST=False, **cfg),
                           nw, ns)
            for D in dims if H == heads[0] else ():
                dp = max(16, next_pow2(D))
                yield (f"pool mean {dtype} D{D}", pooling._pool_mean_kernel, dict(
                    K=f"*{t}", K_SCALE="*fp32", OUT=f"*{t}", OUT_SCALE="*fp32", BLOCK_IDS="*i32", N="i32",
                    stride_kn="i32", stride_on="i32", FIRST_BLOCK="i32"), dict(
                    D=D, DP=dp, BS=128, ROWS=min(128, max(16, 16384 // dp)), HAS_SCALE=fp8, QUANT=fp8,
                    HAS_IDS=False), 8, 3)


def check(case_list, *, spills=True, out=print):
    """Compile each case; fail on a compile error or more shared memory than SMEM_LIMIT. Prints
    one line per kernel: shared memory, registers, spilled bytes. Returns the number of failures."""
    failed = 0
    for name, fn, sig, consts, nw, ns, *options in case_list:
        try:
            k = _compile(fn, sig, consts, nw, ns, options=options[0] if options else None)
        except Exception as e:  # report every kernel, then fail
            failed += 1
            msg = str(e).strip().splitlines()
            out(f"FAIL  {name}: {msg[-1] if msg else type(e).__name__}")
            continue
        shared = k.metadata.shared
        report = _ptxas_report(k) if spills else None
        regs, spilled = _parse_registers(report) if report is not None else (None, None)
        use = f"{shared} B shared memory, warps {nw}, stages {ns}" + "".join(
            f", {key} {v}" for key, v in (options[0] if options else {}).items()) + (
            f", {regs} registers, {spilled} B spilled" if regs is not None else "")
        tiles = {c: consts[c] for c in ("BLOCK_Q", "BLOCK_N", "SUB", "BLOCKS_PER_PROG", "HEAD_SPLIT", "GROUP")
                 if c in consts}
        if tiles:
            use += " " + " ".join(f"{c}={v}" for c, v in tiles.items())
        if shared > SMEM_LIMIT:
            failed += 1
            out(f"FAIL  {name}: {use} (over the {SMEM_LIMIT} B limit)")
        else:
            out(f"ok    {name}: {use}" + ("  SPILLS" if spilled else "")
                + ("  WGMMA SERIALIZED" if wgmma_serialized(report) else ""))
    return failed


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="store_true",
                    help=f"also every H in {GRID_H} x D in {GRID_D}, fp8 and bf16 (and a few fp32 shapes), "
                         "with the configs the launchers pick")
    ap.add_argument("--no-spills", action="store_true", help="skip ptxas (registers and spills)")
    args = ap.parse_args(argv)
    failed = check(list(cases()), spills=not args.no_spills)
    if args.grid:
        failed += check(list(grid_cases()) + list(grid_cases(**FP32_GRID)), spills=not args.no_spills)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
