"""The `hisa-bench` command line. Each command lives in hisa_bench/commands/<name>.py and registers
itself on the app; this module only assembles them and turns every expected failure into one line
on stderr and a non-zero exit code."""
from __future__ import annotations

import importlib
import sys

import typer

from .errors import HisaBenchError

app = typer.Typer(
    name="hisa-bench",
    help="Speed and fidelity of the hierarchical (HISA) indexer against the flat DSA lightning indexer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root():
    """Speed and fidelity of the hierarchical (HISA) indexer against the flat DSA lightning indexer."""


# Order here is the order in --help.
COMMANDS = ["demo", "speed", "iou", "generate", "needle", "capture", "quality", "report", "env"]
for _name in COMMANDS:
    try:
        importlib.import_module(f"hisa_bench.commands.{_name}").register(app)
    except ModuleNotFoundError as _e:  # a command whose module is not there yet
        if _e.name != f"hisa_bench.commands.{_name}":
            raise


def fail(message: str, code: int = 2):
    print(f"hisa-bench: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _click():
    try:   # newer typer vendors its own click
        from typer import _click as click_module
    except ImportError:
        import click as click_module
    return click_module


def main(argv=None):
    click = _click()
    try:
        rv = app(args=argv, standalone_mode=False)
    except click.exceptions.UsageError as e:   # unknown option, bad value: one line, not a panel
        if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:
            print(e.ctx.get_help())
            raise SystemExit(0)
        fail(e.format_message().replace("\n", " "), 2)
    except HisaBenchError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except MemoryError:
        fail("out of host memory: try shorter lengths or fewer queries", 4)
    except Exception as e:  # torch's CUDA out-of-memory has its own class
        if type(e).__name__ == "OutOfMemoryError":
            fail("out of GPU memory: try shorter lengths, fewer queries or a smaller batch", 4)
        raise
    raise SystemExit(rv if isinstance(rv, int) else 0)   # as click's standalone mode does


if __name__ == "__main__":
    main()
