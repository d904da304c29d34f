"""Does a short run of every zoo model evaluate near its training accuracy? (precise BN on vs off)

The bug it guards against: torchvision's MobileNetV3 and EfficientNet use BatchNorm momentum 0.01, so after a
few hundred steps their running statistics are still far from the weights' and validation sits at chance
while training accuracy is high. cnnlab recomputes the statistics before each evaluation
(`trainer.precise_bn=auto`, docs/training.md). For each model this script runs the same short `cnnlab
pretrain` twice, with precise BN off and on (same seed, same data order), and prints final train accuracy,
validation accuracy and the gap. Real data: scikit-learn's digits (1,437 train / 360 val) at 32 px.

    python benchmarks/precise_bn_zoo.py [--models lenet5 resnet18 ...] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import cnnlab, pin_threads, print_machine

ZOO = ["lenet5", "alexnet", "vgg11", "vgg16", "googlenet", "resnet18", "resnet34", "resnet50", "mobilenet_v2",
       "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]
RECIPE = ["dataset=digits", "dataset.image_size=32", "trainer.batch_size=32", "optim=adamw", "optim.lr=0.003"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=ZOO)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    threads = pin_threads(args.threads)
    print_machine(threads)
    print(f"recipe: {' '.join(RECIPE)} trainer.epochs={args.epochs}; chance = 10.00 %")
    print(f"{'model':20s} {'precise BN':>10s} {'train top-1':>12s} {'val top-1':>10s} {'gap (pts)':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            for precise in ("false", "true"):
                record = cnnlab(Path(tmp) / "outputs", threads, "pretrain", f"model={model}", *RECIPE,
                                f"trainer.epochs={args.epochs}", f"trainer.precise_bn={precise}")
                final = record["metrics"]["history"][-1]
                train, val = 100 * final["train_acc"], 100 * final["val_acc"]
                print(f"{model:20s} {precise:>10s} {train:11.2f}% {val:9.2f}% {val - train:+10.2f}", flush=True)


if __name__ == "__main__":
    main()
