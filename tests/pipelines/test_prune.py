"""`cnnlab prune`: channel and magnitude pruning of a source run, recovery, the record, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from cnnlab.engine.checkpoint import load_model
from cnnlab.models import capture_structure, count_params, create_model
from helpers import TINY, only_run, read_run, run_dirs, run_subprocess

FAST = ["prune.measure=false", "trainer.epochs=1"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny pretrain run (LeNet-5, 16 px, 4 synthetic classes) that every test prunes (read-only), trained once
    in a process of its own."""
    folder = tmp_path_factory.mktemp("prune-source")
    result = run_subprocess("pretrain", *TINY, env={"CNNLAB_OUTPUTS": str(folder / "outputs")}, cwd=folder)
    assert result.code == 0, result.output
    return run_dirs(folder / "outputs", "pretrain")[0]


def _val_accuracy(model_file: Path, source: Path) -> float:
    """Top-1 of a model.pt on the source run's validation images, computed here with plain PyTorch."""
    from omegaconf import OmegaConf

    from cnnlab.data import build_datasets

    model, checkpoint = load_model(model_file)
    data = build_datasets(OmegaConf.create(read_run(source)["dataset"]["config"]), checkpoint.spec)
    images, labels = zip(*(data.val[i][:2] for i in range(len(data.val))))
    with torch.no_grad():
        predicted = model.eval()(torch.stack(images)).argmax(dim=1)
    return float((predicted == torch.as_tensor(labels)).float().mean())


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_channel_pruning_shrinks_records_and_rebuilds(cli, outputs: Path, source: Path) -> None:
    untouched = _fingerprint(source)
    result = cli("prune", f"source={source}", "prune.ratio=0.5", *FAST)
    assert result.code == 0, result.output
    assert _fingerprint(source) == untouched  # the source run is only read

    record = only_run(outputs, "prune")
    metrics, report = record["metrics"], record["prune"]
    assert metrics["params_after"] < 0.5 * metrics["params_before"]
    assert metrics["flops_after"] < metrics["flops_before"]
    assert metrics["params_ratio"] == pytest.approx(metrics["params_before"] / metrics["params_after"])
    # before pruning: the source model on the same images, so the accuracy the source run recorded (above chance)
    assert metrics["acc_before"] == pytest.approx(read_run(source)["metrics"]["val_acc"])
    assert metrics["acc_before"] > 0.25
    assert metrics["val_acc"] == metrics["acc_after_recovery"] and metrics["epochs"] == 1
    # after recovery: the saved model.pt's own accuracy, recomputed here
    assert metrics["val_acc"] == pytest.approx(_val_accuracy(Path(record["run_dir"]) / "model.pt", source))
    assert metrics["acc_drop"] == pytest.approx(metrics["acc_before"] - metrics["val_acc"])
    assert report["method"] == "channel" and report["importance"] == "l2" and report["round_to"] == 8
    assert report["channels"]["classifier.4"] == [4, 4]  # the head keeps its classes
    assert report["channels"]["classifier.0"] == [120, 64]  # 60 kept, rounded to the nearest multiple of 8
    # probe 176: the first convolution (6 channels, over half of LeNet-5's FLOPs) stayed whole without a word
    assert report["kept_whole"] == ["features.0"] and report["channels"]["features.0"] == [6, 6]
    assert "kept whole: features.0 (6 channels) — no wider than prune.round_to=8" in " ".join(result.output.split())
    assert record["source"]["run"] == str(source)
    assert record["dataset"]["config"]["name"] == "synthetic"  # runs derived from this one find the same data
    assert "latency" not in record and "onnx" not in record["artifacts"]  # prune.measure=false

    model, checkpoint = load_model(Path(record["run_dir"]) / "model.pt")
    assert count_params(model) == metrics["params_after"] == record["model"]["params"]
    assert capture_structure(model) != capture_structure(create_model("lenet5", 4, 16))
    assert len(checkpoint.classes) == 4
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    assert "parameters" in result.stdout and "val accuracy" in result.stdout


def test_measure_exports_and_times_dense_and_pruned_in_the_same_run(cli, outputs: Path, source: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    result = cli("prune", f"source={source}", "trainer.epochs=1", "prune.bench_threads=1",
                 "prune.bench_seconds=0")
    assert result.code == 0, result.output
    record = only_run(outputs, "prune")
    run_dir, metrics, latency = Path(record["run_dir"]), record["metrics"], record["latency"]
    assert record["artifacts"]["onnx"] == "model.onnx" and not (run_dir / "dense.onnx").exists()
    assert latency["threads"] == 1 and latency["batch"] == 1 and latency["runtime"] == "onnxruntime"
    assert latency["dense"]["iterations"] >= 30 and latency["pruned"]["threads"] == 1
    rounds = [d / p for d, p in zip(latency["dense_p50_ms_per_round"], latency["pruned_p50_ms_per_round"])]
    assert metrics["speedup"] == pytest.approx(sorted(rounds)[1])  # paired: the median of the per-round ratios
    for name in ("dense", "pruned"):  # one paired session: 3 interleaved rounds, the median round kept
        rounds = latency[f"{name}_p50_ms_per_round"]
        assert len(rounds) == latency["rounds"] == 3 and latency[name]["p50_ms"] == sorted(rounds)[1]
    assert isinstance(latency["stable"], bool)
    assert metrics["onnx_bytes_after"] == (run_dir / "model.onnx").stat().st_size < metrics["onnx_bytes_before"]
    assert "p50 latency ms" in result.stdout

    model, _ = load_model(run_dir / "model.pt")  # the exported file is the pruned model
    image = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model.eval()(image).numpy()
    session = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {"input": image.numpy()})[0], expected, atol=1e-4)


def test_a_pruned_run_is_a_source_like_any_other(cli, outputs: Path, source: Path) -> None:
    assert cli("prune", f"source={source}", *FAST).code == 0
    result = cli("prune", "source=latest:prune", "prune.method=magnitude", "prune.ratio=0.3", *FAST)
    assert result.code == 0, result.output
    first, second = (only_run_dir.joinpath("model.pt") for only_run_dir in run_dirs(outputs, "prune"))
    assert count_params(load_model(second)[0]) == count_params(load_model(first)[0])
    exported = cli("export", f"source={first.parent}")  # export verifies ONNX against the rebuilt pruned model
    assert exported.code == 0, exported.output


def test_magnitude_pruning_reports_sparsity_and_says_it_is_not_faster(cli, outputs: Path, source: Path) -> None:
    result = cli("prune", f"source={source}", "prune.method=magnitude", "prune.ratio=0.7", *FAST)
    assert result.code == 0, result.output
    assert "gain no speed" in result.stdout and "not faster" in result.stderr
    record = only_run(outputs, "prune")
    report, metrics = record["prune"], record["metrics"]
    assert set(report["sparsity"]) == {"features.0", "features.3", "classifier.0", "classifier.2"}  # not the head
    for path, sparsity in report["sparsity"].items():  # per layer (prune.global=false), kept through recovery
        assert sparsity == pytest.approx(0.7, abs=0.02), path
    assert metrics["sparsity"] == pytest.approx(0.7, abs=0.01)
    assert metrics["params_after"] == metrics["params_before"] and "not faster" in report["note"]

    state = torch.load(Path(record["run_dir"]) / "model.pt", weights_only=True)["state_dict"]
    assert not any(key.endswith(("_orig", "_mask")) for key in state)  # permanent: plain weights
    assert (state["classifier.0.weight"] == 0).float().mean() == pytest.approx(0.7, abs=0.01)
    assert (state["classifier.4.weight"] != 0).all()
    # every parameter's non-zero values as saved (LeNet-5 keeps no buffers): probe 222 counted the pruned layers' only
    assert metrics["nonzero_params_after"] == sum(int((value != 0).sum()) for value in state.values())


def test_iterative_steps_train_between_steps(cli, outputs: Path, source: Path) -> None:
    result = cli("prune", f"source={source}", "prune.steps=2", "prune.finetune_epochs=1",
                 "prune.importance=taylor", "prune.taylor_batches=2", "prune.round_to=null", *FAST)
    assert result.code == 0, result.output
    history = only_run(outputs, "prune")["prune"]["steps_history"]
    assert [entry["ratio"] for entry in history] == [0.25, 0.5]
    assert history[0]["params"] > history[1]["params"]
    assert len(history[0]["finetune"]) == 1 and "finetune" not in history[1]


def test_epochs_between_steps_typed_for_a_single_step_are_said_to_do_nothing(cli, outputs: Path,
                                                                               source: Path) -> None:
    """Probe 228: prune.finetune_epochs=4 at the default prune.steps=1 trained trainer.epochs, without a word."""
    result = cli("prune", f"source={source}", "prune.finetune_epochs=4", *FAST)
    assert result.code == 0, result.output
    said = "prune.finetune_epochs=4 is the training between two pruning steps, and prune.steps=1 has none: the " \
           "recovery after pruning trains trainer.epochs=1 — set that instead, or prune.steps=2 or more"
    assert said in " ".join(result.output.split()) and said in only_run(outputs, "prune")["warnings"]
    assert only_run(outputs, "prune")["metrics"]["epochs"] == 1


def test_no_recovery_with_zero_epochs(cli, outputs: Path, source: Path) -> None:
    assert cli("prune", f"source={source}", "prune.measure=false", "trainer.epochs=0").code == 0
    metrics = only_run(outputs, "prune")["metrics"]
    assert metrics["acc_after_recovery"] is None and metrics["val_acc"] == metrics["acc_after_prune"]


def test_a_prune_stopped_mid_work_records_its_network_and_data(cli, outputs: Path, source: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 228: a prune stopped by Ctrl-C during its recovery training recorded `model: null, dataset: null`, and
    `cnnlab list runs` showed blank cells, where an interrupted training names both."""
    from cnnlab.pipelines import prune

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prune, "prune_in_steps", stopped)
    assert cli("prune", f"source={source}", *FAST).code == 130
    record = only_run(outputs, "prune")
    assert record["status"] == "interrupted" and record["model"]["name"] == "lenet5"
    assert record["dataset"] == read_run(source)["dataset"]  # the same images


def test_a_sweep_across_importances_says_taylor_batches_in_the_jobs_that_do_not_read_it(
        cli, outputs: Path, source: Path) -> None:
    """Probe 144: `-m prune.importance=l2,taylor prune.taylor_batches=4` failed at job #0, where finetune's sweep across
    modes is let through with a warning; in a sweep that varies neither, each job is refused, as one run is."""
    result = cli("prune", "-m", f"source={source}", *FAST, "prune.importance=l2,taylor", "prune.taylor_batches=4")
    assert result.code == 0, result.output
    l2 = next(read_run(d) for d in run_dirs(outputs, "prune") if read_run(d)["prune"]["importance"] == "l2")
    assert any("prune.taylor_batches=4 applies to prune.importance=taylor" in w and "not read by this job" in w
               for w in l2["warnings"])
    dead = cli("prune", "-m", f"source={source}", *FAST, "prune.importance=l1,l2", "prune.taylor_batches=4")
    assert dead.code == 2 and "applies to prune.importance=taylor" in dead.stderr  # probe 145: no job reads it
    same = cli("prune", "-m", f"source={source}", *FAST, "seed=0,1", "prune.taylor_batches=4")
    assert same.code == 2 and "prune.taylor_batches=4 applies to prune.importance=taylor" in same.stderr
    assert [read_run(d)["status"] for d in run_dirs(outputs, "prune")].count("completed") == 2  # refused jobs fail


def test_seeds_of_a_prune_no_seed_changes_report_as_one_model(cli, outputs: Path, source: Path) -> None:
    """Probe 144: `prune -m seed=0,1 trainer.epochs=0` wrote one model.pt twice, but each run's model.onnx names the
    run in its metadata: the report, keyed on every digest, read two replicates ("± 0.00", a zero-width interval)."""
    from cnnlab.report import build_report

    timed = ["prune.bench_seconds=0.1"]  # measured: an ONNX file each
    assert cli("prune", "-m", f"source={source}", "trainer.epochs=0", *timed, "seed=0,1").code == 0
    runs = [read_run(d) for d in run_dirs(outputs, "prune")]
    assert len({r["digests"]["model"] for r in runs}) == 1 and len({r["digests"]["onnx"] for r in runs}) == 2
    [group] = [g for g in build_report(outputs).all_seed_groups if g.first.command == "prune"]
    assert group.n == 2 and group.seeds == 1 and group.val.std is None


def test_a_pruned_network_is_scored_and_saved_with_its_own_batchnorm_statistics(cli, outputs: Path) -> None:
    """Each kept channel kept the dense network's BatchNorm statistics while its inputs lost channels: the pruned
    model was scored (MobileNetV2 on Fashion-MNIST: 10.00 %, chance, on three seeds) and, with trainer.epochs=0,
    saved so. Now the statistics are recomputed over training batches first, as training does before scoring."""
    tiny_bn = [*TINY, "model=mobilenet_v2"]
    assert cli("pretrain", *tiny_bn).code == 0
    dense_run = only_run(outputs, "pretrain")
    assert cli("prune", f"source={dense_run['run_dir']}", "prune.ratio=0.5", "prune.measure=false",
               "trainer.epochs=0").code == 0
    record = only_run(outputs, "prune")
    dense, _ = load_model(Path(dense_run["run_dir"]) / "model.pt")
    pruned, _ = load_model(Path(record["run_dir"]) / "model.pt")
    dense_bn = {name: m for name, m in dense.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    for name, layer in pruned.named_modules():
        if isinstance(layer, torch.nn.BatchNorm2d) and layer.num_features < dense_bn[name].num_features:
            sliced = set(dense_bn[name].running_var.tolist())
            assert not set(layer.running_var.tolist()) <= sliced, name  # recomputed, not the dense ones kept
    assert record["metrics"]["bn_recalibration_images"] > 0
    assert record["metrics"]["acc_after_prune"] == pytest.approx(_val_accuracy(Path(record["run_dir"]) / "model.pt",
                                                                                Path(dense_run["run_dir"])))
    # probe 82: ratio 0 removes nothing, and the statistics' recomputation alone read as "pruning −0.83 points"
    assert cli("prune", f"source={dense_run['run_dir']}", "prune.ratio=0", "prune.measure=false",
               "trainer.epochs=0").code == 0
    [kept] = [d for d in run_dirs(outputs, "prune") if "prune.ratio=0" in read_run(d)["overrides"]]
    metrics = read_run(kept)["metrics"]
    assert metrics["bn_recalibration_images"] == 0 and metrics["acc_drop"] == 0.0


def test_a_last_training_batch_of_one_image_is_left_out_not_a_traceback(cli, outputs: Path) -> None:
    """17 images at batch 16 left a last batch of one: BatchNorm raised "Expected more than 1 value per channel
    when training" — a traceback in pretrain's first epoch and in prune's statistics pass."""
    one_over = [*TINY, "model=mobilenet_v2", "dataset.train_size=17"]
    result = cli("pretrain", *one_over)
    assert result.code == 0, result.output
    source = only_run(outputs, "pretrain")["run_dir"]
    result = cli("prune", f"source={source}", "prune.ratio=0.5", "prune.measure=false", "trainer.epochs=1",
                 "trainer.batch_size=16")
    assert result.code == 0, result.output
    assert only_run(outputs, "prune")["metrics"]["bn_recalibration_images"] > 0


@pytest.mark.parametrize(("override", "message"), [
    ("prune.ratio=1.0", "prune.ratio=1.0 is not allowed: prune.ratio takes a number in [0, 1)"),
    ("prune.ratio=-0.2", "prune.ratio=-0.2 is not allowed"),
    ("prune.method=lottery", "prune.method=lottery is not a pruning method"),
    ("prune.importance=hessian", "prune.importance=hessian is not an importance"),
    # exact widths: floor(6 x 0.1) = 0 (with round_to=8, the default, a 6-channel layer stays whole)
    ("prune.round_to=null prune.ratio=0.9", "would remove all 6 channels of layer 'features.0'"),
    # probe 196: the fix named no model ("cnnlab inspect model=NAME")
    ("prune.ignore=[features.7]", "the model has no layer 'features.7' — did you mean features.3? list the "
                                  "layers with `cnnlab inspect model=lenet5`"),
    # probe 73: a pooling layer was offered by "did you mean" and ignoring it pruned as before, without a word
    ("prune.ignore=[features.5]", "layer 'features.5' (MaxPool2d) holds no Conv2d or Linear"),
    ("prune.method=magnitude prune.ignore=[features.2]", "layer 'features.2' (MaxPool2d) holds no Conv2d"),
    ("prune.ignore=[classifier.4]", "classifier.4 is the classifier head of lenet5, which pruning always keeps"),
    ("model=resnet18", "model=resnet18 would be ignored"),
])
def test_bad_input_is_one_line_and_leaves_the_source_alone(cli, outputs: Path, source: Path, override: str,
                                                            message: str) -> None:
    untouched = _fingerprint(source)
    result = cli("prune", f"source={source}", *override.split(), *FAST)
    assert result.code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
    assert _fingerprint(source) == untouched
    assert not any((d / "model.pt").exists() for d in run_dirs(outputs, "prune"))


def test_a_ratio_that_empties_a_layer_is_refused_before_the_data_is_read(cli, outputs: Path, source: Path) -> None:
    """Probe 200: with per-layer ranking the widths say it up front; in two steps it was refused after step 1 and its
    recovery training."""
    result = cli("prune", f"source={source}", "prune.round_to=null", "prune.ratio=0.9", "prune.steps=2", *FAST)
    assert result.code == 2 and "would remove all 6 channels of layer 'features.0'" in result.stderr, result.output
    assert "dense:" not in result.output and "step 1/2" not in result.output and "epoch" not in result.output
    assert run_dirs(outputs, "prune") == []  # a setting's refusal leaves no run folder


def test_missing_source_is_a_clear_error(cli) -> None:
    result = cli("prune", *FAST)
    assert result.code == 2 and "needs a model to work on" in result.stderr
    result = cli("prune", "source=latest:finetune", *FAST)
    assert result.code == 2 and "Traceback" not in result.output


def _photos(root: Path) -> Path:
    """root/photos/{train,val}/{cat,dog}/*.png: 16 random 20 px images per split."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            folder = root / "photos" / split / name
            folder.mkdir(parents=True)
            for i in range(8):
                Image.fromarray((rng.random((20, 20, 3)) * 255).astype("uint8")).save(folder / f"{i}.png")
    return root / "photos"


def test_a_relative_dataset_root_chains_from_another_folder_and_moved_data_has_a_working_fix(
        cli, outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    elsewhere.mkdir()
    photos = _photos(here)
    small = [*FAST, "trainer.batch_size=8"]
    monkeypatch.chdir(here)
    assert cli("pretrain", "dataset=imagefolder", "dataset.root=./photos", "dataset.image_size=16", "model=lenet5",
               "trainer.epochs=1", "trainer.batch_size=8").code == 0
    assert only_run(outputs, "pretrain")["dataset"]["config"]["root"] == str(photos)  # recorded absolute

    monkeypatch.chdir(elsewhere)
    result = cli("prune", "source=latest:pretrain", *small)
    assert result.code == 0, result.output

    moved = photos.rename(tmp_path / "moved")  # the data is gone from where the run recorded it
    failed = cli("prune", "source=latest:pretrain", *small)
    assert failed.code == 2 and "with dataset.root=DIR" in failed.stderr
    # the fix as written, and the forced forms older docs gave (a plain key edits the source's recorded dataset)
    for override in (f"dataset.root={moved}", f"++dataset.root={moved}", f"+dataset.root={moved}"):
        fixed = cli("prune", "source=latest:pretrain", override, *small)
        assert fixed.code == 0, fixed.output



def test_a_recovery_whose_loss_blew_up_is_warned_of() -> None:
    """Probe 196: a pruned linear probe of an untrained backbone recovered at train loss 74 (an even guess over 10
    classes scores 2.30) to 58 % against 86 % dense, without a word."""
    from cnnlab.pipelines.prune import recovery_blew_up

    blown = [{"train_loss": 74.2, "val_acc": 0.5833}]
    said = recovery_blew_up(blown, 10, 0.8611, 0.1, None)
    assert said is not None and said.startswith("the recovery training's loss blew up: train loss 74.2 in epoch 1, "
                                                "where an even guess over the 10 classes scores 2.3; val top-1 "
                                                "58.33% after recovery against 86.11% dense")
    assert said.endswith("lower prune.lr_scale (now 0.1; prune.lr_scale=0.01), and set trainer.grad_clip=1.0 besides")
    assert recovery_blew_up(blown, 10, 0.8611, 0.1, 1.0).endswith("lower prune.lr_scale (now 0.1; "
                                                                  "prune.lr_scale=0.01)")  # clipped already
    # probe 200: at optim.lr=1 and prune.lr_scale=10 clipping alone still blew up; the scale 0.1 recovered
    assert recovery_blew_up(blown, 10, 0.8611, 10, None, lr=1.0).endswith(
        "lower prune.lr_scale (now 10: it trains at optim.lr × prune.lr_scale = 10; prune.lr_scale=1 trains at 1), and "
        "set trainer.grad_clip=1.0 besides")
    assert recovery_blew_up([{"train_loss": 74.2, "val_acc": 0.87}], 10, 0.8611, 0.1, None) is None  # it recovered
    assert recovery_blew_up([{"train_loss": 5.0, "val_acc": 0.5}], 10, 0.8611, 0.1, None) is None  # a hard start
    assert recovery_blew_up([], 10, 0.8611, 0.1, None) is None  # trainer.epochs=0: no recovery
    assert recovery_blew_up([{"train_loss": 3.0, "val_acc": 0.2}], 2, 0.9, 0.1, None) is not None  # 3 × ln 2 = 2.08


def test_a_layer_kept_whole_by_its_coupling_is_said_so_under_either_ranking(caplog: pytest.LogCaptureFixture) -> None:
    """Probe 200: ResNet-18's block outputs, tied by the residual sums to conv1 (left out), were kept whole "because
    prune.global=true ranked all of their channels above the cut"; the coupling kept them."""
    import logging
    from dataclasses import replace
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from cnnlab.compress.pruning import layer_widths
    from cnnlab.compress.pruning.settings import PruneSettings
    from cnnlab.conftree import CONF_DIR
    from cnnlab.data.spec import InputSpec
    from cnnlab.pipelines.prune import kept_whole

    section = OmegaConf.load(CONF_DIR / "command" / "prune.yaml").prune
    for global_ranking in (True, False):
        settings = replace(PruneSettings.from_config(section), ratio=0.5, global_ranking=global_ranking,
                           ignore=("conv1",), round_to=None)
        model = create_model("resnet18", 4, 16)
        keep = ("fc", *settings.ignore)
        pruner = settings.make_pruner(model, keep, InputSpec(size=16))
        stream = {f"layer1.{block}.conv2" for block in (0, 1)}  # added to conv1's output
        assert {pruner.coupled_to_kept[layer] for layer in stream} == {"conv1"}
        assert "layer1.0.conv1" not in pruner.coupled_to_kept
        before = layer_widths(model)
        pruner.step()
        with caplog.at_level(logging.INFO, logger="test"):
            caplog.clear()
            whole = kept_whole(SimpleNamespace(log=logging.getLogger("test")), settings, before, layer_widths(model),
                               keep, coupled=pruner.coupled_to_kept)
        assert stream <= set(whole)
        said = " ".join(caplog.text.split())
        assert "layer1.0.conv2 (64 channels)" in said and "tied to those of conv1, kept whole, by a residual" in said
        assert "fc" not in said  # probe 204: every kept layer was named, the head too
        assert "ranked all of their channels above the cut" not in said or global_ranking
