"""The documented Python API (hisa_bench.api): every validation rule raises HisaBenchError naming
the problem, the helpers (causal_ranges, quantize_fp8) hold their contracts, and the kernels
(backend="triton", interpreted here) select the same sets as the plain-torch references."""
import math

import pytest
import torch

from hisa_bench import api
from hisa_bench.errors import HisaBenchError

from helpers import as_sets, make_inputs

FP8 = torch.float8_e4m3fn


def _case(T=4, H=2, D=16, N=64, dtype=torch.float32):
    """A small valid input: q [T, H, D], k [N, D], w [T, H], causal-ish ranges."""
    q, k, w, ks, ke, k_scale = make_inputs(T, H, D, N, dtype, "cpu", seed=0)
    return dict(q=q, k=k, w=w, ks=ks, ke=ke, k_scale=k_scale)


def _raises(match, **over):
    """validate() on _case() with some arguments replaced must raise a message matching `match`."""
    kw = dict(_case(), topk=8, block_size=16, blocks=4)
    kw.update(over)
    args = [kw.pop(n) for n in ("q", "k", "w", "ks", "ke", "k_scale")]
    with pytest.raises(HisaBenchError, match=match) as info:
        api.validate(*args, **kw)
    assert "\n" not in str(info.value), "messages are one line"


def test_valid_case_passes():
    c = _case()
    api.validate(c["q"], c["k"], c["w"], c["ks"], c["ke"], None, topk=8, block_size=16, blocks=4)
    c8 = _case(dtype="fp8")
    api.validate(*c8.values(), topk=8, block_size=16, blocks=4)


# ---- shapes ----------------------------------------------------------------------------------

def test_q_must_be_3d():
    _raises(r"q must be \[T, H, D\].*\(4, 32\)", q=torch.randn(4, 32))


def test_k_must_be_2d_with_q_head_dim():
    _raises(r"k must be \[N, D\] with D = 16.*\(64, 32\)", k=torch.randn(64, 32))
    _raises(r"k must be \[N, D\]", k=torch.randn(64, 16, 1))


def test_w_shape():
    _raises(r"w must be \[T, H\] = \[4, 2\].*\(4, 3\)", w=torch.randn(4, 3))
    _raises(r"w must be \[T, H\]", w=torch.randn(4))


def test_ks_ke_shape_and_dtype():
    _raises(r"ks must be an integer tensor of shape \[4\]", ks=torch.zeros(3, dtype=torch.int32))
    _raises(r"ke must be an integer tensor.*float32", ke=torch.full((4,), 10.0))


def test_non_tensors_rejected():
    _raises(r"q must be a torch.Tensor, got list", q=[[[0.0]]])
    _raises(r"ks must be a torch.Tensor, got list", ks=[0, 0, 0, 0])
    _raises(r"k_scale must be a torch.Tensor or None, got list", k_scale=[1.0] * 64)


def test_k_scale_shape_and_dtype():
    c = _case(dtype="fp8")
    _raises(r"k_scale must be float32 \[64\].*\(63,\)", q=c["q"], k=c["k"], w=c["w"], k_scale=c["k_scale"][:63])
    _raises(r"k_scale must be float32 \[64\].*float64", q=c["q"], k=c["k"], w=c["w"],
            k_scale=c["k_scale"].double())


# ---- dtypes ----------------------------------------------------------------------------------

def test_w_must_be_float32():
    _raises(r"w must be float32, got torch.bfloat16", w=_case()["w"].bfloat16())


def test_unsupported_key_dtypes():
    c = _case()
    _raises(r"q and k must be bf16, fp16, fp32 or fp8.*int32", q=c["q"].int(), k=c["k"].int())
    _raises(r"q and k must be bf16, fp16, fp32 or fp8.*float64", k=c["k"].double())


def test_mismatched_dtypes():
    c = _case()
    _raises(r"same dtype, got torch.float32 and torch.bfloat16", k=c["k"].bfloat16())


def test_fp8_needs_k_scale():
    c = _case(dtype="fp8")
    _raises(r"fp8 keys need k_scale", q=c["q"], k=c["k"], w=c["w"], k_scale=None)


def test_k_scale_must_be_positive():
    c = _case(dtype="fp8")
    for bad in (0.0, -1.0):
        s = c["k_scale"].clone()
        s[5] = bad
        _raises(r"k_scale must be positive", q=c["q"], k=c["k"], w=c["w"], k_scale=s)


# ---- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["q", "k", "w"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values(name, value):
    t = _case()[name].clone()
    t.view(-1)[3] = value
    _raises(rf"{name} holds NaN or Inf", **{name: t})


def test_non_finite_fp8_and_scale():
    c = _case(dtype="fp8")
    k8 = c["k"].clone()
    k8.view(torch.uint8).view(-1)[7] = 0x7F          # the e4m3fn NaN pattern
    _raises(r"k holds NaN or Inf", q=c["q"], k=k8, w=c["w"], k_scale=c["k_scale"])
    s = c["k_scale"].clone()
    s[2] = math.inf
    _raises(r"k_scale holds NaN or Inf", q=c["q"], k=c["k"], w=c["w"], k_scale=s)


def test_ranges():
    c = _case()
    ks, ke = c["ks"].clone(), c["ke"].clone()
    ks[1] = ke[1]                                    # empty range
    _raises(r"0 <= ks < ke <= N = 64", ks=ks)
    ks[1] = ke[1] + 3                                # reversed range
    _raises(r"0 <= ks < ke <= N = 64", ks=ks)
    ke2 = c["ke"].clone()
    ke2[2] = 65                                      # past the last key
    _raises(r"0 <= ks < ke <= N = 64", ke=ke2)
    ks3 = c["ks"].clone()
    ks3[0] = -1
    _raises(r"0 <= ks < ke <= N", ks=ks3)


# ---- shape limits and HISA parameters --------------------------------------------------------

@pytest.mark.parametrize("H", [129])
def test_heads_out_of_range(H):
    _raises(rf"heads must be 1..128, got {H}", q=torch.randn(4, H, 16), w=torch.randn(4, H))


def test_zero_heads():
    _raises(r"heads must be 1..128, got 0", q=torch.randn(4, 0, 16), w=torch.randn(4, 0))


@pytest.mark.parametrize("D", [8, 20, 272])
def test_head_dim(D):
    _raises(rf"head dim must be a multiple of 16.*got {D}", q=torch.randn(4, 2, D), k=torch.randn(64, D))


@pytest.mark.parametrize("B", [8, 24, 48, 100])
def test_block_size_power_of_two(B):
    _raises(rf"block size must be a power of two >= 16, got {B}", block_size=B, blocks=64)


@pytest.mark.parametrize("m", [0, 1])
def test_blocks_at_least_two(m):
    _raises(rf"blocks kept must be at least 2.*got {m}", blocks=m)


def test_blocks_must_cover_topk():
    _raises(r"blocks x block size must cover top-k: 4 x 32 = 128 < 512", topk=512, block_size=32, blocks=4)


def test_topk_positive():
    _raises(r"topk must be at least 1, got 0", topk=0)


def test_unknown_pooling():
    _raises(r"pooling must be one of mean, max, got 'median'", pooling="median")


def test_unknown_backend():
    c = _case()
    with pytest.raises(HisaBenchError, match=r"backend must be auto, triton or reference, got 'cuda'"):
        api.flat_select(c["q"], c["k"], c["w"], c["ks"], c["ke"], topk=8, backend="cuda")


def test_public_functions_validate_before_running():
    c = _case()
    w = c["w"].clone()
    w[0, 0] = math.nan
    for fn, kw in ((api.flat_select, {}), (api.hisa_select, dict(block_size=16, blocks=4)),
                   (api.block_sparse_select, dict(block_size=16))):
        with pytest.raises(HisaBenchError, match="w holds NaN"):
            fn(c["q"], c["k"], w, c["ks"], c["ke"], topk=16, backend="reference", **kw)
    with pytest.raises(HisaBenchError, match=r"topk 8 < block size 16"):
        api.block_sparse_select(c["q"], c["k"], c["w"], c["ks"], c["ke"], topk=8, block_size=16)


# ---- helpers ---------------------------------------------------------------------------------

def test_causal_ranges():
    ks, ke = api.causal_ranges([0, 5, 99])
    assert ks.dtype == ke.dtype == torch.int32
    assert ks.tolist() == [0, 0, 0]
    assert ke.tolist() == [1, 6, 100]
    ks, ke = api.causal_ranges(torch.arange(3, dtype=torch.int64) * 1000)
    assert ke.tolist() == [1, 1001, 2001] and ks.shape == (3,)


def test_quantize_fp8_round_trip():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(8, 4, 32, generator=g) * torch.logspace(-2, 2, 8)[:, None, None]
    k = torch.randn(100, 32, generator=g) * 5
    k[7] = 0                                         # an all-zero key keeps a positive scale
    w = torch.randn(8, 4, generator=g)
    q8, k8, w8, k_scale = api.quantize_fp8(q, k, w)
    assert q8.dtype == k8.dtype == FP8
    assert w8.dtype == k_scale.dtype == torch.float32
    assert k_scale.shape == (100,) and w8.shape == (8, 4)
    assert bool((k_scale > 0).all()) and bool(torch.isfinite(k_scale).all())
    # I[t, s] rebuilt from the fp8 tensors matches the float32 one within fp8 rounding
    ref = torch.einsum("thd,nd->thn", q, k).relu().mul(w[..., None]).sum(1)
    deq = torch.einsum("thd,nd->thn", q8.float(), k8.float() * k_scale[:, None]).relu().mul(w8[..., None]).sum(1)
    scale = torch.einsum("thd,nd->thn", q.abs(), k.abs()).mul(w.abs()[..., None]).sum(1)
    # e4m3 keeps 3 mantissa bits: each factor within 2^-4 relative, a product within ~13%
    assert bool(((deq - ref).abs() <= 0.13 * scale + 1e-6).all())
    assert float((deq - ref).abs().max()) > 0, "the fp8 path must actually round"
    # per-element: values within one e4m3 step of the originals
    qs = w8 / w                                      # the per-(t, h) scale folded into w
    assert torch.allclose(q8.float() * qs[..., None], q, rtol=0.0625, atol=1e-6)
    api.validate(q8, k8, w8, *api.causal_ranges(torch.arange(92, 100)), k_scale, topk=8)


# ---- kernels (interpreted) against the references --------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "fp8"])
def test_triton_matches_reference(dtype, device):
    # the kernels take tensors on their own device (compiled: CUDA; interpreted: CPU)
    q, k, w, ks, ke, k_scale = make_inputs(6, 4, 32, 200, dtype, device, seed=11)
    cpu = [None if t is None else t.cpu() for t in (q, k, w, ks, ke, k_scale)]
    for fn, kw in ((api.flat_select, dict(topk=24)),
                   (api.hisa_select, dict(topk=24, block_size=16, blocks=3)),
                   (api.block_sparse_select, dict(topk=32, block_size=16))):
        ref = fn(*cpu, backend="reference", **kw)
        got = fn(q, k, w, ks, ke, k_scale, backend="triton", **kw)
        assert got.dtype == ref.dtype == torch.int32
        assert got.shape == ref.shape == (6, kw["topk"])
        assert as_sets(got) == as_sets(ref), fn.__name__
        auto = fn(*cpu, backend="auto", **kw)   # CPU tensors: the reference
        assert torch.equal(auto, ref)


def test_hisa_differs_from_flat_here():
    """The comparison above must not be vacuous: on this case HISA drops keys flat keeps."""
    q, k, w, ks, ke, k_scale = make_inputs(6, 4, 32, 200, torch.float32, "cpu", seed=11)
    flat = as_sets(api.flat_select(q, k, w, ks, ke, topk=24, backend="reference"))
    hisa = as_sets(api.hisa_select(q, k, w, ks, ke, topk=24, block_size=16, blocks=3, backend="reference"))
    assert flat != hisa


def test_triton_on_strided_views(device):
    """Slices and transposes reach the kernels as dense copies (they index with stride 1)."""
    q, k, w, ks, ke, _ = make_inputs(6, 4, 32, 200, torch.float32, device, seed=2)
    qv = torch.stack([q, torch.zeros_like(q)], -1)[..., 0]
    kv = k.t().contiguous().t()
    wv = w.t().contiguous().t()
    kev = torch.stack([ke, ke], -1)[:, 0]
    assert not (qv.is_contiguous() or kv.is_contiguous() or wv.is_contiguous() or kev.is_contiguous())
    ref = as_sets(api.flat_select(q, k, w, ks, ke, topk=24, backend="reference"))
    assert as_sets(api.flat_select(qv, kv, wv, ks, kev, topk=24, backend="triton")) == ref
    ref_h = as_sets(api.hisa_select(q, k, w, ks, ke, topk=24, block_size=16, blocks=3, backend="reference"))
    assert as_sets(api.hisa_select(qv, kv, wv, ks, kev, topk=24, block_size=16, blocks=3,
                                   backend="triton")) == ref_h


def test_short_rows_pad_with_minus_one(device):
    q, k, w, _, _, _ = make_inputs(3, 2, 16, 40, torch.float32, device, seed=5)
    ks, ke = api.causal_ranges(torch.tensor([4, 20, 39], device=device))
    for backend in ("reference", "triton"):
        sel = api.flat_select(q, k, w, ks, ke, topk=32, backend=backend)
        assert (sel >= 0).sum(1).tolist() == [5, 21, 32]
        assert set(sel[0].tolist()) == {-1, 0, 1, 2, 3, 4}
