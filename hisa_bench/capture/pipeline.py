"""capture: text -> tokens -> SmolLM2 forward -> perplexity and a dump of real q/k (GQA proxy)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import HisaBenchError
from .gqa_proxy import DTYPES, GQAProxyCollector, sample_positions

DEFAULT_TEXT = Path(__file__).resolve().parent.parent / "data" / "alice_in_wonderland.txt"

# on_step(stage, done, total): "load" 0/1 -> 1/1, "forward" per layer, "perplexity" 0/1 -> 1/1
StepCallback = Callable[[str, int, int], None]


@dataclass
class CaptureResult:
    layers: list[dict]
    meta: dict
    perplexity: float
    n_predicted: int
    extra: dict = field(default_factory=dict)


def read_text(path) -> tuple[str, str]:
    """The text and the SHA-256 of its bytes."""
    path = Path(path)
    if not path.exists():
        raise HisaBenchError(f"--text {path}: no such file")
    if not path.is_file():
        raise HisaBenchError(f"--text {path}: not a file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HisaBenchError(f"--text {path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise HisaBenchError(f"--text {path}: the file holds no text")
    return text, hashlib.sha256(data).hexdigest()


def parse_layers(spec: str | None, n_layers: int | None = None) -> list[int] | None:
    """'0,5,29' -> [0, 5, 29]; 'all' -> None (every layer). Checked against n_layers when given."""
    if spec is None or spec.strip().lower() == "all":
        return None if n_layers is None else list(range(n_layers))
    out = []
    for item in spec.split(","):
        item = item.strip()
        if not item.lstrip("-").isdigit():
            raise HisaBenchError(f"--layers: {item!r} is not a layer number (expected e.g. 0,5,29 or all)")
        x = int(item)
        if x < 0 or (n_layers is not None and x >= n_layers):
            raise HisaBenchError(f"--layers: layer {x} does not exist (the model has layers 0..{(n_layers or 1) - 1})")
        if x in out:
            raise HisaBenchError(f"--layers: layer {x} is listed twice")
        out.append(x)
    return sorted(out)


def resolve_device(name: str) -> torch.device:
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise HisaBenchError(f"--device {name!r}: expected cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HisaBenchError(f"--device {name}: no CUDA GPU is visible")
    return torch.device(name)


def capture_smollm2(text_path=None, context: int = 2048, queries: int = 128, layers: str | None = None,
                    device: str = "cpu", dtype: str = "float32", on_step: StepCallback | None = None) -> CaptureResult:
    from .bpe import GGUFTokenizer
    from .gguf_llama import LlamaModel, open_gguf, perplexity
    from .smollm2 import MODEL_NAME, smollm2_gguf

    step = on_step or (lambda *a: None)
    if dtype not in DTYPES:
        raise HisaBenchError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if context < 2:
        raise HisaBenchError(f"--context {context}: expected at least 2 tokens")
    parse_layers(layers)  # option errors before the slow load
    q_pos = sample_positions(context, queries)
    text_path = Path(text_path) if text_path is not None else DEFAULT_TEXT
    text, sha = read_text(text_path)
    dev = resolve_device(device)

    gguf_path, package = smollm2_gguf()
    step("load", 0, 1)
    g = open_gguf(gguf_path)
    tok = GGUFTokenizer(g)
    ids = tok.encode(text)
    if context > len(ids):
        raise HisaBenchError(f"--context {context} is longer than the text ({len(ids)} tokens in {text_path.name})")
    model = LlamaModel.from_gguf(g, device=dev)
    cfg = model.cfg
    if context > cfg.context_length:
        raise HisaBenchError(f"--context {context} is longer than the model's trained context ({cfg.context_length})")
    chosen = parse_layers(layers, cfg.n_layers)
    step("load", 1, 1)

    collector = GQAProxyCollector(chosen, q_pos, cfg.group_size, DTYPES[dtype], center=True)
    x = torch.tensor(ids[:context], dtype=torch.long)
    hidden = model.forward(x, on_qk=collector, on_layer=lambda i: step("forward", i + 1, cfg.n_layers))
    step("perplexity", 0, 1)
    nll = model.next_token_nll(hidden, x)
    ppl = perplexity(nll)
    step("perplexity", 1, 1)

    quant = g.tensor_type("blk.0.attn_q.weight")
    meta = {
        "model": f"{MODEL_NAME} ({quant} GGUF)",
        "package": package,
        "gguf": gguf_path.name,
        "source": "real",
        "text": text_path.name,
        "text_sha256": sha,
        "tokens": int(context),
        "text_tokens": len(ids),
        "key_centered": True,
        "weights": "1/H",
        "rope": "post",
        "perplexity": round(ppl, 4),
        "perplexity_tokens": int(nll.numel()),
        "layers": ",".join(str(i) for i in chosen),
        "kv_groups": cfg.n_kv_heads,
        "heads_per_group": cfg.group_size,
        "dtype": dtype,
        "device": str(dev),
        "notes": (f"GQA proxy: each (layer, KV group) of {MODEL_NAME} is one indexer layer named layerLL.kvG; "
                  f"its post-RoPE key (centred over the {context} captured tokens) is k, its "
                  f"{cfg.group_size} query heads are the H heads, w = 1/H. The context is the first "
                  f"{context} tokens of the text; perplexity is the model's own on that window."),
    }
    return CaptureResult(layers=collector.out, meta=meta, perplexity=ppl, n_predicted=int(nll.numel()))
