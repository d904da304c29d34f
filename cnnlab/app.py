"""The single Hydra entry point. `cnnlab CMD k=v` arrives here as `command=CMD k=v`.

Hydra composes the config, creates the run folder and configures logging; `execute` opens the
run record, dispatches to the command's pipeline and closes the record with its outcome: completed,
failed (a CnnlabError, a full disk, a bug) or interrupted (Ctrl-C, or SIGTERM — what schedulers send
before they kill a job — handled the same way).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import importlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cnnlab.commands import COMMANDS
from cnnlab.context import RunContext
from cnnlab.environment import fingerprint
from cnnlab.errors import CnnlabError
from cnnlab.errors_view import UserAbort
from cnnlab.fileio import disk_full_error, is_disk_full
from cnnlab.runs import PIPELINE_TAG_ENV, RunRecord
from cnnlab.settings import check_config

log = logging.getLogger("cnnlab")


def new_run_dir(outputs: str, command: str, kind: str = "") -> str:
    """outputs/<command>/<date>/<HH-MM-SS>[-kind], reserved atomically so that two runs started in
    the same second (a pipeline's quick stages, parallel jobs) never share a folder."""
    now = _dt.datetime.now()
    parent = Path(outputs) / command / now.strftime("%Y-%m-%d")
    stem = now.strftime("%H-%M-%S") + (f"-{kind}" if kind else "")
    blocking = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # a file where a folder of the run tree belongs: mkdir would fail deep in Hydra
        raise CnnlabError(f"cannot create the run folder {parent}: {blocking} is a file, not a folder",
                          fix=f"move or rename {blocking}, or write runs elsewhere with paths.outputs=DIR "
                              f"(or CNNLAB_OUTPUTS=DIR)")
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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a termination signal, with what the command line's one-line hint needs
    (cnnlab.commands.interrupt_hint): how it stopped, the exit code, whether a checkpoint was kept."""

    def __init__(self, how: str = "Ctrl-C", *, exit_code: int = 130) -> None:
        super().__init__(how)
        self.how = how
        self.exit_code = exit_code
        self.checkpoint_kept = False


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM stops the run like Ctrl-C (Interrupted, exit code 143): the record says
    interrupted and the last checkpoint stays resumable. Python handles signals in the main thread only;
    elsewhere (a launcher's worker thread) SIGTERM keeps its default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signum, signal.SIG_IGN)  # a repeated SIGTERM must not cut the clean-up short
        raise Interrupted(signal.Signals(signum).name, exit_code=128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _checkpoint_kept(record: RunRecord) -> bool:
    rel = (record.data.get("artifacts") or {}).get("checkpoint")
    return bool(rel) and (record.run_dir / rel).is_file()


def _close(record: RunRecord, status: str, **outcome: Any) -> None:
    """Record how the run ended. A disk too full even for run.json must not hide the error that ended the
    run: the record then still says running, and reads `dead` once this process has exited."""
    try:
        record.finish(status, **outcome)
    except (OSError, CnnlabError) as exc:
        log.warning("run.json could not be updated to '%s': %s", status,
                    exc.one_line() if isinstance(exc, CnnlabError) else exc)


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
    with terminate_as_interrupt():
        try:
            # Settings are checked once, here, where they enter: lower layers never see a wrong type or range.
            check_config(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), command)  # type: ignore[arg-type]
            metrics = pipeline.run(cfg, ctx) or {}
        except KeyboardInterrupt as stop:
            interrupted = stop if isinstance(stop, Interrupted) else Interrupted()
            _close(record, "interrupted", error=f"interrupted ({interrupted.how})")
            interrupted.checkpoint_kept = COMMANDS[command].resumable and _checkpoint_kept(record)
            if interrupted is stop:
                raise
            raise interrupted from stop
        except BaseException as exc:
            if is_disk_full(exc) or is_disk_full(exc.__cause__):  # type: ignore[arg-type]
                logging.raiseExceptions = False  # the log file's writes fail too: no traceback per log line
            # A full disk met outside fileio's atomic writes (which map it themselves) is a user error too.
            error = exc if isinstance(exc, CnnlabError) else \
                disk_full_error(exc) if is_disk_full(exc) else None  # type: ignore[arg-type]
            if error is None:  # a bug: the traceback is shown
                _close(record, "failed", error=f"{type(exc).__name__}: {exc}")
                raise
            _close(record, "failed", error=error.one_line())
            if multirun:  # let Hydra record the failure and carry on with the other jobs
                if error is exc:
                    raise
                raise error from exc
            raise UserAbort(error) from None
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
