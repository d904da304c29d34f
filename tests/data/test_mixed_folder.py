"""A folder of the same pictures in mixed storage formats loads as the same tensors as plain 8-bit RGB PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cnnlab.data.folder import build_imagefolder
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import eval_transform
from image_kinds import GRAY_ONLY, KINDS, LOSSLESS, write_plain

SPEC = InputSpec(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _pictures(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pictures = []
    for index in range(count):
        kind = list(KINDS)[index % len(KINDS)]
        if kind in GRAY_ONLY:
            gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
            pictures.append(np.repeat(gray[..., None], 3, axis=2))
        else:
            pictures.append(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return pictures


def _tensors(root: Path) -> dict[str, torch.Tensor]:
    raw = build_imagefolder({"root": str(root), "val_fraction": 0.5, "seed": 0}, SPEC)
    transform = eval_transform(SPEC, stored_size=16)
    folder = raw.train.dataset  # a Subset of the one-level folder
    return {Path(path).stem: transform(folder.loader(path)) for path, _ in folder.samples}


def test_mixed_formats_load_as_their_plain_rgb_copies(tmp_path: Path) -> None:
    pictures = {cls: _pictures(seed, 2 * len(KINDS)) for seed, cls in enumerate(("a", "b"))}
    for root, mixed in ((tmp_path / "plain", False), (tmp_path / "mixed", True)):
        for cls, images in pictures.items():
            (root / cls).mkdir(parents=True)
            for index, rgb in enumerate(images):
                kind = list(KINDS)[index % len(KINDS)]
                stem = root / cls / f"{cls}{index:02d}_{kind}"
                (KINDS[kind] if mixed else write_plain)(rgb, stem)
    plain, mixed = _tensors(tmp_path / "plain"), _tensors(tmp_path / "mixed")
    assert plain.keys() == mixed.keys() and len(plain) == 4 * len(KINDS)
    for name, expected in plain.items():
        kind = name.split("_", 1)[1]
        if kind in LOSSLESS:
            assert torch.equal(mixed[name], expected), name
        else:  # JPEG at quality 100: a few levels off, but upright (a sideways picture is far off)
            assert (mixed[name] - expected).abs().mean() < 4 / 255 / 0.5, name
