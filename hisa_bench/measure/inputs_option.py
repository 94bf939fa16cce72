"""`hisa-bench speed --inputs`: which tensors each row is timed on, checked before anything runs.

chunk / prefill / decode take random, structured and dump files (PATH.pt or PATH.pt@LAYER);
--mode topk takes the row kinds of hisa_bench.inputs.score_rows (`all` = every one) and dump files,
whose rows are the dump's own scores. A dump's key count bounds the lengths it can serve."""
from __future__ import annotations

from ..errors import HisaBenchError
from ..inputs.score_rows import KINDS as ROW_KINDS
from ..workloads import SYNTHETIC_INPUTS, check_dump_length, parse_inputs

DEFAULT = "random,structured"
CPU_DEFAULT = "random"      # interpreter runs: one input kind keeps the CPU demo and tests short
TOPK_DEFAULT = "all"


def resolve_inputs(text, cfg, *, topk_mode: bool = False):
    """The InputSource list for --inputs (None: the default), after every check that can fail."""
    if topk_mode:
        items = [x.strip() for x in str(text if text is not None else TOPK_DEFAULT).split(",") if x.strip()]
        items = [k for x in items for k in (ROW_KINDS if x == "all" else (x,))]
        sources = parse_inputs(",".join(items), row_kinds=ROW_KINDS)
    else:
        raw = text if text is not None else (CPU_DEFAULT if cfg.device == "cpu" else DEFAULT)
        for x in str(raw).split(","):
            x = x.strip()
            if x in ROW_KINDS and x not in SYNTHETIC_INPUTS or x == "all":
                raise HisaBenchError(f"--inputs: {x!r} is a row kind of --mode topk; chunk, prefill and decode "
                                     f"take {', '.join(SYNTHETIC_INPUTS)} or a dump file (PATH.pt)")
        sources = parse_inputs(raw)
    for src in sources:
        for length in cfg.lengths:
            check_dump_length(src, length)
    return sources


__all__ = ["resolve_inputs", "DEFAULT", "TOPK_DEFAULT"]
