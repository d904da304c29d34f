"""Knowledge distillation as plain functions and modules: the losses, the hint adapter, the objective the
training engine runs, and the teacher-logit cache.

- Soft targets (Hinton, Vinyals & Dean, 2015): the student matches the teacher's softened distribution,
  softmax(logits / T). The gradients of that term shrink as 1/T², so it is multiplied by T² to keep its
  weight against the hard-label cross-entropy independent of T:
      loss = alpha · T² · KL(p_teacher,T ‖ p_student,T) + (1 − alpha) · CE(student, labels)
- Feature hints (FitNets, Romero et al., 2015): a learned adapter maps the output of a student stage onto
  the teacher stage's output (1×1 conv + BatchNorm for feature maps, a Linear layer when either side is a
  vector), both averaged down to the smaller grid, and the mean squared error between them is added.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from cnnlab.data import DataBundle, make_loader
from cnnlab.engine.checkpoint import unwrap
from cnnlab.engine.progress import make_progress
from cnnlab.engine.recipe import auto_flag
from cnnlab.engine.runtime import Runtime
from cnnlab.errors import CnnlabError
from cnnlab.weights import InitialWeights


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


def check_kd_settings(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise CnnlabError(f"distill.temperature={temperature} must be positive",
                          fix="use distill.temperature=4 (1 = the teacher's plain probabilities)")
    if not 0 <= alpha <= 1:
        raise CnnlabError(f"distill.alpha={alpha} must be between 0 and 1",
                          fix="use distill.alpha=0.5 (0 = labels only, 1 = soft targets only)")


# ------------------------------------------------------------------------------------------------ hints
class FeatureTap:
    """Keeps the output of one module from its latest forward pass (a forward hook)."""

    def __init__(self, module: nn.Module) -> None:
        self._output: Tensor | None = None
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: object, output: Tensor) -> None:
        self._output = output

    def pop(self) -> Tensor:
        """The kept output, released so that it does not outlive the step."""
        if self._output is None:
            raise RuntimeError("the tapped module has not run since the last pop()")
        output, self._output = self._output, None
        return output

    def remove(self) -> None:
        self._handle.remove()
        self._output = None


def stage_output_shape(model: nn.Module, stage: nn.Module, image_size: int) -> tuple[int, ...]:
    """Shape (without the batch) of `stage`'s output when `model` sees `image_size` px images."""
    reference = next(model.parameters())
    tap = FeatureTap(stage)
    was_training = model.training
    model.eval()  # no BatchNorm statistics change
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, image_size, image_size, device=reference.device, dtype=reference.dtype))
        return tuple(tap.pop().shape[1:])
    finally:
        tap.remove()
        model.train(was_training)


def _as_vector(features: Tensor) -> Tensor:
    return features.mean(dim=(2, 3)) if features.dim() == 4 else features.flatten(1)


class HintAdapter(nn.Module):
    """Maps a student stage's output onto a teacher stage's output.

    Feature maps on both sides: a 1×1 convolution + BatchNorm from the student's channels to the teacher's,
    and both maps average-pooled to the smaller of the two grids. A vector on either side: both sides are
    globally averaged to vectors and a Linear layer maps one onto the other.
    """

    def __init__(self, student_shape: Sequence[int], teacher_shape: Sequence[int]) -> None:
        super().__init__()
        for what, shape in (("student", student_shape), ("teacher", teacher_shape)):
            if len(shape) not in (1, 3):
                raise CnnlabError(f"the {what} hint stage gives features of shape {tuple(shape)}; a hint needs a "
                                  "feature map (C, H, W) or a vector", fix="pick other distill.feature_stages")
        self.spatial = len(student_shape) == 3 and len(teacher_shape) == 3
        if self.spatial:
            self.grid = (min(student_shape[1], teacher_shape[1]), min(student_shape[2], teacher_shape[2]))
            self.project: nn.Module = nn.Sequential(nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False),
                                                    nn.BatchNorm2d(teacher_shape[0]))
        else:
            self.grid = None
            self.project = nn.Linear(student_shape[0], teacher_shape[0])

    def _align(self, features: Tensor) -> Tensor:
        if not self.spatial:
            return _as_vector(features)
        return features if tuple(features.shape[-2:]) == self.grid else F.adaptive_avg_pool2d(features, self.grid)

    def forward(self, student_features: Tensor) -> Tensor:
        if self.spatial:
            return self._align(self.project(student_features))
        return self.project(_as_vector(student_features))

    def loss(self, adapted: Tensor, teacher_features: Tensor) -> Tensor:
        """Mean squared error between the adapted student features and the (aligned) teacher features."""
        return F.mse_loss(adapted.float(), self._align(teacher_features).float())


class HintedStudent(nn.Module):
    """The student and its hint adapter, trained as one module so the optimizer updates both.

    forward returns the student's logits (evaluation sees the plain student); in training mode it also keeps
    the adapted stage features for `hint_loss`. The student alone is what gets saved.
    """

    def __init__(self, student: nn.Module, stage: nn.Module, adapter: HintAdapter) -> None:
        super().__init__()
        self.student = student
        self.adapter = adapter
        self._tap = FeatureTap(stage)
        self._adapted: Tensor | None = None

    def forward(self, images: Tensor) -> Tensor:
        logits = self.student(images)
        features = self._tap.pop()
        # The adapter runs inside forward, so DDP sees its parameters used like the student's.
        self._adapted = self.adapter(features) if self.training else None
        return logits

    def hint_loss(self, teacher_features: Tensor) -> Tensor:
        if self._adapted is None:
            raise RuntimeError("hint_loss needs a training-mode forward pass first")
        adapted, self._adapted = self._adapted, None
        return self.adapter.loss(adapted, teacher_features)


# ------------------------------------------------------------------------------------------------ objective
class DistillationObjective:
    """The engine's Objective for KD: (loss, student logits, labels) from a batch.

    A batch is (images, labels) — the teacher then runs on the same images, in eval mode without gradients,
    under the engine's autocast — or (images, labels, cached teacher logits). With a `teacher_stage` the
    model must be a HintedStudent; the teacher then always runs, for its stage's features.
    """

    def __init__(self, teacher: nn.Module, *, temperature: float, alpha: float, label_smoothing: float = 0.0,
                 teacher_stage: nn.Module | None = None, feature_weight: float = 1.0) -> None:
        check_kd_settings(temperature, alpha)
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature = temperature
        self.alpha = alpha
        self.label_smoothing = label_smoothing
        self.feature_weight = feature_weight
        self.teacher_tap = FeatureTap(teacher_stage) if teacher_stage is not None else None

    def teacher_logits(self, images: Tensor) -> Tensor:
        # no_grad rather than inference_mode: inference tensors cannot be saved for the student's backward.
        with torch.no_grad():
            return self.teacher(images)

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        images, targets = batch[0], batch[1]
        cached = batch[2] if len(batch) > 2 and self.teacher_tap is None else None
        teacher_logits = cached if cached is not None else self.teacher_logits(images)
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

# ------------------------------------------------------------------------------------------------ settings, roles
@dataclass(frozen=True)
class DistillSettings:
    """The `distill` section: temperature T (> 0), alpha in [0, 1] (weight of the soft targets), the feature hint
    (on/off, its weight, the (student stage, teacher stage) indices), the teacher-logit cache (None = auto),
    augmentation and whether a label-only baseline trains too. Raises CnnlabError for values out of range."""

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
class DistillRole:
    """The teacher or the student: its role (names the setting in errors), zoo name and starting weights."""

    role: str
    name: str
    weights: InitialWeights


_TRAIN_A_TEACHER = "train one first (`cnnlab finetune model={name}`), then use teacher.weights=latest:finetune"


def trained_teacher_weights(teacher: DistillRole, data: DataBundle) -> InitialWeights:
    """The teacher's weights, checked to be trained for exactly the data's classes. Raises CnnlabError."""
    from cnnlab.models import MODELS

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


def check_student_fits(student: DistillRole, data: DataBundle) -> None:
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


def kd_training(settings: DistillSettings, teacher: DistillRole, student: DistillRole, teacher_model: nn.Module,
                student_model: nn.Module, image_size: int, *, label_smoothing: float = 0.0
                ) -> tuple[nn.Module, DistillationObjective, list[str] | None]:
    """What trains (the student, or the student with its hint adapter), its objective, and the hint stages'
    names (None without hints). Raises CnnlabError for a stage index the network does not have."""
    kd = {"temperature": settings.temperature, "alpha": settings.alpha, "label_smoothing": label_smoothing}
    if not settings.feature:
        return student_model, DistillationObjective(teacher_model, **kd), None
    student_path, student_stage = pick_stage(student, student_model, settings.feature_stages[0])
    teacher_path, teacher_stage = pick_stage(teacher, teacher_model, settings.feature_stages[1])
    adapter = HintAdapter(stage_output_shape(student_model, student_stage, image_size),
                          stage_output_shape(teacher_model, teacher_stage, image_size))
    objective = DistillationObjective(teacher_model, teacher_stage=teacher_stage,
                                      feature_weight=settings.feature_weight, **kd)
    return HintedStudent(student_model, student_stage, adapter), objective, [student_path, teacher_path]


def pick_stage(member: DistillRole, model: nn.Module, index: int) -> tuple[str, nn.Module]:
    """(stage name, the module whose output is the stage's output) for distill.feature_stages."""
    from cnnlab.models import feature_stages

    stages = feature_stages(model, member.name)
    if not -len(stages) <= index < len(stages):
        raise CnnlabError(f"distill.feature_stages: {member.role} {member.name} has {len(stages)} stages, "
                          f"no stage {index}", fix=f"use -{len(stages)}..{len(stages) - 1} "
                                                   f"({', '.join(path for path, _ in stages)})")
    path, stage = stages[index]
    return path, stage[-1]
