"""`hisa-bench quality`: does the selection matter? Perplexity of SmolLM2-135M when its attention
layers read only the keys flat top-k, HISA or block-sparse keeps (docs/fidelity.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

FORMATS = ("table", "json", "csv")
CPU_CONTEXT = 1024


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(rows, model, console):
    from rich import box
    from rich.table import Table

    # fits 80 columns; the per-layer attention error is in layers.csv and quality.json
    table = Table(title=f"perplexity, context {rows[0]['tokens'] + 1} "
                        f"(model's own forward {model['perplexity_model']:.3f})", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("method", "k", "B", "m", "stage1", "ppl", "vs dense", "vs flat", "IoU"):
        table.add_column(col, justify="left" if col in ("method", "stage1") else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["method"], _fmt(r["topk"], "d"), _fmt(r["block_size"], "d"), _fmt(r["blocks"], "d"),
                      r["stage1"] or "-", f"{r['ppl']:.3f}", f"{r['d_dense_pct']:+.2f}%",
                      "-" if r["d_flat_pct"] is None else f"{r['d_flat_pct']:+.2f}%",
                      _fmt(r["iou_mean"], ".3f"))
    console.print(table)


def register(app: typer.Typer):
    @app.command("quality")
    def quality(
        context: str = typer.Option(None, "--context", help=f"Tokens of the text in the one forward (512, 4k, ...); "
                                    f"default {CPU_CONTEXT} on cpu, the model's trained context on cuda."),
        topk: str = typer.Option("64,128", "--topk", help="Keys each query keeps; a comma list makes a grid."),
        block_size: str = typer.Option("16,32", "--block-size", help="Block size B (powers of two >= 16); comma list."),
        blocks: str = typer.Option("8,16", "--blocks", help="HISA blocks kept m (m*B >= k); comma list."),
        method: str = typer.Option("flat,hisa,block-sparse", "--method",
                                   help="Sparse methods beside dense: flat, hisa, block-sparse."),
        stage1: str = typer.Option("relu", "--stage1", help="HISA / block-sparse stage-1 rule(s): relu (paper), raw, "
                                   "relu-tiebreak, erelu, ucb, centroids2, centroids4, oracle (a ceiling)."),
        layers: str = typer.Option("all", "--layers", help="Model layers that attend sparsely (comma list or all); "
                                   "the others keep the model's own attention."),
        per_layer: bool = typer.Option(False, "--per-layer", help="Also one forward per (point, layer) with only "
                                       "that layer sparse: per-layer perplexity change (layer_ppl.csv)."),
        text: Path = typer.Option(None, "--text", help="UTF-8 text (default: the shipped Alice in Wonderland, as capture)."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv (json/csv: stdout holds only data)."),
        out: str = typer.Option("reports/runs", "--out", help="Parent folder of the run folder."),
        tag: str = typer.Option(None, "--tag", help="Suffix of the run folder name."),
    ):
        """Perplexity under sparse attention: dense, flat top-k, HISA at each (B, m) and block-sparse,
        one selection per query and KV head (shared by its query heads), from the indexer proxy score.

        Writes quality.json, quality.csv, layers.csv, positions.csv (and layer_ppl.csv) and env.json."""
        from ..capture.pipeline import DEFAULT_TEXT, parse_layers
        from ..environment import stamp
        from ..errors import HisaBenchError
        from ..lengths import parse_length
        from ..measure.options import int_list, name_list, resolve_device
        from ..measure.stage1 import STAGE1
        from ..progress import progress_bar
        from ..quality.grid import METHODS, make_points
        from ..quality.run import (LAYER_COLUMNS, LAYER_PPL_COLUMNS, POSITION_COLUMNS, ROW_COLUMNS,
                                   run_quality)
        from ..results import RunFolder, check_tag

        if fmt not in FORMATS:
            raise HisaBenchError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        check_tag(tag)
        dev = resolve_device(device)
        if context is None and dev.type == "cuda":   # the model's full trained context
            from ..capture.gguf_llama import open_gguf
            from ..capture.smollm2 import smollm2_gguf

            n_ctx = int(open_gguf(smollm2_gguf()[0]).field("llama.context_length"))
        elif context is None:
            n_ctx = CPU_CONTEXT
        else:
            try:
                n_ctx = parse_length(context)
            except HisaBenchError as e:
                raise HisaBenchError(f"--context: {e}") from None
        if n_ctx < 2:
            raise HisaBenchError(f"--context {n_ctx}: expected at least 2 tokens")
        points, notes = make_points(int_list(topk, "--topk"), int_list(block_size, "--block-size"),
                                    int_list(blocks, "--blocks"), name_list(method, "--method", METHODS),
                                    name_list(stage1, "--stage1", STAGE1), n_ctx)
        chosen = parse_layers(layers)
        text_path = Path(text) if text is not None else DEFAULT_TEXT
        for note in notes:
            print(f"hisa-bench: note: {note}", file=sys.stderr)

        import pandas as pd

        with progress_bar() as progress:
            tasks = {}

            def on_step(kind, done, total):
                if kind not in tasks:
                    label = "loading SmolLM2-135M" if kind == "load" else f"{len(points)} points, forward layers"
                    tasks[kind] = progress.add_task(label, total=total)
                progress.update(tasks[kind], completed=done, total=total)

            res = run_quality(text_path=text_path, context=n_ctx, points=points, layers=chosen, device=dev,
                              per_layer=per_layer, budget_bytes=(1 << 31) if dev.type == "cuda" else (1 << 28),
                              on_step=on_step)
        config = {"context": n_ctx, "topk": int_list(topk, "--topk"), "block_size": int_list(block_size, "--block-size"),
                  "blocks": int_list(blocks, "--blocks"), "methods": name_list(method, "--method", METHODS),
                  "stage1": name_list(stage1, "--stage1", STAGE1), "layers": chosen or "all", "per_layer": per_layer,
                  "device": dev.type, "tie_rule": "low",
                  "score": "indexer proxy of capture: keys centred over the window, w = 1/H, mean_h relu(q.k)",
                  "attn_rel_err": "||a - a_dense|| / ||a_dense|| per layer, dense attention on the same inputs",
                  "trivial_rule": "IoU over queries that see more than m*B keys (k for flat)"}
        obj = {"config": config, "model": res.model, "rows": res.rows}

        def frame(rows, columns):   # grid columns stay integers where a method has no B or m
            df = pd.DataFrame(rows, columns=columns)
            for col in ("topk", "block_size", "blocks", "layer", "pos_from", "pos_to", "tokens"):
                if col in df.columns:
                    df[col] = df[col].astype("Int64")
            return df

        with RunFolder(out, "quality", tag) as run:
            run.json("quality.json", obj)
            run.csv("quality.csv", frame(res.rows, ROW_COLUMNS))
            run.csv("layers.csv", frame(res.layers, LAYER_COLUMNS))
            run.csv("positions.csv", frame(res.positions, POSITION_COLUMNS))
            if per_layer:
                run.csv("layer_ppl.csv", frame(res.layer_ppl, LAYER_PPL_COLUMNS))
            run.json("env.json", stamp(device=dev.type, timing=res.timing))
            folder = run.commit()
        if fmt == "json":
            sys.stdout.write(json.dumps(obj, indent=1) + "\n")
        elif fmt == "csv":
            sys.stdout.write(frame(res.rows, ROW_COLUMNS).to_csv(index=False))
        else:
            from ..tables import console_for_tables
            print_table(res.rows, res.model, console_for_tables())
        print(f"run folder: {folder}", file=sys.stderr)
