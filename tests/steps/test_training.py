"""steps/training.py: the default DataLoader workers follow the job's share of the cores."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cnnlab import environment
from cnnlab.environment import PARALLEL_JOBS_ENV
from cnnlab.steps.training import loader_workers


@pytest.mark.parametrize(("cores", "jobs", "expected"), [(2, 1, 1), (2, 2, 0), (8, 2, 3), (16, 1, 4), (1, 1, 0)])
def test_default_workers_are_the_jobs_share_less_one(monkeypatch: pytest.MonkeyPatch, cores: int, jobs: int,
                                                    expected: int) -> None:
    monkeypatch.setattr(environment, "cpu_info", lambda: {"usable_cores": cores})
    monkeypatch.setenv(PARALLEL_JOBS_ENV, str(jobs))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    files = SimpleNamespace(in_memory=False)
    assert loader_workers(SimpleNamespace(workers=None), files) == expected  # type: ignore[arg-type]
    assert loader_workers(SimpleNamespace(workers=None), SimpleNamespace(in_memory=True)) == 0  # type: ignore[arg-type]
    assert loader_workers(SimpleNamespace(workers=3), files) == 3  # type: ignore[arg-type]


def test_a_resumed_training_with_no_epoch_left_keeps_the_state_it_continued(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An extended search that chose the same trial again trained no epoch and wrote no last.pt, yet recorded it
    as its checkpoint: extending that run again failed."""
    from cnnlab.steps.training import keep_state

    old, new = tmp_path / "old" / "last.pt", tmp_path / "new" / "last.pt"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_bytes(b"state")
    ctx = SimpleNamespace(is_main=True)
    keep_state(ctx, new, None)  # a fresh run: nothing to keep
    assert not new.exists()
    keep_state(ctx, new, old)
    assert new.read_bytes() == b"state"
    new.write_bytes(b"trained on")  # a run that trained writes its own: never replaced
    keep_state(ctx, new, old)
    assert new.read_bytes() == b"trained on"
