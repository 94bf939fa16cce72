"""The score kernel's group maxima (the pruned top-k's bound) against their torch reference: bit-equal
to the max of the scores the kernel itself wrote, every group of a row written, nothing past it."""
import pytest
import torch

from kernels.flat_scores import group_count, launch_scores
from kernels.group_max import launch_group_max
from kernels.topk_pruned_naive import group_max_ref
from tests.helpers import make_inputs


def _groups_of_rows(ks, ke, G):
    a = (ks % G).long()
    return -(-(a + (ke - ks).long()) // G)


@pytest.mark.parametrize("G", [4, 16, 64])
@pytest.mark.parametrize("structured", [None, "clusters"])
def test_group_maxima_equal_the_max_of_the_written_scores(G, structured, device):
    # packed sequences with unaligned starts (ks % G != 0) and lengths that are not multiples of G
    T, H, D, N = 9, 4, 32, 230
    ks = torch.tensor([0, 0, 0, 21, 21, 21, 150, 150, 0], dtype=torch.int32)
    ke = torch.tensor([5, 64, 130, 22, 90, 150, 151, 230, 230], dtype=torch.int32)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.bfloat16, device, ks=ks, ke=ke, structured=structured)
    width = int((ke - ks).max())
    out = torch.full((T, width), float("nan"), device=device)
    gcols = group_count(width, G) + 2
    gmax = torch.full((T, gcols), float("nan"), device=device)          # poisoned
    launch_scores(q, k, w, ks, ke, ksc, out=out, group_max=gmax, group_size=G)
    ref = group_max_ref(out, ke - ks, ks, G)
    n_groups = _groups_of_rows(ks.cpu(), ke.cpu(), G)
    for t in range(T):
        n = int(n_groups[t])
        got = gmax[t].cpu()
        assert not torch.isnan(got[:n]).any(), f"row {t}: a group maximum was not written"
        assert torch.isnan(got[n:]).all(), f"row {t}: wrote past the row's groups"
        assert torch.equal(got[:n], ref[t, :n].cpu()), f"row {t}: group maxima differ from the scores' maxima"


def test_group_maxima_refuse_forced_ends(device):
    q, k, w, ks, ke, ksc = make_inputs(2, 4, 32, 40, torch.bfloat16, device)
    gmax = torch.empty((2, 16), device=device)
    with pytest.raises(AssertionError):
        launch_scores(q, k, w, ks, ke, ksc, force_ends=True, group_max=gmax, group_size=16)


@pytest.mark.parametrize("G", [2, 16, 64])
def test_group_max_pass_equals_reference(G, device):
    # rows in the relative layout: unaligned bases, lengths not multiples of G, -inf entries, a row
    # shorter than one group, an empty row; poisoned output: every group written, nothing past it
    T, W = 6, 300
    s = torch.randn(T, W, device=device)
    s[1, ::3] = float("-inf")
    s[2] = 0.0
    row_len = torch.tensor([300, 257, 100, 1, 0, 64], dtype=torch.int32, device=device)
    base = torch.tensor([0, 7, 33, 5, 9, 63], dtype=torch.int32, device=device)
    out = torch.full((T, group_count(W, G) + 2), float("nan"), device=device)
    launch_group_max(s, row_len, base, G, out=out, config=dict(GROUPS_PER_PROG=8) if device == "cpu" else None)
    ref = group_max_ref(s, row_len, base, G)
    n_groups = (base.long() % G + row_len.long() + G - 1) // G
    for t in range(T):
        n = int(n_groups[t])
        assert torch.equal(out[t, :n].cpu(), ref[t, :n].cpu()), t
        assert torch.isnan(out[t, n:]).all(), f"row {t}: wrote past its groups"
