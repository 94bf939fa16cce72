"""The experimental histogram selection (kernels/topk.py, HIST=1): every case of tests/test_topk.py
again with HIST=1, as sets equal to the torch reference, and its k-th-key search checked directly
against the bisection it may replace and against keys computed in torch."""
import pytest
import torch
import triton
import triton.language as tl

from kernels.checks import selection_errors
from kernels.topk import _kth_by_histogram, _kth_in_registers, _to_key, launch_topk
from kernels.topk_naive import topk_ref
from tests.helpers import as_sets
from tests.test_topk import PATHS, _rows

HIST = dict(HIST=1)


def _cfg(path):
    # the small buffers that force each path, on the GPU too (default warps for these rows)
    return dict(PATHS[path], **HIST)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind", ["random", "ties", "relu_zeros", "neg_inf", "huge_range", "sorted"])
def test_hist_topk_equals_reference(kind, path, device):
    T, W, k = 6, 300, 20
    s = _rows(kind, T, W, device)
    row_len = torch.tensor([300, 5, 64, 65, 200, 17], dtype=torch.int32, device=device)
    base = torch.tensor([0, 10, 3, 0, 7, 1], dtype=torch.int32, device=device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)      # poisoned
    launch_topk(s, k, row_len, base, out=out, config=_cfg(path))
    ref = topk_ref(s, k, row_len, base)
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(ref)
    assert not selection_errors(out, s, base, row_len, k)
    n_sel = (out >= 0).sum(1)
    for t in range(T):
        assert (out[t, n_sel[t]:] == -1).all() and (out[t, :n_sel[t]] >= 0).all()


@pytest.mark.parametrize("path", list(PATHS))
def test_hist_topk_block_map(path, device):
    T, m, B, k = 3, 5, 16, 12
    kept = torch.tensor([[2, 5, 7, 9, -1], [0, 1, 2, 3, 4], [11, 3, 8, 6, 1]], dtype=torch.int32, device=device)
    s = torch.randn(T, m * B, device=device)
    s[0, 4 * B:] = float("-inf")
    full = torch.full((T,), m * B, dtype=torch.int32, device=device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, full, None, kept, B, out=out, config=_cfg(path))
    ref_rel = topk_ref(s, k, full)
    expect = [set((kept[t, j // B] * B + j % B).item() for j in ref_rel[t].tolist() if j >= 0) for t in range(T)]
    assert as_sets(out) == expect


@pytest.mark.parametrize("path", list(PATHS))
def test_hist_topk_k_larger_than_rows(path, device):
    s = torch.randn(3, 40, device=device)
    s[2, 3:] = float("-inf")
    row_len = torch.tensor([40, 7, 10], dtype=torch.int32, device=device)
    out = torch.full((3, 64), -7, dtype=torch.int32, device=device)
    launch_topk(s, 64, row_len, None, out=out, config=_cfg(path))
    assert [len(x) for x in as_sets(out)] == [40, 7, 3]
    assert as_sets(out) == as_sets(topk_ref(s, 64, row_len))
    assert (out[1, 7:] == -1).all() and (out[2, 3:] == -1).all()


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("kind", ["structured", "window", "zeros", "equal", "causal", "clusters"])
def test_hist_topk_on_score_row_kinds(kind, path, device):
    from hisa_bench.inputs.score_rows import make_rows

    T, W, k = 5, 700, 40
    s, row_len = make_rows(kind, T, W, k=k, seed=3, device=device)
    if kind == "window":
        s[:, :-100] = torch.randn(T, W - 100, device=device) * 0.1
        s[:, -100:] += 10
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, row_len, None, out=out, config=_cfg(path))
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))


def test_hist_topk_signed_zeros_tie(device):
    s = torch.tensor([[-0.0, 0.0, -0.0, 0.0, 1.0, -1.0]], device=device)
    out = launch_topk(s, 3, torch.tensor([6], dtype=torch.int32, device=device), None, config=HIST)
    assert as_sets(out) == [{4, 0, 1}]


def test_hist_topk_long_row_many_tiles(device):
    T, W, k = 2, 5000, 64
    s = torch.randn(T, W, device=device)
    s[1] = torch.randint(0, 3, (W,), device=device).float()
    row_len = torch.tensor([W, W - 17], dtype=torch.int32, device=device)
    out = launch_topk(s, k, row_len, None, config=HIST)
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))


# ---- the k-th-key search itself, through a wrapper kernel ----

@triton.jit
def _kth_wrapper(X, N, R, OUT, CAP: tl.constexpr, HIST: tl.constexpr, BITS: tl.constexpr):
    """Row t: keys of X[t, :N[t]] (-inf invalid), rank R[t]; OUT[t] = (key, keys above it)."""
    t = tl.program_id(0)
    i = tl.arange(0, CAP)
    n = tl.load(N + t)
    r = tl.load(R + t)
    ck = _to_key(tl.load(X + t * CAP + i, mask=i < n, other=float("-inf")))
    ok = ck != 0
    if HIST:
        key, above = _kth_by_histogram(ck, ok, r, BITS)
    else:
        key, above = _kth_in_registers(ck, ok, r)
    tl.store(OUT + 2 * t, key.to(tl.int32, bitcast=True))
    tl.store(OUT + 2 * t + 1, above)


def _keys_ref(x):
    """kernels/topk._to_key in torch (int64 holding the uint32 key)."""
    x = torch.where(x == 0, torch.zeros_like(x), x)
    b = x.view(torch.int32).long() & 0xFFFFFFFF
    key = torch.where(b >> 31 == 1, 0xFFFFFFFF - b, b | (1 << 31))
    return torch.where(x == float("-inf"), torch.zeros_like(key), key)


@pytest.mark.parametrize("kind", ["random", "ties", "single_value", "one_valid", "huge_range", "near_keys"])
def test_kth_by_histogram_matches_bisection(kind, device):
    T, CAP = 8, 64
    x = torch.randn(T, CAP)
    if kind == "ties":
        x = torch.randint(-2, 3, (T, CAP)).float()
    elif kind == "single_value":
        x = torch.full((T, CAP), -1.25)
    elif kind == "one_valid":
        x = torch.full((T, CAP), float("-inf"))
        x[:, 5] = torch.randn(T)
    elif kind == "huge_range":
        x = torch.randn(T, CAP) * torch.logspace(-30, 30, CAP)
    elif kind == "near_keys":      # keys differing in the lowest bits only: the top digits skipped
        x = (1.0 + torch.randint(0, 200, (T, CAP)).float() * 2.0 ** -23)
    if kind != "one_valid":
        x[1:, ::7] = float("-inf")
    n = torch.tensor([CAP, 1, 17, 40, 63, 64, 33, 50], dtype=torch.int32)
    valid = [int((_keys_ref(x[t, :n[t]]) != 0).sum()) for t in range(T)]
    # ranks: the smallest key, the largest, and one in between
    r = torch.tensor([v if t % 3 == 0 else 1 if t % 3 == 1 else 1 + (t * 13) % max(v, 1)
                      for t, v in enumerate(valid)], dtype=torch.int32)
    rows = [t for t in range(T) if valid[t] >= 1]          # the contract: 1 <= r <= valid keys
    got = {}
    for bits in (0, 8, 4):       # 0: the bisection; 8 and 4: histogram digits of that many bits
        out = torch.full((T, 2), -7, dtype=torch.int32, device=device)
        _kth_wrapper[(T,)](x.to(device), n.to(device), r.to(device), out, CAP=CAP, HIST=int(bits > 0),
                           BITS=max(bits, 1))
        got[bits] = out.cpu()
    for bits in (8, 4):
        assert torch.equal(got[0][rows], got[bits][rows]), bits
        for t in rows:
            keys = _keys_ref(x[t, :n[t]])
            keys = keys[keys != 0].sort(descending=True).values
            kth = int(keys[r[t] - 1])
            assert int(got[bits][t, 0]) & 0xFFFFFFFF == kth, (t, kind, bits)
            assert int(got[bits][t, 1]) == int((keys > kth).sum()), (t, kind, bits)


@pytest.mark.parametrize("path", ["direct", "crowded"])
@pytest.mark.parametrize("kind", ["random", "ties", "huge_range"])
def test_hist_4bit_digits_equal_reference(kind, path, device):
    # HIST_BITS=4: sixteen bins per step, up to eight steps
    T, W, k = 4, 200, 24
    s = _rows(kind, T, W, device)
    row_len = torch.tensor([200, 9, 100, 150], dtype=torch.int32, device=device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_topk(s, k, row_len, None, out=out, config=dict(_cfg(path), HIST_BITS=4))
    assert not (out == -7).any(), "unwritten output slots"
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))
