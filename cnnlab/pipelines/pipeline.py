"""`cnnlab pipeline`: an experiment's chain of ordinary runs, then one paired bench of every model and a report.

Stages run one after another as `cnnlab <command> ...` child processes, so each is exactly the run a
user would get by typing it (its own Hydra run folder, log and run.json; the Hydra flags that shaped this
pipeline's config, such as --config-dir, are passed on), all inside the workspace
outputs/pipeline/<name>/runs/. Each stage run is tagged with its fingerprint (cnnlab/steps/plan.py):
a re-run reuses completed stages, resumes an interrupted or failed training stage from its last.pt, and
runs the rest — including a completed stage whose image folder changed on disk or whose upstream stage ran again
(steps/freshness.py).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnlab.conftree import config_files_digest, default_choices
from cnnlab.context import RunContext
from cnnlab.deploy.bench_settings import BenchSettings
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.hydra_args import hydra_value
from cnnlab.interrupts import SIGNAL_NOTE_ENV
from cnnlab.links import RunLinks
from cnnlab.steps.freshness import Digests, changed_since
from cnnlab.steps.plan import (BENCH_STAGE, RESUMABLE, Stage, bench_of_available, build_plan, select,
                               with_upstream)
from cnnlab.steps.stage_check import check_stages
from cnnlab.runs import PIPELINE_TAG_ENV, RunInfo, iter_runs
from cnnlab.settings import check_sections_read
from cnnlab.wording import counted


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings = cfg.pipeline
    workspace = Path(cfg.paths.outputs) / "pipeline" / str(settings.name)
    runs_root = workspace / "runs"
    flags = hydra_flags()
    folders = [Path(flag) for option, flag in zip(flags, flags[1:]) if option in ("--config-dir", "--config-path")]
    common = [f"seed={cfg.seed}", f"device={cfg.device}"]
    with found_before_work():  # the plan and every stage's settings: refused before any stage, not after training
        BenchSettings.from_config(settings.bench, key="pipeline.bench")
        if not isinstance(settings.get("plan"), DictConfig):  # `plan:` left empty, or pipeline.plan=null (probe 86)
            build_plan({}, export=False, bench={})  # its one line: no plan declared
        check_sections_read(ctx.overrides, "pipeline", json.dumps(OmegaConf.to_container(settings.plan, resolve=False)))
        stages = build_plan(OmegaConf.to_container(settings.plan, resolve=True), export=bool(settings.export),
                            bench=OmegaConf.to_container(settings.bench, resolve=True))
        named = settings.stages  # one stage without brackets is one name, not its letters (probe 86: stage 'p';
        # probe 198: the fix of `pipeline.stages=prune` was built from its letters too, and left prune out)
        asked = None if named is None else [str(n) for n in named] if isinstance(named, ListConfig) else [str(named)]
        wanted = select(stages, asked)
        check_stages(stages, wanted, common, HydraConfig.get().job.config_name or "config")
    ctx.log.info("pipeline %s: %s (%s) in %s", settings.name, counted(len(wanted), "stage"),
                 ", ".join(s.name for s in stages if s.name in wanted), runs_root)

    fingerprints: dict[str, str] = {}
    recipes: dict[str, str] = {}  # the same without the seed: what an edit of the plan changes, and a seed does not
    run_dirs: dict[str, str] = {}
    stale: dict[str, str] = {}  # stage → why its earlier runs no longer stand (steps/freshness.py)
    digests: Digests = {}
    hashes: dict[str, str | None] = {}  # SHA-256 of the models stages started from, read once
    outcome: dict[str, dict[str, Any]] = {}
    links = RunLinks(iter_runs(runs_root))  # a workspace copied or moved: its runs record the old folders

    def fingerprint(stage: Stage) -> None:
        files = stage_files(stage, folders)
        fingerprints[stage.name] = stage.fingerprint(fingerprints, [*common, *flags, *files])
        recipes[stage.name] = stage.fingerprint(recipes, [f"device={cfg.device}", *flags, *files])

    for stage in stages:
        fingerprint(stage)
    _refuse_unmet_inputs(stages, wanted, lambda name: _find(runs_root, fingerprints[name]), asked)
    for stage in stages:
        if stage.name == BENCH_STAGE and stage.name in wanted:
            timed = bench_of_available(stage, run_dirs)
            left_out = [name for name in stage.inputs if timed is None or name not in timed.inputs]
            if timed is None:  # probe 198: `pipeline.stages=[bench]` of a new workspace failed in its report
                first = stage.inputs[0].split(".")[0]  # a declared stage (select() adds its export back)
                error = CnnlabError(f"stage {stage.name} has no model to time: no model stage has a run that stands "
                                    "in this workspace", fix=f"include one: 'pipeline.stages=[{first},{stage.name}]'")
                error.before_work = all(done["how"] == "reused" for done in outcome.values())
                raise error
            for name in left_out:  # a subset of the plan: its bench times the models it has
                # probe 213: "no run in this workspace" was said of a stage with a run at another seed there
                why = f"its run is out of date: {stale[name]}" if name in stale else \
                    "no run of its settings (seed included) in this workspace"
                ctx.log.info("stage %-22s leaves out %s (not in pipeline.stages): %s", stage.name, name, why)
            stage = timed
            fingerprint(stage)
        inputs = {n: run_dirs[n] for n in stage.inputs if n in run_dirs}
        newest = _find(runs_root, fingerprints[stage.name])
        # an attempt made after the change (interrupted, to resume) counts; those before it do not
        fresh = functools.partial(changed_since, inputs=inputs, digests=digests, outputs=runs_root, hashes=hashes,
                                  links=links)
        done = _find(runs_root, fingerprints[stage.name], lambda r: not fresh(r))
        changed = fresh(newest) if newest is not None and done is None else None
        if changed:
            stale[stage.name] = changed
        if stage.name not in wanted:
            if done and done.status == "completed" and not changed:
                run_dirs[stage.name] = str(done.path)
            continue
        for needed in stage.inputs:
            if needed not in run_dirs:
                why = f"whose run is out of date: {stale[needed]}" if needed in stale else "which has not completed"
                # every stage it takes as given that has no run to give, not only this one (probe 56)
                missing = [s.name for s in stages if s.name not in run_dirs]
                error = _unmet(stages, stage, needed, why, missing, asked)
                # a refused plan, when no stage has run yet: the pipeline then leaves no run folder (cnnlab.app)
                error.before_work = all(done["how"] == "reused" for done in outcome.values())
                raise error
        started = time.perf_counter()
        how = decide(stage, done)
        if changed and newest is not None:
            ctx.log.info("stage %-22s runs again: %s (earlier run %s)", stage.name, changed, newest.path)
        if how == "reused":
            ctx.log.info("stage %-22s done already: %s", stage.name, done.path)  # type: ignore[union-attr]
            run_dirs[stage.name] = str(done.path)  # type: ignore[union-attr]
        else:
            run_dirs[stage.name] = str(_run_stage(stage, run_dirs, [*flags, *common], runs_root,
                                                  (fingerprints[stage.name], recipes[stage.name]), settings.name,
                                                  done if how == "resumed" else None, ctx))
        outcome[stage.name] = {"command": stage.command, "run": run_dirs[stage.name], "how": how,
                               "seconds": round(time.perf_counter() - started, 1)}
        ctx.record.update(pipeline={"name": str(settings.name), "workspace": str(workspace), "stages": outcome,
                                    "plan": recipes})

    metrics: dict[str, Any] = {"stages": outcome, "workspace": str(workspace)}
    if settings.report:
        metrics["report"] = _report(workspace, ctx)
    return metrics


def _refuse_unmet_inputs(stages: list[Stage], wanted: set[str], newest: Callable[[str], RunInfo | None],
                         asked: Sequence[str] | None) -> None:
    """CnnlabError, before any stage runs, for a stage to run that needs a stage neither run now nor completed
    before (`newest(name)`: its newest run in the workspace, _find): probe 197, a subset of the plan trained its first
    stages for minutes before the one that needed a stage left out was refused. A run that completed but no longer
    stands (its upstream ran again, its folder changed) is judged as the stages run (changed_since). The bench stage
    times what is there (bench_of_available)."""
    def unfinished(name: str) -> bool:
        run = newest(name)  # a completed run when there is one
        return run is None or run.status != "completed"

    missing = [s.name for s in stages if s.name not in wanted and unfinished(s.name)]
    for stage in stages:
        needed = next((n for n in stage.inputs if n in missing), None)
        if stage.name in wanted and stage.name != BENCH_STAGE and needed is not None:
            error = _unmet(stages, stage, needed, "which has not completed", missing, asked)
            error.before_work = True
            raise error


def _unmet(stages: list[Stage], stage: Stage, needed: str, why: str, missing: list[str],
           asked: Sequence[str] | None) -> CnnlabError:
    """The refusal of `stage`, which needs stage `needed` (`why` it has no run), with the `pipeline.stages` that
    includes what it needs (`missing`: the stages without a run to give; `asked`: pipeline.stages as given)."""
    include = with_upstream(stages, stage.name, missing, asked or [stage.name])
    return CnnlabError(f"stage {stage.name} needs stage {needed}, {why}",
                       fix=f"include what it needs: 'pipeline.stages=[{','.join(include)}]'")


def stage_files(stage: Stage, folders: Sequence[Path]) -> list[str]:
    """What the user's config files say for a stage's group choices (its `group=option` overrides over the packaged
    defaults), for its fingerprint: its `dataset=birds` means what birds.yaml says now (probe 86), and an edit of a
    file it does not read — the pipeline's own experiment, whose edits reach a stage as its overrides — redoes
    nothing."""
    chosen: dict[str, Any] = dict(default_choices(stage.command))
    for override in stage.overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if "." not in key and value:
            chosen[key] = value
    digest = config_files_digest(folders, chosen)
    return [f"config_files:{digest}"] if digest else []


def hydra_flags() -> list[str]:
    """The Hydra flags that shaped this pipeline's config, for its stages (each a fresh `cnnlab` process that would
    otherwise not know them): the user's config folders (--config-dir, absolute), and another primary config
    (--config-path, --config-name). A stage's `dataset=NAME` from the user's folder then means what it means here."""
    hydra = HydraConfig.get()
    flags: list[str] = []
    for source in hydra.runtime.config_sources:
        if source.provider == "command-line":
            flags += ["--config-dir", str(source.path)]
        elif source.provider == "main" and source.schema == "file":
            flags += ["--config-path", str(source.path)]
    if hydra.job.config_name not in (None, "config"):
        flags += ["--config-name", str(hydra.job.config_name)]
    return flags


def decide(stage: Stage, previous: RunInfo | None) -> str:
    """reused (completed before), resumed (a stage of a resumable command — commands.py: pretrain, finetune,
    distill — stopped after an epoch: continue from its last.pt in a new run) or ran (first time, or a stage
    that cannot resume: start over). `previous` is the newest earlier run that still stands (steps/freshness.py)."""
    if previous is not None and previous.status == "completed":
        return "reused"
    if previous is not None and stage.command in RESUMABLE and previous.artifact("checkpoint") is not None:
        return "resumed"
    return "ran"


def _find(runs_root: Path, fingerprint: str, fresh: Callable[[RunInfo], bool] | None = None) -> RunInfo | None:
    """The newest run of this stage (of those `fresh` accepts): completed if there is one, else the newest attempt
    that kept a checkpoint (an attempt stopped before its first epoch, a resume included, wrote none: probe 175, the
    stage was trained from epoch 1 again and the earlier attempt's epoch lost), else the newest attempt."""
    attempts = [r for r in iter_runs(runs_root) if (r.data.get("pipeline") or {}).get("fingerprint") == fingerprint
                and (fresh is None or fresh(r))]
    completed = [r for r in attempts if r.status == "completed"]
    kept = [r for r in attempts if r.artifact("checkpoint") is not None]
    return (completed or kept or attempts or [None])[-1]


def _run_stage(stage: Stage, run_dirs: dict[str, str], common: list[str], runs_root: Path,
               prints: tuple[str, str], name: str, resume: RunInfo | None, ctx: RunContext) -> Path:
    """Run one stage as `cnnlab <command> <common flags and overrides> <its overrides>`; its completed run.
    `prints`: its fingerprint, and its recipe's (the same without the seed: report.current_plan)."""
    fingerprint, recipe = prints
    overrides = [*common, *stage.resolved_overrides(run_dirs)]
    if resume is not None:
        overrides.append(f"resume={hydra_value(resume.path)}")
    ctx.log.info("stage %-22s cnnlab %s %s", stage.name, stage.command, shlex.join(overrides))  # pasteable
    tag = {"name": name, "stage": stage.name, "fingerprint": fingerprint, "recipe": recipe,
           "inputs": {needed: run_dirs[needed] for needed in stage.inputs}}  # the upstream runs it read
    env = {**os.environ, "CNNLAB_OUTPUTS": str(runs_root), PIPELINE_TAG_ENV: json.dumps(tag)}
    earlier = {run.path for run in iter_runs(runs_root)}
    returncode, pid = _run_child([sys.executable, "-m", "cnnlab", stage.command, *overrides], env, ctx)
    # The run of the process just run, not an earlier attempt's, nor that of the same pipeline run at the same time
    # elsewhere (probe 173: "stage ft failed with exit code 0", the other one's unfinished run named): a stage refused
    # before any work leaves no folder (cnnlab.app).
    attempt = next((run for run in reversed(list(iter_runs(runs_root))) if run.path not in earlier
                    and (run.data.get("pipeline") or {}).get("fingerprint") == fingerprint
                    and (run.data.get("process") or {}).get("pid") == pid), None)
    if returncode != 0 or attempt is None or attempt.status != "completed":
        where = f" (see {attempt.path / 'run.log'})" if attempt is not None else \
            " before it started any work (its error is the line above; it left no run folder)"
        if returncode == 130:
            raise KeyboardInterrupt
        raise CnnlabError(f"stage {stage.name} (cnnlab {stage.command}) failed with exit code "
                          f"{returncode}{where}",
                          fix="fix the cause and run the same `cnnlab pipeline` again: completed stages are reused")
    return attempt.path


# How long a stage may take to record its own interruption after Ctrl-C (a checkpoint write, run.json).
_STAGE_STOP_SECONDS = 60


def _run_child(argv: list[str], env: dict[str, str], ctx: RunContext) -> tuple[int, int]:
    """Run a stage's process to its end; its exit code and pid. On Ctrl-C or SIGTERM wait for it to stop and record
    that it was interrupted: subprocess.run killed it 0.25 s after, and the stage's run.json stayed `running`, listed
    as `dead` (probe 86). The signal is passed on where the stage did not get it too (the terminal sends Ctrl-C to
    both; `kill -INT PID` of the pipeline alone reaches the pipeline: probe 173, the stage trained on until killed).
    Killed after _STAGE_STOP_SECONDS."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-stage-") as folder:
        note = Path(folder) / "signalled"
        with subprocess.Popen(argv, env={**env, SIGNAL_NOTE_ENV: str(note)}) as child:
            try:
                return child.wait(), child.pid
            except KeyboardInterrupt as stop:
                deadline = time.monotonic() + 2.0  # a stage's handler runs between bytecodes: give it a moment
                while not note.exists() and child.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not note.exists() and child.poll() is None:
                    child.send_signal(signal.SIGTERM if getattr(stop, "exit_code", 130) == 143 else signal.SIGINT)
                ctx.log.info("waiting for the stage to record its interruption (at most %d s)", _STAGE_STOP_SECONDS)
                try:
                    child.wait(timeout=_STAGE_STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    child.kill()
                raise


def _report(workspace: Path, ctx: RunContext) -> dict[str, Any]:
    from cnnlab.report import build_report, print_report, write_report

    # a stage run again replaces its earlier run (report.rows.replaced_stage_runs); runs of stages with settings this
    # plan (run.json pipeline.plan) has no more are marked "earlier plan"
    report = build_report(workspace)
    print_report(report)
    written = write_report(report)
    for path in written:
        ctx.log.info("wrote %s", path)
    # Not an artifact: the report lies in the workspace, outside this run's folder (metrics.report.file names it).
    return {"file": str(workspace / "report.md"), "pareto": [str(r.run.path) for r in report.rows if r.pareto],
            "rows": len(report.rows)}
