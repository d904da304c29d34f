"""What trains in a distillation (cnnlab/compress/distill.py `kd_training`, distill_hints.py `pick_stage`): the
student alone or with its hint adapter, the objective, and the hint stages' names."""

from __future__ import annotations

import pytest
import torch

from cnnlab.compress.distill import DistillationObjective, DistillSettings, Network, kd_training
from cnnlab.compress.distill_hints import HintedStudent, pick_stage
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, feature_stages

SECTION = {"temperature": 4.0, "alpha": 0.5, "feature": False, "feature_weight": 2.0, "feature_stages": [-1, -1],
           "cache_teacher": "auto", "augment": False, "baseline": False}


def networks() -> tuple[Network, Network]:
    torch.manual_seed(0)
    return (Network("teacher", "lenet5", create_model("lenet5", num_classes=3, image_size=16)),
            Network("student", "lenet5", create_model("lenet5", num_classes=3, image_size=16)))


def test_without_hints_the_student_itself_trains_on_the_kd_objective() -> None:
    teacher, student = networks()
    setup = kd_training(DistillSettings.from_config(SECTION), teacher, student, 16, label_smoothing=0.1)
    assert setup.module is student.model and setup.stage_names is None
    assert isinstance(setup.objective, DistillationObjective) and setup.objective.teacher_tap is None
    assert (setup.objective.temperature, setup.objective.alpha, setup.objective.label_smoothing) == (4.0, 0.5, 0.1)


def test_with_hints_the_student_trains_with_its_adapter_at_the_named_stages() -> None:
    teacher, student = networks()
    settings = DistillSettings.from_config({**SECTION, "feature": True, "feature_stages": [0, -1]})
    setup = kd_training(settings, teacher, student, 16)
    names = [path for path, _ in feature_stages(student.model, "lenet5")]
    assert setup.stage_names == [names[0], names[-1]]
    assert isinstance(setup.module, HintedStudent) and setup.module.student is student.model
    assert setup.objective.teacher_tap is not None and setup.objective.feature_weight == 2.0
    loss, logits, _ = setup.objective(setup.module.train(), (torch.randn(2, 3, 16, 16), torch.tensor([0, 2])))
    assert logits.shape == (2, 3) and loss.requires_grad and torch.isfinite(loss)


def test_a_stage_the_network_does_not_have_names_the_role_and_the_stages() -> None:
    teacher, _ = networks()
    count = len(feature_stages(teacher.model, "lenet5"))
    assert pick_stage("teacher", "lenet5", teacher.model, -1)[0] == feature_stages(teacher.model, "lenet5")[-1][0]
    with pytest.raises(CnnlabError, match=f"teacher lenet5 has {count} stages, no stage {count}"):
        pick_stage("teacher", "lenet5", teacher.model, count)
