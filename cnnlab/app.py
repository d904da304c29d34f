"""The single Hydra entry point. `cnnlab CMD k=v` arrives here as `command=CMD k=v`.

Hydra composes the config, creates the run folder and configures logging; `execute` opens the
run record, dispatches to the command's pipeline and closes the record with its outcome: completed,
failed (a CnnlabError, a full disk, a bug) or interrupted (Ctrl-C, or SIGTERM — what schedulers send
before they kill a job — handled the same way).

Under a launcher (docs/scale-out.md) each job also takes its share of the cores (joblib, submitit_local),
is recorded with its identity, and skips or continues what an earlier attempt did (cnnlab/steps/jobs.py): a
sweep started again skips its completed jobs (`rerun=true` runs them again), a requeued SLURM job continues its
interrupted run.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import importlib
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationResolutionError

from cnnlab import conftree
from cnnlab.commands import COMMANDS, rerun_option, stage_rerun_note
from cnnlab.console import tolerate_narrow_encodings
from cnnlab.context import RunContext
from cnnlab.engine.trainer import forget_notes
from cnnlab.environment import (PARALLEL_JOBS_ENV, THREADS_ENV, apply_job_threads, cpu_info, fingerprint,
                                launched_ranks, lost_peer, lost_workers, shut_down_loaders)
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.errors_view import UserAbort, interpolation_error, out_of_memory_error
from cnnlab.fileio import disk_full_error, is_disk_full, name_too_long, name_too_long_error
from cnnlab.hydra_args import hydra_value, recorded_groups, resume_argument, resumes_a_run
from cnnlab.interrupts import interruption_behind, signals_as_interrupt, worker_deaths_quiet
from cnnlab.launch_checks import check_launcher_has_a_sweep
from cnnlab.runs import (PIPELINE_TAG_ENV, RUN_FILE, RunRecord, check_reads_unchanged, forget_reads,
                         no_checkpoint_reason, started_from)
from cnnlab.settings import START_FROM_RUN, check_config, check_experiment_is_read, check_nothing_deleted
from cnnlab.steps.recording import recorded_warnings
from cnnlab.steps.resume import save_effective_config
from cnnlab.steps.jobs import (RERUN_ENV, RERUN_HINT, SWEEP_JOBS_ENV, SWEPT_ENV, JobIdentity, earlier_attempt,
                               launcher_parallelism, remote_job_error, sweep_size, swept_keys,
                               with_other_failed_jobs)

log = logging.getLogger("cnnlab")


def new_run_dir(outputs: str, command: str, kind: str = "") -> str:
    """outputs/<command>/<date>/<HH-MM-SS>[-kind], reserved atomically so that two runs started in
    the same second (a pipeline's quick stages, parallel jobs) never share a folder."""
    now = _dt.datetime.now()
    parent = Path(outputs) / command / now.strftime("%Y-%m-%d")
    stem = now.strftime("%H-%M-%S") + (f"-{kind}" if kind else "")
    elsewhere = "write runs elsewhere with paths.outputs=DIR (or CNNLAB_OUTPUTS=DIR)"
    dangling = next((p for p in (parent, *parent.parents) if p.is_symlink() and not p.exists()), None)
    if dangling is not None:  # probe 235: mkdir found the link in the way 999 times, and the line said no more
        target = Path(os.readlink(dangling))
        try:  # the end of a chain of links (probe 237: out2 -> out1 -> nowhere was told to create out1)
            end: Path | None = dangling.resolve(strict=False)
        except RuntimeError:  # Python 3.11's word for a loop of links
            end = None
        if end is None or end.is_symlink():  # a loop: nothing to create
            raise CnnlabError(f"cannot create the run folder {parent}: {dangling} is a link in a loop",
                              fix=f"point {dangling} at a folder that exists, or {elsewhere}")
        raise CnnlabError(f"cannot create the run folder {parent}: {dangling} is a link to {target}, which does not "
                          "exist", fix=f"create {end}, point the link at a folder that exists, or {elsewhere}")
    blocking = next((p for p in (parent, *parent.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # a file where a folder of the run tree belongs: mkdir would fail deep in Hydra
        raise CnnlabError(f"cannot create the run folder {parent}: {blocking} is a file, not a folder",
                          fix=f"move or rename {blocking}, or {elsewhere}")
    root = Path(outputs).resolve()
    _MADE_HERE.update(p for p in (root, *root.parents) if not p.exists())  # a refusal removes these too, if empty
    for attempt in range(1, 1000):
        candidate = parent / (stem if attempt == 1 else f"{stem}_{attempt}")
        made = [p.resolve() for p in (parent, *parent.parents) if not p.exists()]  # its command and date folders
        try:
            candidate.mkdir(parents=True)  # parents again each time: a refused run removes its empty date folder
        except FileExistsError as exc:
            if candidate.exists() or candidate.is_symlink():  # this name is taken: the next one
                continue
            raise CnnlabError(f"cannot create the run folder {candidate}: {exc.filename} is in the way",
                              fix=elsewhere) from exc
        except OSError as exc:  # probe 98: a read-only outputs folder was Hydra's "OSError raised while resolving"
            raise CnnlabError(f"cannot create the run folder {candidate}: {(exc.strerror or str(exc)).lower()}",
                              fix=elsewhere) from exc
        _MADE_HERE.update([candidate.resolve(), *made])
        return str(candidate)
    raise CnnlabError(f"cannot create a run folder under {parent}: {stem} and 998 names after it are taken",
                      fix=f"move some of the folders there away, or {elsewhere}")


# The run folders new_run_dir made in this process (the outputs folder and the folders above it too, where it made
# them) and the sweep job folders job_subdir named before Hydra made them: the only ones a refusal or skip removes.
_MADE_HERE: set[Path] = set()
# Typed hydra.run.dir folders, with the names they held before this run (none of a run's own): a refusal removes
# what it wrote there, and only that.
_CLEARABLE: dict[Path, frozenset[str]] = {}
# What Hydra and the run record write into a run folder before the command's own work begins.
_FOLDER_BEFORE_WORK = {"run.json", "run.log", ".hydra"}


def _discard_run_folder(run_dir: Path, outputs: Path) -> bool:
    """Remove the folder of a run refused before it did any work (CnnlabError.before_work) — and its date and command
    folders when that leaves them empty — so that a typo adds no `failed` run. Only a folder made by this process
    (one named by hydra.run.dir only where it did not exist), holding nothing beyond what Hydra and run.json wrote at
    its start."""
    run_dir, outputs = run_dir.resolve(), outputs.resolve()
    before = _CLEARABLE.get(run_dir, frozenset())
    if (run_dir not in _MADE_HERE and run_dir not in _CLEARABLE) or not run_dir.is_dir() \
            or not {p.name for p in run_dir.iterdir()} - before <= _FOLDER_BEFORE_WORK:
        return False
    if run_dir not in _MADE_HERE:  # a typed folder, there before: what the run wrote removed, the rest kept
        for written in [p for p in run_dir.iterdir() if p.name not in before]:
            shutil.rmtree(written, ignore_errors=True) if written.is_dir() else written.unlink(missing_ok=True)
        return {p.name for p in run_dir.iterdir()} <= before
    shutil.rmtree(run_dir, ignore_errors=True)
    _remove_empty_folders(run_dir.parent, outputs)
    return not run_dir.exists()


def _link_to_earlier(job_dir: Path, earlier: Path) -> None:
    """In place of a skipped sweep job's folder, a link to the completed run it stands for, so that `cnnlab report
    SWEEP` counts every job of the sweep (probe 141: `-m seed=0,1,2` after `seed=0,1` reported one seed, the two
    done before being in another sweep's folder). Listings follow a link to a run once (runs._run_files). None where
    the run lies in this sweep folder already (the sweep typed again into its hydra.sweep.dir), or another link
    here names it; where links cannot be made, the skip line alone says where the run is."""
    sweep, target = job_dir.parent, earlier.resolve()
    if not sweep.is_dir() or target.is_relative_to(sweep.resolve()):
        return
    if any(p.is_symlink() and p.resolve() == target for p in sweep.iterdir()):
        return
    with contextlib.suppress(OSError):  # relative: a moved or copied outputs folder keeps its links (probe 145)
        job_dir.symlink_to(os.path.relpath(target, sweep.resolve()), target_is_directory=True)
        log.info("%s → %s: the sweep folder links the run it stands for", job_dir, target)


def _discard_unstarted_run_folders() -> None:
    """Remove the folders this process made that hold nothing beyond what Hydra writes at a run's start (no run.json:
    the run never began), deepest first: Hydra failed or was interrupted before the run began (probe 111: a working
    folder near PATH_MAX; probe 112: Ctrl-C in the second Hydra takes to start — each left a folder holding an empty
    .hydra/ and run.log, which no command lists)."""
    for folder in sorted(_MADE_HERE, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            if folder.is_dir() and {p.name for p in folder.iterdir()} <= _FOLDER_BEFORE_WORK - {RUN_FILE}:
                shutil.rmtree(folder)


def _release_unused_run_dirs(run_dir: Path, outputs: Path) -> None:
    """Remove the empty folders new_run_dir reserved in this process for another run than `run_dir`. Hydra resolves
    the base config's hydra.run.dir and hydra.sweep.dir while merging a file that sets them (`cnnlab pipeline` runs
    in its workspace), and each resolution reserved a folder: every pipeline left two empty ones in
    outputs/pipeline/<date>/."""
    run_dir, outputs = run_dir.resolve(), outputs.resolve()
    for folder in _MADE_HERE - {run_dir, *run_dir.parents}:
        _remove_empty_folders(folder, outputs)
    _MADE_HERE.intersection_update({run_dir, *run_dir.parents})


def _remove_empty_folders(folder: Path, outputs: Path) -> None:
    """rmdir `folder` and then its parents while they are empty, up to `outputs` — and `outputs` and the folders
    above it only where this process made them (a refused first command left an empty outputs/ behind)."""
    for path in (folder, *folder.parents):
        if outputs not in path.parents and path not in _MADE_HERE:
            return
        try:
            path.rmdir()  # only when empty
        except OSError:
            return


def _started_from(record: dict[str, Any]) -> str:
    """What a skipped job's line says it stands for: ' (from RUN)', the model it started from (probe 91), with a
    distill's student's own start (probe 94); '' for a run that started from none."""
    parts = [f"{role} from {named}" if role else str(named) for role, source in started_from(record).items()
             if (named := source.get("run") or source.get("path"))]
    return f" (from {'; '.join(parts)})" if parts else ""


def job_subdir(num: Any, sweep_dir: Any = None) -> str:
    """A sweep job's folder in the sweep folder: its number, as Hydra names it; `<num>-requeue<k>` for the k-th
    restart of a requeued SLURM job, so the attempt that was interrupted keeps its folder untouched. Where that
    folder already holds a run (the same sweep typed again into its `hydra.sweep.dir`, `rerun=true`), the job gets
    `<name>-again<j>` instead, the first not yet made: a job never writes over another run's record."""
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        restarts = 0
    name = f"{num}-requeue{restarts}" if restarts > 0 else str(num)
    folder = Path(str(sweep_dir)) if sweep_dir is not None else None
    # a link is taken too, also one whose run has gone (a skipped job's: _link_to_earlier; probe 145)
    if folder is not None and ((folder / name / RUN_FILE).exists() or (folder / name).is_symlink()):
        name = next(f"{name}-again{j}" for j in range(1, 10_000)
                    if not (folder / f"{name}-again{j}").exists() and not (folder / f"{name}-again{j}").is_symlink())
    if folder is not None and not (folder / name).exists():  # Hydra makes it next: a skipped job removes it
        _MADE_HERE.add((folder / name).resolve())
    return name


# use_cache: Hydra may resolve hydra.run.dir more than once; the folder must be picked once.
OmegaConf.register_new_resolver("cnnlab_run_dir", new_run_dir, use_cache=True, replace=True)
OmegaConf.register_new_resolver("cnnlab_job_subdir", job_subdir, replace=True)
OmegaConf.register_new_resolver("cnnlab_env_folder", conftree.folder_from_env, replace=True)


def check_source_is_read(source: Any, command: str) -> None:
    """`source=` given to a command that does not start from a source run: refused, not ignored (`cnnlab finetune
    source=RUN` trained from random weights, exit 0, with only a warning about random weights)."""
    if source in (None, "") or COMMANDS[command].reads_source:
        return
    start = START_FROM_RUN.get(command)  # the key that does start from a run, where the command has one
    raise CnnlabError(f"`cnnlab {command}` does not read source= (it was given {source})",
                      fix=f"use {start}={source} to start from that run" if start else "drop source=")


def check_model_is_read(source: Any, overrides: list[str], command: str) -> None:
    """`model=` / `model.*` given to a command that would not read it: refused, not ignored. Such a command takes
    its model from `source=` (`cnnlab evaluate source=RUN model.stem=imagenet` scored the run's own network, exit
    0), or has no model setting at all (distill: teacher=/student=; pipeline: the experiment's stages). bench reads
    model= only when it times a random zoo network (no source=)."""
    info = COMMANDS[command]
    given_source = source not in (None, "")
    if "model" in info.groups and not (info.reads_source and given_source):
        return
    for override in overrides:
        key = override.lstrip("~+").split("=", 1)[0]
        if key != "model" and not key.startswith("model."):
            continue
        if not info.reads_source:  # distill, pipeline: their networks come from elsewhere
            raise CnnlabError(f"`cnnlab {command}` has no model= setting: {override} would be ignored",
                              fix=f"drop {override}" + (f"; {info.model_fix}" if info.model_fix else ""))
        named = Path(str(source)).expanduser() if given_source else None
        if named is not None and named.suffix.lower() in (".pt", ".pth") and named.is_file():
            from cnnlab.engine.checkpoint import read_checkpoint

            read_checkpoint(named)  # a plain state dict brings no architecture: its own refusal first (probe 172)
        whose = f"source={source}" if given_source else "its source= run"
        either = " (or drop source= to use model=)" if "model" in info.groups else ""
        raise CnnlabError(f"`cnnlab {command}` uses the model of {whose}, which brings its own architecture "
                          f"and weights: {override} would be ignored", fix=f"drop {override}{either}")


def check_val_fraction_is_used(cfg: DictConfig, overrides: list[str], command: str) -> None:
    """A typed `dataset.val_fraction` on data whose val split is not carved from the training images (a folder with
    train/ and val/ of its own) would change nothing yet be recorded as used: refused (steps/sources.py
    refuse_unused_val_fraction; commands that read a source's data — a teacher's for distill — check the data they
    rebuild, in source_data and distill_teacher; a resume, the run's data: steps/resume.apply_resume)."""
    info = COMMANDS[command]
    role = info.source_dataset_role
    weights = OmegaConf.select(cfg, f"{role}.weights", default=None) if role else None
    if cfg.get("source") not in (None, "") or info.reads_source_data(weights) or cfg.get("dataset") is None or \
            resumes_a_run(overrides) or \
            not any(o.split("=", 1)[0].lstrip("~+") == "dataset.val_fraction" for o in overrides):
        return
    from cnnlab.steps.sources import refuse_unused_val_fraction  # torchvision: imported only when the key was typed

    refuse_unused_val_fraction(OmegaConf.to_container(cfg.dataset, resolve=True))


def _too_long(exc: BaseException) -> CnnlabError | None:
    """The one line for a path the system refuses as too long (fileio.name_too_long), as a refusal of the inputs:
    the run folder goes where it holds nothing beyond its start (probe 111: a 300-character source= or dataset.root=
    left a failed run)."""
    cause = name_too_long(exc)
    if cause is None:
        return None
    error = name_too_long_error(cause)
    error.before_work = True
    return error


def peer_gone_error(exc: BaseException, command: str, record: RunRecord, ctx: RunContext) -> CnnlabError | None:
    """The one line for a DDP rank whose peer went away mid-run (environment.lost_peer; probe 74: `kill -9` of rank 1
    gave rank 0 a 40-line traceback and gloo's "Connection reset by peer"), with the fix that continues the run;
    None for any other exception."""
    cause = lost_peer(exc)
    if cause is None:
        return None
    resumable = COMMANDS[command].resumable and _checkpoint_kept(record)
    then = f"continue from the last epoch: `torchrun <the same options> -m cnnlab {command} {_resume_word(ctx)}`" \
        if resumable else f"start the same torchrun launch of `cnnlab {command}` again"
    return CnnlabError(f"another rank of this torchrun job stopped, and this one cannot go on without it ({cause})",
                       fix=f"torchrun names the rank that failed and why; then {then}")


def workers_gone_error(exc: BaseException, command: str, record: RunRecord, ctx: RunContext) -> CnnlabError | None:
    """The one line for DataLoader worker processes that failed mid-run (environment.lost_workers): a worker the
    OOM killer took, a container's /dev/shm too small, the socket under /tmp that a clean-up removed (a 15-epoch
    ResNet-18 run died so after 2 epochs, "FileNotFoundError ... this is a bug in cnnlab"). None for any other
    exception. What continues the run, and what reads the images without workers should it happen again."""
    cause = lost_workers(exc)
    if cause is None:
        return None
    shut_down_loaders()  # else its dead worker is reported again by the next loader of this process
    resumable = COMMANDS[command].resumable and _checkpoint_kept(record)
    stage = stage_rerun_note(command, _checkpoint_kept(record), bool(record.data.get("resumed_from")))
    again = f"run the same `cnnlab pipeline` again ({stage})" if os.environ.get(PIPELINE_TAG_ENV) \
        else f"run the same `cnnlab {command} -m ...` sweep again (it skips the completed jobs and continues this " \
             "one)" if ctx.multirun and resumable \
        else f"continue from the last epoch: `cnnlab {command} {_resume_word(ctx)}`" if resumable \
        else f"run the same `cnnlab {command}` again" + (" without hydra.run.dir= (its folder holds this run's "
                                                         "record now)" if ctx.run_dir.resolve() in _CLEARABLE else "")
    return CnnlabError(f"the DataLoader's worker processes failed ({cause})",
                       fix=f"{again}; should it recur, trainer.workers=0 reads the images in the main process (a "
                           "worker killed by a signal most often ran out of memory: see `dmesg`; in a container, "
                           "a larger --shm-size)")


def _resume_word(ctx: RunContext) -> str:
    return resume_argument(ctx.command, ctx.run_dir, ctx.outputs)


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
    return launched_ranks().rank


@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """os.environ with `values` set (None: left as it is) within the block — child processes (launcher workers,
    a pipeline's stages) inherit them — and restored after it (a loky worker runs several jobs)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update({key: value for key, value in values.items() if value is not None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _config_sources(hydra_cfg: Any) -> list[str]:
    """The config folders and primary config that shaped this job besides its overrides (part of its identity)."""
    files = [s for s in hydra_cfg.runtime.config_sources
             if s.provider in ("command-line", "main") and s.schema == "file"]
    sources = [f"{s.provider}:{s.path}" for s in files]
    # what the folders say for this job's choices, not only where they are (probe 86)
    digest = conftree.config_files_digest([Path(str(s.path)) for s in files], dict(hydra_cfg.runtime.choices))
    return [*sources, f"config_name:{hydra_cfg.job.config_name}", *([f"config_files:{digest}"] if digest else [])]


# At most this many of a sweep's jobs (group choices crossed) are looked at for a config file that is not a mapping.
_MAX_JOBS_CHECKED = 256


def list_file_error(overrides: Sequence[str], config_dirs: Sequence[Path] = (),
                    config_name: str | None = "config") -> CnnlabError | None:
    """The error for the first file that composing `overrides` loads — a group choice, or a file in the defaults list
    of one (`override /dataset: mine`, `/dataset/mine@ds`) — whose top level is not a mapping; None when all are
    mappings, or when Hydra cannot tell its defaults list (it reports why itself). Hydra merges such a file without a
    word (under its group's key: `experiment=mine` is ignored), or fails on it without naming it: a traceback for
    `dataset.x=v` into a list, "Error merging override" for `+dataset.x=v`, two lines for a `_global_` list."""
    if not config_dirs:  # cnnlab's own files are mappings (tests/test_conf.py); a job then pays nothing here
        return None
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_config_search_path("pkg://cnnlab.conf")  # as @hydra.main below, with --config-dir
    for folder in config_dirs:
        search_path.prepend("command-line", f"file://{Path(folder).resolve()}", SearchPathQuery(provider="schema"))
    try:
        defaults = ConfigLoaderImpl(search_path).compute_defaults_list(config_name, list(overrides), RunMode.RUN)
    except Exception:  # noqa: BLE001 - Hydra's own error then stands
        return None
    for default in defaults.defaults:
        problem = conftree.not_a_mapping_at(default.config_path, config_dirs) if default.config_path else None
        if problem:
            return CnnlabError(problem, fix=conftree.MAPPING_FIX)
    return None


def _jobs_overrides(overrides: Sequence[str]) -> list[list[str]]:
    """A sweep's overrides as the overrides of its jobs, for their defaults lists: the choices of config groups
    crossed (up to _MAX_JOBS_CHECKED jobs), one value of a setting (no file depends on `dataset.image_size=16,32`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    lists = []
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            lists.append([override.input_line])
        elif override.is_discrete_sweep():
            values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            lists.append(values[:1] if "." in override.key_or_group else values)
    return [list(job) for job in itertools.islice(itertools.product(*lists), _MAX_JOBS_CHECKED)]


def _named_list_file(argv: Sequence[str], exc: BaseException) -> CnnlabError | None:
    """The file that composing the Hydra command line `argv` failed on (`exc`), where Hydra does not name it: one
    nested past the recursion limit, else list_file_error() (each job of a sweep); None when `argv` does not parse."""
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
        jobs = _jobs_overrides(args.overrides) if args.multirun else [list(args.overrides)]
    except (Exception, SystemExit):  # noqa: BLE001 - Hydra's own error then stands
        return None
    folders = [Path(args.config_dir).expanduser()] if args.config_dir else []
    typed = max(((o, conftree.value_depth(o)) for o in args.overrides), key=lambda found: found[1], default=None)
    if isinstance(exc, RecursionError) and typed is not None and typed[1] > 50:  # probe 147: a traceback
        return CnnlabError(f"the value of {typed[0].partition('=')[0]}= nests lists and mappings {typed[1]} levels "
                           f"deep, more than the config reader can follow (it recurses for every level, up to Python's "
                           f"limit of {sys.getrecursionlimit()} calls)", fix=conftree.NESTING_FIX)
    choices = [o.lstrip("+").replace("=", "/", 1) for o in args.overrides if "." not in o.partition("=")[0]]
    deep = conftree.nested_too_deep(folders, choices) if isinstance(exc, RecursionError) else None
    if deep is not None:
        return CnnlabError(f"{deep[0]} nests lists and mappings {conftree.levels_text(deep[1])} deep, more than the "
                           f"config reader can follow (it recurses for every level, up to Python's limit of "
                           f"{sys.getrecursionlimit()} calls)", fix=conftree.NESTING_FIX)
    return next(filter(None, (list_file_error(job, folders, args.config_name or "config") for job in jobs)), None)



def _raised_in_a_job(exc: BaseException) -> bool:
    """Whether `exc` came out of a job's run (its config composed, its files checked) rather than its composition."""
    return any(frame.f_code is _execute.__code__ for frame, _ in traceback.walk_tb(exc.__traceback__))


def check_config_files(hydra_cfg: Any) -> None:
    """Raise list_file_error() for this job's composition: a file that is not a mapping, which Hydra merged silently;
    and refuse a --config-dir file the job chose that cnnlab's own file of that name hides (conftree.shadowed_file)."""
    dirs = conftree.user_config_dirs(hydra_cfg)
    shadowed = conftree.shadowed_file(hydra_cfg.runtime.choices, dirs, hydra_cfg.job.config_name or "config")
    if shadowed is not None:
        message, fix = conftree.shadowed_message(*shadowed)
        raise CnnlabError(message, fix=fix)
    error = list_file_error([*hydra_cfg.overrides.hydra, *hydra_cfg.overrides.task],
                            conftree.user_config_dirs(hydra_cfg), hydra_cfg.job.config_name)
    if error is not None:
        raise error


def execute(cfg: DictConfig) -> float | None:
    """Run one job: its share of the cores, then the pipeline of the chosen command, bracketed by its run record."""
    tolerate_narrow_encodings()  # a launcher's worker (joblib, submitit) is a process cli.run never set up
    hydra_cfg = HydraConfig.get()
    parallel = None
    if hydra_cfg.mode == RunMode.MULTIRUN:  # jobs side by side: each its share (× any enclosing job's count)
        sweep = os.environ.get(SWEEP_JOBS_ENV)
        at_once = launcher_parallelism(hydra_cfg.launcher, int(sweep) if sweep else None,
                                       cpu_info()["usable_cores"] or 1)
        parallel = str(at_once * int(os.environ.get(PARALLEL_JOBS_ENV) or 1))
    with _environ(**{PARALLEL_JOBS_ENV: parallel}):
        return _execute(cfg, hydra_cfg)


def _execute(cfg: DictConfig, hydra_cfg: Any) -> float | None:
    command = hydra_cfg.runtime.choices["command"]
    pipeline = importlib.import_module(COMMANDS[command].pipeline)
    run_dir = Path(hydra_cfg.runtime.output_dir)
    is_main = _rank() == 0
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    records = COMMANDS[command].records_run
    typed = [str(o) for o in OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False) or []]
    try:  # every `${...}` resolves, before anything is recorded: one line and no folder, where one does not
        overrides = list(hydra_cfg.overrides.task)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except InterpolationResolutionError as exc:
        raise UserAbort(interpolation_error(exc, typed, dict(hydra_cfg.runtime.choices))) from None
    threads = apply_job_threads()
    if is_main:
        _release_unused_run_dirs(run_dir, Path(cfg.paths.outputs))
    job = JobIdentity(command, tuple(overrides), multirun, hydra_cfg.job.get("num") if multirun else None,
                      tuple(_config_sources(hydra_cfg)))
    # Every DDP rank decides alike (from the same records, before any of them writes a checkpoint).
    before = earlier_attempt(job, Path(cfg.paths.outputs), rerun=bool(os.environ.get(RERUN_ENV)),
                             sweep_dir=run_dir.parent if multirun else None) \
        if records and cfg.get("resume") in (None, False) else None
    if before is not None and before.action == "skip":
        log.info("%s completed before in %s%s: skipped — %s", job.name, before.run.path,
                 _started_from(before.run.data), RERUN_HINT)
        if is_main:  # the folder Hydra made for it holds only Hydra's files: a skipped job leaves nothing behind
            if _discard_run_folder(run_dir, Path(cfg.paths.outputs)) and multirun:
                _link_to_earlier(run_dir, before.run.path)
        return before.returned_value()
    if before is not None:  # an interrupted attempt of this very job: continue it (a new run, resumed_from)
        log.info("%s continues its interrupted attempt %s (%s)", job.name, before.run.path, before.run.status)
        with open_dict(cfg):
            cfg.resume = str(before.run.path)
    try:
        record = RunRecord.start(run_dir, command, overrides=overrides,
                                 environment=fingerprint() if records else {}, enabled=is_main and records)
    except CnnlabError as taken:  # the folder is another run's: nothing of this one is written there
        raise UserAbort(taken) from None
    record.update(job=job.record())
    if os.environ.get(PIPELINE_TAG_ENV):  # a stage of `cnnlab pipeline`: how a re-run recognises it
        record.update(pipeline=json.loads(os.environ[PIPELINE_TAG_ENV]))
    ctx = RunContext(command=command, run_dir=run_dir, outputs=Path(cfg.paths.outputs), record=record,
                     overrides=overrides, multirun=multirun, is_main=is_main)
    forget_notes()  # each job's run.log says its own once-only notes (probe 95)
    forget_reads()
    checked = False  # an interrupt before the settings are checked leaves no run, as a refusal does
    with signals_as_interrupt():
        try:
            # Settings are checked once, here, where they enter: lower layers never see a wrong type or range.
            with found_before_work():
                check_config_files(hydra_cfg)
                check_launcher_has_a_sweep(hydra_cfg.runtime.choices.get("hydra/launcher"), multirun)
                check_nothing_deleted(overrides, command)  # first: a deleted key is missing from what check_config sees
                # a recipe first: its `pipeline:` is no setting of this command (probe 137: `pipeline: null` read
                # "pipeline is not a setting cnnlab reads — did you mean pipeline?")
                check_experiment_is_read(hydra_cfg.runtime.choices.get("experiment") or next(
                    (o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("experiment=")), None),
                    set(cfg), command)
                composed = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
                check_config(composed, command,  # type: ignore[arg-type]
                             recorded=recorded_groups(command, overrides), typed=overrides)
                check_source_is_read(cfg.get("source"), command)
                check_model_is_read(cfg.get("source"), overrides, command)
                check_val_fraction_is_used(cfg, overrides, command)
                if hasattr(pipeline, "check"):  # the settings the command parses itself (prune.method=nosuch)
                    pipeline.check(cfg)
            checked = True
            if is_main and records:  # after the checks: a refused run's folder is removed (_discard_run_folder)
                log.info("cnnlab %s → %s", command, run_dir)
                save_effective_config(cfg, ctx)
                if threads["source"] == "share":
                    log.info("%d intra-op thread(s): the share of %d usable cores among %d job(s) at once",
                             threads["torch"], threads["usable_cores"], threads["jobs_in_parallel"])
            with recorded_warnings(ctx):  # a warning the data builders mark RUN_WARNING lands in run.json too
                metrics = pipeline.run(cfg, ctx) or {}
            check_reads_unchanged()  # the model files it read are the ones it resolved, checked and recorded
        except SystemExit as stop:  # submitit exits so once it has requeued a job on the scheduler's warning signal
            _close(record, "interrupted", error=f"interrupted (exit {stop.code}, e.g. requeued by submitit)")
            raise
        except BaseException as exc:
            with worker_deaths_quiet():  # a lost worker's signal again, inside this handling, is no news
                if (interrupted := interruption_behind(exc)) is not None:  # Ctrl-C, or an error while unwinding one
                    if checked or multirun or not (is_main and records) \
                            or not _discard_run_folder(run_dir, Path(cfg.paths.outputs)):  # probe 112
                        _close(record, "interrupted", error=f"interrupted ({interrupted.how})")
                    interrupted.checkpoint_kept = COMMANDS[command].resumable and _checkpoint_kept(record)
                    interrupted.no_checkpoint = no_checkpoint_reason(record.data)
                    interrupted.resume = resume_argument(command, run_dir, Path(cfg.paths.outputs))
                    if interrupted is exc:
                        raise
                    raise interrupted from exc
                if is_disk_full(exc) or is_disk_full(exc.__cause__):  # type: ignore[arg-type]
                    logging.raiseExceptions = False  # the log file's writes fail too: no traceback per log line
                # A full disk met outside fileio's atomic writes (which map it themselves) is a user error too.
                error = exc if isinstance(exc, CnnlabError) else \
                    disk_full_error(exc) if is_disk_full(exc) else _too_long(exc) or \
                    out_of_memory_error(exc, overrides) or peer_gone_error(exc, command, record, ctx) \
                    or workers_gone_error(exc, command, record, ctx)  # type: ignore
                if error is None:  # a bug: the traceback is shown
                    _close(record, "failed", error=f"{type(exc).__name__}: {exc}")
                    raise
                # A refusal in a sweep stays a failed job (Hydra lists it); a lone run refused before work leaves
                # nothing.
                if not (error.before_work and not multirun and is_main and records
                        and _discard_run_folder(run_dir, Path(cfg.paths.outputs))):
                    _close(record, "failed", error=error.one_line())
                if multirun:  # let Hydra record the failure and carry on with the other jobs; say where its log is
                    log.error("job #%s failed: %s", job.num, error.one_line())  # the job's log says why, too
                    located = CnnlabError(f"{error.message} (job #{job.num}, log: {run_dir / 'run.log'})",
                                          fix=error.fix)
                    located.exit_code = error.exit_code
                    raise located from exc
                raise UserAbort(error) from None
        record.finish("completed", metrics=metrics)
        if is_main and records:
            log.info("cnnlab %s completed: %s", command, run_dir)
    primary = metrics.get("val_acc")  # sweepers (e.g. Optuna) optimise the returned value
    return float(primary) if isinstance(primary, (int, float)) else None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    return execute(cfg)


def main(records_run: bool = True, named_run_dir: tuple[Path, Sequence[Path], frozenset[str]] | None = None) -> None:
    """Entry used by cnnlab.cli. Runs that keep no record (read-only tools like `inspect`) and DDP
    ranks > 0 get a throw-away folder: the run folder and its log belong to rank 0. `named_run_dir`: a typed
    hydra.run.dir, the folders of it and above it that did not exist and the names it held
    (launch_checks.check_run_dir_is_new), which a refusal leaves as they were."""
    if named_run_dir is not None:
        _CLEARABLE[named_run_dir[0].resolve()] = named_run_dir[2]
        _MADE_HERE.update(p.resolve() for p in named_run_dir[1])
    command = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("command=")), None)
    if command:
        os.environ["CNNLAB_COMMAND"] = command
    rank = _rank()
    if rank > 0 or not records_run:
        if "${" in tempfile.gettempdir():  # Hydra resolves it again in its own paths (probe 106: "key 'x' not found")
            raise CnnlabError(f"the temporary folder {tempfile.gettempdir()} holds `${{`, which Hydra reads as an "
                              "interpolation", fix="set TMPDIR to a folder without it, e.g. TMPDIR=/tmp")
        scratch = tempfile.mkdtemp(prefix=f"cnnlab-{command or 'run'}-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        logging_choice = "disabled" if rank > 0 else "cnnlab_console"
        sys.argv += [f"hydra.run.dir={hydra_value(scratch)}", "hydra.output_subdir=null",
                     f"hydra/job_logging={logging_choice}", "hydra/hydra_logging=disabled"]
    rerun = _take_rerun_option()
    multirun = any(a in ("-m", "--multirun") for a in sys.argv[1:])
    typed = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    sweep = sweep_size(typed) if multirun else None
    varied = json.dumps(swept_keys(typed)) if multirun else None
    omp = os.environ.get("OMP_NUM_THREADS", "")
    # What jobs (in this process, a launcher's workers, submitted jobs) inherit: the launch options, the sweep's
    # size (for the thread share) and the user's explicit thread count.
    with _environ(**{RERUN_ENV: "1" if rerun else None, SWEEP_JOBS_ENV: str(sweep) if sweep else None,
                     SWEPT_ENV: varied,
                     THREADS_ENV: omp if omp.isdigit() and int(omp) > 0 and THREADS_ENV not in os.environ else None}):
        try:
            # a SIGTERM while Hydra starts a run (a pipeline stopped as a stage starts: probe 143) is an interrupt too,
            # so the folder it made is removed below, not left holding .hydra/ and an empty run.log
            with signals_as_interrupt(), _mode_from_the_command_line():
                _hydra_main()
            if any(a in ("--cfg", "-c") or a.startswith(("--cfg=", "-c=")) for a in sys.argv[1:]):
                # the config shown, no job run: the run folder its resolving made is empty (`cnnlab pipeline --cfg
                # job` left outputs/pipeline/<date>/<time>/)
                _discard_unstarted_run_folders()
        except (KeyboardInterrupt, UserAbort):  # a refusal before the run record: no half-written folder (probe 130)
            _discard_unstarted_run_folders()
            raise
        except Exception as exc:
            # Hydra failed before the job began (composing, its .hydra/ files under a deep folder): the folders its
            # resolving made hold no run record (probe 197: a typed stage key left two empty ones behind)
            _discard_unstarted_run_folders()
            if name_too_long(exc) is not None:
                raise
            remote = remote_job_error(exc)  # submitit's "job failed" page → the job's one line and its log
            if remote is None and multirun and isinstance(exc, CnnlabError):  # and the sweep's other failed jobs
                remote = noted if (noted := with_other_failed_jobs(exc)) is not exc else None
            if remote is None and not isinstance(exc, CnnlabError) and not _raised_in_a_job(exc):
                remote = _named_list_file(sys.argv[1:], exc)  # composing failed: on a file that is not a mapping?
            if remote is None:
                raise
            raise UserAbort(remote) from None


@contextlib.contextmanager
def _mode_from_the_command_line() -> Iterator[None]:
    """Hydra 1.3 composes the whole config once only to read `hydra.mode` (`Hydra.get_mode`), then again to run the
    job: ~0.2 s of every command. A cnnlab run's mode is the command line's (`-m`, as every sweep, launcher and
    job count here reads it; or a typed `hydra.mode=`), so the first compose is skipped unless `hydra.mode=` was
    typed; with no mode, Hydra's `_run_app` sets `hydra.mode=RUN`, or MULTIRUN for `-m`, as it did before."""
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra, "get_mode", None)
    if original is None or any(a.lstrip("+").startswith("hydra.mode=") for a in sys.argv[1:]):
        yield
        return
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = original  # type: ignore[method-assign]


def _take_rerun_option() -> bool:
    """Remove `rerun=true|false` from the command line and return it: a launch option (run a sweep's completed
    jobs again), not a setting of the jobs — it must not change their overrides, which identify them."""
    rerun = False
    for arg in [a for a in sys.argv[1:] if rerun_option(a) is not None]:
        sys.argv.remove(arg)
        rerun = bool(rerun_option(arg))
    return rerun
