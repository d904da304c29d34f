"""Checkpoints that load with `torch.load(weights_only=True)` — no pickled modules, ever.

`model.pt` holds the weights plus everything that rebuilds the network: architecture name and
arguments, per-layer shapes (so a channel-pruned model rebuilds), class names and the input spec.
`last.pt` holds the resumable training state. Both are written atomically.
"""

from __future__ import annotations

import functools
import io
import pickle
import warnings
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path, read_json, why_not_a_file
from cnnlab.hydra_args import path_argument

FORMAT = "cnnlab.checkpoint/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def save_tensors(path: Path, payload: dict[str, Any]) -> None:
    """torch.save, atomically. Serialised in memory first, then written by Python: torch's own writer reports a full
    disk as a RuntimeError ("unexpected pos 19712 vs 19600"), which read as a cnnlab bug with a traceback and kept
    the temporary file open, so the failed run could not even record itself (probe 112); Python's write raises
    ENOSPC, which atomic_path turns into its one line."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


# How a plain state dict (or a whole pickled model's weights) becomes what `source=` takes: a cnnlab model.pt,
# which records the network, the classes and the input the weights need.
STATE_DICT_TO_SOURCE = ("`cnnlab finetune model=NAME {weights} dataset=...` (NAME: the network it was "
                        "saved from; dataset: its data) loads the weights and writes a cnnlab model.pt; then use "
                        "source=latest:finetune")


# The fix for a training state (last.pt) that cannot be read: resume= names a run, not a file to pick (probe 139)
STATE_FIX = "put the run's own last.pt back, or start a new run without resume="
STATE_MISMATCH_FIX = ("put the run's own last.pt and its .hydra/config.yaml back as they were, or start a new run "
                      "without resume=")


def load_tensors(path: Path, what: str = "checkpoint", *, pickled_fix: str | None = None,
                 unreadable_fix: str = "pick another file or re-create it",
                 records_only: bool = False) -> dict[str, Any]:
    """torch.load(weights_only=True) with a clear error for a missing, truncated or foreign file. `pickled_fix`:
    the fix for a file holding pickled objects (a whole saved model); by default, for a checkpoint (what
    `source=` reads), how its weights become a cnnlab model.pt. `unreadable_fix`: the fix for any other file that
    cannot be read (and a pickled one, where `pickled_fix` is not given and it is no checkpoint). `records_only`:
    for the plain values beside the tensors (a last.pt's history and extra): the file is memory-mapped
    (torch.load(mmap=True)), so its tensors are not read (a resume read a ResNet-18's 90 MB last.pt three times)."""
    path = Path(path)
    if not path.is_file():  # a named pipe is there, and no file (probe 114: "does not exist")
        raise CnnlabError(f"{what} {path} {why_not_a_file(path)}")
    try:
        with warnings.catch_warnings():  # a plain pickle's "Detected pickle protocol 4 … please file an issue" (probe
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # 209): the error below says it
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True, mmap=records_only or None)
            except RuntimeError:  # mmap needs torch.save's zip format; another file is read whole, and judged so
                if not records_only:
                    raise
                payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - text or random bytes fail anywhere inside torch.load (KeyError, ...)
        # torch says "Unsupported global: GLOBAL x.Y" or, for a blocked module, "unsupported GLOBAL posix.system
        # whose module posix is blocked" (probe 139: the second read as "corrupt")
        if isinstance(exc, pickle.UnpicklingError) and "unsupported global" in str(exc).lower():
            # weights_only refuses pickled code (a whole saved module) — never unpickle it.
            if pickled_fix is None:  # a model.pt for source=, or cnnlab's own last.pt (never pickles objects)
                pickled_fix = ("save its weights with torch.save(model.state_dict(), 'weights.pth'); "
                               + STATE_DICT_TO_SOURCE.format(weights="model.weights=weights.pth")) \
                    if what == "checkpoint" else unreadable_fix
            raise CnnlabError(f"{what} {path} cannot be read safely: it holds pickled objects (a whole saved "
                              "model?), not just tensors", fix=pickled_fix) from exc
        if isinstance(exc, pickle.UnpicklingError) and _plain_pickle(path):
            # pickle.dump's protocol 3+ (torch.save writes a zip archive, or protocol 2): probe 209 read "corrupt"
            raise CnnlabError(f"{what} {path} cannot be read safely: it was written by pickle.dump, not torch.save, "
                              "and may hold pickled objects", fix=pickled_fix or unreadable_fix) from exc
        if _is_onnx(path):  # probe 155: an exported model.onnx renamed .pt read as "corrupt"
            raise CnnlabError(f"{what} {path} is an ONNX model, not a PyTorch file",
                              fix=f"name it {path.stem}.onnx") from exc
        raise CnnlabError(f"{what} {path} cannot be read safely: it is corrupt, truncated or not a PyTorch file "
                          f"({type(exc).__name__})", fix=unreadable_fix) from exc
    if not isinstance(payload, dict):
        raise CnnlabError(f"{what} {path} holds a {type(payload).__name__}, not a checkpoint dictionary")
    return payload


def _plain_pickle(path: Path) -> bool:
    """Whether `path` starts as a pickle of protocol 3 or later does (PROTO opcode 0x80, then the protocol)."""
    with path.open("rb") as head:
        start = head.read(2)
    return len(start) == 2 and start[0] == 0x80 and 3 <= start[1] <= pickle.HIGHEST_PROTOCOL


def _is_onnx(path: Path) -> bool:
    """Whether `path` parses as an ONNX model with a graph (read only when torch.load could not read it)."""
    import onnx  # only on this error path

    try:
        return bool(onnx.load(str(path), load_external_data=False).graph.node)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: not ONNX either
        return False


# Bounds of what a checkpoint may ask to be built: beyond them a hand-made file could allocate gigabytes.
MAX_IMAGE_SIZE = 8192
MAX_CLASSES = 1_000_000  # settings.MAX_CLASSES too (tests/test_settings.py)
MAX_CHANNELS = 65_536
# A recorded layer's shape keys → how its weight tensor is shaped (see cnnlab.models.structure).
_LAYER_KINDS = {frozenset({"in_channels", "out_channels", "groups"}): "conv",
                frozenset({"num_features"}): "batchnorm",
                frozenset({"in_features", "out_features"}): "linear"}


@dataclass
class ModelCheckpoint:
    """A model.pt after validation (`read_checkpoint`): every field has the type and range stated here."""

    arch: dict[str, Any]                 # name (str), num_classes (int), image_size (int), kwargs (dict)
    state_dict: dict[str, torch.Tensor]  # parameter/buffer name → tensor, shapes consistent with `structure`
    classes: list[str]                   # num_classes names
    spec: InputSpec
    structure: dict[str, dict[str, int]] | None = None  # module path → constructor shapes (pruned models)
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = "checkpoint"           # where it was read from (errors name the file)

    @property
    def name(self) -> str:
        return str(self.arch["name"])

    @property
    def num_classes(self) -> int:
        return int(self.arch["num_classes"])

    @property
    def image_size(self) -> int:
        return int(self.arch["image_size"])


def save_model(path: Path, model: nn.Module, *, arch: dict[str, Any], classes: list[str], spec: InputSpec,
               extra: dict[str, Any] | None = None) -> Path:
    from cnnlab.models import capture_structure

    model = unwrap(model)
    payload = {
        "format": FORMAT,
        "arch": {"name": arch["name"], "num_classes": int(arch["num_classes"]),
                 "image_size": int(arch["image_size"]), "kwargs": dict(arch.get("kwargs") or {})},
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "structure": capture_structure(model),
        "classes": list(classes),
        "input": spec.to_dict(),
        "extra": extra or {},
    }
    try:  # never write what read_checkpoint would refuse (a run that "completed" with an unloadable model.pt)
        validate_checkpoint(payload)
    except _Invalid as exc:
        non_finite = first_non_finite(payload["state_dict"]) is not None
        raise CnnlabError(f"{path} was not written: {exc}",
                          fix=NON_FINITE_FIX if non_finite else "this is a bug in cnnlab; please report the command") \
            from exc
    save_tensors(Path(path), payload)
    return Path(path)


# What to change when training made the loss or the weights NaN/inf.
NON_FINITE_FIX = "lower optim.lr, set trainer.grad_clip=1.0, or use trainer.amp=none"


def is_cnnlab_checkpoint(payload: dict[str, Any]) -> bool:
    return payload.get("format") == FORMAT


class _Invalid(ValueError):
    """One field of a checkpoint payload is missing, of the wrong type or out of range."""


def _int_in(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(f"{where} is {value!r}, expected an integer in [{low}, {high}]")
    return value


def _mapping(value: Any, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where} is a {type(value).__name__}, expected a dictionary")
    return value


def _check_arch(arch: Any) -> dict[str, Any]:
    arch = _mapping(arch, "arch")
    if not isinstance(arch.get("name"), str) or not arch["name"]:
        raise _Invalid(f"arch.name is {arch.get('name')!r}, expected a model name")
    _int_in(arch.get("num_classes"), "arch.num_classes", 1, MAX_CLASSES)
    _int_in(arch.get("image_size"), "arch.image_size", 1, MAX_IMAGE_SIZE)
    kwargs = _mapping(arch.get("kwargs") or {}, "arch.kwargs")
    for key, value in kwargs.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool, type(None))):
            raise _Invalid(f"arch.kwargs[{key!r}] is {type(value).__name__}, expected a plain value")
    return {"name": arch["name"], "num_classes": arch["num_classes"], "image_size": arch["image_size"],
            "kwargs": dict(kwargs)}


def _check_spec(data: Any) -> InputSpec:
    """The recorded input spec, preprocessing included (InputSpec.from_dict validates every field)."""
    try:
        return InputSpec.from_dict(_mapping(data, "input"))
    except ValueError as exc:
        raise _Invalid(f"input.{exc}") from exc  # from_dict names the field first: "size is -32, ..."


def first_non_finite(state: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor in `state` (a state dict) holding NaN or ±inf, or None."""
    return next((key for key, value in state.items() if isinstance(value, torch.Tensor) and value.is_floating_point()
                 and not torch.isfinite(value).all()), None)


def _check_state_dict(state: Any) -> dict[str, torch.Tensor]:
    state = _mapping(state, "state_dict")
    if not state:
        raise _Invalid("state_dict is empty")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise _Invalid(f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
    broken = first_non_finite(state)
    if broken is not None:  # a diverged run's weights
        raise _Invalid(f"state_dict[{broken!r}] holds NaN or infinite values (saved from a diverged run?)")
    return state


def _expected_weight_shape(kind: str, shape: dict[str, int]) -> tuple[int, ...]:
    if kind == "conv":
        if shape["in_channels"] % shape["groups"] or shape["out_channels"] % shape["groups"]:
            raise _Invalid(f"{shape} cannot form {shape['groups']} groups")
        return shape["out_channels"], shape["in_channels"] // shape["groups"]
    if kind == "linear":
        return shape["out_features"], shape["in_features"]
    return (shape["num_features"],)


def _check_structure(structure: Any, state: dict[str, torch.Tensor]) -> dict[str, dict[str, int]] | None:
    """Plain bounded ints, and every recorded layer the same shape as its weight in the state dict: what
    gets built is then never larger than what the file already holds."""
    if structure is None:
        return None
    for path, shape in _mapping(structure, "structure").items():
        shape = _mapping(shape, f"structure[{path!r}]")
        kind = _LAYER_KINDS.get(frozenset(shape))
        if not isinstance(path, str) or kind is None:
            raise _Invalid(f"structure[{path!r}] records {sorted(map(str, shape))}, not a known layer")
        for key, value in shape.items():
            _int_in(value, f"structure[{path!r}].{key}", 1, MAX_CHANNELS)
        weight = state.get(f"{path}.weight", state.get(f"{path}.running_mean"))  # a non-affine norm: its stats
        expected = _expected_weight_shape(kind, shape)
        if weight is None or tuple(weight.shape[:len(expected)]) != expected:
            found = "no weight" if weight is None else f"a weight of shape {tuple(weight.shape)}"
            raise _Invalid(f"structure[{path!r}] records {shape} but the state dict holds {found}")
    return structure


def validate_checkpoint(payload: dict[str, Any]) -> ModelCheckpoint:
    """A typed ModelCheckpoint from a loaded payload, or ValueError naming the first field that is missing,
    of the wrong type or out of range (sizes and channel counts are bounded: nothing huge is ever built)."""
    arch = _check_arch(payload.get("arch"))
    classes = payload.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _Invalid(f"classes is {type(classes).__name__ if not isinstance(classes, list) else 'a list'} "
                       "holding something else than class names (text)")
    if len(classes) != arch["num_classes"]:
        raise _Invalid(f"classes has {len(classes)} names but arch.num_classes is {arch['num_classes']}")
    if len(set(classes)) != len(classes):  # two outputs with one name: predictions could not be told apart
        raise _Invalid(f"classes names {sorted({c for c in classes if classes.count(c) > 1})} more than once")
    state = _check_state_dict(payload.get("state_dict"))
    return ModelCheckpoint(arch=arch, state_dict=state, classes=list(classes), spec=_check_spec(payload.get("input")),
                           structure=_check_structure(payload.get("structure"), state),
                           extra=_mapping(payload.get("extra") or {}, "extra"))


TRAIN_STATE_FORMAT = "cnnlab.train-state/1"  # last.pt: what `resume=` continues (engine/trainer.py writes it)


def train_state_error(path: Path, key: str) -> CnnlabError:
    """For a run's last.pt given where a model goes (`key`=source, model.weights, ...): the training state holds the
    network without its classes and input (and an SSL run's projection head); the model is the model.pt beside it
    (probe 83: model.weights=RUN/last.pt was read as a plain state dict, then "'conv1.weight' is missing")."""
    model = path.parent / "model.pt"
    if model.is_file() and model.resolve() != Path(path).resolve():  # not the file itself (probe 223: a model.pt
        # marked as a training state, outside any run, was told to give its folder, which is no run)
        fix = f"give its run folder ({path_argument(key, [path.parent])})" if (path.parent / "run.json").is_file() \
            else f"give the model.pt beside it ({path_argument(key, [model])})"
    elif (path.parent / "run.json").is_file():  # resume= writes a new run, which then holds the model (probe 84)
        finish = (f"finish it with {path_argument('resume', [path.parent])} (the command that made it); then give "
                  f"the run that completes it ({key}=latest:<command>)")
        status = _recorded_status(path.parent / "run.json")
        if status in ("interrupted", "failed"):  # probe 193: an interrupted run was told to wait if still running
            fix = f"its run stopped ({status}) before it wrote model.pt: {finish}"
        else:  # a run still running writes model.pt as it ends (probe 191: resume= was offered for a live run)
            fix = (f"its run has no model.pt yet: wait for it to end if it is still running (`cnnlab list runs` "
                   f"says), or, if it stopped, {finish}")
    else:
        fix = "a training state outside its run folder is no model: give the model.pt its run wrote"
    return CnnlabError(f"{path} is a run's training state (what resume= continues), not a model", fix=fix)


def _recorded_status(run_json: Path) -> str | None:
    """The `status` a run.json records (running, interrupted, failed, completed), None where it records none or the
    file cannot be read: a hint's wording only, so an untrusted file is never an error here (a run killed outright
    still says running: `cnnlab list runs` tells it apart)."""
    try:
        status = read_json(run_json).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None


def refuse_another_format(payload: dict[str, Any], path: Path) -> None:
    """CnnlabError for a cnnlab model checkpoint of a format this cnnlab does not read (`cnnlab.checkpoint/2`): it is
    no plain state dict (probe 209: called one, "no network, classes or input recorded"; probe 212: read as one by
    `model.weights=`, with ImageNet's normalisation for its own — a teacher at 72.22 % scored 53.33 %)."""
    marked = payload.get("format")
    if marked != FORMAT and isinstance(marked, str) and marked.startswith(FORMAT.rsplit("/", 1)[0] + "/"):
        raise CnnlabError(f"{path} is a cnnlab model checkpoint of format {marked!r}, which this cnnlab does not "
                          f"read (it reads '{FORMAT}')",
                          fix="read it with the cnnlab that wrote it, or re-create it with this one")
    # a model.pt's own fields under another `format` (probe 212: "something") or none (probe 220: the key deleted):
    # read as a plain state dict, its recorded normalisation was passed over for ImageNet's, and its accuracy read
    # low. A plain state dict's keys are its layers' names; another tool's checkpoint may hold `arch` and `classes`
    # beside its `state_dict` (timm's, a training script's), but not cnnlab's own `structure` or `input` records
    fields = [key for key in _MODEL_FIELDS if key in payload]
    own = "structure" in payload or "input" in payload  # probe 223: `input` alone, its normalisation passed over
    if marked not in (FORMAT, TRAIN_STATE_FORMAT) and (("format" in payload and fields) or own or len(fields) >= 3):
        marker = f"its format is {marked!r}" if "format" in payload else "it has no format marker"
        raise CnnlabError(f"{path} holds a cnnlab model checkpoint's fields ({', '.join(fields)}) but {marker}, not "
                          f"'{FORMAT}': changed since it was written, so its weights and the input they need cannot "
                          "be trusted",
                          fix="use the model.pt as its run wrote it, or re-create it with cnnlab")


# The fields of a cnnlab model.pt beside its weights (save_model): what says which network, classes and input
_MODEL_FIELDS = ("arch", "structure", "classes", "input", "extra")


def read_checkpoint(path: Path) -> ModelCheckpoint:
    """The validated checkpoint in `path` (a cnnlab model.pt). CnnlabError for a missing, unreadable, foreign
    or nonsensical file — checked before anything is built from it."""
    from cnnlab.models.weights import find_state_dict

    payload = load_tensors(path, "checkpoint")
    if not is_cnnlab_checkpoint(payload):
        if payload.get("format") == TRAIN_STATE_FORMAT:
            raise train_state_error(path, "source")
        refuse_another_format(payload, path)
        if find_state_dict(payload)[0] is not None:
            # weights alone: the network, classes and input they need are not recorded
            raise CnnlabError(f"{path} is a plain state dict, not a cnnlab model checkpoint (no '{FORMAT}' marker: "
                              "no network, classes or input recorded)",
                              fix=STATE_DICT_TO_SOURCE.format(weights=path_argument("model.weights", [path])))
        raise CnnlabError(f"{path} is not a cnnlab model checkpoint (no '{FORMAT}' marker)",
                          fix="point to a model.pt written by cnnlab, or a run folder")
    try:
        return replace(validate_checkpoint(payload), origin=f"checkpoint {path}")
    except _Invalid as exc:
        raise CnnlabError(f"checkpoint {path} is invalid: {exc}",
                          fix="the file was not written by this cnnlab or was altered; re-create it with cnnlab") \
            from exc


def build_model(ckpt: ModelCheckpoint) -> nn.Module:
    """Rebuild the exact network of a checkpoint (pruned shapes included) and load its weights."""
    from cnnlab.models import create_model

    arch = ckpt.arch
    model = built_for_loading(functools.partial(create_model, arch["name"], num_classes=arch["num_classes"],
                                                image_size=arch["image_size"], **(arch.get("kwargs") or {})))
    load_recorded_weights(model, ckpt.state_dict, ckpt.structure, origin=ckpt.origin, arch_name=arch["name"])
    check_input_channels(model, ckpt.spec.channels, ckpt.origin)
    return model


def built_for_loading(build: Callable[[], nn.Module]) -> nn.Module:
    """`build()`'s network on the CPU with its tensors allocated but not initialised, for weights loaded whole next
    (load_state_dict, strict): built on the meta device, then given empty storage (torch's `to_empty`, the pattern of
    torch.nn.utils.skip_init). torch's random initialisation is the most of building a network, and every value it
    draws is overwritten by the load: a VGG-16 model.pt loads in 1.47 s instead of 2.64 s, a ResNet-50 in 0.22 s
    instead of 0.36 s on a 2-core EPYC (benchmarks/run_overheads.py). A network with a buffer no state dict holds
    (registered non-persistent) is built as usual: nothing would fill it."""
    with torch.device("meta"):
        model = build()
    if any(module._non_persistent_buffers_set for module in model.modules()):
        return build()
    return model.to_empty(device="cpu")


def check_input_channels(model: nn.Module, channels: int, origin: Any) -> None:
    """CnnlabError when the network's first convolution takes other than the `channels` its input record gives
    (probe 209: `input.channels` 1 on a 3-channel network read its images as one channel and failed inside conv2d
    with a traceback, in evaluate and predict)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and first.in_channels != channels:
        raise CnnlabError(f"{origin}: its input record says {channels} channel(s), but its network's first layer "
                          f"takes {first.in_channels}: the file's record does not match its weights",
                          fix="re-create the file with cnnlab (export, or the run that wrote it)")


def load_recorded_weights(model: nn.Module, state_dict: Mapping[str, Any], structure: Mapping[str, Any] | None, *,
                          origin: Any, arch_name: str) -> None:
    """Apply a checkpoint's recorded structure (pruned shapes) to `model`, built as its recorded architecture, and
    load its weights strictly. Raises CnnlabError naming `origin` when they do not fit: a file whose recorded
    architecture was changed (arch.name edited, a kernel of another size) — probe 138: reached through
    model.weights= (finetune, distill), it was a traceback."""
    from cnnlab.models import apply_structure
    from cnnlab.models.weights import state_dtype_problem

    fix = "the file does not match its recorded architecture; re-create it with cnnlab"
    try:
        if structure:
            apply_structure(model, structure)
        problem = state_dtype_problem(model, state_dict)
        if problem is not None:
            raise CnnlabError(f"its weights do not fit a {arch_name} ({problem})")
        model.load_state_dict(state_dict, strict=True)
    except CnnlabError as exc:
        raise CnnlabError(f"{origin}: {exc.message}", fix=fix) from exc
    except RuntimeError as exc:
        raise CnnlabError(f"{origin}: its weights do not fit a {arch_name} ({state_dict_mismatch(exc)})",
                          fix=fix) from exc


def state_dict_mismatch(exc: BaseException) -> str:
    """load_state_dict's error in a few words: torch's first line names only the class, the next ones list every
    weight missing or other, or a size mismatch (probe 139: "Error(s) in loading state_dict for LeNet5:" was all
    that was said). Used wherever weights are loaded into a network built for them (a checkpoint, a training
    state)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = []
    for line in lines[1:4]:
        head, _, rest = line.partition(": ")
        names = re.findall(r'"([^"]+)"', rest)
        said.append(f"{head.removesuffix(' in state_dict').lower()}: {len(names)}, e.g. {names[0]}" if names else
                    line if len(line) <= 200 else line[:199] + "…")
    return "; ".join(said) or (lines[0] if lines else type(exc).__name__)


def self_supervised_method(ckpt: ModelCheckpoint) -> str | None:
    """The method (simclr, simsiam) of a `cnnlab pretrain method=...` checkpoint, whose backbone learned from
    unlabeled views and whose classifier head was never trained; None for every other checkpoint (a fine-tune
    of such a backbone records its own `finetune` section instead)."""
    section = ckpt.extra.get("pretrain")
    method = section.get("method") if isinstance(section, dict) else None
    return str(method) if method not in (None, "supervised") else None


def untrained_head_error(method: str, origin: Any, use: str, backbone: Any = None,
                         then: str = "source=latest:finetune") -> CnnlabError:
    """The error for a model whose classifier head was never trained (a backbone pretrained with `method`):
    `use` (e.g. "its test accuracy") would be chance-level. `backbone`: the model.pt or run to fine-tune
    (default: `origin` itself); `then`: the setting that takes the fine-tuned model."""
    error = CnnlabError(f"{origin} is a backbone pretrained with method={method}: its classifier head was never "
                        f"trained, so {use} would be chance-level",
                        fix=f"fine-tune it first (`cnnlab finetune "
                            f"{path_argument('model.weights', [backbone or origin])} finetune.mode=linear` for a "
                            f"linear probe, or finetune.mode=full), then use {then}")
    error.before_work = True  # a refusal of the input model: the refused run leaves no folder (cnnlab.app)
    return error


def require_trained_onnx_head(metadata: Mapping[str, Any], path: Any, use: str) -> None:
    """The same check for an ONNX file, from its cnnlab metadata (`deploy.export.read_onnx_metadata`): an export
    of a self-supervised backbone records `untrained_head`; the backbone to fine-tune is the run it came from."""
    identity = metadata.get("identity")
    source = getattr(identity, "source", None)
    source = source if isinstance(source, Mapping) else {}  # untrusted metadata: any JSON value
    method = getattr(identity, "untrained_head", None) or _source_checkpoint_method(source.get("path"))
    if method is not None:
        raise untrained_head_error(method, path, use, backbone=source.get("run") or source.get("path"))


def _source_checkpoint_method(path: Any) -> str | None:
    """The self-supervised method of the model.pt an ONNX file was exported from, where that file is still on
    disk: exports written before `untrained_head` existed record only their source. None when it is gone,
    unreadable, or not a self-supervised backbone."""
    if not isinstance(path, str) or not path.endswith((".pt", ".pth")) or not Path(path).is_file():
        return None
    try:
        return self_supervised_method(read_checkpoint(Path(path)))
    except CnnlabError:  # a damaged or foreign file: the export is judged by its own metadata alone
        return None


def require_trained_head(ckpt: ModelCheckpoint, path: Path, use: str) -> None:
    """CnnlabError (untrained_head_error) when `ckpt`, read from `path`, is a self-supervised backbone with an
    untrained head."""
    method = self_supervised_method(ckpt)
    if method is not None:
        raise untrained_head_error(method, path, use)


def load_model(path: Path) -> tuple[nn.Module, ModelCheckpoint]:
    """The network of a cnnlab model.pt, ready for evaluation (eval mode: batch norms use their running
    statistics, dropout is off), and its validated checkpoint. CnnlabError for a bad file."""
    ckpt = read_checkpoint(path)
    return build_model(ckpt).eval(), ckpt
