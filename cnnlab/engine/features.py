"""Frozen-backbone feature cache for linear probing.

With the backbone frozen (eval mode) and deterministic train transforms, every epoch would push the
same images through the same backbone. Computing the features once and training the head on the
cached tensors gives the same result at a fraction of the cost. The cached features can be standardised
for the probe and the trained head folded back (FeatureStandardizer).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
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


# BatchNorm1d's default eps: a feature that hardly varies on the training images is centred, not blown up.
STANDARDIZE_EPS = 1e-5
# A feature whose training variance is below this (its standardised spread would be under 1e-3 of a unit: dead ReLU
# units above all) teaches the head nothing. It is centred but not scaled: dividing it by sqrt(eps) would multiply
# its weight ~316-fold when folded, and its value on a val image where the unit does fire.
CONSTANT_VAR = 1e-6 * STANDARDIZE_EPS


@dataclass(frozen=True)
class FeatureStandardizer:
    """Per-feature standardisation of cached features, (x - mean) / sqrt(var + eps) with the training images'
    mean and variance ([D] each), as the linear probes of MoCo v3 (Chen et al., 2021) and MAE (He et al., 2022) put a
    BatchNorm without affine parameters before the classifier. A head trained on standardised features is folded back
    into an ordinary Linear on the raw features (`fold_into`), so the saved model has the architecture it had; a
    trained head kept from the weights is first unfolded (`unfold_from`), so it starts where it was. A new head
    starts with zero weight on constant features (`zero_constant`), which then stays zero: they are 0 on every
    training image once centred.

    Why: the scale of a frozen backbone's features depends on how it was trained (a random-init ResNet-18's are
    ~0.07 per unit at 32 px), and an SGD probe at one learning rate underfits small ones. Features far below
    sqrt(eps) (~3e-3) stay small, as under BatchNorm. docs/training.md has the measurement."""

    mean: torch.Tensor      # [D]
    scale: torch.Tensor     # [D], sqrt(var + eps), or 1 for a constant feature
    constant: torch.Tensor  # [D] bool: var < CONSTANT_VAR

    @classmethod
    def fit(cls, features: torch.Tensor) -> "FeatureStandardizer":
        """From training features [N, D] (N >= 1), in float64 for the sums, stored as float32."""
        wide = features.double()
        mean = wide.mean(0)
        var = wide.var(0, unbiased=False)
        constant = var < CONSTANT_VAR
        scale = torch.where(constant, torch.ones_like(var), (var + STANDARDIZE_EPS).sqrt())
        return cls(mean=mean.float(), scale=scale.float(), constant=constant)

    def __call__(self, data: TensorDataset) -> TensorDataset:
        """The same (features [N, D], labels) dataset with the features standardised."""
        features, *rest = data.tensors
        return TensorDataset((features - self.mean) / self.scale, *rest)

    @torch.no_grad()
    def zero_constant(self, head: nn.Linear) -> None:
        """A new head: no weight on the features that never vary on the training images (it could learn none)."""
        _check_foldable(head)
        head.weight[:, self.constant.to(head.weight.device)] = 0.0

    @torch.no_grad()
    def unfold_from(self, head: nn.Linear) -> None:
        """Make `head` (which takes raw features) take standardised ones, in place: W' = W scale, b' = b + W mean,
        the inverse of `fold_into`."""
        _check_foldable(head)
        head.bias.add_(head.weight @ self.mean.to(head.weight))
        head.weight.mul_(self.scale.to(head.weight))

    @torch.no_grad()
    def fold_into(self, head: nn.Linear) -> None:
        """Make `head` (trained on standardised features) take raw ones, in place:
        W x' + b with x' = (x - mean) / scale is (W / scale) x + (b - (W / scale) mean)."""
        _check_foldable(head)
        weight = head.weight / self.scale.to(head.weight)
        head.bias.sub_(weight @ self.mean.to(weight))
        head.weight.copy_(weight)


def _check_foldable(head: nn.Module) -> None:
    if not isinstance(head, nn.Linear) or head.bias is None:
        raise TypeError(f"a standardised probe folds into an nn.Linear with a bias, not {type(head).__name__}")
