"""The methods a quality run compares: dense, and per top-k: flat, HISA at each (B, m, stage-1 rule),
block-sparse at each (B, stage-1 rule)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import HisaBenchError
from ..measure.stage1 import DEFAULT_STAGE1, check_stage1

METHODS = ("flat", "hisa", "block-sparse")


@dataclass(frozen=True)
class Point:
    method: str                      # dense, flat, hisa, block-sparse
    topk: int | None = None
    block_size: int | None = None
    blocks: int | None = None        # HISA's m; block-sparse keeps max(k // B, 1)
    stage1: str | None = None

    @property
    def label(self) -> str:
        if self.method == "dense":
            return "dense"
        if self.method == "flat":
            return f"flat k={self.topk}"
        rule = "" if self.stage1 == DEFAULT_STAGE1 else f" {self.stage1}"
        if self.method == "block-sparse":
            return f"block-sparse k={self.topk} B={self.block_size}{rule}"
        return f"hisa k={self.topk} B={self.block_size} m={self.blocks}{rule}"

    @property
    def sparse(self) -> bool:
        return self.method != "dense"

    def kept_blocks(self) -> int | None:
        if self.method == "block-sparse":
            return max(self.topk // self.block_size, 1)
        return self.blocks

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items()}


def make_points(topks, block_sizes, blocks, methods, stage1s, context: int):
    """(points, skipped notes). Dense first; then per top-k: flat, HISA, block-sparse."""
    for m in methods:
        if m not in METHODS:
            raise HisaBenchError(f"--method: {m!r} is not one of {', '.join(METHODS)}")
    for k in topks:
        if k < 1:
            raise HisaBenchError(f"--topk: expected at least 1, got {k}")
        if k >= context:
            raise HisaBenchError(f"--topk {k}: not below the context ({context} tokens): every query would "
                                 "keep every key")
    from ..measure.fidelity import check_blocks   # (torch: loaded by the work, not by --help)

    check_blocks(block_sizes, blocks)
    for s in stage1s:
        check_stage1(s)
    points, notes = [Point("dense")], []
    for k in topks:
        if "flat" in methods:
            points.append(Point("flat", k))
        if "hisa" in methods:
            valid = [(b, m) for b in block_sizes for m in blocks if m * b >= k]
            if not valid:
                raise HisaBenchError(f"--blocks x --block-size: no (B, m) covers top-k {k}: need m*B >= k "
                                     f"(largest is {max(blocks) * max(block_sizes)})")
            for b in block_sizes:
                for m in blocks:
                    if m * b < k:
                        notes.append(f"skipping hisa k={k} B={b} m={m}: m*B < k")
                        continue
                    points.extend(Point("hisa", k, b, m, s) for s in stage1s)
        if "block-sparse" in methods:
            for b in block_sizes:
                points.extend(Point("block-sparse", k, b, max(k // b, 1), s) for s in stage1s)
    return points, notes
