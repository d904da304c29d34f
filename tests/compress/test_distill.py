"""KD losses, hint adapter, objective and teacher-logit cache (cnnlab/compress/distill.py, distill_hints.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from cnnlab.compress.distill import (DistillationObjective, WithTeacherLogits, check_kd_settings, kd_loss,
                                     predict_logits, soft_target_loss)
from cnnlab.compress.distill_hints import FeatureTap, HintAdapter, HintedStudent, stage_output_shape
from cnnlab.engine.runtime import Runtime
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, feature_stages

CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(8, 5, generator=gen) * 3, torch.randn(8, 5, generator=gen) * 3, torch.randint(0, 5, (8,),
                                                                                                    generator=gen)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kl_of_identical_logits_is_zero(logits, temperature: float) -> None:
    student, _, _ = logits
    assert soft_target_loss(student, student.clone(), temperature).item() == pytest.approx(0.0, abs=1e-6)


def test_soft_target_loss_is_t_squared_times_the_kl_of_softened_distributions(logits) -> None:
    student, teacher, _ = logits
    temperature = 4.0
    p_teacher = F.softmax(teacher / temperature, dim=1)
    kl = (p_teacher * (p_teacher.log() - F.log_softmax(student / temperature, dim=1))).sum(dim=1).mean()
    assert soft_target_loss(student, teacher, temperature).item() == pytest.approx(temperature ** 2 * kl.item(),
                                                                                  rel=1e-5)


def test_t_squared_scaling_makes_high_temperature_gradients_logit_matching(logits) -> None:
    """Hinton et al.: at high T the gradient of T²·KL approaches (z_s − z_t)/K per sample (zero-mean logits), so
    the soft term keeps the same weight whatever T — without T² it would vanish as 1/T²."""
    student, teacher, _ = logits
    student, teacher = (z - z.mean(dim=1, keepdim=True) for z in (student, teacher))
    batch, classes = student.shape
    expected = (student - teacher) / (classes * batch)
    errors = {}
    for temperature in (20.0, 500.0):
        leaf = student.clone().requires_grad_(True)
        soft_target_loss(leaf, teacher, temperature).backward()
        errors[temperature] = (leaf.grad - expected).abs().max().item() / expected.abs().max().item()
    assert errors[500.0] < 0.01 and errors[500.0] < errors[20.0] / 10


def test_alpha_zero_is_exactly_cross_entropy(logits) -> None:
    student, teacher, targets = logits
    assert torch.equal(kd_loss(student, teacher, targets, temperature=4, alpha=0.0), F.cross_entropy(student, targets))
    smoothed = kd_loss(student, teacher, targets, temperature=4, alpha=0.0, label_smoothing=0.1)
    assert torch.equal(smoothed, F.cross_entropy(student, targets, label_smoothing=0.1))


def test_alpha_mixes_soft_and_hard_terms(logits) -> None:
    student, teacher, targets = logits
    mixed = kd_loss(student, teacher, targets, temperature=2, alpha=0.75)
    expected = 0.75 * soft_target_loss(student, teacher, 2) + 0.25 * F.cross_entropy(student, targets)
    assert mixed.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("temperature, alpha, key", [(0.0, 0.5, "distill.temperature"), (4.0, 1.5, "distill.alpha"),
                                                     (1e5, 0.5, "distill.temperature=100000 is above 100"),
                                                     (1e-40, 0.5, "distill.temperature=1e-40 is below 0.01")])
def test_bad_settings_are_user_errors(temperature: float, alpha: float, key: str) -> None:
    with pytest.raises(CnnlabError, match=key):
        check_kd_settings(temperature, alpha)


@pytest.fixture(scope="module")
def resnet_and_mobilenet() -> tuple[nn.Module, nn.Module]:
    return create_model("resnet50", 4, 32).eval(), create_model("mobilenet_v2", 4, 32).eval()


@pytest.mark.parametrize("student_index, teacher_index, student_shape, teacher_shape, hint_shape", [
    (-1, -1, (1280, 1, 1), (2048, 1, 1), (2048, 1, 1)),   # last stages: 1x1 at 32 px
    (1, 2, (24, 8, 8), (512, 4, 4), (512, 4, 4)),         # student map larger: adapter output pooled to 4x4
    (2, 1, (32, 4, 4), (256, 8, 8), (256, 4, 4)),         # teacher map larger: its target pooled to 4x4
])
def test_hint_adapter_maps_mobilenet_stages_onto_resnet_stages(resnet_and_mobilenet, student_index: int,
                                                               teacher_index: int, student_shape, teacher_shape,
                                                               hint_shape) -> None:
    teacher, student = resnet_and_mobilenet
    student_stage = feature_stages(student, "mobilenet_v2")[student_index][1][-1]
    teacher_stage = feature_stages(teacher, "resnet50")[teacher_index][1][-1]
    assert stage_output_shape(student, student_stage, 32) == student_shape
    assert stage_output_shape(teacher, teacher_stage, 32) == teacher_shape
    adapter = HintAdapter(student_shape, teacher_shape)
    assert isinstance(adapter.project[0], nn.Conv2d) and adapter.project[0].kernel_size == (1, 1)
    adapted = adapter(torch.randn(2, *student_shape))
    assert tuple(adapted.shape[1:]) == hint_shape
    loss = adapter.loss(adapted, torch.randn(2, *teacher_shape))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_hint_adapter_uses_a_linear_layer_when_a_side_is_a_vector() -> None:
    adapter = HintAdapter((512, 2, 2), (84,))
    assert isinstance(adapter.project, nn.Linear) and adapter.project.in_features == 512
    assert adapter(torch.randn(3, 512, 2, 2)).shape == (3, 84)
    with pytest.raises(CnnlabError, match="feature_stages"):
        HintAdapter((4, 5), (84,))


def test_stage_output_shape_restores_training_mode_and_statistics() -> None:
    model = create_model("resnet18", 3, 32).train()
    before = model.bn1.running_mean.clone()
    stage_output_shape(model, feature_stages(model, "resnet18")[1][1][-1], 32)
    assert model.training and torch.equal(model.bn1.running_mean, before)


def test_feature_tap_keeps_the_latest_output_once() -> None:
    layer = nn.Linear(3, 2)
    tap = FeatureTap(layer)
    out = layer(torch.ones(1, 3))
    assert torch.equal(tap.pop(), out)
    with pytest.raises(RuntimeError):
        tap.pop()
    tap.remove()
    layer(torch.ones(1, 3))
    with pytest.raises(RuntimeError):
        tap.pop()


def _tiny_pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return create_model("lenet5", 3, 16).eval(), create_model("lenet5", 3, 16)


class _NoTeacher(nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the teacher ran")


def test_objective_with_alpha_zero_never_runs_the_teacher() -> None:
    """alpha=0 is cross-entropy on the labels: a teacher forward pass per step would be pure waste."""
    _, student = _tiny_pair()
    objective = DistillationObjective(_NoTeacher(), temperature=4, alpha=0.0, label_smoothing=0.1)
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    loss, logits, _ = objective(student, [images, labels])
    assert not objective.needs_teacher_logits
    assert torch.equal(loss, F.cross_entropy(logits.float(), labels, label_smoothing=0.1))
    assert DistillationObjective(_NoTeacher(), temperature=4, alpha=0.1).needs_teacher_logits


def test_objective_with_cached_logits_equals_running_the_teacher() -> None:
    teacher, student = _tiny_pair()
    objective = DistillationObjective(teacher, temperature=4, alpha=0.9)
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    live, logits, targets = objective(student, [images, labels])
    with torch.no_grad():
        cached, _, _ = objective(student, [images, labels, teacher(images)])
    assert live.item() == pytest.approx(cached.item(), rel=1e-6)
    assert logits.shape == (4, 3) and torch.equal(targets, labels)
    live.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training


def test_hint_objective_trains_the_adapter_and_adds_the_hint_loss() -> None:
    teacher, student = _tiny_pair()
    student_stage = feature_stages(student, "lenet5")[1][1][-1]
    teacher_stage = feature_stages(teacher, "lenet5")[1][1][-1]
    adapter = HintAdapter(stage_output_shape(student, student_stage, 16),
                          stage_output_shape(teacher, teacher_stage, 16))
    hinted = HintedStudent(student, student_stage, adapter).train()
    images, labels = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    plain = DistillationObjective(teacher, temperature=4, alpha=0.9)
    hint = DistillationObjective(teacher, temperature=4, alpha=0.9, teacher_stage=teacher_stage, feature_weight=2.0)
    without, _, _ = plain(hinted, [images, labels])
    hinted._adapted = None
    # A cached-logits column is ignored: the hint needs the teacher's features, so the teacher runs.
    total, _, _ = hint(hinted, [images, labels, torch.zeros(4, 3)])
    assert total.item() > without.item()
    total.backward()
    assert all(p.grad is not None for p in adapter.parameters())
    hinted.eval()
    assert torch.equal(hinted(images), student(images))  # evaluation sees the plain student


def test_predicted_logits_line_up_with_the_dataset() -> None:
    teacher, _ = _tiny_pair()
    images, labels = torch.randn(10, 3, 16, 16), torch.arange(10) % 3
    dataset = TensorDataset(images, labels)
    logits = predict_logits(teacher, dataset, CPU, batch_size=4)
    with torch.no_grad():
        expected = teacher(images)
    assert torch.allclose(logits, expected, atol=1e-5)
    item = WithTeacherLogits(dataset, logits)[7]
    assert torch.equal(item[0], images[7]) and item[1] == labels[7] and torch.equal(item[2], logits[7])
    with pytest.raises(ValueError):
        WithTeacherLogits(dataset, logits[:3])


def test_the_temperature_bound_is_where_the_loss_is_still_a_divergence() -> None:
    """T=1e5 trained on a loss of -57.7 (probe 52): softmax(logits / T) is uniform to within float32 rounding there
    and T² scales the rounding. Up to the bound the loss stays >= 0 on logits that differ."""
    from cnnlab.compress.distill import MAX_TEMPERATURE
    from cnnlab.settings import RULES

    torch.manual_seed(0)
    student, teacher = torch.randn(256, 10), torch.randn(256, 10)
    assert soft_target_loss(student, teacher, MAX_TEMPERATURE).item() > 0
    assert RULES["distill.temperature"].high == MAX_TEMPERATURE  # the command line's check says the same bound


def test_the_teacher_run_per_step_gives_the_caches_logits_inside_the_students_bf16_step() -> None:
    """Probe 82: the logit cache ran the teacher in its own precision (float32), the per-step teacher under the
    student's bf16 autocast — soft targets up to 0.17 apart, and `cache_teacher=auto` switched between them."""
    teacher, _ = _tiny_pair()
    torch.manual_seed(0)
    images = torch.randn(8, 3, 16, 16) * 50
    exact = predict_logits(teacher, TensorDataset(images, torch.zeros(8, dtype=torch.long)), CPU, batch_size=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the engine's step for a bf16 student
        live = DistillationObjective(teacher, temperature=4, alpha=0.9,
                                     teacher_precision=CPU.own_precision).teacher_logits(images)
        before = DistillationObjective(teacher, temperature=4, alpha=0.9).teacher_logits(images)
    assert live.dtype == torch.float32 and torch.allclose(live, exact, atol=1e-5)
    assert not torch.allclose(before, exact, atol=1e-3)  # what the step fed the loss before
