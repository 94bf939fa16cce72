"""`hisa-bench iou`: selection fidelity of HISA and block-sparse against the flat indexer on a dump."""
from __future__ import annotations

import json
import sys

import typer

FORMATS = ("table", "json", "csv")


def _method_columns(wide_key="wide"):
    """The per-method figures, in table order; `wide` ones only with --wide."""
    from ..tables import Column, fmt

    def stat(key, digits=4):
        return lambda r: fmt(r["stats"].get(key), digits)

    return [Column("method", lambda r: r["method"], numeric=False),
            Column("IoU", stat("iou_mean")), Column("p1", stat("iou_p1"), wide=True), Column("p5", stat("iou_p5")),
            Column("min", stat("iou_min")), Column("recall", stat("recall_mean")),
            Column("score rec", stat("score_recall_mean"), wide=True), Column("top1", stat("top1_recall", 3), wide=True),
            Column("top16", stat("top16_recall", 3), wide=True), Column("top128", stat("top128_recall", 3), wide=True)]


def layer_columns():
    from ..tables import Column

    first = lambda key: (lambda r: str(r[key]) if r["first"] else "")  # noqa: E731
    return [Column("layer", lambda r: r["name"] if r["first"] else "", numeric=False),
            Column("queries", first("queries")), Column("trivial", first("trivial")),
            Column("tied F/B", lambda r: f"{r['tied_flat']}/{r['tied_block']}" if r["first"] else "", wide=True)
            ] + _method_columns()


def grid_columns():
    from ..tables import Column

    first = lambda key: (lambda r: str(r[key]) if r["first"] else "")  # noqa: E731
    return [Column("B", first("B")), Column("m", first("m")),
            Column("pooling", lambda r: r["pooling"] if r["first"] else "", numeric=False, wide=True),
            Column("queries", first("queries"), wide=True), Column("trivial", first("trivial")),
            Column("tied F/B", lambda r: f"{r['tied_flat']}/{r['tied_block']}" if r["first"] else "", wide=True)
            ] + _method_columns()


def _method_rows(entry, methods, **extra):
    return [dict(extra, name=entry.get("name"), queries=entry["queries"], trivial=entry["trivial"],
                 tied_flat=entry["tied_flat"], tied_block=entry["tied_block"], method=method, first=(i == 0),
                 stats=entry[method.replace("-", "_")], section=(extra.get("section"), entry.get("name")))
            for i, method in enumerate(methods)]


def print_table(results: list, console, wide: bool = False):
    from ..tables import build, wide_hint

    for res in results:
        cfg = res["config"]
        title = (f"top-k {cfg['topk']}  B {cfg['block_size']}  m {cfg['blocks']}  pooling {cfg['pooling']}  "
                 f"tie rule {cfg['tie_rule']}  (trivial queries excluded)")
        rows = []
        for entry in res["layers"] + [dict(res["overall"], name="overall")]:
            rows += _method_rows(entry, cfg["methods"])
        cols = layer_columns()
        console.print(build(title, cols, rows, wide=wide, section_key="section", caption=wide_hint(cols, wide)))


def print_grid(results: list, console, wide: bool = False):
    """One row per (grid point, method): the overall figures, for comparing grid points at a glance."""
    from ..tables import build, wide_hint

    cfg0 = results[0]["config"]
    rows = []
    for res in results:
        cfg = res["config"]
        rows += _method_rows(dict(res["overall"], name=None), cfg["methods"], B=cfg["block_size"], m=cfg["blocks"],
                             pooling=cfg["pooling"], section=(cfg["block_size"], cfg["blocks"], cfg["pooling"]))
    cols = grid_columns()
    console.print(build(f"top-k {cfg0['topk']}  tie rule {cfg0['tie_rule']}  overall over "
                        f"{len(cfg0['layers'])} layer(s), trivial queries excluded", cols, rows, wide=wide,
                        section_key="section", caption=wide_hint(cols, wide)))


# Defaults for a long context (DeepSeek-V3.2's indexer). A dump shorter than they need gets its own.
DEFAULT_TOPK, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS = 2048, 128, 64


def fitted_defaults(longest: int) -> tuple[int, int, int]:
    """(top-k, B, m) for a dump whose queries see at most `longest` keys: the standard ones when some
    query sees more than m x B keys, else scaled down so that m x B is an eighth of the context
    (queries beyond it are non-trivial): 4096 keys -> top-k 256, B 32, m 16."""
    if longest > DEFAULT_BLOCK_SIZE * DEFAULT_BLOCKS * 2:
        return DEFAULT_TOPK, DEFAULT_BLOCK_SIZE, DEFAULT_BLOCKS
    topk = 16
    while topk * 2 <= max(16, longest // 16):
        topk *= 2
    block = max(16, topk // 8)
    return topk, block, max(2, 2 * topk // block)


def _longest_context(dump_path) -> int:
    from ..inputs.dump import load_dump

    dump = load_dump(dump_path)
    return max(int(layer["ke"].max()) if "ke" in layer else int(layer["q_pos"].max()) + 1
               for layer in dump["layers"])


def _check_engine_device(engine: str, device: str):
    """Our kernels run compiled on a GPU when there is one; without one they run through the Triton
    interpreter: minutes per layer for what the reference engine computes in seconds. Refuse then,
    naming the option that works."""
    from ..errors import HisaBenchError

    if engine != "kernels":
        return
    import torch

    if not torch.cuda.is_available():
        raise HisaBenchError("--engine kernels needs a CUDA GPU: without one our kernels run through the Triton "
                             "interpreter (minutes per layer); use --engine reference, which gives the same "
                             "figures from float64 scores")


def register(app: typer.Typer):
    @app.command("iou")
    def iou(
        dump: str = typer.Option(..., "--dump", help="Indexer dump (hisa-bench capture or generate)."),
        topk: int = typer.Option(None, "--topk", help="Keys each selection keeps. Default 2048, or scaled to a "
                                 "short dump (4096 keys: 256); the command says which it used."),
        block_size: str = typer.Option(None, "--block-size", help="HISA block size B; a comma list makes a grid. "
                                       "Default 128 (4096-key dump: 32)."),
        blocks: str = typer.Option(None, "--blocks", help="HISA blocks kept m (m*B >= top-k); a comma list makes a "
                                   "grid. Default 64 (4096-key dump: 16)."),
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
                                        "one, whatever --device says; interpreted on a CPU otherwise; stage-1 rules "
                                        "relu and raw)."),
        tie_rule: str = typer.Option("low", "--tie-rule",
                                     help="Among equal scores: low (lower position wins, the default) or recent "
                                          "(higher position wins), for blocks and tokens alike."),
        tag: str = typer.Option(None, "--tag", help="Suffix of the run folder name."),
        wide: bool = typer.Option(False, "--wide", help="Every column in the table (p1, tied, score and top-r "
                                  "recall); CSV and JSON always have them."),
        stage1: str = typer.Option("relu", "--stage1",
                                   help="Stage-1 block rule(s), comma list: relu (paper), raw, relu-tiebreak, "
                                        "erelu, ucb, centroids2, centroids4, oracle (docs/fidelity.md); other rules "
                                        "show as hisa/<rule>."),
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
        from ..measure.stage1 import STAGE1
        stage1_rules = name_list(stage1, "--stage1", STAGE1)
        for option, value in (("--dump", dump), ("--out", out)):
            if not str(value).strip():
                raise HisaBenchError(f"{option}: expected a path, got an empty string")
        _check_engine_device(engine, device)
        dev = resolve_device(device)      # before the dump is read: a missing GPU is said first
        if topk is None and block_size is None and blocks is None:
            longest = _longest_context(dump)
            topk, block_size, blocks = fitted_defaults(longest)
            if topk != DEFAULT_TOPK:
                print(f"hisa-bench: note: {dump} holds {longest} keys, too few for the defaults (top-k "
                      f"{DEFAULT_TOPK}, B {DEFAULT_BLOCK_SIZE}, m {DEFAULT_BLOCKS}: every query would see at most "
                      f"m x B keys, where HISA equals flat); using --topk {topk} --block-size {block_size} "
                      f"--blocks {blocks}", file=sys.stderr)
        topk = DEFAULT_TOPK if topk is None else topk
        block_size = str(DEFAULT_BLOCK_SIZE if block_size is None else block_size)
        blocks = str(DEFAULT_BLOCKS if blocks is None else blocks)
        obj, results, folder = run_iou(
            dump_path=dump, topk=topk,
            block_sizes=int_list(block_size, "--block-size"), blocks=int_list(blocks, "--blocks"),
            methods=name_list(method, "--method", METHODS), poolings=name_list(pooling, "--pooling", POOLINGS),
            layer_names=name_list(layers, "--layers") if layers else None,
            tie=tie_rule, device=dev, out_dir=out, tag=tag, engine=engine, stage1=stage1_rules)
        if fmt == "json":
            sys.stdout.write(json.dumps(obj, indent=1) + "\n")
        elif fmt == "csv":
            from ..measure.fidelity import layers_frame
            sys.stdout.write(layers_frame(results).to_csv(index=False))
        else:
            from ..tables import console_for_tables

            console = console_for_tables(wide)
            if len(results) == 1:
                print_table(results, console, wide)
            else:
                print_grid(results, console, wide)
                console.print("per-layer figures: iou.json and layers.csv in the run folder")
        _say_if_all_trivial(results, dump)
        print(f"run folder: {folder}", file=sys.stderr)


def _say_if_all_trivial(results, dump):
    """A run where every query is trivial has no figures (a table of '-'): say why and what fits."""
    points = [r for r in results if r["overall"]["queries"] and r["overall"]["queries"] == r["overall"]["trivial"]]
    if not points:
        return
    longest = _longest_context(dump)
    topk, b, m = fitted_defaults(longest)
    which = ", ".join(f"B {r['config']['block_size']} m {r['config']['blocks']}" for r in points)
    print(f"hisa-bench: note: at {which} every query of {dump} sees at most m x B keys, so HISA equals flat "
          f"there and there is nothing to measure; options that fit its {longest} keys: --topk {topk} "
          f"--block-size {b} --blocks {m}", file=sys.stderr)
