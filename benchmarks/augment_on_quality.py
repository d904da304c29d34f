"""Benchmark: does drawing the augmentations on whole batches (`trainer.augment_on=device`, kornia) train as well as
drawing them per image in the DataLoader workers (torchvision)? Same runs otherwise, paired by seed.

For each seed, `cnnlab pretrain` runs once per place (alternating) on the same Fashion-MNIST subset; the score is
the kNN monitor's last accuracy on val for a self-supervised method, the val top-1 for supervised. Prints both
places' mean ± std, the paired differences with a 95 % t interval (cnnlab.report.stats), and the images/s.

    python benchmarks/augment_on_quality.py [--method simclr|simsiam|supervised] [--model lenet5] [--seeds 0 1 2]
        [--train-images 10000] [--epochs 5] [--batch-size 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import cnnlab, dump, print_machine, usable_cores
from cnnlab.report.stats import paired_interval

PLACES = ("workers", "device")
FASHION_TRAIN = 54_000


def score(run: dict, method: str) -> float:
    metrics = run["metrics"]
    return 100 * float(metrics["val_acc"] if method == "supervised" else metrics["knn_acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="simclr", choices=("simclr", "simsiam", "supervised"))
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--json")
    args = parser.parse_args()
    print_machine(args.threads)
    fraction = min(1.0, args.train_images / FASHION_TRAIN)
    knn = ["method.knn.bank_size=5000"] if args.method != "supervised" else []
    common = ["pretrain", f"method={args.method}", f"model={args.model}", "dataset=fashion_mnist",
              "dataset.image_size=32", f"dataset.label_fraction={fraction:.6g}", *knn, "device=cpu",
              f"trainer.epochs={args.epochs}", f"trainer.batch_size={args.batch_size}",
              f"trainer.workers={args.workers}"]
    print(f"{args.method}, {args.model} at 32 px, {round(fraction * FASHION_TRAIN)} Fashion-MNIST images × "
          f"{args.epochs} epochs, batch {args.batch_size}; score: "
          f"{'val top-1' if args.method == 'supervised' else 'kNN monitor on val'}")
    scores: dict[str, list[float]] = {place: [] for place in PLACES}
    rates: dict[str, list[float]] = {place: [] for place in PLACES}
    with tempfile.TemporaryDirectory() as tmp:
        for i, seed in enumerate(args.seeds):
            for place in PLACES if i % 2 == 0 else reversed(PLACES):
                run = cnnlab(Path(tmp) / "outputs", args.threads, *common, f"seed={seed}",
                             f"trainer.augment_on={place}")
                scores[place].append(score(run, args.method))
                rates[place].append(float(run["metrics"]["train_images_per_s"]))
                print(f"  seed {seed} {place:<8} {scores[place][-1]:6.2f} %  {rates[place][-1]:8.1f} images/s",
                      flush=True)
    differences = [d - w for w, d in zip(scores["workers"], scores["device"])]
    interval = paired_interval(differences)
    for place in PLACES:
        spread = statistics.stdev(scores[place]) if len(scores[place]) > 1 else 0.0
        print(f"{place:<8} {statistics.mean(scores[place]):6.2f} ± {spread:.2f} %, "
              f"{statistics.median(rates[place]):.1f} images/s (median)")
    shown = f"[{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else "n/a (one seed)"
    print(f"device − workers: {statistics.mean(differences):+.2f} points, 95 % t interval {shown}")
    dump(args.json, {"args": vars(args), "scores": scores, "images_per_s": rates, "differences": differences,
                     "interval": interval})


if __name__ == "__main__":
    main()
