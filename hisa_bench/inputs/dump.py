"""Read, write and validate indexer dumps (docs/dump-format.md, version 1).

A dump is a plain dict saved with torch.save and loaded with torch.load(weights_only=True), so a
dump can never run code. Every rule of the format is checked on load and on save; a broken file is
reported in one line that names the file, the layer, the key and what was expected.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import torch

from ..errors import HisaBenchError
from ..results import atomic_write_bytes

FORMAT = "hisa-bench.indexer-dump"
VERSION = 1
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FP8 = torch.float8_e4m3fn
REQUIRED = ("name", "q", "k", "w", "q_pos")


def _dtype_name(dt) -> str:
    return str(dt).replace("torch.", "")


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t.float() if t.dtype == FP8 else t).all())


def _check_layer(i: int, layer, bad):
    if not isinstance(layer, dict):
        bad(f"layer #{i}: expected a dict, got {type(layer).__name__}")
    name = layer.get("name")
    if not isinstance(name, str) or not name:
        bad(f"layer #{i}: key 'name': expected a non-empty str, got {name!r}"
            if "name" in layer else f"layer #{i}: missing key 'name'")
    where = f"layer {name!r}"
    for key in REQUIRED[1:]:
        if key not in layer:
            bad(f"{where}: missing key {key!r}")
        if not isinstance(layer[key], torch.Tensor):
            bad(f"{where}: key {key!r}: expected a tensor, got {type(layer[key]).__name__}")
    q, k, w, q_pos = layer["q"], layer["k"], layer["w"], layer["q_pos"]
    has_scale = "k_scale" in layer
    # fp8 q/k only make sense with the per-key scale that restores their magnitude
    allowed = FLOAT_DTYPES + ((FP8,) if has_scale else ())
    allowed_txt = "float16, bfloat16 or float32" + (" (or float8_e4m3fn)" if has_scale else "")

    if q.dim() != 3:
        bad(f"{where}: key 'q': expected shape [Nq, H, D], got {list(q.shape)}")
    nq, h, d = q.shape
    if nq < 1 or h < 1 or d < 1:
        bad(f"{where}: key 'q': expected Nq, H, D >= 1, got {list(q.shape)}")
    if q.dtype not in allowed:
        bad(f"{where}: key 'q': expected {allowed_txt}, got {_dtype_name(q.dtype)}")
    if k.dim() != 2 or k.shape[1] != d:
        bad(f"{where}: key 'k': expected shape [T, D] with D = {d}, got {list(k.shape)}")
    n_keys = k.shape[0]
    if n_keys < 1:
        bad(f"{where}: key 'k': expected at least one key, got {list(k.shape)}")
    if k.dtype not in allowed:
        bad(f"{where}: key 'k': expected {allowed_txt}, got {_dtype_name(k.dtype)}")
    if tuple(w.shape) != (nq, h):
        bad(f"{where}: key 'w': expected shape [Nq, H] = [{nq}, {h}], got {list(w.shape)}")
    if w.dtype != torch.float32:
        bad(f"{where}: key 'w': expected float32, got {_dtype_name(w.dtype)}")
    if q_pos.dtype != torch.int64 or tuple(q_pos.shape) != (nq,):
        bad(f"{where}: key 'q_pos': expected int64 [{nq}], got {_dtype_name(q_pos.dtype)} {list(q_pos.shape)}")
    if nq > 1 and not bool((q_pos[1:] > q_pos[:-1]).all()):
        j = int(torch.nonzero(q_pos[1:] <= q_pos[:-1])[0, 0]) + 1
        bad(f"{where}: key 'q_pos': expected strictly increasing int64 positions, "
            f"got {int(q_pos[j - 1])} then {int(q_pos[j])} at index {j}")
    lo, hi = int(q_pos.min()), int(q_pos.max())
    if lo < 0 or hi >= n_keys:
        bad(f"{where}: key 'q_pos': expected 0 <= q_pos < T = {n_keys}, got range [{lo}, {hi}]")
    for key, t in (("q", q), ("k", k), ("w", w)):
        if not _finite(t):
            bad(f"{where}: key {key!r}: expected finite values, found NaN or Inf")

    # optional keys: validated when present, anything else is ignored
    if ("ks" in layer) != ("ke" in layer):
        bad(f"{where}: key {'ke' if 'ks' in layer else 'ks'!r}: expected ks and ke together")
    if "ks" in layer:
        for key in ("ks", "ke"):
            t = layer[key]
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or tuple(t.shape) != (nq,):
                got = f"{_dtype_name(t.dtype)} {list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
                bad(f"{where}: key {key!r}: expected int64 [{nq}], got {got}")
        ks, ke = layer["ks"], layer["ke"]
        if bool((ks < 0).any()) or bool((ke > n_keys).any()) or bool((ke <= ks).any()):
            bad(f"{where}: key 'ks'/'ke': expected 0 <= ks < ke <= T = {n_keys} for every query")
    if has_scale:
        s = layer["k_scale"]
        if not isinstance(s, torch.Tensor) or s.dtype != torch.float32 or tuple(s.shape) != (n_keys,):
            got = f"{_dtype_name(s.dtype)} {list(s.shape)}" if isinstance(s, torch.Tensor) else type(s).__name__
            bad(f"{where}: key 'k_scale': expected float32 [{n_keys}], got {got}")
        if not _finite(s) or bool((s <= 0).any()):
            bad(f"{where}: key 'k_scale': expected finite positive values")
    return name


def validate_dump(obj, source: str = "<dump>") -> None:
    """Raise HisaBenchError naming the first rule of the dump format that obj breaks."""
    def bad(msg):
        raise HisaBenchError(f"{source}: {msg}")

    if not isinstance(obj, dict):
        bad(f"expected a dict at the top level, got {type(obj).__name__}")
    if obj.get("format") != FORMAT:
        bad(f"key 'format': expected {FORMAT!r}, got {obj.get('format')!r}")
    if obj.get("version") != VERSION:
        bad(f"key 'version': expected {VERSION}, got {obj.get('version')!r}")
    meta = obj.get("meta")
    if not isinstance(meta, dict):
        bad(f"key 'meta': expected a dict of str -> str/int/float/bool, got {type(meta).__name__}")
    for mk, mv in meta.items():
        if not isinstance(mk, str) or not isinstance(mv, (str, int, float, bool)):
            bad(f"key 'meta': entry {mk!r}: expected str -> str/int/float/bool, got {type(mv).__name__}")
        if isinstance(mv, float) and not math.isfinite(mv):
            bad(f"key 'meta': entry {mk!r}: expected a finite number, got {mv}")
    layers = obj.get("layers")
    if not isinstance(layers, list) or not layers:
        bad("key 'layers': expected a non-empty list of layer dicts"
            + ("" if isinstance(layers, list) else f", got {type(layers).__name__}"))
    seen = set()
    for i, layer in enumerate(layers):
        name = _check_layer(i, layer, bad)
        if name in seen:
            bad(f"layer {name!r}: key 'name': expected unique layer names, {name!r} repeats")
        seen.add(name)


def build_dump(layers: list[dict], meta: dict) -> dict:
    return {"format": FORMAT, "version": VERSION, "meta": dict(meta), "layers": list(layers)}


def save_dump(path, layers: list[dict], meta: dict) -> Path:
    """Validate and write a dump atomically; returns the path written."""
    path = Path(path)
    obj = build_dump(layers, meta)
    validate_dump(obj, source=str(path))
    buf = io.BytesIO()
    torch.save(obj, buf)
    try:
        return atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise HisaBenchError(f"{path}: cannot write the dump: {e.strerror or e}") from None


WHAT_A_DUMP_IS = ("a dump is a dict of tensors saved with torch.save (a zip archive; docs/dump-format.md), read "
                  "with weights_only=True, so pickled code in a file is never run")
_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's pre-1.6 format: a pickle whose first object is this magic number (protocol 2, long1)
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _what_it_is(head: bytes, size: int) -> str | None:
    """What a file that is not a torch.save archive is instead, from its first bytes; None when it
    looks like an archive (a failure to read it then means damage)."""
    if size == 0:
        return "is empty (0 bytes)"
    if head.startswith(_ZIP_MAGIC) or head.startswith(_LEGACY_TORCH_MAGIC):
        return None
    if head[:1] == b"\x80":
        return "is a raw pickle, not a torch.save archive"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        return "is a text file, not a torch.save archive"
    return f"is not a torch.save archive (it starts with bytes {head[:4].hex(' ')})"


def load_dump(path) -> dict:
    """Load a dump with weights_only=True and validate every rule of the format. A file that is not a
    dump gets one line saying what it is instead and what a dump is."""
    import warnings

    path = Path(path)
    if not path.exists():
        raise HisaBenchError(f"{path}: no such file")
    if not path.is_file():
        raise HisaBenchError(f"{path}: not a file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise HisaBenchError(f"{path}: cannot read it: {e.strerror or e}") from None
    instead = _what_it_is(head, size)
    if instead is not None:
        raise HisaBenchError(f"{path}: not a dump: it {instead}; {WHAT_A_DUMP_IS}")
    try:
        with warnings.catch_warnings():   # torch's own warnings say nothing a user can act on here
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign or corrupt files
        text = str(e)
        if "weights_only" in text or "Unsupported global" in text or "Unpickler" in text:
            why = ("holds Python objects other than tensors and plain values, which the safe loader refuses "
                   "(their code was not run)")
        else:
            why = f"is a damaged or truncated torch.save archive ({size} bytes)"
        raise HisaBenchError(f"{path}: not a dump: it {why}; {WHAT_A_DUMP_IS}") from None
    validate_dump(obj, source=str(path))
    return obj


__all__ = ["FORMAT", "VERSION", "save_dump", "load_dump", "validate_dump", "build_dump"]
