"""Seeded synthetic indexer dumps with the structure real ones have.

Each key is a sum of parts, each part a direction in key space scaled by a knob:

  sinks        the first `sinks` keys share one direction that every query head also carries, so
               they score high for every query (attention sinks).
  recency      keys and queries carry a position code made of `recency_freqs` sine/cosine pairs with
               periods from `recency_window` to the context length; q(t) . k(s) is largest for s
               near t and decays with t - s.
  topics       the context is cut into `topics` spans of random lengths (edges are never multiples
               of 16, so they straddle any power-of-two block edge); every key of a span carries its
               topic direction, and a query head carries the topic of its own span or, with
               probability `topic_jump`, of an earlier one.
  needles      `needles` single keys with a direction of their own; a share `needle_queries` of the
               later queries carries that direction on some heads, so the needle is among their
               best keys while its block mean is diluted by the other B - 1 keys.
  adversarial  `adversarial` needles whose aligned window of `adversarial_block` keys carries the
               opposite direction, cancelling all the window holds along the needle: the window's
               mean along it is zero (before centring), so mean pooling cannot see it while the flat
               indexer ranks it among the best keys.
  norms        every key is scaled by a log-normal factor exp(`norm_sigma` * N(0, 1)): heavy-tailed
               key norms.
  noise        isotropic Gaussian noise of norm about `key_noise` (keys) and `query_noise` (queries).

Keys are centred at the end (k -= k.mean(0)), as real-model proxies are. Query positions are
distinct, increasing, drawn with density proportional to ((s + 1) / T) ** `query_tail` (0: uniform,
larger: more queries near the end, where queries see more than m*B keys and are not trivial).
Every layer gets its own directions and head mixes; positions of spans, needles and queries are the
same for every layer (they belong to the text, not the layer).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..errors import HisaBenchError
from .synthetic_config import SyntheticConfig

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _unit(g, *shape):
    v = torch.randn(*shape, generator=g, dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True)


def _topic_spans(g, cfg: SyntheticConfig):
    """Span id of every key position >= sinks. Edges are random and never multiples of 16."""
    n = cfg.keys
    if cfg.topics <= 1:
        return torch.zeros(n, dtype=torch.long), [0]
    cuts = set()
    while len(cuts) < cfg.topics - 1:
        c = int(torch.randint(1, n, (1,), generator=g))
        if c % 16 == 0:
            c += 1 + int(torch.randint(0, 15, (1,), generator=g))
        if 0 < c < n:
            cuts.add(c)
    edges = [0] + sorted(cuts)
    span = torch.zeros(n, dtype=torch.long)
    for i, e in enumerate(edges):
        span[e:] = i
    return span, edges


def _query_positions(g, cfg: SyntheticConfig):
    s = torch.arange(cfg.keys, dtype=torch.float64)
    weight = ((s + 1) / cfg.keys) ** cfg.query_tail
    pos = torch.multinomial(weight, cfg.queries, replacement=False, generator=g)
    return torch.sort(pos).values.to(torch.int64)


def _position_code(pos, periods, phase):
    """[len(pos), 2F] sine/cosine code; code(t) . code(s) = sum_f cos(2 pi (t - s) / period_f)."""
    ang = 2 * math.pi * pos.double()[:, None] / periods[None, :] + phase[None, :]
    return torch.cat([ang.cos(), ang.sin()], 1) / math.sqrt(max(len(periods), 1))


def _layer(g, cfg, name, span, edges, q_pos, needle_pos, adv_pos):
    T, H, D, nq = cfg.keys, cfg.heads, cfg.dim, cfg.queries
    n_topics = len(edges)
    # directions of this layer
    sink_dir = _unit(g, D)
    topic_dirs = _unit(g, n_topics, D)
    F = cfg.recency_freqs
    periods = torch.logspace(math.log10(cfg.recency_window), math.log10(max(cfg.keys, cfg.recency_window) * 2),
                             max(F, 1), dtype=torch.float64)[:F]
    rec_basis = _unit(g, 2 * F, D) if F else torch.zeros(0, D, dtype=torch.float64)
    phase = torch.rand(F, generator=g, dtype=torch.float64) * 2 * math.pi

    # keys: noise + topic + recency, scaled by heavy-tailed norms
    k = torch.randn(T, D, generator=g, dtype=torch.float64) * (cfg.key_noise / math.sqrt(D))
    k += cfg.topic_strength * topic_dirs[span]
    if F:
        k += cfg.recency_strength * _position_code(torch.arange(T), periods, phase) @ rec_basis
    k *= torch.exp(cfg.norm_sigma * torch.randn(T, 1, generator=g, dtype=torch.float64))
    k[: cfg.sinks] += cfg.sink_strength * sink_dir

    # queries: per head a mix of sink, recency and topic gains, plus noise
    gains = torch.exp(0.5 * torch.randn(3, H, generator=g, dtype=torch.float64))   # [sink, rec, topic] x H
    q = torch.randn(nq, H, D, generator=g, dtype=torch.float64) * (cfg.query_noise / math.sqrt(D))
    q += gains[0][None, :, None] * sink_dir
    if F:
        code = _position_code(q_pos, periods, phase) @ rec_basis                      # [nq, D]
        q += gains[1][None, :, None] * code[:, None, :]
    own = span[q_pos]                                                                # [nq]
    jump = torch.rand(nq, H, generator=g) < cfg.topic_jump
    earlier = (torch.rand(nq, H, generator=g, dtype=torch.float64) * (own[:, None] + 1)).long()
    topic = torch.where(jump, earlier, own[:, None])
    q += gains[2][None, :, None] * topic_dirs[topic]

    # needles: one key each, carried by a share of the later queries on some heads
    def plant(p, anti_window=None):
        d = _unit(g, D)
        k[p] += cfg.needle_strength * d
        if anti_window is not None:
            lo, hi = anti_window
            others = [s for s in range(lo, hi) if s != p]
            if others:
                # the rest of the window takes away all the window holds along d (needle, topic,
                # noise): its mean along d is zero before centring, and the neighbours point away
                total = float(k[lo:hi].sum(0) @ d)
                k[others] -= (total / len(others)) * d
        later = torch.nonzero(q_pos > p).flatten()
        if len(later) == 0 or cfg.needle_queries == 0:
            return
        n_sel = max(1, round(cfg.needle_queries * len(later)))
        chosen = later[torch.randperm(len(later), generator=g)[:n_sel]]
        heads = torch.rand(len(chosen), H, generator=g) < 0.5
        heads[torch.arange(len(chosen)), torch.randint(0, H, (len(chosen),), generator=g)] = True
        q[chosen] += cfg.needle_strength * heads[:, :, None].double() * d

    for p in needle_pos:
        plant(int(p))
    B = cfg.adversarial_block
    for p in adv_pos:
        lo = (int(p) // B) * B
        plant(int(p), (lo, min(lo + B, T)))

    k -= k.mean(0)
    if cfg.weights == "uniform":
        w = torch.full((nq, H), 1.0 / H, dtype=torch.float32)
    else:
        # signed head weights like a trained indexer's: mostly positive, some negative
        w = ((torch.randn(nq, H, generator=g) * 0.5 + 0.5) / H).to(torch.float32)
    dt = DTYPES[cfg.dtype]
    return {"name": name, "q": q.to(dt).contiguous(), "k": k.to(dt).contiguous(), "w": w.contiguous(),
            "q_pos": q_pos.clone()}


def _planted_positions(g, cfg):
    """Needle and adversarial positions: distinct, past the sinks, before the last 5% of keys."""
    lo = min(cfg.sinks + 1, cfg.keys - 1)
    hi = max(lo + 1, int(cfg.keys * 0.95))
    n = cfg.needles + cfg.adversarial
    pool = torch.randperm(hi - lo, generator=g)[:n] + lo
    if len(pool) < n:
        raise HisaBenchError(f"--needles/--adversarial: {n} needles do not fit in {cfg.keys} keys")
    return pool[: cfg.needles].sort().values, pool[cfg.needles:].sort().values


def generate(cfg: SyntheticConfig):
    """(layers, meta) of a synthetic dump; the same config always gives the same tensors."""
    cfg.check()
    g = torch.Generator().manual_seed(cfg.seed)
    span, edges = _topic_spans(g, cfg)
    q_pos = _query_positions(g, cfg)
    needle_pos, adv_pos = _planted_positions(g, cfg)
    layers = []
    width = max(2, len(str(cfg.layers - 1)))
    for i in range(cfg.layers):
        lg = torch.Generator().manual_seed(cfg.seed * 1000003 + i + 1)
        layers.append(_layer(lg, cfg, f"layer{i:0{width}d}", span, edges, q_pos, needle_pos, adv_pos))
    meta = {
        "source": "synthetic", "model": "synthetic", "package": "hisa-bench", "tokens": cfg.keys,
        "key_centered": True, "weights": cfg.weights, "rope": "none",
        "needle_positions": ",".join(str(int(p)) for p in needle_pos),
        "adversarial_positions": ",".join(str(int(p)) for p in adv_pos),
        "topic_edges": ",".join(str(e) for e in edges),
        "notes": "hisa_bench.inputs.synthetic: sinks, recency, topics, needles, adversarial pooling, heavy-tailed norms",
    }
    meta.update({f"gen_{k}": v for k, v in asdict(cfg).items()})
    return layers, meta


__all__ = ["SyntheticConfig", "generate", "DTYPES"]


# ---------------------------------------------------------------------------------------------
# Structured timing inputs: the same parts as above (sinks, recency code, topic spans, heavy-tailed
# norms), built for any length in a few vectorised tensor operations on the target device, plus a
# per-query "gate" that decides how many keys score above zero. No Python loop runs over keys.
#
# The gate is a direction g orthogonal to every other part. Every key carries -norm_j * g and query
# t carries +c_t * g on every head, so q_th . k_j = norm_j * (x_thj - c_t) with x the dot product of
# the other parts: key j scores exactly zero after ReLU on every head when max_h x_thj <= c_t.
# c_t is the (1 - p_t) quantile of max_h x over keys sampled from the query's visible range, so
# about a share p_t of its keys score above zero: a share `sparse_rows` of the queries keeps fewer
# than top-k keys above zero (their k-th place is a tie among exact zeros), the others 35-85%.
# ---------------------------------------------------------------------------------------------

@dataclass
class StructuredConfig:
    sinks: int = 4
    sink_strength: float = 3.0
    recency_window: int = 256
    recency_freqs: int = 8
    recency_strength: float = 1.2
    topic_len: int = 2048            # mean keys per topic span
    topic_strength: float = 1.0
    topic_jump: float = 0.3
    norm_sigma: float = 0.5
    noise: float = 1.0
    sparse_rows: float = 0.2         # share of queries with fewer than top-k keys above zero
    dense_share: tuple = (0.35, 0.85)  # share of keys above zero for the other queries
    samples: int = 4096              # keys sampled per query to place its gate


def _orthonormal(g, dim, device):
    a = torch.randn(dim, dim, generator=g, device=device)
    return torch.linalg.qr(a.cpu())[0].to(device)     # QR on the host: tiny, and no GPU solver needed


def structured_qkw(key_pos, q_pos, ks, ke, *, heads: int, dim: int, topk: int, seed: int = 0,
                   device="cpu", cfg: StructuredConfig | None = None):
    """float32 q [M, H, D], k [N, D], w [M, H] on `device`.

    key_pos[j]: position of key j within its own sequence (0 at a sequence's first key), so packed
    decode caches get sinks and topics per sequence; q_pos[t]: the query's position in its sequence;
    [ks[t], ke[t]): the keys query t sees (the gate is calibrated on them)."""
    cfg = cfg or StructuredConfig()
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(int(seed))
    key_pos = key_pos.to(dev, torch.int64)
    q_pos = q_pos.to(dev, torch.int64)
    N, M, H, D = key_pos.numel(), q_pos.numel(), heads, dim
    span = int(key_pos.max()) + 1 if N else 1

    def randn(*shape):
        return torch.randn(*shape, generator=g, device=dev)

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    basis = _orthonormal(g, D, dev)
    gate, sink = basis[:, 0], basis[:, 1]

    def off_gate(x):
        return x - (x @ gate)[..., None] * gate

    def unit(x):
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    # topic spans: random cut points (never multiples of 16, so spans straddle block edges)
    n_topics = max(2, -(-span // max(cfg.topic_len, 16)))
    cuts = torch.randint(1, max(span, 2), (n_topics - 1,), generator=g, device=dev)
    cuts = torch.sort(cuts + (cuts % 16 == 0).long()).values
    key_topic = torch.searchsorted(cuts, key_pos, right=True)
    q_topic = torch.searchsorted(cuts, q_pos, right=True)
    topic_dirs = unit(off_gate(randn(n_topics, D)))

    # recency: a sine/cosine position code, periods from the window to twice the context
    F = cfg.recency_freqs
    periods = torch.logspace(math.log10(cfg.recency_window), math.log10(max(span, cfg.recency_window) * 2), F,
                             dtype=torch.float64, device=dev)
    phase = rand(F).double() * 2 * math.pi
    rec_basis = unit(off_gate(randn(2 * F, D)))

    def code(pos):
        return _position_code(pos, periods, phase).float() @ rec_basis

    # keys
    kp = randn(N, D) * (cfg.noise / math.sqrt(D))
    kp += cfg.topic_strength * topic_dirs[key_topic]
    kp += cfg.recency_strength * code(key_pos)
    kp = off_gate(kp)
    kp += cfg.sink_strength * sink * (key_pos < cfg.sinks).float()[:, None]
    norm = torch.exp(cfg.norm_sigma * randn(N, 1))

    # queries: per-head gains of sink, recency and topic; a head may follow an earlier topic
    gains = torch.exp(0.5 * randn(3, H))
    qp = randn(M, H, D) * (cfg.noise / math.sqrt(D))
    qp += gains[0][None, :, None] * sink
    qp += gains[1][None, :, None] * code(q_pos)[:, None, :]
    jump = rand(M, H) < cfg.topic_jump
    earlier = (rand(M, H) * (q_topic[:, None] + 1).float()).long().clamp(max=n_topics - 1)
    qp += gains[2][None, :, None] * topic_dirs[torch.where(jump, earlier, q_topic[:, None])]
    qp = off_gate(qp)

    # the gate: share p_t of the visible keys above zero
    ks64, ke64 = ks.to(dev, torch.int64), ke.to(dev, torch.int64)
    visible = (ke64 - ks64).clamp_min(1).float()
    sparse = rand(M) < cfg.sparse_rows
    lo, hi = cfg.dense_share
    p = torch.where(sparse, (0.2 + 0.7 * rand(M)) * topk / visible, lo + (hi - lo) * rand(M)).clamp(0.0, 1.0)
    S = cfg.samples if M <= 8192 else min(cfg.samples, 1024)
    c = torch.empty(M, device=dev)
    rows = max(1, (1 << 25) // max(S * max(D, H), 1))
    for t0 in range(0, M, rows):           # a loop over query chunks (memory), not over keys
        t1 = min(M, t0 + rows)
        idx = ks64[t0:t1, None] + (rand(t1 - t0, S) * visible[t0:t1, None]).long()
        x = torch.einsum("thd,tsd->ths", qp[t0:t1], kp[idx]).amax(1)          # [t, S]
        xs = torch.sort(x, dim=1).values
        at = ((1.0 - p[t0:t1]) * S).long().clamp(0, S - 1)
        # p_t = 1 (every key above zero): below the smallest sample
        c[t0:t1] = torch.where(p[t0:t1] >= 1.0, xs[:, 0] - 1.0, xs.gather(1, at[:, None])[:, 0])
    q = qp + c[:, None, None] * gate
    k = norm * (kp - gate)
    # signed head weights like a trained indexer's: mostly positive, some negative
    w = (randn(M, H) * 0.5 + 0.5) / H
    return q.contiguous(), k.contiguous(), w.contiguous()


__all__ += ["StructuredConfig", "structured_qkw"]
