from __future__ import annotations

import pytest
import torch

from cnnlab.data.digits import build_digits, load_digit_images
from cnnlab.data.spec import InputSpec


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_digit_images(16)


def test_images_are_upscaled_grey_replicated_to_rgb(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = digits
    assert images.shape == (1797, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 1], images[:, 2])
    assert images.max() > 200 and images.min() == 0  # ink reaches near white on a black ground
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_split_is_stratified_and_seeded() -> None:
    cfg = {"val_fraction": 0.25, "seed": 0}
    raw = build_digits(cfg, InputSpec(8))
    assert raw.classes == [str(d) for d in range(10)]
    assert len(raw.train) + len(raw.val) == 1797 and abs(len(raw.val) - 0.25 * 1797) <= 1
    labels = raw.train.dataset.tensors[1]
    val_counts = torch.bincount(labels[raw.val.indices], minlength=10).float()
    all_counts = torch.bincount(labels, minlength=10).float()
    assert torch.allclose(val_counts / all_counts, torch.full((10,), 0.25), atol=0.02)
    assert not set(raw.train.indices) & set(raw.val.indices)
    assert build_digits(cfg, InputSpec(8)).val.indices == raw.val.indices
    assert build_digits({**cfg, "seed": 1}, InputSpec(8)).val.indices != raw.val.indices
