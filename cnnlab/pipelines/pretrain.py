"""`cnnlab pretrain`: train a network from random weights and keep the checkpoint.

method=supervised (default): cross-entropy on the labels. method=simclr | simsiam: self-supervised — two augmented
views of every training image (the labels are not used), a projection head (and SimSiam's predictor) on the
backbone, the kNN monitor on the validation split each epoch; the saved model.pt is the backbone alone, an
ordinary zoo model with a fresh classifier head, ready for `cnnlab finetune` (docs/pretrain.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from omegaconf import DictConfig
from torch.utils.data import Dataset, Subset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets
from cnnlab.data.splits import labels_of
from cnnlab.data.views import ViewSettings, pretraining_images, two_view_dataset
from cnnlab.engine.knn import KnnMonitor
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.engine.selfsup import USUAL_TEMPERATURES, SelfSupervisedSettings, SimCLRObjective, SimSiamObjective
from cnnlab.engine.trainer import FitResult
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models import canonical_name, create_model, resolution_hint, stem_hint
from cnnlab.models.projection import SiameseNetwork, feature_dim, prediction_head, projection_head
from cnnlab.steps.recording import TrainedModel, dataset_record, fit_metrics, record_warning, save_and_record
from cnnlab.steps.resume import apply_resume
from cnnlab.steps.augment_on import augmentation_place, classifier_loaders, training_loaders
from cnnlab.wording import counted
from cnnlab.steps.zoo_model import scratch_spec
from cnnlab.steps.training import (Checkpointing, Loaders, Trainable, classification_objective, eval_loader,
                                   loader_workers, setup_runtime, train_model)

# The head of a backbone pretrained on unlabeled images (a flat folder): placeholders for `finetune` to replace.
PLACEHOLDER_CLASSES = ("unlabeled_0", "unlabeled_1")


def check(cfg: DictConfig) -> None:
    """What `cnnlab pretrain` parses itself: model.weights (none), the self-supervised method and its views, the
    training recipe (cnnlab/commands.py: `check`)."""
    if str(cfg.model.weights).lower() not in ("none", "null"):
        raise CnnlabError(f"pretrain starts from random weights, but model.weights={cfg.model.weights}",
                          fix="use `cnnlab finetune model.weights=...` to start from existing weights")
    recipe = Recipe.from_config(cfg)
    method = cfg.get("method") or {}
    if str(method.get("name", "supervised")) != "supervised":
        SelfSupervisedSettings.from_config(cfg.method).check_batch(recipe.batch_size)
        ViewSettings.from_config(cfg.method.get("views"))


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    cfg, resume_from = apply_resume(cfg, ctx)
    method = str((cfg.get("method") or {}).get("name", "supervised"))
    if method == "supervised":
        return supervised(cfg, ctx, resume_from)
    return self_supervised(cfg, ctx, resume_from, SelfSupervisedSettings.from_config(cfg.method))


def supervised(cfg: DictConfig, ctx: RunContext, resume_from: Any) -> dict[str, Any]:
    recipe = Recipe.from_config(cfg)
    name = canonical_name(cfg.model.name)
    spec, arch_kwargs = scratch_spec(cfg, name)
    runtime = setup_runtime(cfg, recipe).for_input(spec.size)
    with main_process_first(runtime):
        data = build_datasets(cfg.dataset, spec)
    ctx.log.info("pretrain %s on %s: %s", name, data.name, data.sizes_line())

    model = create_model(name, num_classes=len(data.classes), image_size=spec.size, **arch_kwargs)
    say_stem_hint(ctx, name, model, spec.size, arch_kwargs)
    model = runtime.prepare_model(model)
    loaders = classifier_loaders(ctx, recipe, runtime, data)
    result = train_model(ctx, runtime, recipe, Trainable(model), loaders,
                         classification_objective(recipe, len(data.classes)),
                         Checkpointing(resume_from=resume_from, dataset=dataset_record(data, cfg.dataset)))
    trained = TrainedModel(model=model, name=name, arch_kwargs=arch_kwargs, data=data, dataset_config=cfg.dataset,
                           weights="random initialisation")
    ctx.record.update(pretrain={"method": "supervised"})
    return save_and_record(ctx, trained, fit_metrics(result))


def self_supervised(cfg: DictConfig, ctx: RunContext, resume_from: Any,
                    settings: SelfSupervisedSettings) -> dict[str, Any]:
    views = ViewSettings.from_config(cfg.method.get("views"))
    recipe = Recipe.from_config(cfg)
    settings.check_batch(recipe.batch_size)
    fraction = cfg.dataset.get("label_fraction")
    if fraction not in (None, 1, 1.0) and ctx.is_main:  # a seeded, class-balanced image budget (the benchmarks' use)
        ctx.log.warning("dataset.label_fraction=%s keeps %.3g %% of the training images: %s uses no labels, so this "
                        "only shrinks what it learns from (for label efficiency, give it to the fine-tune instead)",
                        fraction, 100 * float(fraction), settings.name)
    low, high = USUAL_TEMPERATURES
    if settings.name == "simclr" and not low <= settings.temperature <= high and ctx.is_main:
        ctx.log.warning("method.temperature=%g is outside the %g-%g that contrastive recipes use: NT-Xent's logits "
                        "reach 1/T, so %s (SimCLR: 0.1 to 1; the default is 0.5)", settings.temperature, low, high,
                        "its gradients grow until the loss diverges" if settings.temperature < low
                        else "the loss barely depends on the projections and the backbone learns little")
    name = canonical_name(cfg.model.name)
    spec, arch_kwargs = scratch_spec(cfg, name)
    runtime = setup_runtime(cfg, recipe).for_input(spec.size)
    with main_process_first(runtime):  # train_augment=False: the kNN bank reads the training images as they are
        data = build_datasets(cfg.dataset, spec, train_augment=False, allow_unlabeled=True)
    with found_before_work():
        views.check_size(data.picture_side)  # the crops are cut from the pictures as read, before the resize
    as_read = data  # one class (a flat folder, a single class folder): nothing for the kNN monitor to tell apart
    if len(data.classes) < 2:  # a flat folder: a zoo classifier has 2 outputs at least; fine-tuning replaces the head
        data = replace(data, classes=list(PLACEHOLDER_CLASSES))
    images = pretraining_images(data, unlabeled=settings.unlabeled)
    if len(images) < recipe.batch_size:  # before any work: no failed run left behind (probe 83)
        with found_before_work():
            raise CnnlabError(f"dataset {data.name} has {counted(len(images), 'training image')}, fewer than one "
                              f"batch (trainer.batch_size={recipe.batch_size}): {settings.batch_need}",
                              # probe 147: 1 image was told to use batch 2, which it had
                              fix=f"use trainer.batch_size={min(256, len(images))} or more images" if len(images) >= 2
                              else f"add images: {settings.name} needs at least 2 a batch (and thousands to learn "
                                   "features worth fine-tuning)")
    ctx.log.info("pretrain %s with %s on %s: %d images (labels unused), two views at %d px (%s)", name,
                 settings.name, data.name, len(images), data.spec.size,
                 ", ".join(f"{k} {v}" for k, v in views.describe(data.spec.size, data.spec.channels).items()))

    model = create_model(name, num_classes=len(data.classes), image_size=data.spec.size, **arch_kwargs)
    say_stem_hint(ctx, name, model, data.spec.size, arch_kwargs)
    network = runtime.prepare_model(siamese_network(model, name, settings))
    place = augmentation_place(ctx, recipe, runtime, data, views)
    loaders = training_loaders(recipe, runtime, data, place, images=images,
                               augmented=two_view_dataset(data, views, unlabeled=settings.unlabeled), views=views,
                               count=2, workers=loader_workers(recipe, data))
    monitor = knn_monitor(ctx, recipe, runtime, as_read, settings)
    if monitor is None:
        loaders = Loaders(loaders.train, None)
    objective = (SimCLRObjective(settings.temperature, monitor) if settings.name == "simclr"
                 else SimSiamObjective(monitor))
    result = train_model(ctx, runtime, recipe, Trainable(network), loaders, objective,
                         Checkpointing(resume_from=resume_from, dataset=dataset_record(data, cfg.dataset)))

    # images: what it trained on — the training split and, where used, the unlabeled split (STL-10: run.json's
    # dataset.train_size counts the labelled split alone; probe 66)
    record = {**settings.record(), "hidden_dim": settings.hidden_dim or network.feature_dim,
              "feature_dim": network.feature_dim, "views": views.describe(data.spec.size, data.spec.channels),
              "images": len(images)}
    if monitor is not None:  # what the vote used: k capped at the bank (probe 202: `k: 200` of a 142-image bank)
        record["knn"] = {**record["knn"], "k_used": monitor.k, "bank_images": len(monitor.bank_loader.dataset)}
    trained = TrainedModel(model=network.backbone(), name=name, arch_kwargs=arch_kwargs, data=data,
                           dataset_config=cfg.dataset, weights=f"self-supervised ({settings.name}) from random "
                                                               "initialisation")
    ctx.record.update(pretrain=record)
    return save_and_record(ctx, trained, self_supervised_metrics(result, settings.name),
                           extra={"pretrain": record})


def say_stem_hint(ctx: RunContext, name: str, model: torch.nn.Module, size: int, arch_kwargs: dict[str, Any]) -> None:
    """Log models.stem_hint (a stock-stem network whose last stage sees 1x1 maps) and models.resolution_hint (a
    searched network at another size than its search's) on the main process; `model` is the freshly built network,
    still on the CPU."""
    if not ctx.is_main:
        return
    if (hint := stem_hint(name, model, size, arch_kwargs.get("stem"))) is not None:
        ctx.log.info(hint)
    if (other_size := resolution_hint(name, size, arch_kwargs.get("arch"))) is not None:
        record_warning(ctx, other_size)  # the search's latency and accuracy are not this network's


def siamese_network(model: torch.nn.Module, name: str, settings: SelfSupervisedSettings) -> SiameseNetwork:
    """The zoo model with the method's projection head (and SimSiam's predictor) in place of its classifier."""
    width = feature_dim(model, name)
    hidden = settings.hidden_dim or width
    simsiam = settings.name == "simsiam"
    projector = projection_head(width, hidden, settings.projection_dim, layers=settings.projection_layers,
                                bn_output=simsiam)
    predictor = prediction_head(settings.projection_dim, settings.predictor_hidden_dim) if simsiam else None
    return SiameseNetwork(model, name, projector, predictor)


def knn_monitor(ctx: RunContext, recipe: Recipe, runtime: Runtime, data: DataBundle,
                settings: SelfSupervisedSettings) -> KnnMonitor | None:
    """The kNN monitor on the validation split, its memory bank the labelled training images (a seeded
    `method.knn.bank_size` of them when set); None, with the reason logged, when there are no labels to score."""
    if len(data.classes) < 2 or len(data.val) == 0:  # one class: every neighbour agrees, 100 % says nothing
        ctx.log.info("kNN monitor off: %s has no validation images of two or more classes (a flat folder of "
                     "unlabeled images, or a single class folder)", data.name)
        return None
    bank: Dataset = data.train
    size = settings.knn_bank_size
    if size is not None and size < len(bank):  # type: ignore[arg-type]
        generator = torch.Generator().manual_seed(recipe.seed)
        bank = Subset(bank, sorted(torch.randperm(len(bank), generator=generator)[:size].tolist()))  # type: ignore[arg-type]
        held, classes = len(set(labels_of(bank))), len(data.classes)
        if held < classes and ctx.is_main:  # probe 202: a bank of 5 images of 4 digits read 9.72 %, unsaid
            record_warning(ctx, f"the kNN monitor's bank of {counted(size, 'image')} (method.knn.bank_size={size}) "
                                f"holds {held} of the {classes} classes: it cannot predict the other {classes - held}, "
                                "so knn acc reads low — raise method.knn.bank_size (null: every training image)")
    k = min(settings.knn_k, len(bank))  # type: ignore[arg-type]  # the vote's, as knn.py caps it: recorded as used
    capped = f" (method.knn.k={settings.knn_k}, capped at the bank's size)" if k < settings.knn_k else ""
    ctx.log.info("kNN monitor: k=%d%s, temperature %g, %d bank images, %d val images", k, capped,
                 settings.knn_temperature, len(bank), len(data.val))  # type: ignore[arg-type]
    return KnnMonitor(eval_loader(recipe, bank, workers=loader_workers(recipe, data)), len(data.classes),
                      k=k, temperature=settings.knn_temperature)


def self_supervised_metrics(result: FitResult, method: str) -> dict[str, Any]:
    """fit_metrics without the classifier's validation (its head was not trained), with the kNN accuracy."""
    metrics = {k: v for k, v in fit_metrics(result).items() if k not in ("best_val_acc", "best_epoch")}
    metrics["method"] = method
    if "knn_acc" in result.final:
        best = result.best
        metrics.update(knn_acc=result.final["knn_acc"], best_knn_acc=best.get("knn_acc"),
                       best_epoch=best.get("epoch"))
    return metrics
