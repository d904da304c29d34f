"""What compression and deployment commands start from: the model of a `source=` run and the data it
was trained on (so export verifies, prune recovers and quantize calibrates on the right images).

Every run records the resolved dataset config it used (run.json → dataset.config); a command that
works on a source run reuses it unless the user picks a dataset on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets
from cnnlab.deploy.onnx_check import check_onnx_file
from cnnlab.engine.checkpoint import ModelCheckpoint, load_model
from cnnlab.errors import CnnlabError
from cnnlab.runs import RunInfo, Source, resolve_source

_HOW = "source=latest:finetune, source=RUN_FOLDER or source=path/to/model.pt"


def require_source(cfg: DictConfig, ctx: RunContext, *, want: tuple[str, ...] = ("checkpoint",)) -> Source:
    """The file `source=` names (kinds in `want`, in order of preference), recorded in run.json. An ONNX
    source is checked against its own metadata (deploy.onnx_check) before any command uses it."""
    spec = cfg.get("source")
    if spec in (None, "", "null"):
        raise CnnlabError(f"`cnnlab {ctx.command}` needs a model to work on", fix=f"pass {_HOW}")
    source = resolve_source(str(spec), ctx.outputs, want=want)
    ctx.record.update(source=source.describe())
    if source.kind == "onnx":  # a file from disk: its graph must be the model its metadata describes
        check_onnx_file(source.path)
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


def _dataset_keys(ctx: RunContext) -> list[str]:
    """The dataset keys of this command line: `dataset` (a group choice) and `dataset.x.y` (one setting)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in ctx.overrides]
    return [k for k in keys if k.split(".")[0] == "dataset"]


def user_chose_dataset(ctx: RunContext) -> bool:
    return bool(_dataset_keys(ctx))


def source_dataset_config(cfg: DictConfig, ctx: RunContext, source: Source) -> DictConfig:
    """The source run's dataset, with this command line's `dataset.KEY=` settings on top (e.g. `++dataset.root=DIR`
    for data that moved); `dataset=NAME` picks another dataset instead."""
    recorded = dataset_config_of(source.run)
    keys = _dataset_keys(ctx)
    if recorded is None or "dataset" in keys:
        if recorded is None and not keys:
            ctx.log.warning("the source records no dataset; using dataset=%s (pass dataset=... to choose)",
                            cfg.dataset.name)
        return cfg.dataset
    config = OmegaConf.create(recorded)
    for key in keys:  # only the settings typed here: the composed default dataset is not the source's
        OmegaConf.update(config, key.split(".", 1)[1], OmegaConf.select(cfg, key), force_add=True)
    return config


def source_data(cfg: DictConfig, ctx: RunContext, source: Source, checkpoint_spec: Any, *,
                train_augment: bool = False) -> tuple[DataBundle, DictConfig]:
    """The source's data at the checkpoint's input spec, and the dataset config that built it."""
    dataset_cfg = source_dataset_config(cfg, ctx, source)
    try:
        data = build_datasets(dataset_cfg, checkpoint_spec, train_augment=train_augment)
    except CnnlabError as err:
        root = dataset_cfg.get("root")
        if root in (None, "") or Path(str(root)).expanduser().exists() or user_chose_dataset(ctx):
            raise
        # The recorded data is gone (moved, or another machine): the default dataset knows no `root`, hence `++`.
        raise CnnlabError(f"{err.message} (the dataset of source run {source.run.path if source.run else source.path})",
                          fix="point to where the data is now with ++dataset.root=DIR (the source's other dataset "
                              "settings are kept)") from err
    return data, dataset_cfg


def check_same_classes(data: DataBundle, classes: list[str], what: str = "the model") -> None:
    if list(data.classes) != list(classes):
        raise CnnlabError(f"{what} knows {len(classes)} classes but dataset {data.name} has {len(data.classes)} "
                          f"(or other names)", fix="use the dataset the model was trained on (drop dataset=...)")
