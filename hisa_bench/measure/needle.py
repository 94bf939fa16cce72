"""Kernel-level needle in a haystack: does each selection keep one strongly aligned key?

For every (length L, depth x, trial) a haystack of L random Gaussian keys is drawn, one query at
position L - 1 (it sees every key), and the needle key is planted at p = round(x * (L - 1)):
along the query's head-average direction u, scaled so that its flat score is `strength` times the
best haystack score. The flat indexer therefore ranks it first; HISA and block-sparse keep it only
if stage 1 keeps its block. In the adversarial variant the other keys of the needle's block
(B-aligned) share minus the block's whole component along u, so the block mean along u is zero.

Selections come from hisa_bench.api (plain-torch references on the CPU, the kernels on a GPU), the
stage-1 rules relu and raw included; the rules no kernel has from measure/stage1.py (float64 torch).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from .. import api
from ..errors import HisaBenchError

METHODS = ("flat", "hisa", "block-sparse")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
COLUMNS = ["method", "length", "depth", "kept", "rank", "trials", "kept_rate"]


@dataclass
class NeedleConfig:
    lengths: list = field(default_factory=lambda: [4096, 8192, 16384, 32768])
    depths: list = field(default_factory=lambda: [round(i / 10, 1) for i in range(11)])
    trials: int = 5
    heads: int = 8
    dim: int = 128
    topk: int = 2048
    block_size: int = 128
    blocks: int = 64
    pooling: str = "mean"
    strength: float = 2.0
    adversarial: bool = False
    dtype: str = "bfloat16"
    seed: int = 0
    stage1: list = field(default_factory=lambda: ["relu"])   # stage-1 rules (measure/stage1.py)

    def methods(self) -> list:
        """flat, then HISA and block-sparse under each stage-1 rule ('hisa/raw', ...)."""
        from .stage1 import method_label

        return ["flat"] + [method_label(m, r) for m in ("hisa", "block-sparse") for r in self.stage1]

    def check(self):
        if self.trials < 1:
            raise HisaBenchError(f"--trials: expected at least 1, got {self.trials}")
        for d in self.depths:
            if not (0.0 <= d <= 1.0) or math.isnan(d):
                raise HisaBenchError(f"--depths: expected values in 0..1, got {d}")
        if not self.strength > 0 or not math.isfinite(self.strength):
            raise HisaBenchError(f"--strength: expected a finite value > 0, got {self.strength}")
        if self.dtype not in DTYPES:
            raise HisaBenchError(f"--dtype: expected one of {', '.join(DTYPES)}, got {self.dtype!r}")
        # the same limits the selection API enforces, checked before any work starts
        if not 1 <= self.heads <= 128:
            raise HisaBenchError(f"--heads: expected 1..128, got {self.heads}")
        if self.dim % 16 or not 16 <= self.dim <= 256:
            raise HisaBenchError(f"--dim: expected a multiple of 16 in 16..256, got {self.dim}")
        if self.topk < 1:
            raise HisaBenchError(f"--topk: expected at least 1, got {self.topk}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise HisaBenchError(f"--block-size: expected a power of two >= 16, got {self.block_size}")
        if self.blocks < 2 or self.blocks * self.block_size < self.topk:
            raise HisaBenchError(f"--blocks: expected at least 2 and blocks x block size >= top-k, got "
                                 f"{self.blocks} x {self.block_size} < {self.topk}" if self.blocks >= 2 else
                                 f"--blocks: expected at least 2, got {self.blocks}")
        if self.pooling not in api.POOLINGS:
            raise HisaBenchError(f"--pooling: expected one of {', '.join(api.POOLINGS)}, got {self.pooling!r}")
        from .stage1 import check_stage1

        for rule in self.stage1:
            check_stage1(rule, self.pooling)
        return self


def plant(k, q, w, p: int, strength: float, block_size: int, adversarial: bool):
    """Replace key p by the needle (in place, float64 k). Returns the needle direction u."""
    qn = q[0] / q[0].norm(dim=-1, keepdim=True)                  # [H, D]
    u = qn.sum(0)
    u = u / u.norm()
    a = float((w[0] * (q[0] @ u).clamp_min(0)).sum())            # flat score of the unit needle
    if a <= 0:
        raise HisaBenchError("needle: the query has no direction every head scores positively")
    k[p] = 0
    hay = ((q[0] @ k.T).clamp_min(0) * w[0][:, None]).sum(0)     # haystack scores (p now scores 0)
    best = float(torch.cat([hay[:p], hay[p + 1:]]).max()) if k.shape[0] > 1 else 1.0
    k[p] = (strength * max(best, 1e-6) / a) * u
    if adversarial:
        lo = (p // block_size) * block_size
        hi = min(lo + block_size, k.shape[0])
        others = torch.cat([torch.arange(lo, p), torch.arange(p + 1, hi)])
        if len(others):
            # the rest of the block takes away everything the block holds along u: its mean along
            # u is exactly zero, and every neighbour points away from the query
            total = float(k[lo:hi].sum(0) @ u)
            k[others] -= (total / len(others)) * u
    return u


def run_case(cfg: NeedleConfig, length: int, depth: float, trial: int, device, backend: str):
    """{method: (kept, rank)} for one haystack."""
    g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + length * 31 + trial) % (2**63))
    H, D = cfg.heads, cfg.dim
    k = torch.randn(length, D, generator=g, dtype=torch.float64)
    q = torch.randn(1, H, D, generator=g, dtype=torch.float64)
    w = torch.full((1, H), 1.0 / H, dtype=torch.float64)
    p = int(round(depth * (length - 1)))
    plant(k, q, w, p, cfg.strength, cfg.block_size, cfg.adversarial)
    dt = DTYPES[cfg.dtype]
    qd, kd, wd = q.to(dt).to(device), k.to(dt).to(device), w.float().to(device)
    ks, ke = api.causal_ranges(torch.tensor([length - 1]), device=device)
    # ranks come from exact scores of the tensors the selections saw
    scores = ((qd[0].double() @ kd.double().T).clamp_min(0) * wd[0].double()[:, None]).sum(0)
    sels = {
        "flat": api.flat_select(qd, kd, wd, ks, ke, topk=cfg.topk, backend=backend),
        "hisa": api.hisa_select(qd, kd, wd, ks, ke, topk=cfg.topk, block_size=cfg.block_size,
                                blocks=cfg.blocks, pooling=cfg.pooling, backend=backend),
        "block-sparse": api.block_sparse_select(qd, kd, wd, ks, ke, topk=cfg.topk, block_size=cfg.block_size,
                                                pooling=cfg.pooling, backend=backend),
    }
    from kernels.hisa_naive import STAGE1_RULES

    from .stage1 import DEFAULT_STAGE1, select_positions

    for rule in cfg.stage1:
        if rule == DEFAULT_STAGE1:
            continue
        if rule in STAGE1_RULES:
            # a rule our kernels have (raw): through the api like the paper's rule, so the kernels
            # on a GPU and their references (kernels/hisa_naive.py) on a CPU
            sels[f"hisa/{rule}"] = api.hisa_select(qd, kd, wd, ks, ke, topk=cfg.topk, block_size=cfg.block_size,
                                                   blocks=cfg.blocks, pooling=cfg.pooling, backend=backend,
                                                   stage1=rule)
            sels[f"block-sparse/{rule}"] = api.block_sparse_select(
                qd, kd, wd, ks, ke, topk=cfg.topk, block_size=cfg.block_size, pooling=cfg.pooling,
                backend=backend, stage1=rule)
            continue
        # the other stage-1 rules: the float64 torch selection on any device (no kernel has them)
        for method in ("hisa", "block-sparse"):
            sels[f"{method}/{rule}"] = select_positions(qd, kd, wd, ks, ke, topk=cfg.topk, block_size=cfg.block_size,
                                                        blocks=cfg.blocks, pooling=cfg.pooling, stage1=rule,
                                                        block_sparse=(method == "block-sparse"))
    out = {}
    for method, sel in sels.items():
        chosen = sel[0].long()
        chosen = chosen[chosen >= 0]
        kept = bool((chosen == p).any())
        # rank in the method's selection ordered by flat score: kept keys that score higher
        rank = int((scores[chosen] > scores[p]).sum()) if kept else -1
        out[method] = (kept, rank)
    return out


def run_needle(cfg: NeedleConfig, device, advance=None) -> pd.DataFrame:
    """needle.csv rows: one per (method, length, depth). kept = 1 when kept in every trial; rank =
    the worst rank over trials (-1 when dropped in any trial); kept_rate = share of trials kept."""
    cfg.check()
    backend = "auto" if device.type == "cuda" else "reference"
    rows = []
    for length in cfg.lengths:
        for depth in cfg.depths:
            results = [run_case(cfg, length, depth, t, device, backend) for t in range(cfg.trials)]
            for method in cfg.methods():
                kept = [r[method][0] for r in results]
                ranks = [r[method][1] for r in results]
                rows.append({"method": method, "length": length, "depth": depth, "kept": int(all(kept)),
                             "rank": max(ranks) if all(kept) else -1, "trials": cfg.trials,
                             "kept_rate": sum(kept) / cfg.trials})
            if advance is not None:
                advance(1)
    return pd.DataFrame(rows, columns=COLUMNS)


def config_dict(cfg: NeedleConfig) -> dict:
    return asdict(cfg)


__all__ = ["NeedleConfig", "run_needle", "run_case", "plant", "METHODS", "COLUMNS", "config_dict"]
