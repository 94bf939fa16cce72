"""The knobs of a synthetic dump (hisa_bench/inputs/synthetic.py says what each one shapes), kept
apart from the generator so that the CLI can show and check them without importing torch."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ..errors import HisaBenchError

DTYPE_NAMES = ("bfloat16", "float16", "float32")


@dataclass
class SyntheticConfig:
    seed: int = 0
    layers: int = 3
    keys: int = 32768
    queries: int = 256
    heads: int = 4
    dim: int = 128
    dtype: str = "bfloat16"
    sinks: int = 4
    sink_strength: float = 2.0
    recency_strength: float = 1.0
    recency_window: int = 256
    recency_freqs: int = 8
    topics: int = 24
    topic_strength: float = 1.0
    topic_jump: float = 0.3
    needles: int = 8
    needle_strength: float = 4.0
    needle_queries: float = 0.25
    adversarial: int = 4
    adversarial_block: int = 128
    norm_sigma: float = 0.5
    key_noise: float = 1.0
    query_noise: float = 1.0
    query_tail: float = 2.0
    weights: str = "uniform"

    def check(self):
        def bad(msg):
            raise HisaBenchError(msg)

        for name in ("layers", "keys", "queries", "heads", "dim"):
            if getattr(self, name) < 1:
                bad(f"--{name}: expected at least 1, got {getattr(self, name)}")
        if self.queries > self.keys:
            bad(f"--queries: expected at most --keys = {self.keys} (one query per position), got {self.queries}")
        if self.dtype not in DTYPE_NAMES:
            bad(f"--dtype: expected one of {', '.join(DTYPE_NAMES)}, got {self.dtype!r}")
        if self.weights not in ("uniform", "signed"):
            bad(f"--weights: expected uniform or signed, got {self.weights!r}")
        for name in ("sinks", "topics", "needles", "adversarial", "recency_freqs"):
            if getattr(self, name) < 0:
                bad(f"--{name.replace('_', '-')}: expected >= 0, got {getattr(self, name)}")
        if self.sinks > self.keys:
            bad(f"--sinks: expected at most --keys = {self.keys}, got {self.sinks}")
        for name in ("recency_window", "adversarial_block"):
            if getattr(self, name) < 2:
                bad(f"--{name.replace('_', '-')}: expected at least 2, got {getattr(self, name)}")
        for name in ("topic_jump", "needle_queries"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(f"--{name.replace('_', '-')}: expected a share in 0..1, got {getattr(self, name)}")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and (not math.isfinite(v) or v < 0):
                bad(f"--{f.name.replace('_', '-')}: expected a finite value >= 0, got {v}")
        if self.topics > max(1, self.keys // 32):
            bad(f"--topics: expected at most keys / 32 = {self.keys // 32}, got {self.topics}")
        return self
