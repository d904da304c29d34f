"""The classification objective: what its loss trains and what its train top-1 scores (cnnlab/engine/objectives.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.engine.objectives import ClassificationObjective

CLASSES = 4


class ReadsTheMix(nn.Module):
    """Images whose channel c is 1 for class c: after MixUp or CutMix each channel's mean is that class's weight in
    the mixed image, so the logits equal the soft targets — a model that always names the dominant class."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) * 100


@pytest.mark.parametrize("mix", [{"mixup": 1.0}, {"cutmix": 1.0}])
def test_train_top1_under_mixing_is_scored_against_the_dominant_label(mix: dict[str, float]) -> None:
    """Probe 129: scored against each image's own label, that model read about 52 % under MixUp and 86 % under
    CutMix; torchvision's references score the argmax of the mixed targets."""
    torch.manual_seed(0)
    labels = torch.arange(64) % CLASSES
    images = torch.zeros(64, CLASSES, 8, 8)
    images[torch.arange(64), labels] = 1.0
    objective = ClassificationObjective(CLASSES, **mix)
    hits = total = 0
    for _ in range(40):  # one weight per batch: enough draws that some give the partner the larger share
        _, logits, targets = objective(ReadsTheMix(), (images, labels))
        weights = logits / 100
        assert torch.equal(targets, weights.argmax(dim=-1))  # the dominant label of each mixed image
        hits, total = hits + int((logits.argmax(dim=-1) == targets).sum()), total + len(targets)
    assert hits == total


def test_without_mixing_the_targets_are_the_labels() -> None:
    labels = torch.tensor([0, 3, 1])
    images = torch.zeros(3, CLASSES, 4, 4)
    _, _, targets = ClassificationObjective(CLASSES, label_smoothing=0.1)(ReadsTheMix(), (images, labels))
    assert torch.equal(targets, labels)
