"""Parsing of the comma-list options and the --device choice shared by iou and needle."""
from __future__ import annotations

import torch

from ..errors import HisaBenchError, NoGpuError


def int_list(text: str, option: str) -> list[int]:
    """'128,256' -> [128, 256]; anything else is a one-line error naming the option."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        try:
            value = int(item)
        except ValueError:
            raise HisaBenchError(f"{option}: expected a comma-separated list of integers, got {text!r}") from None
        if value not in out:
            out.append(value)
    return out


def name_list(text: str, option: str, allowed=None) -> list[str]:
    items = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            raise HisaBenchError(f"{option}: empty entry in {text!r}")
        if allowed is not None and item not in allowed:
            raise HisaBenchError(f"{option}: {item!r} is not one of {', '.join(allowed)}")
        if item not in items:
            items.append(item)
    return items


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise NoGpuError("--device cuda: no CUDA GPU is available on this machine (use --device cpu)")
        return torch.device("cuda")
    raise HisaBenchError(f"--device: expected cpu or cuda, got {name!r}")


__all__ = ["int_list", "name_list", "resolve_device"]
