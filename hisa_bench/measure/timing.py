"""Timing: medians with p20/p80, cold L2, compilation kept outside the timed region.

On a GPU: triton.testing.do_bench (CUDA events; it flushes L2 before each call) after one untimed
warm-up call that also compiles; the repeat count adapts so that even a 200 ms call is timed at
least `min_reps` times. The speed command's selections (decode and chunk steps, whole prefills) are
sequences of short launches: timed eagerly they measure the host's Python launch speed as much as
the GPU (in serving the host runs ahead, or the step runs from a CUDA graph), so they are captured
once in a CUDA graph and its replays are timed, L2 flushed between them as do_bench does.
On a CPU (the interpreter) a wall clock with the same statistics; such figures say nothing about a
GPU and are labelled as interpreter timings.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

CPU_MAX_REPS = 50     # interpreter calls take 0.1-1 s: a cap keeps a large --rep-ms finite


@dataclass
class TimingSettings:
    warmup_ms: float = 25.0
    rep_ms: float = 200.0
    min_reps: int = 5
    cuda_graph: bool = False

    def as_dict(self, device: str = "cuda"):
        """How time_call measures on `device`, for env.json and speed.json."""
        if device != "cuda":
            return {"method": "wall clock (time.perf_counter) around each call, Triton interpreter",
                    "statistic": "median, p20, p80", "warmup_ms": None, "rep_ms": self.rep_ms,
                    "min_reps": min(self.min_reps, 3), "max_reps": CPU_MAX_REPS,
                    "compile": "excluded (one untimed call first)", "decode": "eager", "chunk": "eager",
                    "prefill": "eager", "topk": "eager"}
        return {"method": "decode, chunk and prefill: replays of one captured CUDA graph, each timed with "
                          "CUDA events, L2 flushed between replays, at least 4 x min_reps replays; "
                          "--mode topk and calls that cannot be captured: triton.testing.do_bench "
                          "(CUDA events, L2 flushed before each call)",
                "statistic": "median, p20, p80", "warmup_ms": self.warmup_ms, "rep_ms": self.rep_ms,
                "min_reps": self.min_reps, "compile": "excluded (one untimed call first)",
                "warmup": "warmup_ms applies to do_bench; a graph is replayed twice untimed first",
                "decode": "CUDA graph replays (L2 flushed between replays); a backend that cannot be "
                          "captured (it synchronises with the host) is timed eagerly, as its row's "
                          "timing column says",
                "chunk": "as decode", "prefill": "as decode",
                "topk": "triton.testing.do_bench, eager (one kernel per call)"}


def _quantiles(samples):
    s = sorted(samples)
    q = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else [s[0]] * 9
    return statistics.median(s), q[1], q[7]


def time_call(fn, settings: TimingSettings, device: str, info: dict | None = None):
    """(median_ms, p20_ms, p80_ms). When `info` is given, info["timing"] says how it was timed:
    "cuda-graph", "eager", "eager (graph capture failed: ...)" or "wall-clock"."""
    if info is None:
        info = {}
    if device != "cuda":
        info["timing"] = "wall-clock"
        fn()
        samples = []
        t_end = time.perf_counter() + settings.rep_ms / 1e3
        while len(samples) < min(settings.min_reps, 3) or (time.perf_counter() < t_end and len(samples) < CPU_MAX_REPS):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1e3)
        return _quantiles(samples)
    import triton.testing

    fn()
    torch.cuda.synchronize()
    if settings.cuda_graph:
        graph, why = capture_graph(fn)
        if graph is not None:
            info["timing"] = "cuda-graph"
            return _time_graph(graph, settings)
        # a call that synchronises with the host (reads a tensor's value, e.g. int(ks.min()))
        # cannot be captured: time it as it runs, and say so in the row
        info["timing"] = f"eager (graph capture failed: {why})"
    else:
        info["timing"] = "eager"
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    est = (time.perf_counter() - t0) * 1e3
    rep = max(settings.rep_ms, est * settings.min_reps * 1.5)
    med, p20, p80 = triton.testing.do_bench(fn, warmup=settings.warmup_ms, rep=rep, quantiles=[0.5, 0.2, 0.8])
    return med, p20, p80


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:160]}" if lines else type(e).__name__


def capture_graph(fn):
    """(graph, None) after capturing one call of fn in a CUDA graph, or (None, reason) when it
    cannot be captured. A failed capture is ended here and the device synchronised, so later
    work (the next row) runs on a clean context: torch.cuda.graph's context manager would leave
    its side stream current when capture_end raises, and the stream would stay in capture mode
    if the capture were never ended."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()                                     # warm-up on the capture stream
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    error = None
    with torch.cuda.stream(stream):
        graph.capture_begin()
        try:
            fn()
        except Exception as e:       # an illegal call during capture (a host sync): the capture is invalid
            error = e
        finally:
            try:
                graph.capture_end()
            except Exception as e:   # cudaStreamEndCapture reports the invalidated capture, and ends it
                error = error or e
    if error is None:
        torch.cuda.synchronize()
        return graph, None
    del graph
    with torch.cuda.stream(stream):
        still_capturing = torch.cuda.is_current_stream_capturing()
    if still_capturing or torch.cuda.is_current_stream_capturing():
        raise RuntimeError(f"CUDA graph capture could not be ended after: {_first_line(error)}")
    torch.cuda.synchronize()      # raises here if the failed capture left a sticky error behind
    return None, _first_line(error)


def _time_graph(graph, settings):
    """Replays of a captured graph, each timed with CUDA events."""
    # L2 flush between replays, as in do_bench, so a graph does not time a hot cache
    flush = torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device="cuda")
    start = [torch.cuda.Event(enable_timing=True) for _ in range(1000)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(1000)]
    graph.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    graph.replay()
    torch.cuda.synchronize()
    est = max((time.perf_counter() - t0) * 1e3, 1e-3)
    n = int(min(1000, max(settings.min_reps * 4, settings.rep_ms / est)))
    for i in range(n):
        flush.zero_()
        start[i].record()
        graph.replay()
        end[i].record()
    torch.cuda.synchronize()
    samples = [s.elapsed_time(e) for s, e in zip(start[:n], end[:n])]
    del graph
    return _quantiles(samples)
