from __future__ import annotations

import io

import pytest
import torch
import torch_pruning as tp
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import apply_structure, capture_structure, create_model, get_head


def _pruned(name: str, image_size: int) -> nn.Module:
    """`name` after Torch-Pruning removes 30 % of the channels by L2 magnitude (the head's outputs kept)."""
    torch.manual_seed(0)
    model = create_model(name, 7, image_size).eval()
    example = torch.randn(1, 3, image_size, image_size)
    pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=0.3, ignored_layers=[get_head(model, name)])
    pruner.step()
    for module in model.modules():  # non-trivial statistics, so the round trip compares real values
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_pruned_weights_load_into_a_rebuilt_network(name: str) -> None:
    pruned = _pruned(name, 32)
    structure = capture_structure(pruned)
    stock = capture_structure(create_model(name, 7, 32))
    assert structure.keys() == stock.keys() and structure != stock  # pruning did shrink layers

    # The structure travels inside a weights_only checkpoint.
    buffer = io.BytesIO()
    torch.save({"structure": structure}, buffer)
    buffer.seek(0)
    structure = torch.load(buffer, weights_only=True)["structure"]

    rebuilt = create_model(name, 7, 32)
    apply_structure(rebuilt, structure)
    rebuilt.load_state_dict(pruned.state_dict())  # strict: every shape fits
    rebuilt.eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(image), pruned(image))


def test_depthwise_convolutions_keep_one_group_per_channel() -> None:
    structure = capture_structure(_pruned("mobilenet_v2", 32))
    depthwise = structure["features.2.conv.1.0"]
    assert depthwise["groups"] == depthwise["in_channels"] == depthwise["out_channels"] < 144
    assert structure["classifier.1"]["in_features"] < 1280 and structure["classifier.1"]["out_features"] == 7


def test_structure_is_plain_ints() -> None:
    structure = capture_structure(create_model("lenet5", 7, 16))
    assert structure["features.0"] == {"in_channels": 3, "out_channels": 6, "groups": 1}
    assert structure["classifier.4"] == {"in_features": 84, "out_features": 7}
    assert all(type(value) is int for shape in structure.values() for value in shape.values())


def test_applying_the_own_structure_changes_nothing() -> None:
    model = create_model("lenet5", 7, 16)
    before = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    apply_structure(model, capture_structure(model))
    assert all(torch.equal(before[key], tensor) for key, tensor in model.state_dict().items())


def test_structure_of_another_architecture_is_a_user_error() -> None:
    structure = capture_structure(create_model("lenet5", 7, 16))
    with pytest.raises(CnnlabError, match="do not fit"):
        apply_structure(create_model("resnet18", 7, 16), structure)
    with pytest.raises(CnnlabError, match="cannot form 4 groups"):
        apply_structure(create_model("lenet5", 7, 16),
                        {"features.0": {"in_channels": 3, "out_channels": 6, "groups": 4}})
