"""`cnnlab prune`: prune a trained model, recover its accuracy, and measure what pruning bought.

1. The source run's model (source=...) and the data it was trained on; its accuracy before pruning.
2. With prune.measure=true a copy of the dense model is kept for the timing at the end.
3. Pruning in prune.steps steps up to prune.ratio — channel (Torch-Pruning: whole channels leave every
   coupled layer) or magnitude (the smallest weights are masked) — with prune.finetune_epochs of
   training between steps; the accuracy right after pruning.
4. A recovery fine-tune (trainer.epochs, 0 = none) through the one training engine (training.RecoveryTraining:
   the run's recipe at optim.lr x prune.lr_scale); magnitude masks stay on during training, then made permanent.
5. model.pt (the pruned structure rebuilds from it), then model.onnx and a temporary dense.onnx, timed
   against each other in one paired session (compress/pruning/latency.py → deploy/paired.py: same threads,
   interleaved rounds): speed-up = dense p50 / pruned p50, next to the FLOPs ratio.
The source run is only read, never written.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, open_dict
from torch import nn

from cnnlab.compress.pruning import (SPARSITY_NOTE, ChannelPruner, MagnitudePruner, PruneSettings,
                                     accumulate_gradients, dense_copy, layer_widths, measure_pruning, nonzero_params,
                                     overall_sparsity, resolve_layers, summary_table, weight_sparsity)
from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.export import ModelIdentity
from cnnlab.engine.batchnorm import refuse_batch_of_one
from cnnlab.engine.checkpoint import require_trained_head
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models import MODELS, count_flops, count_params
from cnnlab.settings import packaged_defaults
from cnnlab.wording import counted
from cnnlab.steps.jobs import swept, swept_values
from cnnlab.steps.sources import model_labelled, load_source_model, source_data
from cnnlab.steps.augment_on import classifier_loaders
from cnnlab.steps.training import RecoveryTraining, classification_objective, setup_runtime
from cnnlab.steps.recording import (TrainedModel, dataset_record, fit_metrics, record_subject, record_warning,
                                    save_and_record)
from cnnlab.runs import MODEL_FILE, ONNX_FILE, RunInfo, Source

DENSE_ONNX = "dense.onnx"


def check(cfg: DictConfig) -> None:
    """What `cnnlab prune` parses itself: PruneSettings and the recipe (cnnlab/commands.py: `check`); a setting the
    method or importance does not read is refused, except in a sweep that varies them (said by the job: run), as
    finetune's settings its mode does not read (probe 144)."""
    unread = _unread_setting(cfg)
    if unread is not None and not swept("prune.method", "prune.importance"):
        raise unread
    jobs = _swept_jobs() if unread is not None else []
    if jobs and all(_unread_setting(cfg, **job) is not None for job in jobs):
        raise unread  # probe 145: `-m prune.importance=l1,l2 prune.taylor_batches=4`: no job reads it
    Recipe.from_config(cfg)


def _swept_jobs() -> list[dict[str, str]]:
    """The prune.method × prune.importance values this sweep's jobs take ([] when they cannot be listed: each job
    then says the setting it does not read)."""
    methods, importances = swept_values("prune.method"), swept_values("prune.importance")
    if (swept("prune.method") and methods is None) or (swept("prune.importance") and importances is None):
        return []
    return [{"method": m, "importance": i} for m in methods or [None] for i in importances or [None]]


def _unread_setting(cfg: DictConfig, method: str | None = None, importance: str | None = None) -> CnnlabError | None:
    """The refusal of a prune setting that `method` / `importance` (else the configured ones) do not read, or None."""
    section = cfg.prune.copy()
    with open_dict(section):
        section.update({k: v for k, v in (("method", method), ("importance", importance)) if v is not None})
    settings = PruneSettings.from_config(section)
    try:
        settings.refuse_channel_settings(section, packaged_defaults())
    except CnnlabError as unread:
        return unread
    return None


@found_before_work()
def check_ignored_layers(model: nn.Module, name: str, ignore: Sequence[str]) -> None:
    """CnnlabError for a `prune.ignore` path that names no weight layer of `model` (network `name`: the fix lists its
    layers with `cnnlab inspect model=NAME`, probe 196), or its classifier head, which pruning always keeps whole
    (probe 75: accepted, and nothing changed)."""
    head = MODELS[name].head
    kept_anyway = next((path for path in ignore if path == head or path.startswith(head + ".")), None)
    if kept_anyway is not None:
        raise CnnlabError(f"prune.ignore: {kept_anyway} is the classifier head of {name}, which pruning always keeps "
                          "whole (its outputs are the classes), so leaving it out would change nothing",
                          fix=f"drop {kept_anyway} from prune.ignore")
    resolve_layers(model, ignore, key="prune.ignore", arch=name)


def recovery_blew_up(history: Sequence[dict[str, Any]], num_classes: int, acc_before: float, lr_scale: float,
                     grad_clip: float | None, lr: float | None = None) -> str | None:
    """The warning for a recovery training whose loss blew up — an epoch's mean train loss above 3 × ln(classes),
    three times what an even guess over the classes scores — and that ended below the dense network's val top-1;
    None otherwise. Probe 196: a pruned linear probe of an untrained backbone trained at loss 74 and ended at 58 %
    against 86 % dense, without a word (docs/prune.md, step 4, says why and what helps)."""
    guess = math.log(max(num_classes, 2))
    losses = [(i, e["train_loss"]) for i, e in enumerate(history, 1) if isinstance(e.get("train_loss"), (int, float))]
    worst = max(losses, key=lambda pair: pair[1], default=None)
    final = history[-1].get("val_acc") if history else None
    if worst is None or worst[1] <= 3 * guess or final is None or final >= acc_before:
        return None
    # a concrete value, ten times lower (probe 200: grad clipping alone did not save a recovery at learning rate 10;
    # the default scale 0.1 did), with what it trains at where the optimizer's rate is known
    at = f": it trains at optim.lr × prune.lr_scale = {lr * lr_scale:g}" if lr else ""
    lower = f"prune.lr_scale={lr_scale / 10:g}" + (f" trains at {lr * lr_scale / 10:g}" if lr else "")
    fix = f"lower prune.lr_scale (now {lr_scale:g}{at}; {lower})" + \
        ("" if grad_clip else ", and set trainer.grad_clip=1.0 besides")
    return (f"the recovery training's loss blew up: train loss {worst[1]:.4g} in epoch {worst[0]}, where an even "
            f"guess over the {num_classes} classes scores {guess:.3g}; val top-1 {final:.2%} after recovery against "
            f"{acc_before:.2%} dense — its steps were too large for the pruned network (a probe of an untrained "
            f"backbone does this: docs/prune.md, step 4): {fix}")


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    unread = _unread_setting(cfg)
    if unread is not None:  # a job of a sweep across methods or importances (check refuses the others)
        record_warning(ctx, f"{unread.message}: not read by this job")
    settings = PruneSettings.from_config(cfg.prune)
    recipe = Recipe.from_config(cfg)
    runtime = setup_runtime(cfg, recipe)
    loaded = load_source_model(cfg, ctx)
    checkpoint = loaded.checkpoint
    require_trained_head(checkpoint, loaded.source.path, "the dense and pruned accuracies")
    name, size = checkpoint.name, checkpoint.spec.size
    check_ignored_layers(loaded.model, name, settings.ignore)  # before the data is read and the dense model scored
    keep = (MODELS[name].head, *settings.ignore)  # the classifier never loses outputs: they are the classes
    # made on the CPU before the data is read, so that a ratio that empties a layer is refused before any work
    # (probe 200); runtime.prepare_model then moves the same modules to the device, in place
    pruner = settings.make_pruner(loaded.model, keep, checkpoint.spec)
    data, dataset_cfg = source_data(cfg, ctx, loaded.source, checkpoint.spec, train_augment=True)
    data = model_labelled(data, checkpoint.classes)
    runtime = runtime.for_input(size)
    ctx.log.info("prune %s (%s) by %s, ratio %g in %d step(s), on %s at %d px", name, loaded.source.path,
                 settings.method, settings.ratio, settings.steps, data.name, size)
    if settings.steps == 1 and ctx.explicitly_set("prune.finetune_epochs"):  # probe 228: 4 typed, 5 trained, unsaid
        record_warning(ctx, f"prune.finetune_epochs={settings.finetune_epochs} is the training between two pruning "
                            f"steps, and prune.steps=1 has none: the recovery after pruning trains "
                            f"trainer.epochs={recipe.epochs} — set that instead, or prune.steps=2 or more")

    model = runtime.prepare_model(loaded.model)
    work = RecoveryTraining(ctx, runtime, recipe.with_lr_scale(settings.lr_scale),
                            classifier_loaders(ctx, recipe, runtime, data),
                            classification_objective(recipe, len(data.classes)))
    # before any work: its BatchNorm recalibration runs in training mode (pruning keeps the spatial sizes)
    refuse_batch_of_one(model, work.loaders.train, to_device=runtime.to_device, world_size=runtime.world_size)
    dense = footprint(model, size)
    acc_before = work.accuracy(model, "val (dense)")
    ctx.log.info("dense: %s params, %.3g GFLOPs, val acc %.2f%%", f"{dense['params']:,}", dense["flops"] / 1e9,
                 100 * acc_before)
    identity = ModelIdentity(arch=name, classes=tuple(checkpoint.classes), spec=checkpoint.spec,
                             source=loaded.source.describe(), dataset=dataset_record(data, dataset_cfg))
    record_subject(ctx, name, identity.dataset or {})
    dense_model = dense_copy(model) if settings.measure and ctx.is_main else None

    widths_before = layer_widths(model)
    steps = prune_in_steps(settings, pruner, work, size)
    widths_after = layer_widths(model)  # recovery training keeps the shapes
    # the kept channels' statistics are those of the dense network: recomputed — unless nothing was removed, where
    # that alone moved val top-1 and the report called it pruning's change (probe 82: ratio 0, −0.83 points)
    removed = settings.ratio > 0 and (not isinstance(pruner, ChannelPruner) or widths_after != widths_before)
    recalibrated = work.recalibrate_bn(model) if removed else 0
    if not removed:
        ctx.log.info("nothing was removed (prune.ratio=%g): the network is its source's, and any change in val "
                     "top-1 is the recovery training's", settings.ratio)
    acc_pruned = work.accuracy(model, "val (pruned)")
    if recalibrated:
        ctx.log.info("pruned: val acc %.2f%% before recovery, BatchNorm statistics recomputed over %s training "
                     "images", 100 * acc_pruned, f"{recalibrated:,}")
    recovery = work.train(model) if recipe.epochs > 0 else None
    pruner.finish()  # magnitude: the masks (kept on while training) become plain zeros
    blew_up = recovery_blew_up(recovery.history if recovery is not None else [], len(data.classes), acc_before,
                               settings.lr_scale, recipe.grad_clip, recipe.lr)
    if blew_up is not None and ctx.is_main:
        record_warning(ctx, blew_up)

    pruned = footprint(model, size)
    acc_after = recovery.final["val_acc"] if recovery is not None else acc_pruned
    metrics = {**(fit_metrics(recovery) if recovery is not None else {}),
               "val_acc": acc_after, "acc_before": acc_before, "acc_after_prune": acc_pruned,
               "bn_recalibration_images": recalibrated,
               "acc_after_recovery": acc_after if recovery is not None else None, "acc_drop": acc_before - acc_after,
               "params_before": dense["params"], "params_after": pruned["params"],
               "params_ratio": dense["params"] / pruned["params"], "flops_before": dense["flops"],
               "flops_after": pruned["flops"], "flops_ratio": dense["flops"] / pruned["flops"]}
    report = {**settings.describe(), "source": str(loaded.source.path), "steps_history": steps}
    if isinstance(pruner, ChannelPruner):
        report["channels"] = {path: [widths_before[path], widths_after[path]] for path in widths_before}
        report["kept_whole"] = kept_whole(ctx, settings, widths_before, widths_after, keep,
                                          coupled=pruner.coupled_to_kept)
    else:
        metrics.update(sparsity=overall_sparsity(pruner.layers),
                       nonzero_params_after=nonzero_params(model, pruner.layers))
        report.update(sparsity=weight_sparsity(pruner.layers), note=SPARSITY_NOTE)
        ctx.log.warning(SPARSITY_NOTE)

    trained = TrainedModel(model=model, name=name, arch_kwargs=dict(checkpoint.arch.get("kwargs") or {}), data=data,
                           dataset_config=dataset_cfg,
                           weights=f"{settings.method}-pruned (ratio {settings.ratio:g}) from {loaded.source.path}")
    save_and_record(ctx, trained, metrics, extra={"prune": settings.describe()})
    ctx.record.update(prune=report)
    if dense_model is not None:
        ctx.log.info("timing dense and pruned ONNX models: onnxruntime CPU, batch %d, %s",
                     settings.bench_batch, counted(settings.bench_threads, "thread"))
        checkpoint_file = ctx.path(MODEL_FILE)  # the pruned file's source is this run's model.pt
        origin = Source(str(checkpoint_file), "checkpoint", checkpoint_file, RunInfo(ctx.run_dir, ctx.record.data))
        latency = measure_pruning(dense_model, model, dense_file=ctx.path(DENSE_ONNX), pruned_file=ctx.path(ONNX_FILE),
                                  dense_identity=identity, pruned_identity=replace(identity, source=origin.describe()),
                                  settings=settings.timing(), flops=(dense["flops"], pruned["flops"]),
                                  metadata={"prune": f"{settings.method} {settings.ratio:g}"})
        ctx.record.add_artifact("onnx", ctx.path(ONNX_FILE))
        metrics.update(latency.metrics())
        ctx.record.update(metrics=metrics, latency=latency.describe(size))
    if ctx.is_main:
        out.print(summary_table(settings, metrics, latency.round_speedups() if dense_model is not None else (),
                                removed=removed))
        if settings.method == "magnitude":
            out.print(f"sparsity {metrics['sparsity']:.1%} of the pruned layers' weights; dense runtimes gain no "
                      "speed from sparsity (see prune.note in run.json)")
    return metrics


def prune_in_steps(settings: PruneSettings, pruner: ChannelPruner | MagnitudePruner, work: RecoveryTraining,
                   size: int) -> list[dict[str, Any]]:
    """settings.steps pruning steps with settings.finetune_epochs of training between two; what each step left."""
    steps = []
    for step in range(1, settings.steps + 1):
        if isinstance(pruner, ChannelPruner) and pruner.settings.needs_gradients:
            taylor_gradients(work, pruner.model, settings.taylor_batches)
        pruner.step()
        # Pruned tensors are new tensors: back to the runtime's device and memory format.
        work.runtime.prepare_model(pruner.model)
        entry: dict[str, Any] = {"step": step, "ratio": pruner.current_ratio, **footprint(pruner.model, size)}
        work.ctx.log.info("step %d/%d: ratio %.3g, %s params", step, settings.steps, pruner.current_ratio,
                          f"{entry['params']:,}")
        if step < settings.steps and settings.finetune_epochs:
            between = work.train(pruner.model, settings.finetune_epochs)
            entry.update(val_acc=between.final.get("val_acc"), finetune=between.history)
        steps.append(entry)
    return steps


def kept_whole(ctx: RunContext, settings: PruneSettings, before: dict[str, int], after: dict[str, int],
               keep: Sequence[str], coupled: Mapping[str, str] | None = None) -> list[str]:
    """The layers a channel pruning at ratio > 0 left at their width, other than those kept by name (`keep`: the
    head, prune.ignore), said in the log with why: probe 176, LeNet-5's first convolution (6 channels, 53 % of its
    FLOPs at 32 px) stayed whole under prune.round_to=8 and ratio 0.5 gave 1.33x fewer FLOPs, with no word of it.
    `coupled`: each layer whose channels are tied to a kept layer's, with that layer (ChannelPruner.coupled_to_kept):
    the reason that comes first, whatever the ranking or rounding would have done (probe 204)."""
    if settings.ratio <= 0:
        return []
    coupled = coupled or {}
    whole = [path for path, width in before.items() if after.get(path) == width
             and not any(path == k or path.startswith(k + ".") for k in keep)]
    for kept in dict.fromkeys(coupled[p] for p in whole if p in coupled):
        tied = [p for p in whole if coupled.get(p) == kept]
        ctx.log.info("kept whole: %s (their channels are tied to those of %s, kept whole, by a residual sum or a "
                     "depthwise convolution)", ", ".join(f"{p} ({before[p]} channels)" for p in tied), kept)
    free = [p for p in whole if p not in coupled]
    small = [p for p in free if settings.round_to and before[p] <= settings.round_to]
    if small:
        ctx.log.info("kept whole: %s — no wider than prune.round_to=%d, the fewest channels a pruned layer keeps "
                     "(prune.round_to=null prunes to exact widths)", ", ".join(f"{p} ({before[p]} channels)"
                                                                      for p in small), settings.round_to)
    others = [p for p in free if p not in small]
    if others:
        ctx.log.info("kept whole: %s (%s)", ", ".join(f"{p} ({before[p]} channels)" for p in others),
                     "prune.global=true ranked all of their channels above the cut" if settings.global_ranking
                     else "rounded back to their width by prune.round_to" if settings.round_to
                     else "the ratio removes less than one of their channels")
    return whole


def taylor_gradients(work: RecoveryTraining, model: nn.Module, batches: int) -> None:
    """Taylor importance: loss gradients of a few training batches, the same on every rank."""
    accumulate_gradients(model, work.loaders.train,
                         lambda m, batch: work.objective(m, [work.runtime.to_device(t) for t in batch])[0],
                         limit=batches)


def footprint(model: nn.Module, size: int) -> dict[str, int]:
    return {"params": count_params(model), "flops": count_flops(model, size)}
