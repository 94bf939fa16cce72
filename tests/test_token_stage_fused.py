"""HISA's fused token stage (kernels/token_stage_fused.py): one kernel that scores the kept blocks
and selects the top-k must select what the torch reference selects (tie-aware) and exactly what the
two-kernel path (gather scores + block-mapped top-k) selects, on random and structured inputs, odd
sizes, packed sequences, ties and k larger than the candidates; the pipeline option and the
`hisa-fused` speed backend use it. GPU tests at the real shape are marked gpu_only."""
import json

import pytest
import torch

from kernels import indexers
from kernels import token_stage_fused as fused_mod
from kernels.checks import selection_errors
from kernels.flat_scores_naive import flat_scores_ref
from kernels.gather_scores import launch_gather_scores
from kernels.hisa_naive import hisa_select_ref, kept_blocks_ref
from kernels.token_stage_fused import launch_token_stage
from kernels.topk import launch_topk
from tests.conftest import DEVICE, gpu_only
from tests.helpers import as_sets, kernel_device, make_inputs, run_fresh


def _unfused(q, k, w, kept, ks, ke, B, topk, ksc):
    """Today's two-kernel stage 2: gathered scores, then the block-mapped row top-k."""
    T, m = kept.shape
    cand = launch_gather_scores(q, k, w, kept, ks, ke, B, ksc)
    full = torch.full((T,), m * B, dtype=torch.int32, device=q.device)
    return launch_topk(cand, topk, full, None, kept, B), cand


def _candidate_scores(q, k, w, ks, ke, ksc, kept, B):
    """Reference scores in the relative layout of [ks, ke), -inf outside the kept blocks: the scores
    HISA's stage 2 selects from."""
    flat = flat_scores_ref(q, k, w, ks, ke, ksc)
    pos = ks.long()[:, None] + torch.arange(flat.shape[1], device=flat.device)[None]
    inside = (pos // B)[:, :, None] == kept.long()[:, None, :]
    return torch.where(inside.any(-1), flat, torch.full_like(flat, float("-inf")))


def _check(sel, q, k, w, ks, ke, ksc, kept, B, topk):
    """Fused selection: every slot written, positions before -1, a right top-k of the candidates."""
    assert not (sel == -7).any(), "unwritten output slots"
    n = (sel >= 0).sum(1)
    for t in range(sel.shape[0]):
        assert (sel[t, : n[t]] >= 0).all() and (sel[t, n[t]:] == -1).all(), t
    cand = _candidate_scores(q, k, w, ks, ke, ksc, kept, B)
    problems = selection_errors(sel, cand, ks, ke - ks, topk)
    assert not problems, problems
    ref = hisa_select_ref(q, k, w, ks, ke, ksc, topk=topk, block_size=B, blocks=kept.shape[1], kept=kept)
    assert [len(s) for s in as_sets(sel)] == [len(s) for s in as_sets(ref)]


CASES = [  # T, H, D, N, B, m, k, dtype, structured
    (6, 4, 32, 203, 16, 4, 24, torch.bfloat16, None),      # L not a multiple of B
    (5, 3, 48, 150, 16, 3, 40, "fp8", "sink"),             # k close to the candidates
    (5, 8, 64, 170, 32, 2, 50, "fp8", "clusters"),         # duplicated keys: ties
    (4, 5, 32, 97, 16, 5, 90, torch.bfloat16, "clusters"),  # k > candidates on every row
]


SELECTS = {"bisection": {}, "two-bit": dict(STEP_BITS=2)}


@pytest.mark.parametrize("select", list(SELECTS))
@pytest.mark.parametrize("T,H,D,N,B,m,k,dtype,structured", CASES)
def test_fused_equals_reference_and_unfused(T, H, D, N, B, m, k, dtype, structured, select, device):
    ks = torch.zeros(T, dtype=torch.int32)
    ks[1] = 21                                             # packed, unaligned starts
    ks[-1] = 5
    ke = torch.linspace(max(40, N // 4), N, T).round().to(torch.int32)
    ke[0] = 30                                             # fewer visible blocks than m: kept = -1 slots
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, structured=structured)
    kept = kept_blocks_ref(q, k_, w, ks, ke, ksc, B, m).to(device)
    assert (kept == -1).any()                              # the case is not vacuous
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_token_stage(q, k_, w, kept, ks, ke, B, k, ksc, out=out, config=dict(SELECTS[select]))
    _check(out, q, k_, w, ks, ke, ksc, kept, B, k)
    ref, _ = _unfused(q, k_, w, kept, ks, ke, B, k, ksc)
    assert as_sets(out) == as_sets(ref)                    # same scores, same tie rule: the same sets


@pytest.mark.parametrize("variant", [dict(STEP_BITS=2), dict(QPP=2), dict(QPP=3, STEP_BITS=2), dict(SUB=16)])
@pytest.mark.parametrize("dtype", ["fp8", torch.bfloat16])
def test_variants_select_the_same(variant, dtype, device):
    """The two-bit bisection, several queries per program (a scratch row reused; T not a multiple
    of QPP) and sub-block tiles give the default's selection exactly."""
    T, H, D, N, B, m, k = 7, 4, 32, 520, 32, 4, 60
    ks = torch.tensor([0, 0, 17, 0, 33, 0, 0], dtype=torch.int32)
    ke = torch.tensor([520, 90, 400, 262, 500, 198, 510], dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, structured="clusters")
    kept = kept_blocks_ref(q, k_, w, ks, ke, ksc, B, m).to(device)
    base = launch_token_stage(q, k_, w, kept, ks, ke, B, k, ksc)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_token_stage(q, k_, w, kept, ks, ke, B, k, ksc, out=out, config=variant)
    _check(out, q, k_, w, ks, ke, ksc, kept, B, k)
    assert as_sets(out) == as_sets(base)


@pytest.mark.parametrize("select", list(SELECTS))
@pytest.mark.parametrize("kind", ["equal_keys", "relu_zeros", "two_values"])
def test_ties_go_to_the_lowest_slot(kind, select, device):
    """Masses of equal scores at the k-th place: exactly the unfused path's set (lowest candidate
    slots win), tie-aware right against the reference, nothing unwritten."""
    T, H, D, N, B, m, k = 4, 4, 32, 160, 16, 4, 20
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.float32, device)
    if kind == "equal_keys":             # every key alike: every candidate scores the same
        k_ = k_[:1].repeat(N, 1).contiguous()
    elif kind == "relu_zeros":           # most scores are exactly 0 (ReLU), a few positive
        q, w, k_ = q.abs(), w.abs(), -k_.abs()
        k_[::13] = -k_[::13]
    else:                                # two distinct keys, interleaved
        k_ = torch.where((torch.arange(N, device=device) % 3 == 0)[:, None], k_[:1], k_[1:2]).contiguous()
    kept = kept_blocks_ref(q, k_, w, ks, ke, ksc, B, m).to(device)
    out = torch.full((T, k), -7, dtype=torch.int32, device=device)
    launch_token_stage(q, k_, w, kept, ks, ke, B, k, ksc, out=out, config=dict(SELECTS[select]))
    _check(out, q, k_, w, ks, ke, ksc, kept, B, k)
    ref, cand = _unfused(q, k_, w, kept, ks, ke, B, k, ksc)
    assert as_sets(out) == as_sets(ref)
    # the case is a tie case: the k-th candidate score is shared beyond the selection
    kth = cand.sort(1, descending=True).values[:, k - 1]
    assert any(kth[t] > float("-inf") and int((cand[t] == kth[t]).sum()) > 1 for t in range(T)), \
        "no tie at the k-th place"


@pytest.mark.parametrize("select", list(SELECTS))
@pytest.mark.parametrize("kind", ["random", "ties", "relu_zeros", "huge_range", "sorted", "signed_zeros"])
def test_any_score_row(kind, select, device):
    """Two heads with w = (1, -1) and q = (e1, -e1) score a key as relu(x) - relu(-x) = x = k[:, 0]:
    any score row can be planted, so the selection is tried on the row kinds of the top-k tests
    (huge ranges use every key bit; -0.0 and +0.0 are one score) against the reference top-k over
    the candidate slots, mapped through the kept blocks."""
    from kernels.topk_naive import topk_ref

    T, D, B, m, k = 3, 16, 16, 4, 20
    N = 6 * B
    x = {"random": lambda: torch.randn(T, N), "ties": lambda: torch.randint(0, 4, (T, N)).float(),
         "relu_zeros": lambda: torch.randn(T, N).clamp_min(0),
         "huge_range": lambda: torch.randn(T, N) * torch.logspace(-30, 30, N),
         "sorted": lambda: torch.arange(N, dtype=torch.float32).repeat(T, 1),
         "signed_zeros": lambda: torch.where(torch.rand(T, N) < 0.5, -0.0, 0.0) + (torch.rand(T, N) < 0.02)}[kind]()
    kept = torch.stack([torch.randperm(6)[:m] for _ in range(T)]).to(torch.int32)
    sel = torch.empty((T, k), dtype=torch.int32)
    for t in range(T):       # one query at a time: each has its own planted row
        q = torch.zeros(1, 2, D)
        q[0, 0, 0], q[0, 1, 0] = 1.0, -1.0
        keys = torch.zeros(N, D)
        keys[:, 0] = x[t]
        w = torch.tensor([[1.0, -1.0]])
        ks, ke = torch.zeros(1, dtype=torch.int32), torch.full((1,), N, dtype=torch.int32)
        args = [a.to(device) for a in (q, keys, w, kept[t:t + 1].contiguous(), ks, ke)]
        out = torch.full((1, k), -7, dtype=torch.int32, device=device)
        launch_token_stage(*args, B, k, None, out=out, config=dict(SELECTS[select]))
        ref, cand = _unfused(*args[:3], args[3], args[4], args[5], B, k, None)
        assert as_sets(out) == as_sets(ref)
        if device == "cpu":       # (the GPU multiplies float32 in tf32: the scores are x rounded)
            slots = (kept[t].long()[:, None] * B + torch.arange(B)).flatten()
            assert torch.equal(cand[0], x[t][slots])
            rel = topk_ref(cand, k, torch.full((1,), m * B))
            assert as_sets(out) == [set(int(slots[j]) for j in rel[0].tolist() if j >= 0)]
        sel[t] = out[0].cpu()
    assert not (sel == -7).any()


def test_wide_rows_are_refused():
    q, k_, w, ks, ke, ksc = make_inputs(1, 2, 16, 64, torch.float32, "cpu")
    kept = torch.zeros((1, fused_mod.MAX_ROW // 16 + 1), dtype=torch.int32)
    with pytest.raises(ValueError, match="exceed"):
        launch_token_stage(q, k_, w, kept, ks, ke, 16, 8, ksc)


PIPE_CASES = [  # T, H, D, N, B, m, k, dtype, structured, ks
    (6, 4, 32, 300, 16, 3, 24, torch.bfloat16, None, [0, 0, 0, 50, 120, 7]),
    (5, 3, 48, 260, 16, 4, 40, "fp8", "sink", [0, 9, 0, 0, 37]),
    (5, 8, 64, 270, 32, 2, 50, "fp8", "clusters", None),
]


@pytest.mark.parametrize("T,H,D,N,B,m,k,dtype,structured,ks", PIPE_CASES)
def test_pipeline_option_equals_unfused(T, H, D, N, B, m, k, dtype, structured, ks, device):
    ks = None if ks is None else torch.tensor(ks, dtype=torch.int32)
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, structured=structured)
    plain = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m)
    fused = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, fused_token=True,
                                  query_chunk=3)
    assert list(fused.stages)[-1] == "token_fused" and "token_scores" not in fused.stages
    assert "token_fused" not in plain.stages and fused.state["fused_token"]
    assert fused.flops == indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m,
                                                query_chunk=3).flops
    assert fused.bytes < plain.bytes                       # no candidate scores through memory
    fused.out.fill_(-7)
    sel = fused.run()
    base = plain.run()
    assert as_sets(sel) == as_sets(base)
    kept = fused.state["kept"]
    hisa_rows = [t for t in range(T) if (kept[t] >= 0).any()]
    _check(sel[hisa_rows], q[hisa_rows], k_, w[hisa_rows], ks[hisa_rows], ke[hisa_rows], ksc,
           kept[hisa_rows], B, k)
    # stages run one by one give the same selection as run()
    fused.out.fill_(-7)
    for fn in fused.stages.values():
        fn()
    assert as_sets(fused.out) == as_sets(sel)


def test_pipeline_keeps_two_kernels_for_wide_rows(monkeypatch, device):
    """Rows of more candidates than the registers hold go to the two-kernel path."""
    T, H, D, N, B, m, k = 4, 4, 32, 300, 16, 3, 24
    q, k_, w, ks, ke, ksc = make_inputs(T, H, D, N, torch.bfloat16, device)
    monkeypatch.setattr(fused_mod, "MAX_ROW", m * B - 1)
    prep = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m, fused_token=True)
    assert "token_fused" not in prep.stages and "token_topk" in prep.stages
    assert not prep.state["fused_token"]
    ref = indexers.prepare_hisa(q, k_, w, ks, ke, ksc, topk=k, block_size=B, blocks=m).run()
    assert as_sets(prep.run()) == as_sets(ref)


def test_hisa_fused_backend_in_the_speed_command(tmp_path):
    from hisa_bench import backends

    b = backends.resolve(["hisa-fused"])[1]
    assert (b.name, b.method, b.ours) == ("hisa-fused", "hisa", True) and b.prepare is not None
    args = ["speed", "--device", "cpu", "--lengths", "128", "--queries", "4", "--heads", "2", "--dim", "16",
            "--topk", "32", "--block-size", "16", "--blocks", "2", "--rep-ms", "0", "--warmup-ms", "0",
            "--backend", "hisa,hisa-fused", "--format", "json", "--out", str(tmp_path)]
    p = run_fresh(args, timeout=300)        # compiled kernels here mean a fresh, interpreting process
    assert p.returncode == 0, p.stderr[-2000:]
    rows = {r["backend"]: r for r in json.loads(p.stdout)["rows"]}
    r = rows["hisa-fused"]
    assert r["status"] == "ok" and r["checked"] is True, r
    assert r["stage_token_fused_ms"] > 0 and r.get("stage_token_topk_ms") is None
    assert rows["hisa"]["stage_token_topk_ms"] > 0


# ---- compiled, at real shapes (the lead's H200) ----

def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _real_chunk(L, inputs, heads=64, dim=128, dtype="fp8", queries=1024, B=128):
    from hisa_bench.workloads import make_workload

    return make_workload("chunk", L, queries=queries, heads=heads, dim=dim, dtype=dtype, device=DEVICE,
                         block_size=B, inputs=inputs)


def _fused_vs_unfused(wl, topk, B, m, rows):
    """Both pipelines on the workload: (fused selection, unfused selection, kept, rows whose sets
    differ and are wrong under the unfused kernel's own candidate scores)."""
    args = (wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale)
    plain = indexers.prepare_hisa(*args, topk=topk, block_size=B, blocks=m)
    fused = indexers.prepare_hisa(*args, topk=topk, block_size=B, blocks=m, fused_token=True)
    fused.out.fill_(-7)
    a, b = fused.run().clone(), plain.run().clone()
    _sync()
    assert not (a == -7).any()
    assert torch.equal(fused.state["kept"], plain.state["kept"])
    kept = plain.state["kept"]
    cand = launch_gather_scores(wl.q[rows], wl.k, wl.w[rows], kept[rows], wl.ks[rows], wl.ke[rows], B, wl.k_scale)
    bad = [t for i, t in enumerate(rows) if set(a[t].tolist()) != set(b[t].tolist())
           and _wrong_under_gathered(a, cand[i], kept, wl.ks, wl.ke, t, B, topk)]
    return a, b, bad


def _wrong_under_gathered(sel, cand_row, kept, ks, ke, t, B, topk):
    """Whether row t of sel is not a right top-k under the gathered candidate scores of query t
    (put back in the relative layout of [ks, ke) for the tie-aware check)."""
    pos = (kept[t].long()[:, None] * B + torch.arange(B, device=kept.device)).flatten()
    rel = torch.full((int(ke[t] - ks[t]),), float("-inf"), device=kept.device)
    ok = (pos >= ks[t]) & (pos < ke[t]) & (kept[t].long().repeat_interleave(B) >= 0)
    rel[(pos[ok] - ks[t]).long()] = cand_row[ok]
    return bool(selection_errors(sel[t:t + 1], rel[None], ks[t:t + 1], (ke - ks)[t:t + 1], topk))


def test_gpu_test_helpers_can_fail(device):
    """The GPU tests' comparison on a tiny chunk here: fused and two-kernel pipelines agree, and a
    corrupted fused row is caught by the tie-aware check against the gathered scores."""
    wl = _real_chunk(600, "structured", heads=2, dim=16, queries=4, B=16)
    rows = [0, 2, 3]
    a, b, bad = _fused_vs_unfused(wl, 32, 16, 4, rows)
    assert not bad and as_sets(a) == as_sets(b)
    prep = indexers.prepare_hisa(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, topk=32, block_size=16, blocks=4)
    prep.run()
    kept = prep.state["kept"]
    cand = launch_gather_scores(wl.q, wl.k, wl.w, kept, wl.ks, wl.ke, 16, wl.k_scale)
    assert not _wrong_under_gathered(a, cand[2], kept, wl.ks, wl.ke, 2, 16, 32)
    worst = int(torch.argmin(torch.where(cand[2] > float("-inf"), cand[2], float("inf"))))
    a[2, 0] = kept[2, worst // 16] * 16 + worst % 16          # the worst candidate in place of a chosen one
    assert _wrong_under_gathered(a, cand[2], kept, wl.ks, wl.ke, 2, 16, 32)


@gpu_only
@pytest.mark.parametrize("inputs", ["random", "structured"])
def test_gpu_real_shape_fused_equals_unfused(inputs):
    """1024 queries at the tail of 32K keys, H 64, D 128 fp8, top-2048 of m = 64 blocks of 128:
    the fused and two-kernel token stages select the same sets (a row may differ only where both
    are right under the candidate scores: last-bit score differences at a near-tie)."""
    wl = _real_chunk(32768, inputs)
    rows = list(range(0, 1024, 37)) + [1023]
    a, b, bad = _fused_vs_unfused(wl, 2048, 128, 64, rows)
    same = sum(as_sets(a[t:t + 1]) == as_sets(b[t:t + 1]) for t in rows)
    assert not bad, bad
    assert same >= len(rows) - 2, f"{len(rows) - same} of {len(rows)} rows differ"
    assert (a >= 0).sum(1).min() == 2048                   # 8192 candidates > k on every row


@gpu_only
@pytest.mark.parametrize("dtype", ["fp8", "bf16"])
@pytest.mark.parametrize("D", [16, 64, 128, 256])
@pytest.mark.parametrize("H", [1, 4, 64, 128])
def test_gpu_every_head_count_and_dim(H, D, dtype):
    """The configs the launcher picks compile and select right for every (H, D) corner: 64 queries
    at the tail of 16K keys, m = 64 blocks of 128 (8192 candidates per row, the register-row
    size), top-2048, kept blocks from the torch reference, output poisoned; the same sets as the
    two-kernel path, a differing row only where it is still right under the gathered scores."""
    wl = _real_chunk(16384, "random", heads=H, dim=D, dtype=dtype, queries=64)
    B, m, k = 128, 64, 2048
    kept = kept_blocks_ref(wl.q, wl.k, wl.w, wl.ks, wl.ke, wl.k_scale, B, m).to(torch.int32).contiguous()
    out = torch.full((64, k), -7, dtype=torch.int32, device=DEVICE)
    launch_token_stage(wl.q, wl.k, wl.w, kept, wl.ks, wl.ke, B, k, wl.k_scale, out=out)
    ref, cand = _unfused(wl.q, wl.k, wl.w, kept, wl.ks, wl.ke, B, k, wl.k_scale)
    _sync()
    assert not (out == -7).any()
    differ = [t for t in range(64) if set(out[t].tolist()) != set(ref[t].tolist())]
    assert len(differ) <= 2, differ
    assert not [t for t in differ if _wrong_under_gathered(out, cand[t], kept, wl.ks, wl.ke, t, B, k)]


# ---- the GPU benchmark script, as a smoke run through the interpreter ----

# the kernels' own device: a GPU test process compiled them, so it cannot interpret them (and a
# fresh process would lose the monkeypatch of the wrong-selection test)
BENCH_TINY = ["--device", kernel_device(), "--lengths", "300", "--inputs", "random", "--queries", "3", "--heads", "2",
              "--dim", "16", "--k", "32", "--block-size", "16", "--blocks", "4", "--variants", "fused"]


def test_bench_script_checks_then_times(tmp_path, capsys):
    from kernels import token_stage_bench

    assert token_stage_bench.main(BENCH_TINY + ["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].split()[-1] == "ok"          # the table comes last
    saved = json.loads((tmp_path / "token_stage_bench.json").read_text())
    (r,) = saved["results"]
    c = r["checks"]["fused"]
    assert c["ok"] and c["rows"] == 3 and c["unwritten"] == 0 and c["scores_bitwise_equal"]
    assert {"gather scores", "token topk", "unfused", "fused", "chunk unfused", "chunk fused"} <= set(r["ms"])
    assert saved["env"]["git_commit"]
    assert saved["env"]["device"] == ("cpu-interpreter" if kernel_device() == "cpu" else "cuda")
    assert not list(tmp_path.glob("*.tmp"))


def test_bench_script_catches_a_wrong_fused_selection(tmp_path, monkeypatch, capsys):
    from kernels import token_stage_bench

    original = fused_mod.launch_token_stage

    def wrong(*args, **kw):
        out = original(*args, **kw)
        out[:, 0] = out[:, 1]            # a duplicate in place of a selected key
        return out

    monkeypatch.setattr(fused_mod, "launch_token_stage", wrong)
    assert token_stage_bench.main(BENCH_TINY + ["--out", str(tmp_path)]) == 1
    c = json.loads((tmp_path / "token_stage_bench.json").read_text())["results"][0]["checks"]["fused"]
    assert not c["ok"] and c["rows_wrong"] == 3
    assert capsys.readouterr().out.rstrip().endswith("FAILED")
    assert token_stage_bench.main(BENCH_TINY + ["--variants", "fastest"]) == 2
