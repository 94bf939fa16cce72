import os
import zlib
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kernels  # noqa: E402,F401  (sets TRITON_INTERPRET=1 without a GPU, before any kernel import)

from kernels._runtime import DEVICE as KERNEL_DEVICE  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
# where the kernels run: CUDA when compiled; the CPU when interpreted (no GPU, or TRITON_INTERPRET=1).
# Tests hand the kernels tensors on this device, never CPU tensors to compiled kernels.
DEVICE = KERNEL_DEVICE
gpu_only = pytest.mark.skipif(KERNEL_DEVICE != "cuda",
                              reason="needs a CUDA GPU and compiled kernels: these tests run them at real shapes")


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture(autouse=True)
def _seed(request):
    # a fresh but reproducible seed per test
    torch.manual_seed(zlib.crc32(request.node.name.encode()))
