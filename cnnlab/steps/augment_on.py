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
from cnnlab.errors import CnnlabError
from cnnlab.steps.training import make_loaders


@dataclass(frozen=True)
class AugmentPlace:
    """Where the training images are augmented ("workers" or "device") and why, for the log and run.json."""

    where: str
    why: str

    def record(self) -> dict[str, str]:
        return {"where": self.where, "why": self.why}


def supervised_views(augment: Augment) -> ViewSettings | None:
    """dataset.augment as one batched view; None for what only the workers do (RandAugment, or a resize
    without the random crop)."""
    if not augment.random_crop or augment.randaugment:
        return None
    return ViewSettings(crop_scale=augment.crop_scale, hflip=augment.hflip, color_jitter=0.0, grayscale_p=0.0,
                        blur=False)


def place_augmentation(setting: str, runtime: Runtime, data: DataBundle, views: ViewSettings | None,
                       per_rank_batch: int) -> AugmentPlace:
    """Where `setting` (augment_on_of's auto, workers or device) puts the augmentation of `data`'s training
    images. Raises CnnlabError for device where it cannot run: images of more than one size (a folder of
    photos), augmentations the batched path lacks (`views` None), or one image per batch."""
    if setting == "workers":
        return AugmentPlace("workers", "method.augment_on=workers")
    reason = None
    if data.stored_size is None:
        reason = (f"dataset {data.name} holds images of any size (a folder): a batch on the device needs one "
                  "stored size")
    elif views is None:
        reason = "dataset.augment uses RandAugment or no random crop, which only the workers' path applies"
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
                     augmented: Dataset, views: ViewSettings | None, count: int, workers: int) -> Loaders:
    """The train and val loaders of `data` with its training images augmented where `place` says: on "workers",
    `augmented` (the images with their per-image transform) as they are; on "device", `images` (their raw
    (image, label) items, of one stored size) read as stored pixels, batched, moved to the runtime's device and
    augmented there by `views` into `count` views a batch (AugmentedOnDevice)."""
    if place.where == "workers":
        return make_loaders(recipe, runtime, augmented, data.val, workers=workers)
    assert views is not None, "place_augmentation puts only what BatchAugment does on the device"
    loaders = make_loaders(recipe, runtime, StoredPixels(images, data.spec.channels), data.val, workers=workers)
    augment = BatchAugment(data.spec, views)
    return Loaders(AugmentedOnDevice(loaders.train, augment, runtime.device, views=count), loaders.val)
