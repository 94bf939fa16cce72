"""The GPU's own ceilings, measured in the same run as the kernels they judge: a large fp8 and a
bf16 matrix product (tensor-core rate) and a device-to-device copy (bytes read + written)."""
from __future__ import annotations

import torch


def measure_ceilings(n: int = 8192, copy_bytes: int = 2 << 30) -> dict:
    import triton.testing

    out = {}
    a = torch.randn(n, n, device="cuda").to(torch.bfloat16)
    b = torch.randn(n, n, device="cuda").to(torch.bfloat16)
    ms = triton.testing.do_bench(lambda: a @ b, warmup=25, rep=200)
    out["bf16_matmul_tflops"] = 2 * n ** 3 / ms / 1e9
    try:
        a8 = a.to(torch.float8_e4m3fn)
        b8 = b.to(torch.float8_e4m3fn).t().contiguous().t()
        one = torch.tensor(1.0, device="cuda")
        ms = triton.testing.do_bench(lambda: torch._scaled_mm(a8, b8, one, one, out_dtype=torch.bfloat16),
                                     warmup=25, rep=200)
        out["fp8_matmul_tflops"] = 2 * n ** 3 / ms / 1e9
    except (RuntimeError, AttributeError):  # no fp8 matmul on this GPU / torch
        pass
    a = b = None      # free the operands before the copy test
    x = torch.empty(copy_bytes // 4, dtype=torch.float32, device="cuda").normal_()
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=25, rep=200)
    out["copy_gbps"] = 2 * copy_bytes / ms / 1e6
    x = y = None
    torch.cuda.empty_cache()
    return out
