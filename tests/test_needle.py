"""Length parsing and the kernel-level needle in a haystack."""
from pathlib import Path

import pandas as pd
import pytest
import torch

from hisa_bench.errors import HisaBenchError
from hisa_bench.lengths import parse_lengths
from hisa_bench.measure.needle import COLUMNS, NeedleConfig, plant, run_case, run_needle


from tests.helpers import run_cli  # noqa: E402


@pytest.mark.parametrize("text,expect", [
    ("32k", [32768]), ("32K", [32768]), ("32768", [32768]), ("1m", [1048576]), ("1M", [1048576]),
    ("4k, 8k,16384", [4096, 8192, 16384]), ("4k,4096", [4096]), ("100", [100]),
])
def test_parse_lengths(text, expect):
    assert parse_lengths(text) == expect


@pytest.mark.parametrize("text", ["12q", "", "0", "4k,,8k", "1.5k", "-4k", "k", "32kb", "4 k"])
def test_parse_lengths_rejects(text):
    with pytest.raises(HisaBenchError) as e:
        parse_lengths(text)
    assert "\n" not in str(e.value) and ("length" in str(e.value))


TINY = dict(lengths=[512], trials=2, heads=2, dim=16, topk=64, block_size=16, blocks=8, dtype="float32")


def test_plant_scores_and_adversarial_block():
    g = torch.Generator().manual_seed(0)
    k = torch.randn(256, 16, generator=g, dtype=torch.float64)
    q = torch.randn(1, 2, 16, generator=g, dtype=torch.float64)
    w = torch.full((1, 2), 0.5, dtype=torch.float64)
    u = plant(k, q, w, 40, 3.0, 16, adversarial=True)
    scores = ((q[0] @ k.T).clamp_min(0) * w[0][:, None]).sum(0)
    others = torch.cat([scores[:40], scores[41:]])
    # the needle's flat score is exactly `strength` times the best haystack key
    assert float(scores[40]) == pytest.approx(3.0 * float(others.max()), rel=1e-9)
    # adversarial: its aligned block (32..47) has zero mean along the needle direction
    assert abs(float(k[32:48].mean(0) @ u)) < 1e-9


def test_tiny_needle_flat_always_keeps_it():
    df = run_needle(NeedleConfig(depths=[0.0, 0.5, 1.0], **TINY), torch.device("cpu"))
    assert list(df.columns) == COLUMNS and len(df) == 3 * 3
    flat = df[df["method"] == "flat"]
    assert (flat["kept"] == 1).all() and (flat["rank"] == 0).all() and (flat["kept_rate"] == 1.0).all()
    # the first and last visible blocks are forced, so every method keeps needles at depth 0 and 1
    ends = df[df["depth"].isin([0.0, 1.0])]
    assert (ends["kept"] == 1).all()
    for _, r in df.iterrows():
        assert r["kept_rate"] in (0.0, 0.5, 1.0) and (r["rank"] >= 0) == (r["kept"] == 1)


def test_adversarial_needle_is_lost_by_mean_pooling():
    # a strong needle: plain, mean-pooled HISA finds its block; adversarial, it cannot; flat always keeps it
    depths = [d / 10 for d in range(1, 10)]
    cpu = torch.device("cpu")

    def kept(adversarial):
        cfg = NeedleConfig(depths=depths, strength=8.0, adversarial=adversarial, **TINY)
        res = [run_case(cfg, 512, d, t, cpu, "reference") for d in depths for t in range(2)]
        return {m: sum(r[m][0] for r in res) / len(res) for m in ("flat", "hisa", "block-sparse")}

    plain, adv = kept(False), kept(True)
    assert plain["flat"] == adv["flat"] == 1.0
    assert plain["hisa"] >= 0.9 and adv["hisa"] <= 0.2 and adv["block-sparse"] <= 0.2


def test_needle_command_writes_csv(tmp_path):
    code, stdout, stderr = run_cli(["needle", "--lengths", "512", "--depths", "0,1", "--trials", "1",
                                    "--heads", "2", "--dim", "16", "--topk", "64", "--block-size", "16",
                                    "--blocks", "8", "--format", "csv", "--out", str(tmp_path)])
    assert code == 0, stderr
    folder = Path(stderr.strip().split("run folder: ")[-1])
    assert folder.name.startswith("needle-") and (folder / "env.json").exists()
    df = pd.read_csv(folder / "needle.csv")
    assert list(df.columns) == COLUMNS and len(df) == 6
    assert stdout == (folder / "needle.csv").read_text()


@pytest.mark.parametrize("args,expect", [
    (["--lengths", "12q"], "'12q'"),
    (["--depths", "0,1.5"], "--depths"),
    (["--depths", "a"], "--depths"),
    (["--blocks", "2"], "--blocks"),
    (["--dim", "20"], "--dim"),
    (["--trials", "0"], "--trials"),
    (["--pooling", "quest"], "--pooling"),
    (["--format", "xml"], "--format"),
])
def test_needle_errors(tmp_path, args, expect):
    code, stdout, stderr = run_cli(["needle", "--out", str(tmp_path)] + args)
    lines = stderr.strip().splitlines()
    assert code == 2 and stdout == "" and len(lines) == 1 and expect in lines[0], stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_needle_cuda_without_gpu(tmp_path):
    code, _, stderr = run_cli(["needle", "--device", "cuda", "--out", str(tmp_path)])
    assert code == 3 and "no CUDA GPU" in stderr
