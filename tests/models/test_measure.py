from __future__ import annotations

from typing import Callable

from torch import nn

from cnnlab.models import count_flops, count_params, create_model


def test_count_params_is_exact() -> None:
    model = create_model("lenet5", 7, 32)
    convs = (3 * 6 * 25 + 6) + (6 * 16 * 25 + 16)
    linears = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 7 + 7)
    assert count_params(model) == convs + linears


def test_count_params_includes_frozen_parameters() -> None:
    model = create_model("lenet5", 7, 32).requires_grad_(False)
    assert count_params(model) == sum(p.numel() for p in model.parameters()) > 0


def test_resnet18_flops_at_224_px(built_model: Callable[[str, int], nn.Module]) -> None:
    model = built_model("resnet18", 32)  # the same network at any size ≥ 16 px
    flops = count_flops(model, 224)
    assert abs(flops - 3.6e9) / 3.6e9 < 0.05  # 1.8 GMACs, 2 FLOPs each


def test_flops_grow_with_the_image_and_mode_is_restored() -> None:
    model = create_model("lenet5", 7, 32).train()
    small, large = count_flops(model, 16), count_flops(model, 64)
    assert 0 < small < large
    assert model.training
