"""`cnnlab prune`: prune a trained model, recover its accuracy, and measure what pruning bought.

1. The source run's model (source=...) and the data it was trained on; its accuracy before pruning.
2. With prune.measure=true a copy of the dense model is kept for the timing at the end.
3. Pruning in prune.steps steps up to prune.ratio — channel (Torch-Pruning: whole channels leave every
   coupled layer) or magnitude (the smallest weights are masked) — with prune.finetune_epochs of
   training between steps; the accuracy right after pruning.
4. A recovery fine-tune (trainer.epochs, 0 = none) through the one training engine at optim.lr x
   prune.lr_scale; magnitude masks stay on during training and are then made permanent.
5. model.pt (the pruned structure rebuilds from it), then model.onnx and a temporary dense.onnx, both timed
   on this machine in this run with the same threads: speed-up = dense p50 / pruned p50, next to the FLOPs
   ratio.
The source run is only read, never written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.compress.pruning import (IMPORTANCES, METHODS, ChannelPruner, ChannelSettings, MagnitudePruner,
                                     MagnitudeSettings, accumulate_gradients, check_ratio, layer_widths,
                                     overall_sparsity, weight_sparsity, zero_weights)
from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.bench import LatencyStats, time_onnx
from cnnlab.deploy.bench_report import ratio_text
from cnnlab.deploy.export import ModelIdentity, export_onnx
from cnnlab.engine.checkpoint import ModelCheckpoint
from cnnlab.engine.objectives import ClassificationObjective
from cnnlab.engine.runtime import Runtime, all_reduce_sum
from cnnlab.engine.trainer import FitResult, Trainer, TrainerSettings
from cnnlab.environment import cpu_info
from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, count_flops, count_params
from cnnlab.pipelines.sources import check_same_classes, load_source_model, source_data
from cnnlab.pipelines.training import (TrainedModel, classification_objective, dataset_record, fit_metrics,
                                       loader_workers, make_loaders, save_and_record, setup_runtime, train)
from cnnlab.runs import MODEL_FILE, ONNX_FILE, RunInfo, Source

DENSE_ONNX = "dense.onnx"
BENCH_ROUNDS = 3
SPARSITY_NOTE = ("magnitude pruning zeroes weights but keeps every tensor's shape: dense runtimes (PyTorch, "
                 "onnxruntime) still run every multiply-add, so the model is not faster and model.onnx is not "
                 "smaller; only sparse kernels or a compressed file gain from it. Use prune.method=channel for speed.")


@dataclass(frozen=True)
class Plan:
    method: str
    ratio: float
    importance: str
    global_ranking: bool
    ignore: tuple[str, ...]
    round_to: int | None
    steps: int
    finetune_epochs: int
    lr_scale: float
    taylor_batches: int
    measure: bool
    bench_threads: int | None
    bench_batch: int
    bench_seconds: float

    @classmethod
    def from_config(cls, section: DictConfig) -> "Plan":
        method = str(section.method)
        if method not in METHODS:
            raise CnnlabError(f"prune.method={method} is not a pruning method", fix=f"use one of: {', '.join(METHODS)}")
        importance = str(section.importance)
        if importance not in IMPORTANCES:
            raise CnnlabError(f"prune.importance={importance} is not an importance",
                              fix=f"use one of: {', '.join(IMPORTANCES)}")
        ignore = section.get("ignore") or []
        if isinstance(ignore, str):
            ignore = [ignore]
        round_to = section.get("round_to")
        threads = section.get("bench_threads")
        plan = cls(method=method, ratio=check_ratio(section.ratio), importance=importance,
                   global_ranking=bool(section["global"]), ignore=tuple(str(p) for p in ignore),
                   round_to=int(round_to) if round_to not in (None, 0) else None, steps=int(section.steps),
                   finetune_epochs=int(section.finetune_epochs), lr_scale=float(section.lr_scale),
                   taylor_batches=int(section.taylor_batches), measure=bool(section.measure),
                   bench_threads=int(threads) if threads not in (None, 0) else None,
                   bench_batch=int(section.bench_batch), bench_seconds=float(section.bench_seconds))
        for key, value, least in (("steps", plan.steps, 1), ("finetune_epochs", plan.finetune_epochs, 0),
                                  ("taylor_batches", plan.taylor_batches, 1), ("bench_batch", plan.bench_batch, 1)):
            if value < least:
                raise CnnlabError(f"prune.{key}={value} must be at least {least}")
        if plan.lr_scale <= 0:
            raise CnnlabError(f"prune.lr_scale={plan.lr_scale} must be positive")
        if plan.bench_seconds < 0:
            raise CnnlabError(f"prune.bench_seconds={plan.bench_seconds} must be 0 or more")
        return plan

    def settings(self) -> ChannelSettings | MagnitudeSettings:
        if self.method == "channel":
            return ChannelSettings(self.ratio, importance=self.importance, global_ranking=self.global_ranking,
                                   round_to=self.round_to, steps=self.steps)
        return MagnitudeSettings(self.ratio, global_ranking=self.global_ranking, steps=self.steps)

    def describe(self) -> dict[str, Any]:
        common = {"method": self.method, "ratio": self.ratio, "global": self.global_ranking,
                  "ignore": list(self.ignore), "steps": self.steps, "finetune_epochs": self.finetune_epochs,
                  "lr_scale": self.lr_scale}
        if self.method == "channel":
            common.update(importance=self.importance, round_to=self.round_to)
        return common


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    if ctx.explicitly_set("model", "model.name", "model.weights"):
        raise CnnlabError("prune works on the model of source=, not model=", fix="drop model=..., pass source=RUN")
    plan = Plan.from_config(cfg.prune)
    runtime = setup_runtime(cfg)
    loaded = load_source_model(cfg, ctx)
    checkpoint = loaded.checkpoint
    data, dataset_cfg = source_data(cfg, ctx, loaded.source, checkpoint.spec, train_augment=True)
    check_same_classes(data, checkpoint.classes)
    name, size = checkpoint.name, checkpoint.spec.size
    ctx.log.info("prune %s (%s) by %s, ratio %g in %d step(s), on %s at %d px", name, loaded.source.path,
                 plan.method, plan.ratio, plan.steps, data.name, size)

    model = runtime.prepare_model(loaded.model)
    train_loader, val_loader = make_loaders(cfg, runtime, data.train, data.val, workers=loader_workers(cfg, data))
    work = Workbench(cfg, ctx, runtime, train_loader, val_loader, classification_objective(cfg, len(data.classes)))
    dense = footprint(model, size)
    acc_before = work.evaluate(model, "val (dense)")
    ctx.log.info("dense: %s params, %.3g GFLOPs, val acc %.2f%%", f"{dense['params']:,}", dense["flops"] / 1e9,
                 100 * acc_before)
    identity = ModelIdentity(arch=name, classes=tuple(checkpoint.classes), spec=checkpoint.spec,
                             source=loaded.source.describe(), dataset=dataset_record(data, dataset_cfg))
    bench = LatencyComparison(ctx, plan, identity, model) if plan.measure and ctx.is_main else None

    keep = (MODELS[name].head, *plan.ignore)  # the classifier never loses outputs: they are the classes
    pruner = make_pruner(plan, model, keep, checkpoint)
    widths_before = layer_widths(model)
    steps = prune_in_steps(plan, pruner, work, size)
    acc_pruned = work.evaluate(model, "val (pruned)")
    recovery = work.train(model, int(cfg.trainer.epochs), plan.lr_scale) if int(cfg.trainer.epochs) > 0 else None
    pruner.finish()  # magnitude: the masks (kept on while training) become plain zeros

    pruned = footprint(model, size)
    acc_after = recovery.final["val_acc"] if recovery is not None else acc_pruned
    metrics = {**(fit_metrics(recovery) if recovery is not None else {}),
               "val_acc": acc_after, "acc_before": acc_before, "acc_after_prune": acc_pruned,
               "acc_after_recovery": acc_after if recovery is not None else None, "acc_drop": acc_before - acc_after,
               "params_before": dense["params"], "params_after": pruned["params"],
               "params_ratio": dense["params"] / pruned["params"], "flops_before": dense["flops"],
               "flops_after": pruned["flops"], "flops_ratio": dense["flops"] / pruned["flops"]}
    report = {**plan.describe(), "source": str(loaded.source.path), "steps_history": steps}
    if isinstance(pruner, ChannelPruner):
        after = layer_widths(model)
        report["channels"] = {path: [widths_before[path], after[path]] for path in widths_before}
    else:
        metrics.update(sparsity=overall_sparsity(pruner.layers),
                       nonzero_params_after=pruned["params"] - zero_weights(pruner.layers))
        report.update(sparsity=weight_sparsity(pruner.layers), note=SPARSITY_NOTE)
        ctx.log.warning(SPARSITY_NOTE)

    trained = TrainedModel(model=model, name=name, arch_kwargs=dict(checkpoint.arch.get("kwargs") or {}), data=data,
                           dataset_config=dataset_cfg,
                           weights=f"{plan.method}-pruned (ratio {plan.ratio:g}) from {loaded.source.path}")
    save_and_record(ctx, trained, metrics, extra={"prune": plan.describe()})
    ctx.record.update(prune=report)
    if bench is not None:
        metrics.update(bench.finish(model, flops_before=dense["flops"], flops_after=pruned["flops"]))
        ctx.record.update(metrics=metrics)
    if ctx.is_main:
        print_summary(plan, metrics)
    return metrics


@dataclass
class Workbench:
    """What evaluating and training the model being pruned needs: the one engine, this run's data."""

    cfg: DictConfig
    ctx: RunContext
    runtime: Runtime
    train_loader: DataLoader
    val_loader: DataLoader
    objective: ClassificationObjective

    def evaluate(self, model: nn.Module, desc: str) -> float:
        return float(Trainer(self.runtime, TrainerSettings()).evaluate(model, self.val_loader, desc=desc)["acc"])

    def train(self, model: nn.Module, epochs: int, lr_scale: float) -> FitResult:
        """`epochs` of training with cfg's recipe (optim, sched, trainer) at optim.lr x lr_scale. No last.pt:
        a resumed run could not rebuild the pruned shapes mid-way."""
        cfg = OmegaConf.merge(self.cfg, {"trainer": {"epochs": epochs}})
        assert isinstance(cfg, DictConfig)
        return train(cfg, self.ctx, self.runtime, model, self.train_loader, self.val_loader, objective=self.objective,
                     backbone_lr_scale=lr_scale, checkpoint=False)

    def accumulate_gradients(self, model: nn.Module, batches: int) -> None:
        """Taylor importance: loss gradients of a few training batches, the same on every rank."""
        accumulate_gradients(model, self.train_loader,
                             lambda m, batch: self.objective(m, [self.runtime.to_device(t) for t in batch])[0],
                             limit=batches)
        if self.runtime.distributed:  # every rank must remove the same channels
            for param in model.parameters():
                if param.grad is not None:
                    param.grad.copy_(all_reduce_sum(param.grad))


def prune_in_steps(plan: Plan, pruner: ChannelPruner | MagnitudePruner, work: Workbench,
                   size: int) -> list[dict[str, Any]]:
    """plan.steps pruning steps with plan.finetune_epochs of training between two; what each step left."""
    steps = []
    for step in range(1, plan.steps + 1):
        if isinstance(pruner, ChannelPruner) and pruner.settings.needs_gradients:
            work.accumulate_gradients(pruner.model, plan.taylor_batches)
        pruner.step()
        # Pruned tensors are new tensors: back to the runtime's device and memory format.
        work.runtime.prepare_model(pruner.model)
        entry: dict[str, Any] = {"step": step, "ratio": pruner.current_ratio, **footprint(pruner.model, size)}
        work.ctx.log.info("step %d/%d: ratio %.3g, %s params", step, plan.steps, pruner.current_ratio,
                             f"{entry['params']:,}")
        if step < plan.steps and plan.finetune_epochs:
            between = work.train(pruner.model, plan.finetune_epochs, plan.lr_scale)
            entry.update(val_acc=between.final.get("val_acc"), finetune=between.history)
        steps.append(entry)
    return steps


def make_pruner(plan: Plan, model: nn.Module, keep: tuple[str, ...],
                checkpoint: ModelCheckpoint) -> ChannelPruner | MagnitudePruner:
    settings = plan.settings()
    if isinstance(settings, ChannelSettings):
        reference = next(model.parameters())
        example = torch.zeros(1, checkpoint.spec.channels, checkpoint.spec.size, checkpoint.spec.size,
                              device=reference.device)
        return ChannelPruner(model, example, settings, keep=keep)
    return MagnitudePruner(model, settings, keep=keep)


def footprint(model: nn.Module, size: int) -> dict[str, int]:
    return {"params": count_params(model), "flops": count_flops(model, size)}


# ------------------------------------------------------------------------------------------------ measuring
class LatencyComparison:
    """Dense and pruned model exported to ONNX and timed on this machine, in this run, with the same
    threads and batch: the speed-up that counts, next to the FLOPs ratio that is often quoted instead."""

    def __init__(self, ctx: RunContext, plan: Plan, dense_identity: ModelIdentity, dense: nn.Module) -> None:
        self.ctx = ctx
        self.plan = plan
        self.dense_identity = dense_identity  # the source model's; the pruned file's source is this run's model.pt
        self.threads = plan.bench_threads or int(cpu_info()["usable_cores"] or 1)
        # Pruning works in place: keep the dense network (on the CPU) until it is exported for the timing.
        self.dense = copy.deepcopy(dense).cpu()

    def _export(self, model: nn.Module, path: Path, identity: ModelIdentity) -> Path:
        was_training = model.training
        try:
            return export_onnx(model.eval(), path, identity=identity,
                               metadata={"prune": f"{self.plan.method} {self.plan.ratio:g}"})
        finally:
            model.train(was_training)

    def finish(self, model: nn.Module, *, flops_before: int, flops_after: int) -> dict[str, Any]:
        """Export the pruned model (model.onnx, kept) and the dense one (dense.onnx, deleted: the source can
        always be exported again), time both; the metrics."""
        checkpoint = self.ctx.path(MODEL_FILE)
        origin = Source(str(checkpoint), "checkpoint", checkpoint, RunInfo(self.ctx.run_dir, self.ctx.record.data))
        pruned_path = self._export(model, self.ctx.path(ONNX_FILE), replace(self.dense_identity,
                                                                              source=origin.describe()))
        self.ctx.record.add_artifact("onnx", pruned_path)
        dense_path = self._export(self.dense, self.ctx.path(DENSE_ONNX), self.dense_identity)
        try:
            return self._time(dense_path, pruned_path, flops_before, flops_after)
        finally:
            dense_path.unlink()

    def _time(self, dense_path: Path, pruned_path: Path, flops_before: int, flops_after: int) -> dict[str, Any]:
        batch, size = self.plan.bench_batch, self.dense_identity.spec.size
        self.ctx.log.info("timing dense and pruned ONNX models: onnxruntime CPU, batch %d, %d threads", batch,
                          self.threads)
        # Alternating rounds (dense, pruned, dense, ...): a machine that speeds up or slows down during the
        # run (turbo, thermal limits, a neighbour's job) then affects both models alike.
        timing = {"threads": self.threads, "min_seconds": self.plan.bench_seconds / BENCH_ROUNDS}
        rounds: dict[str, list[LatencyStats]] = {"dense": [], "pruned": []}
        for _ in range(BENCH_ROUNDS):
            rounds["dense"].append(time_onnx(dense_path, batch, flops=flops_before, **timing))
            rounds["pruned"].append(time_onnx(pruned_path, batch, flops=flops_after, **timing))
        dense, pruned = (median_round(rounds[key]) for key in ("dense", "pruned"))
        metrics = {"onnx_bytes_before": dense_path.stat().st_size, "onnx_bytes_after": pruned_path.stat().st_size,
                   "latency_p50_ms_before": dense.p50_ms, "latency_p50_ms_after": pruned.p50_ms,
                   "speedup": dense.p50_ms / pruned.p50_ms}
        self.ctx.record.update(latency={
            "runtime": "onnxruntime", "device": "cpu", "batch": batch, "threads": self.threads, "image_size": size,
            "rounds": BENCH_ROUNDS, "dense": dense.to_dict(), "pruned": pruned.to_dict(),
            "dense_p50_ms_per_round": [r.p50_ms for r in rounds["dense"]],
            "pruned_p50_ms_per_round": [r.p50_ms for r in rounds["pruned"]]})
        return metrics


def median_round(rounds: list[LatencyStats]) -> LatencyStats:
    """The round with the median p50 (the middle one of an odd count)."""
    return sorted(rounds, key=lambda stats: stats.p50_ms)[len(rounds) // 2]


def print_summary(plan: Plan, metrics: dict[str, Any]) -> None:
    table = Table(title=f"prune.method={plan.method} prune.ratio={plan.ratio:g}", title_justify="left")
    for column in ("", "dense", "pruned", "ratio"):
        table.add_column(column, justify="right")
    rows: list[tuple[str, str, str, Callable[[Any, Any], str]]] = [
        ("parameters", "params_before", "params_after", lambda a, b: ratio_text(a / b, "fewer", "more")),
        ("GFLOPs", "flops_before", "flops_after", lambda a, b: ratio_text(a / b, "fewer", "more")),
        ("ONNX MB", "onnx_bytes_before", "onnx_bytes_after", lambda a, b: ratio_text(a / b, "smaller", "larger")),
        ("p50 latency ms", "latency_p50_ms_before", "latency_p50_ms_after", lambda a, b: ratio_text(a / b)),
    ]
    scale = {"GFLOPs": 1e-9, "ONNX MB": 1e-6}
    for label, before, after, ratio in rows:
        if before in metrics:
            a, b = metrics[before], metrics[after]
            fmt = (lambda v: f"{v:,}") if label == "parameters" else (lambda v: f"{v * scale.get(label, 1):.3g}")
            table.add_row(label, fmt(a), fmt(b), ratio(a, b))
    recovered = metrics["acc_after_recovery"]
    table.add_row("val accuracy", f"{metrics['acc_before']:.2%}",
                  f"{metrics['acc_after_prune']:.2%} → {recovered:.2%}" if recovered is not None
                  else f"{metrics['acc_after_prune']:.2%}", f"{-100 * metrics['acc_drop']:+.2f} pts")
    out.print(table)
    if plan.method == "magnitude":
        out.print(f"sparsity {metrics['sparsity']:.1%} of the pruned layers' weights; dense runtimes gain no speed "
                  "from sparsity (see prune.note in run.json)")
