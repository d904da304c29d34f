"""Augmentation of whole batches on the training device: `trainer.augment_on=device` (steps/augment_on.py).

By default every image is augmented on its own in the DataLoader workers (torchvision.transforms.v2, seeded per
image: data/loaders.py). On a GPU that leaves the GPU waiting: ResNet-18 with the CIFAR stem steps through
~33,700 SimCLR images/s on an H200, while 14 workers of per-image augmentation delivered 2,652 (docs/benchmarks.md).
Here the workers only hand over the stored uint8 pixels, and the random resized crop, flip, colour jitter,
grayscale and blur run on the batch where the model trains, each image with its own random parameters: the crop
drawn as torchvision's RandomResizedCrop draws it and resampled by torchvision.ops.roi_align, the rest by the
batched operators of kornia.augmentation (Riba et al. 2020, arXiv:1910.02190; Apache-2.0), which keep
torchvision's parameter ranges (ColorJitter's factors, grayscale, blur).

Differences from the worker path, by design (docs/pretrain.md): the crop's parameters follow torchvision's
RandomResizedCrop (ten tries, then the fallback) but are drawn for the whole batch at once, and the crop is resampled
by torchvision.ops.roi_align on the same half-pixel grid as torchvision's resize (its outermost half pixel reads the
image around the crop instead of repeating the crop's edge; a crop that is shrunk is averaged over its bins); the
random parameters come from the process's RNG, so a run repeats for the same seed and number of processes — with any
number of workers, and after a resume — but not across DDP world sizes or against a worker-path run.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.ops import roi_align
from torchvision.transforms import v2

from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import ToChannels
from cnnlab.data.views import ViewSettings, blur_kernel


class BatchAugment(nn.Module):
    """uint8 images [N, C, H, W] (one stored size, `spec.channels` channels) → float32 views [N, C, S, S] at
    `spec.size` S, scaled to [0, 1] and normalised by the spec's mean and std: the same ops, probabilities and
    ranges as data/views.py's view_transform (SimCLR appendix A) or data/transforms.py's train_transform, drawn
    independently for every image. Supervised pretraining's `dataset.augment` is the ViewSettings with
    color_jitter=0, grayscale_p=0 and blur=False. Runs on the device of its input, in float32 (outside autocast)."""

    def __init__(self, spec: InputSpec, views: ViewSettings) -> None:
        super().__init__()
        import kornia.augmentation as K  # imported here: only runs that augment on the device pay for it

        rgb = spec.channels == 3
        if spec.interpolation != "bilinear":
            raise ValueError(f"BatchAugment resamples bilinearly, not {spec.interpolation} (steps/augment_on.py)")
        ops: list[nn.Module] = [BatchResizedCrop(spec.size, views.crop_scale)]
        if views.hflip:
            ops.append(K.RandomHorizontalFlip())
        s = views.color_jitter
        if s > 0:  # saturation and hue have no meaning for one channel (view_transform's rule)
            ops.append(K.ColorJitter(brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s if rgb else 0.0,
                                     hue=0.2 * s if rgb else 0.0, p=0.8))
        if rgb and views.grayscale_p > 0:
            ops.append(K.RandomGrayscale(p=views.grayscale_p))
        if views.blur_on(spec.size):
            kernel = blur_kernel(spec.size)
            ops.append(K.RandomGaussianBlur((kernel, kernel), sigma=(0.1, 2.0), p=0.5))
        self.ops = nn.Sequential(*ops)
        channels = spec.channels
        self.register_buffer("mean", torch.tensor(spec.mean[:channels]).view(1, channels, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std[:channels]).view(1, channels, 1, 1), persistent=False)
        self.scale = spec.scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type, enabled=False):
            views = self.ops(images.float() * self.scale)
            return (views - self.mean.to(images.device)) / self.std.to(images.device)


def crop_boxes(count: int, height: int, width: int, scale: tuple[float, float],
               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """`count` random crops of a height x width image as boxes [count, 4] (left, top, right, bottom) in pixels:
    torchvision's RandomResizedCrop.make_params for every image at once — ten tries of an area fraction in `scale`
    and a log-uniform aspect ratio in `ratio`, the first that fits placed uniformly; when none fits, the image's
    centre with its aspect clamped to `ratio`. Drawn from torch's CPU RNG (the run's seeded stream)."""
    area, tries = height * width, 10
    target = area * torch.empty(count, tries).uniform_(*scale)
    aspect = torch.exp(torch.empty(count, tries).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    w, h = torch.round(torch.sqrt(target * aspect)), torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first, found = fits.int().argmax(dim=1), fits.any(dim=1)
    rows = torch.arange(count)
    if width / height < min(ratio):
        fallback = (width, round(width / min(ratio)))
    elif width / height > max(ratio):
        fallback = (round(height * max(ratio)), height)
    else:
        fallback = (width, height)
    w = torch.where(found, w[rows, first], float(fallback[0]))
    h = torch.where(found, h[rows, first], float(fallback[1]))
    top = torch.where(found, torch.floor(torch.rand(count) * (height - h + 1)), torch.floor((height - h) / 2))
    left = torch.where(found, torch.floor(torch.rand(count) * (width - w + 1)), torch.floor((width - w) / 2))
    return torch.stack([left, top, left + w, top + h], dim=1)


class BatchResizedCrop(nn.Module):
    """RandomResizedCrop on a batch [N, C, H, W] (float) → [N, C, size, size], every image its own crop
    (crop_boxes), resampled by torchvision.ops.roi_align with aligned=True: bilinear on torchvision's half-pixel
    grid; a crop larger than the output is averaged over each output bin (adaptive sampling)."""

    def __init__(self, size: int, scale: tuple[float, float]) -> None:
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        count, _, height, width = images.shape
        boxes = crop_boxes(count, height, width, self.scale)
        rois = torch.cat([torch.arange(count, dtype=boxes.dtype)[:, None], boxes], dim=1).to(images.device)
        return roi_align(images, rois, (self.size, self.size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


class StoredPixels(Dataset):
    """Items (uint8 image [channels, H, W], label) of a raw (image, label) dataset: its stored pixels with the
    spec's channel rule (data/transforms.ToChannels) and nothing else, for BatchAugment to augment."""

    keeps_labels = True  # splits.labels_of reads them from `base`

    def __init__(self, base: Dataset, channels: int) -> None:
        self.base = base
        self.to_tensor = v2.Compose([v2.ToImage(), ToChannels(channels), v2.ToDtype(torch.uint8, scale=True),
                                     v2.ToPureTensor()])

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[index]
        return self.to_tensor(image), int(label)


class AugmentedOnDevice:
    """A training loader that moves each batch of StoredPixels to `device` and draws `views` augmented views of it
    there: its batches are (view 1, ..., view k, labels), all on the device, as the worker path's batches are
    after the trainer moves them. The loader's length, batch size, sampler (set_epoch), dataset and worker count
    are the wrapped loader's, so the trainer, precise BN and resuming treat it as that loader."""

    def __init__(self, loader: DataLoader, augment: BatchAugment, device: torch.device, *, views: int) -> None:
        self.loader = loader
        self.augment = augment.to(device)
        self.device = device
        self.views = views

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def batch_size(self) -> int | None:
        return self.loader.batch_size

    @property
    def sampler(self) -> Any:
        return self.loader.sampler

    @property
    def dataset(self) -> Dataset:
        return self.loader.dataset

    @property
    def num_workers(self) -> int:
        return self.loader.num_workers

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            # all views in one call: every row draws its own parameters anyway, and each op launches once
            views = self.augment(images.repeat(self.views, 1, 1, 1)).chunk(self.views)
            yield [*views, labels.to(self.device, non_blocking=True)]
