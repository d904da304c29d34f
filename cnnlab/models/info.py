"""One-line facts about a registered network, for `cnnlab list models` and reports."""

from __future__ import annotations

from typing import Any

import torchvision.models as tvm

from cnnlab.models.factory import create_model
from cnnlab.models.measure import count_params
from cnnlab.models.registry import get_entry

# the head of a network without weights when it is counted: ImageNet's 1000 classes, the weights' meta counts for the
# others (probe 233: a 10-class count made `searched`, which is MobileNetV2 by default, read 2.2 M beside its 3.5 M)
_HEAD_CLASSES = 1000


def model_info(name: str) -> dict[str, Any]:
    """name, family, year, paper, weights, min_size, params, imagenet_acc1 (%), gflops.

    With ImageNet weights, params/acc/GFLOPs come from torchvision's meta (1000-class model, 224 px) without
    building the network; gflops counts 2 FLOPs per multiply-accumulate, like `count_flops`, i.e. twice
    torchvision's "_ops" figure. Without weights (lenet5, searched) params is counted on the network built with the
    same 1000-class head, and the rest is None.
    """
    entry = get_entry(name)
    info: dict[str, Any] = {"name": entry.name, "family": entry.family, "year": entry.year, "paper": entry.paper,
                            "weights": entry.tv_weights, "min_size": entry.min_size}
    if entry.tv_weights is None:
        model = create_model(entry.name, num_classes=_HEAD_CLASSES, image_size=32)
        return {**info, "params": count_params(model), "imagenet_acc1": None, "gflops": None}
    meta = tvm.get_weight(entry.tv_weights).meta
    macs = meta.get("_ops")
    return {**info, "params": int(meta["num_params"]),
            "imagenet_acc1": meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
            "gflops": round(2 * macs, 3) if macs is not None else None}
