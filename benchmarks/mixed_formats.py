"""Acceptance check: a folder of mixed storage formats trains like the same pictures as plain 8-bit RGB PNGs.

Real pictures: Fashion-MNIST from Debian's `dataset-fashion-mnist` package (or --idx-dir). The same
train/val images are written twice under train/<class>/ and val/<class>/: once as 8-bit RGB PNGs, once
round-robin in the formats of tests/image_kinds.py (16-bit grayscale PNG, palette GIF, RGBA and LA PNG, CMYK
and float TIFF, lossless WebP, BMP, and a sideways JPEG with an EXIF orientation tag, as phones write them).
Then `cnnlab pretrain dataset=imagefolder` trains the same model with the same seed on each folder, and the
script prints both validation accuracies and the decode summary each run recorded.

With the old loader (torchvision's pil_loader) the 16-bit and float files load white and the phone photos
sideways; with cnnlab's decoder the two folders give the same tensors (JPEG: within a few grey levels).

    python benchmarks/mixed_formats.py [--threads 2] [--per-class 200] [--epochs 3] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

import numpy as np

from _common import cnnlab, pin_threads, print_machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_kinds import KINDS, write_plain  # noqa: E402  (shared with tests/data/test_mixed_folder.py)

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's MNIST format, gzip) as a numpy array: images (N, 28, 28) or labels (N,)."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_folders(root: Path, images: np.ndarray, labels: np.ndarray, per_class: int, val_per_class: int) -> None:
    wanted = {"train": per_class, "val": val_per_class}
    counts = {(split, label): 0 for split in wanted for label in range(len(CLASSES))}
    for index, (image, label) in enumerate(zip(images, labels)):
        split = next((s for s in wanted if counts[(s, int(label))] < wanted[s]), None)
        if split is None:
            continue
        counts[(split, int(label))] += 1
        rgb = np.repeat(image[..., None], 3, axis=2)
        kind = list(KINDS)[index % len(KINDS)]
        for variant, writer in (("plain", write_plain), ("mixed", KINDS[kind])):
            folder = root / variant / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            writer(rgb, folder / f"{index:05d}_{kind}")
        if sum(counts.values()) == len(CLASSES) * (per_class + val_per_class):
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idx-dir", type=Path, default=DEBIAN, help="folder with train-images-idx3-ubyte.gz etc.")
    parser.add_argument("--per-class", type=int, default=200, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.idx_dir / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"no Fashion-MNIST in {args.idx_dir}: `apt-get install dataset-fashion-mnist` or --idx-dir DIR")
    threads = pin_threads(args.threads)
    print_machine(threads)
    images = read_idx(args.idx_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(args.idx_dir / "train-labels-idx1-ubyte.gz")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folders(root, images, labels, args.per_class, args.val_per_class)
        print(f"{args.per_class} train / {args.val_per_class} val images per class; formats: {', '.join(KINDS)}")
        for seed in args.seeds:
            results = {}
            for variant in ("plain", "mixed"):
                record = cnnlab(root / "outputs", threads, "pretrain", f"model={args.model}", "dataset=imagefolder",
                                f"dataset.root={root / variant}", "dataset.image_size=32",
                                f"trainer.epochs={args.epochs}", f"seed={seed}")
                results[variant] = record["metrics"]["val_acc"]
                print(f"seed {seed} {variant:5s}: val top-1 {100 * results[variant]:.2f} %  "
                      f"decode {record['dataset'].get('decode')}")
            print(f"seed {seed} difference (mixed - plain): {100 * (results['mixed'] - results['plain']):+.2f} pts "
                  f"on {10 * args.val_per_class} val images (one image = {100 / (10 * args.val_per_class):.2f} pts)")


if __name__ == "__main__":
    main()
