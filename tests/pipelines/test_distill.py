"""`cnnlab distill`: teacher/student config groups, KD vs baseline record, teacher-logit cache, hints, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import prebuilt
from cnnlab.engine.checkpoint import load_model
from cnnlab.models import create_model
from cnnlab.runs import resolve_source
from helpers import TEACHER_TRAINING, TINY, only_run, read_run, run_dirs, write_idx

# TINY trains the teacher (lenet5, synthetic 4 classes at 16 px); the same data flags keep the distill runs tiny.
LENET_PAIR = ["teacher=lenet5", "teacher.weights=latest:pretrain", "student=lenet5", "trainer.epochs=2",
              "trainer.batch_size=16", "trainer.amp=none"]



def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_help_shows_teacher_and_student_groups(cli) -> None:
    result = cli("distill", "--help")
    assert result.code == 0
    assert "teacher" in result.stdout and "resnet50*" in result.stdout and "mobilenet*" in result.stdout
    assert "temperature: 4.0" in result.stdout and "cache_teacher: auto" in result.stdout


def test_teacher_and_student_groups_compose(cli) -> None:
    result = cli("distill", "--cfg", "job", "teacher=resnet50", "student=mobilenet", "teacher.weights=some/run",
                 "student.weights=none")
    assert result.code == 0, result.output
    assert "teacher:\n  name: resnet50\n  weights: some/run" in result.stdout
    assert "student:\n  name: mobilenet_v2\n  weights: none" in result.stdout
    defaults = cli("distill", "--cfg", "job", "student=lenet5")
    assert "weights: latest:finetune" in defaults.stdout  # the teacher's default
    assert "student:\n  name: lenet5\n  weights: none" in defaults.stdout  # the zoo's default (no ImageNet file)


def test_distill_records_teacher_kd_student_and_baseline(cli, outputs: Path, teacher_run: Path) -> None:
    result = cli("distill", *LENET_PAIR)
    assert result.code == 0, result.output
    record = only_run(outputs, "distill")
    metrics, info = record["metrics"], record["distill"]
    assert metrics["teacher_val_acc"] == read_run(teacher_run)["metrics"]["val_acc"]
    assert metrics["kd_gain"] == pytest.approx(metrics["val_acc"] - metrics["baseline_val_acc"])
    said = " ".join(result.output.split())  # probe 124: the gain was never printed
    assert f"KD gain {100 * metrics['kd_gain']:+.2f} points (one seed" in said
    assert info["baseline"]["val_acc"] == metrics["baseline_val_acc"] and len(info["baseline"]["history"]) == 2
    assert info["teacher"]["name"] == "lenet5" and info["teacher"]["params"] > 0
    assert info["teacher"]["source"]["run"] == str(teacher_run)
    assert info["student"]["weights"] == "random initialisation" and info["cache_teacher"] is True
    assert info["temperature"] == 4.0 and info["alpha"] == 0.5
    assert record["source"]["command"] == "pretrain"
    # probe 82: a run that augments nothing was said to augment "per image, in the DataLoader workers"
    assert record["environment"]["augment_on"]["where"] == "none"
    # The data is the teacher's own (its run's dataset config), and derived runs find it again here.
    assert record["dataset"]["config"] == read_run(teacher_run)["dataset"]["config"]
    # An ordinary run: its model.pt loads, and latest:distill finds it.
    source = resolve_source("latest:distill", outputs, want=("checkpoint",))
    model, checkpoint = load_model(source.path)
    assert checkpoint.name == "lenet5" and len(checkpoint.classes) == 4
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)


def test_alpha_zero_reproduces_the_baseline_exactly(cli, outputs: Path, teacher_run: Path) -> None:
    """Same initial weights, seed, data order and budget: with the soft term off the two trainings are one — and
    the teacher's logits, which nothing reads then, are not computed."""
    assert cli("distill", *LENET_PAIR, "distill.alpha=0").code == 0
    record = only_run(outputs, "distill")
    assert record["metrics"]["kd_gain"] == 0.0
    assert record["distill"]["cache_teacher"] is False and record["metrics"]["teacher_cache_seconds"] is None
    kd, alone = record["metrics"]["history"], record["distill"]["baseline"]["history"]
    assert [e["val_loss"] for e in kd] == [e["val_loss"] for e in alone]


def test_cached_and_live_teacher_train_the_same_student(cli, outputs: Path, teacher_run: Path) -> None:
    for cache in ("true", "false"):
        assert cli("distill", *LENET_PAIR, f"distill.cache_teacher={cache}", "distill.baseline=false").code == 0
    cached, live = (read_run(d) for d in run_dirs(outputs, "distill"))
    assert cached["distill"]["cache_teacher"] is True and live["distill"]["cache_teacher"] is False
    assert cached["metrics"]["teacher_cache_seconds"] is not None and live["metrics"]["teacher_cache_seconds"] is None
    assert cached["metrics"]["val_acc"] == live["metrics"]["val_acc"]
    assert cached["metrics"]["val_loss"] == pytest.approx(live["metrics"]["val_loss"], rel=1e-4)
    a, b = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in run_dirs(outputs, "distill"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert "kd_gain" not in cached["metrics"] and cached["distill"]["baseline"] is None


def test_feature_hint_trains_through_an_adapter_and_saves_the_plain_student(cli, outputs: Path,
                                                                          teacher_run: Path) -> None:
    result = cli("distill", *LENET_PAIR, "student=resnet18", "student.weights=none", "distill.feature=true",
                 "distill.feature_stages=[-2,-2]", "trainer.epochs=1", "distill.baseline=false")
    assert result.code == 0, result.output
    assert "teacher runs every step" in result.stderr
    record = only_run(outputs, "distill")
    assert record["distill"]["feature_stages"] == ["layer3", "features.3..5"]
    assert record["distill"]["cache_teacher"] is False
    state = torch.load(run_dirs(outputs, "distill")[0] / "model.pt", weights_only=True)["state_dict"]
    assert not any(key.startswith(("adapter.", "student.")) for key in state)
    bad = cli("distill", *LENET_PAIR, "distill.feature=true", "distill.feature_stages=[0,7]")
    assert "teacher lenet5 has 3 stages" in error_line(bad)


@pytest.mark.slow  # ~55 s (ResNet-50 teacher); the KD path itself is tested on small models above
def test_the_design_command_runs_as_written_after_a_finetune(cli, outputs: Path, fake_imagenet) -> None:
    fake_imagenet("resnet50")
    fake_imagenet("mobilenet_v2")
    assert cli("distill", "teacher=resnet50", "student=mobilenet").code == 2  # no teacher yet
    # The fake ImageNet weights are random, so the head learns from random features: enough images and (cheap,
    # cached-feature) epochs for the teacher to beat chance, since a teacher at chance is refused.
    finetune = cli("finetune", "model=resnet50", "dataset.image_size=32", "dataset.train_size=240",
                   "dataset.val_size=60", "dataset.num_classes=3", "trainer.epochs=10", "trainer.batch_size=16",
                   "optim=adamw", "optim.lr=0.01")
    assert finetune.code == 0, finetune.output
    result = cli("distill", "teacher=resnet50", "student=mobilenet", "trainer.batch_size=16")
    assert result.code == 0, result.output
    failed, record = (read_run(d) for d in run_dirs(outputs, "distill"))
    assert failed["status"] == "failed" and record["status"] == "completed"
    assert record["distill"]["teacher"]["name"] == "resnet50" and record["model"]["name"] == "mobilenet_v2"
    assert record["model"]["weights"].startswith("torchvision ImageNet weights")
    assert record["dataset"]["image_size"] == 32 and record["dataset"]["num_classes"] == 3
    assert {"teacher_val_acc", "val_acc", "baseline_val_acc", "kd_gain"} <= set(record["metrics"])
    imagenet_teacher = cli("distill", "teacher=resnet50", "teacher.weights=imagenet", "student=lenet5")
    assert "teacher.weights=imagenet is a 1000-class ImageNet classifier" in error_line(imagenet_teacher)


def test_no_teacher_run_names_the_command_that_makes_one(cli, outputs: Path) -> None:
    line = error_line(cli("distill", "teacher=resnet50", "student=mobilenet"))
    assert "teacher.weights=latest:finetune" in line and "`cnnlab finetune model=resnet50`" in line
    assert not run_dirs(outputs, "distill")  # the first error a new user meets left a `failed` run (probe 121)


@pytest.mark.parametrize("args, expected", [
    # probe 54: the fix was `cnnlab finetune model=lenet5` — a head trained on a random frozen LeNet-5, on synthetic
    (["teacher.weights=none"], "teacher.weights=none: a teacher needs weights trained for this task (a random teacher "
                               "teaches nothing) — train one first (`cnnlab pretrain model=lenet5 dataset=synthetic`), "
                               "then use teacher.weights=latest:pretrain"),
    (["dataset=digits"], "the teacher knows 4 classes but dataset digits has 10"),
    (["dataset.image_size=32"], "the teacher was trained on 16 px images but the data would be 32 px"),
    # probe 205: ignored, unsaid, and recorded in run.json's dataset.config as used
    (["dataset.mean=[0.4,0.4,0.4]"], "dataset.mean=[0.4,0.4,0.4], but the teacher takes mean"),
    (["teacher=nosuchnet"], "unknown teacher 'nosuchnet' — choose one of: alexnet"),
    (["student.name=nosuchnet"], "unknown student 'nosuchnet' — choose one of: lenet5"),
    (["student=resnet18"], "lenet5 checkpoint but student=resnet18"),
    (["model=resnet18"], "has no model= setting: model=resnet18 would be ignored — drop model=resnet18; distill "
                         "takes its networks from teacher= and student="),
    (["model.stem=cifar"], "model.stem=cifar would be ignored"),
    (["distill.augment=true", "distill.cache_teacher=true"], "train transforms are random"),
    (["trainer.mixup=0.2"], "trainer.mixup"),
    (["distill.alpha=2"], "distill.alpha=2 is not allowed: distill.alpha takes a number in [0, 1]"),
    (["distill.temperature=1e5"],  # it trained on a T²-scaled loss below zero, exit 0
     "distill.temperature=100000.0 is not allowed: distill.temperature takes a number in [0.01, 100]"),
    (["distill.feature_stages=3"], "distill.feature_stages=3 is not allowed"),
])
def test_bad_input_is_one_clear_line(cli, outputs: Path, teacher_run: Path, args: list[str], expected: str) -> None:
    student_run = "student.weights=latest:pretrain" if args == ["student=resnet18"] else "student.weights=none"
    line = error_line(cli("distill", *LENET_PAIR, student_run, *args))
    assert expected in line, line
    assert not run_dirs(outputs, "distill")  # a refusal leaves no `failed` run (probe 121)


def test_a_teacher_of_another_size_on_other_data_is_told_to_drop_dataset(cli, outputs: Path) -> None:
    """Probe 121: a 32 px digits teacher with dataset=synthetic (64 px) was told "name the data the teacher was
    trained on with dataset=NAME (its records say none)"; its records name digits."""
    assert cli("pretrain", "model=lenet5", "dataset=digits", "dataset.image_size=32", "trainer.epochs=1",
               "trainer.max_steps_per_epoch=2").code == 0
    teacher = only_run(outputs, "pretrain")["run_dir"]
    line = error_line(cli("distill", f"teacher.weights={teacher}", "teacher=lenet5", "student=lenet5",
                          "dataset=synthetic"))
    assert "the data would be 64 px" in line
    assert "drop dataset=synthetic to distill on the teacher's own data (digits)" in line
    assert "records say none" not in line and not run_dirs(outputs, "distill")


def test_student_run_for_other_classes_is_refused(cli, outputs: Path, teacher_run: Path) -> None:
    assert cli("pretrain", *TINY, "dataset.num_classes=3").code == 0
    other = run_dirs(outputs, "pretrain")[-1]
    line = error_line(cli("distill", *LENET_PAIR, f"teacher.weights={teacher_run}", f"student.weights={other}"))
    assert "student.weights: its run knows 3 classes but dataset synthetic has 4" in line
    assert "student.weights=none" in line


def test_a_teacher_for_the_datas_classes_in_another_order_teaches_them_by_name(cli, outputs: Path, teacher_run: Path,
                                                                              tmp_path: Path) -> None:
    """Probes 116, 117: the teacher's classes, in a folder's sorted order, were refused ("the same names in another
    order") where finetune keeps the head with its rows reordered. The same pictures in folders: the reordered
    teacher scores them as it scored its own data."""
    import torch
    from PIL import Image

    from cnnlab.data.synthetic import class_table, generate

    classes = class_table(4)[1]
    assert classes != sorted(classes)
    for split, count in (("train", 64), ("val", 32)):  # TINY's pictures, as PNG files
        images, labels = generate(count, 4, 16, 0, split)
        for index, (image, label) in enumerate(zip(images, labels.tolist())):
            folder = tmp_path / "data" / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{index}.png")
    result = cli("distill", *LENET_PAIR, f"teacher.weights={teacher_run}", "dataset=imagefolder",
                 f"dataset.root={tmp_path / 'data'}", "dataset.image_size=16", "distill.baseline=false",
                 "trainer.epochs=1")
    assert result.code == 0, result.output
    record = read_run(run_dirs(outputs, "distill")[0])
    own = read_run(teacher_run)["metrics"]["val_acc"]
    # The folder is read as the teacher's run records (a square resize, no crop), not with a photo folder's resize to
    # 18 px and centre crop 16 (probe 175: 72.50 % → 68.61 %; here 15 of 32 where its own data gave 16)
    assert record["distill"]["teacher"]["val_acc"] == pytest.approx(own, abs=1e-9), (record["distill"], own)
    student = torch.load(run_dirs(outputs, "distill")[0] / "model.pt", weights_only=True)
    assert student["classes"] == sorted(classes)
    assert (student["input"]["resize"], student["input"]["crop"]) == ("square", None)  # what the student learnt from


def test_resume_continues_the_kd_training_with_the_same_teacher(cli, outputs: Path, teacher_run: Path) -> None:
    assert cli("distill", *LENET_PAIR, "trainer.epochs=1", "distill.baseline=false").code == 0
    first = run_dirs(outputs, "distill")[0]
    assert cli("pretrain", *TINY).code == 0  # a newer latest:pretrain must not replace the resumed run's teacher
    result = cli("distill", f"resume={first}", "trainer.epochs=2")
    assert result.code == 0, result.output
    resumed = read_run(run_dirs(outputs, "distill")[-1])
    assert resumed["resumed_from"] == str(first) and resumed["metrics"]["epochs"] == 2
    # extended from 1 epoch to 2: the KD student's first epoch ran on a 1-epoch schedule, the re-run baseline's on a
    # 2-epoch one — kd_gain said "same budget" of unlike courses; it is now said, in the log and run.json
    assert resumed["resume_changed"] == ["trainer.epochs=2 (saved: 1)"]
    assert not any("unlike courses" in w for w in resumed.get("warnings") or [])  # no baseline to compare with
    # moved to another device (or fewer workers), it trains the same course: no "unlike courses" warning
    moved = cli("distill", f"resume={first}", "trainer.epochs=2", "distill.baseline=true", "device=cpu",
                "trainer.workers=0")
    assert moved.code == 0, moved.output
    moved_run = read_run(run_dirs(outputs, "distill")[-1])
    assert moved_run["resume_changed"] == ["trainer.epochs=2 (saved: 1)", "distill.baseline=true (saved: false)"]
    assert not any("device" in w or "workers" in w for w in moved_run.get("warnings") or []), moved_run["warnings"]
    with_baseline = cli("distill", f"resume={first}", "trainer.epochs=2", "distill.baseline=true")
    assert with_baseline.code == 0, with_baseline.output
    warned = read_run(run_dirs(outputs, "distill")[-1]).get("warnings") or []
    assert any("kd_gain compares unlike courses" in w and "trainer.epochs=2 (saved: 1)" in w for w in warned), warned
    assert resumed["source"]["run"] == str(teacher_run)
    assert resumed["metrics"]["history"][0] == read_run(first)["metrics"]["history"][0]


def test_a_resume_whose_teacher_was_replaced_is_refused_and_its_copy_accepted(cli, outputs: Path, tmp_path: Path,
                                                                               teacher_run: Path) -> None:
    """Probe 160: the teacher's run folder deleted and trained into again; `resume=` learned its last epochs from the
    new teacher (35 % after 93 %), trained its "same start" baseline from it, recorded it as its source, exit 0."""
    import shutil

    assert cli("distill", *LENET_PAIR, "trainer.epochs=1", "distill.baseline=false").code == 0
    first = run_dirs(outputs, "distill")[0]
    kept = shutil.copy(teacher_run / "model.pt", tmp_path / "teacher.pt")
    shutil.rmtree(teacher_run)
    assert cli("pretrain", *TINY, "seed=5", f"hydra.run.dir={teacher_run}").code == 0  # another teacher, same folder
    refused = cli("distill", f"resume={first}", "trainer.epochs=2")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "Traceback" not in refused.output, refused.output
    assert f"it started from teacher.weights={teacher_run / 'model.pt'}, which holds other weights now" in said
    assert len(run_dirs(outputs, "distill")) == 1  # refused before any work
    resumed = cli("distill", f"resume={first}", "trainer.epochs=2", f"teacher.weights={kept}")  # the fix: its copy
    assert resumed.code == 0, resumed.output
    (teacher_run / "model.pt").unlink()
    gone = " ".join(cli("distill", f"resume={first}", "trainer.epochs=2").stderr.split())
    assert f"teacher.weights={teacher_run / 'model.pt'}, which is gone" in gone


def test_a_teacher_file_outside_a_run_is_recorded_as_no_run(cli, outputs: Path, tmp_path: Path,
                                                           teacher_run: Path) -> None:
    """Probe 199: a model.pt copied out of its run read `"source": {"run": "<its folder>", "command": "?"}` at the
    top level (the file's own data record stood in for a run's), while `distill.teacher.source` said no run."""
    import shutil

    kept = Path(shutil.copy(teacher_run / "model.pt", tmp_path / "teacher.pt"))
    args = [arg for arg in LENET_PAIR if not arg.startswith("teacher.weights=")]
    assert cli("distill", *args, f"teacher.weights={kept}", "trainer.epochs=1", "distill.baseline=false").code == 0
    record = read_run(run_dirs(outputs, "distill")[0])
    assert record["source"]["path"] == str(kept.resolve())
    assert record["source"]["run"] is None and record["source"]["command"] is None, record["source"]
    assert record["distill"]["teacher"]["source"]["run"] is None


def test_a_state_dict_file_teaches_when_its_head_fits_the_data(cli, outputs: Path, tmp_path: Path,
                                                               teacher_run: Path) -> None:
    # no run: the data comes from the command line. Its size unset, a state dict (which records none) reads it at the
    # dataset's own size (probe 171: at 224 px, ImageNet's, a LeNet-5 teacher of 32-px digits scored 11 %, at chance)
    data = [arg for arg in TINY if arg.startswith("dataset") and "image_size" not in arg]
    data += ["dataset.image_size=null", "dataset.native_size=16"]
    fitting, other = tmp_path / "teacher.pth", tmp_path / "imagenet_like.pth"
    torch.save(torch.load(teacher_run / "model.pt", weights_only=True)["state_dict"], fitting)  # trained, no record
    torch.save(create_model("lenet5", 10, 16).state_dict(), other)
    result = cli("distill", *LENET_PAIR, f"teacher.weights={fitting}", *data, "distill.baseline=false")
    assert result.code == 0, result.output
    said = " ".join(result.output.split())
    assert "its inputs at 16 px (a square resize to 16 px; dataset.image_size sets another)" in said
    assert "dataset.mean= and dataset.std= set others" in said  # ImageNet's is assumed: what sets another
    record = only_run(outputs, "distill")
    assert record["distill"]["teacher"]["weights"] == f"state dict {fitting}" and record["dataset"]["image_size"] == 16
    # probe 218: the config later runs rebuild the data from (and the report groups by) said the dataset's own
    # normalisation beside ImageNet's, used: two runs normalised otherwise were reported as seeds of one experiment
    imagenet = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert (record["dataset"]["mean"], record["dataset"]["std"]) == imagenet
    assert (record["dataset"]["config"]["mean"], record["dataset"]["config"]["std"]) == imagenet, record["dataset"]
    # probe 175: the normalisation the hint asked for, typed, was ignored (ImageNet's still); now the teacher reads
    # its data exactly as its own run did
    stated = cli("distill", *LENET_PAIR, f"teacher.weights={fitting}", *data, "distill.baseline=false",
                 "dataset.mean=[0.5,0.5,0.5]", "dataset.std=[0.25,0.25,0.25]")
    assert stated.code == 0, stated.output
    record = read_run(run_dirs(outputs, "distill")[-1])
    assert record["dataset"]["mean"] == [0.5, 0.5, 0.5] and record["dataset"]["std"] == [0.25, 0.25, 0.25]
    assert record["dataset"]["config"]["mean"] == [0.5, 0.5, 0.5] == record["dataset"]["mean"]
    assert record["distill"]["teacher"]["val_acc"] == pytest.approx(read_run(teacher_run)["metrics"]["val_acc"],
                                                                    abs=1e-9)
    line = error_line(cli("distill", *LENET_PAIR, f"teacher.weights={other}", *data))
    assert "has a 10-way head but dataset synthetic has 4 classes" in line


def test_a_teacher_at_chance_is_refused_before_any_training(cli, outputs: Path) -> None:
    assert cli("pretrain", *TINY, "optim.lr=1e-9").code == 0  # learns nothing: 25 % on 4 classes
    untrained = run_dirs(outputs, "pretrain")[0]
    assert read_run(untrained)["metrics"]["val_acc"] < 1.5 / 4
    line = error_line(cli("distill", *LENET_PAIR))
    assert f"the teacher lenet5 ({untrained}) scores" in line and "chance for 4 classes" in line
    assert "teacher.weights=" in line
    assert "BatchNorm" not in line and "precise_bn" not in line  # LeNet-5 has none (probe 121: a fix that was none)
    assert not run_dirs(outputs, "distill")  # refused before the student trained: no `failed` run left (probe 100)


def test_a_teacher_that_cannot_be_checked_is_a_warning(tmp_path: Path) -> None:
    from cnnlab.context import RunContext
    from cnnlab.steps.distill_roles import DistillRole
    from cnnlab.steps.distill_teacher import check_teacher_learned
    from cnnlab.runs import RunRecord
    from cnnlab.weights import InitialWeights

    from cnnlab.data.spec import InputSpec
    from cnnlab.errors import CnnlabError

    class NoValData:
        name, classes, spec = "mine", ["a", "b"], InputSpec(16)

    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    teacher = DistillRole("teacher", "lenet5", InitialWeights(kind="file", description="state dict t.pth"))
    check_teacher_learned(ctx, teacher, None, None, NoValData())  # type: ignore[arg-type]
    [warning] = read_run(tmp_path)["warnings"]
    assert "state dict t.pth" in warning and "no validation images" in warning
    check_teacher_learned(ctx, teacher, None, 0.9, NoValData())  # type: ignore[arg-type]  # a good teacher: silent
    assert len(read_run(tmp_path)["warnings"]) == 1
    with pytest.raises(CnnlabError) as at_chance:  # a network with BatchNorm: its lagging statistics are named
        check_teacher_learned(ctx, teacher, None, 0.5, NoValData(), batchnorm=True)  # type: ignore[arg-type]
    assert "trainer.precise_bn=true" in at_chance.value.one_line()


@prebuilt.starts_in("grayscale_teacher")
def grayscale_teacher_made(workspace: Path) -> None:
    write_idx(workspace / "data" / "MNIST" / "raw", "train", 96, seed=0)
    write_idx(workspace / "data" / "MNIST" / "raw", "t10k", 24, seed=1)
    data = ["dataset=mnist", f"dataset.root={workspace / 'data'}", "dataset.download=false", "dataset.image_size=16",
            "dataset.val_fraction=0.25"]
    prebuilt.build_run(workspace, ("pretrain", *data, "model=lenet5", *TEACHER_TRAINING, "trainer.batch_size=16"))


@pytest.fixture
def grayscale_teacher(outputs: Path) -> list[str]:
    """A LeNet-5 trained on 1-channel images (MNIST-style files), as `cnnlab pretrain dataset=fashion_mnist` makes
    (made once per process: prebuilt.py); the settings that distill from it."""
    teacher, _ = load_model(resolve_source("latest:pretrain", outputs, want=("checkpoint",)).path)
    assert teacher.features[0].in_channels == 1
    return ["teacher=lenet5", "teacher.weights=latest:pretrain", "trainer.epochs=1", "trainer.batch_size=16"]


def test_another_carve_of_the_teachers_data_is_refused(cli, outputs: Path, grayscale_teacher: list[str]) -> None:
    """distill took dataset.seed=3 on a teacher carved with seed 0 (prune, quantize, export and evaluate refuse it):
    teacher_val_acc was recorded on images the teacher trained on."""
    result = cli("distill", *grayscale_teacher, "student=lenet5", "dataset.seed=3")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "dataset.seed=3: the model's run (" in said
    assert "set its val split apart with dataset.seed=0" in said
    assert "drop dataset.seed=" in said and "Traceback" not in said
    # probe 53: dataset.val_fraction was checked against the default dataset (synthetic, which has none):
    # "unknown setting", and its `+` fix then spoke of synthetic and a val/ folder
    result = cli("distill", *grayscale_teacher, "student=lenet5", "dataset.val_fraction=0.5")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "dataset.val_fraction=0.5: the model's run (" in said \
        and "set its val split apart with dataset.val_fraction=0.25" in said, said


def test_a_grayscale_teacher_teaches_a_student_built_for_its_channels(cli, outputs: Path,
                                                                      grayscale_teacher: list[str]) -> None:
    """The student was built for 3 channels and met the teacher's 1-channel images: a traceback."""
    result = cli("distill", *grayscale_teacher, "student=lenet5")
    assert result.code == 0, result.output
    student, _ = load_model(resolve_source("latest:distill", outputs, want=("checkpoint",)).path)
    assert student.features[0].in_channels == 1 and only_run(outputs, "distill")["status"] == "completed"
    hinted = cli("distill", *grayscale_teacher, "student=lenet5", "distill.feature=true")  # probe 69: a traceback
    assert hinted.code == 0, hinted.output  # (the hint stages' shapes were probed with a 3-channel image)
    assert read_run(run_dirs(outputs, "distill")[-1])["distill"]["feature_stages"]


def test_a_grayscale_lenets_state_dict_is_built_in_its_one_channel(cli, outputs: Path, tmp_path: Path,
                                                                     grayscale_teacher: list[str]) -> None:
    """Probe 174: a 1-channel LeNet-5 saved as a plain state dict was built for 3 channels and refused ("has shape
    (6, 1, 5, 5), the model expects (6, 3, 5, 5)"), with no setting to build it otherwise."""
    plain = tmp_path / "lenet1.pth"
    torch.save(torch.load(resolve_source("latest:pretrain", outputs, want=("checkpoint",)).path,
                          weights_only=True)["state_dict"], plain)
    data = [a for a in read_run(run_dirs(outputs, "pretrain")[-1])["overrides"] if a.startswith("dataset")]
    tuned = cli("finetune", "model=lenet5", f"model.weights={plain}", *data, "finetune.mode=linear",
                "trainer.epochs=1", "trainer.batch_size=16")
    assert tuned.code == 0, tuned.output
    model, _ = load_model(resolve_source("latest:finetune", outputs, want=("checkpoint",)).path)
    assert model.features[0].in_channels == 1
    taught = cli("distill", "teacher=lenet5", f"teacher.weights={plain}", "student=lenet5", *data,
                 "trainer.epochs=1", "trainer.batch_size=16", "distill.baseline=false")
    assert taught.code == 0, taught.output


def test_a_student_that_takes_only_rgb_is_refused_for_a_grayscale_teacher(
        cli, outputs: Path, grayscale_teacher: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = error_line(cli("distill", *grayscale_teacher, "student=mobilenet_v3_small", "student.weights=none"))
    assert "1-channel images" in line and "student=lenet5" in line and "student=searched" in line
    assert not run_dirs(outputs, "distill")
    import cnnlab.models.weights as hub_weights  # stop 65: an ImageNet student was fetched (45 MB) before the refusal

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    fetched: list[str] = []
    monkeypatch.setattr(hub_weights, "_download", lambda url, path, role: fetched.append(url))
    imagenet = error_line(cli("distill", *grayscale_teacher, "student=resnet18", "student.weights=imagenet"))
    assert "1-channel images and student=resnet18 takes 3 channels" in imagenet and fetched == [], imagenet
    followed = cli("distill", *grayscale_teacher, "student=searched")  # the other student the line names
    assert followed.code == 0, followed.output
    student, _ = load_model(resolve_source("latest:distill", outputs, want=("checkpoint",)).path)
    assert next(m for m in student.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 1



def test_imagenet_weights_for_other_classes_are_refused_before_they_are_fetched(
        cli, outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop 64: the 45 MB file was downloaded (offline: a fix saying to download it) before the class check refused
    a 1000-class teacher for a 4-class dataset."""
    import cnnlab.models.weights as hub_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))  # no cached file: reading it would fetch it
    fetched: list[str] = []
    monkeypatch.setattr(hub_weights, "_download", lambda url, path, role: fetched.append(url))
    data = [arg for arg in TINY if arg.startswith("dataset")]
    line = error_line(cli("distill", "teacher=resnet18", "teacher.weights=imagenet", "student=lenet5", *data))
    assert "teacher.weights=imagenet is a 1000-class ImageNet classifier, not a teacher for dataset" in line, line
    assert "(4 classes)" in line and "`cnnlab finetune model=resnet18 finetune.mode=full" in line, line
    assert fetched == [] and not run_dirs(outputs, "distill")


def test_a_teacher_without_imagenet_weights_is_told_how_to_train_one_and_that_works(cli, outputs: Path) -> None:
    """It was told "use teacher.weights=none to train it from scratch", which distill then refused."""
    data = [arg for arg in TINY if arg.startswith("dataset")]
    line = error_line(cli("distill", *LENET_PAIR, "teacher.weights=imagenet", *data))
    assert "lenet5 has no ImageNet weights" in line and "weights=none" not in line, line
    assert "`cnnlab pretrain model=lenet5`" in line and "teacher.weights=latest:pretrain" in line, line
    assert cli("pretrain", "model=lenet5", *data, *TEACHER_TRAINING, "trainer.batch_size=16").code == 0
    result = cli("distill", *LENET_PAIR, "teacher.weights=latest:pretrain", "distill.baseline=false")
    assert result.code == 0, result.output


@pytest.mark.parametrize("spec, expected", [
    ("latest:bogus", "teacher.weights=latest:bogus: `bogus` is not a cnnlab command — use one of latest:pretrain, "
                     "latest:finetune"),  # was "train one first (`cnnlab bogus model=lenet5`)"
    ("latest:evaluate", "`cnnlab evaluate` runs hold no model to start from — use one of latest:pretrain"),
    ("latest:quantize", "`cnnlab quantize` runs hold no model.pt, and a teacher needs one — use one of "
                        "latest:pretrain"),
])
def test_a_latest_command_that_cannot_give_a_teacher_lists_those_that_can(cli, spec: str, expected: str) -> None:
    line = error_line(cli("distill", *LENET_PAIR, f"teacher.weights={spec}"))
    assert expected in line and "latest:quantize" not in line.split("—", 1)[1], line


def test_a_teacher_whose_run_json_lost_its_dataset_teaches_on_the_data_its_model_pt_records(cli, outputs: Path,
                                                                                             teacher_run: Path,
                                                                                             tmp_path: Path) -> None:
    """Probe 52: such a teacher (prune and quantize read its model.pt's record) was refused with "drop
    dataset.image_size" — a setting never typed — and the data it fell back on was the default synthetic set."""
    import shutil

    damaged = tmp_path / "teacher_copy"
    shutil.copytree(teacher_run, damaged)
    record = json.loads((damaged / "run.json").read_text())
    record["dataset"] = None
    (damaged / "run.json").write_text(json.dumps(record))
    result = cli("distill", *LENET_PAIR, f"teacher.weights={damaged}", "student.weights=none", "trainer.epochs=1")
    assert result.code == 0, result.output
    distilled = next(read_run(d) for d in run_dirs(outputs, "distill") if read_run(d)["status"] == "completed")
    assert distilled["dataset"]["config"] == read_run(teacher_run)["dataset"]["config"]


def test_a_class_mismatch_names_the_data_settings_typed_and_dropping_them_works(cli, outputs: Path,
                                                                               tmp_path: Path) -> None:
    """Probe 186: a folder teacher (classes a, b, c) given `dataset.root=abd` was told "drop dataset=", and the same
    line came back once it was dropped: the folder came from dataset.root= alone."""
    from helpers import random_image_folder

    abc = random_image_folder(tmp_path / "abc", per_class=8, classes=("a", "b", "c"))
    abd = random_image_folder(tmp_path / "abd", per_class=8, classes=("a", "b", "d"), seed=1)
    data = ["dataset.image_size=16", "trainer.batch_size=8", "trainer.epochs=1"]
    assert cli("pretrain", "model=lenet5", "dataset=imagefolder", f"dataset.root={abc}", *data).code == 0
    run = ["teacher=lenet5", "teacher.weights=latest:pretrain", "student=lenet5", "distill.baseline=false", *data]
    line = error_line(cli("distill", *run, f"dataset.root={abd}"))
    assert f"drop dataset.image_size=16 dataset.root={abd} to distill on the teacher's own dataset" in line, line
    typed = error_line(cli("distill", *run, "dataset=imagefolder", f"dataset.root={abd}"))
    assert f"drop dataset.image_size=16 dataset=imagefolder dataset.root={abd} to distill" in typed, typed
    assert not run_dirs(outputs, "distill")  # refused before any work: no `failed` run folder
    followed = cli("distill", *run)  # both dropped, as told: the teacher's own folder
    assert "the names differ" not in followed.output, followed.output


def test_a_state_dict_of_another_zoo_network_names_the_teacher_it_fits(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 186: torchvision's resnet18 state_dict() as teacher.weights, no teacher=, was refused as "do not fit
    resnet50" (the default, never typed) with no word of the network it fits."""
    import torchvision

    saved = tmp_path / "tv_resnet18.pth"
    torch.save(torchvision.models.resnet18(num_classes=4).state_dict(), saved)
    data = [o for o in TINY if o.startswith("dataset")]
    line = error_line(cli("distill", *data, f"teacher.weights={saved}", "student=lenet5"))
    assert "do not fit resnet50" in line and "add teacher=resnet18" in line, line
    followed = cli("distill", *data, f"teacher.weights={saved}", "teacher=resnet18", "student=lenet5")
    assert "do not fit" not in followed.output, followed.output  # (an untrained teacher: refused for that instead)
    # probe 188: a file without the default's head key ("holds no fc.weight") was told "teacher=NAME", unnamed
    mobile = tmp_path / "tv_mobilenet_v3_small.pth"
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=4).state_dict(), mobile)
    line = error_line(cli("distill", *data, f"teacher.weights={mobile}", "student=lenet5"))
    assert "holds no fc.weight" in line and "add teacher=mobilenet_v3_small" in line, line


def test_a_teacher_whose_outputs_are_nearly_uniform_is_a_warning() -> None:
    """Probe 205: a teacher at 32.78 % on 10 digits (top probability 0.11 on average) passed the chance check; at
    distill.alpha=1 the student fell to 7.50 % beside 71.11 % alone, and the warning blamed the soft term's gradient
    (grad_clip, then optim.lr: −55 points, no warning at all). Judged by the outputs' entropy, not the val loss
    (probe 207: a confident teacher, loss 7.6, was called uniform; one at top probability 0.15 was not)."""
    from cnnlab.engine.metrics import ClassificationMeter
    from cnnlab.pipelines.distill import uniform_teacher

    def output_entropy(logits: torch.Tensor) -> float:  # as distill's one pass over the teacher's val images reads it
        meter = ClassificationMeter(torch.device("cpu"), entropy=True)
        for chunk in logits.split(64):  # several batches: a mean over images, not over batches
            meter.update(torch.tensor(0.0), chunk, torch.zeros(len(chunk), dtype=torch.long))
        return meter.compute()["entropy"]

    torch.manual_seed(0)
    logits = torch.randn(200, 10)
    flat, peaked = output_entropy(0.1 * logits), output_entropy(30 * logits)
    p = torch.softmax(0.1 * logits.double(), dim=1)  # the definition, by hand
    assert flat == pytest.approx(float(-(p * p.log()).sum(dim=1).mean()), rel=1e-9)
    assert flat > 0.98 * math.log(10) and peaked < 0.1  # uniform-like and one-hot-like outputs
    said = uniform_teacher(flat, 10, 1.0)
    assert said is not None and said.startswith("the teacher's outputs are nearly uniform: their mean entropy is ")
    assert "where a uniform guess over the 10 classes has ln 10 = 2.303" in said
    assert said.endswith("distill.alpha=1 gives them 100% of the loss — train the teacher further (more epochs, all "
                         "the labels), or lower distill.alpha")
    assert uniform_teacher(peaked, 10, 1.0) is None  # a confident teacher, right or wrong
    assert uniform_teacher(flat, 10, 0.0) is None  # alpha=0: its outputs are not read
    assert uniform_teacher(None, 10, 0.5) is None  # no validation images


def test_a_student_that_diverged_under_the_soft_term_is_a_warning_naming_grad_clip(tmp_path: Path) -> None:
    """Probe 186: a LeNet-5 student ended at exactly 10.00 % (58.06 % alone), its KD loss rising, "completed" without
    a word; docs/distill.md knows the fix. Probe 188: silent where the baseline failed too, and said of a 2-class
    student at 69 %."""
    from cnnlab.context import RunContext
    from cnnlab.engine.trainer import FitResult
    from cnnlab.pipelines.distill import warn_diverged
    from cnnlab.runs import RunRecord

    def fit(*epochs: tuple[float, float]) -> FitResult:
        return FitResult([{"train_loss": loss, "val_acc": acc} for loss, acc in epochs])

    def warnings_of(kd: FitResult, baseline: FitResult | None, grad_clip: float | None = None, classes: int = 10,
                    teacher: float | None = 0.97) -> list[str]:
        run_dir = tmp_path / str(len(list(tmp_path.iterdir())))
        ctx = RunContext(command="distill", run_dir=run_dir, outputs=tmp_path,
                         record=RunRecord.start(run_dir, "distill"))
        warn_diverged(ctx, kd, baseline, classes, grad_clip, teacher)
        return read_run(run_dir).get("warnings") or []

    [said] = warnings_of(fit((8.49, 0.19), (8.88, 0.10)), fit((2.3, 0.3), (1.5, 0.5806)))
    assert "val top-1 10.00% (its KD loss rising from 8.4900 to 8.8800; 58.06% alone)" in said
    assert "set trainer.grad_clip=2" in said
    [clipped] = warnings_of(fit((2.2, 0.14), (2.2, 0.10)), fit((2.3, 0.3), (1.5, 0.58)), grad_clip=2.0)
    assert "(chance is 1/10 = 10.00%; 58.00% alone)" in clipped and "lower optim.lr" in clipped
    assert "grad_clip=2" not in clipped
    [both] = warnings_of(fit((8.4, 0.12), (8.5, 0.1028)), fit((2.35, 0.1), (2.3, 0.10)))  # probe 188: lr 0.15
    assert "10.28%" in both and "10.00% alone, at chance too" in both
    [alone] = warnings_of(fit((1.4, 0.3), (1.2, 0.10)), None)  # probe 188: no baseline, its loss falling
    assert "val top-1 10.00% (chance is 1/10 = 10.00%)" in alone
    assert warnings_of(fit((8.4, 0.2), (6.7, 0.68)), fit((2.3, 0.2), (2.0, 0.58))) == []  # KD helped
    assert warnings_of(fit((8.4, 0.2), (8.5, 0.60)), fit((2.3, 0.2), (2.0, 0.58))) == []  # above its baseline
    assert warnings_of(fit((0.7, 0.6), (0.6, 0.6944)), fit((0.7, 0.6), (0.5, 0.8056)), classes=2) == []  # probe 188
    assert warnings_of(fit((2.3, 0.1), (2.3, 0.1)), None, teacher=0.1) == []  # a teacher at chance: its own check


def test_the_student_trains_on_its_own_label_fraction_not_the_teachers(cli, outputs: Path) -> None:
    """Probe 194: over a teacher trained on half the labels, `cnnlab distill` trained its student on that half
    without a word, while `--cfg job` showed dataset.label_fraction 1.0. A training's labels are its own choice (as a
    fine-tune's are), and the log says where the teacher's differ; prune keeps the labels its model trained on."""
    assert cli("pretrain", *TINY, *TEACHER_TRAINING, "trainer.epochs=6", "dataset.label_fraction=0.75").code == 0
    result = cli("distill", *LENET_PAIR, "trainer.epochs=1", "distill.baseline=false")
    assert result.code == 0, result.output
    record = only_run(outputs, "distill")
    assert record["dataset"]["config"]["label_fraction"] == 1.0 and record["dataset"]["train_size"] == 64
    said = " ".join(result.output.split())
    assert "dataset.label_fraction=1.0, this run's own:" in said and "trained at 0.75 (dataset.label_fraction=0.75 " \
        "trains on the same pictures)" in said, said
    followed = cli("distill", *LENET_PAIR, "trainer.epochs=1", "distill.baseline=false",
                   "dataset.label_fraction=0.75")  # as the line says: "(dataset.label_fraction=0.75 trains on …)"
    assert followed.code == 0, followed.output
    assert read_run(run_dirs(outputs, "distill")[-1])["dataset"]["train_size"] == 48
    assert "this run's own" not in followed.output
    pruned = cli("prune", "source=latest:pretrain", "prune.ratio=0.25", "prune.measure=false", "trainer.epochs=1",
                 "trainer.batch_size=16")
    assert pruned.code == 0, pruned.output
    assert read_run(run_dirs(outputs, "prune")[-1])["dataset"]["config"]["label_fraction"] == 0.75
    assert "dataset.label_fraction=0.75: the labels" in " ".join(pruned.output.split())


def test_evaluate_scores_the_training_pictures_a_model_trained_on_and_every_picture_of_new_data(
        cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 195: `evaluate split=all` of a run trained at dataset.label_fraction=0.5 scored half of a new folder's
    pictures (and said "the labels RUN trained on"): new data counts every picture. Probe 210: `split=train` of a run
    at 0.3 scored the whole training split — 85 of its 121 pictures never trained on — as "train", recorded at
    label_fraction 1.0: the training pictures are the ones the model trained on, unless typed otherwise."""
    from cnnlab.data.synthetic import class_table
    from helpers import random_image_folder

    assert cli("pretrain", *TINY, *TEACHER_TRAINING, "trainer.epochs=1", "dataset.label_fraction=0.5").code == 0
    trained = cli("evaluate", "source=latest:pretrain", "split=train")
    assert trained.code == 0, trained.output
    record = only_run(outputs, "evaluate")
    assert record["evaluate"]["n"] == 32 == record["dataset"]["train_size"]  # the 32 labelled of TINY's 64
    assert record["dataset"]["config"]["label_fraction"] == 0.5
    said = " ".join(trained.output.split())
    assert "dataset.label_fraction=0.5: the labels latest:pretrain trained on (dataset.label_fraction=1.0 to change " \
           "it)" in said, said
    every = cli("evaluate", "source=latest:pretrain", "split=train", "dataset.label_fraction=1.0")  # as it says
    assert every.code == 0 and len(run_dirs(outputs, "evaluate")) == 2, every.output
    assert read_run(run_dirs(outputs, "evaluate")[-1])["evaluate"]["n"] == 64
    new = random_image_folder(tmp_path / "new", per_class=3, classes=tuple(class_table(4)[1]))
    first = sorted(new.glob("*/0.png"))[0]
    (first.parent / "0 (1).png").write_bytes(first.read_bytes())  # a download's copy: one picture, scored once
    scored = cli("evaluate", "source=latest:pretrain", "dataset=imagefolder", f"dataset.root={new}", "split=all")
    assert scored.code == 0, scored.output
    assert read_run(run_dirs(outputs, "evaluate")[-1])["evaluate"]["n"] == 12  # every picture of the new folder
    assert "1 of the 13 split=all pictures left out of split=all: copies of other" in " ".join(scored.output.split())
    assert "label_fraction" not in scored.output
    # probe 214: another carve of the run's data (digits: val carved from train by dataset.seed) scored pictures of
    # its val split as "train", exit 0
    assert cli("pretrain", "dataset=digits", "dataset.image_size=16", "model=lenet5", "trainer.epochs=1",
               "dataset.seed=3", "dataset.label_fraction=0.3").code == 0
    other = cli("evaluate", "source=latest:pretrain", "split=train", "dataset.seed=0")
    said = " ".join(other.stderr.split())
    assert other.code == 2 and "dataset.seed=0: the model's run" in said and "never trained on" in said, said
    # generated data is drawn, not carved: another seed's training pictures are others, never trained on (probe 214)
    assert cli("pretrain", "dataset=synthetic", "dataset.image_size=16", "model=lenet5", "trainer.epochs=1",
               "dataset.train_size=40", "dataset.val_size=20", "dataset.num_classes=4",
               "trainer.batch_size=20").code == 0
    for setting in ("dataset.seed=1", "dataset.train_size=30"):
        drawn = cli("evaluate", "source=latest:pretrain", "split=train", setting)
        said = " ".join(drawn.stderr.split())
        assert drawn.code == 2 and f"{setting}: the model's run" in said and "never trained on" in said, said
    assert cli("evaluate", "source=latest:pretrain", "split=train").code == 0
    assert cli("evaluate", "source=latest:pretrain", "split=val", "dataset.seed=1").code == 0  # other unseen pictures
