"""Every training writes metrics.csv and curves.png in its run folder (TensorBoard with logger=tensorboard),
recorded as artifacts: end to end through `cnnlab pretrain`, and the naming of a run's later trainings."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.context import RunContext
from cnnlab.engine.epoch_log import EpochLogSettings
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import Trainer
from cnnlab.runs import RunRecord
from cnnlab.steps.training import epoch_logging
from helpers import TINY, read_run, run_dirs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_training_run_writes_its_curves(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "trainer.epochs=2")
    assert result.code == 0, result.output
    run_dir = run_dirs(outputs, "pretrain")[0]
    record = read_run(run_dir)
    history = record["metrics"]["history"]
    rows = csv_rows(run_dir / "metrics.csv")
    assert len(rows) == len(history) == 2
    assert [float(row["val_acc"]) for row in rows] == [entry["val_acc"] for entry in history]
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert {"train_loss", "train_acc", "val_loss", "val_top5", "lr", "images_per_s", "train_seconds"} <= set(rows[0])
    assert (run_dir / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert record["artifacts"] == {**record["artifacts"], "metrics_csv": "metrics.csv", "curves_png": "curves.png"}
    assert "tensorboard" not in record["artifacts"] and not (run_dir / "tensorboard").exists()  # logger=none


def test_a_resumed_run_starts_its_csv_with_the_restored_history(cli, outputs: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    train_one_epoch = Trainer.train_one_epoch

    def ctrl_c_in_the_second_epoch(self, *args, epoch: int, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return train_one_epoch(self, *args, epoch=epoch, **kwargs)

    monkeypatch.setattr(Trainer, "train_one_epoch", ctrl_c_in_the_second_epoch)
    assert cli("pretrain", *TINY, "trainer.epochs=2").code == 130
    interrupted = run_dirs(outputs, "pretrain")[0]
    assert [row["epoch"] for row in csv_rows(interrupted / "metrics.csv")] == ["1"]  # kept by the stopped run
    assert not (interrupted / "curves.png").exists()  # one epoch is one point: no curve
    monkeypatch.setattr(Trainer, "train_one_epoch", train_one_epoch)
    assert cli("pretrain", "resume=true").code == 0
    resumed = next(d for d in run_dirs(outputs, "pretrain") if d != interrupted)
    history = read_run(resumed)["metrics"]["history"]
    rows = csv_rows(resumed / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [float(row["val_acc"]) for row in rows] == [entry["val_acc"] for entry in history]
    assert read_run(resumed)["artifacts"]["curves_png"] == "curves.png"  # the restored epoch and the new one


def test_logger_tensorboard_writes_event_files(cli, outputs: Path) -> None:
    pytest.importorskip("tensorboard")
    result = cli("pretrain", *TINY, "logger=tensorboard")
    assert result.code == 0, result.output
    run_dir = run_dirs(outputs, "pretrain")[0]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert read_run(run_dir)["artifacts"]["tensorboard"] == "tensorboard"


def test_logger_tensorboard_without_the_package_fails_at_start(cli, outputs: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    result = cli("pretrain", *TINY, "logger=tensorboard")
    assert result.code == 2 and "Traceback" not in result.output
    assert 'pip install "cnnlab[tensorboard]"' in result.stderr
    assert not (outputs / "pretrain").exists()  # refused at start (pipelines/pretrain.check): no run, no metrics


def test_a_bad_logger_is_one_line_naming_the_choices(cli) -> None:
    result = cli("pretrain", *TINY, "logger=wandb")
    assert result.code == 2 and "Traceback" not in result.output
    assert "logger=wandb" in result.stderr and "none, tensorboard" in result.stderr


def test_later_trainings_of_a_run_get_numbered_files(tmp_path: Path) -> None:
    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path.parent,
                     record=RunRecord.start(tmp_path, "distill"))
    runtime = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
    for _ in range(2):
        with epoch_logging(ctx, runtime, EpochLogSettings(), None) as on_epoch_end:
            assert on_epoch_end is not None
            for epoch in (1, 2):
                on_epoch_end(epoch, {"epoch": epoch, "train_loss": 1.0, "train_acc": 0.5})
    assert read_run(tmp_path)["artifacts"] == {"metrics_csv": "metrics.csv", "curves_png": "curves.png",
                                               "metrics_csv_2": "metrics_2.csv", "curves_png_2": "curves_2.png"}
    assert len(csv_rows(tmp_path / "metrics_2.csv")) == 2

    other_rank = RunContext(command="distill", run_dir=tmp_path / "rank1", outputs=tmp_path.parent,
                            record=RunRecord.start(tmp_path, "distill", enabled=False), is_main=False)
    with epoch_logging(other_rank, runtime, EpochLogSettings(), None) as on_epoch_end:
        assert on_epoch_end is None  # only rank 0 writes
