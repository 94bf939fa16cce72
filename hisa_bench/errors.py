"""One exception type for every problem a user can cause. The CLI prints its message on one line
and exits non-zero; nothing else should reach the user as a traceback."""


class HisaBenchError(Exception):
    """A user-facing problem: the message names what is wrong and what was expected."""

    exit_code = 2


class NoGpuError(HisaBenchError):
    exit_code = 3


class RowsFailed(HisaBenchError):
    """Some measured rows failed (error or failed-accuracy): the run folder and the output were
    written, and the command exits non-zero so that scripts and CI notice."""

    exit_code = 4


def path_option(value, option: str):
    """A path given on the command line; an empty string is an error (as a Path it would silently
    mean the current folder)."""
    from pathlib import Path

    if value is None:
        return None
    if not str(value).strip():
        raise HisaBenchError(f"{option}: expected a path, got an empty string")
    return Path(value)


def check_format(fmt: str, allowed=("text", "json")) -> str:
    if fmt not in allowed:
        raise HisaBenchError(f"--format: expected {' or '.join(allowed)}, got {fmt!r}")
    return fmt
