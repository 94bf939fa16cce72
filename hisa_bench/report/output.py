"""Write the report's pages: one multi-page PDF and one PNG per page, byte-identical for identical
inputs. Every file is rendered in memory and then written atomically (temporary name + rename)."""
from __future__ import annotations

import io
import os
import re
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages

from ..errors import HisaBenchError
from ..results import atomic_write_bytes
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
                       r"|needle|inputs|topk)(-\d+)?\.png$")


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


def _write(path: Path, data: bytes, mode: int) -> Path:
    # The atomic writer's temporary files are private (0600); a report is meant to be shared, so it
    # gets the permissions an ordinary new file would have.
    atomic_write_bytes(path, data)
    os.chmod(path, mode)
    return path


def write_pages(pages, out_dir, on_page=None) -> tuple[Path, list[Path]]:
    """pages: [(name, figure)] in report order. Writes <out>/report.pdf and <out>/figures/<name>.png,
    and removes PNGs of page names this report no longer has (they would describe other runs)."""
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    try:
        fig_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HisaBenchError(f"cannot create the report folder {fig_dir}: {e.strerror}") from None
    written = []
    mode = 0o666 & ~_umask()
    try:
        for name, fig in pages:
            written.append(_write(fig_dir / f"{name}.png", render_png(fig), mode))
            # The layout is settled by the PNG's draw; the PDF reuses it instead of solving it again.
            fig.set_layout_engine("none")
            if on_page:
                on_page(name)
        pdf = _write(out_dir / "report.pdf", render_pdf([fig for _, fig in pages]), mode)
    except OSError as e:
        raise HisaBenchError(f"cannot write the report in {out_dir}: {e.strerror or e}") from None
    keep = {p.name for p in written}
    for old in sorted(fig_dir.iterdir()):
        if PAGE_NAME.match(old.name) and old.name not in keep:
            old.unlink()
    return pdf, written
