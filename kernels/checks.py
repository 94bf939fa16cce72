"""Tie-aware checks of a selection against reference scores (tests and the speed command's
accuracy gate use these). A selection is right when it is a valid set of the right size and every
chosen score is at least the k-th best score (minus a rounding tolerance): equal sets are not
required, because kernels may break ties, and near-ties, in any order."""
from __future__ import annotations

import torch


def selection_errors(sel, scores_rel, base, row_len, k: int, *, rtol=1e-3, atol=1e-4, max_report=3,
                     expected=None):
    """List of problems (empty when correct). sel int32 [T, k] absolute positions / -1;
    scores_rel [T, W] reference scores in relative layout (entry j is position base + j, valid for
    j < row_len and score > -inf).

    The number of positions a row must hold is min(k, its valid entries), or expected[t] when
    given (a caller that knows the count from the semantics while seeing only part of the
    candidates). It never comes from the selection itself: a row of -1 is as wrong as a bad key."""
    problems = []
    sel = sel.detach().to("cpu", torch.int64)
    scores = scores_rel.detach().to("cpu", torch.float64)
    base = base.detach().to("cpu", torch.int64)
    row_len = row_len.detach().to("cpu", torch.int64)
    T, W = scores.shape
    j = torch.arange(W)
    valid = (j[None, :] < row_len[:, None]) & (scores > float("-inf"))
    n_valid = valid.sum(1)
    for t in range(T):
        row = sel[t]
        chosen = row[row >= 0]
        want = int(min(k, n_valid[t])) if expected is None else int(expected[t])
        if chosen.numel() != want:
            problems.append(f"row {t}: {chosen.numel()} selected, expected {want}")
        if bool((row < -1).any()):
            problems.append(f"row {t}: slots hold values other than positions and -1 (unwritten?)")
        if chosen.unique().numel() != chosen.numel():
            problems.append(f"row {t}: duplicate positions")
        rel = chosen - base[t]
        if bool(((rel < 0) | (rel >= row_len[t])).any()):
            problems.append(f"row {t}: position outside the visible range")
            continue
        if not bool(valid[t, rel].all()):
            problems.append(f"row {t}: selected an invalid (-inf) entry")
            continue
        n_ref = int(min(want, n_valid[t]))
        if n_ref and chosen.numel():     # (an empty row has no chosen score to compare)
            kth = torch.topk(torch.where(valid[t], scores[t], float("-inf")), n_ref).values[-1]
            worst = scores[t, rel].min()
            if worst < kth - (atol + rtol * abs(float(kth))):
                problems.append(f"row {t}: chosen score {float(worst):.6g} below the k-th best {float(kth):.6g}")
        if len(problems) >= max_report:
            break
    return problems


def assert_selection(sel, scores_rel, base, row_len, k, **kw):
    problems = selection_errors(sel, scores_rel, base, row_len, k, **kw)
    assert not problems, "; ".join(problems)
