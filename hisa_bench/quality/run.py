"""The quality run: SmolLM2-135M over the held text, once with its own attention and once per grid
point with sparse attention in the chosen layers; perplexity, its change, and per-layer figures."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import HisaBenchError
from .forward import causal_attention, forward, masked_attention
from .grid import Point
from .selection import select_layer

POINT_COLUMNS = ["method", "topk", "block_size", "blocks", "stage1"]
ROW_COLUMNS = ["label"] + POINT_COLUMNS + ["ppl", "d_dense_pct", "d_flat_pct", "iou_mean", "attn_rel_err_mean",
                                           "tokens", "sparse_layers"]
LAYER_COLUMNS = ["label"] + POINT_COLUMNS + ["layer", "iou_mean", "nontrivial_queries", "attn_rel_err"]
POSITION_COLUMNS = ["label"] + POINT_COLUMNS + ["pos_from", "pos_to", "nll_mean", "dense_nll_mean", "d_nll"]
LAYER_PPL_COLUMNS = ["label"] + POINT_COLUMNS + ["layer", "ppl", "d_dense_pct", "iou_mean", "attn_rel_err"]
POSITION_BUCKETS = 16

# on_step(kind, done, total): kind "load" or "forward" (one step per model layer of every forward)
StepCallback = Callable[[str, int, int], None]


@dataclass
class QualityResult:
    model: dict
    rows: list
    layers: list
    positions: list
    layer_ppl: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)


def _ppl(nll: torch.Tensor) -> float:
    return float(math.exp(nll.double().mean().item()))


def load_model(text_path, context: int, device: torch.device):
    """(model, token ids [context], model info); one-line errors for a context the text or the model
    cannot give."""
    from ..capture.bpe import GGUFTokenizer
    from ..capture.gguf_llama import LlamaModel, open_gguf
    from ..capture.pipeline import read_text
    from ..capture.smollm2 import MODEL_NAME, smollm2_gguf

    text, sha = read_text(text_path)
    gguf_path, package = smollm2_gguf()
    g = open_gguf(gguf_path)
    cfg_ctx = int(g.field("llama.context_length", 2048))
    if context > cfg_ctx:
        raise HisaBenchError(f"--context {context} is longer than the model's trained context ({cfg_ctx})")
    ids = GGUFTokenizer(g).encode(text)
    if context > len(ids):
        raise HisaBenchError(f"--context {context} is longer than the text ({len(ids)} tokens in {Path(text_path).name})")
    model = LlamaModel.from_gguf(g, device=device)
    info = {"model": f"{MODEL_NAME} ({g.tensor_type('blk.0.attn_q.weight')} GGUF)", "package": package,
            "gguf": gguf_path.name, "text": Path(text_path).name, "text_sha256": sha, "text_tokens": len(ids),
            "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads, "n_kv_heads": model.cfg.n_kv_heads,
            "trained_context": model.cfg.context_length}
    return model, torch.tensor(ids[:context], dtype=torch.long), info


class _LayerProbe:
    """attend() for one forward: sparse attention in `layers`, the model's own elsewhere; keeps the
    IoU with flat and the attention output's relative error against dense attention on the same inputs."""

    def __init__(self, point: Point, layers, group_size: int, budget_bytes: int):
        self.point, self.layers, self.g, self.budget = point, set(layers), group_size, budget_bytes
        self.stats = {}

    def __call__(self, i, q, k, v):
        if i not in self.layers:
            return None
        sel = select_layer(self.point, q, k, self.g, self.budget)
        a = masked_attention(q, k, v, sel.masks)
        ref = causal_attention(q, k, v, self.g)
        err = float((a - ref).double().norm() / ref.double().norm().clamp_min(1e-30))
        iou, n_nt = None, 0
        if sel.iou is not None:
            nt = ~sel.trivial
            n_nt = int(nt.sum()) * sel.iou.shape[0]
            iou = float(sel.iou[:, nt].mean()) if n_nt else None
        self.stats[i] = {"iou_mean": iou, "nontrivial_queries": n_nt, "attn_rel_err": err}
        return a


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def run_quality(*, text_path, context: int, points: list, layers, device: torch.device, per_layer: bool = False,
                budget_bytes: int = 1 << 28, on_step: StepCallback | None = None) -> QualityResult:
    step = on_step or (lambda *a: None)
    t_start = time.perf_counter()
    step("load", 0, 1)
    model, ids, info = load_model(text_path, context, device)
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise HisaBenchError(f"--layers: layer {bad[0]} does not exist (the model has layers 0..{n_layers - 1})")
    step("load", 1, 1)
    t_loaded = time.perf_counter()

    sparse_points = [p for p in points if p.sparse]
    n_forwards = 1 + len(points) + (len(sparse_points) * len(layers) if per_layer else 0)
    done = [0]
    total = n_forwards * n_layers

    def tick(_i):
        done[0] += 1
        step("forward", done[0], total)

    x = ids.to(device)
    inputs = []          # the dense forward's input to every layer, where one-layer runs resume
    own = model.next_token_nll(forward(model, x, None, tick, keep_inputs=inputs), x)
    info["perplexity_model"] = _ppl(own)
    info["predicted_tokens"] = int(own.numel())

    def run_point(point, at_layers):
        probe = _LayerProbe(point, at_layers, model.cfg.group_size, budget_bytes)
        start = min(at_layers) if at_layers else 0
        for _ in range(start):   # the skipped layers count as done
            tick(None)
        hidden = forward(model, x, probe, tick, start=start, x_start=inputs[start] if start else None)
        return model.next_token_nll(hidden, x), probe.stats

    rows, layer_rows, pos_rows, layer_ppl = [], [], [], []
    dense_nll, flat_ppl = None, {}
    n = own.numel()
    edges = [round(i * n / POSITION_BUCKETS) for i in range(POSITION_BUCKETS + 1)]
    for point in points:
        nll, stats = run_point(point, layers)
        ppl = _ppl(nll)
        if point.method == "dense":
            dense_nll, dense_ppl = nll, ppl
            info["dense_vs_model_pct"] = 100.0 * (ppl / info["perplexity_model"] - 1.0)
        if point.method == "flat":
            flat_ppl[point.topk] = ppl
        base = {"label": point.label, **point.record()}
        fp = flat_ppl.get(point.topk)
        rows.append({**base, "ppl": ppl, "d_dense_pct": 100.0 * (ppl / dense_ppl - 1.0),
                     "d_flat_pct": None if fp is None or point.method in ("dense", "flat") else 100.0 * (ppl / fp - 1.0),
                     "iou_mean": _mean(s["iou_mean"] for s in stats.values()),
                     "attn_rel_err_mean": _mean(s["attn_rel_err"] for s in stats.values()),
                     "tokens": int(nll.numel()), "sparse_layers": ",".join(map(str, layers))})
        for i in sorted(stats):
            layer_rows.append({**base, "layer": i, **stats[i]})
        # position t predicts token t + 1; buckets over the predicting position
        for b in range(POSITION_BUCKETS):
            lo, hi = edges[b], edges[b + 1]
            if hi <= lo:
                continue
            m, dm = float(nll[lo:hi].double().mean()), float(dense_nll[lo:hi].double().mean())
            pos_rows.append({**base, "pos_from": lo, "pos_to": hi - 1, "nll_mean": m, "dense_nll_mean": dm,
                             "d_nll": m - dm})
    if per_layer:
        for point in sparse_points:
            base = {"label": point.label, **point.record()}
            for i in layers:
                nll, stats = run_point(point, [i])
                ppl = _ppl(nll)
                layer_ppl.append({**base, "layer": i, "ppl": ppl, "d_dense_pct": 100.0 * (ppl / dense_ppl - 1.0),
                                  "iou_mean": stats[i]["iou_mean"], "attn_rel_err": stats[i]["attn_rel_err"]})
    t_end = time.perf_counter()
    timing = {"load_s": round(t_loaded - t_start, 3), "measure_s": round(t_end - t_loaded, 3),
              "forwards": n_forwards}
    return QualityResult(info, rows, layer_rows, pos_rows, layer_ppl, timing)
