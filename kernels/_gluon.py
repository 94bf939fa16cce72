"""Gluon (Triton's Hopper-level dialect) for the kernels written in it, with the names that moved
between Triton versions in one place. Gluon ships with Triton 3.4+; without it HAVE_GLUON is False,
the other names are None, and the Gluon kernels' modules only say so."""
try:
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (fence_async_shared, mbarrier, tma, warpgroup_mma,
                                                                  warpgroup_mma_wait)
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor
    # the TMA load's name: async_copy_global_to_shared up to Triton 3.6, async_load after
    tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
    # the CTA-wide barrier's name: thread_barrier up to Triton 3.6, barrier after
    cta_barrier = getattr(gl, "thread_barrier", None) or gl.barrier
    HAVE_GLUON = True
except Exception:       # pragma: no cover - depends on the installed Triton
    gluon = gl = fence_async_shared = mbarrier = tma = warpgroup_mma = warpgroup_mma_wait = None
    TensorDescriptor = tma_load = cta_barrier = None
    HAVE_GLUON = False

if HAVE_GLUON:
    @gluon.jit
    def barrier_ring(N: gl.constexpr):
        """N mbarriers in shared memory, each completing on one arrival (the Gluon kernels: one
        per key slot, STAGES of them, and one for the query tile)."""
        bars = gl.allocate_shared_memory(gl.int64, [N, 1], mbarrier.MBarrierLayout())
        for i in gl.static_range(N):
            mbarrier.init(bars.index(i), count=1)
        return bars

    @gluon.jit
    def invalidate_ring(bars, N: gl.constexpr):
        for i in gl.static_range(N):
            mbarrier.invalidate(bars.index(i))
else:
    barrier_ring = invalidate_ring = None

__all__ = ["HAVE_GLUON", "TensorDescriptor", "barrier_ring", "cta_barrier", "fence_async_shared", "gl", "gluon",
           "invalidate_ring", "mbarrier", "tma_load", "warpgroup_mma", "warpgroup_mma_wait"]
