"""The two networks of `cnnlab distill`: who teaches, who learns, and the weights each starts from.

`resolve_role` turns `teacher=` / `student=` (a zoo name and `.weights`) into a `DistillRole`;
`trained_teacher_weights` and `check_student_fits` check them against the data (the same classes, the same input
size); a resumed run keeps the teacher it started with (steps/resume.keep_resumed_source). Every refusal is a
CnnlabError that names the setting and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from omegaconf import DictConfig
from torch import nn

from cnnlab.compress.distill import Network
from cnnlab.models.fitting import fitting_fix
from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.data.class_folders import class_mismatch
from cnnlab.engine.checkpoint import untrained_head_error
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models import canonical_name, get_entry
from cnnlab.runs import MODEL_MAKERS, check_latest_command, latest_makers, latest_run
from cnnlab.weights import InitialWeights, check_weights_arch, class_order, resolve_weights
from cnnlab.steps.input_settings import typed_normalisation

def train_a_teacher(name: str, dataset: str | None = None) -> str:
    """The fix that makes a teacher: network `name` fine-tuned from ImageNet weights where torchvision has them,
    else trained from scratch (`cnnlab finetune` of a network without them trains a head on random features:
    probe 54), on `dataset` (the data to distill on) when known."""
    data = f" dataset={dataset}" if dataset else ""
    said = "" if dataset else ", with dataset= the data to distill on"
    if get_entry(name).tv_weights:
        return (f"train one first (`cnnlab finetune model={name} finetune.mode=full{data}`{said}), then use "
                "teacher.weights=latest:finetune")
    return f"train one first (`cnnlab pretrain model={name}{data}`{said}), then use teacher.weights=latest:pretrain"


@dataclass(frozen=True)
class DistillRole:
    """The teacher or the student: its role (teacher | student, names the setting in errors), zoo name and
    starting weights."""

    role: str
    name: str
    weights: InitialWeights

    def network(self, model: nn.Module) -> Network:
        """This role with its built `model`, as the KD math (cnnlab.compress.distill) takes it."""
        return Network(role=self.role, name=self.name, model=model)


def imagenet_teacher_error(n_imagenet: int, name: str, data: DataBundle) -> CnnlabError:
    """The refusal of ImageNet weights (`n_imagenet` classes) as the teacher `name` for `data` of other classes."""
    return CnnlabError(f"teacher.weights=imagenet is a {n_imagenet}-class ImageNet classifier, not a teacher for "
                       f"dataset {data.name} ({len(data.classes)} classes)", fix=train_a_teacher(name, data.name))


@found_before_work()  # it only resolves: a missing or wrong run leaves no `failed` run behind (probe 121)
def resolve_role(cfg: DictConfig, ctx: RunContext, role: str, data: DataBundle | None = None) -> DistillRole:
    """`cfg[role]` (name, weights) resolved: the zoo name (an unknown one is reported first, with the choices),
    the weights it starts from, and the architecture those weights were trained as. `data`: the student's data,
    whose channels an ImageNet student is checked against before its file is read (or fetched). Raises
    CnnlabError."""
    node = cfg[role]
    spec = str(node.weights)
    name = canonical_name(str(node.name), role=role)
    if role == "teacher":
        require_latest_run(spec, name, ctx)
    if data is not None and spec.strip().lower() == "imagenet":
        refuse_student_channels(name, data)
    weights = resolve_weights(spec, name, ctx.outputs, role=role, node=node,
                              normalisation=typed_normalisation(cfg, ctx))
    name = check_weights_arch(weights, name, model_chosen=ctx.explicitly_set(role, f"{role}.name"), role=role)
    return DistillRole(role=role, name=name, weights=weights)


def require_latest_run(spec: str, name: str, ctx: RunContext) -> None:
    """teacher.weights=latest[:command] with no such run: say how to get a teacher."""
    if spec != "latest" and not spec.startswith("latest:"):
        return
    check_latest_command(spec, "teacher.weights", ("checkpoint",))  # latest:bogus, latest:evaluate
    command = spec.partition(":")[2] or None
    if latest_run(ctx.outputs, command, artifact="model") is None:
        what = f"`cnnlab {command}` run" if command else "run"
        others = "teacher.weights=RUN_FOLDER or path/to/model.pt" + (" or imagenet" if get_entry(name).tv_weights
                                                                       else "")
        if command is not None and command not in MODEL_MAKERS["checkpoint"]:  # quantize, export: ONNX files only
            raise CnnlabError(f"teacher.weights={spec}: `cnnlab {command}` runs hold no model.pt, and a teacher "
                              "needs one", fix=f"use one of {', '.join(latest_makers(('checkpoint',)))}, or {others}")
        # pretrain and finetune train a network named by model=; the other commands start from a run
        train = f"`cnnlab {command} model={name}`" if command in ("pretrain", "finetune") else None
        raise CnnlabError(f"teacher.weights={spec}: there is no completed {what} with a model in {ctx.outputs}/ — "
                          "distillation needs a trained teacher",
                          fix=(f"train one first ({train}), or pass {others}" if train else
                               f"{train_a_teacher(name)}, or pass {others}"))


def drop_typed_data(typed: Sequence[str]) -> str:
    """"drop dataset=imagefolder dataset.root=abd": the data settings the user typed (all of them: the folder can come
    from `dataset.root=` alone, and "drop dataset=" was repeated after it was followed, probe 186)."""
    return "drop " + (" ".join(typed) if typed else "dataset=")


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def trained_teacher_weights(teacher: DistillRole, data: DataBundle, typed: Sequence[str] = ()) -> InitialWeights:
    """The teacher's weights, checked to be trained for exactly the data's classes (a plain state dict, which has
    no class names, gets the data's: the same order is assumed). Raises CnnlabError."""
    from cnnlab.models import MODELS, create_model

    weights, n = teacher.weights, len(data.classes)
    if weights.untrained_head is not None:  # its soft targets would be noise
        raise untrained_head_error(weights.untrained_head, weights.path, "the soft targets it teaches",
                                   then="teacher.weights=latest:finetune")
    if weights.kind == "file":  # a plain state dict: its head must already have one output per class
        key = f"{MODELS[teacher.name].head}.weight"
        head = weights.state_dict.get(key) if weights.state_dict else None
        if head is None and weights.state_dict and set(weights.state_dict) < set(create_model(
                teacher.name, n, data.spec.size, **weights.arch_kwargs).state_dict()):  # probe 147: "not a lenet5
            # state dict, name the network with teacher=lenet5" of lenet5's own backbone, saved without its head
            raise CnnlabError(f"teacher.weights: {weights.description} holds {teacher.name}'s layers but not its "
                              f"classifier head ({key}): a backbone alone has no class outputs to teach",
                              fix="save the trained classifier whole (torch.save(model.state_dict(), 'teacher.pth')) "
                                  "or pass its cnnlab run (teacher.weights=RUN)")
        if head is None:  # probe 142: another network's state dict read "a None-way head"
            keys = ", ".join(list(weights.state_dict or {})[:3]) or "none"
            named = fitting_fix(weights.state_dict or {}, data.spec.size, data.spec.channels, "teacher") or \
                "name the network it was trained as with teacher=NAME (`cnnlab list models` lists them)"
            raise CnnlabError(f"teacher.weights: {weights.description} holds no {key}, so it is not a "
                              f"{teacher.name} state dict (its first keys: {keys})", fix=named)
        rows = int(head.shape[0])
        if rows != n:
            raise CnnlabError(f"teacher.weights: {weights.description} has a {rows}-way head but dataset {data.name} "
                              f"has {n} classes", fix=train_a_teacher(teacher.name, data.name))
        return replace(weights, classes=list(data.classes))
    if class_order(weights.classes, data.classes) is None:  # the same names in another order: initial_model reorders
        if weights.kind == "imagenet":
            raise imagenet_teacher_error(len(weights.classes or []), teacher.name, data)
        raise CnnlabError(class_mismatch(list(weights.classes or []), list(data.classes), data.name, "the teacher"),
                          fix=f"{drop_typed_data(typed)} to distill on the teacher's own dataset, or pick a teacher "
                              "trained on this one")
    return weights


def refuse_student_channels(name: str, data: DataBundle) -> None:
    """A new student `name` (random or ImageNet weights) for data of other than 3 channels must be a network built
    for any channels. Raises CnnlabError."""
    channels = data.spec.channels
    if channels != 3 and not get_entry(name).any_channels:
        raise CnnlabError(f"the teacher reads {data.name} as {channels}-channel images and student={name} takes 3 "
                          "channels", fix="use a student built for any channels (student=lenet5 or student=searched), "
                                          "or a teacher trained on 3 channels (a torchvision network, e.g. `cnnlab "
                                          f"pretrain model=resnet18 dataset={data.name}`)")


@found_before_work()  # probe 121: a student of other channels or size left a `failed` run
def check_student_fits(student: DistillRole, data: DataBundle) -> None:
    """A student that starts from a cnnlab run must have been trained for the teacher's classes, input size and
    channels (random or ImageNet weights get a head made for the data's classes); a student for 1-channel data
    must be a network built for any channels. Raises CnnlabError."""
    weights = student.weights
    channels = data.spec.channels
    if weights.kind != "run":
        refuse_student_channels(student.name, data)
        return
    # a fresh start that works for this student: ImageNet weights only where the network has them
    fresh = "student.weights=none or imagenet" if get_entry(student.name).tv_weights else "student.weights=none"
    if weights.spec is not None and weights.spec.channels != channels:
        raise CnnlabError(f"student.weights is a run trained on {weights.spec.channels}-channel images, but the "
                          f"teacher takes {channels}", fix="use student.weights=none, or a student run trained on "
                                                          "the teacher's data")
    if class_order(weights.classes, data.classes) is None:
        # probe 171: "trained on 10 classes, but ... have 10" where the names differed
        mismatch = class_mismatch(list(weights.classes or []), list(data.classes), data.name, "its run")
        raise CnnlabError(f"student.weights: {mismatch} (the teacher's data)",
                          fix=f"use {fresh}, or a student run trained on the teacher's data")
    if weights.spec is not None and weights.spec.size != data.spec.size:
        raise CnnlabError(f"student.weights is a run trained on {weights.spec.size} px images, but the teacher "
                          f"takes {data.spec.size} px", fix=f"use {fresh}, or a student run trained at the "
                                                             "teacher's input size")
