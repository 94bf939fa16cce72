"""Fidelity metrics, selections, poolings and the iou command."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hisa_bench.errors import HisaBenchError
from hisa_bench.inputs.dump import save_dump
from hisa_bench.measure.fidelity import (LAYER_COLUMNS, PER_QUERY_COLUMNS, STAT_KEYS, _metrics, make_grid,
                                         measure_layer)
from hisa_bench.measure.pooling import BlockScorer, kept_blocks, pool_keys
from hisa_bench.measure.select import topk_mask
from kernels.flat_scores_naive import flat_scores_ref
from kernels.hisa_naive import (block_sparse_select_ref, flat_select_ref, hisa_select_ref, kept_blocks_ref,
                                pool_keys_ref)

REPO = Path(__file__).resolve().parent.parent


def sets(sel):
    return [set(x for x in row.tolist() if x >= 0) for row in sel]


def mask_sets(mask, base):
    return [set((torch.nonzero(r).flatten() + int(base[i])).tolist()) for i, r in enumerate(mask)]


def case(seed, T=600, H=3, D=16, nq=20, quantized=False, packed=False):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(nq, H, D, generator=g), torch.randn(T, D, generator=g)
    w = torch.rand(nq, H, generator=g)
    if quantized:  # integer scores: many exact ties, also among pooled block scores
        q, k, w = q.round(), k.round().clamp(-1, 1), torch.ones(nq, H)
    qp = torch.sort(torch.randperm(T, generator=g)[:nq]).values
    ks = (qp * torch.rand(nq, generator=g)).long() if packed else torch.zeros(nq, dtype=torch.long)
    return q, k, w, ks, qp + 1, qp


# ---------------------------------------------------------------- selections equal the references
@pytest.mark.parametrize("seed,quantized,packed", [(0, False, False), (1, True, False), (2, True, True),
                                                   (3, False, True), (4, True, False)])
def test_masks_equal_references(seed, quantized, packed):
    q, k, w, ks, ke, _ = case(seed, quantized=quantized, packed=packed)
    topk, B, m = 40, 16, 4
    flat = flat_scores_ref(q, k, w, ks, ke)
    valid = torch.arange(flat.shape[1])[None] < (ke - ks)[:, None]
    F, tied = topk_mask(flat, valid, topk)
    assert mask_sets(F, ks) == sets(flat_select_ref(q, k, w, ks, ke, topk=topk))
    J = BlockScorer(k.double()).scores(q.double(), w.double(), B, "mean")
    kept, _ = kept_blocks(J, ks, ke, B, m)
    assert [set(torch.nonzero(r).flatten().tolist()) for r in kept] == sets(kept_blocks_ref(q, k, w, ks, ke, None, B, m))
    blk = ((ks[:, None] + torch.arange(flat.shape[1])[None]) // B).clamp(max=J.shape[1] - 1)
    S = topk_mask(flat, torch.gather(kept, 1, blk) & valid, topk)[0]
    assert mask_sets(S, ks) == sets(hisa_select_ref(q, k, w, ks, ke, topk=topk, block_size=B, blocks=m))
    kept_max, _ = kept_blocks(BlockScorer(k.double()).scores(q.double(), w.double(), B, "max"), ks, ke, B, m)
    assert [set(torch.nonzero(r).flatten().tolist()) for r in kept_max] == \
        sets(kept_blocks_ref(q, k, w, ks, ke, None, B, m, pooling="max"))
    if quantized:
        assert tied.any(), "integer scores should produce boundary ties"


def test_tie_rules_on_hand_made_row():
    s = torch.tensor([[1.0, 1.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    valid = torch.ones_like(s, dtype=torch.bool)
    low, tied = topk_mask(s, valid, 3, "low")
    recent, _ = topk_mask(s, valid, 3, "recent")
    assert torch.nonzero(low[0]).flatten().tolist() == [0, 1, 4]
    assert torch.nonzero(recent[0]).flatten().tolist() == [1, 2, 4]
    assert tied.tolist() == [True]
    # no tie at the boundary: the k-th score is unique
    assert topk_mask(s, valid, 4, "low")[1].tolist() == [False]
    # fewer valid entries than k: all of them, never an invalid one
    valid2 = torch.tensor([[True, False, True, False, False]])
    m, t = topk_mask(s, valid2, 3)
    assert torch.nonzero(m[0]).flatten().tolist() == [0, 2] and t.tolist() == [False]


def test_kept_blocks_forcing_rule():
    # 5 blocks of 4 keys; the query sees keys 0..17 (blocks 0..4); scores favour blocks 2 and 3
    J = torch.tensor([[0.0, 1.0, 5.0, 4.0, 0.5]], dtype=torch.float64)
    ks, ke = torch.tensor([0]), torch.tensor([18])
    kept, _ = kept_blocks(J, ks, ke, 4, 3)
    assert torch.nonzero(kept[0]).flatten().tolist() == [0, 2, 4]      # first + last forced, best other
    kept, _ = kept_blocks(J, ks, ke, 4, 10)
    assert kept[0].tolist() == [True] * 5                                  # m >= visible: all of them
    # a packed query that starts inside block 1: block 0 is not visible, block 1 is forced
    kept, _ = kept_blocks(J, torch.tensor([5]), torch.tensor([14]), 4, 2)
    assert torch.nonzero(kept[0]).flatten().tolist() == [1, 3]


# ---------------------------------------------------------------- metrics with known answers
def _one(mask_list, width=8):
    m = torch.zeros(1, width, dtype=torch.bool)
    m[0, mask_list] = True
    return m


def test_metrics_known_answers():
    flat = torch.tensor([[8.0, 7.0, 6.0, 5.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    F = _one([0, 1, 2, 3])
    nF, sumF = torch.tensor([4.0], dtype=torch.float64), torch.tensor([26.0], dtype=torch.float64)
    tops = {1: (_one([0]), torch.tensor([1.0], dtype=torch.float64)),
            16: (F, nF), 128: (F, nF)}
    same = _metrics(flat, F, nF, sumF, tops, F)
    assert all(float(v) == 1.0 for v in same.values())
    disjoint = _metrics(flat, F, nF, sumF, tops, _one([4, 5, 6, 7]))
    assert float(disjoint["iou"]) == 0.0 and float(disjoint["recall"]) == 0.0
    assert float(disjoint["score_recall"]) == pytest.approx(2.0 / 26.0)
    half = _metrics(flat, F, nF, sumF, tops, _one([0, 1, 4, 5]))
    assert float(half["iou"]) == pytest.approx(2 / 6)
    assert float(half["recall"]) == pytest.approx(0.5)
    assert float(half["score_recall"]) == pytest.approx(17 / 26)
    assert float(half["top1_recall"]) == 1.0 and float(half["top16_recall"]) == 0.5


def test_score_recall_of_any_exact_topk_is_one_even_with_ties():
    flat = torch.tensor([[3.0, 1.0, 1.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    valid = torch.ones_like(flat, dtype=torch.bool)
    F, tied = topk_mask(flat, valid, 3, "low")
    S, _ = topk_mask(flat, valid, 3, "recent")
    assert tied.item() and not torch.equal(F, S)
    nF = torch.tensor([3.0], dtype=torch.float64)
    m = _metrics(flat, F, nF, (flat * F).sum(1), {}, S)
    assert float(m["score_recall"]) == 1.0 and float(m["iou"]) == pytest.approx(1 / 5)   # {0,1,2} vs {0,3,4}


# ---------------------------------------------------------------- poolings
def test_poolings():
    g = torch.Generator().manual_seed(5)
    k = torch.randn(100, 16, generator=g, dtype=torch.float64)            # short last block (100 = 6*16 + 4)
    q = torch.randn(7, 2, 16, generator=g, dtype=torch.float64)
    w = torch.rand(7, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(pool_keys(k, 16, "mean"), pool_keys_ref(k, None, 16, "mean"))
    assert torch.allclose(pool_keys(k, 16, "mean")[-1], k[96:].mean(0))
    assert torch.equal(pool_keys(k, 16, "max"), pool_keys_ref(k, None, 16, "max"))
    sc = BlockScorer(k)
    mm = sc.scores(q, w, 16, "mean+max")
    assert torch.allclose(mm, sc.scores(q, w, 16, "mean") + sc.scores(q, w, 16, "max"))
    # quest: every head's bound is >= q.k for every key of the block, so J >= each key's flat score
    J = sc.scores(q, w, 16, "quest")
    flat = ((torch.einsum("thd,nd->thn", q, k)).clamp_min(0) * w[:, :, None]).sum(1)     # [7, 100]
    for b in range(J.shape[1]):
        assert bool((J[:, b:b + 1] >= flat[:, b * 16:(b + 1) * 16] - 1e-9).all())
    with pytest.raises(HisaBenchError, match="pooling"):
        sc.scores(q, w, 16, "median")


def test_quest_keeps_adversarial_needle_that_mean_drops():
    D, B = 16, 16
    g = torch.Generator().manual_seed(7)
    k = 0.1 * torch.randn(16 * B, D, generator=g, dtype=torch.float64)
    u = torch.zeros(D, dtype=torch.float64)
    u[0] = 1.0
    q = u.view(1, 1, D).clone()
    p = 7 * B + 5
    k[p] += 5 * u
    others = [s for s in range(7 * B, 8 * B) if s != p]
    k[others] -= (5.0 / len(others)) * u                                 # block mean along u: zero
    for b in (3, 10):                                                     # decoys: mildly aligned blocks
        k[b * B:(b + 1) * B] += 0.3 * u
    w = torch.ones(1, 1, dtype=torch.float64)
    ks, ke = torch.tensor([0]), torch.tensor([16 * B])
    sc = BlockScorer(k)
    mean_kept, _ = kept_blocks(sc.scores(q, w, B, "mean"), ks, ke, B, 4)
    quest_kept, _ = kept_blocks(sc.scores(q, w, B, "quest"), ks, ke, B, 4)
    assert not mean_kept[0, 7] and quest_kept[0, 7]


# ---------------------------------------------------------------- whole-layer measurement
def small_layer(seed=0, T=1024, nq=24, H=2, D=16, name="layer00", quantized=False):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(nq, H, D, generator=g), torch.randn(T, D, generator=g)
    if quantized:
        q, k = q.round(), k.round().clamp(-1, 1)
    qp = torch.sort(torch.randperm(T - 40, generator=g)[:nq] + 40).values
    qp[0] = 20                                                           # a trivial query for sure
    return {"name": name, "q": q.to(torch.bfloat16), "k": k.to(torch.bfloat16),
            "w": torch.full((nq, H), 0.5), "q_pos": qp.long()}


@pytest.mark.parametrize("quantized", [False, True])
def test_layer_means_match_reference_pipeline(quantized):
    """Per-layer means from the mask pipeline equal those computed from the plain references."""
    layer = small_layer(1, quantized=quantized)
    topk, B, m = 64, 16, 8
    pts, _ = make_grid(topk, [B], [m], ["mean"])
    df = measure_layer(layer, pts, topk=topk, methods=["hisa", "block-sparse"])
    q, k, w = layer["q"], layer["k"], layer["w"]
    ks, ke = torch.zeros_like(layer["q_pos"]), layer["q_pos"] + 1
    flat = flat_scores_ref(q, k, w, ks, ke)
    Fs = sets(flat_select_ref(q, k, w, ks, ke, topk=topk))
    I = lambda i, S: sum(float(flat[i, s]) for s in S)  # noqa: E731
    for method, sel in (("hisa", hisa_select_ref(q, k, w, ks, ke, topk=topk, block_size=B, blocks=m)),
                        ("block-sparse", block_sparse_select_ref(q, k, w, ks, ke, topk=topk, block_size=B))):
        Ss = sets(sel)
        rows = df[df["method"] == method].sort_values("query")
        for i, (F, S) in enumerate(zip(Fs, Ss)):
            r = rows.iloc[i]
            assert r["iou"] == pytest.approx(len(F & S) / len(F | S))
            assert r["score_recall"] == pytest.approx(I(i, S) / I(i, F))
            assert bool(r["trivial"]) == (int(ke[i]) <= m * B)
    trivial = df[df["trivial"]]
    assert len(trivial) > 0 and (trivial[trivial["method"] == "hisa"]["iou"] == 1.0).all()


def test_trivial_queries_left_out_of_aggregates(tmp_path):
    layer = small_layer(2)
    path = save_dump(tmp_path / "d.pt", [layer], {"source": "synthetic"})
    obj, code = run_cli(["iou", "--dump", str(path), "--topk", "64", "--block-size", "16", "--blocks", "8",
                         "--format", "json", "--out", str(tmp_path / "runs")])
    assert code == 0
    folder = next((tmp_path / "runs").iterdir())
    pq = pd.read_csv(folder / "per_query.csv")
    hisa = pq[pq["method"] == "hisa"]
    nt = hisa[~hisa["trivial"]]
    lay = obj["layers"][0]
    assert lay["queries"] == 24 and lay["trivial"] == int(hisa["trivial"].sum()) >= 1
    assert lay["hisa"]["iou_mean"] == pytest.approx(nt["iou"].mean())
    assert lay["hisa"]["iou_min"] == pytest.approx(nt["iou"].min())
    assert lay["hisa"]["iou_p5"] == pytest.approx(np.percentile(nt["iou"], 5))
    assert lay["hisa"]["score_recall_mean"] == pytest.approx(nt["score_recall"].mean())
    assert lay["hisa"]["iou_mean"] < 1.0                                  # the trivial 1.0s are not in it


# ---------------------------------------------------------------- the command
def run_cli(argv, capsys=None):
    """Run the CLI in-process like the console script; returns (parsed stdout JSON or text, exit code)."""
    from tests.helpers import run_cli as run

    code, text, run_cli.stderr = run(argv)
    try:
        return json.loads(text), code
    except ValueError:
        return text, code


@pytest.fixture(scope="module")
def dump2(tmp_path_factory):
    d = tmp_path_factory.mktemp("dump")
    return save_dump(d / "two.pt", [small_layer(3, name="layer00"), small_layer(4, name="layer01", quantized=True)],
                     {"source": "synthetic", "model": "test"})


def test_iou_json_schema(dump2, tmp_path):
    obj, code = run_cli(["iou", "--dump", str(dump2), "--topk", "64", "--block-size", "16", "--blocks", "8",
                         "--format", "json", "--out", str(tmp_path)])
    assert code == 0, run_cli.stderr
    assert set(obj) == {"config", "layers", "overall"}
    assert [l["name"] for l in obj["layers"]] == ["layer00", "layer01"]
    for entry in obj["layers"] + [obj["overall"]]:
        assert {"queries", "trivial", "tied_flat", "tied_block", "hisa", "block_sparse"} <= set(entry)
        for method in ("hisa", "block_sparse"):
            assert list(entry[method]) == STAT_KEYS
            assert 0.0 <= entry[method]["iou_min"] <= entry[method]["iou_mean"] <= 1.0
    assert obj["overall"]["queries"] == 48
    assert obj["layers"][1]["tied_flat"] > 0                              # integer scores tie at the boundary
    # block-sparse keeps at most k // B blocks of keys, never more than HISA's exact top-k over more blocks
    assert obj["overall"]["block_sparse"]["score_recall_mean"] <= obj["overall"]["hisa"]["score_recall_mean"]
    folder = Path(run_cli.stderr.strip().split("run folder: ")[-1])
    assert sorted(p.name for p in folder.iterdir()) == ["env.json", "iou.json", "layers.csv", "per_query.csv"]
    assert json.loads((folder / "iou.json").read_text()) == obj
    assert list(pd.read_csv(folder / "layers.csv").columns) == LAYER_COLUMNS
    pq = pd.read_csv(folder / "per_query.csv")
    assert list(pq.columns) == PER_QUERY_COLUMNS and len(pq) == 2 * 48


def test_iou_grid_shape_and_csv(dump2, tmp_path):
    obj, code = run_cli(["iou", "--dump", str(dump2), "--topk", "64", "--block-size", "16,32", "--blocks", "2,4,8",
                         "--pooling", "mean,quest", "--method", "hisa", "--layers", "layer01",
                         "--format", "json", "--out", str(tmp_path)])
    assert code == 0, run_cli.stderr
    assert set(obj) == {"runs"}
    # 16 x 2 < 64 and 16 x 4 = 64 ok; 32 x 2 = 64 ok -> 5 valid (B, m) points x 2 poolings
    points = {(r["config"]["block_size"], r["config"]["blocks"], r["config"]["pooling"]) for r in obj["runs"]}
    assert len(obj["runs"]) == 10 == len(points) and (16, 2, "mean") not in points
    assert "skipping B=16 m=2" in run_cli.stderr
    for r in obj["runs"]:
        assert [l["name"] for l in r["layers"]] == ["layer01"] and "block_sparse" not in r["layers"][0]
    text, code = run_cli(["iou", "--dump", str(dump2), "--topk", "64", "--block-size", "16", "--blocks", "8",
                          "--format", "csv", "--out", str(tmp_path)])
    assert code == 0
    assert text.splitlines()[0] == ",".join(LAYER_COLUMNS) and len(text.splitlines()) == 1 + 2 * 2


def test_iou_tie_rule_recent(dump2, tmp_path):
    args = ["iou", "--dump", str(dump2), "--topk", "64", "--block-size", "16", "--blocks", "8",
            "--layers", "layer01", "--format", "json", "--out", str(tmp_path)]
    a, _ = run_cli(args)
    b, _ = run_cli(args + ["--tie-rule", "recent"])
    assert a["config"]["tie_rule"] == "low" and b["config"]["tie_rule"] == "recent"
    la, lb = a["layers"][0], b["layers"][0]
    # integer scores: many boundary ties, so the figures depend on the rule and the counts say so
    assert la["tied_flat"] > 0 and (la["tied_flat"], la["tied_block"]) == (lb["tied_flat"], lb["tied_block"])
    assert la["hisa"]["iou_mean"] != lb["hisa"]["iou_mean"]
    assert la["block_sparse"]["iou_mean"] != lb["block_sparse"]["iou_mean"]


def test_iou_table_output(dump2, tmp_path):
    text, code = run_cli(["iou", "--dump", str(dump2), "--topk", "64", "--block-size", "16", "--blocks", "8",
                          "--out", str(tmp_path)])
    assert code == 0 and "layer00" in text and "overall" in text and "block-sparse" in text


@pytest.mark.parametrize("args,expect", [
    (["--dump", "/nonexistent/d.pt"], "no such file"),
    (["--block-size", "12q"], "--block-size"),
    (["--block-size", "100"], "powers of two"),
    (["--blocks", "1"], "--blocks"),
    (["--blocks", "2", "--block-size", "16"], "no grid point covers top-k"),
    (["--method", "hisa,magic"], "--method"),
    (["--pooling", "median"], "--pooling"),
    (["--layers", "layer07"], "layer07 not in"),
    (["--format", "xml"], "--format"),
    (["--tie-rule", "random"], "--tie-rule"),
])
def test_iou_errors_are_one_line(dump2, tmp_path, args, expect):
    base = {"--dump": str(dump2), "--topk": "64", "--out": str(tmp_path)}
    argv = ["iou"]
    for k, v in base.items():
        if k not in args:
            argv += [k, v]
    text, code = run_cli(argv + args)
    assert code == 2 and text == ""
    lines = run_cli.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hisa-bench: error:") and expect in lines[0], lines
    assert not list(Path(tmp_path).glob("iou-*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_iou_cuda_without_gpu_subprocess(dump2, tmp_path):
    p = subprocess.run([sys.executable, "-m", "hisa_bench.cli", "iou", "--dump", str(dump2), "--device", "cuda",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and "no CUDA GPU" in p.stderr and "Traceback" not in p.stderr
