"""The speed command's accuracy gate (hisa_bench/measure/accuracy.py) on its own: counts come from
the semantics, so empty or truncated selections fail for every method, without crashing the
checker; unaligned ranges (packed sequences) are counted right; correct selections pass."""
import pytest
import torch

from hisa_bench import api
from hisa_bench.measure import accuracy
from hisa_bench.workloads import Workload
from kernels.hisa_naive import block_sparse_select_ref, flat_select_ref, hisa_select_ref

B, M, K = 16, 3, 40


def _workload(ks, ke, N=160, H=3, D=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(len(ks), H, D, generator=g)
    k = torch.randn(N, D, generator=g)
    w = torch.randn(len(ks), H, generator=g)
    ks = torch.tensor(ks, dtype=torch.int32)
    ke = torch.tensor(ke, dtype=torch.int32)
    return Workload("chunk", N, 1, q, k, w, ks, ke, None)


# unaligned starts (packed sequences), a query that sees fewer than k keys, one that sees fewer
# than m blocks, one whose m * B keys span m + 1 blocks
KS = [0, 5, 21, 40, 70, 9]
KE = [160, 150, 60, 52, 150, 57]


def _refs(wl, method):
    args = (wl.q, wl.k, wl.w, wl.ks, wl.ke, None)
    if method == "flat":
        return flat_select_ref(*args, topk=K)
    if method == "hisa":
        return hisa_select_ref(*args, topk=K, block_size=B, blocks=M)
    return block_sparse_select_ref(*args, topk=K, block_size=B)


def _check(method, sel, wl):
    return accuracy.check(method, sel, wl, list(range(wl.queries)), topk=K, block_size=B, blocks=M)


@pytest.mark.parametrize("method", ["flat", "hisa", "block-sparse"])
def test_reference_selections_pass(method):
    wl = _workload(KS, KE)
    assert _check(method, _refs(wl, method), wl) == []


@pytest.mark.parametrize("method", ["flat", "hisa", "block-sparse"])
def test_empty_selection_fails_without_crashing(method):
    wl = _workload(KS, KE)
    problems = _check(method, torch.full((wl.queries, K), -1, dtype=torch.int32), wl)
    assert problems and all(p.startswith("query ") for p in problems)
    assert "0 selected" in problems[0]


@pytest.mark.parametrize("method", ["flat", "hisa", "block-sparse"])
def test_first_choice_only_fails(method):
    wl = _workload(KS, KE)
    sel = _refs(wl, method).clone()
    sel[:, 1:] = -1
    problems = _check(method, sel, wl)
    assert problems and "1 selected" in problems[0]


@pytest.mark.parametrize("method", ["hisa", "block-sparse"])
def test_one_key_missing_fails(method):
    wl = _workload(KS, KE)
    sel = _refs(wl, method).clone()
    n = int((sel[0] >= 0).sum())
    sel[0, n - 1] = -1
    assert _check(method, sel, wl)


def test_expected_counts_from_the_semantics():
    # [5, 150) with B = 16: blocks 0..9; first block holds 11 visible keys, last (144..149) 6
    assert accuracy.kept_key_count(5, 150, 16, 3) == 11 + 6 + 16
    assert accuracy.kept_key_count(5, 150, 16, 2) == 11 + 6
    assert accuracy.kept_key_count(5, 150, 16, 10) == 145        # every visible block kept
    assert accuracy.kept_key_count(9, 57, 16, 3) == 7 + 9 + 16    # 48 keys span 4 blocks: 3 kept
    assert accuracy.kept_key_count(9, 57, 16, 4) == 48
    assert accuracy.kept_key_count(4, 4, 16, 3) == 0
    kw = dict(topk=K, block_size=B, blocks=M)
    assert accuracy.expected_count("flat", 21, 60, **kw) == 39
    assert accuracy.expected_count("flat", 0, 160, **kw) == K
    assert accuracy.expected_count("hisa", 9, 57, **kw) == 7 + 9 + 16
    assert accuracy.expected_count("hisa", 0, 160, **kw) == K
    assert accuracy.expected_count("block-sparse", 5, 150, **kw) == 11 + 6   # m' = 40 // 16 = 2
    # the references hold exactly these counts
    wl = _workload(KS, KE)
    for method in ("flat", "hisa", "block-sparse"):
        got = (_refs(wl, method) >= 0).sum(1).tolist()
        assert got == [accuracy.expected_count(method, a, b, **kw) for a, b in zip(KS, KE)], method


def test_hisa_passed_off_flat_fails():
    wl = _workload(KS, KE)
    flat = _refs(wl, "flat")
    assert _check("hisa", flat, wl)


def test_hisa_skipping_a_forced_block_fails():
    # the best keys of a query that sees 10 blocks, taken from its middle blocks only, while its
    # first and last visible blocks (always kept) hold better keys
    wl = _workload([5], [150])
    wl.k[5:16] = wl.q[0].mean(0) * 5 * torch.sign(wl.w[0].sum())
    sel = _refs(wl, "hisa")
    assert _check("hisa", sel, wl) == []
    bad = sel.clone()
    inside = [p for p in range(16, 144)][:int((sel >= 0).sum())]
    bad[0, :len(inside)] = torch.tensor(inside, dtype=torch.int32)
    assert _check("hisa", bad, wl)


def test_sample_rows_cover_ends_and_vary():
    rows = accuracy.sample_rows(100)
    assert rows[0] == 0 and rows[-1] == 99 and len(rows) >= 7
    draws = {tuple(accuracy.sample_rows(1000)) for _ in range(20)}
    assert len(draws) > 1                      # random extra rows: not a fixed, known set
    assert accuracy.sample_rows(1) == [0]


def test_flat_on_kernels_output_passes(device):
    # the kernels' own selections pass the gate (fp32 references, compiled or interpreted)
    wl = _workload(KS, KE)
    wl = Workload("chunk", 160, 1, *(t.to(device) for t in (wl.q, wl.k, wl.w, wl.ks, wl.ke)), None)
    for method, fn, kw in (("flat", api.flat_select, {}), ("hisa", api.hisa_select, dict(block_size=B, blocks=M)),
                           ("block-sparse", api.block_sparse_select, dict(block_size=B))):
        sel = fn(wl.q, wl.k, wl.w, wl.ks, wl.ke, topk=K, backend="triton", **kw)
        assert _check(method, sel, wl) == [], method
