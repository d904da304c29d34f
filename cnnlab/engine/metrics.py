"""Classification metrics: running top-1/top-5/loss kept on the device during training (no host sync per step),
and the full scores of `cnnlab evaluate` — per-class accuracy, confusion matrix, expected calibration error."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from cnnlab.engine.runtime import all_reduce_sum


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """int64 [N, k]: the k highest-scoring classes of each row of `scores` [N, C], best first, equal scores
    ranked by class index (the lower first, as `argmax` and `max(dim)` pick). torch.topk leaves ties in no
    defined order, and an INT8 file's dequantized logits tie often (6 of 32 rows of a quantized EfficientNet-B0):
    quantize's top-1 and evaluate's disagreed on the same file."""
    return torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]


class ClassificationMeter:
    """Sums of loss, top-1 and top-5 hits and sample count; `.compute()` syncs once. With `entropy`, also the sum of
    each output's softmax entropy (nats), whose mean `compute` returns as `entropy` (0: one-hot; ln(classes):
    uniform)."""

    def __init__(self, device: torch.device, *, entropy: bool = False) -> None:
        # loss*n, top1, top5, n (and entropy*n)
        self.sums = torch.zeros(5 if entropy else 4, dtype=torch.float64, device=device)
        self.classes: int | None = None  # the logits' width: top-5 of 5 classes or fewer is 1 by construction

    @torch.no_grad()
    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        n = targets.shape[0]
        self.classes = int(logits.shape[-1])
        k = min(5, logits.shape[-1])
        hits = top_k(logits, k).eq(targets.unsqueeze(-1))
        counts = [loss.detach().double() * n, hits[:, 0].sum().double(), hits.any(dim=-1).sum().double(),
                  torch.tensor(n, dtype=torch.float64, device=self.sums.device)]
        if len(self.sums) == 5:
            log_p = torch.log_softmax(logits.detach().double(), dim=-1)
            counts.append(-(log_p.exp() * log_p).sum())
        self.sums += torch.stack(counts)

    def loss_is_finite(self, *, across_ranks: bool = False) -> bool:
        """Whether the running loss sum is finite; across_ranks: on every rank, so that all ranks stop together (a
        rank that stopped alone would leave the others waiting in the next gradient all-reduce)."""
        broken = (~torch.isfinite(self.sums[:1])).double()
        return not bool((all_reduce_sum(broken) if across_ranks else broken)[0])

    def compute(self, *, across_ranks: bool = False) -> dict[str, float]:
        sums = all_reduce_sum(self.sums) if across_ranks else self.sums
        loss, top1, top5, n, *entropy = sums.tolist()
        n = max(n, 1.0)
        return {"loss": loss / n, "acc": top1 / n, "top5": top5 / n, "n": int(n)} | (
            {"entropy": entropy[0] / n} if entropy else {})


ECE_BINS = 15  # Guo et al. 2017, "On Calibration of Modern Neural Networks"


def expected_calibration_error(confidences: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): Σ_m |B_m|/n · |acc(B_m) − conf(B_m)| over `bins` equal-width confidence bins
    (i/bins, (i+1)/bins]. confidences: [N] top-1 probabilities in [0, 1]; correct: [N] bools (top-1 right).
    A number in [0, 1]; 0 for an empty set."""
    confidences = confidences.double().flatten()
    if confidences.numel() == 0:
        return 0.0
    index = (confidences * bins).ceil().long().sub(1).clamp(0, bins - 1)  # (lo, hi] bins; 0 falls in the first
    hits = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, correct.double().flatten())
    conf = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, confidences)
    return float((hits - conf).abs().sum() / confidences.numel())  # Σ |B|/n · |hits/|B| − conf/|B||


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [num_classes, num_classes]: row = true class, column = predicted class; sums to N."""
    flat = targets.long() * num_classes + predictions.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


@dataclass(frozen=True)
class ClassificationScores:
    """What `cnnlab evaluate` reports on one split: n images; top1/top5 accuracy and mean cross-entropy `loss`
    (nats); `ece` (15 bins); `confusion` [C, C] (rows true, columns predicted); per-class accuracy = recall
    (None for a class with no image in the split)."""

    n: int
    top1: float
    top5: float
    loss: float
    ece: float
    confusion: torch.Tensor
    # Per image, in the split's order: [N] int64 true class, [N] int64 predicted class, [N] float top-1 probability
    # (what a paired comparison of two models on the same images needs: evaluate's predictions.csv).
    targets: torch.Tensor | None = None
    predicted: torch.Tensor | None = None
    confidence: torch.Tensor | None = None

    @property
    def correct(self) -> int:
        """Images whose top-1 class is their label (the confusion matrix's diagonal)."""
        return int(self.confusion.diagonal().sum())

    @property
    def per_class(self) -> list[float | None]:
        totals = self.confusion.sum(dim=1)
        return [None if int(t) == 0 else float(self.confusion[i, i]) / int(t) for i, t in enumerate(totals.tolist())]


class ScoreAccumulator:
    """Collects, batch by batch, what ClassificationScores needs (per image: 4 numbers, on the CPU)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self._confidence: list[torch.Tensor] = []
        self._predicted: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._top5: list[torch.Tensor] = []
        self._loss = 0.0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, targets: torch.Tensor, probabilities: torch.Tensor | None = None) -> None:
        """logits: [B, C] float (the cross-entropy's input); targets: [B] int64 class indices; probabilities:
        [B, C], the model's own for each class (its top one is the confidence ECE bins), None: softmax(logits)."""
        logits, targets = logits.detach().float().cpu(), targets.cpu().long()
        probs = logits.softmax(dim=-1) if probabilities is None else probabilities.detach().float().cpu()
        confidence, predicted = probs.max(dim=-1)
        k = min(5, logits.shape[-1])
        self._confidence.append(confidence)
        self._predicted.append(predicted)
        self._targets.append(targets)
        self._top5.append(top_k(logits, k).eq(targets.unsqueeze(-1)).any(dim=-1))
        self._loss += float(F.cross_entropy(logits, targets, reduction="sum"))

    def compute(self) -> ClassificationScores:
        if not self._targets:
            return ClassificationScores(0, 0.0, 0.0, 0.0, 0.0, torch.zeros(self.num_classes, self.num_classes,
                                                                          dtype=torch.int64))
        targets, predicted = torch.cat(self._targets), torch.cat(self._predicted)
        correct = predicted.eq(targets)
        n = targets.numel()
        confidence = torch.cat(self._confidence)
        return ClassificationScores(
            n=n, top1=float(correct.double().mean()), top5=float(torch.cat(self._top5).double().mean()),
            loss=self._loss / n, ece=expected_calibration_error(confidence, correct),
            confusion=confusion_matrix(targets, predicted, self.num_classes),
            targets=targets, predicted=predicted, confidence=confidence)
