"""Write the report's pages: one multi-page PDF and one PNG per page, byte-identical for identical
inputs. The whole report is rendered into a temporary folder, then renamed into place."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages

from ..errors import HisaBenchError
from .style import PNG_DPI

# No creation or modification date: the same inputs must give the same bytes.
PDF_METADATA = {
    "Title": "hisa-bench report",
    "Creator": "hisa-bench report",
    "Producer": "hisa-bench report (matplotlib)",
    "CreationDate": None,
    "ModDate": None,
}
PNG_METADATA = {"Software": "hisa-bench report"}
# PNGs of earlier reports that this report may replace (see write_pages: stale ones are removed).
PAGE_NAME = re.compile(r"^(summary|environment|latency|speedup|stages|throughput|iou_layers|iou_position|grid"
                       r"|needle|inputs|topk|quality_ppl_k|quality_layers|quality_stage1)(-\d+)?\.png$")


def render_pdf(figures) -> bytes:
    buf = io.BytesIO()
    with PdfPages(buf, metadata=PDF_METADATA) as pdf:
        for fig in figures:
            pdf.savefig(fig)
    return buf.getvalue()


def render_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata=PNG_METADATA)
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _interrupt_deferred():
    """Hold Ctrl-C back for the few renames that swap the new report in, then raise it: the report is
    then either all old or all new, never half of each."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def write_pages(pages, out_dir, on_page=None) -> tuple[Path, list[Path]]:
    """pages: [(name, figure)] in report order. Writes <out>/report.pdf and <out>/figures/<name>.png
    as a whole: everything is rendered into a hidden temporary folder in <out>, then the new figures/
    folder and report.pdf are renamed into place together. An interrupted or failed report leaves the
    previous one untouched. PNGs of page names this report no longer has are not carried over (they
    would describe other runs); other files in figures/ are."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-report-", dir=out_dir))
    except OSError as e:
        raise HisaBenchError(f"cannot create the report folder {out_dir}: {e.strerror or e}") from None
    mode = 0o666 & ~_umask()
    try:
        new_figs = staging / "figures"
        new_figs.mkdir()
        os.chmod(new_figs, 0o777 & ~_umask())
        names = []
        for name, fig in pages:
            (new_figs / f"{name}.png").write_bytes(render_png(fig))
            os.chmod(new_figs / f"{name}.png", mode)
            names.append(f"{name}.png")
            # The layout is settled by the PNG's draw; the PDF reuses it instead of solving it again.
            fig.set_layout_engine("none")
            if on_page:
                on_page(name)
        (staging / "report.pdf").write_bytes(render_pdf([fig for _, fig in pages]))
        os.chmod(staging / "report.pdf", mode)
        if fig_dir.is_dir():
            for old in sorted(fig_dir.iterdir()):
                # a page drawn now is never replaced by its old copy, whatever its name
                if old.is_file() and not PAGE_NAME.match(old.name) and old.name not in names:
                    shutil.copy2(old, new_figs / old.name)
        elif fig_dir.exists():
            raise HisaBenchError(f"cannot write the report: {fig_dir} is a file, expected a folder")
        with _interrupt_deferred():
            if fig_dir.is_dir():
                os.rename(fig_dir, staging / "old-figures")
            os.rename(new_figs, fig_dir)
            os.replace(staging / "report.pdf", out_dir / "report.pdf")
    except OSError as e:
        raise HisaBenchError(f"cannot write the report in {out_dir}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "report.pdf", [fig_dir / n for n in names]
