"""Train and eval transforms (torchvision.transforms.v2) for uint8 tensors and RGB PIL images alike.

Every pipeline starts with ToImage (PIL or uint8 tensor -> uint8 image tensor), so in-memory and
file datasets go through the same ops, and ends with a plain float32 tensor normalised by the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torchvision.transforms import v2

from cnnlab.data.spec import InputSpec

# torchvision's reference eval recipe: resize to size/0.875, then centre-crop `size` (224 <- 256).
EVAL_CROP_RATIO = 0.875


@dataclass(frozen=True)
class Augment:
    """The `dataset.augment` node; a missing node or key means that augmentation is off."""

    hflip: bool = False
    random_crop: bool = False
    crop_scale: tuple[float, float] = (0.08, 1.0)
    randaugment: bool = False
    randaugment_magnitude: int = 9

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> "Augment":
        node = node or {}
        scale = node.get("crop_scale") or cls.crop_scale
        return cls(hflip=bool(node.get("hflip", False)), random_crop=bool(node.get("random_crop", False)),
                   crop_scale=(float(scale[0]), float(scale[1])), randaugment=bool(node.get("randaugment", False)),
                   randaugment_magnitude=int(node.get("randaugment_magnitude", cls.randaugment_magnitude)))

    @property
    def is_random(self) -> bool:
        return self.hflip or self.random_crop or self.randaugment


def _eval_geometry(size: int, stored_size: int | None) -> list[v2.Transform]:
    if stored_size is None:  # photos of any size and aspect
        return [v2.Resize(int(size / EVAL_CROP_RATIO)), v2.CenterCrop(size)]
    # square images stored at a fixed size (synthetic, digits, CIFAR): cropping would only lose content
    return [] if stored_size == size else [v2.Resize((size, size))]


def _to_normalised_tensor(spec: InputSpec) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std)), v2.ToPureTensor()]


def eval_transform(spec: InputSpec, stored_size: int | None) -> v2.Compose:
    """Deterministic: resize (+ centre crop for photos), scale to [0,1], normalise."""
    return v2.Compose([v2.ToImage(), *_eval_geometry(spec.size, stored_size), *_to_normalised_tensor(spec)])


def train_transform(spec: InputSpec, stored_size: int | None, augment: Augment) -> v2.Compose:
    """The eval pipeline with its geometry swapped for the augmentations that `augment` turns on."""
    if augment.random_crop:
        geometry: list[v2.Transform] = [v2.RandomResizedCrop(spec.size, scale=augment.crop_scale)]
    else:
        geometry = _eval_geometry(spec.size, stored_size)
    if augment.hflip:
        geometry.append(v2.RandomHorizontalFlip())
    if augment.randaugment:
        geometry.append(v2.RandAugment(magnitude=augment.randaugment_magnitude))
    return v2.Compose([v2.ToImage(), *geometry, *_to_normalised_tensor(spec)])
