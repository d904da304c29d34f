"""Feature hints (FitNets, Romero et al., 2015): a learned adapter maps the output of a student stage onto the
teacher stage's output (1×1 conv + BatchNorm for feature maps, a Linear layer when either side is a vector), both
averaged down to the smaller grid; the mean squared error between them is added to the KD loss
(cnnlab/compress/distill.py). Shapes are per image unless a batch dimension is named."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models.measure import forward_one_image


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
    """Shape (without the batch) of `stage`'s output when `model` sees `image_size` px images of the channels its
    first convolution takes (a grayscale LeNet-5: 1; probe 69: a 3-channel probe image crashed it)."""
    tap = FeatureTap(stage)
    try:
        forward_one_image(model, image_size)  # eval mode: no BatchNorm statistics change
        return tuple(tap.pop().shape[1:])
    finally:
        tap.remove()


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


@found_before_work()  # a setting or input refused: the run it stops leaves no folder (probe 100)
def pick_stage(role: str, name: str, model: nn.Module, index: int) -> tuple[str, nn.Module]:
    """(stage name, the module whose output is the stage's output) of zoo network `name` (the `role`'s: teacher |
    student, named in errors) for distill.feature_stages; negative indices count from the last stage. Raises
    CnnlabError for an index out of range, naming the stages there are."""
    from cnnlab.models import feature_stages

    stages = feature_stages(model, name)
    if not -len(stages) <= index < len(stages):
        raise CnnlabError(f"distill.feature_stages: {role} {name} has {len(stages)} stages, "
                          f"no stage {index}", fix=f"use -{len(stages)}..{len(stages) - 1} "
                                                   f"({', '.join(path for path, _ in stages)})")
    path, stage = stages[index]
    return path, stage[-1]
