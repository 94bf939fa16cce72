"""The Gluon score kernel (kernels/flat_scores_wgmma.py) against the float64 reference, on a Hopper GPU.

Gluon kernels do not run in the Triton interpreter: on a CPU only the routing rule is checked, and
`python -m kernels.compile_check` (tests/test_compile_sm90.py) compiles the kernel for sm_90.
"""
import pytest
import torch

from kernels.flat_scores import scores_plan
from kernels.flat_scores_naive import flat_scores_ref
from kernels.flat_scores_wgmma import HAVE_GLUON, default_config, launch_scores_wgmma, wgmma_fits
from tests.conftest import DEVICE
from tests.helpers import check_poisoned_scores, make_inputs

hopper = pytest.mark.skipif(
    not (DEVICE == "cuda" and HAVE_GLUON and torch.cuda.get_device_capability()[0] == 9),
    reason="needs a Hopper GPU (sm_90) with compiled kernels and Triton's Gluon")

CASES = [
    # T, H, D, N, dtype, structured, packed ranges
    (37, 64, 128, 1000, "fp8", None, False),        # T and N not multiples of the tiles
    (64, 64, 128, 4099, "fp8", "clusters", False),
    (9, 64, 128, 300, "fp8", "sink", True),         # packed sequences: programs straddle them
    (10, 128, 64, 517, torch.bfloat16, None, False),
    (5, 64, 64, 70, torch.float16, None, True),
]


def _packed(T, N):
    cuts = sorted({0, N} | {N * i // 3 for i in (1, 2)})
    ks, ke = [], []
    for t in range(T):
        s = min(t * 3 // T, len(cuts) - 2)
        lo, hi = cuts[s], cuts[s + 1]
        ks.append(lo)
        ke.append(lo + max(1, (hi - lo) * (t % 4 + 1) // 4))
    return torch.tensor(ks, dtype=torch.int32), torch.tensor(ke, dtype=torch.int32)


@hopper
@pytest.mark.parametrize("T,H,D,N,dtype,structured,packed", CASES)
@pytest.mark.parametrize("config", [{}, {"W_IN_REGS": False, "SLOT_SYNC": True}, {"A_IN_REGS": False}])
def test_wgmma_scores_match_reference_and_write_only_visible_entries(T, H, D, N, dtype, structured, packed, config):
    ks, ke = _packed(T, N) if packed else (None, None)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, "cuda", ks=ks, ke=ke, structured=structured)
    assert wgmma_fits(q, k)
    cfg = {**default_config(H, D, q.element_size()), **config}
    plan = scores_plan(ks, ke, H, config=dict(BLOCK_Q=cfg["BLOCK_Q"], BLOCK_N=cfg["BLOCK_N"]))
    width = int((ke - ks).max())
    out = torch.full((T, width + 5), float("nan"), device="cuda")      # poisoned
    launch_scores_wgmma(q, k, w, ks, ke, ksc, out, plan["grid"], plan["split_n"], config=cfg)
    torch.cuda.synchronize()
    err = check_poisoned_scores(out, flat_scores_ref(q, k, w, ks, ke, ksc), width)
    assert err < (5e-4 if dtype == "fp8" else 1e-5), f"relative error {err:.2e}"


@hopper
def test_wgmma_split_key_ranges_cover_every_key():
    # a decode-like batch: one query per program, its range cut into several key pieces
    T, H, D, N = 6, 64, 128, 3000
    ks = torch.tensor([0, 500, 1000, 1500, 2000, 2500], dtype=torch.int32)
    ke = ks + torch.tensor([500, 17, 400, 1, 499, 500], dtype=torch.int32)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, "fp8", "cuda", ks=ks, ke=ke)
    plan = scores_plan(ks, ke, H, config=dict(BLOCK_Q=1, BLOCK_N=64), split_n=128)
    assert plan["grid"][1] > 1
    out = torch.full((T, 500), float("nan"), device="cuda")
    launch_scores_wgmma(q, k, w, ks, ke, ksc, out, plan["grid"], plan["split_n"], config=dict(BLOCK_Q=1))
    ref = flat_scores_ref(q, k, w, ks, ke, ksc)
    vis = torch.isfinite(ref)
    assert not torch.isnan(out[vis]).any() and torch.isnan(out[~vis]).all()
    assert torch.allclose(out[vis].double(), ref[vis], rtol=1e-3, atol=1e-3 * ref[vis].abs().max())


def test_wgmma_routing_rule():
    # only CUDA tensors of the shapes TMA takes, with the flat score's ReLU and no forced ends
    q = torch.zeros(4, 64, 128, dtype=torch.float8_e4m3fn)
    k = torch.zeros(100, 128, dtype=torch.float8_e4m3fn)
    assert not wgmma_fits(q, k)                   # CPU tensors
    if DEVICE == "cuda":
        qc, kc = q.cuda(), k.cuda()
        hopper_gpu = HAVE_GLUON and torch.cuda.get_device_capability()[0] == 9
        assert wgmma_fits(qc, kc) == hopper_gpu
        assert not wgmma_fits(qc, kc, relu=False) and not wgmma_fits(qc, kc, force_ends=True)
        assert not wgmma_fits(qc[:, :3], kc)      # H = 3: not a TMA-sized query tile
    assert default_config(64, 128, 1)["BLOCK_Q"] * 64 == 256
