"""Seeded, stratified train/val split of a labelled set (digits, a one-level image folder)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

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
