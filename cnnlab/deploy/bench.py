"""Latency of one model on one backend at one batch size, measured the same way for every backend.

Method: `warmup` untimed runs (allocators, caches, lazy initialisation, torch.compile's compilation), then
timed runs, one request at a time, until both `min_iters` runs and `min_seconds` have passed. CPU runs,
onnxruntime runs (whose `run` returns only when the outputs are ready, on any provider) and OpenVINO runs (a
synchronous infer request) are timed with `time.perf_counter_ns`; PyTorch on CUDA with CUDA events around each
run and a synchronize after it, so the time is the GPU's and no run overlaps the next.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from cnnlab.deploy.openvino_runtime import OpenVinoSession, first_reason, ran_out_of_memory
from cnnlab.deploy.ort import example_feed, onnx_session, parse_device, session_io
from cnnlab.deploy.peak import peak_estimate
from cnnlab.errors import CnnlabError

WARMUP = 5
MIN_ITERS = 30
MIN_SECONDS = 1.0


@dataclass
class LatencyStats:
    backend: str              # torch, torch_compile, onnxruntime, tensorrt, openvino
    device: str
    batch_size: int
    threads: int
    iterations: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    min_ms: float
    throughput: float         # images per second: batch_size / p50 latency
    gflops_per_s: float | None  # achieved: FLOPs of the batch / p50 latency (None when FLOPs are unknown)
    peak_fraction: float | None  # gflops_per_s / the device's FP32 peak (None when either is unknown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TimingPlan:
    """How one model is timed: `warmup` untimed calls, then timed calls until both `min_iters` calls and
    `min_seconds` seconds have passed. Raises CnnlabError for a negative warm-up or time, or fewer than 1 call."""

    warmup: int = WARMUP
    min_iters: int = MIN_ITERS
    min_seconds: float = MIN_SECONDS

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.min_iters < 1 or self.min_seconds < 0:
            raise CnnlabError(f"timing needs warmup >= 0, min_iters >= 1 and min_seconds >= 0 (got {self.warmup}, "
                              f"{self.min_iters}, {self.min_seconds})")


def wall_clock(step: Callable[[], Any]) -> float:
    """Milliseconds of one synchronous call."""
    start = time.perf_counter_ns()
    step()
    return (time.perf_counter_ns() - start) / 1e6


def cuda_event_clock(step: Callable[[], Any]) -> float:
    """Milliseconds of GPU time of one call: events recorded around it, synchronized before reading."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end))


def measure(step: Callable[[], Any], plan: TimingPlan, clock: Callable[[Callable[[], Any]], float] = wall_clock,
            ) -> list[float]:
    """Per-run latencies (ms) after `plan.warmup` untimed runs, until min_iters and min_seconds are both met."""
    for _ in range(plan.warmup):
        clock(step)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < plan.min_iters or time.perf_counter() - started < plan.min_seconds:
        times.append(clock(step))
    return times


def summarize(times_ms: list[float], *, backend: str, device: str, batch_size: int, threads: int,
              flops: int | None, peak_gflops: float | None) -> LatencyStats:
    """The statistics of one timing's per-run latencies (ms). Throughput (images/s) and achieved GFLOP/s come from
    the p50, like every other figure cnnlab reports: from the mean, one stall of a shared machine decided them
    (probe 105: p50 0.0166 ms, mean 0.0714 ms with a std of 0.81 ms: 14,004 images/s instead of 60,000). The mean
    and std stay recorded beside them."""
    values = np.asarray(times_ms, dtype=np.float64)
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
    achieved = flops * batch_size / (p50 / 1e3) / 1e9 if flops else None
    return LatencyStats(
        backend=backend, device=device, batch_size=batch_size, threads=threads, iterations=len(values),
        mean_ms=float(values.mean()), p50_ms=p50, p90_ms=p90, p99_ms=p99,
        std_ms=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        min_ms=float(values.min()), throughput=batch_size / (p50 / 1e3), gflops_per_s=achieved,
        peak_fraction=achieved / peak_gflops if achieved is not None and peak_gflops else None,
    )


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with exactly `threads` intra-op threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_batch(batch_size: int) -> int:
    if int(batch_size) < 1:
        raise CnnlabError(f"batch size {batch_size} must be at least 1", fix="use bench.batch_sizes=[1,8,32]")
    return int(batch_size)


def _peak(device: str, threads: int, peak_gflops: float | None) -> float | None:
    return peak_estimate(device, threads, peak_gflops).gflops


def time_onnx(path: Path, batch_size: int, *, threads: int, device: str = "cpu", plan: TimingPlan = TimingPlan(),
              flops: int | None = None, runtime: str = "onnxruntime", peak_gflops: float | None = None,
              seed: int = 0, precision: str = "f32") -> LatencyStats:
    """Latency of `path` at `batch_size` on `runtime`: onnxruntime's own kernels, TensorRT (through onnxruntime)
    or OpenVINO's native runtime (CPU), computing in `precision` (f32; bf16 on openvino only); input shape and
    dtype from the file (float16 images for an FP16 file: example_feed), whose batch axis must be dynamic or equal
    to batch_size. On CUDA, input and output stay on the GPU (I/O binding), like PyTorch's. Raises CnnlabError
    when the runtime cannot load or run the file, or its batch axis is fixed to another size (one line, said
    before any run)."""
    batch_size = _check_batch(batch_size)
    session = onnx_session(Path(path), threads=threads, device=device, runtime=runtime, precision=precision)
    if isinstance(session, OpenVinoSession):  # it takes no more threads than the cores it may use (probe 134)
        threads = session.inference_threads  # what ran is what the record says
    input_name, output_name = session_io(session)
    fixed = session.get_inputs()[0].shape[0]
    if isinstance(fixed, int) and fixed > 0 and fixed != batch_size:
        raise CnnlabError(f"{runtime} cannot run {path} at batch {batch_size}: the file has a fixed batch "
                          f"dimension of {fixed}",
                          fix=f"time it at batch {fixed}, or export the model with a dynamic batch "
                              "(`cnnlab export source=RUN` does)")
    try:
        feed = example_feed(session, batch_size, seed=seed)
    except CnnlabError as err:  # example_feed knows no path; a timing error names the file
        raise CnnlabError(f"{path} has a {err.message}; cannot choose an input size to time") from err
    kind, index = parse_device(device)
    if kind == "cuda":
        import onnxruntime as ort

        binding = session.io_binding()
        binding.bind_ortvalue_input(input_name, ort.OrtValue.ortvalue_from_numpy(feed[input_name], "cuda", index))
        binding.bind_output(output_name, "cuda", index)

        def step() -> None:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()
    else:
        def step() -> None:
            session.run([output_name], feed)

    try:
        times = measure(step, plan)
    except Exception as exc:  # noqa: BLE001 - e.g. a fixed batch axis that is not batch_size
        if ran_out_of_memory(str(exc)):  # OpenVINO says so past its first line (probe 137)
            raise CnnlabError(f"{runtime} ran out of memory at batch {batch_size} ({first_reason(exc)})",
                              fix="time a smaller batch, or free memory for it") from exc
        raise CnnlabError(f"{runtime} cannot run {path} at batch {batch_size}: {first_reason(exc)}") from exc
    return summarize(times, backend=runtime, device=device, batch_size=batch_size,
                     threads=threads, flops=flops, peak_gflops=_peak(device, threads, peak_gflops))


def time_torch(model: nn.Module, batch_size: int, *, image_size: int, threads: int, device: str = "cpu",
               compile: bool = False, plan: TimingPlan = TimingPlan(), flops: int | None = None,
               peak_gflops: float | None = None, channels: int = 3, seed: int = 0) -> LatencyStats:
    """PyTorch eager (or torch.compile'd) latency of a copy of `model` in eval mode under inference_mode."""
    batch_size = _check_batch(batch_size)
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError(f"device={device} but no CUDA GPU is visible", fix="use --device cpu")
    runnable = copy.deepcopy(model).to(target).eval()
    if compile:
        runnable = torch.compile(runnable)  # type: ignore[assignment]
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, channels, image_size, image_size, generator=generator).to(target)
    clock = cuda_event_clock if target.type == "cuda" else wall_clock

    def step() -> None:
        runnable(images)

    with torch_threads(threads), torch.inference_mode():
        if compile:
            _first_compiled_run(step)
        times = measure(step, plan, clock)
    return summarize(times, backend="torch_compile" if compile else "torch", device=device, batch_size=batch_size,
                     threads=threads, flops=flops, peak_gflops=_peak(device, threads, peak_gflops))


def _first_compiled_run(step: Callable[[], Any]) -> None:
    """torch.compile compiles on the first call; a failure there (no C++ compiler, an unsupported op) is
    the user's environment, not a bug: one line. Inductor's C++ build asks for CUDA_HOME even on a CPU-only machine
    and logs "No CUDA runtime is found, using CUDA_HOME=..." (torch.utils.cpp_extension) amid the bench's lines: a
    warning about nothing the CPU timing uses, silenced for this call."""
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - inductor raises many types
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CnnlabError(f"torch.compile failed: {first}", fix="use bench.compile=false") from exc
    finally:
        quiet.setLevel(level)
