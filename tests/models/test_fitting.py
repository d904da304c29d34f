"""models/fitting.py: which zoo network a state dict was saved from."""

from __future__ import annotations

import torchvision

from cnnlab.models import create_model
from cnnlab.models.fitting import networks_fitting


def test_a_state_dict_names_the_network_it_was_saved_from_whatever_its_head() -> None:
    assert networks_fitting(torchvision.models.resnet18(num_classes=10).state_dict(), 16) == ["resnet18"]
    assert networks_fitting(torchvision.models.mobilenet_v3_small(num_classes=3).state_dict(), 32) == \
        ["mobilenet_v3_small"]
    assert networks_fitting(create_model("lenet5", 4, 16).state_dict(), 16) == ["lenet5"]


def test_a_state_dict_of_no_zoo_network_or_other_channels_fits_none() -> None:
    lenet = create_model("lenet5", 4, 16).state_dict()
    assert networks_fitting(lenet, 16, channels=1) == []  # a 3-channel first convolution
    assert networks_fitting({k: v for k, v in lenet.items() if k != "features.0.weight"}, 16) == []  # a layer short
    assert networks_fitting({**lenet, "extra.weight": lenet["features.0.weight"]}, 16) == []  # a layer too many
