"""A job as launchers see it: how many run at once, which earlier run it repeats, how its failure reads.

cnnlab rides the engines a user already has — Hydra's launchers (joblib, submitit on a laptop or on SLURM),
torchrun — and adds only what they lack:

- **Cores shared, not oversubscribed.** `launcher_parallelism` says how many jobs a launcher runs at once on
  this machine (joblib's `n_jobs`, every job of a `submitit_local` sweep; one per allocation on SLURM);
  cnnlab.app hands it to `cnnlab.environment.core_share`, which gives each job its share of the cores.
- **Work done once.** Every job is recorded with its identity (`JobIdentity`: command, overrides, config
  folders → a fingerprint; the SLURM job and restart count when there is one). `earlier_attempt` finds what a
  job already did: the same sweep job completed before (skipped — `rerun=true` runs it again), or an
  interrupted attempt of it to continue: the previous attempt of a requeued SLURM job, or the interrupted
  job of a sweep started again — never one whose image folder changed on disk since (steps/freshness.py).
- **Remote failures in one line.** `remote_job_error` turns submitit's "job failed" (a page of trace) into
  the job's own last error line and the path of its log.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from cnnlab.commands import COMMANDS
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import sweep_jobs
from cnnlab.runs import RESUMABLE_STATUSES, RunInfo, iter_runs
from cnnlab.wording import listed
from cnnlab.steps.freshness import Digests, changed_since
from cnnlab.steps.plan import fingerprint

log = logging.getLogger(__name__)

RERUN_ENV = "CNNLAB_RERUN"            # set by cnnlab.app from the launch option rerun=true
SWEEP_JOBS_ENV = "CNNLAB_SWEEP_JOBS"  # set by cnnlab.app: how many jobs the command line's sweep makes
SWEPT_ENV = "CNNLAB_SWEPT"            # set by cnnlab.app: the keys the command line's sweep varies and their values
RERUN_HINT = "add rerun=true to the same command to run completed jobs again"
_SLURM_VARS = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
               "array_task_id": "SLURM_ARRAY_TASK_ID", "restart_count": "SLURM_RESTART_COUNT"}


# --------------------------------------------------------------------------------------- jobs at once
def launcher_parallelism(launcher: Mapping[str, Any], sweep_jobs: int | None, cores: int) -> int:
    """How many jobs `launcher` (the job's `hydra.launcher` config) runs at once on this machine: joblib's
    n_jobs (-1 = one per core, -2 = all but one, as joblib reads it), every job of a submitit_local sweep,
    else 1 (the basic launcher runs one after another; a SLURM job has its allocation to itself) — never more
    than the sweep's `sweep_jobs` when that is known."""
    target = str(launcher.get("_target_") or "")
    if launcher.get("n_jobs") is not None:
        n_jobs = int(launcher["n_jobs"])
        at_once = cores + 1 + n_jobs if n_jobs < 0 else n_jobs
    elif "submitit" in target and target.endswith("LocalLauncher"):
        at_once = sweep_jobs or 1
    else:
        at_once = 1
    if sweep_jobs:
        at_once = min(at_once, sweep_jobs)
    return max(1, at_once)


def sweep_size(overrides: Iterable[str]) -> int | None:
    """How many jobs the command line's overrides make under Hydra's basic sweeper (`seed=1,2 lr=0.1,0.2`
    → 4); None when that cannot be told here (a glob over config groups, a malformed override)."""
    try:
        return len(sweep_jobs(list(overrides)))
    except Exception:  # noqa: BLE001 - only a better thread share is lost; Hydra reports real mistakes
        return None

# ------------------------------------------------------------------------------------- job identity
def slurm_job() -> dict[str, Any] | None:
    """The SLURM job this process belongs to (ids as text, restart_count as a number), None outside SLURM."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    found: dict[str, Any] = {key: os.environ.get(var) for key, var in _SLURM_VARS.items()}
    try:
        found["restart_count"] = int(found["restart_count"] or 0)
    except ValueError:
        found["restart_count"] = 0
    return found


def _slurm_key(slurm: Mapping[str, Any]) -> tuple[str, ...]:
    """What stays the same across a job's requeues: the array job and task, or the job id."""
    if slurm.get("array_job_id"):
        return str(slurm["array_job_id"]), str(slurm.get("array_task_id"))
    return (str(slurm.get("job_id")),)


@dataclass(frozen=True)
class JobIdentity:
    """What makes two runs the same job: the command, its overrides (any order) and the config folders
    (`common`: --config-dir and friends) → `fingerprint`; whether it was a sweep's job; its SLURM job."""

    command: str
    overrides: tuple[str, ...]
    multirun: bool
    num: int | None = None
    common: tuple[str, ...] = ()
    slurm: Mapping[str, Any] | None = field(default_factory=slurm_job)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.command, sorted(self.overrides), self.common)

    @property
    def name(self) -> str:
        """How the log names it: 'job #3' in a sweep; a run SLURM started: 'SLURM job 4242' (an array's task:
        'SLURM job 500_3'); else 'this run'."""
        if self.num is not None:
            return f"job #{self.num}"
        return f"SLURM job {'_'.join(_slurm_key(self.slurm))}" if self.slurm else "this run"

    @property
    def requeued(self) -> bool:
        """A SLURM job started again (preempted, timed out and requeued, or `scontrol requeue`)."""
        return bool(self.slurm) and int(self.slurm.get("restart_count") or 0) > 0

    def record(self) -> dict[str, Any]:
        """run.json's `job` section."""
        return {"fingerprint": self.fingerprint, "multirun": self.multirun, "num": self.num,
                **({"slurm": dict(self.slurm)} if self.slurm else {})}

    def is_attempt(self, run: RunInfo) -> bool:
        """`run` was an earlier attempt at this job: an earlier start of this requeued SLURM job, or the same
        sweep job (same fingerprint) of an earlier sweep."""
        job = run.data.get("job") or {}
        if run.command != self.command:
            return False
        return self.earlier_start(run) or \
            (self.multirun and bool(job.get("multirun")) and job.get("fingerprint") == self.fingerprint)

    def earlier_start(self, run: RunInfo) -> bool:
        """`run` is this requeued SLURM job (same job, or same array job and task) at a lower restart count, and
        this command of it: same settings (fingerprint). A batch script runs several commands under one job id —
        matched on the job alone, a requeue skipped every fine-tune of the script as "completed before" in the first
        one's run folder, the preempted one never continued (probe 122)."""
        job = run.data.get("job") or {}
        earlier = job.get("slurm")
        if not (self.requeued and isinstance(earlier, dict) and self.slurm):
            return False
        return _slurm_key(earlier) == _slurm_key(self.slurm) and job.get("fingerprint") == self.fingerprint and \
            int(earlier.get("restart_count") or 0) < int(self.slurm.get("restart_count") or 0)


@dataclass(frozen=True)
class EarlierAttempt:
    """What an earlier attempt means for this job: `skip` (it completed), `resume` (continue its last.pt)."""

    action: str
    run: RunInfo

    def returned_value(self) -> float | None:
        """What the job returns to a sweeper (Optuna optimises it) without running: the earlier val_acc."""
        value = (self.run.data.get("metrics") or {}).get("val_acc")
        return float(value) if isinstance(value, (int, float)) else None


def earlier_attempt(job: JobIdentity, outputs: Path, *, rerun: bool = False,
                    sweep_dir: Path | None = None) -> EarlierAttempt | None:
    """The run this job should not redo: a completed attempt (skip, unless `rerun`), else the newest interrupted,
    failed or killed attempt with a last.pt that no later run has continued (resume; for a resumable command).
    Only sweep jobs and requeued SLURM jobs look back: a plain command typed twice runs twice. `sweep_dir`: the
    job's sweep folder, looked in too (a sweep typed again into its `hydra.sweep.dir`, perhaps outside outputs/)."""
    if not (job.multirun or job.requeued):
        return None
    if job.command == "pipeline":  # it reuses or redoes each stage itself; a whole job skipped hid an edited
        return None                # experiment or changed images (probe 86), and running it again costs a check
    runs = list(iter_runs(Path(outputs) / job.command))
    # a sweep folder of its own outside outputs/<command>/ (those inside were just read)
    if sweep_dir is not None and not Path(sweep_dir).resolve().is_relative_to((Path(outputs) / job.command).resolve()):
        seen = {r.path.resolve() for r in runs}
        runs = sorted([*runs, *(r for r in iter_runs(Path(sweep_dir)) if r.path.resolve() not in seen)],
                      key=lambda r: (r.started_at, str(r.path)))
    attempts = [r for r in runs if job.is_attempt(r)]
    if not attempts:
        return None
    # Same settings, other images or another model to start from: an attempt whose image folder changed on disk
    # since (or whose model file was deleted, or whose `latest:` source names a newer run) is neither skipped nor
    # continued (steps/freshness.py); the job starts over on the folder as it is now.
    digests: Digests = {}  # one walk of the folder for all the attempts
    hashes: dict[str, str | None] = {}  # one read of each model they started from
    changed = {r.path: changed_since(r, digests=digests, outputs=Path(outputs), hashes=hashes) for r in attempts}
    if changed[attempts[-1].path]:
        log.info("%s: not reusing %s — %s", job.name, attempts[-1].path, changed[attempts[-1].path])
    attempts = [r for r in attempts if not changed[r.path]]
    if not attempts:
        return None
    completed = [r for r in attempts if r.status == "completed"]
    if completed and not rerun:
        return EarlierAttempt("skip", completed[-1])
    if not COMMANDS[job.command].resumable:
        return None
    # Continued: a later run took it over and got somewhere (completed, or wrote a last.pt of its own, which is
    # then the one to continue). A continuation that has not got that far yet — a DDP rank deciding while
    # rank 0 starts, an attempt killed in its first epoch — leaves it to continue.
    continued = {Path(str(r.data["resumed_from"])).resolve() for r in runs if r.data.get("resumed_from")
                 and (r.status == "completed" or r.artifact("checkpoint") is not None)}
    # A requeued job's previous start is over whatever its record says (SLURM restarts a job only once it
    # ended; on another node its `running` cannot be checked from here).
    resumable = [r for r in attempts if r.path.resolve() not in continued and r.artifact("checkpoint") is not None
                 and (r.status in RESUMABLE_STATUSES or (r.status == "running" and job.earlier_start(r)))]
    return EarlierAttempt("resume", resumable[-1]) if resumable else None


# ------------------------------------------------------------------------------------ remote failures
_TRACE = re.compile(r"failed during processing with trace:\s*-+\s*(?P<trace>.*?)\s*-+\s*You can check", re.S)
_LOG = re.compile(r"^\s*-\s*(?P<path>\S+_log\.err)\s*$", re.M)
_RESULT = re.compile(r"with path (?P<stem>\S+)_result\.pkl")
_STREAM = re.compile(r"Error stream produced:\s*-+\s*(?P<stream>.*)", re.S)
_ERRORISH = re.compile(r"error|killed|exception|traceback|signal|oom", re.I)


def remote_job_error(exc: BaseException) -> CnnlabError | None:
    """submitit's failure of a job (FailedJobError, UncompletedJobError: a page of the remote trace, "job
    failed") as one line: the job's own last error line and its log's path. None for any other exception."""
    if not type(exc).__module__.startswith("submitit"):
        return None
    text = str(exc)
    trace, log = _TRACE.search(text), _LOG.search(text)
    killed = trace is None and (trace := _STREAM.search(text)) is not None  # ended before it could report
    lines = [ln.strip() for ln in (trace.group(trace.lastgroup or 0) if trace else "").splitlines() if ln.strip()]
    if killed:  # its stream ends with whatever it last logged (an epoch's INFO line): only an error line is a cause
        last = next((ln for ln in reversed(lines) if _ERRORISH.search(ln) and " INFO " not in ln), None) or \
            "it ended without an error of its own (killed: by a signal, out of memory or past its time limit?)"
    else:
        last = next((ln for ln in reversed(lines) if not ln.startswith(("File ", "^", "~"))), None)
    if log is not None:
        where = log.group("path")
    elif (result := _RESULT.search(text)) is not None:
        where = f"{result.group('stem')}_log.err"
    else:
        where = None
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    if trace is None and where is None and "sbatch" in text:  # the submission failed: no job ran, no log to read
        return CnnlabError(f"SLURM did not take the jobs (sbatch failed: {first}); none ran",
                           fix="check the launcher's settings (hydra.launcher.partition, timeout_min, mem_gb, ...) "
                               "against your cluster — `sinfo -s` lists its partitions (docs/scale-out.md)")
    message = f"a launched job failed: {last or first}"
    return CnnlabError(message + (f" (log: {where})" if where else ""),
                       fix="read that log; fix the cause and run the same command again: completed jobs are "
                           "skipped")


_JOB_LOG = re.compile(r"\(job #(?P<num>\d+), log: (?P<log>[^()]+?/run\.log)\)")


def with_other_failed_jobs(error: CnnlabError) -> CnnlabError:
    """A failed sweep job's error ("... (job #2, log: SWEEP/2/run.log)", cnnlab.app) naming the sweep's other failed
    jobs too: Hydra raises the first failure once every job has run, and the others were said only in the lines
    above (probe 229: jobs #2 and #3 failed, the last line named #2 alone). `error` itself where none other failed."""
    found = _JOB_LOG.search(error.message)
    if found is None:
        return error
    sweep = Path(found.group("log")).parent.parent
    try:
        jobs = [folder for folder in sweep.iterdir() if folder.name.isdigit() and folder.is_dir()]
    except OSError:
        return error
    others = sorted(int(folder.name) for folder in jobs if folder.name != found.group("num")
                    and (folder / "run.json").is_file() and RunInfo.read(folder).status == "failed")
    if not others:
        return error
    failed = listed([f"#{num}" for num in sorted([int(found.group("num")), *others])], most=8)
    note = f"; {len(others) + 1} of the sweep's {len(jobs)} jobs failed: {failed}, each run.log beside this one " \
        "says why"
    located = CnnlabError(error.message[:found.end() - 1] + note + error.message[found.end() - 1:], fix=error.fix)
    located.exit_code = error.exit_code
    return located


def in_a_sweep() -> bool:
    """Whether this process runs a job of a Hydra sweep (`cnnlab CMD -m ...`): HydraConfig's mode, where it is set."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def swept_keys(overrides: Iterable[str]) -> dict[str, list[str] | None]:
    """The keys the overrides sweep (`finetune.mode=linear,partial`, `seed=range(3)`) → their values, None where they
    cannot be listed (an interval, a glob); {} when the overrides do not parse (Hydra reports that)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    except Exception:  # noqa: BLE001
        return {}
    swept: dict[str, list[str] | None] = {}
    for override in parsed:
        if override.is_sweep_override():
            try:
                swept[override.get_key_element()] = list(override.sweep_string_iterator())
            except Exception:  # noqa: BLE001 - not a discrete sweep
                swept[override.get_key_element()] = None
    return swept


def swept(*keys: str) -> bool:
    """Whether this process is a sweep's job whose sweep varies one of `keys`: on the command line (SWEPT_ENV, set by
    cnnlab.app) or in `hydra.sweeper.params` (an experiment's, Optuna's). A setting that only some of a sweep's jobs
    read is then said in the others, not refused (probe 144: a sweep that varied nothing it depends on only warned,
    and prune refused a sweep across importances that finetune let through)."""
    return any(key in _swept() for key in keys)


def swept_values(key: str) -> list[str] | None:
    """The values this process's sweep gives `key` (see `swept`); None when it does not sweep it or they cannot be
    listed."""
    return _swept().get(key)


def _swept() -> dict[str, list[str] | None]:
    """This sweep's varied keys → values: the command line's (SWEPT_ENV) and hydra.sweeper.params'; {} outside one."""
    if not in_a_sweep():
        return {}
    import json

    from hydra.core.hydra_config import HydraConfig

    try:
        found = dict(json.loads(os.environ.get(SWEPT_ENV) or "{}"))
    except (ValueError, TypeError):
        found = {}
    params = HydraConfig.get().sweeper.get("params") or {}
    found.update(swept_keys(f"{key}={value}" for key, value in params.items()))
    return found
