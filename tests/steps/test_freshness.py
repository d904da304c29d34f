"""steps/freshness.py: a run done before no longer stands when its image folder changed or its inputs ran again."""

from __future__ import annotations

from pathlib import Path

from cnnlab.data.content import folder_digest
from cnnlab.runs import RunInfo, RunRecord
from cnnlab.steps.freshness import changed_since, data_changed


def _run(folder: Path, dataset: dict | None, pipeline: dict | None = None) -> RunInfo:
    record = RunRecord.start(folder, "finetune")
    record.update(dataset=dataset, pipeline=pipeline)
    record.finish("completed")
    return RunInfo.read(folder)


def _images(root: Path) -> Path:
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "0.png").write_bytes(b"0")
    return root


def test_an_image_folder_edited_since_the_run_makes_it_stale(tmp_path: Path) -> None:
    data = _images(tmp_path / "data")
    dataset = {"name": "imagefolder", "config": {"root": str(data)}, "content": folder_digest(data)}
    run = _run(tmp_path / "run", dataset)
    assert data_changed(run) is None
    (data / "cat" / "1.png").write_bytes(b"1")
    assert data_changed(run) == f"the images in {data} changed since it ran"
    for path in (data / "cat").iterdir():
        path.unlink()
    (data / "cat").rmdir()
    data.rmdir()
    assert data_changed(run) == f"its image folder {data} is gone"


def test_canonical_sets_and_records_without_a_digest_stand(tmp_path: Path) -> None:
    data = _images(tmp_path / "data")
    old = _run(tmp_path / "old", {"name": "imagefolder", "config": {"root": str(data)}})  # before dataset.content
    canonical = _run(tmp_path / "mnist", {"name": "fashion_mnist", "config": {"root": str(data)}, "content": "x"})
    (data / "cat" / "1.png").write_bytes(b"1")
    assert data_changed(old) is None and data_changed(canonical) is None
    assert data_changed(_run(tmp_path / "none", None)) is None


def test_a_pipeline_stage_whose_upstream_ran_again_is_stale(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", None, {"fingerprint": "f", "inputs": {"finetune": "/runs/a"}})
    assert changed_since(run, {"finetune": "/runs/a"}) is None
    assert changed_since(run, {"finetune": "/runs/b"}) == "stage finetune ran again since (/runs/b)"
    older = _run(tmp_path / "older", None, {"fingerprint": "f"})  # recorded before pipeline.inputs
    assert changed_since(older, {"finetune": "/runs/b"}) is None


def test_the_same_upstream_run_named_another_way_is_the_same_run(tmp_path: Path, monkeypatch) -> None:
    """`paths.outputs` is relative by default: a re-run with CNNLAB_OUTPUTS=$PWD/outputs named every upstream run
    another way, and every stage after the first trained again."""
    (tmp_path / "outputs" / "x").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path / "run", None, {"fingerprint": "f", "inputs": {"teacher": "outputs/x"}})
    assert changed_since(run, {"teacher": str(tmp_path / "outputs" / "x")}) is None


def test_the_digest_cache_walks_a_folder_once_and_a_moved_folder_matches(tmp_path: Path, monkeypatch) -> None:
    import cnnlab.steps.freshness as freshness

    data = _images(tmp_path / "data")
    run = _run(tmp_path / "run", {"name": "imagefolder", "config": {"root": str(data)}, "content": folder_digest(data)})
    walks = []
    walk = freshness.folder_and_training_digests
    monkeypatch.setattr(freshness, "folder_and_training_digests", lambda root: walks.append(root) or walk(root))
    digests: dict = {}
    assert data_changed(run, digests=digests) is None and data_changed(run, digests=digests) is None
    assert len(walks) == 1
    data.rename(tmp_path / "moved")  # mv keeps names, sizes and times: the same pictures
    assert data_changed(run, root=str(tmp_path / "moved")) is None


def test_a_set_with_its_own_val_split_is_no_carve(tmp_path: Path) -> None:
    """flowers records no dataset.seed or val_fraction (its val split is fixed): every flowers model was refused by
    export, prune, quantize and evaluate split=val as "does not record dataset.seed"."""
    from cnnlab.runs import Source
    from cnnlab.steps.sources import check_same_val_split

    config = {"name": "flowers", "root": str(tmp_path), "image_size": 224}
    run = _run(tmp_path / "run", {"name": "flowers", "config": config})
    check_same_val_split(Source("RUN", "checkpoint", tmp_path / "run" / "model.pt", run), dict(config))


def test_a_run_whose_model_file_was_deleted_is_stale(tmp_path: Path) -> None:
    """Probe 56: a pipeline reused a completed stage whose model.pt had been deleted; each re-run then failed at the
    stage that read it, and reused it again."""
    record = RunRecord.start(tmp_path / "run2", "finetune")
    record.add_artifact("model", tmp_path / "run2" / "model.pt")
    (tmp_path / "run2" / "model.pt").write_bytes(b"weights")
    record.finish("completed")
    kept = RunInfo.read(tmp_path / "run2")
    assert changed_since(kept) is None
    (tmp_path / "run2" / "model.pt").unlink()
    assert changed_since(RunInfo.read(tmp_path / "run2")) == "its model.pt is gone"


def test_a_run_whose_model_file_was_replaced_is_stale(tmp_path: Path) -> None:
    """Probe 72: a pipeline stage whose model.pt was replaced was reused as done already, though every command that
    reads the file refuses it."""
    record = RunRecord.start(tmp_path / "run", "finetune")
    (tmp_path / "run" / "model.pt").write_bytes(b"weights")
    record.add_artifact("model", tmp_path / "run" / "model.pt")
    record.finish("completed")
    assert changed_since(RunInfo.read(tmp_path / "run")) is None
    (tmp_path / "run" / "model.pt").write_bytes(b"another network")
    assert changed_since(RunInfo.read(tmp_path / "run")) == "its model.pt changed since the run wrote it"


def test_a_test_split_edited_since_changes_no_training_data_but_does_change_an_evaluation(tmp_path: Path) -> None:
    """Probe 75: one picture removed from test/ (as `cnnlab evaluate`'s refusal of copies asks) made prune and
    quantize refuse the model — "its val split, carved from the folder, would now hold images the model trained
    on" — though val is carved from train/ alone; `cnnlab report` dropped its test score as "other data"."""
    from cnnlab.data.layout import training_digest
    from cnnlab.records import DatasetSection

    data = tmp_path / "data"
    _images(data / "train")
    _images(data / "test")
    record = {"name": "imagefolder", "config": {"root": str(data)}, "content": folder_digest(data),
              "train_content": training_digest(data)}
    trained, evaluated = _run(tmp_path / "run", record), _run(tmp_path / "eval", record)
    evaluated.data["command"] = "evaluate"
    (data / "test" / "cat" / "0.png").unlink()
    assert data_changed(trained) is None  # train/ as it was
    assert data_changed(evaluated) == f"the images in {data} changed since it ran"  # it read test/
    after = {**record, "content": folder_digest(data), "train_content": training_digest(data)}
    assert DatasetSection.from_dict(after).identity == DatasetSection.from_dict(record).identity
    (data / "train" / "cat" / "1.png").write_bytes(b"1")
    assert data_changed(trained) == f"the images in {data} changed since it ran"


def test_a_run_whose_source_now_names_another_model_is_stale(tmp_path: Path) -> None:
    """Probe 91: a sweep job or pipeline stage that started from `latest:pretrain`, or from a weights file replaced in
    place since, was reused: its accuracy was the old model's."""
    from cnnlab.fileio import file_sha256
    from cnnlab.steps.freshness import source_changed

    def made(name: str, started: str) -> Path:
        record = RunRecord.start(tmp_path / "outputs" / "pretrain" / name, "pretrain")
        (record.run_dir / "model.pt").write_bytes(name.encode())
        record.add_artifact("model", record.run_dir / "model.pt")
        record.update(started=started)
        record.finish("completed")
        return record.run_dir / "model.pt"

    first = made("a", "2026-12-05T01:00:00+00:00")
    source = {"spec": "latest:pretrain", "kind": "checkpoint", "path": str(first.resolve()),
              "run": str(first.parent), "sha256": file_sha256(first)}
    record = RunRecord.start(tmp_path / "job", "finetune")
    record.update(source=source)
    record.finish("completed")
    job, outputs = RunInfo.read(tmp_path / "job"), tmp_path / "outputs"
    assert source_changed(job, outputs) is None and changed_since(job, outputs=outputs) is None
    made("b", "2026-12-05T02:00:00+00:00")
    assert "latest:pretrain now names" in source_changed(job, outputs)
    assert source_changed(job) is None  # no outputs to look in (a record read alone): the file is still the same
    first.write_bytes(b"another network")  # replaced in place
    assert source_changed(job) == f"the model it started from, {first.resolve()}, changed since"
    first.unlink()
    assert source_changed(job) == f"the model it started from, {first.resolve()}, is gone"
    older = _run(tmp_path / "older", None)  # no source recorded: taken as it is
    assert source_changed(older, outputs) is None


def test_a_distill_whose_students_starting_weights_changed_is_stale(tmp_path: Path) -> None:
    """Probe 92: `distill -m student.weights=latest:pretrain` typed again after a new pretrain was skipped: only the
    teacher (run.json `source`) was checked."""
    from cnnlab.fileio import file_sha256
    from cnnlab.steps.freshness import source_changed

    weights = tmp_path / "student.pt"
    weights.write_bytes(b"first")
    student = {"spec": str(weights), "kind": "checkpoint", "path": str(weights), "sha256": file_sha256(weights)}
    record = RunRecord.start(tmp_path / "job", "distill")
    record.update(distill={"student": {"weights": "run x", "source": student}, "teacher": {"source": None}})
    record.finish("completed")
    job = RunInfo.read(tmp_path / "job")
    assert source_changed(job) is None
    weights.write_bytes(b"another student")
    assert source_changed(job) == f"the model it started from, {weights}, changed since"
