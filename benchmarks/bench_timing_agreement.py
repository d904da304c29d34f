"""Does `cnnlab bench` report the latency an independent measurement finds? (target: within 5 %)

Times the same ONNX file and the same PyTorch model two ways, in the same process, alternating:
  - cnnlab: cnnlab.deploy.bench.time_onnx / time_torch (the code behind `cnnlab bench`), p50;
  - independent: a bare loop over a separately created onnxruntime session's `run` (median of
    perf_counter deltas), and torch.utils.benchmark.Timer timing one forward per sample (median).
    One run per sample, like cnnlab's p50: blocked_autorange's per-block means also count the moments
    the OS preempts the process, which on a shared machine shifts them away from any median.
Prints one row per backend and batch size with the ratio cnnlab / independent.

    python benchmarks/bench_timing_agreement.py --quick      # smoke run: LeNet-5 at 32 px
    python benchmarks/bench_timing_agreement.py --threads 4  # ResNet-18 at 224 px, batch 1 and 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.utils.benchmark as torch_benchmark

from bench_common import print_header, print_table
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.bench import TimingPlan, time_onnx, time_torch
from cnnlab.deploy.export import export_onnx
from cnnlab.models import create_model

TOLERANCE = 0.05


def independent_onnx_p50(path: Path, batch: int, size: int, threads: int, seconds: float) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    feed = {"input": np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)}
    for _ in range(5):
        session.run(None, feed)
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 30:
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def independent_torch_p50(model: torch.nn.Module, batch: int, size: int, threads: int, seconds: float) -> float:
    inputs = {"model": model.eval(), "x": torch.randn(batch, 3, size, size)}
    timer = torch_benchmark.Timer(stmt="model(x)", globals=inputs, num_threads=threads)
    times, started = [], time.perf_counter()
    with torch.inference_mode():  # around the whole loop, as cnnlab does (entering it per call costs ~10 µs)
        timer.timeit(5)  # warm-up
        while time.perf_counter() - started < seconds or len(times) < 30:
            times.append(timer.timeit(1).median * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (LeNet-5, 32 px, short timings)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements per pair (median kept)")
    args = parser.parse_args()
    name, size, batches, seconds, repeats = args.model, args.size, (1, 32), 2.0, args.repeats
    if args.quick:
        name, size, batches, seconds, repeats = "lenet5", 32, (1, 8), 0.2, 1
    print_header(f"cnnlab bench vs independent timing — {name} at {size} px", args.threads)
    model = create_model(name, num_classes=1000, image_size=size).eval()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", spec=InputSpec(size),
                           classes=[str(i) for i in range(1000)])
        for batch in batches:
            pairs = {
                "onnxruntime": (lambda: time_onnx(path, batch, threads=args.threads, plan=TimingPlan(min_seconds=seconds)).p50_ms,
                                lambda: independent_onnx_p50(path, batch, size, args.threads, seconds)),
                "torch": (lambda: time_torch(model, batch, image_size=size, threads=args.threads,
                                             plan=TimingPlan(min_seconds=seconds)).p50_ms,
                          lambda: independent_torch_p50(model, batch, size, args.threads, seconds)),
            }
            for backend, (ours, theirs) in pairs.items():
                measured = [(ours(), theirs()) for _ in range(repeats)]  # alternate, so drift hits both
                cnnlab_p50 = statistics.median(m[0] for m in measured)
                independent = statistics.median(m[1] for m in measured)
                ratio = cnnlab_p50 / independent
                verdict = "ok" if abs(ratio - 1) <= TOLERANCE else f"OUTSIDE ±{TOLERANCE:.0%}"
                rows.append((backend, batch, f"{cnnlab_p50:.3f}", f"{independent:.3f}", f"{ratio:.3f}", verdict))
    print_table(("backend", "batch", "cnnlab p50 ms", "independent p50 ms", "ratio", "within 5 %"), rows)


if __name__ == "__main__":
    main()
