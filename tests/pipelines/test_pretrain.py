"""`cnnlab pretrain` end to end: run record, checkpoint, Ctrl-C + resume, NaN stop."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

from cnnlab.engine.checkpoint import load_model
from helpers import TINY, hinted_command, only_run, read_run, run_dirs, saved_model_val_scores


def test_pretrain_writes_a_complete_run(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY)
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    run_dir = run_dirs(outputs, "pretrain")[0]
    assert record["status"] == "completed" and record["command"] == "pretrain"
    assert len(record["metrics"]["history"]) == 1
    # the recorded accuracy is the saved model's (validation runs in float32; the slack of one image is kept)
    accuracy, _, images = saved_model_val_scores(run_dir, record)
    assert accuracy == pytest.approx(record["metrics"]["val_acc"], abs=1.01 / images)
    assert record["model"]["name"] == "lenet5" and record["model"]["params"] > 0 and record["model"]["flops"] > 0
    assert record["dataset"] == {**record["dataset"], "name": "synthetic", "num_classes": 4, "image_size": 16}
    assert {"checkpoint": "last.pt", "model": "model.pt"}.items() <= record["artifacts"].items()  # + epoch logs
    assert record["environment"]["packages"]["torch"] == torch.__version__.split("+")[0] or \
        record["environment"]["packages"]["torch"].startswith(torch.__version__.split("+")[0])
    assert record["environment"]["loader_workers"] == 0  # trainer.workers=auto: none for in-memory data
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "run.log").is_file()
    model, ckpt = load_model(run_dir / "model.pt")
    assert ckpt.classes and len(ckpt.classes) == 4 and ckpt.spec.size == 16
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)


def test_the_worker_count_changes_neither_augmentations_nor_metrics(cli, outputs: Path) -> None:
    """Two sweeps differed by up to 3.8 points after one epoch because the worker count picked the augmentations'
    random stream. With augmentation on (synthetic's default) and dropout-free LeNet-5, 0 and 1 workers now train the
    same model; run.json still says how many a run used, not only `auto`."""
    for workers in (0, 1):
        assert cli("pretrain", *TINY, "trainer.epochs=2", f"trainer.workers={workers}").code == 0
    records = sorted((read_run(run) for run in run_dirs(outputs, "pretrain")),
                     key=lambda record: record["environment"]["loader_workers"])
    assert [record["environment"]["loader_workers"] for record in records] == [0, 1]
    zero, one = ([row[key] for row in record["metrics"]["history"] for key in ("train_loss", "val_loss")]
                 for record in records)
    assert len(zero) == 4 and zero == pytest.approx(one, rel=1e-5)


def test_pretrain_refuses_pretrained_weights(cli) -> None:
    result = cli("pretrain", *TINY, "model.weights=imagenet")
    assert result.code == 2 and "cnnlab finetune" in result.stderr


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_keeps_the_checkpoint_and_resume_finishes_the_run(cli, outputs: Path,
                                                                 ctrl_c_after_the_first_checkpoint) -> None:
    interrupted = cli("pretrain", *TINY, "trainer.epochs=3")
    assert interrupted.code == 130 and "resume=true" in interrupted.stderr
    first_dir = run_dirs(outputs, "pretrain")[0]
    first = read_run(first_dir)
    assert first["status"] == "interrupted" and (first_dir / "last.pt").is_file()
    assert first["environment"]["augment_on"]["where"] == "workers"  # probe 67: recorded before training, not after
    before = _digest(first_dir)

    ctrl_c_after_the_first_checkpoint()  # no more interruptions
    resumed = cli("pretrain", "resume=true", "trainer.epochs=3")
    assert resumed.code == 0, resumed.output
    dirs = run_dirs(outputs, "pretrain")
    assert len(dirs) == 2
    record = read_run(dirs[1])
    assert record["status"] == "completed" and record["resumed_from"] == str(first_dir)
    assert [e["epoch"] for e in record["metrics"]["history"]] == [1, 2, 3]
    assert record["dataset"]["image_size"] == 16  # the original run's config, not the defaults
    assert _digest(first_dir) == before  # the interrupted run is never modified


def test_a_setting_read_from_the_environment_is_saved_as_its_value(cli, outputs: Path, monkeypatch,
                                                                   ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 99: Hydra saved `${oc.env:EP}` as typed, so a resume re-read today's environment (a 4-epoch run resumed
    with EP=2 ended at 2 epochs, unsaid) and the report took runs at learning rates 0.5 and 1e-4 for seeds of one
    setting."""
    import yaml

    monkeypatch.setenv("EP", "3")
    monkeypatch.setenv("MYLR", "0.5")
    typed = ['trainer.epochs="${oc.decode:${oc.env:EP}}"', 'optim.lr="${oc.decode:${oc.env:MYLR}}"']
    assert cli("pretrain", *TINY, *typed).code == 130
    first = run_dirs(outputs, "pretrain")[0]
    saved = yaml.safe_load((first / ".hydra" / "config.yaml").read_text())
    assert saved["trainer"]["epochs"] == 3 and saved["optim"]["lr"] == 0.5
    ctrl_c_after_the_first_checkpoint()
    monkeypatch.setenv("EP", "2")
    resumed = cli("pretrain", "resume=true")
    assert resumed.code == 0, resumed.output
    record = read_run(run_dirs(outputs, "pretrain")[1])
    assert [e["epoch"] for e in record["metrics"]["history"]] == [1, 2, 3]
    assert [e["lr"] for e in record["metrics"]["history"]][0] <= 0.5


def test_a_resume_asked_for_no_more_epochs_than_done_is_refused(cli, outputs: Path,
                                                                 ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 98: `resume=true trainer.epochs=1` of a run 2 epochs in trained nothing, said nothing and recorded a
    `completed` run whose config said 1 epoch. (Resumed at the epochs it did, a run finishes its last steps.)"""
    import json

    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130
    first = run_dirs(outputs, "pretrain")[0]
    ctrl_c_after_the_first_checkpoint()
    state = torch.load(first / "last.pt", weights_only=True)
    state["epoch"] = 2  # as after a second epoch (the Ctrl-C came before run.json recorded the first)
    torch.save(state, first / "last.pt")
    refused = cli("pretrain", f"resume={first}", "trainer.epochs=1")
    assert refused.code == 2 and "holds the state after epoch 2, more than trainer.epochs=1" in refused.stderr, \
        refused.output
    record = json.loads((first / "run.json").read_text())
    record["metrics"] = {"epochs": 2}  # as run.json says once the epoch is recorded: refused before any work
    (first / "run.json").write_text(json.dumps(record))
    count = len(run_dirs(outputs, "pretrain"))
    refused = cli("pretrain", f"resume={first}", "trainer.epochs=1")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "after 2 epochs, more than trainer.epochs=1 asks for" in said, refused.output
    assert f"`cnnlab pretrain resume={first}` trains on to the epochs it planned, and with trainer.epochs=2 or more " \
        "to that many" in said, said  # probe 199: "finishes its 2 epochs" of a plain resume that trains to the plan
    assert len(run_dirs(outputs, "pretrain")) == count  # no run folder left
    assert cli("pretrain", f"resume={first}", "trainer.epochs=2").code == 0  # the fix, followed


def test_a_resume_from_an_unreadable_state_leaves_no_failed_run(cli, outputs: Path,
                                                                ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 98: `resume=RUN` whose last.pt is a text file was refused in one line, and left a `failed` run."""
    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130
    ctrl_c_after_the_first_checkpoint()
    first = run_dirs(outputs, "pretrain")[0]
    (first / "last.pt").write_text("not a checkpoint")
    refused = cli("pretrain", f"resume={first}")
    assert refused.code == 2 and "cannot be read safely" in refused.stderr, refused.output
    assert run_dirs(outputs, "pretrain") == [first]


def test_a_resume_does_not_put_back_a_setting_the_run_deleted(cli, outputs: Path,
                                                              ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 100: `optim=adamw ~optim.weight_decay` trained at AdamW's own 0.01; `resume=true` took the deleted key for
    a setting added since, filled in adamw.yaml's 0.05 and trained on with it."""
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim=adamw", "~optim.weight_decay").code == 130
    ctrl_c_after_the_first_checkpoint()
    assert cli("pretrain", "resume=true").code == 0
    resumed = run_dirs(outputs, "pretrain")[1]
    decays = {g["weight_decay"] for g in torch.load(resumed / "last.pt", weights_only=True)["optimizer"]["param_groups"]}
    assert decays == {0.01, 0.0}  # AdamW's default on weights, none on norms and biases
    # probe 102: a resume of the resumed run put it back (only the first run's overrides said `~`)
    assert cli("pretrain", f"resume={resumed}", "trainer.epochs=4").code == 0
    again = run_dirs(outputs, "pretrain")[2]
    decays = {g["weight_decay"] for g in torch.load(again / "last.pt", weights_only=True)["optimizer"]["param_groups"]}
    assert decays == {0.01, 0.0}


def test_a_setting_deleted_on_resume_is_deleted(cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 102: `resume=RUN '~optim.weight_decay'` trained on at the saved 0.05, without a word."""
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim=adamw").code == 130
    ctrl_c_after_the_first_checkpoint()
    resumed = cli("pretrain", "resume=true", "~optim.weight_decay")
    assert resumed.code == 0 and "~optim.weight_decay (saved: 0.05)" in resumed.output, resumed.output
    last = run_dirs(outputs, "pretrain")[1] / "last.pt"
    assert {g["weight_decay"] for g in torch.load(last, weights_only=True)["optimizer"]["param_groups"]} == {0.01, 0.0}


def test_resume_refuses_to_change_the_model(cli, ctrl_c_after_the_first_checkpoint) -> None:
    assert cli("pretrain", *TINY).code == 130
    result = cli("pretrain", "resume=true", "model=resnet18")
    assert result.code == 2 and "would change it" in result.stderr
    # an architecture setting inside the group, too (it failed later as "last.pt does not match this model")
    for setting in ("model.name=resnet18", "model.stem=cifar"):
        result = cli("pretrain", "resume=true", setting)
        assert result.code == 2 and f"{setting} would change the network it trains" in result.stderr, result.output
    assert cli("pretrain", "resume=true").code == 0  # the fix, followed


def test_resume_without_an_interrupted_run(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "resume=true")
    assert result.code == 2 and "no interrupted or failed" in result.stderr
    assert not outputs.exists()  # probe 67: each try left a `failed` run that `cnnlab list runs` showed


def test_resume_given_what_is_not_a_run_of_this_command_names_a_fix_that_works(
        cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    """A file was "damaged run.json", `latest:pretrain` (offered by source='s errors) was "not a run folder", and an
    interrupted pretrain run given to `search resume=` was sent to `finetune model.weights=` — it has no model."""
    assert cli("pretrain", *TINY).code == 130
    ctrl_c_after_the_first_checkpoint()
    interrupted = run_dirs(outputs, "pretrain")[0]
    for spec, says in [(interrupted / "run.json", "is a file; resume= takes the run folder that holds it"),
                       (interrupted / "missing", "no such folder, so no run to continue")]:
        result = cli("pretrain", f"resume={spec}")
        assert result.code == 2 and says in result.stderr and "Traceback" not in result.output, result.output
    assert hinted_command(cli("pretrain", f"resume={interrupted / 'run.json'}").stderr) == ["pretrain",
                                                                                           f"resume={interrupted}"]
    other = cli("search", f"resume={interrupted}")
    assert other.code == 2 and hinted_command(other.stderr) == ["pretrain", f"resume={interrupted}"]
    followed = cli("pretrain", "resume=latest:pretrain")  # the same run as both hints name
    assert followed.code == 0, followed.output
    assert read_run(only_completed(outputs))["resumed_from"] == str(interrupted.resolve())


def test_resume_hints_for_a_run_in_a_folder_with_a_comma_and_a_space_work_when_pasted(
        cli, outputs: Path, tmp_path: Path, ctrl_c_after_the_first_checkpoint) -> None:
    """The fixes printed `resume=/x/a b,c/run` unquoted: pasted, the shell split it, or Hydra read a sweep."""
    from cnnlab.hydra_args import hydra_value

    assert cli("pretrain", *TINY).code == 130
    ctrl_c_after_the_first_checkpoint()
    moved = tmp_path / "old runs, kept" / "run"
    moved.parent.mkdir()
    run_dirs(outputs, "pretrain")[0].rename(moved)
    for given in (f"resume={hydra_value(moved / 'run.json')}", f"resume={hydra_value(moved)}"):
        refused = cli("search" if given.endswith("run'") else "pretrain", given)
        assert refused.code == 2 and "Traceback" not in refused.output, refused.output
        followed = hinted_command(refused.stderr)
        assert followed[0] == "pretrain" and f"resume={moved}" not in followed, followed
    assert cli(*followed).code == 0
    assert read_run(only_completed(outputs))["resumed_from"] == str(moved.resolve())


def only_completed(outputs: Path) -> Path:
    (run,) = [d for d in run_dirs(outputs, "pretrain") if read_run(d)["status"] == "completed"]
    return run


def test_a_completed_run_resumes_only_to_train_longer(cli, outputs: Path, tiny_run: Path) -> None:
    """Resumed as it was, a completed run trained nothing and wrote a second completed run of the same model."""
    (done,) = run_dirs(outputs, "pretrain")
    again = cli("pretrain", f"resume={done}")
    assert again.code == 2 and "that run is complete" in again.stderr and "Traceback" not in again.output
    longer = cli(*hinted_command(again.stderr))
    assert longer.code == 0, longer.output
    trained = only_completed_resumed(outputs)
    assert read_run(trained)["metrics"]["epochs"] == 2 * read_run(done)["metrics"]["epochs"]


def test_a_resume_refuses_a_setting_the_runs_dataset_does_not_have(cli, outputs: Path) -> None:
    """Probe 144: `resume=RUN dataset.num_classes=5` of a digits run was logged and recorded as a change
    ("resume_changed"), and the run trained on its 10 classes: a setting nothing read."""
    digits = ["model=lenet5", "dataset=digits", "dataset.image_size=16", "trainer.epochs=1",
              "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", *digits).code == 0
    (done,) = run_dirs(outputs, "pretrain")
    wrong = cli("pretrain", f"resume={done}", "trainer.epochs=2", "dataset.num_classes=5")
    said = " ".join(wrong.stderr.split())
    assert wrong.code == 2 and "dataset.num_classes is a setting of dataset=synthetic, not of the dataset this run " \
        "uses (dataset.name=digits)" in said and "drop dataset.num_classes=" in said, wrong.output
    assert run_dirs(outputs, "pretrain") == [done]


def test_an_empty_resume_is_refused_not_a_fresh_run(cli, outputs: Path) -> None:
    """Probe 144: `resume=$RUN` with RUN unset trained a new run from scratch (6 minutes), without a word."""
    result = cli("pretrain", *TINY, "resume=")
    assert result.code == 2 and "resume= is empty (a shell variable that is not set?)" in result.stderr
    assert run_dirs(outputs, "pretrain") == []


def only_completed_resumed(outputs: Path) -> Path:
    (run,) = [d for d in run_dirs(outputs, "pretrain") if read_run(d)["status"] == "completed"
              and read_run(d).get("resumed_from")]
    return run


def test_diverging_loss_stops_with_advice(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "optim.lr=1e6", "optim.weight_decay=0", "trainer.amp=none")
    assert result.code == 2, result.output
    assert "NaN/inf" in result.stderr and "optim.lr" in result.stderr
    assert only_run(outputs, "pretrain")["status"] == "failed"
    assert "no checkpoint was written" in result.stderr  # not "the last completed epoch's checkpoint is kept"


def test_a_nan_validation_loss_fails_the_run_even_when_training_losses_stay_finite(cli, outputs: Path) -> None:
    """At lr 1e6 the training loss stayed finite (7e25) but the weights gave NaN on the val split, which the run
    scored as 25 % (chance) and recorded as completed, exit 0; `cnnlab export` then failed on it."""
    result = cli("pretrain", *TINY, "optim.lr=1e6", "trainer.max_steps_per_epoch=2")
    assert result.code == 2, result.output
    assert "the validation loss is nan after epoch 1" in result.stderr and "optim.lr" in result.stderr
    record = only_run(outputs, "pretrain")
    assert record["status"] == "failed" and "val_acc" not in (record.get("metrics") or {})


def test_chance_validation_after_learning_is_a_recorded_warning(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from cnnlab.context import RunContext
    from cnnlab.steps.recording import check_not_at_chance
    from cnnlab.runs import RunRecord

    ctx = RunContext(command="pretrain", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "pretrain"))
    check_not_at_chance(ctx, {"val_acc": 0.3, "train_acc": 0.92}, 10)  # above chance: it generalises somewhat
    check_not_at_chance(ctx, {"val_acc": 0.1, "train_acc": 0.25}, 10)  # nothing learned: another problem
    check_not_at_chance(ctx, {"val_acc": 0.5, "train_acc": 0.9}, 2)  # 2 classes: 50 % is not chance-plus-margin
    assert "warnings" not in read_run(tmp_path) and not caplog.records
    check_not_at_chance(ctx, {"val_acc": 0.0972, "train_acc": 0.9241}, 10)  # the MobileNetV3 run
    [warning] = read_run(tmp_path)["warnings"]
    assert "9.7%" in warning and "92.4%" in warning and "BatchNorm" in warning
    assert "trainer.precise_bn=true" in warning and "optim.lr" in warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]



@pytest.mark.parametrize("case, said", [
    (dict(train_images=4), "it trained on 4 images for 4 classes, which it memorised"),
    (dict(train_images=400, trains_batchnorm=False), "it learned its 400 training images by heart"),
    (dict(train_images=400), "BatchNorm running statistics that lag the weights"),
    (dict(train_images=400, history=[{"epoch": 1, "bn_seconds": 0.1}]), "it learned its 400 training images by heart"),
    (dict(train_images=400, classes=2, val=0.45), "BatchNorm running statistics that lag the weights")])
def test_a_model_at_chance_is_told_the_cause_of_what_trained(tmp_path: Path, case: dict, said: str) -> None:
    """Probe 221: a linear probe of 4 images (one a class), its backbone frozen and its head without BatchNorm, was
    told to set trainer.precise_bn=true, which changed nothing; probe 223: so was a run whose BatchNorm statistics
    precise BN had recomputed, and 2 classes were never warned of (100 % train, 45 % val)."""
    from cnnlab.context import RunContext
    from cnnlab.runs import RunRecord
    from cnnlab.steps.recording import check_not_at_chance

    ctx = RunContext(command="finetune", run_dir=tmp_path, outputs=tmp_path,
                     record=RunRecord.start(tmp_path, "finetune"))
    classes, val, history = case.pop("classes", 4), case.pop("val", 0.1957), case.pop("history", [])
    check_not_at_chance(ctx, {"val_acc": val, "train_acc": 1.0, "history": history}, classes, **case)
    [warning] = read_run(tmp_path)["warnings"]
    assert said in warning and ("precise_bn" in warning) == ("BatchNorm" in said), warning


def test_a_model_no_better_than_its_largest_class_is_a_warning(tmp_path: Path) -> None:
    """Probe 221: a model calling every val picture `circle` read 43.48 % on a val split 43.5 % circles, no word:
    "chance" was 1.5 / 4 classes = 37.5 %."""
    from cnnlab.context import RunContext
    from cnnlab.runs import RunRecord
    from cnnlab.steps.recording import check_not_at_chance

    ctx = RunContext(command="finetune", run_dir=tmp_path, outputs=tmp_path,
                     record=RunRecord.start(tmp_path, "finetune"))
    labels = [0] * 20 + [1] * 12 + [2] * 10 + [3] * 4
    names = ["circle", "square", "star", "tri"]
    check_not_at_chance(ctx, {"val_acc": 21 / 46, "train_acc": 0.6}, 4, val_labels=labels, class_names=names)
    assert "warnings" not in read_run(tmp_path)  # one picture past the largest class: it learned something
    check_not_at_chance(ctx, {"val_acc": 20 / 46, "train_acc": 0.6}, 4, val_labels=labels, class_names=names)
    [warning] = read_run(tmp_path)["warnings"]
    assert "43.5% is no better than answering the largest class every time (circle: 20 of 46 val images" in warning
    check_not_at_chance(ctx, {"val_acc": 0.26, "train_acc": 0.6}, 4, val_labels=[0, 1, 2, 3] * 5)  # balanced: 25 %
    assert len(read_run(tmp_path)["warnings"]) == 1


def test_a_batchnorm_model_saves_the_statistics_its_val_acc_used(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "model=mobilenet_v3_small", "trainer.epochs=2", "trainer.amp=none")
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    assert "precise BN" in result.stderr and all(e["bn_seconds"] > 0 for e in record["metrics"]["history"])
    accuracy, _, _ = saved_model_val_scores(run_dirs(outputs, "pretrain")[0], record)
    assert accuracy == pytest.approx(record["metrics"]["val_acc"])


def test_the_recorded_val_loss_is_the_saved_float32_models_under_bf16_training(cli, outputs: Path) -> None:
    """Validation ran under the training's bf16 autocast, so run.json's val accuracy was not the saved float32
    model's (0.27 points off on digits), the one export, evaluate and the report compare it with."""
    result = cli("pretrain", *TINY, "trainer.amp=bf16")
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    assert record["environment"]["amp"] == "bfloat16"
    _, loss, _ = saved_model_val_scores(run_dirs(outputs, "pretrain")[0], record)
    assert loss == pytest.approx(record["metrics"]["val_loss"], rel=1e-5)


# ------------------------------------------------------------------ self-supervised pretraining (method=simclr|simsiam)
SSL = [*TINY, "trainer.epochs=2"]


def test_simclr_pretrain_then_a_linear_probe(cli, outputs: Path) -> None:
    result = cli("pretrain", "method=simclr", *SSL)
    assert result.code == 0, result.output
    # probe 202: the vote's k is capped at the bank (64 training images here); run.json said k 200
    assert "knn acc" in result.stderr and "kNN monitor: k=64 (method.knn.k=200, capped at the bank's size)" in \
        " ".join(result.stderr.split())
    assert "train loss" in result.stderr and "contrastive acc" in result.stderr  # picking partners, not classes
    record = only_run(outputs, "pretrain")
    run_dir = run_dirs(outputs, "pretrain")[0]
    section = record["pretrain"]
    assert section["method"] == "simclr" and section["temperature"] == 0.5 and section["projection_dim"] == 128
    assert section["knn"] == {"k": 200, "k_used": 64, "bank_images": 64, "temperature": 0.1, "bank_size": None}
    assert section["images"] == record["dataset"]["train_size"] == 64  # what it trained on (+ STL-10's unlabeled)
    assert section["hidden_dim"] == section["feature_dim"] == 84  # auto: LeNet-5's penultimate width
    assert section["views"] == {"crop_scale": [0.08, 1.0], "hflip": True, "color_jitter": 0.5, "grayscale_p": 0.2,
                                "blur": False}  # 16 px: no blur
    metrics = record["metrics"]
    assert metrics["method"] == "simclr" and 0.0 <= metrics["knn_acc"] <= 1.0 and "val_acc" not in metrics
    assert {"epoch", "train_loss", "train_acc", "lr", "knn_acc"} <= set(metrics["history"][0])
    assert not {"val_loss", "val_acc", "val_top5"} & set(metrics["history"][0])  # no classifier evaluation
    assert metrics["knn_acc"] == metrics["history"][-1]["knn_acc"] and metrics["epochs"] == 2
    # an ordinary zoo checkpoint: the backbone with a head for the dataset's classes, no projection head
    model, checkpoint = load_model(run_dir / "model.pt")
    assert checkpoint.name == "lenet5" and len(checkpoint.classes) == 4
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
    assert not any("projector" in key for key in checkpoint.state_dict)
    assert checkpoint.extra["pretrain"]["method"] == "simclr"

    probe = cli("finetune", f"model.weights={run_dir}", "finetune.mode=linear", *TINY)
    assert probe.code == 0, probe.output
    assert "cached 84-dim features" in probe.stderr
    assert only_run(outputs, "finetune")["metrics"]["val_acc"] is not None
    # probe 83: the same classes keep the SSL run's head, which was never trained — and the log said nothing of it
    assert "was never trained (simclr): it trains here from its initial weights" in " ".join(probe.stderr.split())


def test_simclr_never_trains_a_step_of_one_image_even_without_batchnorm(cli, outputs: Path) -> None:
    """Probe 143: LeNet-5 with a one-layer projector (no BatchNorm) kept a last batch of one image: no negatives, so
    a loss of 0 and a free "contrastive acc" hit counted into the epoch. It sits out, as a batch of one is refused."""
    odd = [o for o in SSL if not o.startswith("dataset.train_size")] + ["dataset.train_size=49",
                                                                          "method.projection_layers=1"]
    assert cli("pretrain", "method=simclr", *odd).code == 0
    log = " ".join((run_dirs(outputs, "pretrain")[0] / "run.log").read_text().split())
    assert "1 of the 49 training images sits out each epoch" in log and "no other image to contrast with" in log
    assert cli("pretrain", *odd[:-1]).code == 0  # supervised LeNet-5 (no BatchNorm) trains on every image (probe 92)
    assert "sits out" not in (run_dirs(outputs, "pretrain")[1] / "run.log").read_text()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("method", ["simclr", "simsiam"])
def test_self_supervised_pretraining_on_cuda_then_a_probe(cli, outputs: Path, method: str) -> None:
    """NT-Xent and SimSiam's loss under CUDA's bf16 autocast and channels-last memory, the views made on the GPU
    (trainer.augment_on=auto); the saved backbone is an ordinary CPU checkpoint, and the probe of it runs on the GPU
    too."""
    result = cli("pretrain", f"method={method}", *SSL, "model=resnet18", "device=cuda")
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    assert record["environment"]["gpus"] and record["environment"]["amp"] == "bfloat16"
    assert record["environment"]["augment_on"] == {"where": "device", "why": "auto: training on CUDA"}
    assert all(math.isfinite(epoch["train_loss"]) for epoch in record["metrics"]["history"])
    run_dir = run_dirs(outputs, "pretrain")[0]
    model, _ = load_model(run_dir / "model.pt")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    probe = cli("finetune", f"model.weights={run_dir}", "finetune.mode=linear", *TINY, "model=resnet18", "device=cuda")
    assert probe.code == 0, probe.output
    assert only_run(outputs, "finetune")["metrics"]["val_acc"] is not None


@pytest.mark.parametrize("method", ["simclr", "supervised"])
def test_augmenting_whole_batches_on_the_device_trains_and_is_recorded(cli, outputs: Path, method: str) -> None:
    """trainer.augment_on=device on the CPU: the batched path (kornia) feeds the same trainer, precise BN and
    monitor; run.json says where the images were augmented, and auto on the CPU keeps the workers."""
    result = cli("pretrain", f"method={method}", *TINY, "model=resnet18", "trainer.augment_on=device")
    assert result.code == 0, result.output
    assert "augmentation: whole batches on the device (trainer.augment_on=device)" in result.stderr
    record = only_run(outputs, "pretrain")
    assert record["environment"]["augment_on"] == {"where": "device", "why": "trainer.augment_on=device"}
    assert all(math.isfinite(epoch["train_loss"]) for epoch in record["metrics"]["history"])
    assert cli("pretrain", f"method={method}", *TINY).code == 0
    auto = [read_run(run) for run in run_dirs(outputs, "pretrain")][-1]
    assert auto["environment"]["augment_on"]["where"] == "workers"


def test_device_augmentation_of_a_folder_of_photos_is_one_line(cli, outputs: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, size in enumerate((20, 24, 30, 20)):
        Image.fromarray(np.full((size, size, 3), 9 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["method=simclr", "dataset=imagefolder", f"dataset.root={folder}", "dataset.image_size=16",
            "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4"]
    result = cli("pretrain", *args, "trainer.augment_on=device")
    assert result.code == 2 and "reads each image at its own size" in result.stderr, result.output
    assert "trainer.augment_on=workers" in result.stderr and "Traceback" not in result.output
    assert not outputs.exists()  # probe 67: a refusal before any work leaves no `failed` run
    supervised = cli("pretrain", *TINY, "trainer.augment_on=device", "dataset.augment.randaugment=true")
    assert supervised.code == 2 and "dataset.augment.randaugment=true: RandAugment runs only" in supervised.stderr
    assert not outputs.exists()
    assert cli("pretrain", *args, "trainer.augment_on=workers").code == 0  # the fix it names works


def test_an_unknown_augment_on_is_refused_before_any_work(cli) -> None:
    result = cli("pretrain", *TINY, "trainer.augment_on=gpu")
    assert result.code == 2 and "trainer.augment_on=gpu is not a choice" in result.stderr


def test_simsiam_pretrain_then_a_full_fine_tune(cli, outputs: Path) -> None:
    result = cli("pretrain", "method=simsiam", *SSL, "model=resnet18", "trainer.amp=none")
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    assert record["pretrain"]["method"] == "simsiam" and record["pretrain"]["predictor_hidden_dim"] == 512
    assert "temperature" not in record["pretrain"] and record["pretrain"]["views"]["crop_scale"] == [0.2, 1.0]
    assert "precise BN" in result.stderr  # the BatchNorm layers of backbone and heads are recomputed too
    assert "view-match acc" in result.stderr
    full = cli("finetune", "model.weights=latest:pretrain", "finetune.mode=full", *TINY, "model=resnet18")
    assert full.code == 0, full.output


def test_a_flat_folder_of_unlabeled_images_pretrains_without_the_monitor(cli, outputs: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    result = cli("pretrain", "method=simclr", "dataset=imagefolder", f"dataset.root={folder}", "dataset.image_size=16",
                 "model=lenet5", "trainer.epochs=1", "trainer.batch_size=8")
    assert result.code == 0, result.output
    assert "kNN monitor off" in result.stderr
    record = only_run(outputs, "pretrain")
    assert record["dataset"]["train_size"] == 20 and "knn_acc" not in record["metrics"]
    _, checkpoint = load_model(run_dirs(outputs, "pretrain")[0] / "model.pt")
    assert checkpoint.classes == ["unlabeled_0", "unlabeled_1"]  # a placeholder head: finetune replaces it
    # the same folder is refused where labels are needed, with the way to use it (named again, it is the weights
    # run's own data: the same line as without dataset=, below)
    refused = cli("finetune", f"dataset.root={folder}", "dataset=imagefolder", "model.weights=latest:pretrain",
                  "dataset.image_size=16")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "a flat folder of pictures without labels" in said, refused.output
    other = cli("finetune", f"dataset.root={folder}", "dataset=imagefolder", "model=lenet5", "dataset.image_size=16")
    assert other.code == 2 and "no class folders" in other.stderr and "method=simclr" in other.stderr, other.output
    # probe 83: with the run's own data (no dataset=), the fix offered was the pretraining just run
    inherited = cli("finetune", "model.weights=latest:pretrain", "model=lenet5")
    said = " ".join(inherited.stderr.split())
    assert inherited.code == 2 and "a flat folder of pictures without labels" in said, inherited.output
    assert "dataset.root=DIR with DIR/<class>/*.jpg" in said and "method=simclr" not in said
    assert not (outputs / "finetune").exists()



def test_a_backbone_pretrained_on_a_flat_folder_fine_tunes_on_labelled_pictures(cli, outputs: Path,
                                                                                 tmp_path: Path) -> None:
    """Probe 163: after `pretrain method=simclr` on a flat folder, a fine-tune on any train/ + val/ folder — one that
    shares no picture with it, or one whose train/ holds its pictures labelled and val/ new ones — was refused with
    "flat holds images but no class folders" (the check rebuilt a carve of the flat folder); a one-level folder that
    holds its pictures was told to "give a copy of flat as it was", which has no labels."""
    import numpy as np
    from PIL import Image

    def picture(path: Path, seed: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)

    flat = tmp_path / "flat"
    for i in range(16):
        picture(flat / f"{i}.png", i)
    for i in range(24):  # disjoint: new pictures in both splits; labelled: flat's pictures in train/, new ones in val/
        picture(tmp_path / "disjoint" / ("train" if i < 16 else "val") / "ab"[i % 2] / f"{i}.png", 100 + i)
        picture(tmp_path / "labelled" / ("train" if i < 16 else "val") / "ab"[i % 2] / f"{i}.png",
                i if i < 16 else 200 + i)
        picture(tmp_path / "one_level" / "ab"[i % 2] / f"{i}.png", i if i < 16 else 300 + i)
    assert cli("pretrain", "method=simclr", "dataset=imagefolder", f"dataset.root={flat}", "dataset.image_size=16",
               "model=lenet5", "trainer.epochs=1", "trainer.batch_size=8").code == 0
    tune = ["finetune", "model.weights=latest:pretrain", "finetune.mode=linear", "dataset=imagefolder",
            "dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=8"]
    for folder in ("disjoint", "labelled"):
        result = cli(*tune, f"dataset.root={tmp_path / folder}")
        assert result.code == 0, result.output
    refused = cli(*tune, f"dataset.root={tmp_path / 'one_level'}")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "holds 16 of the unlabeled pictures" in said, refused.output
    assert "copy of" not in said and "DIR/val/<class>/ (new ones)" in said


def test_a_simclr_temperature_far_below_the_published_ones_is_named_by_the_warning_and_the_nan_fix(cli) -> None:
    """method.temperature=1e-9 diverged with a fix that named optim.lr and trainer.grad_clip, never the temperature
    (probe 65: following grad_clip "completed" with a loss of 3.5e8); 1e-4 and 1e6 ran without a word."""
    result = cli("pretrain", "method=simclr", *SSL, "method.temperature=1e-9")
    assert result.code == 2 and "NaN/inf" in result.stderr
    assert "method.temperature=1e-09 is outside the 0.01-10" in result.stderr
    assert "— raise method.temperature (now 1e-09" in result.stderr and "e.g. method.temperature=0.5" in result.stderr
    followed = cli("pretrain", "method=simclr", *SSL, "method.temperature=0.5")
    assert followed.code == 0 and "is outside the" not in followed.stderr
    flat = cli("pretrain", "method=simclr", *SSL, "method.temperature=1e6")
    # the line as one (rich wraps it at the terminal's width, which differs between a terminal and CI)
    assert flat.code == 0 and "the loss barely depends on the projections" in " ".join(flat.stderr.split())


def test_the_label_fraction_warning_gives_the_share_kept_not_zero_percent(cli) -> None:
    result = cli("pretrain", "method=simclr", *SSL, "dataset.label_fraction=0.001")  # probe 65: "keeps 0 %"
    assert "dataset.label_fraction=0.001 keeps 0.1 % of the training images" in result.stderr


def test_self_supervised_resume_continues_the_heads(cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    assert cli("pretrain", "method=simsiam", *SSL).code == 130
    ctrl_c_after_the_first_checkpoint()
    resumed = cli("pretrain", "resume=true")
    assert resumed.code == 0, resumed.output
    record = read_run(run_dirs(outputs, "pretrain")[1])
    assert record["pretrain"]["method"] == "simsiam" and [e["epoch"] for e in record["metrics"]["history"]] == [1, 2]


@pytest.mark.parametrize("args, message, fix", [
    (["trainer.batch_size=1"], "no negatives", "trainer.batch_size="),
    (["dataset.train_size=8", "trainer.batch_size=16"], "fewer than one batch", "trainer.batch_size=8"),
    # probe 147: one image at batch 2 was told "use trainer.batch_size=2 or more images"
    (["dataset.train_size=1", "trainer.batch_size=2"], "has 1 training image, fewer than one batch",
     "add images: simclr needs at least 2 a batch"),
    (["dataset.train_size=8", "trainer.batch_size=16"], "simclr contrasts each image with the others of its batch",
     "trainer.batch_size=8"),
    # probe 124: SimSiam was said to learn "from the other images of a batch": SimCLR's negatives, it has none
    (["method=simsiam", "dataset.train_size=8", "trainer.batch_size=16"], "normalise over a whole batch (BatchNorm)",
     "trainer.batch_size=8"),
    # refused by the settings' rule for it (a two-number range in (0, 1]) before the views are built
    (["method.views.crop_scale=[0.5,0.2]"], "the smaller first", "method.views.crop_scale=[0.08,1.0]"),
    (["method.views.crop_scale=[0,1]"], "a list of 2 numbers in (0, 1]", "method.views.crop_scale=[0.08,1.0]"),
    # probe 163: one-pixel views at 16 px; under a pixel, RandomResizedCrop fell back to the whole image (no crop)
    (["method.views.crop_scale=[0.002,0.002]"], "on pictures of 16 px gives crops of at most 0.51 pixels",
     "method.views.crop_scale=[0.2,1.0] (a maximum of at least 0.063 on 16-px pictures)"),
    (["method.views.crop_scale=[1e-6,0.05]"], "gives crops of at most 13 pixels", "method.views.crop_scale=[0.2,1.0]"),
    # the same for supervised training's random crop (dataset.augment): taken at once, before the first epoch
    (["method=supervised", "dataset.augment.random_crop=true", "dataset.augment.crop_scale=[1e-6,1e-6]"],
     "dataset.augment.crop_scale=[1e-06, 1e-06] on pictures of 16 px gives crops of at most 0.00026 pixels",
     "dataset.augment.crop_scale=[0.08,1.0]"),
    # probe 143: SimSiam's fix named SimCLR's 128, not its own paper's 2048
    (["method=simsiam", "method.projection_dim=0"], "method.projection_dim=0", "method.projection_dim=2048"),
    (["method.projection_dim=0"], "method.projection_dim=0", "method.projection_dim=128"),
])
def test_bad_self_supervised_settings_are_one_line(cli, outputs: Path, args: list[str], message: str,
                                                   fix: str) -> None:
    method = next((a for a in args if a.startswith("method=")), "method=simclr")
    result = cli("pretrain", method, *TINY, *(a for a in args if not a.startswith("method=")))
    assert result.code == 2, result.output
    assert message in result.stderr and fix in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
    assert not (outputs / "pretrain").exists()  # probe 83: the batch refusal left a `failed` run folder


def test_a_crop_scale_is_judged_on_the_pictures_as_read_not_the_size_they_are_resized_to(
        cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 167: the crop is cut from the picture before its resize, so its pixels are the picture's: 64-px pictures
    read at 16 px were refused at crop_scale=[0.01,0.01] (41-pixel crops, taken for 2.6), and the fix it named,
    followed at its rounded value (0.062 for 0.0625), was refused again."""
    import numpy as np
    from PIL import Image

    for i in range(8):
        path = tmp_path / "pics" / "ab"[i % 2] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    ssl = ["pretrain", "method=simclr", "model=lenet5", "dataset=imagefolder", f"dataset.root={tmp_path / 'pics'}",
           "dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=4"]
    assert cli(*ssl, "method.views.crop_scale=[0.01,0.01]").code == 0  # 41 pixels of a 64-px picture
    refused = cli(*ssl, "method.views.crop_scale=[0.001,0.001]")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "on pictures of 64 px gives crops of at most 4.1 pixels" in said, refused.output
    least = said.split("a maximum of at least ")[1].split()[0]
    assert cli(*ssl, f"method.views.crop_scale=[{least},{least}]").code == 0  # the fix's value, as printed


def test_a_label_fraction_says_it_only_shrinks_the_images_where_no_label_is_used(cli, outputs: Path) -> None:
    """`pretrain method=simclr dataset.label_fraction=0.25` trains on a quarter of the images (labels unused): a
    budget the benchmarks use on purpose, but a user who meant label efficiency is told so."""
    result = cli("pretrain", "method=simclr", *SSL, "dataset.label_fraction=0.25")
    said = " ".join(result.stderr.split())
    assert result.code == 0 and "keeps 25 % of the training images" in said, result.output
    assert only_run(outputs, "pretrain")["dataset"]["train_size"] == 16  # 64 × 0.25


def test_other_commands_refuse_a_method(cli) -> None:
    result = cli("finetune", "method=simclr", *TINY)
    assert result.code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if "method" in line]
    assert len(errors) == 1 and errors[0].startswith("error:"), result.stderr
    assert "model.weights=latest:pretrain" in result.stderr
    # probe 143: prune's fix said source=latest:pretrain, which prune refuses (its head was never trained)
    pruned = cli("prune", "method=simsiam")
    assert pruned.code == 2 and "fine-tune its backbone (`cnnlab finetune model.weights=latest:pretrain`)" in \
        " ".join(pruned.stderr.split()) and "source=latest:pretrain" not in pruned.stderr, pruned.stderr


def test_a_network_on_1x1_maps_trains_in_float32_under_amp_auto(cli, outputs: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU with fast bf16, ResNet-18 at 16 px runs its last stages on 1x1 maps, where bf16 is slower: the run
    trains in float32 and its record says why."""
    from cnnlab.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    # device=cpu: the rule is the CPU's (on a GPU machine, device=auto trains on CUDA, where bf16 is kept)
    assert cli("pretrain", *TINY, "model=resnet18", "trainer.epochs=1", "trainer.max_steps_per_epoch=1",
               "device=cpu").code == 0
    environment = only_run(outputs, "pretrain")["environment"]
    assert environment["amp"] == "none" and "1x1 maps" in environment["amp_reason"]


def test_the_record_says_the_precision_a_network_trained_in(cli, outputs: Path) -> None:
    """trainer.amp=auto may say bf16 and mean float32 (a depthwise network on the CPU): the record says what ran."""
    tiny = [*TINY, "model=mobilenet_v3_small", "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "device=cpu"]
    assert cli("pretrain", *tiny, "trainer.amp=auto").code == 0
    assert only_run(outputs, "pretrain")["environment"]["amp"] == "none"
    assert cli("pretrain", *tiny, "trainer.amp=bf16").code == 0  # asked for: kept
    assert sorted(read_run(run)["environment"]["amp"] for run in run_dirs(outputs, "pretrain")) == ["bfloat16", "none"]


def test_a_cifar_stem_network_records_its_stem_and_every_later_step_rebuilds_it(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "model=resnet18", "model.stem=CIFAR", "trainer.amp=none",
                 "trainer.max_steps_per_epoch=1")
    assert result.code == 0, result.output
    run_dir = run_dirs(outputs, "pretrain")[0]
    model, checkpoint = load_model(run_dir / "model.pt")
    assert checkpoint.arch["kwargs"] == {"stem": "cifar"}  # one spelling
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, torch.nn.Identity)
    exported = cli("export", f"source={run_dir}")
    assert exported.code == 0, exported.output
    onnx_file = next(p for p in (run_dirs(outputs, "export")[0]).iterdir() if p.suffix == ".onnx")
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(image).numpy()
    assert session.run(None, {session.get_inputs()[0].name: image.numpy()})[0] == pytest.approx(expected, abs=1e-4)
    assert read_run(run_dir)["model"]["stem"] == "cifar"  # what the report shows: resnet18[stem=cifar]
    # ImageNet weights do not fit a 3×3 conv1: refused before any download; the command it names trains from scratch
    imagenet = cli("finetune", *TINY, "model=resnet18", "model.stem=cifar")
    assert imagenet.code == 2 and "ImageNet weights have a 7×7 one" in imagenet.stderr, imagenet.output
    assert hinted_command(imagenet.stderr) == ["pretrain", "model=resnet18", "model.stem=cifar"]
    one_step = ["trainer.epochs=1", "trainer.batch_size=16", "trainer.max_steps_per_epoch=1", "trainer.amp=none"]
    scratch = cli(*hinted_command(imagenet.stderr), *TINY[:5], *one_step)
    assert scratch.code == 0, scratch.output
    # a checkpoint rebuilds its own stem, without being told (a run folder resolves to this same model.pt)
    tuned = cli("finetune", *TINY, "model=resnet18", f"model.weights={run_dir / 'model.pt'}", *one_step)
    assert tuned.code == 0, tuned.output
    trained = [run for run in run_dirs(outputs, "finetune") if (run / "model.pt").is_file()]  # not the refused run
    assert len(trained) == 1 and load_model(trained[0] / "model.pt")[1].arch["kwargs"] == {"stem": "cifar"}


def test_a_stem_the_weights_were_not_built_with_is_refused_not_ignored(cli, outputs: Path) -> None:
    """model.stem=imagenet on a cifar-stem checkpoint, and any stem on a model.pt path, were silently ignored."""
    assert cli("pretrain", *TINY).code == 0  # LeNet-5: the stock stem
    run_dir = run_dirs(outputs, "pretrain")[0]
    for weights in ("latest:pretrain", run_dir / "model.pt"):
        clash = cli("finetune", *TINY, f"model.weights={weights}", "model.stem=cifar")
        assert clash.code == 2 and "model.stem=cifar but model.weights holds a network built with the stock stem" \
            in clash.stderr, clash.output
        assert "drop model.stem" in clash.stderr
    assert cli("finetune", *TINY, "model.weights=latest:pretrain").code == 0  # the fix, followed
    # a value that is no stem is named as such, before any comparison with the weights
    bogus = cli("finetune", *TINY, "model.weights=latest:pretrain", "model.stem=bogus")
    assert bogus.code == 2 and "model.stem=bogus is not a stem" in bogus.stderr and "weights trained" not in bogus.stderr
    # distill's roles name their own setting
    student = cli("distill", f"teacher.weights={run_dir}", "student=lenet5", "student.stem=cifar", *TINY[:5])
    assert student.code == 2 and "lenet5 has no small-image stem (student.stem=cifar)" in student.stderr, student.output
    assert "drop student.stem" in student.stderr


def test_a_self_supervised_backbone_is_not_scored_as_a_classifier(cli, outputs: Path, tmp_path: Path) -> None:
    """Its classifier head was never trained: evaluate printed a chance-level top-1, predict a random label and
    prune/quantize accuracies of nothing, all with exit 0. Now each says so and names the fine-tune that fixes it;
    export still works (the pipeline benchmarks the backbone), and its ONNX file carries the warning along."""
    from PIL import Image

    assert cli("pretrain", "method=simclr", *TINY, "trainer.epochs=1").code == 0
    run_dir = run_dirs(outputs, "pretrain")[0]
    picture = tmp_path / "x.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(picture)
    for args in (("evaluate", "source=latest:pretrain", "split=val"),
                 ("predict", "source=latest:pretrain", str(picture)),
                 ("prune", "source=latest:pretrain"), ("quantize", "source=latest:pretrain")):
        refused = cli(*args)
        said = "".join(refused.stderr.split())  # the console wraps long lines, paths included
        assert refused.code == 2 and "classifierheadwasnevertrained" in said, (args, refused.output)
        assert f"cnnlabfinetunemodel.weights={run_dir / 'model.pt'}finetune.mode=linear" in said, said
        assert "Traceback" not in said
    teacher = cli("distill", "teacher.weights=latest:pretrain", "student=lenet5", *TINY[:5])
    said = "".join(teacher.stderr.split())
    assert teacher.code == 2 and "classifierheadwasnevertrained" in said, teacher.output
    assert "thenuseteacher.weights=latest:finetune" in said  # the distill student side starts from it as usual
    assert cli("export", "source=latest:pretrain").code == 0
    exported = only_run(outputs, "export")["metrics"]  # a chance-level "val_acc" of no classifier was recorded
    assert "val_acc" not in exported and exported["top1_agreement"] == 1.0, exported
    for args in (("evaluate", "source=latest:export", "split=val"), ("quantize", "source=latest:export")):
        refused = cli(*args)
        said = "".join(refused.stderr.split())
        assert refused.code == 2 and "method=simclr" in said, (args, refused.output)
        assert f"model.weights={run_dir}finetune.mode=linear" in said
    # an export written before `untrained_head` existed: its source model.pt says what it is
    import onnx

    old = onnx.load(str(run_dirs(outputs, "export")[0] / "model.onnx"))
    props = [prop for prop in old.metadata_props if prop.key != "untrained_head"]
    del old.metadata_props[:]
    old.metadata_props.extend(props)
    onnx.save(old, str(tmp_path / "old_export.onnx"))
    refused = cli("evaluate", f"source={tmp_path / 'old_export.onnx'}", "split=val")
    assert refused.code == 2 and "method=simclr" in "".join(refused.stderr.split()), refused.output
    # the fix, followed
    assert cli("finetune", f"model.weights={run_dir / 'model.pt'}", "finetune.mode=linear", *TINY).code == 0
    scored = cli("evaluate", "source=latest:finetune", "split=val")
    assert scored.code == 0, scored.output


def test_a_knn_bank_that_misses_classes_is_a_warning(cli, outputs: Path) -> None:
    """Probe 202: `method.knn.bank_size=5` drew 5 images of 4 of the 10 digits, and knn acc read 9.72 % (38.61 % with
    the whole bank) without a word."""
    result = cli("pretrain", "method=simclr", *TINY, "trainer.epochs=1", "method.knn.bank_size=2")
    assert result.code == 0, result.output
    said = " ".join(result.output.split())
    assert "the kNN monitor's bank of 2 images (method.knn.bank_size=2) holds " in said and " of the 4 classes: it " \
        "cannot predict the other " in said and "raise method.knn.bank_size (null: every training image)" in said, said
    record = only_run(outputs, "pretrain")
    assert any("kNN monitor's bank" in w for w in record["warnings"]) and record["pretrain"]["knn"]["k_used"] == 2


def test_a_single_class_folder_pretrains_self_supervised_without_a_knn_score(cli, outputs: Path,
                                                                              tmp_path: Path) -> None:
    """Probe 64: a folder of one class folder pretrained with SimCLR (as it did before session 51, which refused it
    for every pretrain), and its kNN monitor read 100 % each epoch: every neighbour of one class agrees. A classifier
    still refuses such a folder, naming it."""
    from helpers import random_image_folder

    folder = random_image_folder(tmp_path / "one", per_class=12, classes=("top",))
    tiny = ["dataset=imagefolder", f"dataset.root={folder}", "model=lenet5", "trainer.epochs=1",
            "trainer.batch_size=4"]
    result = cli("pretrain", *tiny, "method=simclr")
    assert result.code == 0, result.output
    metrics = only_run(outputs, "pretrain")["metrics"]
    assert "knn_acc" not in metrics and "kNN monitor off" in " ".join(result.output.split())
    refused = cli("pretrain", *tiny)
    assert refused.code == 2 and f"{folder} holds one class folder (top/)" in refused.stderr, refused.output
