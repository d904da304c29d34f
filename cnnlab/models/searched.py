"""Inverted-residual networks written as one readable string — what `cnnlab search` finds, buildable anywhere.

An architecture string, in the spirit of timm's block strings (grammar in docs/search.md):

    r32_w0.75_stem16s1_k3e1c16n1s1_k5e6c24n2s2.se_k7e4c40n3s2.se.hs_head1280

    r<int>                 input resolution the search chose (informational: the data sets the input size)
    w<float>               width multiplier on every channel count below except head (default 1)
    stem<int>s<int>        stem: 3x3 convolution, channels, stride
    k<k>e<e>c<c>n<n>s<s>   a stage: n inverted-residual blocks (MBConv) with a k x k depthwise convolution,
                           expansion ratio e, c output channels, stride s on its first block;
      .se                  squeeze-and-excitation in each block (1/4 of the expanded channels)
      .hs | .si            hard-swish | SiLU activation (default: ReLU)
    head<int>              channels of the final 1x1 convolution before pooling (0: none)

`parse_arch` and `format_arch` are inverse: format_arch(parse_arch(s)) == s for a canonical string (the form
format_arch writes), and parse_arch(format_arch(a)) == a. The network's top-level modules are `stem`, `blocks`
(one Sequential per stage), `final`, `pool` and `classifier` (Dropout, Linear): the zoo entry's stages are
stem / blocks / final and its head `classifier.1`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from cnnlab.errors import CnnlabError

ACTIVATIONS = {"re": "relu", "hs": "hardswish", "si": "silu"}   # stage flag → activation name
_FLAG_OF = {name: flag for flag, name in ACTIVATIONS.items()}
_STAGE = re.compile(r"k(?P<k>\d+)e(?P<e>\d+(?:\.\d+)?)c(?P<c>\d+)n(?P<n>\d+)s(?P<s>\d+)(?P<flags>(?:\.[a-z]+)*)")
_STEM = re.compile(r"stem(?P<c>\d+)(?:s(?P<s>\d+))?")
GRAMMAR_HELP = "see docs/search.md: e.g. r32_w1_stem32s2_k3e1c16n1s1_k3e6c24n2s2.se.hs_head1280"
MAX_CHANNELS = 4096
MAX_BLOCKS = 64
_FIELD_NAMES = {"stem": "stem", "head": "head channels", "r": "resolution", "w": "width multiplier"}


@dataclass(frozen=True)
class StageSpec:
    """One stage: `repeats` inverted-residual blocks with a `kernel` x kernel depthwise convolution."""

    kernel: int
    expansion: float
    channels: int
    repeats: int
    stride: int
    se: bool = False
    activation: str = "relu"     # relu | hardswish | silu

    def token(self) -> str:
        flags = (".se" if self.se else "") + (f".{_FLAG_OF[self.activation]}" if self.activation != "relu" else "")
        return f"k{self.kernel}e{_number(self.expansion)}c{self.channels}n{self.repeats}s{self.stride}{flags}"


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: resolution (None: not stated), width multiplier, stem, stages, head channels."""

    stages: tuple[StageSpec, ...]
    width: float = 1.0
    stem_channels: int = 32
    stem_stride: int = 2
    head_channels: int = 1280
    resolution: int | None = None

    def with_resolution(self, resolution: int | None) -> "ArchSpec":
        return replace(self, resolution=resolution)

    @property
    def activation(self) -> str:
        return self.stages[0].activation


def _number(value: float) -> str:
    return f"{value:g}"


MAX_RESOLUTION = 4096  # the largest input side an architecture string may name (r<res>), as dataset.image_size


def _bad(arch: str, detail: str) -> CnnlabError:
    return CnnlabError(f"model.arch={arch!r} is not an architecture string: {detail}", fix=GRAMMAR_HELP)


def format_arch(spec: ArchSpec) -> str:
    """The canonical string of `spec` (see the module docstring)."""
    tokens = [] if spec.resolution is None else [f"r{spec.resolution}"]
    tokens += [f"w{_number(spec.width)}", f"stem{spec.stem_channels}s{spec.stem_stride}",
               *(stage.token() for stage in spec.stages), f"head{spec.head_channels}"]
    return "_".join(tokens)


def parse_arch(arch: str) -> ArchSpec:
    """The ArchSpec an architecture string describes. Raises CnnlabError naming the token that does not parse
    or the value out of range (kernel odd 1..11, stride 1..4, at least one stage, bounded sizes)."""
    text = str(arch).strip()
    if not text:
        raise _bad(text, "it is empty")
    fields: dict[str, object] = {}
    stages: list[StageSpec] = []
    seen: dict[str, str] = {}  # field token kind → the token that set it: a second one would silently win
    for token in text.split("_"):
        kind = next((k for k in ("stem", "head", "r", "w") if token.startswith(k)), None)
        if kind is not None and not _STAGE.fullmatch(token) and kind in seen:
            raise _bad(text, f"{seen[kind]!r} and {token!r} both set the {_FIELD_NAMES[kind]}; keep one")
        if kind is not None:
            seen[kind] = token
        if (stage := _STAGE.fullmatch(token)) is not None:
            stages.append(_stage(text, token, stage))
        elif (stem := _STEM.fullmatch(token)) is not None:
            fields.update(stem_channels=int(stem["c"]), stem_stride=int(stem["s"] or 2))
        elif (match := re.fullmatch(r"head(\d+)", token)) is not None:
            fields["head_channels"] = int(match[1])
        elif (match := re.fullmatch(r"r(\d+)", token)) is not None:
            fields["resolution"] = int(match[1])
        elif (match := re.fullmatch(r"w(\d+(?:\.\d+)?)", token)) is not None:
            fields["width"] = float(match[1])
        else:
            raise _bad(text, f"token {token!r} is none of r<res>, w<width>, stem<c>s<s>, k<k>e<e>c<c>n<n>s<s>[.se][.hs|.si], head<c>")
    if not stages:
        raise _bad(text, "it has no stage (k<k>e<e>c<c>n<n>s<s>)")
    spec = ArchSpec(stages=tuple(stages), **fields)  # type: ignore[arg-type]
    _check(text, spec)
    return spec


def _stage(text: str, token: str, match: re.Match[str]) -> StageSpec:
    flags = [flag for flag in match["flags"].split(".") if flag]
    unknown = [flag for flag in flags if flag != "se" and flag not in ACTIVATIONS]
    activations = [ACTIVATIONS[flag] for flag in flags if flag in ACTIVATIONS]
    if unknown or len(activations) > 1 or flags.count("se") > 1:
        raise _bad(text, f"stage {token!r} has flags {flags}; allowed: .se and one of .hs, .si, .re")
    return StageSpec(kernel=int(match["k"]), expansion=float(match["e"]), channels=int(match["c"]),
                     repeats=int(match["n"]), stride=int(match["s"]), se="se" in flags,
                     activation=activations[0] if activations else "relu")


def _check(text: str, spec: ArchSpec) -> None:
    detail = arch_problem(spec)
    if detail is not None:
        raise _bad(text, detail)


def arch_problem(spec: ArchSpec) -> str | None:
    """What makes `spec` no network cnnlab builds (a value out of range, in words), or None."""
    if not 0 < spec.width <= 4:
        return f"width w{_number(spec.width)} must be in (0, 4]"
    if not 1 <= spec.stem_channels <= MAX_CHANNELS or not 1 <= spec.stem_stride <= 4:
        return "the stem needs 1..4096 channels and stride 1..4"
    if not 0 <= spec.head_channels <= MAX_CHANNELS:
        return "head channels must be in 0..4096"
    if spec.resolution is not None and not 8 <= spec.resolution <= MAX_RESOLUTION:
        return f"resolution r must be in 8..{MAX_RESOLUTION}"
    if sum(stage.repeats for stage in spec.stages) > MAX_BLOCKS:
        return f"more than {MAX_BLOCKS} blocks"
    for stage in spec.stages:
        if stage.kernel % 2 == 0 or not 1 <= stage.kernel <= 11:
            return f"stage {stage.token()}: kernel {stage.kernel} must be odd, 1..11"
        if not 1 <= stage.stride <= 4 or not 1 <= stage.repeats or not 1 <= stage.channels <= MAX_CHANNELS:
            return f"stage {stage.token()}: stride 1..4, n >= 1 and 1..4096 channels"
        if not 1 <= stage.expansion <= 16:
            return f"stage {stage.token()}: expansion {_number(stage.expansion)} must be in 1..16"
    return None


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: the nearest multiple of `divisor`, never below 90 % of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(name: str) -> Callable[..., nn.Module]:
    return {"relu": nn.ReLU, "hardswish": nn.Hardswish, "silu": nn.SiLU}[name]


class InvertedResidual(nn.Module):
    """MBConv (MobileNetV2/V3, EfficientNet): 1x1 expansion → k x k depthwise → squeeze-excitation → 1x1
    projection, with a residual connection when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: float, se: bool,
                 activation: str) -> None:
        super().__init__()
        act = _activation(activation)
        hidden = in_channels if expansion == 1 else make_divisible(in_channels * expansion)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(Conv2dNormActivation(in_channels, hidden, kernel_size=1, activation_layer=act))
        layers.append(Conv2dNormActivation(hidden, hidden, kernel_size=kernel, stride=stride, groups=hidden,
                                           activation_layer=act))
        if se:
            # EfficientNet's SE activations (SiLU, sigmoid) with SiLU, MobileNetV3's otherwise; the squeeze width is
            # MobileNetV3's, 1/4 of the expanded channels, for both (EfficientNet's own is 1/4 of the block's input)
            silu = activation == "silu"
            layers.append(SqueezeExcitation(hidden, make_divisible(hidden // 4), activation=nn.SiLU if silu else nn.ReLU,
                                            scale_activation=nn.Sigmoid if silu else nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(hidden, out_channels, kernel_size=1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class SearchedNet(nn.Module):
    """The network of an ArchSpec (see the module docstring for its modules)."""

    def __init__(self, spec: ArchSpec, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        self.spec = spec
        width = spec.width
        channels = make_divisible(spec.stem_channels * width)
        self.stem = Conv2dNormActivation(in_channels, channels, kernel_size=3, stride=spec.stem_stride,
                                         activation_layer=_activation(spec.activation))
        stages = []
        for stage in spec.stages:
            out = make_divisible(stage.channels * width)
            blocks = []
            for index in range(stage.repeats):
                blocks.append(InvertedResidual(channels, out, stage.kernel, stage.stride if index == 0 else 1,
                                               stage.expansion, stage.se, stage.activation))
                channels = out
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        last_act = _activation(spec.stages[-1].activation)
        self.final = (Conv2dNormActivation(channels, spec.head_channels, kernel_size=1, activation_layer=last_act)
                      if spec.head_channels else nn.Sequential(nn.Identity()))
        features = spec.head_channels or channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(features, num_classes))
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


def _init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialisation."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)


# MobileNetV2 (Sandler et al. 2018) in this grammar: what `model=searched` builds without model.arch.
MOBILENET_V2_ARCH = ("w1_stem32s2_k3e1c16n1s1_k3e6c24n2s2_k3e6c32n3s2_k3e6c64n4s2_k3e6c96n3s1_k3e6c160n3s2_"
                     "k3e6c320n1s1_head1280")


def searched_network(num_classes: int = 1000, arch: str = MOBILENET_V2_ARCH, in_channels: int = 3,
                     dropout: float = 0.2) -> SearchedNet:
    """The zoo builder of `searched`: the network of architecture string `arch` (CnnlabError when it does not
    parse)."""
    return SearchedNet(parse_arch(arch), num_classes=num_classes, in_channels=in_channels, dropout=dropout)


def depth_scaled(repeats: int, depth: float) -> int:
    """Blocks of a stage at depth multiplier `depth` (EfficientNet's ceil)."""
    return max(1, math.ceil(repeats * depth))
