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
