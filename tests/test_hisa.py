"""HISA pieces and the three whole selections against the references (interpreter on a CPU)."""
import pytest
import torch

from hisa_bench import api
from kernels import indexers
from kernels.checks import selection_errors
from kernels.flat_scores_naive import dequantize_keys, flat_scores_ref
from kernels.gather_scores import launch_gather_scores
from kernels.hisa_naive import (block_sparse_select_ref, flat_select_ref, hisa_select_ref, kept_blocks_ref,
                                pool_keys_ref)
from kernels.pooling import pool_mean
from tests.helpers import as_sets, make_inputs


@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp8"])
@pytest.mark.parametrize("N,B", [(64, 16), (75, 16), (33, 32)])   # L not a multiple of B: short last block
def test_pooling_matches_reference(dtype, N, B, device):
    _, k, _, _, _, ksc = make_inputs(1, 1, 32, N, dtype, device)
    kbar, kbar_scale = pool_mean(k, ksc, B)
    ref = pool_keys_ref(k, ksc, B)
    got = dequantize_keys(kbar, kbar_scale)
    if dtype == "fp8":
        # e4m3 keeps 3 mantissa bits: each element within half a step (1/16 relative), or within
        # the subnormal step near zero
        bound = ref.abs() / 16 + kbar_scale.double()[:, None] * 2.0 ** -9
        assert ((got - ref).abs() <= bound * 1.01).all()
        assert torch.allclose(kbar_scale.double(), ref.abs().amax(1) / 448, rtol=1e-5)
    else:
        assert ((got - ref).norm() / ref.norm()) < 1e-2
    # decode update: recompute only listed blocks, in place
    poisoned = torch.full_like(kbar.float(), float("nan")).to(kbar.dtype)
    ids = torch.tensor([0, (N - 1) // B], dtype=torch.int32, device=device)
    pool_mean(k, ksc, B, out=poisoned, out_scale=None if kbar_scale is None else kbar_scale.clone(), block_ids=ids)
    assert torch.equal(poisoned[ids.long()].float(), kbar[ids.long()].float())


@pytest.mark.parametrize("B,sub", [(16, None), (32, 16)])   # sub: rows per tile below a whole block
@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp8"])
def test_gather_scores_match_flat_scores(dtype, B, sub, device):
    T, H, D, N = 4, 5, 32, 100 * B // 16
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device)
    ks[2] = 20                                      # a packed query: first kept block partly invisible
    kept = torch.tensor([[0, 3, 6, -1], [1, 2, 3, 4], [1, 2, 5, 6], [6, 0, 4, 2]], dtype=torch.int32, device=device)
    kept = torch.minimum(kept, ((ke - 1) // B)[:, None].int())
    out = torch.full((T, 4 * B), float("nan"), device=device)
    launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=out, config=dict(SUB=sub) if sub else None)
    flat = flat_scores_ref(q, k, w, ks, ke, ksc)
    for t in range(T):
        for i in range(4):
            for r in range(B):
                pos = int(kept[t, i]) * B + r
                v = out[t, i * B + r].item()
                if kept[t, i] >= 0 and ks[t] <= pos < ke[t]:
                    assert abs(v - flat[t, pos - ks[t]].item()) <= 1e-4 + 1e-4 * abs(v)
                else:
                    assert v == float("-inf")


CASES = [  # T, H, D, N, B, m, k, dtype, structured
    (6, 4, 32, 200, 16, 3, 24, torch.bfloat16, None),
    (5, 3, 48, 150, 16, 4, 40, "fp8", "sink"),
    (5, 8, 64, 170, 32, 2, 50, torch.float16, "clusters"),
]


@pytest.mark.parametrize("T,H,D,N,B,m,k,dtype,structured", CASES)
def test_hisa_pipeline_stagewise(T, H, D, N, B, m, k, dtype, structured, device):
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, structured=structured)
    prep = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m)
    prep.out.fill_(-7)
    sel = prep.run()
    kbar, kbar_scale = prep.state["kbar"], prep.state["kbar_scale"]
    kept = prep.state["kept"]
    # stage 1: kept blocks are a correct top-m of the block scores of the kernel's own pooled keys
    bs, be = ks // B, (ke - 1) // B + 1
    J = flat_scores_ref(q, kbar, w, bs, be, kbar_scale, force_ends=True)
    assert not selection_errors(kept, J, bs, be - bs, m)
    for t in range(T):  # forced blocks always present, exactly min(m, visible blocks) kept
        kt = set(kept[t].tolist()) - {-1}
        assert {int(bs[t]), int(be[t]) - 1} <= kt
        assert len(kt) == min(m, int(be[t] - bs[t]))
    # stage 2: a correct top-k of the flat scores over the kept blocks' visible keys
    ref = hisa_select_ref(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, kept=kept)
    flat = flat_scores_ref(q, k_, w, ks, ke, ksc)
    assert not (sel == -7).any()
    for t in range(T):
        chosen = set(sel[t].tolist()) - {-1}
        assert all(ks[t] <= p < ke[t] for p in chosen), "selected a key outside [ks, ke)"
        assert all(p // B in set(kept[t].tolist()) for p in chosen), "selected a key outside the kept blocks"
        ref_scores = sorted((flat[t, p - ks[t]].item() for p in set(ref[t].tolist()) - {-1}), reverse=True)
        got_scores = sorted((flat[t, p - ks[t]].item() for p in chosen), reverse=True)
        assert len(got_scores) == len(ref_scores)
        assert all(abs(a - b) <= 1e-4 + 1e-4 * abs(b) for a, b in zip(got_scores, ref_scores))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_whole_selections_equal_references(dtype, device):
    T, H, D, N, B, m, k = 7, 4, 32, 300, 16, 3, 24
    ks = torch.tensor([0, 0, 0, 0, 50, 120, 0], dtype=torch.int32)
    ke = torch.tensor([300, 10, 64, 100, 299, 200, 257], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke)
    for name, kw in [("flat", {}), ("hisa", dict(block_size=B, blocks=m)), ("block_sparse", dict(block_size=B))]:
        got = getattr(api, f"{name}_select")(q, k_, w, ks, ke, ksc, topk=k, backend="triton", **kw)
        ref = getattr(api, f"{name}_select")(q, k_, w, ks, ke, ksc, topk=k, backend="reference", **kw)
        assert got.dtype == torch.int32 and got.shape == (T, k)
        assert as_sets(got) == as_sets(ref), name


def test_trivial_queries_equal_flat_and_padding(device):
    # every query sees at most m*B keys -> HISA must equal flat exactly; k > visible -> -1 padding
    T, H, D, N, B, m, k = 5, 4, 32, 64, 16, 4, 40
    ke = torch.tensor([3, 17, 40, 63, 64], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.bfloat16, device, ke=ke)
    flat = api.flat_select(q, k_, w, ks, ke, ksc, topk=k, backend="triton")
    hisa = api.hisa_select(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, backend="triton")
    assert as_sets(flat) == as_sets(hisa)
    assert (flat[0, 3:] == -1).all() and (flat[1, 17:] == -1).all()


def test_packed_sequences_never_cross(device):
    T, H, D, N, B = 6, 4, 32, 160, 16
    ks = torch.tensor([0, 0, 70, 70, 70, 130], dtype=torch.int32)
    ke = torch.tensor([40, 70, 90, 110, 130, 160], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, "fp8", device, ks=ks, ke=ke)
    for fn, kw in [(api.flat_select, {}), (api.hisa_select, dict(block_size=B, blocks=2)),
                   (api.block_sparse_select, dict(block_size=B))]:
        sel = fn(q, k_, w, ks, ke, ksc, topk=32, backend="triton", **kw)
        for t in range(T):
            chosen = [p for p in sel[t].tolist() if p >= 0]
            assert chosen and all(ks[t] <= p < ke[t] for p in chosen), fn.__name__


def test_block_sparse_reference_semantics(device):
    T, H, D, N, B, k = 3, 2, 16, 100, 16, 48
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.float32, device)
    sel = block_sparse_select_ref(q, k_, w, ks, ke, ksc, topk=k, block_size=B)
    kept = kept_blocks_ref(q, k_, w, ks, ke, ksc, B, k // B)
    for t in range(T):
        expect = {p for b in kept[t].tolist() if b >= 0 for p in range(b * B, (b + 1) * B) if ks[t] <= p < ke[t]}
        assert set(sel[t].tolist()) - {-1} == expect


def test_reference_flat_is_plain_topk(device):
    q, k_, w, ks, ke, ksc = make_inputs(3, 2, 16, 50, torch.float32, device)
    sel = flat_select_ref(q, k_, w, ks, ke, ksc, topk=5)
    dense = torch.einsum("thd,nd->thn", q.double(), k_.double()).clamp_min(0)
    dense = (dense * w.double()[:, :, None]).sum(1)
    for t in range(3):
        row = dense[t, : ke[t]]
        # same score multiset as torch.topk (ReLU ties at 0 may pick other positions) ...
        assert sorted(row[sel[t].long()].tolist()) == sorted(torch.topk(row, 5).values.tolist())
        # ... and among equal scores the lowest positions
        kth = row[sel[t].long()].min()
        tied = [p for p in range(int(ke[t])) if row[p] == kth]
        assert [p for p in sel[t].tolist() if row[p] == kth] == tied[: len([p for p in sel[t].tolist() if row[p] == kth])]


def test_strided_inputs_are_handled(device):
    # views whose last dimension is not contiguous must give the same selections
    T, H, D, N, B, m, k = 6, 4, 32, 200, 16, 3, 24
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.float32, device)
    qv = torch.stack([q, torch.zeros_like(q)], -1)[..., 0]
    kv = k_.t().contiguous().t()
    wv = w.t().contiguous().t()
    assert not (qv.is_contiguous() or kv.is_contiguous() or wv.is_contiguous())
    ref = indexers.flat_select(q, k_, w, ks, ke, ksc, topk=k)
    assert as_sets(indexers.flat_select(qv, kv, wv, ks, ke, ksc, topk=k)) == as_sets(ref)
    href = indexers.hisa_select(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m)
    assert as_sets(indexers.hisa_select(qv, kv, wv, ks, ke, ksc, topk=k, block_size=B, blocks=m)) == as_sets(href)


def test_routing_counts_blocks_not_keys(device):
    """A query that sees m * B keys from an unaligned start spans m + 1 blocks: HISA keeps only m
    of them, so it must not be routed to the flat pipeline (which selects over all m + 1)."""
    T, H, D, N, B, m, k = 2, 4, 32, 96, 16, 2, 8
    ks = torch.tensor([8, 40], dtype=torch.int32)
    ke = ks + m * B                                     # 32 keys: blocks 0-2 and 2-4
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.float32, device, ks=ks, ke=ke, structured="positive_w")
    # the middle block (the one HISA drops: first and last are forced) holds the best keys
    for t in range(T):
        mid = int(ks[t]) // B + 1
        k_[mid * B:(mid + 1) * B] = q[t].mean(0) * 3
    got = indexers.hisa_select(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m)
    ref = hisa_select_ref(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m)
    flat = flat_select_ref(q, k_, w, ks, ke, ksc, topk=k)
    assert as_sets(ref) != as_sets(flat)               # the case is not vacuous
    assert as_sets(got) == as_sets(ref)
    assert indexers.hisa_routes(ks, ke, B, m, [(0, T)]) == ([(0, T)], [])
    # aligned: the same number of keys is exactly m blocks, and the flat pipeline is right
    assert indexers.hisa_routes(ks - 8, ke - 8, B, m, [(0, T)]) == ([], [(0, T)])
