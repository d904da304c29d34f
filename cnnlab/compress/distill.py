"""Knowledge distillation as plain functions and modules: the losses, the objective the training engine runs,
the teacher-logit cache, the `distill` settings and what trains (`kd_training`). The feature hints are in
cnnlab/compress/distill_hints.py.

- Soft targets (Hinton, Vinyals & Dean, 2015): the student matches the teacher's softened distribution,
  softmax(logits / T). The gradients of that term shrink as 1/T², so it is multiplied by T² to keep its
  weight against the hard-label cross-entropy independent of T:
      loss = alpha · T² · KL(p_teacher,T ‖ p_student,T) + (1 − alpha) · CE(student, labels)
- Feature hints (FitNets, Romero et al., 2015): the mean squared error between a student stage's output,
  mapped by a learned adapter, and a teacher stage's output is added.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from cnnlab.compress.distill_hints import FeatureTap, HintAdapter, HintedStudent, pick_stage, stage_output_shape
from cnnlab.data import make_loader
from cnnlab.engine.checkpoint import unwrap
from cnnlab.engine.progress import make_progress
from cnnlab.engine.recipe import auto_flag
from cnnlab.engine.runtime import Runtime
from cnnlab.errors import CnnlabError


# ------------------------------------------------------------------------------------------------ losses
def soft_target_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch (computed in float32)."""
    t = float(temperature)
    student = F.log_softmax(student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * (t * t)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, *, temperature: float, alpha: float,
            label_smoothing: float = 0.0) -> Tensor:
    """alpha · soft-target loss + (1 − alpha) · cross-entropy with the labels; alpha=0 is plain CE."""
    hard = F.cross_entropy(student_logits.float(), targets, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    return alpha * soft_target_loss(student_logits, teacher_logits, temperature) + (1 - alpha) * hard


# Hinton et al. (2015) soften with T of 1-20. Far above, softmax(logits / T) is uniform to within float32 rounding
# and T² multiplies that rounding into the loss: T=1e5 trained on a loss of -57.7 (a KL divergence is >= 0).
MIN_TEMPERATURE = 0.01  # below: one-hot soft targets; logits / T overflow float32 near 1e-37
MAX_TEMPERATURE = 100.0


def check_kd_settings(temperature: float, alpha: float) -> None:
    """Raises CnnlabError unless MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE (0.01 to 100) and 0 <= alpha <= 1,
    each with the fix that works."""
    if not temperature > 0:
        raise CnnlabError(f"distill.temperature={temperature} must be positive",
                          fix="use distill.temperature=4 (1 = the teacher's plain probabilities)")
    if temperature < MIN_TEMPERATURE:  # probe 142: 1e-40 overflowed the logits (a NaN loss, "lower optim.lr")
        raise CnnlabError(f"distill.temperature={temperature:g} is below {MIN_TEMPERATURE:g}: the softened "
                          "probabilities are one-hot (the T²-scaled soft term vanishes) and logits divided by it "
                          "overflow float32", fix="use distill.temperature=4 (Hinton et al. use 1-20)")
    if not temperature <= MAX_TEMPERATURE:
        raise CnnlabError(f"distill.temperature={temperature:g} is above {MAX_TEMPERATURE:g}: the softened "
                          "probabilities of teacher and student are then uniform to within float32 rounding, and "
                          "the T²-scaled loss is that rounding (it can read below zero)",
                          fix="use distill.temperature=4 (Hinton et al. use 1-20)")
    if not 0 <= alpha <= 1:
        raise CnnlabError(f"distill.alpha={alpha} must be between 0 and 1",
                          fix="use distill.alpha=0.5 (0 = labels only, 1 = soft targets only)")


# ------------------------------------------------------------------------------------------------ objective
class DistillationObjective:
    """The engine's Objective for KD: (loss, student logits, labels) from a batch.

    A batch is (images, labels) — the teacher then runs on the same images, in eval mode without gradients, in
    its own precision (`teacher_precision`, as the logit cache computes it: the student's bf16 autocast gave other
    soft targets than the cache's float32, probe 82) — or (images, labels, cached teacher logits). With a
    `teacher_stage` the model must be a HintedStudent; the teacher then always runs, for its stage's features. With
    alpha=0 and no hint the loss is cross-entropy alone, and the teacher does not run at all (`needs_teacher_logits`).
    """

    def __init__(self, teacher: nn.Module, *, temperature: float, alpha: float, label_smoothing: float = 0.0,
                 teacher_stage: nn.Module | None = None, feature_weight: float = 1.0,
                 teacher_precision: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        check_kd_settings(temperature, alpha)
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_precision = teacher_precision
        self.temperature = temperature
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.feature_weight = feature_weight
        self.teacher_tap = FeatureTap(teacher_stage) if teacher_stage is not None else None

    @property
    def needs_teacher_logits(self) -> bool:
        """False when the loss is the labels' cross-entropy alone (alpha=0, no hint): nothing reads the teacher."""
        return self.alpha != 0 or self.teacher_tap is not None

    def teacher_logits(self, images: Tensor) -> Tensor:
        # no_grad rather than inference_mode: inference tensors cannot be saved for the student's backward.
        with torch.no_grad(), self.teacher_precision():
            return self.teacher(images).float()

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, targets = batch[0], batch[1]
        cached = batch[2] if len(batch) > 2 and self.teacher_tap is None else None
        if cached is not None:
            teacher_logits = cached
        elif self.needs_teacher_logits:
            teacher_logits = self.teacher_logits(images)
        else:  # alpha=0: kd_loss never reads them, so a whole teacher forward pass per step is saved
            teacher_logits = torch.empty(0)
        student_logits = model(images)
        loss = kd_loss(student_logits, teacher_logits, targets, temperature=self.temperature, alpha=self.alpha,
                       label_smoothing=self.label_smoothing)
        if self.teacher_tap is not None:
            hinted = unwrap(model)
            assert isinstance(hinted, HintedStudent), "a feature hint needs the student wrapped in HintedStudent"
            loss = loss + self.feature_weight * hinted.hint_loss(self.teacher_tap.pop())
        return loss, student_logits, targets


# ------------------------------------------------------------------------------------------------ cache
@torch.no_grad()
def predict_logits(model: nn.Module, dataset: Dataset, runtime: Runtime, *, batch_size: int,
                   desc: str = "teacher logits") -> Tensor:
    """The model's logits for every item of `dataset`, in order: float32 [N, classes] on the CPU."""
    model.eval()
    runtime = runtime.for_network(model)  # the precision this network trains in
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0)
    chunks = []
    with make_progress(runtime.is_main) as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for batch in loader:
            with runtime.autocast():
                chunks.append(model(runtime.to_device(batch[0])).float().cpu())
            progress.advance(task)
    return torch.cat(chunks)


class WithTeacherLogits(Dataset):
    """(image, label, teacher logits) items: the train set with the teacher's answers attached."""

    def __init__(self, base: Dataset, logits: Tensor) -> None:
        if len(base) != len(logits):  # type: ignore[arg-type]
            raise ValueError(f"{len(logits)} cached logits for {len(base)} items")  # type: ignore[arg-type]
        self.base = base
        self.logits = logits

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        image, label = self.base[index][:2]
        return image, label, self.logits[index]

# ------------------------------------------------------------------------------------------------ settings, setup
@dataclass(frozen=True)
class DistillSettings:
    """The `distill` section: temperature T (MIN_TEMPERATURE <= T <= MAX_TEMPERATURE: 0.01 to 100), alpha in
    [0, 1] (weight of the soft targets), the feature hint (on/off, its weight, the (student stage, teacher stage)
    indices), the teacher-logit cache (None = auto), augmentation and whether a label-only baseline trains too.
    Raises CnnlabError for values out of range."""

    temperature: float
    alpha: float
    feature: bool
    feature_weight: float
    feature_stages: tuple[int, int]
    cache_teacher: bool | None
    augment: bool
    baseline: bool

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "DistillSettings":
        given = section["feature_stages"]
        stages = list(given) if isinstance(given, Sequence) or type(given).__name__ == "ListConfig" else given
        if not (isinstance(stages, list) and len(stages) == 2 and all(isinstance(i, int) for i in stages)):
            raise CnnlabError(f"distill.feature_stages={section['feature_stages']} needs two indices: "
                              "[student stage, teacher stage]", fix="use distill.feature_stages=[-1,-1]")
        settings = cls(temperature=float(section["temperature"]), alpha=float(section["alpha"]),
                       feature=bool(section["feature"]), feature_weight=float(section["feature_weight"]),
                       feature_stages=(stages[0], stages[1]),
                       cache_teacher=auto_flag(section["cache_teacher"], "distill.cache_teacher"),
                       augment=bool(section["augment"]), baseline=bool(section["baseline"]))
        check_kd_settings(settings.temperature, settings.alpha)
        return settings


@dataclass(frozen=True)
class Network:
    """One side of distillation as the KD math sees it: its role (teacher | student, names it in errors), its zoo
    name (which names its stages) and the built module."""

    role: str
    name: str
    model: nn.Module


@dataclass(frozen=True)
class KdTraining:
    """What `kd_training` sets up: the module that trains (the student, or a HintedStudent wrapping it and its
    hint adapter), the engine objective, and the hint stages' names [student, teacher] (None without hints)."""

    module: nn.Module
    objective: DistillationObjective
    stage_names: list[str] | None


def kd_training(settings: DistillSettings, teacher: Network, student: Network, image_size: int, *,
                label_smoothing: float = 0.0,
                teacher_precision: Callable[[], AbstractContextManager[Any]] = nullcontext) -> KdTraining:
    """What trains and how, for `image_size` px images; the teacher runs under `teacher_precision`
    (Runtime.own_precision of its network). Raises CnnlabError for a stage index the network does not have, or a
    hint stage whose output is neither a feature map nor a vector."""
    kd = {"temperature": settings.temperature, "alpha": settings.alpha, "label_smoothing": label_smoothing,
          "teacher_precision": teacher_precision}
    if not settings.feature:
        return KdTraining(student.model, DistillationObjective(teacher.model, **kd), None)
    student_path, student_stage = pick_stage(student.role, student.name, student.model, settings.feature_stages[0])
    teacher_path, teacher_stage = pick_stage(teacher.role, teacher.name, teacher.model, settings.feature_stages[1])
    adapter = HintAdapter(stage_output_shape(student.model, student_stage, image_size),
                          stage_output_shape(teacher.model, teacher_stage, image_size))
    objective = DistillationObjective(teacher.model, teacher_stage=teacher_stage,
                                      feature_weight=settings.feature_weight, **kd)
    return KdTraining(HintedStudent(student.model, student_stage, adapter), objective, [student_path, teacher_path])
