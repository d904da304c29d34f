"""Training objectives: what one step computes from a batch.

An objective owns the forward pass, so knowledge distillation (teacher logits, feature hints)
plugs into the same engine as plain classification. It returns (loss, logits, hard targets);
the engine does everything else (autocast, backward, clipping, metrics).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ...


class ClassificationObjective:
    """Cross-entropy with optional label smoothing and MixUp/CutMix (torchvision.transforms.v2)."""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0, mixup: float = 0.0, cutmix: float = 0.0):
        self.label_smoothing = label_smoothing
        self.mix = _batch_mixer(num_classes, mixup, cutmix)

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        images, targets = batch[0], batch[1]
        soft_targets = None
        if self.mix is not None and images.dim() == 4:
            images, soft_targets = self.mix(images, targets)
        logits = model(images)
        loss = F.cross_entropy(logits.float(), soft_targets if soft_targets is not None else targets,
                               label_smoothing=self.label_smoothing)
        return loss, logits, targets


def _batch_mixer(num_classes: int, mixup: float, cutmix: float):  # type: ignore[no-untyped-def]
    from torchvision.transforms import v2

    mixers = []
    if mixup > 0:
        mixers.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        mixers.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)
