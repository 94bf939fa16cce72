"""`hisa-bench needle`: does flat / HISA / block-sparse keep one strongly aligned key, by length and depth?"""
from __future__ import annotations

import json
import sys

import typer

FORMATS = ("table", "json", "csv")


def _float_list(text: str, option: str) -> list[float]:
    from ..errors import HisaBenchError

    out = []
    for item in str(text).split(","):
        try:
            out.append(float(item.strip()))
        except ValueError:
            raise HisaBenchError(f"{option}: expected a comma-separated list of numbers, got {text!r}") from None
    return out


def print_table(df, console):
    from rich.table import Table

    depths = sorted(df["depth"].unique())
    table = Table(title="needle kept rate (share of trials) by depth", title_justify="left")
    table.add_column("method")
    table.add_column("length", justify="right")
    for d in depths:
        table.add_column(f"{d:g}", justify="right")
    for (method, length), grp in df.groupby(["method", "length"], sort=False):
        rates = dict(zip(grp["depth"], grp["kept_rate"]))
        table.add_row(method, str(length), *[f"{rates[d]:.2f}" for d in depths])
    console.print(table)


def register(app: typer.Typer):
    @app.command("needle")
    def needle(
        lengths: str = typer.Option("4k,8k,16k,32k", "--lengths", help="Context lengths: 32k, 32K, 32768, 1m."),
        depths: str = typer.Option("0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", "--depths",
                                   help="Needle positions as a share of the length, 0..1."),
        trials: int = typer.Option(5, "--trials", help="Haystacks per (length, depth)."),
        topk: int = typer.Option(2048, "--topk", help="Keys each selection keeps."),
        block_size: int = typer.Option(128, "--block-size", help="HISA block size B."),
        blocks: int = typer.Option(64, "--blocks", help="HISA blocks kept m."),
        pooling: str = typer.Option("mean", "--pooling", help="Stage-1 pooling: mean or max."),
        heads: int = typer.Option(8, "--heads", help="Indexer heads H."),
        dim: int = typer.Option(128, "--dim", help="Head dim D."),
        dtype: str = typer.Option("bfloat16", "--dtype", help="q and k dtype: bfloat16, float16 or float32."),
        strength: float = typer.Option(2.0, "--strength",
                                       help="Needle flat score as a multiple of the best haystack score."),
        adversarial: bool = typer.Option(False, "--adversarial/--plain",
                                         help="Anti-align the rest of the needle's block so its mean is zero."),
        seed: int = typer.Option(0, "--seed", help="Random seed of the haystacks."),
        device: str = typer.Option("cpu", "--device", help="cpu (references) or cuda (kernels)."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv (json/csv: stdout holds only data)."),
        out: str = typer.Option("reports/runs", "--out", help="Parent folder of the run folder."),
        tag: str = typer.Option(None, "--tag", help="Suffix of the run folder name."),
        stage1: str = typer.Option("relu", "--stage1", help="Stage-1 block rule(s), comma list: relu (paper), raw, "
                                   "relu-tiebreak, erelu, ucb, centroids2, centroids4, oracle; others show as hisa/<rule>."),
    ):
        """Plant one needle key at depth x length in random keys; check which selections keep it.

        Writes needle.csv, needle.json and env.json to a run folder (docs/fidelity.md)."""
        import time

        from rich.console import Console
        from ..progress import progress_bar

        from ..environment import stamp
        from ..errors import HisaBenchError
        from ..lengths import parse_lengths
        from ..measure.needle import NeedleConfig, config_dict, run_needle
        from ..measure.options import name_list, resolve_device
        from ..measure.stage1 import STAGE1
        from ..results import RunFolder

        if fmt not in FORMATS:
            raise HisaBenchError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        from ..errors import path_option

        path_option(out, "--out")
        cfg = NeedleConfig(lengths=parse_lengths(lengths), depths=_float_list(depths, "--depths"), trials=trials,
                           heads=heads, dim=dim, topk=topk, block_size=block_size, blocks=blocks, pooling=pooling,
                           strength=strength, adversarial=adversarial, dtype=dtype, seed=seed,
                           stage1=name_list(stage1, "--stage1", STAGE1)).check()
        dev = resolve_device(device)
        total = len(cfg.lengths) * len(cfg.depths)
        start = time.perf_counter()
        with progress_bar("needle") as progress:
            task = progress.add_task("needle", total=total)
            df = run_needle(cfg, dev, advance=lambda n: progress.advance(task, n))
        elapsed = time.perf_counter() - start
        config = dict(config_dict(cfg), device=dev.type)
        with RunFolder(out, "needle", tag) as run:
            run.csv("needle.csv", df)
            run.json("needle.json", {"config": config, "rows": df.to_dict(orient="records")})
            run.json("env.json", stamp(device=dev.type, timing={"measure_s": round(elapsed, 3)}))
            folder = run.commit()
        if fmt == "json":
            sys.stdout.write(json.dumps({"config": config, "rows": df.to_dict(orient="records")}, indent=1) + "\n")
        elif fmt == "csv":
            sys.stdout.write(df.to_csv(index=False))
        else:
            console = Console()
            print_table(df, console if console.is_terminal else Console(width=160))
        print(f"run folder: {folder}", file=sys.stderr)
