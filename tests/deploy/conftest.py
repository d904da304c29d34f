"""Fixtures for the deploy tests: zoo models whose outputs actually depend on their input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import create_model


def make_lively(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm layers non-trivial statistics and Linear layers unit-scale weights: a freshly initialised
    network's logits are nearly constant (MobileNet's are ~1e-10), which would let a wrong export pass."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.in_features ** 0.5)
    return model.eval()


@pytest.fixture
def lively_model():
    """lively_model(name, image_size, num_classes=4) → an eval-mode zoo model with informative outputs."""

    def build(name: str, image_size: int, num_classes: int = 4) -> nn.Module:
        torch.manual_seed(0)
        return make_lively(create_model(name, num_classes=num_classes, image_size=image_size))

    return build
