"""Timing inputs for the three serving shapes.

  chunk    M queries at the tail of an L-token context: query i sees keys [0, L - M + i + 1)
  prefill  the whole causal sequence: L queries, query i sees [0, i + 1), run in query chunks
  decode   a batch of sequences, one query each at the end of its own context; the caches are
           packed in one key tensor, each sequence starting at a multiple of the block size (as a
           paged cache would), so a query sees [start_b, start_b + len_b)

Three kinds of values (--inputs; docs/inputs.md):
  random      i.i.d. normal q, k, w
  structured  seeded synthetic q/k/w whose score rows look like a real indexer's: attention sinks,
              a recency window, topic clusters, heavy-tailed key norms, masses of exact zeros after
              ReLU (some rows with fewer than top-k keys above zero); inputs/synthetic.structured_qkw
  a dump      a dump file's own q, k, w (one layer), its own H and D; chunk mode takes M queries at
              their recorded positions (cycling through them when the dump has fewer), prefill gives
              each position the query recorded nearest to it, decode ends each sequence at a recorded
              query; lengths up to the dump's key count
The top-k's speed may depend on the values, so every row says which inputs it was timed on. fp8
inputs are quantised the way DSA does it: a float32 scale per key, the query's per-head scale folded
into w.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import api
from .errors import HisaBenchError

MODES = ("chunk", "prefill", "decode")
SYNTHETIC_INPUTS = ("random", "structured")


@dataclass
class InputSource:
    """One entry of --inputs: 'random', 'structured', or one layer of a dump file."""
    kind: str                       # random | structured | dump
    label: str                      # the row's `inputs` value: random, structured, or the file name
    path: str | None = None
    layer: str | None = None
    q: torch.Tensor | None = None   # the dump layer's tensors, on the host
    k: torch.Tensor | None = None
    w: torch.Tensor | None = None
    q_pos: torch.Tensor | None = None

    @property
    def max_length(self) -> int | None:
        return None if self.k is None else int(self.k.shape[0])

    @property
    def heads(self) -> int | None:
        return None if self.q is None else int(self.q.shape[1])

    @property
    def dim(self) -> int | None:
        return None if self.q is None else int(self.q.shape[2])


def load_dump_source(spec: str) -> InputSource:
    """A dump file as timing inputs: PATH.pt (its first layer) or PATH.pt@LAYER. Its H and D must be
    ones the kernels take; HisaBenchError otherwise."""
    from .inputs.dump import load_dump

    path, _, layer_name = spec.partition("@") if "@" in Path(spec).name else (spec, "", "")
    obj = load_dump(path)
    layers = obj["layers"]
    if layer_name:
        found = [x for x in layers if x["name"] == layer_name]
        if not found:
            names = ", ".join(x["name"] for x in layers[:8]) + (" ..." if len(layers) > 8 else "")
            raise HisaBenchError(f"{path}: no layer {layer_name!r} (layers: {names})")
        layer = found[0]
    else:
        layer = layers[0]
    q, k = layer["q"], layer["k"]
    if "k_scale" in layer:
        k = k.float() * layer["k_scale"][:, None]
    H, D = q.shape[1], q.shape[2]
    if not 1 <= H <= 128 or D % 16 or not 16 <= D <= 256:
        raise HisaBenchError(f"{path}: layer {layer['name']!r} has H = {H}, D = {D}; the kernels take 1..128 heads "
                             f"and a head dim that is a multiple of 16 in 16..256")
    label = Path(path).name + (f"@{layer_name}" if layer_name else "")
    return InputSource("dump", label, str(path), layer["name"], q.float(), k.float(), layer["w"].float(),
                       layer["q_pos"].long())


def parse_inputs(text: str, row_kinds=()) -> list[InputSource]:
    """--inputs: a comma list of random, structured (or, with row_kinds, those names) and dump paths.
    Every dump is loaded and validated here, before anything is timed."""
    out = []
    for item in [x.strip() for x in str(text or "").split(",") if x.strip()]:
        if item in SYNTHETIC_INPUTS or item in row_kinds:
            src = InputSource(item, item)
        elif item.endswith(".pt") or "/" in item or "@" in item or Path(item).exists():
            src = load_dump_source(item)
        else:
            known = ", ".join(dict.fromkeys(SYNTHETIC_INPUTS + tuple(row_kinds)))
            raise HisaBenchError(f"--inputs: unknown input {item!r}: expected {known} or a dump file (PATH.pt)")
        if src.label not in [s.label for s in out]:
            out.append(src)
    if not out:
        raise HisaBenchError(f"--inputs: expected a comma list such as random,structured,PATH.pt, got {text!r}")
    return out


@dataclass
class Workload:
    mode: str
    length: int
    batch: int
    q: torch.Tensor
    k: torch.Tensor
    w: torch.Tensor
    ks: torch.Tensor
    ke: torch.Tensor
    k_scale: torch.Tensor | None
    query_chunk: int | None = None
    last_blocks: torch.Tensor | None = None      # decode: block of each sequence's newest key
    info: dict = field(default_factory=dict)

    @property
    def queries(self) -> int:
        return self.q.shape[0]

    @property
    def pairs(self) -> int:
        return api.pair_count(self.ks, self.ke)


def make_workload(mode: str, length: int, *, batch: int = 1, queries: int = 1024, heads: int = 64,
                  dim: int = 128, dtype: str = "fp8", device: str = "cuda", seed: int = 0,
                  block_size: int = 128, ragged: bool = False, query_chunk: int | None = None,
                  inputs: InputSource | str = "random", topk: int = 2048) -> Workload:
    if mode not in MODES:
        raise HisaBenchError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    src = inputs if isinstance(inputs, InputSource) else InputSource(inputs, inputs)
    if src.kind not in SYNTHETIC_INPUTS + ("dump",):
        raise HisaBenchError(f"inputs must be random, structured or a dump file, got {src.kind!r}")
    g = torch.Generator(device="cpu").manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    if src.kind == "dump":
        return _dump_workload(src, mode, length, batch=batch, queries=queries, dtype=dtype, device=device, g=g,
                              block_size=block_size, ragged=ragged, query_chunk=query_chunk)
    if mode == "chunk":
        M = min(queries, length)
        n_keys = length
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (length - M + 1 + torch.arange(M)).to(torch.int32)
        lens = None
    elif mode == "prefill":
        M = length
        n_keys = length
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (1 + torch.arange(M)).to(torch.int32)
        lens = None
        query_chunk = query_chunk or queries
    else:
        M = batch
        if ragged:
            lens = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
            lens[0] = length
        else:
            lens = torch.full((batch,), length)
        padded = (lens + block_size - 1) // block_size * block_size
        starts = torch.cumsum(padded, 0) - padded
        n_keys = int(padded.sum())
        ks = starts.to(torch.int32)
        ke = (starts + lens).to(torch.int32)
    if src.kind == "random":
        q = randn(M, heads, dim)
        k = randn(n_keys, dim)
        w = randn(M, heads) / heads
    else:
        from .inputs.synthetic import structured_qkw
        if mode == "decode":     # each packed sequence has its own sinks, topics and recency
            seq = torch.searchsorted(ks.long(), torch.arange(n_keys), right=True) - 1
            key_pos = torch.arange(n_keys) - ks.long()[seq]
        else:
            key_pos = torch.arange(n_keys)
        q, k, w = structured_qkw(key_pos, ke.long() - 1 - ks.long(), ks, ke, heads=heads, dim=dim, topk=topk,
                                 seed=seed, device=device)
    return _finish(mode, length, batch, q, k, w, ks, ke, dtype, device, block_size, query_chunk,
                   {"lengths": lens.tolist() if lens is not None and ragged else None, "inputs": src.label})


def _finish(mode, length, batch, q, k, w, ks, ke, dtype, device, block_size, query_chunk, info):
    if dtype == "fp8":
        q, k, w, k_scale = api.quantize_fp8(q, k, w)
    elif dtype in ("bf16", "fp16"):
        dt = torch.bfloat16 if dtype == "bf16" else torch.float16
        q, k, k_scale = q.to(dt), k.to(dt), None
    else:
        raise HisaBenchError(f"dtype must be fp8, bf16 or fp16, got {dtype!r}")
    ks, ke = ks.to(device), ke.to(device)
    last_blocks = ((ke - 1) // block_size).to(torch.int32) if mode == "decode" else None
    return Workload(mode, length, batch if mode == "decode" else 1, q.contiguous(), k.contiguous(),
                    w.float().contiguous(), ks, ke, k_scale, query_chunk, last_blocks, info)


def check_dump_length(src: InputSource, length: int):
    """A dump serves lengths from just past its first recorded query up to its key count."""
    n = src.max_length
    if n is not None and length > n:
        raise HisaBenchError(f"{src.path}: the dump has {n} keys: lengths up to {n} with these inputs, got {length}")
    if src.q_pos is not None and int(src.q_pos[0]) >= length:
        raise HisaBenchError(f"{src.path}: no recorded query at a position below {length} "
                             f"(the first is at {int(src.q_pos[0])}): use a longer length")


def _dump_workload(src, mode, length, *, batch, queries, dtype, device, g, block_size, ragged, query_chunk):
    """A dump layer's own q, k, w at this shape (module docstring: which query stands where)."""
    check_dump_length(src, length)
    q_pos = src.q_pos
    inside = torch.nonzero(q_pos < length).flatten()
    recorded = inside.numel()
    if mode == "chunk":
        M = min(queries, length)
        take = inside[-M:]                                        # the newest recorded queries first
        pick = torch.sort(take[torch.arange(M) % take.numel()]).values   # cycled when fewer than M
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (q_pos[pick] + 1).to(torch.int32)
        k = src.k[:length]
        note = f"{min(recorded, M)} recorded queries" + (f" cycled to {M}" if recorded < M else "")
    elif mode == "prefill":
        # every position gets the query recorded nearest to it (the later one on a tie)
        pos = torch.arange(length)
        rec = q_pos[inside]
        after = torch.searchsorted(rec, pos).clamp(max=rec.numel() - 1)
        before = (after - 1).clamp(min=0)
        nearer_before = (pos - rec[before]).abs() < (rec[after] - pos).abs()
        pick = inside[torch.where(nearer_before, before, after)]
        M = length
        ks = torch.zeros(M, dtype=torch.int32)
        ke = (pos + 1).to(torch.int32)
        k = src.k[:length]
        query_chunk = query_chunk or queries
        note = f"{recorded} recorded queries stand for {length} positions (nearest recorded position)"
    else:
        # each sequence ends at a recorded query: its context is the dump's keys up to that position
        if ragged:
            want = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
            want[0] = length
        else:
            want = torch.full((batch,), length)
        slot = (torch.searchsorted(q_pos[inside], want - 1, right=True) - 1).clamp(min=0)
        pick = inside[slot]
        lens = q_pos[pick] + 1
        padded = (lens + block_size - 1) // block_size * block_size
        starts = torch.cumsum(padded, 0) - padded
        n_keys = int(padded.sum())
        k = torch.zeros(n_keys, src.k.shape[1])
        for b in range(batch):          # one copy per sequence of the batch (not a loop over keys)
            k[int(starts[b]): int(starts[b] + lens[b])] = src.k[: int(lens[b])]
        ks = starts.to(torch.int32)
        ke = (starts + lens).to(torch.int32)
        M = batch
        note = f"each sequence ends at a recorded query (context {int(lens.min())}-{int(lens.max())})"
    q, w = src.q[pick].to(device), src.w[pick].to(device)
    info = {"lengths": (ke - ks).tolist() if mode == "decode" and ragged else None, "inputs": src.label,
            "inputs_note": f"{src.label} layer {src.layer}: " + note}
    return _finish(mode, length, batch, q, k.to(device), w, ks, ke, dtype, device, block_size, query_chunk, info)
