"""`cnnlab finetune`: transfer learning — a pretrained backbone, a new head, and one of three modes.

linear   the backbone is frozen (eval mode); only the head trains. With deterministic transforms the
         backbone's features are computed once and the head trains on the cached tensors, standardised per
         feature (folded back into the head afterwards).
partial  the last `finetune.unfreeze` backbone stages and everything after them train.
full     everything trains; the backbone at optim.lr * finetune.backbone_lr_scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets, check_dataset, resolve_input_spec
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models import FINETUNE_MODES, MODELS, first_trainable, freeze_before, get_entry
from cnnlab.steps.switches import optimisation_on, tristate
from cnnlab.steps.augment_on import augment_without_device, classifier_loaders
from cnnlab.steps.start_score import score_at_start, starts_trained, warn_below_start
from cnnlab.steps.training import (Checkpointing, Trainable, classification_objective, setup_runtime, train_model,
                                   val_loader)
from cnnlab.steps.recording import TrainedModel, dataset_record, fit_metrics, record_warning, save_and_record
from cnnlab.steps.input_settings import refuse_ignored_input_settings, typed_normalisation
from cnnlab.steps.jobs import swept, swept_values
from cnnlab.steps.linear_probe import ProbeFeatures, train_head_on_features
from cnnlab.steps.sources import weights_dataset_config
from cnnlab.steps.resume import apply_resume, keep_resumed_source
from cnnlab.runs import NO_CHECKPOINT
from cnnlab.settings import packaged_defaults, resumes_nothing
from cnnlab.weights import check_weights_arch, initial_model, keeps_head, resolve_weights


# The backbone's rate relative to optim.lr when pretrained weights fine-tune (partial, full) at auto. At the full
# rate a new head's first large gradients overwrite the pretrained features: a SimCLR ResNet-18 on 10 % of
# Fashion-MNIST ended 4.6 points below scratch that way, 1.0 above it at 0.1 (docs/benchmarks.md); the
# discriminative rates of ULMFiT (Howard & Ruder, 2018) and LP-FT (Kumar et al., 2022) keep them.
PRETRAINED_BACKBONE_LR_SCALE = 0.1


@dataclass(frozen=True)
class FinetuneSettings:
    """The `finetune` section: mode (linear | partial | full), how many backbone stages train in partial mode,
    the backbone's learning rate as a fraction of optim.lr, and the tri-state switches (None = auto)."""

    mode: str
    unfreeze: int
    backbone_lr_scale: float | None   # None: auto (PRETRAINED_BACKBONE_LR_SCALE for pretrained weights, else 1)
    new_head: bool | None
    augment: bool
    cache_features: bool | None
    standardize_features: bool | None = None  # None: auto (on where the features are cached)

    def resolved(self, *, pretrained: bool, log: Any = None) -> "FinetuneSettings":
        """backbone_lr_scale=auto made a number: PRETRAINED_BACKBONE_LR_SCALE for pretrained weights in partial or
        full mode (logged), else 1 (a random backbone has nothing to keep; linear mode freezes it)."""
        if self.backbone_lr_scale == 0 and self.mode != "linear" and log is not None:  # probe 166: "frozen", it was not
            log.warning("finetune.backbone_lr_scale=0 keeps the backbone's weights, but its BatchNorm layers still "
                        "update their running statistics as it trains: for a frozen backbone use "
                        "finetune.mode=linear (or mode=partial with fewer stages unfrozen)")
        if self.backbone_lr_scale is not None:
            return self
        scale = PRETRAINED_BACKBONE_LR_SCALE if pretrained and self.mode != "linear" else 1.0
        if scale != 1.0 and log is not None:
            log.info("finetune.backbone_lr_scale=auto: the pretrained backbone trains at %g x optim.lr, the "
                     "head at optim.lr (finetune.backbone_lr_scale=1 for one rate)", scale)
        return replace(self, backbone_lr_scale=scale)

    @classmethod
    def from_config(cls, section: DictConfig) -> "FinetuneSettings":
        mode = str(section.mode)
        if mode not in FINETUNE_MODES:
            raise CnnlabError(f"finetune.mode={mode} is not a mode", fix=f"use one of: {', '.join(FINETUNE_MODES)}")
        augment = tristate(section.augment, "finetune.augment")
        scale = None if str(section.backbone_lr_scale).lower() == "auto" else float(section.backbone_lr_scale)
        return cls(mode=mode, unfreeze=int(section.unfreeze), backbone_lr_scale=scale,
                   new_head=tristate(section.new_head, "finetune.new_head"),
                   augment=(mode != "linear") if augment is None else augment,
                   cache_features=tristate(section.cache_features, "finetune.cache_features"),
                   standardize_features=tristate(section.standardize_features, "finetune.standardize_features"))


def check(cfg: DictConfig) -> None:
    """What `cnnlab finetune` parses itself: FinetuneSettings and the recipe (cnnlab/commands.py: `check`); and a
    setting the mode does not read, refused — here, so a pipeline's stages are checked for it before the first
    runs (probe 140) — except in a sweep that varies the mode, where `-m finetune.mode=linear,partial
    finetune.unfreeze=2` is a sound request and the job says it instead, and in a resume, whose mode is the run's
    saved one (run)."""
    settings = FinetuneSettings.from_config(cfg.finetune)
    unread = _unread_by_every_job(settings, cfg.finetune)
    if unread and resumes_nothing(cfg.get("resume")):
        raise unread[0]
    Recipe.from_config(cfg)


def _unread_by_every_job(settings: FinetuneSettings, section: Any) -> list[CnnlabError]:
    """The refusals of settings_the_mode_ignores that hold for every job: all of them outside a sweep across modes;
    in one, those no swept mode reads (probe 145: `-m finetune.mode=linear,full finetune.unfreeze=2` only warned)."""
    ignored = settings_the_mode_ignores(settings, section)
    if not ignored or not swept("finetune.mode"):
        return list(ignored.values())
    modes = swept_values("finetune.mode")
    if not modes or any(mode not in FINETUNE_MODES for mode in modes):
        return []  # not listed here: each job says it
    unread = [settings_the_mode_ignores(replace(settings, mode=mode), section).keys() for mode in modes]
    return [error for key, error in ignored.items() if all(key in keys for keys in unread)]


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    cfg, resume_from = apply_resume(cfg, ctx)
    cfg = keep_resumed_source(cfg, resume_from, "model.weights", ctx)
    settings = FinetuneSettings.from_config(cfg.finetune)
    refused = _unread_by_every_job(settings, cfg.finetune)  # in the resumed run's mode (probe 144)
    if refused:
        with found_before_work():
            raise refused[0]
    for unread in settings_the_mode_ignores(settings, cfg.finetune).values():  # a job of a sweep across modes
        record_warning(ctx, f"{unread.message}: not read by this job")
    recipe = Recipe.from_config(cfg)
    runtime = setup_runtime(cfg, recipe)
    check_dataset(cfg.dataset)  # a missing folder is reported before a missing weights file
    weights = resolve_weights(cfg.model.weights, cfg.model.name, ctx.outputs, node=cfg.model,
                              normalisation=typed_normalisation(cfg, ctx))
    name = check_weights_arch(weights, cfg.model.name, model_chosen=ctx.explicitly_set("model", "model.name"))
    if weights.source:  # at the start: a resume continues from these (keep_resumed_source)
        ctx.record.update(source=weights.source)
    if not weights.pretrained:
        ctx.log.warning("model.weights=none: the backbone starts from random weights (this is pretraining)")
    settings = settings.resolved(pretrained=weights.pretrained, log=ctx.log)

    # a cnnlab run's weights: its data, unless dataset=; a resume: its own run's data
    dataset_cfg = weights_dataset_config(cfg, ctx, weights, resume_from=resume_from)
    # from scratch, a network that takes any channels is built for the data's (LeNet-5: 1 for grayscale), as pretrain
    spec = resolve_input_spec(dataset_cfg, weights.spec, size_recorded=weights.size_recorded,
                              any_channels=not weights.pretrained and get_entry(name).any_channels)
    if weights.spec is not None:  # the weights' normalisation applies; the size is the user's to pick
        refuse_ignored_input_settings(cfg, ctx, spec, "the pretrained model", keys=("mean", "std"))
    runtime = runtime.for_input(spec.size)
    with main_process_first(runtime):
        data = build_datasets(dataset_cfg, spec, train_augment=settings.augment)
    ctx.log.info("finetune %s (%s) on %s: %s, mode=%s", name, weights.description, data.name, data.sizes_line(),
                 settings.mode)
    if weights.kind == "file":  # probe 202: a SimCLR backbone's state dict read with ImageNet's statistics, unsaid
        channels = data.spec.channels
        ctx.log.info("model.weights is a plain state dict, which records no normalisation: inputs normalised with "
                     "mean %s, std %s%s", list(data.spec.mean[:channels]), list(data.spec.std[:channels]),
                     "" if typed_normalisation(cfg, ctx) is not None else " (ImageNet's, as torchvision's weights "
                     "expect: dataset.mean= and dataset.std= set the ones it trained with; its cnnlab run, where it "
                     "has one, records them)")

    model = initial_model(name, weights, data, settings.new_head)
    head_path = MODELS[name].head
    frozen = freeze(model, name, settings)
    model = runtime.prepare_model(model)
    # a classifier already trained on these classes: what it scored before, to say so if training loses it (probe 218)
    start = score_at_start(model, val_loader(recipe, runtime, data.val), runtime, role="model") \
        if starts_trained(weights, data, settings.new_head) else None
    started = time.perf_counter()
    cache_blockers = feature_cache_blockers(settings, data, runtime, recipe, resume=resume_from is not None)
    with found_before_work():  # refusals of settings: nothing trained yet, no failed run is left (probe 138)
        cached = use_feature_cache(settings, cache_blockers, ctx)  # first: cache_features=true's refusal is the one
        standardize = use_standardized_features(settings, cache_blockers, ctx)
    if cached:
        augment_without_device(ctx, recipe, "finetune.mode=linear trains the head on the backbone's features, "
                               "computed once and not augmented (finetune.cache_features)", where="none",
                               fix="drop trainer.augment_on=device, or set finetune.augment=true (the features are "
                                   "then computed for every augmented batch, not cached)")
        # a self-supervised run's head was never trained: kept under new_head=auto, it is a new head all the same
        trained_head = keeps_head(weights, data, settings.new_head) and not weights.untrained_head
        probe = ProbeFeatures(standardize=standardize, kept_head=trained_head)
        if ctx.is_main:  # what an interrupt and resume= say of this run: there is nothing to continue, by design
            ctx.record.update(**{NO_CHECKPOINT: "a linear probe on cached features: computing them again is quicker "
                                                "than resuming"})
        result = train_head_on_features(ctx, runtime, recipe, model, head_path, data, probe)
    else:
        loaders = classifier_loaders(ctx, recipe, runtime, data)
        trainable = Trainable(model, head=model.get_submodule(head_path), frozen=frozen,
                              backbone_lr_scale=settings.backbone_lr_scale)
        result = train_model(ctx, runtime, recipe, trainable, loaders, classification_objective(recipe, len(data.classes)),
                             Checkpointing(resume_from=resume_from, dataset=dataset_record(data, dataset_cfg)))
    training_seconds = time.perf_counter() - started  # caching included: the cost a user waits for
    trained = TrainedModel(model=model, name=name, arch_kwargs=weights.arch_kwargs, data=data,
                           dataset_config=dataset_cfg, weights=weights.description)
    scale = None if settings.mode == "linear" else settings.backbone_lr_scale  # no backbone trained (probe 103: 1.0)
    metrics = fit_metrics(result) | {"finetune_mode": settings.mode, "backbone_lr_scale": scale,
                                     "standardize_features": standardize, "training_seconds": training_seconds,
                                     "val_acc_start": start.acc if start else None}
    metrics["ended_below_start"] = warn_below_start(ctx, start, result.final.get("val_acc"), role="model",
                                                    lr=recipe.lr)
    spike = backbone_overwritten(metrics.get("history") or [], settings, pretrained=weights.pretrained)
    if spike is not None and ctx.is_main and not metrics["ended_below_start"]:
        record_warning(ctx, spike)
    return save_and_record(ctx, trained, metrics,
                           extra={"finetune": {"mode": settings.mode, "weights": weights.description,
                                               "backbone_lr_scale": scale, "standardize_features": standardize}})


# A later epoch's training loss this many times the first epoch's: the start was lost, not merely slow.
LOSS_SPIKE = 1.5


def backbone_overwritten(history: Sequence[Mapping[str, Any]], settings: FinetuneSettings, *,
                         pretrained: bool) -> str | None:
    """The warning for a fine-tune whose training loss jumped after epoch 1 (the first later epoch above
    LOSS_SPIKE x epoch 1's) while a pretrained backbone trained above PRETRAINED_BACKBONE_LR_SCALE x optim.lr,
    or None. The new head's large early gradients reach the backbone at the full rate and overwrite the features it
    was pretrained for; a lower backbone rate keeps them (Kumar et al., 2022, "Fine-Tuning can Distort Pretrained
    Features"). `history`: run.json's per-epoch metrics, each with `train_loss`."""
    losses = [float(e["train_loss"]) for e in history if isinstance(e.get("train_loss"), (int, float))]
    scale = settings.backbone_lr_scale  # resolved (FinetuneSettings.resolved): a number
    if not pretrained or settings.mode == "linear" or scale <= PRETRAINED_BACKBONE_LR_SCALE or len(losses) < 2:
        return None
    later = next(((epoch, loss) for epoch, loss in enumerate(losses[1:], 2) if loss > LOSS_SPIKE * losses[0]), None)
    if later is None:
        return None
    epoch, loss = later
    return (f"training loss rose from {losses[0]:.2f} (epoch 1) to {loss:.2f} (epoch {epoch}) while the pretrained "
            f"backbone trained at {scale:g} x optim.lr: a jump like this overwrites the features "
            "it was pretrained for (a SimCLR backbone fine-tuned on 10 % of Fashion-MNIST ended 4.6 points below "
            "training from scratch this way, and 1.0 point above it at 0.1 x) — rerun with "
            f"finetune.backbone_lr_scale={scale / 10:g}")


def freeze(model: nn.Module, name: str, settings: FinetuneSettings) -> list[nn.Module]:
    """Freeze what `settings.mode` keeps fixed; returns the frozen leaf modules (kept in eval mode while training)."""
    return freeze_before(model, first_trainable(name, settings.mode, settings.unfreeze))


def feature_cache_blockers(settings: FinetuneSettings, data: DataBundle, runtime: Runtime, recipe: Recipe, *,
                           resume: bool) -> list[str]:
    """Why a linear probe's features cannot be computed once: every reason, in words ([] when they can)."""
    reasons = []
    if data.random_train_transform:
        reasons.append("train transforms are random (finetune.augment=true)")
    if runtime.distributed:
        reasons.append("running under DDP")
    if resume:
        reasons.append("resuming a run")
    if recipe.mixes_images:
        reasons.append("mixup/cutmix mixes images")
    if settings.cache_features is False:
        reasons.append("finetune.cache_features=false")
    return reasons


def settings_the_mode_ignores(settings: FinetuneSettings, section: Any) -> dict[str, CnnlabError]:
    """Setting → its refusal, for each setting the mode does not read, set to other than its packaged default:
    finetune.unfreeze outside partial mode, finetune.backbone_lr_scale for a linear probe (probe 138: `mode=full
    unfreeze=3` trained every stage without a word, where `partial` was meant)."""
    defaults, found = packaged_defaults(), {}
    if settings.mode != "partial" and section.get("unfreeze") not in defaults.get("finetune.unfreeze", ()):
        trains = "every stage" if settings.mode == "full" else "the head alone"
        found["finetune.unfreeze"] = CnnlabError(
            f"finetune.unfreeze={settings.unfreeze} applies to finetune.mode=partial (the last N backbone stages "
            f"train); finetune.mode={settings.mode} trains {trains}",
            fix=f"use finetune.mode=partial finetune.unfreeze={settings.unfreeze}, or drop finetune.unfreeze")
    if settings.mode == "linear" and section.get("backbone_lr_scale") not in defaults.get(
            "finetune.backbone_lr_scale", ()):
        found["finetune.backbone_lr_scale"] = CnnlabError(
            f"finetune.backbone_lr_scale={section.get('backbone_lr_scale')} applies where the backbone trains "
            "(finetune.mode=partial or full); a linear probe trains the head alone",
            fix="use finetune.mode=partial or full, or drop finetune.backbone_lr_scale")
    return found


def use_feature_cache(settings: FinetuneSettings, blockers: list[str], ctx: RunContext) -> bool:
    if settings.mode != "linear":
        return False
    return optimisation_on(settings.cache_features, blockers, key="finetune.cache_features", ctx=ctx,
                           what="feature cache off")


def use_standardized_features(settings: FinetuneSettings, cache_blockers: list[str], ctx: RunContext) -> bool:
    """Linear mode: whether the head trains on standardised features (finetune.standardize_features; auto: where
    the features are cached, since the statistics are those of the cached training features). Raises CnnlabError
    for =true in partial or full mode, or where the features are not cached."""
    if settings.mode != "linear":
        if settings.standardize_features:
            raise CnnlabError(f"finetune.standardize_features=true applies to a linear probe, not finetune.mode="
                              f"{settings.mode}: a backbone that trains changes its features",
                              fix="use finetune.mode=linear, or finetune.standardize_features=auto")
        return False
    blockers = [f"the features are not cached ({'; '.join(cache_blockers)})"] if cache_blockers else []
    return optimisation_on(settings.standardize_features, blockers, key="finetune.standardize_features", ctx=ctx,
                           what="feature standardisation off")
