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


# The share of input values on a rounding tie above which the input's range is widened (an image set normalised
# with mean 0.5 puts all of them there; natural data puts ~0.2 % within the tolerance by chance).
_TIED_SHARE = 0.05
_TIE_TOLERANCE = 1e-3   # in INT8 steps: float32 noise on a code near 128 is ~1e-5 steps


def range_off_ties(batches: list[np.ndarray], levels: int = 256) -> tuple[float, float] | None:
    """The input range to calibrate with when min/max calibration would put the pixels on rounding ties; None when
    it would not.

    Min/max calibration of images normalised as (k/255 - 0.5)/std (torchvision's `Normalize(0.5, 0.5)`, among the
    most common choices) gives scale 1/(255 std) — the pixel grid's own step — and every pixel k then quantizes to
    k - 127.5 + zero point: exactly halfway between two INT8 codes, decided by the last float bit of the
    preprocessing (`/255` and `*(1/255)` moved 22 of the 256 codes and the top-1 by 0.8-1.4 points, probe 179).
    Half-to-even rounding of the ties also merged 17-41 pairs of pixel values into one code. Widening the range by
    half a step at each end (scale x 256/255) leaves every pixel at least 1/512 of a step from a tie, so any correct
    preprocessing gives the same codes, 255 of them for the 256 pixel values (only the two beside the mean share
    one; 256 would need the ties back). Ranges as onnxruntime's `compute_scale_zp` forms them
    (zero included; asymmetric, so the zero point is an integer shift common to u8 and s8)."""
    low = min(0.0, min(float(b.min()) for b in batches))
    high = max(0.0, max(float(b.max()) for b in batches))
    if high <= low:
        return None
    step = (high - low) / (levels - 1)
    codes = np.concatenate([b.astype(np.float64).ravel() / step for b in batches])  # + an integer zero point
    tied = np.abs(codes - np.floor(codes) - 0.5) < _TIE_TOLERANCE
    if tied.mean() <= _TIED_SHARE:
        return None
    return low - step / 2, high + step / 2


def asked_for(batches: int, batch_size: int, fixed_batch: int | None = None) -> str:
    """The calibration settings in the user's own words: quantize.calib_batches x quantize.calib_batch_size, or — a
    file whose batch is fixed to `fixed_batch` and a batch size that agrees with it — that many batches of it."""
    if fixed_batch is not None and batch_size == fixed_batch:
        return f"quantize.calib_batches={batches} batches of {fixed_batch}"
    return f"quantize.calib_batches={batches} × quantize.calib_batch_size={batch_size}"


def calibration_shortfall(images: int, *, batches: int, batch_size: int, num_classes: int,
                          drawn_batches: int | None = None, fixed_batch: int | None = None) -> str | None:
    """A one-line warning when the calibration set drawn (`images`, in `drawn_batches`) is smaller than asked for
    (`batches` x `batch_size`, the user's settings: the split is too small) or than the number of classes (some
    classes cannot be represented, so their activation ranges may be clipped); None when it is neither. With
    `fixed_batch` (a file whose batch is fixed) the images were drawn in whole batches of it, the asked-for images
    re-cut into them where `batch_size` differs (pipelines/quantize.fit_fixed_batch; probe: the warning cited the
    re-cut 64 x 4, not the 8 x 32 the user left at their defaults)."""
    asked = batches * batch_size
    problems = []
    if images < asked:
        how = asked_for(batches, batch_size, fixed_batch)
        if fixed_batch is not None and batch_size != fixed_batch:
            how += f", drawn in batches of {fixed_batch}: the model's fixed batch"
        elif fixed_batch is not None:
            how += ": the model's fixed batch"
        holds = "no more" if fixed_batch is None else f"no more whole batches of {fixed_batch}"
        problems.append(f"fewer than the {asked} asked for ({how}): the training split holds {holds}")
    if images < num_classes:
        problems.append(f"fewer than the {num_classes} classes (some classes are not represented)")
    if not problems:
        return None
    drawn = ("" if drawn_batches is None else f" in {drawn_batches} batch{'' if drawn_batches == 1 else 'es'}"
             + ("" if fixed_batch is None else f" of {fixed_batch}"))
    # every training image calibrated (the split is all there is): no image was left out to say "may not cover" of
    # (probe 224: said of a calibration that read the whole split)
    whole = "the whole split" if fixed_batch is None else f"every whole batch of {fixed_batch} the split holds"
    after = (": the activation ranges may not cover what the validation images produce" if images < num_classes
             else f": the activation ranges are those of {whole}")
    return f"static quantization calibrates on {images} training images{drawn}, " + " and ".join(problems) + after
