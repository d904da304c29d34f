"""Writing a trained model and its run record: model.pt, run.json's model and dataset sections, the
metrics of a fit, and the warning when a model learned nothing (accuracy at chance)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.data.splits import labels_of
from cnnlab.engine.checkpoint import save_model
from cnnlab.engine.trainer import FitResult
from cnnlab.console import RUN_WARNING
from cnnlab.records import ModelSection
from cnnlab.runs import (MODEL_FILE)
from cnnlab.wording import counted



def fit_metrics(result: FitResult) -> dict[str, Any]:
    final, best = result.final, result.best
    metrics = {key: final[key] for key in ("val_acc", "val_top5", "val_loss", "train_loss", "train_acc") if key in final}
    metrics.update(epochs=len(result.history), best_val_acc=best.get("val_acc"), best_epoch=best.get("epoch"),
                   train_images_per_s=training_rate(result.history), history=result.history)
    return metrics


def training_rate(history: list[dict[str, Any]]) -> float:
    """Images per second over the whole training: all epochs' images over all their training seconds (each epoch's
    images = its images_per_s × train_seconds). Not the mean of the epochs' rates, which weighs a short fast epoch as
    much as a long slow one (probe 74: 1,547.8 recorded where 256 images took 0.247 s, 1,035.3 images/s). Epochs
    recorded without train_seconds count by their rate alone."""
    timed = [e for e in history if e.get("train_seconds")]
    if timed and len(timed) == len(history):
        return sum(e["images_per_s"] * e["train_seconds"] for e in timed) / sum(e["train_seconds"] for e in timed)
    return sum(e["images_per_s"] for e in history) / max(1, len(history))


@dataclass
class TrainedModel:
    """What a training pipeline hands to `save_and_record`."""

    model: nn.Module
    name: str
    arch_kwargs: dict[str, Any]
    data: DataBundle
    dataset_config: Mapping[str, Any]   # the resolved dataset config (derived runs reuse it)
    weights: str                 # where the starting weights came from, in words


def save_and_record(ctx: RunContext, trained: TrainedModel, metrics: dict[str, Any],
                    extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write model.pt and fill the run record's model/dataset/metrics/artifacts sections."""
    if not ctx.is_main:
        return metrics
    data, spec = trained.data, trained.data.spec
    model = trained.model.cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    path = save_model(ctx.path(MODEL_FILE), model,
                      arch={"name": trained.name, "num_classes": len(data.classes), "image_size": spec.size,
                            "kwargs": trained.arch_kwargs},
                      classes=data.classes, spec=spec,
                      # the model's identity travels with the file: where it came from, what data it learned
                      extra={"metrics": {k: v for k, v in metrics.items() if k != "history"},
                             "source": ctx.record.data.get("source"),
                             "dataset": dataset_record(trained.data, trained.dataset_config), **(extra or {})})
    ctx.record.add_artifact("model", path)
    check_not_at_chance(ctx, metrics, len(data.classes), val_labels=labels_of(data.val) if len(data.val) else (),
                        train_images=len(data.train), trains_batchnorm=_trains_batchnorm(model),
                        class_names=data.classes)
    # a searched network's arch string names it (models/searched.py), and a zoo network's small-image stem
    # (model.stem=cifar): the report shows them beside the stock networks
    shape = {key: str(trained.arch_kwargs[key]) for key in ("arch", "stem") if trained.arch_kwargs.get(key)}
    section = model_section(trained.name, spec.size, len(data.classes), model=model, file=path,
                            weights=trained.weights, **shape)
    ctx.record.update(model=section.to_dict(), dataset=dataset_record(trained.data, trained.dataset_config),
                      metrics=metrics)
    return metrics


def record_subject(ctx: RunContext, name: str, dataset: Mapping[str, Any]) -> None:
    """run.json's network (`name`) and data (`dataset`: dataset_record's section) of a run made from a source's model
    (prune, quantize), recorded before its work: one interrupted or killed mid-work said `model: null, dataset:
    null`, blank cells in `cnnlab list runs` (probe 228), where a training's record names them from its first epoch.
    The run's end writes the whole model section."""
    if ctx.is_main:
        ctx.record.update(model={"name": name}, dataset=dict(dataset))


def model_section(name: str | None, image_size: int, num_classes: int, *, model: nn.Module | None = None,
                  file: Path | None = None, **extra: Any) -> ModelSection:
    """run.json's model section — the one place it is built: parameters and FLOPs (at `image_size` px) of a
    PyTorch `model` when there is one, the size in bytes of its `file`, and `extra` fields as given."""
    from cnnlab.models import count_flops, count_params

    return ModelSection(name=name, image_size=image_size, num_classes=num_classes,
                        params=None if model is None else count_params(model),
                        flops=None if model is None else count_flops(model, image_size),
                        file_bytes=None if file is None else file.stat().st_size, extra=extra)


def record_warning(ctx: RunContext, message: str) -> None:
    """A warning for the user: one log line, and an entry in run.json's `warnings` list — once, where a run meets
    the same thing twice (distill's KD training and its baseline share one schedule)."""
    if _kept(ctx, message):
        ctx.log.warning(message)


def _kept(ctx: RunContext, message: str) -> bool:
    """Adds `message` to run.json's `warnings`; False where it is there already."""
    warnings = ctx.record.data.get("warnings") or []
    if message in warnings:
        return False
    ctx.record.update(warnings=[*warnings, message])
    return True


class _RunWarnings(logging.Handler):
    """Keeps the text of every log record marked RUN_WARNING (`extra=`) in run.json's `warnings` of `ctx`."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(logging.WARNING)
        self.ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        if all(getattr(record, key, None) == value for key, value in RUN_WARNING.items()):
            _kept(self.ctx, record.getMessage())  # the line itself went to the log's own handlers


@contextmanager
def recorded_warnings(ctx: RunContext) -> Iterator[None]:
    """While open, a warning logged (on cnnlab's loggers) with `extra=RUN_WARNING` is an entry of run.json's `warnings`
    too, as record_warning makes one: how the data builders, which have no run context, record the warnings that
    change what a run's figures mean (data/folder.say_colour_dropped). cnnlab.app opens it around every command."""
    handler, logger = _RunWarnings(ctx), logging.getLogger("cnnlab")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def at_chance(acc: float, num_classes: int) -> bool:
    """An accuracy no better than guessing: below 1.5 x 1/num_classes."""
    return acc < 1.5 / max(num_classes, 1)


def check_not_at_chance(ctx: RunContext, metrics: Mapping[str, Any], num_classes: int, *,
                        val_labels: Sequence[int] = (), train_images: int | None = None,
                        trains_batchnorm: bool = True, class_names: Sequence[str] = ()) -> None:
    """Warn when training learned (train accuracy > 3 x chance and > 50 %) but validation scores chance — the cause
    named from what trained: few training images (`train_images`: memorised), BatchNorm statistics that lag the
    weights (`trains_batchnorm`), else a diverged run (probe 221: a linear probe of 4 images was told to set
    trainer.precise_bn=true, which changed nothing) — or when validation scores no better than answering its
    largest class every time (`val_labels`: probe 221, 43.48 % on a val split 43.5 % circles, 37.5 % being the
    "chance" it was measured against)."""
    val, train_acc = metrics.get("val_acc"), metrics.get("train_acc")
    # a run that lost the trained classifier it started from was told so, with the fix that keeps it (start_score.py)
    if val is None or num_classes < 2 or metrics.get("ended_below_start"):
        return
    # learned: well above chance in training — 3× chance, at most 90 % (probe 223: 3/2 = 150 % for 2 classes, so a
    # model at 100 % train and 45 % val on 2 classes was never warned of); at chance on val: 1.5× chance, at most
    # chance + 10 points (1.5/2 = 75 % is no chance for 2 classes)
    learned = train_acc is not None and train_acc > max(0.5, min(0.9, 3.0 / num_classes))
    if learned and val < min(1.5 / num_classes, 1.0 / num_classes + 0.1):
        few = train_images is not None and train_images < FEW_IMAGES_A_CLASS * num_classes
        # precise BN recomputed the statistics for the saved weights: they cannot lag (probe 223: told to set it on)
        precise = any(isinstance(entry, Mapping) and entry.get("bn_seconds") for entry in metrics.get("history") or [])
        memorised = ("give it more labelled images (a larger dataset.label_fraction, or more pictures), or stronger "
                     "augmentation")
        images = "training images" if train_images is None else counted(train_images, "training image")
        cause = (f"it trained on {counted(train_images or 0, 'image')} for {num_classes} classes, which it "
                 f"memorised; so few say little of the pictures it has not seen — {memorised}" if few else
                 "BatchNorm running statistics that lag the weights (short run, small BN momentum) — rerun with "
                 "trainer.precise_bn=true, and/or a lower optim.lr" if trains_batchnorm and not precise else
                 f"it learned its {images} by heart and nothing that carries to new ones (or the run diverged) — "
                 f"{memorised}, or a lower optim.lr")
        record_warning(ctx, f"validation accuracy {val:.1%} is at chance (1/{num_classes} = {1 / num_classes:.1%}) "
                            f"while training accuracy is {train_acc:.1%}: the saved model does not work. Likely "
                            f"cause: {cause}")
        return
    if not val_labels:
        return
    label, count = Counter(val_labels).most_common(1)[0]
    share = count / len(val_labels)
    # the largest class's share, give or take one picture: an imbalanced split's "chance" is that, not 1/classes
    if share > 1.0 / num_classes and val <= share + 0.5 / len(val_labels):
        name = class_names[label] if 0 <= label < len(class_names) else f"class {label}"
        record_warning(ctx, f"validation accuracy {val:.1%} is no better than answering the largest class every "
                            f"time ({name}: {count} of {len(val_labels)} val images, {share:.1%}): the model has "
                            "learned little beyond the classes' sizes — train longer, or on more labelled images")


FEW_IMAGES_A_CLASS = 10  # fewer training images a class than this: a model at chance on val has memorised them


def dataset_record(data: DataBundle, dataset_config: Mapping[str, Any]) -> dict[str, Any]:
    """run.json's dataset section; `config` lets derived runs (export, prune, ...) rebuild the same data, from any
    working folder: its `root` is stored absolute (a relative `dataset.root=./photos` means where this run ran)."""
    config = OmegaConf.to_container(dataset_config, resolve=True) if isinstance(dataset_config, DictConfig) \
        else dict(dataset_config)
    assert isinstance(config, dict)
    if config.get("root") not in (None, ""):
        config["root"] = str(Path(str(config["root"])).expanduser().absolute())
    spec = data.spec
    if config.get("image_size") is not None:  # a model's recorded size overrides the config's (synthetic: drawn at it)
        config["image_size"] = spec.size
    # … and so does the normalisation the pictures were fed with (a weights file's, ImageNet's for a plain state dict):
    # probe 218 — the config said the dataset's 0.25/0.35 where ImageNet's was used, and the report took two runs
    # normalised otherwise for seeds of one experiment
    for key, used in (("mean", list(spec.mean[:spec.channels])), ("std", list(spec.std[:spec.channels]))):
        if not _same_values(config.get(key), used):
            config[key] = used
    return {"name": data.name, "num_classes": len(data.classes), "train_size": len(data.train),
            "val_size": len(data.val), "image_size": spec.size,
            # a 1-channel spec keeps its one value three times (InputSpec): the channels the model takes (probe 191)
            "mean": list(spec.mean[:spec.channels]), "std": list(spec.std[:spec.channels]),
            "config": config, "decode": None if data.decode is None else data.decode.as_record(),
            "label_fraction": data.label_fraction, "test_size": None if data.test is None else len(data.test),
            "content": data.content, "train_content": data.train_content}


def _same_values(recorded: Any, used: list[float]) -> bool:
    """Whether a config's per-channel `recorded` values (one value standing for every channel) are `used`; True for
    a config that records none (nothing to correct)."""
    if recorded is None:
        return True
    values = list(recorded) if isinstance(recorded, (list, tuple)) else [recorded]
    if len(values) == 1:
        values = values * len(used)
    try:
        return len(values) == len(used) and all(math.isclose(float(a), float(b), abs_tol=1e-6)
                                                for a, b in zip(values, used))
    except (TypeError, ValueError):
        return False


def _trains_batchnorm(model: nn.Module) -> bool:
    """Whether `model` holds a BatchNorm layer whose parameters trained (not a frozen backbone's)."""
    return any(isinstance(module, nn.modules.batchnorm._BatchNorm) and any(p.requires_grad for p in module.parameters())
               for module in model.modules())
