"""Size and compute of a network: parameter count and FLOPs of one forward pass."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """All parameters, trainable or frozen (shared tensors once)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_flops(model: nn.Module, image_size: int) -> int:
    """FLOPs of one eval-mode forward pass on a single `image_size` px image.

    Counted by torch's FlopCounterMode over convolutions and matrix products, one multiply-accumulate being
    2 FLOPs: resnet18 at 224 px is 3.6 GFLOPs (torchvision's "1.81 GFLOPS" meta counts MACs).
    Normalisation, activations and pooling are not counted, as is usual.
    """
    with FlopCounterMode(display=False) as counter:
        forward_one_image(model, image_size)
    return int(counter.get_total_flops())


def smallest_conv_input(model: nn.Module, image_size: int) -> int | None:
    """The smallest side, in px, of any Conv2d's input during one eval-mode forward pass of a single `image_size`
    px image (None: no Conv2d ran). ResNet-18 at 28 px: 1 (its last stage sees 1x1 maps); at 64 px: 2."""
    sides: list[int] = []
    hooks = [module.register_forward_pre_hook(lambda _, args: sides.append(min(args[0].shape[-2:])))
             for module in model.modules() if isinstance(module, nn.Conv2d)]
    try:
        forward_one_image(model, image_size)
    finally:
        for hook in hooks:
            hook.remove()
    return min(sides) if sides else None


def forward_one_image(model: nn.Module, image_size: int) -> None:
    """One eval-mode, gradient-free forward pass of a zero image on the model's device and dtype; the model's
    train/eval mode is restored (eval mode: BatchNorm's running statistics are left as they are)."""
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    image = torch.zeros(1, _input_channels(model), image_size, image_size, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(image)
    finally:
        model.train(was_training)


def _input_channels(model: nn.Module) -> int:
    first_conv = next((module for module in model.modules() if isinstance(module, nn.Conv2d)), None)
    return first_conv.in_channels if first_conv is not None else 3
