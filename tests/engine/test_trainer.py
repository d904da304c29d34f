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
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import Loaders, NonFiniteLoss, StateFile, Trainer, set_train_mode
from cnnlab.models import create_model

# Real handwritten digits at 16 px: LeNet-5 learns them in a few seconds.
DATA_CFG = {"name": "digits", "image_size": 16, "val_fraction": 0.2, "seed": 0, "mean": [0.25] * 3, "std": [0.35] * 3,
            "augment": {"hflip": False, "random_crop": True, "crop_scale": [0.75, 1.0], "randaugment": False}}
CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


@pytest.fixture(scope="module")
def data():
    return build_datasets(DATA_CFG, resolve_input_spec(DATA_CFG, None))


def make_job(data, epochs: int = 2, lr: float = 3e-3, seed: int = 0, batch: int = 64):
    seed_everything(seed)
    model = create_model("lenet5", num_classes=10, image_size=16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    train = make_loader(data.train, batch, shuffle=True, seed=seed)
    val = make_loader(data.val, 128, shuffle=False, seed=seed)
    scheduler = build_scheduler({"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.0}, optimizer,
                                steps_per_epoch=len(train), epochs=epochs)
    trainer = Trainer(CPU, Recipe(epochs=epochs, log_every=2), show_progress=False)
    return trainer, model, optimizer, scheduler, train, val


def fit(job, **kwargs):
    trainer, model, optimizer, scheduler, train, val = job
    state = StateFile(kwargs.pop("state_path", None), kwargs.pop("resume_from", None))
    return trainer.fit(model, ClassificationObjective(10), Loaders(train, val), optimizer, scheduler, state=state,
                       **kwargs)


def test_fit_learns_and_records_history(data) -> None:
    job = make_job(data, epochs=3)
    result = fit(job)
    assert [e["epoch"] for e in result.history] == [1, 2, 3]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.final["val_acc"] > 0.8  # 10 classes: chance is 0.1
    assert {"val_top5", "images_per_s", "lr"} <= set(result.final)


def test_an_epochs_lr_is_the_rate_its_last_step_trained_at(data) -> None:
    """Probe 70: the history's lr was read after the schedule's last step, so it was the next epoch's rate (0.0
    for the last epoch of a cosine schedule to zero, 0.0005 printed for a 1-epoch run)."""
    job = make_job(data, epochs=2)
    result = fit(job)
    _, model, _, _, train, _ = job
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    schedule = build_scheduler({"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.0}, optimizer,
                               steps_per_epoch=len(train), epochs=2)
    used = []
    for _ in range(2 * len(train)):
        used.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        schedule.step()
    assert [e["lr"] for e in result.history] == pytest.approx([used[len(train) - 1], used[-1]])
    assert result.history[-1]["lr"] > 0  # the last step's rate, not the end of the schedule


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
        trainer.fit(model, poisoned, Loaders(train, val), optimizer, scheduler)
    assert "optim.lr" in info.value.fix


def test_frozen_modules_keep_their_batchnorm_statistics(data) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 10))
    frozen = [model[0], model[1]]
    for module in frozen:
        module.requires_grad_(False)
    before = model[1].running_mean.clone()
    optimizer = torch.optim.SGD(model[5].parameters(), lr=0.1)
    trainer = Trainer(CPU, Recipe(epochs=1), show_progress=False)
    trainer.fit(model, ClassificationObjective(10), Loaders(make_loader(data.train, 64, shuffle=True, seed=0), None),
                optimizer, None, frozen=frozen)
    assert torch.equal(model[1].running_mean, before)
    set_train_mode(model, frozen)
    assert model.training and not model[1].training


def test_settings_validate_epochs() -> None:
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match="trainer.epochs=-1"):
        Recipe.from_config({"trainer": {"epochs": -1}})
    recipe = Recipe.from_config({"trainer": {"epochs": 0}})  # prune without recovery: a recipe, but nothing to fit
    with pytest.raises(CnnlabError, match="trainer.epochs=0"):
        Trainer(CPU, recipe, show_progress=False).fit(None, None, None, None, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- issue 14
@pytest.fixture(scope="module")
def few(data):
    """192 training and 64 validation digits: enough steps per epoch for the schedule, seconds per run."""
    from types import SimpleNamespace

    from torch.utils.data import Subset

    return SimpleNamespace(train=Subset(data.train, range(192)), val=Subset(data.val, range(64)))


def _interrupted_state(data, tmp_path: Path, **job) -> Path:
    """last.pt of a 3-epoch job stopped (Ctrl-C) right after its first epoch."""
    def stop_after_first(epoch: int, entry: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    state = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(make_job(data, epochs=3, **job), state_path=state, on_epoch_end=stop_after_first)
    return state


def test_resume_with_another_batch_size_ends_the_schedule_where_an_uninterrupted_run_does(few, tmp_path) -> None:
    straight = fit(make_job(few, epochs=3, batch=64))
    state = _interrupted_state(few, tmp_path, batch=32)  # twice the steps per epoch
    resumed = fit(make_job(few, epochs=3, batch=64), resume_from=state)
    assert [e["lr"] for e in resumed.history[1:]] == pytest.approx([e["lr"] for e in straight.history[1:]])
    assert resumed.final["lr"] == pytest.approx(straight.final["lr"])


def test_an_lr_given_on_resume_wins_over_the_restored_one(few, tmp_path, caplog) -> None:
    straight = fit(make_job(few, epochs=3, lr=1e-3))
    state = _interrupted_state(few, tmp_path, lr=3e-2)
    job = make_job(few, epochs=3, lr=1e-3)
    with caplog.at_level("INFO", logger="cnnlab"):
        resumed = fit(job, resume_from=state)
    assert [e["lr"] for e in resumed.history[1:]] == pytest.approx([e["lr"] for e in straight.history[1:]])
    assert {group["initial_lr"] for group in job[2].param_groups} == {1e-3}
    assert "replace the saved ones: lr 0.03 → 0.001" in caplog.text


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)"),
])
def test_out_of_memory_in_a_step_names_the_batch_size_and_a_smaller_one(few, error: BaseException) -> None:
    from cnnlab.errors import CnnlabError

    def exhausting(model: nn.Module, batch):
        raise error

    trainer, model, optimizer, scheduler, train, val = make_job(few, epochs=1)
    with pytest.raises(CnnlabError, match="out of memory on cpu at trainer.batch_size=64") as info:
        trainer.fit(model, exhausting, Loaders(train, val), optimizer, scheduler)
    assert info.value.fix is not None and "trainer.batch_size=32" in info.value.fix


def test_other_runtime_errors_in_a_step_are_not_taken_for_out_of_memory(few) -> None:
    def broken(model: nn.Module, batch):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    trainer, model, optimizer, scheduler, train, val = make_job(few, epochs=1)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        trainer.fit(model, broken, Loaders(train, val), optimizer, scheduler)


def _narrow_conv_job(runtime: Runtime):
    """A stride-2 convolution on 1×1 maps (as MobileNetV2's last stages at 16 px), trained by plain SGD."""
    torch.manual_seed(0)
    images, labels = torch.randn(64, 8, 1, 1), torch.arange(64) % 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=16)
    conv = nn.Conv2d(8, 32, 3, stride=2, padding=1)
    model = runtime.prepare_model(nn.Sequential(conv, nn.Flatten(), nn.Linear(32, 4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    trainer = Trainer(runtime, Recipe(epochs=2, log_every=1), show_progress=False)
    trainer.fit(model, ClassificationObjective(4), Loaders(loader, loader), optimizer, None)
    return conv.weight.detach()


def test_bf16_training_leaves_the_taps_that_see_only_padding_as_float32_training_does() -> None:
    """Under CPU bf16 autocast, oneDNN's weight gradient gave those taps values from uninitialised memory: a run
    "completed" with weights that are garbage at any larger input, or NaN (a model.pt no command could load)."""
    bf16 = _narrow_conv_job(Runtime(device=torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=True))
    fp32 = _narrow_conv_job(CPU)
    padding_only = torch.ones(3, 3, dtype=torch.bool)
    padding_only[1, 1] = False
    # Weight decay and momentum alone move them, identically in both runs.
    assert torch.equal(bf16[:, :, padding_only], fp32[:, :, padding_only])


def test_weights_that_become_nan_stop_the_run_even_when_the_loss_stays_finite(data) -> None:
    trainer, model, optimizer, scheduler, train, val = make_job(data, epochs=1)
    model.register_buffer("broken", torch.tensor([float("nan")]))  # reaches no loss, but would be saved
    with pytest.raises(NonFiniteLoss, match=r"weights hold NaN or infinite values after epoch 1 \(broken\)") as info:
        fit((trainer, model, optimizer, scheduler, train, val))
    # a float32 run is not told to leave mixed precision
    assert "no checkpoint was written" in str(info.value)
    assert info.value.fix == "lower optim.lr or set trainer.grad_clip=1.0"
    # nor one that clips gradients already to clip them (probe 185: the hint came back after it was followed)
    from dataclasses import replace

    trainer.settings = replace(trainer.settings, grad_clip=1.0)
    with pytest.raises(NonFiniteLoss) as clipped:
        fit((trainer, model, optimizer, scheduler, train, val))
    assert clipped.value.fix == "lower optim.lr"
    trainer.runtime = Runtime(device=torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=False)
    with pytest.raises(NonFiniteLoss) as mixed:
        fit((trainer, model, optimizer, scheduler, train, val))
    assert mixed.value.fix == "lower optim.lr or use trainer.amp=none"


def test_a_stop_names_the_checkpoint_that_is_really_kept(data, tmp_path: Path) -> None:
    """With trainer.checkpoint_every=2 a stop in epoch 2 said "the last completed epoch's checkpoint is kept",
    though no last.pt had been written yet."""
    for poisoned_epoch, kept in ((2, "no checkpoint was written"), (3, "the checkpoint of epoch 2 is kept")):
        trainer, model, optimizer, scheduler, train, val = make_job(data, epochs=3)
        trainer.settings = Recipe(epochs=3, log_every=2, checkpoint_every=2)
        steps = [0]

        def poisoned(model: nn.Module, batch, poisoned_epoch=poisoned_epoch):
            steps[0] += 1
            loss, logits, targets = ClassificationObjective(10)(model, batch)
            return (loss * float("nan") if steps[0] > (poisoned_epoch - 1) * len(train) else loss), logits, targets

        state = StateFile(tmp_path / f"last{poisoned_epoch}.pt")
        with pytest.raises(NonFiniteLoss, match=f"epoch {poisoned_epoch},") as info:
            trainer.fit(model, poisoned, Loaders(train, val), optimizer, scheduler, state=state)
        assert kept in str(info.value) and (tmp_path / f"last{poisoned_epoch}.pt").exists() == (poisoned_epoch == 3)


@pytest.mark.parametrize("fast_bf16, said", [
    (True, "trainer.amp=auto: bfloat16 autocast on cpu"),
    (False, "trainer.amp=auto: float32 — this CPU has no bf16 instructions")])
def test_the_log_says_which_precision_amp_auto_picked(cli, outputs: Path, monkeypatch: pytest.MonkeyPatch,
                                                      fast_bf16: bool, said: str) -> None:
    """Probe 93: on a CPU with AVX512-BF16 a LeNet-5 trained in bf16 and the log said nothing (docs/training.md: "the
    run log says which and why once")."""
    from cnnlab.engine import runtime, trainer
    from helpers import TINY

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(trainer, "_SAID", set())
    result = cli("pretrain", *[o for o in TINY if not o.startswith("dataset.image_size")], "dataset.image_size=32")
    assert result.code == 0 and said in " ".join(result.output.split()), result.output
    from helpers import only_run

    reason = only_run(outputs, "pretrain")["environment"]["amp_reason"]  # recorded too (probe 95: null for bf16)
    assert ("has bf16 instructions" if fast_bf16 else "has no bf16 instructions") in reason


def test_every_job_of_a_sweep_logs_its_own_precision_line(cli, outputs: Path) -> None:
    """Probe 95: the once-only notes were once a process, and a sweep's jobs share one: job 1's run.log said nothing."""
    from helpers import TINY, run_dirs

    assert cli("pretrain", "-m", *TINY, "seed=0,1").code == 0
    logs = [(run / "run.log").read_text() for run in run_dirs(outputs, "pretrain")]
    assert len(logs) == 2 and all("trainer.amp=auto:" in log for log in logs)


def test_a_training_state_of_another_network_is_one_line_naming_the_weights_refused_before_work(few,
                                                                                               tmp_path) -> None:
    """Probe 139: a ResNet's last.pt resumed into a LeNet read "does not match this model/optimizer (Error(s) in
    loading state_dict for LeNet5:)" — torch's first line only — with a fix blaming the settings, raised inside
    training, so a failed run was left."""
    from cnnlab.engine.checkpoint import STATE_MISMATCH_FIX, TRAIN_STATE_FORMAT
    from cnnlab.errors import CnnlabError

    state = tmp_path / "last.pt"
    other = torch.nn.Linear(3, 2)
    torch.save({"format": TRAIN_STATE_FORMAT, "epoch": 1, "model": other.state_dict(),
                "optimizer": torch.optim.SGD(other.parameters(), lr=0.1).state_dict()}, state)
    with pytest.raises(CnnlabError) as caught:
        fit(make_job(few, epochs=2), resume_from=state)
    message = caught.value.message
    assert message == (f"{state} does not hold the network and optimizer this run's settings build (missing key(s): "
                       "10, e.g. features.0.weight; unexpected key(s): 2, e.g. weight)")
    assert caught.value.fix == STATE_MISMATCH_FIX
    assert caught.value.before_work  # a refusal: no failed run left
