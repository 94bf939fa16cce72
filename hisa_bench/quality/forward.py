"""The llama forward of hisa_bench.capture.gguf_llama with the attention step handed to a callback,
so a layer can attend through any key mask. Everything else (RMSNorm, RoPE, SwiGLU, the output
projection) is the model's own code path; with plain causal attention it is the model's forward."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..capture.gguf_llama import LlamaModel, apply_rope, rms_norm, rope_tables

# attend(layer, q [T, n_heads, hd], k [T, n_kv, hd], v [T, n_kv, hd]) -> [T, n_heads, hd], or None
# for the model's own causal attention at that layer.
Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


def causal_attention(q, k, v, group_size: int) -> torch.Tensor:
    """The model's attention: every query head reads KV head h // group_size, causally."""
    kk = k.repeat_interleave(group_size, dim=1)
    vv = v.repeat_interleave(group_size, dim=1)
    a = F.scaled_dot_product_attention(q.transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1), is_causal=True)
    return a.transpose(0, 1)


def masked_attention(q, k, v, masks: list[torch.Tensor]) -> torch.Tensor:
    """Attention in which the query heads of KV group g read only the keys masks[g] [T, T] (bool,
    True = attend) keeps: one selection per query and KV head, shared by that head's query heads."""
    n_kv = k.shape[1]
    g = q.shape[1] // n_kv
    out = []
    for j in range(n_kv):
        qj = q[:, j * g:(j + 1) * g].transpose(0, 1)                   # [g, T, hd]
        kj = k[:, j][None].expand(g, -1, -1)
        vj = v[:, j][None].expand(g, -1, -1)
        out.append(F.scaled_dot_product_attention(qj, kj, vj, attn_mask=masks[j][None]))
    return torch.cat(out, dim=0).transpose(0, 1)                      # [T, n_heads, hd]


@torch.no_grad()
def forward(model: LlamaModel, ids: torch.Tensor, attend: Attend | None = None,
            on_layer: Callable[[int], None] | None = None, start: int = 0, x_start: torch.Tensor | None = None,
            keep_inputs: list | None = None) -> torch.Tensor:
    """Final-norm hidden states [T, dim] of one sequence, with attend() deciding each layer's attention.

    start/x_start resume at layer `start` from its input residual stream (layers before a sparse layer
    give what the dense forward gave, so a one-layer run need not redo them); keep_inputs, when a
    list, receives every layer's input residual stream."""
    c = model.cfg
    ids = ids.to(model.device)
    n = ids.shape[0]
    x = model.embed[ids] if x_start is None else x_start
    cos, sin = rope_tables(n, c.head_dim, c.rope_theta, model.device)
    for i, L in enumerate(model.layers):
        if i < start:
            continue
        if keep_inputs is not None:
            keep_inputs.append(x)
        h = rms_norm(x, L.attn_norm, c.eps)
        q = apply_rope((h @ L.wq.T).view(n, c.n_heads, c.head_dim), cos, sin)
        k = apply_rope((h @ L.wk.T).view(n, c.n_kv_heads, c.head_dim), cos, sin)
        v = (h @ L.wv.T).view(n, c.n_kv_heads, c.head_dim)
        a = attend(i, q, k, v) if attend is not None else None
        if a is None:
            a = causal_attention(q, k, v, c.group_size)
        x = x + a.reshape(n, c.dim) @ L.wo.T
        h = rms_norm(x, L.ffn_norm, c.eps)
        x = x + (F.silu(h @ L.w_gate.T) * (h @ L.w_up.T)) @ L.w_down.T
        if on_layer is not None:
            on_layer(i)
    return rms_norm(x, model.output_norm, c.eps)
