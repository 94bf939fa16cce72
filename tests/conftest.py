import os
import zlib
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kernels  # noqa: E402,F401  (sets TRITON_INTERPRET=1 without a GPU, before any kernel import)

HAS_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if HAS_CUDA else "cpu"
gpu_only = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU: these tests run the compiled kernels at real shapes")


@pytest.fixture
def device():
    return DEVICE


@pytest.fixture(autouse=True)
def _seed(request):
    # a fresh but reproducible seed per test
    torch.manual_seed(zlib.crc32(request.node.name.encode()))
