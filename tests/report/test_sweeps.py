"""A sweep's jobs that never started (cnnlab/report/sweeps.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from cnnlab.report import build_report
from cnnlab.report.sweeps import planned_jobs, unstarted_jobs
from cnnlab.runs import iter_runs
from report.fakes import model_run

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
TYPED = ["command=finetune", "model=lenet5", "seed=0,1,2", "optim.lr=0.1,0.2"]


def sweep_folder(out: Path, name: str = "10-00-00-multirun", task: list[str] = TYPED, sweeper: str = BASIC) -> Path:
    """A sweep folder holding Hydra's multirun.yaml (the parts read) and no job yet."""
    sweep = out / "finetune" / "2026-11-28" / name
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"sweeper": {"_target_": sweeper}, "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": task}}}))
    return sweep


def ended(*run_dirs: Path) -> None:
    """Record the runs as written by a process that has ended (the tests' own process still runs)."""
    import json
    import subprocess

    child = subprocess.Popen(["true"])
    child.wait()
    for run_dir in run_dirs:
        record = json.loads((run_dir / "run.json").read_text())
        record["process"] = {**record["process"], "pid": child.pid, "start_ticks": None}
        (run_dir / "run.json").write_text(json.dumps(record))


def job_overrides(seed: int, lr: str) -> list[str]:
    return ["command=finetune", "model=lenet5", f"seed={seed}", f"optim.lr={lr}"]


def test_the_jobs_of_a_basic_sweep_are_its_values_product_in_hydras_order(tmp_path: Path) -> None:
    jobs = planned_jobs(sweep_folder(tmp_path))
    assert jobs is not None and len(jobs) == 6
    assert jobs[0] == (job_overrides(0, "0.1"), ["seed=0", "optim.lr=0.1"])
    assert jobs[1][1] == ["seed=0", "optim.lr=0.2"] and jobs[5][1] == ["seed=2", "optim.lr=0.2"]  # the last fastest
    assert planned_jobs(sweep_folder(tmp_path, "optuna", sweeper="hydra_plugins.optuna.OptunaSweeper")) is None
    broken = sweep_folder(tmp_path, "broken")
    (broken / "multirun.yaml").write_text("hydra: [unclosed\n")  # untrusted input: nothing said of it
    assert planned_jobs(broken) is None


def test_a_sweep_stopped_before_its_last_jobs_names_them_in_the_report(tmp_path: Path) -> None:
    """Probe 206: a sweep over seed=0,1,2 stopped in job #1 read "1 of 2" seeds; seed 2, never started, unsaid."""
    out = tmp_path / "outputs"
    sweep = sweep_folder(out, task=["command=finetune", "model=lenet5", "seed=0,1,2"])
    first = model_run(out, "finetune", f"{sweep.name}/0", 0.5,
                      overrides=["command=finetune", "model=lenet5", "seed=0"])
    second = model_run(out, "finetune", f"{sweep.name}/1", 0.4,
                       overrides=["command=finetune", "model=lenet5", "seed=1"], status="interrupted")
    (sweep / "1-again1").mkdir()  # a later attempt of job #1 (app.job_subdir) starts it too
    # probe 213: while a job's process runs (the basic launcher's runs them all), the next jobs may yet start
    assert unstarted_jobs([sweep], iter_runs(out)) == []
    ended(first, second)
    report = build_report(out)
    left = dict(report.left_out)
    assert left[sweep / "2"].startswith("job #2 of its sweep (seed=2) never started: the sweep stopped before it")
    assert sweep / "1" not in left
    # the sweep typed again ran job #2 in a folder of its own: the first sweep's job #2 is no longer missing
    again = sweep_folder(out, "11-00-00-multirun", task=["command=finetune", "model=lenet5", "seed=0,1,2"])
    model_run(out, "finetune", f"{again.name}/2", 0.45, overrides=["command=finetune", "model=lenet5", "seed=2"])
    assert unstarted_jobs([sweep, again], iter_runs(out)) == []  # its jobs #0 and #1: the first sweep's runs


def test_a_job_whose_folder_is_gone_while_a_later_job_ran_is_said_to_be_deleted_not_unstarted(tmp_path: Path) -> None:
    """Probe 225: seed 1's folder deleted after the sweep completed read "never started: the sweep stopped before it",
    with job #2 beside it completed (launchers start a sweep's jobs in order)."""
    out = tmp_path / "outputs"
    sweep = sweep_folder(out, task=["command=finetune", "model=lenet5", "seed=0,1,2,3"])
    runs = [model_run(out, "finetune", f"{sweep.name}/{n}", 0.5,
                      overrides=["command=finetune", "model=lenet5", f"seed={n}"]) for n in (0, 2)]
    ended(*runs)
    left = dict(unstarted_jobs([sweep], iter_runs(out)))
    assert left[sweep / "1"].startswith("job #1 of its sweep (seed=1) has no folder, though job #2 after it ran: its "
                                        "folder was deleted or moved — the sweep's command again runs it")
    assert left[sweep / "3"].startswith("job #3 of its sweep (seed=3) never started: the sweep stopped before it")
