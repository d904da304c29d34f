"""`cnnlab distill`: a trained teacher teaches a student; the run records what distillation bought.

1. The teacher (teacher=NAME, teacher.weights): weights trained for the task — a cnnlab run, a model.pt,
   a state dict, or ImageNet weights when the dataset has ImageNet's classes. Never a random teacher, nor
   one that scores chance on the validation images (refused before anything is spent on it).
2. The data: the dataset the teacher's run recorded (dataset=... picks another with the same classes), at
   the teacher's input size and normalisation.
3. The student (student=NAME, student.weights=none|imagenet|RUN) for the same classes and input size.
4. The teacher's logits for the train set are computed once when nothing in training is random
   (distill.cache_teacher=auto); otherwise the teacher runs every step, without gradients, under AMP.
5. The student trains with the KD objective through the one training engine; with distill.baseline=true
   the same student (same initial weights, seed, data order, optimizer, epochs) then trains on labels
   alone, so metrics.kd_gain says whether distillation helped.
6. The KD student is saved as an ordinary run (model.pt): export, quantize, prune and bench take it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from cnnlab.compress.distill import (DistillRole, DistillSettings, WithTeacherLogits, check_student_fits,
                                     kd_training, predict_logits, trained_teacher_weights)
from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets, resolve_input_spec
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.trainer import FitResult, evaluate
from cnnlab.errors import CnnlabError
from cnnlab.models import canonical_name
from cnnlab.steps.sources import source_dataset_config
from cnnlab.steps.switches import optimisation_on
from cnnlab.steps.training import Checkpointing, Trainable, classification_objective, loader_workers, make_loaders, setup_runtime, train_model
from cnnlab.steps.recording import TrainedModel, at_chance, fit_metrics, model_section, record_warning, save_and_record
from cnnlab.steps.resume import apply_resume
from cnnlab.runs import Source, latest_run, load_run, resolve_source
from cnnlab.weights import check_weights_arch, initial_model, resolve_weights

_NO_TEACHER = "train one first (`cnnlab finetune model={name}`), then use teacher.weights=latest:finetune"


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    refuse_unused_settings(cfg, ctx)
    cfg, resume_from = apply_resume(cfg, ctx)
    cfg = keep_resumed_teacher(cfg, resume_from)
    settings, recipe = DistillSettings.from_config(cfg.distill), Recipe.from_config(cfg)
    runtime = setup_runtime(cfg, recipe)

    teacher, source, data, dataset_cfg = teacher_and_data(cfg, ctx, runtime, settings)
    student = resolve_role(cfg, ctx, "student")
    check_student_fits(student, data)
    ctx.log.info("distill %s (%s) → %s (%s) on %s: %d classes, %d train / %d val images at %d px", teacher.name,
                 teacher.weights.description, student.name, student.weights.description, data.name,
                 len(data.classes), len(data.train), len(data.val), data.spec.size)
    teacher_model = runtime.prepare_model(initial_model(teacher.name, teacher.weights, data, new_head=False,
                                                        role="teacher"))
    seed_everything(recipe.seed)  # the student's initial weights do not depend on which teacher was built first
    student_model = initial_model(student.name, student.weights, data, new_head=None, role="student")
    baseline_model = copy.deepcopy(student_model) if settings.baseline else None  # the very same starting point
    roles = {r.role: {"weights": r.weights.description, "source": r.weights.source,
                      **model_section(r.name, data.spec.size, len(data.classes), model=m).to_dict()}
             for r, m in ((teacher, teacher_model), (student, student_model))}
    ctx.record.update(source=source.describe() if source else teacher.weights.source, distill=roles)

    workers = loader_workers(recipe, data)
    val_loader = make_loaders(recipe, runtime, data.train, data.val, workers=workers).val
    # Checked before anything is spent on it (the logit cache, the student's training).
    teacher_acc = evaluate(teacher_model, val_loader, runtime, desc="teacher val")["acc"] if len(data.val) else None
    check_teacher_learned(ctx, teacher, source, teacher_acc, data)
    roles["teacher"]["val_acc"] = teacher_acc
    ctx.record.update(distill=roles)

    cache = use_teacher_cache(settings, data, ctx)
    train_set, cache_seconds = data.train, None
    if cache:  # the teacher's logits for the train set, computed once
        started = time.perf_counter()
        train_set = WithTeacherLogits(data.train, predict_logits(teacher_model, data.train, runtime,
                                                                 batch_size=recipe.eval_batch))
        cache_seconds = time.perf_counter() - started
        ctx.log.info("cached the teacher's logits for %d train images in %.1f s", len(train_set), cache_seconds)
    trained_module, objective, stage_names = kd_training(settings, teacher, student, teacher_model, student_model,
                                                         data.spec.size, label_smoothing=recipe.label_smoothing)
    seed_everything(recipe.seed)
    kd = train_model(ctx, runtime, recipe, Trainable(runtime.prepare_model(trained_module)),
                     make_loaders(recipe, runtime, train_set, data.val, workers=workers), objective,
                     Checkpointing(resume_from=resume_from))
    baseline = None
    if baseline_model is not None:
        ctx.log.info("baseline: %s alone on the labels, same start, seed, data and budget", student.name)
        seed_everything(recipe.seed)
        # No last.pt: it belongs to the KD training (what resume= continues); the baseline is re-run instead.
        baseline = train_model(ctx, runtime, recipe, Trainable(runtime.prepare_model(baseline_model)),
                               make_loaders(recipe, runtime, data.train, data.val, workers=workers),
                               classification_objective(recipe, len(data.classes)), Checkpointing(enabled=False))

    ctx.record.update(distill={
        "temperature": settings.temperature, "alpha": settings.alpha, "feature": settings.feature,
        "feature_weight": settings.feature_weight if settings.feature else None, "feature_stages": stage_names,
        "augment": settings.augment, "cache_teacher": cache,
        "baseline": None if baseline is None else {k: v for k, v in fit_metrics(baseline).items()
                                                   if k != "train_images_per_s"}})
    trained = TrainedModel(model=student_model, name=student.name, arch_kwargs=student.weights.arch_kwargs, data=data,
                           dataset_config=dataset_cfg, weights=student.weights.description)
    metrics = fit_metrics(kd) | comparison_metrics(kd, baseline, teacher_acc, cache_seconds)
    return save_and_record(ctx, trained, metrics, extra={"distill": {
        "teacher": teacher.name, "teacher_weights": teacher.weights.description, "temperature": settings.temperature,
        "alpha": settings.alpha, "feature": settings.feature}})

def keep_resumed_teacher(cfg: DictConfig, resume_from: Path | None) -> DictConfig:
    """A resumed run keeps the teacher it started with, even if latest:finetune now names a newer run."""
    if resume_from is None:
        return cfg
    recorded = (load_run(resume_from.parent).data.get("source") or {}).get("path")
    if recorded:
        with open_dict(cfg):
            cfg.teacher.weights = recorded
    return cfg

def refuse_unused_settings(cfg: DictConfig, ctx: RunContext) -> None:
    if ctx.explicitly_set("model", "model.name", "model.weights"):
        raise CnnlabError("distill takes its two networks from teacher= and student=, not model=",
                          fix="e.g. `cnnlab distill teacher=resnet50 student=mobilenet "
                              "teacher.weights=latest:finetune`")
    if Recipe.from_config(cfg).mixes_images:
        raise CnnlabError("distill does not mix images (trainer.mixup/cutmix): the teacher's answers are for "
                          "the real images", fix="set trainer.mixup=0 trainer.cutmix=0")


def require_latest_run(spec: str, name: str, ctx: RunContext) -> None:
    """teacher.weights=latest[:command] with no such run: say how to get a teacher."""
    if spec != "latest" and not spec.startswith("latest:"):
        return
    command = spec.partition(":")[2] or None
    if latest_run(ctx.outputs, command, artifact="model") is None:
        what = f"`cnnlab {command}` run" if command else "run"
        raise CnnlabError(f"teacher.weights={spec}: there is no completed {what} with a model in {ctx.outputs}/ — "
                          "distillation needs a trained teacher",
                          fix=f"train one first (`cnnlab {command or 'finetune'} model={name}`), or pass "
                              "teacher.weights=RUN_FOLDER, path/to/model.pt or imagenet")

def teacher_and_data(cfg: DictConfig, ctx: RunContext, runtime: Runtime,
                     settings: DistillSettings) -> tuple[DistillRole, Source | None, DataBundle, DictConfig]:
    """The trained teacher, the run it comes from, and its data: the dataset its run recorded (unless
    dataset=/dataset.* is given here) at its input size and normalisation."""
    teacher = resolve_role(cfg, ctx, "teacher")
    if teacher.weights.kind == "none":
        raise CnnlabError("teacher.weights=none: a teacher needs weights trained for this task (a random teacher "
                          "teaches nothing)", fix=_NO_TEACHER.format(name=teacher.name))
    source = None
    if teacher.weights.kind == "run":
        source = resolve_source(str(cfg.teacher.weights), ctx.outputs, want=("checkpoint",), key="teacher.weights")
    dataset_cfg = source_dataset_config(cfg, ctx, source) if source else cfg.dataset
    spec = resolve_input_spec(dataset_cfg, teacher.weights.spec)
    trained_size = teacher.weights.spec.size if teacher.weights.spec and source else spec.size
    if spec.size != trained_size:
        raise CnnlabError(f"the teacher was trained on {trained_size} px images but the data would be {spec.size} px; "
                          "teacher and student must see the same input",
                          fix=f"drop dataset.image_size (or set it to {trained_size})")
    with main_process_first(runtime):
        data = build_datasets(dataset_cfg, spec, train_augment=settings.augment)
    return replace(teacher, weights=trained_teacher_weights(teacher, data)), source, data, dataset_cfg

def check_teacher_learned(ctx: RunContext, teacher: DistillRole, source: Source | None, acc: float | None,
                          data: DataBundle) -> None:
    """Refuse a teacher that scores chance on the validation images (it would teach noise); warn when there
    are no validation images to tell."""
    where = str(source.run.path if source and source.run else source.path if source else teacher.weights.description)
    if acc is None:
        record_warning(ctx, f"the teacher ({where}) cannot be checked: dataset {data.name} has no validation images; "
                            "make sure it is trained before trusting what it teaches")
        return
    ctx.log.info("teacher val acc %.2f%%", 100 * acc)
    n = len(data.classes)
    if at_chance(acc, n):
        raise CnnlabError(
            f"the teacher {teacher.name} ({where}) scores {acc:.1%} on the validation images, chance for {n} classes "
            f"(1/{n} = {1 / n:.1%}): it has nothing to teach",
            fix="retrain the teacher and pass the new run as teacher.weights=RUN; if its training accuracy was high, "
                "its BatchNorm statistics lag its weights: train it with trainer.precise_bn=true (and/or a lower "
                "optim.lr)")


def resolve_role(cfg: DictConfig, ctx: RunContext, role: str) -> DistillRole:
    node = cfg[role]
    spec = str(node.weights)
    name = canonical_name(str(node.name), role=role)  # an unknown name is reported first, with the choices
    if role == "teacher":
        require_latest_run(spec, name, ctx)
    weights = resolve_weights(spec, name, ctx.outputs, role=role)
    name = check_weights_arch(weights, name, model_chosen=ctx.explicitly_set(role, f"{role}.name"), role=role)
    return DistillRole(role=role, name=name, weights=weights)


def use_teacher_cache(settings: DistillSettings, data: DataBundle, ctx: RunContext) -> bool:
    """Cache the teacher's logits unless a training step could feed it something new."""
    reasons = []
    if data.random_train_transform:
        reasons.append("train transforms are random (distill.augment=true)")
    if settings.feature:
        reasons.append("the feature hint needs the teacher's features at every step (distill.feature=true)")
    return optimisation_on(settings.cache_teacher, reasons, key="distill.cache_teacher", ctx=ctx,
                           what="teacher runs every step")


def comparison_metrics(kd: FitResult, baseline: FitResult | None, teacher_acc: float | None,
                       cache_seconds: float | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {"teacher_val_acc": teacher_acc, "teacher_cache_seconds": cache_seconds}
    if baseline is not None:
        metrics.update(baseline_val_acc=baseline.final["val_acc"],
                       kd_gain=kd.final["val_acc"] - baseline.final["val_acc"])
    return metrics
