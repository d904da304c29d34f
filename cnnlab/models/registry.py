"""The model zoo: one entry per network, looked up by name.

`MODELS` is a plain dict literal, so every model exists as soon as this module is imported — nothing depends
on some other module having registered itself first. YAML files name models by these keys, so renaming a
Python module never breaks a config.

Stages are named with dotted module paths (`"layer1"`, `"features.3"`) or, where a stage is a run of
siblings that torchvision keeps in one flat container, a range `"PARENT.FIRST..LAST"` (`"features.2..3"`
is `features[2]` and `features[3]`; `"conv1..maxpool"` is the top-level modules from `conv1` through
`maxpool`). Modules between two stages (pools) have no parameters and belong to neither.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Collection, Mapping

import torchvision.models as tvm
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.lenet import LeNet5
from cnnlab.models.searched import searched_network
from cnnlab.models.small_input import CifarStem, StemStride


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    year: int
    paper: str
    head: str  # dotted path of the final nn.Linear
    stages: tuple[str, ...]  # backbone stages, input → output (see the module docstring for the syntax)
    tv_weights: str | None  # torchvision weights enum member; None when there are no ImageNet weights
    builder: Callable[..., nn.Module]  # builder(num_classes=N, **arch_kwargs): random init, never downloads
    min_size: int = 16  # smallest image_size accepted
    # Tried in order, mildest first, when the stock network cannot take the image size (see factory.py).
    small_input: tuple[StemStride, ...] = ()
    # What `model.stem=cifar` does to this network (None: it has no small-image stem; see small_input.CifarStem).
    cifar_stem: CifarStem | None = None
    # Architecture options the ImageNet weights were trained with (merged into create_model's arch_kwargs).
    pretrained_arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # State-dict keys of the weights file that have no counterpart in the model built here.
    dropped_weight_prefixes: tuple[str, ...] = ()
    # Takes any number of input channels (`in_channels=` arch option): grayscale sets train it in one channel
    # instead of replicating grey into RGB. ImageNet-shaped networks keep 3 so their weights stay usable.
    any_channels: bool = False


def _torchvision(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    return partial(constructor, weights=None)


def _googlenet(**kwargs: Any) -> nn.Module:
    # aux_logits=False always: with the auxiliary classifiers a training-mode forward returns a
    # (logits, aux2, aux1) tuple instead of logits, which every loss, KD objective and export would need
    # to special-case; their weights in the ImageNet file are dropped on load (dropped_weight_prefixes).
    # init_weights=True is torchvision's current default, passed explicitly to silence its FutureWarning.
    return tvm.googlenet(weights=None, **{"init_weights": True, **kwargs, "aux_logits": False})


_MOBILENET_PAPER_V3 = "Searching for MobileNetV3"
_RESNET_PAPER = "Deep Residual Learning for Image Recognition"
_RESNET_STAGES = ("conv1..maxpool", "layer1", "layer2", "layer3", "layer4")
_RESNET_CIFAR_STEM = CifarStem(resnet_conv1=True)
_VGG_PAPER = "Very Deep Convolutional Networks for Large-Scale Image Recognition"

MODELS: dict[str, ModelEntry] = {
    "lenet5": ModelEntry(
        name="lenet5", family="LeNet", year=1998,
        paper="Gradient-Based Learning Applied to Document Recognition",
        head="classifier.4", stages=("features.0..2", "features.3..5", "classifier.0..3"),
        tv_weights=None, builder=LeNet5, any_channels=True,
    ),
    "alexnet": ModelEntry(
        name="alexnet", family="AlexNet", year=2012,
        paper="ImageNet Classification with Deep Convolutional Neural Networks",
        head="classifier.6", stages=("features.0..2", "features.3..5", "features.6..12"),
        tv_weights="AlexNet_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.alexnet), min_size=32,
        # The stock stem (stride 4) needs ≥ 63 px; stride 2 works from 35 px, stride 1 from 32 px.
        small_input=(StemStride("features.0", 2), StemStride("features.0", 1)),
    ),
    "vgg11": ModelEntry(
        name="vgg11", family="VGG", year=2014, paper=_VGG_PAPER,
        # Five max-pools halve 32 px down to 1 px, so 32 px is VGG's natural minimum: no adaptation needed.
        head="classifier.6",
        stages=("features.0..2", "features.3..5", "features.6..10", "features.11..15", "features.16..20"),
        tv_weights="VGG11_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.vgg11), min_size=32,
    ),
    "vgg16": ModelEntry(
        name="vgg16", family="VGG", year=2014, paper=_VGG_PAPER,
        head="classifier.6",
        stages=("features.0..4", "features.5..9", "features.10..16", "features.17..23", "features.24..30"),
        tv_weights="VGG16_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.vgg16), min_size=32,
    ),
    "googlenet": ModelEntry(
        name="googlenet", family="GoogLeNet", year=2014, paper="Going Deeper with Convolutions",
        head="fc",
        stages=("conv1..conv3", "inception3a..inception3b", "inception4a..inception4e", "inception5a..inception5b"),
        tv_weights="GoogLeNet_Weights.IMAGENET1K_V1", builder=_googlenet,
        # The ported weights expect torchvision's transform_input (ImageNet-normalised input re-scaled
        # to the original network's normalisation inside the model).
        pretrained_arch_kwargs={"transform_input": True},
        dropped_weight_prefixes=("aux1.", "aux2."),
    ),
    "resnet18": ModelEntry(
        name="resnet18", family="ResNet", year=2015, paper=_RESNET_PAPER, head="fc", stages=_RESNET_STAGES,
        tv_weights="ResNet18_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.resnet18),
        cifar_stem=_RESNET_CIFAR_STEM,
    ),
    "resnet34": ModelEntry(
        name="resnet34", family="ResNet", year=2015, paper=_RESNET_PAPER, head="fc", stages=_RESNET_STAGES,
        tv_weights="ResNet34_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.resnet34),
        cifar_stem=_RESNET_CIFAR_STEM,
    ),
    "resnet50": ModelEntry(
        name="resnet50", family="ResNet", year=2015, paper=_RESNET_PAPER, head="fc", stages=_RESNET_STAGES,
        tv_weights="ResNet50_Weights.IMAGENET1K_V2", builder=_torchvision(tvm.resnet50),
        cifar_stem=_RESNET_CIFAR_STEM,
    ),
    "mobilenet_v2": ModelEntry(
        name="mobilenet_v2", family="MobileNet", year=2018,
        paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        # One stage per output resolution (112, 56, 28, 14, 7 px at 224 px input).
        head="classifier.1",
        stages=("features.0..1", "features.2..3", "features.4..6", "features.7..13", "features.14..18"),
        tv_weights="MobileNet_V2_Weights.IMAGENET1K_V2", builder=_torchvision(tvm.mobilenet_v2),
        # The CIFAR variant keeps 32 px at full size for two more stages: stem conv and the first 24-channel
        # block's depthwise conv at stride 1 (overall stride 8 instead of 32); every weight keeps its shape.
        cifar_stem=CifarStem(convs=("features.0.0", "features.2.conv.1.0")),
    ),
    "mobilenet_v3_small": ModelEntry(
        name="mobilenet_v3_small", family="MobileNet", year=2019, paper=_MOBILENET_PAPER_V3,
        head="classifier.3",
        stages=("features.0..1", "features.2..3", "features.4..8", "features.9..12"),
        tv_weights="MobileNet_V3_Small_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.mobilenet_v3_small),
    ),
    "mobilenet_v3_large": ModelEntry(
        name="mobilenet_v3_large", family="MobileNet", year=2019, paper=_MOBILENET_PAPER_V3,
        head="classifier.3",
        stages=("features.0..1", "features.2..3", "features.4..6", "features.7..12", "features.13..16"),
        tv_weights="MobileNet_V3_Large_Weights.IMAGENET1K_V2", builder=_torchvision(tvm.mobilenet_v3_large),
    ),
    "efficientnet_b0": ModelEntry(
        name="efficientnet_b0", family="EfficientNet", year=2019,
        paper="EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
        head="classifier.1",
        stages=("features.0..1", "features.2", "features.3", "features.4..5", "features.6..8"),
        tv_weights="EfficientNet_B0_Weights.IMAGENET1K_V1", builder=_torchvision(tvm.efficientnet_b0),
    ),
    # What `cnnlab search` finds: an inverted-residual network written as a string (arch=, models/searched.py;
    # default MobileNetV2), so `model=searched model.arch=STRING` and a search run's model.pt rebuild it anywhere.
    "searched": ModelEntry(
        name="searched", family="Searched", year=2019,
        paper="MnasNet: Platform-Aware Neural Architecture Search for Mobile",
        head="classifier.1", stages=("stem", "blocks", "final"),
        tv_weights=None, builder=searched_network, any_channels=True,
    ),
}

ALIASES: dict[str, str] = {"mobilenet": "mobilenet_v2"}


def canonical_name(name: str, *, role: str = "model", refused: Collection[str] = ()) -> str:
    """The registry key for `name` (case-insensitive; aliases resolved). `role` names the setting in errors
    (model, teacher, student); `refused`: models the caller rejects with a reason of its own, never offered."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in MODELS:
        return key
    names = [n for n in MODELS if n not in refused]
    aliases = {alias: target for alias, target in ALIASES.items() if target not in refused}
    close = difflib.get_close_matches(key, [*names, *aliases], n=1)
    hint = f"did you mean {role}={close[0]}? " if close else ""
    listed = ", ".join(f"{alias} → {target}" for alias, target in aliases.items())
    raise CnnlabError(f"unknown {role} {name!r}",
                      fix=f"{hint}choose one of: {', '.join(names)}" + (f" (aliases: {listed})" if listed else ""))


def get_entry(name: str) -> ModelEntry:
    """The zoo entry of `name` (any case, aliases resolved: canonical_name). Raises CnnlabError for a name not in
    the zoo, naming the closest model and every choice."""
    return MODELS[canonical_name(name)]


def state_dict_channels(name: str, state_dict: Mapping[str, Any], **arch_kwargs: Any) -> int | None:
    """The input channels a state dict of network `name` was trained on — its first convolution's weight's second
    dimension — for a network that takes any channel count (LeNet-5); None for the others (ImageNet-shaped: 3) or a
    state dict without that tensor (loading it then says what is missing)."""
    entry = get_entry(name)
    if not entry.any_channels:
        return None
    from cnnlab.models.factory import create_model  # the registry is below the factory

    reference = create_model(entry.name, num_classes=2, image_size=max(32, entry.min_size), **arch_kwargs)
    first = next((key for key, value in reference.state_dict().items() if value.dim() == 4), None)
    tensor = state_dict.get(first) if first is not None else None
    return int(tensor.shape[1]) if isinstance(tensor, torch.Tensor) and tensor.dim() == 4 else None


def channel_options(name: str, channels: int) -> dict[str, int]:
    """The create_model option that builds network `name` for images of `channels` channels: {"in_channels": 1}
    for a network that takes any channel count (LeNet-5, searched networks) on grayscale images, else {} (an
    ImageNet-shaped network takes 3, and a grayscale image is replicated to fit: data/transforms.py)."""
    return {"in_channels": channels} if channels != 3 and get_entry(name).any_channels else {}
