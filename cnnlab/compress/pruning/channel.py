"""Structured (channel) pruning: whole channels leave every coupled layer, so the result is a smaller
dense network that any runtime executes faster.

Torch-Pruning's dependency graph finds the coupling (residual additions, depthwise convolutions,
concatenations, batch norms, squeeze-excitation products, the classifier's input); its importance
objects rank channels and its pruner removes them, in one or several steps. cnnlab adds what a
command-line tool needs around it: importance by name, the classifier's outputs always kept,
channel counts rounded to the nearest SIMD-friendly multiple, and a clear refusal (naming the layer)
instead of a silently skipped layer or an untraceable graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch_pruning as tp
from torch import nn

from cnnlab.compress.pruning.layers import WEIGHT_LAYERS, resolve_layers, run_naming_layer
from cnnlab.compress.pruning.tp_adapter import (NearestMultiplePruner, refuse_whole_layer_removal,
                                                 torch_pruning_ratio)
from cnnlab.engine.runtime import all_reduce_sum
from cnnlab.errors import CnnlabError

IMPORTANCES: dict[str, Callable[[], tp.importance.Importance]] = {
    "l1": lambda: tp.importance.MagnitudeImportance(p=1),
    "l2": lambda: tp.importance.MagnitudeImportance(p=2),
    "taylor": lambda: tp.importance.TaylorImportance(),
    "bn_scale": lambda: tp.importance.BNScaleImportance(),
}


def check_ratio(ratio: float, key: str = "prune.ratio") -> float:
    """`ratio` (the fraction of channels to remove) as a float in [0, 1); CnnlabError naming `key` otherwise."""
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise CnnlabError(f"{key}={ratio:g} is outside [0, 1)", fix="give the fraction to remove, e.g. 0.5")
    return ratio


@dataclass(frozen=True)
class ChannelSettings:
    ratio: float                     # fraction of channels removed (per layer, or overall when global)
    importance: str = "l2"
    global_ranking: bool = False     # one ranking over all layers: widths become uneven
    round_to: int | None = None      # keep a multiple of this many channels in each pruned layer
    steps: int = 1                   # reach `ratio` in this many equal steps

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        if self.importance not in IMPORTANCES:
            raise CnnlabError(f"prune.importance={self.importance} is not an importance",
                              fix=f"use one of: {', '.join(IMPORTANCES)}")
        if self.steps < 1:
            raise CnnlabError(f"prune.steps={self.steps} must be at least 1")
        if self.round_to is not None and self.round_to < 1:
            raise CnnlabError(f"prune.round_to={self.round_to} must be a positive channel count, or null")

    @property
    def needs_gradients(self) -> bool:
        return self.importance == "taylor"


class ChannelPruner:
    """Prunes `model` in place, `settings.steps` times, each step removing channels up to that step's share
    of `settings.ratio`. `keep` names layers whose output channels stay whole (always the classifier head).

    Importance `taylor` reads the gradients already accumulated in the parameters: call
    `accumulate_gradients` (or any backward pass) before each `step`.
    """

    def __init__(self, model: nn.Module, example_input: torch.Tensor, settings: ChannelSettings, *,
                 keep: Sequence[str], key: str = "prune.ignore", ignored: Sequence[str] = ()) -> None:
        self.model = model
        self.settings = settings
        self.steps_done = 0
        self._names = {module: path for path, module in model.named_modules()}
        self._example = example_input
        self._key, self._ignored = key, tuple(ignored)  # the setting, as typed: a refusal's fix adds to it
        if settings.importance == "bn_scale" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                         for m in model.modules()):
            raise CnnlabError("prune.importance=bn_scale ranks channels by batch-norm scale, but this network "
                              "has no batch norms", fix="use prune.importance=l1, l2 or taylor")
        kept_layers = resolve_layers(model, keep, key=key)
        was_training = model.training
        self._pruner = run_naming_layer(
            model, lambda: NearestMultiplePruner(
                model, example_input, importance=IMPORTANCES[settings.importance](),
                global_pruning=settings.global_ranking, pruning_ratio=torch_pruning_ratio(settings.ratio),
                iterative_steps=settings.steps, ignored_layers=kept_layers, round_to=settings.round_to,
                forward_fn=lambda m, x: m(x)),
            what="Torch-Pruning cannot trace this network's graph (it follows autograd through a forward pass)",
            fix="channel pruning needs a forward pass that autograd can follow; use prune.method=magnitude, "
                "or leave the layer out with prune.ignore")
        model.train(was_training)
        self._emptied = refuse_whole_layer_removal(self._pruner)
        self.coupled_to_kept = self._coupled_to_kept()
        if not settings.global_ranking:  # each layer keeps its share: known from the widths before any work
            emptied = self._emptied_by_the_ratio()
            if emptied:
                raise self._refusal(emptied)
        self._refuse_single_channel_layers(kept_layers)

    def _out_channel_layers(self, group: Any) -> list[nn.Module]:
        """The Conv2d/Linear layers whose outputs a Torch-Pruning group prunes (its coupled layers)."""
        graph = self._pruner.DG
        return [dep.target.module for dep, _ in group
                if graph.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, WEIGHT_LAYERS)]

    def _coupled_to_kept(self) -> dict[str, str]:
        """The layers outside `keep` whose output channels are tied to a kept layer's — by a residual sum, a
        depthwise convolution, a concatenation (Torch-Pruning's `DependencyGraph.get_pruning_group`) — each with
        that kept layer: they stay whole with it (probe 200: the log blamed the global ranking for what the coupling
        did)."""
        graph, held = self._pruner.DG, set(self._pruner.ignored_layers)
        coupled: dict[str, str] = {}
        for module in held:
            handler = graph.get_pruner_of_module(module) if isinstance(module, WEIGHT_LAYERS) else None
            if handler is None or not handler.get_out_channels(module) or module not in self._names:
                continue
            group = graph.get_pruning_group(module, handler.prune_out_channels, [0])
            for layer in self._out_channel_layers(group):
                if layer not in held and layer in self._names:
                    coupled.setdefault(self._names[layer], self._names[module])
        return coupled

    def _emptied_by_the_ratio(self) -> list[tuple[nn.Module, int]]:
        """Under per-layer ranking, the groups whose last step would keep no channel — ⌊C × (1 − ratio)⌋ = 0, as
        Torch-Pruning counts, unless prune.round_to leaves a layer narrower than it whole — each by its first layer,
        as the step's refusal names them. Found before the data is read, not after steps and their training (probe
        200: ratio 0.99 in two steps was refused after step 1's recovery epoch)."""
        pruner, keep = self._pruner, 1.0 - torch_pruning_ratio(self.settings.ratio)
        emptied: list[tuple[nn.Module, int]] = []
        for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                              root_module_types=pruner.root_module_types):
            channels = len(group[0][1])  # the root's indices: all its output channels
            if int(channels * keep) > 0 or (self.settings.round_to and channels < self.settings.round_to):
                continue
            layers = self._out_channel_layers(group)
            emptied.append((layers[0] if layers else group[0][0].target.module, channels))
        return emptied

    def _refuse_single_channel_layers(self, kept: Sequence[nn.Module]) -> None:
        """With exact widths, a layer of one output channel would keep ⌊1 × (1 − ratio)⌋ = 0: refused as every such
        layer is. Torch-Pruning skips the group of a 1-channel layer before cnnlab's refusal hook sees it (probe 96:
        a LeNet-5 pruned to features.0 = 1 channel, pruned again at 0.6, kept it and recorded the ratio)."""
        if self.settings.round_to or self.settings.ratio <= 0:
            return  # a layer narrower than round_to stays whole, as documented
        held = {id(m) for layer in kept for m in layer.modules()}
        single = [(module, 1) for module in self.model.modules()
                  if isinstance(module, WEIGHT_LAYERS) and id(module) not in held and _outputs(module) == 1]
        if single:
            raise self._refusal(single)

    def _refusal(self, emptied: Sequence[tuple[nn.Module, int]]) -> CnnlabError:
        """The refusal of a step that would remove every channel of the `emptied` layers ((module, channels)), all of
        them named, with the `prune.ignore` that leaves them out (probe 196: one per run, three runs to follow)."""
        names = [self._names.get(module, "?") for module, _ in emptied]
        if len(emptied) == 1:
            (module, channels), = emptied
            what = f"all {channels} channels of layer {names[0]!r} ({type(module).__name__}), i.e. the whole layer"
        else:
            what = (f"every channel of {len(emptied)} layers: " + ", ".join(
                f"{name!r} ({channels})" for name, (_, channels) in zip(names, emptied)) + ", i.e. the whole layers")
        ignore = ",".join(dict.fromkeys([*self._ignored, *names]))
        # a global ranking moves its cut onto other layers when these are left out (probe 200: six refusals in a row,
        # the last run removing nothing): its fix is per-layer ranking, whose refusal names what to leave out
        leave = "or use prune.global=false (each layer then keeps its share, and a layer too narrow for it is named)" \
            if self.settings.global_ranking else \
            f"or leave {'it' if len(emptied) == 1 else 'them'} out: '{self._key}=[{ignore}]'"
        error = CnnlabError(f"prune.ratio={self.settings.ratio:g} would remove {what}",
                            fix=f"lower prune.ratio, {leave}")
        error.before_work = self.steps_done == 0  # a setting's refusal, unless recovery training has run since
        return error

    def step(self) -> None:
        """One pruning step; afterwards the model must still run (a graph Torch-Pruning misread fails here,
        naming the layer)."""
        if self.steps_done >= self.settings.steps:
            raise RuntimeError(f"all {self.settings.steps} pruning steps are done")
        if self.settings.needs_gradients and all(p.grad is None for p in self.model.parameters()):
            raise RuntimeError("importance=taylor reads gradients: call accumulate_gradients() before step()")
        was_training = self.model.training
        self._emptied.clear()
        self._pruner.step()
        if self._emptied:  # the step skipped each group that would have emptied a layer: refused, all named
            raise self._refusal(list(self._emptied))
        self.steps_done += 1
        self.model.eval()
        with torch.no_grad():
            # the pruner may be made before the model moves to its device (pipelines/prune.py: before the data)
            example = self._example.to(next(self.model.parameters()).device)
            run_naming_layer(self.model, lambda: self.model(example),
                             what="the pruned network no longer runs: Torch-Pruning misread its graph",
                             fix="leave that layer out with prune.ignore, or use prune.method=magnitude")
        self.model.train(was_training)
        self.model.zero_grad(set_to_none=True)  # gradients of removed channels must not outlive them

    @property
    def current_ratio(self) -> float:
        return self.settings.ratio * self.steps_done / self.settings.steps

    def finish(self) -> None:
        """Nothing to fold in: the removed channels are gone from the tensors already."""


def accumulate_gradients(model: nn.Module, batches: Sequence[Any] | Any,
                         loss_of: Callable[[nn.Module, Any], torch.Tensor], *, limit: int) -> int:
    """Sum the loss gradients of up to `limit` batches into the parameters' .grad (Taylor importance:
    |weight x gradient|). Eval mode, so batch-norm statistics are not disturbed. Under DDP the sums are then
    added over ranks, so every rank ranks — and removes — the same channels. Returns the batches used."""
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    used = 0
    for batch in batches:  # float32: no autocast here, so conv_guard.py's bf16 kernel bug cannot reach the ranking
        if used >= limit:
            break
        loss_of(model, batch).backward()
        used += 1
    model.train(was_training)
    if used == 0:
        raise CnnlabError("prune.importance=taylor needs training batches, but the training set is empty")
    for param in model.parameters():
        if param.grad is not None:
            param.grad.copy_(all_reduce_sum(param.grad))  # a no-op in a single process
    return used


def _outputs(module: nn.Module) -> int:
    """A Conv2d's output channels, a Linear's output features."""
    return int(module.out_channels if isinstance(module, nn.Conv2d) else module.out_features)
