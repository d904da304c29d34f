"""Where a training command augments its training images: `trainer.augment_on` = workers (per image, in the
DataLoader workers), device (whole batches where the model trains: data/batch_augment.py) or auto (device when
training on CUDA and the images allow it, else workers). pretrain (every method), finetune, prune's recovery and
quantize's QAT read it; distill and search's trials augment in the workers."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import Dataset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.data.batch_augment import AugmentedOnDevice, BatchAugment, StoredPixels
from cnnlab.data.transforms import Augment
from cnnlab.data.views import ViewSettings, pretraining_images
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import Loaders
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.steps.training import loader_workers, make_loaders


@dataclass(frozen=True)
class AugmentPlace:
    """Where the training images are augmented ("workers", "device", or "none") and why, for the log and run.json."""

    where: str
    why: str

    def record(self) -> dict[str, str]:
        return {"where": self.where, "why": self.why}


def supervised_views(augment: Augment | None) -> ViewSettings | str:
    """dataset.augment as one batched view, or why only the workers can apply it (RandAugment, a resize without the
    random crop); None: the command trains on the images as they are (finetune.augment=false)."""
    if augment is None:
        return "the training images are not augmented (dataset.augment, finetune.augment=false)"
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
    """Where `setting` (trainer.augment_on: auto, workers or device) puts the augmentation of `data`'s training
    images. Raises CnnlabError for device where it cannot run: images not stored at one size (any folder),
    augmentations the batched path lacks (`views` is then why), another interpolation than bilinear, or one image
    per batch."""
    if setting == "workers":
        return AugmentPlace("workers", "trainer.augment_on=workers")
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
            raise CnnlabError(f"trainer.augment_on=device cannot augment here: {reason}",
                              fix="use trainer.augment_on=workers (or auto)")
        return AugmentPlace("device", "trainer.augment_on=device")
    if reason is not None:
        return AugmentPlace("workers", f"auto: {reason}")
    if runtime.device.type != "cuda":
        return AugmentPlace("workers", f"auto: training on {runtime.device.type}, where the workers' cores are "
                                       "the device's own")
    return AugmentPlace("device", "auto: training on CUDA")


def augmentation_place(ctx: RunContext, recipe: Recipe, runtime: Runtime, data: DataBundle,
                       views: ViewSettings | str) -> AugmentPlace:
    """place_augmentation for the run's recipe, logged and recorded (`_recorded`)."""
    return _recorded(ctx, place_augmentation(recipe.augment_on, runtime, data, views,
                                             recipe.batch_size // runtime.world_size))


@found_before_work()
def augment_without_device(ctx: RunContext, recipe: Recipe, why: str, *, where: str = "workers",
                           fix: str = "drop trainer.augment_on=device (or set it to workers or auto)") -> AugmentPlace:
    """For a training that augments per image only (distill, search's trials), or not at all (`where`="none": a
    linear probe on cached features); `why` says so. Logged and recorded; CnnlabError (with `fix`) for
    trainer.augment_on=device, which would otherwise be ignored (probe 71: the linear probe said nothing)."""
    if recipe.augment_on == "device":
        raise CnnlabError(f"trainer.augment_on=device cannot augment here: {why}", fix=fix)
    return _recorded(ctx, AugmentPlace(where, f"trainer.augment_on={recipe.augment_on}: {why}"))


def _recorded(ctx: RunContext, place: AugmentPlace) -> AugmentPlace:
    """`place`, logged once and recorded (run.json environment.augment_on) before training starts, so an
    interrupted run's record says it too."""
    if ctx.is_main:
        ctx.log.info("augmentation: %s (%s)", {"device": "whole batches on the device", "none": "none"}.get(
            place.where, "per image, as the DataLoader reads it (in its workers, or the main process at 0)"), place.why)
        ctx.record.update(environment={"augment_on": place.record()})
    return place


def training_loaders(recipe: Recipe, runtime: Runtime, data: DataBundle, place: AugmentPlace, *,
                     images: Dataset | None, augmented: Dataset, views: ViewSettings | str, count: int,
                     workers: int) -> Loaders:
    """The train and val loaders of `data` with its training images augmented where `place` says: on "workers",
    `augmented` (the images with their per-image transform) as they are; on "device", `images` (their raw
    (image, label) items, of one stored size; None only where place is "workers") read as stored pixels, batched,
    moved to the runtime's device and augmented there by `views` into `count` views a batch (AugmentedOnDevice)."""
    if place.where != "device":  # workers, or none (`augmented` then draws nothing)
        return make_loaders(recipe, runtime, augmented, data.val, workers=workers)
    assert images is not None and isinstance(views, ViewSettings), "place_augmentation puts only what BatchAugment does"
    loaders = make_loaders(recipe, runtime, StoredPixels(images, data.spec.channels), data.val, workers=workers)
    augment = BatchAugment(data.spec, views)
    return Loaders(AugmentedOnDevice(loaders.train, augment, runtime.device, views=count), loaders.val)


def classifier_loaders(ctx: RunContext, recipe: Recipe, runtime: Runtime, data: DataBundle) -> Loaders:
    """A classifier's train and val loaders (one view an image: pretrain's supervised method, finetune, prune's
    recovery, QAT), its training images augmented as `data.train` augments them (data.train_augment) where
    trainer.augment_on puts it."""
    views = supervised_views(data.train_augment if data.train_augment.is_random else None)
    # nothing drawn: said and recorded as none (probe 103: "per image, as the DataLoader reads it" for no augmentation)
    place = augmentation_place(ctx, recipe, runtime, data, views) if data.train_augment.is_random else \
        augment_without_device(ctx, recipe, str(views), where="none")
    images = pretraining_images(data, unlabeled=False) if place.where == "device" else None  # workers: not read
    return training_loaders(recipe, runtime, data, place, images=images, augmented=data.train, views=views, count=1,
                            workers=loader_workers(recipe, data))
