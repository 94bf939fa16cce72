"""Stage-1 rules (hisa_bench/measure/stage1.py): lexicographic tie-aware block choice, each rule
against a brute-force ranking, trivial queries equal flat under every rule, the oracle bounds
every rule's IoU, and the --stage1 option of iou, needle and quality."""
from __future__ import annotations

import json
import math

import pytest
import torch

from hisa_bench.errors import HisaBenchError
from hisa_bench.measure.pooling import BlockScorer
from hisa_bench.measure.select import topk_mask
from hisa_bench.measure.stage1 import (STAGE1, Stage1Scorer, check_stage1, kept_blocks_by, lex_topk_mask,
                                       method_label, select_masks, select_positions, split_label)
from kernels.flat_scores_naive import flat_scores_ref
from kernels.hisa_naive import hisa_select_ref
from tests.helpers import run_cli_captured

RULES = [r for r in STAGE1]


def brute_lex(keys, valid, k, tie="low"):
    """Python-sorted reference: best k valid entries by (keys..., position rule)."""
    out = torch.zeros_like(valid)
    for i in range(valid.shape[0]):
        idx = [j for j in range(valid.shape[1]) if valid[i, j]]
        sign = 1 if tie == "low" else -1
        idx.sort(key=lambda j: tuple(-float(key[i, j]) for key in keys) + (sign * j,))
        out[i, idx[:k]] = True
    return out


@pytest.mark.parametrize("tie", ["low", "recent"])
@pytest.mark.parametrize("n_keys", [1, 2, 3])
def test_lex_topk_mask_equals_brute_force_with_many_ties(tie, n_keys):
    g = torch.Generator().manual_seed(7 + n_keys)
    keys = [torch.randint(0, 3, (12, 20), generator=g).double() for _ in range(n_keys)]
    valid = torch.rand(12, 20, generator=g) > 0.2
    for k in (1, 5, 19, 25):
        mask, tied = lex_topk_mask(keys, valid, k, tie)
        assert torch.equal(mask, brute_lex(keys, valid, k, tie)), (k, tie)
        if n_keys == 1:
            assert torch.equal(tied, topk_mask(keys[0], valid, k, tie)[1])
    mask, tied = lex_topk_mask(keys, valid, 5, tie)
    assert not bool((mask & ~valid).any())


def case(seed=0, T=300, H=3, D=16, nq=24, quantized=True):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(nq, H, D, generator=g), torch.randn(T, D, generator=g)
    w = torch.full((nq, H), 1.0 / H)
    if quantized:   # integer scores: many blocks with relu score exactly 0, many exact ties
        q, k = q.round(), k.round().clamp(-1, 1)
    qp = torch.sort(torch.randperm(T, generator=g)[:nq]).values
    return q, k, w, torch.zeros(nq, dtype=torch.long), qp + 1


def test_relu_rule_is_the_papers_and_the_references():
    q, k, w, ks, ke = case()
    sc = Stage1Scorer(k.double())
    (J,) = sc.rank_keys(q.double(), w.double(), 16, "mean", "relu")
    assert torch.equal(J, BlockScorer(k.double()).scores(q.double(), w.double(), 16, "mean"))
    flat = flat_scores_ref(q, k, w, ks, ke)
    S, _ = select_masks(flat, torch.isfinite(flat), ks, ke, sc, q.double(), w.double(), topk=24, block_size=16,
                        blocks=4, stage1="relu")
    ref = hisa_select_ref(q, k, w, ks, ke, topk=24, block_size=16, blocks=4)
    assert [set(torch.nonzero(r).flatten().tolist()) for r in S] == [set(x for x in r.tolist() if x >= 0) for r in ref]


@pytest.mark.parametrize("rule", ["raw", "relu-tiebreak", "erelu", "ucb", "centroids2", "centroids4"])
def test_each_rule_keeps_the_blocks_of_its_brute_force_score(rule):
    q, k, w, ks, ke = case(seed=3)
    B, m = 16, 4
    q64, w64, k64 = q.double(), w.double(), k.double()
    nb = math.ceil(k.shape[0] / B)
    # brute force per block, straight from the docstring's formulas
    blocks = [k64[b * B:(b + 1) * B] for b in range(nb)]
    relu = torch.stack([(torch.relu(q64 @ kb.mean(0)) * w64).sum(1) for kb in blocks], 1)
    raw = torch.stack([((q64 @ kb.mean(0)) * w64).sum(1) for kb in blocks], 1)
    if rule == "raw":
        keys = [raw]
    elif rule == "relu-tiebreak":
        keys = [relu, raw]
    elif rule in ("erelu", "ucb"):
        cols = []
        for kb in blocks:
            mu = q64 @ kb.mean(0)
            s = ((q64 ** 2) @ kb.var(0, unbiased=False)).sqrt()
            if rule == "ucb":
                e = torch.relu(mu + math.sqrt(2 * math.log(B)) * s)
            else:
                n = torch.distributions.Normal(0.0, 1.0)
                e = mu * n.cdf(mu / s) + s * n.log_prob(mu / s).exp()
            cols.append((e * w64).sum(1))
        keys = [torch.stack(cols, 1)]
    else:
        c = int(rule[-1])
        keys = [torch.stack([sum((torch.relu(q64 @ part.mean(0)) * w64).sum(1)
                                 for part in kb.split(B // c) if len(part)) for kb in blocks], 1)]
    got = Stage1Scorer(k64).rank_keys(q64, w64, B, "mean", rule)
    assert len(got) == len(keys)
    for a, b in zip(got, keys):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), rule
    kept, _ = kept_blocks_by(got, ks, ke, B, m)
    b = torch.arange(nb)[None]
    be = ((ke - 1) // B + 1)[:, None]
    visible, forced = b < be, (b == 0) | (b == be - 1)
    first = torch.where(forced, torch.full_like(keys[0], float("inf")), keys[0])
    assert torch.equal(kept, brute_lex([first] + keys[1:], visible, m))


def test_ties_under_relu_are_ordered_by_raw():
    """Blocks whose every head scores below zero tie at relu 0; relu-tiebreak keeps the least negative."""
    D = 16
    k = torch.zeros(64, D)
    k[16:32, 0], k[32:48, 0] = -1.0, -3.0            # blocks 1 and 2: relu 0, raw -1 and -3
    k[0:16, 1] = 1.0
    q = torch.zeros(1, 1, D)
    q[0, 0, 0] = 1.0
    w = torch.ones(1, 1)
    ks, ke = torch.tensor([0]), torch.tensor([64])
    sc = Stage1Scorer(k.double())
    # 4 blocks, m = 3: blocks 0 and 3 forced, one of 1 and 2 by the rule
    lo, _ = kept_blocks_by(sc.rank_keys(q.double(), w.double(), 16, "mean", "relu"), ks, ke, 16, 3)
    tb, _ = kept_blocks_by(sc.rank_keys(q.double(), w.double(), 16, "mean", "relu-tiebreak"), ks, ke, 16, 3)
    assert lo[0].tolist() == [True, True, False, True]            # lowest position wins the tie
    k[16:32, 0], k[32:48, 0] = -3.0, -1.0
    sc = Stage1Scorer(k.double())
    tb, _ = kept_blocks_by(sc.rank_keys(q.double(), w.double(), 16, "mean", "relu-tiebreak"), ks, ke, 16, 3)
    assert tb[0].tolist() == [True, False, True, True]            # the raw score decides


def test_zero_spread_blocks_reduce_erelu_and_ucb_to_relu():
    k = torch.randn(8, 16).repeat_interleave(16, 0)    # every block holds 16 copies of one key
    q, w = torch.randn(5, 2, 16).double(), torch.rand(5, 2).double()
    sc = Stage1Scorer(k.double())
    relu = sc.rank_keys(q, w, 16, "mean", "relu")[0]
    for rule in ("erelu", "ucb"):
        assert torch.allclose(sc.rank_keys(q, w, 16, "mean", rule)[0], relu, atol=1e-9)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("block_sparse", [False, True])
def test_trivial_queries_equal_flat_and_oracle_bounds_iou(rule, block_sparse):
    q, k, w, ks, ke = case(seed=5, quantized=False)
    B, m, topk = 16, 4, 40
    if block_sparse:
        m = max(topk // B, 1)
    flat = flat_scores_ref(q, k, w, ks, ke)
    valid = torch.isfinite(flat)
    sc = Stage1Scorer(k.double())
    F, _ = topk_mask(flat, valid, topk)

    def iou(rule_):
        S = select_masks(flat, valid, ks, ke, sc, q.double(), w.double(), topk=topk, block_size=B, blocks=m,
                         stage1=rule_, block_sparse=block_sparse)[0]
        return S, (F & S).sum(1).double() / (F | S).sum(1).double()

    S, got = iou(rule)
    trivial = (ke - ks) <= m * B
    assert trivial.any() and (~trivial).any()
    if not block_sparse:
        assert bool((got[trivial] == 1).all()), rule
        _, best = iou("oracle")
        assert bool((best >= got - 1e-12).all()), rule      # the oracle is a ceiling for HISA
    assert bool((S.sum(1) <= topk).all())
    # select_positions is the same selection in the index format
    pos = select_positions(q, k, w, ks, ke, topk=topk, block_size=B, blocks=m, stage1=rule, block_sparse=block_sparse)
    assert [set(x for x in r.tolist() if x >= 0) for r in pos] == [set(torch.nonzero(r).flatten().tolist()) for r in S]


def test_labels_and_checks():
    assert method_label("hisa", "relu") == "hisa" and method_label("hisa", "raw") == "hisa/raw"
    assert split_label("block-sparse/ucb") == ("block-sparse", "ucb") and split_label("hisa") == ("hisa", "relu")
    with pytest.raises(HisaBenchError, match="--stage1"):
        check_stage1("softmax")
    with pytest.raises(HisaBenchError, match="mean pooling"):
        check_stage1("ucb", "max")


run_cli = run_cli_captured


@pytest.fixture(scope="module")
def tiny_dump(tmp_path_factory):
    from hisa_bench.inputs.dump import save_dump

    g = torch.Generator().manual_seed(11)
    T, nq = 256, 12
    layers = [{"name": "l0", "q": torch.randn(nq, 2, 16, generator=g), "k": torch.randn(T, 16, generator=g),
               "w": torch.full((nq, 2), 0.5), "q_pos": torch.linspace(100, T - 1, nq).long()}]
    return save_dump(tmp_path_factory.mktemp("d") / "d.pt", layers, {"source": "synthetic"})


def test_iou_stage1_option(tiny_dump, capsys, tmp_path):
    code, out, err = run_cli(["iou", "--dump", str(tiny_dump), "--topk", "32", "--block-size", "16", "--blocks", "4",
                              "--method", "hisa", "--stage1", "relu,relu-tiebreak,oracle", "--format", "json",
                              "--out", str(tmp_path)], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["config"]["methods"] == ["hisa", "hisa/relu-tiebreak", "hisa/oracle"]
    o = obj["overall"]
    assert o["hisa/oracle"]["iou_mean"] >= max(o["hisa"]["iou_mean"], o["hisa/relu_tiebreak"]["iou_mean"]) - 1e-12
    code, _, err = run_cli(["iou", "--dump", str(tiny_dump), "--stage1", "bogus", "--out", str(tmp_path)], capsys)
    assert code != 0 and "--stage1" in err and err.count("\n") == 1
    code, _, err = run_cli(["iou", "--dump", str(tiny_dump), "--topk", "32", "--block-size", "16", "--blocks", "4",
                            "--pooling", "max", "--stage1", "ucb", "--out", str(tmp_path)], capsys)
    assert code != 0 and "mean pooling" in err and err.count("\n") == 1
    # the kernels have relu and raw only (checked before any kernel runs)
    from hisa_bench.inputs.dump import load_dump
    from hisa_bench.measure.fidelity import make_grid, measure_layer

    points, _ = make_grid(32, [16], [4], ["mean"])
    with pytest.raises(HisaBenchError, match="stage-1 rules relu and raw only, not ucb"):
        measure_layer(load_dump(tiny_dump)["layers"][0], points, topk=32, methods=["hisa/ucb"], engine="kernels")


def test_needle_stage1_option(capsys, tmp_path):
    code, out, err = run_cli(["needle", "--lengths", "256", "--depths", "0.5", "--trials", "1", "--topk", "32",
                              "--block-size", "16", "--blocks", "4", "--heads", "2", "--dim", "16",
                              "--stage1", "relu,ucb", "--adversarial", "--format", "json", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["method"] for r in rows] == ["flat", "hisa", "hisa/ucb", "block-sparse", "block-sparse/ucb"]
    assert rows[0]["kept"] == 1
    code, _, err = run_cli(["needle", "--stage1", "nope", "--out", str(tmp_path)], capsys)
    assert code != 0 and "--stage1" in err and err.count("\n") == 1
