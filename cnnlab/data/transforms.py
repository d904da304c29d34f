"""Train and eval transforms (torchvision.transforms.v2) for uint8 tensors and PIL images alike.

Every pipeline starts with ToImage (PIL or uint8 tensor -> uint8 image tensor), so in-memory and file datasets
go through the same ops; then the channels are made those of the spec (grey replicated to RGB for ImageNet-shaped
models, RGB to luminance for a 1-channel LeNet-5), and it ends with a plain float32 tensor normalised by the spec.
The eval pipeline is the spec's own preprocessing (cnnlab.data.spec), step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from cnnlab.data.spec import EVAL_CROP_RATIO, SHORTER_SIDE, InputSpec
from cnnlab.errors import CnnlabError

__all__ = ["EVAL_CROP_RATIO", "Augment", "eval_transform", "train_transform"]


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


MIN_CROP_PIXELS = 16  # the largest random crop must hold 4 x 4 pixels


def check_crop_scale(scale: tuple[float, float], side: int, key: str, usual: str, off: str | None = None) -> None:
    """CnnlabError when RandomResizedCrop's largest crop of a picture of `side` px (as read, before the resize: the
    crop is cut from it), scale[1] × side², is under MIN_CROP_PIXELS pixels (probe 163: [0.002,0.002] of 16-px
    pictures drew views of one pixel, a flat colour each; at [1e-6,1e-6] torchvision, finding no crop of a pixel in
    10 tries, fell back to the whole image — no crop at all, recorded as 1e-06). `key`: the setting, `usual`: the
    range its fix offers, with the least maximum that passes (rounded up: probe 167, "0.062" for 0.0625 failed).
    Pictures under 4 × 4 px pass at no scale (probe 169: the fix offered "a maximum of at least 1.8"): then the fix is
    `off`, the setting that draws no crop, or larger pictures."""
    largest = scale[1] * side * side
    if largest < MIN_CROP_PIXELS:
        least = MIN_CROP_PIXELS / side ** 2
        step = 10.0 ** (math.floor(math.log10(least)) - 1)  # two significant digits, rounded up
        larger = f"pictures of at least {math.isqrt(MIN_CROP_PIXELS)} × {math.isqrt(MIN_CROP_PIXELS)} pixels"
        fix = (f"use {key}={usual} (a maximum of at least {math.ceil(least / step) * step:.2g} on {side}-px "
               f"pictures)" if least <= 1 else f"{off}, or use {larger}" if off else f"use {larger}")
        raise CnnlabError(f"{key}=[{scale[0]:g}, {scale[1]:g}] on pictures of {side} px gives crops of at most "
                          f"{largest:.2g} pixels: views of a flat colour, or (under one pixel) the whole image, as "
                          "RandomResizedCrop falls back to it", fix=fix)


_LUMA_16BIT = (19595, 38470, 7471)  # 0.299, 0.587, 0.114 × 2**16, summing to 2**16


class ToChannels:
    """An image tensor [..., C, H, W] with `channels` channels: unchanged when it has them already, otherwise
    grey → RGB (copied) or RGB → luminance L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2). On uint8 pixels L is
    rounded as PIL's `convert("L")` rounds it, so a grey picture saved as RGB keeps its values (torchvision's
    rgb_to_grayscale truncates: every grey v became v - 1, and predict fed a one-channel model other pixels than
    evaluate's stored grey images)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, image: Any) -> Any:
        if image.shape[-3] == self.channels:
            return image
        if self.channels != 1 or image.dtype != torch.uint8:
            return F.rgb_to_grayscale(image, num_output_channels=self.channels)
        weights = torch.tensor(_LUMA_16BIT, dtype=torch.int32).view(3, 1, 1)  # PIL's fixed-point ITU-R 601-2
        luma = ((image.to(torch.int32) * weights).sum(-3, keepdim=True) + (1 << 15)) >> 16
        luma = luma.to(torch.uint8)
        return tv_tensors.wrap(luma, like=image) if isinstance(image, tv_tensors.TVTensor) else luma

    def __repr__(self) -> str:
        return f"ToChannels({self.channels})"


def _interpolation(spec: InputSpec) -> v2.InterpolationMode:
    return v2.InterpolationMode[spec.interpolation.upper()]


# The most pixels a shorter-side resize may make (64 MB of RGB bytes); a 1 × 6000 px strip resized to 256 px would be
# 256 × 1,536,000 (probe 97: 2 GB for one picture in predict; a 1 × 30000 web spacer, 10 GB)
MAX_RESIZED_PIXELS = 1 << 24


class CapStrip:
    """Before a shorter-side resize to `side` px: an image so elongated that the resize would exceed
    MAX_RESIZED_PIXELS keeps the centre of its long axis, as much as the resize can hold — the centre crop that
    follows lies far inside it. Every picture of a sane aspect ratio (up to 1 : 256 at 256 px) is left as it is."""

    def __init__(self, side: int) -> None:
        self.side = side

    def __call__(self, image: Any) -> Any:
        height, width = image.shape[-2:]
        short, long = min(height, width), max(height, width)
        factor = self.side / max(short, 1)
        if long * factor * self.side <= MAX_RESIZED_PIXELS:
            return image
        keep = max(1, int(MAX_RESIZED_PIXELS / (self.side * factor)))
        keep -= (long - keep) % 2  # as much cut off each end: the centre stays where it was (probe 100: half a pixel)
        return F.center_crop(image, [height, keep] if width == long else [keep, width])

    def __repr__(self) -> str:
        return f"CapStrip(side={self.side})"


def _geometry(spec: InputSpec) -> list[Any]:
    """The spec's resize (+ centre crop): steps 2 and 3 of cnnlab.data.spec."""
    side = spec.resize_to or spec.size
    size = side if spec.resize == SHORTER_SIDE else (side, side)  # an int resizes the shorter side
    ops: list[Any] = [CapStrip(side)] if spec.resize == SHORTER_SIDE else []
    ops.append(v2.Resize(size, interpolation=_interpolation(spec), antialias=spec.antialias))
    if spec.crop is not None:
        ops.append(v2.CenterCrop(spec.crop))
    return ops


def _to_normalised_tensor(spec: InputSpec) -> list[Any]:
    channels = spec.channels  # ToDtype(scale=True) is x / 255: the only `scale` a spec takes
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean[:channels]), list(spec.std[:channels])),
            v2.ToPureTensor()]


def _resolved(spec: InputSpec, stored_size: int | None) -> InputSpec:
    return spec if spec.recorded else spec.for_stored_size(stored_size)


def eval_transform(spec: InputSpec, stored_size: int | None = None) -> v2.Compose:
    """Deterministic: exactly the spec's preprocessing (channels, resize, crop, scale, normalise) → float32
    [channels, size, size]. A spec that records no geometry gets cnnlab's eval recipe for images stored at
    `stored_size` px (None: photos — shorter side to size / 0.875, centre crop)."""
    spec = _resolved(spec, stored_size)
    return v2.Compose([v2.ToImage(), ToChannels(spec.channels), *_geometry(spec), *_to_normalised_tensor(spec)])


def train_transform(spec: InputSpec, stored_size: int | None, augment: Augment) -> v2.Compose:
    """The eval pipeline with its geometry swapped for the augmentations that `augment` turns on."""
    spec = _resolved(spec, stored_size)
    if augment.random_crop:
        geometry: list[Any] = [v2.RandomResizedCrop(spec.size, scale=augment.crop_scale,
                                                    interpolation=_interpolation(spec), antialias=spec.antialias)]
    else:
        geometry = _geometry(spec)
    if augment.hflip:
        geometry.append(v2.RandomHorizontalFlip())
    if augment.randaugment:
        geometry.append(v2.RandAugment(magnitude=augment.randaugment_magnitude))
    return v2.Compose([v2.ToImage(), ToChannels(spec.channels), *geometry, *_to_normalised_tensor(spec)])
