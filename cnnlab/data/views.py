"""Two augmented views of every image, for self-supervised pretraining (SimCLR, SimSiam).

Each view is an independent draw of SimCLR's augmentation (Chen et al. 2020, arXiv:2002.05709, appendix A):
random resized crop (+ horizontal flip), colour distortion — colour jitter of strength s (brightness, contrast,
saturation 0.8 s, hue 0.2 s) applied with probability 0.8, then grayscale with probability `grayscale_p` — and
Gaussian blur (kernel 10 % of the side, sigma in [0.1, 2], probability 0.5). The CIFAR recipes leave the blur out
at 32 px (SimCLR appendix B.9); `blur=auto` switches it on from BLUR_MIN_SIZE px.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch.utils.data import ConcatDataset, Dataset
from torchvision.transforms import v2

from cnnlab.data.bundle import DataBundle, RelabeledDataset, TransformedDataset
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import ToChannels, _interpolation, _to_normalised_tensor, check_crop_scale
from cnnlab.errors import CnnlabError

BLUR_MIN_SIZE = 64   # blur=auto: on from this side (STL-10's 96 px, ImageNet), off for 32-px CIFAR-like images
MAX_JITTER = 2.5     # the hue jitter 0.2 s must stay <= 0.5


def _auto_flag(value: Any, key: str) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("auto", "none", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    raise CnnlabError(f"{key}={value} is not a choice", fix=f"use {key}=auto, true or false")


@dataclass(frozen=True)
class ViewSettings:
    """The `method.views` node: how each of the two views is drawn.

    crop_scale: (min, max) area fraction of RandomResizedCrop, 0 < min <= max <= 1; hflip: random horizontal flip;
    color_jitter: SimCLR's colour-distortion strength s (0 = off); grayscale_p: probability of a grayscale view;
    blur: None = auto (on from BLUR_MIN_SIZE px), True/False."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip: bool = True
    color_jitter: float = 0.5
    grayscale_p: float = 0.2
    blur: bool | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> "ViewSettings":
        """The settings of a `method.views` node (a missing key keeps its default). Raises CnnlabError for a crop
        scale that gives empty or impossible crops, a jitter strength outside [0, 2.5] or a probability outside
        [0, 1]."""
        node = node or {}
        scale = node.get("crop_scale", cls.crop_scale)
        fix = "use method.views.crop_scale=[0.2,1.0] (the smallest and largest share of the image a crop keeps)"
        try:
            low, high = (float(v) for v in scale)
        except (TypeError, ValueError) as exc:
            raise CnnlabError(f"method.views.crop_scale={scale} is not two numbers", fix=fix) from exc
        if not 0.0 < low <= high <= 1.0:
            why = ("a crop of no area is empty" if low <= 0 else "a crop cannot be larger than the image"
                   if high > 1 else "its minimum is above its maximum")
            raise CnnlabError(f"method.views.crop_scale=[{low:g}, {high:g}] gives no valid crop ({why}): it needs "
                              "0 < min <= max <= 1", fix=fix)
        jitter = float(node.get("color_jitter", cls.color_jitter))
        if not 0.0 <= jitter <= MAX_JITTER:
            raise CnnlabError(f"method.views.color_jitter={jitter:g} is outside [0, {MAX_JITTER:g}] (the hue jitter "
                              f"0.2 x strength must stay <= 0.5)", fix="use method.views.color_jitter=0.5 (SimCLR's "
                              "CIFAR strength; 1.0 for ImageNet), or 0 to switch it off")
        grayscale = float(node.get("grayscale_p", cls.grayscale_p))
        if not 0.0 <= grayscale <= 1.0:
            raise CnnlabError(f"method.views.grayscale_p={grayscale:g} is not a probability",
                              fix="use method.views.grayscale_p=0.2 (a value in [0, 1])")
        return cls(crop_scale=(low, high), hflip=bool(node.get("hflip", cls.hflip)), color_jitter=jitter,
                   grayscale_p=grayscale, blur=_auto_flag(node.get("blur", "auto"), "method.views.blur"))

    def check_size(self, side: int) -> None:
        """CnnlabError when the crops of pictures of `side` px (as read: DataBundle.picture_side) are too small to
        mean anything (check_crop_scale)."""
        check_crop_scale(self.crop_scale, side, "method.views.crop_scale", "[0.2,1.0]")

    def blur_on(self, size: int) -> bool:
        """Whether the views of `size`-px images are blurred: `blur`, or for auto, size >= BLUR_MIN_SIZE."""
        return size >= BLUR_MIN_SIZE if self.blur is None else self.blur

    def describe(self, size: int, channels: int = 3) -> dict[str, Any]:
        """The views as applied, as run.json records them: the blur decision taken for `size`; for one `channels`,
        the colour jitter's brightness and contrast only and no grayscale step, as simclr_view builds them (probe 217:
        fashion_mnist's record said grayscale_p 0.2 and colour jitter, neither of which a grey picture gets)."""
        described = {"crop_scale": list(self.crop_scale), "hflip": self.hflip, "color_jitter": self.color_jitter,
                     "grayscale_p": self.grayscale_p, "blur": self.blur_on(size)}
        if channels == 1:
            described["grayscale_p"] = 0.0
            if self.color_jitter > 0:
                described["color_jitter_parts"] = "brightness and contrast (one channel)"
        return described


def blur_kernel(size: int) -> int:
    """SimCLR's blur kernel: 10 % of the image side, odd, at least 3."""
    return max(3, int(0.1 * size) // 2 * 2 + 1)


def view_transform(spec: InputSpec, views: ViewSettings) -> v2.Compose:
    """One random view of an image (PIL or uint8 tensor) → float32 [spec.channels, size, size], normalised by the
    spec. `spec` must record its geometry (a DataBundle's spec does)."""
    rgb = spec.channels == 3
    ops: list[Any] = [v2.ToImage(), ToChannels(spec.channels),
                      v2.RandomResizedCrop(spec.size, scale=views.crop_scale, interpolation=_interpolation(spec),
                                           antialias=spec.antialias)]
    if views.hflip:
        ops.append(v2.RandomHorizontalFlip())
    s = views.color_jitter
    if s > 0:  # saturation and hue have no meaning for one channel
        jitter = v2.ColorJitter(brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s if rgb else 0,
                                hue=0.2 * s if rgb else 0)
        ops.append(v2.RandomApply([jitter], p=0.8))
    if rgb and views.grayscale_p > 0:
        ops.append(v2.RandomGrayscale(p=views.grayscale_p))
    if views.blur_on(spec.size):
        ops.append(v2.RandomApply([v2.GaussianBlur(blur_kernel(spec.size), sigma=(0.1, 2.0))], p=0.5))
    return v2.Compose([*ops, *_to_normalised_tensor(spec)])


class TwoViewDataset(Dataset):
    """Items (view 1, view 2, label) of the raw (image, label) items of `base`: two independent draws of
    `transform`. The label is the dataset's (-1 for unlabeled images); self-supervised objectives ignore it."""

    def __init__(self, base: Dataset, transform: Any) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, label = self.base[index]
        return self.transform(image), self.transform(image), int(label)


def _raw(dataset: Dataset) -> Dataset:
    """A DataBundle split without its per-image transform: the stored images, their labels renumbered as the split
    renumbers them (a RelabeledDataset: a folder's classes in the model's order; steps/sources.model_labelled)."""
    if isinstance(dataset, RelabeledDataset):
        return RelabeledDataset(_raw(dataset.base), dataset.mapping)
    assert isinstance(dataset, TransformedDataset), "DataBundle splits are TransformedDatasets, maybe relabeled"
    return dataset.base


def pretraining_images(data: DataBundle, *, unlabeled: bool) -> Dataset:
    """The untransformed training images of `data` (their labels, if any, are not used), followed by the set's
    unlabeled split (STL-10's 100,000 images) when `unlabeled` is true and the set has one."""
    parts = [_raw(data.train)]
    if unlabeled and data.unlabeled is not None:
        parts.append(_raw(data.unlabeled))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def two_view_dataset(data: DataBundle, views: ViewSettings, *, unlabeled: bool) -> TwoViewDataset:
    """`pretraining_images(data)` as (view 1, view 2, label) items at the bundle's input spec."""
    return TwoViewDataset(pretraining_images(data, unlabeled=unlabeled), view_transform(data.spec, views))
