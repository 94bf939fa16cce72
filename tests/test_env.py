"""`hisa-bench env` and the environment stamp that every result folder carries."""
import json

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
