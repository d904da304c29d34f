"""A linear probe's head trained on cached backbone features (`train_head_on_features`, `cnnlab finetune`'s
finetune.mode=linear), and how a checkpoint says it is one (`trained_head_only`, which QAT trains as it trained)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import TensorDataset

from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.engine.checkpoint import ModelCheckpoint
from cnnlab.engine.features import FeatureStandardizer, extract_features
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.trainer import FitResult, evaluate
from cnnlab.steps.recording import record_warning
from cnnlab.steps.training import (Checkpointing, Trainable, check_batch, classification_objective,
                                   eval_loader, loader_workers, make_loaders, train_model)


def trained_head_only(checkpoint: ModelCheckpoint) -> bool:
    """Whether the checkpoint is a linear probe (`cnnlab finetune`'s finetune.mode=linear, as its model.pt records):
    its backbone never trained for these classes, and its head, fitted on standardised features and folded back,
    is as large as those features are small (probe 115: |W| 537 on a random LeNet-5's features against 5 for a
    fine-tuned head) — through it, the backbone's gradients wreck the network within a few steps."""
    finetune = checkpoint.extra.get("finetune") if isinstance(checkpoint.extra, dict) else None
    return isinstance(finetune, dict) and finetune.get("mode") == "linear"


@dataclass(frozen=True)
class ProbeFeatures:
    """How a cached linear probe treats its features: `standardize` them, and whether the head was `kept_head` from
    the weights (trained: unfolded into standardised space first) rather than new."""

    standardize: bool
    kept_head: bool


def train_head_on_features(ctx: RunContext, runtime: Runtime, recipe: Recipe, model: nn.Module, head_path: str,
                           data: DataBundle, probe: ProbeFeatures) -> FitResult:
    """Run the frozen backbone once over train and val, then train the head on the cached features — standardised
    with the training features' statistics when `probe.standardize`, the trained head then folded back to take raw
    ones and scored again on the raw val features: the val metrics recorded are the saved model's."""
    # the head trains in the precision trainer.amp=auto gives the whole network (float32 for a ResNet on 1x1 maps on
    # the CPU), as the uncached loop does: a Linear alone would keep bf16 (probe 65: the two probes' heads differed)
    runtime = runtime.for_network(model)
    check_batch(recipe, runtime, len(data.train))  # before the features are computed, not after (probe 91)
    workers = loader_workers(recipe, data)  # the images are decoded and resized once, but 60,000 of them
    train_features, val_features = (extract_features(model, head_path, eval_loader(recipe, images, workers=workers),
                                                     runtime, f"{split} features", float32=split == "val")
                                    for split, images in (("train", data.train), ("val", data.val)))
    ctx.log.info("cached %d-dim features for %d train / %d val images%s", train_features.tensors[0].shape[1],
                 len(train_features), len(val_features), ", standardised per feature" if probe.standardize else "")
    head = model.get_submodule(head_path)
    if not probe.standardize:
        return _train_head(ctx, runtime, recipe, head, train_features, val_features, len(data.classes))
    standardizer = FeatureStandardizer.fit(train_features.tensors[0])
    if probe.kept_head:
        standardizer.unfold_from(head)
    else:
        standardizer.zero_constant(head)
    result = _train_head(ctx, runtime, recipe, head, standardizer(train_features), standardizer(val_features),
                         len(data.classes))
    standardizer.fold_into(head)
    if result.history:
        rescore_folded_head(ctx, runtime, recipe, head, val_features, result.history[-1])
    return result


def _train_head(ctx: RunContext, runtime: Runtime, recipe: Recipe, head: nn.Module, train: TensorDataset,
                val: TensorDataset, classes: int) -> FitResult:
    # No last.pt: it would hold the head alone, and recomputing the cache is cheaper than resuming.
    return train_model(ctx, runtime, recipe, Trainable(head, head=head), make_loaders(recipe, runtime, train, val),
                       classification_objective(recipe, classes), Checkpointing(enabled=False))


def rescore_folded_head(ctx: RunContext, runtime: Runtime, recipe: Recipe, head: nn.Module,
                        val_features: TensorDataset, final: dict[str, Any]) -> None:
    """Score the folded head on the raw val features and make `final` (the last epoch's metrics) say that: the saved
    model's figures. Folding is exact in real arithmetic; in float32 a feature far from zero relative to its spread
    (a mean 1e5 with std 0.02 took top-1 from 68.8 % to 50 %) cancels — a warning says when the top-1 moved (the
    per-epoch log and metrics.csv keep the head's figures before folding)."""
    scores = evaluate(head, eval_loader(recipe, val_features), runtime, desc="val (folded head)")
    before = final.get("val_acc")
    final.update(val_acc=scores["acc"], val_top5=scores["top5"], val_loss=scores["loss"])
    if before is not None and ctx.is_main and abs(scores["acc"] - before) > 0.5 / max(1, scores["n"]):
        record_warning(ctx, f"folding the feature standardisation into the head moved val top-1 from "
                            f"{100 * before:.2f} % to {100 * scores['acc']:.2f} % (features far from zero for their "
                            "spread lose precision in float32); the figure recorded is the saved model's, "
                            "metrics.csv's last row the head's before folding — "
                            "finetune.standardize_features=false trains on the raw features")

