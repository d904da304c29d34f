"""`cnnlab finetune`: ImageNet/run weights, new head, linear/partial/full modes, feature cache."""

from __future__ import annotations

import json

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torchvision.models as tvm

from cnnlab.models import MODELS, hub_checkpoint_path
from helpers import TINY, only_run, random_image_folder, read_run, run_dirs, saved_model_val_scores, write_idx

SMALL = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=64", "dataset.val_size=32",
         "dataset.num_classes=4", "trainer.epochs=2", "trainer.batch_size=16", "trainer.amp=none"]


def checkpoint_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def test_linear_mode_freezes_the_imagenet_backbone_and_caches_features(cli, outputs: Path, fake_imagenet) -> None:
    imagenet = fake_imagenet("mobilenet_v3_small")
    result = cli("finetune", "model=mobilenet_v3_small", *SMALL)
    assert result.code == 0, result.output
    assert "cached" in result.stderr
    record = only_run(outputs, "finetune")
    assert record["model"]["weights"].startswith("torchvision ImageNet weights")
    assert record["model"]["num_classes"] == 4 and record["metrics"]["finetune_mode"] == "linear"
    # ImageNet normalisation comes with the weights, not the dataset's own mean/std.
    assert record["dataset"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    state = checkpoint_state(run_dirs(outputs, "finetune")[0])
    head = MODELS["mobilenet_v3_small"].head
    for key, value in state.items():
        if not key.startswith(head + "."):
            assert torch.equal(value, imagenet[key]), key  # frozen: BN statistics included
    assert state[head + ".weight"].shape[0] == 4


def test_cached_and_uncached_linear_training_agree(cli, outputs: Path, tiny_run: Path) -> None:
    for cache in ("true", "false"):
        assert cli("finetune", "model.weights=latest:pretrain", *TINY, "trainer.epochs=2", "trainer.amp=none",
                   "dataset.num_classes=3", f"finetune.cache_features={cache}",
                   "finetune.standardize_features=false").code == 0
    cached, recomputed = (read_run(d) for d in run_dirs(outputs, "finetune"))
    assert cached["metrics"]["val_acc"] == pytest.approx(recomputed["metrics"]["val_acc"], abs=1e-6)
    assert cached["metrics"]["val_loss"] == pytest.approx(recomputed["metrics"]["val_loss"], rel=1e-4)
    a, b = (checkpoint_state(d) for d in run_dirs(outputs, "finetune"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_a_cached_probe_trains_its_head_in_the_precision_amp_auto_gives_the_network(
        cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU with fast bf16, trainer.amp=auto trains ResNet-18 at 16 px in float32 (1x1 maps). The cached probe's
    head, a Linear alone, trained in bf16 all the same and recorded bfloat16, so the cached and uncached probes
    differed (probe 65: by up to 4.6e-5 in the head, 0.2 points of val top-1)."""
    from cnnlab.engine import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert cli("pretrain", *TINY, "model=resnet18", "trainer.amp=none", "device=cpu").code == 0
    for cache in ("true", "false"):
        assert cli("finetune", "model.weights=latest:pretrain", *TINY, "model=resnet18", "trainer.epochs=2",
                   "device=cpu", f"finetune.cache_features={cache}", "finetune.standardize_features=false").code == 0
    for record in (read_run(d) for d in run_dirs(outputs, "finetune")):
        assert record["environment"]["amp"] == "none" and "1x1 maps" in record["environment"]["amp_reason"]
    a, b = (checkpoint_state(d) for d in run_dirs(outputs, "finetune"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_a_cached_linear_probe_records_the_saved_float32_models_val_loss_under_bf16(
        cli, outputs: Path, tiny_run: Path) -> None:
    """The cached val features were computed under bf16 autocast, so the probe's recorded val accuracy was not the
    saved float32 model's (the same kind as trainer.evaluate's, fixed there first)."""
    result = cli("finetune", "model.weights=latest:pretrain", *TINY, "finetune.mode=linear", "trainer.amp=bf16")
    assert result.code == 0 and "cached" in result.stderr, result.output
    record = only_run(outputs, "finetune")
    _, loss, _ = saved_model_val_scores(run_dirs(outputs, "finetune")[0], record)
    assert loss == pytest.approx(record["metrics"]["val_loss"], rel=1e-5)
    # probe 103: the probe trains no backbone, and recorded a backbone rate of 1.0 all the same
    assert record["metrics"]["backbone_lr_scale"] is None


def test_a_standardised_probe_is_folded_into_the_saved_head_and_differs_from_a_raw_one(
        cli, outputs: Path, tiny_run: Path) -> None:
    """The head trains on standardised cached features and is folded back: the saved model.pt, fed raw images,
    scores what the run recorded, and its weights are not the raw-feature probe's."""
    for standardize in ("auto", "false"):
        result = cli("finetune", "model.weights=latest:pretrain", *TINY, "trainer.epochs=2", "trainer.amp=none",
                     f"finetune.standardize_features={standardize}")
        assert result.code == 0, result.output
    standardized, raw = run_dirs(outputs, "finetune")
    record = read_run(standardized)
    assert record["metrics"]["standardize_features"] is True
    assert read_run(raw)["metrics"]["standardize_features"] is False
    acc, loss, _ = saved_model_val_scores(standardized, record)
    assert acc == pytest.approx(record["metrics"]["val_acc"], abs=1e-6)
    assert loss == pytest.approx(record["metrics"]["val_loss"], rel=1e-5)
    head = MODELS[record["model"]["name"]].head
    assert not torch.allclose(checkpoint_state(standardized)[head + ".weight"], checkpoint_state(raw)[head + ".weight"])


def test_a_kept_head_that_does_not_learn_comes_back_unchanged(cli, outputs: Path, tiny_run: Path) -> None:
    """A head kept from the weights (same classes, finetune.new_head=auto) was read as if it took standardised
    features and folded again: at lr 1e-12 its largest weight went from 0.1 to 34, and each re-probe multiplied it
    by ~316. It is now unfolded first, so a probe that learns nothing gives back the model it started from."""
    start = checkpoint_state(run_dirs(outputs, "pretrain")[0])
    result = cli("finetune", "model.weights=latest:pretrain", *TINY, "optim.lr=1e-12", "trainer.amp=none")
    assert result.code == 0, result.output
    said = " ".join(result.output.split())
    assert "model: the head of run " in said and "is kept (the same 4 classes)" in said  # probe 191: unsaid
    record = only_run(outputs, "finetune")
    assert record["metrics"]["standardize_features"] is True
    end = checkpoint_state(run_dirs(outputs, "finetune")[0])
    head = MODELS["lenet5"].head
    for key in (head + ".weight", head + ".bias"):
        assert torch.allclose(end[key], start[key], atol=1e-5), key


def test_a_head_for_the_same_classes_in_another_order_is_kept_with_its_rows_reordered(cli, outputs: Path,
                                                                                      tmp_path: Path) -> None:
    """Probe 116: the source's class names, in another order (a torchvision set's against a folder's sorted names),
    got a new random head, unsaid; it now keeps the trained one, each row moved to its class's place."""
    from helpers import random_image_folder

    assert cli("pretrain", *TINY).code == 0
    classes = torch.load(run_dirs(outputs, "pretrain")[0] / "model.pt", weights_only=True)["classes"]
    assert classes != sorted(classes)  # synthetic's order is not a folder's
    start = checkpoint_state(run_dirs(outputs, "pretrain")[0])
    folder = random_image_folder(tmp_path / "data", per_class=8, classes=tuple(classes), size=16)
    result = cli("finetune", "model.weights=latest:pretrain", "dataset=imagefolder", f"dataset.root={folder}",
                 "dataset.image_size=16", "optim.lr=1e-12", "trainer.amp=none", "trainer.epochs=1",
                 "trainer.batch_size=8")
    said = " ".join(result.output.split())  # the terminal wraps long log lines
    assert result.code == 0 and "is kept, its rows put in the order of the data's classes" in said, result.output
    assert torch.load(run_dirs(outputs, "finetune")[0] / "model.pt", weights_only=True)["classes"] == sorted(classes)
    end = checkpoint_state(run_dirs(outputs, "finetune")[0])
    rows = [classes.index(name) for name in sorted(classes)]
    head = MODELS["lenet5"].head
    for key in (head + ".weight", head + ".bias"):
        assert torch.allclose(end[key], start[key][rows], atol=1e-5), key


def test_the_recorded_val_scores_are_the_folded_models_when_float32_cancels(
        cli, outputs: Path, tiny_run: Path, tmp_path: Path) -> None:
    """Features ~1e5 with a spread of ~0.02: the folded head's float32 arithmetic cancels (recorded 68.75 %, the
    saved model scored 50 %). The run now scores the folded head on the raw features and records that."""
    payload = torch.load(run_dirs(outputs, "pretrain")[0] / "model.pt", weights_only=True)
    payload["state_dict"]["classifier.2.bias"] += 1e5  # the features the head reads: ReLU(1e5 + small)
    shifted = tmp_path / "shifted.pt"
    torch.save(payload, shifted)
    result = cli("finetune", f"model.weights={shifted}", *TINY, "finetune.new_head=true", "trainer.epochs=2",
                 "trainer.amp=none")
    assert result.code == 0, result.output
    run_dir = run_dirs(outputs, "finetune")[0]
    record = read_run(run_dir)
    acc, loss, _ = saved_model_val_scores(run_dir, record)
    assert acc == pytest.approx(record["metrics"]["val_acc"], abs=1e-6)
    assert loss == pytest.approx(record["metrics"]["val_loss"], rel=1e-4)


def test_resuming_a_complete_cached_probe_says_it_is_complete_not_that_it_never_finished_an_epoch(
        cli, outputs: Path, tiny_run: Path) -> None:
    """A cached linear probe keeps no last.pt (its head trains from the cache in seconds): resume= said "pick a run
    that completed at least one epoch" of a run that completed all of them."""
    assert cli("finetune", "model.weights=latest:pretrain", *TINY).code == 0
    probe = run_dirs(outputs, "finetune")[0]
    result = cli("finetune", f"resume={probe}", "trainer.epochs=2")
    assert result.code == 2 and "that run is complete and kept no last.pt" in result.stderr, result.output
    assert "completed at least one epoch" not in result.stderr and "Traceback" not in result.stderr
    assert "start a new run without resume=" in result.stderr
    assert cli("finetune", "model.weights=latest:pretrain", *TINY, "trainer.epochs=2").code == 0  # that fix, followed


def test_an_interrupted_cached_probe_says_it_keeps_no_checkpoint_not_that_no_epoch_completed(
        cli, outputs: Path) -> None:
    """Interrupted at epoch 10 of 300, a cached linear probe said "no epoch had completed, so there is no checkpoint
    to resume", and resume= of it "pick a run that completed at least one epoch": it keeps none by design."""
    from cnnlab.commands import interrupt_hint

    assert cli("pretrain", *TINY).code == 0
    assert cli("finetune", "model.weights=latest:pretrain", *TINY).code == 0
    probe = run_dirs(outputs, "finetune")[0]
    record = read_run(probe)
    reason = record["no_checkpoint"]
    assert "linear probe on cached features" in reason
    hint = interrupt_hint("finetune", ["a=1"], no_checkpoint=reason)
    assert "keeps no checkpoint to resume (a linear probe" in hint and "no epoch had completed" not in hint
    assert hint.endswith("start it again with `cnnlab finetune a=1`")
    (probe / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))  # as Ctrl-C leaves it
    result = cli("finetune", f"resume={probe}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "that run keeps no last.pt to continue from (a linear probe" in said, result.output
    assert "completed at least one epoch" not in said and "start it again without resume=" in said
    latest = cli("finetune", "resume=true")  # the newest unfinished run is that probe: named, not "pass RUN_FOLDER"
    said = " ".join(latest.stderr.split())
    assert latest.code == 2 and f"the newest unfinished one that keeps none by design is {probe}" in said, latest.output
    assert "start it again without resume=" in said


def test_standardised_features_need_the_cache(cli, outputs: Path) -> None:
    result = cli("finetune", *TINY, "model.weights=none", "finetune.augment=true",
                 "finetune.standardize_features=true")
    assert result.code == 2 and "finetune.standardize_features=true cannot be used" in result.stderr
    assert "not cached (train transforms are random" in result.stderr and "Traceback" not in result.stderr
    full = cli("finetune", *TINY, "model.weights=none", "finetune.mode=full", "finetune.standardize_features=true")
    assert full.code == 2 and "applies to a linear probe, not finetune.mode=full" in full.stderr
    assert run_dirs(outputs, "finetune") == []  # settings refused: no failed run left (probe 138)


def test_cache_refused_when_augmenting(cli, outputs: Path) -> None:
    result = cli("finetune", *TINY, "model.weights=none", "finetune.augment=true", "finetune.cache_features=true")
    assert result.code == 2 and "train transforms are random" in result.stderr
    assert run_dirs(outputs, "finetune") == []  # probe 138: a failed run was left


def test_settings_the_mode_does_not_read_are_refused(cli, outputs: Path) -> None:
    """Probe 138: `mode=full unfreeze=3` trained every stage (partial was meant), and backbone_lr_scale in linear
    mode was recorded null, each without a word."""
    full = cli("finetune", *TINY, "model.weights=none", "finetune.mode=full", "finetune.unfreeze=3")
    said = " ".join(full.stderr.split())
    assert full.code == 2 and "finetune.unfreeze=3 applies to finetune.mode=partial" in said, full.output
    assert "use finetune.mode=partial finetune.unfreeze=3, or drop finetune.unfreeze" in said
    linear = cli("finetune", *TINY, "model.weights=none", "finetune.mode=linear", "finetune.backbone_lr_scale=0.5")
    assert linear.code == 2 and "a linear probe trains the head alone" in " ".join(linear.stderr.split())
    assert run_dirs(outputs, "finetune") == []
    # probe 140: the default typed is no setting ignored; a sweep across modes is a sound request, each job says it
    assert cli("finetune", *TINY, "model.weights=none", "finetune.backbone_lr_scale=auto").code == 0
    swept = cli("finetune", "-m", *TINY, "model.weights=none", "finetune.mode=linear,partial", "finetune.unfreeze=2")
    assert swept.code == 0, swept.output
    linear_job = next(d for d in run_dirs(outputs, "finetune") if "multirun" in str(d)
                      and read_run(d)["metrics"]["finetune_mode"] == "linear")
    assert any("finetune.unfreeze=2 applies to finetune.mode=partial" in w and "not read by this job" in w
               for w in read_run(linear_job)["warnings"])
    # probe 145: a sweep across modes none of which reads it is refused too
    dead = cli("finetune", "-m", *TINY, "model.weights=none", "finetune.mode=linear,full", "finetune.unfreeze=2")
    assert dead.code == 2 and "finetune.unfreeze=2 applies to finetune.mode=partial" in " ".join(dead.stderr.split())
    # probe 144: a sweep that does not vary the mode is every job's one mistake: refused as a single run is (each
    # job a failed one, as any refusal in a sweep: Hydra lists it)
    before = run_dirs(outputs, "finetune")
    same = cli("finetune", "-m", *TINY, "model.weights=none", "seed=0,1", "finetune.mode=full", "finetune.unfreeze=2")
    assert same.code == 2 and "finetune.unfreeze=2 applies to finetune.mode=partial" in " ".join(same.stderr.split())
    assert {read_run(d)["status"] for d in set(run_dirs(outputs, "finetune")) - set(before)} == {"failed"}


def test_a_resume_reads_the_mode_the_run_saved_not_the_default(cli, outputs: Path) -> None:
    """Probe 144: `resume=RUN finetune.unfreeze=2` of a partial fine-tune was refused as if the run were a linear
    probe (the default mode), and `finetune.backbone_lr_scale=0.5` of a full one alike."""
    for mode, more in (("partial", "finetune.unfreeze=2"), ("full", "finetune.backbone_lr_scale=0.5")):
        assert cli("finetune", *TINY, "model.weights=none", f"finetune.mode={mode}", "finetune.unfreeze=2").code == 0 \
            if mode == "partial" else cli("finetune", *TINY, "model.weights=none", "finetune.mode=full").code == 0
        resumed = cli("finetune", f"resume={run_dirs(outputs, 'finetune')[-1]}", "trainer.epochs=2", more)
        assert resumed.code == 0, resumed.output
    # probe 145: another unfreeze or mode read "last.pt does not hold this run's network", whose fix cannot work
    partial = next(d for d in run_dirs(outputs, "finetune") if read_run(d)["metrics"].get("finetune_mode") == "partial"
                   and not read_run(d).get("resumed_from"))
    for change, start in (("finetune.unfreeze=1", "finetune.mode=partial finetune.unfreeze=1"),
                          ("finetune.mode=linear", "finetune.mode=linear")):
        refused = cli("finetune", f"resume={partial}", "trainer.epochs=2", change)
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"{change} would change which parameters train" in said, refused.output
        assert f"start a new run from its weights (model.weights={partial} {start}, without resume=)" in said
    followed = cli("finetune", f"model.weights={partial}", *start.split())  # the fix, followed
    assert followed.code == 0 and read_run(run_dirs(outputs, "finetune")[-1])["metrics"]["finetune_mode"] == "linear"
    linear = cli("finetune", *TINY, "model.weights=none", "finetune.cache_features=false")  # a last.pt to resume
    assert linear.code == 0
    wrong = cli("finetune", f"resume={run_dirs(outputs, 'finetune')[-1]}", "trainer.epochs=2", "finetune.unfreeze=2")
    assert wrong.code == 2 and "finetune.mode=linear trains the head alone" in " ".join(wrong.stderr.split())


def test_a_trainable_change_on_resume_of_an_interrupted_run_names_a_fix_that_works(
        cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 147: the fix said model.weights=RUN, which an interrupted run (no model.pt yet) refuses."""
    assert cli("finetune", *TINY, "model.weights=none", "finetune.mode=partial", "finetune.unfreeze=2",
               "trainer.epochs=2").code == 130
    ctrl_c_after_the_first_checkpoint()
    stopped = run_dirs(outputs, "finetune")[0]
    refused = cli("finetune", f"resume={stopped}", "finetune.unfreeze=1")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and f"drop finetune.unfreeze=, or finish it first (`cnnlab finetune resume={stopped}`), " \
        "then start a new run from the run that completes it (model.weights=latest:finetune finetune.mode=partial " \
        "finetune.unfreeze=1)" in said, refused.output
    assert cli("finetune", f"resume={stopped}").code == 0  # the fix, followed
    followed = cli("finetune", "model.weights=latest:finetune", "finetune.mode=partial", "finetune.unfreeze=1",
                   *[a for a in TINY if a.startswith("trainer")])
    assert followed.code == 0, followed.output


def test_weights_that_do_not_fit_their_recorded_network_are_one_line(
        cli, outputs: Path, tiny_run: Path, tmp_path: Path) -> None:
    """Probe 138: a model.pt whose kernel was another size than its recorded architecture's made finetune (and
    distill) print "this is a bug in cnnlab" with a traceback, where export and evaluate said one line."""
    payload = torch.load(run_dirs(outputs, "pretrain")[0] / "model.pt", weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.dim() == 4)
    payload["state_dict"][name] = torch.zeros(*payload["state_dict"][name].shape[:2], 1, 1)
    torch.save(payload, tmp_path / "shape.pt")
    result = cli("finetune", *TINY, f"model.weights={tmp_path / 'shape.pt'}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "Traceback" not in result.output and "its weights do not fit a lenet5" in said, \
        result.output
    assert "re-create it with cnnlab" in said and run_dirs(outputs, "finetune") == []
    # probe 140: a hyperparameter search met it in trial 0, leaving a failed run that resume= then misjudged
    space = tmp_path / "myconf" / "space"
    space.mkdir(parents=True)
    (space / "lr.yaml").write_text("kind: hparams\nparams:\n  optim.lr: {type: float, low: 0.01, high: 0.1}\n")
    searched = cli("search", "--config-dir", str(tmp_path / "myconf"), "space=lr", *TINY,
                   f"model.weights={tmp_path / 'shape.pt'}", "search.trials=1", "search.proxy_epochs=1")
    said = " ".join(searched.stderr.split())
    assert searched.code == 2 and "its weights do not fit a lenet5" in said, searched.output
    assert "no finished trial" not in said and run_dirs(outputs, "search") == []


def test_partial_mode_trains_only_the_last_stages(cli, outputs: Path, fake_imagenet) -> None:
    imagenet = fake_imagenet("resnet18")
    result = cli("finetune", "model=resnet18", *SMALL, "finetune.mode=partial", "finetune.unfreeze=1")
    assert result.code == 0, result.output
    state = checkpoint_state(run_dirs(outputs, "finetune")[0])
    assert torch.equal(state["layer3.0.conv1.weight"], imagenet["layer3.0.conv1.weight"])
    assert torch.equal(state["layer1.0.bn1.running_mean"], imagenet["layer1.0.bn1.running_mean"])
    assert not torch.equal(state["layer4.1.conv2.weight"], imagenet["layer4.1.conv2.weight"])
    bad = cli("finetune", "model=resnet18", *SMALL, "finetune.mode=partial", "finetune.unfreeze=9")
    assert bad.code == 2 and "finetune.unfreeze=9" in bad.stderr and "layer4" in bad.stderr


def test_partial_mode_trains_a_network_whose_stages_are_ranges(cli, outputs: Path) -> None:
    # MobileNetV3's stages are ranges ("features.9..12"); the mode used to freeze every parameter.
    result = cli("finetune", "model=mobilenet_v3_small", "model.weights=none", *SMALL, "trainer.epochs=1",
                 "finetune.mode=partial", "finetune.unfreeze=1")
    assert result.code == 0, result.output
    record = only_run(outputs, "finetune")
    assert record["metrics"]["finetune_mode"] == "partial"
    assert record["metrics"]["backbone_lr_scale"] == 1.0  # auto, from random weights: nothing to keep


def test_a_lenet_from_scratch_takes_a_grayscale_set_in_one_channel_as_pretrain_does(cli, outputs: Path,
                                                                                     tmp_path: Path) -> None:
    """`finetune model.weights=none` built a 3-channel LeNet-5 on 1-channel data (the images copied to RGB), where
    `pretrain` on the same data builds a 1-channel one (README: grayscale sets train LeNet-5 in one channel)."""
    write_idx(tmp_path / "data" / "MNIST" / "raw", "train", 48, seed=0)
    write_idx(tmp_path / "data" / "MNIST" / "raw", "t10k", 8, seed=1)
    data = ["dataset=mnist", f"dataset.root={tmp_path / 'data'}", "dataset.download=false", "dataset.image_size=16",
            "dataset.val_fraction=0.25", "trainer.epochs=1", "trainer.batch_size=16"]
    for command, extra in (("pretrain", []), ("finetune", ["model.weights=none", "finetune.mode=full"])):
        assert cli(command, "model=lenet5", *data, *extra).code == 0
        assert checkpoint_state(run_dirs(outputs, command)[-1])["features.0.weight"].shape[1] == 1, command
        assert only_run(outputs, command)["model"]["flops"] == only_run(outputs, "pretrain")["model"]["flops"]


def test_full_mode_from_a_pretrain_run_adopts_its_architecture(cli, outputs: Path) -> None:
    assert cli("pretrain", *TINY).code == 0  # lenet5
    pretrained = checkpoint_state(run_dirs(outputs, "pretrain")[0])
    result = cli("finetune", "model.weights=latest:pretrain", "dataset=digits", "dataset.image_size=16",
                 "finetune.mode=full", "trainer.epochs=1", "trainer.batch_size=64")
    assert result.code == 0, result.output
    record = only_run(outputs, "finetune")
    assert record["model"]["name"] == "lenet5" and record["model"]["num_classes"] == 10
    assert record["source"]["command"] == "pretrain"
    # auto: a pretrained backbone at a tenth of the head's rate, said in the log (its full rate overwrote features)
    assert record["metrics"]["backbone_lr_scale"] == 0.1 and "backbone trains at 0.1 x optim.lr" in result.stderr
    tuned = checkpoint_state(run_dirs(outputs, "finetune")[0])
    assert not torch.equal(tuned["features.0.weight"], pretrained["features.0.weight"])
    runs = len(run_dirs(outputs, "finetune"))
    clash = cli("finetune", *TINY, "model=resnet18", "model.weights=latest:pretrain")
    assert clash.code == 2 and "lenet5 checkpoint but model=resnet18" in clash.stderr
    assert f"model.weights (run {run_dirs(outputs, 'pretrain')[0]}) is a" in " ".join(clash.stderr.split())
    assert len(run_dirs(outputs, "finetune")) == runs  # refused before any work: no `failed` run (probe 68)


@pytest.fixture
def offline_without_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch hub folder and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_home"))

    def offline(*args, **kwargs):
        raise URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


def test_offline_without_imagenet_file_names_file_and_folder(cli, offline_without_imagenet) -> None:
    result = cli("finetune", "model=resnet18", *SMALL)
    assert result.code == 2
    expected = hub_checkpoint_path(tvm.get_weight(MODELS["resnet18"].tv_weights).url)
    assert expected.name in result.stderr and str(expected.parent) in result.stderr
    assert "model.weights=none" in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_folder_is_reported_before_missing_weights(cli, tmp_path: Path,
                                                                    offline_without_imagenet) -> None:
    result = cli("finetune", "model=resnet18", "dataset=imagefolder", f"dataset.root={tmp_path / 'nope'}")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr and "dataset.root=DIR" in result.stderr
    assert "model.weights=none" not in result.stderr


def test_corrupt_weights_file_is_one_clear_line(cli, tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    result = cli("finetune", *TINY, f"model.weights={bad}")
    assert result.code == 2 and "cannot be read safely" in result.stderr and "Traceback" not in result.stderr


# Training losses per epoch of two real 15-epoch fine-tunes of ResNet-18 on 10 % of Fashion-MNIST at optim.lr 0.05
# (docs/benchmarks.md): from a SimCLR backbone at the full rate (test top-1 81.84 %), and from scratch (86.40 %).
SIMCLR_FULL_RATE = [1.124, 2.174, 1.062, 0.980, 0.763, 0.652, 0.646, 0.608, 0.581, 0.577, 0.523, 0.511, 0.491, 0.483,
                    0.486]
FROM_SCRATCH = [1.138, 0.758, 0.608, 0.614, 0.673, 0.512, 0.470, 0.437, 0.394, 0.479, 0.427, 0.372, 0.354, 0.336,
                0.338]


@pytest.mark.parametrize("losses, scale, pretrained, mode, warned", [
    (SIMCLR_FULL_RATE, 1.0, True, "full", True),
    (SIMCLR_FULL_RATE, 0.1, True, "full", False),      # already gentle: the jump is not the backbone rate's
    (SIMCLR_FULL_RATE, 1.0, False, "full", False),     # nothing pretrained to lose
    (SIMCLR_FULL_RATE, 1.0, True, "linear", False),    # a frozen backbone loses nothing
    (FROM_SCRATCH, 1.0, True, "full", False),          # its bumps stay below 1.5 x epoch 1
    (SIMCLR_FULL_RATE[:1], 1.0, True, "full", False),  # one epoch: nothing to compare
])
def test_a_loss_jump_after_epoch_one_of_a_pretrained_backbone_is_a_warning_with_a_gentler_rate(
        losses: list[float], scale: float, pretrained: bool, mode: str, warned: bool) -> None:
    from cnnlab.pipelines.finetune import FinetuneSettings, backbone_overwritten

    settings = FinetuneSettings(mode=mode, unfreeze=1, backbone_lr_scale=scale, new_head=None, augment=True,
                                cache_features=None, standardize_features=None)
    history = [{"epoch": i, "train_loss": loss} for i, loss in enumerate(losses, 1)]
    message = backbone_overwritten(history, settings, pretrained=pretrained)
    assert (message is not None) == warned
    if warned:
        assert message is not None and message.startswith("training loss rose from 1.12 (epoch 1) to 2.17 (epoch 2)")
        assert message.endswith("rerun with finetune.backbone_lr_scale=0.1")
    assert backbone_overwritten([{"epoch": 1}, {"epoch": 2, "train_loss": None}], settings, pretrained=True) is None


def test_weights_from_a_run_fine_tune_on_that_runs_data_unless_dataset_is_given(cli, outputs: Path) -> None:
    """Probe 59: the documented `cnnlab finetune model.weights=latest:pretrain finetune.mode=linear` after a pretrain
    on digits trained on the default synthetic shapes (64 px), exit 0."""
    digits = ["model=lenet5", "trainer.epochs=1", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=digits", "dataset.label_fraction=0.5", *digits).code == 0
    probe = cli("finetune", "model.weights=latest:pretrain", "finetune.mode=linear", "trainer.epochs=1")
    assert probe.code == 0, probe.output
    record = read_run(run_dirs(outputs, "finetune")[-1])
    assert record["dataset"]["name"] == "digits" and record["dataset"]["image_size"] == 32
    assert record["dataset"]["train_size"] == 1437  # the pretrain's label fraction is not the fine-tune's
    fewer = cli("finetune", "model.weights=latest:pretrain", "dataset.label_fraction=0.1", "trainer.epochs=1")
    assert fewer.code == 0, fewer.output
    assert read_run(run_dirs(outputs, "finetune")[-1])["dataset"]["train_size"] == 142
    other = cli("finetune", "model.weights=latest:pretrain", *SMALL[:-1], "trainer.epochs=1")
    assert other.code == 0, other.output
    assert read_run(run_dirs(outputs, "finetune")[-1])["dataset"]["name"] == "synthetic"  # dataset= picks other data
    carved = cli("finetune", "model.weights=latest:pretrain", "dataset.seed=3", "trainer.epochs=1")
    said = " ".join(carved.stderr.split())
    assert carved.code == 2 and "set its val split apart with dataset.seed=0" in said, carved.output
    assert "drop dataset.seed= (the val split the model was trained beside is used)" in said
    assert "split=test" not in said  # probe 60: digits has no test split


def test_weights_whose_image_folder_moved_name_the_folder_and_dataset_root_finds_it(cli, outputs: Path,
                                                                                 tmp_path: Path) -> None:
    """Probe 60: the pretrain's folder moved, then `cnnlab finetune model.weights=latest:pretrain` was a traceback
    (FileNotFoundError while checking its val split) and left a failed run."""
    folder = random_image_folder(tmp_path / "pics", per_class=8)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={folder}", *tiny).code == 0
    moved = folder.rename(tmp_path / "pics_moved")
    result = cli("finetune", "model.weights=latest:pretrain", *tiny)
    assert result.code == 2 and "Traceback" not in result.output, result.output
    assert f"are no longer in {folder} — point to where they are now with dataset.root=DIR" in result.stderr
    assert not (outputs / "finetune").exists()
    found = cli("finetune", "model.weights=latest:pretrain", f"dataset.root={moved}", *tiny)
    assert found.code == 0, found.output
    trained = read_run(run_dirs(outputs, "pretrain")[0])["dataset"]["train_size"]
    assert read_run(run_dirs(outputs, "finetune")[0])["dataset"]["train_size"] == trained < 16  # the same carve


def test_another_folder_holding_some_of_the_training_pictures_is_refused(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 60: `dataset.root=` the trained folder as it is now (pictures added) was accepted; its val split held
    8 of 18 images the model trained on (fine-tune val 83.33 %, evaluate 88.89 %, exit 0). A copy as it was and a
    folder of new pictures pass."""
    import shutil

    folder = random_image_folder(tmp_path / "pics", per_class=8)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={folder}", *tiny).code == 0
    grown = shutil.copytree(folder, tmp_path / "grown")
    extra = random_image_folder(tmp_path / "extra", per_class=4, seed=1)
    for picture in extra.glob("*/*.png"):  # 4 new pictures per class beside the 8
        shutil.copy(picture, grown / picture.parent.name / f"new_{picture.name}")
    for command in (["finetune", "model.weights=latest:pretrain", *tiny],
                    ["evaluate", "source=latest:pretrain", "split=val"]):
        result = cli(*command, f"dataset.root={grown}")
        said = " ".join(result.stderr.split())
        assert result.code == 2 and f"{grown} holds" in said and "is not that folder as it was" in said, result.output
    # probe 61: the same names and pictures, renumbered within a class (file i holds what was file i+1): the carve,
    # drawn by name, put 16 of 18 training images in val (88.89 % for a model at chance)
    renumbered = shutil.copytree(folder, tmp_path / "renumbered")
    for cls in renumbered.iterdir():
        names = sorted(cls.iterdir())
        contents = [p.read_bytes() for p in names]
        for path, content in zip(names, contents[1:] + contents[:1]):
            path.write_bytes(content)
    result = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={renumbered}")
    assert result.code == 2 and "is not that folder as it was" in " ".join(result.stderr.split()), result.output
    # probe 61: split=all refused a folder of training pictures; split=test of a folder whose test/ is one scored it
    layered = tmp_path / "layered"
    random_image_folder(layered / "train", per_class=4, seed=3)
    shutil.copytree(folder, layered / "test")
    result = cli("evaluate", "source=latest:pretrain", "split=test", f"dataset.root={layered}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and f"split=test: 16 pictures in {layered / 'test'} are the model's training" \
        in said, result.output
    copy = shutil.copytree(folder, tmp_path / "copy")
    new = random_image_folder(tmp_path / "new", per_class=8, seed=2)
    for root in (copy, new):
        assert cli("finetune", "model.weights=latest:pretrain", f"dataset.root={root}", *tiny).code == 0, root
    shutil.rmtree(layered / "test")
    random_image_folder(layered / "test", per_class=4, seed=4)  # new pictures: scored
    assert cli("evaluate", "source=latest:pretrain", "split=test", f"dataset.root={layered}").code == 0


def test_a_folder_with_its_own_val_split_and_a_moved_folder_are_judged_by_what_can_be_checked(
        cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 61: a folder with train/ and val/ of its own (the source's val/ beside it) was refused as if its val
    split were carved; a moved training folder with pictures added was taken without a word (79 % for a model at
    chance): the pictures cannot be compared, so the run says its val score may read high."""
    import shutil

    split = tmp_path / "split"
    random_image_folder(split / "train", per_class=8)
    random_image_folder(split / "val", per_class=3, seed=1)
    random_image_folder(split / "test", per_class=3, seed=2)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={split}", *tiny).code == 0
    beside = tmp_path / "beside"  # the source's own val/ beside new training pictures: no training image in val
    random_image_folder(beside / "train", per_class=8, seed=5)
    shutil.copytree(split / "val", beside / "val")
    assert cli("finetune", "model.weights=latest:pretrain", f"dataset.root={beside}", *tiny).code == 0
    leaky = tmp_path / "leaky"  # val/ made of the source's training pictures: refused
    random_image_folder(leaky / "train", per_class=8, seed=6)
    shutil.copytree(split / "train", leaky / "val")
    refused = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={leaky}")
    assert refused.code == 2 and "is not that folder as it was" in " ".join(refused.stderr.split()), refused.output

    flat = random_image_folder(tmp_path / "flat", per_class=8)
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={flat}", *tiny).code == 0
    moved = flat.rename(tmp_path / "moved")  # as it was (names, sizes, times): nothing to say
    quiet = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={moved}")
    assert quiet.code == 0 and "cannot check" not in quiet.output, quiet.output
    extra = random_image_folder(tmp_path / "extra", per_class=4, seed=7)
    for picture in extra.glob("*/*.png"):
        shutil.copy(picture, moved / picture.parent.name / f"new_{picture.name}")
    warned = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={moved}")
    said = " ".join(warned.output.split())
    assert warned.code == 0 and "cnnlab cannot check that its val split holds none of the model's training" in said
    assert any("may read high" in w for w in read_run(run_dirs(outputs, "evaluate")[-1])["warnings"])


def test_a_train_val_copy_whose_val_is_the_runs_carved_split_is_scored(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 152: the run's flat folder copied as train/ + val/, val/ exactly the val split the run carved, was
    refused as a folder whose "val split would hold images the model trained on" (it held none). One of its training
    pictures moved into that val/ is still refused."""
    import shutil

    from torchvision.datasets import ImageFolder

    from cnnlab.data.splits import stratified_split

    flat = random_image_folder(tmp_path / "flat", per_class=8)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={flat}", *tiny).code == 0
    folder = ImageFolder(str(flat))  # the run's carve (dataset.val_fraction 0.2, dataset.seed 0), drawn again
    train_idx, val_idx = stratified_split(folder.targets, 0.2, 0, what="the run's folder")
    split = tmp_path / "split"
    for part, indices in (("train", train_idx), ("val", val_idx)):
        for i in indices:
            path = Path(folder.samples[i][0])
            (split / part / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, split / part / path.parent.name / path.name)
    scored = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={split}")
    assert scored.code == 0, scored.output
    outcomes = (run_dirs(outputs, "evaluate")[-1] / "outcomes.csv").read_text().splitlines()
    assert len(outcomes) - 1 == len(val_idx)  # every val picture scored (a header, then one row each)
    trained = Path(folder.samples[train_idx[0]][0])
    shutil.move(split / "train" / trained.parent.name / trained.name, split / "val" / trained.parent.name / "t.png")
    refused = cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={split}")
    # the count is of its val/ (probe 220: "DIR holds 1 of the pictures" of a copy holding every one of them)
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and f"{split / 'val'} holds 1 of the pictures" in said, refused.output


def test_a_copy_of_the_training_folder_taken_after_it_changed_is_refused(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 153: once the run's flat folder changed, a copy of it as it is now (`cp -r`) was scored: its carve put 9
    of 14 images the model had trained on in "val" (64 % for a model at chance). A copy made with the file times
    before the change (`cp -a`) is the run's pictures as it read them, and is scored."""
    import shutil

    flat = random_image_folder(tmp_path / "flat", per_class=8)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={flat}", *tiny).code == 0
    before = shutil.copytree(flat, tmp_path / "before")  # copy2: file times kept, as cp -a
    extra = random_image_folder(tmp_path / "extra", per_class=3, seed=5)
    for picture in extra.glob("*/*.png"):
        shutil.copy(picture, flat / picture.parent.name / f"new_{picture.name}")
    after = tmp_path / "after"
    shutil.copytree(flat, after, copy_function=shutil.copy)  # cp -r: new file times
    for command in (["evaluate", "source=latest:pretrain", "split=val"], ["finetune", "model.weights=latest:pretrain",
                                                                          *tiny]):
        refused = cli(*command, f"dataset.root={after}")
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and "is not that folder as the run recorded it" in said and "cp -a" in said, said
    assert cli("evaluate", "source=latest:pretrain", "split=val", f"dataset.root={before}").code == 0


def test_naming_the_weights_runs_own_data_keeps_its_split(cli, outputs: Path) -> None:
    """Probe 153: `finetune model.weights=RUN dataset=digits` (the README's form) after a run at
    dataset.val_fraction=0.3 was refused with "drop dataset.val_fraction=" — a key nobody typed."""
    digits = ["model=lenet5", "dataset=digits", "dataset.image_size=16", "trainer.epochs=1",
              "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", *digits, "dataset.val_fraction=0.3").code == 0
    result = cli("finetune", "model.weights=latest:pretrain", *digits, "finetune.mode=full")
    assert result.code == 0, result.output
    record = read_run(run_dirs(outputs, "finetune")[0])
    assert record["dataset"]["config"]["val_fraction"] == 0.3 and record["dataset"]["val_size"] == 540, record



def test_a_copy_of_the_weights_runs_folder_is_told_which_carve_to_type(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 156: `finetune model.weights=RUN dataset=imagefolder dataset.root=COPY` (a cp -a copy of RUN's folder,
    RUN at dataset.seed=5) was refused with "drop dataset.seed=", a key nobody typed; typing the run's works."""
    import shutil

    flat = random_image_folder(tmp_path / "flat", per_class=8)
    tiny = ["model=lenet5", "trainer.epochs=1", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={flat}", "dataset.seed=5", *tiny).code == 0
    copy = shutil.copytree(flat, tmp_path / "copy")
    named = ["finetune", "model.weights=latest:pretrain", "dataset=imagefolder", f"dataset.root={copy}",
             "finetune.mode=full", *tiny]
    refused = cli(*named)
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "add dataset.seed=5, the run's" in said and "drop dataset.seed=" not in said, said
    assert cli(*named, "dataset.seed=5").code == 0  # the fix, followed


def test_a_linear_probe_refuses_a_batch_larger_than_its_labels_before_computing_features(cli, outputs: Path) -> None:
    """Probe 91: `label_fraction=0.2` left 20 images for batch 64: refused only after the features were cached, though
    docs/runs.md says such a run is refused before any work."""
    from helpers import TINY

    assert cli("pretrain", *TINY).code == 0
    result = cli("finetune", *TINY, "model.weights=latest:pretrain", "finetune.mode=linear",
                 "dataset.label_fraction=0.1")
    assert result.code == 2 and "is larger than the training set" in result.stderr, result.output
    assert not any("-dim features for" in line for line in result.output.splitlines())  # the cache's line
    assert not (outputs / "finetune").exists()  # refused before work: no failed run left


def test_a_backbone_at_learning_rate_zero_is_said_not_to_be_frozen(cli, outputs: Path) -> None:
    """Probe 166: `finetune.backbone_lr_scale=0` kept the backbone's weights, but its BatchNorm running statistics
    still moved — not the frozen backbone it reads as, and nothing said so."""
    assert cli("pretrain", *TINY, "model=resnet18").code == 0
    result = cli("finetune", "model.weights=latest:pretrain", "finetune.mode=full", "finetune.backbone_lr_scale=0",
                 *TINY[:5], "model=resnet18", "trainer.epochs=1", "trainer.batch_size=16")
    said = " ".join(result.stderr.split())
    assert result.code == 0 and "BatchNorm layers still update their running statistics" in said, result.output
    assert "finetune.mode=linear" in said


def test_a_plain_state_dict_says_the_normalisation_it_is_read_with(cli, outputs: Path) -> None:
    """Probe 202: a SimCLR backbone's state dict was fine-tuned with ImageNet's mean and std, not the data's it
    trained with, and the log said nothing (distill's says it for a teacher)."""
    from cnnlab.models import create_model

    plain = outputs.parent / "backbone.pth"
    torch.save(create_model("lenet5", 4, 16).state_dict(), plain)
    args = ["model=lenet5", f"model.weights={plain}", *TINY, "trainer.epochs=1", "trainer.max_steps_per_epoch=1"]
    said = " ".join(cli("finetune", *args).output.split())
    assert "model.weights is a plain state dict, which records no normalisation: inputs normalised with mean " \
        "[0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] (ImageNet's, as torchvision's weights expect: " \
        "dataset.mean= and dataset.std= set the ones it trained with" in said, said
    typed = cli("finetune", *args, "dataset.mean=[0.5,0.5,0.5]", "dataset.std=[0.25,0.25,0.25]")
    typed = " ".join(typed.output.split())
    assert "inputs normalised with mean [0.5, 0.5, 0.5], std [0.25, 0.25, 0.25]" in typed and "ImageNet's" not in typed
