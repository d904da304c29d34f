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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn
from torch.utils.data import Dataset

from cnnlab.compress.distill import (DistillationObjective, HintAdapter, HintedStudent, WithTeacherLogits,
                                     check_kd_settings, predict_logits, stage_output_shape)
from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets, resolve_input_spec
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.trainer import FitResult, Trainer, TrainerSettings
from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, canonical_name, count_flops, count_params, feature_stages
from cnnlab.pipelines.finetune import initial_model
from cnnlab.pipelines.switches import optimisation_on, tristate
from cnnlab.pipelines.sources import source_dataset_config
from cnnlab.pipelines.training import (TrainedModel, apply_resume, at_chance, classification_objective,
                                       eval_batch_size, fit_metrics, loader_workers, make_loaders, record_warning,
                                       save_and_record, setup_runtime, train)
from cnnlab.runs import Source, latest_run, load_run, resolve_source
from cnnlab.weights import InitialWeights, check_weights_arch, resolve_weights

_TRAIN_A_TEACHER = "train one first (`cnnlab finetune model={name}`), then use teacher.weights=latest:finetune"


@dataclass(frozen=True)
class Plan:
    temperature: float
    alpha: float
    feature: bool
    feature_weight: float
    feature_stages: tuple[int, int]   # (student stage, teacher stage) indices
    cache_teacher: bool | None        # None = auto
    augment: bool
    baseline: bool

    @classmethod
    def from_config(cls, section: DictConfig) -> "Plan":
        stages = section.feature_stages
        if not (OmegaConf.is_list(stages) and len(stages) == 2 and all(isinstance(i, int) for i in stages)):
            raise CnnlabError(f"distill.feature_stages={stages} needs two indices: [student stage, teacher stage]",
                              fix="use distill.feature_stages=[-1,-1]")
        plan = cls(temperature=float(section.temperature), alpha=float(section.alpha), feature=bool(section.feature),
                   feature_weight=float(section.feature_weight), feature_stages=(stages[0], stages[1]),
                   cache_teacher=tristate(section.cache_teacher, "distill.cache_teacher"),
                   augment=bool(section.augment), baseline=bool(section.baseline))
        check_kd_settings(plan.temperature, plan.alpha)
        return plan


@dataclass
class Member:
    """The teacher or the student: a zoo name and the weights it starts from."""

    role: str
    name: str
    weights: InitialWeights


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    refuse_unused_settings(cfg, ctx)
    cfg, resume_from = apply_resume(cfg, ctx)
    cfg = keep_resumed_teacher(cfg, resume_from)
    plan = Plan.from_config(cfg.distill)
    runtime = setup_runtime(cfg)
    seed = int(cfg.seed)

    teacher, source, data, dataset_cfg = teacher_and_data(cfg, ctx, runtime, plan)
    student = resolve_member(cfg, ctx, "student")
    check_student_fits(student, data)
    ctx.log.info("distill %s (%s) → %s (%s) on %s: %d classes, %d train / %d val images at %d px", teacher.name,
                 teacher.weights.description, student.name, student.weights.description, data.name,
                 len(data.classes), len(data.train), len(data.val), data.spec.size)
    teacher_model = runtime.prepare_model(initial_model(teacher.name, teacher.weights, data, new_head=False,
                                                        role="teacher"))
    seed_everything(seed)  # the student's initial weights do not depend on which teacher was built first
    student_model = initial_model(student.name, student.weights, data, new_head=None, role="student")
    baseline_model = copy.deepcopy(student_model) if plan.baseline else None  # the very same starting point
    members = {"teacher": describe_member(teacher, teacher_model, data.spec.size),
               "student": describe_member(student, student_model, data.spec.size)}
    ctx.record.update(source=source.describe() if source else teacher.weights.source, distill=members)

    workers = loader_workers(cfg, data)
    _, val_loader = make_loaders(cfg, runtime, data.train, data.val, workers=workers)
    # Checked before anything is spent on it (the logit cache, the student's training).
    teacher_acc = Trainer(runtime, TrainerSettings.from_config(cfg.trainer)).evaluate(
        teacher_model, val_loader, desc="teacher val")["acc"] if len(data.val) else None
    check_teacher_learned(ctx, teacher, source, teacher_acc, data)
    members["teacher"]["val_acc"] = teacher_acc
    ctx.record.update(distill=members)

    cache = use_teacher_cache(plan, data, ctx)
    train_set, cache_seconds = with_cached_teacher_logits(cfg, ctx, runtime, teacher_model, data) if cache \
        else (data.train, None)
    train_loader, _ = make_loaders(cfg, runtime, train_set, data.val, workers=workers)

    trained_module, objective, stage_names = kd_setup(plan, cfg, teacher, student, teacher_model, student_model,
                                                      data.spec.size)
    seed_everything(seed)
    kd = train(cfg, ctx, runtime, runtime.prepare_model(trained_module), train_loader, val_loader,
               objective=objective, resume_from=resume_from)
    baseline = None
    if baseline_model is not None:
        ctx.log.info("baseline: %s alone on the labels, same start, seed, data and budget", student.name)
        seed_everything(seed)
        plain_loader, _ = make_loaders(cfg, runtime, data.train, data.val, workers=workers)
        # No last.pt: it belongs to the KD training (what resume= continues); the baseline is re-run instead.
        baseline = train(cfg, ctx, runtime, runtime.prepare_model(baseline_model), plain_loader, val_loader,
                         objective=classification_objective(cfg, len(data.classes)), checkpoint=False)

    ctx.record.update(distill={
        "temperature": plan.temperature, "alpha": plan.alpha, "feature": plan.feature,
        "feature_weight": plan.feature_weight if plan.feature else None, "feature_stages": stage_names,
        "augment": plan.augment, "cache_teacher": cache, "baseline": baseline_summary(baseline)})
    trained = TrainedModel(model=student_model, name=student.name, arch_kwargs=student.weights.arch_kwargs, data=data,
                           dataset_config=dataset_cfg, weights=student.weights.description)
    metrics = fit_metrics(kd) | comparison_metrics(kd, baseline, teacher_acc, cache_seconds)
    return save_and_record(ctx, trained, metrics, extra={"distill": {
        "teacher": teacher.name, "teacher_weights": teacher.weights.description, "temperature": plan.temperature,
        "alpha": plan.alpha, "feature": plan.feature}})


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
    if float(cfg.trainer.get("mixup", 0)) or float(cfg.trainer.get("cutmix", 0)):
        raise CnnlabError("distill does not mix images (trainer.mixup/cutmix): the teacher's answers are for "
                          "the real images", fix="set trainer.mixup=0 trainer.cutmix=0")


# ------------------------------------------------------------------------------------------------ the two networks
def resolve_member(cfg: DictConfig, ctx: RunContext, role: str) -> Member:
    node = cfg[role]
    spec = str(node.weights)
    name = canonical_name(str(node.name), role=role)  # an unknown name is reported first, with the choices
    if role == "teacher":
        require_latest_run(spec, name, ctx)
    weights = resolve_weights(spec, name, ctx.outputs, role=role)
    name = check_weights_arch(weights, name, model_chosen=ctx.explicitly_set(role, f"{role}.name"), role=role)
    return Member(role=role, name=name, weights=weights)


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
                     plan: Plan) -> tuple[Member, Source | None, DataBundle, DictConfig]:
    """The trained teacher, the run it comes from, and its data: the dataset its run recorded (unless
    dataset=/dataset.* is given here) at its input size and normalisation."""
    teacher = resolve_member(cfg, ctx, "teacher")
    if teacher.weights.kind == "none":
        raise CnnlabError("teacher.weights=none: a teacher needs weights trained for this task (a random teacher "
                          "teaches nothing)", fix=_TRAIN_A_TEACHER.format(name=teacher.name))
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
        data = build_datasets(dataset_cfg, spec, train_augment=plan.augment)
    return replace(teacher, weights=trained_teacher_weights(teacher, data)), source, data, dataset_cfg


def trained_teacher_weights(teacher: Member, data: DataBundle) -> InitialWeights:
    """The teacher's weights, checked to be trained for exactly the data's classes."""
    weights, n = teacher.weights, len(data.classes)
    if weights.kind == "file":  # a plain state dict: its head must already have one output per class
        head = weights.state_dict.get(f"{MODELS[teacher.name].head}.weight") if weights.state_dict else None
        rows = None if head is None else int(head.shape[0])
        if rows != n:
            raise CnnlabError(f"teacher.weights: {weights.description} has a {rows}-way head but dataset {data.name} "
                              f"has {n} classes", fix=_TRAIN_A_TEACHER.format(name=teacher.name))
        return replace(weights, classes=list(data.classes))  # a state dict has no names: same order assumed
    if list(weights.classes or []) != list(data.classes):
        if weights.kind == "imagenet":
            raise CnnlabError(f"teacher.weights=imagenet is a {len(weights.classes or [])}-class ImageNet classifier, "
                              f"not a teacher for dataset {data.name} ({n} classes)",
                              fix=_TRAIN_A_TEACHER.format(name=teacher.name))
        raise CnnlabError(f"the teacher knows {len(weights.classes or [])} classes but dataset {data.name} has {n} "
                          "(or other names)", fix="drop dataset= to distill on the teacher's own dataset, or pick "
                                                  "a teacher trained on this one")
    return weights


def check_teacher_learned(ctx: RunContext, teacher: Member, source: Source | None, acc: float | None,
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


def check_student_fits(student: Member, data: DataBundle) -> None:
    """A student that starts from a cnnlab run must have been trained for the teacher's classes and size."""
    weights = student.weights
    if weights.kind != "run":
        return  # random or ImageNet weights: the head is made for the data's classes
    if list(weights.classes or []) != list(data.classes):
        raise CnnlabError(f"student.weights is a run trained on {len(weights.classes or [])} classes, but the teacher "
                          f"and dataset {data.name} have {len(data.classes)} (or other names)",
                          fix="use student.weights=none or imagenet, or a student run trained on the teacher's data")
    if weights.spec is not None and weights.spec.size != data.spec.size:
        raise CnnlabError(f"student.weights is a run trained on {weights.spec.size} px images, but the teacher "
                          f"takes {data.spec.size} px", fix="use student.weights=none or imagenet, or a student "
                                                            "run trained at the teacher's input size")


def describe_member(member: Member, model: nn.Module, image_size: int) -> dict[str, Any]:
    return {"name": member.name, "weights": member.weights.description, "source": member.weights.source,
            "params": count_params(model), "flops": count_flops(model, image_size)}


# ------------------------------------------------------------------------------------------------ training
def use_teacher_cache(plan: Plan, data: DataBundle, ctx: RunContext) -> bool:
    """Cache the teacher's logits unless a training step could feed it something new."""
    reasons = []
    if data.random_train_transform:
        reasons.append("train transforms are random (distill.augment=true)")
    if plan.feature:
        reasons.append("the feature hint needs the teacher's features at every step (distill.feature=true)")
    return optimisation_on(plan.cache_teacher, reasons, key="distill.cache_teacher", ctx=ctx,
                           what="teacher runs every step")


def with_cached_teacher_logits(cfg: DictConfig, ctx: RunContext, runtime: Runtime, teacher_model: nn.Module,
                               data: DataBundle) -> tuple[Dataset, float]:
    """The train set with the teacher's logits attached (computed once), and the seconds that took."""
    start = time.perf_counter()
    logits = predict_logits(teacher_model, data.train, runtime, batch_size=eval_batch_size(cfg))
    seconds = time.perf_counter() - start
    ctx.log.info("cached the teacher's logits for %d train images in %.1f s", len(logits), seconds)
    return WithTeacherLogits(data.train, logits), seconds


def kd_setup(plan: Plan, cfg: DictConfig, teacher: Member, student: Member, teacher_model: nn.Module,
             student_model: nn.Module, image_size: int) -> tuple[nn.Module, DistillationObjective, list[str] | None]:
    """What trains (the student, or the student with its hint adapter), its objective, and the hint stages."""
    label_smoothing = float(cfg.trainer.get("label_smoothing", 0.0))
    if not plan.feature:
        return student_model, DistillationObjective(teacher_model, temperature=plan.temperature, alpha=plan.alpha,
                                                    label_smoothing=label_smoothing), None
    student_path, student_stage = pick_stage(student, student_model, plan.feature_stages[0])
    teacher_path, teacher_stage = pick_stage(teacher, teacher_model, plan.feature_stages[1])
    adapter = HintAdapter(stage_output_shape(student_model, student_stage, image_size),
                          stage_output_shape(teacher_model, teacher_stage, image_size))
    objective = DistillationObjective(teacher_model, temperature=plan.temperature, alpha=plan.alpha,
                                      label_smoothing=label_smoothing, teacher_stage=teacher_stage,
                                      feature_weight=plan.feature_weight)
    return HintedStudent(student_model, student_stage, adapter), objective, [student_path, teacher_path]


def pick_stage(member: Member, model: nn.Module, index: int) -> tuple[str, nn.Module]:
    """(stage name, the module whose output is the stage's output) for distill.feature_stages."""
    stages = feature_stages(model, member.name)
    if not -len(stages) <= index < len(stages):
        raise CnnlabError(f"distill.feature_stages: {member.role} {member.name} has {len(stages)} stages, "
                          f"no stage {index}", fix=f"use -{len(stages)}..{len(stages) - 1} "
                                                   f"({', '.join(path for path, _ in stages)})")
    path, stage = stages[index]
    return path, stage[-1]


def comparison_metrics(kd: FitResult, baseline: FitResult | None, teacher_acc: float | None,
                       cache_seconds: float | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {"teacher_val_acc": teacher_acc, "teacher_cache_seconds": cache_seconds}
    if baseline is not None:
        metrics.update(baseline_val_acc=baseline.final["val_acc"],
                       kd_gain=kd.final["val_acc"] - baseline.final["val_acc"])
    return metrics


def baseline_summary(baseline: FitResult | None) -> dict[str, Any] | None:
    if baseline is None:
        return None
    return {key: value for key, value in fit_metrics(baseline).items() if key != "train_images_per_s"}
