"""The speed sweep behind `hisa-bench speed`: for each (mode, length, batch) build one workload,
then for each backend: prepare, check accuracy on sampled queries, and only then time it, end to
end and stage by stage. Rows follow docs/results-format.md."""
from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass, field

import torch

from ..backends import BASELINE, Backend
from ..errors import HisaBenchError
from ..results import timed
from ..workloads import InputSource, make_workload
from . import accuracy
from .timing import TimingSettings, time_call

STAGES = ("pool", "block_scores", "block_topk", "token_scores", "token_topk", "token_fused", "scores", "topk",
          "expand")


@dataclass
class SweepConfig:
    modes: list
    lengths: list
    batches: list
    queries: int = 1024
    heads: int = 64
    dim: int = 128
    topk: int = 2048
    block_sizes: list = field(default_factory=lambda: [128])
    blocks: list = field(default_factory=lambda: [64])
    dtype: str = "fp8"
    ragged: bool = False
    seed: int = 0
    device: str = "cuda"
    check: bool = True
    stages: bool = True
    prefill_chunk: int | None = None
    inputs: list = field(default_factory=lambda: [InputSource("random", "random")])   # --inputs


class GpuContextLost(HisaBenchError):
    """A sticky CUDA error (illegal address, launch failure): this process can run nothing more
    on the GPU. The sweep stops after the row that hit it; the rows before it are kept."""

    exit_code = 5


# CUDA errors after which the context is unusable (every later call fails with the same error)
STICKY_CUDA_ERRORS = ("illegal memory access", "unspecified launch failure", "misaligned address",
                      "device-side assert", "illegal instruction", "an illegal", "uncorrectable ECC",
                      "hardware stack error", "launch timed out")


def _context_lost(e, device: str) -> bool:
    if any(s in str(e) for s in STICKY_CUDA_ERRORS):
        return True
    if device != "cuda":
        return False
    try:   # an asynchronous fault surfaces at the next synchronisation
        torch.cuda.synchronize()
        torch.ones(1, device="cuda").add_(1).item()
        return False
    except Exception:
        return True


def _is_oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) if hasattr(torch.cuda, "OutOfMemoryError") else \
        "out of memory" in str(e)


def _shape_points(cfg: SweepConfig):
    for mode in cfg.modes:
        for length in cfg.lengths:
            for batch in (cfg.batches if mode == "decode" else [1]):
                for src in cfg.inputs:
                    yield src, mode, length, batch


def _grid(cfg, backend):
    if backend.method == "flat":
        return [(cfg.block_sizes[0], cfg.blocks[0])]
    if backend.method == "block-sparse":
        # it keeps topk // B blocks whatever --blocks says: one point per block size, not per (B, m)
        return [(b, cfg.topk // b) for b in cfg.block_sizes if cfg.topk // b >= 2]
    return [(b, m) for b in cfg.block_sizes for m in cfg.blocks if b * m >= cfg.topk]


def count_points(cfg, backends):
    return sum(len(_grid(cfg, b)) for _ in _shape_points(cfg) for b in backends)


def run_sweep(cfg: SweepConfig, backends: list[Backend], settings: TimingSettings, progress=None,
              ceilings: dict | None = None):
    """Yields one result row (dict) per (inputs, mode, length, batch, backend, grid point).

    A failure costs its own row (status error / oom, the message in note), not the run. After a
    sticky CUDA error the GPU cannot be used again in this process: the row that hit it is
    yielded, then GpuContextLost is raised, so the caller can keep what was measured."""
    for src, mode, length, batch in _shape_points(cfg):
        wl = None
        wl_error = None
        try:
            wl = make_workload(mode, length, batch=batch, queries=cfg.queries, heads=cfg.heads, dim=cfg.dim,
                               dtype=cfg.dtype, device=cfg.device, seed=cfg.seed,
                               # decode sequences start on a block edge for every block size of the grid
                               block_size=max(cfg.block_sizes),
                               ragged=cfg.ragged, query_chunk=cfg.prefill_chunk, inputs=src, topk=cfg.topk)
        except Exception as e:
            if not _is_oom(e):
                if isinstance(e, HisaBenchError):
                    raise                # a bad option or input file: one line, before any timing
                wl_error = e
        # a dump brings its own H and D: they win over --heads/--dim, and the row says so
        heads, dim = (src.heads, src.dim) if src.kind == "dump" else (cfg.heads, cfg.dim)
        pcfg = dataclasses.replace(cfg, heads=heads, dim=dim)
        in_note = wl.info.get("inputs_note", "") if wl else ""
        if src.kind == "dump" and (heads, dim) != (cfg.heads, cfg.dim):
            in_note += f"; the dump's H = {heads}, D = {dim} (not --heads {cfg.heads} --dim {cfg.dim})"
        baseline_ms = None
        for backend in backends:
            for block_size, blocks in _grid(cfg, backend):
                row = dict(mode=mode, length=length, batch=batch, queries=wl.queries if wl else None,
                           backend=backend.name, baseline=BASELINE, inputs=src.label, heads=heads, dim=dim,
                           topk=cfg.topk,
                           block_size=block_size if backend.method != "flat" else None,
                           blocks=blocks if backend.method == "hisa" else (cfg.topk // block_size if backend.method == "block-sparse" else None),
                           dtype=cfg.dtype, ragged=cfg.ragged if mode == "decode" else None,
                           status="ok", note=in_note)
                if progress:
                    progress(f"{mode} L={length}" + (f" B={batch}" if mode == "decode" else "") + f" {backend.name}"
                             + (f" B{block_size} m{blocks}" if backend.method == "hisa" else "") + f" [{src.label}]")
                if wl is None:
                    if wl_error is None:
                        row.update(status="oom", note="inputs do not fit in GPU memory")
                    else:
                        row.update(status="error", note="building the inputs: " + _note(wl_error))
                    yield row
                    if wl_error is not None and _context_lost(wl_error, cfg.device):
                        raise GpuContextLost(_lost_message(wl_error, row))
                    continue
                lost = None
                try:
                    row.update(_measure(backend, wl, pcfg, settings, block_size, blocks, mode, ceilings or {}))
                except HisaBenchError as e:
                    if backend.ours and not isinstance(e, GpuContextLost):
                        raise            # ours only raise it for a bad configuration: stop the run
                    row.update(status="error", note=_note(e))
                except Exception as e:
                    if _is_oom(e):
                        row.update(status="oom", note="out of GPU memory")
                    else:
                        row.update(status="error", note=_note(e))
                        if _context_lost(e, cfg.device):
                            lost = e
                    if cfg.device == "cuda" and lost is None:
                        torch.cuda.empty_cache()
                if lost is not None:
                    yield row
                    raise GpuContextLost(_lost_message(lost, row))
                if backend.name == BASELINE and timed(row["status"]):
                    baseline_ms = row["median_ms"]
                if timed(row["status"]) and baseline_ms:
                    row["speedup"] = baseline_ms / row["median_ms"]
                yield row
                gc.collect()
        del wl
        gc.collect()
        if cfg.device == "cuda":
            torch.cuda.empty_cache()


def _lost_message(e, row):
    where = f"{row['mode']} L={row['length']}" + (f" batch={row['batch']}" if row["mode"] == "decode" else "")
    return (f"{_note(e)} ({where}, backend {row['backend']}): the GPU cannot be used again in this "
            f"process; the rows measured before it are in the run folder")


def _note(e):
    """One line for the note column: the exception type and its message's first line (if any)."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


CEILING_KEYS = {"fp8": ("fp8_matmul_tflops", "fp8"), "bf16": ("bf16_matmul_tflops", "bf16"),
                "fp16": ("bf16_matmul_tflops", "bf16")}


def tflops_flag(tflops: float, dtype: str, ceilings: dict) -> str | None:
    """A note when a rate is above what the GPU's own matmul did in this run: then the FLOP
    count or the timing is wrong, and the figure must not be read as a rate."""
    key, name = CEILING_KEYS.get(dtype, (None, None))
    ceiling = ceilings.get(key) if key else None
    if ceiling and tflops > ceiling:
        return f"above the measured {name} matmul ceiling ({ceiling:.0f} TFLOP/s): not a real rate"
    return None


def charged_flops(backend, prepared, wl, cfg, block_size, blocks) -> int:
    """Our pipelines report their own FLOPs; any other backend is charged what our pipeline of
    its method does on the same workload (one formula, kernels/indexers.py), whatever it says."""
    if prepared is not None and backend.ours:
        return prepared.flops
    from kernels.indexers import selection_flops

    return selection_flops(backend.method, wl.ks, wl.ke, cfg.heads, cfg.dim, topk=cfg.topk,
                           block_size=block_size, blocks=blocks, query_chunk=wl.query_chunk)


def _measure(backend, wl, cfg, settings, block_size, blocks, mode, ceilings=None):
    dev = cfg.device
    kw = dict(topk=cfg.topk, block_size=block_size, blocks=blocks)
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    prepared = update = None
    if backend.prepare is not None:
        # our HISA and block-sparse keep their pooled keys up to date in decode and chunk steps (the
        # update below); a user backend's prepare keeps the rule it always had: pooling is left out
        # of decode steps only
        pool_inside = mode == "prefill" if backend.ours else mode != "decode"
        prepared = backend.prepare(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, query_chunk=wl.query_chunk,
                                   include_pooling=pool_inside, **kw)
        call = prepared.run
        update = _pool_update(backend, prepared, wl, block_size, mode)
        if update is not None:
            # what serving pays per decode step or prefill chunk: the blocks its new keys land in are
            # re-pooled (earlier blocks were pooled when their keys arrived), then the selection
            # runs; the gate below checks the selection made after the update
            select = prepared.run

            def call():
                update()
                return select()
    else:
        def call():
            return backend.fn(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, **kw)
    sel = call()
    if not (isinstance(sel, torch.Tensor) and sel.dtype == torch.int32 and tuple(sel.shape) == (wl.queries, cfg.topk)):
        got = f"{getattr(sel, 'dtype', type(sel).__name__)} {tuple(getattr(sel, 'shape', ()))}"
        return dict(status="failed-accuracy", note=f"returned {got}, expected int32 [{wl.queries}, {cfg.topk}]")
    if cfg.check:
        kept = prepared.state.get("kept") if prepared is not None and backend.ours else None
        problems = accuracy.check(backend.method, sel, wl, accuracy.sample_rows(wl.queries), kept=kept,
                                  stage1=getattr(backend, "stage1", "relu"), **kw)
        if problems:
            return dict(status="failed-accuracy", note="; ".join(problems[:2]))
    # every call runs from a CUDA graph: decode and chunk steps are many short launches, and a
    # prefill is 128 chunks of them at 128K; timed eagerly they measure how fast this host issues
    # Python launches (an H200's HISA chunk at 32K read 0.30 or 0.35 ms from one machine to the next,
    # its 10-30 us kernels timed at up to three times their length; its 32K prefill 12.4 or 9 ms).
    # A serving engine's host runs ahead of the GPU: the figure is what the GPU spends.
    s = TimingSettings(settings.warmup_ms, settings.rep_ms, settings.min_reps, cuda_graph=True)
    how = {}
    med, p20, p80 = time_call(call, s, dev, info=how)
    out = dict(median_ms=med, p20_ms=p20, p80_ms=p80, checked=bool(cfg.check), timing=how.get("timing"))
    if not cfg.check:
        out["status"] = "unchecked"      # timed, but no gate vouches for the selection
    if dev == "cuda":
        out["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
    flops = charged_flops(backend, prepared, wl, cfg, block_size, blocks)
    out["flops"] = flops
    out["tflops"] = flops / (med * 1e-3) / 1e12
    flag = tflops_flag(out["tflops"], cfg.dtype, ceilings or {})
    if flag:
        out["tflops_flag"] = flag
        out["note"] = f"TFLOP/s {flag}"
    if prepared is not None:
        out["gbps"] = prepared.bytes / (med * 1e-3) / 1e9
        out["bytes"] = prepared.bytes
    if cfg.stages and prepared is not None and len(prepared.stages) > 1:
        for name, fn in prepared.stages.items():
            out[f"stage_{name}_ms"] = time_call(fn, s, dev)[0]
    if update is not None:
        out["pool_update_ms"] = time_call(update, s, dev)[0]     # its share, also inside median_ms
    return out


def _pool_update(backend, prepared, wl, block_size, mode):
    """Decode and chunk with our HISA / block-sparse: the pooled-key update of the blocks the step's
    new keys land in (decode: one key per sequence; chunk: the chunk's own keys, 8-9 blocks for
    1024 queries at B 128), as a callable. None in prefill (which pools every key once, inside the
    timed call), for flat, and where every query is trivial (no pooled state exists then)."""
    if mode not in ("decode", "chunk") or backend.method == "flat" or not backend.ours \
            or prepared.state.get("kbar") is None:
        return None
    from kernels.indexers import prepare_pool_update
    st = prepared.state
    # under this grid point's block size (the workload's may differ), each block once
    if mode == "decode":
        # each sequence's new key is its query's newest visible one, ke - 1
        new_blocks = torch.unique((wl.ke - 1).clamp_min(0) // block_size)
    else:
        # a chunk step adds its M newest keys, those ending at the last query's range: so with a
        # dump's recorded queries too, wherever they stand in the context
        end = int(wl.ke.max())
        first = max(end - wl.queries, 0) // block_size
        new_blocks = torch.arange(first, (end - 1) // block_size + 1, device=wl.ke.device)
    new_blocks = new_blocks.to(torch.int32)
    return prepare_pool_update(wl.k, wl.k_scale, block_size, st["kbar"], st["kbar_scale"], new_blocks)
