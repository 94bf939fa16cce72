"""The dump loader: round trip, and one clear error naming layer and key for every broken rule."""
import pytest
import torch

from hisa_bench.errors import HisaBenchError
from hisa_bench.inputs.dump import FORMAT, load_dump, save_dump, validate_dump


def layer(name="layer00", nq=4, h=2, d=16, t=32, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return {
        "name": name,
        "q": torch.randn(nq, h, d, generator=g).to(dtype),
        "k": torch.randn(t, d, generator=g).to(dtype),
        "w": torch.full((nq, h), 1.0 / h),
        "q_pos": torch.tensor([3, 10, 20, 31][:nq], dtype=torch.int64),
    }


META = {"source": "synthetic", "tokens": 32, "key_centered": True, "notes": "test"}


def test_round_trip(tmp_path):
    layers = [layer("layer00"), layer("layer01", dtype=torch.bfloat16)]
    layers[1]["ks"] = torch.zeros(4, dtype=torch.int64)
    layers[1]["ke"] = layers[1]["q_pos"] + 1
    p = save_dump(tmp_path / "d.pt", layers, META)
    obj = load_dump(p)
    assert obj["format"] == FORMAT and obj["version"] == 1 and obj["meta"] == META
    assert [l["name"] for l in obj["layers"]] == ["layer00", "layer01"]
    for a, b in zip(layers, obj["layers"]):
        for key in ("q", "k", "w", "q_pos"):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key])
    assert torch.equal(obj["layers"][1]["ke"], layers[1]["ke"])
    assert not list(tmp_path.glob(".tmp-*"))


def test_unknown_keys_ignored(tmp_path):
    l = layer()
    l["attn_q"] = torch.randn(3)
    load_dump(save_dump(tmp_path / "d.pt", [l], META))


def _mutate(key, value):
    def f(l):
        l[key] = value
    return f


BAD = [
    ("q_pos decreasing", _mutate("q_pos", torch.tensor([3, 10, 9, 31])), "'q_pos'", "strictly increasing"),
    ("q_pos repeated", _mutate("q_pos", torch.tensor([3, 10, 10, 31])), "'q_pos'", "strictly increasing"),
    ("q_pos int32", _mutate("q_pos", torch.tensor([3, 10, 20, 31], dtype=torch.int32)), "'q_pos'", "int64"),
    ("q_pos out of range", _mutate("q_pos", torch.tensor([3, 10, 20, 32])), "'q_pos'", "q_pos < T"),
    ("q_pos negative", _mutate("q_pos", torch.tensor([-1, 10, 20, 30])), "'q_pos'", "0 <= q_pos"),
    ("q_pos wrong length", _mutate("q_pos", torch.tensor([3, 10, 20])), "'q_pos'", "[4]"),
    ("q 2-d", _mutate("q", torch.randn(4, 16)), "'q'", "[Nq, H, D]"),
    ("q int", _mutate("q", torch.ones(4, 2, 16, dtype=torch.int32)), "'q'", "float16"),
    ("q float64", _mutate("q", torch.ones(4, 2, 16, dtype=torch.float64)), "'q'", "float32"),
    ("q NaN", lambda l: l["q"].__setitem__((1, 0, 3), float("nan")), "'q'", "NaN"),
    ("k Inf", lambda l: l["k"].__setitem__((5, 2), float("inf")), "'k'", "Inf"),
    ("w NaN", lambda l: l["w"].__setitem__((0, 0), float("nan")), "'w'", "NaN"),
    ("k wrong D", _mutate("k", torch.randn(32, 8)), "'k'", "D = 16"),
    ("k fp8 without scale", _mutate("k", torch.randn(32, 16).to(torch.float8_e4m3fn)), "'k'", "float32"),
    ("w float16", _mutate("w", torch.ones(4, 2, dtype=torch.float16)), "'w'", "float32"),
    ("w wrong shape", _mutate("w", torch.ones(4, 3)), "'w'", "[4, 2]"),
    ("q not a tensor", _mutate("q", [[1.0]]), "'q'", "tensor"),
    ("missing k", lambda l: l.pop("k"), "'k'", "missing"),
    ("missing q_pos", lambda l: l.pop("q_pos"), "'q_pos'", "missing"),
    ("ks alone", _mutate("ks", torch.zeros(4, dtype=torch.int64)), "'ke'", "together"),
    ("ke beyond T", lambda l: l.update(ks=torch.zeros(4, dtype=torch.int64),
                                        ke=torch.full((4,), 33, dtype=torch.int64)), "'ks'/'ke'", "ke <= T"),
    ("ks int32", lambda l: l.update(ks=torch.zeros(4, dtype=torch.int32),
                                     ke=torch.ones(4, dtype=torch.int64)), "'ks'", "int64"),
    ("k_scale shape", _mutate("k_scale", torch.ones(31)), "'k_scale'", "float32 [32]"),
    ("k_scale zero", _mutate("k_scale", torch.zeros(32)), "'k_scale'", "positive"),
]


@pytest.mark.parametrize("label,mutate,key,expect", BAD, ids=[b[0] for b in BAD])
def test_rejects_bad_layer(tmp_path, label, mutate, key, expect):
    l = layer("layer05")
    mutate(l)
    obj = {"format": FORMAT, "version": 1, "meta": META, "layers": [layer("layer00"), l]}
    p = tmp_path / "bad.pt"
    torch.save(obj, p)
    with pytest.raises(HisaBenchError) as e:
        load_dump(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)) and "layer 'layer05'" in msg and f"key {key}" in msg and expect in msg, msg
    # save_dump refuses the same thing and leaves nothing behind
    with pytest.raises(HisaBenchError):
        save_dump(tmp_path / "out.pt", obj["layers"], META)
    assert not (tmp_path / "out.pt").exists()


def test_fp8_keys_with_scale_accepted(tmp_path):
    l = layer()
    l["k"] = l["k"].to(torch.float8_e4m3fn)
    l["k_scale"] = torch.ones(32)
    load_dump(save_dump(tmp_path / "d.pt", [l], META))


@pytest.mark.parametrize("obj,expect", [
    ({"format": "other", "version": 1, "meta": {}, "layers": [layer()]}, "key 'format'"),
    ({"format": FORMAT, "version": 2, "meta": {}, "layers": [layer()]}, "key 'version'"),
    ({"format": FORMAT, "version": 1, "meta": {}, "layers": []}, "key 'layers'"),
    ({"format": FORMAT, "version": 1, "meta": {"x": [1]}, "layers": [layer()]}, "key 'meta'"),
    ({"format": FORMAT, "version": 1, "meta": {}, "layers": [layer(), layer()]}, "unique"),
    ([1, 2, 3], "top level"),
])
def test_rejects_bad_top_level(tmp_path, obj, expect):
    p = tmp_path / "bad.pt"
    torch.save(obj, p)
    with pytest.raises(HisaBenchError, match=expect):
        load_dump(p)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(HisaBenchError, match="no such file"):
        load_dump(tmp_path / "nope.pt")
    p = tmp_path / "text.pt"
    p.write_text("hello, not a tensor file\n")
    with pytest.raises(HisaBenchError, match="not a dump: it "):
        load_dump(p)
    with pytest.raises(HisaBenchError, match="not a file"):
        load_dump(tmp_path)


class Thing:
    """Any pickled object: weights_only loading must refuse it."""


def test_pickled_objects_refused(tmp_path):
    p = tmp_path / "obj.pt"
    torch.save({"format": FORMAT, "version": 1, "meta": {}, "layers": [layer()], "x": Thing()}, p)
    with pytest.raises(HisaBenchError, match="not a dump: it "):
        load_dump(p)


def test_validate_dump_source_name():
    with pytest.raises(HisaBenchError, match="^mem: key 'format'"):
        validate_dump({"format": "x"}, source="mem")
