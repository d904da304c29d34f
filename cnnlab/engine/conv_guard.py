"""Train convolutions narrower than their stride in float32 under CPU bf16 autocast: oneDNN's weight gradient is wrong.

PyTorch's CPU convolution (oneDNN), under bf16 autocast, computes a wrong *weight* gradient for a Conv2d whose
input is narrower than its horizontal stride (width < stride[1]: a stride-2 convolution on a 1×1 feature map, as
MobileNet, EfficientNet and ResNet have at 16 px and below). The taps that see only padding get values from
uninitialised memory (1e-26 to 1e28, sometimes NaN) in 10-90 % of the steps, for depthwise and dense convolutions
alike; the forward output and the input gradient are right. Measured on torch 2.14.1 (Intel Xeon with AMX), see
docs/training.md ("Mixed precision"); the class of bug is pytorch/pytorch#68868 (oneDNN weight gradient
wrong in edge cases of stride and padding).

What it did to a run: the loss and the validation accuracy stay finite and plausible, while those taps drift to
garbage — a checkpoint that cnnlab's own reader refuses when one is NaN, a gradient norm (trainer.grad_clip) that
the garbage dominates, and weights that are wrong as soon as the network meets a larger image.

`narrow_convs_in_float32` makes such a layer run without autocast (float32) whenever its input is narrower than
its stride; every other layer keeps bf16. The layers it switches work on 1×1 maps, so the cost is small.
"""

from __future__ import annotations

import contextlib
import logging
import types
from typing import Any, Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)

_SAID: set[str] = set()  # one log line per run and layer (a search trains many candidates)


def forget_notes() -> None:
    """A new run (a sweep's next job in this process) says its layers again."""
    _SAID.clear()


def is_narrower_than_stride(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether input `x` [N, C, H, W] (or [C, H, W]) is narrower than `conv`'s horizontal stride."""
    return x.dim() >= 3 and x.shape[-1] < conv.stride[1]


def _guarded_forward(self: nn.Conv2d, x: torch.Tensor) -> Any:
    forward = type(self).forward
    if not (x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and is_narrower_than_stride(self, x)):
        return forward(self, x)
    name = getattr(self, "_cnnlab_name", "a convolution")
    if name not in _SAID:
        _SAID.add(name)
        log.info("%s sees a %d×%d input with stride %s: it trains in float32, as oneDNN's bf16 weight gradient is "
                 "wrong for an input narrower than the stride (docs/training.md)", name, x.shape[-2], x.shape[-1],
                 tuple(self.stride))
    with torch.autocast("cpu", enabled=False):
        return forward(self, x.float())


@contextlib.contextmanager
def narrow_convs_in_float32(model: nn.Module) -> Iterator[int]:
    """Within this block, every strided Conv2d of `model` runs in float32 (autocast off) on any call where it is on
    the CPU under autocast and its input is narrower than its stride; yields how many layers are watched. The
    layers' own forward is restored on exit (nothing of this reaches a saved model)."""
    watched = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.stride[1] > 1]
    for name, conv in watched:
        conv._cnnlab_name = name or "the model"  # type: ignore[assignment]
        conv.forward = types.MethodType(_guarded_forward, conv)  # type: ignore[method-assign]
    try:
        yield len(watched)
    finally:
        for _, conv in watched:
            conv.__dict__.pop("forward", None)
            conv.__dict__.pop("_cnnlab_name", None)
