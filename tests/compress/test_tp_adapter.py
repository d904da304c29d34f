"""The Torch-Pruning internals cnnlab's adapter relies on are still there and still used by `step()`.

If one of these fails after a Torch-Pruning upgrade, cnnlab/compress/pruning/tp_adapter.py needs a look:
the rounding or the whole-layer refusal would otherwise stop working without an error.
"""

from __future__ import annotations

import inspect

import torch
import torch_pruning as tp
from torch import nn

from cnnlab.compress.pruning.tp_adapter import NearestMultiplePruner, refuse_whole_layer_removal


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv2d(64, 8, 1))


def _pruner(model: nn.Module, ratio: float, round_to: int | None = None) -> tp.pruner.BasePruner:
    return NearestMultiplePruner(model, torch.randn(1, 3, 8, 8), importance=tp.importance.MagnitudeImportance(p=2),
                                 pruning_ratio=ratio, ignored_layers=[model[3]], round_to=round_to)


def test_round_to_hook_has_the_overridden_signature() -> None:
    base = inspect.signature(tp.pruner.BasePruner._round_to)
    assert list(base.parameters) == ["self", "n_pruned", "current_channels", "round_to"]


def test_round_to_hook_is_called_by_step() -> None:
    model = _net()
    _pruner(model, ratio=0.3, round_to=16).step()
    assert model[0].out_channels == 48  # 44.8 kept → nearest multiple of 16; the library's own rounding gives 32


def test_check_pruning_group_is_called_by_step() -> None:
    model = _net()
    pruner = _pruner(model, ratio=0.5)
    seen: list[object] = []
    emptied = refuse_whole_layer_removal(pruner)
    check = pruner.DG.check_pruning_group
    pruner.DG.check_pruning_group = lambda group: seen.append(group) or check(group)
    pruner.step()
    assert seen and model[0].out_channels == 32 and emptied == []


def test_a_group_that_empties_a_layer_reaches_the_refusal() -> None:
    model = _net()
    pruner = _pruner(model, ratio=0.5)

    emptied = refuse_whole_layer_removal(pruner)
    group = pruner.DG.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=list(range(64)))
    assert pruner.DG.check_pruning_group(group) is False  # skipped, as Torch-Pruning does, and noted
    assert emptied == [(model[0], 64)]  # the conv whose outputs it empties, not the batch norm or the next conv
