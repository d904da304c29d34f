"""The teacher's side of `cnnlab distill`: the data it was trained on, the check that it learned something, and
its logits for the train set, computed once when nothing in training is random."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset

from cnnlab.compress.distill import DistillSettings, WithTeacherLogits, predict_logits
from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets, resolve_input_spec
from cnnlab.data.spec import IMAGENET_MEAN
from cnnlab.engine.runtime import Runtime, main_process_first
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.runs import Source, resolve_source
from cnnlab.models import canonical_name, imagenet_recipe
from cnnlab.steps.distill_roles import (DistillRole, drop_typed_data, imagenet_teacher_error, resolve_role,
                                      train_a_teacher, trained_teacher_weights)
from cnnlab.weights import class_order
from cnnlab.steps.recording import at_chance, record_warning
from cnnlab.steps.input_settings import refuse_ignored_input_settings
from cnnlab.steps.sources import (check_val_settings, dataset_config_of, resumed_dataset_config, source_dataset_config,
                                   with_file_dataset)
from cnnlab.steps.switches import optimisation_on


@dataclass(frozen=True)
class TeacherData:
    """The trained teacher (its weights checked against the data's classes), the cnnlab run it comes from (None
    for ImageNet weights or a plain file), its data, and the resolved dataset config that data was built from."""

    teacher: DistillRole
    source: Source | None
    data: DataBundle
    dataset_config: DictConfig


@found_before_work()  # it only reads: a refusal leaves no `failed` run (probe 121: "there is no completed … run")
def teacher_and_data(cfg: DictConfig, ctx: RunContext, runtime: Runtime, settings: DistillSettings,
                     resume_from: Path | None = None) -> TeacherData:
    """The teacher and its data: the dataset its run recorded (unless dataset=/dataset.* is given here; a resume's:
    the data its own run trained on, `resumed_dataset_config`) at its input size and normalisation. Raises
    CnnlabError for a random teacher, another input size, other classes."""
    if str(cfg.teacher.weights).strip().lower() == "imagenet":
        return _imagenet_teacher_and_data(cfg, ctx, runtime, settings)
    teacher = resolve_role(cfg, ctx, "teacher")
    if teacher.weights.kind == "none":
        raise CnnlabError("teacher.weights=none: a teacher needs weights trained for this task (a random teacher "
                          "teaches nothing)", fix=train_a_teacher(teacher.name, str(cfg.dataset.name)))
    source = None
    if teacher.weights.kind == "run":
        # a run.json that lost its dataset: the teacher's model.pt records it too (as prune, quantize and export read)
        source = with_file_dataset(resolve_source(str(cfg.teacher.weights), ctx.outputs, want=("checkpoint",),
                                                  key="teacher.weights"))
    resumed = resumed_dataset_config(cfg, ctx, resume_from)
    dataset_cfg = resumed if resumed is not None else source_dataset_config(cfg, ctx, source, labels="own") if source \
        else cfg.dataset
    if source is not None:  # the teacher's val accuracy (and what the students are scored on) on its own val split
        check_val_settings(ctx, source, dataset_cfg)
    spec = resolve_input_spec(dataset_cfg, teacher.weights.spec, size_recorded=teacher.weights.size_recorded)
    if teacher.weights.spec is not None:  # the teacher's normalisation applies: a typed dataset.mean=/std= was
        # ignored, unsaid, and recorded in run.json's dataset.config as used — then handed on to runs made from it
        # (probe 205). A plain state dict's is the one typed (steps/input_settings.typed_normalisation).
        refuse_ignored_input_settings(cfg, ctx, spec, "the teacher", keys=("mean", "std"))
    trained_size = teacher.weights.spec.size if teacher.weights.spec and source else spec.size
    if spec.size != trained_size:
        recorded = (dataset_config_of(source.run) or {}).get("name") if source is not None else None
        if ctx.explicitly_set("dataset.image_size"):
            fix = f"drop dataset.image_size (or set it to {trained_size})"
        elif recorded and ctx.explicitly_set("dataset", "dataset.name"):  # probe 121: "its records say none"
            drop = drop_typed_data(ctx.typed("dataset"))
            fix = f"{drop} to distill on the teacher's own data ({recorded}), or pick a teacher trained on " \
                  f"{dataset_cfg.name}: {train_a_teacher(teacher.name, str(dataset_cfg.name))}"
        else:
            fix = "name the data the teacher was trained on with dataset=NAME (its records say none)"
        raise CnnlabError(f"the teacher was trained on {trained_size} px images but the data would be {spec.size} px; "
                          "teacher and student must see the same input", fix=fix)
    if source is not None and teacher.weights.spec is not None and teacher.weights.spec.recorded:
        # the frozen teacher reads the pictures as its run records (resize, crop), as `cnnlab evaluate` does: a folder
        # holding its in-memory digits was read with a photo's centre crop, 72.50 % → 68.61 % unsaid (probe 175)
        spec = teacher.weights.spec
    with main_process_first(runtime):
        data = build_datasets(dataset_cfg, spec, train_augment=settings.augment)
    weights = trained_teacher_weights(teacher, data, ctx.typed("dataset"))
    return TeacherData(replace(teacher, weights=weights), source, data, dataset_cfg)


def _imagenet_teacher_and_data(cfg: DictConfig, ctx: RunContext, runtime: Runtime,
                               settings: DistillSettings) -> TeacherData:
    """teacher.weights=imagenet: the data, at the weights' own input recipe, is built and its classes checked before
    the weights are read — fetched, where the hub cache lacks them (stop 64: data of other classes, nearly always,
    was refused only after a 45 MB download, or offline after a fix that said to download it)."""
    name = canonical_name(str(cfg.teacher.name), role="teacher")
    spec, classes = imagenet_recipe(name, role="teacher")
    with main_process_first(runtime):
        data = build_datasets(cfg.dataset, resolve_input_spec(cfg.dataset, spec), train_augment=settings.augment)
    if class_order(classes, data.classes) is None:
        raise imagenet_teacher_error(len(classes), name, data)
    teacher = resolve_role(cfg, ctx, "teacher")
    weights = trained_teacher_weights(teacher, data, ctx.typed("dataset"))
    return TeacherData(replace(teacher, weights=weights), None, data, cfg.dataset)


@found_before_work()  # a setting or input refused: the run it stops leaves no folder (probe 100)
def check_teacher_learned(ctx: RunContext, teacher: DistillRole, source: Source | None, acc: float | None,
                          data: DataBundle, batchnorm: bool = True) -> None:
    """Refuse a teacher whose validation accuracy `acc` (0..1) is at chance (it would teach noise): CnnlabError;
    `batchnorm`: whether the teacher has BatchNorm layers, whose lagging statistics the fix then names. With no
    validation images (`acc` None) warn, in the log and run.json, that it cannot be checked."""
    where = str(source.origin if source else teacher.weights.description)
    if acc is None:
        record_warning(ctx, f"the teacher ({where}) cannot be checked: dataset {data.name} has no validation images; "
                            "make sure it is trained before trusting what it teaches")
        return
    ctx.log.info("teacher val acc %.2f%%", 100 * acc)
    n = len(data.classes)
    # a plain state dict names no classes: its outputs are taken in the data's order (probe 82: a teacher of another
    # order was refused as "at chance" with a BatchNorm fix; with few classes swapped it would pass and mislead)
    ordered = teacher.weights.kind == "file"
    order = f"{data.name}'s classes in order ({', '.join(data.classes[:6])}{', ...' if n > 6 else ''})"
    if ordered:  # nor its normalisation: a cnnlab teacher saved as .pth lost 30 points so, unsaid (probe 121)
        imagenet = tuple(data.spec.mean) == IMAGENET_MEAN[:len(data.spec.mean)]
        ctx.log.info("teacher.weights is a plain state dict, which names no classes, input size or normalisation: "
                     "its %d outputs are read as %s, its inputs at %d px (%s; dataset.image_size sets another), "
                     "normalised with mean %s, std %s%s", n, order, data.spec.size, data.spec.geometry_words(),
                     list(data.spec.mean[:data.spec.channels]), list(data.spec.std[:data.spec.channels]),
                     " (ImageNet's, as torchvision's weights expect: dataset.mean= and dataset.std= set others; pass "
                     "its cnnlab run where it has one)" if imagenet else "")
    if at_chance(acc, n):
        raise CnnlabError(
            f"the teacher {teacher.name} ({where}) scores {acc:.1%} on the validation images, chance for {n} classes "
            f"(1/{n} = {1 / n:.1%}): it has nothing to teach",
            fix=(f"if it was trained at another size than {data.spec.size} px, give that (dataset.image_size=N), or "
                 "with another normalisation (dataset.mean=[…] dataset.std=[…]); a state dict names no classes, so "
                 f"one trained with another class order than {order} can only be read through its cnnlab run "
                 "(teacher.weights=RUN, which records classes, size and normalisation); otherwise "
                 if ordered else "")
                + "retrain the teacher and pass the new run as teacher.weights=RUN"
                + ("; if its training accuracy was high, its BatchNorm statistics lag its weights: train it with "
                   "trainer.precise_bn=true (and/or a lower optim.lr)" if batchnorm else ""))


@dataclass(frozen=True)
class TeacherCache:
    """The train set the student learns from: with `used`, (image, label, teacher logits) items whose logits took
    `seconds` to compute; otherwise the plain train set (the teacher then runs every step) and `seconds` None."""

    train_set: Dataset
    used: bool
    seconds: float | None


def teacher_logit_cache(ctx: RunContext, settings: DistillSettings, data: DataBundle, teacher_model: nn.Module,
                        runtime: Runtime, *, batch_size: int, images_read: int | None = None) -> TeacherCache:
    """The teacher's logits for the train set, computed once in batches of `batch_size` — unless a training step
    could feed it something new (random train transforms, the feature hint): distill.cache_teacher=auto then
    says why in the log, and =true is a CnnlabError. `images_read`: the training images the student's epochs read
    in all (Recipe.images_read); fewer than the train set (trainer.max_steps_per_epoch) and `auto` lets the teacher
    run per step instead, on those images alone (probe 70: 60,000 logits computed for 1,280 steps' images)."""
    if not use_teacher_cache(settings, data, ctx):
        return TeacherCache(data.train, used=False, seconds=None)
    if settings.cache_teacher is None and images_read is not None and images_read < len(data.train):
        ctx.log.info("teacher runs every step: the student reads %s training images in all (trainer.epochs x "
                     "max_steps_per_epoch batches), fewer than the %s a cache of logits would compute",
                     f"{images_read:,}", f"{len(data.train):,}")
        return TeacherCache(data.train, used=False, seconds=None)
    started = time.perf_counter()
    train_set = WithTeacherLogits(data.train, predict_logits(teacher_model, data.train, runtime, batch_size=batch_size))
    seconds = time.perf_counter() - started
    ctx.log.info("cached the teacher's logits for %d train images in %.1f s", len(train_set), seconds)
    return TeacherCache(train_set, used=True, seconds=seconds)


@found_before_work()  # distill.cache_teacher=true refused: nothing was trained (probe 121)
def use_teacher_cache(settings: DistillSettings, data: DataBundle, ctx: RunContext) -> bool:
    """Cache the teacher's logits unless a training step could feed it something new — or nothing reads them
    (distill.alpha=0 without the feature hint: the student learns from the labels alone)."""
    if settings.alpha == 0 and not settings.feature:
        ctx.log.info("teacher's logits not computed: distill.alpha=0 trains the student on the labels alone")
        return False
    reasons = []
    if data.random_train_transform:
        reasons.append("train transforms are random (distill.augment=true)")
    if settings.feature:
        reasons.append("the feature hint needs the teacher's features at every step (distill.feature=true)")
    return optimisation_on(settings.cache_teacher, reasons, key="distill.cache_teacher", ctx=ctx,
                           what="teacher runs every step")
