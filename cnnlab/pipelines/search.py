"""`cnnlab search`: hardware-aware architecture search (space=mobilenet | efficientnet) or hyperparameter search
(space=hparams, or a space file of your own), with latency measured on the target. docs/search.md.

1. The space, the settings, the latency runtime, the proxy batch against the training split (checked before any
   work); the study in study.db (a resumed run continues a copy of the interrupted run's study and latency cache;
   the interrupted trial runs again; a completed search resumes only to extend it).
2. search.trials trials (steps/search_trials.py): candidate → latency (cached; timed beside search.reference
   when set) → constraints → proxy training,
   stopped early at a rung when dominated (search/study.py). NSGA-II (two objectives) or TPE (hparams).
3. trials.csv, the Pareto front (table, pareto.png), latency vs FLOPs rank correlation.
4. The most accurate candidate within the constraints, trained for trainer.epochs: the run's model.pt. When no
   candidate meets them, the run keeps its study and files and fails naming the closest trial.

Under torchrun every rank runs the same seeded study (rank > 0 in its scratch folder) and the ranks train each
candidate together: rank 0 alone times a candidate and hands its figures to the others (TrialRunner.latency), and
the validation scores are reduced over the ranks, so every rank tells its study the same values and the samplers
propose the same next candidate on every rank. Rank 0 writes the run folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.data import DataBundle, check_dataset
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import read_training_extra
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import read_json
from cnnlab.models import canonical_name, requested_stem
from cnnlab.runs import RUN_FILE, SAVED_CONFIG, STATE_FILE, RunInfo
from cnnlab.search.latency import CACHE_FILE, LatencyCache, check_runtime
from cnnlab.search.results import (best_feasible, correlation_line, correlation_points, empty_front_line,
                                   front_table, latency_flops_correlation, no_candidate_met, pareto_front, plot_front,
                                   relative, speedup_text, write_trials_csv)
from cnnlab.search.settings import SearchSettings
from cnnlab.search.space import SearchSpace
from cnnlab.search.study import STUDY_FILE, finished_trials, open_study, requeue_interrupted, trial_record
from cnnlab.settings import HOW_IT_RUNS, within
from cnnlab.steps.recording import fit_metrics, save_and_record
from cnnlab.steps.sources import weights_dataset_config
from cnnlab.steps.resume import Completed, ResumePoint, apply_resume, recorded_count, setting_text
from cnnlab.steps.search_trials import (REFERENCE_ONNX, TRIAL_ERRORS, TrialRunner, check_proxy_batches,
                                        check_space_keys, chosen_candidate, train_chosen)
from cnnlab.steps.augment_on import augment_without_device
from cnnlab.steps.training import setup_runtime
from cnnlab.weights import InitialWeights, resolve_weights
from cnnlab.wording import counted
from cnnlab.steps.input_settings import typed_normalisation

TRIALS_CSV, PARETO_PNG = "trials.csv", "pareto.png"


def trials_left(run: RunInfo, cfg: DictConfig) -> Completed | None:
    """A completed search has work left when asked for more trials than it finished (search.trials), or a longer
    training of its chosen model (trainer.epochs above the epochs it trained): None then, else what it did."""
    finished = recorded_count(run, "search", "finished") or 0
    trained = recorded_count(run, "metrics", "epochs") or 0
    if int(cfg.search.trials) > finished or int(cfg.trainer.epochs) > trained:
        return None
    return Completed(f"{counted(finished, 'trial')} finished, its chosen model trained for {counted(trained, 'epoch')}",
                     f"extend it with more trials than its {finished}", f"search.trials={2 * finished}",
                     f" (or trainer.epochs above {trained} to train its chosen model longer)")


def trials_spent(run: RunInfo, cfg: DictConfig) -> Completed | None:
    """A search that failed after all its trials finished with none within its constraints (probe 74: `resume=true`
    resumed it, failed the same way, and the next `resume=true` resumed that failure) has work left only when asked
    for more trials: None then (or when it failed otherwise), else what it did. A hyperparameter space's has none:
    its trials all train one network (CnnlabError)."""
    finished = recorded_count(run, "search", "finished")
    feasible = recorded_count(run, "search", "feasible")
    if finished is None or feasible != 0:
        return None
    space = (run.data.get("search") or {}).get("space")
    if isinstance(space, dict) and space.get("kind") == "hparams":  # one network: no trial can meet them (probe 75)
        raise CnnlabError(f"resume={run.path}: that run failed after its work was done ({counted(finished, 'trial')} "
                          "finished, none within its constraints), and a hyperparameter space trains one network, "
                          "so more trials cannot meet them either",
                          fix="start a new search without resume=, with the constraint relaxed as its error said, or "
                              "a smaller model=")
    if int(cfg.search.trials) > finished:
        return None
    # more trials help only if the space holds networks within the constraints (probe 77: max_params=100 in a space
    # whose every network has a 1,280-wide head looped), so the sure fix is said first
    return Completed(f"{counted(finished, 'trial')} finished, none within its constraints, which a resumed search "
                     "keeps", "relax the constraint in a new search without resume=, as its error said; only if the "
                     f"space holds networks within it, extend this one with more trials than its {finished}",
                     f"search.trials={2 * finished}")


# What a resumed search may change: how many trials, how long the chosen candidate trains, and where and how
# visibly it runs. Every other setting (search.*, dataset.*, the proxy recipe, the space, the seed) decided how the
# finished trials were timed, judged and trained; a new value would leave their verdicts standing beside new ones.
RESUME_MAY_CHANGE = ("search.trials", "trainer.epochs", "resume", *HOW_IT_RUNS)


def check_same_search(run: RunInfo, cfg: DictConfig) -> None:
    """A resumed search continues its study under the settings it started with: CnnlabError naming every setting
    of `cfg` (the resumed config, this invocation's overrides applied) that differs from the resumed run's
    saved config, outside RESUME_MAY_CHANGE. A setting the saved config lacks (added to cnnlab since; resume filled
    it with today's default and logged it) is not compared: the run said nothing about it."""
    saved = OmegaConf.load(run.path / SAVED_CONFIG)  # read by apply_resume already
    before, now = _leaves(saved), _leaves(cfg)
    changed = [f"{key}={setting_text(now.get(key))} (saved: {setting_text(before.get(key))})"
               for key in sorted(before) if before.get(key) != now.get(key)
               and not within(key, RESUME_MAY_CHANGE)]
    if changed:
        raise CnnlabError(f"resume continues a search under its own settings; {', '.join(changed)} would judge "
                          "new trials differently from the finished ones",
                          fix="drop those overrides to resume (only search.trials, trainer.epochs and where it runs — "
                              "device, trainer.workers, logger — may change), "
                              "or start a new search without resume=")


def _leaves(cfg: DictConfig) -> dict[str, Any]:
    """Every setting as dotted key → value (lists are values)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


# What resume= continues: the study, opened before the first trial (the final training's last.pt replaces it
# as the checkpoint once that starts; a run holding last.pt holds its study too).
SEARCH_STATE = ResumePoint(STUDY_FILE, "started its trials", completed=trials_left,
                           same_settings=check_same_search, failed_when_done=trials_spent)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    cfg, resume_from = apply_resume(cfg, ctx, SEARCH_STATE)
    with found_before_work():  # settings, space and inputs: refused before the first trial
        settings = SearchSettings.from_config(
            OmegaConf.to_container(cfg.search, resolve=True))  # type: ignore[arg-type]
        space = SearchSpace.from_mapping(_space_name(ctx),
                                         OmegaConf.to_container(cfg.space, resolve=True))  # type: ignore[arg-type]
        check_space_keys(space, cfg)
        check_runtime(settings.latency)
        recipe = Recipe.from_config(cfg)
        runtime = setup_runtime(cfg, recipe)
        augment_without_device(ctx, recipe, "a search's trials augment per image, in the DataLoader workers")
        check_dataset(cfg.dataset)
        if space.is_architecture and requested_stem(cfg.model) not in (None, "imagenet"):
            raise CnnlabError(f"model.stem={cfg.model.stem} does not apply to an architecture search: every "
                              "candidate's stem is part of its architecture string (stemCsS)",
                              fix="drop model.stem; the space searches the stem's stride (its stem_stride parameter, "
                                  "docs/search.md)")
        weights = InitialWeights(kind="none", description="random initialisation") if space.is_architecture \
            else resolve_weights(cfg.model.weights, cfg.model.name, ctx.outputs, node=cfg.model,
                                 normalisation=typed_normalisation(cfg, ctx))
        if weights.kind == "run" and weights.arch_name and \
                canonical_name(weights.arch_name) != canonical_name(cfg.model.name):  # every trial builds model=
            raise CnnlabError(f"model.weights is a {weights.arch_name} checkpoint, but the search trains "
                              f"model={cfg.model.name}", fix=f"add model={canonical_name(weights.arch_name)}")
        dataset_cfg = weights_dataset_config(cfg, ctx, weights)  # a run's weights: its data, unless dataset=
        if dataset_cfg is not cfg.dataset:  # every trial and the final training read cfg.dataset
            with open_dict(cfg):
                cfg.dataset = dataset_cfg

        built: dict[str, DataBundle] = {}  # the datasets read for the check, kept for the trials
        check_proxy_batches(cfg, space, settings, weights, built, runtime.world_size)
    carried = carry_over(ctx, resume_from)
    study = open_study(ctx.run_dir, multi_objective=space.is_architecture, seed=recipe.seed,
                       population=settings.population, constrained=settings.constrained)
    ctx.record.add_artifact("study", ctx.path(STUDY_FILE))
    ctx.record.add_artifact("checkpoint", ctx.path(SEARCH_STATE.file))
    ctx.record.update(search={"space": space.describe(), "settings": settings.describe()})
    again = requeue_interrupted(study) if carried else []
    done = len(finished_trials(study))
    ctx.log.info("search %s (%s) on %s: %d of %s done%s; latency: %s", space.name, space.kind,
                 cfg.dataset.name, done, counted(settings.trials, "trial"),
                 f"; interrupted {'trial' if len(again) == 1 else 'trials'} {', '.join(map(str, again))} "
                 f"{'runs' if len(again) == 1 else 'run'} again as new {'trial' if len(again) == 1 else 'trials'}"
                 if again else "",
                 settings.latency.key + (f" vs {settings.reference}" if settings.reference else ""))
    runner = TrialRunner(ctx, cfg, runtime, space, settings, LatencyCache(ctx.path(CACHE_FILE)), study, weights,
                         _data=built)
    ended = False
    try:
        if done < settings.trials:
            study.optimize(runner, n_trials=settings.trials - done, catch=TRIAL_ERRORS)
        ended = True
    finally:  # also after Ctrl-C: what finished is on disk and in the files
        rows = [trial_record(t) for t in study.get_trials(deepcopy=False)]
        summary = write_results(ctx, rows, space.name, settings, ended=ended)

    chosen = best_feasible(rows)
    if chosen is None:
        raise no_candidate_met(rows, max_latency_ms=settings.max_latency_ms, max_params=settings.max_params,
                               min_speedup=settings.min_speedup, reference=settings.reference,
                               architecture=space.is_architecture)
    speed = "" if chosen.get("speedup") is None else \
        f" ({speedup_text(chosen['speedup'], settings.reference, chosen.get('speedup_per_round'))})"
    ctx.log.info("chosen: trial %d — val top-1 %.2f%% (proxy), %.3f ms%s, %s params", chosen["trial"],
                 100 * chosen["val_acc"], chosen["latency_ms"], speed, f"{chosen['params']:,}")
    candidate = chosen_candidate(space, chosen)
    # recorded before its training: a run stopped in it says which trial it was training (probe 216)
    ctx.record.update(search={**summary, "chosen": {k: chosen.get(k) for k in (
                                  "trial", "arch", "val_acc", "latency_ms", "speedup", "speedup_per_round",
                                  "reference_ms", "params", "flops", "image_size")},
                              "overrides": dict(candidate.overrides)})
    continued = final_checkpoint(ctx, resume_from, chosen["trial"])
    result, trained = train_chosen(runner, candidate, chosen["trial"], continued)
    metrics = fit_metrics(result) | {"latency_ms": chosen["latency_ms"], "proxy_val_acc": chosen["val_acc"],
                                     "search_trials": summary["finished"],
                                     "spearman_latency_flops": summary["spearman_latency_flops"]}
    if chosen.get("speedup") is not None:
        metrics["speedup_vs_reference"] = chosen["speedup"]
    save_and_record(ctx, trained, metrics, extra={"search": {"trial": chosen["trial"], "arch": candidate.arch}})
    if candidate.arch:
        ctx.record.update(model={"arch": candidate.arch})
    if ctx.is_main:
        out.print(f"chosen: trial {chosen['trial']} {candidate.arch or dict(candidate.overrides)} — "
                  f"val top-1 {metrics.get('val_acc', 0):.2%} after {counted(recipe.epochs, 'epoch')}, "
                  f"{chosen['latency_ms']:.3f} ms{speed} ({settings.latency.key})")
    return metrics


def _space_name(ctx: RunContext) -> str:
    """The space's name: the one the resumed run recorded, else this invocation's `space=` choice."""
    from hydra.core.hydra_config import HydraConfig

    if ctx.record.data.get("resumed_from"):
        resumed = read_json(Path(str(ctx.record.data["resumed_from"])) / RUN_FILE)
        return str(((resumed.get("search") or {}).get("space") or {}).get("name") or "space")
    return str(HydraConfig.get().runtime.choices.get("space") or "space")


def final_checkpoint(ctx: RunContext, resume_from: Path | None, trial: int) -> Path | None:
    """The last.pt the chosen candidate's training continues from: the resumed run's, when it trained this same
    trial — an extended search may choose another, whose network that state does not fit."""
    if resume_from is None or Path(resume_from).name != STATE_FILE:
        return None  # the resumed run had not started its final training: the study is what it left
    before = read_training_extra(Path(resume_from)).get("search_trial")
    if before == trial:
        return resume_from
    ctx.log.info("the chosen candidate is now trial %d, not trial %s: it trains from scratch (not from %s)", trial,
                 before, resume_from)
    return None


def carry_over(ctx: RunContext, resume_from: Path | None) -> bool:
    """A resumed search: copy the interrupted run's study.db and latency.json into this run (the old run is
    never written). True when a study was carried over."""
    if resume_from is None:
        return False
    old = Path(str(ctx.record.data["resumed_from"]))
    for name in (STUDY_FILE, CACHE_FILE):
        if (old / name).is_file():
            shutil.copy2(old / name, ctx.path(name))
    return ctx.path(STUDY_FILE).is_file()


def latency_limit(settings: SearchSettings, rows: list[dict[str, Any]]) -> tuple[float, str] | None:
    """The latency constraint on the plot's axis: 1 / min_speedup on a relative axis, max_latency_ms on one in ms."""
    if relative(rows):
        return None if settings.min_speedup is None else (1 / settings.min_speedup,
                                                          f"search.min_speedup={settings.min_speedup:g}")
    return None if settings.max_latency_ms is None else (settings.max_latency_ms,
                                                         f"search.max_latency_ms={settings.max_latency_ms:g}")


def write_results(ctx: RunContext, rows: list[dict[str, Any]], space: str, settings: SearchSettings, *,
                  ended: bool = True) -> dict[str, Any]:
    """trials.csv, pareto.png and the front's table (a line instead when it is empty); run.json's search summary
    (counts, the correlation and how many timed candidates it is over). `ended`: the search ran to its end — after a
    Ctrl-C the best trial is the best so far, not a choice (probe 185 read "* = chosen" of a search that chose
    nothing)."""
    states = [r["state"] for r in rows]
    summary = {"finished": sum(s in ("complete", "pruned") for s in states), "pruned": states.count("pruned"),
               "failed": states.count("fail"),
               "feasible": sum(bool(r["feasible"]) for r in rows if r["state"] in ("complete", "pruned")),
               "spearman_latency_flops": latency_flops_correlation(rows),
               "spearman_candidates": len(correlation_points(rows))}
    if not ctx.is_main:
        return summary
    ctx.record.add_artifact("trials_csv", write_trials_csv(ctx.path(TRIALS_CSV), rows))
    title = f"cnnlab search space={space}: {counted(summary['finished'], 'finished trial')}"
    reference = settings.reference
    chosen = best_feasible(rows)
    if (png := plot_front(rows, ctx.path(PARETO_PNG), title, reference, limit=latency_limit(settings, rows),
                          chosen=chosen, chosen_label="chosen" if ended else "best so far")) is not None:
        ctx.record.add_artifact("pareto_png", png)
    if pareto_front(rows):
        versus = f"; vs {reference}: timed beside it, paired" if reference and relative(rows) else ""
        out.print(front_table(rows, chosen, f"Pareto front ({summary['feasible']} feasible of "
                                            f"{counted(summary['finished'], 'finished trial')}; "
                                            f"* = {'chosen' if ended else 'best so far (stopped: nothing chosen)'}"
                                            f"{versus})",
                              reference))
    else:  # an empty table says nothing (Ctrl-C before the first trial finished, no trial within the constraints)
        out.print(empty_front_line(rows))
    if ctx.path(REFERENCE_ONNX).is_file():
        ctx.record.add_artifact("reference_onnx", ctx.path(REFERENCE_ONNX))
    if (line := correlation_line(rows)) is not None:
        out.print(line)
    ctx.record.update(search=summary)
    return summary
