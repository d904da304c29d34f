"""Spread over seeds and 95 % confidence intervals of paired differences.

A figure measured on several seeds is shown as mean ± std (the sample standard deviation, n - 1 in the
denominator, as timm's and W&B's grouped runs show it). A difference (the KD gain, a pruning or INT8 top-1 change)
is paired: each seed's run gives one difference against its own reference (the baseline student of the same seed,
the model before pruning, the FP32 source), and the 95 % CI of their mean is the Student t interval with n - 1
degrees of freedom. With one seed there is no interval; one that contains zero is "not significant".
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


def paired_interval(differences: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The `level` CI of the mean of paired differences (Student t, n - 1 dof); None with fewer than two."""
    n = len(differences)
    if n < 2:
        return None
    mean, std = statistics.fmean(differences), statistics.stdev(differences)
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class Change:
    """A difference the report highlights, one value per seed (fractions: 0.01 = one point of top-1).

    what: "KD gain" | "pruning top-1 change" | "INT8 top-1 change"; split: "val" | "test";
    against: what each run is compared with, in words."""

    what: str
    split: str
    against: str
    differences: tuple[float, ...]

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
        """False when the 95 % CI contains zero, None with one seed (no interval)."""
        interval = self.interval
        return None if interval is None else not interval[0] <= 0.0 <= interval[1]

    def to_dict(self) -> dict[str, object]:
        interval, spread = self.interval, self.spread
        return {"what": self.what, "split": self.split, "against": self.against, "n": spread.n,
                "differences": list(self.differences), "mean": spread.mean, "std": spread.std,
                "ci95": None if interval is None else list(interval), "significant": self.significant}
