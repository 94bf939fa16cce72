"""Score rows of known shape for the row top-k: the distributions a real indexer produces, not only
random ones. A top-k whose speed or result depends on the data is tested and timed on all of them.

    make_rows(kind, T, W, k=..., seed=..., device=...) -> (scores float32 [T, W], row_len int32 [T])

Kinds (every row holds row_len[t] valid entries; entries past it are never read):
  random       i.i.d. normal
  structured   what indexer rows look like after ReLU and the weighted head sum: masses of exact
               zeros, a few attention sinks at the start, a recency ramp over the newest keys,
               topic clusters of raised scores, heavy-tailed magnitudes, some negatives
  window       high scores in the newest 4096 keys, low elsewhere (a sliding-window pattern)
  zeros        fewer than k positive scores, every other score exactly 0.0 (-0.0 and +0.0 mixed)
  equal        every score the same value (the tie rule decides everything)
  causal       a causal chunk: row t is valid up to W - T + t + 1, with -inf entries inside the range
  clusters     few distinct values repeated many times (ties at the k-th place)
"""
from __future__ import annotations

import torch

KINDS = ("random", "structured", "window", "zeros", "equal", "causal", "clusters")


def make_rows(kind: str, T: int, W: int, *, k: int = 2048, seed: int = 0, device="cpu"):
    if kind not in KINDS:
        raise ValueError(f"row kind must be one of {', '.join(KINDS)}, got {kind!r}")
    g = torch.Generator(device="cpu").manual_seed(seed)
    row_len = torch.full((T,), W, dtype=torch.int32)
    pos = torch.arange(W, dtype=torch.float32)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    if kind == "random":
        s = randn(T, W)
    elif kind == "structured":
        # heavy-tailed magnitudes (|t|-like), half to three quarters exact zeros after ReLU
        s = randn(T, W) * randn(T, W).abs().pow(2)
        zero_share = 0.5 + 0.25 * torch.rand(T, 1, generator=g)
        s = torch.where(torch.rand(T, W, generator=g) < zero_share, torch.zeros(()), s.abs())
        s[:, : min(4, W)] += 50.0                                     # attention sinks
        recency = torch.clamp((pos - (W - 4096)) / 4096.0, min=0.0)    # newest 4K keys ramp up
        s += 8.0 * recency * (torch.rand(T, W, generator=g) < 0.5)
        n_topics = 8
        starts = torch.randint(0, max(1, W - 512), (T, n_topics), generator=g)
        for j in range(n_topics):                                     # topic clusters, block-unaligned
            idx = (starts[:, j:j + 1] + torch.arange(min(512, W))).clamp(max=W - 1)
            s.scatter_add_(1, idx, torch.full(idx.shape, 3.0) * (torch.rand(idx.shape, generator=g) < 0.7))
        s[:, ::97] = -s[:, ::97]                                      # signed head weights give negatives
    elif kind == "window":
        s = randn(T, W) * 0.1
        s[:, max(0, W - 4096):] += 10.0
    elif kind == "zeros":
        s = torch.zeros(T, W)
        s[:, 1::2] = -0.0
        n_pos = max(1, k // 3)
        idx = torch.randint(0, W, (T, n_pos), generator=g)
        s.scatter_(1, idx, torch.rand(T, n_pos, generator=g) + 0.5)
    elif kind == "equal":
        s = torch.full((T, W), 0.75)
    elif kind == "causal":
        s = randn(T, W)
        row_len = (W - T + 1 + torch.arange(T)).clamp(min=1).to(torch.int32)
        s[torch.rand(T, W, generator=g) < 0.05] = float("-inf")
    else:  # clusters
        s = torch.randint(0, 5, (T, W), generator=g).float() * 0.5
    return s.contiguous().to(device), row_len.to(device)
