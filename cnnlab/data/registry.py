"""dataset.name -> builder, and the functions the pipelines call: check_dataset, resolve_input_spec,
build_datasets (which also applies dataset.label_fraction)."""

from __future__ import annotations

import logging
import math
import shlex
from typing import Any, Callable, Mapping, Sequence

from torch.utils.data import Subset

from cnnlab.data.bundle import DataBundle, RawSplits, TransformedDataset
from cnnlab.data.digits import build_digits
from cnnlab.data.folder import (build_flat_folder, build_imagefolder, checked_root, is_flat_folder,
                               say_colour_dropped)
from cnnlab.data.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from cnnlab.data.splits import label_subset, labels_of
from cnnlab.data.synthetic import build_synthetic
from cnnlab.data.archives import (CIFAR10_FILES, CIFAR100_FILES, FASHION_MNIST_FILES, FLOWERS, KMNIST_FILES,
                                  MNIST_FILES, STL10_FILES, SVHN_FILES, OnDisk)
from cnnlab.data.torchvision_sets import (build_cifar10, build_cifar100, build_fashion_mnist, build_flowers,
                                          build_kmnist, build_mnist, build_stl10, build_svhn, check_downloadable)
from cnnlab.data.transforms import Augment, check_crop_scale, eval_transform, train_transform
from cnnlab.errors import CnnlabError, found_before_work

log = logging.getLogger("cnnlab")

Builder = Callable[[Mapping[str, Any], InputSpec], RawSplits]
TRAINING_SPLITS = ("train", "val")  # what a command reads unless it says otherwise (build_datasets `reads`)

BUILDERS: dict[str, Builder] = {
    "synthetic": build_synthetic,
    "digits": build_digits,
    "imagefolder": build_imagefolder,
    "flowers": build_flowers,
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
    "mnist": build_mnist,
    "fashion_mnist": build_fashion_mnist,
    "kmnist": build_kmnist,
    "svhn": build_svhn,
    "stl10": build_stl10,
}
DATASETS: tuple[str, ...] = tuple(BUILDERS)
_DOWNLOADABLE: dict[str, OnDisk] = {"flowers": FLOWERS, "cifar10": CIFAR10_FILES, "cifar100": CIFAR100_FILES,
                                    "mnist": MNIST_FILES, "fashion_mnist": FASHION_MNIST_FILES,
                                    "kmnist": KMNIST_FILES, "svhn": SVHN_FILES, "stl10": STL10_FILES}
# What can be checked in milliseconds, before a pipeline loads weights or builds a model: a missing folder
# should be the first thing a user hears about, not the last.
PRECHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "imagefolder": checked_root,
    **{name: (lambda cfg, files=files: check_downloadable(cfg, files)) for name, files in _DOWNLOADABLE.items()},
}


@found_before_work()
def stated_triple(values: Any, default: tuple[float, float, float], key: str,
                  channels: int = 3) -> tuple[float, float, float]:
    """dataset.`key` (mean or std) as three floats, as InputSpec keeps them (a 1-channel spec reads the first);
    `default` when unset. `channels`: how many the model reads the pictures in — where 1, one value is that channel's
    (held three times here, as three equal values are; InputSpec.to_dict and the run record keep it once).
    Raises CnnlabError for one value where 3 channels (R, G, B) are read, and for a count neither 1 nor 3."""
    if values is None:
        return default
    triple = tuple(float(v) for v in values)
    if len(triple) == 1 and channels == 1:
        return (triple[0],) * 3
    shown = "[" + ",".join(str(v) for v in values) + "]"
    if len(triple) == 1:  # the settings rule lets one value by: here the channels are known
        three = shlex.quote(f"dataset.{key}=[{','.join([str(values[0])] * 3)}]")
        raise CnnlabError(f"dataset.{key}={shown} is not allowed: dataset.{key} takes a list of 3 numbers where the "
                          "model reads the pictures in 3 channels (R, G, B; a grey picture is copied into each)",
                          fix=f"set e.g. {three} (the one value for each channel)")
    if len(triple) != 3:
        example = "[0.5]" if channels == 1 else "[0.5,0.5,0.5]"
        raise CnnlabError(f"dataset.{key}={shown} is not allowed: dataset.{key} takes a list of 3 numbers (R, G, B)"
                          + (" or, for the model's one channel, of 1" if channels == 1 else ""),
                          fix=f"set e.g. dataset.{key}={example}")
    return triple  # type: ignore[return-value]


def resolve_input_spec(dataset_cfg: Mapping[str, Any], weights_spec: InputSpec | None, *,
                       any_channels: bool = False, size_recorded: bool = True) -> InputSpec:
    """Size: dataset.image_size if set, else the pretrained weights' size (where they record one: `size_recorded`;
    probe 171, a LeNet-5 state dict fed 224-px digits scored 11 %, at chance), else dataset.native_size.
    Mean/std: the weights' when given (they were trained with them), else dataset.mean/std.
    Channels: the weights'; else the data's own (`dataset.channels`, 3 when unset) when the model is built for
    them (`any_channels`: a LeNet-5 from scratch takes 1-channel digits natively); else 3 — ImageNet-shaped
    networks, whose grayscale inputs the transforms replicate to RGB.
    The resize/crop geometry is left unrecorded: `build_datasets` gives it the data's (cnnlab.data.spec)."""
    size = dataset_cfg.get("image_size")
    if size is None:
        size = weights_spec.size if weights_spec is not None and size_recorded else dataset_cfg.get("native_size")
    if size is None or int(size) < 1:
        raise CnnlabError(f"dataset {dataset_cfg.get('name')}: no valid image size (image_size={size})",
                          fix="set dataset.image_size=64 (for example)")
    if weights_spec is not None:
        return weights_spec.with_size(int(size))
    channels = dataset_cfg.get("channels") or 3
    if channels not in (1, 3):
        raise CnnlabError(f"dataset.channels={channels}: images have 1 (grayscale) or 3 (RGB) channels",
                          fix="set dataset.channels=1 or 3")
    channels = int(channels) if any_channels else 3
    return InputSpec(size=int(size), mean=stated_triple(dataset_cfg.get("mean"), IMAGENET_MEAN, "mean", channels),
                     std=stated_triple(dataset_cfg.get("std"), IMAGENET_STD, "std", channels), channels=channels)


def _say_upsampled(raw: RawSplits, dataset_cfg: Mapping[str, Any], size: int) -> None:
    """A warning when pictures are read at a size (unset dataset.image_size: the weights' or dataset.native_size)
    of twice or more their own (median shorter side): a folder of 28-px pictures read at imagefolder's 224 px
    costs each step 64× the arithmetic of reading them near their own size, for no more detail."""
    side = None if raw.decode is None else raw.decode.typical_side()
    if dataset_cfg.get("image_size") is not None or side is None or size < 2 * side:
        return
    near = max(32, 8 * math.ceil(side / 8))
    log.warning("dataset %s: its pictures' shorter side is %d px (median), and they are read at %d px (dataset."
                "image_size unset: the pretrained weights' size, else dataset.native_size) — upsampled %.1f×, about "
                "%.0f× the arithmetic per image of reading them near their own size; set dataset.image_size=%d for "
                "that (or dataset.image_size=%d to keep this size and this line away)", dataset_cfg.get("name"),
                side, size, size / side, (size / near) ** 2, near, size)


def _known_name(dataset_cfg: Mapping[str, Any]) -> str:
    name = str(dataset_cfg.get("name"))
    if name not in BUILDERS:
        raise CnnlabError(f"unknown dataset {name!r}", fix=f"choose dataset= one of {', '.join(DATASETS)}")
    return name


@found_before_work()
def check_dataset(dataset_cfg: Mapping[str, Any]) -> None:
    """Fail now on what is wrong with the dataset's settings and folder (no reading of images)."""
    name = _known_name(dataset_cfg)
    if name in PRECHECKS:
        PRECHECKS[name](dataset_cfg)


@found_before_work()
def build_datasets(dataset_cfg: Mapping[str, Any], spec: InputSpec, *, train_augment: bool = True,
                   allow_unlabeled: bool = False, carve_val: bool = True,
                   reads: Sequence[str] = TRAINING_SPLITS) -> DataBundle:
    """The dataset's splits, transformed for `spec`.

    A spec that records its geometry (a model's, from its checkpoint or ONNX file) is performed as it is; one
    that does not (resolve_input_spec's) gets the data's — a square resize for sets stored at a fixed size, resize
    + centre crop for photos — and the bundle's `spec` states it, so the checkpoint saved from it does too.
    `dataset.label_fraction` (default 1) keeps a seeded class-balanced share of the training labels
    (`dataset.seed`), after val was set apart: val and test stay the same whatever the fraction.
    train_augment=False gives the train split with the deterministic eval transform (used for feature
    caching, teacher-logit caching, quantization calibration).
    allow_unlabeled=True (self-supervised pretraining): `dataset=imagefolder` also takes a flat folder of images
    without class folders — all of them train, with label -1, one class name and an empty val split.
    carve_val=False: an image folder without a val split keeps all its images in train, val empty (what
    `cnnlab evaluate split=all` reads: no carve to fail on a folder of one picture per class).
    reads: the splits the command reads (train, val, test) — training, and every command but evaluate and export,
    reads train and val: a 1-channel model's warning that an image folder's colour pictures lose their colour
    counts their pictures (folder.say_colour_dropped)."""
    name = _known_name(dataset_cfg)
    flat = allow_unlabeled and name == "imagefolder" and is_flat_folder(dataset_cfg)
    if flat:
        raw = build_flat_folder(dataset_cfg, spec)
    elif name == "imagefolder":  # one class folder is a classifier's mistake, and pictures to self-supervise on
        raw = build_imagefolder(dataset_cfg, spec, carve=carve_val, least_classes=1 if allow_unlabeled else 2)
    else:
        raw = BUILDERS[name](dataset_cfg, spec)
    if not spec.recorded:
        spec = spec.for_stored_size(raw.stored_size)
        _say_upsampled(raw, dataset_cfg, spec.size)
    fraction = dataset_cfg.get("label_fraction")
    fraction = 1.0 if fraction is None else fraction
    train_raw = raw.train
    if fraction != 1.0:  # label_subset checks the value
        keep = label_subset(labels_of(raw.train), fraction, int(dataset_cfg.get("seed") or 0), what=f"dataset {name}")
        train_raw = Subset(raw.train, keep)
    augment = Augment.from_config(dataset_cfg.get("augment")) if train_augment else Augment()
    evaluate = eval_transform(spec)
    train = TransformedDataset(train_raw, train_transform(spec, raw.stored_size, augment))
    bundle = DataBundle(name=name, train=train, val=TransformedDataset(raw.val, evaluate),
                        test=None if raw.test is None else TransformedDataset(raw.test, evaluate),
                        classes=raw.classes, spec=spec,
                        in_memory=raw.in_memory, decode=raw.decode, label_fraction=float(fraction),
                        unlabeled=None if raw.unlabeled is None else TransformedDataset(raw.unlabeled, evaluate),
                        content=raw.content, train_content=raw.train_content, stored_size=raw.stored_size,
                        train_augment=augment)
    if augment.random_crop:
        with found_before_work():
            check_crop_scale(augment.crop_scale, bundle.picture_side, "dataset.augment.crop_scale", "[0.08,1.0]",
                             off="dataset.augment.random_crop=false draws no crop")
    if name == "imagefolder" and raw.decode is not None:  # here, where the splits as read are known (carved, copies
        # left out, label_fraction applied) — said once for every command that reads a folder
        parts = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
        say_colour_dropped(dataset_cfg, raw.decode, spec.channels, {split: parts[split] for split in reads})
    return bundle
