"""Context lengths as users type them: 32k, 32K, 32768, 1m (k = 1024, m = 1024 * 1024)."""
from __future__ import annotations

import re

from .errors import HisaBenchError

_ITEM = re.compile(r"^(\d+)([kKmM]?)$")
_MULT = {"": 1, "k": 1024, "m": 1024 * 1024}


def parse_length(item: str) -> int:
    text = item.strip()
    m = _ITEM.match(text)
    if not m or int(m.group(1)) == 0:
        raise HisaBenchError(f"length {item.strip()!r}: expected a positive integer with an optional "
                             f"k or m suffix (e.g. 32k, 32768, 1m)")
    return int(m.group(1)) * _MULT[m.group(2).lower()]


def parse_lengths(text: str) -> list[int]:
    """'4k,8K,16384' -> [4096, 8192, 16384], in the order given, duplicates dropped."""
    if text is None or not str(text).strip():
        raise HisaBenchError("lengths: expected a comma-separated list such as 4k,8k,16k, got nothing")
    out = []
    for item in str(text).split(","):
        n = parse_length(item)
        if n not in out:
            out.append(n)
    return out


__all__ = ["parse_length", "parse_lengths"]
