"""Checkpoints that load with `torch.load(weights_only=True)` — no pickled modules, ever.

`model.pt` holds the weights plus everything that rebuilds the network: architecture name and
arguments, per-layer shapes (so a channel-pruned model rebuilds), class names and the input spec.
`last.pt` holds the resumable training state. Both are written atomically.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path

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
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_tensors(path: Path, what: str = "checkpoint") -> dict[str, Any]:
    """torch.load(weights_only=True) with a clear error for a missing, truncated or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{what} {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickled code (a whole saved module) — never unpickle it.
        raise CnnlabError(f"{what} {path} cannot be read safely: it holds pickled objects, not just tensors",
                          fix="save weights with torch.save(model.state_dict()) or use a cnnlab model.pt") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CnnlabError(f"{what} {path} cannot be read safely: it is corrupt or truncated "
                          f"({type(exc).__name__})", fix="pick another file or re-create it") from exc
    if not isinstance(payload, dict):
        raise CnnlabError(f"{what} {path} holds a {type(payload).__name__}, not a checkpoint dictionary")
    return payload


@dataclass
class ModelCheckpoint:
    arch: dict[str, Any]                 # name, num_classes, image_size, kwargs
    state_dict: dict[str, torch.Tensor]
    classes: list[str]
    spec: InputSpec
    structure: dict[str, dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.arch["name"])


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
    save_tensors(Path(path), payload)
    return Path(path)


def is_cnnlab_checkpoint(payload: dict[str, Any]) -> bool:
    return payload.get("format") == FORMAT


def read_checkpoint(path: Path) -> ModelCheckpoint:
    payload = load_tensors(path, "checkpoint")
    if not is_cnnlab_checkpoint(payload):
        raise CnnlabError(f"{path} is not a cnnlab model checkpoint (no '{FORMAT}' marker)",
                          fix="point to a model.pt written by cnnlab, or a run folder")
    try:
        return ModelCheckpoint(arch=payload["arch"], state_dict=payload["state_dict"], classes=payload["classes"],
                               spec=InputSpec.from_dict(payload["input"]), structure=payload.get("structure"),
                               extra=payload.get("extra") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise CnnlabError(f"checkpoint {path} is incomplete ({exc!r})", fix="re-create it with cnnlab") from exc


def build_model(ckpt: ModelCheckpoint) -> nn.Module:
    """Rebuild the exact network of a checkpoint (pruned shapes included) and load its weights."""
    from cnnlab.models import apply_structure, create_model

    arch = ckpt.arch
    model = create_model(arch["name"], num_classes=arch["num_classes"], image_size=arch["image_size"],
                         **(arch.get("kwargs") or {}))
    if ckpt.structure:
        apply_structure(model, ckpt.structure)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CnnlabError(f"checkpoint weights do not fit a {arch['name']} ({first})",
                          fix="the file does not match its recorded architecture; re-create it with cnnlab") from exc
    return model


def load_model(path: Path) -> tuple[nn.Module, ModelCheckpoint]:
    ckpt = read_checkpoint(path)
    return build_model(ckpt), ckpt
