"""engine.features: the frozen-feature cache's standardisation and its fold into the head."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from cnnlab.engine.features import STANDARDIZE_EPS, FeatureStandardizer


def test_standardised_features_have_zero_mean_and_unit_variance_and_a_constant_feature_stays_finite() -> None:
    torch.manual_seed(0)
    features = torch.randn(500, 6) * torch.tensor([0.01, 0.1, 1, 10, 100, 0]) + torch.tensor([5, -3, 0, 1, 2, 7.0])
    scaler = FeatureStandardizer.fit(features)
    out, labels = scaler(TensorDataset(features, torch.arange(500))).tensors
    assert torch.equal(labels, torch.arange(500))
    assert torch.allclose(out.mean(0), torch.zeros(6), atol=1e-4)
    var = out.var(0, unbiased=False)
    assert torch.allclose(var[2:5], torch.ones(3), atol=1e-3)
    assert var[0] == pytest.approx(1e-4 / (1e-4 + STANDARDIZE_EPS), rel=1e-2)  # eps damps a tiny feature
    assert torch.equal(out[:, 5], torch.zeros(500))  # never varies: centred, not divided by zero


def test_the_folded_head_on_raw_features_equals_the_head_on_standardised_ones() -> None:
    torch.manual_seed(1)
    features = torch.rand(200, 16) * 0.1 + 0.2  # ReLU features: positive, small, far from zero mean
    scaler = FeatureStandardizer.fit(features)
    head = nn.Linear(16, 5)
    expected = head(scaler(TensorDataset(features)).tensors[0])
    scaler.fold_into(head)
    assert torch.allclose(head(features), expected, atol=1e-5)


def test_folding_refuses_a_head_it_cannot_absorb() -> None:
    scaler = FeatureStandardizer.fit(torch.rand(10, 4))
    with pytest.raises(TypeError, match="nn.Linear with a bias"):
        scaler.fold_into(nn.Linear(4, 2, bias=False))


def _dead_and_alive(n: int = 300) -> torch.Tensor:
    torch.manual_seed(2)
    features = torch.rand(n, 8)
    features[:, [1, 5]] = 0.0  # dead ReLU units: constant on the training images
    return features


def test_a_kept_head_unfolded_and_folded_untrained_is_the_head_it_was() -> None:
    features = _dead_and_alive()
    scaler = FeatureStandardizer.fit(features)
    assert scaler.constant.tolist() == [False, True, False, False, False, True, False, False]
    head = nn.Linear(8, 3)
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    scaler.unfold_from(head)
    assert torch.allclose(head(scaler(TensorDataset(features)).tensors[0]), nn.functional.linear(features, weight, bias),
                          atol=1e-5)  # the unfolded head gives the same outputs on standardised features
    scaler.fold_into(head)
    assert torch.allclose(head.weight, weight, atol=1e-6) and torch.allclose(head.bias, bias, atol=1e-5)


def test_a_dead_unit_that_fires_on_a_val_image_gets_no_316_fold_weight_and_no_316_fold_value() -> None:
    """A unit constant on the training images was divided by sqrt(eps): its random initial weight was multiplied by
    ~316 when folded, and its value on a val image where it fires by 316 while training. A new head now has zero
    weight there, so the trained head and the folded one agree on every image, the val image included."""
    features = _dead_and_alive()
    scaler = FeatureStandardizer.fit(features)
    val = torch.rand(4, 8)  # the dead units fire here
    assert torch.equal(scaler(TensorDataset(val)).tensors[0][:, [1, 5]], val[:, [1, 5]])  # centred, not scaled
    head = nn.Linear(8, 3)
    scaler.zero_constant(head)
    expected = head(scaler(TensorDataset(val)).tensors[0])
    scaler.fold_into(head)
    assert torch.equal(head.weight[:, [1, 5]], torch.zeros(3, 2))
    assert torch.allclose(head(val), expected, atol=1e-5)
