"""How often HISA's token rows have their k-th score at an exact zero (CPU, torch references): the
case the row top-k's zero shortcut takes (kernels/topk.py _threshold_in_registers). 32 queries at
the tail of L = 32768, H 64, D 128, fp8, B 128, m 64, k 2048; each row is the query's m * B
candidate scores (kept blocks from the reference block stage, invisible keys -inf).
    PYTHONPATH=. python docs/measurements/2026-12-01/zero_ties.py      (about a minute; output beside it)
"""
import torch

from hisa_bench import api
from hisa_bench.inputs.synthetic import structured_qkw
from kernels.flat_scores_naive import flat_scores_ref
from kernels.hisa_naive import kept_blocks_ref

L, Q, H, D, B, m, K = 32768, 32, 64, 128, 128, 64, 2048
ke = (L - Q + 1 + torch.arange(Q)).to(torch.int32)
ks = torch.zeros(Q, dtype=torch.int32)
for kind in ("structured", "random"):
    if kind == "structured":
        q, k, w = structured_qkw(torch.arange(L), ke.long() - 1, ks, ke, heads=H, dim=D, topk=K, seed=0)
    else:
        g = torch.Generator().manual_seed(0)
        q, k, w = torch.randn(Q, H, D, generator=g), torch.randn(L, D, generator=g), torch.randn(Q, H, generator=g) / H
    q, k, w, ksc = api.quantize_fp8(q, k, w)
    kept = kept_blocks_ref(q, k, w, ks, ke, ksc, B, m)
    s = flat_scores_ref(q, k, w, ks, ke, ksc).float()
    pos = (kept[:, :, None].long() * B + torch.arange(B)).reshape(Q, -1)
    vis = (kept[:, :, None] >= 0).expand(-1, -1, B).reshape(Q, -1) & (pos < ke[:, None])
    cand = torch.where(vis, torch.gather(s, 1, pos.clamp(0, L - 1)), torch.tensor(float("-inf")))
    kth = cand.sort(1, descending=True).values[:, K - 1]
    print(f"{kind:<11} exact zeros per row {float((cand == 0).sum(1).float().mean()):7.1f}  "
          f"rows whose k-th score is 0 (tied) {float((kth == 0).float().mean()):.3f}  "
          f"negative share {float((cand < 0).float().mean()):.3f}")
