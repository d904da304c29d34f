"""Which zoo network a state dict was saved from: what to name when weights do not fit the one asked for."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from cnnlab.models.factory import create_model
from cnnlab.models.registry import MODELS, channel_options, get_entry


def networks_fitting(state_dict: Mapping[str, Tensor], image_size: int, channels: int = 3) -> list[str]:
    """The zoo networks (registry names, in registry order) whose every backbone tensor is in `state_dict` with its
    shape, and which hold no key of its backbone that they lack; the classifier head may have any class count.
    Each network is built on PyTorch's meta device (shapes only: no memory, no initialisation cost), at `image_size`
    px (LeNet-5's first fully connected layer depends on it) and `channels` where it takes any. Networks that cannot
    be built at that size are left out."""
    found = []
    for name in MODELS:
        entry = get_entry(name)
        try:
            with torch.device("meta"):
                own = create_model(name, num_classes=2, image_size=image_size,
                                   **channel_options(name, channels)).state_dict()
        except Exception:  # noqa: BLE001 - a network that cannot take this size simply does not fit
            continue
        incoming = {k: v for k, v in state_dict.items()
                    if not k.startswith(entry.dropped_weight_prefixes) and not k.endswith("num_batches_tracked")}
        head = entry.head + "."
        body = {k: v for k, v in own.items() if not k.startswith(head) and not k.endswith("num_batches_tracked")}
        if all(k in incoming and tuple(incoming[k].shape) == tuple(v.shape) for k, v in body.items()) \
                and all(k in own for k in incoming):
            found.append(name)
    return found


def fitting_fix(state_dict: Mapping[str, Tensor], image_size: int, channels: int, role: str,
                other_than: str | None = None) -> str | None:
    """"it holds resnet18's layers: add teacher=resnet18": the fix for a state dict refused for one network where it
    fits others (`networks_fitting`, less `other_than`); None where it fits none."""
    fitting = [n for n in networks_fitting(state_dict, image_size, channels) if n != other_than]
    return f"it holds {' or '.join(fitting)}'s layers: add {role}={fitting[0]}" if fitting else None
