"""Where training augments (steps/augment_on.py): auto, workers, device, and what device cannot do."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cnnlab.data.transforms import Augment
from cnnlab.data.views import ViewSettings
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError
from cnnlab.steps.augment_on import place_augmentation, supervised_views
from helpers import QUANTIZE_QUICK_TIMING, TINY, read_run, run_dirs

CPU, CUDA = (SimpleNamespace(device=torch.device(kind)) for kind in ("cpu", "cuda"))
BILINEAR, BICUBIC = (SimpleNamespace(interpolation=kind) for kind in ("bilinear", "bicubic"))
FIXED = SimpleNamespace(name="fashion_mnist", stored_size=28, spec=BILINEAR)
PHOTOS = SimpleNamespace(name="imagefolder", stored_size=None, spec=BILINEAR)
SMOOTH = SimpleNamespace(name="cifar10", stored_size=32, spec=BICUBIC)
VIEWS = ViewSettings()


def test_auto_augments_on_the_device_only_when_training_on_cuda() -> None:
    assert place_augmentation("auto", CUDA, FIXED, VIEWS, 256).where == "device"
    on_cpu = place_augmentation("auto", CPU, FIXED, VIEWS, 256)
    assert on_cpu.where == "workers" and "training on cpu" in on_cpu.why


@pytest.mark.parametrize("data, views, batch, why", [
    (PHOTOS, VIEWS, 256, "reads each image at its own size"),
    (FIXED, "dataset.augment.randaugment=true: RandAugment runs only in the workers' path", 256,
     "RandAugment runs only"),
    (FIXED, VIEWS, 1, "a batch of one image"),
    (SMOOTH, VIEWS, 256, "resamples bilinearly"),
])
def test_what_the_device_cannot_do_falls_back_under_auto_and_is_refused_when_asked(data, views, batch, why) -> None:
    fallback = place_augmentation("auto", CUDA, data, views, batch)
    assert fallback.where == "workers" and why in fallback.why
    with pytest.raises(CnnlabError, match=why) as caught:
        place_augmentation("device", CUDA, data, views, batch)
    assert "trainer.augment_on=workers" in caught.value.fix


def test_asked_for_it_is_done_where_asked() -> None:
    assert place_augmentation("device", CPU, FIXED, VIEWS, 2).record() == {"where": "device",
                                                                           "why": "trainer.augment_on=device"}
    assert place_augmentation("workers", CUDA, FIXED, VIEWS, 256).where == "workers"


def test_supervised_augmentation_as_one_batched_view() -> None:
    views = supervised_views(Augment(hflip=True, random_crop=True, crop_scale=(0.8, 1.0)))
    assert views == ViewSettings(crop_scale=(0.8, 1.0), hflip=True, color_jitter=0.0, grayscale_p=0.0, blur=False)
    assert "random_crop=false" in supervised_views(Augment(hflip=True))  # a plain resize: workers only
    assert "randaugment=true" in supervised_views(Augment(random_crop=True, randaugment=True))


@pytest.mark.parametrize("value", ["auto", "WORKERS", "device", None])
def test_the_setting_takes_its_choices(value) -> None:
    assert Recipe.from_config({"trainer": {"augment_on": value}}).augment_on in ("auto", "workers", "device")


def test_an_unknown_setting_names_the_choices() -> None:
    with pytest.raises(CnnlabError, match="trainer.augment_on=gpu is not a choice") as caught:
        Recipe.from_config({"trainer": {"augment_on": "gpu"}})
    assert "trainer.augment_on=auto" in caught.value.fix


def test_every_classifier_training_augments_where_trainer_augment_on_says(cli, outputs: Path) -> None:
    """trainer.augment_on is the trainer's: finetune, prune's recovery and QAT train on whole batches augmented on
    the device as pretrain does (it was pretrain's method.augment_on, and they augmented per image only); distill
    and search, which augment per image only, refuse `device` instead of ignoring it."""
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim=adamw", "optim.lr=0.003").code == 0  # a teacher
    source = run_dirs(outputs, "pretrain")[0]
    for command in (["finetune", f"model.weights={source}", "finetune.mode=full"],
                    ["prune", f"source={source}", "prune.ratio=0.5", "prune.measure=false"],
                    ["quantize", f"source={source}", "quantize.mode=qat", *QUANTIZE_QUICK_TIMING]):
        result = cli(*command, "trainer.epochs=1", "trainer.augment_on=device")
        assert result.code == 0, (command, result.output)
        record = read_run(run_dirs(outputs, command[0])[-1])
        assert record["environment"]["augment_on"] == {"where": "device", "why": "trainer.augment_on=device"}
        assert "augmentation: whole batches on the device" in result.stderr
    history = read_run(run_dirs(outputs, "finetune")[0])["metrics"]["history"]
    assert all(math.isfinite(epoch["train_loss"]) for epoch in history)

    distill = ["distill", f"teacher.weights={source}", "student=lenet5", "trainer.epochs=1", "distill.augment=true"]
    refused = cli(*distill, "trainer.augment_on=device")
    assert refused.code == 2 and "trainer.augment_on=device cannot augment here: cnnlab distill augments per " \
        "image" in " ".join(refused.stderr.split()), refused.output
    assert not (outputs / "distill").exists()  # before any work
    assert cli(*distill).code == 0  # the fix it names: auto (the default) augments in the workers
    assert read_run(run_dirs(outputs, "distill")[0])["environment"]["augment_on"]["where"] == "workers"
    unaugmented = cli(*distill[:-1], "trainer.augment_on=device")  # distill.augment=false: nothing to augment
    assert unaugmented.code == 2 and "distill.augment=false" in " ".join(unaugmented.stderr.split())


def test_the_setting_of_the_last_version_is_named_where_it_moved(cli) -> None:
    result = cli("pretrain", *TINY, "method.augment_on=device")
    assert result.code == 2 and "did you mean trainer.augment_on?" in result.stderr, result.output


def test_a_linear_probe_on_cached_features_says_nothing_is_augmented(cli, outputs: Path, tiny_run: Path) -> None:
    """Probe 71: `finetune.mode=linear trainer.augment_on=device` trained on cached, unaugmented features without a
    word, and run.json's environment.augment_on was empty."""
    linear = ["finetune", "model.weights=latest:pretrain", "finetune.mode=linear", "trainer.epochs=1"]
    refused = cli(*linear, "trainer.augment_on=device")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "computed once and not augmented" in said and "finetune.augment=true" in said
    assert not (outputs / "finetune").exists()
    assert cli(*linear).code == 0
    assert read_run(run_dirs(outputs, "finetune")[0])["environment"]["augment_on"]["where"] == "none"
    followed = cli(*linear, "trainer.augment_on=device", "finetune.augment=true")  # the fix it names
    assert followed.code == 0, followed.output
    assert read_run(run_dirs(outputs, "finetune")[-1])["environment"]["augment_on"]["where"] == "device"


def test_a_training_that_draws_no_augmentation_says_none(cli, outputs: Path) -> None:
    """Probe 103: `finetune.augment=false` (or flips and crops both off) trained on plain images, and the log and
    run.json said "augmentation: per image, as the DataLoader reads it"."""
    plain = cli("pretrain", *TINY, "dataset.augment.hflip=false", "dataset.augment.random_crop=false")
    assert plain.code == 0 and "augmentation: none (trainer.augment_on=auto: the training images are not augmented" \
        in " ".join(plain.stderr.split()), plain.output
    assert read_run(run_dirs(outputs, "pretrain")[0])["environment"]["augment_on"]["where"] == "none"
    full = cli("finetune", "model.weights=latest:pretrain", "finetune.mode=full", "finetune.augment=false",
               "trainer.epochs=1")
    assert full.code == 0 and "per image" not in full.stderr, full.output
    assert read_run(run_dirs(outputs, "finetune")[0])["environment"]["augment_on"]["where"] == "none"
