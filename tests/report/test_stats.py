"""mean ± std over seeds and the paired Student t interval, against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from cnnlab.report.stats import Change, Spread, paired_interval, t_quantile

# Two-sided 95 % critical values of Student's t, from a printed t table.
T_TABLE = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("dof", sorted(T_TABLE))
def test_t_quantile_matches_the_table(dof: int) -> None:
    assert t_quantile(dof) == pytest.approx(T_TABLE[dof], abs=5e-4)


def test_three_seeds_mean_and_sample_std() -> None:
    spread = Spread.of([0.90, 0.92, 0.94])
    assert spread is not None and spread.n == 3
    assert spread.mean == pytest.approx(0.92)
    assert spread.std == pytest.approx(0.02)  # sample std (n - 1): sqrt((0.02² + 0 + 0.02²) / 2)
    one = Spread.of([0.5, None])
    assert one is not None and one.n == 1 and one.std is None  # one value: no spread
    assert Spread.of([None, float("nan")]) is None


def test_interval_that_excludes_zero_is_significant() -> None:
    # differences 1.0, 1.2, 1.4 points: mean 1.2, std 0.2, se 0.2 / sqrt(3); t(2 dof) = 4.303
    half = T_TABLE[2] * 0.002 / math.sqrt(3)  # 0.004968
    low, high = paired_interval([0.010, 0.012, 0.014])
    assert low == pytest.approx(0.012 - half, abs=1e-6) and high == pytest.approx(0.012 + half, abs=1e-6)
    assert low == pytest.approx(0.00703, abs=1e-5)
    change = Change("pruning top-1 change", "val", "before pruning", (0.010, 0.012, 0.014))
    assert change.significant is True
    assert change.spread.mean == pytest.approx(0.012) and change.spread.std == pytest.approx(0.002)


def test_interval_that_contains_zero_is_not_significant() -> None:
    # differences +1.0, -2.0, +0.4 points: mean -0.2, std sqrt(0.000252) = 1.587 points
    change = Change("INT8 top-1 change", "val", "FP32", (0.010, -0.020, 0.004))
    half = T_TABLE[2] * math.sqrt(0.000252) / math.sqrt(3)  # 0.03943
    low, high = change.interval
    assert low == pytest.approx(-0.002 - half, abs=1e-5) and high == pytest.approx(-0.002 + half, abs=1e-5)
    assert change.significant is False
    data = change.to_dict()
    assert data["significant"] is False and data["n"] == 3 and data["ci95"][0] == pytest.approx(low)


def test_one_seed_has_no_interval() -> None:
    change = Change("KD gain", "val", "the student alone, same budget", (0.03,))
    assert change.interval is None and change.significant is None and change.spread.std is None
    assert paired_interval([0.03]) is None and paired_interval([]) is None
