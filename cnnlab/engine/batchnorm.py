"""BatchNorm running statistics: which layers train them, and "precise BN" — recomputing them after training.

A BatchNorm layer normalises with the batch's statistics while training but with its running averages
(`running_mean`, `running_var`, updated by an exponential moving average with `momentum`) in eval mode.
With a small momentum (torchvision's MobileNetV3 uses 0.01) and a short run, or weights that still move
fast, those averages lag far behind the weights: evaluation then sees wrongly normalised activations and
a network at 92 % train accuracy scores chance. "Precise BN" (Wu & Johnson, 2021, "Rethinking 'Batch' in
BatchNorm", §3; fvcore's `update_bn_stats`, detectron2's PreciseBN hook, `torch.optim.swa_utils.update_bn`)
recomputes the averages for the final weights: a forward pass in training mode, without gradients, over a
few training batches, with a cumulative average (momentum=None) in place of the moving one.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from cnnlab.data.loaders import SeededItems
from cnnlab.engine.runtime import all_reduce_sum
from cnnlab.engine.seeding import rng_state, set_rng_state
from cnnlab.errors import CnnlabError, found_before_work

BatchNorm = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d, SyncBatchNorm, the lazy variants


def set_train_mode(model: nn.Module, frozen: Iterable[nn.Module] = ()) -> None:
    """model.train(), except the frozen modules, which keep eval behaviour (BN stats, dropout)."""
    model.train()
    for module in frozen:
        module.eval()


def training_batchnorms(model: nn.Module, frozen: Iterable[nn.Module] = ()) -> list[nn.Module]:
    """The BatchNorm layers whose running statistics training updates: those with running statistics that are
    not inside a frozen module (frozen modules stay in eval mode, see `set_train_mode`)."""
    skipped = {id(inner) for module in frozen for inner in module.modules()}
    return [module for module in model.modules() if isinstance(module, BatchNorm) and module.track_running_stats
            and module.running_mean is not None and id(module) not in skipped]


@torch.no_grad()
def one_value_per_channel(model: nn.Module, images: Tensor,
                          frozen: Iterable[nn.Module] = ()) -> tuple[str, tuple[int, ...]] | None:
    """The first BatchNorm layer outside `frozen` (its name and input shape) that a batch of one image (`images`,
    [1, C, H, W]) reaches with a single value per channel ([1, C] or [1, C, 1, 1]: a 32 px image at the end of a
    ResNet or MobileNet): torch cannot train it ("Expected more than 1 value per channel when training"). None when
    there is none. The pass runs in eval mode, which can; every module's mode is restored."""
    skipped = {id(inner) for module in frozen for inner in module.modules()}
    names = {module: name for name, module in model.named_modules()
             if isinstance(module, BatchNorm) and id(module) not in skipped}
    if not names:
        return None
    found: list[tuple[str, tuple[int, ...]]] = []

    def spot(module: nn.Module, args: tuple[Any, ...]) -> None:
        if not found and args[0].dim() >= 2 and args[0].numel() == args[0].shape[1]:
            found.append((names[module], tuple(args[0].shape)))

    hooks = [module.register_forward_pre_hook(spot) for module in names]
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        model(images)
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in modes.items():
            module.train(mode)
    return found[0] if found else None


@found_before_work()
def refuse_batch_of_one(model: nn.Module, loader: DataLoader, *, frozen: Iterable[nn.Module] = (),
                        to_device: Callable[[Tensor], Tensor] | None = None, world_size: int = 1) -> None:
    """CnnlabError when `loader` gives one image per batch (per process) and a BatchNorm layer of `model` would see
    one value per channel (`one_value_per_channel`): training, or recomputing its statistics (precise BN, prune's
    recalibration), would stop with torch's "Expected more than 1 value per channel" as a traceback (probe 62:
    resnet18 at 16 px, mobilenet_v2 at 32 px). The message names trainer.batch_size as typed: the batch of all
    `world_size` processes."""
    if loader.batch_size != 1 or len(loader.dataset) == 0:  # type: ignore[arg-type]
        return
    items = loader.dataset
    image = (items.base if isinstance(items, SeededItems) else items)[0][0]
    if not isinstance(image, Tensor) or image.dim() != 3:
        return  # features or views: no image to pass
    images = image.unsqueeze(0)
    found = one_value_per_channel(model, to_device(images) if to_device else images, frozen)
    if found is not None:
        name, shape = found
        each = " per process" if world_size > 1 else ""
        raise CnnlabError(f"trainer.batch_size={world_size}: one image per batch{each} reaches the BatchNorm layer "
                          f"{name} as {list(shape)}, one value per channel, which BatchNorm cannot normalise in "
                          "training", fix=f"use trainer.batch_size={2 * world_size} or more (or a larger "
                                          "dataset.image_size)")


def set_bn_momentum(model: nn.Module, momentum: float, frozen: Iterable[nn.Module] = ()) -> int:
    """Give every training BatchNorm layer this running-average momentum (torch's convention: the weight of
    the new batch, 0 < momentum <= 1). Returns how many layers changed."""
    if not 0 < momentum <= 1:
        raise ValueError(f"a BatchNorm momentum must be in (0, 1], got {momentum}")
    layers = training_batchnorms(model, frozen)
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, loader: Iterable[Any], *, batches: int, frozen: Iterable[nn.Module] = (),
                       to_device: Callable[[Tensor], Tensor] | None = None,
                       autocast: Callable[[], ContextManager[Any]] = contextlib.nullcontext) -> int:
    """Recompute the running mean and variance of every training BatchNorm layer of `model` for its current
    weights (precise BN: Wu & Johnson 2021; fvcore's `update_bn_stats`).

    Runs the first `batches` batches of `loader` through `model` in training mode (frozen modules in eval mode,
    as during training), without gradients, and sets each layer's `running_mean` / `running_var` ([C] each) to
    the average over those batches of the per-batch mean / unbiased variance. Only these two buffers change:
    the weights, each layer's `momentum` and `num_batches_tracked`, the modules' train/eval modes and the global
    RNG streams (augmentations, worker seeds) are as before, so training continues exactly as without the pass.
    Under torch.distributed the statistics are pooled over the ranks (each rank its own shard of batches).

    loader: yields batches whose first element is the images [N, C, H, W] (labels and more are ignored).
    to_device: moves the images to the model (default: the device of its first parameter).
    autocast: the context the training forward runs under (mixed precision).
    Returns the number of images used; 0 when the model has no training BatchNorm layer, `batches` < 1 or the
    loader is empty (nothing is changed then).
    """
    layers = training_batchnorms(model, frozen)
    if not layers or batches < 1:
        return 0
    if to_device is None:
        device = next(model.parameters()).device
        to_device = lambda images: images.to(device, non_blocking=True)  # noqa: E731
    modes = [(module, module.training) for module in model.modules()]
    saved = [(layer.momentum, layer.running_mean.clone(), layer.running_var.clone(),  # type: ignore[union-attr]
              layer.num_batches_tracked.clone() if layer.num_batches_tracked is not None else None)
             for layer in layers]
    rng = rng_state()  # the extra pass must not shift the augmentations training draws next
    images, done = 0, False
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average: running = mean over the batches seen so far
        set_train_mode(model, frozen)
        for step, batch in enumerate(loader):
            if step >= batches:
                break
            with autocast():
                model(to_device(batch[0]))
            images += int(batch[0].shape[0])
        done = True
    finally:
        for layer, (momentum, mean, var, tracked) in zip(layers, saved):
            layer.momentum = momentum
            if tracked is not None:
                layer.num_batches_tracked.copy_(tracked)  # type: ignore[union-attr]
            if not done or images == 0:  # interrupted, or an empty loader: keep the old statistics
                layer.running_mean.copy_(mean)  # type: ignore[union-attr]
                layer.running_var.copy_(var)  # type: ignore[union-attr]
        for module, training in modes:
            module.training = training
        set_rng_state(rng)
    _pool_over_ranks(layers)
    return images


def _pool_over_ranks(layers: list[nn.Module]) -> None:
    """Average the statistics over the ranks (equal batch counts): mean of means, and E[x²] − mean² for the
    variance. A no-op in a single process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    if world < 2:
        return
    for layer in layers:
        mean, var = layer.running_mean, layer.running_var
        pooled = all_reduce_sum(torch.stack([mean, var + mean * mean])) / world  # type: ignore[operator]
        mean.copy_(pooled[0])  # type: ignore[union-attr]
        var.copy_(pooled[1] - pooled[0] * pooled[0])  # type: ignore[union-attr]
