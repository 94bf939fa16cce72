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
    # generated where they are used: 1024 rows of 1M scores take seconds on a GPU, minutes on a host
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(seed)
    row_len = torch.full((T,), W, dtype=torch.int32, device=dev)
    pos = torch.arange(W, dtype=torch.float32, device=dev)

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=dev)

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    if kind == "random":
        s = randn(T, W)
    elif kind == "structured":
        # heavy-tailed magnitudes (|t|-like), half to three quarters exact zeros after ReLU
        s = randn(T, W) * randn(T, W).abs().pow(2)
        zero_share = 0.5 + 0.25 * rand(T, 1)
        s = torch.where(rand(T, W) < zero_share, torch.zeros((), device=dev), s.abs())
        s[:, : min(4, W)] += 50.0                                     # attention sinks
        recency = torch.clamp((pos - (W - 4096)) / 4096.0, min=0.0)    # newest 4K keys ramp up
        s += 8.0 * recency * (rand(T, W) < 0.5)
        n_topics = 8
        starts = torch.randint(0, max(1, W - 512), (T, n_topics), generator=g, device=dev)
        for j in range(n_topics):                                     # topic clusters, block-unaligned
            idx = (starts[:, j:j + 1] + torch.arange(min(512, W), device=dev)).clamp(max=W - 1)
            s.scatter_add_(1, idx, torch.full(idx.shape, 3.0, device=dev) * (rand(*idx.shape) < 0.7))
        s[:, ::97] = -s[:, ::97]                                      # signed head weights give negatives
    elif kind == "window":
        s = randn(T, W) * 0.1
        s[:, max(0, W - 4096):] += 10.0
    elif kind == "zeros":
        s = torch.zeros(T, W, device=dev)
        s[:, 1::2] = -0.0
        n_pos = max(1, k // 3)
        idx = torch.randint(0, W, (T, n_pos), generator=g, device=dev)
        s.scatter_(1, idx, rand(T, n_pos) + 0.5)
    elif kind == "equal":
        s = torch.full((T, W), 0.75, device=dev)
    elif kind == "causal":
        s = randn(T, W)
        row_len = (W - T + 1 + torch.arange(T, device=dev)).clamp(min=1).to(torch.int32)
        s[rand(T, W) < 0.05] = float("-inf")
    else:  # clusters
        s = torch.randint(0, 5, (T, W), generator=g, device=dev).float() * 0.5
    return s.contiguous(), row_len
