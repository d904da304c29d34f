"""Model zoo: registry, builders (small-input aware), heads and stages, ImageNet weights, pruned shapes."""

from __future__ import annotations

from cnnlab.models.factory import (check_stem, check_stem_value, create_model, model_options, models_with_cifar_stem,
                                   requested_stem, resolution_hint, small_input_adaptation, stem_hint)
from cnnlab.models.freezing import FINETUNE_MODES, first_trainable, freeze_before
from cnnlab.models.heads import feature_stages, get_head, reorder_head, replace_head
from cnnlab.models.info import model_info
from cnnlab.models.measure import count_flops, count_params
from cnnlab.models.registry import (ALIASES, MODELS, ModelEntry, canonical_name, channel_options, get_entry,
                                     state_dict_channels)
from cnnlab.models.structure import apply_structure, capture_structure
from cnnlab.models.weights import (PretrainedWeights, hub_checkpoint_path, imagenet_recipe, imagenet_weights,
                                   load_pretrained, load_state_dict_file, published_file, published_name)

__all__ = [
    "ALIASES", "FINETUNE_MODES", "MODELS", "ModelEntry", "PretrainedWeights", "apply_structure", "canonical_name", "capture_structure", "channel_options", "check_stem", "check_stem_value", "state_dict_channels",
    "count_flops", "count_params", "create_model", "feature_stages", "first_trainable", "freeze_before", "get_entry", "get_head", "hub_checkpoint_path",
    "imagenet_recipe", "imagenet_weights", "load_pretrained", "load_state_dict_file", "model_info", "model_options",
    "models_with_cifar_stem", "resolution_hint", "published_file", "published_name", "reorder_head", "replace_head",
    "requested_stem",
    "small_input_adaptation", "stem_hint",
]
