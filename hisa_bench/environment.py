"""The environment stamp written beside every result: what ran, where, and how it was timed."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd=None):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=cwd)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit():
    # A copy of the tree shipped to a GPU machine may have no .git, or a stale one (seen: a copy
    # whose .git was a day older than its files stamped that older commit): the caller who knows
    # says which commit the files are, and that wins.
    if os.environ.get("HISA_BENCH_GIT_COMMIT"):
        return os.environ["HISA_BENCH_GIT_COMMIT"]
    commit = _run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT)
    if commit is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT)
    return commit + ("-dirty" if dirty else "")


def gpu_info():
    """Name, driver, clocks and memory of GPU 0, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    info = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "driver": None,
        "clocks": None,
    }
    smi = _run(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.mem,clocks.max.sm",
                "--format=csv,noheader,nounits", "-i", "0"])
    if smi:
        parts = [p.strip() for p in smi.split(",")]
        info["driver"] = parts[0]
        if len(parts) >= 4:
            info["clocks"] = {"sm_mhz": parts[1], "mem_mhz": parts[2], "sm_max_mhz": parts[3]}
    return info


def _command_line():
    """The command as the user would type it: `hisa-bench ...` however the CLI was started."""
    args = [shlex.quote(a) for a in sys.argv[1:]]
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    if prog in ("cli.py", "__main__.py", "hisa-bench") or prog.startswith("hisa_bench"):
        return " ".join(["hisa-bench"] + args)
    return " ".join([shlex.quote(prog)] + args)


def stamp(command=None, timing=None, device=None):
    """A JSON-ready dict: GPU, driver, clocks, versions, commit, command, timing settings."""
    import torch
    import triton

    from kernels import _runtime

    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "gpu": gpu_info(),
        "device": device or _runtime.DEVICE,
        "kernels": "interpreted (TRITON_INTERPRET=1)" if _runtime.INTERPRETED else "compiled",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "command": command if command is not None else _command_line(),
        "timing": timing or {},
        "env": {k: os.environ[k] for k in ("TRITON_INTERPRET", "CUDA_VISIBLE_DEVICES") if k in os.environ},
    }
