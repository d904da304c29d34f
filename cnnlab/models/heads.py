"""The classifier head and the backbone stages of a registered network."""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import get_entry


def get_head(model: nn.Module, name: str) -> nn.Linear:
    """The final nn.Linear of `model` (a `name` network)."""
    path = get_entry(name).head
    head = _submodule(model, path, name)
    if not isinstance(head, nn.Linear):
        raise CnnlabError(f"{name}: expected an nn.Linear head at {path!r}, found {type(head).__name__}",
                          fix="the model does not match its name; rebuild it with create_model")
    return head


def replace_head(model: nn.Module, name: str, num_classes: int) -> nn.Linear:
    """Put a freshly initialised `num_classes`-way Linear (same in_features, device, dtype) in place of the head."""
    old = get_head(model, name)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    model.set_submodule(get_entry(name).head, new)
    return new


def reorder_head(model: nn.Module, name: str, order: Sequence[int]) -> None:
    """Reorder the head's output rows: row i becomes the old row `order[i]` (weight and bias), so that a head trained
    for classes in one order scores them in another (weights.initial_model maps them by name)."""
    head = get_head(model, name)
    rows = torch.as_tensor(list(order), dtype=torch.long, device=head.weight.device)
    with torch.no_grad():
        head.weight.copy_(head.weight[rows])
        if head.bias is not None:
            head.bias.copy_(head.bias[rows])


def feature_stages(model: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The backbone stages of `model`, input → output, as (stage name, module) pairs.

    A single-path stage is the model's own submodule. A range stage ("features.2..3") is an nn.Sequential
    holding the model's own submodules (shared, not copied): its parameters are the model's, so
    `requires_grad_` on it freezes/unfreezes the real network, and calling it runs the stage. A forward hook
    registered on such a view does not fire when the model runs; to observe any stage's output (KD hints),
    hook `stage[-1]` — every stage is a Sequential whose last module produces the stage output.
    """
    return [(stage, _stage_module(model, stage, name)) for stage in get_entry(name).stages]


def _stage_module(model: nn.Module, stage: str, name: str) -> nn.Module:
    if ".." not in stage:
        return _submodule(model, stage, name)
    first_path, last = stage.split("..")
    parent_path, _, first = first_path.rpartition(".")
    parent = _submodule(model, parent_path, name) if parent_path else model
    children = list(parent.named_children())
    names = [child for child, _ in children]
    if first not in names or last not in names:
        raise CnnlabError(f"{name}: stage {stage!r} does not match the model's modules",
                          fix="the model does not match its name; rebuild it with create_model")
    return nn.Sequential(OrderedDict(children[names.index(first):names.index(last) + 1]))


def _submodule(model: nn.Module, path: str, name: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError as err:
        raise CnnlabError(f"{name}: the model has no module {path!r}",
                          fix="the model does not match its name; rebuild it with create_model") from err
