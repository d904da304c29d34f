"""The single Hydra entry point. `cnnlab CMD k=v` arrives here as `command=CMD k=v`.

Hydra composes the config, creates the run folder and configures logging; `execute` opens the
run record, dispatches to the command's pipeline and closes the record with its outcome.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnnlab.commands import COMMANDS
from cnnlab.context import RunContext
from cnnlab.environment import fingerprint
from cnnlab.errors import CnnlabError
from cnnlab.errors_view import UserAbort
from cnnlab.runs import PIPELINE_TAG_ENV, RunRecord

log = logging.getLogger("cnnlab")


def new_run_dir(outputs: str, command: str, kind: str = "") -> str:
    """outputs/<command>/<date>/<HH-MM-SS>[-kind], reserved atomically so that two runs started in
    the same second (a pipeline's quick stages, parallel jobs) never share a folder."""
    now = _dt.datetime.now()
    parent = Path(outputs) / command / now.strftime("%Y-%m-%d")
    stem = now.strftime("%H-%M-%S") + (f"-{kind}" if kind else "")
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = parent / (stem if attempt == 1 else f"{stem}_{attempt}")
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            continue
    raise CnnlabError(f"cannot create a run folder under {parent}")


# use_cache: Hydra may resolve hydra.run.dir more than once; the folder must be picked once.
OmegaConf.register_new_resolver("cnnlab_run_dir", new_run_dir, use_cache=True, replace=True)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def execute(cfg: DictConfig) -> float | None:
    """Run one job: the pipeline of the chosen command, bracketed by its run record."""
    hydra_cfg = HydraConfig.get()
    command = hydra_cfg.runtime.choices["command"]
    pipeline = importlib.import_module(COMMANDS[command].pipeline)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    is_main = _rank() == 0
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    records = COMMANDS[command].records_run
    record = RunRecord.start(run_dir, command, overrides=list(hydra_cfg.overrides.task),
                             environment=fingerprint() if records else {}, enabled=is_main and records)
    if os.environ.get(PIPELINE_TAG_ENV):  # a stage of `cnnlab pipeline`: how a re-run recognises it
        record.update(pipeline=json.loads(os.environ[PIPELINE_TAG_ENV]))
    ctx = RunContext(command=command, run_dir=run_dir, outputs=Path(cfg.paths.outputs), record=record,
                     overrides=list(hydra_cfg.overrides.task), multirun=multirun, is_main=is_main)
    if is_main and records:
        log.info("cnnlab %s → %s", command, run_dir)
    try:
        metrics = pipeline.run(cfg, ctx) or {}
    except CnnlabError as err:
        record.finish("failed", error=err.one_line())
        if multirun:  # let Hydra record the failure and carry on with the other jobs
            raise
        raise UserAbort(err) from None
    except KeyboardInterrupt:
        record.finish("interrupted", error="interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        record.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    record.finish("completed", metrics=metrics)
    primary = metrics.get("val_acc")  # sweepers (e.g. Optuna) optimise the returned value
    return float(primary) if isinstance(primary, (int, float)) else None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    return execute(cfg)


def main(records_run: bool = True) -> None:
    """Entry used by cnnlab.cli. Runs that keep no record (read-only tools like `inspect`) and DDP
    ranks > 0 get a throw-away folder: the run folder and its log belong to rank 0."""
    command = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("command=")), None)
    if command:
        os.environ["CNNLAB_COMMAND"] = command
    rank = _rank()
    if rank > 0 or not records_run:
        scratch = tempfile.mkdtemp(prefix=f"cnnlab-{command or 'run'}-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        logging_choice = "disabled" if rank > 0 else "cnnlab_console"
        sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null",
                     f"hydra/job_logging={logging_choice}", "hydra/hydra_logging=disabled"]
    _hydra_main()
