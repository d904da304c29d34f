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


# ---- model.stem=cifar: the small-image stem, chosen by the user (not by image size) -------------------------------

STEM_CHOICES = ("imagenet", "cifar")


@dataclass(frozen=True)
class CifarStem:
    """The CIFAR-style stem: keep a 32 px image at full resolution through the first stage, as the CIFAR recipes do.

    ImageNet networks divide the input by 4 before their first stage (ResNet: 7×7 stride-2 conv, then a stride-2
    max-pool), which leaves 7×7 of a 28 px Fashion-MNIST image and 1×1 by the last stage. The CIFAR variants keep
    the first stage at input resolution (He et al. 2016 §4.2; SimCLR, Chen et al. 2020, appendix B.9: "replace the
    first 7×7 conv of stride 2 with 3×3 conv of stride 1, and remove the first max pooling"). That costs 9–13× the
    FLOPs of the stock network at the same input size (ResNet-18 at 16–28 px; count_flops).

    `convs`: dotted paths of Conv2d layers whose stride becomes 1 (shape-preserving, so ImageNet weights still load);
    `resnet_conv1`: replace `conv1` by a 3×3 stride-1 conv and `maxpool` by identity (conv1's weight changes shape,
    so ImageNet weights no longer fit).
    """

    convs: tuple[str, ...] = ()
    resnet_conv1: bool = False

    @property
    def keeps_shapes(self) -> bool:
        """Whether every parameter keeps the stock network's shape (so its ImageNet weights load)."""
        return not self.resnet_conv1

    def apply(self, model: nn.Module) -> None:
        for path in self.convs:
            StemStride(path, 1).apply(model)
        if self.resnet_conv1:
            old = model.get_submodule("conv1")
            if not isinstance(old, nn.Conv2d):
                raise TypeError(f"conv1 is a {type(old).__name__}, not a Conv2d")
            conv = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                             device=old.weight.device, dtype=old.weight.dtype)
            if old.weight.device.type != "meta":  # torchvision's ResNet initialisation for its convolutions
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            model.conv1 = conv
            model.maxpool = nn.Identity()

    def __str__(self) -> str:
        parts = ["conv1 3×3 stride 1, no max-pool"] if self.resnet_conv1 else []
        parts += [f"{path} stride 1" for path in self.convs]
        return "CIFAR stem: " + ", ".join(parts)
