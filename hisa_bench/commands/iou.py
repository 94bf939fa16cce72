"""`hisa-bench iou`: selection fidelity of HISA and block-sparse against the flat indexer on a dump."""
from __future__ import annotations

import json
import sys

import typer

FORMATS = ("table", "json", "csv")


def _fmt(x, digits=4):
    return "-" if x is None else f"{x:.{digits}f}"


def print_table(results: list, console):
    from rich.table import Table

    for res in results:
        cfg = res["config"]
        title = (f"top-k {cfg['topk']}  B {cfg['block_size']}  m {cfg['blocks']}  pooling {cfg['pooling']}  "
                 f"tie rule {cfg['tie_rule']}  (trivial queries excluded)")
        table = Table(title=title, title_justify="left")
        for col in ("layer", "queries", "trivial", "tied F/B", "method", "iou mean", "p1", "p5", "min",
                    "recall", "score rec", "top1", "top16", "top128"):
            table.add_column(col, justify="left" if col in ("layer", "method") else "right", no_wrap=True)
        for entry in res["layers"] + [dict(res["overall"], name="overall")]:
            for i, method in enumerate(cfg["methods"]):
                s = entry[method.replace("-", "_")]
                head = [entry["name"], str(entry["queries"]), str(entry["trivial"]),
                        f"{entry['tied_flat']}/{entry['tied_block']}"] if i == 0 else [""] * 4
                table.add_row(*head, method, _fmt(s["iou_mean"]), _fmt(s["iou_p1"]), _fmt(s["iou_p5"]),
                              _fmt(s["iou_min"]), _fmt(s["recall_mean"]), _fmt(s["score_recall_mean"]),
                              _fmt(s["top1_recall"], 3), _fmt(s["top16_recall"], 3), _fmt(s["top128_recall"], 3),
                              end_section=(i == len(cfg["methods"]) - 1))
        console.print(table)


def print_grid(results: list, console):
    """One row per (grid point, method): the overall figures, for comparing grid points at a glance."""
    from rich.table import Table

    cfg0 = results[0]["config"]
    table = Table(title=f"top-k {cfg0['topk']}  tie rule {cfg0['tie_rule']}  overall over "
                        f"{len(cfg0['layers'])} layer(s), trivial queries excluded", title_justify="left")
    for col in ("B", "m", "pooling", "method", "queries", "trivial", "tied F/B", "iou mean", "p1", "p5", "min",
                "recall", "score rec", "top1", "top16", "top128"):
        table.add_column(col, justify="left" if col in ("pooling", "method") else "right", no_wrap=True)
    for res in results:
        cfg, o = res["config"], res["overall"]
        for i, method in enumerate(cfg["methods"]):
            s = o[method.replace("-", "_")]
            table.add_row(str(cfg["block_size"]), str(cfg["blocks"]), cfg["pooling"], method, str(o["queries"]),
                          str(o["trivial"]), f"{o['tied_flat']}/{o['tied_block']}", _fmt(s["iou_mean"]),
                          _fmt(s["iou_p1"]), _fmt(s["iou_p5"]), _fmt(s["iou_min"]), _fmt(s["recall_mean"]),
                          _fmt(s["score_recall_mean"]), _fmt(s["top1_recall"], 3), _fmt(s["top16_recall"], 3),
                          _fmt(s["top128_recall"], 3), end_section=(i == len(cfg["methods"]) - 1))
    console.print(table)


def table_console():
    from rich.console import Console

    console = Console()
    # piped output would otherwise be squeezed to 80 columns and truncate the figures
    return console if console.is_terminal else Console(width=160)


def register(app: typer.Typer):
    @app.command("iou")
    def iou(
        dump: str = typer.Option(..., "--dump", help="Indexer dump (hisa-bench capture or generate)."),
        topk: int = typer.Option(2048, "--topk", help="Keys each selection keeps."),
        block_size: str = typer.Option("128", "--block-size", help="HISA block size B; a comma list makes a grid."),
        blocks: str = typer.Option("64", "--blocks", help="HISA blocks kept m (m*B >= top-k); a comma list makes a grid."),
        method: str = typer.Option("hisa,block-sparse", "--method", help="Methods compared with flat: hisa, block-sparse."),
        pooling: str = typer.Option("mean", "--pooling",
                                    help="Stage-1 pooling: mean (paper), max, mean+max, quest; a comma list makes a grid."),
        layers: str = typer.Option(None, "--layers", help="Comma list of layer names (default: all layers)."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv (json/csv: stdout holds only data)."),
        out: str = typer.Option("reports/runs", "--out", help="Parent folder of the run folder."),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda (the reference engine computes in float64 "
                                   "either way: same figures)."),
        engine: str = typer.Option("reference", "--engine",
                                   help="reference: selections from float64 scores (reproducible on any device); "
                                        "kernels: selections from our Triton kernels (compiled on the GPU when there is "
                                        "one, whatever --device says; interpreted on a CPU otherwise)."),
        tie_rule: str = typer.Option("low", "--tie-rule",
                                     help="Among equal scores: low (lower position wins, the default) or recent "
                                          "(higher position wins), for blocks and tokens alike."),
        tag: str = typer.Option(None, "--tag", help="Suffix of the run folder name."),
    ):
        """Fidelity of HISA and block-sparse against flat on a dump: IoU, recall, score and top-r recall.

        Writes iou.json, layers.csv, per_query.csv and env.json to a run folder (docs/fidelity.md)."""
        from ..errors import HisaBenchError
        from ..measure.options import int_list, name_list, resolve_device
        from ..measure.pooling import POOLINGS
        from ..measure.select import TIE_RULES
        from ..measure.fidelity import METHODS
        from ..measure.run_iou import run_iou

        if fmt not in FORMATS:
            raise HisaBenchError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        if tie_rule not in TIE_RULES:
            raise HisaBenchError(f"--tie-rule: expected one of {', '.join(TIE_RULES)}, got {tie_rule!r}")
        from ..measure.fidelity import ENGINES
        if engine not in ENGINES:   # before the dump is read
            raise HisaBenchError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
        dev = resolve_device(device)
        obj, results, folder = run_iou(
            dump_path=dump, topk=topk,
            block_sizes=int_list(block_size, "--block-size"), blocks=int_list(blocks, "--blocks"),
            methods=name_list(method, "--method", METHODS), poolings=name_list(pooling, "--pooling", POOLINGS),
            layer_names=name_list(layers, "--layers") if layers else None,
            tie=tie_rule, device=dev, out_dir=out, tag=tag, engine=engine)
        if fmt == "json":
            sys.stdout.write(json.dumps(obj, indent=1) + "\n")
        elif fmt == "csv":
            from ..measure.fidelity import layers_frame
            sys.stdout.write(layers_frame(results).to_csv(index=False))
        else:
            console = table_console()
            if len(results) == 1:
                print_table(results, console)
            else:
                print_grid(results, console)
                console.print("per-layer figures: iou.json and layers.csv in the run folder")
        print(f"run folder: {folder}", file=sys.stderr)
