"""Terminal tables that fit the terminal: a command describes its columns once (a list of Column
specs), the default set fits 80 columns, `--wide` adds the rest, and numbers are never cut: a
numeric column is exactly as wide as its widest cell, only text columns wrap. CSV and JSON output
always carry every column; these tables are for reading."""
from __future__ import annotations

import os

from dataclasses import dataclass
from typing import Callable

PIPED_WIDTH = 200   # a pipe has no width: wide enough that --wide tables stay on one line per row


@dataclass
class Column:
    header: str
    cell: Callable[[dict], str]     # row -> the cell's text
    numeric: bool = True            # numbers align right and never wrap or shrink
    wide: bool = False              # shown only with --wide


def fmt(x, digits=4) -> str:
    """A fixed-point figure, or '-' for a missing one."""
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def sig(x, digits=3) -> str:
    """A rate with `digits` significant digits whatever its size (0.00123, 12.3, 941), never '0' for
    a small non-zero value."""
    if x is None or x != x:
        return "-"
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    if "e" in text:   # 1.23e-05 is a number too, but people read 0.0000123 less badly than nothing
        text = f"{x:.{digits - 1}e}"
    return text


def console_for_tables(wide: bool = False):
    """The terminal's console; a pipe gets a fixed wide one (rich would otherwise assume 80). --wide
    asks for every column: lines longer than the terminal then, rather than columns dropped."""
    from rich.console import Console

    console = Console()
    if wide:
        return Console(width=max(console.width, PIPED_WIDTH))
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(width=PIPED_WIDTH)


def build(title: str, columns: list[Column], rows: list[dict], *, wide: bool = False,
          section_key: str | None = None, caption: str | None = None):
    """A printable group: the title line, a rich Table of the chosen columns, the caption line.
    section_key: a row field whose change draws a rule."""
    from rich import box
    from rich.table import Table

    shown = [c for c in columns if wide or not c.wide]
    cells = [[c.cell(r) for c in shown] for r in rows]
    # No vertical rules: two spaces between columns is what lets the default set fit 80 columns.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for i, c in enumerate(shown):
        if c.numeric:
            width = max([len(row[i]) for row in cells] + [len(c.header)])
            table.add_column(c.header, justify="right", no_wrap=True, min_width=width)
        else:
            table.add_column(c.header, justify="left", overflow="fold")
    for n, (r, row) in enumerate(zip(rows, cells)):
        last = n + 1 == len(rows) or (section_key is not None and rows[n + 1].get(section_key) != r.get(section_key))
        table.add_row(*row, end_section=last and section_key is not None)
    # Title and caption as lines of their own: inside the table they would wrap at the table's width,
    # which is narrower than the terminal.
    from rich.console import Group
    from rich.text import Text

    parts = [Text(title, style="italic")] if title else []
    parts.append(table)
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def print_table(table, console=None):
    (console or console_for_tables()).print(table)


def wide_hint(columns: list[Column], wide: bool) -> str | None:
    hidden = [c.header for c in columns if c.wide]
    if wide or not hidden:
        return None
    return f"more columns with --wide ({', '.join(hidden)}); every column is in --format csv/json"


__all__ = ["Column", "build", "console_for_tables", "fmt", "print_table", "sig", "wide_hint"]
