"""What compression and deployment commands start from: the model of a `source=` run and the data it
was trained on (so export verifies, prune recovers and quantize calibrates on the right images).

Every run records the resolved dataset config it used (run.json → dataset.config); a command that
works on a source run reuses it unless the user picks a dataset on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets
from cnnlab.engine.checkpoint import ModelCheckpoint, load_model
from cnnlab.errors import CnnlabError
from cnnlab.runs import RunInfo, Source, resolve_source

_HOW = "source=latest:finetune, source=RUN_FOLDER or source=path/to/model.pt"


def require_source(cfg: DictConfig, ctx: RunContext, *, want: tuple[str, ...] = ("checkpoint",)) -> Source:
    spec = cfg.get("source")
    if spec in (None, "", "null"):
        raise CnnlabError(f"`cnnlab {ctx.command}` needs a model to work on", fix=f"pass {_HOW}")
    source = resolve_source(str(spec), ctx.outputs, want=want)
    ctx.record.update(source=source.describe())
    return source


@dataclass
class SourceModel:
    source: Source
    model: nn.Module
    checkpoint: ModelCheckpoint


def load_source_model(cfg: DictConfig, ctx: RunContext) -> SourceModel:
    """The PyTorch model of `source=` (a cnnlab model.pt), rebuilt exactly (pruned shapes included)."""
    source = require_source(cfg, ctx, want=("checkpoint",))
    model, checkpoint = load_model(source.path)
    return SourceModel(source=source, model=model, checkpoint=checkpoint)


def dataset_config_of(run: RunInfo | None) -> dict[str, Any] | None:
    """The dataset config a run recorded (training runs, and every run derived from one)."""
    if run is None:
        return None
    return ((run.data.get("dataset") or {}).get("config")) or None


def user_chose_dataset(ctx: RunContext) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~").split(".")[0] == "dataset" for o in ctx.overrides)


def source_dataset_config(cfg: DictConfig, ctx: RunContext, source: Source) -> DictConfig:
    """The source run's dataset, unless `dataset=`/`dataset.*=` was given on this command line."""
    recorded = dataset_config_of(source.run)
    if user_chose_dataset(ctx) or recorded is None:
        if recorded is None and not user_chose_dataset(ctx):
            ctx.log.warning("the source records no dataset; using dataset=%s (pass dataset=... to choose)",
                            cfg.dataset.name)
        return cfg.dataset
    return OmegaConf.create(recorded)


def source_data(cfg: DictConfig, ctx: RunContext, source: Source, checkpoint_spec: Any, *,
                train_augment: bool = False) -> tuple[DataBundle, DictConfig]:
    """The source's data at the checkpoint's input spec, and the dataset config that built it."""
    dataset_cfg = source_dataset_config(cfg, ctx, source)
    data = build_datasets(dataset_cfg, checkpoint_spec, train_augment=train_augment)
    return data, dataset_cfg


def check_same_classes(data: DataBundle, classes: list[str], what: str = "the model") -> None:
    if list(data.classes) != list(classes):
        raise CnnlabError(f"{what} knows {len(classes)} classes but dataset {data.name} has {len(data.classes)} "
                          f"(or other names)", fix="use the dataset the model was trained on (drop dataset=...)")
