"""Top-k kernel against its reference. The kernel breaks ties towards lower positions, like the
reference, so whole sets must be equal; the tie-aware checker is also exercised."""
import pytest
import torch

from kernels.checks import selection_errors
from kernels.topk import launch_topk
from kernels.topk_naive import topk_ref
from tests.helpers import as_sets

# small buffers in the interpreter so that every path runs on tiny rows:
DIRECT = dict(CAP=512, TILE=32)     # whole row in registers
STREAMED = dict(CAP=128, TILE=32)   # histogram pass, then keys above the bin out, the bin's keys listed
CROWDED = dict(CAP=16, TILE=32)     # crowded bins: two or three histogram passes before the last one
PATHS = {"direct": DIRECT, "streamed": STREAMED, "crowded": CROWDED}


def _rows(kind, T, W, device):
    if kind == "random":
        s = torch.randn(T, W)
    elif kind == "ties":
        s = torch.randint(0, 4, (T, W)).float()
    elif kind == "relu_zeros":       # what ReLU does to real scores: masses of exact zeros
        s = torch.randn(T, W).clamp_min(0)
    elif kind == "zero_mass":        # fewer positive scores than k: the k-th is a zero, tied
        u = torch.rand(T, W)
        s = torch.where(u < 0.05, torch.rand(T, W) + 0.1, torch.where(u < 0.5, 0.0, -torch.rand(T, W) - 0.1))
        s[:, 1::7] = -0.0                                  # -0.0 is the same score as 0.0
    elif kind == "neg_inf":
        s = torch.randn(T, W)
        s[:, ::3] = float("-inf")
    elif kind == "huge_range":
        s = torch.randn(T, W) * torch.logspace(-30, 30, W)
    elif kind == "sorted":
        s = torch.arange(W, dtype=torch.float32).repeat(T, 1)
    return s.to(device)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind", ["random", "ties", "relu_zeros", "zero_mass", "neg_inf", "huge_range", "sorted"])
def test_topk_equals_reference(kind, path, device):
    T, W, k = 6, 300, 20
    s = _rows(kind, T, W, device)
    row_len = torch.tensor([300, 5, 64, 65, 200, 17], dtype=torch.int32, device=device)
    base = torch.tensor([0, 10, 3, 0, 7, 1], dtype=torch.int32, device=device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)      # poisoned
    cfg = PATHS[path] if device == "cpu" else None
    launch_topk(s, k, row_len, base, out=out, config=cfg)
    ref = topk_ref(s, k, row_len, base)
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(ref)
    assert not selection_errors(out, s, base, row_len, k)
    # -1 exactly in the unused slots, positions first
    n_sel = (out >= 0).sum(1)
    for t in range(T):
        assert (out[t, n_sel[t]:] == -1).all() and (out[t, :n_sel[t]] >= 0).all()


@pytest.mark.parametrize("path", list(PATHS))
def test_topk_block_map(path, device):
    # candidate slot j of row t is key map[t, j // B] * B + j % B (HISA stage 2)
    T, m, B, k = 3, 5, 16, 12
    kept = torch.tensor([[2, 5, 7, 9, -1], [0, 1, 2, 3, 4], [11, 3, 8, 6, 1]], dtype=torch.int32, device=device)
    s = torch.randn(T, m * B, device=device)
    s[0, 4 * B:] = float("-inf")
    full = torch.full((T,), m * B, dtype=torch.int32, device=device)
    out = launch_topk(s, k, full, None, kept, B, config=PATHS[path] if device == "cpu" else None)
    ref_rel = topk_ref(s, k, full)
    expect = [set((kept[t, j // B] * B + j % B).item() for j in ref_rel[t].tolist() if j >= 0) for t in range(T)]
    assert as_sets(out) == expect


def test_topk_k_larger_than_rows(device):
    s = torch.randn(3, 40, device=device)
    row_len = torch.tensor([40, 7, 1], dtype=torch.int32, device=device)
    out = launch_topk(s, 64, row_len, None)
    assert [len(x) for x in as_sets(out)] == [40, 7, 1]
    assert (out[1, 7:] == -1).all() and (out[2, 1:] == -1).all()


def test_checker_catches_wrong_selection(device):
    s = torch.arange(10, dtype=torch.float32, device=device)[None]
    row_len = torch.tensor([10], device=device)
    base = torch.tensor([0], device=device)
    good = torch.tensor([[9, 8, 7]], dtype=torch.int32)
    assert not selection_errors(good, s, base, row_len, 3)
    assert selection_errors(torch.tensor([[9, 8, 6]], dtype=torch.int32), s, base, row_len, 3)
    assert selection_errors(torch.tensor([[9, 9, 8]], dtype=torch.int32), s, base, row_len, 3)
    assert selection_errors(torch.tensor([[9, 8, -1]], dtype=torch.int32), s, base, row_len, 3)
    assert selection_errors(torch.tensor([[9, 8, 10]], dtype=torch.int32), s, base, row_len, 3)
    # ties: any of the tied entries is fine
    s2 = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
    assert not selection_errors(torch.tensor([[3, 1]], dtype=torch.int32), s2, base, torch.tensor([5]), 2)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind", ["structured", "window", "zeros", "equal", "causal", "clusters"])
def test_topk_on_score_row_kinds(kind, path, device):
    """The row kinds the speed command times (hisa_bench/inputs/score_rows.py): the same sets as the
    reference, lowest positions winning ties (-0.0 and +0.0 are equal scores)."""
    from hisa_bench.inputs.score_rows import make_rows

    T, W, k = 5, 700, 40
    s, row_len = make_rows(kind, T, W, k=k, seed=3, device=device)
    if kind == "window":                 # a window narrower than the row, at these sizes
        s[:, :-100] = torch.randn(T, W - 100, device=device) * 0.1
        s[:, -100:] += 10
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, row_len, None, out=out, config=PATHS[path] if device == "cpu" else None)
    ref = topk_ref(s, k, row_len)
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(ref)


@pytest.mark.parametrize("k", [3, 4, 5, 6, 9])
def test_topk_threshold_at_zero(k, device):
    """k-th score exactly zero: k = 3 takes the positives only; 4 splits the zeros (lowest positions);
    5 takes every key from zero up (exactly k of them, no tie to cut); 6 and 9 reach the negatives
    below."""
    s = torch.tensor([[-1.0, 0.0, 2.0, -0.0, -3.0, 5.0, 0.5, -2.0, float("-inf"), -0.5]], device=device)
    row_len = torch.tensor([10], dtype=torch.int32, device=device)
    out = torch.full((1, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, row_len, None, out=out, config=DIRECT if device == "cpu" else None)
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))
    assert as_sets(out)[0] >= {2, 5, 6}


@pytest.mark.parametrize("path", ["streamed", "crowded"])
@pytest.mark.parametrize("k", [12, 13, 15, 16, 17])
def test_topk_long_row_threshold_at_zero(k, path, device):
    """A row longer than CAP whose k-th score is near zero: the narrowing passes list the keys
    around it and the register path resolves the list. 12 keys lie above zero and 4 at it (-0.0 is
    one of them): k = 12 takes the positives, 13 and 15 cut the zeros (lowest positions first), 16
    is exactly every key from zero up, 17 reaches one below."""
    row = torch.full((40,), -1.0)
    row[[3, 8, 13, 18, 21, 25, 29, 33, 36, 39]] = 5.0
    row[[5, 22, 30]] = 0.0
    row[[11, 27]] = 1e-38
    row[[1, 16, 35]] = -1e-38
    row[9] = -0.0                                       # the same score as 0.0: a fourth zero
    s = row[None].repeat(2, 1).to(device)
    row_len = torch.tensor([40, 37], dtype=torch.int32, device=device)
    out = torch.full((2, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, row_len, None, out=out, config=PATHS[path] if device == "cpu" else None)
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))


def test_topk_signed_zeros_tie(device):
    # +0.0 and -0.0 are one score: the lowest positions win, whatever the sign bit
    s = torch.tensor([[-0.0, 0.0, -0.0, 0.0, 1.0, -1.0]], device=device)
    out = launch_topk(s, 3, torch.tensor([6], dtype=torch.int32, device=device), None)
    assert as_sets(out) == [{4, 0, 1}]


def test_topk_long_row_many_tiles(device):
    # a row of several tiles in every pass, with the default configuration
    T, W, k = 2, 5000, 64
    s = torch.randn(T, W, device=device)
    s[1] = torch.randint(0, 3, (W,), device=device).float()      # crowded: ties decide
    row_len = torch.tensor([W, W - 17], dtype=torch.int32, device=device)
    out = launch_topk(s, k, row_len, None)
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))


@pytest.mark.parametrize("kind", ["random", "clusters"])
def test_topk_counts_past_255_tiles(kind, device):
    # a pass counts each slot's keys in 8-bit fields and empties them every 255 tiles: a row of
    # more tiles than that must count right (tiny tiles make one here)
    from hisa_bench.inputs.score_rows import make_rows

    s, row_len = make_rows(kind, 2, 1100, k=24, seed=5, device=device)
    out = torch.full((2, 24), -7, dtype=torch.int32, device=device)
    launch_topk(s, 24, row_len, None, out=out, config=dict(CAP=16, TILE=4) if device == "cpu" else None)
    assert as_sets(out) == as_sets(topk_ref(s, 24, row_len))


@pytest.mark.parametrize("kind", ["random", "ties", "relu_zeros", "neg_inf", "sorted"])
def test_short_rows_with_a_block_map(kind, device):
    # rows that all fit the registers (W <= CAP): the launch compiles the short-row path only
    # (LONG=False). HISA's token top-k has a block map; its rows are W = m * B wide.
    T, m, B, k = 5, 6, 32, 40
    s = _rows(kind, T, m * B, device)
    kept = torch.stack([torch.randperm(50)[:m] for _ in range(T)]).to(torch.int32).to(device)
    kept[1, 4:] = -1                   # fewer visible blocks than m
    s[1, 4 * B:] = float("-inf")
    full = torch.full((T,), m * B, dtype=torch.int32, device=device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)      # poisoned
    cfg = dict(CAP=256, TILE=64) if device == "cpu" else None
    launch_topk(s, k, full, None, kept, B, out=out, config=cfg)
    cand = topk_ref(s, k, full, None)
    ref = torch.where(cand >= 0, kept.gather(1, (cand.clamp(min=0) // B).long()) * B + cand % B, cand)
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(ref)
