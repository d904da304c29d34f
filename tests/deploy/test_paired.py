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
