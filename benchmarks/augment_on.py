"""Benchmark: pretraining throughput with the augmentation in the DataLoader workers (per image, torchvision) vs on
the device (whole batches, kornia: `trainer.augment_on=device`, data/batch_augment.py), paired and interleaved.

Each round runs `cnnlab pretrain` once per place, alternating, for `--steps` steps of one epoch (trainer.max_steps_
per_epoch; precise BN off, a small kNN bank), and reads the engine's training images/s from run.json (the epoch's
own clock: process start, data set-up and the kNN monitor are outside it). The ratio is of the medians.

    python benchmarks/augment_on.py [--method simclr] [--steps 60] [--rounds 2] [--batch-size 512] [--workers 14] \
        [--device cuda] [--stem cifar] [--json out.json]           (--quick: tiny synthetic data on the CPU)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import cnnlab, dump, median, print_machine, usable_cores

PLACES = ("workers", "device")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simclr", choices=("simclr", "simsiam", "supervised"))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--stem", choices=("imagenet", "cifar"), default="cifar")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=max(1, usable_cores() - 2))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="synthetic 32-px images, batch 32, 4 steps, 1 round")
    args = parser.parse_args()
    print_machine(args.threads)
    if args.quick:
        data = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=256", "dataset.val_size=32"]
        args.steps, args.rounds, args.batch_size, args.workers = 4, 1, 32, 1
    else:
        data = ["dataset=fashion_mnist", "dataset.image_size=32"]
    model = [f"model={args.model}", *([f"model.stem={args.stem}"] if args.stem != "imagenet" else [])]
    knn = ["method.knn.bank_size=1000"] if args.method != "supervised" else []
    common = ["pretrain", f"method={args.method}", *model, *data, *knn, f"device={args.device}", "trainer.epochs=1",
              f"trainer.max_steps_per_epoch={args.steps}", f"trainer.batch_size={args.batch_size}",
              f"trainer.workers={args.workers}", "trainer.precise_bn=false"]
    print(f"{args.method}, {args.model} ({args.stem} stem) at 32 px, batch {args.batch_size}, {args.steps} steps, "
          f"{args.workers} workers, device={args.device}; rounds alternate {' / '.join(PLACES)}")
    rates: dict[str, list[float]] = {place: [] for place in PLACES}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for place in PLACES if round_ % 2 == 0 else reversed(PLACES):
                run = cnnlab(Path(tmp) / "outputs", args.threads, *common, f"trainer.augment_on={place}")
                rate = float(run["metrics"]["train_images_per_s"])
                where = run["environment"]["augment_on"]["where"]
                rates[place].append(rate)
                print(f"  round {round_ + 1} {place:<8} {rate:9.1f} images/s (ran on: {where})", flush=True)
    ratio = median(rates["device"]) / median(rates["workers"])
    print(f"median images/s: workers {median(rates['workers']):.1f}, device {median(rates['device']):.1f}: "
          f"device / workers = {ratio:.2f}x")
    dump(args.json, {"args": vars(args), "images_per_s": rates, "ratio_device_over_workers": ratio})


if __name__ == "__main__":
    main()
