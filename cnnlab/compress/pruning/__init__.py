"""Pruning on PyTorch models: structured channel pruning (real speed-ups) and unstructured magnitude
pruning (sparsity). Plain functions and one small class; `cnnlab prune` (pipelines/prune.py) drives them."""

from __future__ import annotations

from cnnlab.compress.pruning.channel import (IMPORTANCES, ChannelPruner, ChannelSettings, accumulate_gradients,
                                             check_ratio)
from cnnlab.compress.pruning.layers import layer_widths, resolve_layers, run_naming_layer, weight_layers
from cnnlab.compress.pruning.magnitude import (MagnitudePruner, MagnitudeSettings, apply_magnitude_masks,
                                               make_permanent, overall_sparsity, prunable_layers, weight_sparsity,
                                               zero_weights)

METHODS = ("channel", "magnitude")

__all__ = [
    "IMPORTANCES", "METHODS", "ChannelPruner", "ChannelSettings", "MagnitudePruner", "MagnitudeSettings",
    "accumulate_gradients", "apply_magnitude_masks",
    "check_ratio", "layer_widths", "make_permanent", "overall_sparsity", "prunable_layers", "resolve_layers",
    "run_naming_layer", "weight_layers", "weight_sparsity", "zero_weights",
]
