"""dataset.name -> builder, and the functions the pipelines call: check_dataset, resolve_input_spec,
build_datasets."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from cnnlab.data.bundle import DataBundle, RawSplits, TransformedDataset
from cnnlab.data.digits import build_digits
from cnnlab.data.folder import build_imagefolder, checked_root
from cnnlab.data.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from cnnlab.data.synthetic import build_synthetic
from cnnlab.data.torchvision_sets import (CIFAR10_FILES, CIFAR100_FILES, FLOWERS, build_cifar10, build_cifar100,
                                          build_flowers, check_downloadable)
from cnnlab.data.transforms import Augment, eval_transform, train_transform
from cnnlab.errors import CnnlabError

Builder = Callable[[Mapping[str, Any], InputSpec], RawSplits]

BUILDERS: dict[str, Builder] = {
    "synthetic": build_synthetic,
    "digits": build_digits,
    "imagefolder": build_imagefolder,
    "flowers": build_flowers,
    "cifar10": build_cifar10,
    "cifar100": build_cifar100,
}
DATASETS: tuple[str, ...] = tuple(BUILDERS)
# What can be checked in milliseconds, before a pipeline loads weights or builds a model: a missing folder
# should be the first thing a user hears about, not the last.
PRECHECKS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "imagefolder": checked_root,
    "flowers": lambda cfg: check_downloadable(cfg, FLOWERS),
    "cifar10": lambda cfg: check_downloadable(cfg, CIFAR10_FILES),
    "cifar100": lambda cfg: check_downloadable(cfg, CIFAR100_FILES),
}


def _triple(values: Any, default: tuple[float, float, float], key: str) -> tuple[float, float, float]:
    if values is None:
        return default
    triple = tuple(float(v) for v in values)
    if len(triple) != 3:
        raise CnnlabError(f"dataset.{key} needs 3 values (R, G, B), got {list(values)}",
                          fix=f"set dataset.{key}=[0.5,0.5,0.5] (for example)")
    return triple  # type: ignore[return-value]


def resolve_input_spec(dataset_cfg: Mapping[str, Any], weights_spec: InputSpec | None) -> InputSpec:
    """Size: dataset.image_size if set, else the pretrained weights' size, else dataset.native_size.
    Mean/std: the weights' when given (they were trained with them), else dataset.mean/std."""
    size = dataset_cfg.get("image_size")
    if size is None:
        size = weights_spec.size if weights_spec is not None else dataset_cfg.get("native_size")
    if size is None or int(size) < 1:
        raise CnnlabError(f"dataset {dataset_cfg.get('name')}: no valid image size (image_size={size})",
                          fix="set dataset.image_size=64 (for example)")
    if weights_spec is not None:
        return weights_spec.with_size(int(size))
    return InputSpec(size=int(size), mean=_triple(dataset_cfg.get("mean"), IMAGENET_MEAN, "mean"),
                     std=_triple(dataset_cfg.get("std"), IMAGENET_STD, "std"))


def _known_name(dataset_cfg: Mapping[str, Any]) -> str:
    name = str(dataset_cfg.get("name"))
    if name not in BUILDERS:
        raise CnnlabError(f"unknown dataset {name!r}", fix=f"choose dataset= one of {', '.join(DATASETS)}")
    return name


def check_dataset(dataset_cfg: Mapping[str, Any]) -> None:
    """Fail now on what is wrong with the dataset's settings and folder (no reading of images)."""
    name = _known_name(dataset_cfg)
    if name in PRECHECKS:
        PRECHECKS[name](dataset_cfg)


def build_datasets(dataset_cfg: Mapping[str, Any], spec: InputSpec, *, train_augment: bool = True) -> DataBundle:
    """train_augment=False gives the train split with the deterministic eval transform (used for feature
    caching, teacher-logit caching, quantization calibration)."""
    name = _known_name(dataset_cfg)
    raw = BUILDERS[name](dataset_cfg, spec)
    augment = Augment.from_config(dataset_cfg.get("augment")) if train_augment else Augment()
    evaluate = eval_transform(spec, raw.stored_size)
    train = TransformedDataset(raw.train, train_transform(spec, raw.stored_size, augment))
    return DataBundle(name=name, train=train, val=TransformedDataset(raw.val, evaluate),
                      test=None if raw.test is None else TransformedDataset(raw.test, evaluate),
                      classes=raw.classes, spec=spec, random_train_transform=augment.is_random,
                      in_memory=raw.in_memory, decode=raw.decode)
