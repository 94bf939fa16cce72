"""Every kernel compiles for Hopper (sm_90) with the configs the GPU uses, checked on a CPU: within
the per-block shared-memory limit, and (ptxas at hand) without register spills in our score, gather
and pooling kernels, for every head count and head dim of the (H, D) grid, fp8 and bf16; the Gluon
gather kernel's warpgroup MMAs stay asynchronous."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kernels_compile_for_sm90():
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "kernels.compile_check", "--grid"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    lines = [line for line in out.splitlines() if line.startswith(("ok", "FAIL"))]
    assert not [line for line in lines if line.startswith("FAIL")]
    # 6 head counts x 5 head dims x 2 dtypes, for the chunk and decode configs and the gather kernel
    for kind in ("flat_scores (fp8|bf16) .* chunk:", "flat_scores (fp8|bf16) .* decode:",
                 "gather_scores (fp8|bf16) .* B128:"):
        assert sum(bool(re.search(kind, line)) for line in lines) == 60, kind
    # HISA's block scores in a chunk, where they take their own launch: 16 heads and more (4 of the 6)
    assert sum(bool(re.search("flat_scores (fp8|bf16) .* pooled:", line)) for line in lines) == 40
    assert sum(line.split()[1] == "token_fused" for line in lines) == 4     # HISA's fused token stage
    # the pruned top-k (many rows, few rows) and the group-maxima pass (G 4, 16)
    assert sum(line.split()[1] in ("topk_pruned", "group_max") for line in lines) == 4
    # the Gluon score kernel (not in the pipeline), where this Triton has Gluon
    from kernels.flat_scores_wgmma import HAVE_GLUON
    assert sum(line.split()[1] == "flat_scores_wgmma" for line in lines) == (4 if HAVE_GLUON else 0)
    # the Gluon gather kernel (HISA's chunks on Hopper): fp8 H64 D128 (whole-block copies with the
    # keys read from shared memory and in registers, 64-key copies), bf16 H128 D64; ptxas keeps its
    # products asynchronous (no serialization)
    gather_wgmma = [line for line in lines if line.split()[1] == "gather_scores_wgmma"]
    assert len(gather_wgmma) == (4 if HAVE_GLUON else 0)
    assert not [line for line in gather_wgmma if "WGMMA SERIALIZED" in line], "\n".join(gather_wgmma)
    for line in lines:
        shared = int(line.split(": ", 1)[1].split(" B shared")[0])
        assert shared <= 232448, line
    assert sum(" fp32 " in line for line in lines) >= 12          # fp32 fits shared memory too
    # (fp32 runs on tf32 and is not tuned: a few bytes spill with Triton 3.9 there)
    ours = [line for line in lines if line.split()[1] in ("flat_scores", "flat_scores_wgmma", "gather_scores", "pool",
                                                          "token_fused", "gather_scores_wgmma")
            and " fp32 " not in line]
    assert not [line for line in ours if "SPILLS" in line], "register spills:\n" + "\n".join(
        line for line in ours if "SPILLS" in line)
