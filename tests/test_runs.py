from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.runs import RunRecord, iter_runs, latest_run, load_run, resolve_source


def make_run(outputs: Path, command: str, name: str, status: str = "completed", *, model: bool = True,
             onnx: bool = False, started: str | None = None) -> Path:
    run_dir = outputs / command / "2026-01-01" / name
    record = RunRecord.start(run_dir, command)
    if started:
        record.update(started=started)
    if model:
        (run_dir / "model.pt").write_bytes(b"x")
        record.add_artifact("model", run_dir / "model.pt")
    if onnx:
        (run_dir / "model.onnx").write_bytes(b"x")
        record.add_artifact("onnx", run_dir / "model.onnx")
    record.finish(status, metrics={"val_acc": 0.5})
    return run_dir


def test_record_lifecycle_is_written_as_it_goes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    record = RunRecord.start(run_dir, "pretrain", overrides=["trainer.epochs=1"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    record.update(metrics={"val_acc": 0.1})
    record.update(metrics={"val_top5": 0.9})
    record.finish("completed", metrics={"val_acc": 0.75})
    data = json.loads((run_dir / "run.json").read_text())
    assert data["status"] == "completed"
    assert data["metrics"] == {"val_acc": 0.75, "val_top5": 0.9}
    assert data["overrides"] == ["trainer.epochs=1"]
    assert data["ended"] and data["duration_s"] >= 0
    assert not list(run_dir.glob(".run.json.*"))  # no temp files left behind


def test_disabled_record_writes_nothing(tmp_path: Path) -> None:
    RunRecord.start(tmp_path / "rank1", "pretrain", enabled=False).finish("completed")
    assert not (tmp_path / "rank1").exists()


def test_latest_picks_newest_completed_of_command(tmp_path: Path) -> None:
    make_run(tmp_path, "pretrain", "a", started="2026-01-01T10:00:00")
    newest = make_run(tmp_path, "pretrain", "b", started="2026-01-01T11:00:00")
    make_run(tmp_path, "pretrain", "c", status="failed", started="2026-01-01T12:00:00")
    make_run(tmp_path, "finetune", "d", started="2026-01-01T09:00:00")
    assert latest_run(tmp_path, "pretrain").path == newest
    assert latest_run(tmp_path).path == newest
    assert [r.path.name for r in iter_runs(tmp_path)] == ["d", "a", "b", "c"]


def test_resolve_source_forms(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "finetune", "r1", onnx=True)
    assert resolve_source("latest:finetune", tmp_path).path == (run_dir / "model.pt").resolve()
    assert resolve_source("latest", tmp_path, want=("onnx",)).kind == "onnx"
    by_dir = resolve_source(str(run_dir), tmp_path)
    assert by_dir.kind == "checkpoint" and by_dir.run is not None and by_dir.run.command == "finetune"
    by_file = resolve_source(str(run_dir / "model.onnx"), tmp_path)
    assert by_file.kind == "onnx" and by_file.run is not None


@pytest.mark.parametrize("spec, message", [
    ("latest:prune", "matches no completed `cnnlab prune` run"),
    ("does/not/exist", "no such file or folder"),
])
def test_resolve_source_errors_name_the_fix(tmp_path: Path, spec: str, message: str) -> None:
    make_run(tmp_path, "finetune", "r1")
    with pytest.raises(CnnlabError, match=message) as info:
        resolve_source(spec, tmp_path)
    assert info.value.fix


def test_resolve_source_rejects_folder_without_record_and_wrong_kind(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="not a cnnlab run folder"):
        resolve_source(str(tmp_path / "empty"), tmp_path)
    run_dir = make_run(tmp_path, "pretrain", "r", model=True)
    with pytest.raises(CnnlabError, match="holds no onnx"):
        resolve_source(str(run_dir), tmp_path, want=("onnx",))
    (tmp_path / "weights.txt").write_text("?")
    with pytest.raises(CnnlabError, match="expected a"):
        resolve_source(str(tmp_path / "weights.txt"), tmp_path)


def test_load_run_damaged_record(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(CnnlabError, match="not valid JSON"):
        load_run(tmp_path)
