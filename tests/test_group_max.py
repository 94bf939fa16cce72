"""The group-maxima pass (the pruned top-k's bound) against its torch reference: bit-equal maxima,
every group of a row written, nothing past it."""
import pytest
import torch

from kernels.group_max import group_count, launch_group_max
from kernels.topk_pruned_naive import group_max_ref


@pytest.mark.parametrize("G", [2, 16, 64])
def test_group_max_pass_equals_reference(G, device):
    # rows in the relative layout: unaligned bases, lengths not multiples of G, -inf entries, a row
    # shorter than one group, an empty row; poisoned output: every group written, nothing past it
    T, W = 6, 300
    s = torch.randn(T, W, device=device)
    s[1, ::3] = float("-inf")
    s[2] = 0.0
    s[5] = torch.arange(W, dtype=torch.float32, device=device)        # a recency ramp
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
