"""The one place where cnnlab relies on Torch-Pruning behaviour outside its documented API.

Two needs have no public hook in Torch-Pruning 1.5–1.6:

1. Rounding. `BasePruner(round_to=k)` rounds a layer's kept channels *down* to a multiple of k, so ratio
   0.3 on 64 channels keeps 32 (not ~45) with k=16, and a layer narrower than k loses everything.
   `NearestMultiplePruner` overrides `BasePruner._round_to(n_pruned, current_channels, round_to)` to round
   to the nearest multiple (at least one) and to leave a layer narrower than k whole. Before any rounding,
   Torch-Pruning truncates C x (1 - ratio) in floating point; `torch_pruning_ratio` takes its float error out.
2. Refusing to remove a whole layer. Before pruning a group, `BasePruner._prune` asks
   `DependencyGraph.check_pruning_group(group)`; when a group would lose every channel of a layer it returns
   False and the group is skipped without a word, leaving the layer whole although the user asked for a
   ratio. `refuse_whole_layer_removal` wraps that check on one pruner's own graph (an instance attribute,
   not a class patch) so that cnnlab refuses the step instead, naming every layer it would empty.

tests/compress/test_tp_adapter.py checks that both hooks still exist with the signatures used here and are
still called by `step()`: an upgrade of Torch-Pruning that changes them fails that test, not a user's run.
"""

from __future__ import annotations

from typing import Any

import torch_pruning as tp
from torch import nn

from cnnlab.compress.pruning.layers import WEIGHT_LAYERS


class NearestMultiplePruner(tp.pruner.BasePruner):
    """A Torch-Pruning `BasePruner` whose `round_to` keeps the nearest multiple of channels (halves up)."""

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        if current_channels < round_to:  # no multiple fits: the layer stays whole (docs/prune.md), whatever the ratio
            return 0
        kept = current_channels - n_pruned
        if kept <= 0:  # the ratio removes the whole layer: left for the refusal, not rounded away
            return n_pruned
        rounded = max(round_to, int(kept / round_to + 0.5) * round_to)  # halves round up: keep, not cut
        return max(0, current_channels - min(rounded, current_channels))


# Far below one channel for any real width (< 10^8 channels), far above float64's error on C x (1 - ratio).
_FLOAT_SLACK = 1e-9


def torch_pruning_ratio(ratio: float) -> float:
    """The `pruning_ratio` to hand Torch-Pruning for a layer to keep floor(C x (1 - ratio)) channels in exact
    arithmetic. Torch-Pruning keeps `int(C * (1 - ratio))`, and in floating point 1 - 0.9 is 0.0999…98: 120 channels
    at ratio 0.9 kept 11, not 12 (and 8, not 16, after rounding to a multiple of 8)."""
    return max(0.0, ratio - _FLOAT_SLACK) if ratio > 0 else ratio


def refuse_whole_layer_removal(pruner: tp.pruner.BasePruner) -> list[tuple[nn.Module, int]]:
    """Make `pruner` skip, and note, every group that would remove all channels of a layer, where Torch-Pruning
    skips it without a word: the list returned fills with (module, channels) as `step()` meets them — of each such
    group the first Conv2d or Linear whose outputs it empties (its first emptied module where none is) — for the caller
    to refuse after the step, naming them all (probe 196: a refusal per layer took a run per layer to follow)."""
    graph = pruner.DG
    check = graph.check_pruning_group
    emptied: list[tuple[nn.Module, int]] = []

    def refuse(group: Any) -> bool:
        if check(group):
            return True
        whole: list[tuple[nn.Module, int, bool]] = []
        for dep, idxs in group:
            module = dep.target.module
            outputs = graph.is_out_channel_pruning_fn(dep.handler)
            channels = graph.get_out_channels(module) if outputs else graph.get_in_channels(module)
            if channels is not None and len(idxs) >= channels:
                whole.append((module, channels, outputs and isinstance(module, WEIGHT_LAYERS)))
        # one per group, its first such layer (the root: ResNet's conv1, not the block outputs added to it)
        named = ([(module, channels) for module, channels, layer in whole if layer] or [whole[0][:2]])[:1] \
            if whole else []
        emptied.extend(entry for entry in named if all(entry[0] is not seen for seen, _ in emptied))
        return False

    graph.check_pruning_group = refuse
    return emptied
