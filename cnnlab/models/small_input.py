"""Adaptations that let a network built for 224 px images run on small ones.

An adaptation changes only hyper-parameters of existing modules (never a parameter's shape, never a
module's name), so a state dict of the stock network — ImageNet weights included — still loads into the
adapted one. Which adaptation a model gets is decided in `cnnlab.models.factory` from the image size alone,
so rebuilding from a checkpoint reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class StemStride:
    """Give the first convolution a smaller stride: the feature map stays large enough for the later pools.

    AlexNet's 11×11 stride-4 stem turns 32 px into 7 px, which its three 3×3 stride-2 max-pools cannot
    survive (7 → 3 → 1 → nothing); at stride 1 the same filters leave 26 px and the network runs.
    """

    conv: str  # dotted path of the stem Conv2d
    stride: int

    def apply(self, model: nn.Module) -> None:
        conv = model.get_submodule(self.conv)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"{self.conv} is a {type(conv).__name__}, not a Conv2d")
        conv.stride = (self.stride, self.stride)

    def __str__(self) -> str:
        return f"{self.conv} stride {self.stride}"
