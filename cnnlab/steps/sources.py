"""What compression and deployment commands start from: the model of a `source=` run and the data it
was trained on (so export verifies, prune recovers and quantize calibrates on the right images).

Every run records the resolved dataset config it used (run.json → dataset.config); a command that
works on a source run reuses it unless the user picks a dataset on the command line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.context import RunContext
from cnnlab.data import DataBundle, build_datasets
from cnnlab.data.class_folders import with_model_classes
from cnnlab.data.content import copies_of, folder_digest, pictures, same_pictures
from cnnlab.data.folder import carved_training_files, is_flat_folder, split_files
from cnnlab.data.layout import TEST_DIR_NAMES, TRAIN_DIR_NAMES, VAL_DIR_NAMES, split_dir
from cnnlab.engine.checkpoint import ModelCheckpoint, load_model, read_checkpoint
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import FileVersion, file_version
from cnnlab.records import FOLDER_DATASETS, GENERATED_DATASETS
from cnnlab.runs import (RESUMABLE_STATUSES, RunInfo, Source, iter_runs, load_run, missing_source_fix,
                         resolve_source)
from cnnlab.steps.freshness import data_changed
from cnnlab.steps.input_settings import refuse_ignored_input_settings
from cnnlab.steps.recording import record_warning
from cnnlab.weights import InitialWeights
from cnnlab.wording import counted, listed

log = logging.getLogger("cnnlab")

# whose label fraction a source's data takes: settle_label_fraction
Labels = Literal["own", "source's", "kept", "scored", "resumed"]


@found_before_work()
def require_source(cfg: DictConfig, ctx: RunContext, *, want: tuple[str, ...] = ("checkpoint",)) -> Source:
    """The file `source=` names (kinds in `want`, in order of preference), recorded in run.json. An ONNX
    source is checked against its own metadata (deploy.onnx_check) before any command uses it."""
    spec = cfg.get("source")
    if spec in (None, "", "null"):
        raise CnnlabError(f"`cnnlab {ctx.command}` needs a model to work on",
                          fix=missing_source_fix(ctx.outputs, want))
    runtime_key = f"{ctx.command}.runtime"  # evaluate.runtime, predict.runtime: where a command offers one
    source = resolve_source(str(spec), ctx.outputs, want=want,
                            runtime_key=runtime_key if OmegaConf.select(cfg, runtime_key) is not None else None)
    ctx.record.update(source=source.describe())
    if str(spec).strip().startswith("latest"):  # which run "latest" is depends on what ran since: say it
        ctx.log.info("source=%s is %s", spec, source.path)
        _say_newer_unfinished(ctx, str(spec).strip(), source)
    if source.run is not None and source.run.status != "completed":
        ctx.log.warning("source run %s is %s, not completed: its %s is the one it saved before it stopped",
                        source.run.path, source.run.status, source.path.name)
    if source.kind == "onnx":  # a file from disk: its graph must be the model its metadata describes
        from cnnlab.deploy.onnx_check import check_onnx_file  # onnx: ~1 s of every command's start otherwise

        check_onnx_file(source.path)
    return source


def _say_newer_unfinished(ctx: RunContext, spec: str, source: Source) -> None:
    """A log line for the newest run `latest` passed over because it has not completed (probe 91: a finetune still
    running, quietly skipped for an older one)."""
    command = spec.partition(":")[2] or None
    picked = source.run.started_at if source.run is not None else float("-inf")
    unfinished = ("running", *RESUMABLE_STATUSES)
    newer = [run for run in iter_runs(ctx.outputs) if run.started_at > picked and run.status in unfinished
             and (command is None or run.command == command) and run.path.resolve() != ctx.run_dir.resolve()]
    if newer:
        ctx.log.info("(%s passed over the newer %s, which is %s: latest takes completed runs)", spec, newer[-1].path,
                     newer[-1].status)


@dataclass
class SourceModel:
    source: Source
    model: nn.Module
    checkpoint: ModelCheckpoint


@found_before_work()
def load_source_model(cfg: DictConfig, ctx: RunContext) -> SourceModel:
    """The PyTorch model of `source=` (a cnnlab model.pt), rebuilt exactly (pruned shapes included)."""
    source = require_source(cfg, ctx, want=("checkpoint",))
    model, checkpoint = load_model(source.path)
    return SourceModel(source=source, model=model, checkpoint=checkpoint)


# The recorded settings that decide which images land in which split: checked before use (run.json is untrusted; a
# NaN seed was a traceback, a float fraction of 7 an empty split).
_SPLIT_SETTINGS: dict[str, tuple[type, ...]] = {"seed": (int,), "val_fraction": (int, float),
                                                "label_fraction": (int, float)}


def dataset_config_of(run: RunInfo | None) -> dict[str, Any] | None:
    """The dataset config a run recorded (training runs, and every run derived from one). CnnlabError when a
    setting that decides the splits (seed, val_fraction, label_fraction) holds something no run records."""
    if run is None:
        return None
    config = ((run.data.get("dataset") or {}).get("config")) or None
    if not isinstance(config, dict):
        return None
    for key, types in _SPLIT_SETTINGS.items():
        value = config.get(key)
        bad = value is not None and (isinstance(value, bool) or not isinstance(value, types) or value != value
                                     or (key != "seed" and not 0 <= value <= 1))
        if bad:
            raise CnnlabError(f"{run.path / 'run.json'}: dataset.config.{key} is {value!r}, which no run records "
                              "(the file was edited or damaged), so the data it names cannot be rebuilt",
                              fix="restore that run.json (the run's model.pt records the same settings under "
                                  "extra.dataset.config)")
    return config


def _dataset_keys(ctx: RunContext) -> list[str]:
    """The dataset keys of this command line: `dataset` (a group choice) and `dataset.x.y` (one setting)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in ctx.overrides]
    return [k for k in keys if k.split(".")[0] == "dataset"]


def user_chose_dataset(ctx: RunContext) -> bool:
    return bool(_dataset_keys(ctx))


def refuse_dataset_settings(ctx: RunContext, why: str, fix: str) -> None:
    """CnnlabError for any `dataset=` / `dataset.KEY=` on this command line: for commands that read no dataset
    (predict, bench of a source), where such a setting would be accepted, recorded and ignored. `why` completes
    "dataset.KEY=: ...", `fix` follows "drop dataset.KEY=; "."""
    keys = _dataset_keys(ctx)
    if keys:
        raise CnnlabError(f"{keys[0]}=: {why}", fix=f"drop {keys[0]}=; {fix}")


def _folder(root: Any) -> str | None:
    """A dataset root as an absolute path with its links resolved (a relative one is relative to where the command
    runs): /data/photos and a link to it name the same images."""
    return os.path.realpath(Path(str(root)).expanduser()) if root not in (None, "") else None


def same_data(recorded: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether dataset config `config` names the data `recorded` describes: the same name and, for a user folder
    (records.FOLDER_DATASETS), the same folder; a --config-dir file with `defaults: [imagefolder]` and its own
    root names other data under the same name."""
    if str(config.get("name")) != str(recorded.get("name")):
        return False
    return recorded.get("name") not in FOLDER_DATASETS or _folder(config.get("root")) == _folder(recorded.get("root"))


# Commands that read the source's own data (its accuracy, its calibration, its recovery training, the export's check
# against PyTorch on its images): the composed default dataset stands in for none — its classes are another model's,
# and export's class refusal then said to drop a dataset= never typed (probe 188).
_SCORED_ON_ITS_DATA = frozenset({"evaluate", "quantize", "prune", "export"})


@found_before_work()
def source_dataset_config(cfg: DictConfig, ctx: RunContext, source: Source,
                          labels: Labels = "source's") -> DictConfig:
    """The source run's dataset, with this command line's `dataset.KEY=` settings on top (e.g. `dataset.root=DIR`
    for data that moved; cli.py lets such keys through for the commands that read a source's data); `dataset=NAME`
    picks other data instead. Naming the source's own data again (`dataset=imagefolder dataset.root=SAME`) keeps its
    recorded settings: the composed defaults would carve the val split with another `dataset.seed` or
    `val_fraction`, scoring images the model trained on. CnnlabError for a typed key the source's dataset does not
    have (it would be ignored, yet recorded), typed keys on a source that records no dataset, or none typed where
    the command's figures are about the source's data (_SCORED_ON_ITS_DATA). `labels`: whose label fraction it takes
    (settle_label_fraction)."""
    recorded = dataset_config_of(source.run)
    keys = _dataset_keys(ctx)
    typed = [k for k in keys if k != "dataset"]
    if recorded is None:
        if typed and "dataset" not in keys:
            raise CnnlabError(f"{typed[0]}: the source records no dataset for it to change",
                              fix="name the data the model was trained on with dataset=NAME (e.g. dataset=imagefolder "
                                  "dataset.root=DIR)")
        if not keys and ctx.command in _SCORED_ON_ITS_DATA:  # probe 187: scored on the stand-in, a fix that failed
            raise CnnlabError(f"source={source.spec} records no dataset (a file made elsewhere, or its records "
                              f"lost), so {ctx.command} has no images of its classes to work on",
                              fix="name the data it was trained on with dataset=NAME (`cnnlab list datasets`), or "
                                  "dataset=imagefolder dataset.root=DIR for a folder of labelled images")
        if not keys:
            ctx.log.warning("the source records no dataset; using dataset=%s (pass dataset=... to choose)",
                            cfg.dataset.name)
        return cfg.dataset
    if "dataset" in keys and not same_data(recorded, cfg.dataset):
        return cfg.dataset
    config = OmegaConf.create(recorded)
    if labels == "kept" and "dataset.label_fraction" in typed:
        refuse_a_fraction_that_reads_nothing(ctx, source, recorded, OmegaConf.select(cfg, "dataset.label_fraction"))
    for key in typed:  # only the settings typed here: not the composed defaults
        top = key.split(".")[1]
        if top not in recorded and ("dataset" not in keys or top not in cfg.dataset):
            known = ", ".join(sorted(k for k, v in recorded.items() if not isinstance(v, (dict, list))))
            raise CnnlabError(f"{key}: dataset {recorded.get('name')} (the source's) has no setting {top!r}",
                              fix=f"drop {key}= (its settings: {known}), or pick other data with dataset=NAME")
        OmegaConf.update(config, key.split(".", 1)[1], OmegaConf.select(cfg, key), force_add=True)
    settle_label_fraction(cfg, ctx, config, source.spec, labels)
    return config


def resumed_dataset_config(cfg: DictConfig, ctx: RunContext, resume_from: Path | None) -> DictConfig | None:
    """The data the run a command resumes (`resume_from`: its last.pt) trained on: its run.json's dataset config with
    this command line's `dataset.KEY=` on top, as source_dataset_config gives a source's; None without resume or such
    a record. Probe 158: a fine-tune started with `dataset=digits` from weights trained on synthetic shapes resumed
    on the weights run's data (the start's typed dataset= is not on the resume's command line), and a distill lost
    its `dataset.label_fraction=0.5`, exit 0."""
    if resume_from is None:
        return None
    run = load_run(resume_from.parent)
    if dataset_config_of(run) is None:
        return None
    return source_dataset_config(cfg, ctx, Source(spec=str(run.path), kind="checkpoint", path=resume_from, run=run),
                                 labels="resumed")


@found_before_work()
def weights_dataset_config(cfg: DictConfig, ctx: RunContext, weights: InitialWeights,
                           role: str = "model", resume_from: Path | None = None) -> DictConfig:
    """The data a command that trains from `role`.weights= (finetune, search space=hparams) uses: the composed
    dataset when the weights are not a cnnlab run's or `dataset=` names other data; otherwise the data the weights' run
    recorded (run.json, else the checkpoint's own record), with the typed `dataset.KEY=` on top, as
    source_dataset_config gives a source's. The documented `cnnlab finetune model.weights=latest:pretrain
    finetune.mode=linear` after a pretrain on digits probed the default synthetic shapes instead, exit 0 (probe
    59). The label fraction stays this run's own (the composed one unless typed): a fine-tune's labels are its
    choice. A val split carved otherwise than the one the weights trained beside is refused (check_val_settings): it
    would hold images the backbone trained on. A resume (`resume_from`) keeps the data its run trained on
    (resumed_dataset_config)."""
    if weights.kind != "run":
        return cfg.dataset
    key = f"{role}.weights"
    source = with_file_dataset(resolve_source(str(OmegaConf.select(cfg, key)), ctx.outputs, want=("checkpoint",),
                                              key=key))
    resumed = resumed_dataset_config(cfg, ctx, resume_from)
    if resumed is not None:
        check_val_settings(ctx, source, resumed)
        return resumed
    # dataset=NAME of the run's own data keeps its recorded settings too (probe 153: `dataset=digits` after a run at
    # dataset.val_fraction=0.3 was refused with "drop dataset.val_fraction=", a key nobody typed)
    dataset_cfg = source_dataset_config(cfg, ctx, source, labels="own")
    if dataset_cfg is not cfg.dataset:
        if _unlabeled_folder(dataset_cfg):  # probe 83: the folder's refusal named the pretraining just run as fix
            with found_before_work():
                raise CnnlabError(f"the {key} run learned from {dataset_cfg.get('root')}, a flat folder of pictures "
                                  "without labels, and fine-tuning needs labelled data",
                                  fix="name it: dataset=imagefolder dataset.root=DIR with DIR/<class>/*.jpg (or "
                                      "DIR/train/<class>/ and DIR/val/<class>/), or another dataset= (cnnlab list "
                                      "datasets)")
        ctx.log.info("dataset=%s: the data the %s run trained on, with its settings (dataset=NAME of other data "
                     "picks that)", dataset_cfg.get("name"), key)
    check_val_settings(ctx, source, dataset_cfg)
    return dataset_cfg


@found_before_work()
def refuse_a_fraction_that_reads_nothing(ctx: RunContext, source: Source, recorded: Mapping[str, Any],
                                         typed: Any) -> None:
    """CnnlabError for a `dataset.label_fraction` typed for a command that reads no training picture (export,
    evaluate split=val or test) other than the one the model trained on: it would change nothing but the record,
    which would then say the model trained on other labels (probe 241: an export typed `dataset.label_fraction=1.0`
    of a model trained on 359 of 1,437 labels recorded 1,437, and `evaluate split=train` of the file scored them)."""
    trained = recorded.get("label_fraction", 1.0)
    if typed == trained:
        return
    raise CnnlabError(f"dataset.label_fraction={typed}: `cnnlab {ctx.command}` reads no training picture here, so it "
                      f"would change only the record — which would then say the model trained on other labels "
                      f"({source.spec} trained on dataset.label_fraction={trained})",
                      fix="drop dataset.label_fraction= (`cnnlab evaluate split=train` scores the pictures the model "
                          "trained on)")


def settle_label_fraction(cfg: DictConfig, ctx: RunContext, dataset_cfg: DictConfig, source: str,
                          labels: Labels) -> None:
    """Sets `dataset_cfg.label_fraction` (a source's recorded data, `source` as typed) unless typed here, and says
    where it is not the composed one. `labels`: "own" — a command that trains a new model (finetune, distill, search
    from weights) — takes the composed fraction, as a training's labels are its choice; "source's" (prune's recovery,
    quantize, evaluate split=train) keeps the labels the model trained on; "kept" (export, evaluate split=val or
    test: splits the fraction does not touch) keeps them unsaid, so the record still says what the model trained on
    (probe 240: an export of a model trained on 5,400 of 54,000 labels recorded 54,000 in its run and ONNX file, and
    `evaluate split=train` of the file scored all 54,000); "scored" (evaluate split=all: every image of the data is
    scored) takes the composed one unsaid (probe 195: `evaluate split=all` of a run at 0.5 scored half a new folder's
    training pictures); "resumed" keeps the run's own start, unsaid. Probe 194: a distill over a teacher fine-tuned
    at `dataset.label_fraction=0.5` trained its student on that half without a word, while the composed config said
    1.0."""
    if "label_fraction" not in dataset_cfg or ctx.explicitly_set("dataset.label_fraction"):
        return
    composed, recorded = cfg.dataset.get("label_fraction", 1.0), dataset_cfg.label_fraction
    if composed == recorded or labels in ("resumed", "kept"):
        return
    if labels in ("own", "scored"):
        dataset_cfg.label_fraction = composed
    if labels == "own":
        ctx.log.info("dataset.label_fraction=%s, this run's own: %s trained at %s (dataset.label_fraction=%s "
                     "trains on the same pictures)", composed, source, recorded, recorded)
    elif labels == "source's":
        ctx.log.info("dataset.label_fraction=%s: the labels %s trained on (dataset.label_fraction=%s to change it)",
                     recorded, source, composed)


def _unlabeled_folder(dataset_cfg: Any) -> bool:
    """Whether the data is a flat image folder (a self-supervised run's); False when its folder is gone (the
    missing data is said where the data is read, with its own fix)."""
    if dataset_cfg.get("name") != "imagefolder" or not Path(str(dataset_cfg.get("root") or "")).is_dir():
        return False
    return is_flat_folder(dataset_cfg)


def with_file_dataset(source: Source) -> Source:
    """`source`, standing on the file's own dataset record when no run record gives one: a model.pt or model.onnx
    copied out of its run folder still knows the data it was trained on (checkpoint `extra.dataset`, ONNX metadata
    `dataset`), so its split settings are kept and checked as a run's are. CnnlabError when the file's record names
    other data than its run's run.json (`refuse_a_replaced_file`)."""
    recorded = _file_dataset_record(source.kind, source.path)
    if dataset_config_of(source.run) is not None:
        refuse_a_replaced_file(source, recorded)
        return source
    if not isinstance(recorded, dict) or not isinstance(recorded.get("config"), dict):
        return source
    return replace(source, run=RunInfo(path=source.path.parent, data={"dataset": dict(recorded)}, file_record=True))


@found_before_work()
def refuse_a_replaced_file(source: Source, recorded: Any) -> None:
    """CnnlabError when a model file's own record of its data (`recorded`) differs from its run's run.json: one was
    replaced or edited after the run (another run's model.pt copied in). Taken as the run's, the model would be
    scored on that run's val split, which may hold its own training images, beside the run's recorded scores.
    Nothing to compare (a file or run from before these records): nothing said."""
    ran = ((source.run.data.get("dataset") or {}).get("config")) if source.run is not None else None
    own = recorded.get("config") if isinstance(recorded, dict) else None
    if not isinstance(ran, dict) or not isinstance(own, dict) or _as_json(ran) == _as_json(own):
        return
    keys = sorted(k for k in {*ran, *own} if k not in ran or k not in own or _as_json(ran[k]) != _as_json(own[k]))
    shown = "; ".join(f"dataset.{k} {_short(own, k)} in the file, {_short(ran, k)} in run.json" for k in keys[:3])
    raise CnnlabError(f"{source.path} and its run's run.json record different data ({shown}): one of them was "
                      "replaced or edited after the run, so the run's splits and scores may not be this model's",
                      fix=f"put back the run's own {source.path.name} (or its run.json as it was), or copy "
                          f"{source.path.name} out of {source.origin} and name the copy: it carries its own record of "
                          "its data")


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _short(record: Mapping[str, Any], key: str) -> str:
    """`record[key]` for a message: JSON, cut at 40 characters; "nothing" for a key it lacks."""
    if key not in record:
        return "nothing"
    text = json.dumps(record[key], default=str)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.lru_cache(maxsize=16)
def _file_record_at(kind: str, version: FileVersion) -> Any:
    path = Path(version[0])
    if kind == "onnx":
        from cnnlab.deploy.export import read_onnx_metadata

        return read_onnx_metadata(path).get("dataset")
    return read_checkpoint(path).extra.get("dataset")


def _file_dataset_record(kind: str, path: Path) -> Any:
    """The model file's own `dataset` record, read once per file version (commands ask more than once)."""
    version = file_version(path)
    return None if version is None else _file_record_at(kind, version)  # None: gone, the command's read says so


def source_data(cfg: DictConfig, ctx: RunContext, source: Source, checkpoint_spec: Any, *,
                train_augment: bool = False, uses_val: bool = True, carve_val: bool = True,
                reads: Sequence[str] = ("train", "val"), labels: Labels = "source's", scored: str = "val"
                ) -> tuple[DataBundle, DictConfig]:
    """The source's data at the checkpoint's input spec, and the dataset config that built it. A typed
    `dataset.image_size`, `mean` or `std` other than the model's is refused (steps/input_settings.py):
    the model is fed as it was trained, and a record saying otherwise would be false. `uses_val`: the command
    scores (or selects on) the val split, so another carve of it is refused (check_same_val_split). carve_val=False:
    an image folder is not carved into train and val (build_datasets; evaluate split=all reads every image).
    `reads`: the splits the command reads (build_datasets). `labels`: whose label fraction the data takes
    (settle_label_fraction).
    `scored`: the carved split the command scores ("train": evaluate split=train, whose pictures must be those the
    model trained on)."""
    source = with_file_dataset(source)
    refuse_ignored_input_settings(cfg, ctx, checkpoint_spec, "the model")
    dataset_cfg = source_dataset_config(cfg, ctx, source, labels=labels)
    try:
        data = build_datasets(dataset_cfg, checkpoint_spec, train_augment=train_augment, carve_val=carve_val,
                              reads=reads)
    except CnnlabError as err:
        root = dataset_cfg.get("root")
        if root in (None, "") or Path(str(root)).expanduser().exists() or user_chose_dataset(ctx):
            raise
        # The recorded data is gone (moved, or another machine); cli.py lets dataset.KEY= edit the source's dataset.
        raise CnnlabError(f"{err.message} (the dataset of source run {source.origin})",
                          fix="point to where the data is now with dataset.root=DIR (the source's other dataset "
                              "settings are kept)") from err
    if uses_val:
        check_val_settings(ctx, source, dataset_cfg, scored=scored)
    elif ctx.explicitly_set("dataset.val_fraction"):
        refuse_unused_val_fraction(_plain(dataset_cfg))
    return data, dataset_cfg


@found_before_work()
def check_val_settings(ctx: RunContext, source: Source, dataset_cfg: Any, *, scored: str = "val") -> None:
    """The split settings typed for a source's data: a `dataset.val_fraction` that carves nothing
    (refuse_unused_val_fraction), or a carve other than the one the source trained beside (check_same_val_split)."""
    if ctx.explicitly_set("dataset.val_fraction"):
        refuse_unused_val_fraction(_plain(dataset_cfg))
    check_same_val_split(source, dataset_cfg, typed=ctx.explicitly_set, scored=scored)
    if (warning := unverified_folder(source, dataset_cfg)) is not None and ctx.is_main:
        record_warning(ctx, warning)


# The settings that carve a val split out of the training images (torchvision sets, digits, a one-level folder).
_CARVE_KEYS = ("seed", "val_fraction")


def check_same_val_split(source: Source, dataset_cfg: Any, typed: Callable[[str], bool] | None = None, *,
                         scored: str = "val") -> None:
    """CnnlabError when `dataset_cfg` (this command's) carves the source's data into another val split than the
    one its run trained beside: another dataset.seed or val_fraction, a record that does not say them (a hand-edited
    run.json), or a user folder whose images changed since (the same seed then carves other files). That split holds
    images the model trained on, and an accuracy on it would read high. Passes for other data, a source that records
    none, and data whose val split is not carved from train (synthetic draws each split from its own stream; a
    folder with val/). `typed(KEY)`: whether the command line set KEY (a fix names only keys it typed).
    `scored="train"`: the training split is scored, and another carve or draw of it holds pictures the model never
    trained on — generated data included, whose training pictures each of its draw settings changes."""
    recorded = dataset_config_of(source.run) or {}
    used = _plain(dataset_cfg)
    if not recorded or not isinstance(used, Mapping):
        return
    if scored == "train" and recorded.get("name") in GENERATED_DATASETS and same_data(recorded, used):
        _refuse_another_draw(recorded, used, source.origin, typed)
    if not same_data(recorded, used):
        # the run's pictures elsewhere carve the run's split only with its seed and fraction (probe 150: a `cp -a`
        # copy or a moved folder with dataset.seed=3 scored 9 trained-on images of 12 as val, unchecked)
        # … and so do pictures that cannot be told from them, the run's folder gone (probe 152: a plain `cp -r`
        # copy, dataset.seed=3, only warned, and 9 of 12 val images were training images)
        same = _refuse_a_changed_copy(source, recorded, used)
        if (same or unverified_folder(source, dataset_cfg) is not None) and carves_val(used):
            _refuse_unsaid_carve(recorded)
            _refuse_another_carve(recorded, used, source.origin, typed, scored=scored)
        return
    root = _folder(recorded.get("root"))
    if recorded.get("name") in FOLDER_DATASETS and root is not None and not Path(root).is_dir():
        # moved, or another machine: its splits cannot be read (a traceback when scanned, probe 60)
        raise CnnlabError(f"the images of {source.origin} are no longer in {root}",
                          fix="point to where they are now with dataset.root=DIR (the run's other dataset settings "
                              "are kept), or pick other data with dataset=NAME")
    if not carves_val(recorded):
        return
    _refuse_unsaid_carve(recorded)
    changed = data_changed(source.run) if source.run is not None else None  # (None too when it recorded no digest)
    if changed:
        raise CnnlabError(f"{changed}: its val split, carved from the folder by dataset.seed, would now hold images "
                          "the model trained on (and read high)",
                          fix="train again on the folder as it is, or give the pictures it trained on with "
                              "dataset.root=DIR (a copy of the folder as it was)")
    _refuse_another_carve(recorded, used, source.origin, typed, scored=scored)


def check_resumed_split(run: RunInfo, dataset_cfg: Any, val_fraction_typed: bool) -> None:
    """CnnlabError when a resume's dataset settings (`dataset_cfg`: the run's saved ones, with the command line's)
    would give the run another val split: a `dataset.val_fraction` (`val_fraction_typed`) that carves nothing, or
    another carve (dataset.seed, val_fraction) than the one it trained beside — that split would hold images it
    trained on (probe 147: dataset.seed=3, 80 % of the new val images). Its folder's pictures are checked by the
    resume itself (freshness.data_changed, against the digest it recorded)."""
    used = _plain(dataset_cfg)
    if val_fraction_typed:
        refuse_unused_val_fraction(used)
    recorded = dataset_config_of(run) or {}
    if recorded and isinstance(used, Mapping) and carves_val(used):  # the folder it reads (probe 150: the recorded
        # one, moved away, was a FileNotFoundError; a new train/ + val/ there let dataset.seed=3 through)
        _refuse_unsaid_carve(recorded)
        _refuse_another_carve(recorded, used, run.path)


def refuse_another_label_fraction(run: RunInfo, dataset_cfg: Any, new_run: Callable[[str], str] = lambda _: "") -> None:
    """CnnlabError when a resume's dataset settings (`dataset_cfg`: the run's saved ones, with the command line's)
    draw another label subset than the run trained on (its run.json's `dataset.label_fraction`): the epochs after
    the resume would train on other labels than those before, and the run record one fraction for both (probe 195:
    the new one was recorded for the whole run). Nothing for a run that records none. `new_run(SETTING)`: text for
    the fix that names the command starting such a run afresh (steps/resume.new_run_command)."""
    recorded, plain = (dataset_config_of(run) or {}).get("label_fraction"), _plain(dataset_cfg)
    used = plain.get("label_fraction") if isinstance(plain, Mapping) else None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (recorded, used)) or used == recorded:
        return  # none recorded, or not a number: label_subset says what a fraction must be
    raise CnnlabError(f"dataset.label_fraction={used}: the run trained on dataset.label_fraction={recorded}, and a "
                      "resume goes on with the labels it trained on",
                      fix=f"drop dataset.label_fraction= (the run goes on at {recorded}), or drop resume= to start a "
                          f"new run at {used}{new_run(f'dataset.label_fraction={used}')}")


def _refuse_unsaid_carve(recorded: Mapping[str, Any]) -> None:
    """CnnlabError when the recorded dataset config lacks a setting of its carve (a hand-edited run.json)."""
    unsaid = [key for key in _CARVE_KEYS if recorded.get(key) is None]
    if unsaid:
        raise CnnlabError(f"the source's run.json does not record dataset.{unsaid[0]}, so the val split it trained "
                          "beside cannot be rebuilt (another carve would hold images the model trained on)",
                          fix="restore the run's run.json (its model.pt records the settings too: "
                              "`python -c \"import torch; print(torch.load('model.pt', weights_only=True)['extra']"
                              "['dataset']['config'])\"`)")


def _refuse_another_carve(recorded: Mapping[str, Any], used: Mapping[str, Any], where: Path,
                          typed: Callable[[str], bool] | None = None, *, scored: str = "val") -> None:
    """CnnlabError when `used` carves val with another dataset.seed or val_fraction than `recorded`, the run at
    `where` trained beside. `typed(KEY)`: whether the command line set KEY; one it did not (a default that came with
    `dataset=NAME`) is fixed by typing the run's value (probe 156: "drop dataset.seed=", which nobody typed).
    `scored`: the split scored — val (another carve holds trained-on pictures) or train (it holds others)."""
    for key in _CARVE_KEYS:
        if recorded.get(key) != used.get(key):
            # probe 60: the fix also offered `cnnlab evaluate split=test`, which digits and folders refuse (no test)
            subset = " (it also draws the dataset.label_fraction subset, which stays the one it drew)" \
                if key == "seed" else ""
            why = ("so another carve would hold images the model trained on (and read high)" if scored == "val" else
                   "so another carve's train split would hold pictures the model never trained on (its val split's)")
            _raise_other_setting(key, recorded, used, typed,
                                 f"the model's run ({where}) set its val split apart with dataset.{key}="
                                 f"{recorded.get(key)}, {why}",
                                 "the val split the model was trained beside is used" if scored == "val" else
                                 "the pictures the model trained on are scored", subset)


# What draws a generated set's training pictures (data/synthetic.py): another value draws other pictures.
_DRAW_KEYS = ("seed", "train_size", "num_classes")


def _refuse_another_draw(recorded: Mapping[str, Any], used: Mapping[str, Any], where: Path,
                         typed: Callable[[str], bool] | None) -> None:
    """CnnlabError when `used` draws a generated set's training pictures otherwise than `recorded` (the run at
    `where`): evaluate split=train would score pictures the model never trained on (probe 214: dataset.seed=1)."""
    for key in _DRAW_KEYS:
        if recorded.get(key) != used.get(key):
            _raise_other_setting(key, recorded, used, typed,
                                 f"the model's run ({where}) trained on {recorded.get('name')} pictures drawn with "
                                 f"dataset.{key}={recorded.get(key)}, so these training pictures are others, never "
                                 "trained on", "the pictures the model trained on are scored")


def _raise_other_setting(key: str, recorded: Mapping[str, Any], used: Mapping[str, Any],
                         typed: Callable[[str], bool] | None, why: str, then: str, subset: str = "") -> None:
    """The refusal of `dataset.KEY` set otherwise than the model's run set it: drop it where the command line typed
    it, else type the run's value (`then`: what that gives)."""
    raise CnnlabError(f"dataset.{key}={used.get(key)}: {why}",
                      fix=f"drop dataset.{key}= ({then}){subset}" if typed is None or typed(f"dataset.{key}") else
                      f"add dataset.{key}={recorded.get(key)}, the run's ({then})")


def _plain(dataset_cfg: Any) -> Any:
    """A dataset config as plain, resolved values (a DictConfig converted; anything else as it is)."""
    return OmegaConf.to_container(dataset_cfg, resolve=True) if isinstance(dataset_cfg, DictConfig) else dataset_cfg


def _trained_data_has_test(recorded: Mapping[str, Any], data: DataBundle) -> bool:
    """Whether the data a model trained on (`recorded`: its run's dataset config) has a test split: its folder's
    layout (a train/ with a test/ beside it) while that folder is on disk, else `data`'s (that data, or a copy)."""
    root = recorded.get("root")
    trained = Path(str(root)).expanduser() if root not in (None, "") else None
    if recorded.get("name") in FOLDER_DATASETS and trained is not None and trained.is_dir():
        return split_dir(trained, TRAIN_DIR_NAMES) is not None and split_dir(trained, TEST_DIR_NAMES) is not None
    return data.test is not None


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def refuse_training_images(source: Source, dataset_cfg: Any, data: DataBundle) -> None:
    """CnnlabError when `data` (built from `dataset_cfg`) holds the images the source model trained on: the data
    its run records (steps.sources.same_data), a folder with the same recorded data.content.folder_digest, or one
    holding any copy (bytes or pixels: content.copies_of) of a training or validation picture of the source's
    folder, while that folder is on disk (training_pictures_in). For `cnnlab evaluate split=all`, whose score would
    read high."""
    source = with_file_dataset(source)
    recorded = dataset_config_of(source.run)
    if recorded is None:
        return
    used = _plain(dataset_cfg)
    content = ((source.run.data.get("dataset") or {}).get("content")) if source.run is not None else None
    same_folder = isinstance(content, str) and content == data.content
    # a split the data the model trained on has: split=test would be refused in turn on digits ("no test split")
    scored = ("split=test (or val) for the data the model trained on" if _trained_data_has_test(recorded, data) else
              f"split=val for the data the model trained on "
              f"({data.name if data.name not in FOLDER_DATASETS else 'the folder it trained on'} has no test split)")
    fix = f"use {scored}; split=all is for a folder of new labelled images: dataset=imagefolder dataset.root=NEW_DIR " \
          "split=all"
    if same_folder or (isinstance(used, Mapping) and same_data(recorded, used)):
        raise CnnlabError(f"split=all of {data.name} would score the images the model trained on"
                          + (f" (the folder {used.get('root')} holds the same pictures)"
                             if same_folder and isinstance(used, Mapping) else ""), fix=fix)
    trained, scored = _folder(recorded.get("root")), _folder(used.get("root")) if isinstance(used, Mapping) else None
    if recorded.get("name") not in FOLDER_DATASETS or trained is None or scored is None:
        return
    if not Path(trained).is_dir():
        log.warning("the folder the model trained on, %s, is gone: split=all cannot check that %s holds none of "
                    "its pictures", trained, scored)
        return
    # a copy (cp -r: new file times, or a picture added) is found by the pictures' bytes or pixels, among the files the
    # folder scan reads (a link it skips is never scored)
    files = [f for part in (data.train, data.val, data.test) if part is not None for f in split_files(part) or []]
    shared = sorted(copies_of(files, _training_files(recorded)[0]))
    if shared:
        raise CnnlabError(_trained_copies("all", shared, scored, trained), fix=f"remove them from {scored}, or {fix}")


def _trained_copies(split: str, shared: list[str], scored: Any, trained: Any) -> str:
    """'split=test: 2 pictures in DIR are the model's training or validation images (copies of ...), so its score
    would read high' (probe 97: "1 of the pictures ... are")."""
    one = len(shared) == 1
    return (f"split={split}: {counted(len(shared), 'picture')} in {scored} {'is' if one else 'are'} the model's "
            f"training or validation {'image' if one else 'images'} (copies of pictures in {trained}, by bytes or "
            f"pixels: {_copies_named(shared)}), so its score would read high")


def _copies_named(shared: list[str]) -> str:
    """The copies for a refusal: up to three by name, then how many more — each of them in the log line before it,
    so that "remove them" can be followed (probe 72: only the first of 11 was named)."""
    if len(shared) > 3:
        log.warning("the %d copies: %s", len(shared), ", ".join(shared))
    return listed(shared)


def refuse_unused_val_fraction(dataset: Any) -> None:
    """CnnlabError when the dataset config `dataset`, whose `val_fraction` the user typed, does not carve its val
    split (carves_val): the setting would change nothing, yet run.json would record it as used."""
    if not isinstance(dataset, Mapping) or carves_val(dataset):
        return
    where = f"{dataset.get('root')} has" if dataset.get("root") not in (None, "") else \
        f"dataset {dataset.get('name')} has"
    raise CnnlabError(f"dataset.val_fraction={dataset.get('val_fraction')} has no effect: {where} a val split of its "
                      "own, which is used as it is",
                      fix="drop dataset.val_fraction= (to carve val from the training images instead, lay the folder "
                          "out without its val/ folder)")


def _refuse_a_changed_copy(source: Source, recorded: Mapping[str, Any], used: Mapping[str, Any]) -> bool:
    """CnnlabError when `dataset.root=OTHER` names a folder that holds some of the pictures the source trained or
    was validated on (their bytes) without being that folder as it was (the same pictures under the same names):
    its val split, carved by dataset.seed, would hold images the model trained on. Probe 60: the trained folder as
    it is now, 30 pictures added, scored 8 of its 18 val images from the model's training set, exit 0. A copy as it
    was, and a folder of new pictures, pass; so does everything when the trained folder is gone (nothing to compare:
    unverified_folder says so instead). True when OTHER is the run's pictures as they were: a copy, or the folder
    moved (its digest the one the run recorded)."""
    other = _folder(used.get("root"))
    if used.get("name") not in FOLDER_DATASETS or other is None or not Path(other).is_dir():
        return False
    if source.run is not None and _recorded_content(source.run) and data_changed(source.run, root=other) is None:
        return True  # moved (or copied with its file times): the very pictures it recorded
    # why the trained folder is not as the run recorded it (None too when it recorded no digest): one walk of it
    changed = functools.cache(lambda: data_changed(source.run) if source.run is not None else None)
    own_val = split_dir(Path(other), VAL_DIR_NAMES) if split_dir(Path(other), TRAIN_DIR_NAMES) else None
    if own_val is not None:  # a val/ of its own, not carved (probe 61): only the pictures in it matter
        known_carve = source.run is not None and _recorded_content(source.run) and changed() is None
        shared, trained = training_pictures_in(own_val, recorded, validation=False, carve_known=known_carve)
    else:
        shared, trained = training_pictures_in(Path(other), recorded)
    if not shared:
        return False
    if own_val is None and not changed() and same_pictures(Path(other), Path(trained)):  # as it was: the same carve
        return True
    where = source.origin
    # what was counted: a val/ of its own alone (probe 220: "ds2 holds 1 of the pictures", a copy holding all 84)
    other = own_val if own_val is not None else other
    if changed():  # probe 153: a copy of the folder as it is now, not as the run read it, carved 9 trained-on images
        # of 14 into val; a faithful copy cannot be told apart from it but by the run's record of names, sizes, times
        raise CnnlabError(f"{other} holds {len(shared)} of the pictures {where} trained or was validated on, but is "
                          f"not that folder as the run recorded it (names, sizes and file times), and {changed()}: "
                          "its val split may hold images the model trained on (and read high)",
                          fix="give the pictures as the run read them with dataset.root=DIR — the folder as it was, "
                              "or a copy made with their file times (cp -a) — or a folder of pictures the model has "
                              "not seen")
    unseen = "a folder of pictures the model has not seen"
    if is_flat_folder({**recorded, "root": trained}):  # probe 163: a copy of an unlabeled folder has no labels
        raise CnnlabError(f"{other} holds {len(shared)} of the unlabeled pictures {where} was pretrained on (copies "
                          f"of pictures in {trained}, by bytes or pixels): its val split would hold images the "
                          "backbone has seen (and read high)",
                          fix=f"give {unseen}, or lay them out as DIR/train/<class>/ (these may be pictures it "
                              "saw) and DIR/val/<class>/ (new ones)")
    raise CnnlabError(f"{other} holds {len(shared)} of the pictures {where} trained or was validated on (copies of "
                      f"pictures in {trained}, by bytes or pixels), but is not that folder as it was: its val split "
                      "would hold images the model trained on (and read high)",
                      fix=f"give a copy of {trained} as it was with dataset.root=DIR, or {unseen}")


def _recorded_content(run: RunInfo) -> bool:
    """Whether `run` recorded its folder's digest (run.json dataset.content or train_content: freshness.py)."""
    dataset = run.data.get("dataset")
    return isinstance(dataset, Mapping) and any(isinstance(dataset.get(key), str)
                                                for key in ("content", "train_content"))


def training_pictures_in(folder: Path, recorded: Mapping[str, Any], *, validation: bool = True,
                         carve_known: bool = False) -> tuple[list[str], str]:
    """The pictures under `folder` that copy (bytes or pixels) a training or validation picture of the folder
    `recorded` (a run's dataset config) trained on, and that folder; ([], "") when the run did not train on a folder,
    or that folder is gone (nothing to compare). Its test split holds no training picture, so it is left out; so is its
    val split when `validation` is False: its val/ folder, or the val split it carved when `carve_known` (the run that
    trained on it recorded the folder's digest, and it has not changed since; else the carve cannot be rebuilt: all of
    it counts)."""
    files, trained = _training_files(recorded, validation=validation, carve_known=carve_known)
    return sorted(copies_of(list(pictures(folder)), files)), trained


def _training_files(recorded: Mapping[str, Any], *, validation: bool = True,
                    carve_known: bool = False) -> tuple[list[str], str]:
    """The training (and, with `validation`, validation) pictures of the folder `recorded` trained on, and that
    folder: all of it but its test split. ([], "") when it was no folder, or the folder is gone. A carved val split
    is told apart from train only as `training_pictures_in` says."""
    trained = _folder(recorded.get("root"))
    if recorded.get("name") not in FOLDER_DATASETS or trained is None or not Path(trained).is_dir():
        return [], ""
    train = split_dir(Path(trained), TRAIN_DIR_NAMES)
    if not validation and carve_known and carves_val(recorded):
        # probe 152: a train/ + val/ copy whose val/ is exactly the run's carved val split was refused as one whose
        # val split "would hold images the model trained on" — its carve, rebuilt, says which pictures it trained on
        return carved_training_files(recorded) or [], trained
    if train is not None and not validation:
        return list(pictures(train)), trained
    test = split_dir(Path(trained), TEST_DIR_NAMES) if train is not None else None
    return list(pictures(Path(trained), outside=test)), trained


def unverified_folder(source: Source, dataset_cfg: Any) -> str | None:
    """The warning for `dataset.root=OTHER` when the folder the source trained on is gone, so its pictures cannot be
    compared, and OTHER is not that folder moved as it was (its digest of names, sizes and times differs from the
    recorded one): its val split may hold training images. None otherwise. Probe 61: the moved folder with pictures
    added read 79 % for a model at chance, without a word."""
    recorded, used = dataset_config_of(source.run) or {}, _plain(dataset_cfg)
    trained = _folder(recorded.get("root"))
    if not isinstance(used, Mapping) or same_data(recorded, used) or used.get("name") not in FOLDER_DATASETS \
            or recorded.get("name") not in FOLDER_DATASETS or trained is None or Path(trained).is_dir():
        return None
    content = (source.run.data.get("dataset") or {}).get("content") if source.run is not None else None
    other = _folder(used.get("root"))
    if other is None or (isinstance(content, str) and folder_digest(Path(other)) == content):
        return None  # moved as it was (mv keeps names, sizes and times)
    return (f"the folder {source.origin} trained on, {trained}, is gone, and "
            f"{other} is not that folder as it was (other names, sizes or file times): cnnlab cannot check that its "
            "val split holds none of the model's training images, so a val score may read high")


@found_before_work()  # a refused test split leaves no `failed` run behind, as split=all's refusal (probe 75)
def refuse_training_images_in_test(source: Source, dataset_cfg: Any, data: DataBundle) -> None:
    """CnnlabError when the test split of `data` (the files its folder scan reads) holds copies (bytes or pixels) of
    the source's training or validation pictures: split=all refused them, split=test scored them (probe 61: a test/
    copied from the training folder read 88.89 % for a model at chance, exit 0). The folder the model trained on is
    checked too: its own test/ may hold copies of its train/ pictures (probe 62: 83.33 % at chance). A link the scan
    skips (to a picture it reads elsewhere in the folder) is not scored, and not counted (probe 64)."""
    scored = split_files(data.test) if data.test is not None else None
    if not scored:
        return
    files, trained = _training_files(dataset_config_of(with_file_dataset(source).run) or {})
    shared = sorted(copies_of(scored, files))
    if shared:
        test = split_dir(Path(str(_folder(_plain(dataset_cfg).get("root")))), TEST_DIR_NAMES)
        raise CnnlabError(_trained_copies("test", shared, test, trained),
                          fix=f"remove them from {test}, or score a test split of pictures the model has not seen")


def carves_val(recorded: Mapping[str, Any]) -> bool:
    """Whether the data `recorded` (a dataset config) carves its val split out of the training images by
    dataset.seed and val_fraction (torchvision sets, digits, a folder without train/ + val/ folders)."""
    if recorded.get("name") in GENERATED_DATASETS:
        return False
    if recorded.get("name") not in FOLDER_DATASETS and "val_fraction" not in recorded:
        return False  # a set with its own fixed val split (flowers): its config has nothing to carve with
    root = _folder(recorded.get("root"))
    if recorded.get("name") in FOLDER_DATASETS and root is not None and Path(root).is_dir() \
            and is_flat_folder(recorded):  # unlabeled: every picture trained, none carved (probe 163: the carve
        return False  # rebuilt for a fine-tune's check raised "holds images but no class folders")
    # as data/folder.py reads a folder: a train/ and a val/ (any case, any accepted spelling) are fixed splits
    return not (recorded.get("name") in FOLDER_DATASETS and root is not None and Path(root).is_dir()
                and split_dir(Path(root), TRAIN_DIR_NAMES) is not None
                and split_dir(Path(root), VAL_DIR_NAMES) is not None)


def model_labelled(data: DataBundle, classes: list[str], what: str = "the model") -> DataBundle:
    """`data` labelled as the model (`classes`) labels it — an image folder's class folders may name its classes in
    any order, a `/` in a class name written `_` (data/class_folders.py) — or CnnlabError when its labels would mean
    other classes."""
    return with_model_classes(data, classes, what, folder_data=data.name in FOLDER_DATASETS)
