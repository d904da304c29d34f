"""Scale-out on the engines users already have (docs/scale-out.md): parallel jobs share the cores, submitit runs
every command, a requeued SLURM job continues its interrupted run, a sweep started again skips its completed
jobs, and two torchrun "nodes" give the result of one process."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab import environment
from cnnlab.app import job_subdir
from cnnlab.engine.trainer import Trainer
from cnnlab.steps.jobs import launcher_parallelism, remote_job_error, sweep_size
from helpers import TINY, CliResult, read_run, run_dirs, run_subprocess

TWO_EPOCHS = [o for o in TINY if not o.startswith("trainer.epochs=")] + ["trainer.epochs=2"]
_original_save_state = Trainer._save_state
_SLURM = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")


@pytest.fixture(autouse=True)
def _no_scheduler_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither a real SLURM job nor the caller's thread settings leak into these tests."""
    for var in (*_SLURM, environment.THREADS_ENV, environment.PARALLEL_JOBS_ENV, "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)


def _cnnlab_without_thread_settings(*args: str, cwd: Path, **env: str) -> CliResult:
    """`python -m cnnlab ARGS` as helpers.run_subprocess runs it, but without its OMP_NUM_THREADS=1 (which a
    job would take for the user's explicit setting)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", *_SLURM)}
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, cwd=cwd,
                          env={**clean, **env}, timeout=300)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.slow  # ~16 s; in CI: the submitit_local sweep below, a submitit job's Ctrl-C (tests/test_interrupts.py)
def test_ctrl_c_of_a_submitit_local_sweep_keeps_each_jobs_checkpoint_and_ends_with_the_hint(
        outputs: Path, tmp_path: Path) -> None:
    """submitit's controllers print their own KeyboardInterrupt tracebacks; they came after cnnlab's line. Each job
    keeps a last.pt to continue from. (It records itself `interrupted` unless submitit's controller kills it first:
    the controller sends SIGKILL one second after the Ctrl-C, which a loaded machine can outrun; the forwarded
    second Ctrl-C no longer cuts the clean-up short: tests/test_interrupts.py.)"""
    import signal
    import time

    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    many = [o for o in TINY if not o.startswith("trainer.epochs=")] + ["trainer.epochs=500"]
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS", *_SLURM)} | {"OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen([sys.executable, "-m", "cnnlab", "pretrain", "-m", "hydra/launcher=submitit_local",
                              *many, "seed=1,2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True,  # its own "terminal" group
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both jobs past an epoch: each has a last.pt to continue from
            logs = [d / "run.log" for d in run_dirs(outputs, "pretrain")]
            if len(logs) == 2 and all("epoch 2/" in p.read_text() for p in logs if p.exists()):
                break
            time.sleep(0.2)
        os.killpg(sweep.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, stderr = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert sweep.returncode == 130, stderr
    assert "run the sweep again" in stderr.strip().splitlines()[-1]
    runs = [read_run(d) for d in run_dirs(outputs, "pretrain")]
    assert len(runs) == 2 and all(r["status"] in ("interrupted", "running") for r in runs)
    assert all((Path(r["run_dir"]) / "last.pt").is_file() for r in runs)


# ------------------------------------------------------------------------------------- the core share
def test_the_core_share_divides_usable_cores_among_jobs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    usable = environment.cpu_info()["usable_cores"]
    assert environment.core_share(8) == 8 and environment.job_threads() == (None, "default")
    monkeypatch.setenv(environment.PARALLEL_JOBS_ENV, "3")
    assert environment.core_share(8) == 2 and environment.core_share(2) == 1  # never below one
    assert environment.job_threads() == (max(1, usable // 3), "share")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's ranks on this node count too
    assert environment.jobs_in_parallel() == 6
    monkeypatch.setenv(environment.THREADS_ENV, "5")  # the user's explicit setting wins
    assert environment.job_threads() == (5, "explicit")


def test_a_thread_limit_a_launcher_set_is_replaced_by_the_jobs_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """joblib's loky workers start with OMP_NUM_THREADS=1 on 2 cores: a one-job joblib sweep trained on 1 thread
    and recorded `default`. The user's own OMP_NUM_THREADS never gets here as such: cnnlab.app moves it into
    CNNLAB_THREADS (explicit) before any launcher starts."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert environment.job_threads() == (environment.core_share(), "share")
    monkeypatch.setenv(environment.THREADS_ENV, "1")
    assert environment.job_threads() == (1, "explicit")


@pytest.mark.parametrize("launcher, sweep, expected", [
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 4, 1),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": 2}, 4, 2),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, 4, 4),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -1}, 2, 2),
    ({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": -2}, None, 7),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"}, 3, 3),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"}, 50, 1),
])
def test_jobs_at_once_follow_the_launcher(launcher: dict, sweep: int | None, expected: int) -> None:
    assert launcher_parallelism(launcher, sweep, cores=8) == expected


def test_the_sweep_size_is_read_from_the_command_line() -> None:
    assert sweep_size(["seed=1,2", "optim.lr=0.1,0.2", "model=lenet5", "hydra.launcher.n_jobs=2"]) == 4
    assert sweep_size(["seed=range(0,3)"]) == 3
    assert sweep_size(["seed=1"]) == 1


def test_a_joblib_sweep_gives_each_job_its_share_and_records_it(outputs: Path, tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    # an ASCII-only output: each job is a worker process that cli.run never set up; its log lines wrote the "→" of
    # "cnnlab pretrain → RUN" as "\u2192" where cnnlab's own process writes "->"
    result = _cnnlab_without_thread_settings("pretrain", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                                             *TINY, "seed=1,2", cwd=tmp_path, PYTHONIOENCODING="ascii")
    assert result.code == 0, result.output
    assert result.stderr.count("cnnlab pretrain -> ") == 2 and "\\u2192" not in result.stderr, result.stderr
    usable = environment.cpu_info()["usable_cores"]
    assert len(run_dirs(outputs, "pretrain")) == 2
    for run_dir in run_dirs(outputs, "pretrain"):
        record = read_run(run_dir)
        assert record["status"] == "completed"
        assert record["environment"]["threads"] == {"source": "share", "jobs_in_parallel": 2, "usable_cores": usable}
        assert record["environment"]["torch_threads"] == max(1, usable // 2)


# ------------------------------------------------------------------------------------------- submitit
def test_submitit_local_runs_a_sweep_and_a_failing_job_says_why_and_where(outputs: Path, tmp_path: Path) -> None:
    """One sweep of two jobs (one sweep, not two: each job is a process that imports torch): job #0 trains, job #1
    fails; the failure is one cnnlab line naming the job and its log."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = _cnnlab_without_thread_settings("pretrain", "-m", "hydra/launcher=submitit_local", *TINY,
                                             f"resume=null,{tmp_path / 'nope'}", cwd=tmp_path)
    assert result.code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "no such folder, so no run to continue" in line and "(job #1, log: " in line
    assert "Traceback" not in result.output
    log = Path(line.split("log: ", 1)[1].split(")", 1)[0])
    assert log.is_file() and "no such folder, so no run to continue" in log.read_text()
    records = [read_run(d) for d in run_dirs(outputs, "pretrain")]
    trained = [r for r in records if r["status"] == "completed"]
    assert len(records) == 2 and len(trained) == 1
    usable = environment.cpu_info()["usable_cores"]  # submitit_local starts every job at once
    assert trained[0]["environment"]["threads"] == {"source": "share", "jobs_in_parallel": 2, "usable_cores": usable}


@pytest.mark.parametrize("config, expected", [
    ("slurm_gpu", ["--partition=a100", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB", "--time=240",
                   "--requeue", "--signal=USR2@120"]),
    ("slurm_cpu", ["--partition=a100", "--cpus-per-task=4", "--mem=8GB", "--time=120", "--requeue"]),
])
def test_the_slurm_examples_make_the_sbatch_script_they_promise(config: str, expected: list[str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """conf/hydra/launcher/slurm_*.yaml through the submitit launcher's own parameter mapping, rendered by submitit
    (no cluster: a stand-in `srun` satisfies its check)."""
    submitit = pytest.importorskip("submitit")
    from hydra import compose, initialize_config_module
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    (tmp_path / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["command=pretrain", f"hydra/launcher={config}",
                                           "hydra.launcher.partition=a100"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert params.pop("_target_").endswith("SlurmLauncher")
    params.pop("submitit_folder")
    params["name"] = "cnnlab"
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path / "jobs",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m cnnlab", "uid")
    for flag in expected:
        assert f"#SBATCH {flag}\n" in script, (flag, script)


def test_a_remote_failure_reads_as_the_jobs_error_and_its_log() -> None:
    utils = pytest.importorskip("submitit.core.utils")
    failed = utils.FailedJobError(
        "Job (task=0) failed during processing with trace:\n----------------------\nTraceback (most recent call "
        "last):\n  File \"x.py\", line 1, in <module>\nRuntimeError: CUDA error: device-side assert triggered\n"
        "----------------------\nYou can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n"
        "  - /runs/.submitit/41_0/41_0_0_log.err\n  - /runs/.submitit/41_0/41_0_0_log.out")
    error = remote_job_error(failed)
    assert error is not None
    assert error.message == ("a launched job failed: RuntimeError: CUDA error: device-side assert triggered "
                             "(log: /runs/.submitit/41_0/41_0_0_log.err)")
    killed = utils.UncompletedJobError(
        "Job 42_1 (task: 0) with path /runs/.submitit/42_1/42_1_0_result.pkl\nhas not produced any output "
        "(state: OUT_OF_MEMORY)\nError stream produced:\n----------------------------------------\n"
        "slurmstepd: error: Detected 1 oom_kill event in StepId=42.batch\n")
    error = remote_job_error(killed)
    assert error is not None and "oom_kill" in error.message and "(log: /runs/.submitit/42_1/42_1_0_log.err)" in \
        error.message
    # kill -9 in the middle of an epoch: the stream's last line is a log line, not the cause
    silent = utils.UncompletedJobError(
        "Job 43_0 (task: 0) with path /runs/.submitit/43_0/43_0_0_result.pkl\nhas not produced any output "
        "(state: FINISHED)\nError stream produced:\n----------------------------------------\n"
        "[11:12:51] INFO     epoch 2/4  train loss 1.1301 acc 51.2%  lr 0.0376\n")
    error = remote_job_error(silent)
    assert error is not None and "epoch 2/4" not in error.message and "ended without an error of its own" in \
        error.message
    assert remote_job_error(RuntimeError("not from submitit")) is None
    # probe 89: sbatch refused the submission; "a launched job failed ... read that log" named no log, and no job ran
    refused = remote_job_error(utils.FailedJobError("sbatch: error: invalid partition specified: cpu"))
    assert refused is not None and refused.message == ("SLURM did not take the jobs (sbatch failed: sbatch: error: "
                                                       "invalid partition specified: cpu); none ran")
    assert "hydra.launcher.partition" in (refused.fix or "") and "sinfo -s" in (refused.fix or "")


def test_a_slurm_array_is_named_after_cnnlab_and_its_command(cli, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 89: squeue showed every cnnlab array as `app` (Hydra's job name: cnnlab's entry module); and sbatch's
    refusal read as a failed job whose log to read (none ran). A fake sbatch keeps the script and refuses."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nfor last; do :; done\ncp "$last" {tmp_path}/script.sh\n'
                                    'echo "sbatch: error: invalid partition specified: cpu" >&2\nexit 1\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = cli("pretrain", "-m", "hydra/launcher=slurm_cpu", *TINY, "seed=0,1")
    assert result.code != 0 and "SLURM did not take the jobs" in result.stderr and "Traceback" not in result.output
    assert "#SBATCH --job-name=cnnlab-pretrain" in (tmp_path / "script.sh").read_text()


# ------------------------------------------------------------------------------------------ preemption
def _interrupt_at_checkpoint(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """Ctrl-C (as SIGTERM does, cnnlab.interrupts.signals_as_interrupt) right after the `number`-th last.pt of
    this test is written."""
    save_state, calls = Trainer._save_state, []

    def save_then_maybe_stop(self, *args, **kwargs):
        save_state(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_state", save_then_maybe_stop)


def test_a_requeued_slurm_job_continues_its_own_interrupted_run(cli, outputs: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "500")
    for task in ("3", "4"):  # two tasks of one array job, both preempted after their first epoch
        monkeypatch.setenv("SLURM_JOB_ID", f"50{task}")
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
        _interrupt_at_checkpoint(monkeypatch, 1)
        assert cli("pretrain", *TWO_EPOCHS, f"seed={task}").code == 130
    interrupted = {read_run(d)["job"]["slurm"]["array_task_id"]: d for d in run_dirs(outputs, "pretrain")}
    assert {read_run(d)["status"] for d in interrupted.values()} == {"interrupted"}

    monkeypatch.setattr(Trainer, "_save_state", _original_save_state)
    monkeypatch.setenv("SLURM_JOB_ID", "503")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")  # task 3 requeued: the same command again, restart count 1
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    result = cli("pretrain", *TWO_EPOCHS, "seed=3")
    assert result.code == 0, result.output
    record = read_run(run_dirs(outputs, "pretrain")[-1])
    assert record["status"] == "completed" and record["resumed_from"] == str(interrupted["3"].resolve())
    assert [e["epoch"] for e in record["metrics"]["history"]] == [1, 2]  # epoch 1 came from the checkpoint
    assert record["job"]["slurm"]["restart_count"] == 1
    flat = " ".join(result.output.split())
    assert "SLURM job 500_3 continues its interrupted attempt" in flat and "job #None" not in flat

    # Requeued once more (after it completed): nothing to redo.
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    again = cli("pretrain", *TWO_EPOCHS, "seed=3")
    assert again.code == 0 and len(run_dirs(outputs, "pretrain")) == 3
    assert "SLURM job 500_3 completed before" in " ".join(again.output.split())


def test_a_requeued_batch_script_continues_each_of_its_commands_not_the_first_ones_result(
        cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 122: one SLURM job ran two pretrains (seeds 0 and 1); the second was preempted. Requeued, both were
    skipped as "completed before" in the first one's run folder (exit 0), matched on the job id alone; the
    interrupted one was never continued, and a command the job had never run was skipped the same way."""
    monkeypatch.setenv("SLURM_JOB_ID", "6666")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert cli("pretrain", *TWO_EPOCHS, "seed=0").code == 0
    _interrupt_at_checkpoint(monkeypatch, 1)
    assert cli("pretrain", *TWO_EPOCHS, "seed=1").code == 130
    first, preempted = run_dirs(outputs, "pretrain")

    monkeypatch.setattr(Trainer, "_save_state", _original_save_state)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the script runs again from its top
    again = cli("pretrain", *TWO_EPOCHS, "seed=0")
    assert again.code == 0 and f"completed before in {first}" in " ".join(again.output.split())
    assert cli("pretrain", *TWO_EPOCHS, "seed=1").code == 0
    continued = read_run(run_dirs(outputs, "pretrain")[-1])
    assert continued["status"] == "completed" and continued["resumed_from"] == str(preempted.resolve())
    assert cli("pretrain", *TWO_EPOCHS, "seed=2").code == 0  # never run under this job: it runs
    assert "seed=2" in read_run(run_dirs(outputs, "pretrain")[-1])["overrides"]


def test_a_requeued_sweep_job_gets_a_folder_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert job_subdir(3) == "3"  # Hydra's layout, unchanged
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert job_subdir(3) == "3-requeue2"  # the interrupted attempt in 3/ stays as it was


# ------------------------------------------------------------------------------------- sweeps that survive
def test_a_sweep_started_again_skips_completed_jobs_and_continues_the_interrupted_one(
        cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = ["pretrain", "-m", *TWO_EPOCHS, "seed=1,2"]
    _interrupt_at_checkpoint(monkeypatch, 3)  # job 0 saves twice and completes; job 1 stops after its epoch 1
    assert cli(*sweep).code == 130
    first = {read_run(d)["overrides"][-1]: d for d in run_dirs(outputs, "pretrain")}
    assert read_run(first["seed=1"])["status"] == "completed" and read_run(first["seed=2"])["status"] == "interrupted"

    monkeypatch.setattr(Trainer, "_save_state", _original_save_state)
    again = cli(*sweep)
    assert again.code == 0, again.output
    assert f"job #0 completed before in {first['seed=1']}: skipped" in " ".join(again.output.split())
    assert "rerun=true" in again.output
    runs = [read_run(d) for d in run_dirs(outputs, "pretrain")]
    assert len(runs) == 3  # job 0 not trained again; job 1 continued in a new run
    resumed = next(r for r in runs if r.get("resumed_from"))
    assert resumed["resumed_from"] == str(first["seed=2"].resolve()) and resumed["status"] == "completed"
    # Hydra's layout kept: <HH-MM-SS>-multirun/<job>, with new_run_dir's _2 where both sweeps began in one second
    assert all(re.fullmatch(r"\d\d-\d\d-\d\d-multirun(_\d+)?", Path(r["run_dir"]).parent.name) for r in runs)

    assert "skipped" in cli(*sweep).output and len(run_dirs(outputs, "pretrain")) == 3  # all done: nothing runs
    forced = cli(*sweep, "rerun=true")
    assert forced.code == 0, forced.output
    assert len(run_dirs(outputs, "pretrain")) == 5 and "skipped" not in forced.output


def test_a_sweep_links_the_runs_it_skipped_so_its_report_counts_every_seed(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 141: `-m seed=1,2` after `-m seed=1` skipped seed 1 (completed before, in the first sweep's folder), and
    `cnnlab report` of the second sweep's folder read one seed, not two. The skipped job's folder is now a link to
    the run it stands for: the report counts it, a listing of the outputs folder lists it once."""
    from cnnlab.report import build_report
    from cnnlab.runs import iter_runs

    assert cli("pretrain", "-m", *TINY, "seed=1").code == 0
    [first] = run_dirs(outputs, "pretrain")
    again = cli("pretrain", "-m", *TINY, "seed=1,2")
    assert again.code == 0 and "completed before" in again.output, again.output
    second = next(d.parent for d in run_dirs(outputs, "pretrain") if d.parent != first.parent)
    link = second / "0"
    assert link.is_symlink() and link.resolve() == first.resolve() and (second / "1" / "run.json").is_file()
    report = build_report(second)
    assert sorted(row.run.data["overrides"][-1] for row in report.rows) == ["seed=1", "seed=2"]
    assert [len(g.rows) for g in report.all_seed_groups] == [2]
    assert len(list(iter_runs(outputs))) == 2  # each run listed once
    assert (first / "run.json").is_file() and not (first / ".hydra" / "config.yaml").is_symlink()

    folder = tmp_path / "own"  # a sweep typed again into its own folder: its runs are there already, no link
    assert cli("pretrain", "-m", *TINY, "seed=3", f"hydra.sweep.dir={folder}").code == 0
    assert cli("pretrain", "-m", *TINY, "seed=3", f"hydra.sweep.dir={folder}").code == 0
    assert not any(p.is_symlink() for p in folder.iterdir())
    third = cli("pretrain", "-m", *TINY, "seed=1,2")  # a third sweep of both: two links, no copies of links
    assert third.code == 0 and third.output.count("completed before") == 2
    newest = max((d for d in (outputs / "pretrain").rglob("*-multirun*") if d.is_dir()),
                 key=lambda d: d.stat().st_mtime)
    assert sorted(p.resolve() for p in newest.iterdir() if p.is_symlink()) == sorted(
        [first.resolve(), (second / "1").resolve()])


def test_a_sweep_link_whose_run_is_gone_is_said_and_never_a_traceback(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 145: the link was absolute, so moving the outputs folder broke it; once its run was moved or deleted, the
    report of the sweep dropped that job without a word, and the same sweep typed again into its folder failed on
    the dangling link (FileExistsError, "a bug in cnnlab")."""
    import os
    import shutil

    from cnnlab.report import build_report

    assert cli("pretrain", "-m", *TINY, "seed=1").code == 0
    [first] = run_dirs(outputs, "pretrain")
    folder = outputs / "sweeps" / "mine"
    sweep = ["pretrain", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={folder}"]
    assert cli(*sweep).code == 0
    assert not os.path.isabs(os.readlink(folder / "0"))  # relative: a moved outputs folder keeps it
    shutil.rmtree(first)
    [(link, why)] = [(p, w) for p, w in build_report(folder).left_out if "link" in w]
    assert link == folder / "0" and "no longer there (moved or deleted)" in why
    again = cli(*sweep)
    assert again.code == 0 and "Traceback" not in again.output, again.output
    assert (folder / "0-again1" / "run.json").is_file()


def test_a_sweep_typed_again_after_its_source_changed_runs_its_jobs_again(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 91: `finetune -m model.weights=latest:pretrain` typed again after another pretrain skipped its job as
    "completed before" and returned the old backbone's accuracy; so did a weights file replaced in place."""
    import shutil

    assert cli("pretrain", *TINY, "seed=1").code == 0
    sweep = ["finetune", "-m", *TINY, "model.weights=latest:pretrain", "seed=0"]
    assert cli(*sweep).code == 0
    same = cli(*sweep)  # nothing changed: skipped, naming the model it stands for
    first_pretrain = run_dirs(outputs, "pretrain")[0]
    assert "completed before in" in same.output and f"(from {first_pretrain.resolve()})" in " ".join(
        same.output.split()) and len(run_dirs(outputs, "finetune")) == 1
    assert cli("pretrain", *TINY, "seed=2").code == 0  # latest:pretrain is another model now
    again = cli(*sweep)
    assert again.code == 0 and "completed before" not in again.output and "latest:pretrain now names" in again.output
    newest = read_run(run_dirs(outputs, "finetune")[-1])
    assert len(run_dirs(outputs, "finetune")) == 2 and newest["source"]["run"] == str(run_dirs(outputs, "pretrain")[1])

    weights = tmp_path / "w.pt"  # a file given by path, replaced in place
    shutil.copy(first_pretrain / "model.pt", weights)
    by_path = ["finetune", "-m", *TINY, f"model.weights={weights}", "seed=0"]
    assert cli(*by_path).code == 0 and "completed before" in cli(*by_path).output
    shutil.copy(run_dirs(outputs, "pretrain")[1] / "model.pt", weights)
    replaced = cli(*by_path)
    assert replaced.code == 0 and "completed before" not in replaced.output
    assert f"the model it started from, {weights}" in " ".join(replaced.output.split())


def test_an_interpolated_sweep_folder_is_checked_as_hydra_resolves_it(cli, tmp_path: Path) -> None:
    """Probe 130: `hydra.sweep.dir=DIR/${model.name}` naming another sweep's folder was let in (multirun.yaml replaced,
    two experiments' jobs mixed), and one inside a run made a sweep there: the typed text cannot tell the folder."""
    folder = tmp_path / "sweeps"
    assert cli("pretrain", "-m", *TINY, "seed=1", f"hydra.sweep.dir={folder}/lenet5").code == 0
    record = (folder / "lenet5" / "multirun.yaml").read_bytes()
    other = cli("pretrain", "-m", *TWO_EPOCHS, "seed=1", f"hydra.sweep.dir={folder}/${{model.name}}")
    assert other.code == 2 and "that folder holds another sweep (" in other.stderr, other.output
    assert (folder / "lenet5" / "multirun.yaml").read_bytes() == record
    assert not (folder / "lenet5" / "0-again1").exists()
    inside = cli("pretrain", "-m", *TINY, "seed=2", f"hydra.sweep.dir={folder}/${{model.name}}/0/sub")
    assert inside.code == 2 and "lies inside the run" in inside.stderr
    assert not (folder / "lenet5" / "0" / "sub").exists()
    again = cli("pretrain", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={folder}/${{model.name}}")  # the same sweep
    assert again.code == 0 and (folder / "lenet5" / "1" / "run.json").is_file(), again.output


def test_a_sweep_never_writes_over_another_sweeps_jobs_in_its_folder(cli, outputs: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 61: `-m hydra.sweep.dir=DIR` naming another sweep's folder wrote its job 0 over that sweep's job 0 (its
    run.json, model.pt and .hydra/), exit 0. The same sweep typed again continues in DIR, even outside outputs/:
    each attempt in a folder of its own."""
    folder = tmp_path / "elsewhere" / "sweep"
    sweep = ["pretrain", "-m", *TWO_EPOCHS, "seed=1,2", f"hydra.sweep.dir={folder}"]
    _interrupt_at_checkpoint(monkeypatch, 3)  # job 0 completes; job 1 stops after its epoch 1
    assert cli(*sweep).code == 130
    kept = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "run.log"}
    monkeypatch.setattr(Trainer, "_save_state", _original_save_state)

    other = cli("pretrain", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={folder}")  # 1 epoch, not 2: another recipe
    assert other.code == 2 and "that folder holds another sweep (" in other.stderr, other.output
    assert "seed=1,2" in other.stderr and "multirun.yaml" in other.stderr
    into_a_run = cli("pretrain", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={folder / '0'}")  # job 0's own folder
    assert into_a_run.code == 2 and "that folder holds a run (its run.json), not a sweep" in into_a_run.stderr
    below = cli("pretrain", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={folder / '0' / 'sub'}")  # probe 92
    assert below.code == 2 and f"that folder lies inside the run {folder / '0'}" in " ".join(below.stderr.split())
    inner = cli("pretrain", *TINY, f"hydra.run.dir={folder / '0' / 'inner'}")
    assert inner.code == 2 and "lies inside the run" in inner.stderr and not (folder / "0" / "inner").exists()
    tilde = cli("pretrain", "-m", *TWO_EPOCHS, "seed=7", "hydra.sweep.dir=~/sweeps/a")  # a folder named "~" here
    assert tilde.code == 2 and "Hydra does not expand ~" in tilde.stderr and "hydra.sweep.dir=$HOME/sweeps/a" in \
        tilde.stderr, tilde.output

    _interrupt_at_checkpoint(monkeypatch, 1)  # job 1 continued, and interrupted again (after its epoch 2)
    assert cli(*sweep).code == 130
    monkeypatch.setattr(Trainer, "_save_state", _original_save_state)
    again = cli(*sweep)  # continues that continuation
    assert again.code == 0, again.output
    assert f"job #0 completed before in {folder / '0'}: skipped" in " ".join(again.output.split())
    assert {p: p.read_bytes() for p in kept} == kept  # the first attempt's files, as they were
    runs = {d.name: read_run(d) for d in sorted(folder.glob("*/")) if (d / "run.json").is_file()}
    assert list(runs) == ["0", "1", "1-again1", "1-again2"], list(runs)  # a skipped job trains nothing
    # ... and leaves no folder: the skipped job 0 left an empty 0-again<j>/ (Hydra's files only) each time
    assert sorted(d.name for d in folder.iterdir() if d.is_dir()) == list(runs)
    assert runs["1-again2"]["status"] == "completed" and \
        runs["1-again2"]["resumed_from"] == str((folder / "1-again1").resolve())
    assert runs["1-again1"]["resumed_from"] == str((folder / "1").resolve())
    assert not (outputs / "pretrain").exists()

    forced = cli(*sweep, "rerun=true")  # job 0 trained again beside its completed run, not over it
    assert forced.code == 0, forced.output
    assert len(list(folder.glob("0*/run.json"))) == 2 and (folder / "0" / "run.json").read_bytes() == \
        kept[folder / "0" / "run.json"]
    # probe 64: the same recipe over seeds reordered or extended is one experiment: seeds 1, 2 skipped, 3 trained
    more = cli("pretrain", "-m", *TWO_EPOCHS, "seed=3,2,1", f"hydra.sweep.dir={folder}")
    assert more.code == 0 and more.output.count("skipped") == 2, more.output
    assert (folder / "0" / "run.json").read_bytes() == kept[folder / "0" / "run.json"]


def test_a_sweep_job_on_an_image_folder_edited_since_trains_again(cli, outputs: Path, tmp_path: Path) -> None:
    """Same settings, other images: the completed job was skipped, its model of the old folder kept (exit 0)."""
    from helpers import random_image_folder

    data = random_image_folder(tmp_path / "photos")
    sweep = ["pretrain", "-m", "dataset=imagefolder", f"dataset.root={data}", "dataset.image_size=16", "model=lenet5",
             "trainer.epochs=1", "trainer.batch_size=4", "seed=1"]
    assert cli(*sweep).code == 0
    assert "skipped" in cli(*sweep).output and len(run_dirs(outputs, "pretrain")) == 1
    random_image_folder(tmp_path / "new", per_class=1, classes=("dog",), seed=1)
    (tmp_path / "new" / "dog" / "0.png").rename(data / "dog" / "new.png")
    again = cli(*sweep)
    assert again.code == 0, again.output
    assert "skipped" not in again.output and "changed since it ran" in " ".join(again.output.split())
    runs = [read_run(d) for d in run_dirs(outputs, "pretrain")]
    assert len(runs) == 2 and runs[-1]["dataset"]["train_size"] + runs[-1]["dataset"]["val_size"] == 13
    assert "skipped" in cli(*sweep).output  # and the new run stands for the folder as it is now


def test_a_plain_command_typed_twice_runs_twice(cli, outputs: Path) -> None:
    assert cli("pretrain", *TINY).code == 0 and cli("pretrain", *TINY).code == 0
    assert len(run_dirs(outputs, "pretrain")) == 2


# ------------------------------------------------------------------------------------------ multi-node DDP
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # ~40 s; single-node DDP stays in CI (tests/engine/test_distributed.py)
def test_two_torchrun_nodes_on_one_machine_match_a_single_process(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("single_node_ddp", Path(__file__).parent / "engine" /
                                                  "test_distributed.py")
    single_node = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(single_node)  # type: ignore[union-attr]
    COMMON = single_node.COMMON  # the single-node DDP test's run (its tolerances are repeated below)
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    single = run_subprocess(*COMMON, env={"CNNLAB_OUTPUTS": str(single_out)}, cwd=tmp_path)
    assert single.code == 0, single.output
    env = {**os.environ, "CNNLAB_OUTPUTS": str(ddp_out), "OMP_NUM_THREADS": "1"}
    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                               "--rdzv-id", "cnnlab-two-nodes", "-m", "cnnlab", *COMMON],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(outputs)

    ddp_dirs = run_dirs(ddp_out, "pretrain")
    assert len(ddp_dirs) == 1, ddp_dirs  # one run folder, written by global rank 0
    assert "rank 0 of 2 (gloo)" in (ddp_dirs[0] / "run.log").read_text()
    single_dir = run_dirs(single_out, "pretrain")[0]
    assert read_run(ddp_dirs[0])["status"] == "completed"
    # The tolerances of tests/engine/test_distributed.py (2 ranks on one node vs 1 process).
    one, two = (read_run(d)["metrics"] for d in (single_dir, ddp_dirs[0]))
    loss_gaps = {key: abs(one[key] - two[key]) for key in ("val_loss", "train_loss")}
    assert max(loss_gaps.values()) < 1e-3 and abs(one["val_acc"] - two["val_acc"]) <= 1 / 64 + 1e-9, (one, two)
    weights = [torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (single_dir, ddp_dirs[0])]
    differing = [name for name in weights[0] if not torch.allclose(weights[0][name], weights[1][name], atol=1e-3)]
    assert not differing, differing


def test_a_sweep_job_runs_again_after_its_config_dir_file_changed(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 86: a `--config-dir` dataset file edited (image_size 16 → 20) and the same sweep typed again: every job
    "completed before … skipped", and the results shown were the old setting's. The job's identity now holds what
    the user's config files say, not only where they are."""
    conf = tmp_path / "dataset"  # the config folder holds outputs/ too (probe 87: its runs' .hydra/*.yaml counted)
    conf.mkdir(parents=True)
    mine = conf / "mine.yaml"
    mine.write_text("defaults:\n  - synthetic\n  - _self_\nimage_size: 16\ntrain_size: 32\nval_size: 16\n"
                    "num_classes: 4\n")
    assert outputs.resolve().is_relative_to(tmp_path.resolve())
    sweep = ["pretrain", "--config-dir", str(tmp_path), "-m", "dataset=mine", "model=lenet5",
             "trainer.epochs=1", "trainer.batch_size=16", "seed=0"]
    assert cli(*sweep).code == 0
    assert "skipped" in cli(*sweep).output and len(run_dirs(outputs, "pretrain")) == 1  # unchanged: reused
    mine.write_text(mine.read_text().replace("image_size: 16", "image_size: 20"))
    again = cli(*sweep)
    assert again.code == 0 and "skipped" not in again.output, again.output
    sizes = sorted(read_run(d)["dataset"]["image_size"] for d in run_dirs(outputs, "pretrain"))
    assert sizes == [16, 20]


def test_a_pipeline_sweep_job_is_never_skipped_whole(tmp_path: Path) -> None:
    """Probe 86: `cnnlab pipeline -m seed=0,1` after the experiment file or the images changed skipped each job as
    "completed before": no stage ran again. A pipeline job runs, and reuses or redoes each stage itself."""
    from cnnlab.runs import RunRecord
    from cnnlab.steps.jobs import JobIdentity, earlier_attempt

    for command, action in (("pretrain", "skip"), ("pipeline", None)):
        job = JobIdentity(command, ("seed=0",), multirun=True, num=0, slurm=None)
        record = RunRecord.start(tmp_path / command / "2026-12-04" / "10-00-00-multirun" / "0", command)
        record.update(job=job.record())
        record.finish("completed", metrics={})
        before = earlier_attempt(job, tmp_path)
        assert (before.action if before else None) == action, command


def test_a_typed_sweep_subdir_is_refused(cli, outputs: Path) -> None:
    """Probe 94: `-m seed=0,1 hydra.sweep.subdir=same` put both jobs in one folder, seed 1 over seed 0's run; probe 95:
    `${dataset.name}` did the same, and `job${hydra.job.num}` let rerun=true write over the first attempt."""
    for subdir in ("same", "${dataset.name}", "job${hydra.job.num}"):
        result = cli("pretrain", "-m", *TINY, "seed=0,1", f"hydra.sweep.subdir={subdir}")
        assert result.code == 2 and "cnnlab names each job's folder" in result.stderr, result.output
    assert not (outputs / "pretrain").exists()


def test_a_sweep_folder_holding_files_of_yours_is_refused(cli, outputs: Path, tmp_path: Path) -> None:
    """Probe 167: `-m … hydra.sweep.dir=s3`, s3/0/predictions.csv the user's own: replaced, exit 0 (a run folder
    holding files of yours was refused; a sweep folder was not)."""
    mine = tmp_path / "s3"
    (mine / "0").mkdir(parents=True)
    (mine / "0" / "predictions.csv").write_text("file,label\nx.png,cat\n")
    result = cli("pretrain", "-m", *TINY, "seed=0,1", f"hydra.sweep.dir={mine}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "Traceback" not in result.output, result.output
    assert f"hydra.sweep.dir={mine}: that folder already holds 0" in said and "give a new or empty folder" in said
    assert (mine / "0" / "predictions.csv").read_text() == "file,label\nx.png,cat\n"
    assert sorted(p.name for p in mine.rglob("*")) == ["0", "predictions.csv"]
