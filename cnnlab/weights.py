"""`model.weights=` → the tensors a new model starts from.

imagenet          torchvision's ImageNet weights (hub cache first, so a copied .pth works offline)
none              random initialisation
PATH              a cnnlab model.pt, or a torchvision-format state dict (.pth/.pt)
RUN | latest | latest:<command>   the model.pt of a cnnlab run
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from cnnlab.data import DataBundle
from cnnlab.data.class_folders import class_mismatch, model_class_of_folders, named_by_folders
from cnnlab.data.registry import stated_triple
from cnnlab.data.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from cnnlab.engine.checkpoint import (TRAIN_STATE_FORMAT, ModelCheckpoint, check_input_channels,
                                     is_cnnlab_checkpoint, load_recorded_weights, load_tensors, read_checkpoint,
                                     refuse_another_format, self_supervised_method, train_state_error)
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import file_sha256
from cnnlab.runs import resolve_source

log = logging.getLogger("cnnlab")


@dataclass
class InitialWeights:
    kind: str                                   # none | imagenet | file | run
    description: str
    state_dict: dict[str, torch.Tensor] | None = None
    spec: InputSpec | None = None               # normalisation (and native size) the weights expect
    classes: list[str] | None = None            # classes of the weights' own head
    arch_name: str | None = None                # architecture recorded with the weights (cnnlab runs)
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    structure: dict[str, Any] | None = None     # per-layer shapes (a pruned run)
    source: dict[str, Any] | None = None        # the run the weights came from
    untrained_head: str | None = None           # simclr, simsiam: a self-supervised backbone, head never trained
    path: Path | None = None                    # the model.pt of kind "run"
    file: Path | None = None                    # the state-dict file of kinds "imagenet" (hub cache) and "file"

    @property
    def pretrained(self) -> bool:
        return self.state_dict is not None

    @property
    def size_recorded(self) -> bool:
        """Whether `spec.size` is the size the weights were trained at: a plain state dict records none (its spec
        carries ImageNet's normalisation, as torchvision's files expect, and a placeholder size)."""
        return self.spec is not None and self.kind != "file"


def _from_checkpoint(ckpt: ModelCheckpoint, description: str, source: dict[str, Any] | None,
                     path: Path) -> InitialWeights:
    return InitialWeights(kind="run", description=description, state_dict=ckpt.state_dict, spec=ckpt.spec,
                          classes=list(ckpt.classes), arch_name=ckpt.name,
                          arch_kwargs=dict(ckpt.arch.get("kwargs") or {}), structure=ckpt.structure, source=source,
                          untrained_head=self_supervised_method(ckpt), path=path)


@found_before_work()
def resolve_weights(spec: Any, model_name: str, outputs: Path, *, role: str = "model",
                    node: Mapping[str, Any] | None = None,
                    normalisation: tuple[Any, Any] | None = None) -> InitialWeights:
    """`role` is the setting's name in errors: model (model.weights=), teacher or student. `node`: the config node
    (`cfg.model`, `cfg.teacher`, ...) whose architecture options (models.model_options: model=searched's arch
    string, the stem) are used when the weights do not bring their own (random initialisation, ImageNet, a plain
    state dict); a checkpoint brings its own, and a stem the node asks for that it was not built with is refused.
    `normalisation`: the (mean, std) the user typed (steps/input_settings.typed_normalisation), which a plain state
    dict is read with instead of ImageNet's. Raises CnnlabError."""
    from cnnlab import models

    node = node or {}
    options, stem = models.model_options(node), models.requested_stem(node)
    models.check_stem_value(stem, role)
    text = "none" if spec is None else str(spec).strip()
    if text.lower() in ("none", "null", "", "random", "scratch"):
        models.check_stem(model_name, stem, role)
        return InitialWeights(kind="none", description="random initialisation", arch_kwargs=options)
    if text.lower() == "imagenet":
        _check_imagenet_stem(model_name, stem, role)
        return _imagenet(models.imagenet_weights(model_name, role=role), model_name, options, role)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() in (".pt", ".pth"):
        payload = load_tensors(path, "weights file", pickled_fix=_save_state_dict(role))
        if payload.get("format") == TRAIN_STATE_FORMAT:
            raise train_state_error(path, f"{role}.weights")
        refuse_another_format(payload, path)
        if is_cnnlab_checkpoint(payload):
            # recorded as source= records a file (its run when it lies in one, its SHA-256): a sweep job or pipeline
            # stage done before from this path is not reused once another file is there (steps/freshness.py)
            described = resolve_source(text, outputs, want=("checkpoint",), key=f"{role}.weights").describe()
            weights = _from_checkpoint(read_checkpoint(path), f"cnnlab checkpoint {path}", described, path)
            _check_recorded_stem(weights, stem, role)
            return weights
        if models.published_file(model_name, path):
            # torchvision's own file, copied elsewhere: its recipe comes with it, as model.weights=imagenet's does
            # (probe 76: googlenet's file by path was built without the transform_input its weights expect)
            _check_imagenet_stem(model_name, stem, role)
            return _imagenet(models.imagenet_weights(model_name, role=role, path=path), model_name, options, role)
        needs = models.get_entry(model_name).pretrained_arch_kwargs
        if needs:
            log.warning("%s is not torchvision's published %s file, so %s is built as for weights of its own "
                        "(without %s, which torchvision's ImageNet weights need); for those, give the published file "
                        "%s unchanged (by path, or in the torch hub cache with model.weights=imagenet)", path,
                        model_name, model_name, ", ".join(f"{k}={v}" for k, v in needs.items()),
                        models.published_name(model_name))
        # A torchvision-format state dict: assumed to expect ImageNet normalisation, like torchvision's own.
        models.check_stem(model_name, stem, role)
        state_dict = models.load_state_dict_file(path)
        # a network that takes any channels (LeNet-5) is built for the state dict's (probe 174: a 1-channel LeNet-5
        # of Fashion-MNIST was refused, "has shape (6, 1, 5, 5), the model expects (6, 3, 5, 5)", with no way in)
        channels = models.state_dict_channels(model_name, state_dict, **options) or 3
        options = {**options, **models.channel_options(model_name, channels)}
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalisation is None else (
            stated_triple(normalisation[0], IMAGENET_MEAN, "mean", channels),
            stated_triple(normalisation[1], IMAGENET_STD, "std", channels))
        return InitialWeights(kind="file", description=f"state dict {path}", state_dict=state_dict,
                              spec=InputSpec(size=224, mean=mean, std=std, channels=channels),
                              arch_name=model_name, arch_kwargs=options, file=path,
                              source={"spec": text, "kind": "state_dict", "path": str(path.resolve()),
                                      "sha256": file_sha256(path)})
    source = resolve_source(text, outputs, want=("checkpoint",), key=f"{role}.weights")
    ckpt = read_checkpoint(source.path)
    weights = _from_checkpoint(ckpt, f"run {source.origin}", source.describe(),
                               source.path)
    _check_recorded_stem(weights, stem, role)
    return weights


def _imagenet(pretrained: Any, model_name: str, options: dict[str, Any], role: str) -> InitialWeights:
    """InitialWeights of torchvision's ImageNet weights (models.PretrainedWeights); a file under their name that is
    not their published bytes is said to be so, in the log and the run's description of its weights (probe 76: a
    random file named resnet18-f37072fd.pth was recorded as "torchvision ImageNet weights")."""
    description = f"torchvision ImageNet weights ({pretrained.source})"
    if pretrained.published is False:
        description = (f"weights in {pretrained.source}, under the name of torchvision's {model_name} ImageNet file "
                       "but not its bytes (SHA-256 differs)")
        log.warning("%s is not torchvision's published file (its SHA-256 does not start with the name's hash "
                    "prefix): another save of those weights, or other weights; %s.weights reads it as ImageNet "
                    "weights", pretrained.source, role)
    return InitialWeights(kind="imagenet", description=description, state_dict=pretrained.state_dict,
                          spec=pretrained.spec, classes=pretrained.classes, arch_name=model_name,
                          arch_kwargs={**pretrained.arch_kwargs, **options}, file=pretrained.source)


def _save_state_dict(role: str) -> str:
    """The fix for `role`.weights= naming a whole pickled model (which weights_only loading refuses): its state
    dict, which this setting loads (a teacher's head must already have one output per class of the data)."""
    teacher = " (a teacher's head needs one output per class of the dataset)" if role == "teacher" else ""
    return (f"save its weights with torch.save(model.state_dict(), 'weights.pth') and pass "
            f"{role}.weights=weights.pth{teacher}, or a cnnlab run / model.pt")


def _check_imagenet_stem(model_name: str, stem: str | None, role: str) -> None:
    """ImageNet weights with a stem whose first convolution has another shape: refused before any download."""
    from cnnlab import models

    entry = models.get_entry(model_name)
    if (models.check_stem(model_name, stem, role) != "cifar" or entry.cifar_stem is None
            or entry.cifar_stem.keeps_shapes):
        return
    fix = {"student": f"train the student from scratch (student.weights=none), or drop {role}.stem",
           "teacher": f"train the teacher first (`cnnlab pretrain model={entry.name} model.stem=cifar`) and pass "
                      "teacher.weights=latest:pretrain, or drop teacher.stem"}.get(
        role, f"train it from scratch (`cnnlab pretrain model={entry.name} model.stem=cifar`), then fine-tune that "
              f"(model.weights=latest:pretrain); or drop {role}.stem")
    raise CnnlabError(f"{role}.stem=cifar gives {entry.name} a 3×3 first convolution; its ImageNet weights have a "
                      "7×7 one and do not fit", fix=fix)


def _check_recorded_stem(weights: InitialWeights, asked: str | None, role: str) -> None:
    """A checkpoint rebuilds its own stem; a different one asked for on top would be silently ignored: refuse it."""
    recorded = str(weights.arch_kwargs.get("stem") or "imagenet")
    if asked is not None and asked != recorded:
        built = "the stock stem" if recorded == "imagenet" else f"{role}.stem={recorded}"
        raise CnnlabError(f"{role}.stem={asked} but {role}.weights holds a network built with {built} "
                          "(a checkpoint rebuilds its own architecture)",
                          fix=f"drop {role}.stem, or start from weights trained with {role}.stem={asked}")


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def check_weights_arch(weights: InitialWeights, model_name: str, *, model_chosen: bool, role: str = "model") -> str:
    """The architecture to build: the weights' own unless the user picked a different model on purpose."""
    from cnnlab.models import canonical_name

    wanted = canonical_name(model_name, role=role)
    if weights.arch_name is None or weights.kind in ("imagenet", "file"):
        return wanted
    recorded = canonical_name(weights.arch_name)
    if recorded != wanted and model_chosen:
        # the run it resolved to: `teacher.weights` is latest:finetune unless typed (probe 124: "where from?")
        raise CnnlabError(f"{role}.weights ({weights.description}) is a {recorded} checkpoint but {role}={model_name} "
                          "was asked for",
                          fix=f"drop {role}= (the checkpoint's {recorded} is used) or pass {role}={recorded}")
    return recorded


def _named_network(error: CnnlabError, name: str, weights: InitialWeights, data: DataBundle,
                   role: str) -> CnnlabError:
    """`error` (a state dict file that does not fit network `name`) with the fix `role=NAME` where the file fits
    another zoo network: `teacher.weights=resnet18.pth` alone was refused as "does not fit resnet50", the default
    the user never typed (probe 186)."""
    from cnnlab.models.fitting import fitting_fix

    if weights.kind != "file" or not weights.state_dict:
        return error
    fix = fitting_fix(weights.state_dict, data.spec.size, data.spec.channels, role, other_than=name)
    return error if fix is None else CnnlabError(error.message, fix=fix)


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def initial_model(name: str, weights: InitialWeights, data: DataBundle, new_head: bool | None, *,
                  role: str = "model") -> torch.nn.Module:
    """The network a training run starts from: zoo model `name` built with the weights' own head, the weights
    loaded (a pruned run's per-layer shapes applied first), then a head for the data's classes (new_head None =
    auto: only when the classes differ; False: refuse other classes). `role` (model, teacher, student) names the
    setting in errors. Raises CnnlabError when the weights do not fit."""
    from cnnlab.models import channel_options, create_model, load_pretrained, reorder_head, replace_head

    size = data.spec.size
    if not weights.pretrained:  # a network that takes any channels is built for the data's (1 for grayscale sets)
        return create_model(name, num_classes=len(data.classes), image_size=size,
                            **{**channel_options(name, data.spec.channels), **weights.arch_kwargs})
    own_classes = len(weights.classes) if weights.classes else len(data.classes)
    model = create_model(name, num_classes=own_classes, image_size=size, **weights.arch_kwargs)
    if weights.kind == "run":
        load_recorded_weights(model, weights.state_dict, weights.structure, arch_name=name,
                              origin=f"{role}.weights ({weights.description})")
        check_input_channels(model, data.spec.channels, f"{role}.weights ({weights.description})")
    else:
        try:
            load_pretrained(model, name, weights.state_dict, role=role, origin=weights.file)
        except CnnlabError as error:
            raise _named_network(error, name, weights, data, role) from None
    same_classes = _same_classes(weights, data)
    if new_head is False and not same_classes:
        auto = ", or use finetune.new_head=auto" if role == "model" else ""
        if not weights.classes:  # probe 76: "the model knows 0 classes", and a fix no state dict can meet
            raise CnnlabError(f"{role}.weights {weights.file or ''} is a state dict, which records no class names, so "
                              f"its head cannot be matched to the {len(data.classes)} classes of {data.name}",
                              fix=f"give {role}.weights a cnnlab run trained on this dataset (it records its "
                                  f"classes){auto}")
        raise CnnlabError(class_mismatch(list(weights.classes), list(data.classes), data.name, f"the {role}"),
                          fix=f"give {role}.weights trained on this dataset{auto}")
    if not keeps_head(weights, data, new_head):
        replace_head(model, name, len(data.classes))
        # load_pretrained said "head loaded" of the weights' own head, which this replaces (probe 76)
        log.info("%s: a new head for the %d classes of %s (random init)%s", role, len(data.classes), data.name,
                 "" if weights.classes else "; a state dict records no class names, so its head is not kept")
    elif weights.untrained_head is not None:  # probe 83: kept for the same classes, and never said untrained
        log.info("%s: the head of %s was never trained (%s): it trains here from its initial weights as a new head",
                 role, weights.description, weights.untrained_head)
    order = class_order(weights.classes, data.classes)
    if keeps_head(weights, data, new_head) and order is not None and order != sorted(order):
        reorder_head(model, name, order)  # probe 116: the data's classes in another order got a new random head
        log.info("%s: the head of %s is kept, its rows put in the order of the data's classes (the same names)",
                 role, weights.description)
    elif keeps_head(weights, data, new_head) and weights.untrained_head is None:  # a new head is said: so is this
        log.info("%s: the head of %s is kept (the same %d classes)", role, weights.description, len(data.classes))
    return model


def keeps_head(weights: InitialWeights, data: DataBundle, new_head: bool | None) -> bool:
    """Whether `initial_model` keeps the weights' own classifier head: pretrained weights for the data's classes (in
    any order: its rows are put in the data's) and no new_head=true (else the head is new, randomly initialised)."""
    return weights.pretrained and _same_classes(weights, data) and not new_head


def _same_classes(weights: InitialWeights, data: DataBundle) -> bool:
    """Whether the weights' head knows the data's classes: the same names, in any order (class_order)."""
    return class_order(weights.classes, data.classes) is not None


def class_order(known: Sequence[str] | None, wanted: Sequence[str]) -> list[int] | None:
    """For each of the `wanted` classes, the row of a head trained for the `known` ones that scores it — where both
    name the same distinct classes, in any order, a class folder's name standing for its class by the folder rule
    (data/class_folders.py: `T-shirt_top` for `T-shirt/top`, either way round, as `cnnlab evaluate` reads them; probe
    174: a fine-tune on a folder export of Fashion-MNIST replaced its trained head); None otherwise."""
    known, wanted = list(known or ()), list(wanted)
    if not known or len(known) != len(wanted) or len(set(known)) != len(known):
        return None
    if sorted(known) == sorted(wanted):
        row = {name: index for index, name in enumerate(known)}
        return [row[name] for name in wanted]
    return model_class_of_folders(known, wanted) or named_by_folders(known, wanted)
