"""A randomly initialised zoo network built from `model=NAME` and the dataset's size and classes — what
`cnnlab inspect` looks at and `cnnlab bench model=NAME` times (neither needs trained weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig
from torch import nn

from cnnlab.data import resolve_input_spec
from cnnlab.data.archives import OFFICIAL_CLASSES
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.models import canonical_name, channel_options, create_model, get_entry, model_options

IMAGENET_CLASSES = 1000


@dataclass
class ZooModel:
    name: str
    model: nn.Module
    spec: InputSpec
    num_classes: int


def scratch_spec(cfg: DictConfig, name: str) -> tuple[InputSpec, dict[str, Any]]:
    """The input spec and constructor options of `name` built from random weights for `cfg.dataset`: a network
    that takes any channel count learns a grayscale set in one channel (LeNet-5 on MNIST), others in three."""
    spec = resolve_input_spec(cfg.dataset, None, any_channels=get_entry(name).any_channels)
    return spec, {**model_options(cfg.model), **channel_options(name, spec.channels)}


def zoo_model(cfg: DictConfig, *, image_size: Any = None, num_classes: Any = None,
              size_key: str = "dataset.image_size") -> ZooModel:
    """The network `cnnlab pretrain` would build for `cfg` (scratch_spec). `image_size` / `num_classes` (a command's
    own knobs; `size_key` names the first in errors) win over the dataset's; classes come from dataset.num_classes,
    else the set's own count (OFFICIAL_CLASSES: MNIST 10, Flowers 102), else 1000 (imagefolder's folders are not
    read). Before, every set but synthetic gave 1000 classes and 3 channels: `inspect dataset=mnist` reported
    146,156 parameters for the 61,706 of the LeNet-5 that pretrain trains (probe 66)."""
    name = canonical_name(str(cfg.model.name))
    spec, options = scratch_spec(cfg, name)
    if image_size is not None:
        if int(image_size) < 1:
            raise CnnlabError(f"image size {image_size} must be at least 1")
        spec = spec.with_size(int(image_size))
    classes = int(num_classes if num_classes is not None else cfg.dataset.get("num_classes")
                  or OFFICIAL_CLASSES.get(str(cfg.dataset.get("name"))) or IMAGENET_CLASSES)
    model = create_model(name, num_classes=classes, image_size=spec.size, **options,
                         size_key=size_key if image_size is not None else "dataset.image_size").eval()
    return ZooModel(name=name, model=model, spec=spec, num_classes=classes)
