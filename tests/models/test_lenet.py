from __future__ import annotations

import torch

from cnnlab.models.lenet import LeNet5


def test_classic_shapes_at_28_px() -> None:
    model = LeNet5(num_classes=10).eval()
    features = model.features(torch.zeros(1, 3, 28, 28))
    assert features.shape == (1, 16, 5, 5)  # the classic S4 map: the adaptive pool is the identity here
    assert [layer.out_features for layer in model.classifier if isinstance(layer, torch.nn.Linear)] == [120, 84, 10]


def test_any_size_from_16_px_reaches_the_classifier() -> None:
    model = LeNet5(num_classes=4).eval()
    for size in (16, 28, 50):
        assert model(torch.zeros(2, 3, size, size)).shape == (2, 4)
