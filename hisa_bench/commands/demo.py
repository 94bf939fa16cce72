"""`hisa-bench demo`: the whole flow on a default that works anywhere.

speed -> iou (on the captured SmolLM2 dump shipped in the repo) -> needle -> report, all into
reports/demo/. Without a GPU it is CPU-sized and runs the kernels through the Triton interpreter;
every timing it prints is labelled as such. With a GPU it times real sizes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..environment import REPO_ROOT

DUMP = REPO_ROOT / "reports" / "dumps" / "smollm2-135m.pt"


def register(app: typer.Typer):
    @app.command("demo")
    def demo(
        out: str = typer.Option("reports/demo", help="Where the demo's run folders and report go."),
        device: str = typer.Option("auto", help="auto (cuda when present), cuda or cpu."),
    ):
        """End-to-end demo: time flat vs HISA, measure fidelity on real captured tensors, plant
        needles, and render a report into reports/demo/."""
        import torch

        from ..cli import app as root
        from ..errors import HisaBenchError, path_option

        out = path_option(out, "--out")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cuda", "cpu"):
            raise HisaBenchError(f"--device must be auto, cuda or cpu, got {device!r}")
        runs = out / "runs"
        say = lambda msg: print(f"\n== {msg}", file=sys.stderr, flush=True)  # noqa: E731
        if device == "cpu":
            say("speed (no GPU: tiny shapes through the Triton interpreter; these timings say nothing about a GPU)")
            speed = ["speed", "--device", "cpu", "--mode", "chunk,decode", "--lengths", "512,1k", "--batch", "4",
                     "--rep-ms", "1"]
        else:
            say("speed (GPU)")
            speed = ["speed", "--mode", "chunk,decode", "--lengths", "8k,32k,128k", "--batch", "64"]
        _call(root, speed + ["--out", str(runs)])
        say(f"fidelity of HISA and block-sparse against flat on captured SmolLM2-135M tensors ({DUMP.name})")
        _call(root, ["iou", "--dump", str(DUMP), "--topk", "256", "--block-size", "32", "--blocks", "16",
                     "--out", str(runs), "--device", device])
        say("needle in a haystack")
        needle = ["needle", "--lengths", "2k,4k", "--depths", "0,0.25,0.5,0.75,1", "--trials", "2", "--topk", "256",
                  "--block-size", "32", "--blocks", "16", "--heads", "4", "--dim", "64"]
        _call(root, needle + ["--out", str(runs), "--device", device])
        say("report")
        _call(root, ["report", "--runs", str(runs), "--out", str(out)])
        print(f"\ndemo done: {out / 'report.pdf'} and {out / 'figures'}/", file=sys.stderr)


def _call(app, args):
    """Run one step; stop the demo when it fails or is interrupted. Typer hands a Ctrl-C inside a
    step back as the return value 130 instead of raising it: raise it again, so the demo stops."""
    try:
        rv = app(args=args, standalone_mode=False)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
        return
    if rv == 130:
        raise KeyboardInterrupt
    if isinstance(rv, int) and rv != 0:
        raise SystemExit(rv)
