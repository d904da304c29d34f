"""How far apart do separate timings of one network land? The room `cnnlab search` leaves in a suggested limit.

`cnnlab search` suggests `search.max_latency_ms` from the closest trial's p50 when no candidate met the limit, and a
new search times every candidate anew. This script times each network `--sessions` times with the search's own
harness (cnnlab.search.latency.measure: export to ONNX, a fresh onnxruntime session, warm-up, `rounds` rounds), one
session after another, at 1 thread and at every usable core, and prints each network's median p50 and how far the
farthest session landed from it (a share of the median). Paired speed-ups (a reference timed beside each candidate,
round by round) are steadier: docs/search.md, "Budgets relative to a reference".

    python benchmarks/latency_noise.py              # lenet5@32, mobilenet_v3_small@32, resnet18@64, 8 sessions each
    python benchmarks/latency_noise.py --quick      # lenet5 only, 4 sessions
"""

from __future__ import annotations

import argparse
import statistics

from _common import print_machine, usable_cores
from bench_common import print_table
from cnnlab.data.spec import InputSpec
from cnnlab.models import create_model
from cnnlab.search.latency import LATENCY_NOISE, measure
from cnnlab.search.settings import LatencySettings

NETWORKS = (("lenet5", 32), ("mobilenet_v3_small", 32), ("resnet18", 64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    networks, sessions = (NETWORKS[:1], 4) if args.quick else (NETWORKS, args.sessions)
    print("# separate timings of one network (cnnlab.search.latency.measure)")
    print_machine(None)
    rows = []
    for threads in sorted({1, usable_cores()}):
        settings = LatencySettings(threads=threads)
        for name, size in networks:
            model = create_model(name, num_classes=10, image_size=size).eval()
            spec = InputSpec(size=size, mean=(0.5,) * 3, std=(0.5,) * 3, channels=3)
            p50 = [measure(model, spec, [str(i) for i in range(10)], settings).p50_ms for _ in range(sessions)]
            middle = statistics.median(p50)
            farthest = max(abs(value - middle) for value in p50) / middle
            rows.append([name, size, threads, sessions, f"{middle:.4f}", f"{min(p50):.4f}", f"{max(p50):.4f}",
                         f"{farthest:.1%}", "yes" if farthest <= LATENCY_NOISE else "no"])
            print(f"{name} {threads}t: " + " ".join(f"{v:.4f}" for v in p50), flush=True)
    print()
    print_table(["network", "px", "threads", "sessions", "median p50 ms", "min", "max", "farthest from median",
                 f"within LATENCY_NOISE ({LATENCY_NOISE:.0%})"], rows)


if __name__ == "__main__":
    main()
