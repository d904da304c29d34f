"""Benchmark: a linear probe's epochs on cached features, read a batch at a time (TensorBatches, the product's path
since 2026-12-04) vs item by item (the path before: a read per item and a stack), paired and interleaved.

What is timed is the probe's training loop as cnnlab runs it: `make_loader` over the cached features (shuffled,
seeded), each batch moved to the device, a linear head's forward, cross-entropy, backward and an SGD step. The
item-by-item path is forced by wrapping the same TensorDataset in a Subset (which make_loader reads per item); both
give the same batches (tests/data/test_loaders.py). Rounds alternate the two paths; the ratio is of the medians.

    python benchmarks/probe_loader.py [--images 54000] [--dim 512] [--epochs 2] [--rounds 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from _common import median, pin_threads, print_machine, usable_cores
from cnnlab.data.loaders import make_loader


def epochs_seconds(data: Dataset, head: torch.nn.Module, device: torch.device, epochs: int, batch: int) -> float:
    loader = make_loader(data, batch, shuffle=True, seed=0)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.05, momentum=0.9)
    started = time.perf_counter()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for features, labels in loader:
            features, labels = features.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = torch.nn.functional.cross_entropy(head(features), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=54_000, help="Fashion-MNIST's training split")
    parser.add_argument("--dim", type=int, default=512, help="feature width (ResNet-18: 512)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64, help="trainer.batch_size's default")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed round (a probe runs 20)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print_machine(pin_threads(args.threads))
    device = torch.device(args.device)
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    generator = torch.Generator().manual_seed(0)
    cached = TensorDataset(torch.randn(args.images, args.dim, generator=generator),
                           torch.randint(0, args.classes, (args.images,), generator=generator))
    paths = {"per item": Subset(cached, range(args.images)), "batched": cached}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(args.rounds + 1):  # round 0 warms both up and is not counted
        for name, data in paths.items():
            head = torch.nn.Linear(args.dim, args.classes).to(device)
            seconds = epochs_seconds(data, head, device, args.epochs, args.batch)
            if round_:
                times[name].append(seconds)
    print(f"{args.images:,} cached {args.dim}-dim features, batch {args.batch}, {args.epochs} epochs a round, "
          f"{args.rounds} rounds, {device}:")
    for name, values in times.items():
        per_epoch = median(values) / args.epochs
        print(f"  {name:<9} {per_epoch:7.3f} s an epoch (median; rounds {', '.join(f'{v:.2f}' for v in values)} s)")
    ratio = median(times["per item"]) / median(times["batched"])
    print(f"batched reads: {ratio:.1f}x faster per epoch than per-item reads (same batches)")


if __name__ == "__main__":
    main()
