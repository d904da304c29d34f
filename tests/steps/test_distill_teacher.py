"""The teacher's logits cached for the train set, or not, and the metrics that compare KD with its baseline
(cnnlab/steps/distill_teacher.py, cnnlab/steps/distill_record.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import TensorDataset

from cnnlab.compress.distill import DistillSettings
from cnnlab.context import RunContext
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import FitResult
from cnnlab.errors import CnnlabError
from cnnlab.runs import RunRecord
from cnnlab.steps.distill_record import comparison_metrics
from cnnlab.steps.distill_teacher import teacher_logit_cache

CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
SECTION = {"temperature": 4.0, "alpha": 0.5, "feature": False, "feature_weight": 1.0, "feature_stages": [-1, -1],
           "cache_teacher": "auto", "augment": False, "baseline": False}


def test_the_teacher_logits_are_cached_once_unless_a_step_could_change_them(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    images, labels = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    data = SimpleNamespace(train=TensorDataset(images, labels), random_train_transform=False)
    teacher = torch.nn.Linear(4, 2)
    cache = teacher_logit_cache(ctx, DistillSettings.from_config(SECTION), data, teacher, CPU,  # type: ignore[arg-type]
                                batch_size=2)
    assert cache.used and cache.seconds is not None and cache.seconds >= 0
    image, label, logits = cache.train_set[3]
    assert torch.equal(image, images[3]) and label == 1 and torch.allclose(logits, teacher(images[3]).detach())

    hinted = DistillSettings.from_config({**SECTION, "feature": True})
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        plain = teacher_logit_cache(ctx, hinted, data, teacher, CPU, batch_size=2)  # type: ignore[arg-type]
    assert not plain.used and plain.train_set is data.train and plain.seconds is None
    assert "teacher runs every step: the feature hint needs the teacher's features" in caplog.text
    with pytest.raises(CnnlabError, match="distill.cache_teacher=true cannot be used"):
        teacher_logit_cache(ctx, DistillSettings.from_config({**SECTION, "feature": True, "cache_teacher": True}),
                            data, teacher, CPU, batch_size=2)  # type: ignore[arg-type]


def test_alpha_zero_computes_no_teacher_logits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """distill.alpha=0 (labels alone, the same-budget control) never reads the teacher's logits: no cache pass,
    even when cache_teacher=true asks for one."""
    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    data = SimpleNamespace(train=TensorDataset(torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])),
                           random_train_transform=False)
    never = torch.nn.Linear(4, 2)
    never.register_forward_pre_hook(lambda *_: pytest.fail("the teacher ran"))
    for cache_setting in ("auto", True):
        settings = DistillSettings.from_config({**SECTION, "alpha": 0.0, "cache_teacher": cache_setting})
        with caplog.at_level(logging.INFO, logger="cnnlab"):
            cache = teacher_logit_cache(ctx, settings, data, never, CPU, batch_size=2)  # type: ignore[arg-type]
        assert not cache.used and cache.train_set is data.train and cache.seconds is None
    assert "distill.alpha=0 trains the student on the labels alone" in caplog.text


def test_kd_gain_is_the_kd_student_against_its_baseline() -> None:
    kd, baseline = FitResult([{"val_acc": 0.75}]), FitResult([{"val_acc": 0.5}])
    assert comparison_metrics(kd, None, 0.9, None) == {"teacher_val_acc": 0.9, "teacher_cache_seconds": None}
    assert comparison_metrics(kd, baseline, 0.9, 1.5) == {"teacher_val_acc": 0.9, "teacher_cache_seconds": 1.5,
                                                          "baseline_val_acc": 0.5, "kd_gain": 0.25}


def test_auto_lets_the_teacher_run_per_step_when_the_student_reads_fewer_images_than_a_cache_computes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 70: with trainer.max_steps_per_epoch the student read 1,280 images while the cache ran the teacher on
    all 60,000. `auto` now lets the teacher run per step then; `true` still caches; reading every image caches."""
    from cnnlab.engine.recipe import Recipe

    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    data = SimpleNamespace(train=TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,))),
                           random_train_transform=False)
    teacher = torch.nn.Linear(4, 2)
    capped = Recipe.from_config({"trainer": {"epochs": 2, "batch_size": 4, "max_steps_per_epoch": 3}})
    assert capped.images_read(40) == 24
    assert Recipe.from_config({"trainer": {"epochs": 2, "batch_size": 4}}).images_read(40) == 80
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        auto = teacher_logit_cache(ctx, DistillSettings.from_config(SECTION), data, teacher, CPU,  # type: ignore
                                   batch_size=8, images_read=capped.images_read(40))
    assert not auto.used and auto.train_set is data.train
    assert "the student reads 24 training images in all" in caplog.text
    forced = teacher_logit_cache(ctx, DistillSettings.from_config({**SECTION, "cache_teacher": True}), data,
                                 teacher, CPU, batch_size=8, images_read=24)  # type: ignore[arg-type]
    assert forced.used
    assert teacher_logit_cache(ctx, DistillSettings.from_config(SECTION), data, teacher, CPU,  # type: ignore
                               batch_size=8, images_read=40).used


def test_a_state_dict_teacher_is_read_in_the_datas_class_order_and_a_refusal_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Probe 82: a state-dict teacher trained with another class order was refused as "at chance", with a
    BatchNorm fix; the order it is read in was said nowhere."""
    from cnnlab.steps.distill_teacher import check_teacher_learned

    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    from cnnlab.data.spec import InputSpec

    data = SimpleNamespace(name="imagefolder", classes=["bag", "trouser", "tshirt"], spec=InputSpec(32))
    for kind in ("file", "run"):
        teacher = SimpleNamespace(name="resnet18", weights=SimpleNamespace(kind=kind, description="teacher_sd.pt"))
        with caplog.at_level(logging.INFO), pytest.raises(CnnlabError) as caught:
            check_teacher_learned(ctx, teacher, None, 0.30, data)  # type: ignore[arg-type]
        said = "another class order than imagefolder's classes in order (bag, trouser, tshirt)" in caught.value.fix
        assert said == (kind == "file")
    assert "its 3 outputs are read as imagefolder's classes in order (bag, trouser, tshirt)" in caplog.text
    # nor its normalisation (probe 121: a cnnlab teacher saved as .pth lost 30 points, unsaid)
    assert "normalised with mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] (ImageNet's" in caplog.text
