"""Where `cnnlab pretrain` augments its training images: `method.augment_on` = workers (per image, in the
DataLoader workers), device (whole batches where the model trains: data/batch_augment.py) or auto (device when
training on CUDA and the images allow it, else workers)."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from cnnlab.data import DataBundle
from cnnlab.data.batch_augment import AugmentedOnDevice, BatchAugment, StoredPixels
from cnnlab.data.transforms import Augment
from cnnlab.data.views import ViewSettings
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import Loaders
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.steps.training import make_loaders


@dataclass(frozen=True)
class AugmentPlace:
    """Where the training images are augmented ("workers" or "device") and why, for the log and run.json."""

    where: str
    why: str

    def record(self) -> dict[str, str]:
        return {"where": self.where, "why": self.why}


def supervised_views(augment: Augment) -> ViewSettings | str:
    """dataset.augment as one batched view, or why only the workers can apply it (RandAugment, or a resize without
    the random crop)."""
    if augment.randaugment:
        return "dataset.augment.randaugment=true: RandAugment runs only in the workers' path"
    if not augment.random_crop:
        return ("dataset.augment.random_crop=false: the batched path crops at random, and the plain resize runs "
                "only in the workers' path")
    return ViewSettings(crop_scale=augment.crop_scale, hflip=augment.hflip, color_jitter=0.0, grayscale_p=0.0,
                        blur=False)


@found_before_work()  # a refusal leaves no `failed` run behind (probe 67)
def place_augmentation(setting: str, runtime: Runtime, data: DataBundle, views: ViewSettings | str,
                       per_rank_batch: int) -> AugmentPlace:
    """Where `setting` (augment_on_of's auto, workers or device) puts the augmentation of `data`'s training
    images. Raises CnnlabError for device where it cannot run: images not stored at one size (any folder),
    augmentations the batched path lacks (`views` is then why), another interpolation than bilinear, or one image
    per batch."""
    if setting == "workers":
        return AugmentPlace("workers", "method.augment_on=workers")
    reason = None
    if data.stored_size is None:
        reason = (f"dataset={data.name} reads each image at its own size (a folder; cnnlab does not check that they "
                  "share one), and a batch on the device needs one stored size")
    elif isinstance(views, str):
        reason = views
    elif data.spec.interpolation != "bilinear":
        reason = f"dataset.interpolation={data.spec.interpolation}: the batched crop resamples bilinearly"
    elif per_rank_batch < 2:
        reason = "a batch of one image"
    if setting == "device":
        if reason is not None:
            raise CnnlabError(f"method.augment_on=device cannot augment here: {reason}",
                              fix="use method.augment_on=workers (or auto)")
        return AugmentPlace("device", "method.augment_on=device")
    if reason is not None:
        return AugmentPlace("workers", f"auto: {reason}")
    if runtime.device.type != "cuda":
        return AugmentPlace("workers", f"auto: training on {runtime.device.type}, where the workers' cores are "
                                       "the device's own")
    return AugmentPlace("device", "auto: training on CUDA")


def training_loaders(recipe: Recipe, runtime: Runtime, data: DataBundle, place: AugmentPlace, *, images: Dataset,
                     augmented: Dataset, views: ViewSettings | str, count: int, workers: int) -> Loaders:
    """The train and val loaders of `data` with its training images augmented where `place` says: on "workers",
    `augmented` (the images with their per-image transform) as they are; on "device", `images` (their raw
    (image, label) items, of one stored size) read as stored pixels, batched, moved to the runtime's device and
    augmented there by `views` into `count` views a batch (AugmentedOnDevice)."""
    if place.where == "workers":
        return make_loaders(recipe, runtime, augmented, data.val, workers=workers)
    assert isinstance(views, ViewSettings), "place_augmentation puts only what BatchAugment does on the device"
    loaders = make_loaders(recipe, runtime, StoredPixels(images, data.spec.channels), data.val, workers=workers)
    augment = BatchAugment(data.spec, views)
    return Loaders(AugmentedOnDevice(loaders.train, augment, runtime.device, views=count), loaders.val)
