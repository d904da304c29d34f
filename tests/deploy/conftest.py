"""Fixtures for the deploy tests: zoo models whose outputs actually depend on their input."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="module")
def lenet_onnx_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    """A lively LeNet-5 (16 px, classes "abcd") and its ONNX export (dynamic batch), made once per test module:
    an export takes seconds. Tests must not modify the file."""
    from cnnlab.data.spec import InputSpec
    from cnnlab.deploy.export import export_onnx

    torch.manual_seed(0)
    model = make_lively(create_model("lenet5", num_classes=4, image_size=16))
    path = export_onnx(model, tmp_path_factory.mktemp("lenet") / "m.onnx", spec=InputSpec(16), classes=list("abcd"))
    return model, path
