"""The pruned flat pipeline (score kernel with group maxima -> pruned top-k) against the plain flat
pipeline and the torch reference: the same sets on random and structured inputs, packed sequences
with unaligned starts, k > visible keys, prefill chunks where some rows are too short to prune."""
import json

import pytest
import torch

from hisa_bench import api, backends
from kernels import indexers
from kernels.checks import selection_errors
from kernels.flat_scores_naive import flat_scores_ref
from tests.conftest import gpu_only
from tests.helpers import as_sets, make_inputs, run_fresh


@pytest.mark.parametrize("structured", [None, "clusters", "sink"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, "fp8"])
def test_pruned_flat_equals_flat_and_reference(dtype, structured, device):
    # k = 8 over rows up to 300 keys: groups of 8 (pruning_group), rows shorter than 4k*2 unpruned
    T, H, D, N, k = 8, 4, 32, 300, 8
    ks = torch.tensor([0, 0, 0, 37, 37, 101, 101, 0], dtype=torch.int32)
    ke = torch.tensor([300, 5, 64, 300, 200, 102, 299, 257], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, structured=structured)
    prep = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k, prune=True)
    # (on a GPU rows this short fit the top-k's registers: nothing to prune, the plain top-k runs)
    assert prep.state["groups"][0] > 0 or device == "cuda"
    prep.out.fill_(-7)                                        # poisoned
    got = prep.run()
    assert not (got == -7).any()
    plain = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k).run()
    assert as_sets(got) == as_sets(plain)
    ref_scores = flat_scores_ref(q, k_, w, ks, ke, ksc)
    assert not selection_errors(got, torch.where(torch.isfinite(ref_scores), ref_scores, float("-inf")),
                                ks, ke - ks, k)


def test_pruned_flat_in_chunks_mixes_pruned_and_plain_chunks(device):
    # a causal prefill in chunks of 4 queries: the first chunks' rows are too short to prune; the
    # last one's would have more groups than the interpreter's pinned kernel holds at G = 4 (80 > 64)
    T, H, D, k = 20, 4, 32, 16
    ke = torch.arange(1, T + 1, dtype=torch.int32) * 16
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, int(ke[-1]), torch.bfloat16, device, ke=ke)
    prep = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k, prune=True, query_chunk=4)
    groups = prep.state["groups"]
    if device == "cpu":     # (on a GPU every row here fits the top-k's registers: nothing pruned)
        assert groups[0] == 0 and groups[-1] == 8, groups
    got = prep.run()
    ref = api.flat_select(q, k_, w, ks, ke, ksc, topk=k, backend="reference")
    assert as_sets(got) == as_sets(ref)


def test_k_above_visible_keys_pads_with_minus_one(device):
    T, H, D, N, k = 3, 4, 32, 40, 64
    ke = torch.tensor([3, 17, 40], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.bfloat16, device, ke=ke)
    prep = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k, prune=True)
    assert prep.state["groups"] == [0]                       # nothing to prune: the plain top-k
    got = prep.run()
    assert (got[0, 3:] == -1).all() and (got[1, 17:] == -1).all() and (got[2, 40:] == -1).all()
    assert as_sets(got) == [set(range(3)), set(range(17)), set(range(40))]


def test_flat_pruned_backend_is_registered_and_gated(tmp_path):
    b = backends.resolve(["flat-pruned"])[1]
    assert (b.name, b.method, b.ours) == ("flat-pruned", "flat", True) and b.prepare is not None
    assert tuple(backends._ours()) == backends.OUR_NAMES
    args = ["speed", "--device", "cpu", "--lengths", "256", "--queries", "4", "--heads", "2", "--dim", "16",
            "--topk", "8", "--rep-ms", "0", "--warmup-ms", "0", "--backend", "flat-pruned", "--format", "json",
            "--out", str(tmp_path)]
    p = run_fresh(args, timeout=300)        # compiled kernels here mean a fresh, interpreting process
    assert p.returncode == 0, p.stderr[-2000:]
    rows = {r["backend"]: r for r in json.loads(p.stdout)["rows"]}
    r = rows["flat-pruned"]
    assert r["status"] == "ok" and r["checked"] is True, r
    assert r["stage_scores_ms"] > 0 and r["stage_topk_ms"] > 0


@gpu_only
@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("L", [32768, 131072])
def test_pruned_flat_at_real_shapes(kind, L):
    # a 1024-query chunk at the tail (the speed command's chunk mode), H 64, D 128, k 2048, fp8
    from kernels.profile_chunk import chunk_inputs

    q, k_, w, ks, ke, ksc = chunk_inputs(L, kind)
    prep = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=2048, prune=True)
    assert prep.state["groups"][0] == L // (4 * 2048)
    prep.out.fill_(-7)
    got = prep.run().clone()
    plain = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=2048).run()
    assert not (got == -7).any()
    # the plain top-k breaks ties towards lower positions, as the pruned one must: equal sets
    assert torch.equal(torch.sort(got, 1).values, torch.sort(plain, 1).values)


def test_chunks_of_several_group_sizes_share_the_candidate_lists(device):
    # a causal prefill whose chunks prune with different group sizes: one set of candidate lists
    # (the large part of the scratch) for all, each group size its own list of passing group ids
    T, H, D, k = 20, 4, 32, 16
    ke = torch.arange(1, T + 1, dtype=torch.int32) * 16 + 200
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, int(ke[-1]), torch.bfloat16, device, ke=ke)
    prep = indexers.prepare_flat(q, k_, w, ks, ke, ksc, topk=k, prune=True, query_chunk=4)
    groups = [g for g in prep.state["groups"] if g]
    if device == "cpu":
        assert len(set(groups)) >= 2, prep.state["groups"]
    scr = list(prep.state["pruned_scratch"].values())
    for other in scr[1:]:
        for i in (0, 1, 3, 4):
            assert other[i].data_ptr() == scr[0][i].data_ptr()
        assert other[2].data_ptr() != scr[0][2].data_ptr()
    got = prep.run()
    ref = api.flat_select(q, k_, w, ks, ke, ksc, topk=k, backend="reference")
    assert as_sets(got) == as_sets(ref)
