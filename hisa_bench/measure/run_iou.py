"""The iou run: load a dump, measure every layer at every grid point, write the run folder."""
from __future__ import annotations

import sys
import time

import pandas as pd

from ..errors import HisaBenchError
from ..inputs.dump import load_dump
from ..results import RunFolder
from .fidelity import PER_QUERY_COLUMNS, layers_frame, make_grid, measure_layer, summarize_point


def _progress():
    from ..progress import progress_bar

    return progress_bar()


def run_iou(*, dump_path, topk, block_sizes, blocks, methods, poolings, layer_names, tie, device,
            out_dir, tag=None, show_progress=True, engine="reference", stage1=("relu",)):
    """Returns (json object, list of per-point results, run folder path). Each method is measured
    under each stage-1 rule; a rule other than the paper's names the method 'hisa/<rule>'."""
    from .stage1 import check_stage1, method_label

    points, skipped = make_grid(topk, block_sizes, blocks, poolings)
    for rule in stage1:
        for p in points:
            check_stage1(rule, p.pooling)
    methods = [method_label(m, rule) for m in methods for rule in stage1]
    for p in skipped:
        print(f"hisa-bench: note: skipping B={p.block_size} m={p.blocks} ({p.pooling}): "
              f"m x B < top-k {topk}", file=sys.stderr)
    dump = load_dump(dump_path)
    by_name = {layer["name"]: layer for layer in dump["layers"]}
    if layer_names:
        missing = [n for n in layer_names if n not in by_name]
        if missing:
            raise HisaBenchError(f"--layers: {', '.join(missing)} not in {dump_path} "
                                 f"(it has {', '.join(by_name)})")
    names = layer_names or list(by_name)
    meta = dump["meta"]
    config = {
        "dump": str(dump_path), "source": meta.get("source"), "model": meta.get("model"),
        "topk": topk, "methods": list(methods), "stage1": list(stage1), "layers": names, "tie_rule": tie, "device": device.type,
        "engine": engine,
        "trivial_rule": "visible <= blocks * block_size (excluded from aggregates)",
    }

    frames = []
    start = time.perf_counter()
    total = sum(int(by_name[n]["q_pos"].shape[0]) for n in names)
    progress = _progress() if show_progress else None
    try:
        if progress is not None:
            progress.start()
            task = progress.add_task(f"iou {len(points)} grid point(s)", total=total)
            advance = lambda n: progress.advance(task, n)  # noqa: E731
        else:
            advance = None
        for name in names:
            frames.append(measure_layer(by_name[name], points, topk=topk, methods=methods, tie=tie,
                                        device=device, advance=advance, engine=engine))
    finally:
        if progress is not None:
            progress.stop()
    elapsed = time.perf_counter() - start
    per_query = pd.concat(frames, ignore_index=True)
    results = [summarize_point(per_query, p, config, methods, names) for p in points]
    obj = results[0] if len(results) == 1 else {"runs": results}

    from ..environment import stamp

    with RunFolder(out_dir, "iou", tag) as run:
        run.json("iou.json", obj)
        run.csv("layers.csv", layers_frame(results))
        run.csv("per_query.csv", per_query[PER_QUERY_COLUMNS])
        run.json("env.json", stamp(device=device.type, timing={"measure_s": round(elapsed, 3)}))
        folder = run.commit()
    return obj, results, folder
