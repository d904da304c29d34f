"""A randomly initialised zoo network built from `model=NAME` and the dataset's size and classes — what
`cnnlab inspect` looks at and `cnnlab bench model=NAME` times (neither needs trained weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig
from torch import nn

from cnnlab.data import resolve_input_spec
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.models import canonical_name, create_model, model_options

IMAGENET_CLASSES = 1000


@dataclass
class ZooModel:
    name: str
    model: nn.Module
    spec: InputSpec
    num_classes: int


def zoo_model(cfg: DictConfig, *, image_size: Any = None, num_classes: Any = None,
              size_key: str = "dataset.image_size") -> ZooModel:
    """`image_size` / `num_classes` (a command's own knobs; `size_key` names the first in errors) win over the
    dataset's; classes default to 1000."""
    name = canonical_name(str(cfg.model.name))
    spec = resolve_input_spec(cfg.dataset, None)
    if image_size is not None:
        if int(image_size) < 1:
            raise CnnlabError(f"image size {image_size} must be at least 1")
        spec = spec.with_size(int(image_size))
    classes = int(num_classes if num_classes is not None else cfg.dataset.get("num_classes") or IMAGENET_CLASSES)
    model = create_model(name, num_classes=classes, image_size=spec.size, **model_options(cfg.model),
                         size_key=size_key if image_size is not None else "dataset.image_size").eval()
    return ZooModel(name=name, model=model, spec=spec, num_classes=classes)
