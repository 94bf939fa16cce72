"""The iou figures from our kernels' selections agree with the float64 reference engine."""
import torch

from hisa_bench.measure.fidelity import GridPoint, measure_layer


def _layer(T=160, Nq=12, H=3, D=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(T, D, generator=g)
    k[:4] += 3.0                                  # sinks
    q_pos = torch.sort(torch.randperm(T - 40, generator=g)[:Nq] + 40).values
    q = torch.randn(Nq, H, D, generator=g) + k[q_pos][:, None, :] * 0.5   # recency-ish alignment
    return {"name": "l0", "q": q.to(torch.float16), "k": (k - k.mean(0)).to(torch.float16),
            "w": torch.full((Nq, H), 1.0 / H), "q_pos": q_pos.long()}


def test_kernel_engine_matches_reference():
    layer = _layer()
    points = [GridPoint(16, 3, "mean")]
    kw = dict(topk=24, methods=("hisa", "block-sparse"), device="cpu")
    ref = measure_layer(layer, points, engine="reference", **kw)
    ker = measure_layer(layer, points, engine="kernels", **kw)
    assert len(ref) == len(ker)
    for method in ("hisa", "block-sparse"):
        a = ref[(ref.method == method) & ~ref.trivial]
        b = ker[(ker.method == method) & ~ker.trivial]
        assert len(a) > 0
        assert abs(a.iou.mean() - b.iou.mean()) < 0.01
        assert abs(a.score_recall.mean() - b.score_recall.mean()) < 0.005
