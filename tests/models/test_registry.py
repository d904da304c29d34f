from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
import yaml

from cnnlab.errors import CnnlabError
from cnnlab.models import ALIASES, MODELS, canonical_name, count_params, get_entry

MODEL_CONF = Path(__file__).resolve().parents[2] / "cnnlab" / "conf" / "model"


def test_exactly_the_documented_models() -> None:
    assert set(MODELS) == {"lenet5", "alexnet", "vgg11", "vgg16", "googlenet", "resnet18", "resnet34", "resnet50",
                           "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "searched"}
    assert all(key == entry.name for key, entry in MODELS.items())
    assert ALIASES == {"mobilenet": "mobilenet_v2"}


def test_every_model_config_names_a_registered_model() -> None:
    configs = sorted(MODEL_CONF.glob("*.yaml"))
    assert configs
    for config in configs:
        assert yaml.safe_load(config.read_text())["name"] in MODELS, config.name


def test_aliases_and_case_resolve() -> None:
    assert canonical_name("mobilenet") == "mobilenet_v2"
    assert canonical_name(" ResNet18 ") == "resnet18"
    assert get_entry("mobilenet") is MODELS["mobilenet_v2"]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(CnnlabError) as caught:
        canonical_name("resnet19")
    text = str(caught.value)
    assert "resnet19" in text and "did you mean model=resnet18" in text
    assert all(name in text for name in MODELS) and "mobilenet → mobilenet_v2" in text


@pytest.mark.parametrize("name", [name for name, entry in MODELS.items() if entry.tv_weights])
def test_weights_name_matches_the_architecture(name: str) -> None:
    """The weights enum member exists and describes the network the builder makes (1000 classes, meta device)."""
    weights = tvm.get_weight(MODELS[name].tv_weights)
    with torch.device("meta"):
        model = MODELS[name].builder(num_classes=1000)
    assert count_params(model) == weights.meta["num_params"]
    assert len(weights.meta["categories"]) == 1000


def test_channel_options_build_only_networks_that_take_any_channels_for_grayscale() -> None:
    from cnnlab.models import channel_options

    assert channel_options("lenet5", 1) == {"in_channels": 1} and channel_options("searched", 1) == {"in_channels": 1}
    assert channel_options("lenet5", 3) == {} and channel_options("resnet18", 1) == {}
