"""Benchmark: the engine's training throughput vs a bare PyTorch loop (goal: >= 0.95x).

Same model, data, batch size, threads, AMP and memory format for both; the bare loop is the
torchvision-reference style (forward, loss, zero_grad, backward, step). Each measurement is one
epoch after a warm-up epoch; engine and bare epochs alternate so drift hits both; medians compared.

    python benchmarks/engine_throughput.py [--model resnet18] [--size 64] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _common import median, pin_threads, print_machine
from cnnlab.data import build_datasets, make_loader, resolve_input_spec
from cnnlab.engine.objectives import ClassificationObjective
from cnnlab.engine.runtime import Runtime, resolve_amp
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import Trainer
from cnnlab.models import create_model


def bare_epoch(model, loader, optimizer, runtime: Runtime) -> float:
    """images/s of a plain loop with the same device, autocast and memory format."""
    model.train()
    images, start = 0, time.perf_counter()
    for x, y in loader:
        x, y = runtime.to_device(x), runtime.to_device(y)
        with runtime.autocast():
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += y.shape[0]
    return images / (time.perf_counter() - start)


def engine_epoch(trainer: Trainer, model, loader, optimizer, epoch: int) -> float:
    metrics = trainer.train_one_epoch(model, ClassificationObjective(10), loader, optimizer, None, epoch=epoch)
    return metrics["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--amp", default="auto", help="auto | bf16 | none")
    parser.add_argument("--quick", action="store_true", help="lenet5 at 16 px, 256 images, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.model, args.size, args.images, args.rounds = "lenet5", 16, 256, 1
    threads = pin_threads(args.threads)
    print_machine(threads)
    cfg = {"name": "synthetic", "image_size": args.size, "num_classes": 10, "train_size": args.images,
           "val_size": 64, "seed": 0, "mean": [0.5] * 3, "std": [0.25] * 3,
           "augment": {"hflip": True, "random_crop": True, "crop_scale": [0.6, 1.0], "randaugment": False}}
    data = build_datasets(cfg, resolve_input_spec(cfg, None))
    device = torch.device("cpu")
    runtime = Runtime(device=device, amp_dtype=resolve_amp(args.amp, device), channels_last=True)
    print(f"model {args.model} at {args.size} px, batch {args.batch}, {args.images} images/epoch, "
          f"amp {runtime.amp_dtype}, channels_last {runtime.channels_last}")
    torch.manual_seed(0)
    model = runtime.prepare_model(create_model(args.model, num_classes=10, image_size=args.size))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = make_loader(data.train, args.batch, shuffle=True, seed=0)
    trainer = Trainer(runtime, Recipe(epochs=1, batch_size=args.batch, precise_bn=False), show_progress=False)
    bare_epoch(model, loader, optimizer, runtime)  # warm-up (oneDNN primitive caches, allocator)
    engine, bare = [], []
    for round_ in range(args.rounds):
        engine.append(engine_epoch(trainer, model, loader, optimizer, round_))
        bare.append(bare_epoch(model, loader, optimizer, runtime))
        print(f"round {round_ + 1}: engine {engine[-1]:.1f} img/s, bare loop {bare[-1]:.1f} img/s")
    ratio = median(engine) / median(bare)
    print(f"\nmedian: engine {median(engine):.1f} img/s | bare loop {median(bare):.1f} img/s | "
          f"ratio engine/bare = {ratio:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
