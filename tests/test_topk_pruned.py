"""Pruned top-k (kernels/topk_pruned.py) against the stable-sort reference, and its group-maxima and
bound references against plain loops. The kernel breaks ties towards lower positions like the
reference, so whole sets must be equal; every path is forced on small rows in the interpreter and
proved to run by the kernel's path_out codes."""
import pytest
import torch

from kernels.checks import selection_errors
from kernels.topk import launch_topk
from kernels.topk_naive import topk_ref
from kernels.topk_pruned import (PATH_CROWDED, PATH_FEW_GROUPS, PATH_LISTED, PATH_MANY_GROUPS, PATH_PRUNED,
                                 PATH_SHORT, PATH_TIED, PATH_WIDE, launch_topk_pruned, scratch_for_pruned, topk_pruned_config)
from kernels.topk_pruned_naive import group_max_ref, n_groups_ref, pruning_bound_ref
from tests.conftest import gpu_only
from tests.helpers import as_sets

G = 8
# tiny buffers in the interpreter so that every path runs on rows of a few hundred entries:
# rows of <= 64 entries are short; a 300-entry row has <= 39 groups of 8 (pruned when >= k of them
# are valid and <= 64 candidates reach the bound; listed with up to LIST_CAP = 4 * CAP = 256);
# GCAP=16 sends every long row to the narrowing
PRUNED = dict(CAP=64, GCAP=64, TILE_G=4, TILE=32)
MANY_GROUPS = dict(CAP=64, GCAP=16, TILE_G=4, TILE=32)
CONFIGS = {"pruned": PRUNED, "many_groups": MANY_GROUPS}


def _run(s, k, row_len, base, device, cfg, gmax=None, group_size=G):
    T = s.shape[0]
    if gmax is None:
        gmax = group_max_ref(s, row_len, base, group_size)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)          # poisoned
    path = torch.full((T,), -7, dtype=torch.int32, device=device)
    launch_topk_pruned(s, gmax, k, row_len, base, group_size, out=out, path_out=path,
                       config=cfg if device == "cpu" else None)
    assert not (out == -7).any(), "unwritten output slots"
    assert not (path == -7).any(), "unwritten path codes"
    return out, path.tolist()


def _check(out, s, k, row_len, base):
    ref = topk_ref(s, k, row_len, base)
    assert as_sets(out) == as_sets(ref)
    assert not selection_errors(out, s, base, row_len, k)
    n_sel = (out >= 0).sum(1)
    for t in range(out.shape[0]):      # positions first, then -1 exactly in the unused slots
        assert (out[t, n_sel[t]:] == -1).all() and (out[t, :n_sel[t]] >= 0).all()


def _rows(kind, T, W, device):
    from hisa_bench.inputs.score_rows import make_rows

    if kind == "random":
        s = torch.randn(T, W)
    elif kind == "ties":
        s = torch.randint(0, 4, (T, W)).float()
    elif kind == "relu_zeros":          # masses of exact zeros: the bound lands on 0.0 in some rows
        s = torch.randn(T, W).clamp_min(0)
        s[::2] = torch.where(torch.rand(W) < 0.9, 0.0, s[::2].abs())        # few positives
    elif kind == "neg_inf":
        s = torch.randn(T, W)
        s[:, ::3] = float("-inf")
        s[1, :200] = float("-inf")                                           # whole groups without a score
    elif kind == "huge_range":
        s = torch.randn(T, W) * torch.logspace(-30, 30, W)
    elif kind == "recency":             # scores rising toward the row's end (the newest keys)
        s = torch.linspace(0, 4, W)[None] + 0.3 * torch.randn(T, W)
    elif kind == "sorted":
        s = torch.arange(W, dtype=torch.float32).repeat(T, 1)
    else:
        s = make_rows(kind, T, W, k=20, seed=11, device="cpu")[0]
        if kind == "window":            # a window narrower than the row, at these sizes
            s[:, :-40] = torch.randn(T, W - 40) * 0.1
            s[:, -40:] += 10
    return s.to(device)


KINDS = ["random", "ties", "relu_zeros", "neg_inf", "huge_range", "recency", "sorted",
         "structured", "window", "zeros", "equal", "clusters"]


@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("kind", KINDS)
def test_pruned_equals_reference(kind, cfg, device):
    T, W, k = 6, 300, 20
    s = _rows(kind, T, W, device)
    # base % G != 0 in most rows, lengths not multiples of G, one short row, one just past CAP
    # with fewer than k groups (9), the others with 26-39 groups
    row_len = torch.tensor([300, 40, 299, 65, 257, 201], dtype=torch.int32, device=device)
    base = torch.tensor([0, 10, 3, 5, 7, 13], dtype=torch.int32, device=device)
    out, path = _run(s, k, row_len, base, device, CONFIGS[cfg])
    _check(out, s, k, row_len, base)
    if device == "cpu":
        if cfg == "many_groups":         # every long row has more than GCAP groups, but row 3 (9)
            assert path == [PATH_MANY_GROUPS, PATH_SHORT, PATH_MANY_GROUPS, PATH_FEW_GROUPS,
                            PATH_MANY_GROUPS, PATH_MANY_GROUPS]
        elif kind in ("random", "neg_inf", "window", "structured"):      # spread-out scores
            assert path == [PATH_PRUNED, PATH_SHORT, PATH_PRUNED, PATH_FEW_GROUPS, PATH_PRUNED, PATH_PRUNED]
        elif kind in ("equal", "zeros"):
            # masses of equal scores at the bound in every group: nothing to prune, the narrowing
            assert path == [PATH_WIDE, PATH_SHORT, PATH_WIDE, PATH_FEW_GROUPS, PATH_WIDE, PATH_WIDE]
        elif kind == "ties":         # 4 values: the bound is the top one, about 75 of them > CAP
            assert path[0] == PATH_TIED
        elif kind in ("sorted", "recency", "huge_range"):
            # whole groups above the bound (monotone rows: about k * G candidates, more than
            # CAP = 64 here but fewer than LIST_CAP = 256, and >= k of them above it)
            assert path[0] == PATH_LISTED


def test_each_path_runs(device):
    """One row per path, with the path the kernel reports and the reference's sets."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    T, W, k = 6, 300, 20
    s = torch.randn(T, W)
    s[1, 40:] = float("-inf")               # 40 valid entries in 6 groups (a = 3) < k: few groups
    s[2] = 0.75                             # all equal: every group at the bound: wide
    s[3, :] = torch.randn(W).clamp_min(0) * (torch.rand(W) < 0.03)    # relu zeros in every group: wide
    s[3, 7] = 0.0
    s[3, ::50] = 1.0                        # (>= 6 positives, fewer than k)
    s[5] = torch.arange(W, dtype=torch.float32)     # rising: ~k * G candidates, >= k above the bound
    row_len = torch.tensor([300, 300, 300, 300, 50, 300], dtype=torch.int32)
    base = torch.tensor([5, 3, 0, 9, 2, 4], dtype=torch.int32)
    out, path = _run(s, k, row_len, base, device, PRUNED)
    assert path == [PATH_PRUNED, PATH_FEW_GROUPS, PATH_WIDE, PATH_WIDE, PATH_SHORT, PATH_LISTED]
    _check(out, s, k, row_len, base)
    # a list too short for the rising row's ~k * G candidates: the narrowing over the row
    out, path = _run(s, k, row_len, base, device, dict(PRUNED, LIST_CAP=64))
    assert path == [PATH_PRUNED, PATH_FEW_GROUPS, PATH_WIDE, PATH_WIDE, PATH_SHORT, PATH_CROWDED]
    _check(out, s, k, row_len, base)
    out, path = _run(s, k, row_len, base, device, MANY_GROUPS)
    assert path == [PATH_MANY_GROUPS] * 4 + [PATH_SHORT, PATH_MANY_GROUPS]
    _check(out, s, k, row_len, base)


def test_group_ratio_and_passing_groups_past_cap(device):
    """MIN_GROUP_RATIO sends rows with too few groups to the narrowing; more passing groups than
    CAP (each holds a candidate) still take the counting pass, which finds the tie at the bound."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    T, W, k = 3, 300, 20
    s = torch.randn(T, W)
    s[2] = 0.5
    row_len = torch.tensor([300, 160, 300], dtype=torch.int32)     # 38, 20 and 38 groups of 8
    base = torch.tensor([0, 0, 0], dtype=torch.int32)
    out, path = _run(s, k, row_len, base, device, dict(PRUNED, MIN_GROUP_RATIO=1.0))
    # (row 1: exactly k groups, so every one reaches the bound: nothing to prune)
    assert path == [PATH_PRUNED, PATH_WIDE, PATH_WIDE]
    _check(out, s, k, row_len, base)
    out, path = _run(s, k, row_len, base, device, dict(PRUNED, MIN_GROUP_RATIO=1.5))   # 30 groups needed
    assert path == [PATH_PRUNED, PATH_FEW_GROUPS, PATH_WIDE]
    _check(out, s, k, row_len, base)
    # 75 groups of 4, CAP 16: all-equal rows but for a few groups below them pass the other
    # groups (more than CAP keys at the bound, none above: tied); random rows about k of them
    s2 = torch.randn(2, W)
    s2[1] = 0.5
    s2[1, 100:140] = -1.0
    rl2 = torch.tensor([300, 300], dtype=torch.int32)
    b2 = torch.tensor([1, 2], dtype=torch.int32)
    out, path = _run(s2, 8, rl2, b2, device, dict(CAP=16, GCAP=128, TILE_G=4, TILE=32), group_size=4)
    assert path[1] == PATH_TIED
    _check(out, s2, 8, rl2, b2)


def test_tied_rows(device):
    """More than CAP keys reach the bound but fewer than k lie above it: the k-th key is the bound,
    and the tied pass writes every key above it plus the lowest-positioned ties. Sets must equal
    the reference's exactly (ties to the lowest positions), including when the keys above the
    bound come after the ties' quota is filled, and when more than CAP keys reach the bound but
    >= k lie above it after all: listed, or, with a list of CAP (LIST_CAP = CAP), crowded (the
    counting goes on past the full list)."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    T, W, k = 6, 300, 20
    s = torch.zeros(T, W)
    s[:, 1::2] = -0.0                       # signed zeros are one score
    s[0, -5:] = torch.rand(5) + 0.5         # relu zeros, 5 positives at the row's end
    s[1] = 0.75                             # all equal: the first k positions
    s[2, 3::16] = 1.0
    s[2, 3 + 16 * 19:] = 0.0                # k - 1 positives: one tie taken
    s[3] = 1.0
    s[3, ::23] = 2.0                        # 14 keys above a tie at 1.0, with gaps of -inf
    s[3, 5::7] = float("-inf")
    s[4, :200] = 0.5
    s[4, :100] = -1.0                       # (whole groups below the bound)
    s[4, 200:] = torch.randn(100) + 5       # 100 keys above 0.5, all after CAP candidates: listed
    s[5, 17:] = float("-inf")
    s[5, 40:] = 0.25                        # -inf gap, then ties
    s[[0, 1, 2, 3, 5], 200:264] = -1.0      # whole groups below the bound (else nothing is pruned: wide)
    row_len = torch.tensor([300, 299, 300, 290, 300, 300], dtype=torch.int32)
    base = torch.tensor([0, 5, 3, 9, 1, 6], dtype=torch.int32)
    out, path = _run(s, k, row_len, base, device, PRUNED)
    assert path == [PATH_TIED] * 4 + [PATH_LISTED, PATH_TIED]
    _check(out, s, k, row_len, base)
    assert as_sets(out)[1] == set(range(5, 5 + k))
    out, path = _run(s, k, row_len, base, device, dict(PRUNED, LIST_CAP=64))
    assert path == [PATH_TIED] * 4 + [PATH_CROWDED, PATH_TIED]
    _check(out, s, k, row_len, base)
    # the positives past GCAP groups (a 38-group row with GCAP = 32): found by the tied pass too
    s2 = torch.zeros(2, W)
    s2[:, 40:104] = -1.0
    s2[:, -10:] = torch.rand(2, 10) + 1.0
    rl2 = torch.tensor([300, 297], dtype=torch.int32)
    b2 = torch.tensor([4, 7], dtype=torch.int32)
    out, path = _run(s2, k, rl2, b2, device, dict(CAP=64, GCAP=32, TILE_G=8, TILE=32))
    assert path == [PATH_TIED] * 2
    _check(out, s2, k, rl2, b2)


LISTED = dict(CAP=16, LIST_CAP=64, GCAP=64, TILE_G=4, TILE=8)


def test_listed_rows(device):
    """More than CAP keys reach the bound, >= k of them above it, and all of them fit the
    candidate list (LIST_CAP): the narrowing runs over the list (several tiles of 8 keys), not
    the row. Recency ramps of a few dozen entries at the row's end (random scores elsewhere) put
    whole groups above the bound; the k-th key tied inside the list (more ties than CAP: the
    interval collapses to one key, the lowest-positioned ties are taken; fewer: resolved in
    registers); a ramp too long for the list goes to the narrowing over the row (crowded)."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    T, W, k = 6, 300, 20
    s = torch.randn(T, W)
    s[0, -40:] = torch.linspace(3, 6, 40) + 0.01 * torch.randn(40)      # 40 ramp keys + randoms >= bound
    s[1, -40:] = 4.0
    s[1, -40::4] = 5.0                      # 10 keys above a tie of 30 at the k-th key
    s[2, -28:] = 4.0
    s[2, -28::2] = 5.0                      # 14 above, 6 of 14 ties taken: in registers
    s[3, -120:] = torch.linspace(3, 6, 120)     # 120 candidates > LIST_CAP: crowded
    s[4, -37:] = torch.linspace(3, 6, 37)
    s[5, -36:] = torch.randint(3, 6, (36,)).float()     # masses of ties in three values
    row_len = torch.tensor([300, 297, 300, 300, 291, 299], dtype=torch.int32)
    base = torch.tensor([5, 3, 0, 9, 2, 4], dtype=torch.int32)     # a = base % 8 != 0 in most rows
    out, path = _run(s, k, row_len, base, device, LISTED)
    assert path == [PATH_LISTED] * 3 + [PATH_CROWDED] + [PATH_LISTED] * 2
    _check(out, s, k, row_len, base)
    # the ties taken are the lowest-positioned ones (the reference's sets say so too)
    sel = as_sets(out)
    top1 = {int(base[1]) + 260 + 4 * i for i in range(10)}          # (valid up to offset 296)
    assert top1 <= sel[1]
    ties1 = sorted(int(base[1]) + j for j in range(260, 297) if (j - 260) % 4)
    assert sel[1] - top1 == set(ties1[:10])


def test_listed_rows_random_against_reference(device):
    """Random rows with recency ramps of random lengths (some listed, some crowded, some pruned):
    equal to the reference."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    g = torch.Generator().manual_seed(5)
    T, W, k = 8, 300, 20
    s = torch.randn(T, W, generator=g)
    for t in range(T):
        r = int(torch.randint(10, 90, (1,), generator=g))
        s[t, -r:] += torch.linspace(2, 5, r) + torch.randint(0, 3, (r,), generator=g).float()
    row_len = torch.randint(250, 301, (T,), generator=g, dtype=torch.int32)
    base = torch.randint(0, 100, (T,), generator=g, dtype=torch.int32)
    out, path = _run(s, k, row_len, base, device, LISTED)
    assert PATH_LISTED in path
    _check(out, s, k, row_len, base)


def test_groups_past_gcap(device):
    """A row of up to GCAP + TILE_G groups: the bound comes from the first GCAP, the groups past
    them are tested against it. Here the best entries all lie past GCAP (a recency ramp at the end
    of the row), so a kernel that skipped those groups would lose them."""
    if device != "cpu":
        pytest.skip("the paths are forced with interpreter-sized configs")
    T, W, k = 3, 300, 12
    s = torch.randn(T, W)
    s[:, -30:] += 5.0
    row_len = torch.tensor([300, 299, 290], dtype=torch.int32)
    base = torch.tensor([0, 5, 3], dtype=torch.int32)          # 38, 38 and 37 groups of 8
    out, path = _run(s, k, row_len, base, device, dict(CAP=64, GCAP=32, TILE_G=8, TILE=32))
    assert path == [PATH_PRUNED] * T
    _check(out, s, k, row_len, base)
    out, path = _run(s, k, row_len, base, device, dict(CAP=64, GCAP=16, TILE_G=8, TILE=32))   # 24 < 37
    assert path == [PATH_MANY_GROUPS] * T
    _check(out, s, k, row_len, base)


def test_k_larger_than_valid_entries(device):
    # k > valid entries: fewer than k valid groups too, so the narrowing pads with -1
    T, W, k = 3, 300, 48
    s = torch.randn(T, W, device=device)
    s[0, 30:] = float("-inf")
    row_len = torch.tensor([300, 40, 299], dtype=torch.int32, device=device)
    base = torch.tensor([6, 1, 0], dtype=torch.int32, device=device)
    out, path = _run(s, k, row_len, base, device, PRUNED)
    _check(out, s, k, row_len, base)
    assert [len(x) for x in as_sets(out)] == [30, 40, 48]
    if device == "cpu":
        assert path == [PATH_FEW_GROUPS, PATH_SHORT, PATH_FEW_GROUPS]     # 38 groups < k = 48


def test_signed_zeros_and_default_config(device):
    # -0.0 and +0.0 are one score (a group max may carry either sign); the launcher's own config
    T, W, k = 2, 300, 24
    s = torch.zeros(T, W, device=device)
    s[:, 1::2] = -0.0
    s[0, ::11] = 1.0                        # 28 positives: the bound is 1.0, 28 candidates
    s[1, 5::40] = 2.0                       # 8 positives: the bound is 0.0, every zero a candidate
    row_len = torch.tensor([W, W - 3], dtype=torch.int32, device=device)
    base = torch.tensor([3, 16], dtype=torch.int32, device=device)
    gmax = group_max_ref(s, row_len, base, 16)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_topk_pruned(s, gmax, k, row_len, base, 16, out=out)
    _check(out, s, k, row_len, base)


def test_no_base_means_zero(device):
    T, W, k = 2, 300, 20
    s = torch.randn(T, W, device=device)
    row_len = torch.tensor([300, 211], dtype=torch.int32, device=device)
    gmax = group_max_ref(s, row_len, None, G)
    out = launch_topk_pruned(s, gmax, k, row_len, None, G, config=PRUNED if device == "cpu" else None)
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len))


def test_wrong_group_maxima_are_noticed(device):
    """The result depends on gmax being right: maxima of other rows, or one group's maximum
    lowered below the bound, lose top-k entries (so the pruned path really reads only passing
    groups, and the comparison above could fail)."""
    T, W, k = 4, 300, 20
    s = torch.randn(T, W, device=device)
    row_len = torch.full((T,), W, dtype=torch.int32, device=device)
    base = torch.tensor([0, 3, 5, 1], dtype=torch.int32, device=device)
    gmax = group_max_ref(s, row_len, base, G)
    cfg = PRUNED if device == "cpu" else dict(CAP=64, GCAP=64, TILE_G=4)
    ref = as_sets(topk_ref(s, k, row_len, base))

    def run(g):
        out = torch.full((T, k), -7, dtype=torch.int32, device=device)
        path = torch.full((T,), -7, dtype=torch.int32, device=device)
        launch_topk_pruned(s, g, k, row_len, base, G, out=out, path_out=path, config=cfg)
        return as_sets(out), path.tolist()

    good, path = run(gmax)
    assert good == ref and path == [PATH_PRUNED] * T
    shuffled, _ = run(gmax.roll(1, dims=0))
    assert shuffled != ref
    # lower the maximum of the group that holds each row's best entry
    lowered = gmax.clone()
    best = s.argmax(1)
    grp = (best + base.long() % G) // G
    lowered[torch.arange(T), grp] = -1e30
    low, _ = run(lowered)
    for t in range(T):
        assert int(best[t] + base[t]) not in low[t] and int(best[t] + base[t]) in ref[t]


def test_config_by_row_count(monkeypatch):
    """The GPU configs (the interpreter pins its own): few rows get 16 warps without a register
    cap, many rows 4 warps capped at 128 registers; the scratch's shape (CAP, GCAP, TILE_G) is
    the same for any row count, so scratch allocated for a chunk fits its shorter tails."""
    import kernels.topk as topk_mod
    import kernels.topk_pruned as pruned_mod

    monkeypatch.setattr(pruned_mod, "INTERPRETED", False)
    monkeypatch.setattr(topk_mod, "INTERPRETED", False)
    monkeypatch.setattr(pruned_mod, "_sm_count", lambda device=None: 132)
    monkeypatch.setattr(topk_mod, "_sm_count", lambda device=None: 132)
    for width in (4096, 32768, 131072):
        shapes = set()
        for rows in (1, 64, 264, 265, 1024, None):
            cfg = topk_pruned_config(width, 2048, 16, rows)
            shapes.add((cfg["CAP"], cfg["LIST_CAP"], cfg["GCAP"], cfg["TILE_G"], cfg["TILE"], cfg["MIN_GROUP_RATIO"]))
            assert cfg["CAP"] <= cfg["LIST_CAP"] <= 255 * cfg["TILE"]       # (what the launcher accepts)
            few = rows is not None and rows <= 264
            if width > 8192:
                assert cfg["TILE_G"] == 32 and cfg["GCAP"] == min(8192, width // 16) and cfg["LIST_CAP"] == 4 * 8192
                assert (cfg["num_warps"], cfg.get("maxnreg")) == ((16, None) if few else (4, 128)), (width, rows)
            else:                  # short rows only: kernels/topk.py's launch choice
                want = topk_mod.topk_config(width, 2048, rows)
                assert all(cfg[key] == v for key, v in want.items())
        assert len(shapes) == 1, (width, shapes)
    assert topk_pruned_config(131072, 2048, 16) == topk_pruned_config(131072, 2048, 16, rows=1024)


def test_group_max_ref_against_loop():
    torch.manual_seed(1)
    for Gs in (1, 4, 16):
        T, W = 5, 77
        s = torch.randn(T, W)
        s[:, ::5] = float("-inf")
        s[2, 10:40] = float("-inf")
        row_len = torch.tensor([77, 1, 50, 16, 33], dtype=torch.int32)
        base = torch.tensor([0, 7, 13, 16, 3], dtype=torch.int32)
        gm = group_max_ref(s, row_len, base, Gs)
        ng = n_groups_ref(row_len, base, Gs)
        assert gm.shape == (T, int(ng.max()))
        for t in range(T):
            a, n = int(base[t]) % Gs, int(row_len[t])
            assert int(ng[t]) == -(-(a + n) // Gs)
            for g in range(gm.shape[1]):
                vals = [float(s[t, j]) for j in range(g * Gs - a, (g + 1) * Gs - a) if 0 <= j < n]
                want = max(vals) if vals and g < int(ng[t]) else float("-inf")
                assert float(gm[t, g]) == want, (Gs, t, g)
        # every valid entry of a row lies in exactly one of its groups
        assert int((gm > float("-inf")).sum()) <= int((s > float("-inf")).sum())


def test_pruning_bound_ref_against_loop():
    torch.manual_seed(2)
    s = torch.randn(4, 200)
    s[3, 24:] = float("-inf")
    row_len = torch.tensor([200, 150, 9, 200], dtype=torch.int32)
    base = torch.tensor([1, 2, 3, 4], dtype=torch.int32)
    gm = group_max_ref(s, row_len, base, 8)
    ng = n_groups_ref(row_len, base, 8)
    k = 10
    bound = pruning_bound_ref(gm, ng, k)
    for t in range(4):
        vals = sorted((float(x) for x in gm[t, :int(ng[t])] if x > float("-inf")), reverse=True)
        want = vals[k - 1] if len(vals) >= k else float("-inf")
        assert float(bound[t]) == want
        if want > float("-inf"):       # the bound: at least k valid scores reach it
            valid = s[t, :int(row_len[t])]
            assert int((valid >= want).sum()) >= k
    assert float(bound[2]) == float("-inf") and float(bound[3]) == float("-inf")


# ---- GPU: real shapes -------------------------------------------------------------------------

@gpu_only
@pytest.mark.parametrize("W,T", [(131072, 64), (32768, 64), (131072, 16)])
@pytest.mark.parametrize("kind", ["random", "structured", "window", "zeros", "equal", "causal", "clusters"])
def test_pruned_real_shapes(kind, W, T):
    from hisa_bench.inputs.score_rows import make_rows

    k = 2048
    s, row_len = make_rows(kind, T, W, k=k, seed=W + T, device="cuda")
    gen = torch.Generator(device="cuda").manual_seed(T)
    base = torch.randint(0, 1 << 20, (T,), generator=gen, device="cuda", dtype=torch.int32)
    gmax = group_max_ref(s, row_len, base, 16)
    out = torch.full((T, k), -7, dtype=torch.int32, device="cuda")
    path = torch.full((T,), -7, dtype=torch.int32, device="cuda")
    launch_topk_pruned(s, gmax, k, row_len, base, 16, out=out, path_out=path,
                       scratch=scratch_for_pruned(T, W, k, "cuda"))
    assert not (out == -7).any() and not (path == -7).any()
    assert as_sets(out) == as_sets(topk_ref(s, k, row_len, base))
    assert as_sets(out) == as_sets(launch_topk(s, k, row_len, base))
    if kind in ("random", "causal", "window") and W == 131072:
        assert (path == PATH_PRUNED).all(), path.tolist()      # spread-out scores: every row pruned
    if W == 32768:       # 2048 groups < 1.5 k: not worth pruning (the ratio cut-off comes first)
        assert (path == PATH_FEW_GROUPS).all(), path.tolist()
    elif kind in ("equal", "zeros"):     # every group at the bound (0.75; 0.0): nothing to prune
        assert (path == PATH_WIDE).all(), path.tolist()
