"""`resume=`: find the interrupted run to continue (a run folder, or `true` / `latest` / `latest:CMD` for the latest
interrupted run of this command) and rebuild its saved configuration with the overrides the user may change on
resuming."""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf._utils import get_omega_conf_dumper

from cnnlab import conftree
from cnnlab.context import RunContext
from cnnlab.engine.checkpoint import STATE_FIX, load_tensors
from cnnlab.engine.optim import check_optimizer_config
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import UNREADABLE_YAML, read_yaml_mapping, write_text
from cnnlab.hydra_args import path_argument
from cnnlab.settings import changes_the_course, check_chosen, resumes_latest, resumes_nothing
from cnnlab.steps.freshness import data_changed
from cnnlab.steps.recording import record_warning
from cnnlab.steps.sources import check_resumed_split, dataset_config_of, refuse_another_label_fraction
from cnnlab.runs import (HYDRA_RECORD, RESUMABLE_STATUSES, RUN_FILE, RUN_ID, SAVED_CONFIG, STATE_FILE, RunInfo,
                         iter_runs, load_run, hydra_runtime, model_sha256, no_checkpoint_reason, process_alive,
                         resolve_source)
from cnnlab.wording import counted, listed

_NOT_OVERRIDABLE_ON_RESUME = ("resume",)
# Settings that change a network's architecture: last.pt holds the original one, so a new value is refused like
# another model= (it failed later as "last.pt does not match this model").
_ARCHITECTURE_KEYS = (*(f"{role}.{key}" for role in ("model", "teacher", "student")
                        for key in ("name", "arch", "stem")),
                      # the head's and the input's shapes (probe 150: "put the run's own last.pt back", a failed run)
                      "dataset.num_classes", "dataset.channels", "method.projection_dim", "method.hidden_dim",
                      "method.projection_layers", "method.predictor_hidden_dim")
# Optimizer settings whose saved state has no buffers for a new value (probe 150: amsgrad=true of an AdamW run, a
# KeyError in its first step); optim.momentum too, but for SGD, whose step makes a missing momentum buffer.
_OPTIMIZER_STATE_KEYS = ("optim._target_", "optim.amsgrad", "optim.centered", "optim.momentum")
# which parameters train: the saved optimizer holds their groups (probe 145: "last.pt does not hold this run's network")
_TRAINABLE_KEYS = ("finetune.mode", "finetune.unfreeze")
# the weights a run started from: its last.pt continues them, and a finetune's data is the weights run's (probe 153:
# `model.weights=OTHER` on resume trained on the other run's folder, recorded as if it were the run's own)
_STARTING_WEIGHTS_KEYS = ("model.weights", "teacher.weights", "student.weights")


@dataclass(frozen=True)
class Completed:
    """What a completed run did (`did`: "it trained for 3 epochs"), and how to ask it for more: `how` ("train it
    longer"), the override that does (`more`: "trainer.epochs=6"), and any other way (`also`, said after the fix)."""

    did: str
    how: str
    more: str
    also: str = ""


def epochs_left(run: RunInfo, cfg: DictConfig) -> Completed | None:
    """A completed training has work left when trainer.epochs exceeds the epochs it recorded (or it recorded no
    count to judge by): None then, else what it did."""
    trained = recorded_count(run, "metrics", "epochs")
    if trained is None or int(cfg.trainer.epochs) > trained:
        return None
    return Completed(f"it trained for {counted(trained, 'epoch')}", "train it longer", f"trainer.epochs={2 * trained}")


@dataclass(frozen=True)
class ResumePoint:
    """What a command's run continues from: `file`, the one it registers as its "checkpoint" artifact, and when a
    run has written it (`written`, completing "a run that ..."), for the errors about a run without one;
    `completed`, what a completed run did when the resumed config asks for no more (None: work is left)."""

    file: str
    written: str
    completed: Callable[[RunInfo, DictConfig], Completed | None] = epochs_left
    # CnnlabError when the resumed config may not continue the run (a search's finished trials were judged under
    # its settings); None: any override resumed_config lets through may
    same_settings: Callable[[RunInfo, DictConfig], None] | None = None
    # a failed run that did all its work and failed at the end, as `completed` says it (a search whose trials all
    # finished and none met its constraints: resumed as it is, it fails the same way); None: resuming may succeed
    failed_when_done: Callable[[RunInfo, DictConfig], Completed | None] | None = None


TRAINING_STATE = ResumePoint(STATE_FILE, "completed at least one epoch")


@found_before_work()  # a refusal here (nothing to resume, data changed) leaves no `failed` run behind (probe 67)
def apply_resume(cfg: DictConfig, ctx: RunContext,
                 point: ResumePoint = TRAINING_STATE) -> tuple[DictConfig, Path | None]:
    """(config to use, `point`'s file to resume from). Without resume= this is (cfg, None)."""
    run = resume_target(cfg, ctx, point)
    if run is None:
        return cfg, None
    ctx.record.update(resumed_from=str(run.path.resolve()),
                      deleted=sorted(deleted_keys(run) | _deletions(ctx.overrides)))
    ctx.log.info("resuming %s (%s)", run.path, run.status)
    effective, replaced = resumed_config(cfg, ctx, run)
    # the folder it will read (dataset.root= may say where the data moved; a moved folder keeps its digest): other
    # pictures there would be carved into other splits — training images into val, val images into training
    root = OmegaConf.select(effective, "dataset.root")
    changed = data_changed(run, root=str(root) if root not in (None, "") else None)
    if changed:
        raise CnnlabError(f"resume={run.path}: {changed}, so its training and val splits are not the ones it trained "
                          "on", fix="start a new run on the folder as it is (drop resume=), or resume with "
                                    "dataset.root=DIR, DIR holding the pictures it trained on (moved, or copied "
                                    "with their file times: cp -a — a plain cp gives them new times, which read as "
                                    "changed)")
    try:  # probe 147: dataset.seed=3 carved another val split, 80 % of it images the run had trained on
        check_resumed_split(run, effective.dataset, ctx.explicitly_set("dataset.val_fraction"))
        refuse_another_label_fraction(run, effective.dataset,
                                      new_run=lambda setting: _as_command(new_run_command(run, ctx, setting)))
    except CnnlabError as other:
        raise CnnlabError(f"resume={run.path}: {other.message}", fix=other.fix) from None
    if point.same_settings is not None:
        point.same_settings(run, effective)
    check_work_left(run, effective, ctx.command, point, where=_where_its_inputs_are(ctx.overrides))
    if replaced:  # said once accepted: they win over the restored state too (the optimizer's lr, the schedule's position)
        ctx.log.info("resume: your overrides replace the saved settings: %s", ", ".join(replaced))
    course = [change for change in replaced if changes_the_course(change)]  # device=cpu moves it, trains the same
    if course:
        ctx.record.update(resume_changed=course)  # the course changed here (distill: its baseline did not follow)
    save_effective_config(effective, ctx)
    state = resume_file(run, point)
    if point is TRAINING_STATE and state is not None:
        check_state_is_the_runs(run, state)
    return effective, state


def check_state_is_the_runs(run: RunInfo, state: Path) -> None:
    """CnnlabError (before any work) when `state`, the last.pt resume= continues, is not the training `run`
    recorded: its epochs' val top-1 and train loss differ from run.json's history, or it holds more than one epoch
    past it (a kill between the save and the record leaves one; fewer is trainer.checkpoint_every's saving every
    k-th epoch), also when run.json records no epoch yet. Probe 139: another run's last.pt copied in "continued" to a
    completed run of that run's weights and history under this run's settings, without a word; probe 144: so it did
    into a run stopped in its first epoch."""
    with found_before_work():
        saved = load_tensors(state, "training state", unreadable_fix=STATE_FIX, records_only=True)
    recorded = (run.data.get("metrics") or {}).get("history")
    recorded = recorded if isinstance(recorded, list) else []  # none yet (killed in its first epoch), or removed
    history = saved.get("history")
    mine, kept = run.data.get(RUN_ID), (saved.get("extra") or {}).get(RUN_ID)
    if isinstance(mine, str) and isinstance(kept, str) and mine != kept:  # probe 145: a one-epoch file of another run
        raise CnnlabError(f"resume={run.path}: its {STATE_FILE} was written by another run (run_id {kept[:8]}…, this "
                          f"run's is {mine[:8]}…) — another run's file copied in?",
                          fix=f"put the run's own {STATE_FILE} back, or start a new run without resume=")
    if not isinstance(history, list):
        return
    # a continuation restored the epochs it took over (`resumed_after_epoch`) before recording any of its own
    behind = max(len(recorded), _whole(run.data.get("resumed_after_epoch")))
    apart = [i + 1 for i, (mine, kept) in enumerate(zip(recorded, history))
             if isinstance(mine, dict) and isinstance(kept, dict) and not _same_epoch(mine, kept)]
    if apart or len(history) > behind + 1:
        where = f"epoch {apart[0]} differs" if apart else f"{counted(len(history), 'epoch')} in it"
        raise CnnlabError(f"resume={run.path}: its {STATE_FILE} is not the training its run.json records "
                          f"({where}; run.json: {counted(behind, 'epoch')}) — another run's file copied in?",
                          fix=f"put the run's own {STATE_FILE} back, or start a new run without resume=")


def _whole(value: Any) -> int:
    """A recorded count (untrusted run.json): the number, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _same_epoch(mine: dict[str, Any], kept: dict[str, Any]) -> bool:
    """Whether two records of one epoch agree on the figures both hold (val top-1, train loss; NaN equals NaN)."""
    for key in ("val_acc", "train_loss"):
        a, b = mine.get(key), kept.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
                not (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))):
            return False
    return True


# where run.json records the file each role's weights came from (at the run's start)
_RECORDED_SOURCE = {"model.weights": ("source",), "teacher.weights": ("source",),
                    "student.weights": ("distill", "student", "source")}


def recorded_source(record: dict[str, Any], key: str) -> str | None:
    """The file `key` (model.weights, teacher.weights, student.weights) named when the run of `record` (its run.json)
    started: the `path` of its recorded source; None when it recorded none (random or ImageNet weights, or a run from
    before cnnlab recorded it at the start)."""
    path = _recorded_entry(record, key).get("path")
    return path if isinstance(path, str) and path else None


def _recorded_entry(record: dict[str, Any], key: str) -> dict[str, Any]:
    """The source entry run.json (`record`) keeps for `key`'s weights ({} when none)."""
    found: Any = record
    for part in _RECORDED_SOURCE[key]:
        found = found.get(part) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else {}


@found_before_work()
def keep_resumed_source(cfg: DictConfig, resume_from: Path | None, key: str,
                        ctx: RunContext | None = None) -> DictConfig:
    """`cfg` with `key` (model.weights, teacher.weights, student.weights) set to the file the resumed run started
    from (recorded_source), so that `latest:CMD` keeps naming the run it named then, not a newer one (probe 153: a
    fine-tune's `resume=true` after another pretrain trained its last epochs on that run's folder, from its record).
    `cfg` as it is without resume (`resume_from` None), or where this command line (`ctx`) typed the same file by
    another path (probe 158: the weights run moved). CnnlabError for a `latest` spec whose run was not recorded
    (probe 156: a fine-tune interrupted before the record was written at the start)."""
    if resume_from is None:
        return cfg
    run = load_run(resume_from.parent)
    recorded = recorded_source(run.data, key)
    spec = str(OmegaConf.select(cfg, key) or "").strip()
    if recorded and ctx is not None and ctx.explicitly_set(key) and _names_the_recorded_source(key, spec, run, ctx):
        return cfg
    if recorded:
        _refuse_a_changed_source(run, key, recorded)
        with open_dict(cfg):
            OmegaConf.update(cfg, key, recorded, force_add=True)
    elif spec == "latest" or spec.startswith("latest:"):
        raise CnnlabError(f"resume={run.path}: it started from {key}={spec}, and its run.json does not record which "
                          f"run that was (a run from before cnnlab recorded it at the start): {spec} may name a newer "
                          "run now, with other weights and data", fix="start a new run (without resume=)")
    return cfg


def _refuse_a_changed_source(run: RunInfo, key: str, recorded: str) -> None:
    """CnnlabError when the file `key`'s weights came from (`recorded`) is gone, or holds other bytes than the SHA-256
    the run recorded at its start (probe 160: its folder deleted and trained into again, a resumed distill learned its
    last epochs from a 35 % teacher after a 93 % one, and trained its "same start" baseline from another student — a
    KD gain of -33.06 points recorded for a true -76.67; a fine-tune recorded the new model as its source). Its file
    copied elsewhere and typed on the command line is the same bytes (_names_the_recorded_source)."""
    digest = _recorded_entry(run.data, key).get("sha256")
    if not isinstance(digest, str):
        return  # a record from before cnnlab kept it: nothing to compare
    now = model_sha256(Path(recorded)) if Path(recorded).is_file() else None
    if now == digest:
        return
    state = "is gone" if not Path(recorded).exists() else \
        "holds other weights now (its SHA-256 is not the one the run recorded at its start)"
    raise CnnlabError(f"resume={run.path}: it started from {key}={recorded}, which {state}: resumed, it would go on "
                      "from other weights than those its first epochs started from, and record them as its source",
                      fix=f"put that file back as it was, or give its copy ({key}=COPY: the same bytes are "
                          "accepted), or start a new run (without resume=)")


def resume_file(run: RunInfo, point: ResumePoint) -> Path | None:
    """The file `run` continues from: its "checkpoint" artifact, or `point`'s file when the artifact names one not
    written yet (a search stopped before its chosen model's first epoch wrote last.pt still holds its study)."""
    recorded = run.artifact("checkpoint")
    if recorded is not None:
        return recorded
    own = run.path / point.file
    return own if own.is_file() else None


def check_work_left(run: RunInfo, cfg: DictConfig, command: str, point: ResumePoint,
                    where: Sequence[str] = ()) -> None:
    """A completed run — or a failed one that did all its work (`point.failed_when_done`) — resumes only to do more
    (train longer, search more trials): CnnlabError, naming what it did and the override that asks for more, when
    `cfg` asks for nothing new. Resumed as it is, it would do nothing and
    write a second completed run of the same model, which `cnnlab report` then counts as a replicate."""
    if run.status == "completed":
        done, state = point.completed(run, cfg), "is complete"
    elif run.status == "failed" and point.failed_when_done is not None:
        done, state = point.failed_when_done(run, cfg), "failed after its work was done"
    else:  # interrupted, failed or killed: what it left undone is the work (after its last epoch: the final steps)
        _refuse_fewer_epochs_than_trained(run, cfg, command, point)
        return
    if done is None:
        return
    raise CnnlabError(f"resume={run.path}: that run {state} ({done.did}), so there is nothing to continue",
                      # `where`: the typed overrides that say where its inputs are now (probe 207: dropped)
                      fix=f"{done.how}: `cnnlab {command} {path_argument('resume', [run.path])} "
                          f"{' '.join([*where, done.more])}`"
                          f"{done.also}, or start a new run without resume=")


def _refuse_fewer_epochs_than_trained(run: RunInfo, cfg: DictConfig, command: str, point: ResumePoint) -> None:
    """An unfinished training resumed with trainer.epochs below the epochs it did (probe 98: `resume=true
    trainer.epochs=1` of a run 2 epochs in trained nothing, said nothing and recorded a `completed` run of 1 epoch)."""
    trained = recorded_count(run, "metrics", "epochs")
    if point.completed is not epochs_left or trained is None or trained <= int(cfg.trainer.epochs):
        return
    raise CnnlabError(f"resume={run.path}: that run was {run.status} after {counted(trained, 'epoch')}, more than "
                      f"trainer.epochs={cfg.trainer.epochs} asks for, so resuming would train nothing",
                      # probe 199: it said the plain resume "finishes its 8 epochs"; it trains to the planned 30
                      fix=f"`cnnlab {command} {path_argument('resume', [run.path])}` trains on to the epochs it "
                          f"planned, and with trainer.epochs={trained} or more to that many; or start a new run "
                          "without resume=")


def recorded_count(run: RunInfo, section: str, key: str) -> int | None:
    """run.json's `section.key` when it is a count (a non-negative int), else None: records are untrusted input."""
    block = run.data.get(section)
    value = block.get(key) if isinstance(block, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def save_effective_config(cfg: DictConfig, ctx: RunContext) -> None:
    """Replace Hydra's .hydra/config.yaml of this run with the config it really runs, resolved: what resuming it reads,
    and what report's seed groups compare. Hydra saves interpolations as typed (`${oc.env:MYLR}`), so two runs at
    learning rates 0.5 and 1e-4 read as one setting, and a resume re-read today's environment (probe 99); a resumed
    run's file was composed from `resume=...` and the defaults, not from the run it continues."""
    if ctx.is_main:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False, enum_to_str=True)
        # OmegaConf.to_yaml's own dump of the resolved values (its dumper quotes '1e-3', 'null', 'on' as strings),
        # without rebuilding a DictConfig of them first: the same text in a third of the time
        text = yaml.dump(values, Dumper=get_omega_conf_dumper(), default_flow_style=False, allow_unicode=True,
                         sort_keys=False)
        write_text(ctx.run_dir / SAVED_CONFIG, text)


def resume_target(cfg: DictConfig, ctx: RunContext, point: ResumePoint = TRAINING_STATE) -> RunInfo | None:
    """The run named by `resume=`: true → the newest interrupted, failed or dead (killed: recorded `running`,
    its process gone) run of this command that holds a checkpoint (`point`: what the errors name); a folder →
    that run, unless it still runs."""
    spec = cfg.get("resume")
    named = not isinstance(spec, bool) and spec is not None and (Path(str(spec)).expanduser() / RUN_FILE).is_file()
    if resumes_nothing(spec) and not named:  # a sweep job's folder is called 0, 1, ...: a folder there is that run
        return None
    if resumes_latest(spec, ctx.command) and not named:
        # A run that a later run already continued is done with: resuming it again would repeat that work
        # (a scheduler's requeue script that always says resume=true would loop on it).
        runs = list(iter_runs(ctx.outputs))
        continued = {path for r in runs if (path := _continued_by(r, point)) is not None}
        candidates = [r for r in runs if r.command == ctx.command and r.status in RESUMABLE_STATUSES
                      and resume_file(r, point) is not None and r.path.resolve() not in continued]
        run = candidates[-1] if candidates else None
        if run is None:
            by_design = [(r, why) for r in runs if r.command == ctx.command and r.status in RESUMABLE_STATUSES
                         and (why := no_checkpoint_reason(r.data)) is not None]
            reason = by_design[-1][1] if by_design else None
            newest = (f"; the newest unfinished one that keeps none by design is {by_design[-1][0].path} ({reason})"
                      if by_design else "")  # a cached probe: naming it saves a detour through its folder
            raise CnnlabError(f"resume={setting_text(spec)}: no interrupted or failed (or killed) `cnnlab {ctx.command}` "
                              f"run with a {point.file} in {ctx.outputs}/{newest}",
                              fix="start it again without resume=" if reason is not None
                              else "pass resume=RUN_FOLDER, or start a new run without resume=")
        return run
    run = load_run(_run_folder(str(spec), ctx.command))
    if resume_file(run, point) is None:
        if run.status == "completed":  # some complete runs keep none (a linear probe on cached features)
            raise CnnlabError(f"resume={spec}: that run is complete and kept no {point.file} to continue from",
                              fix="start a new run without resume=, with the settings you want (e.g. more "
                                  "trainer.epochs)")
        if (reason := no_checkpoint_reason(run.data)) is not None:  # it wrote none by design, whatever it did
            raise CnnlabError(f"resume={spec}: that run keeps no {point.file} to continue from ({reason})",
                              fix="start it again without resume=")
        epochs = recorded_count(run, "metrics", "epochs") if point is TRAINING_STATE else None
        if epochs:  # probe 199: "pick a run that completed at least one epoch" of a run 2 epochs in, its file deleted
            raise CnnlabError(f"resume={spec}: the run's {point.file} is gone, though run.json records "
                              f"{counted(epochs, 'epoch')} done", fix=f"put its {point.file} back, or start a new run "
                                                                      "without resume=")
        raise CnnlabError(f"resume={spec}: the run has no {point.file} to resume from",
                          fix=f"pick a run that {point.written}")
    # probe 139: named on purpose (another branch, other settings), so said, not refused
    later = [str(r.path) for r in iter_runs(ctx.outputs) if _continued_by(r, point) == run.path.resolve()]
    if later and run.status != "completed":
        record_warning(ctx, f"resume={spec}: {listed(later)} continued that run already; this run continues it "
                            f"again from the same {point.file}, and `cnnlab report` counts each")
    process = run.data.get("process") or {}
    if run.status == "running" and process_alive(process):
        raise CnnlabError(f"resume={spec}: that run is still running (pid {process.get('pid')} on "
                          f"{process.get('host')}); two trainings would write over each other",
                          fix=f"wait for it to finish, or stop it (kill {process.get('pid')}) and resume then")
    return run


def _continued_by(run: RunInfo, point: ResumePoint) -> Path | None:
    """The run `run` continued (its resumed_from, resolved), or None. A resume refused before any work (a changed
    model, a changed search constraint) continued nothing: it holds no checkpoint of its own, and following its fix
    must find the same run again."""
    source = run.data.get("resumed_from")
    if not source or not (run.status == "completed" or resume_file(run, point) is not None):
        return None
    return Path(str(source)).resolve()


def _run_folder(spec: str, command: str) -> Path:
    """The folder `resume=` names: CnnlabError in resume='s own terms (true or a run folder) when it names
    nothing, or a file (its run folder is named instead)."""
    path = Path(spec).expanduser()
    if path.is_file():
        in_a_run = (path.parent / RUN_FILE).is_file()
        raise CnnlabError(f"resume={spec} is a file; resume= takes the run folder that holds it",
                          fix=f"pass its folder: `cnnlab {command} {path_argument('resume', [path.parent])}`"
                          if in_a_run else
                              f"pass resume=true or a `cnnlab {command}` run folder (`cnnlab list runs` shows them)")
    if not (path / RUN_FILE).is_file():
        raise CnnlabError(f"resume={spec}: {'no such folder' if not path.exists() else f'no {RUN_FILE} there'}, "
                          "so no run to continue",
                          fix=f"pass resume=true (the latest interrupted `cnnlab {command}` run) or a run folder "
                              "that `cnnlab list runs` shows")
    return path


def resumed_config(cfg: DictConfig, ctx: RunContext, run: RunInfo) -> tuple[DictConfig, list[str]]:
    """The original run's config, with this invocation's key=value overrides applied on top
    (trainer.epochs=20 extends a run; device=cpu moves it), and those that changed a saved value, as
    "key=new (saved: old)". Picking another model or dataset is refused."""
    saved = run.path / SAVED_CONFIG
    if not saved.is_file():
        raise CnnlabError(f"resume: {run.path} has no saved config (.hydra/config.yaml)")
    try:
        old = OmegaConf.load(saved)
    except UNREADABLE_YAML as exc:  # untrusted: a damaged file (UnicodeDecodeError, nesting past the limit too)
        old = None
        why = f": {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    else:
        why = "" if isinstance(old, DictConfig) else ": its top level is not a mapping"
    if not isinstance(old, DictConfig):
        raise CnnlabError(f"resume={run.path}: its saved settings ({SAVED_CONFIG}) cannot be read{why}, and its "
                          f"{STATE_FILE} cannot be continued without them",
                          fix="start a new run without resume= (its last.pt stays where it is)")
    given = ctx.given_keys()
    _paths_from_where_it_started(old, run, given)
    elsewhere = _data_from_elsewhere(old, run)
    if elsewhere is not None:  # judged and continued as the data it trained on (probe 159: `dataset.root=MOVED` of
        # a fine-tune on its weights run's folder was "a setting of … not of the dataset this run uses (synthetic)")
        with open_dict(old):
            old.dataset = OmegaConf.create(elsewhere)
    for key, _ in _plain_overrides(ctx.overrides, cfg):  # before composing, where Hydra's own refusal was logged first
        try:  # probe 144: dataset.num_classes=5 for a digits run was "replaced" and never read
            check_chosen(key, old)
        except CnnlabError as unread:
            raise CnnlabError(f"resume={run.path}: {unread.message.partition(' (typed with +')[0]}",
                              fix=f"drop {key}= (resume continues the run with its own {key.partition('.')[0]})") \
                from None
    filled = fill_missing(old, cfg)
    chosen = defaults_of_saved_choices(old, run, ctx)
    if chosen is not None:  # the sections it chose otherwise (sched=step where today's default is cosine)
        filled += fill_missing(old, chosen)
    filled = _without_deleted(old, filled, run)
    added = [key for key in filled if key not in given]  # a given one is said with the overrides
    if added:  # a run saved by an older cnnlab: settings added since take today's defaults
        ctx.log.info("resume: %s saved no value for %s; using today's default", run.path, ", ".join(added))
    replaced = []
    for override in ctx.overrides:
        key = override.partition("=")[0].lstrip("+")
        if key.startswith("~"):  # probe 102: `resume=RUN '~optim.weight_decay'` trained on at the saved 0.05, unsaid
            if (saved := _delete(old, key[1:])) is not _ABSENT:
                replaced.append(f"{key} (saved: {setting_text(_plain(saved))})")
            continue
        if key == "dataset" and elsewhere is not None:
            # probe 156: a fine-tune on its weights run's data saved the default dataset section: `dataset=synthetic`
            # on resume matched it and trained the rest on synthetic shapes, exit 0
            raise CnnlabError(f"resume continues {run.path} on the data it trained on (dataset "
                              f"{elsewhere.get('name')}, the data of the run its weights came from); dataset= does "
                              "not choose it on a resume",
                              fix="drop dataset= (the run's data is used; dataset.root=DIR says where it moved)")
        if _is_group(key, cfg) and not _the_runs_own_choice(key, cfg, old, run):
            raise CnnlabError(f"resume continues {run.path} with its own config; {override.lstrip('+')} would change "
                              "it", fix=f"drop {key}= (or start a new run without resume="
                                         f"{_as_command(new_run_command(run, ctx, override.lstrip('+'), saved=old))})")
    for key, value in _plain_overrides(ctx.overrides, cfg):
        before, after = _plain(OmegaConf.select(old, key)), _plain(OmegaConf.select(cfg, key))
        if before != after and key in _ARCHITECTURE_KEYS:
            raise CnnlabError(f"resume continues {run.path} with its own config; {key}={value} would change the "
                              f"network it trains (saved: {setting_text(before)})",
                              fix=f"drop {key}= (or start a new run without resume="
                                  f"{_as_command(new_run_command(run, ctx, f'{key}={value}', saved=old))})")
        if before != after and key == "seed":  # probe 199: recorded as the whole run's seed, its first epochs not
            raise CnnlabError(f"resume continues {run.path} with its own config; seed={value} (saved: "
                              f"{setting_text(before)}) would draw the rest of its data order and augmentation from "
                              "another seed than its first epochs, and run.json records one seed for the run",
                              fix=f"drop seed= (or start a new run at seed={value}, without resume="
                                  f"{_as_command(new_run_command(run, ctx, f'seed={value}', saved=old))})")
        same_weights = before != after and key in _STARTING_WEIGHTS_KEYS and \
            _names_the_recorded_source(key, after, run, ctx)  # read (a file hashed) only where it was typed otherwise
        if before != after and key in _STARTING_WEIGHTS_KEYS and not same_weights:
            raise CnnlabError(f"resume continues {run.path} with its own config; {key}={value} would change the "
                              f"weights it started from (saved: {setting_text(before)}), which its {STATE_FILE} "
                              "continues", fix=f"drop {key}= (or start a new run from {value}, without resume="
                                                 f"{_as_command(new_run_command(run, ctx, f'{key}={value}', old))})")
        if before != after and key in _OPTIMIZER_STATE_KEYS and not (
                key == "optim.momentum" and OmegaConf.select(old, "optim._target_") == "torch.optim.SGD"):
            raise CnnlabError(f"resume continues {run.path} with its own config; {key}={value} would change the "
                              f"optimizer whose state its {STATE_FILE} holds (saved: {setting_text(before)})",
                              fix=f"drop {key}= (or start a new run with it, without resume="
                                  f"{_as_command(new_run_command(run, ctx, f'{key}={value}', saved=old))})")
        if before != after and key in _TRAINABLE_KEYS and (key == "finetune.mode" or OmegaConf.select(
                old, "finetune.mode") == "partial"):  # unfreeze moves only a partial fine-tune's trained stages
            # the new run's mode named too: without it a new run is a linear probe (the default)
            mode = value if key == "finetune.mode" else OmegaConf.select(old, "finetune.mode")
            start = f"finetune.mode={mode}" + (f" {key}={value}" if key != "finetune.mode" else "")
            # probe 147: an interrupted run has no model.pt for model.weights= (its continuation will have one)
            new_run = f"start a new run from its weights (model.weights={run.path} {start}, without resume=)" \
                if run.artifact("model") is not None else f"finish it first (`cnnlab {ctx.command} " \
                f"{' '.join([f'resume={run.path}', *_where_its_inputs_are(ctx.overrides)])}`), then start a new run " \
                f"from the run that completes it (model.weights=latest:{ctx.command} {start})"
            raise CnnlabError(f"resume continues {run.path} with its own config; {key}={value} would change which "
                              f"parameters train (saved: {setting_text(before)}), and its optimizer state holds those "
                              "it trained", fix=f"drop {key}=, or {new_run}")
        if before != after and not same_weights:  # the same bytes by another name change nothing (probe 199: a
            # distill resumed with teacher.weights=COPY, as its refusal said, warned of "unlike courses")
            replaced.append(f"{key}={setting_text(after)} (saved: {setting_text(before)})")
        with open_dict(old):
            OmegaConf.update(old, key, OmegaConf.select(cfg, key), force_add=True)
    if isinstance(old.get("optim"), DictConfig):  # the run's optimizer: check_settings left the composed one alone
        check_optimizer_config(old.optim, ctx.overrides)  # (hydra_args.RESUMED_GROUPS)
    with open_dict(old):
        old.resume = str(run.path)
        old.paths = cfg.paths
    return old, replaced


def new_run_command(run: RunInfo, ctx: RunContext, setting: str, saved: DictConfig | None = None) -> str | None:
    """The command that starts `run` afresh with `setting` (KEY=VALUE) in place of its own: the overrides it was
    started with — relative paths made absolute from the folder it was started in — less `resume=` and where Hydra
    put it, with those typed now (`dataset.root=` where the data moved, `trainer.epochs=`) in place of theirs. None
    where no command can be trusted to run as printed: a run that was itself a resume (its record holds the resume's
    overrides, not all of its settings); a key its saved config (`saved`) does not have (probe 204: `dataset.channels=1`
    of a digits run, which a fresh run refuses); another optimizer class (its saved arguments may not fit it).
    Probe 200: "start a new run … without resume=" gave nothing to copy."""
    key = setting.partition("=")[0].lstrip("+~")
    absent = saved is not None and OmegaConf.select(saved, key, default=_ABSENT) is _ABSENT
    if run.data.get("resumed_from") or absent or key == "optim._target_":
        return None
    typed = [o.lstrip("+") for o in ctx.overrides if o.partition("=")[0].lstrip("+~") not in ("resume", "command")]
    typed = [o for o in typed if o.partition("=")[0].lstrip("~") != key] + [setting]
    replaced = {o.partition("=")[0].lstrip("+~") for o in typed}
    cwd = hydra_runtime(run.path).get("cwd")
    kept = [_absolute(o, cwd) for o in run.data.get("overrides") or [] if o.partition("=")[0].lstrip("+~") not in
            (*replaced, "resume", "command") and not o.lstrip("+~").startswith(("hydra.run.", "hydra.sweep."))]
    return shlex.join(["cnnlab", ctx.command, *kept, *typed])


def _paths_from_where_it_started(saved: DictConfig, run: RunInfo, given: set[str]) -> None:
    """The saved config's relative paths (dataset.root, the weights it started from) made absolute from the folder
    the run was started in, in place, where they name something there and this command line gives no other: a resume
    from another folder read them from there (probe 207: "its image folder imgs is gone" of a folder in its place)."""
    cwd = hydra_runtime(run.path).get("cwd")
    for key in (*_STARTING_WEIGHTS_KEYS, "dataset.root"):
        value = OmegaConf.select(saved, key, default=None)
        if key in given or not isinstance(value, str):
            continue
        absolute = _absolute(f"{key}={value}", cwd).partition("=")[2]
        if absolute != value:
            OmegaConf.update(saved, key, absolute, merge=False)


_ABSENT = object()
_PATH_KEYS = (*_STARTING_WEIGHTS_KEYS, "dataset.root", "source", "paths.outputs", "paths.data")


def _absolute(override: str, cwd: Any) -> str:
    """`override` with a relative path value made absolute from `cwd` (the folder its run was started in), for a
    command typed in any folder (probe 204: `dataset.root=imgs` failed from another one); as it is otherwise."""
    key, _, value = override.partition("=")
    if key.lstrip("+~") not in _PATH_KEYS or not isinstance(cwd, str) or not Path(cwd).is_absolute():
        return override
    path = Path(value).expanduser()
    if path.is_absolute() or not (Path(cwd) / path).exists():  # `latest`, `imagenet`, `none`: not paths
        return override
    return f"{key}={os.path.normpath(Path(cwd) / path)}"


def _as_command(command: str | None) -> str:
    return f": `{command}`" if command else ""


def _where_its_inputs_are(overrides: Sequence[str]) -> list[str]:
    """The overrides typed on a resume that say where its inputs are now — a copy of the weights it started from, the
    folder its data moved to — for a command the refusal names (probe 199: `finish it first (cnnlab finetune
    resume=RUN)` dropped the `model.weights=COPY` its weights run, deleted, needed). cnnlab may add `++` to a typed
    dataset key: said as typed."""
    return [o.lstrip("+") for o in overrides
            if o.partition("=")[0].lstrip("+") in (*_STARTING_WEIGHTS_KEYS, "dataset.root")]


def _names_the_recorded_source(key: str, value: Any, run: RunInfo, ctx: RunContext) -> bool:
    """Whether `value`, typed for `key` on resume, names the very file the run started from (probe 156: its own
    weights, by their run folder, were refused as "would change the weights it started from")."""
    recorded = recorded_source(run.data, key)
    if recorded is None:
        return False
    try:
        named = resolve_source(str(value), ctx.outputs, want=("checkpoint",), key=key).path
        digest = _recorded_entry(run.data, key).get("sha256")  # moved or copied (probe 158): the same bytes
        if not isinstance(digest, str):  # a record from before the digest: the same path is all there is to compare
            return named.resolve() == Path(recorded).resolve()
        return model_sha256(named) == digest
    except (CnnlabError, OSError):
        return False


def _plain_overrides(overrides: list[str], cfg: DictConfig) -> list[tuple[str, str]]:
    """(key, value) of the overrides among `overrides` that set one setting: not a deletion (~KEY), a group choice
    (optim=adamw), hydra's own or one resume never takes from the command line (_NOT_OVERRIDABLE_ON_RESUME)."""
    pairs = [(key.lstrip("+"), value) for key, _, value in (o.partition("=") for o in overrides)]
    return [(key, value) for key, value in pairs if not key.startswith(("~", "hydra"))
            and key not in _NOT_OVERRIDABLE_ON_RESUME and not _is_group(key, cfg)]


def _the_runs_own_choice(group: str, cfg: DictConfig, saved: DictConfig, run: RunInfo) -> bool:
    """Whether `group`'s section as composed here (`cfg`: its option, with the keys typed now) is the one `run` saved
    once the keys the run's own command line set in it (e.g. dataset.root, sched.step_epochs) are taken as saved:
    `resume=RUN dataset=imagefolder` names the run's own choice (probe 153: refused as "would change it")."""
    composed = OmegaConf.create(OmegaConf.to_container(cfg[group]))
    section = saved.get(group)
    if not isinstance(section, DictConfig):
        return False
    for override in _typed_along(run):
        name = str(override).partition("=")[0].lstrip("+")
        if name.startswith(f"{group}.") and (value := OmegaConf.select(section, name[len(group) + 1:])) is not None:
            OmegaConf.update(composed, name[len(group) + 1:], value, force_add=True)
    return OmegaConf.to_container(composed) == OmegaConf.to_container(section)


def _data_from_elsewhere(saved: DictConfig, run: RunInfo) -> dict[str, Any] | None:
    """The dataset config `run` trained on (sources.dataset_config_of: run.json's, its split settings checked) when
    its saved dataset section is not that data (a fine-tune that took its weights run's data: the section is the
    composed default), else None."""
    recorded, section = dataset_config_of(run), saved.get("dataset")
    if recorded is None or not isinstance(section, DictConfig):
        return None
    return recorded if recorded.get("name") != section.get("name") else None


def _typed_along(run: RunInfo, most: int = 100) -> list[str]:
    """The overrides typed for `run` and for each run it resumed, back to the first (run.json `overrides`,
    `resumed_from`; a damaged or missing record ends the chain)."""
    typed: list[str] = []
    seen: set[Path] = set()
    current: RunInfo | None = run
    while current is not None and current.path not in seen and len(seen) < most:
        seen.add(current.path)
        typed += [str(o) for o in current.data.get("overrides") or [] if isinstance(o, str)]
        earlier = current.data.get("resumed_from")
        try:
            current = load_run(Path(earlier)) if isinstance(earlier, str) else None
        except (CnnlabError, OSError):
            current = None
    return typed


def _is_group(key: str, cfg: DictConfig) -> bool:
    """Whether override `key` picks a config group's option (optim=adamw), not a setting."""
    return "." not in key and key in cfg and isinstance(cfg[key], DictConfig)


# Keys that say which choice of a config group a section is (model.name, optim._target_): a section whose choice
# differs between the saved run and today's composition is not filled from today's (its keys belong to another one).
_CHOICE_KEYS = ("name", "_target_", "kind")
# Sections the user writes as a collection (a search space's parameters): a key left out was left out on purpose.
_COLLECTIONS = ("space",)


def _deletions(overrides: Any) -> set[str]:
    """The keys of the `~KEY` overrides among `overrides` (a recorded list: untrusted)."""
    return {str(o)[1:].split("=", 1)[0] for o in overrides or [] if str(o).startswith("~")}


def _delete(config: DictConfig, dotted: str) -> Any:
    """Delete `dotted` from `config`; its value, or _ABSENT when it was not there."""
    *parents, leaf = dotted.split(".")
    node = OmegaConf.select(config, ".".join(parents)) if parents else config
    if not isinstance(node, DictConfig) or leaf not in node:
        return _ABSENT
    value = node[leaf]
    with open_dict(node):
        del node[leaf]
    return value


def deleted_keys(run: RunInfo) -> set[str]:
    """The settings `run` trained without on purpose: its own `~KEY` overrides, and those of the runs it continued
    (run.json `deleted`, which a resumed run records: probe 102, a second resume put the key back)."""
    inherited = run.data.get("deleted")
    return _deletions(run.data.get("overrides")) | ({str(k) for k in inherited if isinstance(k, str)}
                                                     if isinstance(inherited, list) else set())


def _without_deleted(saved: DictConfig, filled: list[str], run: RunInfo) -> list[str]:
    """`filled` less the keys the run deleted (`deleted_keys`), taken out of `saved` again: absent on purpose, not
    added to cnnlab since (probe 100: a resume put optim/adamw.yaml's 0.05 back where the run trained at AdamW's own
    0.01)."""
    deleted = deleted_keys(run)
    for key in deleted & set(filled):
        _delete(saved, key)
    return [key for key in filled if key not in deleted]


def fill_missing(saved: DictConfig, current: DictConfig | dict, prefix: str = "") -> list[str]:
    """Add to `saved` (in place) every key `current` has and it lacks — settings added to cnnlab after the run was
    saved, which the code now reads — recursing into sections of the same choice. Values are copied unresolved
    (an interpolation stays one). Returns the dotted keys added."""
    plain = OmegaConf.to_container(current, resolve=False) if isinstance(current, DictConfig) else current
    added = []
    for key, value in plain.items():
        name = f"{prefix}{key}"
        if key not in saved:
            with open_dict(saved):
                saved[key] = value
            added.append(name)
            continue
        if name in _COLLECTIONS:
            continue
        mine = saved._get_node(key)
        if isinstance(mine, DictConfig) and isinstance(value, dict) and all(
                _plain(mine.get(k)) == value.get(k) for k in _CHOICE_KEYS if k in mine and k in value):
            added += fill_missing(mine, value, f"{name}.")
    return added


def defaults_of_saved_choices(saved: DictConfig, run: RunInfo, ctx: RunContext) -> DictConfig | None:
    """Today's configuration composed by Hydra with the group choices `saved` (the config of `run`) made where this
    invocation composed others (a run saved with sched=step, resumed by `resume=RUN`, which composes today's default
    sched=cosine): the defaults fill_missing takes for those sections. Without it, step's settings added since were
    left out and the code's own defaults applied (step_epochs: 1 where step.yaml says 3). None when every choice is
    the same, or outside a Hydra run. Which option a section came from: `saved_choice`."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    groups, folders, recorded = [], conftree.user_config_dirs(hydra_cfg), recorded_choices(run)
    if not recorded:  # said, not guessed silently: a --config-dir option may then be taken for a stock one
        ctx.log.warning("resume: %s is missing or damaged, so which option each saved section (sched, optim, ...) "
                        "came from is told by its keys (name, _target_)", run.path / HYDRA_RECORD)
    for group, option in hydra_cfg.runtime.choices.items():
        section = saved.get(group) if "/" not in group and group in saved else None
        if isinstance(section, DictConfig):
            chosen = saved_choice(group, section, recorded.get(group), folders)
            if chosen is not None and chosen != option:
                groups.append(f"{group}={chosen}")
    if not groups:
        return None
    # the settings typed into those sections are the run's to judge (resumed_config), not today's composition's
    # (probe 150: `+method.temperature=0.3` of a SimCLR run warned "could not be composed … An item is already there")
    chosen = {g.partition("=")[0] for g in groups}
    mine = [o for o in hydra_cfg.overrides.task if o.partition("=")[0].lstrip("+~").split(".", 1)[0] not in chosen]
    try:
        return compose(config_name=hydra_cfg.job.config_name, overrides=[*mine, *groups])
    except (HydraException, OmegaConfBaseException) as exc:  # e.g. an option file gone from a --config-dir
        ctx.log.warning("resume: today's defaults for %s could not be composed (%s); settings those sections saved "
                        "no value for take the code's defaults", ", ".join(groups), exc)
        return None


def saved_choice(group: str, section: DictConfig, recorded: str | None, folders: list[Path]) -> str | None:
    """The option of `group` a saved `section` was composed from: the one the run recorded (`recorded`, from its
    .hydra/hydra.yaml: a user's sched/mystep.yaml with `name: step` is mystep, not the stock step) when it fits;
    none when that option is gone; else the option whose choice keys (name, _target_, kind) are the section's — adamw
    by `_target_: torch.optim.AdamW` — or, for an option that has none (teacher/resnet50.yaml: a defaults list),
    the one named as the section. None when none fits: the section is not filled (the code's defaults apply)."""
    keys = {key: _plain(section.get(key)) for key in _CHOICE_KEYS if key in section}
    if not keys:
        return None
    options = conftree.choices(group, folders)
    if recorded is not None and recorded not in options:
        return None  # its own option is not here (a --config-dir not given again): no guessing from another
    # the recorded one first; then the others (a resumed run's record holds its resume= invocation's choices)
    others = sorted((o for o in options if o != recorded), key=lambda o: conftree.config_file(f"{group}/{o}") is None)
    for option in [*([recorded] if recorded else []), *others]:  # cnnlab's own options before a --config-dir's
        path = conftree.config_file(f"{group}/{option}", folders)
        data = (read_yaml_mapping(path) if path is not None else None) or {}
        theirs = {key: data[key] for key in _CHOICE_KEYS if key in data}
        if (theirs and theirs == keys) or (not theirs and option == keys.get("name")):
            return option
    return None


def recorded_choices(run: RunInfo) -> dict[str, str]:
    """group → option, as Hydra recorded them for `run` (.hydra/hydra.yaml `hydra.runtime.choices`); {} when that
    record is missing or unreadable (untrusted: only text values)."""
    choices = hydra_runtime(run.path).get("choices")
    return {k: v for k, v in choices.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(choices, dict) else {}


def setting_text(value: Any) -> str:
    """A setting's value as the command line writes it: null, true/false, 0.1, [1, 2]."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
