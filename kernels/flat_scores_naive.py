"""Plain-torch reference for kernels/flat_scores.py (float64 by default, chunked over queries)."""
from __future__ import annotations

import torch


def dequantize_keys(k, k_scale=None, dtype=torch.float64):
    kf = k.to(dtype)
    if k_scale is not None:
        kf = kf * k_scale.to(dtype)[:, None]
    return kf


def flat_scores_ref(q, k, w, ks, ke, k_scale=None, *, dtype=torch.float64, force_ends=False,
                    mem_bytes=1 << 28, relu=True):
    """Dense relative-layout scores: out[t, j] = I[t, ks[t] + j] for j < ke[t] - ks[t], else -inf.
    relu=False: sum_h w (q_h . k), without the ReLU (HISA's raw stage-1 rule on pooled keys).

    Queries are taken in chunks whose key span [min ks, max ke) is scored with one matmul, so
    causal inputs cost one pass and memory stays under about mem_bytes.
    """
    T, H, D = q.shape
    ks_l, ke_l = ks.long(), ke.long()
    width = int((ke_l - ks_l).max()) if T else 0
    kf = dequantize_keys(k, k_scale, dtype)
    out = torch.full((T, max(width, 1)), float("-inf"), dtype=dtype, device=q.device)
    j = torch.arange(max(width, 1), device=q.device)
    t0 = 0
    while t0 < T:
        lo0, hi0 = int(ks_l[t0]), int(ke_l[t0])
        t1 = t0 + 1
        # grow the chunk while the scored block stays under the memory budget
        while t1 < T:
            lo, hi = min(lo0, int(ks_l[t1])), max(hi0, int(ke_l[t1]))
            if (t1 + 1 - t0) * H * max(hi - lo, 1) * 8 * 2 > mem_bytes:
                break
            lo0, hi0, t1 = lo, hi, t1 + 1
        s = torch.einsum("chd,nd->chn", q[t0:t1].to(dtype), kf[lo0:hi0])
        if relu:
            s = s.clamp_min(0)
        s = (s * w[t0:t1].to(dtype)[:, :, None]).sum(1)                     # [c, hi0 - lo0]
        pos = ks_l[t0:t1, None] + j[None, :]
        valid = pos < ke_l[t0:t1, None]
        rel = (pos - lo0).clamp(0, max(hi0 - lo0 - 1, 0))
        vals = torch.gather(s, 1, rel)
        if force_ends:
            last = (ke_l[t0:t1] - ks_l[t0:t1] - 1)[:, None]
            vals = torch.where((j[None, :] == 0) | (j[None, :] == last), float("inf"), vals)
        out[t0:t1] = torch.where(valid, vals, torch.full_like(vals, float("-inf")))
        t0 = t1
    return out
