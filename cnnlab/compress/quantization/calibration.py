"""Calibration data for static quantization: a few batches of the run's own training images.

The batches are drawn once (a seeded shuffle, so every class is represented even when the split is stored
class by class) and kept as numpy arrays: onnxruntime's calibrator reads them once per collection pass, and
every candidate format reuses the ranges computed from them (see ptq.quantize_static_candidate).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from torch.utils.data import DataLoader, Dataset

from cnnlab.data import make_loader
from cnnlab.errors import CnnlabError, found_before_work


class CalibrationReader(CalibrationDataReader):
    """onnxruntime's data-reader protocol over fixed batches. `set_range` lets the calibrator collect one slice
    at a time (quantize_static's CalibStridedMinMax), so only one batch of activations is held in memory."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = batches
        self._window = (0, len(batches))
        self._next: Iterator[np.ndarray] = iter(())
        self.rewind()

    @property
    def images(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def rewind(self) -> None:
        self._next = iter(self.batches[self._window[0]:self._window[1]])

    def set_range(self, start_index: int, end_index: int) -> None:
        self._window = (start_index, end_index)
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._next, None)
        return None if batch is None else {self.input_name: batch}


def calibration_batches(dataset: Dataset, *, batches: int, batch_size: int, seed: int,
                        workers: int = 0, whole: bool = False) -> list[np.ndarray]:
    """The first `batches` batches of a seeded shuffle of `dataset` (fewer if the split is smaller); with `whole`
    (a model whose batch is fixed to `batch_size`), full batches only (probe 95: 130 images in batches of 4 ended in
    a batch of 2, which such a file cannot take)."""
    with found_before_work():
        if batches < 1:
            raise CnnlabError(f"quantize.calib_batches={batches}: static quantization needs calibration images",
                              fix="use quantize.calib_batches=8 (or more)")
        if batch_size < 1:
            raise CnnlabError(f"quantize.calib_batch_size={batch_size} must be at least 1")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise CnnlabError("the calibration set is empty: the source's dataset has no training images",
                          fix="use a dataset with a training split (dataset=...)")
    if whole and len(dataset) < batch_size:  # type: ignore[arg-type]
        raise CnnlabError(f"the model's batch is fixed to {batch_size} and the training split holds only "
                          f"{len(dataset)} images to calibrate with",  # type: ignore[arg-type]
                          fix="export the model with a dynamic batch (`cnnlab export source=RUN` does), or give "
                              "more training images")
    loader: DataLoader = make_loader(dataset, batch_size, shuffle=True, seed=seed, workers=workers, drop_last=whole)
    drawn = []
    for images, *_ in loader:
        drawn.append(images.float().contiguous().numpy())
        if len(drawn) == batches:
            break
    return drawn


def calibration_shortfall(images: int, *, batches: int, batch_size: int, num_classes: int) -> str | None:
    """A one-line warning when the calibration set drawn (`images`) is smaller than asked for (batches x
    batch_size: the split is too small) or than the number of classes (some classes cannot be represented, so
    their activation ranges may be clipped); None when it is neither."""
    asked = batches * batch_size
    problems = []
    if images < asked:
        problems.append(f"fewer than the {asked} asked for (quantize.calib_batches={batches} x "
                        f"quantize.calib_batch_size={batch_size}): the training split holds no more")
    if images < num_classes:
        problems.append(f"fewer than the {num_classes} classes (some classes are not represented)")
    if not problems:
        return None
    return (f"static quantization calibrates on {images} training images, " + " and ".join(problems)
            + ": the activation ranges may not cover what the validation images produce")
