"""Result folders: every measuring command writes one run folder; `report` only reads them.

Layout (docs/results-format.md has the columns):
    reports/runs/<kind>-<UTC time>[-<tag>]/env.json      environment stamp
                                           <kind>.json / <kind>.csv / extra files
Every file is written to a temporary name in the same folder, then renamed: a crash never leaves a
half-written result behind. A run folder is itself built under a temporary name and renamed last.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import HisaBenchError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600 files; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def write_csv(path: Path, frame) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False))


class RunFolder:
    """Collect files in a hidden temporary folder; commit() renames it into place atomically."""

    def __init__(self, out_dir, kind: str, tag: str | None = None):
        self.out_dir = Path(out_dir)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = f"{kind}-{stamp}" + (f"-{tag}" if tag else "")
        self.final = self.out_dir / name
        n = 1
        while self.final.exists():
            n += 1
            self.final = self.out_dir / f"{name}-{n}"
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.out_dir))
            os.chmod(self.tmp, 0o777 & ~_umask())
        except OSError as e:
            raise HisaBenchError(f"cannot create a run folder in {self.out_dir}: {e.strerror}") from None

    def path(self, name: str) -> Path:
        return self.tmp / name

    def json(self, name: str, obj) -> Path:
        return write_json(self.tmp / name, obj)

    def csv(self, name: str, frame) -> Path:
        return write_csv(self.tmp / name, frame)

    def commit(self) -> Path:
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        # a run stopped by SIGTERM (e.g. `timeout`) must not leave its temporary folder behind
        try:
            self._old_term = signal.signal(signal.SIGTERM, self._on_term)
        except ValueError:  # not the main thread
            self._old_term = None
        return self

    def _on_term(self, signum, frame):
        self.abort()
        raise SystemExit(128 + signum)

    def __exit__(self, exc_type, exc, tb):
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
        if exc_type is not None:
            self.abort()
        return False
