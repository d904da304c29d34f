"""deploy/paired.py's default thread count: the physical cores, shared among the jobs running at once."""

from __future__ import annotations

import pytest

from cnnlab.deploy.paired import default_threads, threads_or_default
from cnnlab.deploy.peak import physical_cores


def test_default_threads_are_the_physical_cores_of_a_lone_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNLAB_PARALLEL_JOBS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == physical_cores()
    assert threads_or_default(None) == threads_or_default(0) == physical_cores() and threads_or_default(3) == 3


def test_jobs_side_by_side_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweep jobs timing at once must not each ask for every core (issue 19: 1.7x slower together)."""
    monkeypatch.setenv("CNNLAB_PARALLEL_JOBS", "2")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == max(1, physical_cores() // 2)
    monkeypatch.setenv("CNNLAB_PARALLEL_JOBS", str(4 * physical_cores()))
    assert default_threads() == 1  # never zero


def test_a_paired_ratio_measures_a_direction_only_when_every_round_agrees() -> None:
    """Probe 105: quantize shipped "1.94× faster" from rounds 2.04, 0.99, 1.94; probe 113: a stable 1.0047 whose
    rounds read 1.0047, 0.8831, 0.9445 was "measured faster". PairedRatio.faster: the side of 1 the ratio and every
    round are on, else None; a record without rounds by its ratio."""
    from cnnlab.deploy.paired import PairedRatio

    assert PairedRatio(1.94, (2.04, 0.99, 1.94)).faster is None
    assert PairedRatio(2.0, (1.5, 2.0, 2.5)).faster is True and PairedRatio(0.5, (0.4, 0.5, 0.6)).faster is False
    assert PairedRatio(1.0047, (1.0047, 0.8831, 0.9445)).faster is None   # stable (12.9 % apart), yet no direction
    assert PairedRatio(0.99, (0.98, 0.99, 1.01)).faster is None and PairedRatio(1.2).faster is True
    assert PairedRatio(0.97, (0.96, 0.97, 0.99)).faster is False
    assert PairedRatio(1.94, (2.04, 0.99, 1.94)).text("FP32") == \
        "1.94× faster than FP32 (unstable: 1.01× slower to 2.04× faster)"


def test_a_paired_speed_up_is_the_median_of_its_per_round_ratios() -> None:
    """Probe 192: the same file timed twice, A rounds 0.654/0.651/0.399 ms and B 0.668/0.450/0.405 ms. Both median
    rounds were round 2, so the ratio of the medians was that round's 1.45× — the most extreme one — where the rounds
    taken side by side gave 0.979, 1.447 and 0.985: 1.02× slower. An even count takes the geometric middle, so A over
    B is exactly the reciprocal of B over A."""
    from cnnlab.deploy.paired import PairedRatio, paired_speedup

    a, b = (0.654, 0.651, 0.399), (0.668, 0.450, 0.405)
    rounds = tuple(x / y for x, y in zip(a, b))
    assert paired_speedup(rounds) == pytest.approx(0.399 / 0.405)
    assert PairedRatio.of_rounds(rounds, 0.651 / 0.450).ratio == pytest.approx(0.985, abs=1e-3)
    assert paired_speedup((2.0, 8.0)) == pytest.approx(4.0) and paired_speedup((0.5, 0.125)) == pytest.approx(0.25)
    assert paired_speedup((), 1.3) == 1.3  # a record that kept no rounds: the ratio of its two p50s
    with pytest.raises(ValueError):
        paired_speedup(())


def test_a_paired_timing_pairs_its_speed_up_round_by_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """time_paired's PairedTiming.speedup (prune's recorded speed-up) on the rounds above: 1.02× slower, not 1.45×
    faster."""
    from cnnlab.deploy import bench, paired

    p50 = {("a", 0): 0.654, ("b", 0): 0.668, ("a", 1): 0.651, ("b", 1): 0.450, ("a", 2): 0.399, ("b", 2): 0.405}
    calls: list[str] = []

    def fake_time_onnx(path, batch, **_):  # noqa: ANN001, ANN202 - the stand-in for one timing
        name = str(path)
        value = p50[(name, calls.count(name))]
        calls.append(name)
        return bench.LatencyStats("onnxruntime", "cpu", batch, 1, 10, value, value, value, value, 0.0, value,
                                  batch / value, None, None)

    monkeypatch.setattr(bench, "time_onnx", fake_time_onnx)
    timing = paired.time_paired({"A": "a", "B": "b"}, paired.PairedSettings(batch_sizes=(8,), threads=1))
    assert timing["A"].stats[8].p50_ms == 0.651 and timing["B"].stats[8].p50_ms == 0.450  # each its median round
    assert timing.speedup("A", "B", 8) == pytest.approx(0.399 / 0.405)
    assert timing.speedup("B", "A", 8) == pytest.approx(0.405 / 0.399)
