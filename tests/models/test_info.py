from __future__ import annotations

import pytest

import cnnlab.models.info as info_module
from cnnlab.models import model_info


def test_info_from_torchvision_meta_without_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_building(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("model_info built a network that has torchvision meta")

    monkeypatch.setattr(info_module, "create_model", no_building)
    info = model_info("resnet18")
    assert info["family"] == "ResNet" and info["year"] == 2015 and "Residual" in info["paper"]
    assert info["params"] == 11_689_512
    assert info["imagenet_acc1"] == pytest.approx(69.758)
    assert info["gflops"] == pytest.approx(3.628, rel=1e-3)  # 2 × torchvision's 1.814 GMACs
    assert model_info("vgg16")["params"] == 138_357_544


def test_info_of_a_network_without_weights_is_counted_with_the_same_head() -> None:
    """Probe 233: LeNet-5 and `searched` were counted with 10 classes beside torchvision's 1000-class figures, so
    `searched`, MobileNetV2 by default, read 2.2 M in `cnnlab list models` and mobilenet_v2 3.5 M."""
    info = model_info("lenet5")
    assert info["params"] == 62_006 - 850 + 85_000  # 3-channel LeNet-5, its last layer 84 x 1000 + 1000
    assert info["weights"] is None and info["imagenet_acc1"] is None and info["gflops"] is None
    assert model_info("searched")["params"] == model_info("mobilenet_v2")["params"] == 3_504_872


def test_alias_info_is_the_target() -> None:
    assert model_info("mobilenet")["name"] == "mobilenet_v2"
