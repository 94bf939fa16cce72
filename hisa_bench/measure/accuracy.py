"""The accuracy gate that runs before any timing: a backend whose selection is wrong on a sample of
queries is reported as failing and never timed.

Checks are tie-aware and allow for rounding (fp8 keys, fp8 re-quantised pooled keys):
  flat          a valid top-k of the float32 reference scores (every chosen score >= the k-th best)
  hisa          every kept block scores (float32 mean-pooled keys) within tolerance of the m-th best
                visible block, first and last visible blocks kept; the tokens are a valid top-k of
                the reference scores over the visible keys of the kept blocks
  block-sparse  the kept blocks pass the same block check with m' = topk // B, and every visible
                key in them is selected
The block scores follow the backend's stage-1 rule: relu (the paper's, sum_h w relu(q_h . kbar)) or
raw (sum_h w (q_h . kbar)); the token scores are the flat scores under either rule.
For a backend that does not expose its kept blocks, the blocks holding its selected keys stand in,
together with the first and last visible blocks (kept by definition).
Counts come from the semantics alone (accuracy.expected_count): k, or every visible key when fewer;
for HISA min(k, visible keys of its m kept blocks); for block-sparse every visible key of its
m' = k // B kept blocks. A row of -1, or a first choice followed by -1, fails.
"""
from __future__ import annotations

import os
import random

import torch

from kernels.checks import selection_errors
from kernels.hisa_naive import check_stage1_rule

SCORE_RTOL = 2e-3     # fp8 products accumulate with ~1e-4 relative error on Hopper tensor cores
BLOCK_RTOL = 0.05     # pooled keys are re-quantised to fp8: e4m3 keeps 3 mantissa bits


def sample_rows(T: int, n: int = 6, extra: int = 2) -> list[int]:
    """The first and last query, n - 1 evenly spaced, and `extra` drawn at random per call (so a
    backend cannot be right on a fixed, known set of rows only)."""
    rows = {0, T - 1, *[int(T * i / n) for i in range(1, n)]}
    if T > 0 and extra:
        rng = random.Random(int.from_bytes(os.urandom(8), "little"))
        rows |= {rng.randrange(T) for _ in range(extra)}
    return sorted(r for r in rows if 0 <= r < T)


def _ref_row(q, kf, w, lo, hi, relu=True):
    s = q.float() @ kf[lo:hi].T
    if relu:
        s = s.clamp_min(0)
    return (s * w[:, None]).sum(0)


def kept_key_count(lo: int, hi: int, B: int, m: int) -> int:
    """Visible keys inside the blocks a query seeing [lo, hi) keeps, from the semantics alone:
    every visible key when it sees at most m blocks; otherwise the first and last visible blocks
    (forced, possibly partial) plus m - 2 whole blocks between them (m = 1 keeps the first)."""
    if hi <= lo:
        return 0
    b_lo, b_hi = lo // B, (hi - 1) // B + 1
    if b_hi - b_lo <= m:
        return hi - lo
    first = min((b_lo + 1) * B, hi) - lo
    if m == 1:
        return first
    return first + (hi - (b_hi - 1) * B) + (m - 2) * B


def expected_count(method: str, lo: int, hi: int, *, topk: int, block_size: int, blocks: int) -> int:
    """How many positions a correct selection of `method` holds for a query seeing [lo, hi)."""
    if method == "flat":
        return max(0, min(topk, hi - lo))
    if method == "hisa":
        return min(topk, kept_key_count(lo, hi, block_size, blocks))
    return kept_key_count(lo, hi, block_size, max(topk // block_size, 1))


def check(method, sel, wl, rows, *, topk, block_size, blocks, kept=None, stage1="relu"):
    """List of problems for the sampled rows (empty when the selection passes). stage1: the rule
    the kept blocks are checked against (relu or raw)."""
    relu_blocks = check_stage1_rule(stage1)      # ValueError for a rule without a kernel
    kf = wl.k.float() * (wl.k_scale[:, None] if wl.k_scale is not None else 1.0)
    B = block_size
    problems = []
    sel = sel.detach()
    for t in rows:
        lo, hi = int(wl.ks[t]), int(wl.ke[t])
        ref = _ref_row(wl.q[t], kf, wl.w[t], lo, hi)
        row = sel[t:t + 1].to(torch.int64)
        chosen = row[row >= 0]
        atol = 1e-3 * float(ref.abs().max()) + 1e-6 if ref.numel() else 1e-6
        base = torch.tensor([lo])
        # the count comes from the semantics, never from what the backend returned
        want = expected_count(method, lo, hi, topk=topk, block_size=B, blocks=blocks)
        if method == "flat":
            problems += [f"query {t}: {p}" for p in selection_errors(
                row, ref[None], base, torch.tensor([hi - lo]), topk, rtol=SCORE_RTOL, atol=atol,
                expected=[want])]
            continue
        if bool((row < -1).any()) or bool(((chosen < lo) | (chosen >= hi)).any()):
            problems.append(f"query {t}: selected a position outside its visible range [{lo}, {hi})")
            continue
        if chosen.unique().numel() != chosen.numel():
            problems.append(f"query {t}: duplicate positions")
            continue
        # ---- block level ----
        b_lo, b_hi = lo // B, (hi - 1) // B + 1
        m = blocks if method == "hisa" else max(topk // B, 1)
        forced_abs = {b_lo, b_hi - 1} if m >= 2 else {b_lo}
        row_kept = kept[t][kept[t] >= 0].long().cpu() if kept is not None else None
        if row_kept is not None and row_kept.numel() == 0:
            row_kept = None          # a trivial query run through the flat pipeline
        if row_kept is not None:
            used = row_kept.unique()
        elif b_hi - b_lo <= m:
            used = torch.arange(b_lo, b_hi)     # it keeps every visible block
        else:
            # the blocks holding its keys stand in for its kept blocks, with the forced ones that
            # every query keeps by definition
            used = torch.tensor(sorted(set((chosen.cpu() // B).tolist()) | forced_abs), dtype=torch.int64)
        if bool(((used < b_lo) | (used >= b_hi)).any()):
            problems.append(f"query {t}: kept a block it cannot see")
            continue
        if used.numel() > m:
            problems.append(f"query {t}: {used.numel()} blocks used, at most {m} allowed")
        nb = b_hi - b_lo
        pos = torch.arange(b_lo * B, b_hi * B, device=kf.device).clamp(max=kf.shape[0] - 1)
        real = torch.arange(b_lo * B, b_hi * B, device=kf.device) < kf.shape[0]
        sums = (kf[pos] * real[:, None]).view(nb, B, -1).sum(1)
        kbar = sums / real.view(nb, B).sum(1).clamp_min(1)[:, None].float()
        J = _ref_row(wl.q[t], kbar, wl.w[t], 0, nb, relu_blocks)
        readings = [J]
        if wl.k.dtype == torch.float8_e4m3fn:
            # our pipeline scores pooled keys re-quantised to fp8, one scale per block
            # (kernels/pooling.py); with few heads or a small head dim that rounding can reorder
            # close blocks, so a block that is right under either reading passes
            scale = (kbar.abs().amax(-1, keepdim=True) / 448.0).clamp_min(1e-12)
            kq = (kbar / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).float() * scale
            readings.append(_ref_row(wl.q[t], kq, wl.w[t], 0, nb, relu_blocks))
        forced = {b - b_lo for b in forced_abs}
        n_free = min(m, nb) - len(forced & set(range(nb)))
        if row_kept is not None and used.numel() != min(m, nb):
            problems.append(f"query {t}: {used.numel()} blocks kept, expected {min(m, nb)}")
        if row_kept is not None and not forced_abs <= set(used.tolist()):
            problems.append(f"query {t}: first or last visible block not kept")
        rel_used = [int(b) - b_lo for b in used.tolist() if int(b) - b_lo not in forced]
        if n_free > 0 and nb > 2 and rel_used:
            below = []
            for Jx in readings:
                others = torch.tensor([Jx[i] for i in range(nb) if i not in forced])
                jm = torch.topk(others, min(n_free, others.numel())).values[-1]
                tol = BLOCK_RTOL * float(Jx.abs().max()) + 1e-6
                if float(Jx[rel_used].min()) < float(jm) - tol:
                    below.append((float(Jx[rel_used].min()), float(jm)))
            if len(below) == len(readings):
                problems.append(f"query {t}: kept a block scoring {below[0][0]:.4g}, "
                                f"below the m-th best {below[0][1]:.4g}")
        # ---- token level ----
        in_kept = torch.zeros(hi - lo, dtype=torch.bool, device=kf.device)
        for b in used.tolist():
            a, z = max(b * B, lo), min((b + 1) * B, hi)
            in_kept[a - lo:z - lo] = True
        if method == "block-sparse":
            if chosen.numel() != want:
                problems.append(f"query {t}: {chosen.numel()} selected, expected {want} "
                                f"(every visible key of its {min(m, nb)} kept blocks)")
                continue
            expect = set((torch.nonzero(in_kept).flatten() + lo).tolist())
            if set(chosen.tolist()) != expect:
                problems.append(f"query {t}: did not select exactly the visible keys of its kept blocks")
            continue
        cand = torch.where(in_kept, ref, torch.full_like(ref, float("-inf")))
        problems += [f"query {t}: {p}" for p in selection_errors(
            row, cand[None], base, torch.tensor([hi - lo]), topk, rtol=SCORE_RTOL, atol=atol, expected=[want])]
    return problems
