"""Pruning on PyTorch models: structured channel pruning (real speed-ups) and unstructured magnitude
pruning (sparsity), the command's settings (settings.py) and the measured latency of dense against pruned
(latency.py). Plain functions and small classes; `cnnlab prune` (pipelines/prune.py) drives them."""

from __future__ import annotations

from cnnlab.compress.pruning.channel import (IMPORTANCES, ChannelPruner, ChannelSettings, accumulate_gradients,
                                             check_ratio)
from cnnlab.compress.pruning.layers import layer_widths, resolve_layers, run_naming_layer, weight_layers
from cnnlab.compress.pruning.magnitude import (MagnitudePruner, MagnitudeSettings, apply_magnitude_masks,
                                               make_permanent, nonzero_params, overall_sparsity, prunable_layers,
                                               weight_sparsity, zero_weights)
from cnnlab.compress.pruning.latency import PruneLatency, dense_copy, measure_pruning
from cnnlab.compress.pruning.settings import METHODS, PruneSettings
from cnnlab.compress.pruning.summary import SPARSITY_NOTE, summary_table

__all__ = [
    "IMPORTANCES", "METHODS", "ChannelPruner", "ChannelSettings", "MagnitudePruner", "MagnitudeSettings",
    "PruneLatency", "PruneSettings", "SPARSITY_NOTE", "dense_copy", "measure_pruning", "summary_table",
    "accumulate_gradients", "apply_magnitude_masks",
    "check_ratio", "layer_widths", "make_permanent", "nonzero_params", "overall_sparsity", "prunable_layers",
    "resolve_layers", "run_naming_layer", "weight_layers", "weight_sparsity", "zero_weights",
]
