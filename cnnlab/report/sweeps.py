"""The jobs of a sweep that never started: a sweep stopped (Ctrl-C, a failed job under the basic launcher) before
its last jobs leaves no run of theirs, and the report's "2 of 3 seeds" counted only the runs it found (probe 206:
a sweep over seed=0,1,2 stopped in job #1 read "1 of 2", the unstarted seed 2 unsaid)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from cnnlab.hydra_args import sweep_jobs
from cnnlab.runs import RunInfo, process_alive

SWEEP_FILE = "multirun.yaml"  # Hydra's record of a sweep, written in its folder before the first job


def planned_jobs(sweep: Path) -> list[tuple[list[str], list[str]]] | None:
    """Each job's overrides, by job number, as Hydra's basic sweeper makes them from the sweep's command line
    (`seed=0,1 optim.lr=0.1,0.2` → the product, the last key varying fastest; BasicSweeper.split_arguments): (all of
    them, as its run records them; the ones that vary). None where that cannot be told: another sweeper (Optuna's),
    or a multirun.yaml that cannot be read (untrusted input)."""
    try:
        hydra = (yaml.safe_load((sweep / SWEEP_FILE).read_text(encoding="utf-8")) or {}).get("hydra") or {}
        if not str((hydra.get("sweeper") or {}).get("_target_", "")).endswith(".BasicSweeper"):
            return None
        jobs = sweep_jobs((hydra.get("overrides") or {}).get("task") or [])
    except Exception:  # noqa: BLE001 - YAML, OS and Hydra's parse errors alike: nothing is said of such a sweep
        return None
    varying = [i for i in range(len(jobs[0]) if jobs else 0) if len({job[i] for job in jobs}) > 1]
    return [(job, [job[i] for i in varying]) for job in jobs]


def unstarted_jobs(sweeps: Iterable[Path], runs: Iterable[RunInfo]) -> list[tuple[Path, str]]:
    """(where the job's folder would be, why) for every planned job of `sweeps` (sweep folders holding Hydra's
    multirun.yaml) that never started: no folder of its own — none named by its number, nor a requeued or repeated
    attempt of it (`2-requeue1`, `2-again1`: app.job_subdir), nor the link a skipped job leaves — and no run among
    `runs` with its very overrides (the sweep typed again, which ran it in a folder of its own). Nothing is said of a
    sweep one of whose jobs' processes still runs: its next jobs may yet start."""
    runs = [run for run in runs if not run.damaged]
    done = {frozenset(run.data.get("overrides") or []) for run in runs}
    notes = []
    for sweep in sorted(set(sweeps)):
        jobs = planned_jobs(sweep)
        # a process of one of its jobs still runs: the sweep goes on (the basic launcher runs every job in the
        # process that ran the first; probe 213: a pipeline sweep's report after job #0 said job #1 "never started")
        if not jobs or any(process_alive(run.data.get("process")) for run in runs if run.path.parent == sweep):
            continue
        started = {entry.name.split("-", 1)[0] for entry in sweep.iterdir() if entry.is_dir() or entry.is_symlink()}
        numbers = {int(name) for name in started if name.isdigit()}
        for num, (overrides, varying) in enumerate(jobs):
            if str(num) in started or frozenset(overrides) in done:
                continue
            # launchers start a sweep's jobs in order: one with a later job's folder beside it started, and its own
            # folder is gone (probe 225: a deleted job's folder was said to have "never started")
            later = min((n for n in numbers if n > num), default=None)
            what = "never started: the sweep stopped before it" if later is None else \
                f"has no folder, though job #{later} after it ran: its folder was deleted or moved"
            notes.append((sweep / str(num), f"job #{num} of its sweep ({' '.join(varying)}) {what} — the sweep's "
                                            "command again runs it (its completed jobs are skipped)"))
    return notes
