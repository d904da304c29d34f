"""Per-epoch logs: metrics.csv columns and values, a resumed history, curves.png, TensorBoard, the logger key."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from cnnlab.engine.epoch_log import EpochLog, EpochLogFiles, EpochLogSettings, columns, scalar_tag
from cnnlab.errors import CnnlabError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = [
    {"epoch": 1, "train_loss": 2.25, "train_acc": 0.125, "lr": 0.1, "images_per_s": 1000.5, "train_seconds": 0.5},
    {"epoch": 2, "train_loss": 1.5, "train_acc": 0.5, "lr": 0.05, "images_per_s": 990.0, "train_seconds": 0.5,
     "val_loss": 1.25, "val_acc": 0.6180339887498949, "val_top5": 1.0, "bn_seconds": 0.01, "kd_loss": 0.3},
]


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_csv_has_stable_columns_with_blanks_and_exact_values(tmp_path: Path) -> None:
    files = EpochLogFiles.in_folder(tmp_path)
    with EpochLog(files) as epochs:
        epochs.add(EPOCHS[0])
        header, rows = read_rows(files.csv)  # written after every epoch, before training ends
        assert header == ["epoch", "train_loss", "train_acc", "lr", "images_per_s", "train_seconds"]
        assert len(rows) == 1
        epochs.add(EPOCHS[1])
    header, rows = read_rows(files.csv)
    assert header == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "images_per_s",
                      "train_seconds", "bn_seconds", "kd_loss"]
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["val_acc"] == "" and rows[0]["kd_loss"] == ""  # keys the first epoch lacks stay blank
    assert float(rows[1]["val_acc"]) == EPOCHS[1]["val_acc"]  # floats in full: read back exactly
    assert {key: float(value) for key, value in rows[1].items()} == EPOCHS[1]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_resumed_history_starts_the_csv(tmp_path: Path) -> None:
    files = EpochLogFiles.in_folder(tmp_path)
    with EpochLog(files, history=EPOCHS[:1]) as epochs:
        assert [row["epoch"] for row in read_rows(files.csv)[1]] == ["1"]  # there before the first new epoch ends
        assert epochs.written() == {"csv": files.csv}
        epochs.add(EPOCHS[1])
    assert [row["epoch"] for row in read_rows(files.csv)[1]] == ["1", "2"]


def test_curves_png_is_drawn_at_the_end_and_per_epoch_when_asked(tmp_path: Path) -> None:
    files = EpochLogFiles.in_folder(tmp_path)
    with EpochLog(files, EpochLogSettings(plot_every_s=3600)) as epochs:
        epochs.add(EPOCHS[0])
        epochs.add(EPOCHS[1])
        assert not files.png.exists()  # not yet time to redraw
    png = files.png.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000

    every = EpochLogFiles.in_folder(tmp_path, "_2")
    with EpochLog(every, EpochLogSettings(plot_every_s=0), title="a title") as epochs:
        epochs.add(EPOCHS[0])
        assert not every.png.exists()  # one epoch is one point: no curve yet
        epochs.add(EPOCHS[1])
        assert every.png.read_bytes().startswith(PNG_SIGNATURE)
        assert set(epochs.written()) == {"csv", "png"}


def test_one_epoch_draws_no_curves_but_keeps_its_numbers(tmp_path: Path) -> None:
    files = EpochLogFiles.in_folder(tmp_path)
    with EpochLog(files, EpochLogSettings(plot_every_s=0)) as epochs:
        epochs.add(EPOCHS[0])
    assert not files.png.exists() and epochs.written() == {"csv": files.csv}
    assert [row["epoch"] for row in read_rows(files.csv)[1]] == ["1"]


def test_an_error_in_training_still_leaves_the_curves(tmp_path: Path) -> None:
    files = EpochLogFiles.in_folder(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with EpochLog(files) as epochs:
            epochs.add(EPOCHS[0])
            epochs.add(EPOCHS[1])
            raise KeyboardInterrupt
    assert files.png.read_bytes().startswith(PNG_SIGNATURE) and len(read_rows(files.csv)[1]) == 2


def test_no_epoch_writes_nothing(tmp_path: Path) -> None:
    with EpochLog(EpochLogFiles.in_folder(tmp_path)) as epochs:
        assert epochs.written() == {}
    assert not list(tmp_path.iterdir())


def test_header_order() -> None:
    assert columns([{"zeta": 1, "val_acc": 0.5, "epoch": 1}]) == ["epoch", "val_acc", "zeta"]
    assert [scalar_tag(k) for k in ("train_loss", "val_top5", "lr", "train_seconds")] == \
        ["loss/train", "top5/val", "lr", "train_seconds"]


@pytest.mark.parametrize("value", ["none", "None", None, "null"])
def test_logger_none(value) -> None:
    assert EpochLogSettings.from_logger(value).tensorboard is False


@pytest.mark.parametrize("value", ["wandb", "", "true"])
def test_bad_logger_value_names_the_choices(value) -> None:
    with pytest.raises(CnnlabError) as caught:
        EpochLogSettings.from_logger(value)
    line = caught.value.one_line()
    assert f"logger={value}" in line and "none, tensorboard" in line and "\n" not in line


def test_tensorboard_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(CnnlabError) as caught:
        EpochLogSettings.from_logger("tensorboard")
    assert caught.value.fix == 'pip install "cnnlab[tensorboard]"'


def test_tensorboard_event_files(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = EpochLogFiles.in_folder(tmp_path)
    with EpochLog(files, EpochLogSettings.from_logger("tensorboard"), history=EPOCHS[:1]) as epochs:
        epochs.add(EPOCHS[1])
        assert set(epochs.written()) == {"csv", "tensorboard"}
    events = EventAccumulator(str(files.tensorboard))
    events.Reload()
    assert {"loss/train", "acc/train", "loss/val", "acc/val", "top5/val", "lr"} <= set(events.Tags()["scalars"])
    assert [(s.step, s.value) for s in events.Scalars("loss/train")] == [(1, 2.25), (2, 1.5)]
    assert [s.step for s in events.Scalars("acc/val")] == [2]
