"""`hisa-bench speed --mode topk`: the row top-k by itself (kernels.topk.launch_topk) against
torch.topk, on the same float32 score rows with the same k, for every row kind and width.

Rows: T = --queries rows of W = --lengths entries each; a row kind of hisa_bench.inputs.score_rows
or a dump's own scores (its fp8-quantised q/k/w through the flat reference, M queries at their
recorded positions as in chunk mode, so row t holds q_pos[t] + 1 valid entries).
torch.topk gets the rows with every entry past row_len set to -inf (launch_topk never reads them),
and its indices of -inf entries become -1, our convention for unused slots.

Both are checked before they are timed: on every row, the selected values sorted must equal
torch.topk's values (a tie-aware exact check: which of several tied entries is chosen is free),
positions distinct, inside the row, -1 exactly in the unused slots; and kernels.checks.
selection_errors on sampled rows. A selection that fails is `failed-accuracy` and is not timed."""
from __future__ import annotations

import gc

import torch

from ..errors import HisaBenchError
from ..results import timed as is_timed
from .accuracy import sample_rows
from .timing import TimingSettings, time_call

BASELINE = "torch.topk"
OURS = "topk"
BACKENDS = (BASELINE, OURS)
_CHECK_ROWS = 64        # rows per step of the all-rows check (bounds its memory at 1M-wide rows)


def count_points(cfg, backends=None) -> int:
    return len(cfg.lengths) * len(cfg.inputs) * len(BACKENDS)


def score_rows_for(src, width: int, cfg):
    """(scores float32 [T, width], row_len int32 [T]) on cfg.device for one --inputs entry."""
    if src.kind != "dump":
        from ..inputs.score_rows import make_rows
        return make_rows(src.kind, cfg.queries, width, k=cfg.topk, seed=cfg.seed, device=cfg.device)
    from kernels.flat_scores_naive import flat_scores_ref
    from ..workloads import make_workload

    wl = make_workload("chunk", width, queries=cfg.queries, dtype=cfg.dtype, device=cfg.device, seed=cfg.seed,
                       inputs=src, topk=cfg.topk)
    rel = flat_scores_ref(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, dtype=torch.float32)
    scores = torch.full((rel.shape[0], width), float("-inf"), device=rel.device)
    scores[:, : rel.shape[1]] = rel
    return scores, (wl.ke - wl.ks).to(torch.int32)


def mask_past_row_len(scores, row_len):
    j = torch.arange(scores.shape[1], device=scores.device)
    return torch.where(j[None, :] < row_len[:, None].long(), scores, torch.full((), float("-inf"), device=scores.device))


def torch_topk_selection(masked, k: int):
    """torch.topk's answer in our convention: int32 [T, k] positions, -1 for -inf entries and pads."""
    T, W = masked.shape
    vals, idx = torch.topk(masked, min(k, W), dim=1)
    sel = torch.where(vals > float("-inf"), idx, -1).to(torch.int32)
    if k > W:
        sel = torch.cat([sel, torch.full((T, k - W), -1, dtype=torch.int32, device=sel.device)], 1)
    return sel


def exact_errors(sel, masked, k: int, max_report: int = 3) -> list[str]:
    """Problems of a selection on every row (see the module docstring); empty when right."""
    T, W = masked.shape
    problems = []
    kk = min(k, W)
    for t0 in range(0, T, _CHECK_ROWS):
        t1 = min(T, t0 + _CHECK_ROWS)
        s = masked[t0:t1]
        o = sel[t0:t1].long()
        chosen = o >= 0
        if bool(((o < -1) | (o >= W)).any()):
            r = int(torch.nonzero(((o < -1) | (o >= W)).any(1))[0, 0])
            problems.append(f"row {t0 + r}: slots hold values other than positions and -1 (unwritten?)")
            break
        want = (s > float("-inf")).sum(1).clamp(max=k)
        bad = chosen.sum(1) != want
        vals = torch.where(chosen, s.gather(1, o.clamp(0, W - 1)), torch.full((), float("-inf"), device=s.device))
        bad |= (chosen & (vals == float("-inf"))).any(1)
        # -1 only after the positions (the kernel's layout, and torch.topk's after conversion)
        bad |= (chosen[:, 1:] & ~chosen[:, :-1]).any(1)
        so = torch.sort(torch.where(chosen, o, -1 - torch.arange(o.shape[1], device=o.device)), dim=1).values
        bad |= ((so[:, 1:] == so[:, :-1]) & (so[:, 1:] >= 0)).any(1)
        ref = torch.topk(s, kk, dim=1).values
        got = torch.sort(vals, dim=1, descending=True).values[:, :kk]
        bad |= (got != ref).any(1)
        if k > kk:
            bad |= chosen[:, kk:].any(1)
        for r in torch.nonzero(bad).flatten().tolist()[: max_report - len(problems)]:
            t = t0 + r
            n_ok = int(chosen[r].sum())
            problems.append(f"row {t}: {n_ok} positions selected (expected {int(want[r])}), or not the top-{k} "
                            f"values, a duplicate, or an entry past the row")
        if len(problems) >= max_report:
            break
    return problems


def check(sel, scores, row_len, masked, k: int) -> list[str]:
    """The all-rows exact check, then kernels.checks.selection_errors on sampled rows."""
    from kernels.checks import selection_errors

    problems = exact_errors(sel, masked, k)
    if problems:
        return problems
    rows = sample_rows(scores.shape[0])
    idx = torch.tensor(rows, device=scores.device)
    return selection_errors(sel[idx], masked[idx], torch.zeros(len(rows), dtype=torch.int64), row_len[idx], k)


def _is_oom(e) -> bool:
    return isinstance(e, getattr(torch.cuda, "OutOfMemoryError", ())) or "out of memory" in str(e)


def run_sweep(cfg, backends=None, settings: TimingSettings | None = None, progress=None, ceilings=None):
    """Yields one row per (width, inputs, backend): torch.topk first (the baseline), then ours.
    (ceilings: unused; the speed command passes them to every sweep.)"""
    from kernels import topk as topk_kernels

    settings = settings or TimingSettings()
    k = cfg.topk
    for width in cfg.lengths:
        for src in cfg.inputs:
            base = dict(mode="topk", length=width, batch=1, queries=None, baseline=BASELINE, inputs=src.label,
                        heads=None, dim=None, topk=k, block_size=None, blocks=None, dtype="float32",
                        ragged=None, status="ok", note="")
            try:
                scores, row_len = score_rows_for(src, width, cfg)
                masked = mask_past_row_len(scores, row_len)
            except HisaBenchError:
                raise
            except Exception as e:
                if not _is_oom(e):
                    raise
                for name in BACKENDS:
                    yield dict(base, backend=name, status="oom", note="score rows do not fit in GPU memory")
                continue
            T = scores.shape[0]
            base["queries"] = T
            if src.kind == "dump":
                base["note"] = f"{src.label} layer {src.layer}: scores of its recorded queries"
            nbytes = int(row_len.long().sum()) * 4 + T * k * 4     # valid scores read once, indices written
            out = torch.empty((T, k), dtype=torch.int32, device=scores.device)
            scratch = topk_kernels.scratch_for(T, width, k, scores.device)
            calls = {
                BASELINE: (lambda: torch.topk(masked, min(k, width), dim=1),
                           lambda: torch_topk_selection(masked, k)),
                OURS: (lambda: topk_kernels.launch_topk(scores, k, row_len, out=out, scratch=scratch),
                       lambda: topk_kernels.launch_topk(scores, k, row_len, out=out, scratch=scratch)),
            }
            baseline_ms = None
            for name in BACKENDS:
                if progress:
                    progress(f"topk W={width} {name} [{src.label}]")
                row = dict(base, backend=name)
                timed, answer = calls[name]
                try:
                    if cfg.device == "cuda":
                        torch.cuda.synchronize()
                        torch.cuda.reset_peak_memory_stats()
                    out.fill_(-7)                       # an unwritten slot fails the check
                    sel = answer()
                    problems = check(sel, scores, row_len, masked, k) if cfg.check else []
                    if problems:
                        row.update(status="failed-accuracy", note="; ".join(problems[:2]))
                    else:
                        med, p20, p80 = time_call(timed, settings, cfg.device)
                        row.update(median_ms=med, p20_ms=p20, p80_ms=p80, checked=bool(cfg.check), bytes=nbytes,
                                   gbps=nbytes / (med * 1e-3) / 1e9)
                        if not cfg.check:
                            row["status"] = "unchecked"     # timed, but not checked
                        if cfg.device == "cuda":
                            row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
                except Exception as e:
                    if isinstance(e, HisaBenchError):
                        raise
                    row.update(status="oom" if _is_oom(e) else "error",
                               note="out of GPU memory" if _is_oom(e) else f"{type(e).__name__}: {str(e)[:200]}")
                if name == BASELINE and is_timed(row["status"]):
                    baseline_ms = row["median_ms"]
                if is_timed(row["status"]) and baseline_ms:
                    row["speedup"] = baseline_ms / row["median_ms"]
                yield row
            del scores, row_len, masked, out, scratch
            gc.collect()
            if cfg.device == "cuda":
                torch.cuda.empty_cache()


def print_table(rows, interp: bool):
    import sys

    from rich.console import Console
    from rich.table import Table

    title = "hisa-bench speed --mode topk" + ("  [CPU / Triton interpreter: NOT GPU timings]" if interp else "")
    t = Table(title=title)
    for c in ("W", "rows", "k", "inputs", "backend", "median ms", "GB/s", "vs torch.topk", "status"):
        t.add_column(c, justify="left" if c in ("inputs", "backend", "status") else "right")
    for r in rows:
        ok = is_timed(r["status"])
        W = r["length"]
        t.add_row(f"{W // 1024}K" if W % 1024 == 0 else str(W), str(r.get("queries") or "-"), str(r["topk"]),
                  r["inputs"], r["backend"], f"{r['median_ms']:.3f}" if ok else "-",
                  f"{r['gbps']:.0f}" if ok else "-", f"{r['speedup']:.2f}x" if ok and r.get("speedup") else "-",
                  r["status"] + (f" ({r['note']})" if r.get("note") and not ok else ""))
    console = Console() if sys.stdout.isatty() else Console(width=160)
    console.print(t)
