"""The kNN monitor: how good a representation is while it trains, without training a classifier.

Weighted k-nearest-neighbour classification in the backbone's feature space (Wu, Xiong, Yu & Lin 2018,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination", arXiv:1805.01978, §3.4 — the monitor
that lightly, solo-learn and the MoCo/SimSiam CIFAR demos report): features are L2-normalised; each validation
image takes its k most cosine-similar images of a labelled memory bank (the training split, deterministic
transform), each voting for its class with weight exp(similarity / temperature); the class with the most weight
wins. k = 200 is Wu et al.'s; temperature 0.1 is the MoCo CIFAR demo's and lightly's benchmarks' (Wu et al.'s code
used 0.07).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.engine.checkpoint import unwrap
from cnnlab.engine.progress import Progress, make_progress
from cnnlab.engine.runtime import Runtime, all_reduce_sum

Features = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def knn_predict(queries: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int, *,
                k: int = 200, temperature: float = 0.1) -> torch.Tensor:
    """Predicted class [Q] of each query [Q, D] by weighted kNN over `bank` [B, D] with `bank_labels` [B]
    (both sets L2-normalised here; k is capped at B)."""
    queries, bank = F.normalize(queries.float(), dim=1), F.normalize(bank.float(), dim=1)
    similarity, index = (queries @ bank.T).topk(min(k, bank.shape[0]), dim=1)
    # exp((s - s_max) / T): the same vote as exp(s / T) scaled per query, which overflowed float32 once s / T > 88.7
    # (T = 0.01: classes tied at inf and the lowest index won, 28 % for a 65 % backbone; probe 65)
    weights = ((similarity - similarity[:, :1]) / temperature).exp()
    scores = torch.zeros(queries.shape[0], num_classes, device=queries.device, dtype=weights.dtype)
    scores.scatter_add_(1, bank_labels[index], weights)
    return scores.argmax(dim=1)


def _penultimate(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return unwrap(model).features(images)  # type: ignore[operator]


class KnnMonitor:
    """A `Validation` for the engine: {"knn_acc": top-1 of weighted kNN} of `model`'s features on the validation
    loader, with the memory bank recomputed from `bank_loader` ((image, label) batches, deterministic transform)
    every time. `features(model, images)` gives the representation (default: `model.features(images)`, a
    SiameseNetwork's backbone output), in float32 even under bf16 training. Under torch.distributed each rank
    scores its shard of the validation split against the whole bank and the hits are summed over the ranks."""

    def __init__(self, bank_loader: DataLoader, num_classes: int, *, k: int = 200, temperature: float = 0.1,
                 features: Features = _penultimate) -> None:
        self.bank_loader = bank_loader
        self.num_classes = num_classes
        self.k = k
        self.temperature = temperature
        self.features = features

    @torch.inference_mode()
    def _embed(self, model: nn.Module, loader: DataLoader, runtime: Runtime, progress: Progress,
               desc: str) -> tuple[torch.Tensor, torch.Tensor]:
        vectors, labels = [], []
        # float32 whatever the network trains in, as trainer.evaluate: the knn_acc recorded is the saved model's
        runtime = replace(runtime, amp_dtype=None)
        task = progress.add_task(desc, total=len(loader), status="")
        for batch in loader:
            with runtime.autocast():
                out = self.features(model, runtime.to_device(batch[0]))
            vectors.append(F.normalize(out.float().flatten(1), dim=1))
            labels.append(runtime.to_device(batch[1]).long())
            progress.advance(task)
        progress.remove_task(task)
        if not vectors:
            return torch.zeros(0, 1, device=runtime.device), torch.zeros(0, dtype=torch.long, device=runtime.device)
        return torch.cat(vectors), torch.cat(labels)

    @torch.inference_mode()
    def __call__(self, model: nn.Module, loader: DataLoader, runtime: Runtime,
                 progress: Progress | None = None) -> dict[str, float]:
        progress = progress or make_progress(enabled=False)
        model.eval()
        bank, bank_labels = self._embed(model, self.bank_loader, runtime, progress, "kNN bank")
        queries, labels = self._embed(model, loader, runtime, progress, "kNN val")
        hits = torch.zeros(2, dtype=torch.float64, device=runtime.device)
        for start in range(0, queries.shape[0], 1024):  # bounded memory: 1024 x bank similarities at a time
            chunk = slice(start, start + 1024)
            predicted = knn_predict(queries[chunk], bank, bank_labels, self.num_classes, k=self.k,
                                    temperature=self.temperature)
            hits[0] += (predicted == labels[chunk]).sum()
        hits[1] = queries.shape[0]
        if runtime.distributed:
            hits = all_reduce_sum(hits)
        correct, total = hits.tolist()
        return {"knn_acc": correct / max(total, 1.0)}
