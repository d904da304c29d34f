"""The teacher's and the student's weights checked against the data (cnnlab/steps/distill_roles.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.steps.distill_roles import DistillRole, check_student_fits, trained_teacher_weights
from cnnlab.weights import InitialWeights

DATA = SimpleNamespace(name="mine", classes=["a", "b", "c"], spec=InputSpec(16))


def role(kind: str, role_name: str = "teacher", **fields) -> DistillRole:  # type: ignore[no-untyped-def]
    return DistillRole(role_name, "lenet5", InitialWeights(kind=kind, description=f"{kind} weights", **fields))


def test_a_state_dict_teacher_takes_the_data_classes_when_its_head_fits() -> None:
    from cnnlab.models import MODELS

    head = {f"{MODELS['lenet5'].head}.weight": torch.zeros(3, 84)}
    weights = trained_teacher_weights(role("file", state_dict=head), DATA)  # type: ignore[arg-type]
    assert weights.classes == ["a", "b", "c"] and weights.state_dict is head
    with pytest.raises(CnnlabError, match="has a 3-way head but dataset mine has 4 classes"):
        trained_teacher_weights(role("file", state_dict=head),
                                SimpleNamespace(name="mine", classes=list("abcd")))  # type: ignore[arg-type]
    resnet = {"conv1.weight": torch.zeros(1), "bn1.weight": torch.zeros(1), "fc.weight": torch.zeros(3, 512)}
    with pytest.raises(CnnlabError) as caught:  # probe 142: "has a None-way head"
        trained_teacher_weights(role("file", state_dict=resnet), DATA)  # type: ignore[arg-type]
    assert "holds no classifier.4.weight, so it is not a lenet5 state dict (its first keys: conv1.weight, " \
           "bn1.weight, fc.weight)" in caught.value.message and "teacher=NAME" in caught.value.fix
    assert "None" not in str(caught.value)
    from cnnlab.models import create_model

    backbone = {k: v for k, v in create_model("lenet5", 3, 16).state_dict().items() if not k.startswith("classifier.4")}
    with pytest.raises(CnnlabError) as caught:  # probe 147: "not a lenet5 state dict — name it with teacher=lenet5"
        trained_teacher_weights(role("file", state_dict=backbone), DATA)  # type: ignore[arg-type]
    assert "holds lenet5's layers but not its classifier head (classifier.4.weight): a backbone alone has no class " \
        "outputs to teach" in caught.value.message and "teacher=NAME" not in (caught.value.fix or "")


def test_a_teacher_for_other_classes_is_refused() -> None:
    with pytest.raises(CnnlabError, match="teacher.weights=imagenet is a 2-class ImageNet classifier"):
        trained_teacher_weights(role("imagenet", classes=["x", "y"]), DATA)  # type: ignore[arg-type]
    # as many classes, other names: not "knows 3 classes but … has 3"
    with pytest.raises(CnnlabError, match="the teacher and dataset mine both have 3 classes, but the names differ: "
                                          "only the model's: z; only the data's: c"):
        trained_teacher_weights(role("run", classes=["a", "b", "z"]), DATA)  # type: ignore[arg-type]
    same = role("run", classes=["a", "b", "c"])
    assert trained_teacher_weights(same, DATA) is same.weights  # type: ignore[arg-type]


def test_a_student_run_must_know_the_classes_and_the_input_size() -> None:
    check_student_fits(role("none", "student"), DATA)  # type: ignore[arg-type]  # a new head: anything fits
    check_student_fits(role("run", "student", classes=["a", "b", "c"], spec=InputSpec(16)), DATA)  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match="its run knows 2 classes but dataset mine has 3"):
        check_student_fits(role("run", "student", classes=["a", "b"]), DATA)  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match="trained on 32 px images, but the teacher takes 16 px"):
        check_student_fits(role("run", "student", classes=["a", "b", "c"], spec=InputSpec(32)),
                           DATA)  # type: ignore[arg-type]


def test_a_role_is_a_network_for_the_kd_math() -> None:
    model = torch.nn.Linear(2, 2)
    network = role("none", "student").network(model)
    assert (network.role, network.name, network.model) == ("student", "lenet5", model)


def test_a_resumed_run_keeps_the_teacher_it_recorded(tmp_path: Path) -> None:
    from cnnlab.runs import RunRecord
    from cnnlab.steps.resume import keep_resumed_source

    cfg = OmegaConf.create({"teacher": {"name": "lenet5", "weights": "latest:finetune"}})
    assert keep_resumed_source(cfg, None, "teacher.weights") is cfg and cfg.teacher.weights == "latest:finetune"
    RunRecord.start(tmp_path, "distill").update(source={"path": "/runs/teacher/model.pt"})
    kept = keep_resumed_source(cfg, tmp_path / "last.pt", "teacher.weights")
    assert kept.teacher.weights == "/runs/teacher/model.pt"
    # probe 156: the student's weights (recorded under distill.student.source) were resolved again
    cfg = OmegaConf.create({"student": {"name": "lenet5", "weights": "latest:pretrain"}})
    student, bare = tmp_path / "student", tmp_path / "bare"
    RunRecord.start(student, "distill").update(distill={"student": {"source": {"path": "/runs/s/model.pt"}}})
    assert keep_resumed_source(cfg, student / "last.pt", "student.weights").student.weights == "/runs/s/model.pt"
    RunRecord.start(bare, "distill")  # recorded none: `latest` cannot be told
    with pytest.raises(CnnlabError, match="does not record which run that was"):
        keep_resumed_source(OmegaConf.create({"student": {"weights": "latest:pretrain"}}), bare / "last.pt",
                            "student.weights")
    assert keep_resumed_source(OmegaConf.create({"student": {"weights": "none"}}), bare / "last.pt",
                               "student.weights").student.weights == "none"


def test_a_student_is_offered_imagenet_weights_only_when_its_network_has_them() -> None:
    """"use student.weights=none or imagenet" to a LeNet-5 student: it has no ImageNet weights."""
    for name, offered in (("lenet5", False), ("resnet18", True)):
        student = DistillRole("student", name, InitialWeights(kind="run", description="run", classes=["a", "b"]))
        with pytest.raises(CnnlabError, match="its run knows 2 classes but dataset mine has 3") as caught:
            check_student_fits(student, DATA)  # type: ignore[arg-type]
        assert "student.weights=none" in (caught.value.fix or "")
        assert ("imagenet" in (caught.value.fix or "")) is offered, caught.value.fix


def test_classes_that_differ_only_in_unicode_form_are_named_so() -> None:
    """NFC vs NFD folder names ("café" from macOS) read alike on screen: the message said "(or other names)"."""
    import unicodedata

    from cnnlab.wording import class_difference

    decomposed = unicodedata.normalize("NFD", "café")
    assert class_difference(["café", "tea"], [decomposed, "tea"]) == \
        "café differs only in its Unicode form (NFC vs NFD), not on screen"
    assert class_difference(["a", "b"], ["b", "a"]) == "the same names in another order"
