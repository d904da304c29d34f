"""`cnnlab pretrain`: train a network from random weights and keep the checkpoint."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from cnnlab.context import RunContext
from cnnlab.data import build_datasets, resolve_input_spec
from cnnlab.engine.runtime import main_process_first
from cnnlab.errors import CnnlabError
from cnnlab.models import canonical_name, create_model, get_entry
from cnnlab.engine.recipe import Recipe
from cnnlab.steps.training import Checkpointing, Trainable, classification_objective, loader_workers, make_loaders, setup_runtime, train_model
from cnnlab.steps.recording import TrainedModel, fit_metrics, save_and_record
from cnnlab.steps.resume import apply_resume

METHODS = ("supervised",)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    method = str(cfg.pretrain.method)
    if method not in METHODS:
        raise CnnlabError(f"pretrain.method={method} is not available", fix=f"use one of: {', '.join(METHODS)}")
    if str(cfg.model.weights).lower() not in ("none", "null"):
        raise CnnlabError(f"pretrain starts from random weights, but model.weights={cfg.model.weights}",
                          fix="use `cnnlab finetune model.weights=...` to start from existing weights")
    cfg, resume_from = apply_resume(cfg, ctx)
    recipe = Recipe.from_config(cfg)
    runtime = setup_runtime(cfg, recipe)
    name = canonical_name(cfg.model.name)

    # From scratch, a network that takes any channel count learns grayscale sets in one channel.
    spec = resolve_input_spec(cfg.dataset, None, any_channels=get_entry(name).any_channels)
    arch_kwargs = {"in_channels": spec.channels} if spec.channels != 3 else {}
    with main_process_first(runtime):
        data = build_datasets(cfg.dataset, spec)
    ctx.log.info("pretrain %s on %s: %d classes, %d train / %d val images at %d px", name, data.name,
                 len(data.classes), len(data.train), len(data.val), spec.size)

    model = runtime.prepare_model(create_model(name, num_classes=len(data.classes), image_size=spec.size,
                                               **arch_kwargs))
    loaders = make_loaders(recipe, runtime, data.train, data.val, workers=loader_workers(recipe, data))
    result = train_model(ctx, runtime, recipe, Trainable(model), loaders,
                         classification_objective(recipe, len(data.classes)), Checkpointing(resume_from=resume_from))
    trained = TrainedModel(model=model, name=name, arch_kwargs=arch_kwargs, data=data, dataset_config=cfg.dataset,
                           weights="random initialisation")
    return save_and_record(ctx, trained, fit_metrics(result))
