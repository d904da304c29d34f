"""What `cnnlab distill` records besides what every trained model gets (steps/recording.py): run.json's `distill`
section (each network's weights and size, the KD settings, the label-only baseline), the metrics that compare
them, and the teacher named in the student's model.pt."""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnlab.compress.distill import DistillSettings
from cnnlab.data import DataBundle
from cnnlab.engine.trainer import FitResult
from cnnlab.steps.distill_roles import DistillRole
from cnnlab.steps.recording import fit_metrics, model_section


def role_sections(data: DataBundle, *networks: tuple[DistillRole, nn.Module]) -> dict[str, dict[str, Any]]:
    """run.json's distill.teacher / distill.student: where the weights came from, and the model section (params
    and FLOPs at the data's input size) of each built network, by role."""
    return {role.role: {"weights": role.weights.description, "source": role.weights.source,
                        **model_section(role.name, data.spec.size, len(data.classes), model=model).to_dict()}
            for role, model in networks}


def settings_section(settings: DistillSettings, stage_names: list[str] | None, cache_used: bool,
                     baseline: FitResult | None) -> dict[str, Any]:
    """The rest of run.json's distill section: the KD settings as used, the hint stages' names, whether the
    teacher's logits were cached, and the baseline's fit metrics (None without distill.baseline)."""
    return {"temperature": settings.temperature, "alpha": settings.alpha, "feature": settings.feature,
            "feature_weight": settings.feature_weight if settings.feature else None, "feature_stages": stage_names,
            "augment": settings.augment, "cache_teacher": cache_used,
            "baseline": None if baseline is None else {k: v for k, v in fit_metrics(baseline).items()
                                                       if k != "train_images_per_s"}}


def checkpoint_extra(settings: DistillSettings, teacher: DistillRole) -> dict[str, Any]:
    """What the student's model.pt carries about its distillation (`save_and_record(extra=...)`): which teacher
    taught it, and how."""
    return {"distill": {"teacher": teacher.name, "teacher_weights": teacher.weights.description,
                        "temperature": settings.temperature, "alpha": settings.alpha, "feature": settings.feature}}


def comparison_metrics(kd: FitResult, baseline: FitResult | None, teacher_acc: float | None,
                       cache_seconds: float | None) -> dict[str, Any]:
    """The teacher's validation accuracy (0..1, None without validation images), the seconds its logit cache took,
    and with a baseline its validation accuracy and kd_gain = KD student's − baseline's (> 0: KD helped)."""
    metrics: dict[str, Any] = {"teacher_val_acc": teacher_acc, "teacher_cache_seconds": cache_seconds}
    if baseline is not None:
        metrics.update(baseline_val_acc=baseline.final["val_acc"],
                       kd_gain=kd.final["val_acc"] - baseline.final["val_acc"])
    return metrics
