"""The engine: learning, exact repeatability, exact resume, NaN stop, frozen modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.data import build_datasets, make_loader, resolve_input_spec
from cnnlab.engine.objectives import ClassificationObjective
from cnnlab.engine.optim import build_scheduler
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.trainer import NonFiniteLoss, Trainer, TrainerSettings, set_train_mode
from cnnlab.models import create_model

# Real handwritten digits at 16 px: LeNet-5 learns them in a few seconds.
DATA_CFG = {"name": "digits", "image_size": 16, "val_fraction": 0.2, "seed": 0, "mean": [0.25] * 3, "std": [0.35] * 3,
            "augment": {"hflip": False, "random_crop": True, "crop_scale": [0.75, 1.0], "randaugment": False}}
CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


@pytest.fixture(scope="module")
def data():
    return build_datasets(DATA_CFG, resolve_input_spec(DATA_CFG, None))


def make_job(data, epochs: int = 2, lr: float = 3e-3, seed: int = 0):
    seed_everything(seed)
    model = create_model("lenet5", num_classes=10, image_size=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    train = make_loader(data.train, 64, shuffle=True, seed=seed)
    val = make_loader(data.val, 128, shuffle=False, seed=seed)
    scheduler = build_scheduler({"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.0}, optimizer,
                                steps_per_epoch=len(train), epochs=epochs)
    trainer = Trainer(CPU, TrainerSettings(epochs=epochs, log_every=2), show_progress=False)
    return trainer, model, optimizer, scheduler, train, val


def fit(job, **kwargs):
    trainer, model, optimizer, scheduler, train, val = job
    return trainer.fit(model, ClassificationObjective(10), train, val, optimizer, scheduler, **kwargs)


def test_fit_learns_and_records_history(data) -> None:
    job = make_job(data, epochs=3)
    result = fit(job)
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final["val_acc"] > 0.8  # 10 classes: chance is 0.1
    assert {"val_top5", "images_per_s", "lr"} <= set(result.final)


def test_cpu_run_repeats_exactly(data) -> None:
    first = make_job(data)
    fit(first)
    second = make_job(data)  # re-seeds: the random crops must repeat too
    fit(second)
    for (name, a), (_, b) in zip(first[1].state_dict().items(), second[1].state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_after_interrupt_matches_an_uninterrupted_run(data, tmp_path: Path) -> None:
    straight = make_job(data, epochs=3)
    fit(straight)

    def stop_after_first(epoch: int, entry: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    state = tmp_path / "last.pt"
    interrupted = make_job(data, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, state_path=state, on_epoch_end=stop_after_first)
    assert state.exists()
    resumed = make_job(data, epochs=3)
    torch.manual_seed(123)  # a disturbed RNG: weights, optimizer, schedule and RNG must come from last.pt
    with torch.no_grad():
        for param in resumed[1].parameters():
            param.add_(1.0)
    result = fit(resumed, state_path=state, resume_from=state)
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    for (name, a), (_, b) in zip(straight[1].state_dict().items(), resumed[1].state_dict().items()):
        assert torch.equal(a, b), name


def test_non_finite_loss_stops_with_advice(data) -> None:
    job = make_job(data, epochs=1)

    def poisoned(model: nn.Module, batch):
        loss, logits, targets = ClassificationObjective(10)(model, batch)
        return loss * float("nan"), logits, targets

    trainer, model, optimizer, scheduler, train, val = job
    with pytest.raises(NonFiniteLoss, match="NaN/inf") as info:
        trainer.fit(model, poisoned, train, val, optimizer, scheduler)
    assert "optim.lr" in info.value.fix


def test_frozen_modules_keep_their_batchnorm_statistics(data) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10))
    frozen = [model[0], model[1]]
    for module in frozen:
        module.requires_grad_(False)
    before = model[1].running_mean.clone()
    optimizer = torch.optim.SGD(model[5].parameters(), lr=0.1)
    trainer = Trainer(CPU, TrainerSettings(epochs=1), show_progress=False)
    trainer.fit(model, ClassificationObjective(10), make_loader(data.train, 64, shuffle=True, seed=0), None,
                optimizer, None, frozen=frozen)
    assert torch.equal(model[1].running_mean, before)
    set_train_mode(model, frozen)
    assert model.training and not model[1].training


def test_settings_validate_epochs() -> None:
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match="trainer.epochs=0"):
        TrainerSettings.from_config({"epochs": 0})
