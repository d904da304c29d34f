"""What a dataset builder hands back: raw splits in, transformed splits out.

Builders only know how to find images (`RawSplits`); the transforms are attached in one place
(`registry.build_datasets`) so every dataset gets the same train/eval recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch.utils.data import Dataset

from cnnlab.data.decode import DecodeSummary
from cnnlab.data.spec import InputSpec


@dataclass
class RawSplits:
    """Untransformed splits; items are (uint8 tensor [3,H,W] or RGB PIL image, label)."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    classes: list[str]
    stored_size: int | None  # side of the square images as stored; None = photos of any size
    in_memory: bool
    decode: DecodeSummary | None = None  # files decoded by cnnlab.data.decode: read/converted/skipped counts


@dataclass
class DataBundle:
    name: str
    train: Dataset  # items: (float32 tensor [3,H,W] normalised, int label)
    val: Dataset
    test: Dataset | None
    classes: list[str]
    spec: InputSpec
    random_train_transform: bool  # True if train items are randomly augmented (feature caching is then invalid)
    in_memory: bool  # True for synthetic/digits (DataLoader workers add nothing there)
    decode: DecodeSummary | None = None  # RawSplits.decode, for the run record


class TransformedDataset(Dataset):
    """Applies `transform` to the image of every (image, label) item of `base`; labels become ints."""

    def __init__(self, base: Dataset, transform: Callable[[Any], Any]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index]
        return self.transform(image), int(label)
