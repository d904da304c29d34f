"""`cnnlab export`: a verified, self-describing model.onnx with the trained model's accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import prebuilt
from cnnlab.deploy import export as deploy_export
from cnnlab.deploy.export import read_onnx_metadata
from cnnlab.deploy.ort import onnx_session
from helpers import TINY, only_run, random_image_folder, read_run, run_dirs


@prebuilt.starts_in("finetuned")
def finetuned_made(workspace: Path) -> None:
    prebuilt.build_run(workspace, ("pretrain", *TINY),
                       ("finetune", "model.weights=latest:pretrain", *TINY, "finetune.mode=full", "trainer.amp=none"))


@pytest.fixture
def finetuned(outputs: Path) -> dict:
    """pretrain → finetune (the chain the issue's "done when" starts from; made once per process: prebuilt.py);
    returns the finetune record."""
    return only_run(outputs, "finetune")


def test_an_export_asked_for_on_cuda_runs_on_the_cpu_and_says_so(cli, outputs: Path, finetuned: dict) -> None:
    """Probe 219: `export device=cuda` recorded the override and nothing of where it ran (always the CPU)."""
    result = cli("export", "source=latest:finetune", "device=cuda", "export.evaluate=false")
    assert result.code == 0, result.output
    assert "export runs on the CPU whatever device= says (device=cuda not used)" in " ".join(result.output.split())
    assert read_run(run_dirs(outputs, "export")[0])["export"]["device"] == "cpu"


def test_export_from_finetune_is_verified_and_as_accurate_as_the_model(cli, outputs: Path, finetuned: dict) -> None:
    result = cli("export", "source=latest:finetune")
    assert result.code == 0, result.output
    run_dir = run_dirs(outputs, "export")[0]
    record = read_run(run_dir)
    onnx_path = run_dir / "model.onnx"
    assert record["status"] == "completed" and record["artifacts"]["onnx"] == "model.onnx"
    metrics, verification = record["metrics"], record["export"]["verification"]
    assert metrics["top1_agreement"] == 1.0 and metrics["verify_images"] == 32  # the whole (tiny) val split
    assert metrics["max_abs_diff"] <= verification["tolerance"]
    assert metrics["val_acc"] == pytest.approx(finetuned["metrics"]["val_acc"], abs=1e-9)
    assert metrics["source_val_acc"] == finetuned["metrics"]["val_acc"]
    assert record["model"]["file_bytes"] == onnx_path.stat().st_size and record["model"]["opset"] == 18
    assert record["dataset"]["config"] == finetuned["dataset"]["config"]  # runs derived from this find the data
    meta = read_onnx_metadata(onnx_path)
    assert meta["source"]["run"] == finetuned["run_dir"] and meta["arch"] == "lenet5"
    assert meta["spec"].size == 16 and len(meta["classes"]) == 4
    # OpenCV's DNN module loads the file and computes what onnxruntime computes.
    cv2 = pytest.importorskip("cv2")
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    net = cv2.dnn.readNetFromONNX(str(onnx_path))
    net.setInput(images)
    session = onnx_session(onnx_path)
    assert np.abs(net.forward() - session.run(None, {"input": images})[0]).max() < 1e-4
    for batch in (1, 3, 64):  # the batch axis is dynamic
        assert session.run(None, {"input": torch.zeros(batch, 3, 16, 16).numpy()})[0].shape == (batch, 4)


def test_an_export_scored_on_other_data_does_not_show_the_source_top1_beside_its_own(cli, outputs: Path,
                                                                                     tmp_path: Path) -> None:
    """The source's val top-1 was measured on its own images; beside model.onnx's top-1 on other pictures it read as
    the export's gain or loss (probe 50: "val acc 50.00% on 4 images (source: 83.33%)")."""
    trained, other = random_image_folder(tmp_path / "trained", seed=1), random_image_folder(tmp_path / "other", seed=2)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={trained}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    result = cli("export", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={other}")
    assert result.code == 0, result.output
    metrics = only_run(outputs, "export")["metrics"]
    assert "val_acc" in metrics and "source_val_acc" not in metrics
    assert "(source:" not in result.output
    same = cli("export", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={trained}")
    assert same.code == 0, same.output
    pretrained = only_run(outputs, "pretrain")["metrics"]["val_acc"]
    again = next(r for r in map(read_run, run_dirs(outputs, "export")) if r["dataset"]["config"]["root"] == str(trained))
    assert again["metrics"]["source_val_acc"] == pretrained and f"(source: {100 * pretrained:.2f}%)" in same.output


def test_a_model_file_outside_its_run_shows_no_recorded_source_top1(
        cli, outputs: Path, tiny_run: Path, tmp_path: Path) -> None:
    """Probe 96: a model.pt re-saved with other weights (the same dict) read "val acc 15.62% (source: 6.25%)": the
    figure the file carries is of the weights it was saved with, and nothing tells they are still these."""
    checkpoint = torch.load(run_dirs(outputs, "pretrain")[0] / "model.pt", weights_only=True)
    checkpoint["state_dict"] = {k: torch.randn_like(v) if v.is_floating_point() else v
                                for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp_path / "mine.pt")
    result = cli("export", f"source={tmp_path / 'mine.pt'}")
    assert result.code == 0, result.output
    metrics = next(read_run(d) for d in run_dirs(outputs, "export"))["metrics"]
    assert "val_acc" in metrics and "source_val_acc" not in metrics and "(source:" not in result.output


def test_a_source_replaced_between_its_check_and_its_load_fails_the_run(cli, outputs: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 112: model.pt swapped for another network after its SHA-256 was checked and before it was loaded: the
    export completed, recording the run's digest, holding the other network, and printing "val acc 95.00 % (source:
    66.39 %)". Swapped back before the end (A → B → A), the file is still another version than the one resolved."""
    import os
    import shutil

    import cnnlab.steps.sources as sources

    assert cli("pretrain", *TINY).code == 0
    model = run_dirs(outputs, "pretrain")[0] / "model.pt"
    checkpoint = torch.load(model, weights_only=True)
    checkpoint["state_dict"] = {k: torch.randn_like(v) if v.is_floating_point() else v
                                for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp_path / "other.pt")
    shutil.copy2(model, tmp_path / "mine.pt")
    loaded = sources.load_model

    def swapped_then_loaded(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        os.replace(shutil.copy2(tmp_path / "other.pt", tmp_path / "b.pt"), model)
        try:
            return loaded(path, *args, **kwargs)
        finally:  # and the run's own bytes put back, as a swap loop would
            os.replace(shutil.copy2(tmp_path / "mine.pt", tmp_path / "a.pt"), model)

    monkeypatch.setattr(sources, "load_model", swapped_then_loaded)
    result = cli("export", "source=latest:pretrain")
    assert result.code == 2 and "was written or replaced while this run read it" in result.stderr, result.output
    assert read_run(run_dirs(outputs, "export")[0])["status"] == "failed"
    monkeypatch.setattr(sources, "load_model", loaded)
    assert cli("export", "source=latest:pretrain").code == 0  # the fix followed: nothing changes the file now


def test_an_export_of_a_val_folder_that_grew_since_does_not_show_the_source_top1(cli, outputs: Path,
                                                                                  tmp_path: Path) -> None:
    """Probe 53: the same folder (train/ + val/), but its val/ had gained images since the source ran: the export
    printed "val acc 55.56% on 27 images (source: 100.00%)", the source's figure measured on 9 of them."""
    root = tmp_path / "photos"
    random_image_folder(root / "train", seed=1), random_image_folder(root / "val", per_class=2, seed=2)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    same = cli("export", "source=latest:pretrain")  # unchanged: the source's figure stands beside the export's
    assert same.code == 0 and "(source:" in same.output, same.output
    random_image_folder(root / "val", per_class=4, seed=3)  # overwrites 0-1.png, adds 2-3.png per class
    grown = cli("export", "source=latest:pretrain")
    assert grown.code == 0 and "on 8 images" in grown.output and "(source:" not in grown.output, grown.output
    newest = max(run_dirs(outputs, "export"), key=lambda d: d.stat().st_mtime_ns)
    assert "source_val_acc" not in read_run(newest)["metrics"]


def test_simplified_export_is_verified_too(cli, outputs: Path, tiny_run: Path) -> None:
    result = cli("export", "source=latest:pretrain", "export.simplify=true", "export.evaluate=false")
    assert result.code == 0, result.output
    record = only_run(outputs, "export")
    assert record["export"]["simplified"]["tool"].startswith("onnxslim")
    assert record["export"]["verification"]["passed"] and "val_acc" not in record["metrics"]


def test_a_mismatch_fails_with_the_numbers_and_leaves_no_model_onnx(cli, outputs: Path, tiny_run: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:

    def broken_exporter(model, path, **kwargs):  # an exporter bug: one weight written wrong
        deploy_export.export_onnx(model, path, **kwargs)
        proto = onnx.load(str(path))
        weight = next(t for t in proto.graph.initializer if len(t.dims) == 4)
        values = onnx.numpy_helper.to_array(weight) + 1.0
        weight.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), weight.name))
        onnx.save(proto, str(path))
        return path

    monkeypatch.setattr("cnnlab.pipelines.export.export_onnx", broken_exporter)
    result = cli("export", "source=latest:pretrain")
    assert result.code == 2 and "ONNX output differs from PyTorch" in result.stderr
    assert "Traceback" not in result.stderr
    run_dir = run_dirs(outputs, "export")[0]
    record = read_run(run_dir)
    assert record["status"] == "failed" and "max |logit difference|" in record["error"]
    assert record["export"]["verification"]["max_abs_diff"] > record["export"]["verification"]["tolerance"]
    assert [p.name for p in run_dir.iterdir() if "onnx" in p.name] == []  # nothing that looks like a model


def test_bad_sources_are_one_line_each(cli, outputs: Path) -> None:
    none_yet = cli("export", "source=latest:finetune")
    assert none_yet.code == 2 and "matches no completed `cnnlab finetune` run" in none_yet.stderr
    assert not (outputs / "export").exists()  # refused before any work: no failed run folder (probe 58)
    assert cli("pretrain", *TINY).code == 0
    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    # An export run holds an ONNX file, not a model.pt to export.
    no_model = cli("export", f"source={run_dirs(outputs, 'export')[0]}")
    assert no_model.code == 2 and "needs a model.pt" in no_model.stderr
    export_dir = run_dirs(outputs, "export")[0]
    the_file = cli("export", f"source={export_dir / 'model.onnx'}")  # probe 196: "source=…/model.onnx: holds …"
    assert the_file.code == 2 and f"source={export_dir / 'model.onnx'}: its run {export_dir} (export) holds the " \
        "ONNX file it exported, and this needs a model.pt" in " ".join(the_file.stderr.split()), the_file.stderr
    alone = outputs.parent / "alone.onnx"  # no run folder around it (probe 219: "the file holds an ONNX file")
    alone.write_bytes((export_dir / "model.onnx").read_bytes())
    foreign = cli("export", f"source={alone}")
    assert foreign.code == 2 and f"source={alone} is an ONNX file, and this needs a model.pt" in \
        " ".join(foreign.stderr.split()), foreign.stderr
    old_opset = cli("export", "source=latest:pretrain", "export.opset=11")
    assert old_opset.code == 2 and "export.opset=11" in old_opset.stderr
    for result in (none_yet, no_model, old_opset):
        assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1


def test_latest_says_which_newer_unfinished_run_it_passed_over(cli, outputs: Path) -> None:
    """Probe 91: with a newer finetune still running, `source=latest:finetune` took the older completed one without
    a word of the newer."""
    from cnnlab.runs import RunRecord
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    newer = RunRecord.start(outputs / "pretrain" / "2099-01-01" / "00-00-00", "pretrain")  # still running
    newer.update(started="2099-01-01T00:00:00+00:00")  # after the completed one (both began within this second)
    result = cli("export", "source=latest:pretrain")
    assert result.code == 0, result.output
    said = " ".join(result.output.split())
    assert "which is running: latest takes completed runs" in said
    assert str(newer.run_dir) in "".join(result.output.split())


def test_a_checkpoint_that_records_no_dataset_is_told_to_name_its_data(cli, outputs: Path, tiny_run: Path,
                                                                       tmp_path: Path) -> None:
    """Probe 188: export fell back to the default dataset, then refused its classes with "drop dataset=... if you gave
    one", of a dataset= never typed."""
    checkpoint = torch.load(tiny_run / "model.pt", weights_only=True)
    checkpoint["extra"].pop("dataset", None)
    bare = tmp_path / "elsewhere" / "model.pt"
    bare.parent.mkdir()
    torch.save(checkpoint, bare)
    refused = cli("export", f"source={bare}")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and f"source={bare} records no dataset" in said, refused.output
    assert "drop dataset=" not in said and not run_dirs(outputs, "export")
    followed = cli("export", f"source={bare}", *[o for o in TINY if o.startswith("dataset")])
    assert followed.code == 0, followed.output


def test_an_export_and_its_scores_record_the_labels_the_model_trained_on(cli, outputs: Path) -> None:
    """Probe 240: a model trained on 5,400 of Fashion-MNIST's 54,000 training labels (dataset.label_fraction=0.1),
    exported, recorded train_size 54000 and label_fraction 1.0 in its run.json and its ONNX file, and `evaluate
    split=train` of the file scored all 54,000 pictures as "train" — 48,600 never trained on; `evaluate split=test`
    of the model recorded 1.0 too. Splits no fraction touches keep the model's fraction in their record."""
    assert cli("pretrain", *TINY, "dataset.label_fraction=0.5").code == 0  # 32 of TINY's 64 training labels
    exported = cli("export", "source=latest:pretrain", "export.evaluate=false")
    assert exported.code == 0, exported.output
    export_dir = run_dirs(outputs, "export")[0]
    for recorded in (read_run(export_dir)["dataset"], read_onnx_metadata(export_dir / "model.onnx")["dataset"]):
        assert recorded["config"]["label_fraction"] == 0.5 and recorded["train_size"] == 32, recorded
    assert "label_fraction" not in exported.output  # nothing to say: the fraction reads no picture here
    for source in (export_dir / "model.onnx", export_dir):
        scored = cli("evaluate", f"source={source}", "split=train")
        assert scored.code == 0, scored.output
        assert read_run(run_dirs(outputs, "evaluate")[-1])["evaluate"]["n"] == 32  # the pictures it trained on
    scored = cli("evaluate", "source=latest:pretrain", "split=val")  # split=test reads its data alike ("kept")
    assert scored.code == 0 and "label_fraction" not in scored.output, scored.output
    record = read_run(run_dirs(outputs, "evaluate")[-1])
    assert record["dataset"]["config"]["label_fraction"] == 0.5 and record["evaluate"]["n"] == 32  # TINY's val
    # probe 241: typed, the fraction changed nothing but the record, which then said all 64 labels trained
    for command in (("export", "export.evaluate=false"), ("evaluate", "split=val")):
        refused = cli(*command, "source=latest:pretrain", "dataset.label_fraction=1.0")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"`cnnlab {command[0]}` reads no training picture here" in said, said
        assert "trained on dataset.label_fraction=0.5" in said and "drop dataset.label_fraction=" in said
    assert len(run_dirs(outputs, "export")) == 1 and len(run_dirs(outputs, "evaluate")) == 3
    assert cli("export", "source=latest:pretrain", "export.evaluate=false", "dataset.label_fraction=0.5").code == 0
