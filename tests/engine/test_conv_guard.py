"""engine/conv_guard.py: a convolution narrower than its stride gets a right weight gradient under CPU bf16 autocast."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from cnnlab.engine.conv_guard import narrow_convs_in_float32


def _weight_gradients(conv: nn.Conv2d, images: torch.Tensor, guarded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(the weight gradient under bf16 autocast, the float64 reference) for sum(conv(images) * a fixed gradient)."""
    conv.weight.grad = None
    grad_out = torch.randn(conv(images).shape, generator=torch.Generator().manual_seed(1))
    with narrow_convs_in_float32(conv) if guarded else contextlib.nullcontext():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(images)
        (out.float() * grad_out).sum().backward()
    reference = conv.weight.detach().double().requires_grad_()
    (nn.functional.conv2d(images.double(), reference, None, conv.stride, conv.padding, conv.dilation, conv.groups)
     * grad_out.double()).sum().backward()
    return conv.weight.grad.clone(), reference.grad


@pytest.mark.parametrize("groups", [64, 1], ids=["depthwise", "dense"])
def test_a_stride_2_conv_on_a_1x1_map_gets_the_exact_weight_gradient(groups: int) -> None:
    """oneDNN's bf16 weight gradient put values from uninitialised memory (up to 1e28, sometimes NaN) into the taps
    that see only padding, in most of the steps at batch 16 (a MobileNetV2 student at 16 px saved a NaN weight)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, stride=2, padding=1, groups=groups, bias=False).to(memory_format=torch.channels_last)
    garbage = 0
    for _ in range(12):  # the wrong gradient came in 10-90 % of the calls
        images = torch.randn(16, 64, 1, 1).contiguous(memory_format=torch.channels_last)
        grad, reference = _weight_gradients(conv, images, guarded=True)
        padding_only = reference == 0  # the taps outside the 1×1 input
        assert padding_only.sum() == 64 * (64 // groups) * 8
        garbage += bool((grad[padding_only] != 0).any())
    assert garbage == 0, f"{garbage} of 12 weight gradients had values in taps that see only padding"
    torch.testing.assert_close(grad.double(), reference, rtol=1e-4, atol=1e-4)  # float32, not bf16


def test_wider_inputs_keep_bf16_and_the_layer_is_restored_after() -> None:
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=1)
    with narrow_convs_in_float32(nn.Sequential(conv)) as watched:
        assert watched == 1
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv(torch.randn(2, 8, 4, 4)).dtype == torch.bfloat16  # wide enough: still mixed precision
            assert conv(torch.randn(2, 8, 1, 1)).dtype == torch.float32
    assert "forward" not in conv.__dict__ and "_cnnlab_name" not in conv.__dict__
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(2, 8, 1, 1)).dtype == torch.bfloat16  # nothing stays behind


def test_stride_1_layers_are_not_watched() -> None:
    with narrow_convs_in_float32(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1))) as watched:
        assert watched == 0
