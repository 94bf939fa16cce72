"""Map a GQA model's post-RoPE attention q/k onto the indexer form of the dump format.

One KV group of one layer becomes one dump layer: the group's key is k (shared by its query heads,
as the indexer's key is shared by all indexer heads), the group's query heads are the H heads, and
every head weighs the same, w = 1/H. Keys are centred over the captured window (k -= k.mean(0)):
ReLU, unlike softmax, is not shift-invariant, and raw attention keys carry a large common offset
that would make every relu(q.k) positive and the indexer a softmax-free copy of attention.
"""
from __future__ import annotations

import torch

from ..errors import HisaBenchError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def sample_positions(n_tokens: int, n_queries: int) -> torch.Tensor:
    """n_queries strictly increasing positions spread evenly over [0, n_tokens), always holding the
    last position (the query that sees the whole context)."""
    if n_queries < 1:
        raise HisaBenchError(f"--queries must be at least 1, got {n_queries}")
    if n_queries > n_tokens:
        raise HisaBenchError(f"--queries {n_queries} is more than the {n_tokens} positions of the context")
    stride = n_tokens / n_queries  # >= 1, so the floored offsets below are distinct
    offsets = torch.floor(torch.arange(n_queries, dtype=torch.float64) * stride).long()
    return (n_tokens - 1 - offsets).flip(0).contiguous()


def layer_name(layer: int, group: int) -> str:
    return f"layer{layer:02d}.kv{group}"


class GQAProxyCollector:
    """Forward callback (LlamaModel.forward's on_qk) that keeps the chosen layers as dump layers."""

    def __init__(self, layers, q_pos: torch.Tensor, group_size: int, dtype: torch.dtype = torch.float32,
                 center: bool = True):
        self.layers = set(int(x) for x in layers)
        self.q_pos = q_pos.to(torch.int64).cpu()
        self.group_size = group_size
        self.dtype = dtype
        self.center = center
        self.out: list[dict] = []

    def __call__(self, layer: int, q: torch.Tensor, k: torch.Tensor) -> None:
        if layer not in self.layers:
            return
        n_groups, g = k.shape[1], self.group_size
        if q.shape[1] != n_groups * g:
            raise HisaBenchError(f"layer {layer}: {q.shape[1]} query heads do not make {n_groups} groups of {g}")
        pos = self.q_pos.to(q.device)
        for j in range(n_groups):
            kj = k[:, j].float()
            if self.center:
                kj = kj - kj.mean(0, keepdim=True)
            qj = q[pos, j * g:(j + 1) * g].float()
            entry = {
                "name": layer_name(layer, j),
                "q": qj.to(self.dtype).cpu(),
                "k": kj.to(self.dtype).cpu(),
                "w": torch.full((len(pos), g), 1.0 / g, dtype=torch.float32),
                "q_pos": self.q_pos.clone(),
            }
            for key in ("q", "k"):
                if not bool(torch.isfinite(entry[key]).all()):
                    raise HisaBenchError(f"layer {layer}: {key} overflows {str(self.dtype).replace('torch.', '')}; "
                                         "use --dtype float32 or bfloat16")
            self.out.append(entry)
