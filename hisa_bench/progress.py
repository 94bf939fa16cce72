"""The one progress bar every long command shows: on stderr (stdout may hold data), gone when done,
and off when stderr is not a terminal (there rich would only leave a stray blank line)."""
from __future__ import annotations


def progress_bar(description: str = "{task.description}"):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not console.is_terminal)
