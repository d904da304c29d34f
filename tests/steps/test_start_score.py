"""steps/start_score.py: a training that starts from a classifier already trained on its classes scores it first, and
says so when it ends below that start (probe 218: an 85.56 % student ended at 23.06 %, its baseline at 13.61 %, and
distill reported "KD gain +9.44" without a word)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.steps.start_score import StartScore
from helpers import TINY, only_run, read_run

BELOW = "ended below where it started"


@pytest.mark.parametrize(("start", "n", "final", "lost"), [
    (0.8556, 360, 0.2306, True),   # probe 218
    (0.8556, 360, 0.8250, False),  # 3.06 points: inside two standard errors at 360 images (3.70)
    (0.8556, 360, 0.8150, True),   # 4.06 points: outside
    (0.56, 32, 0.40, False),       # 32 images: 17.5 points of wobble
    (1.0, 1000, 0.995, False),     # a perfect start has no wobble, but half a point is no loss
    (1.0, 1000, 0.985, True),
])
def test_a_loss_is_a_drop_beyond_two_standard_errors_and_one_point(start: float, n: int, final: float,
                                                                    lost: bool) -> None:
    assert StartScore(start, n).lost_by(final) is lost


def test_a_distill_student_trained_out_of_what_it_knew_is_warned_with_a_rate_that_keeps_it(
        cli, outputs: Path, teacher_run: Path) -> None:
    pair = ["teacher.weights=latest:pretrain", "student=lenet5", "student.weights=latest:pretrain",
            "trainer.epochs=1", "trainer.batch_size=16", "trainer.amp=none"]
    teacher_acc = read_run(teacher_run)["metrics"]["val_acc"]
    result = cli("distill", *pair, "optim.lr=1")
    assert result.code == 0, result.output
    record = only_run(outputs, "distill")
    student = record["distill"]["student"]
    assert student["val_acc_start"] == teacher_acc  # the same weights on the same val split
    said = [w for w in record["warnings"] if BELOW in w]
    assert len(said) == 1 and f"{100 * teacher_acc:.2f}% before training" in said[0], record["warnings"]
    # the cause named once: no guess beside it whose fix keeps nothing (probe 226: grad_clip, "train longer")
    assert not [w for w in record["warnings"] if "training failed" in w or "largest class" in w or "chance" in w]
    assert record["metrics"]["ended_below_start"] is True
    assert record["metrics"]["val_acc"] < teacher_acc
    fix = said[0].rsplit(", ", 1)[1]
    assert fix == "optim.lr=0.01"
    followed = cli("distill", *pair, fix)  # the student keeps its start
    assert followed.code == 0 and BELOW not in " ".join(followed.output.split()), followed.output


def test_a_classifier_continued_by_finetune_scores_its_start_and_a_new_head_does_not(
        cli, outputs: Path, teacher_run: Path) -> None:
    teacher_acc = read_run(teacher_run)["metrics"]["val_acc"]
    assert cli("finetune", "model.weights=latest:pretrain", "finetune.mode=full", "trainer.epochs=1",
               "trainer.batch_size=16", "optim.lr=5").code == 0
    record = only_run(outputs, "finetune")
    assert record["metrics"]["val_acc_start"] == teacher_acc
    said = [w for w in record.get("warnings", []) if BELOW in w]
    assert len(said) == 1 and record["metrics"]["ended_below_start"] is True, record.get("warnings")
    assert not [w for w in record["warnings"] if "largest class" in w or "at chance" in w], record["warnings"]
    followed = cli("finetune", "model.weights=latest:pretrain", "finetune.mode=full", "trainer.epochs=1",
                   "trainer.batch_size=16", said[0].rsplit(", ", 1)[1])
    assert followed.code == 0 and BELOW not in " ".join(followed.output.split()), followed.output
    # a new head is no trained classifier: nothing to score before training
    assert cli("finetune", "model.weights=latest:pretrain", "finetune.new_head=true", "trainer.epochs=1",
               "trainer.batch_size=16").code == 0
    newest = sorted((outputs / "finetune").rglob("run.json"))[-1]
    import json

    assert json.loads(newest.read_text())["metrics"]["val_acc_start"] is None


def test_a_training_from_random_weights_scores_no_start(cli, outputs: Path) -> None:
    assert cli("pretrain", *TINY).code == 0
    assert cli("finetune", "model.weights=none", "model=lenet5", *TINY[:5], "trainer.epochs=1").code == 0
    assert only_run(outputs, "finetune")["metrics"]["val_acc_start"] is None
