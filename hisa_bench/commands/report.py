"""`hisa-bench report`: the PDF and PNG figures of saved run folders (docs/report.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer):
    @app.command("report")
    def report(
        run_dirs: Optional[List[Path]] = typer.Argument(
            None, metavar="RUN_DIR",
            help="Run folders to read, at most one per kind (speed, iou, needle). Default: every run folder in "
                 "--runs, each page from the newest that has its data."),
        out: str = typer.Option("reports", "--out", help="Where report.pdf and figures/*.png go."),
        runs: str = typer.Option("reports/runs", "--runs", help="Where to look for run folders when none "
                                                               "are named."),
        fmt: str = typer.Option("text", "--format", help="text, or json (stdout then holds only the list of "
                                "files written, pages and notes)."),
    ):
        """Draw reports/report.pdf and one PNG per page from saved result folders. Reads files only:
        never times, never needs a GPU."""
        from ..errors import check_format, path_option

        check_format(fmt)
        out_dir, runs_dir = path_option(out, "--out"), path_option(runs, "--runs")
        # Imported here: `hisa-bench --help` and the other commands must not pay for matplotlib.
        from ..progress import progress_bar

        from ..report import build_report

        with progress_bar() as progress:
            task = progress.add_task("drawing report pages", total=None)
            result = build_report(
                run_dirs or (), runs_dir=runs_dir, out_dir=out_dir,
                on_total=lambda n: progress.update(task, total=n),
                on_page=lambda name: progress.update(task, advance=1, description=f"drawing {name}"))
        for note in result.notes:
            print(f"hisa-bench report: note: {note}", file=sys.stderr)
        if fmt == "json":
            print(json.dumps({"pdf": str(result.pdf), "pngs": [str(p) for p in result.pngs],
                              "pages": [name for name, _ in result.pages],
                              "runs": {k: str(r.path) for k, r in result.runs.items()},
                              "notes": result.notes}, indent=1))
            return
        print(f"wrote {result.pdf} ({len(result.pages)} pages) and {len(result.pngs)} PNGs in {out_dir / 'figures'}")
