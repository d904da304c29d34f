"""Pretrained weights: torchvision's ImageNet files (offline-aware) and local state-dict files.

ImageNet weights are looked up in the torch hub cache first (`<torch.hub.get_dir()>/checkpoints/<file>`,
`~/.cache/torch/hub/checkpoints` by default), so a file copied there works without network. Only when it is
missing does torch.hub download it; offline, the error names the file, the folder and the URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import Tensor, nn

from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.fileio import file_sha256, why_not_a_file
from cnnlab.models.registry import get_entry

log = logging.getLogger(__name__)

def _alternatives(role: str) -> str:
    """Other weights to start `role` from. A teacher is never random (a random teacher teaches nothing:
    steps/distill_teacher.py refuses teacher.weights=none), so it gets trained runs only."""
    if role == "teacher":
        return ("teacher.weights=latest:finetune or latest:pretrain (a teacher you trained for the task), a run "
                "folder, or /path/to/model.pt")
    return (f"{role}.weights=none (random init), {role}.weights=/path/to/file.pth (a local state dict) "
            f"or {role}.weights=latest:pretrain (a previous run)")


def _without_these(role: str, name: str) -> str:
    """The fix for weights that cannot be used for `role` (model, student, teacher) of network `name`."""
    if role == "teacher":
        return (f"train the teacher first (`cnnlab pretrain model={name}`, with dataset= the data to distill on) and "
                "pass teacher.weights=latest:pretrain, or a run folder / model.pt of a teacher trained for the task")
    return f"use {role}.weights=none to train it from scratch, or {role}.weights=<run folder> / latest:pretrain"


@dataclass(frozen=True)
class PretrainedWeights:
    state_dict: dict[str, Tensor]  # 1000-class ImageNet state dict, torchvision key names
    spec: InputSpec  # crop size and normalisation the weights were trained with
    classes: tuple[str, ...]  # the 1000 ImageNet category names, in logit order
    arch_kwargs: dict[str, Any]  # create_model options the weights need (googlenet: transform_input=True)
    source: Path  # the file they were read from
    resize_size: int = 256  # evaluation recipe: resize the short side to this, then centre-crop spec.size
    interpolation: str = "bilinear"
    published: bool | None = None  # the file is torchvision's bytes (published_file); None: nothing to tell by


def hub_checkpoint_path(url: str) -> Path:
    """Where torch.hub caches the file at `url` (the same name load_state_dict_from_url uses)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def published_name(name: str) -> str | None:
    """The file name torchvision publishes `name`'s ImageNet weights under ("googlenet-1378be20.pth"), or None."""
    entry = get_entry(name)
    return None if entry.tv_weights is None else Path(urlparse(tvm.get_weight(entry.tv_weights).url).path).name


def published_file(name: str, path: str | Path) -> bool | None:
    """Whether `path` holds the bytes torchvision publishes as `name`'s ImageNet weights: its SHA-256 starts with the
    hash prefix of the published file's name ("resnet18-f37072fd.pth"), as torch.hub's check_hash tests a download.
    None when `name` has no published weights (or their name carries no prefix); False for an unreadable file."""
    published = published_name(name)
    match = torch.hub.HASH_REGEX.search(published) if published else None
    if match is None:
        return None
    digest = file_sha256(path)
    return digest is not None and digest.startswith(match.group(1))


def imagenet_weights(name: str, *, role: str = "model", path: Path | None = None) -> PretrainedWeights:
    """torchvision's ImageNet weights for `name`, from the hub cache or downloaded into it — or from `path`, a copy
    of the published file (cnnlab.weights: a state dict file that is those bytes brings their recipe, googlenet's
    transform_input too). `published` says whether the file is torchvision's bytes: a file in the hub cache under
    their name may be another save of them, or other weights. `role` names the setting in errors (model, teacher,
    student)."""
    entry, weights = get_entry(name), _published_weights(name, role)
    path = path or hub_checkpoint_path(weights.url)
    if not path.is_file():
        _download(weights.url, path, role)
    try:
        state_dict = load_state_dict_file(path)
    except CnnlabError as err:
        raise CnnlabError(err.message, fix=f"delete {path} and download it again from {weights.url}") from err
    transforms = weights.transforms()
    spec, classes = imagenet_recipe(name, role=role)
    return PretrainedWeights(
        state_dict=state_dict,
        spec=spec,
        classes=classes,
        arch_kwargs=dict(entry.pretrained_arch_kwargs),
        source=path,
        resize_size=int(transforms.resize_size[0]),
        interpolation=transforms.interpolation.value,
        published=published_file(entry.name, path),
    )


def imagenet_recipe(name: str, *, role: str = "model") -> tuple[InputSpec, tuple[str, ...]]:
    """The input (crop size, normalisation) and the 1000 category names, in logit order, of torchvision's ImageNet
    weights for `name`, from torchvision's metadata alone: no file is read or fetched, so a use these weights cannot
    serve (a teacher for other classes) is refused before 45–550 MB are downloaded. Raises CnnlabError when `name`
    has no ImageNet weights."""
    weights = _published_weights(name, role)
    transforms = weights.transforms()
    spec = InputSpec(size=int(transforms.crop_size[0]), mean=tuple(transforms.mean), std=tuple(transforms.std))
    return spec, tuple(weights.meta["categories"])


def _published_weights(name: str, role: str) -> Any:
    """torchvision's WeightsEnum member of `name`'s ImageNet weights. Raises CnnlabError when it has none."""
    entry = get_entry(name)
    if entry.tv_weights is None:
        raise CnnlabError(f"{entry.name} has no ImageNet weights", fix=_without_these(role, entry.name)
                          + ("" if role == "teacher" else " to start from one of your runs"))
    return tvm.get_weight(entry.tv_weights)


def _download(url: str, path: Path, role: str) -> None:
    log.info("downloading %s to %s", url, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The hash prefix in torchvision's file names ("resnet18-f37072fd.pth") is checked, as
        # torch.hub.load_state_dict_from_url(check_hash=True) would; the file appears only when complete.
        match = torch.hub.HASH_REGEX.search(path.name)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match.group(1) if match else None, progress=True)
    except (OSError, RuntimeError) as err:  # URLError/HTTPError/timeouts are OSErrors; a bad hash is a RuntimeError
        raise CnnlabError(
            f"cannot get the ImageNet weights file {path.name}: it is not in {path.parent} and the download "
            f"failed ({err})",
            fix=f"download {url} where there is network and copy it into {path.parent}, or use {_alternatives(role)}",
        ) from err


# Where training scripts keep the weights inside a checkpoint dictionary ({'state_dict': ..., 'epoch': ...}).
STATE_DICT_WRAPPERS = ("state_dict", "model", "model_state_dict")
# Prefixes a wrapped model puts on every key of its state dict, and the wrapper (timm's clean_state_dict removes
# `module.` the same way).
WRAPPER_PREFIXES = {"module.": "a DataParallel / DistributedDataParallel model", "_orig_mod.": "a torch.compile model"}


def find_state_dict(content: Any) -> tuple[dict[str, Tensor] | None, list[str]]:
    """The state dict in what torch.load returned — plain, or under one of STATE_DICT_WRAPPERS — with a
    WRAPPER_PREFIXES prefix that is on every key removed; and the prefixes removed. (None, []) when `content`
    is not a non-empty mapping of names to tensors."""
    if isinstance(content, Mapping):
        for wrapper in STATE_DICT_WRAPPERS:
            if isinstance(content.get(wrapper), Mapping):
                content = content[wrapper]
                break
    if not (isinstance(content, Mapping) and content
            and all(isinstance(key, str) and isinstance(value, Tensor) for key, value in content.items())):
        return None, []
    state, removed = dict(content), []
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) and len(k) > len(p) for k in state)), None)
        if prefix is None:
            return state, removed
        state = {key[len(prefix):]: value for key, value in state.items()}
        removed.append(prefix)


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a torchvision-format .pth/.pt file (plain, or under 'state_dict', 'model' or
    'model_state_dict'); the `module.` prefix a DataParallel / DistributedDataParallel model puts on every key
    is removed (and logged), as is torch.compile's `_orig_mod.`."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} {why_not_a_file(path)}", fix="check the path")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle, non-allowlisted objects: all mean "unreadable"
        raise CnnlabError(f"cannot read {path} as PyTorch weights: {err}",
                          fix="give a state dict saved with torch.save(model.state_dict(), path)") from err
    state, removed = find_state_dict(content)
    if state is None:
        raise CnnlabError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)",
                          fix="give a state dict saved with torch.save(model.state_dict(), path)")
    for prefix in removed:
        log.info("%s: removed the prefix %r from every key (weights saved from %s)", path, prefix,
                 WRAPPER_PREFIXES[prefix])
    return state


def load_pretrained(model: nn.Module, name: str, weights: PretrainedWeights | Mapping[str, Tensor], *,
                    strict_backbone: bool = True, role: str = "model", origin: str | Path | None = None) -> None:
    """Copy pretrained tensors into `model`, whose head may have another class count.

    Every backbone tensor must be in `weights` with the model's shape (with strict_backbone=False, those
    that are not are skipped). The head is loaded only when its shape matches (same class count); otherwise
    the model keeps its fresh head. `origin`: the file the tensors were read from (PretrainedWeights bring
    their own), named in the error when they do not fit; a file in the torch hub cache is to be deleted.
    """
    entry = get_entry(name)
    if isinstance(weights, PretrainedWeights):
        source, origin = weights.state_dict, weights.source
    else:
        source = weights
    incoming = {key: value for key, value in source.items() if not key.startswith(entry.dropped_weight_prefixes)}
    own = model.state_dict()
    head_keys = [key for key in own if key.startswith(entry.head + ".")]
    head_fits = all(key in incoming and incoming[key].shape == own[key].shape for key in head_keys)

    selected: dict[str, Tensor] = {}
    skipped: list[str] = []
    for key, target in own.items():
        if key in head_keys:
            if head_fits:
                selected[key] = incoming[key]
            continue
        problem = _mismatch(key, target, incoming)
        if problem is None:
            selected[key] = incoming[key]
        elif key.endswith("num_batches_tracked"):
            continue  # a BatchNorm step counter, absent from older files; not a weight
        elif strict_backbone:
            raise _not_fitting(entry.name, problem, origin, role)
        else:
            skipped.append(key)
    unexpected = [key for key in incoming if key not in own]
    if strict_backbone and unexpected:
        raise _not_fitting(entry.name, f"{unexpected[0]!r} is not in the model ({len(unexpected)} unexpected keys)",
                           origin, role)
    model.load_state_dict(selected, strict=False)
    log.info("loaded %d pretrained tensors into %s (head %s, %d skipped)", len(selected), entry.name,
             "loaded" if head_fits else "kept fresh", len(skipped))


def _not_fitting(name: str, problem: str, origin: str | Path | None, role: str) -> CnnlabError:
    """Weights that do not fit network `name`. torchvision's file in the torch hub cache (where
    `model.weights=imagenet` finds it by its name alone) whose SHA-256 does not start with the hash in its name
    holds other weights: it is named, to be deleted (downloaded again) or replaced."""
    where = f" in {origin}" if origin is not None else ""
    url = _replaced_hub_file(name, origin)
    if url is not None:
        return CnnlabError(f"the ImageNet weights file{where} does not hold torchvision's {name} weights (its "
                           f"SHA-256 does not match the hash in its name) and does not fit {name}: {problem}",
                           fix=f"delete {origin} (the next run downloads it again from {url}) or replace it with "
                               f"that file, or {_instead(role)}")
    return CnnlabError(f"the pretrained weights{where} do not fit {name}: {problem}",
                       fix="use weights made for this model and architecture (same name and options), "
                           f"or {_instead(role)}")


def _replaced_hub_file(name: str, origin: str | Path | None) -> str | None:
    """torchvision's URL for `name`'s ImageNet weights when `origin` is their file in the hub cache and its content
    is not that file (its SHA-256 does not start with the hash prefix in the name, as torch.hub checks a download);
    otherwise None."""
    entry = get_entry(name)
    if origin is None or entry.tv_weights is None:
        return None
    url = tvm.get_weight(entry.tv_weights).url
    if Path(origin) != hub_checkpoint_path(url):
        return None
    return url if published_file(entry.name, origin) is False else None


def _instead(role: str) -> str:
    """The plain way out of weights that do not fit: random init, except for a teacher (which must be trained)."""
    return "a teacher trained for the task (teacher.weights=latest:finetune)" if role == "teacher" \
        else f"{role}.weights=none"


def _mismatch(key: str, target: Tensor, incoming: Mapping[str, Tensor]) -> str | None:
    if key not in incoming:
        return f"{key!r} is missing"
    if incoming[key].shape != target.shape:
        return f"{key!r} has shape {tuple(incoming[key].shape)}, the model expects {tuple(target.shape)}"
    return dtype_problem(key, target, incoming[key])


def state_dtype_problem(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """The first of `state`'s tensors that cannot be the floating-point weight `model` keeps under its name
    (dtype_problem), or None."""
    own = model.state_dict()
    return next((problem for key, value in state.items() if key in own
                 for problem in [dtype_problem(key, own[key], value)] if problem), None)


def dtype_problem(key: str, target: Tensor, value: Tensor) -> str | None:
    """Why `value` cannot be the floating-point weight `target` is: integers or booleans, which load_state_dict casts
    without a word (probe 209: a layer stored with `.long()`, truncated to zeros, scored 10 % where the file's network
    scores 41.67 %); None otherwise (another float precision is the same weights, rounded)."""
    if target.is_floating_point() and not value.is_floating_point():
        return f"{key!r} holds {str(value.dtype).removeprefix('torch.')} values, not floating-point weights"
    return None
