"""Seeded, stratified train/val split of a labelled set (digits, a one-level image folder, the training part of
the torchvision sets), and seeded class-balanced label subsets (`dataset.label_fraction`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset, TensorDataset

from cnnlab.errors import CnnlabError


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int, *,
                     what: str) -> tuple[list[int], list[int]]:
    """Indices (train, val), each sorted, with every class in the same proportion in both parts."""
    try:
        fraction = float(val_fraction)
    except (TypeError, ValueError):
        fraction = float("nan")  # reported below, like any other out-of-range value
    if not 0.0 < fraction < 1.0:
        raise CnnlabError(f"{what}: val_fraction must be between 0 and 1, got {val_fraction}",
                          fix="set dataset.val_fraction=0.2 (for example)")
    from sklearn.model_selection import train_test_split  # heavy import, only needed here

    indices = np.arange(len(labels))
    try:
        train_idx, val_idx = train_test_split(indices, test_size=fraction, stratify=np.asarray(labels),
                                              random_state=int(seed), shuffle=True)
    except ValueError as exc:  # too few images per class for a stratified split
        raise CnnlabError(f"{what}: cannot split {len(labels)} images into train/val by class ({exc})",
                          fix="add images (at least 2 per class), change dataset.val_fraction, "
                              "or provide separate train/ and val/ folders") from exc
    return sorted(int(i) for i in train_idx), sorted(int(i) for i in val_idx)


def labels_of(dataset: Dataset) -> list[int]:
    """The label of every item of `dataset`, read without decoding images where the dataset keeps them apart
    (`targets`/`labels` attributes of torchvision sets, TensorDataset, Subsets of those); otherwise item by item."""
    if isinstance(dataset, Subset):
        base = labels_of(dataset.dataset)
        return [base[i] for i in dataset.indices]
    if isinstance(dataset, TensorDataset):
        return [int(v) for v in dataset.tensors[1].tolist()]
    for name in ("targets", "labels", "_labels"):
        values = getattr(dataset, name, None)
        if values is not None and len(values) == len(dataset):  # type: ignore[arg-type]
            return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    return [int(dataset[i][1]) for i in range(len(dataset))]  # type: ignore[arg-type]


def label_subset(labels: Sequence[int], fraction: float, seed: int, *, what: str) -> list[int]:
    """Sorted indices of a seeded, class-balanced `fraction` of a labelled set: every class keeps
    round(fraction × its count) items (at least one), drawn at random with `seed`; fraction 1 keeps all.
    For label-efficiency studies (train on 1 %, 10 %, … of the labels, evaluate on the same val/test)."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise CnnlabError(f"{what}: label_fraction must be in (0, 1], got {fraction}",
                          fix="set dataset.label_fraction=0.1 (for example; 1.0 keeps every label)")
    if value == 1.0:
        return list(range(len(labels)))
    rng = np.random.default_rng(int(seed))
    array = np.asarray(labels)
    kept: list[int] = []
    for label in np.unique(array):
        members = np.flatnonzero(array == label)
        count = max(1, int(round(value * len(members))))
        kept.extend(int(i) for i in rng.choice(members, size=count, replace=False))
    return sorted(kept)
