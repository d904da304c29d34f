"""Frozen-backbone feature cache for linear probing.

With the backbone frozen (eval mode) and deterministic train transforms, every epoch would push the
same images through the same backbone. Computing the features once and training the head on the
cached tensors gives the same result at a fraction of the cost.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.engine.runtime import Runtime
from cnnlab.engine.progress import make_progress


@contextmanager
def without_head(model: nn.Module, head_path: str) -> Iterator[nn.Module]:
    """Temporarily replace the head with Identity, so model(x) returns the head's input features."""
    head = model.get_submodule(head_path)
    model.set_submodule(head_path, nn.Identity())
    try:
        yield head
    finally:
        model.set_submodule(head_path, head)


@torch.inference_mode()
def extract_features(model: nn.Module, head_path: str, loader: DataLoader, runtime: Runtime,
                     desc: str = "features", *, float32: bool = False) -> TensorDataset:
    """(features, labels) for every item of the loader, on the CPU in float32. The backbone runs in the precision
    the network trains in, or in float32 with `float32=True`: the validation features, so that the val accuracy
    recorded is the saved float32 model's (as trainer.evaluate)."""
    model.eval()
    runtime = runtime.for_network(model)  # the precision this network trains in (no bf16 for depthwise on CPU)
    if float32:
        runtime = replace(runtime, amp_dtype=None)
    features, labels = [], []
    with without_head(model, head_path), make_progress(runtime.is_main) as progress:
        task = progress.add_task(desc, total=len(loader), status="")
        for images, targets in loader:
            with runtime.autocast():
                out = model(runtime.to_device(images))
            features.append(out.float().flatten(1).cpu())
            labels.append(targets.cpu())
            progress.advance(task)
    return TensorDataset(torch.cat(features), torch.cat(labels))
