"""The Gluon gather kernel (kernels/gather_scores_wgmma.py) against the float64 reference and the
Triton gather kernel (kernels/gather_scores.py), on a Hopper GPU.

Gluon kernels do not run in the Triton interpreter: on a CPU only the routing rule is checked, and
`python -m kernels.compile_check` (tests/test_compile_sm90.py) compiles the kernel for sm_90.
"""
import pytest
import torch

from kernels.flat_scores_naive import dequantize_keys
from kernels.gather_scores import launch_gather_scores
from kernels.gather_scores_wgmma import (HAVE_GLUON, default_config, gather_wgmma_fits,
                                         launch_gather_scores_wgmma)
from kernels.hisa_naive import kept_blocks_ref
from tests.conftest import DEVICE
from tests.helpers import make_inputs

hopper = pytest.mark.skipif(
    not (DEVICE == "cuda" and HAVE_GLUON and torch.cuda.get_device_capability()[0] == 9),
    reason="needs a Hopper GPU (sm_90) with compiled kernels and Triton's Gluon")


def gather_ref(q, k, w, kept, ks, ke, B, k_scale=None):
    """float64 [T, m * B]: ref[t, i * B + r] = I[t, kept[t, i] * B + r] where that key is visible
    (kept >= 0, ks <= n < ke), else -inf; straight from the contract, one query at a time."""
    T, m = kept.shape
    kf = dequantize_keys(k, k_scale)
    out = torch.full((T, m * B), float("-inf"), dtype=torch.float64, device=q.device)
    r = torch.arange(B, device=q.device)
    for t in range(T):
        pos = (kept[t].long()[:, None] * B + r).view(-1)
        ok = (kept[t].long().repeat_interleave(B) >= 0) & (pos >= int(ks[t])) & (pos < int(ke[t]))
        s = (q[t].double() @ kf[pos.clamp(0, k.shape[0] - 1)].T).clamp_min(0)       # [H, m * B]
        s = (s * w[t].double()[:, None]).sum(0)
        out[t] = torch.where(ok, s, out[t])
    return out


def random_kept(ks, ke, B, m, seed=0):
    """int32 [T, m]: each query's first and last visible blocks (partly visible: the sequence start
    and the causal edge) and random other visible blocks, in random order, -1 where fewer than m."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for lo, hi in zip(ks.tolist(), ke.tolist()):
        first, last = lo // B, (hi - 1) // B
        middle = list(range(first + 1, last))
        rest = [middle[i] for i in torch.randperm(len(middle), generator=g).tolist()]
        ids = ([first, last] if last > first else [first]) + rest
        ids = ids[:m] + [-1] * (m - min(m, len(ids)))
        rows.append([ids[i] for i in torch.randperm(m, generator=g).tolist()])
    return torch.tensor(rows, dtype=torch.int32)


def packed_ranges(T, N, seqs=3):
    """Packed sequences: query t belongs to one of `seqs` sequences that start at unaligned offsets,
    its keys run from its sequence's start to a causal end inside it."""
    cuts = [0] + [N * i // seqs + 37 * i for i in range(1, seqs)] + [N]
    ks, ke = [], []
    for t in range(T):
        s = t * seqs // T
        lo, hi = cuts[s], cuts[s + 1]
        ks.append(lo)
        ke.append(lo + max(1, (hi - lo) * (t % 5 + 1) // 5))
    return torch.tensor(ks, dtype=torch.int32), torch.tensor(ke, dtype=torch.int32)


def check_gather(out_full, ref, width, tol):
    """The kernel's NaN-poisoned output against the reference: every candidate written, -inf exactly
    where the reference has it, nothing written past the m * B columns; returns the relative error."""
    got = out_full[:, :width]
    assert torch.isnan(out_full[:, width:]).all(), "wrote past a row's m * B candidates"
    assert not torch.isnan(got).any(), "a candidate was not written"
    vis = torch.isfinite(ref)
    assert torch.equal(got == float("-inf"), ~vis), "-inf where a key is visible, or a score where not"
    assert torch.isfinite(got[vis]).all()
    err = float((got[vis].double() - ref[vis]).norm() / ref[vis].norm().clamp_min(1e-30))
    assert err < tol, f"relative error {err:.2e}"
    return err


def run_case(T, H, D, N, B, m, dtype, ks=None, ke=None, kept=None, config=None, inputs=None):
    """Inputs (make_inputs, or `inputs`), kept blocks (random_kept with one more -1 in row 0, or
    `kept`); the kernel against gather_ref and against the Triton kernel. Returns kept."""
    q, k, w, ks, ke, ksc = inputs or make_inputs(T, H, D, N, dtype, "cuda", ks=ks, ke=ke, seed=T + N)
    assert gather_wgmma_fits(q, k, B)
    if kept is None:
        kept = random_kept(ks.cpu(), ke.cpu(), B, m, seed=N)
        kept[0, m // 2] = -1
    kept = kept.to("cuda")
    width = m * B
    out_full = torch.full((T, width + 7), float("nan"), device="cuda")       # poisoned, wider than a row
    launch_gather_scores_wgmma(q, k, w, kept, ks, ke, B, ksc, out=out_full[:, :width], config=config)
    torch.cuda.synchronize()
    tol = 5e-4 if dtype == "fp8" else 1e-5
    check_gather(out_full, gather_ref(q, k, w, kept, ks, ke, B, ksc), width, tol)
    # and the Triton kernel, written the same way
    tri = torch.full((T, width), float("nan"), device="cuda")
    launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=tri)
    got = out_full[:, :width]
    assert torch.equal(got == float("-inf"), tri == float("-inf"))
    vis = torch.isfinite(tri)
    scale = tri.abs().where(vis, 0).amax(1, keepdim=True).clamp_min(1e-30)
    assert float(((got - tri).abs() / scale).where(vis, 0).max()) < (1e-3 if dtype == "fp8" else 1e-4)
    return kept


CASES = [
    # T, H, D, N, B, m, dtype: T not a multiple of anything; N not a multiple of B (a last block past
    # the end of k); causal ends (make_inputs: ke from N / 4 to N), so blocks straddle ke
    (37, 64, 128, 5000, 128, 8, "fp8"),
    (13, 128, 128, 2100, 128, 6, "fp8"),
    (10, 128, 64, 1500, 128, 5, torch.bfloat16),
    (9, 64, 64, 1111, 64, 7, torch.float16),        # B = 64: one tile per block, odd tile counts
    (6, 64, 32, 700, 256, 3, "fp8"),                # 32-byte rows, two 128-key copies per block
    (5, 64, 16, 400, 128, 3, torch.bfloat16),
    (531, 64, 128, 9000, 128, 40, "fp8"),            # a chunk: each query's 40 blocks in programs of 16, 16, 8
]


@hopper
@pytest.mark.parametrize("T,H,D,N,B,m,dtype", CASES)
def test_gather_wgmma_matches_reference_and_triton(T, H, D, N, B, m, dtype):
    run_case(T, H, D, N, B, m, dtype)


# Each over H's default config (H 64: 128-key copies, 2 slots, groups of 1; H 128: 64-key copies, 4
# slots, two head products each, groups of 2). 23 queries get 4 blocks per program unless a config
# says otherwise: BLOCKS_PER_PROG 7 gives each program all 7 kept blocks, so that groups form.
GATHER_CONFIGS = [
    {"A_IN_REGS": True},
    {"GROUP": 2, "BLOCKS_PER_PROG": 7},             # pipelined groups, with a copy left over
    {"GROUP": 3, "BLOCKS_PER_PROG": 7},
    {"GROUP": 8, "BLOCKS_PER_PROG": 7},             # H 64: more than a program's copies, all left over
    {"STAGES": 3, "BLOCKS_PER_PROG": 7}, {"STAGES": 6, "BLOCKS_PER_PROG": 7},
    {"SUB": 128, "num_warps": 8},                   # two warpgroups: one 128-key product per copy
    {"SUB": 128, "HEAD_SPLIT": 2, "GROUP": 2, "BLOCKS_PER_PROG": 7},   # key and head splits together
    {"SUB": 128, "STAGES": 3, "GROUP": 1},
    {"SUB": 128, "STAGES": 2, "GROUP": 3, "BLOCKS_PER_PROG": 5},
    {"SUB": 128, "A_IN_REGS": True},
    {"SUB": 64, "STAGES": 4, "GROUP": 4, "BLOCKS_PER_PROG": 7},   # 64-key copies (H 64's former default)
    {"SUB": 64, "STAGES": 6, "GROUP": 3, "BLOCKS_PER_PROG": 7},
    {"SUB": 64, "A_IN_REGS": True},
    {"BLOCKS_PER_PROG": 3},                         # an odd number of blocks per program
    {"SLOT_SYNC": True, "A_IN_REGS": True},
]


@hopper
@pytest.mark.parametrize("config", GATHER_CONFIGS)
@pytest.mark.parametrize("H,dtype", [(64, "fp8"), (128, torch.bfloat16)])
def test_gather_wgmma_configs(config, H, dtype):
    D = 128 if dtype == "fp8" else 64
    run_case(23, H, D, 3333, 128, 7, dtype, config=config)


@hopper
@pytest.mark.parametrize("dtype", ["fp8", torch.bfloat16])
def test_gather_wgmma_packed_sequences(dtype):
    # different ks per query, not block-aligned: the first kept block is partly before ks
    T, N = 30, 4000
    ks, ke = packed_ranges(T, N)
    kept = run_case(T, 64, 128 if dtype == "fp8" else 64, N, 128, 6, dtype, ks=ks, ke=ke)
    assert (kept.cpu() == (ks // 128)[:, None]).any(1)[1:].all()     # (row 0 has a -1 put in)


@hopper
@pytest.mark.parametrize("H,dtype", [(64, "fp8"), (128, "fp8"), (64, torch.float16)])
def test_gather_wgmma_decode_splits_blocks_over_programs(H, dtype):
    # a decode-like batch: few queries, their 64 kept blocks split over several programs each
    # (gather_config's rule: 4 blocks per program for 3 queries), one query with kept = -1 only
    T, N, B, m = 3, 64 * 128 + 50, 128, 64
    ke = torch.tensor([N, N - 700, 90], dtype=torch.int32)
    kept = random_kept(torch.zeros(T, dtype=torch.int32), ke, B, m, seed=1)
    kept[2] = -1
    run_case(T, H, 128 if dtype == "fp8" else 64, N, B, m, dtype, ke=ke, kept=kept)


@hopper
def test_gather_wgmma_on_hisa_kept_blocks():
    # the block stage's own choice (forced first and last blocks, -1 pads), structured keys
    T, H, D, N, B, m = 40, 64, 128, 3000, 128, 8
    inputs = make_inputs(T, H, D, N, "fp8", "cuda", structured="clusters", seed=3)
    kept = kept_blocks_ref(*inputs, B, m)
    assert (kept == -1).any()                   # the early queries see fewer than m blocks
    run_case(T, H, D, N, B, m, "fp8", kept=kept, inputs=inputs)


@hopper
@pytest.mark.parametrize("T", [600, 100])
def test_hisa_pipeline_gather_choice(T):
    """prepare_hisa's gather: "auto" takes the Gluon kernel for a chunk of >= GLUON_GATHER_MIN_ROWS
    queries (600) and the Triton one below (100); either kernel gives the same selection (the same
    scores, the same tie rule), and state["gather"] says which ran."""
    from kernels import indexers

    N = 6000
    ks = torch.zeros(T, dtype=torch.int32)
    ke = (N - T + 1 + torch.arange(T)).to(torch.int32)
    q, k, w, ks, ke, ksc = make_inputs(T, 64, 128, N, "fp8", "cuda", ks=ks, ke=ke, structured="clusters")
    kw = dict(topk=256, block_size=128, blocks=8)
    sel = {}
    for gather in ("auto", "triton", "gluon"):
        p = indexers.prepare_hisa(q, k, w, ks, ke, ksc, gather=gather, **kw)
        sel[gather] = p.run().clone()
        expect = {"auto": "gluon" if T >= indexers.GLUON_GATHER_MIN_ROWS else "triton"}.get(gather, gather)
        assert p.state["gather"] == expect
    ref = [set(r.tolist()) for r in sel["triton"].cpu()]
    for gather in ("auto", "gluon"):
        assert [set(r.tolist()) for r in sel[gather].cpu()] == ref, gather


def test_hisa_pipeline_rejects_an_unknown_gather(device):
    from kernels import indexers

    q, k, w, ks, ke, ksc = make_inputs(4, 2, 16, 300, "fp8", device)
    with pytest.raises(ValueError, match="gather"):
        indexers.prepare_hisa(q, k, w, ks, ke, ksc, topk=16, block_size=16, blocks=2, gather="cuda")


@pytest.mark.parametrize("dtype,packed", [("fp8", False), (torch.bfloat16, True)])
def test_gather_reference_matches_the_triton_kernel(dtype, packed, device):
    # the reference the GPU tests hold the Gluon kernel to, against the Triton kernel (interpreted
    # on a CPU), small shapes
    T, H, D, N, B, m = 7, 4, 32, 300, 32, 5
    ks, ke = packed_ranges(T, N) if packed else (None, None)
    q, k, w, ks, ke, ksc = make_inputs(T, H, D, N, dtype, device, ks=ks, ke=ke, seed=1)
    kept = random_kept(ks.cpu(), ke.cpu(), B, m, seed=2)
    kept[0, m // 2] = -1
    kept = kept.to(device)
    out = torch.full((T, m * B + 7), float("nan"), device=device)
    launch_gather_scores(q, k, w, kept, ks, ke, B, ksc, out=out[:, :m * B])
    check_gather(out, gather_ref(q, k, w, kept, ks, ke, B, ksc), m * B, 1e-5)


def test_gather_wgmma_routing_rule():
    # only CUDA tensors on a Hopper GPU, of the shapes TMA and the MMA take
    q = torch.zeros(4, 64, 128, dtype=torch.float8_e4m3fn)
    k = torch.zeros(1000, 128, dtype=torch.float8_e4m3fn)
    assert not gather_wgmma_fits(q, k, 128)             # CPU tensors
    if DEVICE == "cuda":
        qc, kc = q.cuda(), k.cuda()
        hopper_gpu = HAVE_GLUON and torch.cuda.get_device_capability()[0] == 9
        assert gather_wgmma_fits(qc, kc, 128) == hopper_gpu
        assert gather_wgmma_fits(qc, kc, 64) == hopper_gpu
        assert not gather_wgmma_fits(qc, kc, 32) and not gather_wgmma_fits(qc, kc, 96)   # B: whole 64-key tiles
        assert not gather_wgmma_fits(qc[:, :3].contiguous(), kc, 128)                    # H = 3
        assert not gather_wgmma_fits(qc[:, :, :64], kc[:, :64], 128)                     # q not contiguous
        q256, k256 = torch.zeros(4, 64, 256, device="cuda").to(q.dtype), torch.zeros(10, 256, device="cuda").to(q.dtype)
        assert not gather_wgmma_fits(q256, k256, 128)                                    # 256-byte rows
        assert not gather_wgmma_fits(qc.to(torch.bfloat16), kc, 128)                     # mixed dtypes
        assert not gather_wgmma_fits(qc.float(), kc.float(), 128)                        # fp32
    # the launcher's shape checks come before anything is compiled
    assert default_config(64, 128, 1)["HEAD_SPLIT"] == 1 and default_config(128, 128, 1)["HEAD_SPLIT"] == 2
    # H 64: a whole 128-key block per copy where blocks are whole 128-key pieces, 64 keys otherwise
    assert default_config(64, 128, 1)["SUB"] == 128 and default_config(64, 128, 1, 256)["SUB"] == 128
    assert default_config(64, 128, 1, 64)["SUB"] == 64 and default_config(64, 128, 1, 192)["SUB"] == 64
    assert default_config(128, 128, 1)["SUB"] == 64
    kept = torch.zeros(4, 2, dtype=torch.int32)
    ks, ke = torch.zeros(4, dtype=torch.int32), torch.full((4,), 100, dtype=torch.int32)
    with pytest.raises(ValueError, match="multiple of the 64-key tile"):
        launch_gather_scores_wgmma(q, k, torch.zeros(4, 64), kept, ks, ke, 96)
    assert launch_gather_scores_wgmma(q[:0], k, torch.zeros(0, 64), kept[:0], ks[:0], ke[:0], 128).shape == (0, 256)


def test_gather_wgmma_bench_without_a_gpu_says_so_in_one_line(monkeypatch):
    import sys

    from kernels import gather_scores_wgmma_bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["x"])
    with pytest.raises(SystemExit) as e:
        gather_scores_wgmma_bench.main([])
    assert str(e.value) == ("error: python -m kernels.gather_scores_wgmma_bench times kernels on a CUDA GPU, "
                            "and none is available")
