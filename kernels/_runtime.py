"""Decide, once and before any @triton.jit function is defined, whether kernels run compiled on a
GPU or through the Triton interpreter on the CPU.

Triton picks interpreter or compiler when a kernel is *decorated*, so this module must run before
the kernel modules are imported: `kernels/__init__.py` imports it first.
"""
from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA and os.environ.get("TRITON_INTERPRET") is None:
    os.environ["TRITON_INTERPRET"] = "1"

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

# Kernels run on this device; the interpreter works on CPU tensors.
DEVICE = "cuda" if (HAS_CUDA and not INTERPRETED) else "cpu"


def _scalar_loop_bounds_in_the_interpreter():
    """Triton 3.6's interpreter (the GPU machines' version) turns a scalar tensor into a loop bound
    with int(array); its scalars are 1-element arrays, which numpy >= 2.4 refuses to convert, so a
    `range(0, n, TILE)` over a loaded n fails there (later Triton versions convert them fine). Wrap
    the step that gives interpreter tensors their methods so __index__ takes the single element."""
    try:
        import numpy as np
        from triton.runtime import interpreter
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_scalar_bounds", False):
        return

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))

    patched._scalar_bounds = True
    interpreter._patch_lang_tensor = patched


if INTERPRETED:
    _scalar_loop_bounds_in_the_interpreter()


def next_pow2(n: int) -> int:
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def padded_dim(D: int, esize: int) -> int:
    """Head dim padded for tl.dot: a power of two, at least 16 (32 for 1-byte fp8 operands, whose
    tensor-core products take K >= 32); the padding loads as zeros."""
    return max(32 if esize == 1 else 16, next_pow2(D))


def fp8_dtype():
    return torch.float8_e4m3fn


FP8_MAX = 448.0
