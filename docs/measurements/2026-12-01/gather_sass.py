"""Instructions per warp per 64 keys in the Gluon gather's main loop, from its sm_90 SASS (no GPU needed).

    TRITON_INTERPRET=0 PYTHONPATH=. python docs/measurements/2026-12-01/gather_sass.py

Compiles kernels/gather_scores_wgmma.py (fp8, H 64, D 128, B 128) for each copy layout, disassembles
the cubin with the nvdisasm bundled with Triton, takes the loop with the most FMNMX (the grouped
loop: 32 FMNMX per 64 keys per thread, the ReLU of a [64 keys x 64 heads] product over 128 threads)
and counts its instructions by opcode per 64 keys. Written for the 2026-12-01 third session's record
(docs/performance.md); Triton 3.6 is the GPU machine's version.
"""
import collections
import os
import re
import subprocess
import sys

os.environ["TRITON_INTERPRET"] = "0"
import torch  # noqa: E402
from triton.runtime.jit import mangle_type  # noqa: E402

from kernels import compile_check as cc  # noqa: E402
from kernels import gather_scores_wgmma as gw  # noqa: E402

LAYOUTS = {"64-key copies, 4 slots, groups of 4": dict(SUB=64, STAGES=4, GROUP=4),
           "128-key copies, 2 slots, groups of 1 (default)": dict(SUB=128, STAGES=2, GROUP=1),
           "128-key copies, 2 slots, groups of 2": dict(SUB=128, STAGES=2, GROUP=2)}
OPS = ("BAR", "SYNCS", "ISETP", "IMAD", "IADD3", "UMOV", "R2UR", "LDG", "FMNMX", "FFMA", "FMUL", "FADD", "SHFL")


def sass(extra):
    dtype, H, D = torch.float8_e4m3fn, 64, 128
    cfg = {**gw.default_config(H, D, 1), **extra}
    sub, nw = cfg.pop("SUB"), cfg.pop("num_warps")
    cfg.setdefault("SLOT_SYNC", True)
    q2, k = torch.zeros(4 * H, D, dtype=dtype), torch.zeros(512, D, dtype=dtype)
    descs = [gw.TensorDescriptor(x, list(x.shape), list(x.stride()), [rows, D],
                                 gw.gl.NVMMASharedLayout.get_default_for([rows, D], gw.gl.float8e4nv))
             for x, rows in ((q2, H), (k, sub))]
    sig = dict(q_desc=mangle_type(descs[0]), k_desc=mangle_type(descs[1]), K_SCALE="*fp32", W="*fp32", KEPT="*i32",
               KS="*i32", KE="*i32", OUT="*fp32", M="i32", stride_wt="i32", stride_kept="i32", stride_ot="i32")
    kernel = cc._compile(gw._gather_scores_wgmma_kernel, sig, dict(H=H, BS=128, K_INSTR=32, BLOCKS_PER_PROG=16,
                                                                   HAS_SCALE=True, num_warps=nw, **cfg), nw, cfg["STAGES"])
    path = "/tmp/gather_sass.cubin"
    with open(path, "wb") as f:
        f.write(kernel.asm["cubin"])
    nvdisasm = os.path.join(os.path.dirname(cc._ptxas()), "nvdisasm")
    return subprocess.run([nvdisasm, "-c", path], capture_output=True, text=True, check=True).stdout.splitlines()


def main_loop(lines):
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"\.(L_x_\d+):", line.strip()))}
    best = None
    for i, line in enumerate(lines):
        m = re.search(r"BRA `?\(?\.(L_x_\d+)", line)
        if m and labels.get(m.group(1), i + 1) < i:
            body = [x for x in lines[labels[m.group(1)]:i + 1] if x.strip().startswith("/*")]
            ops = collections.Counter(re.sub(r"^\s*/\*[0-9a-f]+\*/\s*(@!?U?P[0-9T]+\s+)?", "", x).split()[0].split(".")[0]
                                      for x in body)
            if best is None or ops["FMNMX"] > best[1]["FMNMX"]:
                best = (len(body), ops)
    return best


def main():
    if not cc._ptxas():
        sys.exit("error: no ptxas / nvdisasm at hand (Triton's NVIDIA backend)")
    for name, extra in LAYOUTS.items():
        n, ops = main_loop(sass(extra))
        slices = ops["FMNMX"] / 32
        print(f"{name}: {n / slices:.0f} instructions per warp per 64 keys; "
              + ", ".join(f"{op} {ops[op] / slices:.1f}" for op in OPS))


if __name__ == "__main__":
    main()
