"""Seeded, stratified train/val split of a labelled set (digits, a one-level image folder, the training part of
the torchvision sets), and seeded class-balanced label subsets (`dataset.label_fraction`)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset, Subset, TensorDataset

from cnnlab.errors import CnnlabError
from cnnlab.wording import counted

log = logging.getLogger(__name__)


def _val_count(fraction: float, total: int) -> int:
    """How many of `total` items a split with test_size=`fraction` puts in val (scikit-learn's own rounding)."""
    return int(math.ceil(fraction * total))


def stratified_split(labels: Sequence[int], val_fraction: float, seed: int, *, what: str,
                     classes: Sequence[str] | None = None, folder: Path | None = None,
                     layout_fix: str = "", skipped: str = "", alone_fix: str | None = None
                     ) -> tuple[list[int], list[int]]:
    """Indices (train, val), each sorted, with every class in the same proportion in both parts. `classes` (names
    by label), `folder` (where the class folders are: FOLDER/<class>/) and `layout_fix` (another way out, for an
    image folder: give it a val/ split) let the errors name the class, its folder and every fix that works;
    `skipped` ('; skipped 1 (unreadable: 1, first: PATH)') ends the line about a class of one image (probe 97: "class
    dog has a single image" of a dog/ that held two files, one unreadable, said nothing of it); `alone_fix` replaces
    its fix where no image can be added by hand (a downloaded set's files; probe 127).

    Raises CnnlabError when no split exists: a class with a single item (no val_fraction can split it), or a
    val_fraction that leaves val or train with fewer items than there are classes (the fix names one that works)."""
    try:
        fraction = float(val_fraction)
    except (TypeError, ValueError):
        fraction = float("nan")  # reported below, like any other out-of-range value
    if not 0.0 < fraction < 1.0:
        raise CnnlabError(f"{what}: val_fraction must be between 0 and 1, got {val_fraction}",
                          fix="set dataset.val_fraction=0.2 (for example)")
    counts = Counter(int(label) for label in labels)
    total, n_classes = len(labels), len(counts)
    alone = sorted(label for label, count in counts.items() if count < 2)
    if alone:
        names = [classes[label] if classes is not None else str(label) for label in alone]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        places = (" and ".join(f"{folder / name}/" for name in names[:2]) + (", ..." if len(names) > 2 else "")
                  if folder is not None else f"{'class' if len(names) == 1 else 'each of classes'} {shown}")
        layout = f"; or {layout_fix}" if layout_fix else ""
        raise CnnlabError(f"{what}: {'class' if len(names) == 1 else 'classes'} {shown} "
                          f"{'has' if len(names) == 1 else 'have'} a single image, and a split "
                          "by class needs at least 2 per class (one for train, one for val), whatever "
                          f"dataset.val_fraction is{skipped}",
                          fix=alone_fix or f"add at least one more image to {places}{layout}")
    n_val = _val_count(fraction, total)
    if n_val < n_classes or total - n_val < n_classes:
        part, kept = ("val", n_val) if n_val < n_classes else ("train", total - n_val)
        workable = [f / 100 for f in range(1, 100)
                    if n_classes <= _val_count(f / 100, total) <= total - n_classes]  # never empty: 0.5 works
        suggestion = min(workable, key=lambda f: abs(f - fraction))
        raise CnnlabError(f"{what}: dataset.val_fraction={val_fraction} leaves {part} {kept} "
                          f"of the {total} images, and a split by class needs at least one per class ({n_classes}) "
                          "in each part", fix=f"set dataset.val_fraction={suggestion:g}")
    from sklearn.model_selection import train_test_split  # heavy import, only needed here

    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(indices, test_size=fraction, stratify=np.asarray(labels),
                                          random_state=int(seed), shuffle=True)
    train, val = _every_class_in_both([int(i) for i in train_idx], [int(i) for i in val_idx], labels, seed)
    return sorted(train), sorted(val)


def _every_class_in_both(train: list[int], val: list[int], labels: Sequence[int],
                         seed: int) -> tuple[list[int], list[int]]:
    """scikit-learn's proportional split rounds a rare class to nothing (probe 81: a/ 40 and b/ 2 images at
    val_fraction 0.1 gave val 5 a's and no b, scored 100 % on one class without a word): a class missing from one
    part gets one of its items, drawn with `seed`, moved there from the other part (every class has 2 or more)."""
    rng = np.random.default_rng(int(seed))
    for part, into, out_of in (("val", val, train), ("train", train, val)):
        present = {int(labels[i]) for i in into}
        missing = sorted({int(labels[i]) for i in out_of} - present)
        for label in missing:
            members = sorted(i for i in out_of if int(labels[i]) == label)
            moved = members[int(rng.integers(len(members)))]
            out_of.remove(moved)
            into.append(moved)
        if missing:  # probe 84: val grew well past val_fraction (12 % → 21.5 %) without a word
            log.warning("the split by class would leave %s out of %s: one image of each moved there, so val holds %d "
                        "of the %d images (%.1f %%)", counted(len(missing), "class"), part, len(val), len(labels),
                        100 * len(val) / len(labels))
    return train, val


def labels_of(dataset: Dataset) -> list[int]:
    """The label of every item of `dataset`, read without decoding images where the dataset keeps them apart
    (`targets`/`labels` attributes of torchvision sets, TensorDataset, Subsets of those); otherwise item by item."""
    if isinstance(dataset, Subset):
        base = labels_of(dataset.dataset)
        return [base[i] for i in dataset.indices]
    if isinstance(dataset, TensorDataset):
        return [int(v) for v in dataset.tensors[1].tolist()]
    if getattr(dataset, "keeps_labels", False):  # a wrapper that transforms the images only (data/bundle.py)
        return labels_of(dataset.base)  # type: ignore[attr-defined]
    if isinstance(getattr(dataset, "mapping", None), list) and hasattr(dataset, "base"):  # RelabeledDataset
        return [dataset.mapping[label] for label in labels_of(dataset.base)]  # type: ignore[attr-defined]
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
