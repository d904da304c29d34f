"""The top-1's interval over a finite test set (cnnlab/evaluation/intervals.py): Wilson's score interval."""

from __future__ import annotations

import math

import pytest

from cnnlab.evaluation.intervals import accuracy_interval


def wilson(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) in closed form: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    p = correct / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


@pytest.mark.parametrize("correct, n", [(6833, 10000), (0, 10), (10, 10), (3, 7), (9990, 10000)])
def test_the_interval_is_wilsons_and_stays_in_zero_to_one(correct: int, n: int) -> None:
    interval = accuracy_interval(correct, n)
    assert interval is not None
    assert (interval.low, interval.high) == pytest.approx(wilson(correct, n), abs=1e-9)
    assert 0 <= interval.low <= correct / n <= interval.high <= 1


def test_probe_184s_figure_and_its_words() -> None:
    # 6,833 of 10,000: what the probe computed by hand, and what evaluate's log line says
    assert accuracy_interval(6833, 10000).text() == "95% CI 67.41–69.23%"  # type: ignore[union-attr]
    assert accuracy_interval(0, 0) is None
    with pytest.raises(ValueError):
        accuracy_interval(11, 10)
