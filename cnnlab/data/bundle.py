"""What a dataset builder hands back: raw splits in, transformed splits out.

Builders only know how to find images (`RawSplits`); the transforms are attached in one place
(`registry.build_datasets`) so every dataset gets the same train/eval recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from cnnlab.data.decode import DecodeSummary
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import Augment


@dataclass
class RawSplits:
    """Untransformed splits; items are (uint8 tensor [C,H,W] or PIL image (RGB, or L for grayscale sets), label).

    test: the official test split (only `cnnlab evaluate` reads it), None when the set has none;
    unlabeled: images without labels (STL-10's 100,000; label -1) for self-supervised pretraining, else None.
    """

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    stored_size: int | None  # side of the square images as stored; None = photos of any size
    in_memory: bool
    decode: DecodeSummary | None = None  # files decoded by cnnlab.data.decode: read/converted/skipped counts
    unlabeled: Dataset | None = None
    content: str | None = None  # a user folder's data.content.folder_digest when it was read
    train_content: str | None = None  # ... of the pictures train and val come from (folder.training_digest)


@dataclass
class DataBundle:
    """Transformed splits at `spec` (registry.build_datasets). train: the training labels kept by
    `label_fraction`; val: for model selection; test: the official test split, read by `cnnlab evaluate` only;
    unlabeled: RawSplits.unlabeled with the eval transform (None for most sets)."""

    name: str
    train: Dataset  # items: (float32 tensor [spec.channels,H,W] normalised, int label)
    val: Dataset
    test: Dataset | None
    classes: list[str]
    spec: InputSpec
    in_memory: bool  # True for synthetic/digits (DataLoader workers add nothing there)
    decode: DecodeSummary | None = None  # RawSplits.decode, for the run record
    label_fraction: float = 1.0  # dataset.label_fraction: the share of the training labels in `train`
    unlabeled: Dataset | None = None
    content: str | None = None  # RawSplits.content, for the run record (dataset.content)
    train_content: str | None = None  # RawSplits.train_content (dataset.train_content)
    stored_size: int | None = None  # RawSplits.stored_size: every raw image is this square; None = photos of any size
    train_augment: Augment = field(default_factory=Augment)  # what `train`'s transform draws (dataset.augment)

    def sizes_line(self) -> str:
        """'2 classes (cats, dogs), 9 train / 3 val images at 16 px' — the classes named (the first 6), since a layout
        misread shows in them first (probe 97: "2 classes" were the splits training_set and test_set)."""
        names = ", ".join(self.classes[:6]) + (f" and {len(self.classes) - 6} more" if len(self.classes) > 6 else "")
        return (f"{len(self.classes)} classes ({names}), {len(self.train)} train / {len(self.val)} val images at "
                f"{self.spec.size} px")

    @property
    def picture_side(self) -> int:
        """The side, in pixels, of the pictures a random crop is cut from: the stored square's, else the median
        shorter side of the files read, else the spec's size."""
        typical = self.decode.typical_side() if self.decode is not None else None
        return self.stored_size or typical or self.spec.size

    @property
    def random_train_transform(self) -> bool:
        """True if train items are randomly augmented (feature caching is then invalid)."""
        return self.train_augment.is_random


class TransformedDataset(Dataset):
    """Applies `transform` to the image of every (image, label) item of `base`; labels become ints."""

    keeps_labels = True  # splits.labels_of reads them from `base`, without decoding an image

    def __init__(self, base: Dataset, transform: Callable[[Any], Any]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index]
        return self.transform(image), int(label)


class RelabeledDataset(Dataset):
    """The (image, label) items of `base` with each label `mapping[label]` (a folder's class index → the model's)."""

    def __init__(self, base: Dataset, mapping: Sequence[int]) -> None:
        self.base = base
        self.mapping = list(mapping)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label, *rest = self.base[index]
        return (image, self.mapping[int(label)], *rest)  # type: ignore[return-value]
