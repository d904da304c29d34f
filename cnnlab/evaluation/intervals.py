"""The uncertainty of one accuracy measured on a finite test set: the Wilson score interval of a binomial proportion.

A top-1 of 68.33 % on 10,000 test images is a measurement of the model's accuracy on images like them, and 10,000 is
not infinity: the 95 % Wilson interval is 67.41–69.23 %. Wilson (1927) rather than the normal approximation
(p ± 1.96 sqrt(p(1-p)/n)), which leaves [0, 1] and undercovers near 0 and 1 and on small sets (Brown, Cai & DasGupta
2001, "Interval Estimation for a Binomial Proportion"); computed by SciPy's `binomtest(...).proportion_ci`. It is
the interval over images of one model — seeds are another uncertainty (cnnlab report: mean ± std over seeds, and a
paired interval for a difference between two models, report/stats.py).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A proportion's confidence interval: `low` and `high` in [0, 1], at `level`, by `method`."""

    low: float
    high: float
    level: float = LEVEL
    method: str = "wilson"

    def text(self) -> str:
        """"95% CI 67.41–69.23%" (percent, two decimals, as the top-1 beside it)."""
        return f"{self.level:.0%} CI {100 * self.low:.2f}–{100 * self.high:.2f}%"

    def to_dict(self) -> dict[str, float | str]:
        return {"low": self.low, "high": self.high, "level": self.level, "method": self.method}


def accuracy_interval(correct: int, n: int, level: float = LEVEL) -> Interval | None:
    """The Wilson score interval of `correct` right answers out of `n` images at `level` (two-sided); None for n = 0.
    Raises ValueError for correct outside [0, n]."""
    if n <= 0:
        return None
    if not 0 <= correct <= n:
        raise ValueError(f"{correct} correct of {n} images")
    from scipy.stats import binomtest  # imported when needed: SciPy's import is not free

    ci = binomtest(int(correct), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return Interval(float(ci.low), float(ci.high), level)
