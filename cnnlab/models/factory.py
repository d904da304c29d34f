"""Build a registered network for a given class count and input size."""

from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import nn

from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models.measure import smallest_conv_input
from cnnlab.models.registry import MODELS, ModelEntry, get_entry
from cnnlab.models.small_input import STEM_CHOICES, StemStride
from cnnlab.models.searched import parse_arch

log = logging.getLogger(__name__)


# Keys of a `model` config node that are architecture options passed to the builder (and so recorded in model.pt):
# `arch`, the architecture string of model=searched (docs/search.md); `stem`, the small-image stem (docs/models.md).
ARCH_OPTIONS = ("arch", "stem")


def model_options(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture options a `model` (or `teacher`/`student`) config node sets: {} for the zoo's stock
    networks, {"arch": STRING} for model=searched, {"stem": "cifar"} for model.stem=cifar. What every fresh build
    from a config passes to create_model. The stock stem (`stem: null` or `imagenet`) is left out, so a stock
    network records no options, as before the option existed."""
    options = {key: str(model_config[key]) for key in ARCH_OPTIONS
               if key in model_config and model_config[key] is not None}
    stem = requested_stem(model_config)  # recorded in one spelling; the stock stem not at all
    options.pop("stem", None)
    return options if stem in (None, "imagenet") else {**options, "stem": stem}


def create_model(name: str, num_classes: int, image_size: int, *, size_key: str = "dataset.image_size",
                 **arch_kwargs: Any) -> nn.Module:
    """A randomly initialised `name` with a `num_classes`-way head, able to take `image_size` px input.

    Networks that would collapse their feature map at this size get the mildest small-input adaptation
    that avoids it (see `small_input_adaptation`); parameter shapes stay those of the stock network.
    `arch_kwargs` go to the constructor (e.g. `dropout`, googlenet's `transform_input`).
    """
    entry = get_entry(name)
    if num_classes < 2:
        raise CnnlabError(f"a classifier needs at least 2 classes, got num_classes={num_classes}",
                          fix="check the dataset: it should have two or more class folders/labels")
    adaptation = small_input_adaptation(entry.name, image_size, size_key=size_key, **arch_kwargs)
    model = _build(entry, num_classes, arch_kwargs)
    if adaptation is not None:
        adaptation.apply(model)
        log.info("%s adapted to %d px input: %s", entry.name, image_size, adaptation)
    return model


@found_before_work()  # a size the network cannot take: a refusal of the settings (probe 170: bench left a failed run)
def small_input_adaptation(name: str, image_size: int, *, size_key: str = "dataset.image_size",
                           **arch_kwargs: Any) -> StemStride | None:
    """The adaptation `create_model` applies at `image_size` (None: the stock network fits).

    A pure function of its arguments, so a checkpoint that records them rebuilds the same network. Each
    candidate is tried on a parameter-free copy of the network on the meta device: whichever first runs
    a forward pass at this size wins.
    """
    entry = get_entry(name)
    if image_size < entry.min_size:
        fitting = sorted(n for n, e in MODELS.items()  # `searched` needs an arch string: not a pick
                         if e.min_size <= image_size and n not in (entry.name, "searched"))
        other = f", or pick a model that takes {image_size} px ({', '.join(fitting)})" if fitting else ""
        raise CnnlabError(f"{entry.name} needs images of at least {entry.min_size} px, got {size_key}={image_size}",
                          fix=f"set {size_key}={entry.min_size} or more{other}")
    if not entry.small_input:
        return None
    for candidate in (None, *entry.small_input):
        if _runs_at(entry, image_size, arch_kwargs, candidate):
            return candidate
    raise CnnlabError(f"{entry.name} cannot take {image_size} px input ({size_key}), even adapted",
                      fix=f"use a larger {size_key}")


def _runs_at(entry: ModelEntry, image_size: int, arch_kwargs: dict[str, Any], adaptation: StemStride | None) -> bool:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        probe = _build(entry, 2, arch_kwargs).eval()
        if adaptation is not None:
            adaptation.apply(probe)
        try:
            probe(torch.empty(2, 3, image_size, image_size))
        except RuntimeError:  # "Output size is too small" from a pool or conv
            return False
    return True


def _build(entry: ModelEntry, num_classes: int, arch_kwargs: dict[str, Any]) -> nn.Module:
    kwargs = dict(arch_kwargs)
    stem = check_stem(entry.name, kwargs.pop("stem", None))
    try:
        model = entry.builder(num_classes=num_classes, **kwargs)
    except TypeError as err:  # an option the constructor does not have
        if not kwargs:
            raise
        raise CnnlabError(f"{entry.name} does not accept the architecture options {sorted(kwargs)}: {err}",
                          fix="remove or rename the option") from err
    if stem == "cifar":
        assert entry.cifar_stem is not None  # check_stem refused it otherwise
        entry.cifar_stem.apply(model)
    return model


def requested_stem(node: Mapping[str, Any]) -> str | None:
    """The stem a `model` / `teacher` / `student` config node asks for: None when not set (the weights' own, else
    the stock stem), else its value in one spelling ("imagenet", "cifar", or whatever else was typed, which
    check_stem refuses). Unlike model_options, an explicit "imagenet" is kept: a checkpoint's stem is compared
    with it."""
    value = node.get("stem")
    return None if value is None else str(value).strip().lower()


def check_stem(name: str, stem: Any, role: str = "model") -> str:
    """The stem `ROLE.stem` asks of network `name`, checked: "imagenet" (the stock stem; also for None) or "cifar".
    Raises CnnlabError for another value, or for "cifar" on a network that has no small-image stem."""
    value = check_stem_value(stem, role)
    entry = get_entry(name)
    if value == "cifar" and entry.cifar_stem is None:
        hint = f"write the stem into {role}.arch (e.g. stem32s1, docs/search.md)" if entry.name == "searched" \
            else f"pick a model that has one: {', '.join(models_with_cifar_stem())}"
        raise CnnlabError(f"{entry.name} has no small-image stem ({role}.stem=cifar)",
                          fix=f"drop {role}.stem, or {hint}")
    return value


def check_stem_value(stem: Any, role: str = "model") -> str:
    """`stem` (None: the stock stem) as "imagenet" or "cifar"; CnnlabError naming `ROLE.stem` for anything else."""
    value = "imagenet" if stem is None else str(stem).strip().lower()
    if value not in STEM_CHOICES:
        raise CnnlabError(f"{role}.stem={stem} is not a stem",
                          fix=f"use {role}.stem=cifar (the small-image stem of {', '.join(models_with_cifar_stem())}) or "
                              f"drop {role}.stem (the stock stem)")
    return value


def stem_hint(name: str, model: nn.Module, image_size: int, stem: str | None) -> str | None:
    """A note for a network trained from scratch with the stock (ImageNet) stem where its last stage sees 1x1 maps
    at `image_size` and `model.stem=cifar` exists for it (ResNet-18 at 28 px: 90.1 % on Fashion-MNIST's test set,
    no better than LeNet-5); None otherwise. `model` is the built network (measured on one zero image)."""
    entry = get_entry(name)
    if entry.cifar_stem is None or stem not in (None, "imagenet"):
        return None
    if (smallest_conv_input(model, image_size) or 2) > 1:
        return None
    return (f"{entry.name} at {image_size} px with the ImageNet stem runs its last stage on 1x1 maps; small-image "
            f"recipes keep the first stage at full resolution: model.stem=cifar (more FLOPs an image; docs/models.md)")


def resolution_hint(name: str, image_size: int, arch: Any) -> str | None:
    """A note for model=searched whose architecture string records the search's input size (`r24_...`) when this
    run's images have another: the network then trains and runs at a size the search never measured (the r token
    is informational, docs/search.md). None otherwise."""
    if get_entry(name).name != "searched" or not arch:
        return None
    searched_at = parse_arch(str(arch)).resolution
    if searched_at is None or searched_at == image_size:
        return None
    return (f"model.arch says r{searched_at}: the search trained and timed this network at {searched_at} px, and this "
            f"run's images are {image_size} px — dataset.image_size={searched_at} trains what the search measured")


def models_with_cifar_stem() -> list[str]:
    """The zoo names that model.stem=cifar applies to, in registry order."""
    return [name for name, entry in MODELS.items() if entry.cifar_stem is not None]
