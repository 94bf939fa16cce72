"""The `hisa-bench` command line. Each command lives in hisa_bench/commands/<name>.py and registers
itself on the app; this module only assembles them and turns every expected failure into one line
on stderr and a non-zero exit code."""
from __future__ import annotations

import importlib
import os
import sys

import typer

from . import __version__
from .errors import HisaBenchError

INTERRUPTED = 130   # 128 + SIGINT, what shells report for Ctrl-C

app = typer.Typer(
    name="hisa-bench",
    help="Speed and fidelity of the hierarchical (HISA) indexer against the flat DSA lightning indexer.",
    no_args_is_help=True,
    add_completion=True,          # --install-completion / --show-completion, as Typer offers them
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool):
    if value:
        print(f"hisa-bench {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", "-V", callback=_show_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Speed and fidelity of the hierarchical (HISA) indexer against the flat DSA lightning indexer."""


# Order here is the order in --help.
COMMANDS = ["demo", "speed", "iou", "quality", "generate", "needle", "capture", "report", "env"]
for _name in COMMANDS:
    try:
        importlib.import_module(f"hisa_bench.commands.{_name}").register(app)
    except ModuleNotFoundError as _e:  # a command whose module is not there yet
        if _e.name != f"hisa_bench.commands.{_name}":
            raise


def _flowing_short_help():
    """The command list shows each docstring's first paragraph; written over several source lines it
    would keep those line breaks at any terminal width. One flowing line wraps to the terminal."""
    for info in app.registered_commands:
        doc = (info.callback.__doc__ or "") if info.callback else ""
        first = doc.strip().split("\n\n")[0]
        if first and info.short_help is None:
            info.short_help = " ".join(first.split())


def _no_type_label_on_flags():
    """Typer labels every option with its type, flags included (`--json <bool>`); a flag takes no
    value, so its label only misleads. Guarded: the hook is Typer's, and may move."""
    try:
        from typer.core import TyperOption
    except ImportError:
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_hisa_bench", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
            return None
        return original(self, ctx)

    display_type_rich._hisa_bench = True
    TyperOption.display_type_rich = display_type_rich


_flowing_short_help()
_no_type_label_on_flags()


def fail(message: str, code: int = 2):
    print(f"hisa-bench: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def interrupted():
    print("hisa-bench: interrupted", file=sys.stderr, flush=True)
    raise SystemExit(INTERRUPTED)


def _click():
    try:   # newer typer vendors its own click
        from typer import _click as click_module
    except ImportError:
        import click as click_module
    return click_module


def _abort_class():
    try:   # typer >= 0.20 keeps Abort beside Exit
        from typer.exceptions import Abort
    except ImportError:
        from click.exceptions import Abort
    return Abort


def main(argv=None):
    click = _click()
    abort = _abort_class()
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="hisa-bench")
    except click.exceptions.UsageError as e:   # unknown option, bad value: one line, not a panel
        if type(e).__name__ == "NoArgsIsHelpError":
            # Typer has already printed the help for a bare `hisa-bench`; print nothing more.
            raise SystemExit(0)
        fail(e.format_message().replace("\n", " "), 2)
    except HisaBenchError as e:
        fail(str(e), e.exit_code)
    except (KeyboardInterrupt, abort):
        interrupted()
    except MemoryError:
        fail("out of host memory: try shorter lengths or fewer queries", 4)
    except Exception as e:  # torch's CUDA out-of-memory has its own class
        if type(e).__name__ == "OutOfMemoryError":
            fail("out of GPU memory: try shorter lengths, fewer queries or a smaller batch", 4)
        raise
    # Typer turns Ctrl-C inside a command into a return value of 130, silently.
    if rv == INTERRUPTED:
        interrupted()
    raise SystemExit(rv if isinstance(rv, int) else 0)   # as click's standalone mode does


def script():
    """The console entry point (`hisa-bench`, `python -m hisa_bench`): main(), and after Ctrl-C an
    immediate exit with 130 once the output is flushed. Measured: with a normal exit, about one real
    SIGINT in six (tests/test_newcomer.py) ended the process by the signal (status -2) after it had
    printed its one line, somewhere in the interpreter's shutdown (not pinned down); with this exit,
    24 of 24 ended with 130. Every context manager (the run folder's clean-up included) has finished
    by the time main() raises."""
    try:
        main()
    except SystemExit as e:
        if e.code == INTERRUPTED:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(INTERRUPTED)
        raise


if __name__ == "__main__":
    script()
