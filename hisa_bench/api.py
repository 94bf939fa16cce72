"""The documented Python API: flat, HISA and block-sparse selection as functions that return
int32 [T, topk] absolute key positions (-1 in unused slots).

Every function validates its inputs before any kernel launches and raises HisaBenchError with a
message naming the problem. backend="triton" runs our kernels (compiled on a GPU, interpreted on a
CPU), backend="reference" the plain-torch references, "auto" the kernels on CUDA tensors and the
references on CPU tensors.

Shapes: q [T, H, D], k [N, D], w [T, H] float32, ks/ke int32 [T] (query t sees keys [ks, ke)),
k_scale float32 [N] for fp8 keys (then q is fp8 too, its scales folded into w).

stage1 (HISA and block-sparse): how blocks are ranked. "relu" is the paper's rule,
sum_h w relu(q_h . kbar); "raw" drops the ReLU, sum_h w (q_h . kbar), at the same cost. Other
rules (hisa_bench/measure/stage1.py) have no kernel.
"""
from __future__ import annotations


import torch

from .errors import HisaBenchError

FP8 = torch.float8_e4m3fn
KEY_DTYPES = (torch.bfloat16, torch.float16, torch.float32, FP8)
POOLINGS = ("mean", "max")
def _check_stage1(stage1):
    from kernels.hisa_naive import STAGE1_RULES     # the stage-1 rules our kernels have

    if stage1 not in STAGE1_RULES:
        raise HisaBenchError(f"stage1 must be {' or '.join(STAGE1_RULES)} (the rules our kernels have; the "
                             f"others are in hisa_bench/measure/stage1.py), got {stage1!r}")


def causal_ranges(q_pos, device=None):
    """ks = 0, ke = q_pos + 1: a plain causal query sees every earlier key and itself."""
    q_pos = torch.as_tensor(q_pos)
    device = device or q_pos.device
    return (torch.zeros(q_pos.shape[0], dtype=torch.int32, device=device),
            (q_pos.to(device=device, dtype=torch.int64) + 1).to(torch.int32))


def validate(q, k, w, ks, ke, k_scale=None, *, topk=None, block_size=None, blocks=None,
             pooling="mean", check_values=True):
    """Raise HisaBenchError for anything the kernels cannot take. Returns nothing."""
    def bad(msg):
        raise HisaBenchError(msg)

    for name, t in (("q", q), ("k", k), ("w", w), ("ks", ks), ("ke", ke)):
        if not isinstance(t, torch.Tensor):
            bad(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if q.dim() != 3:
        bad(f"q must be [T, H, D], got shape {tuple(q.shape)}")
    T, H, D = q.shape
    if k.dim() != 2 or k.shape[1] != D:
        bad(f"k must be [N, D] with D = {D} (q's head dim), got shape {tuple(k.shape)}")
    if tuple(w.shape) != (T, H):
        bad(f"w must be [T, H] = [{T}, {H}], got shape {tuple(w.shape)}")
    if w.dtype != torch.float32:
        bad(f"w must be float32, got {w.dtype}")
    if not 1 <= H <= 128:
        bad(f"heads must be 1..128, got {H}")
    if D % 16 or not 16 <= D <= 256:
        bad(f"head dim must be a multiple of 16 in 16..256, got {D}")
    if q.dtype not in KEY_DTYPES or k.dtype not in KEY_DTYPES:
        bad(f"q and k must be bf16, fp16, fp32 or fp8 e4m3, got {q.dtype} and {k.dtype}")
    if q.dtype != k.dtype:
        bad(f"q and k must have the same dtype, got {q.dtype} and {k.dtype}")
    if k.dtype == FP8:
        if k_scale is None:
            bad("fp8 keys need k_scale, a float32 [N] scale per key")
    if k_scale is not None:
        if not isinstance(k_scale, torch.Tensor):
            bad(f"k_scale must be a torch.Tensor or None, got {type(k_scale).__name__}")
        if k_scale.dtype != torch.float32 or tuple(k_scale.shape) != (k.shape[0],):
            bad(f"k_scale must be float32 [{k.shape[0]}], got {k_scale.dtype} {tuple(k_scale.shape)}")
    for name, t in (("ks", ks), ("ke", ke)):
        if t.dtype not in (torch.int32, torch.int64) or tuple(t.shape) != (T,):
            bad(f"{name} must be an integer tensor of shape [{T}], got {t.dtype} {tuple(t.shape)}")
    devices = {t.device for t in (q, k, w, ks, ke) + ((k_scale,) if k_scale is not None else ())}
    if len(devices) > 1:
        bad(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    if topk is not None and topk < 1:
        bad(f"topk must be at least 1, got {topk}")
    if block_size is not None:
        if block_size < 16 or block_size & (block_size - 1):
            bad(f"block size must be a power of two >= 16, got {block_size}")
    if blocks is not None:
        if blocks < 2:
            bad(f"blocks kept must be at least 2 (first and last are forced), got {blocks}")
        if topk is not None and block_size is not None and blocks * block_size < topk:
            bad(f"blocks x block size must cover top-k: {blocks} x {block_size} = "
                f"{blocks * block_size} < {topk}")
    if pooling not in POOLINGS:
        bad(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if check_values and T:
        ksl, kel = ks.long(), ke.long()
        if bool((ksl < 0).any()) or bool((kel > k.shape[0]).any()) or bool((kel <= ksl).any()):
            bad(f"every query needs 0 <= ks < ke <= N = {k.shape[0]} (at least one visible key)")
        for name, t in (("q", q), ("k", k), ("w", w)) + ((("k_scale", k_scale),) if k_scale is not None else ()):
            if not bool(torch.isfinite(t.float() if t.dtype == FP8 else t).all()):
                bad(f"{name} holds NaN or Inf values")
        if k_scale is not None and bool((k_scale <= 0).any()):
            bad("k_scale must be positive")


def _dense(*tensors):
    """The kernels index the innermost dimension with stride 1: a strided view (a slice, a
    transpose) must be copied first, or they read the wrong elements."""
    return tuple(None if t is None else t.contiguous() for t in tensors)


def _use_kernels(backend, device):
    if backend == "auto":
        return device.type == "cuda"
    if backend == "triton":
        return True
    if backend == "reference":
        return False
    raise HisaBenchError(f"backend must be auto, triton or reference, got {backend!r}")


def flat_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, backend="auto"):
    """The flat DSA lightning indexer: top-k of I over each query's visible keys."""
    validate(q, k, w, ks, ke, k_scale, topk=topk)
    if _use_kernels(backend, q.device):
        from kernels import indexers
        q, k, w, ks, ke, k_scale = _dense(q, k, w, ks.int(), ke.int(), k_scale)
        return indexers.flat_select(q, k, w, ks, ke, k_scale, topk=topk)
    from kernels.hisa_naive import flat_select_ref
    return flat_select_ref(q, k, w, ks, ke, k_scale, topk=topk)


def hisa_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128, blocks=64,
                pooling="mean", backend="auto", stage1="relu"):
    """HISA: mean-pool keys into blocks, keep m blocks per query (first and last forced, the others
    ranked by the stage-1 rule), then the exact top-k over the keys of the kept blocks."""
    _check_stage1(stage1)
    validate(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, blocks=blocks, pooling=pooling)
    if _use_kernels(backend, q.device):
        from kernels import indexers
        q, k, w, ks, ke, k_scale = _dense(q, k, w, ks.int(), ke.int(), k_scale)
        return indexers.hisa_select(q, k, w, ks, ke, k_scale, topk=topk,
                                    block_size=block_size, blocks=blocks, pooling=pooling, stage1=stage1)
    from kernels.hisa_naive import hisa_select_ref
    return hisa_select_ref(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size,
                           blocks=blocks, pooling=pooling, stage1=stage1)


def block_sparse_select(q, k, w, ks, ke, k_scale=None, *, topk=2048, block_size=128,
                        pooling="mean", backend="auto", stage1="relu"):
    """Stage 1 alone: keep topk // B blocks by the stage-1 rule and every visible key in them."""
    _check_stage1(stage1)
    validate(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size, pooling=pooling)
    if topk < block_size:
        raise HisaBenchError(f"block-sparse keeps topk // block size blocks: topk {topk} < block size {block_size}")
    if _use_kernels(backend, q.device):
        from kernels import indexers
        q, k, w, ks, ke, k_scale = _dense(q, k, w, ks.int(), ke.int(), k_scale)
        return indexers.block_sparse_select(q, k, w, ks, ke, k_scale, topk=topk,
                                            block_size=block_size, pooling=pooling, stage1=stage1)
    from kernels.hisa_naive import block_sparse_select_ref
    return block_sparse_select_ref(q, k, w, ks, ke, k_scale, topk=topk, block_size=block_size,
                                   pooling=pooling, stage1=stage1)


def quantize_fp8(q, k, w):
    """bf16/fp32 q, k, w -> fp8 q (per (t, h) scale folded into w), fp8 k with a float32 scale per
    key. Scales are positive, so relu(s * x) = s * relu(x) keeps I exact up to rounding."""
    fmax = torch.finfo(FP8).max
    q32, k32 = q.float(), k.float()
    q_scale = q32.abs().amax(-1).clamp_min(1e-12) / fmax                 # [T, H]
    k_scale = k32.abs().amax(-1).clamp_min(1e-12) / fmax                 # [N]
    q8 = (q32 / q_scale[..., None]).to(FP8)
    k8 = (k32 / k_scale[:, None]).to(FP8)
    return q8, k8, (w.float() * q_scale).contiguous(), k_scale.float().contiguous()


def pair_count(ks, ke) -> int:
    """Visible (query, key) pairs: the flat indexer's work, 2*H*D FLOPs each."""
    return int((ke.long() - ks.long()).sum())


def flops_per_pair(H: int, D: int) -> int:
    return 2 * H * D


__all__ = ["causal_ranges", "validate", "flat_select", "hisa_select", "block_sparse_select",
           "quantize_fp8", "pair_count", "flops_per_pair"]
