"""Spread over seeds and 95 % confidence intervals of paired differences.

A figure measured on several seeds is shown as mean ± std (the sample standard deviation, n - 1 in the
denominator, as timm's and W&B's grouped runs show it). A difference (the KD gain, a pruning or INT8 top-1 change)
is paired: each seed's run gives one difference against its own reference (the baseline student of the same seed,
the model before pruning, the FP32 source), and the 95 % CI of their mean is the Student t interval with n - 1
degrees of freedom. With one seed there is no interval; one that contains zero is "not significant".

On the test split a second interval needs no seeds: both models scored the same images (evaluate's outcomes.csv),
so the paired bootstrap over images (Efron & Tibshirani 1993, percentile interval; resampling images, each seed's
pair kept together) gives the uncertainty of the difference from the finite test set — the interval a single
seed can have.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

LEVEL = 0.95


def t_quantile(dof: int, level: float = LEVEL) -> float:
    """The two-sided Student t critical value: P(|T| <= value) = level with `dof` degrees of freedom."""
    from scipy.stats import t  # imported when needed: `cnnlab report` stays light

    return float(t.ppf(0.5 + level / 2, dof))


@dataclass(frozen=True)
class Spread:
    """One figure over the runs of a seed group (fractions for accuracies, ms for latencies)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Spread | None":
        """The spread of the values that exist; None when there is none."""
        present = tuple(float(v) for v in values if v is not None and math.isfinite(v))
        return cls(present) if present else None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None for a single value."""
        return statistics.stdev(self.values) if self.n > 1 else None


def ratio_mean(ratios: Sequence[float]) -> float:
    """The mean of ratios (speed-ups, > 0): the geometric mean, so 2× and 0.5× average to 1× (the arithmetic mean
    would say 1.25×) and the mean of the inverted ratios is the inverted mean."""
    return statistics.geometric_mean(ratios)


def paired_interval(differences: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The `level` CI of the mean of paired differences (Student t, n - 1 dof); None with fewer than two."""
    n = len(differences)
    if n < 2:
        return None
    mean, std = statistics.fmean(differences), statistics.stdev(differences)
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return mean - half, mean + half


BOOTSTRAP_RESAMPLES = 2000


def paired_bootstrap(reference: Sequence[Sequence[float]], changed: Sequence[Sequence[float]], *,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = LEVEL
                     ) -> tuple[float, float]:
    """Percentile CI of top-1(changed) - top-1(reference) (a fraction) from per-image outcomes.

    reference, changed: [S][N] correct-or-not per image (1/0; a seed run several times: the share of its runs
    correct), for S seeds (pairs) of the same N images in the same order. Images are resampled with replacement
    (the same draw for every pair), the difference averaged over pairs. Seeded: the same outcomes give the same
    interval. ValueError for pairs of different lengths."""
    import numpy as np

    a, b = np.asarray(reference, dtype=np.float64), np.asarray(changed, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] == 0:
        raise ValueError(f"outcomes of shapes {a.shape} and {b.shape} do not pair up image by image")
    per_image = (b - a).mean(axis=0)                       # [N]: the difference each image makes
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, per_image.size, size=(resamples, per_image.size))
    means = per_image[draws].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


@dataclass(frozen=True)
class Change:
    """A difference the report highlights, one value per seed (fractions: 0.01 = one point of top-1).

    what: "KD gain" | "pruning top-1 change" | "INT8 top-1 change"; split: "val" | "test";
    against: what each run is compared with, in words."""

    what: str
    split: str
    against: str
    differences: tuple[float, ...]
    # Test split only: the paired bootstrap CI over the images both models scored, and how many images.
    image_interval: tuple[float, float] | None = None
    images: int = 0
    caveat: str = ""  # what makes the difference not like-for-like (a distill resumed with changed settings)

    @property
    def spread(self) -> Spread:
        """mean ± std of the per-seed differences."""
        return Spread(self.differences)

    @property
    def interval(self) -> tuple[float, float] | None:
        """95 % CI of the mean difference, paired over seeds; None with one seed."""
        return paired_interval(self.differences)

    @property
    def significant(self) -> bool | None:
        """False when the 95 % CI contains zero: the seed interval, else (one seed) the bootstrap over images;
        None when there is neither."""
        interval = self.interval or self.image_interval
        return None if interval is None else not interval[0] <= 0.0 <= interval[1]

    def to_dict(self) -> dict[str, object]:
        interval, spread = self.interval, self.spread
        return {"what": self.what, "split": self.split, "against": self.against, "n": spread.n,
                "differences": list(self.differences), "mean": spread.mean, "std": spread.std,
                "ci95": None if interval is None else list(interval), "significant": self.significant,
                "ci95_images": None if self.image_interval is None else list(self.image_interval),
                "images": self.images, "caveat": self.caveat or None}
