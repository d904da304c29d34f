"""Benchmark: where a SimCLR training step's time goes on a GPU — the parts timed apart, in one process.

  loader (workers)  the DataLoader of the worker path (two torchvision views per image) alone: batches/s
  loader (device)   the DataLoader of the device path (stored uint8 pixels) alone
  augment (device)  BatchAugment on a GPU-resident batch, both views in one call
  whole step        the device path end to end: read, move, augment, step (cudnn.benchmark on)
  step              forward + NT-Xent + backward + SGD of ResNet-18 (CIFAR stem) + projection head on GPU-resident
                    views, bf16 autocast, channels-last, with cudnn.benchmark off (cnnlab's setting) and on
Each part: `--warmup` batches, then `--batches` timed (CUDA synchronised).

    python benchmarks/ssl_step_parts.py [--batch 512] [--workers 14] [--batches 30] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra import compose, initialize_config_module

from _common import print_machine
from cnnlab.data.batch_augment import BatchAugment, StoredPixels
from cnnlab.data.loaders import make_loader
from cnnlab.data.registry import build_datasets
from cnnlab.data.views import TwoViewDataset, ViewSettings, pretraining_images, view_transform
from cnnlab.engine.selfsup import SelfSupervisedSettings, nt_xent
from cnnlab.models import create_model
from cnnlab.pipelines.pretrain import siamese_network
from cnnlab.steps.zoo_model import scratch_spec


def timed(label: str, batches: int, warmup: int, step, device: torch.device, images: int) -> None:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(batches):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / batches
    print(f"  {label:<34} {1000 * seconds:8.2f} ms a batch, {images / seconds:10.0f} images/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="fashion_mnist")
    args = parser.parse_args()
    print_machine(torch.get_num_threads())
    device = torch.device(args.device)
    overrides = ["command=pretrain", "method=simclr", "model=resnet18", "model.stem=cifar", f"dataset={args.dataset}",
                 "dataset.image_size=32"]
    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    spec, arch = scratch_spec(cfg, "resnet18")
    data = build_datasets(cfg.dataset, spec, train_augment=False, allow_unlabeled=True)
    views = ViewSettings.from_config(cfg.method.views)
    raw = pretraining_images(data, unlabeled=False)
    print(f"{args.dataset}: {len(raw)} images at {data.spec.size} px, batch {args.batch}, {args.workers} workers")

    def loader_part(dataset) -> callable:
        loader = make_loader(dataset, args.batch, shuffle=True, seed=0, workers=args.workers, drop_last=True)
        batches = iter(loader)
        return lambda: next(batches)

    timed("loader (workers, two views)", args.batches, args.warmup,
          loader_part(TwoViewDataset(raw, view_transform(data.spec, views))), torch.device("cpu"), args.batch)
    timed("loader (device path, uint8)", args.batches, args.warmup,
          loader_part(StoredPixels(raw, data.spec.channels)), torch.device("cpu"), args.batch)

    augment = BatchAugment(data.spec, views).to(device)
    stored = torch.stack([StoredPixels(raw, data.spec.channels)[i][0] for i in range(args.batch)]).to(device)
    timed("augment (device, both views)", args.batches, args.warmup,
          lambda: augment(stored.repeat(2, 1, 1, 1)), device, args.batch)

    network = siamese_network(create_model("resnet18", num_classes=10, image_size=32, **arch), "resnet18",
                              SelfSupervisedSettings(name="simclr")).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    both = augment(stored.repeat(2, 1, 1, 1)).contiguous(memory_format=torch.channels_last)

    def step(views: torch.Tensor | None = None) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            z, _ = network(both if views is None else views)
            loss, _, _ = nt_xent(z[:args.batch], z[args.batch:], 0.5)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for bench in (False, True):
        torch.backends.cudnn.benchmark = bench
        timed(f"step (cudnn.benchmark={bench})", args.batches, args.warmup, step, device, args.batch)

    pixels = loader_part(StoredPixels(raw, data.spec.channels))

    def whole() -> None:  # what the trainer does with the device path: read, move, augment, step
        images = pixels()[0].to(device, non_blocking=True)
        step(augment(images.repeat(2, 1, 1, 1)).contiguous(memory_format=torch.channels_last))

    timed("whole step (device path)", args.batches, args.warmup, whole, device, args.batch)


if __name__ == "__main__":
    main()
