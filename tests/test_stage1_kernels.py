"""The raw stage-1 rule in the kernels (block scores without the ReLU) against its torch references:
kernels/hisa_naive.py (stage1="raw") and hisa_bench/measure/stage1.py (the rule as iou, needle and
quality define it). Interpreter on a CPU; the last test runs the compiled kernels at a real shape."""
from types import SimpleNamespace

import pytest
import torch

from hisa_bench import api
from hisa_bench.errors import HisaBenchError
from hisa_bench.measure import accuracy
from hisa_bench.measure.stage1 import select_positions
from hisa_bench.workloads import Workload
from kernels import indexers
from kernels.checks import selection_errors
from kernels.flat_scores import launch_scores
from kernels.flat_scores_naive import flat_scores_ref
from kernels.hisa_naive import block_sparse_select_ref, hisa_select_ref, kept_blocks_ref
from tests.conftest import gpu_only
from tests.helpers import as_sets, make_inputs


def _kept_sets(kept):
    return [set(x for x in row.tolist() if x >= 0) for row in kept.cpu()]


# ---- the block-score kernel with RELU off ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "fp8"])
@pytest.mark.parametrize("force_ends", [False, True])
def test_scores_without_relu_match_reference(dtype, force_ends, device):
    T, H, D, N = 5, 3, 48, 77                        # H and D not powers of two, N odd
    ks = torch.tensor([0, 5, 0, 30, 76], dtype=torch.int32)
    ke = torch.tensor([77, 60, 1, 31, 77], dtype=torch.int32)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, seed=3)
    out = torch.full((T, N), float("nan"), device=device)
    launch_scores(q, k, w, ks, ke, ksc, out=out, force_ends=force_ends, relu=False)
    ref = flat_scores_ref(q, k, w, ks, ke, ksc, force_ends=force_ends, relu=False)
    with_relu = flat_scores_ref(q, k, w, ks, ke, ksc, force_ends=force_ends)
    # float32 runs on tf32 tensor cores when compiled (10-bit mantissa)
    tol = (5e-3 if device == "cuda" else 1e-4) if dtype == torch.float32 else 2e-3
    for t in range(T):
        n = int(ke[t] - ks[t])
        got, want = out[t, :n].double().cpu(), ref[t, :n].cpu()
        assert torch.equal(torch.isinf(got), torch.isinf(want))
        fin = torch.isfinite(want)
        scale = float(want[fin].abs().max()) if fin.any() else 1.0
        assert torch.allclose(got[fin], want[fin], rtol=tol, atol=tol * scale)
        assert out[t, n:].isnan().all(), "wrote past the row's range"
    # the case is not vacuous: the ReLU would have changed scores here
    fin = torch.isfinite(ref)
    assert (ref[fin] < 0).any() and not torch.equal(ref[fin], with_relu[fin])


# ---- whole HISA / block-sparse under the raw rule ----

CASES = [  # T, H, D, N, B, m, k, dtype, structured, ks, ke
    # L not a multiple of B; a query seeing fewer blocks than m; k > the keys of the kept blocks
    (6, 4, 32, 200, 16, 3, 24, torch.bfloat16, None, [0, 0, 0, 0, 9, 0], [200, 10, 40, 100, 199, 57]),
    (5, 3, 48, 150, 16, 4, 40, "fp8", "sink", [0, 3, 0, 70, 0], [150, 149, 30, 150, 96]),
    (5, 8, 64, 170, 32, 2, 50, torch.float16, "clusters", [0, 17, 0, 0, 40], [170, 150, 169, 33, 120]),
    (4, 2, 32, 133, 16, 5, 70, torch.bfloat16, "positive_w", [0, 1, 0, 64], [133, 133, 70, 130]),
]


@pytest.mark.parametrize("T,H,D,N,B,m,k,dtype,structured,ks,ke", CASES)
def test_hisa_raw_stagewise(T, H, D, N, B, m, k, dtype, structured, ks, ke, device):
    ks, ke = torch.tensor(ks, dtype=torch.int32), torch.tensor(ke, dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, structured=structured, seed=7)
    prep = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, stage1="raw")
    assert prep.state["trivial"] == []              # one chunk, run by the HISA pipeline
    prep.out.fill_(-7)
    prep.state["kept"].fill_(-7)
    sel = prep.run()
    kept = prep.state["kept"]
    assert not (sel == -7).any() and not (kept == -7).any()
    # stage 1: a correct top-m of the RAW block scores of the kernel's own pooled keys
    bs, be = ks // B, (ke - 1) // B + 1
    J = flat_scores_ref(q, prep.state["kbar"], w, bs, be, prep.state["kbar_scale"], force_ends=True, relu=False)
    atol = 1e-4 * float(J[torch.isfinite(J)].abs().max())
    assert not selection_errors(kept, J, bs, be - bs, m, rtol=1e-3, atol=atol)
    for t in range(T):
        kt = set(kept[t].tolist()) - {-1}
        assert {int(bs[t]), int(be[t]) - 1} <= kt
        assert len(kt) == min(m, int(be[t] - bs[t]))
    # stage 2: a correct top-k of the flat (ReLU) scores over the kept blocks' visible keys
    ref = hisa_select_ref(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, kept=kept)
    flat = flat_scores_ref(q, k_, w, ks, ke, ksc)
    for t in range(T):
        chosen = set(sel[t].tolist()) - {-1}
        assert all(ks[t] <= p < ke[t] and p // B in set(kept[t].tolist()) for p in chosen)
        want = sorted((flat[t, p - ks[t]].item() for p in set(ref[t].tolist()) - {-1}), reverse=True)
        got = sorted((flat[t, p - ks[t]].item() for p in chosen), reverse=True)
        assert len(got) == len(want)
        assert all(abs(a - b) <= 1e-4 + 1e-4 * abs(b) for a, b in zip(got, want))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])   # products exact in float32 (not tf32)
def test_raw_selections_equal_the_references(dtype, device):
    """Unquantised pooled keys: the kernels give the references' sets, HISA and block-sparse alike,
    and so does measure/stage1.py (the rule as iou / needle / quality compute it)."""
    T, H, D, N, B, m, k = 7, 4, 32, 300, 16, 3, 24
    ks = torch.tensor([0, 0, 0, 0, 50, 120, 5], dtype=torch.int32)
    ke = torch.tensor([300, 10, 64, 100, 299, 200, 257], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, seed=5)
    # block-sparse at top-k 48 keeps 3 blocks (at 24 it would keep the forced first block only)
    for fn, kw in ((api.hisa_select, dict(topk=k, block_size=B, blocks=m)),
                   (api.block_sparse_select, dict(topk=3 * B, block_size=B))):
        k = kw.pop("topk")
        got = fn(q, k_, w, ks, ke, ksc, topk=k, backend="triton", stage1="raw", **kw)
        ref = fn(q, k_, w, ks, ke, ksc, topk=k, backend="reference", stage1="raw", **kw)
        relu = fn(q, k_, w, ks, ke, ksc, topk=k, backend="triton", **kw)
        stage1 = select_positions(q, k_, w, ks, ke, topk=k, block_size=B, blocks=kw.get("blocks", m),
                                  stage1="raw", block_sparse=fn is api.block_sparse_select)
        assert got.dtype == torch.int32 and got.shape == (T, k)
        assert as_sets(got) == as_sets(ref) == as_sets(stage1), fn.__name__
        assert as_sets(got) != as_sets(relu), "random signed inputs: raw and relu should keep other blocks"


def _integer_inputs(device, seed=0):
    """Small-integer q, k and power-of-two w: every score is exact in float32 and float64, with many
    exact ties (repeated blocks, repeated keys), so kernel and references must agree as sets."""
    g = torch.Generator().manual_seed(seed)
    T, H, D, N, B = 6, 4, 16, 180, 16
    q = torch.randint(-3, 4, (T, H, D), generator=g).float()
    k = torch.randint(-3, 4, (N, D), generator=g).float()
    k[64:96] = k[16:48]                              # blocks 4-5 repeat blocks 1-2: tied block scores
    k[100:110] = k[100]                              # tied keys
    w = torch.tensor([0.5, 0.25, 1.0, 0.125]).expand(T, H).contiguous()
    ks = torch.tensor([0, 0, 7, 0, 33, 0], dtype=torch.int32)
    ke = torch.tensor([180, 150, 180, 120, 170, 45], dtype=torch.int32)
    return [t.to(device) for t in (q, k, w, ks, ke)], B


def test_raw_exact_ties_resolve_like_measure_stage1(device):
    (q, k, w, ks, ke), B = _integer_inputs(device)
    for m, topk in ((3, 40), (4, 20)):
        for block_sparse in (False, True):
            want = select_positions(q, k, w, ks, ke, topk=topk, block_size=B, blocks=m, stage1="raw",
                                    block_sparse=block_sparse)
            if block_sparse:
                got = indexers.block_sparse_select(q, k, w, ks, ke, None, topk=topk, block_size=B, stage1="raw")
                ref = block_sparse_select_ref(q, k, w, ks, ke, None, topk=topk, block_size=B, stage1="raw")
            else:
                got = indexers.hisa_select(q, k, w, ks, ke, None, topk=topk, block_size=B, blocks=m, stage1="raw")
                ref = hisa_select_ref(q, k, w, ks, ke, None, topk=topk, block_size=B, blocks=m, stage1="raw")
            assert as_sets(got) == as_sets(ref) == as_sets(want), (m, topk, block_sparse)


# ---- a case built so that the ReLU changes the kept blocks ----

def relu_vs_raw_case(dtype, device):
    """Two heads reading orthogonal directions e0, e1; every key of a block equals the block's vector:
      block 0 (forced)  0.25 (e0 + e1)   relu 1   raw 1
      block 1           10 e0 - 9 e1     relu 20  raw 2     <- the ReLU's choice
      block 2, 4        -3 (e0 + e1)     relu 0   raw -12
      block 3           2 (e0 + e1)      relu 8   raw 8     <- the raw rule's choice
      block 5 (short)   0.25 (e0 + e1)   forced
    with m = 3 (one free place). Query 2 ends in block 4 (then forced), query 1 starts unaligned,
    query 3 sees 3 blocks (<= m: everything kept)."""
    B, D, N = 16, 16, 90
    e0, e1 = torch.zeros(D), torch.zeros(D)
    e0[0], e1[1] = 1.0, 1.0
    vec = [0.25 * (e0 + e1), 10 * e0 - 9 * e1, -3 * (e0 + e1), 2 * (e0 + e1), -3 * (e0 + e1), 0.25 * (e0 + e1)]
    k = torch.stack([vec[n // B] for n in range(N)])
    T = 4
    q = torch.stack([2 * e0, 2 * e1])[None].expand(T, 2, D).contiguous()
    w = torch.ones(T, 2)
    ks = torch.tensor([0, 3, 0, 0], dtype=torch.int32)
    ke = torch.tensor([90, 90, 70, 40], dtype=torch.int32)
    k_scale = None
    if dtype == "fp8":
        q, k, w, k_scale = api.quantize_fp8(q, k, w)
    else:
        q, k = q.to(dtype), k.to(dtype)
    mv = lambda t: None if t is None else t.to(device)   # noqa: E731
    return (mv(q), mv(k), mv(w), mv(ks), mv(ke), mv(k_scale)), dict(topk=20, block_size=B, blocks=3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "fp8"])
def test_kernel_drops_the_relu(dtype, device):
    args, kw = relu_vs_raw_case(dtype, device)
    B, m, topk = kw["block_size"], kw["blocks"], kw["topk"]
    runs = {}
    for rule in ("relu", "raw"):
        prep = indexers.prepare_hisa(*args, topk=topk, block_size=B, blocks=m, stage1=rule)
        sel = prep.run()
        runs[rule] = (_kept_sets(prep.state["kept"]), as_sets(sel))
    want_kept = {"relu": [{0, 1, 5}, {0, 1, 5}, {0, 1, 4}, {0, 1, 2}],
                 "raw": [{0, 3, 5}, {0, 3, 5}, {0, 3, 4}, {0, 1, 2}]}
    for rule in ("relu", "raw"):
        assert runs[rule][0] == want_kept[rule], rule
        assert _kept_sets(kept_blocks_ref(*args, B, m, stage1=rule)) == want_kept[rule]
    # the selections differ where the kept blocks do, and the kernel's raw one is the references'
    assert runs["relu"][1][:3] != runs["raw"][1][:3] and runs["relu"][1][3] == runs["raw"][1][3]
    assert all(set(range(48, 64)) <= s for s in runs["raw"][1][:3])       # block 3's keys
    assert runs["raw"][1] == as_sets(hisa_select_ref(*args, stage1="raw", **kw))
    assert runs["raw"][1] == as_sets(select_positions(*args[:5], k_scale=args[5], stage1="raw", **kw))
    # block-sparse: m' = topk // B = 1 keeps the first block only, so give it room for a free one
    bs = {rule: as_sets(indexers.block_sparse_select(*args, topk=48, block_size=B, stage1=rule))
          for rule in ("relu", "raw")}
    assert bs["relu"][0] == set(range(0, 32)) | set(range(80, 90))
    assert bs["raw"][0] == set(range(0, 16)) | set(range(48, 64)) | set(range(80, 90))
    assert bs["raw"] == as_sets(block_sparse_select_ref(*args, topk=48, block_size=B, stage1="raw"))


def test_unknown_rule_is_refused(device):
    args, kw = relu_vs_raw_case(torch.float32, device)
    with pytest.raises(HisaBenchError, match="stage1 must be relu or raw") as e:
        api.hisa_select(*args, stage1="ucb", **kw)
    assert "\n" not in str(e.value)
    with pytest.raises(HisaBenchError, match="stage1 must be relu or raw"):
        api.block_sparse_select(*args, topk=48, block_size=16, stage1="erelu")
    with pytest.raises(ValueError, match="the kernels have relu, raw"):
        indexers.prepare_hisa(*args, stage1="relu-tiebreak", **kw)


# ---- the speed command's gate ----

def _case_workload(device, dtype="fp8"):
    (q, k, w, ks, ke, ksc), kw = relu_vs_raw_case(dtype, device)
    return Workload("chunk", k.shape[0], 1, q, k, w, ks, ke, ksc), kw


@pytest.mark.parametrize("with_kept", [True, False])
def test_gate_checks_the_raw_rule(with_kept, device):
    wl, kw = _case_workload(device)
    rows = list(range(wl.queries))
    sel, kept = {}, {}
    for rule in ("relu", "raw"):
        prep = indexers.prepare_hisa(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, stage1=rule, **kw)
        sel[rule], kept[rule] = prep.run(), (prep.state["kept"] if with_kept else None)
    for rule in ("relu", "raw"):
        assert accuracy.check("hisa", sel[rule], wl, rows, kept=kept[rule], stage1=rule, **kw) == []
    # each one judged by the other rule's semantics fails on its kept block
    for rule, other in (("raw", "relu"), ("relu", "raw")):
        problems = accuracy.check("hisa", sel[rule], wl, rows, kept=kept[rule], stage1=other, **kw)
        assert problems and any("below the m-th best" in p for p in problems), (rule, problems)
    with pytest.raises(ValueError):
        accuracy.check("hisa", sel["raw"], wl, rows, stage1="ucb", **kw)


def test_hisa_raw_backend_passes_its_gate_and_fails_the_relu_one(device):
    from hisa_bench.backends import Backend, resolve
    from hisa_bench.measure.speed import _measure
    from hisa_bench.measure.timing import TimingSettings

    backends = {b.name: b for b in resolve(["hisa", "hisa-raw"])}
    raw = backends["hisa-raw"]
    assert (raw.method, raw.stage1, backends["hisa"].stage1) == ("hisa", "raw", "relu")
    wl, kw = _case_workload(device)
    cfg = SimpleNamespace(device=device, topk=kw["topk"], check=True, heads=2, dim=16, dtype="fp8", stages=False)
    settings = TimingSettings(0.0, 1.0, 1)
    ok = _measure(raw, wl, cfg, settings, kw["block_size"], kw["blocks"], "chunk")
    assert "status" not in ok and ok["checked"] and ok["median_ms"] > 0
    # the same kernels compared against the paper's rule are refused, and never timed
    as_relu = Backend("hisa-raw", raw.fn, "hisa", raw.prepare, stage1="relu")
    bad = _measure(as_relu, wl, cfg, settings, kw["block_size"], kw["blocks"], "chunk")
    assert bad["status"] == "failed-accuracy" and "below the m-th best" in bad["note"]
    # and HISA (ReLU) gated as raw fails too
    hisa_as_raw = Backend("hisa", backends["hisa"].fn, "hisa", backends["hisa"].prepare, stage1="raw")
    assert _measure(hisa_as_raw, wl, cfg, settings, kw["block_size"], kw["blocks"], "chunk")["status"] == \
        "failed-accuracy"


def test_external_backend_stage1_attribute(tmp_path):
    from hisa_bench.backends import load_external

    path = tmp_path / "mine.py"
    path.write_text("def sel(*a, **k):\n    return None\nsel.method = 'hisa'\nsel.stage1 = 'raw'\n"
                    "def bad(*a, **k):\n    return None\nbad.method = 'hisa'\nbad.stage1 = 'ucb'\n")
    assert load_external(f"{path}:sel").stage1 == "raw"
    with pytest.raises(HisaBenchError, match="stage1 must be relu or raw"):
        load_external(f"{path}:bad")


def test_speed_command_times_hisa_raw(tmp_path, capsys):
    import json

    from tests.helpers import kernel_device, run_cli_captured

    code, out, err = run_cli_captured(
        ["speed", "--device", kernel_device(), "--lengths", "256", "--queries", "4", "--heads", "2", "--dim", "16",
         "--topk", "32", "--block-size", "16", "--blocks", "4", "--backend", "hisa,hisa-raw", "--inputs",
         "random", "--rep-ms", "1", "--warmup-ms", "0", "--no-stages", "--format", "json", "--out", str(tmp_path)],
        capsys)
    assert code == 0, err
    rows = json.loads(out)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    by = {r["backend"]: r for r in rows}
    assert by["hisa-raw"]["status"] == "ok" and by["hisa-raw"]["checked"]
    assert by["hisa-raw"]["blocks"] == 4 and by["hisa-raw"]["flops"] == by["hisa"]["flops"]


# ---- iou --engine kernels and needle ----

def _integer_layer():
    (q, k, w, ks, ke), _ = _integer_inputs("cpu", seed=2)
    q_pos = ke.long() - 1
    return {"name": "l0", "q": q, "k": k, "w": w, "q_pos": q_pos, "ks": ks.long(), "ke": ke.long()}


def test_iou_kernel_engine_runs_raw_and_equals_reference():
    from hisa_bench.measure.fidelity import GridPoint, measure_layer

    layer = _integer_layer()
    points = [GridPoint(16, 3, "mean"), GridPoint(16, 4, "max")]
    methods = ("hisa", "hisa/raw", "block-sparse/raw")
    kw = dict(topk=40, methods=methods, device="cpu")
    ref = measure_layer(layer, points, engine="reference", **kw)
    ker = measure_layer(layer, points, engine="kernels", **kw)
    assert len(ref) == len(ker) and (ker.method == "hisa/raw").any()
    cols = ["iou", "recall", "score_recall", "top16_recall"]
    # exact scores and ties: the same selections, query by query
    assert (ref[cols].to_numpy() == ker[cols].to_numpy()).all()
    assert not (ref[ref.method == "hisa"].iou.to_numpy() == ref[ref.method == "hisa/raw"].iou.to_numpy()).all()
    with pytest.raises(HisaBenchError, match="stage-1 rules relu and raw only, not ucb"):
        measure_layer(layer, points[:1], engine="kernels", topk=40, methods=("hisa", "hisa/ucb"), device="cpu")


def test_iou_kernel_engine_raw_on_random_fp16():
    """fp16 tensors (sinks, recency): near-ties may fall either way in float32, so the figures agree
    to rounding, as the paper's rule does in tests/test_fidelity_engines.py."""
    from hisa_bench.measure.fidelity import GridPoint, measure_layer
    from tests.test_fidelity_engines import _layer

    layer = _layer(seed=4)
    kw = dict(topk=24, methods=("hisa/raw", "block-sparse/raw"), device="cpu")
    ref = measure_layer(layer, [GridPoint(16, 3, "mean")], engine="reference", **kw)
    ker = measure_layer(layer, [GridPoint(16, 3, "mean")], engine="kernels", **kw)
    for method in kw["methods"]:
        a, b = ref[(ref.method == method) & ~ref.trivial], ker[(ker.method == method) & ~ker.trivial]
        assert len(a) > 0
        assert abs(a.iou.mean() - b.iou.mean()) < 0.01
        assert abs(a.score_recall.mean() - b.score_recall.mean()) < 0.005


def test_needle_runs_raw_through_the_api(monkeypatch, device):
    from hisa_bench.measure import needle, stage1

    cfg = needle.NeedleConfig(lengths=[256], depths=[0.3], trials=1, topk=32, block_size=16, blocks=4, heads=2,
                              dim=16, stage1=["relu", "raw"], adversarial=True)
    cfg.check()
    want = needle.run_case(cfg, 256, 0.3, 0, torch.device(device), "reference")
    calls = []
    real = api.hisa_select

    def spy(*a, **k):
        calls.append(k.get("stage1", "relu"))
        return real(*a, **k)

    monkeypatch.setattr(needle.api, "hisa_select", spy)
    monkeypatch.setattr(stage1, "select_positions", lambda *a, **k: pytest.fail("raw has a kernel"))
    got = needle.run_case(cfg, 256, 0.3, 0, torch.device(device), "triton")     # the kernels
    assert calls == ["relu", "raw"]
    assert got == want and set(got) == {"flat", "hisa", "block-sparse", "hisa/raw", "block-sparse/raw"}


# ---- the compiled kernels at a real shape ----

@gpu_only
@pytest.mark.parametrize("inputs", ["random", "structured"])
def test_gpu_raw_kept_blocks_at_real_shape(inputs):
    """1024 queries at the tail of 32K, H 64, D 128, fp8, B 128, m 64, k 2048: the kernel's raw kept
    blocks are a top-m of the raw scores (float64) of its own pooled keys, every sampled row passes
    the speed gate under the raw rule, and the rule changed what was kept."""
    from hisa_bench.workloads import make_workload

    B, m, K = 128, 64, 2048
    wl = make_workload("chunk", 32768, queries=1024, heads=64, dim=128, dtype="fp8", device="cuda",
                       inputs=inputs, topk=K)
    preps = {rule: indexers.prepare_hisa(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, topk=K, block_size=B,
                                         blocks=m, stage1=rule) for rule in ("relu", "raw")}
    sel = {rule: p.run() for rule, p in preps.items()}
    torch.cuda.synchronize()
    prep = preps["raw"]
    kept = prep.state["kept"]
    bs, be = wl.ks // B, (wl.ke - 1) // B + 1
    J = flat_scores_ref(wl.q, prep.state["kbar"], wl.w, bs, be, prep.state["kbar_scale"], force_ends=True,
                        relu=False)
    atol = 1e-4 * float(J[torch.isfinite(J)].abs().max())
    assert not selection_errors(kept, J, bs, be - bs, m, rtol=1e-3, atol=atol)
    rows = accuracy.sample_rows(wl.queries, n=16)
    assert accuracy.check("hisa", sel["raw"], wl, rows, topk=K, block_size=B, blocks=m, kept=kept,
                          stage1="raw") == []
    # the torch rule (float64 pooled keys, no fp8 re-quantisation) keeps nearly the same blocks
    ref = kept_blocks_ref(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, B, m, stage1="raw")
    same = sum(len(a & b) for a, b in zip(_kept_sets(kept), _kept_sets(ref))) / (wl.queries * m)
    assert same > 0.95, same      # about 0.986 in a float64 emulation of the fp8 pooled keys
    differs = sum(a != b for a, b in zip(_kept_sets(kept), _kept_sets(preps["relu"].state["kept"])))
    assert differs > 0, "raw and relu kept the same blocks for every query"
    print(f"{inputs}: kernel/torch raw kept-block overlap {same:.4f}; rows where raw != relu: {differs}/1024")
