from __future__ import annotations

from typing import Callable

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, create_model, small_input_adaptation
from cnnlab.models.small_input import StemStride

SMALL_NETS = ["lenet5", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
              "mobilenet_v3_large", "efficientnet_b0", "googlenet"]
SIZES = [(name, size) for name in MODELS for size in (32, 64)] + [(name, 16) for name in SMALL_NETS]


@pytest.mark.parametrize(("name", "size"), SIZES)
def test_builds_and_classifies(built_model: Callable[[str, int], nn.Module], name: str, size: int) -> None:
    model = built_model(name, size)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_alias_builds_mobilenet_v2() -> None:
    model = create_model("mobilenet", num_classes=7, image_size=32)
    assert isinstance(model, tvm.MobileNetV2)


@pytest.mark.parametrize("name", [name for name, entry in MODELS.items() if entry.tv_weights])
@pytest.mark.parametrize("size", [32, 64])
def test_parameter_shapes_are_the_stock_networks(name: str, size: int) -> None:
    """Whatever the input size, every tensor but the head's class dimension is torchvision's (so ImageNet loads).
    Shapes alone: both networks are built on the meta device (a VGG's random initialisation took seconds)."""
    with torch.device("meta"):
        options = {"init_weights": True} if name == "googlenet" else {}  # silences a torchvision warning
        stock = tvm.get_model(name, weights=None, **options)  # 1000 classes (googlenet with its aux classifiers)
        built = create_model(name, 7, size)
    entry = MODELS[name]
    expected = {key: tensor.shape for key, tensor in stock.state_dict().items()
                if not key.startswith(entry.dropped_weight_prefixes)}
    actual = {key: tensor.shape for key, tensor in built.state_dict().items()}
    assert actual.keys() == expected.keys()
    head_weight = f"{entry.head}.weight"
    for key, shape in actual.items():
        if key.startswith(entry.head + "."):
            assert shape[0] == 7 and shape[1:] == expected[key][1:]
        else:
            assert shape == expected[key], key
    assert expected[head_weight][0] == 1000


def test_alexnet_takes_the_mildest_adaptation_that_fits(built_model: Callable[[str, int], nn.Module]) -> None:
    assert small_input_adaptation("alexnet", 224) is None
    assert small_input_adaptation("alexnet", 63) is None  # torchvision's documented minimum for AlexNet
    assert small_input_adaptation("alexnet", 48) == StemStride("features.0", 2)
    assert small_input_adaptation("alexnet", 32) == StemStride("features.0", 1)
    assert built_model("alexnet", 32).features[0].stride == (1, 1)
    assert built_model("alexnet", 64).features[0].stride == (4, 4)


def test_networks_that_fit_are_left_stock() -> None:
    assert all(small_input_adaptation(name, 32) is None for name in MODELS if name != "alexnet")


@pytest.mark.parametrize(("name", "size"), [("alexnet", 31), ("vgg16", 24), ("resnet18", 8)])
def test_below_min_size_is_a_user_error(name: str, size: int) -> None:
    with pytest.raises(CnnlabError, match=f"at least {MODELS[name].min_size} px"):
        create_model(name, 7, size)


def test_arch_kwargs_reach_the_constructor() -> None:
    model = create_model("googlenet", 7, 16, transform_input=True)
    assert model.transform_input is True
    assert model.aux1 is None and model.aux2 is None
    model.train()
    assert isinstance(model(torch.randn(2, 3, 16, 16)), torch.Tensor)  # no aux tuple in training mode
    assert create_model("mobilenet_v2", 7, 16, dropout=0.0).classifier[0].p == 0.0


def test_unknown_arch_option_and_bad_class_count_are_user_errors() -> None:
    with pytest.raises(CnnlabError, match="does not accept the architecture options"):
        create_model("resnet18", 7, 32, widht=2)
    with pytest.raises(CnnlabError, match="at least 2 classes"):
        create_model("resnet18", 1, 32)


def test_the_size_error_offers_only_models_that_take_that_size() -> None:
    """LeNet-5 at 8 px was offered "lenet5, resnet18, mobilenet_v3_small take 16 px": itself, and none take 8."""
    with pytest.raises(CnnlabError) as small:
        create_model("lenet5", 4, 8)
    assert small.value.fix == "set dataset.image_size=16 or more"
    with pytest.raises(CnnlabError) as alexnet:
        create_model("alexnet", 4, 16, size_key="bench.image_size")
    offered = alexnet.value.fix.split("takes 16 px (")[1].rstrip(")").split(", ")
    assert "alexnet" not in offered and "searched" not in offered and "lenet5" in offered
    assert all(MODELS[name].min_size <= 16 for name in offered)
