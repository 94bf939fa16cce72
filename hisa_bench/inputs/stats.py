"""The statistics of indexer score rows that decide how a top-k behaves, for docs/inputs.md:
measured on a captured dump and on the structured (and random) timing inputs at comparable
settings, with the torch references on the CPU.

    PYTHONPATH=. python -m hisa_bench.inputs.stats [--dump reports/dumps/smollm2-135m.pt]

  zeros      share of exact zeros among the visible scores (ReLU on every head)
  negative   share of negative scores (signed head weights)
  < k pos.   share of rows with fewer than k scores above zero (their k-th place is a tied zero)
  tied k-th  share of rows whose k-th best score equals the (k+1)-th (the tie rule decides)
  newest     share of the flat top-k among the newest `window` visible keys
  1st block  share of the flat top-k in the first block (positions < 128)
The flat top-k here is the reference one (kernels.topk_naive: the lowest position wins a tie),
on fp8-quantised inputs as the speed command times them.
"""
from __future__ import annotations

import argparse

import torch

FIRST_BLOCK = 128


def row_statistics(scores, row_len, k: int, window: int) -> dict:
    """scores [T, W] relative layout (entry j = position j, valid for j < row_len, -inf never valid)."""
    from kernels.topk_naive import topk_ref

    s = scores.float()
    j = torch.arange(s.shape[1])
    valid = (j[None, :] < row_len[:, None].long()) & (s > float("-inf"))
    s = torch.where(valid, s, torch.full((), float("-inf")))
    n_valid = valid.sum()
    pos = ((s > 0) & valid).sum(1)
    sorted_s = torch.sort(s, dim=1, descending=True).values
    long_rows = valid.sum(1) > k
    tied = (sorted_s[:, k - 1] == sorted_s[:, k]) & long_rows if s.shape[1] > k else torch.zeros(len(s), dtype=torch.bool)
    sel = topk_ref(s, k, row_len.long()).long()
    chosen = sel >= 0
    n_chosen = chosen.sum().clamp_min(1)
    newest = chosen & (sel >= (row_len.long()[:, None] - window))
    first = chosen & (sel < FIRST_BLOCK)
    return {"rows": int(len(s)), "zeros": float(((s == 0) & valid).sum() / n_valid),
            "negative": float(((s < 0) & valid).sum() / n_valid), "fewer_than_k_positive": float((pos < k).float().mean()),
            "tied_kth": float(tied.float().mean()), "newest": float(newest.sum() / n_chosen),
            "first_block": float(first.sum() / n_chosen)}


def _scores(q, k, w, ks, ke):
    from kernels.flat_scores_naive import flat_scores_ref
    from .. import api

    q8, k8, w8, scale = api.quantize_fp8(q.float(), k.float(), w.float())
    return flat_scores_ref(q8, k8, w8, ks, ke, scale, dtype=torch.float32), (ke - ks).to(torch.int32)


def _mean(stats: list[dict]) -> dict:
    out = {key: sum(s[key] for s in stats) / len(stats) for key in stats[0] if key != "rows"}
    out["rows"] = sum(s["rows"] for s in stats)
    out["range"] = {key: (min(s[key] for s in stats), max(s[key] for s in stats)) for key in stats[0] if key != "rows"}
    return out


def dump_statistics(path, k: int, window: int, min_visible_share: float = 0.5) -> dict:
    """Mean over the dump's layers, on its queries that see at least half of its keys."""
    from .dump import load_dump
    from .. import api

    stats = []
    for layer in load_dump(path)["layers"]:
        n = layer["k"].shape[0]
        keep = layer["q_pos"] + 1 >= n * min_visible_share
        ks, ke = api.causal_ranges(layer["q_pos"][keep])
        s, row_len = _scores(layer["q"][keep], layer["k"], layer["w"][keep], ks, ke)
        stats.append(row_statistics(s, row_len, k, window))
    return _mean(stats)


def structured_statistics(q_pos, n_keys: int, heads: int, dim: int, k: int, window: int, seeds=(0, 1, 2),
                          kind: str = "structured") -> dict:
    """The speed command's structured (or random) inputs at these positions, mean over seeds."""
    from .synthetic import structured_qkw
    from .. import api

    stats = []
    for seed in seeds:
        ks, ke = api.causal_ranges(q_pos)
        if kind == "structured":
            q, kk, w = structured_qkw(torch.arange(n_keys), q_pos, ks, ke, heads=heads, dim=dim, topk=k, seed=seed)
        else:
            g = torch.Generator().manual_seed(seed)
            q, kk = torch.randn(len(q_pos), heads, dim, generator=g), torch.randn(n_keys, dim, generator=g)
            w = torch.randn(len(q_pos), heads, generator=g) / heads
        s, row_len = _scores(q, kk, w, ks, ke)
        stats.append(row_statistics(s, row_len, k, window))
    return _mean(stats)


COLUMNS = (("zeros", "zeros"), ("negative", "negative"), ("fewer_than_k_positive", "< k pos."),
           ("tied_kth", "tied k-th"), ("newest", "newest"), ("first_block", "1st block"))


def _line(name, st):
    return "| " + name + " | " + str(st["rows"]) + " | " + " | ".join(
        f"{st[c]:.3f} ({st['range'][c][0]:.2f}-{st['range'][c][1]:.2f})" for c, _ in COLUMNS) + " |"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dump", default="reports/dumps/smollm2-135m.pt")
    p.add_argument("--long-keys", type=int, default=32768, help="context of the benchmark-scale rows")
    p.add_argument("--long-queries", type=int, default=32, help="queries at the tail of that context")
    args = p.parse_args(argv)
    from .dump import load_dump

    layer0 = load_dump(args.dump)["layers"][0]
    n, H, D = layer0["k"].shape[0], layer0["q"].shape[1], layer0["q"].shape[2]
    k_small, win_small = max(16, n // 16), n // 8
    q_pos = layer0["q_pos"][layer0["q_pos"] + 1 >= n // 2]
    head = "| inputs | rows | " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 2)
    print(f"Dump scale: {n} keys, k = {k_small}, newest = the newest {win_small} keys, first block = "
          f"positions < {FIRST_BLOCK}; queries that see at least {n // 2} keys; H = {H}, D = {D}; fp8.")
    print("Each cell: the mean (the range over layers or seeds).\n")
    print(head + "\n" + rule)
    print(_line(f"dump {args.dump} (mean of its layers)", dump_statistics(args.dump, k_small, win_small)))
    print(_line("structured, same positions, H and D (3 seeds)",
                structured_statistics(q_pos, n, H, D, k_small, win_small)))
    print(_line("random, same positions, H and D (3 seeds)",
                structured_statistics(q_pos, n, H, D, k_small, win_small, kind="random")))
    L, M = args.long_keys, args.long_queries
    k_long, win_long = max(16, L // 16), L // 8
    tail = torch.arange(L - M, L)
    print(f"\nBenchmark scale: {L} keys, k = {k_long} (the same k / keys), newest = the newest {win_long} keys; "
          f"{M} queries at the tail (chunk mode); H = 64, D = 128; fp8.\n")
    print(head + "\n" + rule)
    print(_line("structured (3 seeds)", structured_statistics(tail, L, 64, 128, k_long, win_long)))
    print(_line("random (3 seeds)", structured_statistics(tail, L, 64, 128, k_long, win_long, kind="random")))


if __name__ == "__main__":
    main()
