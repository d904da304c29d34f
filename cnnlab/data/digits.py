"""scikit-learn's handwritten digits (1,797 real 8x8 scans, values 0..16), upscaled and kept in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch.utils.data import Subset, TensorDataset

from cnnlab.data.bundle import RawSplits
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import stratified_split

CLASSES = [str(d) for d in range(10)]


def load_digit_images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N,3,size,size] — grey ink replicated to RGB, labels int64 [N])."""
    from sklearn.datasets import load_digits  # ships with scikit-learn: no download

    digits = load_digits()
    grey = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    grey = F.interpolate(grey, size=(size, size), mode="bicubic", align_corners=False).clamp_(0.0, 1.0)
    images = (grey * 255.0).round_().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target).long()


def build_digits(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    """Upscaled to the spec's size once; a stratified split seeded by dataset.seed."""
    images, labels = load_digit_images(spec.size)
    train_idx, val_idx = stratified_split(labels.tolist(), cfg.get("val_fraction", 0.2), cfg.get("seed", 0),
                                          what="digits")
    everything = TensorDataset(images, labels)
    return RawSplits(train=Subset(everything, train_idx), val=Subset(everything, val_idx), test=None,
                     classes=list(CLASSES), stored_size=spec.size, in_memory=True)


def write_image_folder(root: str | Path, *, size: int = 32, val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Save the digits as PNG files in imagefolder layout (root/train/<digit>/*.png, root/val/<digit>/*.png):
    a real image folder to try `dataset=imagefolder` on, used by the acceptance tests and benchmarks."""
    from PIL import Image

    root = Path(root)
    images, labels = load_digit_images(size)
    train_idx, val_idx = stratified_split(labels.tolist(), val_fraction, seed, what="digits")
    for split, indices in (("train", train_idx), ("val", val_idx)):
        for index in indices:
            folder = root / split / CLASSES[int(labels[index])]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[index, 0].numpy(), mode="L").save(folder / f"{index:04d}.png")
    return root
