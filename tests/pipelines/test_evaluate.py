"""`cnnlab evaluate`: a checkpoint, its ONNX export and an INT8 file scored on the official test split."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import prebuilt
from cnnlab.compress.quantization import (FORMATS, CalibrationReader, PtqSettings, graph_input_name, preprocess,
                                          quantize_static_candidate)
from cnnlab.deploy.export import copy_with_metadata, read_onnx_metadata
from helpers import TINY, only_run, read_run, run_dirs, write_idx

CLASSES = 4
TRAIN, TEST = 96, 24


def mnist_in(workspace: Path) -> list[str]:
    """MNIST-layout files of TRAIN + TEST images under workspace/data (written where missing), and the settings that
    read them."""
    raw = workspace / "data" / "MNIST" / "raw"
    if not raw.is_dir():  # a prebuilt workspace has them: written again, the folder would read as changed
        write_idx(raw, "train", TRAIN, seed=0, classes=CLASSES)
        write_idx(raw, "t10k", TEST, seed=1, classes=CLASSES)
    return ["dataset=mnist", f"dataset.root={workspace / 'data'}", "dataset.download=false", "dataset.image_size=16",
            "dataset.val_fraction=0.25"]


@pytest.fixture
def mnist_args(workspace: Path) -> list[str]:
    return mnist_in(workspace)


@prebuilt.starts_in("pretrained")
def pretrained_made(workspace: Path) -> None:
    prebuilt.build_run(workspace, ("pretrain", *mnist_in(workspace), "model=lenet5", "trainer.epochs=2",
                                   "trainer.batch_size=16", "trainer.amp=none", "optim.lr=0.05"))


@pytest.fixture
def pretrained(outputs: Path, mnist_args: list[str]) -> dict:
    """A LeNet-5 pretrained on the MNIST-layout files (made once per process: prebuilt.py): its record."""
    return only_run(outputs, "pretrain")


def test_checkpoint_and_its_onnx_score_the_same_on_the_test_split(cli, outputs: Path, pretrained: dict) -> None:
    result = cli("evaluate", "source=latest:pretrain")
    assert result.code == 0, result.output
    # which run latest: names depends on what ran since: the log says it (a failed newer run falls back silently)
    said = "".join(result.output.split())  # the log may wrap a long path anywhere
    assert "source=latest:pretrainis" + "".join(str(Path(pretrained["run_dir"]) / "model.pt").split()) in said
    run_dir = run_dirs(outputs, "evaluate")[0]
    record = read_run(run_dir)
    metrics = record["metrics"]
    assert record["command"] == "evaluate" and record["status"] == "completed"
    assert record["source"]["kind"] == "checkpoint" and record["source"]["run"] == pretrained["run_dir"]
    assert metrics["split"] == "test" and metrics["n"] == TEST and record["evaluate"]["runtime"] == "pytorch"
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["test_acc"] <= metrics["test_top5"] <= 1
    assert "top-5" in result.output  # 10 classes: top-5 says something
    assert record["model"]["precision"] == "fp32" and record["dataset"]["name"] == "mnist"
    per_class = metrics["per_class_acc"]
    assert len(per_class) == 10 and per_class["4 - four"] is None  # the tiny set only has digits 0-3

    rows = list(csv.reader((run_dir / "confusion.csv").open()))
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert counts.shape == (10, 10) and counts.sum() == TEST  # every test image once
    assert np.trace(counts) / TEST == pytest.approx(metrics["test_acc"])
    # probe 184: the finite test set's uncertainty was neither said nor recorded
    from evaluation.test_intervals import wilson

    assert record["evaluate"]["correct"] == np.trace(counts)
    interval = record["evaluate"]["top1_interval"]
    assert (interval["low"], interval["high"]) == pytest.approx(wilson(int(np.trace(counts)), TEST), abs=1e-9)
    assert "".join(f"(95% CI {100 * interval['low']:.2f}–{100 * interval['high']:.2f}%, Wilson".split()) in said
    assert (run_dir / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "per_class.csv").is_file()
    outcomes = list(csv.DictReader((run_dir / "outcomes.csv").open()))
    assert [int(r["index"]) for r in outcomes] == list(range(TEST))  # one row per test image, in order
    assert sum(r["correct"] == "1" for r in outcomes) / TEST == pytest.approx(metrics["test_acc"])
    assert all((r["true"] == r["predicted"]) == (r["correct"] == "1") for r in outcomes)
    assert record["artifacts"]["outcomes_csv"] == "outcomes.csv"

    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    result = cli("evaluate", "source=latest:export")
    assert result.code == 0, result.output
    onnx_record = read_run(run_dirs(outputs, "evaluate")[1])
    assert onnx_record["source"]["kind"] == "onnx" and onnx_record["evaluate"]["runtime"] == "onnxruntime"
    assert abs(onnx_record["metrics"]["test_acc"] - metrics["test_acc"]) <= 1 / TEST + 1e-9  # within one image

    result = cli("evaluate", "source=latest:pretrain", "split=val")
    assert result.code == 0, result.output
    assert read_run(run_dirs(outputs, "evaluate")[2])["metrics"]["val_acc"] == pytest.approx(
        pretrained["metrics"]["val_acc"])  # the val split is the one training reported on


def test_an_int8_onnx_file_copied_anywhere_evaluates(cli, outputs: Path, pretrained: dict, tmp_path: Path) -> None:
    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    fp32 = run_dirs(outputs, "export")[0] / "model.onnx"
    pre = preprocess(fp32, tmp_path / "pre.onnx")
    # Calibrated on training images, as `cnnlab quantize` does: random-normal inputs set ranges unlike the digits',
    # which cost this INT8 file 50 points of test top-1 on an Intel Xeon with AMX (it passed on an AMD EPYC).
    from cnnlab.data import build_datasets

    data = build_datasets(pretrained["dataset"]["config"], read_onnx_metadata(fp32)["spec"], train_augment=False)
    images = torch.stack([data.train[i][0] for i in range(32)]).numpy()
    reader = CalibrationReader(graph_input_name(pre), [images[:16], images[16:]])
    int8 = quantize_static_candidate(pre, tmp_path / "int8.onnx", FORMATS["qdq_u8s8"], PtqSettings(), reader,
                                     tmp_path / "calibration.json")
    alone = tmp_path / "elsewhere" / "model_int8.onnx"  # no run folder around it: the file's own metadata says it all
    alone.parent.mkdir()
    copy_with_metadata(int8, alone, read_onnx_metadata(fp32)["identity"], params=None, flops=None,
                       extra={"quantization": {"format": "qdq_u8s8"}})

    assert cli("evaluate", f"source={fp32}").code == 0
    result = cli("evaluate", f"source={alone}")
    assert result.code == 0, result.output
    float_run, int8_run = (read_run(d) for d in run_dirs(outputs, "evaluate"))
    assert int8_run["model"]["precision"] == "int8" and int8_run["metrics"]["n"] == TEST
    assert int8_run["dataset"]["name"] == "mnist"
    # Scored on the same test images as the FP32 file it came from: close to it, not just "a number in [0, 1]".
    assert abs(int8_run["metrics"]["test_acc"] - float_run["metrics"]["test_acc"]) <= 0.25


def test_a_dataset_without_a_test_split_says_which_have_one(cli, outputs: Path) -> None:
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    result = cli("evaluate", "source=latest:pretrain")
    assert result.code == 2 and "dataset synthetic has no test split" in result.stderr
    assert "split=val" in result.stderr and "Traceback" not in result.stderr
    result = cli("evaluate", "source=latest:pretrain", "evaluate.runtime=onnxruntime")
    # the run exists, with a model.pt: say so and how to get the ONNX file (not "no such run")
    assert result.code == 2 and "holds a model.pt (PyTorch checkpoint), and this runs ONNX files" in result.stderr
    assert "cnnlab export source=" in result.stderr and "runtime=pytorch" in result.stderr


def test_scores_match_a_hand_computation() -> None:
    from cnnlab.engine.metrics import ScoreAccumulator

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    accumulator = ScoreAccumulator(2)
    accumulator.update(logits[:2], torch.tensor([0, 0]))
    accumulator.update(logits[2:], torch.tensor([1, 1]))
    scores = accumulator.compute()
    assert scores.n == 4 and scores.top1 == 0.5 and scores.top5 == 1.0
    assert scores.confusion.tolist() == [[1, 1], [1, 1]] and scores.per_class == [0.5, 0.5]


def test_naming_the_source_dataset_again_keeps_its_split(cli, outputs: Path, mnist_args: list[str]) -> None:
    """`dataset=mnist dataset.root=...` restating the training run's data replaced its recorded config with the
    defaults: `split=val` was carved with dataset.seed 0 instead of the run's 3, mostly from training images."""
    assert cli("pretrain", *mnist_args, "dataset.seed=3", "model=lenet5", "trainer.epochs=1", "trainer.amp=none",
               "trainer.batch_size=16").code == 0
    plain = cli("evaluate", "source=latest:pretrain", "split=val")
    restated = cli("evaluate", "source=latest:pretrain", "split=val", *mnist_args[:2])
    assert plain.code == 0 and restated.code == 0, restated.output
    records = sorted((read_run(d) for d in run_dirs(outputs, "evaluate")), key=lambda r: r["started"])
    configs = [r["dataset"]["config"] for r in records]
    assert [c["seed"] for c in configs] == [3, 3] and [c["val_fraction"] for c in configs] == [0.25, 0.25]
    assert records[0]["metrics"]["val_acc"] == records[1]["metrics"]["val_acc"]


def test_a_plain_dataset_key_edits_the_source_dataset(cli, outputs: Path, pretrained: dict, tmp_path: Path) -> None:
    """docs/evaluate.md's `dataset.KEY=...` (data that moved) failed as "unknown setting 'dataset.root'": Hydra
    checked it against the default dataset, synthetic, which has no root."""
    import shutil

    moved = tmp_path / "moved"
    shutil.move(str(outputs.parent / "data"), moved)
    result = cli("evaluate", "source=latest:pretrain", f"dataset.root={moved}")
    assert result.code == 0, result.output
    record = read_run(run_dirs(outputs, "evaluate")[0])
    assert record["dataset"]["config"]["root"] == str(moved) and record["metrics"]["n"] == TEST
    assert record["dataset"]["config"]["val_fraction"] == 0.25  # the source's other settings kept


def test_another_val_carve_or_image_size_is_refused_not_misrecorded(cli, outputs: Path, pretrained: dict) -> None:
    """`dataset.seed=5 split=val` scored a val split holding training images; `dataset.image_size=32` was
    ignored (the model's 16 px used) but recorded as 32."""
    carved = cli("evaluate", "source=latest:pretrain", "split=val", "dataset.seed=5")
    assert carved.code == 2 and "would hold images the model trained on" in carved.stderr, carved.output
    assert "drop dataset.seed=" in carved.stderr and "Traceback" not in carved.stderr
    sized = cli("evaluate", "source=latest:pretrain", "dataset.image_size=32")
    assert sized.code == 2 and "the model takes 16 px images" in sized.stderr, sized.output
    assert cli("evaluate", "source=latest:pretrain", "dataset.image_size=16").code == 0  # its own size is fine
    assert cli("evaluate", "source=latest:pretrain", "split=test", "dataset.seed=5").code == 0  # test is fixed
    assert not run_dirs(outputs, "evaluate") or all(read_run(d)["status"] != "completed" or
                                                   read_run(d)["dataset"]["config"].get("image_size") in (None, 16)
                                                   for d in run_dirs(outputs, "evaluate"))


def test_every_command_that_scores_val_refuses_another_carve(cli, outputs: Path, pretrained: dict) -> None:
    """prune, quantize and export score (and prune trains on) the source's splits too: a typed dataset.seed carved
    a val split holding training images there as well."""
    for command in ("prune", "quantize", "export"):
        epochs = ["trainer.epochs=1"] if command == "prune" else []  # export trains nothing: it refuses the key
        carved = cli(command, "source=latest:pretrain", "dataset.seed=5", *epochs)
        assert carved.code == 2 and "would hold images the model trained on" in carved.stderr, (command, carved.output)


def test_synthetic_draws_val_on_its_own_so_another_size_is_no_carve(cli, outputs: Path) -> None:
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    other = cli("evaluate", "source=latest:pretrain", "split=val", "dataset.val_size=48")
    assert other.code == 0, other.output
    assert read_run(run_dirs(outputs, "evaluate")[0])["metrics"]["n"] == 48
    missing = cli("evaluate", "source=latest:pretrain", "split=val", "dataset.root=/somewhere")
    said = " ".join(missing.stderr.split())
    assert missing.code == 2 and "dataset synthetic (the source's) has no setting 'root'" in said, missing.output


def test_a_typed_mean_or_std_the_model_does_not_use_is_refused(cli, outputs: Path, pretrained: dict,
                                                                mnist_args: list[str]) -> None:
    """`dataset.mean=`/`std=` on a source (or on fine-tuning from pretrained weights) were ignored — the recorded
    normalisation applied — yet written into run.json's dataset config, exit 0."""
    own = read_run(Path(pretrained["run_dir"]))["dataset"]["mean"]
    for command, extra in (("evaluate", ["source=latest:pretrain"]),
                           ("finetune", ["model=lenet5", "model.weights=latest:pretrain", *mnist_args])):
        refused = cli(command, *extra, "dataset.mean=[0.1,0.2,0.3]")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"takes mean {own}" in said and "drop dataset.mean=" in said, refused.output
        assert "Traceback" not in refused.stderr and "dataset.mean=[0.1,0.2,0.3]," in said  # as typed (probe 194)
        assert "weights takes" not in said
    std = cli("evaluate", "source=latest:pretrain", "dataset.std=[9,9,9]")
    assert std.code == 2 and "drop dataset.std=" in std.stderr, std.output
    assert len(own) == 1  # probe 191: a 1-channel model's run recorded its one mean three times
    same = cli("evaluate", "source=latest:pretrain", f"dataset.mean=[{own[0]},{own[0]},{own[0]}]")  # for R, G, B
    assert same.code == 0, same.output  # the model's own values change nothing
    assert cli("evaluate", "source=latest:pretrain", "dataset.image_size=null").code == 0  # null: the model's


def test_one_mean_and_std_serve_a_one_channel_model_and_are_recorded_once(cli, outputs: Path, pretrained: dict,
                                                                          mnist_args: list[str]) -> None:
    """Probe: `pretrain model=lenet5 dataset=fashion_mnist 'dataset.mean=[0.3]' 'dataset.std=[0.35]'` and `evaluate
    source=GREY_RUN 'dataset.mean=[0.286]'` (the one mean its run records) were refused: "dataset.mean takes a list
    of 3 numbers — set e.g. 'dataset.mean=[0.4914,0.4822,0.4465]'", CIFAR's RGB mean for a grey network. One value
    is the one channel's, recorded once everywhere; where 3 channels are read it is still refused."""
    own = read_run(Path(pretrained["run_dir"]))["dataset"]["mean"]
    assert len(own) == 1
    assert cli("evaluate", "source=latest:pretrain", f"dataset.mean=[{own[0]}]").code == 0  # the model's own
    other = cli("evaluate", "source=latest:pretrain", "dataset.mean=[0.9]")
    said = " ".join(other.stderr.split())
    assert other.code == 2 and f"takes mean {own}" in said and "drop dataset.mean=" in said, other.output
    assert "0.4914" not in said and "a list of 3" not in said  # no RGB triple offered for a grey network

    grey = cli("pretrain", *mnist_args, "model=lenet5", "trainer.epochs=1", "trainer.batch_size=16",
               "trainer.amp=none", "dataset.mean=[0.3]", "dataset.std=[0.35]")
    assert grey.code == 0, grey.output
    from cnnlab.engine.checkpoint import read_checkpoint

    record = next(r for r in map(read_run, run_dirs(outputs, "pretrain")) if "dataset.mean=[0.3]" in r["overrides"])
    checkpoint = read_checkpoint(Path(record["run_dir"]) / "model.pt")
    spec = checkpoint.spec
    assert spec.channels == 1 and spec.to_dict()["mean"] == [0.3] and spec.to_dict()["std"] == [0.35]
    # the same one value in run.json's dataset section, its config, and the model file's own dataset record
    for dataset in (record["dataset"], checkpoint.extra["dataset"]):
        assert dataset["mean"] == dataset["config"]["mean"] == [0.3], dataset
        assert dataset["std"] == dataset["config"]["std"] == [0.35], dataset

    assert cli("pretrain", *TINY).code == 0  # 3 channels (R, G, B): one value is refused, a list of 3 named
    for command, extra in (("pretrain", list(TINY)), ("evaluate", ["source=latest:pretrain", "split=val"])):
        refused = cli(command, *extra, "dataset.mean=[0.5]")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and "dataset.mean=[0.5] is not allowed: dataset.mean takes a list of 3 numbers" \
            in said, refused.output


def test_a_one_channel_model_records_the_colour_it_loses_counted_over_the_splits_read(
        cli, outputs: Path, pretrained: dict, tmp_path: Path) -> None:
    """Probe: `evaluate source=GREY_RUN dataset=imagefolder dataset.root=DIR` said "48 of its 48 pictures stored in
    colour … are read as their luminance" — every picture of DIR, where its test/ holds 16 — and only in run.log:
    run.json's `warnings` was null. Counted over what the command reads, and recorded, by every command that
    builds a folder's data (build_datasets): evaluate (test/), finetune (train/ and the val carved from it); and by
    predict, of the pictures it is given."""
    from PIL import Image
    from torchvision.datasets import MNIST

    from helpers import random_image_folder

    folder = tmp_path / "colour"
    for split, per_class in (("train", 4), ("test", 2)):
        random_image_folder(folder / split, per_class=per_class, classes=tuple(MNIST.classes[:2]), seed=per_class)
        for name in MNIST.classes[2:]:
            (folder / split / name).mkdir()  # no pictures of these: only scored, a folder needs none
    grey = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(grey, "L").save(folder / "test" / MNIST.classes[0] / "grey.png")  # grey: nothing lost
    grey_as_rgb = np.repeat(np.random.default_rng(1).integers(0, 256, (16, 16, 1), dtype=np.uint8), 3, axis=-1)
    Image.fromarray(grey_as_rgb, "RGB").save(folder / "test" / MNIST.classes[1] / "grey_rgb.png")  # nothing lost
    result = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={folder}")
    assert result.code == 0, result.output
    warned = [w for w in read_run(run_dirs(outputs, "evaluate")[0])["warnings"] or [] if "luminance" in w]
    assert len(warned) == 1 and warned[0].startswith(
        f"imagefolder {folder}, test split: 4 of its 6 pictures hold colour and are read as "
        "their luminance (L = 0.299 R + 0.587 G + 0.114 B) for the model's 1-channel input"), warned
    assert "test split: 4 of its 6 pictures hold colour" in " ".join(result.output.split())  # and said
    predicted = cli("predict", "source=latest:pretrain", str(folder / "test"))  # pictures given, not a dataset
    assert predicted.code == 0, predicted.output
    warned = [w for w in only_run(outputs, "predict")["warnings"] or [] if "luminance" in w]
    assert len(warned) == 1 and warned[0].startswith("predict inputs: 4 of its 6 pictures hold colour"), warned
    every = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={folder / 'test'}",
                "split=all")  # new pictures in class folders, no split folders: named as typed, not "train split"
    assert every.code == 0, every.output
    assert f"imagefolder {folder / 'test'}, split=all: 4 of its 6 pictures hold colour" in " ".join(
        every.output.split()), every.output

    photos = tmp_path / "photos"  # classes of its own: a new head; test/ is not read by finetune
    random_image_folder(photos / "train", per_class=4, classes=("red", "blue"), seed=5)
    random_image_folder(photos / "test", per_class=3, classes=("red", "blue"), seed=6)
    tuned = cli("finetune", "model=lenet5", "model.weights=latest:pretrain", "dataset=imagefolder",
                f"dataset.root={photos}", "dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=4",
                "trainer.amp=none", "dataset.val_fraction=0.5")
    assert tuned.code == 0, tuned.output
    warned = [w for w in only_run(outputs, "finetune")["warnings"] or [] if "luminance" in w]
    assert len(warned) == 1 and f"imagefolder {photos}, train and val splits: 8 of its 8 pictures" in warned[0], \
        warned


def test_val_is_refused_once_the_folder_changed_or_the_record_lost_its_carve(cli, outputs: Path,
                                                                             tmp_path: Path) -> None:
    """The val split of a one-level folder is carved by dataset.seed from the files there: after images were added,
    `evaluate split=val` scored a new carve holding training images (50 % → 77.78 %), exit 0; a folder reached
    through a link counted as other data and was carved with the default seed; a run.json without dataset.seed was
    carved with seed 0."""
    import json
    import shutil

    from helpers import random_image_folder

    data = random_image_folder(tmp_path / "photos", per_class=8)
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={data}", "dataset.image_size=16", "dataset.seed=3",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    run = run_dirs(outputs, "pretrain")[0]
    linked = cli("evaluate", f"source={run}", "split=val", "dataset=imagefolder", f"dataset.root={tmp_path / 'link'}")
    assert linked.code == 0, linked.output
    assert read_run(run_dirs(outputs, "evaluate")[-1])["dataset"]["config"]["seed"] == 3  # the same images

    edited = tmp_path / "edited"
    shutil.copytree(run, edited)
    record = json.loads((edited / "run.json").read_text())
    del record["dataset"]["config"]["seed"]
    (edited / "run.json").write_text(json.dumps(record))
    unsaid = cli("evaluate", f"source={edited}", "split=val")  # its model.pt records the seed: they disagree
    assert unsaid.code == 2 and "dataset.seed 3 in the file, nothing in run.json" in unsaid.stderr, unsaid.output
    (edited / "model.pt").write_bytes(_without_dataset_record(edited / "model.pt"))  # a file from before that record
    del record["digests"]  # ... and so a run from before run.json kept its model file's SHA-256
    (edited / "run.json").write_text(json.dumps(record))
    unsaid = cli("evaluate", f"source={edited}", "split=val")
    assert unsaid.code == 2 and "does not record dataset.seed" in unsaid.stderr, unsaid.output
    record["dataset"]["config"]["seed"] = float("nan")  # a traceback before: cannot convert float NaN to integer
    (edited / "run.json").write_text(json.dumps(record))
    damaged = cli("evaluate", f"source={edited}", "split=val")
    assert damaged.code == 2 and "dataset.config.seed is nan" in damaged.stderr, damaged.output
    assert "Traceback" not in damaged.stderr
    record["dataset"]["config"]["seed"], record["status"] = 3, "failed"  # a run that stopped: said, not refused
    (edited / "run.json").write_text(json.dumps(record))
    failed = cli("evaluate", f"source={edited}", "split=val")
    assert failed.code == 0 and "is failed, not completed" in " ".join(failed.output.split()), failed.output

    random_image_folder(tmp_path / "new", per_class=2, classes=("cat",), seed=1)
    for i, picture in enumerate(sorted((tmp_path / "new" / "cat").iterdir())):
        picture.rename(data / "cat" / f"new{i}.png")
    changed = cli("evaluate", f"source={run}", "split=val")
    said = " ".join(changed.stderr.split())
    assert changed.code == 2 and f"the images in {data} changed since it ran" in said, changed.output
    assert "train again on the folder as it is" in said and "Traceback" not in changed.stderr


def test_a_config_dir_dataset_with_its_own_folder_is_other_data(cli, outputs: Path, tmp_path: Path) -> None:
    """Two --config-dir files with `defaults: [imagefolder]` share the name imagefolder: the second one's folder
    was dropped for the source's recorded one (scored on the training run's data, exit 0)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    conf = tmp_path / "conf" / "dataset"
    conf.mkdir(parents=True)
    for which in ("a", "b"):
        for split, count in (("train", 6), ("val", 2)):
            for name in ("cat", "dog"):
                folder = tmp_path / which / split / name
                folder.mkdir(parents=True)
                for i in range(count):
                    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        (conf / f"{which}folder.yaml").write_text(f"defaults: [imagefolder, _self_]\nroot: {tmp_path / which}\n"
                                                  "image_size: 16\n")
    config_dir = ["--config-dir", str(tmp_path / "conf")]
    assert cli("pretrain", *config_dir, "dataset=afolder", "model=lenet5", "trainer.epochs=1",
               "trainer.batch_size=4").code == 0
    result = cli("evaluate", *config_dir, "source=latest:pretrain", "dataset=bfolder", "split=val")
    assert result.code == 0, result.output
    assert read_run(run_dirs(outputs, "evaluate")[0])["dataset"]["config"]["root"] == str(tmp_path / "b")


def test_a_model_file_copied_out_of_its_run_keeps_its_data_and_split(cli, outputs: Path, pretrained: dict,
                                                                     tmp_path: Path) -> None:
    """A bare model.pt fell back to dataset=synthetic (export/quantize/prune refused with a fix that did nothing),
    and with dataset.val_fraction=0.9 it was scored partly on its own training images, exit 0."""
    import shutil

    bare = tmp_path / "bare" / "model.pt"
    bare.parent.mkdir()
    shutil.copy(Path(pretrained["run_dir"]) / "model.pt", bare)
    exported = cli("export", f"source={bare}")
    assert exported.code == 0, exported.output
    assert read_run(run_dirs(outputs, "export")[0])["dataset"]["config"]["val_fraction"] == 0.25
    for command in ("quantize", "export"):
        carved = cli(command, f"source={bare}", "dataset.val_fraction=0.9")
        assert carved.code == 2 and "would hold images the model trained on" in carved.stderr, carved.output
    # probe 68: beside a damaged run.json, the named file was refused ("pick another run"); it is read as a copy
    (bare.parent / "run.json").write_text("{not json")
    scored, copied = cli("evaluate", f"source={bare}"), read_run(run_dirs(outputs, "export")[0])
    said = " ".join(scored.stderr.split())  # the log wraps its lines
    assert scored.code == 0 and "run.json is damaged" in said and "is read with its own record" in said, said
    assert read_run(run_dirs(outputs, "evaluate")[0])["dataset"]["config"]["val_fraction"] == \
        copied["dataset"]["config"]["val_fraction"]


def test_a_file_ending_in_softmax_scores_as_its_source_not_softmaxed_twice(cli, outputs: Path, tiny_export: Path,
                                                                           tmp_path: Path) -> None:
    """A Softmax added before `logits` (metadata kept): the same top-1, but ECE 0.4945 instead of 0.1889."""
    from onnx_variants import with_softmax

    ending = with_softmax(tiny_export, tmp_path / "softmax.onnx")
    for source in (tiny_export, ending):
        result = cli("evaluate", f"source={source}", "split=val")
        assert result.code == 0, result.output
    plain, softmax = sorted((read_run(d) for d in run_dirs(outputs, "evaluate")), key=lambda r: r["started"])
    assert softmax["metrics"]["val_acc"] == plain["metrics"]["val_acc"]
    assert softmax["metrics"]["ece"] == pytest.approx(plain["metrics"]["ece"], abs=1e-4)
    assert softmax["metrics"]["val_loss"] == pytest.approx(plain["metrics"]["val_loss"], abs=1e-4)
    assert softmax["model"]["outputs"] == "probabilities" and plain["model"]["outputs"] == "logits"
    assert "outputs probabilities" in result.output


def test_fp16_and_dynamic_int8_files_evaluate_with_the_precision_of_their_graph(cli, outputs: Path,
                                                                                tiny_export: Path,
                                                                                tmp_path: Path) -> None:
    """An FP16 file (float16 input and output) was a traceback "expected (tensor(float16)) — this is a bug in
    cnnlab"; a quantize_dynamic file was recorded as precision fp32 though quantize sees it as quantized."""
    from onnx_variants import dynamic_int8, to_float16

    files = {"fp32": tiny_export, "fp16": to_float16(tiny_export, tmp_path / "fp16.onnx"),
             "int8": dynamic_int8(tiny_export, tmp_path / "dynamic_int8.onnx")}
    for source in files.values():
        result = cli("evaluate", f"source={source}", "split=val")
        assert result.code == 0 and "Traceback" not in result.output, result.output
    records = {Path(r["source"]["path"]).name: r for r in (read_run(d) for d in run_dirs(outputs, "evaluate"))}
    fp32, fp16, int8 = (records[path.name] for path in files.values())
    assert (fp32["model"]["precision"], fp16["model"]["precision"], int8["model"]["precision"]) == \
        ("fp32", "fp16", "int8")
    n = fp32["metrics"]["n"]
    assert fp16["metrics"]["n"] == n and abs(fp16["metrics"]["val_acc"] - fp32["metrics"]["val_acc"]) <= 1 / n + 1e-9
    assert fp16["metrics"]["val_loss"] == pytest.approx(fp32["metrics"]["val_loss"], abs=0.02)


def test_a_capitalised_val_folder_is_a_fixed_split_not_a_carve(cli, outputs: Path, tmp_path: Path) -> None:
    """`Train/` + `Val/` (Windows, Kaggle): the check for another carve looked for a lower-case `val/` only and
    refused a typed dataset.seed although the val split is a folder that no seed changes."""
    from helpers import random_image_folder

    random_image_folder(tmp_path / "photos" / "Train")
    random_image_folder(tmp_path / "photos" / "Val", per_class=2, seed=1)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={tmp_path / 'photos'}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    result = cli("evaluate", "source=latest:pretrain", "split=val", "dataset.seed=5")
    assert result.code == 0, result.output
    assert read_run(run_dirs(outputs, "evaluate")[0])["metrics"]["n"] == 4  # all of Val/, no carve
    # a carve setting on that fixed split changes nothing: refused as in training, not recorded as used
    refused = cli("evaluate", "source=latest:pretrain", "split=val", "dataset.val_fraction=0.3")
    assert refused.code == 2 and "dataset.val_fraction=0.3 has no effect" in refused.stderr, refused.output


def test_split_all_scores_a_folder_of_new_images_never_the_training_images(cli, outputs: Path,
                                                                             tmp_path: Path) -> None:
    """A folder of new labelled images without split folders could only be scored on its carved val fifth
    (`split=test` said "use split=val"). `split=all` scores every image of it, and is refused on the training data
    — by its path or by its pictures in a copy elsewhere — whose score would read high."""
    import shutil

    from helpers import random_image_folder

    trained, new = tmp_path / "photos", tmp_path / "new_photos"
    random_image_folder(trained, per_class=6)
    random_image_folder(new, per_class=4, seed=3)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={trained}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    no_test = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}")
    assert no_test.code == 2 and "split=all" in no_test.stderr and "Traceback" not in no_test.stderr
    # probe 184: the folder's own test split was not among the fixes — where it has a train/ to go beside
    assert "put test images in" not in no_test.stderr  # one level: a test/ here would read as a class
    (new / "train").mkdir()
    for folder in [f for f in new.iterdir() if f.name != "train"]:
        folder.rename(new / "train" / folder.name)
    split = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}")
    assert f"put test images in {new}/test/<class>/ beside its train/" in " ".join(split.stderr.split())
    for folder in (new / "train").iterdir():
        folder.rename(new / folder.name)
    (new / "train").rmdir()
    result = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}", "split=all")
    assert result.code == 0, result.output
    record = next(r for r in map(read_run, run_dirs(outputs, "evaluate")) if r["status"] == "completed")
    assert record["metrics"]["n"] == 8 and record["metrics"]["split"] == "all" and "all_acc" in record["metrics"]
    # probe 154: outcomes.csv did not say which photo each row scored
    import csv

    rows = list(csv.DictReader((Path(record["run_dir"]) / "outcomes.csv").open()))
    assert sorted(row["file"] for row in rows) == sorted(str(f) for f in new.glob("*/*.png"))
    assert all(Path(row["file"]).parent.name == row["true"] for row in rows)
    # one picture per class: nothing to carve, and none needed (it was refused: "a split by class needs 2 per class")
    random_image_folder(tmp_path / "one_each", per_class=1, seed=7)
    single = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={tmp_path / 'one_each'}",
                 "split=all")
    assert single.code == 0, single.output
    # and a class with no picture of its own (refused: "class folder(s) dog hold no readable image")
    random_image_folder(tmp_path / "cats_only", per_class=2, seed=8, classes=("cat",))
    (tmp_path / "cats_only" / "dog").mkdir()
    cats = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={tmp_path / 'cats_only'}",
               "split=all")
    assert cats.code == 0, cats.output
    assert sorted(r["metrics"]["n"] for r in map(read_run, run_dirs(outputs, "evaluate")) if r["status"] == "completed"
                  ) == [2, 2, 8]
    shutil.copytree(trained, tmp_path / "copy")  # file times kept: the folder digest is the same
    # `cp -r` (new file times) with a picture added; a new folder holding one training picture: found by the bytes
    shutil.copytree(trained, tmp_path / "cp_r", copy_function=shutil.copyfile)
    shutil.copy(new / "cat" / "0.png", tmp_path / "cp_r" / "cat" / "added.png")
    shutil.copy(trained / "dog" / "2.png", new / "dog" / "new_name.png")
    for root, said in ((trained, "images the model trained on"), (tmp_path / "copy", "images the model trained on"),
                       (tmp_path / "cp_r", "12 pictures in"), (new, "1 picture in")):
        refused = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={root}",
                      "split=all")
        assert refused.code == 2 and said in refused.stderr, refused.output
        assert "Traceback" not in refused.stderr


def test_the_runs_pictures_under_another_root_keep_its_carve(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 150: `dataset.root=COPY dataset.seed=3` (a `cp -a` copy, or the folder moved) was never compared with the
    run's carve: 9 of 12 "val" images were training images, 75 % for a model at chance, exit 0."""
    import shutil

    from helpers import random_image_folder

    trained = tmp_path / "photos"
    random_image_folder(trained, per_class=6)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={trained}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    shutil.copytree(trained, tmp_path / "copy")  # file times kept
    for root in (tmp_path / "copy", tmp_path / "moved", tmp_path / "cp_r"):
        if root.name == "moved":
            trained.rename(root)
        if root.name == "cp_r":  # probe 152: new file times, the run's folder gone: only a warning, 9 of 12 trained on
            shutil.copytree(tmp_path / "moved", root, copy_function=shutil.copyfile)
        for carve in ("dataset.seed=3", "dataset.val_fraction=0.5"):
            refused = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={root}", carve)
            said = " ".join(refused.stderr.split())
            assert refused.code == 2 and "another carve would hold images the model trained on" in said, \
                refused.output
        same = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={root}")  # its own carve
        assert same.code == 0, same.output
    assert not run_dirs(outputs, "evaluate") or all(read_run(d)["status"] == "completed"
                                                    for d in run_dirs(outputs, "evaluate"))


def _error_line(result) -> str:
    """The one error line of a refused command (exit 2, no traceback)."""
    assert result.code == 2 and "Traceback" not in result.stderr, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    return line


def test_class_folders_name_a_slashed_class_with_an_underscore(cli, outputs: Path, tmp_path: Path) -> None:
    """A Fashion-MNIST model could not score a folder of new labelled images: its class T-shirt/top can be no
    folder name, and the folder T-shirt_top was refused ("knows 10 classes but dataset imagefolder has 10"). The
    folder T-shirt_top/ now holds T-shirt/top, the folder's sorted classes are renumbered to the model's order, and
    the records use the model's names."""
    from collections import Counter

    from helpers import random_image_folder

    write_idx(tmp_path / "data" / "FashionMNIST" / "raw", "train", TRAIN, seed=0, classes=CLASSES)
    write_idx(tmp_path / "data" / "FashionMNIST" / "raw", "t10k", TEST, seed=1, classes=CLASSES)
    assert cli("pretrain", "dataset=fashion_mnist", f"dataset.root={tmp_path / 'data'}", "dataset.download=false",
               "dataset.image_size=16", "model=lenet5", "trainer.epochs=1", "trainer.batch_size=16",
               "trainer.amp=none").code == 0
    new = tmp_path / "new"
    for count, name in enumerate(("T-shirt_top", "Trouser", "Pullover"), start=1):
        random_image_folder(new, per_class=count, classes=(name,), seed=count)
    for name in ("Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"):
        (new / name).mkdir()  # no pictures of these: split=all scores what there is
    result = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}", "split=all")
    assert result.code == 0, result.output
    assert "thefolderT-shirt_topholdsclassT-shirt/top" in "".join(result.output.split())  # a log line may wrap
    run_dir = run_dirs(outputs, "evaluate")[0]
    metrics = read_run(run_dir)["metrics"]
    assert metrics["n"] == 6 and list(metrics["per_class_acc"])[:3] == ["T-shirt/top", "Trouser", "Pullover"]
    # each picture keeps its folder's class (folders sorted Pullover, T-shirt_top, Trouser; the model's order differs)
    outcomes = list(csv.DictReader((run_dir / "outcomes.csv").open()))
    assert Counter(r["true"] for r in outcomes) == {"T-shirt/top": 1, "Trouser": 2, "Pullover": 3}
    assert next(csv.reader((run_dir / "confusion.csv").open()))[1] == "T-shirt/top"

    (new / "T-shirt_top").rename(new / "T-shirt∕top")  # a Unicode division slash: not the rule's spelling
    line = _error_line(cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}",
                           "split=all"))
    assert "both have 10 classes, but the names differ" in line and "has 10" not in line
    assert "rename the class folder T-shirt∕top to T-shirt_top" in line
    assert "name the folder T-shirt_top for T-shirt/top" in line
    # the set itself has a test split: split=all of it names split=test
    line = _error_line(cli("evaluate", "source=latest:pretrain", "split=all"))
    assert "would score the images the model trained on — use split=test (or val)" in line
    # both refusals came before any work: no `failed` evaluate run beside the one that scored (probe 68)
    assert len(run_dirs(outputs, "evaluate")) == 1


def test_split_all_of_a_set_without_a_test_split_names_split_val(cli, outputs: Path) -> None:
    """split=all of digits (no test split) said "use split=test (or val)", and split=test then said "dataset
    digits has no test split"."""
    assert cli("pretrain", "dataset=digits", "model=lenet5", "trainer.epochs=1", "trainer.max_steps_per_epoch=2",
               "trainer.batch_size=16").code == 0
    line = _error_line(cli("evaluate", "source=latest:pretrain", "split=all"))
    assert "split=all of digits would score the images the model trained on" in line
    assert "use split=val for the data the model trained on (digits has no test split)" in line
    assert "split=test" not in line
    assert cli("evaluate", "source=latest:pretrain", "split=val").code == 0  # the advice works


def test_a_test_split_holding_copies_of_the_training_pictures_of_the_same_folder_is_refused(
        cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 62: `evaluate split=test` of the folder the model trained on, whose test/ held copies of its train/
    pictures, read 83.33 % for a model at chance, exit 0 (the same test/ in a copy of the folder was refused)."""
    import shutil

    from helpers import random_image_folder

    folder = random_image_folder(tmp_path / "pics" / "train", per_class=6)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    random_image_folder(folder.parent / "test", per_class=2, seed=7)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={folder.parent}", *tiny).code == 0
    assert cli("evaluate", "source=latest:pretrain", "split=test").code == 0  # new pictures: scored
    shutil.copy(folder / "cat" / "0.png", folder.parent / "test" / "cat" / "copy.png")
    result = cli("evaluate", "source=latest:pretrain", "split=test")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and f"split=test: 1 picture in {folder.parent / 'test'} is the model's " \
        "training or validation image" in said and "remove them from" in said, result.output
    assert len(run_dirs(outputs, "evaluate")) == 1  # probe 75: the refusal left a `failed` run behind
    from PIL import Image

    Image.open(folder / "cat" / "0.png").save(folder.parent / "test" / "cat" / "copy.png", compress_level=0)
    resaved = cli("evaluate", "source=latest:pretrain", "split=test")  # probe 70: the same pixels in other bytes
    assert resaved.code == 2 and "by bytes or pixels" in " ".join(resaved.stderr.split()), resaved.output
    for i in range(1, 5):  # probe 72: of 11 copies only the first was named, and "remove them" could not be followed
        shutil.copy(folder / "cat" / f"{i}.png", folder.parent / "test" / "cat" / f"copy{i}.png")
    many = " ".join(cli("evaluate", "source=latest:pretrain", "split=test").stderr.split())
    assert "and 2 more" in many and "the 5 copies: " in many
    assert str(folder.parent / "test" / "cat" / "copy4.png") in many
    for i in range(1, 5):
        (folder.parent / "test" / "cat" / f"copy{i}.png").unlink()
    (folder.parent / "test" / "cat" / "copy.png").unlink()  # probe 64: links to train/ pictures, which the scan
    (folder.parent / "test" / "cat" / "link.png").symlink_to(folder / "cat" / "1.png")  # skips: nothing to refuse
    linked = cli("evaluate", "source=latest:pretrain", "split=test")
    assert linked.code == 0 and "duplicate of a file already read (symlink)" in " ".join(linked.output.split()), \
        linked.output
    # probe 64: the test score of another folder whose own val/ copies its train/ (split=test reads neither)
    other = tmp_path / "other"
    random_image_folder(other / "train", per_class=3, seed=11)
    shutil.copytree(other / "train", other / "val")
    random_image_folder(other / "test", per_class=2, seed=12)
    scored = cli("evaluate", "source=latest:pretrain", "split=test", f"dataset.root={other}")
    assert scored.code == 0, scored.output


def _without_dataset_record(path: Path) -> bytes:
    """The bytes of checkpoint `path` without its `extra.dataset` record, as files made before it was kept."""
    import io

    payload = torch.load(path, weights_only=True)
    payload["extra"].pop("dataset")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_an_onnx_file_whose_weights_changed_after_its_run_is_not_scored_as_the_runs(cli, outputs: Path,
                                                                                    tiny_export: Path,
                                                                                    tmp_path: Path) -> None:
    """Bytes flipped in a weight of an exported run's model.onnx (a damaged disk, a hand edit): the file still
    loads and was scored as the run's with exit 0 (probe 68). The run's SHA-256 of it tells now."""
    import onnx

    graph = onnx.load(tiny_export)
    weight = max(graph.graph.initializer, key=lambda t: len(t.raw_data))
    data = tiny_export.read_bytes()
    at = data.index(weight.raw_data) + len(weight.raw_data) // 2
    tiny_export.write_bytes(data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1:])
    onnx.checker.check_model(onnx.load(tiny_export))  # still a valid model: only its numbers changed
    run = tiny_export.parent
    result = cli("evaluate", f"source={run}", "split=val")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and f"{tiny_export} is not the file run {run} wrote" in said, result.output
    assert "Traceback" not in result.stderr and not (outputs / "evaluate").exists()
    copy = tmp_path / "edited.onnx"  # the fix it names: scored as a file of its own
    copy.write_bytes(tiny_export.read_bytes())
    assert cli("evaluate", f"source={copy}", "split=val").code == 0


def test_a_folder_of_new_images_is_told_split_all_before_its_class_folders(cli, outputs: Path,
                                                                           tmp_path: Path) -> None:
    """Probe 70: a one-level folder of new labelled images lacking one of the model's classes was told to create
    the class folder, and then, created, that it has no test split: two fixes in turn. The split is judged first."""
    from helpers import random_image_folder

    trained = random_image_folder(tmp_path / "trained", per_class=4, classes=("cat", "dog", "fox"))
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={trained}", "model=lenet5", "dataset.image_size=16",
               "trainer.epochs=1", "trainer.batch_size=4").code == 0
    new = random_image_folder(tmp_path / "photos", per_class=2, classes=("cat", "dog"), seed=5)
    first = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}")
    said = " ".join(first.stderr.split())
    assert first.code == 2 and "has no test split" in said and "split=all" in said, first.output
    second = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}", "split=all")
    assert second.code == 2 and "create the class folder fox" in " ".join(second.stderr.split()), second.output
    (new / "fox").mkdir()
    third = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}", "split=all")
    assert third.code == 0, third.output
    assert "no images of those classes to score" in " ".join(third.stderr.split())  # not "no photos images"


def test_top5_of_five_classes_or_fewer_is_recorded_but_not_shown(cli, outputs: Path) -> None:
    """Probe 88: with 2-4 classes every log line read "top5 100.00%", true by construction, with no word of it."""
    from helpers import TINY  # 4 classes

    trained = cli("pretrain", *TINY)
    epoch_line = next(line for line in trained.output.splitlines() if "epoch 1/1" in line)
    assert trained.code == 0 and "top5" not in epoch_line and "val loss" in epoch_line
    assert read_run(run_dirs(outputs, "pretrain")[0])["metrics"]["val_top5"] == 1.0  # recorded as it is
    scored = cli("evaluate", "source=latest:pretrain", "split=val")
    assert scored.code == 0 and "top-5" not in scored.output and "val: top-1" in scored.output


def test_a_test_evaluation_records_no_train_and_val_sizes_it_did_not_carve(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 97: `evaluate split=test` of a model trained on train/ (val carved, 84 / 14) recorded train_size 105,
    val_size 0 — the folder read without carving val — as if the model had trained on those."""
    from helpers import random_image_folder

    random_image_folder(tmp_path / "photos" / "train", per_class=8)
    random_image_folder(tmp_path / "photos" / "test", per_class=2, seed=5)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={tmp_path / 'photos'}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4").code == 0
    trained = only_run(outputs, "pretrain")["dataset"]
    result = cli("evaluate", "source=latest:pretrain", "split=test")
    assert result.code == 0, result.output
    recorded = only_run(outputs, "evaluate")
    assert recorded["evaluate"]["n"] == 4 and recorded["dataset"]["test_size"] == 4
    assert recorded["dataset"]["train_size"] is None and recorded["dataset"]["val_size"] is None
    assert (trained["train_size"], trained["val_size"]) != (16, 0)


def test_a_model_file_named_for_the_other_format_is_told_to_be_renamed(cli, outputs: Path, tiny_export: Path,
                                                                      tmp_path: Path) -> None:
    """Probe 155: an exported model.onnx named .pt read as "corrupt, truncated or not a PyTorch file", a model.pt named
    .onnx as "not a readable ONNX model"; each is fine under its own name."""
    import shutil

    pt = run_dirs(outputs, "pretrain")[0] / "model.pt"
    for original, misnamed, right in ((tiny_export, "m.pt", "m.onnx"), (pt, "c.onnx", "c.pt")):
        shutil.copy(original, tmp_path / misnamed)
        refused = cli("evaluate", f"source={tmp_path / misnamed}", "split=val")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"name it {right}" in said and "corrupt" not in said, refused.output
        (tmp_path / misnamed).rename(tmp_path / right)  # the fix, followed
        assert cli("evaluate", f"source={tmp_path / right}", "split=val").code == 0


def test_a_file_that_records_no_dataset_is_told_to_name_its_data_not_scored_on_the_default(
        cli, outputs: Path, tiny_export: Path, tmp_path: Path) -> None:
    """Probe 187: metadata without a dataset: evaluate warned "using dataset=synthetic", offered split=val, and that
    fix met a class refusal that said to drop a dataset= never typed. quantize calibrated on the stand-in alike."""
    import onnx

    proto = onnx.load(str(tiny_export))
    kept = [p for p in proto.metadata_props if p.key not in ("dataset", "source")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    bare = tmp_path / "elsewhere.onnx"
    onnx.save(proto, str(bare))
    before = sorted(p for p in outputs.rglob("run.json"))
    for command in ("evaluate", "quantize"):
        refused = cli(command, f"source={bare}")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"source={bare} records no dataset" in said, refused.output
        assert "name the data it was trained on with dataset=NAME" in said and "Traceback" not in refused.output
    assert sorted(p for p in outputs.rglob("run.json")) == before  # refused before any work: no run folder
    data = [o for o in TINY if o.startswith("dataset")]
    followed = cli("evaluate", f"source={bare}", *data, "split=val")  # the data named, as told
    assert followed.code == 0, followed.output
