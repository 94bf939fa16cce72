"""Synthetic timing inputs for the three serving shapes.

  chunk    M queries at the tail of an L-token context: query i sees keys [0, L - M + i + 1)
  prefill  the whole causal sequence: L queries, query i sees [0, i + 1), run in query chunks
  decode   a batch of sequences, one query each at the end of its own context; the caches are
           packed in one key tensor, each sequence starting at a multiple of the block size (as a
           paged cache would), so a query sees [start_b, start_b + len_b)

Values are random normal (the time of every kernel here depends on shapes, not values, except
the top-k's sampling, which random data neither helps nor hurts). fp8 inputs are quantised the way
DSA does it: a float32 scale per key, the query's per-head scale folded into w.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import api
from .errors import HisaBenchError

MODES = ("chunk", "prefill", "decode")


@dataclass
class Workload:
    mode: str
    length: int
    batch: int
    q: torch.Tensor
    k: torch.Tensor
    w: torch.Tensor
    ks: torch.Tensor
    ke: torch.Tensor
    k_scale: torch.Tensor | None
    query_chunk: int | None = None
    last_blocks: torch.Tensor | None = None      # decode: block of each sequence's newest key
    info: dict = field(default_factory=dict)

    @property
    def queries(self) -> int:
        return self.q.shape[0]

    @property
    def pairs(self) -> int:
        return api.pair_count(self.ks, self.ke)


def make_workload(mode: str, length: int, *, batch: int = 1, queries: int = 1024, heads: int = 64,
                  dim: int = 128, dtype: str = "fp8", device: str = "cuda", seed: int = 0,
                  block_size: int = 128, ragged: bool = False, query_chunk: int | None = None) -> Workload:
    if mode not in MODES:
        raise HisaBenchError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    g = torch.Generator(device="cpu").manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    if mode == "chunk":
        M = min(queries, length)
        n_keys = length
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (length - M + 1 + torch.arange(M)).to(torch.int32)
        lens = None
    elif mode == "prefill":
        M = length
        n_keys = length
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (1 + torch.arange(M)).to(torch.int32)
        lens = None
        query_chunk = query_chunk or queries
    else:
        M = batch
        if ragged:
            lens = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
            lens[0] = length
        else:
            lens = torch.full((batch,), length)
        padded = (lens + block_size - 1) // block_size * block_size
        starts = torch.cumsum(padded, 0) - padded
        n_keys = int(padded.sum())
        ks = starts.to(torch.int32)
        ke = (starts + lens).to(torch.int32)
    q = randn(M, heads, dim)
    k = randn(n_keys, dim)
    w = randn(M, heads) / heads
    if dtype == "fp8":
        q, k, w, k_scale = api.quantize_fp8(q, k, w)
    elif dtype in ("bf16", "fp16"):
        dt = torch.bfloat16 if dtype == "bf16" else torch.float16
        q, k, k_scale = q.to(dt), k.to(dt), None
    else:
        raise HisaBenchError(f"dtype must be fp8, bf16 or fp16, got {dtype!r}")
    ks, ke = ks.to(device), ke.to(device)
    last_blocks = ((ke - 1) // block_size).to(torch.int32) if mode == "decode" else None
    info = {"lengths": lens.tolist() if lens is not None and ragged else None}
    return Workload(mode, length, batch if mode == "decode" else 1, q, k, w.contiguous(), ks, ke, k_scale,
                    query_chunk, last_blocks, info)
