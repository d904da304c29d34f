"""Supervised training shared by every command that trains (pretrain, finetune, and the recovery or
baseline runs of prune, quantize-aware training and distill): runtime setup, loaders, optimizer and
schedule, the engine's `fit`, and writing the model and its record."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, make_loader
from cnnlab.engine.batchnorm import set_bn_momentum
from cnnlab.engine.checkpoint import save_model
from cnnlab.engine.objectives import ClassificationObjective, Objective
from cnnlab.engine.optim import build_optimizer, build_scheduler, param_groups
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import FitResult, Trainer, evaluate
from cnnlab.errors import CnnlabError
from cnnlab.records import ModelSection
from cnnlab.runs import (MODEL_FILE, RESUMABLE_STATUSES, STATE_FILE, RunInfo, iter_runs, load_run,
                         process_alive)


def setup_runtime(cfg: Mapping[str, Any], recipe: Recipe) -> Runtime:
    """Seed every RNG with recipe.seed and pick the device (cfg.device), AMP and memory format (the recipe's)."""
    seed_everything(recipe.seed)
    return Runtime.from_config({"device": cfg.get("device"),
                                "trainer": {"amp": recipe.amp, "channels_last": recipe.channels_last}})


def loader_workers(recipe: Recipe, data: DataBundle) -> int:
    if recipe.workers is None:
        # In-memory tensors need no workers; for files leave one core to the training threads.
        return 0 if data.in_memory else max(0, min(4, (os.cpu_count() or 1) - 1))
    return recipe.workers


class Loaders(NamedTuple):
    """The train loader (shuffled; each rank its share of the global batch) and the val loader (None: no
    validation). A tuple, so `train_loader, val_loader = make_loaders(...)` reads as before."""

    train: DataLoader
    val: DataLoader | None


def make_loaders(recipe: Recipe, runtime: Runtime, train_set: Dataset, val_set: Dataset, *,
                 workers: int = 0) -> Loaders:
    """Train loader (shuffled, global batch split over ranks) and val loader (each rank a disjoint shard).
    Raises CnnlabError for a batch larger than the training set or one that does not split over the ranks."""
    batch = recipe.batch_size
    if batch < 1:
        raise CnnlabError(f"trainer.batch_size={batch} must be at least 1")
    if 0 < len(train_set) < batch:  # refused, not clamped: a whole-set batch is what runs out of memory
        raise CnnlabError(f"trainer.batch_size={batch} is larger than the training set ({len(train_set)} images)",
                          fix=f"use trainer.batch_size={min(64, len(train_set))} (at most {len(train_set)})")
    if batch % runtime.world_size:
        raise CnnlabError(f"trainer.batch_size={batch} does not split over {runtime.world_size} ranks",
                          fix=f"use a multiple of {runtime.world_size}")
    train_loader = make_loader(train_set, batch // runtime.world_size, shuffle=True, seed=recipe.seed,
                               workers=workers, rank=runtime.rank, world_size=runtime.world_size)
    if runtime.distributed:  # exact evaluation: no sample padded or counted twice
        val_set = Subset(val_set, range(runtime.rank, len(val_set), runtime.world_size))
    val_loader = make_loader(val_set, recipe.eval_batch, shuffle=False, seed=recipe.seed, workers=workers)
    return Loaders(train_loader, val_loader)


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


def train_model(ctx: RunContext, runtime: Runtime, recipe: Recipe, trainable: Trainable, loaders: Loaders,
                objective: Objective, checkpointing: Checkpointing = Checkpointing()) -> FitResult:
    """Build the optimizer and schedule for the trainable parameters and run the engine's fit for recipe.epochs.
    Raises CnnlabError for a bad bn_momentum, optimizer or schedule, and what the engine raises."""
    override_bn_momentum(recipe, ctx, trainable)
    groups = param_groups(trainable.model, recipe.lr, recipe.weight_decay, head=trainable.head,
                          backbone_lr_scale=trainable.backbone_lr_scale)
    optimizer = build_optimizer(recipe.optimizer, groups)
    steps = min(len(loaders.train), recipe.max_steps_per_epoch or len(loaders.train))
    scheduler = build_scheduler(recipe.schedule, optimizer, steps_per_epoch=steps, epochs=max(1, recipe.epochs))
    state_path = ctx.path(STATE_FILE) if checkpointing.enabled else None
    if ctx.is_main and state_path is not None:
        # Recorded up front so an interrupted run can be found by resume=true (it counts once the file exists).
        ctx.record.add_artifact("checkpoint", state_path)
    return Trainer(runtime, recipe).fit(trainable.model, objective, loaders.train, loaders.val, optimizer, scheduler,
                                        state_path=state_path, resume_from=checkpointing.resume_from,
                                        state_extra=dict(checkpointing.extra or {}), frozen=trainable.frozen)


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

    def train(self, model: nn.Module, epochs: int | None = None) -> FitResult:
        """`epochs` (None: recipe.epochs) of training through `train_model`, without last.pt."""
        recipe = self.recipe if epochs is None else replace(self.recipe, epochs=epochs)
        return train_model(self.ctx, self.runtime, recipe, Trainable(model), self.loaders, self.objective,
                           Checkpointing(enabled=False))


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


def fit_metrics(result: FitResult) -> dict[str, Any]:
    final, best = result.final, result.best
    metrics = {key: final[key] for key in ("val_acc", "val_top5", "val_loss", "train_loss", "train_acc") if key in final}
    metrics.update(epochs=len(result.history), best_val_acc=best.get("val_acc"), best_epoch=best.get("epoch"),
                   train_images_per_s=sum(e["images_per_s"] for e in result.history) / max(1, len(result.history)),
                   history=result.history)
    return metrics


@dataclass
class TrainedModel:
    """What a training pipeline hands to `save_and_record`."""

    model: nn.Module
    name: str
    arch_kwargs: dict[str, Any]
    data: DataBundle
    dataset_config: Mapping[str, Any]   # the resolved dataset config (derived runs reuse it)
    weights: str                 # where the starting weights came from, in words


def save_and_record(ctx: RunContext, trained: TrainedModel, metrics: dict[str, Any],
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write model.pt and fill the run record's model/dataset/metrics/artifacts sections."""
    if not ctx.is_main:
        return metrics
    data, spec = trained.data, trained.data.spec
    model = trained.model.cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    path = save_model(ctx.path(MODEL_FILE), model,
                      arch={"name": trained.name, "num_classes": len(data.classes), "image_size": spec.size,
                            "kwargs": trained.arch_kwargs},
                      classes=data.classes, spec=spec,
                      # the model's identity travels with the file: where it came from, what data it learned
                      extra={"metrics": {k: v for k, v in metrics.items() if k != "history"},
                             "source": ctx.record.data.get("source"),
                             "dataset": dataset_record(trained.data, trained.dataset_config), **(extra or {})})
    ctx.record.add_artifact("model", path)
    check_not_at_chance(ctx, metrics, len(data.classes))
    section = model_section(trained.name, spec.size, len(data.classes), model=model, file=path,
                            weights=trained.weights)
    ctx.record.update(model=section.to_dict(), dataset=dataset_record(trained.data, trained.dataset_config),
                      metrics=metrics)
    return metrics


def model_section(name: str | None, image_size: int, num_classes: int, *, model: nn.Module | None = None,
                  file: Path | None = None, **extra: Any) -> ModelSection:
    """run.json's model section — the one place it is built: parameters and FLOPs (at `image_size` px) of a
    PyTorch `model` when there is one, the size in bytes of its `file`, and `extra` fields as given."""
    from cnnlab.models import count_flops, count_params

    return ModelSection(name=name, image_size=image_size, num_classes=num_classes,
                        params=None if model is None else count_params(model),
                        flops=None if model is None else count_flops(model, image_size),
                        file_bytes=None if file is None else file.stat().st_size, extra=extra)


def record_warning(ctx: RunContext, message: str) -> None:
    """A warning for the user: one log line, and an entry in run.json's `warnings` list."""
    ctx.log.warning(message)
    ctx.record.update(warnings=[*(ctx.record.data.get("warnings") or []), message])


def at_chance(acc: float, num_classes: int) -> bool:
    """An accuracy no better than guessing: below 1.5 x 1/num_classes."""
    return acc < 1.5 / max(num_classes, 1)


def check_not_at_chance(ctx: RunContext, metrics: Mapping[str, Any], num_classes: int) -> None:
    """Warn when training learned (train accuracy > 3 x chance and > 50 %) but validation scores chance: the
    signature of BatchNorm running statistics that do not match the weights (or of a diverged run)."""
    val, train_acc = metrics.get("val_acc"), metrics.get("train_acc")
    if val is None or train_acc is None or num_classes < 2:
        return
    if at_chance(val, num_classes) and train_acc > max(3.0 / num_classes, 0.5):
        record_warning(ctx, f"validation accuracy {val:.1%} is at chance (1/{num_classes} = {1 / num_classes:.1%}) "
                            f"while training accuracy is {train_acc:.1%}: the saved model does not work. Likely "
                            "cause: BatchNorm running statistics that lag the weights (short run, small BN momentum) "
                            "— rerun with trainer.precise_bn=true, and/or a lower optim.lr")


def dataset_record(data: DataBundle, dataset_config: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's dataset section; `config` lets derived runs (export, prune, ...) rebuild the same data, from any
    working folder: its `root` is stored absolute (a relative `dataset.root=./photos` means where this run ran)."""
    config = OmegaConf.to_container(dataset_config, resolve=True) if isinstance(dataset_config, DictConfig) \
        else dict(dataset_config)
    assert isinstance(config, dict)
    if config.get("root") not in (None, ""):
        config["root"] = str(Path(str(config["root"])).expanduser().absolute())
    spec = data.spec
    return {"name": data.name, "num_classes": len(data.classes), "train_size": len(data.train),
            "val_size": len(data.val), "image_size": spec.size, "mean": list(spec.mean), "std": list(spec.std),
            "config": config, "decode": None if data.decode is None else data.decode.as_record(),
            "label_fraction": data.label_fraction, "test_size": None if data.test is None else len(data.test)}


# ---------------------------------------------------------------------------------------------- resume
_NOT_OVERRIDABLE_ON_RESUME = ("resume",)


def apply_resume(cfg: DictConfig, ctx: RunContext) -> tuple[DictConfig, Path | None]:
    """(config to use, training state to resume from). Without resume= this is (cfg, None)."""
    run = resume_target(cfg, ctx)
    if run is None:
        return cfg, None
    ctx.record.update(resumed_from=str(run.path.resolve()))
    ctx.log.info("resuming %s (%s)", run.path, run.status)
    return resumed_config(cfg, ctx, run), run.artifact("checkpoint")


def resume_target(cfg: DictConfig, ctx: RunContext) -> RunInfo | None:
    """The run named by `resume=`: true → the newest interrupted, failed or dead (killed: recorded `running`,
    its process gone) run of this command that holds a last.pt; a folder → that run, unless it still runs."""
    spec = cfg.get("resume")
    if spec in (None, False) or str(spec).lower() in ("none", "null", "false", "no"):
        return None
    if spec is True or str(spec).lower() in ("true", "yes", "latest"):
        # A run that a later run already continued is done with: resuming it again would repeat that work
        # (a scheduler's requeue script that always says resume=true would loop on it).
        runs = list(iter_runs(ctx.outputs))
        continued = {Path(str(r.data["resumed_from"])).resolve() for r in runs if r.data.get("resumed_from")}
        candidates = [r for r in runs if r.command == ctx.command and r.status in RESUMABLE_STATUSES
                      and r.artifact("checkpoint") is not None and r.path.resolve() not in continued]
        run = candidates[-1] if candidates else None
        if run is None:
            raise CnnlabError(f"resume=true: no interrupted or failed (or killed) `cnnlab {ctx.command}` run with "
                              f"a {STATE_FILE} in {ctx.outputs}/",
                              fix="pass resume=RUN_FOLDER, or start a new run without resume=")
        return run
    run = load_run(Path(str(spec)).expanduser())
    if run.artifact("checkpoint") is None:
        raise CnnlabError(f"resume={spec}: the run has no {STATE_FILE} to resume from",
                          fix="pick a run that completed at least one epoch")
    process = run.data.get("process") or {}
    if run.status == "running" and process_alive(process):
        raise CnnlabError(f"resume={spec}: that run is still running (pid {process.get('pid')} on "
                          f"{process.get('host')}); two trainings would write over each other",
                          fix=f"wait for it to finish, or stop it (kill {process.get('pid')}) and resume then")
    return run


def resumed_config(cfg: DictConfig, ctx: RunContext, run: RunInfo) -> DictConfig:
    """The original run's config, with this invocation's key=value overrides applied on top
    (trainer.epochs=20 extends a run; device=cpu moves it). Picking another model or dataset is refused."""
    saved = run.path / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise CnnlabError(f"resume: {run.path} has no saved config (.hydra/config.yaml)")
    old = OmegaConf.load(saved)
    assert isinstance(old, DictConfig)
    replaced = []
    for override in ctx.overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+")
        if key in _NOT_OVERRIDABLE_ON_RESUME or key.startswith("hydra"):
            continue
        if "." not in key and key in cfg and isinstance(cfg[key], DictConfig):
            if OmegaConf.to_container(cfg[key]) != OmegaConf.to_container(old.get(key, {})):
                raise CnnlabError(f"resume continues {run.path} with its own config; {key}={value} would change it",
                                  fix=f"drop {key}= (or start a new run without resume=)")
            continue
        before, after = _plain(OmegaConf.select(old, key)), _plain(OmegaConf.select(cfg, key))
        if before != after:
            replaced.append(f"{key}={after} (saved: {before})")
        with open_dict(old):
            OmegaConf.update(old, key, OmegaConf.select(cfg, key), force_add=True)
    if replaced:  # they win over the restored state too (the optimizer's lr, the schedule's position)
        ctx.log.info("resume: your overrides replace the saved settings: %s", ", ".join(replaced))
    with open_dict(old):
        old.resume = str(run.path)
        old.paths = cfg.paths
    return old


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
