"""Record the real lightning-indexer tensors of DSA models (DeepSeek-V3.2, GLM-5 "glm_moe_dsa") run
with HF transformers, in the dump format.

    with DSAIndexerRecorder(model, queries=128) as rec:
        model(input_ids, use_cache=False)          # one prefill forward over the whole context
    save_dump(path, rec.layers, rec.meta(model="...", text_sha256=..., notes="..."))

Per indexer layer the dump holds what the indexer scores with:
  k     [T, D]     the indexer keys (k_norm(wk(x)) with RoPE on the rope dims): the cached keys
  q     [Nq, H, D] post-RoPE indexer queries (wq_b(q_resid)) at the sampled positions
  w     [Nq, H]    weights_proj(x) * H^-1/2 * D^-1/2: every scale folded in (relu(c x) = c relu(x), c > 0)
so that I[t, s] = sum_h w[t, h] relu(q[t, h] . k[s]) is the model's own index score. Keys are not
centred: the indexer was trained with its ReLU, so its keys are used as they are.

The hook recomputes these tensors from the indexer's inputs with the indexer's own sub-modules, then
checks them against what the indexer itself returned: the top-k it selected must have the scores of
the top-k of the recomputed I. A layout we do not know (a new RoPE variant, a new scale) fails that
check with a one-line error instead of yielding a silently wrong dump.
"""
from __future__ import annotations

import inspect

import torch

from ..errors import HisaBenchError
from .gqa_proxy import sample_positions

# Indexer class -> how it applies RoPE to its rope dims (the first qk_rope_head_dim of each head).
#   "half":       rotate the two halves (DeepSeek-V3.2's indexer)
#   "interleave": rotate adjacent pairs (x0, x1), (x2, x3), ... (GLM-5's indexer)
ROPE_STYLE = {"DeepseekV32Indexer": "half", "GlmMoeDsaIndexer": "interleave"}
# Model classes that carry such an indexer, looked up by name in the installed transformers.
DSA_MODEL_CLASSES = {"deepseek_v32": "DeepseekV32ForCausalLM", "glm_moe_dsa": "GlmMoeDsaForCausalLM"}
_PARTS = ("wq_b", "wk", "k_norm", "weights_proj")


def dsa_support() -> tuple[dict, str]:
    """({model_type: class} available in the installed transformers, reason when none is)."""
    try:
        import transformers
    except ImportError:
        return {}, "transformers is not installed (pip install transformers)"
    found = {t: getattr(transformers, c) for t, c in DSA_MODEL_CLASSES.items() if hasattr(transformers, c)}
    if not found:
        return {}, (f"transformers {transformers.__version__} has no DSA model class "
                    f"({', '.join(DSA_MODEL_CLASSES.values())})")
    return found, ""


def find_indexers(model) -> list[tuple[int, torch.nn.Module]]:
    """(layer index, indexer module) for every DSA indexer in the model, in layer order."""
    out = []
    for _, mod in model.named_modules():
        name = type(mod).__name__
        if name in ROPE_STYLE or (name.endswith("Indexer") and all(hasattr(mod, p) for p in _PARTS)):
            out.append((int(getattr(mod, "layer_idx", len(out))), mod))
    return sorted(out, key=lambda x: x[0])


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, style: str) -> torch.Tensor:
    """x: [B, S, heads, r]; cos/sin: [B, S, r] as the model's rotary embedding returns them."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    if style == "half":
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin
    # cos/sin repeat the pair angles twice (cat(freqs, freqs)); one copy serves the pairs
    c, s = cos[..., : cos.shape[-1] // 2], sin[..., : sin.shape[-1] // 2]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)


class DSAIndexerRecorder:
    """Context manager that hooks every DSA indexer of a model and turns one prefill forward into
    dump layers (self.layers). queries: positions kept per layer (spread evenly, the last one always
    in), or None for all. layers: layer indices to keep, or None for all indexer layers."""

    def __init__(self, model, queries: int | None = 128, layers=None, dtype: torch.dtype = torch.float32,
                 verify: bool = True, rope_style: str | None = None):
        self.model = model
        self.queries = queries
        self.keep = None if layers is None else set(int(x) for x in layers)
        self.dtype = dtype
        self.verify = verify
        self.rope_style = rope_style  # None: by indexer class
        self.indexers = find_indexers(model)
        if not self.indexers:
            raise HisaBenchError(f"{type(model).__name__} has no DSA indexer module to record")
        self.layers: list[dict] = []
        self._handles = []
        self._inputs = {}

    # -- hooks ----------------------------------------------------------------------------------
    def __enter__(self):
        for idx, mod in self.indexers:
            if self.keep is not None and idx not in self.keep:
                continue
            sig = inspect.signature(mod.forward)

            def pre(m, args, kwargs, idx=idx, sig=sig):
                self._inputs[idx] = sig.bind(*args, **kwargs).arguments

            def post(m, args, kwargs, output, idx=idx):
                self._record(idx, m, self._inputs.pop(idx), output)

            self._handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
            self._handles.append(mod.register_forward_hook(post, with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._inputs.clear()
        return False

    # -- capture --------------------------------------------------------------------------------
    @torch.no_grad()
    def _record(self, idx: int, m, inp: dict, topk_out: torch.Tensor) -> None:
        x = inp["hidden_states"]
        q_resid = inp["q_resid"]
        cos, sin = inp["position_embeddings"]
        b, n, _ = x.shape
        if b != 1:
            raise HisaBenchError(f"DSA capture takes one sequence per forward (batch 1), got batch {b}")
        cache = inp.get("cache", inp.get("past_key_values"))
        held = _cached_indexer_keys(cache, idx)
        if held is not None and held != n:
            raise HisaBenchError(f"layer {idx}: the cache held {held - n} earlier tokens; DSA capture needs "
                                 "one prefill forward over the whole context")
        style = self.rope_style or ROPE_STYLE.get(type(m).__name__)
        if style not in ("half", "interleave"):
            raise HisaBenchError(f"layer {idx}: unknown RoPE layout of {type(m).__name__}; pass rope_style")
        heads, dim, r = m.n_heads, m.head_dim, m.qk_rope_head_dim

        q = m.wq_b(q_resid).view(b, n, heads, dim)
        k = m.k_norm(m.wk(x)).view(b, n, 1, dim)
        q = torch.cat([_rope(q[..., :r], cos, sin, style), q[..., r:]], dim=-1)[0]  # [T, H, D]
        k = torch.cat([_rope(k[..., :r], cos, sin, style), k[..., r:]], dim=-1)[0, :, 0]  # [T, D]
        w = m.weights_proj(x.to(m.weights_proj.weight.dtype)).float()[0] * (heads ** -0.5) * float(m.softmax_scale)

        q_pos = (torch.arange(n) if self.queries is None or self.queries >= n
                 else sample_positions(n, self.queries)).to(x.device)
        qs, ws = q[q_pos].float(), w[q_pos]
        kf = k.float()
        if self.verify:
            _check_topk(idx, qs, kf, ws, q_pos, topk_out[0][q_pos])
        self.layers.append({
            "name": f"layer{idx:02d}.indexer",
            "q": qs.to(self.dtype).cpu(),
            "k": kf.to(self.dtype).cpu(),
            "w": ws.float().cpu(),
            "q_pos": q_pos.to(torch.int64).cpu(),
        })

    def meta(self, **extra) -> dict:
        """Dump meta for what was recorded; extra (model, text_sha256, notes, ...) is merged in."""
        cfg = getattr(self.model, "config", None)
        m = {
            "model": getattr(cfg, "model_type", type(self.model).__name__),
            "source": "real",
            "tokens": int(self.layers[0]["k"].shape[0]) if self.layers else 0,
            "key_centered": False,
            "weights": "weights_proj(x) * H^-1/2 * D^-1/2",
            "rope": "post",
            "notes": "DSA lightning-indexer tensors recorded from HF transformers",
        }
        try:
            import transformers
            m["package"] = f"transformers=={transformers.__version__}"
        except ImportError:
            pass
        m.update(extra)
        return m


def _cached_indexer_keys(cache, idx: int):
    """Length of the indexer key cache of layer idx after the forward, when the cache exposes it."""
    try:
        keys = cache.layers[idx].indexer_keys
        return int(keys.shape[1])
    except (AttributeError, IndexError, TypeError):
        return None


def _check_topk(idx, q, k, w, q_pos, chosen, rtol=2e-2):
    """The scores of the indexer's own top-k must be the top-k scores of the recomputed I (tie-aware:
    compared as sorted values, so equal scores may be chosen in any order)."""
    scores = torch.einsum("qhd,sd->qhs", q, k).relu_()
    scores = torch.einsum("qh,qhs->qs", w, scores)
    for i in range(len(q_pos)):
        t = int(q_pos[i])
        vis = scores[i, : t + 1]
        sel = chosen[i].long()
        sel = sel[(sel >= 0) & (sel <= t)]  # beyond the causal range the indexer picks masked slots
        want = vis.topk(min(len(sel), t + 1)).values
        got = vis[sel].sort(descending=True).values
        scale = float(vis.abs().max()) + 1e-12
        if len(sel) != min(chosen.shape[-1], t + 1) or not torch.allclose(got, want, rtol=rtol, atol=rtol * scale):
            raise HisaBenchError(f"layer {idx}: the recorded indexer tensors do not reproduce the model's own "
                                 f"top-k (query at position {t}); unknown indexer layout")


def record_dsa_dump(model, input_ids: torch.Tensor, path, queries: int | None = 128, layers=None,
                    dtype: torch.dtype = torch.float32, **meta):
    """One prefill forward of input_ids [1, T] (no cache) with every indexer recorded, saved as a dump.
    meta (model, text_sha256, notes, ...) goes into the dump's meta. Returns the path written."""
    from ..inputs.dump import save_dump

    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise HisaBenchError(f"input_ids: expected shape [1, T], got {list(input_ids.shape)}")
    with DSAIndexerRecorder(model, queries=queries, layers=layers, dtype=dtype) as rec, torch.no_grad():
        model(input_ids, use_cache=False)
    if not rec.layers:
        raise HisaBenchError("no indexer layer ran: check layers=")
    return save_dump(path, rec.layers, rec.meta(**meta))
