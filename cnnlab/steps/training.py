"""Supervised training shared by every command that trains (pretrain, finetune, and the recovery or
baseline runs of prune, quantize-aware training and distill): runtime setup, loaders, optimizer and
schedule, and the engine's `fit` with its per-epoch logs (metrics.csv, curves.png, TensorBoard: engine/epoch_log.py)."""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, make_loader
from cnnlab.data.loaders import EpochSampler
from cnnlab.engine.batchnorm import recompute_bn_stats, set_bn_momentum
from cnnlab.engine.checkpoint import STATE_FIX, load_tensors
from cnnlab.engine.epoch_log import EpochLog, EpochLogFiles, EpochLogSettings
from cnnlab.engine.objectives import ClassificationObjective, Objective
from cnnlab.engine.optim import build_optimizer, build_scheduler, param_groups, warmup_plan
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import (EpochCallback, FitResult, Loaders, StateFile, Trainer, evaluate,
                                   keep_last_batch_for)
from cnnlab.steps.recording import record_warning
from cnnlab import environment
from cnnlab.environment import core_share
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.wording import counted
from cnnlab.fileio import atomic_path
from cnnlab.runs import RUN_ID, STATE_FILE



def setup_runtime(cfg: Mapping[str, Any], recipe: Recipe) -> Runtime:
    """Seed every RNG with recipe.seed and pick the device (cfg.device), AMP and memory format (the recipe's)."""
    seed_everything(recipe.seed)
    return Runtime.from_config({"device": cfg.get("device"),
                                "trainer": {"amp": recipe.amp, "channels_last": recipe.channels_last}})


def loader_workers(recipe: Recipe, data: DataBundle) -> int:
    """trainer.workers, or by default: none for in-memory tensors; for files, this job's share of the cores
    (environment.core_share) less one for the training threads, at most 4 — so jobs side by side never start
    workers for cores another job holds."""
    if recipe.workers is None:
        return 0 if data.in_memory else max(0, min(4, core_share() - 1))
    cores = int(environment.cpu_info()["usable_cores"] or 1)
    if recipe.workers > cores:  # as asked, but said once, in cnnlab's words (torch's UserWarning is not shown)
        logging.getLogger("cnnlab").warning(
            "trainer.workers=%d starts more loader processes than the %d usable cores; they take turns, and each "
            "holds a copy of the dataset's state (trainer.workers=auto picks the job's share)", recipe.workers, cores)
    return recipe.workers


@found_before_work()
def check_batch(recipe: Recipe, runtime: Runtime, images: int) -> None:
    """CnnlabError for a batch larger than the `images` of the training set or one that does not split over the
    ranks: what make_loaders refuses, for a command to refuse before its work (a linear probe's feature cache:
    probe 91)."""
    batch, world = recipe.batch_size, runtime.world_size
    if batch < 1:
        raise CnnlabError(f"trainer.batch_size={batch} must be at least 1")
    if 0 < images < world:  # probe 148: no batch splits over the ranks, and the batch fix offered one above `images`
        raise CnnlabError(f"the training set ({counted(images, 'image')}) is smaller than the {world} processes: "
                          "each needs at least one image a step",
                          fix=f"start at most {images} (torchrun --nproc_per_node={images}), or add training images")
    if 0 < images < batch:  # refused, not clamped: a whole-set batch is what runs out of memory
        fits = min(64, images) // world * world  # one that splits over the ranks (probe 92: 51 offered to 2 ranks)
        raise CnnlabError(f"trainer.batch_size={batch} is larger than the training set ({images} images)",
                          fix=f"use trainer.batch_size={fits} (at most {images}"
                              + (f", a multiple of the {world} ranks)" if world > 1 else ")"))
    if batch % world:
        raise CnnlabError(f"trainer.batch_size={batch} does not split over {world} ranks",
                          fix=f"use a multiple of {world}")


@found_before_work()
def make_loaders(recipe: Recipe, runtime: Runtime, train_set: Dataset, val_set: Dataset, *,
                 workers: int = 0) -> Loaders:
    """Train loader (shuffled, global batch split over ranks) and val loader (each rank a disjoint shard).
    Raises CnnlabError for a batch larger than the training set or one that does not split over the ranks."""
    check_batch(recipe, runtime, len(train_set))  # type: ignore[arg-type]
    per_rank = recipe.batch_size // runtime.world_size
    # A last batch of one image a rank: BatchNorm cannot train on it ("Expected more than 1 value per channel", a
    # traceback at 17 images and batch 16); that last batch sits out the epoch (other images the next, shuffled).
    train_loader = make_loader(train_set, per_rank, shuffle=True, seed=recipe.seed, workers=workers,
                               rank=runtime.rank, world_size=runtime.world_size, min_share=2 if per_rank > 1 else 1)
    return Loaders(train_loader, val_loader(recipe, runtime, val_set, workers=workers))


def val_loader(recipe: Recipe, runtime: Runtime, val_set: Dataset, *, workers: int = 0) -> DataLoader:
    """One pass over `val_set` in order at the evaluation batch, each rank a disjoint shard (trainer.evaluate sums
    them): exact evaluation, no sample padded or counted twice."""
    if runtime.distributed:
        val_set = Subset(val_set, range(runtime.rank, len(val_set), runtime.world_size))
    return make_loader(val_set, recipe.eval_batch, shuffle=False, seed=recipe.seed, workers=workers)


def eval_loader(recipe: Recipe, images: Dataset, *, workers: int = 0) -> DataLoader:
    """One pass over `images` in order, at the recipe's evaluation batch size."""
    return make_loader(images, recipe.eval_batch, shuffle=False, seed=recipe.seed, workers=workers)


def classification_objective(recipe: Recipe, num_classes: int) -> ClassificationObjective:
    return ClassificationObjective(num_classes, label_smoothing=recipe.label_smoothing, mixup=recipe.mixup,
                                   cutmix=recipe.cutmix)


@dataclass(frozen=True)
class Trainable:
    """What trains: `model` (on the runtime's device), its classifier `head` (None: one learning rate for all),
    the `frozen` leaf modules (kept in eval mode) and the backbone's learning rate as a fraction of the head's."""

    model: nn.Module
    head: nn.Module | None = None
    frozen: Sequence[nn.Module] = ()
    backbone_lr_scale: float = 1.0


@dataclass(frozen=True)
class Checkpointing:
    """The resumable last.pt: written after every epoch unless `enabled` is False (throw-away sub-trainings),
    continued from `resume_from`, with `extra` (what the command needs to rebuild its model) stored inside."""

    enabled: bool = True
    resume_from: Path | None = None
    extra: Mapping[str, Any] | None = None
    # run.json's dataset section (recording.dataset_record), written before the first epoch: an interrupted run
    # then still says which images it read (resume= refuses a user folder that changed since: steps/resume.py)
    dataset: Mapping[str, Any] | None = None


@contextmanager
def cores_left_to_workers(ctx: RunContext, runtime: Runtime, workers: int) -> Iterator[int]:
    """Within this block, training on CUDA beside `workers` DataLoader processes, the process's torch CPU threads
    are the cores the workers leave (this process's core share less the workers; at least 1); yields the count,
    and restores the previous one after. The process only launches GPU work there, and its OpenMP threads waited
    on cores the workers held: on an H200 host with 16 cores and 14 workers a SimCLR step took 98 ms with torch's
    16 threads and 31 ms with 1 (benchmarks/ssl_step_parts.py, docs/benchmarks.md). CPU training keeps its
    threads: there they do the training."""
    before = torch.get_num_threads()
    cap = max(1, core_share() - workers)  # core_share: this process's share, DDP ranks on the node counted
    if runtime.device.type != "cuda" or workers == 0 or before <= cap:
        yield before
        return
    torch.set_num_threads(cap)
    if ctx.is_main:
        ctx.log.info("torch CPU threads: %d, not %d, beside %s on the cores (training runs on %s; fewer "
                     "trainer.workers leave it more)", cap, before, counted(workers, "DataLoader worker"),
                     runtime.device)
    try:
        yield cap
    finally:
        torch.set_num_threads(before)


def say_images_left_out(ctx: RunContext, runtime: Runtime, loader: DataLoader, *, contrastive: bool = False) -> None:
    """A recorded warning when, under torchrun, a last batch sits out every epoch (EpochSampler: fewer images than
    ranks, or a single image a rank for a network that trains BatchNorm) — training and its counts then differ from
    one process's (probe 94: 193 images on 2 ranks counted 192, and the schedule planned 3 steps an epoch, not 4);
    in one process, a log line for the one image a BatchNorm network leaves out of each epoch."""
    sampler = loader.sampler
    if not isinstance(sampler, EpochSampler) or sampler.kept == sampler.size:
        return
    left, world = sampler.size - sampler.kept, runtime.world_size
    if world == 1:  # one image left alone in the last batch: said, not warned (probe 129: unsaid where "70 train" was)
        why = "it has no other image to contrast with" if contrastive else "BatchNorm cannot train on one image"
        ctx.log.info("1 of the %d training images sits out each epoch (another one each epoch): the last batch would "
                     "hold it alone, and %s (trainer.batch_size=%d leaves 2 or more in it)", sampler.size, why,
                     _batch_keeping_all(sampler.size, loader.batch_size or 1))
        return
    why = "no image" if left < world else "a single image, and its BatchNorm cannot train on one"
    record_warning(ctx, f"{left} of the {sampler.size} training images sit out each epoch (other ones each epoch): "
                        f"the last batch would give a rank {why}, where one process trains them — a training set or "
                        f"trainer.batch_size that leaves at least {world if left < world else 2 * world} images for "
                        "the last batch keeps every image")


def _batch_keeping_all(images: int, batch: int) -> int:
    """The nearest batch size below `batch` (else above) whose last batch of `images` holds 0 or 2+ images."""
    return next((b for b in [*range(batch - 1, 1, -1), *range(batch + 1, images + 1)] if images % b != 1), images)


def train_model(ctx: RunContext, runtime: Runtime, recipe: Recipe, trainable: Trainable, loaders: Loaders,
                objective: Objective, checkpointing: Checkpointing = Checkpointing()) -> FitResult:
    """Build the optimizer and schedule for the trainable parameters and run the engine's fit for recipe.epochs.
    Raises CnnlabError for a bad bn_momentum, optimizer or schedule, and what the engine raises."""
    override_bn_momentum(recipe, ctx, trainable)
    # before the schedule counts the steps; never a one-image step for an objective that contrasts within the batch
    contrastive = getattr(objective, "contrasts_within_batch", False) and runtime.world_size == 1
    if not contrastive:
        keep_last_batch_for(trainable.model, loaders.train, trainable.frozen)
    say_images_left_out(ctx, runtime, loaders.train, contrastive=contrastive)
    groups = param_groups(trainable.model, recipe.lr, recipe.weight_decay, head=trainable.head,
                          backbone_lr_scale=trainable.backbone_lr_scale)
    optimizer = build_optimizer(recipe.optimizer, groups)
    steps = min(len(loaders.train), recipe.max_steps_per_epoch or len(loaders.train))
    if steps < len(loaders.train) and ctx.is_main:  # the split's size, said before, is not what an epoch trains on
        images = len(loaders.train.dataset)  # type: ignore[arg-type]
        seen = min(images, steps * (loaders.train.batch_size or 1) * runtime.world_size)
        ctx.log.info("trainer.max_steps_per_epoch=%d: each epoch trains %d of %d batches (%s of %s)", steps, steps,
                     len(loaders.train), f"{seen:,}", counted(images, "image"))
    scheduler = build_scheduler(recipe.schedule, optimizer, steps_per_epoch=steps, epochs=max(1, recipe.epochs))
    _say_warmup_cut(ctx, recipe, steps)
    state_path = ctx.path(STATE_FILE) if checkpointing.enabled else None
    with cores_left_to_workers(ctx, runtime, loaders.train.num_workers) as threads:
        if ctx.is_main:  # the config may say only `auto`; what a run used belongs in its record
            trains_in = runtime.for_network(trainable.model)
            ctx.record.update(environment={"loader_workers": loaders.train.num_workers,
                                           "torch_threads_training": threads, "amp": trains_in.describe()["amp"],
                                           "amp_reason": trains_in.precision_reason()})
        # Recorded up front so an interrupted run can be found by resume=true (it counts once the file exists) —
        # unless the run keeps another state to resume until then (a search's study.db: probe 216, its record named
        # a last.pt never written, and the stop's hint said there was nothing to resume)
        kept = (ctx.record.data.get("artifacts") or {}).get("checkpoint")
        deferred = state_path is not None and kept is not None and (ctx.run_dir / kept).is_file() \
            and (ctx.run_dir / kept).resolve() != state_path.resolve()
        if ctx.is_main and state_path is not None:
            if not deferred:
                ctx.record.add_artifact("checkpoint", state_path)
            if checkpointing.dataset is not None:
                ctx.record.update(dataset=dict(checkpointing.dataset))
        with epoch_logging(ctx, runtime, recipe.epoch_log, checkpointing.resume_from,
                           state_path if deferred else None) as on_epoch_end:
            # the run's id goes into last.pt: resume= tells this run's file from another's (steps/resume.py)
            extra = {**(checkpointing.extra or {}), RUN_ID: ctx.record.data.get(RUN_ID)}
            result = Trainer(runtime, recipe).fit(trainable.model, objective, loaders, optimizer, scheduler,
                                                  state=StateFile(state_path, checkpointing.resume_from, extra),
                                                  frozen=trainable.frozen, on_epoch_end=on_epoch_end)
    keep_state(ctx, state_path, checkpointing.resume_from)
    return result


def _say_warmup_cut(ctx: RunContext, recipe: Recipe, steps_per_epoch: int) -> None:
    """Say a warm-up cut to half the run (engine/optim.warmup_steps): in the log where it is as long as the run (the
    default 1 epoch of a 1-epoch run), as a recorded warning where it was asked longer than the run (probe 81)."""
    asked, used, total = warmup_plan(recipe.schedule, steps_per_epoch=steps_per_epoch, epochs=max(1, recipe.epochs))
    if not ctx.is_main or used == asked:
        return
    warm_up = float(recipe.schedule.get("warmup_epochs", 0) or 0)
    name = str(recipe.schedule.get("name", "cosine"))
    never = "it would reach optim.lr at its last step only" if name == "constant" else \
        "the learning rate would never decay"
    cut = (f"sched.warmup_epochs={warm_up:g} would take (nearly) all of the run's {counted(total, 'step')}, where "
           f"{never}: the warm-up is cut to {used} of them (half the run at most, two steps after it where the run "
           f"has them), then {name}")
    if warm_up > recipe.epochs:
        record_warning(ctx, f"{cut} — set sched.warmup_epochs below trainer.epochs to choose it "
                            f"(e.g. sched.warmup_epochs={recipe.epochs / 10:g})")
    else:
        ctx.log.info(cut)


def keep_state(ctx: RunContext, state_path: Path | None, resumed_from: Path | None) -> None:
    """A resumed training with no epoch left to run (an extended search that chose the same trial again) wrote no
    last.pt of its own: copy the one it continued, so the checkpoint this run records exists and a later resume of
    this run finds it."""
    if not ctx.is_main or state_path is None or resumed_from is None or state_path.exists():
        return
    if Path(resumed_from).is_file():
        with atomic_path(state_path) as tmp:
            shutil.copyfile(resumed_from, tmp)


@dataclass(frozen=True)
class RecoveryTraining:
    """Scoring and re-training a model changed in place (pruned, fake-quantized): this run's runtime, loaders and
    objective, and a recipe already set for it (e.g. optim.lr x prune.lr_scale). No last.pt: a resumed run could
    not rebuild the changed model mid-way."""

    ctx: RunContext
    runtime: Runtime
    recipe: Recipe
    loaders: Loaders
    objective: Objective

    def accuracy(self, model: nn.Module, desc: str = "val") -> float:
        """Top-1 accuracy (a fraction) of `model` on the val loader."""
        assert self.loaders.val is not None, "recovery training scores on a validation split"
        return float(evaluate(model, self.loaders.val, self.runtime, desc=desc)["acc"])

    def recalibrate_bn(self, model: nn.Module) -> int:
        """Recompute the BatchNorm running statistics of `model` for its changed weights over the recipe's precise-BN
        number of training batches (forward passes only: engine.batchnorm.recompute_bn_stats), as training does
        before every evaluation; nothing when trainer.precise_bn=false. After channel pruning every kept channel
        keeps the statistics it had while its inputs lost channels: scored so, a pruned MobileNetV2 reads 10 %
        (chance); the same weights with recomputed statistics read what they are worth ("adaptive BN", Li et al.
        2020, EagleEye). Returns the images used (0: off, no BatchNorm layer that trains, or no batch)."""
        if self.recipe.precise_bn is False:
            return 0
        runtime = self.runtime.for_network(model)
        return recompute_bn_stats(model, self.loaders.train, batches=self.recipe.precise_bn_batches,
                                  to_device=runtime.to_device, autocast=runtime.autocast)

    def train(self, model: nn.Module, epochs: int | None = None, frozen: Sequence[nn.Module] = ()) -> FitResult:
        """`epochs` (None: recipe.epochs) of training through `train_model`, without last.pt; `frozen`: leaf modules
        whose parameters do not train, kept in eval mode (their batch-norm statistics unchanged)."""
        recipe = self.recipe if epochs is None else replace(self.recipe, epochs=epochs)
        return train_model(self.ctx, self.runtime, recipe, Trainable(model, frozen=frozen), self.loaders,
                           self.objective, Checkpointing(enabled=False))


_ARTIFACTS = {"csv": "metrics_csv", "png": "curves_png", "tensorboard": "tensorboard"}


@contextmanager
def epoch_logging(ctx: RunContext, runtime: Runtime, settings: EpochLogSettings,
                  resume_from: Path | None, state_path: Path | None = None) -> Iterator[EpochCallback | None]:
    """The per-epoch logs of one training in the run folder, as the `on_epoch_end` callback of fit (None on DDP
    ranks > 0: rank 0 writes), each file recorded in run.json's artifacts once it exists. The run's first
    training writes metrics.csv, curves.png and tensorboard/ (artifacts metrics_csv, curves_png, tensorboard); a
    later one in the same run (distill's baseline, prune's steps) metrics_2.csv, curves_2.png, tensorboard_2/,
    and so on. A resumed training starts with the history restored from `resume_from`. `state_path`: a last.pt
    recorded as the run's checkpoint once the first epoch has written it (the run kept another state until then)."""
    if not (ctx.is_main and runtime.is_main):
        yield None
        return
    earlier = sum(1 for name in (ctx.record.data.get("artifacts") or {}) if name.startswith(_ARTIFACTS["csv"]))
    suffix = f"_{earlier + 1}" if earlier else ""
    restored = restored_history(resume_from) if resume_from is not None else []
    if resume_from is not None:  # where the continued training took over: `cnnlab report` keys a resume that
        ctx.record.update(resumed_after_epoch=len(restored))  # changed settings by it (report/seeds.py)
    epochs = EpochLog(EpochLogFiles.in_folder(ctx.run_dir, suffix),
                      settings,
                      history=restored,
                      title=f"cnnlab {ctx.command} {ctx.run_dir.parent.name}/{ctx.run_dir.name}"
                            + (f" (training {earlier + 1})" if earlier else ""))
    recorded: set[str] = set()

    def record() -> None:
        for kind, path in epochs.written().items():
            if kind not in recorded:
                ctx.record.add_artifact(_ARTIFACTS[kind] + suffix, path)
                recorded.add(kind)

    def on_epoch_end(epoch: int, entry: dict[str, Any]) -> None:
        epochs.add(entry)
        record()
        if state_path is not None and state_path.is_file() and "state" not in recorded:
            ctx.record.add_artifact("checkpoint", state_path)
            recorded.add("state")
        if not suffix:  # the run's own training (whose last.pt resume continues): run.json keeps up with it, so an
            # interrupted or killed run's record says how far it got (probe 67); a completed run's final metrics
            # replace these with the same history
            ctx.record.update(metrics={"epochs": len(epochs.entries), "history": list(epochs.entries)})

    try:
        with epochs:  # leaving draws the final curves, also when training stops with an error or Ctrl-C
            record()
            yield on_epoch_end
    finally:
        record()


def restored_history(state_path: Path) -> list[dict[str, Any]]:
    """The per-epoch entries saved in a training state (last.pt) that fit resumes from. A file that cannot be read is
    a refused input: read before any training, it leaves no failed run (probe 98)."""
    with found_before_work():
        history = load_tensors(state_path, "training state", unreadable_fix=STATE_FIX,
                               records_only=True).get("history") or []
    return [dict(entry) for entry in history if isinstance(entry, Mapping)]


def override_bn_momentum(recipe: Recipe, ctx: RunContext, trainable: Trainable) -> None:
    """trainer.bn_momentum: one running-average momentum for every BatchNorm layer that trains."""
    if recipe.bn_momentum is None:
        return
    try:
        layers = set_bn_momentum(trainable.model, recipe.bn_momentum, trainable.frozen)
    except ValueError as exc:
        raise CnnlabError(f"trainer.bn_momentum={recipe.bn_momentum}: {exc}",
                          fix="use a value in (0, 1], e.g. trainer.bn_momentum=0.1, or null for the model's own") from exc
    ctx.log.info("trainer.bn_momentum=%s set on %d BatchNorm layers", recipe.bn_momentum, layers)
