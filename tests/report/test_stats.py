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


def test_paired_bootstrap_over_images() -> None:
    from cnnlab.report.stats import paired_bootstrap

    same = [[True, False] * 50]
    assert paired_bootstrap(same, same) == (0.0, 0.0)  # identical outcomes: no difference in any resample
    # 10 % of 1,000 images fixed, none broken: +0.10, SE sqrt(0.1 * 0.9 / 1000) = 0.0095
    before, after = [[i >= 100 for i in range(1000)]], [[True] * 1000]
    low, high = paired_bootstrap(before, after)
    assert 0.10 - 2.6 * 0.0095 < low < 0.10 < high < 0.10 + 2.6 * 0.0095
    assert paired_bootstrap(before, after) == (low, high)  # seeded
    # two seeds: the per-image difference is averaged over the pairs (+0.10 and 0: +0.05)
    low2, high2 = paired_bootstrap(before * 2, [after[0], before[0]])
    assert low2 < 0.05 < high2 and high2 - low2 < high - low
    with pytest.raises(ValueError, match="do not pair up"):
        paired_bootstrap([[True] * 3], [[True] * 4])
