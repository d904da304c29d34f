"""The one training engine: `train_one_epoch`, `evaluate` and `fit`, used by every command.

What `fit` adds around the two loops: DDP wrapping, AMP, channels_last, gradient clipping, a
per-step LR schedule, rich progress bars, a resumable `last.pt` written atomically after every
epoch, exact resume (RNG streams included), a clear stop on a non-finite loss, and a history of
per-epoch metrics. Frozen modules (fine-tuning) stay in eval mode so their BatchNorm statistics
and dropout do not change; the BatchNorm statistics of the layers that train are recomputed for the
epoch's final weights before every evaluation and checkpoint (precise BN, see engine/batchnorm.py).
An objective may bring its own per-epoch validation (objectives.Validation: the kNN monitor of self-supervised
pretraining); its metrics then take the place of val_loss/val_acc/val_top5 in the history and the log line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from cnnlab.data.loaders import EpochSampler
from cnnlab.engine.batchnorm import (recompute_bn_stats, refuse_batch_of_one, set_train_mode,
                                     training_batchnorms)
from cnnlab.engine.checkpoint import (NON_FINITE_FIX, STATE_FIX, STATE_MISMATCH_FIX, TRAIN_STATE_FORMAT,
                                     first_non_finite, load_tensors, save_tensors, state_dict_mismatch, unwrap)
from cnnlab.engine import conv_guard
from cnnlab.engine.conv_guard import narrow_convs_in_float32
from cnnlab.engine.metrics import ClassificationMeter
from cnnlab.engine.objectives import Objective, accuracy_name_of, divergence_hint_of, validation_of
from cnnlab.engine.optim import hyperparameters, place_schedule, reapply_hyperparameters
from cnnlab.engine.progress import Progress, make_progress
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime, all_reduce_sum
from cnnlab.engine.seeding import rng_state, set_rng_state
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.interrupts import interrupts_deferred

log = logging.getLogger("cnnlab")
EpochCallback = Callable[[int, dict[str, Any]], None]


class Loaders(NamedTuple):
    """The train loader (shuffled; each rank its share of the global batch) and the val loader (None: no
    validation). A tuple, so `train_loader, val_loader = loaders` reads as before."""

    train: DataLoader
    val: DataLoader | None


@dataclass(frozen=True)
class StateFile:
    """Where fit keeps its resumable state: `path` (last.pt, written after checkpoint_every epochs; None: not
    kept), `resume_from` (a last.pt to continue from) and `extra` (what the caller needs to rebuild its model,
    stored inside)."""

    path: Path | None = None
    resume_from: Path | None = None
    extra: Mapping[str, Any] | None = None
# What fit itself puts in an epoch's history entry; anything else there came from an objective's validation.
_TRAINER_KEYS = {"epoch", "train_loss", "train_acc", "lr", "images_per_s", "train_seconds", "bn_seconds",
                 "val_loss", "val_acc", "val_top5"}


_SAID: set[str] = set()  # notes logged once a process (precise BN, amp=auto's float32): a search trains many


def forget_notes() -> None:
    """Start a run's once-only notes afresh (precise BN, amp=auto's choice, conv_guard's layers): a sweep's jobs run in
    one process, and job 1's run.log said none of them (probe 95). Within a run they stay once (a search's trials)."""
    _SAID.clear()
    conv_guard.forget_notes()


def _what_is_kept(saved_epoch: int | None) -> str:
    """What a stopped run leaves to continue from: the epoch of the last last.pt this fit wrote, or None."""
    return "no checkpoint was written" if saved_epoch is None else f"the checkpoint of epoch {saved_epoch} is kept"


class NonFiniteLoss(CnnlabError):
    """The loss became NaN or infinite; the last good epoch's checkpoint is kept."""


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict[str, Any]:
        """The epoch with the highest val_acc (the kNN accuracy where an objective's validation gives that)."""
        key = next((k for k in ("val_acc", "knn_acc") if any(k in e for e in self.history)), "val_acc")
        return max(self.history, key=lambda e: e.get(key, -1.0)) if self.history else {}


def _steps(loader: DataLoader, cap: int | None) -> int:
    return min(len(loader), cap) if cap else len(loader)


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, runtime: Runtime, *, desc: str = "val",
             progress: Progress | None = None, entropy: bool = False) -> dict[str, Any]:
    """Mean loss (cross-entropy), top-1 `acc` and `top5` (fractions in [0, 1]) and `n` of `model` over `loader`'s
    (image [B, C, H, W], label [B]) batches, in float32 whatever trainer.amp trains in: the val accuracy recorded
    is the saved float32 model's, the one export, evaluate, quantize and the report compare (under bf16 autocast
    it read 0.27 points off on digits). Summed over ranks when each holds a shard. Leaves the model in eval mode.
    `entropy`: the outputs' mean softmax entropy (nats) too. As torchvision's references' `evaluate` (which runs
    without autocast too)."""
    model.eval()
    meter = ClassificationMeter(runtime.device, entropy=entropy)
    progress = progress or make_progress(enabled=False)
    task = progress.add_task(desc, total=len(loader), status="")
    for batch in loader:
        images, targets = runtime.to_device(batch[0]), runtime.to_device(batch[1])
        with torch.autocast(runtime.device.type, enabled=False):  # also inside a caller's autocast block
            logits = model(images)
        loss = nn.functional.cross_entropy(logits.float(), targets)
        meter.update(loss, logits, targets)
        progress.advance(task)
    progress.remove_task(task)
    return {**meter.compute(across_ranks=runtime.distributed), "classes": meter.classes}


def keep_last_batch_for(model: nn.Module, loader: DataLoader, frozen: Sequence[nn.Module] = ()) -> None:
    """Let `loader`'s EpochSampler keep a last batch that gives some rank a single image when `model` trains no
    BatchNorm (none to starve of a second value per channel): under torchrun a LeNet-5 dropped up to 2 × ranks − 1
    images an epoch that one process trained (probe 92). Call before anything counts the loader's batches (the
    schedule's steps)."""
    if isinstance(loader.sampler, EpochSampler) and not training_batchnorms(unwrap(model), frozen):
        loader.sampler.min_share = 1


def _share_of_last_batch(images: int, runtime: Runtime) -> float:
    """world_size × this rank's images / all ranks' images of a step: 1 where the ranks hold equal parts."""
    counts = all_reduce_sum(torch.tensor([float(images)], device=runtime.device))
    return runtime.world_size * images / float(counts[0])


class Trainer:
    """The engine with its recipe and runtime: `fit` runs `train_one_epoch` and `evaluate` for recipe.epochs."""

    def __init__(self, runtime: Runtime, settings: Recipe, *, show_progress: bool = True) -> None:
        self.runtime = runtime
        self.settings = settings
        self.progress = make_progress(enabled=show_progress and runtime.is_main)
        self._saved_epoch: int | None = None  # the epoch of the last last.pt this fit wrote
        self._divergence_hint: str | None = None  # the objective's word on a NaN/inf loss (divergence_hint_of)
        self._accuracy_name = "acc"  # what the train top-1 measures (accuracy_name_of): SimCLR's is contrastive
        self._top5_informative = True  # more than 5 classes (evaluate's `classes`)

    # ------------------------------------------------------------------ one epoch of training
    def train_one_epoch(self, model: nn.Module, objective: Objective, loader: DataLoader,
                        optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler | None,
                        *, epoch: int, scaler: torch.amp.GradScaler | None = None,
                        frozen: Sequence[nn.Module] = ()) -> dict[str, Any]:
        rt, settings = self.runtime, self.settings
        set_train_mode(model, frozen)
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        meter = ClassificationMeter(rt.device)
        accuracy_name = accuracy_name_of(objective)
        total = _steps(loader, settings.max_steps_per_epoch)
        task = self.progress.add_task(f"epoch {epoch + 1} train", total=total, status="")
        trainable = [p for group in optimizer.param_groups for p in group["params"]]
        images, start, last = 0, time.perf_counter(), len(loader) - 1
        lr = optimizer.param_groups[-1]["lr"]  # the epoch's record: the rate of its last step (not the next one's)
        for step, batch in enumerate(loader):
            if step >= total:
                break
            batch = [rt.to_device(t) for t in batch]
            with rt.autocast():
                loss, logits, targets = objective(model, batch)
            # DDP averages the ranks' gradients; their shares of the last batch may differ by an image (EpochSampler
            # pads nothing), so each rank's mean loss is weighed by its share: the gradient of one process's mean
            weighed = loss * _share_of_last_batch(targets.shape[0], rt) if rt.distributed and step == last else loss
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(weighed).backward()
                if settings.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                weighed.backward()
                if settings.grad_clip:
                    nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
                optimizer.step()
            lr = optimizer.param_groups[-1]["lr"]
            if scheduler is not None:
                scheduler.step()
            meter.update(loss, logits, targets)
            images += targets.shape[0]
            if (step + 1) % settings.log_every == 0 or step + 1 == total:
                self._check_finite(meter, epoch, step, optimizer)
                running = meter.compute()
                rate = images / max(time.perf_counter() - start, 1e-9)
                self.progress.update(task, completed=step + 1, status=(
                    f"loss {running['loss']:.3f} {accuracy_name} {running['acc']:.1%} "
                    f"{rate * rt.world_size:.0f} img/s"))
        seconds = time.perf_counter() - start
        self.progress.remove_task(task)
        metrics = meter.compute(across_ranks=True)
        # n is every rank's images (across_ranks): the rate is the whole job's, logged and recorded as it is
        metrics.update(seconds=seconds, images_per_s=metrics["n"] / max(seconds, 1e-9), lr=lr)
        return metrics

    def _check_finite(self, meter: ClassificationMeter, epoch: int, step: int,
                      optimizer: torch.optim.Optimizer) -> None:
        if not meter.loss_is_finite(across_ranks=self.runtime.distributed):
            lr = optimizer.param_groups[-1]["lr"]
            raise NonFiniteLoss(f"the loss became NaN/inf at epoch {epoch + 1}, step {step + 1} (lr {lr:.3g}); "
                                f"{_what_is_kept(self._saved_epoch)}", fix=self._non_finite_fix())

    def _non_finite_fix(self) -> str:
        """NON_FINITE_FIX, less the advice to leave mixed precision where the run is already in float32 and to clip
        gradients where trainer.grad_clip is set; the objective's own hint first (probe 65: SimCLR at
        method.temperature=1e-9 was told to lower optim.lr)."""
        if self.runtime.amp_dtype is not None and not self.settings.grad_clip:
            fix = NON_FINITE_FIX
        else:  # a clip already set is not offered again (probe 185: the hint came back after it was followed)
            ways = ["lower optim.lr",
                    *(["set trainer.grad_clip=1.0"] if not self.settings.grad_clip else []),
                    *(["use trainer.amp=none"] if self.runtime.amp_dtype is not None else [])]
            fix = ways[0] if len(ways) == 1 else ", ".join(ways[:-1]) + " or " + ways[-1]
        return fix if self._divergence_hint is None else f"{self._divergence_hint}; else {fix}"

    def _check_finite_weights(self, model: nn.Module, epoch: int) -> None:
        """Weights that hold NaN/inf though the loss stayed finite (a tap that sees only padding, a kernel's wrong
        gradient): the run would save a model.pt that no command can load."""
        broken = first_non_finite(unwrap(model).state_dict())
        if broken is not None:
            raise NonFiniteLoss(f"the weights hold NaN or infinite values after epoch {epoch + 1} ({broken}), though "
                                f"the loss stayed finite; {_what_is_kept(self._saved_epoch)}",
                                fix=self._non_finite_fix())

    def _check_finite_validation(self, entry: dict[str, Any], lr: float) -> None:
        """A validation loss that is NaN/inf: the weights give non-finite outputs, whatever top-1 the argmax of
        those outputs happens to read (a run at lr 1e6 "scored" chance and completed)."""
        loss = entry.get("val_loss")
        if isinstance(loss, float) and not math.isfinite(loss):
            epoch = int(entry["epoch"]) - 1
            raise NonFiniteLoss(f"the validation loss is {loss} after epoch {epoch + 1} (train loss "
                                f"{entry['train_loss']:.4g}, lr {lr:.3g}): the weights no longer give finite outputs; "
                                f"{_what_is_kept(self._saved_epoch)}", fix=self._non_finite_fix())

    # ------------------------------------------------------------------ the whole run
    def fit(self, model: nn.Module, objective: Objective, loaders: Loaders, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler | None, *, state: StateFile = StateFile(),
            frozen: Sequence[nn.Module] = (), on_epoch_end: EpochCallback | None = None) -> FitResult:
        """Train for settings.epochs, evaluating after each epoch. `model` must already be on the
        runtime's device (Runtime.prepare_model) and `optimizer` built on its parameters."""
        rt, settings = self._runtime_for(model), self.settings
        if settings.epochs < 1:
            raise CnnlabError(f"trainer.epochs={settings.epochs} must be at least 1")
        train_loader, val_loader = loaders
        state_path, resume_from, state_extra = state.path, state.resume_from, dict(state.extra or {})
        scaler = torch.amp.GradScaler(rt.device.type) if rt.needs_grad_scaler else None
        result, start_epoch = FitResult(), 0
        if resume_from is not None:
            steps_per_epoch = _steps(train_loader, settings.max_steps_per_epoch)
            start_epoch, result.history = self._restore(resume_from, model, optimizer, scheduler, scaler,
                                                        steps_per_epoch=steps_per_epoch)
            if start_epoch > settings.epochs:  # probe 98: nothing trained, nothing said, a "completed" run recorded
                with found_before_work():
                    raise CnnlabError(f"{resume_from} holds the state after epoch {start_epoch}, more than "
                                      f"trainer.epochs={settings.epochs}, so resuming would train nothing",
                                      fix=f"resume with trainer.epochs={start_epoch} or more, or drop resume= to "
                                          "start a new run")
            log.info("resuming after epoch %d from %s", start_epoch, resume_from)
            self._saved_epoch = start_epoch  # the state resumed from stays where it is
        refuse_batch_of_one(unwrap(model), train_loader, frozen=frozen, to_device=rt.to_device,
                            world_size=rt.world_size)
        bn_batches = self._precise_bn_batches(model, train_loader, frozen)
        validation = validation_of(objective)
        self._divergence_hint = divergence_hint_of(objective)
        self._accuracy_name = accuracy_name_of(objective)
        train_model = model
        if settings.sync_bn and rt.distributed:
            if rt.device.type != "cuda":
                raise CnnlabError("trainer.sync_bn=true needs CUDA (SyncBatchNorm has no CPU kernel)",
                                  fix="use trainer.sync_bn=false on the CPU")
            # Replaces the BatchNorm modules in place, keeping the same Parameter objects (the optimizer's).
            train_model = nn.SyncBatchNorm.convert_sync_batchnorm(train_model)
        if settings.compile:
            train_model = torch.compile(train_model)  # type: ignore[assignment]
        if rt.distributed:
            ids = [rt.device.index] if rt.device.type == "cuda" else None
            train_model = DistributedDataParallel(train_model, device_ids=ids)
        with self.progress, self._conv_guard(model):
            for epoch in range(start_epoch, settings.epochs):
                with rt.out_of_memory_as_error("trainer.batch_size", (train_loader.batch_size or 1) * rt.world_size):
                    train = self.train_one_epoch(train_model, objective, train_loader, optimizer, scheduler,
                                                 epoch=epoch, scaler=scaler, frozen=frozen)
                self._check_finite_weights(model, epoch)
                entry: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train["loss"], "train_acc": train["acc"],
                                         "lr": train["lr"], "images_per_s": train["images_per_s"],
                                         "train_seconds": train["seconds"]}
                if bn_batches:  # before evaluating and saving: both see the statistics of these weights
                    started = time.perf_counter()
                    recompute_bn_stats(model, train_loader, batches=bn_batches, frozen=frozen, to_device=rt.to_device,
                                       autocast=rt.autocast)
                    entry["bn_seconds"] = time.perf_counter() - started
                if val_loader is not None and validation is not None:
                    entry.update(validation(model, val_loader, rt, self.progress))
                elif val_loader is not None:
                    val = evaluate(model, val_loader, rt, progress=self.progress)
                    entry.update(val_loss=val["loss"], val_acc=val["acc"], val_top5=val["top5"])
                    self._top5_informative = (val.get("classes") or 6) > 5
                self._log_epoch(entry)
                self._check_finite_validation(entry, train["lr"])
                result.history.append(entry)
                with interrupts_deferred():  # the finished epoch is kept whole: its last.pt and its record
                    if state_path is not None and rt.is_main and ((epoch + 1) % settings.checkpoint_every == 0
                                                                  or epoch + 1 == settings.epochs):
                        self._save_state(state_path, epoch + 1, model, optimizer, scheduler, scaler, result.history,
                                         state_extra)
                    if on_epoch_end is not None:
                        on_epoch_end(epoch + 1, entry)
        return result

    def _runtime_for(self, model: nn.Module) -> Runtime:
        """The runtime this fit trains `model` with (Runtime.for_network: no bf16 on the CPU for depthwise networks
        or convolutions on 1x1 maps unless asked for); said once a process."""
        runtime = self.runtime.for_network(model)
        message, why = None, runtime.precision_reason()
        if runtime.float32_reason is not None:
            message = f"trainer.amp=auto: float32, not bf16 — {why} (trainer.amp=bf16 forces it)"
        elif why is not None and runtime.amp_dtype is not None:  # said too (probe 93: a bf16 run said nothing)
            dtype = str(runtime.amp_dtype).replace("torch.", "")
            message = f"trainer.amp=auto: {dtype} autocast on {runtime.device.type} ({why}; trainer.amp=none trains " \
                      "in float32)"
        elif why is not None:
            message = f"trainer.amp=auto: float32 — {why}"
        if message is not None:
            if runtime.is_main and message not in _SAID:
                _SAID.add(message)
                log.info(message)
        self.runtime = runtime
        return runtime

    def _conv_guard(self, model: nn.Module) -> contextlib.AbstractContextManager[Any]:
        """On the CPU under bf16 autocast, convolutions narrower than their stride train in float32
        (engine/conv_guard.py: oneDNN's bf16 weight gradient is wrong there)."""
        rt = self.runtime
        if rt.device.type == "cpu" and rt.amp_dtype == torch.bfloat16:
            return narrow_convs_in_float32(model)
        return contextlib.nullcontext()

    def _precise_bn_batches(self, model: nn.Module, loader: DataLoader, frozen: Sequence[nn.Module]) -> int:
        """How many training batches the precise-BN pass takes after each epoch (0 = off)."""
        settings = self.settings
        layers = len(training_batchnorms(model, frozen))
        if settings.precise_bn is False or not layers:
            return 0
        # The epoch's own first batches: never more than training itself ran (a capped epoch stays capped).
        batches = min(settings.precise_bn_batches, _steps(loader, settings.max_steps_per_epoch))
        message = (f"precise BN: the running statistics of {layers} BatchNorm layers are recomputed over {batches} "
                   "training batches before every evaluation (trainer.precise_bn=false turns this off)")
        if self.runtime.is_main and message not in _SAID:  # once a process: a search trains many candidates
            _SAID.add(message)
            log.info(message)
        return batches

    def _log_epoch(self, entry: dict[str, Any]) -> None:
        if not self.runtime.is_main:
            return
        text = (f"epoch {entry['epoch']}/{self.settings.epochs}  train loss {entry['train_loss']:.4f} "
                f"{self._accuracy_name} {entry['train_acc']:.2%}")
        if "val_acc" in entry:
            text += f"  val loss {entry['val_loss']:.4f} acc {entry['val_acc']:.2%}"
            # 5 classes or fewer: every class is in the top 5, 100 % that says nothing (still recorded; probe 88)
            text += f" top5 {entry['val_top5']:.2%}" if self._top5_informative else ""
        for key, value in entry.items():  # an objective's own validation metrics (knn_acc)
            if key not in _TRAINER_KEYS and isinstance(value, (int, float)):
                text += f"  {key.replace('_', ' ')} " + (f"{value:.2%}" if key.endswith("_acc") else f"{value:.4g}")
        text += f"  {entry['images_per_s']:.0f} img/s  lr {entry['lr']:.3g}"  # already all ranks' (_train_epoch)
        log.info(text)

    def _save_state(self, path: Path, epochs_done: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, history: list[dict[str, Any]], extra: dict[str, Any] | None) -> None:
        self._saved_epoch = epochs_done
        save_tensors(path, {
            "format": TRAIN_STATE_FORMAT,
            "epoch": epochs_done,
            "model": unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng_state(),
            "history": history,
            "extra": extra or {},
        })

    def _restore(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                 scaler: Any, *, steps_per_epoch: int) -> tuple[int, list[dict[str, Any]]]:
        """Load last.pt (weights, optimizer state, schedule, AMP scaler, RNG streams); (epochs done, history).

        This run's settings win over the saved ones: the optimizer's hyperparameters as built from this run's
        config (the saved config plus the overrides given with resume=, e.g. optim.lr after a NaN stop) replace
        the restored values, and the schedule is placed at epochs done x this run's `steps_per_epoch`, so a
        resume with another trainer.batch_size ends where an uninterrupted run with that batch size ends."""
        state = load_tensors(path, "training state", unreadable_fix=STATE_FIX)
        if state.get("format") != TRAIN_STATE_FORMAT:
            raise CnnlabError(f"{path} is not a cnnlab training state", fix="resume from a run folder holding last.pt")
        with found_before_work():
            _check_train_state(state, unwrap(model), path)
        chosen = hyperparameters(optimizer)
        try:
            unwrap(model).load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            with found_before_work():  # before the first step: nothing trained, no failed run is left
                # the network is built from the run's saved settings: a hand-edited .hydra/config.yaml (another
                # model) reads as a foreign last.pt too
                raise CnnlabError(f"{path} does not hold the network and optimizer this run's settings build "
                                  f"({state_dict_mismatch(exc)})", fix=STATE_MISMATCH_FIX) from exc
        overridden = reapply_hyperparameters(optimizer, chosen)
        if overridden:
            log.info("resume: this run's optimizer settings replace the saved ones: %s", ", ".join(
                f"{'lr' if key == 'initial_lr' else key} {old:.6g} → {new:.6g}" if isinstance(old, float) and
                isinstance(new, float) else f"{'lr' if key == 'initial_lr' else key} {old} → {new}"
                for key, (old, new) in overridden.items()))  # 0.01, not 0.010000000000000002 (probe 145)
        epochs = int(state["epoch"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
            saved_step, step = scheduler.last_epoch, epochs * steps_per_epoch
            place_schedule(scheduler, optimizer, step)
            if step != saved_step:
                log.info("resume: the LR schedule continues at step %d (%d epochs x %d steps per epoch now; "
                         "the saved run was at step %d)", step, epochs, steps_per_epoch, saved_step)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        return epochs, list(state.get("history") or [])


def _check_train_state(state: dict[str, Any], model: nn.Module, path: Path) -> None:
    """CnnlabError (STATE_FIX) for a last.pt that loads but cannot be this run's past (probe 212: weights stored as
    integers, all zero, trained on and completed, exit 0; a NaN weight or epoch −5 trained and then blamed optim.lr;
    a `history` of text was an AttributeError): the weights as a checkpoint's are checked (finite, floating where the
    network's are), the epochs done a whole number ≥ 0 and the history one mapping per epoch."""
    from cnnlab.models.weights import state_dtype_problem

    weights, epoch, history = state.get("model"), state.get("epoch"), state.get("history")
    problem = None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        problem = "its `model` is not a state dict of tensors"
    elif (broken := first_non_finite(weights)) is not None:
        problem = f"its weight {broken!r} holds NaN or infinite values"
    elif (wrong := state_dtype_problem(model, weights)) is not None:
        problem = f"its weights do not fit: {wrong}"
    elif isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        problem = f"its `epoch` is {epoch!r}, not a count of epochs done"
    elif history is not None and (not isinstance(history, list) or not all(isinstance(e, dict) for e in history)):
        problem = f"its `history` is a {type(history).__name__}, not one record per epoch"
    if problem is not None:
        raise CnnlabError(f"training state {path} cannot be this run's: {problem}", fix=STATE_FIX)


def read_training_extra(path: Path) -> dict[str, Any]:
    """The pipeline-specific part of a training state (what the run needs to rebuild its model)."""
    return dict(load_tensors(path, "training state", records_only=True).get("extra") or {})
