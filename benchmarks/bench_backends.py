"""onnxruntime vs PyTorch eager on the CPU, and the fraction of the FP32 peak each reaches.

For each model and batch size, both backends are timed with the harness behind `cnnlab bench`
(warm-up, then runs until a minimum count and time; p50 reported) on the same random input,
with the same number of intra-op threads. The speed-up is PyTorch p50 / onnxruntime p50.

    python benchmarks/bench_backends.py --quick       # smoke run: LeNet-5 and MobileNetV3-Small at 32 px
    python benchmarks/bench_backends.py --threads 4   # resnet18, mobilenet_v3_small, efficientnet_b0 at 224 px
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_common import print_header, print_table
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.bench import LatencyStats, TimingPlan, time_onnx, time_torch
from cnnlab.deploy.export import export_onnx
from cnnlab.models import count_flops, create_model

MODELS = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")


def row(name: str, stats: LatencyStats) -> tuple:
    return (name, stats.backend, stats.batch_size, f"{stats.p50_ms:.2f}", f"{stats.throughput:.1f}",
            f"{stats.gflops_per_s:.1f}", "—" if stats.peak_fraction is None else f"{stats.peak_fraction:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (small models, 32 px, short timings)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    models, size, batches, seconds = MODELS, args.size, (1, 32), 3.0
    if args.quick:
        models, size, batches, seconds = ("lenet5", "mobilenet_v3_small"), 32, (1, 4), 0.2
    print_header(f"onnxruntime vs PyTorch eager on the CPU at {size} px", args.threads)
    rows, speedups = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            model = create_model(name, num_classes=1000, image_size=size).eval()
            flops = count_flops(model, size)
            path = export_onnx(model, Path(folder) / f"{name}.onnx", spec=InputSpec(size),
                               classes=[str(i) for i in range(1000)])
            for batch in batches:
                eager = time_torch(model, batch, image_size=size, threads=args.threads,
                                   plan=TimingPlan(min_seconds=seconds), flops=flops)
                onnx = time_onnx(path, batch, threads=args.threads, plan=TimingPlan(min_seconds=seconds), flops=flops)
                rows += [row(name, eager), row(name, onnx)]
                speedups.append((name, batch, f"{eager.p50_ms / onnx.p50_ms:.2f}×"))
    print_table(("model", "backend", "batch", "p50 ms", "images/s", "GFLOP/s", "% FP32 peak"), rows)
    print_table(("model", "batch", "onnxruntime speed-up (torch p50 / ort p50)"), speedups)


if __name__ == "__main__":
    main()
