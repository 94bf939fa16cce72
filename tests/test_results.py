"""Run folders and atomic writes (hisa_bench.results): a run folder appears only when committed,
nothing half-written or temporary is ever left behind, files get ordinary permissions."""
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hisa_bench import results
from hisa_bench.errors import HisaBenchError
from hisa_bench.results import RunFolder, atomic_write_bytes, atomic_write_text, write_csv, write_json

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _names(folder):
    return sorted(p.name for p in Path(folder).iterdir())


def test_folder_appears_only_on_commit(tmp_path):
    out = tmp_path / "runs"
    with RunFolder(out, "speed", "t1") as run:
        run.json("env.json", {"a": 1})
        run.csv("speed.csv", pd.DataFrame({"x": [1, 2]}))
        assert run.tmp.name.startswith(".tmp-speed-")
        # before commit: only the hidden temporary folder, no run folder
        assert [n for n in _names(out) if not n.startswith(".tmp-")] == []
        assert not run.final.exists()
        folder = run.commit()
    assert folder.name.startswith("speed-") and folder.name.endswith("-t1")
    assert _names(out) == [folder.name]
    assert _names(folder) == ["env.json", "speed.csv"]
    assert (folder / "env.json").read_text() == '{\n "a": 1\n}\n'
    assert pd.read_csv(folder / "speed.csv")["x"].tolist() == [1, 2]


def test_exception_inside_with_removes_temporary(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with RunFolder(tmp_path, "iou") as run:
            run.json("iou.json", {"x": 1})
            assert run.tmp.is_dir()
            raise RuntimeError("boom")
    assert _names(tmp_path) == []


def test_uncommitted_run_leaves_nothing(tmp_path):
    with RunFolder(tmp_path, "needle") as run:
        run.json("needle.json", {})
    assert _names(tmp_path) == []


def test_exception_after_commit_keeps_the_run(tmp_path):
    with pytest.raises(KeyError):
        with RunFolder(tmp_path, "speed") as run:
            run.json("env.json", {})
            folder = run.commit()
            raise KeyError("after")
    assert _names(tmp_path) == [folder.name]
    assert _names(folder) == ["env.json"]


def test_name_clash_gets_a_suffix(tmp_path):
    a = RunFolder(tmp_path, "speed", "x")
    b = RunFolder(tmp_path, "speed", "x")
    a.json("env.json", {"run": "a"})
    b.json("env.json", {"run": "b"})
    fa, fb = a.commit(), b.commit()
    assert fa != fb and fa.exists() and fb.exists()
    assert '"a"' in (fa / "env.json").read_text() and '"b"' in (fb / "env.json").read_text()
    assert not any(n.startswith(".tmp-") for n in _names(tmp_path))


def test_commit_never_replaces_an_existing_folder(tmp_path):
    run = RunFolder(tmp_path, "speed")
    run.json("env.json", {})
    run.final.mkdir()                       # another run took the name after we chose it
    folder = run.commit()
    assert folder.name.endswith("-2") and _names(folder) == ["env.json"]
    assert len(_names(tmp_path)) == 2


@pytest.mark.parametrize("tag", ["../escape", "a/b", ".hidden", "", "x" * 65, "sp ace"])
def test_bad_tags_rejected(tmp_path, tag):
    with pytest.raises(HisaBenchError, match="--tag"):
        RunFolder(tmp_path / "runs", "speed", tag)
    assert not (tmp_path / "runs").exists() and _names(tmp_path) == []


def test_unwritable_parent_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HisaBenchError, match="cannot create a run folder"):
        RunFolder(blocker / "runs", "speed")


def test_permissions_follow_umask(tmp_path, umask022):
    with RunFolder(tmp_path, "speed") as run:
        run.json("env.json", {})
        run.csv("speed.csv", pd.DataFrame({"x": [1]}))
        folder = run.commit()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755          # mkdtemp alone would give 0700
    for name in ("env.json", "speed.csv"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644   # mkstemp alone gives 0600
    os.umask(0o027)
    p = atomic_write_text(tmp_path / "other.txt", "x")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_umask_reading_leaves_umask_alone(umask022):
    assert results._umask() == 0o022
    assert os.umask(0o022) == 0o022


def test_atomic_write_success_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"k": [1, 2]})
    write_json(target, {"k": [3]})                 # replacing an existing file
    assert target.read_text() == '{\n "k": [\n  3\n ]\n}\n'
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
    write_csv(tmp_path / "sub" / "c.csv", pd.DataFrame({"a": [1]}))
    assert _names(tmp_path / "sub") == ["a.json", "b.bin", "c.csv"]


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")

    class Unserialisable:
        def __str__(self):
            raise ValueError("cannot format")

    with pytest.raises(ValueError):
        write_json(target, {"x": Unserialisable()})      # fails before any file is touched
    assert target.read_text() == "old"

    # fail while the temporary file exists: writing to a folder's name
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "dir.json", "new")
    assert _names(tmp_path) == ["a.json", "dir.json"]
    assert _names(tmp_path / "dir.json") == []


def test_atomic_write_interrupted_mid_write(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.os, "replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    monkeypatch.setattr(results.os, "replace", real_replace)
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["a.txt"]


def test_sigterm_removes_temporary(tmp_path):
    """`timeout` sends SIGTERM: the temporary folder goes, the exit code says so."""
    code = ("import os, signal, sys, time\n"
            "from hisa_bench.results import RunFolder\n"
            f"with RunFolder({str(tmp_path)!r}, 'speed') as run:\n"
            "    run.json('env.json', {})\n"
            "    print('ready', flush=True)\n"
            "    time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert p.stdout.readline().strip() == "ready"
    assert any(n.startswith(".tmp-speed-") for n in _names(tmp_path))
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM
    assert _names(tmp_path) == []
