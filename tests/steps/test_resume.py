from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from cnnlab.errors import CnnlabError
from cnnlab.runs import RunInfo
from cnnlab.steps.resume import TRAINING_STATE, check_work_left, epochs_left


def _run(tmp_path: Path, status: str, metrics: Any) -> RunInfo:
    return RunInfo(tmp_path / "old", {"status": status, "metrics": metrics})


@pytest.mark.parametrize("trained, asked, refused", [(1, 1, True), (3, 2, True), (3, 4, False)])
def test_a_completed_training_resumes_only_to_train_longer(tmp_path: Path, trained: int, asked: int,
                                                           refused: bool) -> None:
    run, cfg = _run(tmp_path, "completed", {"epochs": trained}), OmegaConf.create({"trainer": {"epochs": asked}})
    if not refused:
        check_work_left(run, cfg, "finetune", TRAINING_STATE)
        return
    with pytest.raises(CnnlabError) as err:
        check_work_left(run, cfg, "finetune", TRAINING_STATE)
    noun = "epoch" if trained == 1 else "epochs"
    assert err.value.message == (f"resume={run.path}: that run is complete (it trained for {trained} {noun}), so "
                                 "there is nothing to continue")
    assert err.value.fix == (f"train it longer: `cnnlab finetune resume={run.path} trainer.epochs={2 * trained}`, "
                             "or start a new run without resume=")


def test_an_unfinished_run_always_has_work_left(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"trainer": {"epochs": 1}})
    for status in ("interrupted", "failed", "running"):
        check_work_left(_run(tmp_path, status, {"epochs": 1}), cfg, "pretrain", TRAINING_STATE)


@pytest.mark.parametrize("metrics", [None, "5", {"epochs": "5"}, {"epochs": True}, {"epochs": -1}, {}])
def test_a_record_without_a_usable_epoch_count_is_not_judged(tmp_path: Path, metrics: Any) -> None:
    """run.json is untrusted: a count that is not a count refuses nothing (and raises no TypeError)."""
    assert epochs_left(_run(tmp_path, "completed", metrics), OmegaConf.create({"trainer": {"epochs": 1}})) is None


def test_a_run_whose_recorded_checkpoint_was_never_written_resumes_from_its_point_file(tmp_path: Path) -> None:
    """A search stopped (or extended with nothing to train) before its chosen model wrote last.pt records last.pt
    as its checkpoint, yet holds its study: resume= refused it, naming the study.db that was there."""
    from cnnlab.steps.resume import ResumePoint, resume_file

    run_dir = tmp_path / "search"
    run_dir.mkdir()
    run = RunInfo(run_dir, {"status": "completed", "artifacts": {"checkpoint": "last.pt"}})
    study = ResumePoint("study.db", "started its trials")
    assert resume_file(run, study) is None and resume_file(run, TRAINING_STATE) is None
    (run_dir / "study.db").write_bytes(b"")
    assert resume_file(run, study) == run_dir / "study.db"
    (run_dir / "last.pt").write_bytes(b"")
    assert resume_file(run, study) == run_dir / "last.pt"  # the recorded one, once it exists
