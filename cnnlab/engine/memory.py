"""What one training batch of a network holds in memory, estimated before it is allocated.

The kernel's out-of-memory killer ends a process without a word and leaves its run recorded `running` (probe 185: a
search space whose resolution multiplier made 1,600-px images took all 24 GB of the machine, twice). A step that may
meet a network far larger than the data it was written for asks first: the outputs of every leaf module for one
image, computed on PyTorch's `meta` device (shapes only, no memory), times the batch, times two (autograd keeps each
for the backward pass, which makes a gradient of the same size), in float32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

BYTES_PER_VALUE = 4   # float32
KEPT_FOR_BACKWARD = 2  # the activation and its gradient


def training_batch_bytes(model: nn.Module, channels: int, size: int, batch: int) -> int | None:
    """Bytes of the activations (and their gradients) one training batch of `batch` images [channels, size, size]
    makes in `model`, from a forward pass on the meta device (the model is copied there; the caller's is untouched).
    None where the network cannot run on the meta device (an operator without a meta kernel): no estimate."""
    values = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal values
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        values += sum(t.numel() for t in outputs if isinstance(t, torch.Tensor))

    try:
        shadow = copy.deepcopy(model).to("meta").eval()  # eval: BatchNorm takes one image
        for module in shadow.modules():
            if not list(module.children()):
                module.register_forward_hook(count)
        with torch.no_grad():
            shadow(torch.empty(1, channels, size, size, device="meta"))
    except Exception:  # noqa: BLE001 - an operator without a meta kernel: no estimate, no refusal
        return None
    return values * batch * BYTES_PER_VALUE * KEPT_FOR_BACKWARD
