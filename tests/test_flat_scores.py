"""Flat score kernel against its float64 reference, in the interpreter on a CPU."""
import pytest
import torch

from kernels.flat_scores import launch_scores
from kernels.flat_scores_naive import flat_scores_ref
from tests.helpers import check_poisoned_scores, make_inputs

CASES = [
    # T, H, D, N, dtype, structured
    (5, 4, 32, 70, torch.bfloat16, None),
    (3, 64, 128, 45, "fp8", None),
    (4, 3, 48, 33, torch.float16, "sink"),
    (6, 8, 64, 90, "fp8", "clusters"),
    (2, 1, 16, 19, torch.float32, None),
]


@pytest.mark.parametrize("T,H,D,N,dtype,structured", CASES)
def test_scores_match_reference_and_write_every_visible_entry(T, H, D, N, dtype, structured, device):
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, structured=structured)
    width = int((ke - ks).max())
    out = torch.full((T, width + 3), float("nan"), device=device)       # poisoned
    launch_scores(q, k, w, ks, ke, ksc, out=out)
    err = check_poisoned_scores(out, flat_scores_ref(q, k, w, ks, ke, ksc), width)
    # exact products accumulated in fp32; on a GPU fp32 inputs use tf32 and fp8 products are
    # accumulated by the tensor cores with fewer mantissa bits (about 1e-4 relative)
    tol = {torch.float32: 5e-3, "fp8": 5e-4}.get(dtype, 1e-5) if device == "cuda" else 1e-5
    assert err < tol, f"relative error {err:.2e}"


def test_packed_ranges_and_force_ends(device):
    # three packed sequences; blocks of queries straddle their boundaries
    T, H, D, N = 9, 4, 32, 60
    ks = torch.tensor([0, 0, 0, 20, 20, 20, 45, 45, 45], dtype=torch.int32)
    ke = torch.tensor([5, 12, 20, 21, 33, 45, 46, 50, 60], dtype=torch.int32)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.bfloat16, device, ks=ks, ke=ke)
    out = torch.full((T, 25), float("nan"), device=device)
    launch_scores(q, k, w, ks, ke, ksc, out=out, force_ends=True)
    ref = flat_scores_ref(q, k, w, ks, ke, ksc, force_ends=True)
    fin = torch.isfinite(ref)
    assert torch.equal(torch.isposinf(out[:, :ref.shape[1]]), torch.isposinf(ref))
    assert torch.allclose(out[:, :ref.shape[1]][fin].double(), ref[fin], rtol=1e-4, atol=1e-4)
    rowlen = (ke - ks).long()
    for t in range(T):  # first and last visible entries are forced
        assert out[t, 0] == float("inf") and out[t, rowlen[t] - 1] == float("inf")


def test_zero_weight_heads_do_not_leak(device):
    # a head with zero weight must contribute nothing even with huge dot products
    q, k, w, ks, ke, ksc = make_inputs(4, 4, 32, 40, torch.float32, device)
    w[:, 1] = 0
    q[:, 1] *= 1e4
    out = launch_scores(q, k, w, ks, ke, ksc)
    ref = flat_scores_ref(q, k, w, ks, ke, ksc)
    vis = torch.isfinite(ref)
    assert torch.allclose(out[:, :ref.shape[1]][vis].double(), ref[vis], rtol=5e-3, atol=1e-2)
