"""The kNN monitor (engine/knn.py): weighted kNN on cosine similarity, and as the engine's per-epoch validation."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.engine.knn import KnnMonitor, knn_predict
from cnnlab.engine.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


def _clusters(per_class: int, classes: int = 4, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around `classes` orthogonal directions (noise 0.1): well separated in cosine similarity."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    points = torch.eye(dim)[labels] * 5 + 0.1 * torch.randn(len(labels), dim, generator=generator)
    return points, labels


def test_well_separated_clusters_are_classified_perfectly() -> None:
    bank, bank_labels = _clusters(50)
    queries, labels = _clusters(10, seed=1)
    assert (knn_predict(queries, bank, bank_labels, 4, k=200, temperature=0.1) == labels).all()
    # k larger than the bank (200 > 4 x 5): every bank image votes, the similar ones carry the weight
    small_bank, small_labels = _clusters(5, seed=2)
    assert (knn_predict(queries, small_bank, small_labels, 4) == labels).all()


def test_random_labels_score_about_chance() -> None:
    generator = torch.Generator().manual_seed(3)
    bank, queries = torch.randn(2000, 32, generator=generator), torch.randn(2000, 32, generator=generator)
    bank_labels, labels = torch.randint(0, 10, (2000,), generator=generator), torch.randint(0, 10, (2000,),
                                                                                            generator=generator)
    accuracy = (knn_predict(queries, bank, bank_labels, 10) == labels).float().mean().item()
    assert 0.06 < accuracy < 0.14


class _Encoder(nn.Module):
    """A model with `features`, as the monitor expects (a SiameseNetwork's backbone output)."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


def test_the_monitor_scores_the_validation_loader_against_the_bank() -> None:
    bank, bank_labels = _clusters(50)
    queries, labels = _clusters(10, seed=1)
    monitor = KnnMonitor(DataLoader(TensorDataset(bank, bank_labels), batch_size=64), 4, k=200, temperature=0.1)
    model = _Encoder()
    assert monitor(model, DataLoader(TensorDataset(queries, labels), batch_size=7), CPU) == {"knn_acc": 1.0}
    flipped = (labels + 1) % 4  # every validation label wrong
    assert monitor(model, DataLoader(TensorDataset(queries, flipped), batch_size=7), CPU) == {"knn_acc": 0.0}
    assert not model.training  # evaluated in eval mode


def test_the_monitor_embeds_in_float32_under_bf16_training() -> None:
    """The knn_acc in run.json was measured under bf16 autocast (trainer.amp=auto on an AMX CPU), not on the
    float32 model that is saved; validation runs in float32 (as trainer.evaluate)."""
    bank, bank_labels = _clusters(20)
    seen: list[bool] = []
    model = _Encoder()

    def features(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
        seen.append(torch.is_autocast_enabled("cpu"))
        return network.features(images)

    bf16 = Runtime(device=torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=False)
    monitor = KnnMonitor(DataLoader(TensorDataset(bank, bank_labels), batch_size=16), 4, features=features)
    assert monitor(model, DataLoader(TensorDataset(bank, bank_labels), batch_size=16), bf16) == {"knn_acc": 1.0}
    assert seen and not any(seen)


def test_a_small_temperature_votes_as_in_float64_not_as_overflowed_float32() -> None:
    """exp(similarity / T) in float32 overflows to inf for similarity / T > 88.7: at T = 0.01 every close neighbour
    weighed inf, the classes tied and the lowest index won (probe 65: 28.13 % for a backbone at 65.33 %)."""
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(300, 16, generator=generator)
    bank_labels = torch.randint(0, 5, (300,), generator=generator)
    queries = bank[:60] + 0.05 * torch.randn(60, 16, generator=generator)  # each close to bank images
    for temperature in (0.1, 0.01, 0.005, 0.001):
        predicted = knn_predict(queries, bank, bank_labels, 5, k=20, temperature=temperature)
        q, b = (torch.nn.functional.normalize(x.double(), dim=1) for x in (queries, bank))
        similarity, index = (q @ b.T).topk(20, dim=1)
        log_weights = similarity / temperature  # the vote in log space: no overflow at any temperature
        scores = torch.stack([torch.where(bank_labels[index] == c, log_weights, -torch.inf).logsumexp(dim=1)
                              for c in range(5)], dim=1)
        assert torch.equal(predicted, scores.argmax(dim=1)), temperature
