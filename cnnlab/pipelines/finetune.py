"""`cnnlab finetune`: transfer learning — a pretrained backbone, a new head, and one of three modes.

linear   the backbone is frozen (eval mode); only the head trains. With deterministic transforms the
         backbone's features are computed once and the head trains on the cached tensors.
partial  the last `finetune.unfreeze` backbone stages and everything after them train.
full     everything trains; the backbone at optim.lr * finetune.backbone_lr_scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets, check_dataset, make_loader, resolve_input_spec
from cnnlab.engine.features import extract_features
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.engine.trainer import FitResult
from cnnlab.errors import CnnlabError
from cnnlab.models import FINETUNE_MODES, MODELS, create_model, first_trainable, freeze_before, load_pretrained, replace_head
from cnnlab.pipelines.switches import optimisation_on, tristate
from cnnlab.pipelines.training import (TrainedModel, apply_resume, classification_objective, eval_batch_size,
                                       fit_metrics, loader_workers, make_loaders, save_and_record, setup_runtime, train)
from cnnlab.weights import InitialWeights, check_weights_arch, resolve_weights



@dataclass(frozen=True)
class Plan:
    mode: str
    unfreeze: int
    backbone_lr_scale: float
    new_head: bool | None
    augment: bool
    cache_features: bool | None

    @classmethod
    def from_config(cls, section: DictConfig) -> "Plan":
        mode = str(section.mode)
        if mode not in FINETUNE_MODES:
            raise CnnlabError(f"finetune.mode={mode} is not a mode", fix=f"use one of: {', '.join(FINETUNE_MODES)}")
        augment = tristate(section.augment, "finetune.augment")
        return cls(mode=mode, unfreeze=int(section.unfreeze), backbone_lr_scale=float(section.backbone_lr_scale),
                   new_head=tristate(section.new_head, "finetune.new_head"),
                   augment=(mode != "linear") if augment is None else augment,
                   cache_features=tristate(section.cache_features, "finetune.cache_features"))


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    cfg, resume_from = apply_resume(cfg, ctx)
    plan = Plan.from_config(cfg.finetune)
    runtime = setup_runtime(cfg)
    check_dataset(cfg.dataset)  # a missing folder is reported before a missing weights file
    weights = resolve_weights(cfg.model.weights, cfg.model.name, ctx.outputs)
    name = check_weights_arch(weights, cfg.model.name, model_chosen=ctx.explicitly_set("model", "model.name"))
    if not weights.pretrained:
        ctx.log.warning("model.weights=none: the backbone starts from random weights (this is pretraining)")

    spec = resolve_input_spec(cfg.dataset, weights.spec)
    with main_process_first(runtime):
        data = build_datasets(cfg.dataset, spec, train_augment=plan.augment)
    ctx.log.info("finetune %s (%s) on %s: %d classes, %d train / %d val images at %d px, mode=%s", name,
                 weights.description, data.name, len(data.classes), len(data.train), len(data.val), spec.size, plan.mode)

    model = initial_model(name, weights, data, plan.new_head)
    head_path = MODELS[name].head
    frozen = freeze(model, name, plan)
    model = runtime.prepare_model(model)
    objective = classification_objective(cfg, len(data.classes))
    started = time.perf_counter()
    if use_feature_cache(plan, data, runtime, cfg, ctx, resume=resume_from is not None):
        result = train_head_on_features(cfg, ctx, runtime, model, head_path, data)
    else:
        train_loader, val_loader = make_loaders(cfg, runtime, data.train, data.val,
                                                workers=loader_workers(cfg, data))
        result = train(cfg, ctx, runtime, model, train_loader, val_loader, objective=objective,
                       head=model.get_submodule(head_path), frozen=frozen,
                       backbone_lr_scale=plan.backbone_lr_scale, resume_from=resume_from)
    training_seconds = time.perf_counter() - started  # caching included: the cost a user waits for
    trained = TrainedModel(model=model, name=name, arch_kwargs=weights.arch_kwargs, data=data,
                           dataset_config=cfg.dataset, weights=weights.description)
    if weights.source:
        ctx.record.update(source=weights.source)
    metrics = fit_metrics(result) | {"finetune_mode": plan.mode, "training_seconds": training_seconds}
    return save_and_record(ctx, trained, metrics,
                           extra={"finetune": {"mode": plan.mode, "weights": weights.description}})


def initial_model(name: str, weights: InitialWeights, data: DataBundle, new_head: bool | None, *,
                  role: str = "model") -> nn.Module:
    """Build `name` with the weights' own head, load the weights, then give it a head for the data's
    classes (new_head auto: only when the classes differ). `role` names the setting in errors."""
    size = data.spec.size
    if not weights.pretrained:
        return create_model(name, num_classes=len(data.classes), image_size=size)
    own_classes = len(weights.classes) if weights.classes else len(data.classes)
    model = create_model(name, num_classes=own_classes, image_size=size, **weights.arch_kwargs)
    if weights.kind == "run":
        from cnnlab.models import apply_structure

        if weights.structure:
            apply_structure(model, weights.structure)
        model.load_state_dict(weights.state_dict)
    else:
        load_pretrained(model, name, weights.state_dict, role=role)
    same_classes = weights.classes is not None and list(weights.classes) == list(data.classes)
    if new_head is False and not same_classes:
        raise CnnlabError(f"the {role}'s weights know {own_classes} classes but dataset {data.name} has "
                          f"{len(data.classes)} (or other names)",
                          fix=f"give {role}.weights trained on this dataset"
                              + (", or use finetune.new_head=auto" if role == "model" else ""))
    if new_head or not same_classes:
        replace_head(model, name, len(data.classes))
    return model


def freeze(model: nn.Module, name: str, plan: Plan) -> list[nn.Module]:
    """Freeze what `plan.mode` keeps fixed; returns the frozen leaf modules (kept in eval mode while training)."""
    return freeze_before(model, first_trainable(name, plan.mode, plan.unfreeze))


def use_feature_cache(plan: Plan, data: DataBundle, runtime: Runtime, cfg: DictConfig, ctx: RunContext, *,
                      resume: bool) -> bool:
    if plan.mode != "linear":
        return False
    reasons = []
    if data.random_train_transform:
        reasons.append("train transforms are random (finetune.augment=true)")
    if runtime.distributed:
        reasons.append("running under DDP")
    if resume:
        reasons.append("resuming a run")
    if float(cfg.trainer.get("mixup", 0)) or float(cfg.trainer.get("cutmix", 0)):
        reasons.append("mixup/cutmix mixes images")
    return optimisation_on(plan.cache_features, reasons, key="finetune.cache_features", ctx=ctx,
                           what="feature cache off")


def train_head_on_features(cfg: DictConfig, ctx: RunContext, runtime: Runtime, model: nn.Module, head_path: str,
                           data: DataBundle) -> FitResult:
    """Run the frozen backbone once over train and val, then train the head on the cached features."""
    batch = eval_batch_size(cfg)
    seed = int(cfg.seed)
    train_features = extract_features(model, head_path, make_loader(data.train, batch, shuffle=False, seed=seed),
                                      runtime, "train features")
    val_features = extract_features(model, head_path, make_loader(data.val, batch, shuffle=False, seed=seed),
                                    runtime, "val features")
    ctx.log.info("cached %d-dim features for %d train / %d val images", train_features.tensors[0].shape[1],
                 len(train_features), len(val_features))
    head = model.get_submodule(head_path)
    train_loader, val_loader = make_loaders(cfg, runtime, train_features, val_features)
    # No last.pt: it would hold the head alone, and recomputing the cache is cheaper than resuming.
    return train(cfg, ctx, runtime, head, train_loader, val_loader,
                 objective=classification_objective(cfg, len(data.classes)), head=head, checkpoint=False)
