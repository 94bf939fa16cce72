"""One exception type for every problem a user can cause. The CLI prints its message on one line
and exits non-zero; nothing else should reach the user as a traceback."""


class HisaBenchError(Exception):
    """A user-facing problem: the message names what is wrong and what was expected."""

    exit_code = 2


class NoGpuError(HisaBenchError):
    exit_code = 3
