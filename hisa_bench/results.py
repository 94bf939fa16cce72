"""Result folders: every measuring command writes one run folder; `report` only reads them.

Layout (docs/results-format.md has the columns):
    reports/runs/<kind>-<UTC time>[-<tag>]/env.json      environment stamp
                                           <kind>.json / <kind>.csv / extra files
Every file is written to a temporary name in the same folder, then renamed: a crash never leaves a
half-written result behind. A run folder is itself built under a temporary name and renamed last.
"""
from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

from .errors import HisaBenchError


# Row statuses of speed runs. Timed rows carry a median; "unchecked" rows were timed with the
# accuracy gate off (--no-check), so nothing vouches for their selections. Failed rows make the
# command exit with RowsFailed's code after writing the run folder (docs/results-format.md).
TIMED_STATUSES = ("ok", "unchecked")
FAILED_STATUSES = ("error", "failed-accuracy")


def timed(status) -> bool:
    return str(status).strip() in TIMED_STATUSES


def _umask() -> int:
    # Linux reports the umask without changing it; os.umask(0) would open a window in which files
    # other threads create get mode 0666
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
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


_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")


def check_tag(tag: str | None) -> None:
    """A tag becomes part of a folder name: no separators, no leading dot (hidden, or '..')."""
    if tag is not None and not _TAG.match(tag):
        raise HisaBenchError(f"--tag {tag!r}: use letters, digits, '.', '_' and '-' (not first), "
                             f"at most 64 characters")


class RunFolder:
    """Collect files in a hidden temporary folder; commit() renames it into place atomically."""

    def __init__(self, out_dir, kind: str, tag: str | None = None):
        check_tag(tag)
        self.out_dir = Path(out_dir)
        self.committed = False
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = self._name = f"{kind}-{stamp}" + (f"-{tag}" if tag else "")
        self.final = self._free_name()
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

    def _free_name(self, n: int = 1) -> Path:
        final = self.out_dir / self._name
        while final.exists():
            n += 1
            final = self.out_dir / f"{self._name}-{n}"
        return final

    def commit(self) -> Path:
        # another run may have taken our name since __init__ (same second, same tag): never rename
        # onto an existing folder (an empty one would be replaced), move on to the next free name
        for _ in range(1000):
            if not self.final.exists():
                try:
                    os.rename(self.tmp, self.final)
                    self.committed = True
                    return self.final
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
            self.final = self._free_name()
        raise HisaBenchError(f"cannot find a free run folder name in {self.out_dir}")

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
        if exc_type is not None or not self.committed:
            self.abort()      # a run that was not committed leaves nothing behind
        return False
