"""Find and read saved run folders (docs/results-format.md). Nothing here times, imports kernels or
touches a GPU: the report is built from files alone.

Every problem with a file a run folder must hold (missing, unreadable, not JSON/CSV, a required
column absent, text in a numeric column) raises HisaBenchError naming that file. Optional files
and empty tables are not errors: the loaded run records what it lacks in `missing`, and the figures
that need it say so instead of drawing."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import HisaBenchError
from ..results import timed

KINDS = ("speed", "topk", "iou", "needle")
# <kind>-<UTC yyyymmdd-HHMMSS>[-tag]; RunFolder may append -2, -3 on a clash.
RUN_NAME = re.compile(r"^(speed|iou|needle)-(\d{8}-\d{6})(?:-(.+))?$")

# Columns each table must have for any figure to be drawn; the rest are optional.
SPEED_REQUIRED = ("mode", "length", "backend", "status", "median_ms")
SPEED_NUMERIC = ("length", "batch", "median_ms", "p20_ms", "p80_ms", "tflops", "gbps", "speedup", "pool_update_ms")
# Shape columns: a word there (say blocks = "auto") is not a corrupt file; it only means that the
# figures cannot match rows by that number, so those cells become empty and the report says so.
SPEED_SHAPE = ("queries", "flops", "peak_mem_gb", "heads", "dim", "topk", "block_size", "blocks")
LAYERS_REQUIRED = ("block_size", "blocks", "method", "layer", "iou_mean")
LAYERS_NUMERIC = ("block_size", "blocks", "queries", "trivial", "iou_mean", "iou_p1", "iou_p5", "iou_min",
                  "recall_mean", "score_recall_mean", "top1_recall", "top16_recall", "top128_recall")
PER_QUERY_REQUIRED = ("block_size", "blocks", "method", "layer", "q_pos", "iou")
PER_QUERY_NUMERIC = ("block_size", "blocks", "query", "q_pos", "visible", "iou", "recall", "score_recall",
                     "top1_recall", "top16_recall", "top128_recall")
GRID_REQUIRED = ("block_size", "blocks", "speedup")
GRID_NUMERIC = ("block_size", "blocks", "hisa_ms", "flat_ms", "speedup")
NEEDLE_REQUIRED = ("method", "length", "depth")
NEEDLE_NUMERIC = ("length", "depth", "kept", "rank", "trials", "kept_rate")


def gpu_label(env: dict) -> str:
    """The GPU a run was made on (from its env.json), or where it ran instead."""
    gpu = env.get("gpu")
    if isinstance(gpu, dict) and gpu.get("name"):
        return str(gpu["name"])
    return f"no GPU ({env.get('device') or 'cpu'})"


@dataclass
class Run:
    """One run folder: its kind, path, environment stamp and tables."""

    kind: str
    path: Path
    env: dict
    tables: dict = field(default_factory=dict)     # name -> DataFrame
    meta: dict = field(default_factory=dict)       # parsed JSON beside the tables (speed.json, iou.json)
    missing: list = field(default_factory=list)    # human-readable notes on what this run lacks

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def gpu(self) -> str:
        return gpu_label(self.env)

    @property
    def on_gpu(self) -> bool:
        return isinstance(self.env.get("gpu"), dict) and self.env.get("device") == "cuda"


def _read_json(path: Path) -> object:
    if not path.is_file():
        raise HisaBenchError(f"missing result file {path}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise HisaBenchError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise HisaBenchError(f"corrupt JSON in {path}: {e.msg} at line {e.lineno} column {e.colno}") from None


def _read_csv(path: Path, required, numeric, optional=False, lenient=(), notes=None) -> pd.DataFrame | None:
    """Read a results CSV; check required columns and that numeric columns hold numbers (empty cells
    are allowed: failed rows leave their timing columns empty). Text in a `lenient` column becomes an
    empty cell and a line in `notes`."""
    if not path.is_file():
        if optional:
            return None
        raise HisaBenchError(f"missing result file {path}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise HisaBenchError(f"cannot read {path}: {e}") from None
    if not text.strip():
        raise HisaBenchError(f"corrupt CSV {path}: the file is empty (not even a header)")
    try:
        # Text columns stay text ('note' may hold anything); numbers are converted below, per column.
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HisaBenchError(f"corrupt CSV {path}: {first}") from None
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise HisaBenchError(f"{path} lacks the column(s) {', '.join(absent)} (see docs/results-format.md)")
    # Per-stage medians (stage_<name>_ms) are numeric too; their names depend on the backend.
    stages = [c for c in frame.columns if c.startswith("stage_") and c.endswith("_ms")]
    for col in [c for c in numeric if c in frame.columns] + stages:
        raw = frame[col].str.strip()
        values = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
        bad = values.isna() & (raw != "")
        if bad.any():
            row = int(bad.idxmax())
            raise HisaBenchError(
                f"corrupt CSV {path}: column {col!r} holds {frame[col][row]!r} on data row {row + 1}, not a number")
        frame[col] = values.astype(float)
    for col in [c for c in lenient if c in frame.columns]:
        raw = frame[col].str.strip()
        values = pd.to_numeric(raw.where(raw != "", None), errors="coerce")
        words = sorted(set(raw[values.isna() & (raw != "")]))
        if words and notes is not None:
            notes.append(f"{path.parent.name}/{path.name}: column {col!r} holds {', '.join(map(repr, words[:3]))}, "
                         "not numbers; those cells are treated as empty")
        frame[col] = values.astype(float)
    return frame


def kind_of(path: Path) -> str:
    """The kind of a run folder: from its name, else from the files it holds."""
    m = RUN_NAME.match(path.name)
    if m:
        return m.group(1)
    for kind, marker in (("speed", "speed.csv"), ("iou", "iou.json"), ("needle", "needle.csv")):
        if (path / marker).is_file():
            return kind
    raise HisaBenchError(
        f"{path} is not a run folder: its name does not start with speed-, iou- or needle- and it holds "
        "none of speed.csv, iou.json, needle.csv")


def _speed_kind(path: Path) -> str:
    """A speed folder of `--mode topk` alone is its own kind of run: the row top-k timed by itself
    (its page is the topk page; the newest chunk/prefill/decode sweep is still read beside it)."""
    try:
        config = json.loads((path / "speed.json").read_text()).get("config") or {}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return "speed"           # loading it reports what is wrong
    return "topk" if isinstance(config, dict) and config.get("modes") == ["topk"] else "speed"


def load_run(path) -> Run:
    path = Path(path)
    if not path.exists():
        raise HisaBenchError(f"run folder {path} does not exist")
    if not path.is_dir():
        raise HisaBenchError(f"{path} is not a run folder (a file, not a folder)")
    kind = kind_of(path)
    env = _read_json(path / "env.json")
    if not isinstance(env, dict):
        raise HisaBenchError(f"corrupt {path / 'env.json'}: expected a JSON object (the environment stamp)")
    if kind == "speed":
        kind = _speed_kind(path)
    run = Run(kind=kind, path=path, env=env)
    {"speed": _load_speed, "topk": _load_speed, "iou": _load_iou, "needle": _load_needle}[kind](run)
    return run


def _load_speed(run: Run):
    meta = _read_json(run.path / "speed.json")
    if not isinstance(meta, dict):
        raise HisaBenchError(f"corrupt {run.path / 'speed.json'}: expected an object with 'config' and 'rows'")
    run.meta["speed"] = meta
    rows = _read_csv(run.path / "speed.csv", SPEED_REQUIRED, SPEED_NUMERIC, lenient=SPEED_SHAPE, notes=run.missing)
    for col, default in (("batch", 1.0), ("baseline", "flat")):
        if col not in rows.columns:
            rows[col] = default
    rows["batch"] = rows["batch"].fillna(1.0)
    run.tables["speed"] = rows
    ok = rows[rows["status"].map(timed)]
    if rows.empty:
        run.missing.append(f"{run.name}: speed.csv has no rows")
    elif ok.empty:
        run.missing.append(f"{run.name}: no row was timed (status ok or unchecked)")
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    requested = config.get("modes") if isinstance(config.get("modes"), list) else None
    for mode in ("chunk", "prefill", "decode") if requested != ["topk"] else ():
        if ok.empty or (ok["mode"].str.strip() == mode).any():
            continue   # (no ok row at all is said once, above)
        if requested is not None and mode not in requested:
            run.missing.append(f"{run.name}: no {mode} rows (not requested)")
        elif (rows["mode"].str.strip() == mode).any():
            run.missing.append(f"{run.name}: no {mode} row was timed (status ok or unchecked)")
        else:
            run.missing.append(f"{run.name}: no {mode} rows")


def _load_iou(run: Run):
    meta = _read_json(run.path / "iou.json")
    if not isinstance(meta, dict) or not ("runs" in meta or "layers" in meta):
        raise HisaBenchError(f"corrupt {run.path / 'iou.json'}: expected an object with 'layers' or 'runs'")
    run.meta["iou"] = meta
    run.tables["layers"] = _read_csv(run.path / "layers.csv", LAYERS_REQUIRED, LAYERS_NUMERIC)
    run.tables["per_query"] = _read_csv(run.path / "per_query.csv", PER_QUERY_REQUIRED, PER_QUERY_NUMERIC)
    grid = _read_csv(run.path / "speed_grid.csv", GRID_REQUIRED, GRID_NUMERIC, optional=True)
    if grid is not None:
        run.tables["speed_grid"] = grid
    if run.tables["layers"].empty:
        run.missing.append(f"{run.name}: layers.csv has no rows")
    if run.tables["per_query"].empty:
        run.missing.append(f"{run.name}: per_query.csv has no rows")


def _load_needle(run: Run):
    if (run.path / "needle.json").is_file():   # optional: its config goes on the environment page
        meta = _read_json(run.path / "needle.json")
        if isinstance(meta, dict):
            run.meta["needle"] = meta
    table = _read_csv(run.path / "needle.csv", NEEDLE_REQUIRED, NEEDLE_NUMERIC)
    if "kept_rate" not in table.columns and "kept" not in table.columns:
        raise HisaBenchError(f"{run.path / 'needle.csv'} lacks both kept_rate and kept (see docs/results-format.md)")
    run.tables["needle"] = table
    if table.empty:
        run.missing.append(f"{run.name}: needle.csv has no rows")


def latest_runs(runs_dir) -> list[Path]:
    """The newest run folder of each kind under runs_dir (the name carries the UTC time, so sorting
    by name sorts by time); hidden temporary folders of unfinished runs are skipped."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise HisaBenchError(
            f"no run folders: {runs_dir} does not exist (run hisa-bench speed, iou or needle first, "
            "or name run folders as arguments)")
    newest: dict[str, tuple] = {}
    for entry in sorted(runs_dir.iterdir()):
        m = RUN_NAME.match(entry.name)
        if not m or not entry.is_dir():
            continue
        key = (m.group(2), entry.name)
        kind = _speed_kind(entry) if m.group(1) == "speed" else m.group(1)
        if kind not in newest or key > newest[kind][0]:
            newest[kind] = (key, entry)
    if not newest:
        raise HisaBenchError(
            f"no run folders in {runs_dir} (expected speed-*, iou-* or needle-*; run hisa-bench speed, "
            "iou or needle first)")
    return [newest[k][1] for k in KINDS if k in newest]


def all_runs(runs_dir) -> list[Path]:
    """Every run folder under runs_dir, grouped by kind (speed, iou, needle), newest first within a
    kind; hidden temporary folders of unfinished runs are skipped."""
    latest_runs(runs_dir)   # the same errors for a missing or empty folder
    found = []
    for entry in Path(runs_dir).iterdir():
        m = RUN_NAME.match(entry.name)
        if m and entry.is_dir():
            found.append((KINDS.index(m.group(1)), m.group(2), entry.name, entry))
    found.sort(key=lambda t: (t[0], t[1], t[2]))
    out = []
    for kind in range(len(KINDS)):
        out += [t[3] for t in reversed([t for t in found if t[0] == kind])]
    return out


def load_runs(paths) -> dict[str, Run]:
    """Load the given run folders, one per kind, keyed by kind."""
    runs: dict[str, Run] = {}
    for p in sorted(Path(p) for p in paths):
        run = load_run(p)
        if run.kind in runs:
            raise HisaBenchError(
                f"two {run.kind} runs given ({runs[run.kind].path} and {run.path}): pass at most one per kind")
        runs[run.kind] = run
    return {k: runs[k] for k in KINDS if k in runs}
