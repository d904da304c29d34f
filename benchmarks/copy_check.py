"""What looking for copies of training pictures in val costs, next to the folder scan that reads the pictures anyway.

An image folder's val (carved or its own val/) and `cnnlab evaluate split=test`'s test/ are checked for copies of
training pictures: the same bytes, or the same pixels in other bytes (`cnnlab.data.content.copies_of`). The scan
(`FolderScan`) decodes every picture once (JPEG at 1/8 scale) and leaves a pixel digest behind; copies_of reads
picture headers, compares digests among pictures of the same size, and decodes a JPEG in full only to confirm a
candidate or to compare it with a lossless picture of its size. Val (and test/) are then checked for pictures they
hold twice (`content.copies_within`: only files sharing a byte size or a picture size are compared), so that each
picture counts once. Each round builds the scan and both checks in a fresh state (digest caches cleared), so the
times are paired; the ratios are check / scan.

    python benchmarks/copy_check.py [--pictures 2000] [--rounds 5]

Three folders are written to a temporary directory: JPEG photos of mixed sizes (the common case) with a JPEG copy
whose metadata differs, the same with a copy converted to PNG (a lossless picture of a JPEG's size: those JPEGs are
decoded in full), and 28 px PNGs (Fashion-MNIST exported to a folder). Each val holds one planted copy in other bytes,
which must be found, and one val picture saved again in val (other bytes), which must be found as a copy within val.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, print_machine  # noqa: E402

from cnnlab.data import content  # noqa: E402
from cnnlab.data.folder import FolderScan  # noqa: E402

_PHOTO_SIZES = ((320, 240), (240, 320), (400, 300), (256, 256))


def _picture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Smooth noise (a blurred random field): compresses like a photo, unlike white noise."""
    small = rng.integers(0, 256, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BICUBIC)


def write_folder(root: Path, pictures: int, *, jpeg: bool, plant: str, seed: int = 0) -> Path:
    """root/train/{a,b}/ and root/val/{a,b}/ (val a fifth of the pictures); val/a/planted.* is a training picture in
    other bytes: `plant` "png" (a JPEG converted to PNG, a PNG saved as BMP) or "comment" (a JPEG with a comment
    segment added: the same compressed picture). Returns the planted copy's path."""
    rng = np.random.default_rng(seed)
    for index in range(pictures):
        split = "val" if index % 5 == 0 else "train"
        folder = root / split / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        if jpeg:
            _picture(rng, _PHOTO_SIZES[index % len(_PHOTO_SIZES)]).save(folder / f"{index}.jpg", quality=90)
        else:
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{index}.png")
    source = sorted((root / "train" / "a").iterdir())[0]
    twice = sorted((root / "val" / "b").iterdir())[0]  # a val picture again in val: other bytes, the same pixels
    if jpeg:
        data = twice.read_bytes()
        twice.with_name("again.jpg").write_bytes(data[:2] + b"\xff\xfe\x00\x06copy" + data[2:])
    else:
        with Image.open(twice) as image:
            image.save(twice.with_name("again.bmp"))
    if plant == "comment":
        planted = root / "val" / "a" / "planted.jpg"
        data = source.read_bytes()
        planted.write_bytes(data[:2] + b"\xff\xfe\x00\x06copy" + data[2:])
        return planted
    planted = root / "val" / "a" / ("planted.png" if jpeg else "planted.bmp")
    with Image.open(source) as image:
        image.save(planted)
    return planted


def one_round(root: Path) -> tuple[float, float, dict[str, str], float, dict[str, str]]:
    """(scan seconds, check seconds, copies of training pictures found, within-val check seconds, copies within val
    found) from a fresh state."""
    content._PIXELS.clear()
    content._EXACT_JPEG_PIXELS.clear()
    start = time.perf_counter()
    train, val = FolderScan().samples([(root / split, ["a", "b"]) for split in ("train", "val")])
    scanned = time.perf_counter()
    found = content.copies_of([path for path, _ in val], [path for path, _ in train])
    checked = time.perf_counter()
    within = content.copies_within([path for path, _ in val])
    return scanned - start, checked - scanned, found, time.perf_counter() - checked, within


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_machine(None)
    with tempfile.TemporaryDirectory() as tmp:
        cases = (("JPEG photos (4 sizes up to 400x300), a JPEG copy with a comment added", True, "comment"),
                 ("JPEG photos (4 sizes up to 400x300), a JPEG copy converted to PNG", True, "png"),
                 ("PNG 28x28 grey, a copy saved as BMP", False, "png"))
        for index, (name, jpeg, plant) in enumerate(cases):
            root = Path(tmp) / str(index)
            planted = write_folder(root, args.pictures, jpeg=jpeg, plant=plant)
            times = [one_round(root) for _ in range(args.rounds)]
            found = times[-1][2]
            assert str(planted) in found, f"the planted copy {planted} was not found"
            assert any("again" in path for path in times[-1][4]), "the val picture saved twice was not found"
            scan, check, within = (median(t[i] for t in times) for i in (0, 1, 3))
            print(f"{name}: {args.pictures} pictures ({len(found)} copy found) | scan {scan:.2f} s | check "
                  f"{check:.2f} s | check / scan {check / scan:.3f} (medians of {args.rounds} rounds; per round: "
                  + ", ".join(f"{t[1] / t[0]:.3f}" for t in times) + f") | within val {within:.3f} s | within / scan "
                  f"{within / scan:.3f} (per round: " + ", ".join(f"{t[3] / t[0]:.3f}" for t in times) + ")")


if __name__ == "__main__":
    main()
