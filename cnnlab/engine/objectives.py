"""Training objectives: what one step computes from a batch.

An objective owns the forward pass, so knowledge distillation (teacher logits, feature hints)
and self-supervised learning (engine/selfsup.py) plug into the same engine as plain classification.
It returns (loss, logits, hard targets); the engine does everything else (autocast, backward,
clipping, metrics). An objective may also carry a `validation` (see `Validation`): the engine then
scores each epoch with it instead of classification accuracy.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.engine.progress import Progress
from cnnlab.engine.runtime import Runtime


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ...


class Validation(Protocol):
    """Per-epoch validation metrics of `model` (unwrapped, on the runtime's device) on the validation loader, e.g.
    {"knn_acc": 0.83} (engine/knn.py); they go into the epoch's history entry and log line. An objective with a
    `validation` attribute that is not None replaces the engine's classification `evaluate` with it."""

    def __call__(self, model: nn.Module, loader: DataLoader, runtime: Runtime,
                 progress: Progress | None = None) -> dict[str, Any]:
        ...


def validation_of(objective: Objective) -> Validation | None:
    """The objective's own per-epoch validation, or None for the engine's classification `evaluate`."""
    return getattr(objective, "validation", None)


def accuracy_name_of(objective: Objective) -> str:
    """What the objective's train top-1 measures, as the log and progress bar name it: "acc" (classification) unless
    the objective says otherwise (`accuracy_name`: SimCLR's "contrastive acc", SimSiam's "view-match acc")."""
    return getattr(objective, "accuracy_name", "acc")


def divergence_hint_of(objective: Objective) -> str | None:
    """What the objective's own settings may have to do with a loss that became NaN/inf (its `divergence_hint`
    attribute, e.g. SimCLR's temperature), put first in the engine's fix; None where nothing is known."""
    return getattr(objective, "divergence_hint", None)


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
        # train top-1 of a mixed image: against its dominant label, as torchvision's references score it (utils.accuracy
        # takes the argmax of 2-D targets); against each image's own label a model that always names the dominant class
        # read 52 % under MixUp (probe 129)
        return loss, logits, targets if soft_targets is None else soft_targets.argmax(dim=-1)


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
