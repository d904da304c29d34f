"""Unstructured (magnitude) pruning: the smallest weights of every Conv2d and Linear become zero.

Masks are installed with torch.nn.utils.prune (weight = weight_orig * weight_mask in a forward pre-hook),
so recovery training cannot regrow a pruned weight; `make_permanent` then folds the masks into plain
weights. The tensors keep their shapes: a dense runtime (PyTorch, onnxruntime) runs exactly as many
multiply-adds as before — sparsity only pays off with sparse kernels or compression of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from cnnlab.compress.pruning.channel import check_ratio
from cnnlab.compress.pruning.layers import resolve_layers, weight_layers
from cnnlab.errors import CnnlabError


def prunable_layers(model: nn.Module, keep: Sequence[str] = (), key: str = "prune.ignore") -> dict[str, nn.Module]:
    """Every Conv2d and Linear except those at (or inside) the `keep` paths."""
    resolve_layers(model, keep, key=key)  # unknown paths are an error, not silently ignored
    return {path: module for path, module in weight_layers(model).items()
            if not any(path == k or path.startswith(k + ".") for k in keep)}


def _effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the layer computes with (masked, if a mask is installed)."""
    if hasattr(module, "weight_mask"):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


def apply_magnitude_masks(layers: dict[str, nn.Module], sparsity: float, *, global_ranking: bool) -> None:
    """Zero the `sparsity` fraction of smallest-|w| weights: of all `layers` together (global_ranking) or
    of each layer alone. Weights pruned by an earlier call stay pruned (iterative pruning)."""
    sparsity = check_ratio(sparsity)
    scores = {}
    for path, module in layers.items():
        score = _effective_weight(module).abs().float()
        if hasattr(module, "weight_mask"):
            score = score.masked_fill(module.weight_mask == 0, -1.0)  # already pruned: always first out
        scores[path] = score
    if global_ranking:
        flat = torch.cat([s.flatten() for s in scores.values()])
        masks = _split(_keep_largest(flat, sparsity), scores)
    else:
        masks = {path: _keep_largest(s.flatten(), sparsity).view_as(s) for path, s in scores.items()}
    for path, module in layers.items():
        mask = masks[path].to(dtype=module.weight.dtype)
        if hasattr(module, "weight_mask"):
            module.weight_mask.copy_(mask)
        else:
            torch_prune.custom_from_mask(module, "weight", mask)


def _keep_largest(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A 0/1 mask removing exactly round(sparsity * n) entries, the lowest scores first (ties broken by
    position, so the count is exact even among many zeros)."""
    removed = int(round(sparsity * scores.numel()))
    mask = torch.ones_like(scores)
    if removed:
        mask[torch.topk(scores, removed, largest=False, sorted=False).indices] = 0
    return mask


def _split(flat_mask: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    masks, offset = {}, 0
    for path, score in like.items():
        masks[path] = flat_mask[offset:offset + score.numel()].view_as(score)
        offset += score.numel()
    return masks


def make_permanent(model: nn.Module) -> None:
    """Fold every installed mask into a plain `weight` parameter (zeros stay zeros; no hooks left)."""
    for module in model.modules():
        if torch_prune.is_pruned(module) and hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")


def weight_sparsity(layers: dict[str, nn.Module]) -> dict[str, float]:
    """Fraction of zero weights per layer."""
    return {path: float((_effective_weight(module) == 0).float().mean()) for path, module in layers.items()}


def zero_weights(layers: dict[str, nn.Module]) -> int:
    return sum(int((_effective_weight(m) == 0).sum()) for m in layers.values())


def nonzero_params(model: nn.Module, layers: dict[str, nn.Module]) -> int:
    """Non-zero values among all of `model`'s parameters as it computes with them (a pruned layer's weight masked):
    the pruned layers' and every other's (probe 222: counted in the pruned layers only, the head's 280 zeros were
    read as non-zero — 13,262 recorded of 12,982)."""
    pruned = {id(module) for module in layers.values()}
    total = 0
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            weight = _effective_weight(module) if id(module) in pruned and name in ("weight", "weight_orig") \
                else parameter.detach()
            total += int((weight != 0).sum())
    return total


def overall_sparsity(layers: dict[str, nn.Module]) -> float:
    """Fraction of zero weights over all `layers` together."""
    return zero_weights(layers) / max(1, sum(m.weight.numel() for m in layers.values()))


@dataclass(frozen=True)
class MagnitudeSettings:
    ratio: float                     # fraction of the weights zeroed (per layer, or overall when global)
    global_ranking: bool = False     # one threshold for all layers: layer sparsities become uneven
    steps: int = 1                   # reach `ratio` in this many equal steps

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        if self.steps < 1:
            raise CnnlabError(f"prune.steps={self.steps} must be at least 1")


class MagnitudePruner:
    """Masks `model`'s Conv2d/Linear weights in place, `settings.steps` times up to `settings.ratio`
    sparsity; `keep` names layers left dense (always the classifier head). Masks stay installed (and
    survive training) until `finish()` makes them permanent."""

    def __init__(self, model: nn.Module, settings: MagnitudeSettings, *, keep: Sequence[str],
                 key: str = "prune.ignore") -> None:
        self.model = model
        self.settings = settings
        self.steps_done = 0
        self.layers = prunable_layers(model, keep, key=key)
        if not self.layers:
            raise CnnlabError("magnitude pruning found no Conv2d or Linear layer outside prune.ignore",
                              fix="shorten prune.ignore")

    @property
    def current_ratio(self) -> float:
        return self.settings.ratio * self.steps_done / self.settings.steps

    def step(self) -> None:
        if self.steps_done >= self.settings.steps:
            raise RuntimeError(f"all {self.settings.steps} pruning steps are done")
        self.steps_done += 1
        apply_magnitude_masks(self.layers, self.current_ratio, global_ranking=self.settings.global_ranking)

    def finish(self) -> None:
        make_permanent(self.model)
