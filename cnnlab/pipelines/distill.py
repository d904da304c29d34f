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
import math
from typing import Any

from omegaconf import DictConfig

from cnnlab.compress.distill import DistillSettings, kd_training
from cnnlab.context import RunContext
from cnnlab.engine.batchnorm import training_batchnorms
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.trainer import FitResult, evaluate
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.steps.distill_record import checkpoint_extra, comparison_metrics, role_sections, settings_section
from cnnlab.steps.distill_roles import check_student_fits, resolve_role
from cnnlab.steps.distill_teacher import check_teacher_learned, teacher_and_data, teacher_logit_cache
from cnnlab.steps.recording import (TrainedModel, at_chance, dataset_record, fit_metrics, record_warning,
                                    save_and_record)
from cnnlab.steps.resume import apply_resume, keep_resumed_source
from cnnlab.steps.start_score import score_at_start, starts_trained, warn_below_start
from cnnlab.steps.augment_on import augment_without_device
from cnnlab.steps.training import (Checkpointing, Trainable, classification_objective, loader_workers, make_loaders,
                                   setup_runtime, train_model)
from cnnlab.weights import initial_model


def check(cfg: DictConfig) -> None:
    """What `cnnlab distill` parses itself: DistillSettings and the recipe (cnnlab/commands.py: `check`)."""
    DistillSettings.from_config(cfg.distill)
    Recipe.from_config(cfg)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    refuse_unused_settings(cfg, ctx)
    cfg, resume_from = apply_resume(cfg, ctx)
    for role in ("teacher", "student"):  # a resume keeps the weights each started from (probe 156: the student's)
        cfg = keep_resumed_source(cfg, resume_from, f"{role}.weights", ctx)
    settings, recipe = DistillSettings.from_config(cfg.distill), Recipe.from_config(cfg)
    runtime = setup_runtime(cfg, recipe)

    taught = teacher_and_data(cfg, ctx, runtime, settings, resume_from)
    teacher, data = taught.teacher, taught.data
    runtime = runtime.for_input(data.spec.size)
    student = resolve_role(cfg, ctx, "student", data)
    check_student_fits(student, data)
    ctx.log.info("distill %s (%s) → %s (%s) on %s: %s", teacher.name, teacher.weights.description, student.name,
                 student.weights.description, data.name, data.sizes_line())
    teacher_model = runtime.prepare_model(initial_model(teacher.name, teacher.weights, data, new_head=False,
                                                        role="teacher"))
    seed_everything(recipe.seed)  # the student's initial weights do not depend on which teacher was built first
    student_model = initial_model(student.name, student.weights, data, new_head=None, role="student")
    baseline_model = copy.deepcopy(student_model) if settings.baseline else None  # the very same starting point
    roles = role_sections(data, (teacher, teacher_model), (student, student_model))
    note_student_larger(ctx, roles)
    ctx.record.update(source=taught.source.describe() if taught.source else teacher.weights.source, distill=roles)

    if data.random_train_transform:
        augment_without_device(ctx, recipe, "cnnlab distill augments per image, in the DataLoader workers")
    else:  # probe 82: "per image, in the DataLoader workers" was said of a run that augments nothing
        augment_without_device(ctx, recipe, "distill.augment=false: the student and the teacher see the training "
                                            "images as stored", where="none")
    workers = loader_workers(recipe, data)
    val_loader = make_loaders(recipe, runtime, data.train, data.val, workers=workers).val
    # Checked before anything is spent on it (the logit cache, the student's training).
    # one pass gives both: its accuracy, and what its soft targets hold (the mean entropy of its val outputs)
    scored = evaluate(teacher_model, val_loader, runtime, desc="teacher val", entropy=True) if len(data.val) else {}
    teacher_acc = scored.get("acc")
    check_teacher_learned(ctx, teacher, taught.source, teacher_acc, data,  # LeNet-5 has no BatchNorm (probe 121)
                          batchnorm=bool(training_batchnorms(teacher_model)))
    roles["teacher"]["val_acc"] = teacher_acc
    # a student already trained on these classes: what it scored before, to say so if training loses it (probe 218)
    start = score_at_start(runtime.prepare_model(student_model), val_loader, runtime, role="student") \
        if starts_trained(student.weights, data, new_head=None) else None
    roles["student"]["val_acc_start"] = start.acc if start else None
    entropy = scored.get("entropy") if settings.alpha else None  # read only where a soft term is trained
    uniform = uniform_teacher(entropy, len(data.classes), settings.alpha)
    if uniform is not None and ctx.is_main:
        record_warning(ctx, uniform)
    ctx.record.update(distill=roles)

    cache = teacher_logit_cache(ctx, settings, data, teacher_model, runtime, batch_size=recipe.eval_batch,
                                images_read=recipe.images_read(len(data.train)))
    kd_setup = kd_training(settings, teacher.network(teacher_model), student.network(student_model), data.spec.size,
                           label_smoothing=recipe.label_smoothing,
                           teacher_precision=runtime.for_network(teacher_model).own_precision)  # the cache's
    seed_everything(recipe.seed)
    kd = train_model(ctx, runtime, recipe, Trainable(runtime.prepare_model(kd_setup.module)),
                     make_loaders(recipe, runtime, cache.train_set, data.val, workers=workers), kd_setup.objective,
                     Checkpointing(resume_from=resume_from, dataset=dataset_record(data, taught.dataset_config)))
    baseline = None
    if baseline_model is not None:
        ctx.log.info("baseline: %s alone on the labels, same start, seed, data and budget", student.name)
        seed_everything(recipe.seed)
        # No last.pt: it belongs to the KD training (what resume= continues); the baseline is re-run instead.
        baseline = train_model(ctx, runtime, recipe, Trainable(runtime.prepare_model(baseline_model)),
                               make_loaders(recipe, runtime, data.train, data.val, workers=workers),
                               classification_objective(recipe, len(data.classes)), Checkpointing(enabled=False))
        warn_unlike_courses(ctx, recipe.epochs)
    below_start = warn_below_start(ctx, start, kd.final.get("val_acc"), role="student", lr=recipe.lr,
                                   alone=baseline.final.get("val_acc") if baseline is not None else None)
    if not below_start:  # else that is the cause, and its fix the one that works (probe 226)
        warn_diverged(ctx, kd, baseline, len(data.classes), recipe.grad_clip, teacher_acc, uniform is not None)
    ctx.record.update(distill=settings_section(settings, kd_setup.stage_names, cache.used, baseline))
    trained = TrainedModel(model=student_model, name=student.name, arch_kwargs=student.weights.arch_kwargs, data=data,
                           dataset_config=taught.dataset_config, weights=student.weights.description)
    metrics = fit_metrics(kd) | comparison_metrics(kd, baseline, teacher_acc, cache.seconds) | \
        {"ended_below_start": below_start}
    if metrics.get("kd_gain") is not None and ctx.is_main:  # probe 124: the figure distill is for was never said
        ctx.log.info("val top-1: student %.2f%% with the teacher, %.2f%% alone — KD gain %+.2f points (one seed: "
                     "`cnnlab distill -m seed=0,1,2` then `cnnlab report` gives its 95%% interval)",
                     100 * kd.final["val_acc"], 100 * metrics["baseline_val_acc"], 100 * metrics["kd_gain"])
    return save_and_record(ctx, trained, metrics, extra=checkpoint_extra(settings, teacher))


def note_student_larger(ctx: RunContext, roles: dict[str, dict[str, Any]]) -> None:
    """A log line when the student has more parameters than the teacher (probe 82: a ResNet-34 student of a
    ResNet-18 teacher ran without a word). Not refused, not a warning: an equal student is self-distillation (Born-
    Again Networks) and a larger one is Noisy Student's choice — but neither compresses the model."""
    teacher, student = roles["teacher"].get("params"), roles["student"].get("params")
    if ctx.is_main and teacher and student and student > teacher:
        ctx.log.info("the student (%s parameters) is larger than the teacher (%s): this distillation does not "
                     "compress the model (for that, a smaller student=, e.g. student=mobilenet_v3_small)",
                     f"{student:,}", f"{teacher:,}")


def uniform_teacher(entropy: float | None, num_classes: int, alpha: float) -> str | None:
    """The warning for a teacher whose outputs are nearly uniform — the mean entropy of its val outputs (nats) within
    a tenth of ln(classes), the uniform distribution's — or None. Its accuracy may pass the chance check (probe 205:
    32.78 % on 10 digits, top probability 0.11 on average) while its soft targets carry almost nothing: at
    distill.alpha=1 the student fell to 7.50 % beside 71.11 % alone, and the warning then blamed the soft term's
    gradient. The entropy, not the val loss: a confident but wrong teacher has a high loss and peaked outputs (probe
    207: warned of at loss 7.6, top probability 0.99)."""
    uniform = math.log(max(num_classes, 2))
    if entropy is None or alpha == 0 or entropy < 0.9 * uniform:
        return None
    return (f"the teacher's outputs are nearly uniform: their mean entropy is {entropy:.3f} nats, where a uniform "
            f"guess over the {num_classes} classes has ln {num_classes} = {uniform:.3f}, so its soft targets teach "
            f"little and distill.alpha={alpha:g} gives them {alpha:.0%} of the loss — train the teacher further "
            "(more epochs, all the labels), or lower distill.alpha")


def warn_diverged(ctx: RunContext, kd: FitResult, baseline: FitResult | None, num_classes: int,
                  grad_clip: float | None, teacher_acc: float | None, uniform_teacher: bool = False) -> None:
    """A KD student that ended where guessing would (within a tenth of chance, 1/classes) though its teacher scores
    above chance, or below its baseline with its KD loss rising from the first epoch to the last: its training failed
    — a LeNet-5 student at the default optim.lr ended at exactly 10.00 % beside 58.06 % alone, "completed" without a
    word (probe 186); at optim.lr=0.15 student and baseline both ended at chance beside a 90 % teacher (probe 188).
    Said as a warning (log, run.json `warnings`) with the fix docs/distill.md gives. Not chance by the looser
    `at_chance` (1.5 / classes): a 2-class student at 69 % was no failure (probe 188)."""
    student = kd.final.get("val_acc")
    if student is None or not ctx.is_main:
        return
    alone = baseline.final.get("val_acc") if baseline is not None else None
    losses = [epoch["train_loss"] for epoch in kd.history if epoch.get("train_loss") is not None]
    rising = len(losses) >= 2 and losses[-1] > losses[0]

    def guessing(acc: float) -> bool:
        return acc <= 1.1 / max(num_classes, 1)

    taught = teacher_acc is not None and not at_chance(teacher_acc, num_classes)
    if not ((guessing(student) and taught) or (rising and alone is not None and student < alone)):
        return
    how = f"its KD loss rising from {losses[0]:.4f} to {losses[-1]:.4f}" if rising \
        else f"chance is 1/{num_classes} = {1 / num_classes:.2%}"
    beside = "" if alone is None else f"; {alone:.2%} alone" + (", at chance too" if guessing(alone) else "")
    if uniform_teacher:  # its own warning says why: the soft term's gradient is no cause here (probe 205)
        record_warning(ctx, f"the student's training failed: val top-1 {student:.2%} ({how}{beside}) — its teacher's "
                            "nearly uniform outputs taught it little: train the teacher further, or lower "
                            "distill.alpha")
        return
    fix = "lower optim.lr" if grad_clip else "set trainer.grad_clip=2 (or lower optim.lr)"
    record_warning(ctx, f"the student's training failed: val top-1 {student:.2%} ({how}{beside}) — the soft term's "
                        f"gradient is up to alpha·T times the labels': {fix} (docs/distill.md, Stability)")


def warn_unlike_courses(ctx: RunContext, epochs: int) -> None:
    """A distill resumed with changed settings (trainer.epochs=5 on a complete 3-epoch run): the KD student trained
    its first epochs under the old ones (its schedule planned for 3), the baseline, re-run, all `epochs` under the
    new — so kd_gain compares unlike courses. Said as a warning (log, run.json `warnings`)."""
    changed = ctx.record.data.get("resume_changed")
    if not changed or not ctx.is_main:
        return
    record_warning(ctx, f"kd_gain compares unlike courses: this run continued {ctx.record.data.get('resumed_from')} "
                        f"with {', '.join(map(str, changed))}, so the KD student trained its first epochs under the "
                        f"saved settings while the baseline trained all {epochs} under these — for a like-for-like "
                        "gain, run `cnnlab distill` afresh with these settings")


@found_before_work()
def refuse_unused_settings(cfg: DictConfig, ctx: RunContext) -> None:
    """distill trains on real images: image mixing (trainer.mixup/cutmix) is a mistake (model= is refused for every
    command that has no such setting: app.check_model_is_read). Raises CnnlabError."""
    if Recipe.from_config(cfg).mixes_images:
        raise CnnlabError("distill does not mix images (trainer.mixup/cutmix): the teacher's answers are for "
                          "the real images", fix="set trainer.mixup=0 trainer.cutmix=0")
