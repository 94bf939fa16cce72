"""`hisa-bench report`: the PDF and PNG figures of saved run folders (docs/report.md)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer):
    @app.command("report")
    def report(
        run_dirs: Optional[List[Path]] = typer.Argument(
            None, metavar="RUN_DIR",
            help="Run folders to read, at most one per kind (speed, iou, needle). Default: the newest of each kind "
                 "in --runs."),
        out: Path = typer.Option(Path("reports"), "--out", help="Where report.pdf and figures/*.png go."),
        runs: Path = typer.Option(Path("reports/runs"), "--runs", help="Where to look for run folders when none "
                                                                       "are named."),
    ):
        """Draw reports/report.pdf and one PNG per page from saved result folders. Reads files only:
        never times, never needs a GPU."""
        # Imported here: `hisa-bench --help` and the other commands must not pay for matplotlib.
        from ..progress import progress_bar

        from ..report import build_report

        with progress_bar() as progress:
            task = progress.add_task("drawing report pages", total=None)
            result = build_report(
                run_dirs or (), runs_dir=runs, out_dir=out,
                on_total=lambda n: progress.update(task, total=n),
                on_page=lambda name: progress.update(task, advance=1, description=f"drawing {name}"))
        for note in result.notes:
            print(f"hisa-bench report: missing: {note}", file=sys.stderr)
        print(f"wrote {result.pdf} ({len(result.pages)} pages) and {len(result.pngs)} PNGs in {out / 'figures'}")
