"""Replays 12 rows of the speed command's structured 128K chunk (1024 queries, H 64, D 128, fp8) in torch on a
CPU: float32 scores, group maxima of 16, the pruned top-k's bound and which path each row takes.

    PYTHONPATH=. python docs/measurements/2026-11-30/session3/replay_structured_rows.py
"""
import torch
from hisa_bench import api
from hisa_bench.inputs.synthetic import structured_qkw
from kernels.flat_scores_naive import flat_scores_ref
from kernels.topk_pruned_naive import group_max_ref
L, H, D, K, Q, G = 131072, 64, 128, 2048, 1024, 16
ks_all = torch.zeros(Q, dtype=torch.int32); ke_all = (L - Q + 1 + torch.arange(Q)).to(torch.int32)
q, k, w = structured_qkw(torch.arange(L), ke_all.long() - 1, ks_all, ke_all, heads=H, dim=D, topk=K, seed=0)
q, k, w, ksc = api.quantize_fp8(q, k, w)
sel = torch.arange(0, Q, 64)[:12]
s = flat_scores_ref(q[sel], k, w[sel], ks_all[sel], ke_all[sel], ksc, dtype=torch.float32)
s = torch.where(torch.isfinite(s), s, torch.full_like(s, float("-inf")))
rl = ke_all[sel] - ks_all[sel]
gm = group_max_ref(s, rl, ks_all[sel], G)
for t in range(len(sel)):
    g = gm[t][torch.isfinite(gm[t])]
    nv = g.numel(); b = torch.topk(g, K).values[-1]
    npass = int((g >= b).sum()); row = s[t, :rl[t]]
    cge = int((row >= b).sum()); cgt = int((row > b).sum()); pos = int((row > 0).sum())
    # the kernel's choice at its GPU config (CAP 8192, LIST_CAP 32768); 'listed' came after this
    # replay, which showed these rows 'crowded'
    path = ("wide" if npass >= nv else "pruned" if cge <= 8192 else "tied" if cgt < K
            else "listed" if cge <= 32768 else "crowded")
    print(t, "valid groups", nv, "pass", npass, "bound", float(b), "c_ge", cge, "c_gt", cgt, "positives", pos, path)
