"""`hisa-bench env` and the environment stamp that every result folder carries."""
import json
import sys

import torch

from hisa_bench.environment import stamp
from tests.helpers import run_cli


def test_env_json_names_versions_and_kernel_mode():
    code, out, err = run_cli(["env", "--json"])
    assert code == 0, err
    s = json.loads(out)
    assert s["torch"] == torch.__version__
    for key in ("triton", "python", "git_commit", "command", "gpu", "kernels", "device"):
        assert key in s
    if torch.cuda.is_available():
        assert s["gpu"]["name"] and s["kernels"] == "compiled"
    else:
        assert s["gpu"] is None and s["kernels"].startswith("interpreted")


def test_env_table_and_stamp_command():
    code, out, _ = run_cli(["env"])
    assert code == 0 and "kernels" in out and "triton" in out
    assert stamp(command="hisa-bench x", timing={"rep_ms": 5})["timing"] == {"rep_ms": 5}


def test_commit_from_environment_when_git_is_absent(monkeypatch):
    from hisa_bench import environment

    monkeypatch.setattr(environment, "_run", lambda *a, **k: None)
    monkeypatch.setenv("HISA_BENCH_GIT_COMMIT", "abc123")
    assert environment.git_commit() == "abc123"


def test_commit_from_environment_wins_over_a_stale_git(monkeypatch):
    from hisa_bench import environment

    monkeypatch.setattr(environment, "_run", lambda *a, **k: "0123456789abcdef")   # what .git says
    monkeypatch.setenv("HISA_BENCH_GIT_COMMIT", "abc123")
    assert environment.git_commit() == "abc123"
    monkeypatch.delenv("HISA_BENCH_GIT_COMMIT")
    assert environment.git_commit().startswith("0123456789abcdef")


def test_kernel_bench_records_carry_the_environment_stamp(tmp_path, monkeypatch):
    from kernels.topk_bench import bench_timing, write_record

    monkeypatch.setattr(sys, "argv", ["x", "--rows", "64"])
    monkeypatch.setenv("HISA_BENCH_GIT_COMMIT", "abc1234")
    path = write_record(str(tmp_path), "decode_bench", bench_timing(60), rows=[{"ms": 1.0}])
    rec = json.loads(open(path).read())
    assert rec["rows"] == [{"ms": 1.0}]
    env = rec["env"]
    assert env["git_commit"] == "abc1234" and env["command"] == "python -m kernels.decode_bench --rows 64"
    assert env["timing"]["rep_ms"] == 60 and "torch" in env and "triton" in env and "gpu" in env
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decode_bench.json"]      # no temporary left


def test_kernel_bench_configs_parse_or_say_which_part_is_wrong():
    import pytest

    from kernels.topk_bench import parse_config

    assert parse_config("num_warps=8:maxnreg=128") == dict(num_warps=8, maxnreg=128)
    assert parse_config("MIN_GROUP_RATIO=1.5") == dict(MIN_GROUP_RATIO=1.5)
    assert parse_config("") == {}
    for bad in ("num_warps", "STAGES=x", "=3"):
        with pytest.raises(SystemExit) as e:
            parse_config(bad)
        assert "is not NAME=NUMBER" in str(e.value) and "\n" not in str(e.value)


def test_kernel_benches_without_a_gpu_say_so_in_one_line(monkeypatch):
    import importlib

    import pytest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["x"])
    for name in ("topk_bench", "flat_pruned_bench", "hisa_stage_bench", "flat_scores_wgmma_bench", "decode_bench",
                 "profile_chunk"):
        module = importlib.import_module(f"kernels.{name}")
        with pytest.raises(SystemExit) as e:
            module.main() if name == "profile_chunk" else module.main([])
        assert str(e.value) == f"error: python -m kernels.{name} times kernels on a CUDA GPU, and none is available"
