"""The synthetic dump generator: determinism, the planted structure, and the generate command."""

import pytest
import torch

from hisa_bench.inputs.dump import load_dump, validate_dump
from hisa_bench.inputs.synthetic import SyntheticConfig, generate
from kernels.flat_scores_naive import flat_scores_ref

SMALL = dict(keys=4096, queries=48, heads=4, dim=64, layers=2)


from tests.helpers import run_cli  # noqa: E402


@pytest.fixture(scope="module")
def small():
    return generate(SyntheticConfig(seed=3, **SMALL))


def test_deterministic_by_seed(small):
    again = generate(SyntheticConfig(seed=3, **SMALL))
    other = generate(SyntheticConfig(seed=4, **SMALL))
    assert small[1] == again[1]
    for a, b, c in zip(small[0], again[0], other[0]):
        for key in ("q", "k", "w", "q_pos"):
            assert torch.equal(a[key], b[key])
        assert not torch.equal(a["k"], c["k"]) and not torch.equal(a["q_pos"], c["q_pos"])


def test_format_and_meta(small):
    layers, meta = small
    validate_dump({"format": "hisa-bench.indexer-dump", "version": 1, "meta": meta, "layers": layers})
    assert meta["source"] == "synthetic" and meta["key_centered"] is True and meta["gen_seed"] == 3
    assert [l["name"] for l in layers] == ["layer00", "layer01"]
    l0 = layers[0]
    assert l0["q"].shape == (48, 4, 64) and l0["k"].shape == (4096, 64) and l0["q"].dtype == torch.bfloat16
    assert bool((l0["q_pos"][1:] > l0["q_pos"][:-1]).all())
    assert torch.equal(layers[0]["q_pos"], layers[1]["q_pos"])               # positions belong to the text
    assert not torch.equal(layers[0]["k"], layers[1]["k"])                   # directions to the layer
    # keys centred (up to bf16 rounding), queries biased to the tail
    assert float(l0["k"].float().mean(0).norm()) < 0.01 * float(l0["k"].float().norm(dim=1).mean())
    assert float(l0["q_pos"].float().median()) > 0.6 * 4096


def test_topic_edges_not_block_aligned(small):
    edges = [int(e) for e in small[1]["topic_edges"].split(",")][1:]
    assert len(edges) == SyntheticConfig().topics - 1
    assert all(e % 16 for e in edges)


def _flat(layer):
    ks = torch.zeros_like(layer["q_pos"])
    return flat_scores_ref(layer["q"], layer["k"], layer["w"], ks, layer["q_pos"] + 1)


def test_sinks_recency_and_needles_shape_the_scores(small):
    layers, meta = small
    layer = layers[0]
    flat = _flat(layer)
    ke = (layer["q_pos"] + 1).tolist()
    # sinks: the first keys rank in the top 2% of what each query sees
    rel = [float((flat[i, :ke[i]][None] > flat[i, :4, None]).sum(1).float().mean()) / ke[i] for i in range(48)]
    assert sum(rel) / len(rel) < 0.05
    # recency: the last 256 keys score well above the middle of the context on average
    ratios = [float(flat[i, ke[i] - 256:ke[i]].mean() / flat[i, 8:ke[i] - 256].mean()) for i in range(48) if ke[i] > 1024]
    assert sum(ratios) / len(ratios) > 1.5
    # needles: each is among the 16 best keys of a good share of the queries that see it
    for p in map(int, meta["needle_positions"].split(",")):
        seen = [i for i in range(48) if ke[i] > p]
        if len(seen) < 8:
            continue
        top = sum(int((flat[i, :ke[i]] > flat[i, p]).sum()) < 16 for i in seen)
        assert top >= 0.15 * len(seen), p


def test_knobs_switch_structure_off():
    layers, meta = generate(SyntheticConfig(seed=1, sinks=0, recency_freqs=0, topics=1, needles=0, adversarial=0,
                                            norm_sigma=0.0, **SMALL))
    assert meta["needle_positions"] == "" and meta["topic_edges"] == "0"
    flat = _flat(layers[0])
    ke = (layers[0]["q_pos"] + 1).tolist()
    rel = [float((flat[i, :ke[i]][None] > flat[i, :4, None]).sum(1).float().mean()) / ke[i] for i in range(48)]
    assert sum(rel) / len(rel) > 0.2                                        # no sinks: first keys are ordinary


def test_heavy_tailed_norms():
    def spread(sigma):
        k = generate(SyntheticConfig(seed=2, norm_sigma=sigma, needles=0, adversarial=0, sinks=0, **SMALL))[0][0]["k"]
        n = k.float().norm(dim=1)
        return float(torch.quantile(n, 0.99) / n.median())
    assert spread(1.0) > 2 * spread(0.0)


def test_adversarial_block_mean_is_zero_along_the_needle():
    cfg = SyntheticConfig(seed=5, sinks=0, recency_freqs=0, topic_strength=0.0, needles=0, adversarial=2,
                          norm_sigma=0.0, key_noise=0.01, dtype="float32", **SMALL)
    layers, meta = generate(cfg)
    k = layers[0]["k"].double()
    for p in map(int, meta["adversarial_positions"].split(",")):
        lo = p // 128 * 128
        d = k[p] / k[p].norm()
        assert float(k[p] @ d) > 3.5                                        # the needle stands out
        assert abs(float(k[lo:lo + 128].mean(0) @ d)) < 0.01                # ... but its block mean does not
        assert float(k[lo + (1 if p == lo else 0)] @ d) < 0                 # neighbours point the other way


def test_generate_command(tmp_path):
    out = tmp_path / "syn.pt"
    code, stdout, stderr = run_cli(["generate", "--out", str(out), "--keys", "2048", "--queries", "16",
                                    "--layers", "1", "--heads", "2", "--dim", "32", "--seed", "9",
                                    "--needles", "2", "--adversarial", "1", "--topics", "4"])
    assert code == 0 and stdout == "" and "wrote" in stderr
    dump = load_dump(out)
    assert dump["meta"]["gen_seed"] == 9 and dump["layers"][0]["k"].shape == (2048, 32)
    ref = generate(SyntheticConfig(seed=9, keys=2048, queries=16, layers=1, heads=2, dim=32, needles=2,
                                   adversarial=1, topics=4))[0][0]
    assert torch.equal(dump["layers"][0]["k"], ref["k"])


@pytest.mark.parametrize("args,expect", [
    (["--queries", "5000"], "--queries"),
    (["--dtype", "int8"], "--dtype"),
    (["--topic-jump", "1.5"], "--topic-jump"),
    (["--needle-strength", "-1"], "--needle-strength"),
    (["--keys", "0"], "--keys"),
    (["--weights", "random"], "--weights"),
])
def test_generate_errors(tmp_path, args, expect):
    out = tmp_path / "bad.pt"
    code, stdout, stderr = run_cli(["generate", "--out", str(out), "--keys", "4096"] + args)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expect in lines[0] and not out.exists()
