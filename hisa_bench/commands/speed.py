"""`hisa-bench speed`: time the flat and hierarchical indexers across context lengths."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer

from ..errors import HisaBenchError, NoGpuError, RowsFailed
from ..results import FAILED_STATUSES, check_tag, timed

# Interpreter-sized defaults for --device cpu: the same code paths, shapes a CPU can run in seconds.
CPU_DEFAULTS = dict(lengths="512,1k", queries=16, heads=4, dim=32, topk=64, block_size="32", blocks="4", batch="1,4")
GPU_DEFAULTS = dict(lengths="8k,32k,128k", queries=1024, heads=64, dim=128, topk=2048, block_size="128",
                    blocks="64", batch="1,8,64")
CPU_MAX_LENGTH = 16384


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise HisaBenchError(f"{what}: expected comma-separated whole numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise HisaBenchError(f"{what}: expected positive whole numbers, got {text!r}")
    return vals


def register(app: typer.Typer):
    @app.command("speed")
    def speed(
        lengths: Optional[str] = typer.Option(None, help="Context lengths, comma list (k = 1024, m = 1024^2). "
                                              "Default 8k,32k,128k (CPU: 512,1k; at most 16k)."),
        mode: str = typer.Option("chunk", help="chunk (M queries at the tail), prefill (whole causal sequence), "
                                 "decode (a batch of single queries); comma list for several. topk (alone): "
                                 "the row top-k by itself against torch.topk, rows of --lengths wide."),
        inputs: Optional[str] = typer.Option(None, help="What the timed tensors hold, comma list: random, structured "
                                             "(sinks, recency, topics, exact zeros), PATH.pt (a dump's own q/k/w; "
                                             "PATH.pt@LAYER for one layer). Default random,structured (CPU: "
                                             "random). --mode topk: row kinds (random, structured, window, zeros, "
                                             "equal, causal, clusters; all = every one, the default) and dumps "
                                             "(docs/inputs.md)."),
        queries: Optional[int] = typer.Option(None, help="Queries per timed call: chunk mode's M, prefill's query "
                                              "chunk. Default 1024 (CPU: 16)."),
        batch: Optional[str] = typer.Option(None, help="Decode batch sizes, comma list. Default 1,8,64 (CPU: 1,4)."),
        ragged: bool = typer.Option(False, help="Decode: context lengths drawn between L/2 and L."),
        heads: Optional[int] = typer.Option(None, help="Indexer heads H, 1..128. Default 64 (CPU: 4)."),
        dim: Optional[int] = typer.Option(None, help="Head dim D, a multiple of 16. Default 128 (CPU: 32)."),
        topk: Optional[int] = typer.Option(None, help="Keys selected per query. Default 2048 (CPU: 64)."),
        block_size: Optional[str] = typer.Option(None, "--block-size", help="HISA block size B, a power of two; "
                                                 "comma list for a grid. Default 128 (CPU: 32)."),
        blocks: Optional[str] = typer.Option(None, help="HISA blocks kept m (m x B >= top-k); comma list for a grid. "
                                             "Default 64 (CPU: 4)."),
        dtype: str = typer.Option("fp8", help="fp8 (e4m3 with a scale per key), bf16 or fp16."),
        backend: str = typer.Option("flat,hisa,block-sparse", help="Backends: flat (the baseline, always run), "
                                    "flat-pruned (flat whose top-k reads only the score groups that can hold a "
                                    "top-k score), hisa, "
                                    "hisa-raw (HISA, blocks ranked without the ReLU), "
                                    "hisa-fused (HISA with its token stage in one kernel), "
                                    "block-sparse, flat-torch, or your own as module:function or file.py:function "
                                    "taking (q, k, w, ks, ke, k_scale, *, topk, block_size, blocks) and returning "
                                    "int32 [T, topk] positions (docs: hisa_bench/backends.py)."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv (json/csv: stdout holds only data)."),
        out: str = typer.Option("reports/runs", help="Parent folder of the run folder."),
        device: str = typer.Option("cuda", help="cuda, or cpu for tiny shapes through the Triton interpreter "
                                    "(also on a machine with a GPU: the command interprets the kernels then)."),
        seed: int = typer.Option(0, help="Seed of the synthetic inputs."),
        warmup_ms: float = typer.Option(25.0, help="Warm-up per measurement (ms; GPU only)."),
        rep_ms: float = typer.Option(200.0, help="Time spent on timed repetitions per measurement (ms)."),
        check: bool = typer.Option(True, help="Accuracy gate before timing (tie-aware, on sampled queries)."),
        stages: bool = typer.Option(True, help="Also time each stage (HISA: pool, block scores, block top-k, "
                                    "token scores, token top-k)."),
        tag: Optional[str] = typer.Option(None, help="Suffix of the run folder name (letters, digits, . _ -)."),
        wide: bool = typer.Option(False, "--wide", help="Every column in the table (p20-p80, TFLOP/s, stages); "
                                  "CSV and JSON always have them."),
    ):
        """Time flat, HISA and block-sparse selection (and your backends) across context lengths, after
        checking each one's accuracy. Writes a run folder with speed.csv, speed.json and env.json.

        Without a GPU, --device cpu runs tiny shapes through the Triton interpreter (not GPU timings)."""
        if fmt not in ("table", "json", "csv"):
            raise HisaBenchError(f"--format must be table, json or csv, got {fmt!r}")
        if not str(out).strip():
            raise HisaBenchError("--out: expected a folder, got an empty string")
        out = Path(out)
        if not backend.strip(" ,"):
            from ..backends import OUR_NAMES
            raise HisaBenchError(f"--backend: expected backend names ({', '.join(OUR_NAMES)} or "
                                 "module:function), got an empty string")
        if device not in ("cuda", "cpu"):
            raise HisaBenchError(f"--device must be cuda or cpu, got {device!r}")
        if device == "cpu":
            prefer_interpreter()       # before anything imports the kernels
        from ..lengths import parse_lengths
        from ..workloads import MODES

        d = CPU_DEFAULTS if device == "cpu" else GPU_DEFAULTS
        length_list = parse_lengths(lengths if lengths is not None else d["lengths"])
        modes = [m.strip() for m in mode.split(",") if m.strip()]
        if not modes:
            raise HisaBenchError(f"--mode: expected chunk, prefill or decode, got {mode!r}")
        for m in modes:
            if m not in MODES + ("topk",):
                raise HisaBenchError(f"--mode: expected chunk, prefill, decode or topk, got {m!r}")
        if "topk" in modes and len(modes) > 1:
            raise HisaBenchError("--mode topk times the row top-k alone: run it on its own, not with "
                                 f"{', '.join(m for m in modes if m != 'topk')}")
        if device == "cpu" and max(length_list) > CPU_MAX_LENGTH:
            raise HisaBenchError(f"--device cpu runs the Triton interpreter: lengths up to {CPU_MAX_LENGTH}, "
                                 f"got {max(length_list)}")
        if dtype not in ("fp8", "bf16", "fp16"):
            raise HisaBenchError(f"--dtype must be fp8, bf16 or fp16, got {dtype!r}")
        for name, v, lo in (("--warmup-ms", warmup_ms, 0.0), ("--rep-ms", rep_ms, 0.0)):
            if not (math.isfinite(v) and v >= lo):
                raise HisaBenchError(f"{name} must be a finite number >= {lo:g}, got {v}")
        from ..measure.speed import SweepConfig

        def pick(value, key):
            return d[key] if value is None else value     # 0 is a value to reject, not "use the default"

        cfg = SweepConfig(
            modes=modes, lengths=length_list, batches=_ints(pick(batch, "batch"), "--batch"),
            queries=pick(queries, "queries"), heads=pick(heads, "heads"), dim=pick(dim, "dim"),
            topk=pick(topk, "topk"), block_sizes=_ints(pick(block_size, "block_size"), "--block-size"),
            blocks=_ints(pick(blocks, "blocks"), "--blocks"), dtype=dtype, ragged=ragged, seed=seed,
            device=device, check=check, stages=stages)
        backend_names = [b.strip() for b in backend.split(",") if b.strip()]
        if modes == ["topk"]:       # no indexer runs: only the row shape matters
            for name, v in (("--queries", cfg.queries), ("--topk", cfg.topk)):
                if v < 1:
                    raise HisaBenchError(f"{name} must be at least 1, got {v}")
        else:
            _validate(cfg, backend_names)
        check_tag(tag)
        from ..measure.inputs_option import resolve_inputs

        cfg.inputs = resolve_inputs(inputs, cfg, topk_mode=modes == ["topk"])
        if modes == ["topk"]:
            backends = []
        else:
            from ..backends import resolve

            backends = resolve(backend_names)      # loads user backends: their errors are option errors too
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise NoGpuError("no CUDA GPU found: `hisa-bench speed` times GPU kernels; use --device cpu for a tiny "
                             "interpreter run")
        use_kernels_on(device)
        _run(cfg, backends, fmt, out, tag, warmup_ms, rep_ms, wide)


def prefer_interpreter():
    """--device cpu: Triton picks compiled or interpreted kernels when they are first imported, so
    on a machine with a GPU, TRITON_INTERPRET=1 must be set before that (as it is in a fresh
    process, the console script's case)."""
    import os

    if "kernels._runtime" not in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        os.environ["TRITON_INTERPRET"] = "1"


def use_kernels_on(device: str):
    """One-line error when the kernels this process loaded cannot run on `device` (compiled
    kernels take CUDA tensors, interpreted ones CPU tensors; a process cannot switch)."""
    import os

    from kernels import _runtime

    if _runtime.DEVICE != device:
        raise HisaBenchError(f"--device {device}: the kernels were already loaded for {_runtime.DEVICE} in this "
                             f"process (TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', 'unset')}); run the "
                             f"command in a fresh process" + (" without TRITON_INTERPRET=1" if device == "cuda" else ""))


def _validate(cfg, backend_names):
    if cfg.queries < 1:
        raise HisaBenchError(f"--queries must be at least 1, got {cfg.queries}")
    if cfg.topk < 1:
        raise HisaBenchError(f"--topk must be at least 1, got {cfg.topk}")
    if not 1 <= cfg.heads <= 128:
        raise HisaBenchError(f"--heads must be 1..128, got {cfg.heads}")
    if cfg.dim % 16 or not 16 <= cfg.dim <= 256:
        raise HisaBenchError(f"--dim must be a multiple of 16 in 16..256, got {cfg.dim}")
    for b in cfg.block_sizes:
        if b < 16 or b & (b - 1):
            raise HisaBenchError(f"--block-size must be a power of two >= 16, got {b}")
    if any(m < 2 for m in cfg.blocks):
        raise HisaBenchError(f"--blocks must be at least 2 (first and last visible blocks are forced), "
                             f"got {min(cfg.blocks)}")
    if not any(b * m >= cfg.topk for b in cfg.block_sizes for m in cfg.blocks):
        b, m = cfg.block_sizes[0], cfg.blocks[0]
        raise HisaBenchError(f"blocks x block size must cover top-k: {m} x {b} = {m * b} < {cfg.topk}")
    if "block-sparse" in backend_names and min(cfg.block_sizes) * 2 > cfg.topk:
        raise HisaBenchError(f"block-sparse keeps top-k // B blocks, at least two: --topk must be at least "
                             f"{2 * min(cfg.block_sizes)} with --block-size {min(cfg.block_sizes)}")


def _run(cfg, backends, fmt, out, tag, warmup_ms, rep_ms, wide):
    from rich.console import Console
    from ..progress import progress_bar

    from ..environment import stamp
    from ..measure.speed import count_points, run_sweep
    from ..measure import topk_speed

    topk_mode = cfg.modes == ["topk"]
    if topk_mode:     # the row top-k alone: its own rows, same run folder format
        count_points, run_sweep = topk_speed.count_points, topk_speed.run_sweep
    from ..measure.timing import TimingSettings
    from ..results import RunFolder

    settings = TimingSettings(warmup_ms=warmup_ms, rep_ms=rep_ms)
    err = Console(stderr=True)
    rows = []
    ceilings = {}
    if cfg.device == "cuda":
        from ..measure.ceilings import measure_ceilings
        err.print("measuring the GPU's matmul and copy ceilings ...")
        ceilings = measure_ceilings()
    from ..measure.speed import GpuContextLost

    interp = cfg.device == "cpu"
    # stamped before the sweep: after a sticky CUDA error nothing may touch the GPU again
    env = stamp(timing=settings.as_dict(cfg.device), device="cpu-interpreter" if interp else "cuda")
    aborted = None
    with RunFolder(out, "speed", tag) as run:
        with progress_bar() as bar:
            task = bar.add_task("speed", total=count_points(cfg, backends))
            try:
                for row in run_sweep(cfg, backends, settings, ceilings=ceilings,
                                     progress=lambda d: bar.update(task, description=d)):
                    rows.append(row)
                    bar.advance(task)
            except GpuContextLost as e:     # keep what was measured, then fail on one line
                aborted = e
        for r in rows:
            r["device"] = "cpu-interpreter" if interp else "cuda"
        config = dict(vars(cfg), backends=[b.name for b in backends], baseline="flat",
                      timing=settings.as_dict(cfg.device), interpreter=interp)
        config["inputs"] = [s.label for s in cfg.inputs]
        if topk_mode:
            config.update(backends=list(topk_speed.BACKENDS), baseline=topk_speed.BASELINE)
        frame = _frame(rows)
        run.json("env.json", env)
        run.json("speed.json", {"config": config, "rows": rows, "ceilings": ceilings, "label": "CPU / Triton interpreter: not GPU "
                                "timings" if interp else None, "aborted": str(aborted) if aborted else None})
        run.csv("speed.csv", frame)
        folder = run.commit()
    err.print(f"run folder: {folder}")
    if aborted is not None:
        raise aborted
    if fmt == "json":
        print(json.dumps({"config": config, "rows": rows, "run": str(folder)}, default=str))
    elif fmt == "csv":
        sys.stdout.write(frame.to_csv(index=False))
    elif topk_mode:
        topk_speed.print_table(rows, interp)
    else:
        _print_table(rows, interp, wide)
    failed = [r for r in rows if r["status"] in FAILED_STATUSES]
    if failed:
        kinds = ", ".join(f"{sum(r['status'] == s for r in failed)} {s}" for s in FAILED_STATUSES
                          if any(r["status"] == s for r in failed))
        raise RowsFailed(f"{len(failed)} of {len(rows)} rows failed ({kinds}): see the status and note "
                         f"columns in {folder}")


def _frame(rows):
    """Rows as a table whose whole-number columns stay whole numbers where some rows leave them
    empty (flat has no block size): pandas would otherwise write 128 as 128.0."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for c in frame.columns:
        vals = [r.get(c) for r in rows]
        present = [v for v in vals if v is not None]
        if present and len(present) < len(vals) and \
                all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[c] = pd.array(vals, dtype="Int64")
    return frame


def _stages_text(r):
    text = " ".join(f"{k[6:-3]}={r[k]:.3f}" for k in r if k.startswith("stage_") and r[k] is not None)
    if r.get("pool_update_ms") is not None:
        text += f" pool_update={r['pool_update_ms']:.4f}"
    return text


def speed_columns():
    """The table's columns, in order; `wide` ones only with --wide. Add a column here."""
    from ..tables import Column, sig

    def ok(fn):
        return lambda r: fn(r) if timed(r["status"]) else "-"

    return [
        Column("mode", lambda r: r["mode"], numeric=False),
        Column("L", lambda r: _fmt_len(r["length"])),
        Column("batch", lambda r: str(r["batch"])),
        Column("backend", lambda r: r["backend"] + (f" [{r['inputs']}]" if r.get("inputs") else ""), numeric=False),
        Column("B/m", lambda r: f"{r['block_size']}/{r['blocks']}" if r.get("block_size") else "-"),
        Column("median ms", ok(lambda r: f"{r['median_ms']:.3f}")),
        Column("p20-p80 ms", ok(lambda r: f"{r['p20_ms']:.3f}-{r['p80_ms']:.3f}"), wide=True),
        Column("TFLOP/s", ok(lambda r: sig(r.get("tflops"))), wide=True),
        Column("speedup", ok(lambda r: f"{r.get('speedup', float('nan')):.2f}x")),
        Column("stages ms", ok(_stages_text), numeric=False, wide=True),
        # a rate above the GPU's measured ceiling means a broken measurement: said in the default columns
        Column("status", lambda r: r["status"] + (" above ceiling!" if r.get("tflops_flag") else "")
               + (f" ({r['note']})" if r.get("note") else ""), numeric=False),
    ]


def _print_table(rows, interp, wide=False):
    from ..tables import build, console_for_tables, wide_hint

    title = "hisa-bench speed" + ("  [CPU / Triton interpreter: NOT GPU timings]" if interp else "")
    cols = speed_columns()
    console_for_tables(wide).print(build(title, cols, rows, wide=wide, caption=wide_hint(cols, wide)))


def _fmt_len(n):
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)
