"""One trial of `cnnlab search`, and the training of the chosen candidate: what needs the run's context.

A trial: the candidate the sampler picks (space.sample) → the network, its parameters and FLOPs → its latency on
the target (cached per architecture) → the constraints → a short proxy training on a seeded share of the training
split through the one training engine (steps/training.py: train_model), whose per-epoch validation reports
the accuracy to the study and stops a poor trial at a rung (search/study.py). Proxy trainings write no per-epoch
files and no last.pt: the study (study.db) is what a resumed search continues from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import optuna
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn
from torch.utils.data import DataLoader, Subset

from cnnlab.context import RunContext
from cnnlab.environment import available_memory
from cnnlab.data import DataBundle, build_datasets, resolve_input_spec
from cnnlab.data.spec import InputSpec
from cnnlab.engine.memory import training_batch_bytes
from cnnlab.engine.objectives import Objective
from cnnlab.engine.progress import Progress
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.runtime import Runtime, from_rank_zero
from cnnlab.engine.trainer import NonFiniteLoss, evaluate
from cnnlab.errors import CnnlabError
from cnnlab.interrupts import interrupts_deferred
from cnnlab.models import (canonical_name, channel_options, count_flops, count_params, create_model, get_entry,
                           small_input_adaptation)
from cnnlab.search.latency import LatencyCache, Reference, Timed, cached_latency, export_reference
from cnnlab.search.results import speedup_text
from cnnlab.search.settings import SearchSettings
from cnnlab.search.space import Candidate, SearchSpace, sample
from cnnlab.search.study import (ACC_AT, TRAINS, dominated_too_often, draw_index, draw_seed, rung_epochs, rung_peers,
                                 scored_twin, set_constraints)
from cnnlab.settings import choices_with, closest_setting, rule_for, within
from cnnlab.steps.recording import TrainedModel
from cnnlab.steps.training import (Checkpointing, Trainable, classification_objective, loader_workers, make_loaders,
                                   train_model)
from cnnlab.weights import InitialWeights, initial_model
from cnnlab.wording import counted, listed

REFERENCE_ONNX = "reference.onnx"


# What a trial takes from its candidate's config: its training recipe (Recipe.from_config: optim, sched, trainer)
# and its augmentation (dataset.augment). The data itself (name, split, seed, size, normalisation), the network
# (model=), the seed and the search's own settings (search.*) are the search's: every trial is scored on the same
# val split. A space that searched one compared scores on different val sets, or "chose" a value that played no part
# (probes 56-58: `trainer.epochs`, `model.name`, `search.proxy_epochs`, `dataset.val_fraction`, `dataset.native_size`).
TRIAL_SECTIONS = ("optim", "sched", "trainer", "dataset.augment")
SET_BY_THE_SEARCH = {
    "trainer.epochs": "every trial trains search.proxy_epochs epochs (trainer.epochs is the chosen candidate's "
                      "final training)",
}


def check_space_keys(space: SearchSpace, cfg: DictConfig) -> None:
    """Before any trial: every config key the space sets (hparams parameters, `fixed`) exists in this command's
    config, is one a trial takes from its candidate (SET_BY_THE_SEARCH), and each range end, choice or fixed value
    passes that key's setting rule (settings.rule_for: `trainer.batch_size: {low: 0}` failed in a trial). Raises a
    CnnlabError naming the space and the key."""
    def ends(param: Any) -> list[tuple[str, Any]]:
        whole = int if param.type == "int" else float
        return [("low", whole(param.low)), ("high", whole(param.high))]

    values = {p.name: ends(p) if p.type != "categorical" else [("choice", c) for c in p.choices]
              for p in space.params if not space.is_architecture}
    values.update({key: [("fixed value", value)] for key, value in space.fixed.items()})
    for key, given in values.items():
        where = f"space {space.name}: {key}"
        # a `fixed:` key is set, not searched (probe 119: "seed cannot be searched" of `fixed: {seed: 3}`)
        cannot = "cannot be fixed by a space" if key in space.fixed else "cannot be searched"
        if not within(key, TRIAL_SECTIONS):
            raise CnnlabError(f"{where} {cannot}: a trial takes only its {', '.join(TRIAL_SECTIONS)} "
                              "settings from the space; the data (every trial is scored on the same val split), "
                              "model=, seed= and search.* are the search's own (an architecture space searches "
                              "networks and their input resolution)", fix=f"remove {key} from the space")
        if OmegaConf.select(cfg, key, default="<missing>") == "<missing>":
            having = choices_with(key)
            if having:  # probe 57: `sched.gamma` under the default sched=cosine was "did you mean sched.gamma?"
                raise CnnlabError(f"{where} is a setting of {listed(having)}, not of the "
                                  f"{key.split('.')[0]} this search uses", fix=f"add {having[0]} to the command line")
            close = closest_setting(key)
            raise CnnlabError(f"{where} is not a setting of `cnnlab search`",
                              fix=(f"did you mean {close}? " if close and close != key else "") + "use keys that "
                                  "`cnnlab search --cfg job` shows (e.g. optim.lr, trainer.batch_size)")
        if key in SET_BY_THE_SEARCH:
            raise CnnlabError(f"{where} {cannot}: {SET_BY_THE_SEARCH[key]}",
                              fix=f"remove {key} from the space (set it on the command line for the final training)")
        rule = rule_for(key, "search")
        wrong = next(((what, v) for what, v in given if rule is not None and not rule.accepts(v)), None)
        if wrong is not None:
            shown = repr(wrong[1]) if isinstance(wrong[1], str) else wrong[1]  # "32" is text, not 32 (probe 57)
            raise CnnlabError(f"{where}: its {wrong[0]} {shown} is not allowed: {key} takes "
                              f"{rule.describe()}", fix=f"change that {wrong[0]} in the space file")  # type: ignore


def trial_config(cfg: DictConfig, overrides: Mapping[str, Any]) -> DictConfig:
    """A copy of the run's config with a candidate's overrides (config keys) set. CnnlabError for a key the
    config does not have (a typo in a space file)."""
    if not overrides:
        return cfg
    copy = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in overrides.items():
        if OmegaConf.select(copy, key, default="<missing>") == "<missing>":
            raise CnnlabError(f"the search space sets {key}, which is not a setting of this command",
                              fix="use keys that `cnnlab search --cfg job` shows (e.g. optim.lr, trainer.batch_size)")
        with open_dict(copy):
            OmegaConf.update(copy, key, value, force_add=True)
    assert isinstance(copy, DictConfig)
    return copy


def arch_kwargs(candidate: Candidate, spec: InputSpec, weights: InitialWeights) -> dict[str, Any]:
    """The zoo options a candidate is built with (recorded in model.pt: what rebuilds it): a searched network's
    arch string, or for a zoo model (hyperparameter search) the options its starting weights resolved (the stem)."""
    kwargs: dict[str, Any] = {"arch": candidate.arch} if candidate.arch else dict(weights.arch_kwargs)
    return {**kwargs, **channel_options(candidate.model, spec.channels)}


class RungValidation:
    """The engine's classification score after each epoch, reported to the trial (val_acc@EPOCH); at a rung
    epoch a trial that too many others dominate stops (optuna.TrialPruned). `latency`: the trial's latency
    objective (study.latency_objective)."""

    def __init__(self, objective: Objective, study: optuna.Study, trial: optuna.Trial, latency: float,
                 settings: SearchSettings) -> None:
        self.objective, self.study, self.trial = objective, study, trial
        self.latency, self.settings = latency, settings
        self.rungs = rung_epochs(settings.proxy_epochs, settings.eta)
        self.epoch = 0

    def __call__(self, model: nn.Module, batch: Any) -> Any:
        return self.objective(model, batch)

    def validation(self, model: nn.Module, loader: DataLoader, runtime: Runtime,
                   progress: Progress | None = None) -> dict[str, Any]:
        val = evaluate(model, loader, runtime, progress=progress)
        self.epoch += 1
        acc = float(val["acc"])
        self.trial.set_user_attr(f"{ACC_AT}{self.epoch}", acc)
        self.trial.set_user_attr("val_acc", acc)
        if len(self.study.directions) == 1:
            self.trial.report(acc, self.epoch)  # Optuna's own record of the curve (single objective only)
        if self.epoch in self.rungs and dominated_too_often(
                acc, self.latency, rung_peers(self.study, self.epoch, self.trial.number),
                eta=self.settings.eta, min_peers=self.settings.min_rung_trials):
            raise optuna.TrialPruned(f"stopped at epoch {self.epoch}: val top-1 {acc:.2%} is dominated at this rung")
        return {"val_loss": val["loss"], "val_acc": val["acc"], "val_top5": val["top5"]}


@dataclass
class TrialRunner:
    """The study's objective: `runner(trial)` → validation top-1 (and latency for an architecture space)."""

    ctx: RunContext
    cfg: DictConfig
    runtime: Runtime
    space: SearchSpace
    settings: SearchSettings
    cache: LatencyCache
    study: optuna.Study
    weights: InitialWeights = field(default_factory=lambda: InitialWeights(kind="none",
                                                                         description="random initialisation"))
    _data: dict[str, DataBundle] = field(default_factory=dict)
    _reference: Reference | None = None

    @property
    def base_spec(self) -> InputSpec:
        return base_spec(self.cfg, self.space, self.weights)

    def candidate(self, trial: optuna.Trial) -> Candidate:
        return sample(self.space, trial, image_size=self.base_spec.size, model=canonical_name(str(self.cfg.model.name)))

    def data(self, cfg: DictConfig, candidate: Candidate) -> DataBundle:
        """The dataset at the candidate's size (cached per size and dataset settings)."""
        return sized_data(self._data, cfg, self.base_spec, candidate.image_size)

    def build(self, candidate: Candidate, data: DataBundle) -> nn.Module:
        if candidate.arch is None and self.weights.pretrained:
            return initial_model(candidate.model, self.weights, data, None)
        return create_model(candidate.model, num_classes=len(data.classes), image_size=candidate.image_size,
                            **arch_kwargs(candidate, data.spec, self.weights))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        started = time.perf_counter()
        try:
            return self._run(trial, started)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # a resumed search runs this candidate again
            raise
        except optuna.TrialPruned as stopped:  # one line per trial, as for completed and failed ones, naming its
            # candidate as theirs do (probe 201: "trial 2: stopped at epoch 1 …", without its lr or batch size)
            what = trial.user_attrs.get("arch") or " ".join(f"{k}={v}" for k, v in trial.params.items())
            self.ctx.log.info("trial %d: %s%s", trial.number, f"{what} — " if what else "", stopped)
            raise
        except TRIAL_ERRORS as err:  # the search goes on without this candidate
            self.ctx.log.warning("trial %d failed: %s", trial.number, err)
            raise

    def _run(self, trial: optuna.Trial, started: float) -> float | tuple[float, float]:
        # Optuna stores each value as it is drawn: a stop part-way left a trial of some of them, and the resumed
        # search drew the rest afresh — another network than the uninterrupted search's (probe 201)
        with interrupts_deferred(finishing=None):
            candidate = self.candidate(trial)
        cfg = trial_config(self.cfg, candidate.overrides)
        data = self.data(cfg, candidate)
        seed = self.runtime_seed(trial)
        trial.set_user_attr("seed", seed)  # what its weights and batches were drawn with: a trial is re-runnable
        torch.manual_seed(seed)
        model = self.build(candidate, data)
        params, flops = count_params(model), count_flops(model, candidate.image_size)
        timed = self.latency(candidate, model, data, flops)
        constraints = self.settings.violations(timed.p50_ms, params, timed.speedup)
        paired = {} if timed.speedup is None else {"reference_ms": timed.reference_ms, "speedup": timed.speedup,
                                                   "speedup_per_round": list(timed.speedup_per_round)}
        for key, value in {TRAINS: candidate.identity, "arch": candidate.arch, "model": candidate.model,
                           "image_size": candidate.image_size,
                           "params": params, "flops": flops, "latency_ms": timed.p50_ms,
                           "latency_ms_per_round": list(timed.p50_ms_per_round), "latency_cached": timed.cached,
                           **paired}.items():
            trial.set_user_attr(key, value)
        set_constraints(trial, constraints)
        what = candidate.arch or " ".join(f"{k}={v}" for k, v in candidate.overrides.items())
        cost = timed.objective
        breaks = any(v > 0 for v in constraints.values())
        if breaks and not self.settings.train_infeasible:
            self.ctx.log.info("trial %d: %s — %s, %s params: breaks a constraint, not trained", trial.number,
                              what, describe_latency(timed, self.settings.reference), f"{params:,}")
            return self.values(0.0, cost)
        twin = scored_twin(self.study, trial)
        if twin is not None:  # the same candidate, scored already: its score stands; training it again is waste
            trial.set_user_attr("same_as", twin.number)
            trial.set_user_attr("val_acc", twin.user_attrs["val_acc"])
            self.ctx.log.info("trial %d: %s — the same candidate as trial %d: its val top-1 %.2f%% stands (not "
                              "trained again)", trial.number, what, twin.number, 100 * twin.user_attrs["val_acc"])
            return self.values(float(twin.user_attrs["val_acc"]), cost)
        require_training_memory(model, data.spec, int(cfg.trainer.batch_size))
        acc = self.proxy_train(trial, cfg, model, data, cost)
        # probe 185: trained under search.train_infeasible, the two most accurate trials were passed over unsaid
        self.ctx.log.info("trial %d: %s — val top-1 %.2f%%, %s, %s params, %.0f s%s", trial.number, what,
                          100 * acc, describe_latency(timed, self.settings.reference), f"{params:,}",
                          time.perf_counter() - started,
                          " — breaks a constraint: trained (search.train_infeasible), never chosen" if breaks else "")
        return self.values(acc, cost)

    def latency(self, candidate: Candidate, model: nn.Module, data: DataBundle, flops: int) -> Timed:
        """The candidate's latency on the target (cached per architecture). Under torchrun rank 0 alone times it
        and every rank takes its figures: the ranks then judge constraints, and tell the study, the same values,
        so their seeded samplers propose the same next candidates and they train each one together."""
        def measure() -> Timed:
            # Timing and the reference's random weights draw from torch's RNG; the proxy training after must not
            # depend on whether a candidate was timed or read from the cache (a resumed search), or on a reference.
            with torch.random.fork_rng(devices=[]):
                return cached_latency(self.cache, self.settings.latency, candidate.key, model, data.spec,
                                      data.classes, flops=flops, reference=self.reference(data))

        return from_rank_zero(self.runtime, measure)

    def reference(self, data: DataBundle) -> Reference | None:
        """search.reference built at the dataset's own size and channels (as cnnlab would train it, random
        weights: latency does not depend on them) and exported once to the run's reference.onnx."""
        name = self.settings.reference
        if name is None or self._reference is not None:
            return self._reference
        spec = resolve_input_spec(self.cfg.dataset, None, any_channels=get_entry(name).any_channels)
        model = create_model(name, num_classes=len(data.classes), image_size=spec.size,
                             **channel_options(name, spec.channels))
        self._reference = export_reference(model, name, spec, data.classes, self.ctx.path(REFERENCE_ONNX))
        return self._reference

    def runtime_seed(self, trial: optuna.Trial) -> int:
        """The seed of the trial's proxy training: by its place among the trials no interruption stopped, so that a
        trial after a resume trains from the weights it would have had in an uninterrupted search."""
        return draw_seed(int(self.cfg.seed), draw_index(trial.study, trial.number))

    def values(self, acc: float, latency: float) -> float | tuple[float, float]:
        return (acc, latency) if self.space.is_architecture else acc

    def proxy_train(self, trial: optuna.Trial, cfg: DictConfig, model: nn.Module, data: DataBundle,
                    latency: float) -> float:
        """search.proxy_epochs on a seeded search.proxy_train_fraction of the training split; the last epoch's
        validation top-1."""
        recipe = Recipe.from_config(cfg)
        train_set = proxy_subset(data.train, self.settings.proxy_train_fraction, recipe.seed)  # every trial's the same
        # its batches drawn with the trial's own seed, as its weights are: `cnnlab pretrain … seed=SEED` of its network
        # trains it again (probe 201: the search's seed shuffled them, and the re-run read 54.17 % for 51.94 %)
        recipe = replace(recipe, epochs=self.settings.proxy_epochs, seed=int(trial.user_attrs["seed"]))
        # checked for the space's largest batch before the first trial (check_proxy_batches); again for this one
        check_proxy_batch(self.space, recipe.batch_size, len(train_set), len(data.train),
                          self.settings.proxy_train_fraction)
        runtime = self.runtime.for_input(data.spec.size)
        loaders = make_loaders(recipe, runtime, train_set, data.val, workers=loader_workers(recipe, data))
        objective = RungValidation(classification_objective(recipe, len(data.classes)), self.study, trial,
                                   latency, self.settings)
        quiet = replace(self.ctx, is_main=False)  # no metrics.csv/curves per trial, no last.pt
        result = train_model(quiet, runtime, recipe, Trainable(runtime.prepare_model(model)), loaders,
                             objective, Checkpointing(enabled=False))
        return float(result.final["val_acc"])


def base_spec(cfg: DictConfig, space: SearchSpace, weights: InitialWeights) -> InputSpec:
    """The input the dataset is read at before a candidate picks its size: the model's (hparams) or the dataset's."""
    model = "searched" if space.is_architecture else canonical_name(str(cfg.model.name))
    return resolve_input_spec(cfg.dataset, weights.spec, any_channels=get_entry(model).any_channels,
                              size_recorded=weights.size_recorded)


def sized_data(built: dict[str, DataBundle], cfg: DictConfig, spec: InputSpec, size: int) -> DataBundle:
    """The dataset of `cfg` at `size` px from `built` (per size and dataset settings), built there when new."""
    key = f"{size}:{OmegaConf.to_yaml(cfg.dataset)}"
    if key not in built:
        built[key] = build_datasets(cfg.dataset, spec.with_size(size))
    return built[key]


def describe_latency(timed: Timed, reference: str | None = None) -> str:
    """'0.412 ms' or, with a reference, '0.412 ms, 1.63× faster vs mobilenet_v2' (as `cnnlab report` says it)."""
    text = f"{timed.p50_ms:.3f} ms"
    return text if timed.speedup is None else f"{text}, {speedup_text(timed.speedup, reference)}"


def proxy_size(full: int, fraction: float) -> int:
    """How many of `full` training images a proxy training reads at search.proxy_train_fraction=`fraction`."""
    return full if fraction >= 1 else max(1, round(full * fraction))


def proxy_subset(train: Any, fraction: float, seed: int) -> Any:
    """A seeded `fraction` of the training images (all of them at 1)."""
    if fraction >= 1:
        return train
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:proxy_size(len(train), fraction)]
    return Subset(train, sorted(order.tolist()))


BATCH_KEY = "trainer.batch_size"


def largest_batch(space: SearchSpace, batch: int) -> int:
    """The largest batch size a trial can get: the space's fixed one, the top of what it samples, else
    trainer.batch_size (`batch`)."""
    param = space.param(BATCH_KEY)
    if param is None:
        return int(space.fixed.get(BATCH_KEY, batch))
    if param.type == "categorical":
        return max(int(c) for c in param.choices)
    return int(param.high)  # type: ignore[arg-type]


def check_proxy_batches(cfg: DictConfig, space: SearchSpace, settings: SearchSettings, weights: InitialWeights,
                        built: dict[str, DataBundle], world_size: int = 1) -> None:
    """Before any timing or training: the space's largest batch (largest_batch) fits the proxy training set, the
    training split read at the base input size (kept in `built` for the trials), and under torchrun every batch
    size splits over the `world_size` ranks. CnnlabError (check_proxy_batch, check_batches_split) otherwise — a
    later trial would fail on it after the search had spent its earlier ones."""
    check_batches_split(space, int(cfg.trainer.batch_size), world_size)
    spec = base_spec(cfg, space, weights)
    space.check_resolution(spec.size)  # before the data is read at it
    if not space.is_architecture:  # one network at one size: trial 0 failed on a size it cannot take (probe 135)
        name = canonical_name(str(cfg.model.name))
        small_input_adaptation(name, spec.size, **channel_options(name, spec.channels))
    data = sized_data(built, cfg, spec, spec.size)
    if not space.is_architecture and weights.pretrained:  # weights that do not fit: trial 0's error (probe 140)
        initial_model(canonical_name(str(cfg.model.name)), weights, data, None)
    full = len(data.train)
    fraction = settings.proxy_train_fraction
    check_proxy_batch(space, largest_batch(space, int(cfg.trainer.batch_size)), proxy_size(full, fraction), full,
                      fraction)


def check_batches_split(space: SearchSpace, batch: int, world_size: int) -> None:
    """Under torchrun every batch size a trial can get must split over the ranks: CnnlabError before any trial,
    naming the setting that decides it (trainer.batch_size, or the space's fixed or sampled sizes) and a value
    that splits. Found in trial 0 before, it named trainer.batch_size when the space had sampled the size."""
    if world_size <= 1:
        return
    param = space.param(BATCH_KEY)
    multiple = f"a multiple of {world_size} (the ranks)"
    if param is None and BATCH_KEY not in space.fixed:
        if batch % world_size:
            raise CnnlabError(f"{BATCH_KEY}={batch} does not split over {world_size} ranks",
                              fix=f"use {BATCH_KEY}={max(world_size, batch // world_size * world_size)} ({multiple})")
        return
    if param is None:
        fixed = int(space.fixed[BATCH_KEY])
        if fixed % world_size:
            good = max(world_size, fixed // world_size * world_size)
            raise CnnlabError(f"space {space.name} fixes {BATCH_KEY}={fixed}, which does not split over {world_size} "
                              "ranks", fix=f"use 'space.fixed={{{BATCH_KEY}:{good}}}' ({multiple})")
        return
    if param.type == "categorical":
        bad = [int(c) for c in param.choices if int(c) % world_size]
        if bad:
            good = [int(c) for c in param.choices if not int(c) % world_size] or [world_size]
            raise CnnlabError(f"space {space.name} samples {BATCH_KEY} from {list(param.choices)}; "
                              f"{', '.join(map(str, bad))} {'does' if len(bad) == 1 else 'do'} not split over "
                              f"{world_size} ranks", fix=f"narrow the choices to multiples of {world_size}: "
                              f"'space.params={{{BATCH_KEY}:{{choices:[{','.join(map(str, good))}]}}}}'")
        return
    low, step = int(param.low or 1), int(param.step or 1)  # type: ignore[arg-type]
    if low % world_size or step % world_size:
        raise CnnlabError(f"space {space.name} samples {BATCH_KEY} from {low} to {int(param.high or low)} in steps "  # type: ignore[arg-type]
                          f"of {step}: not every size splits over {world_size} ranks",
                          fix=f"sample multiples of {world_size}: 'space.params={{{BATCH_KEY}:{{low:"
                              f"{max(world_size, low // world_size * world_size)},step:{world_size}}}}}'")


def check_proxy_batch(space: SearchSpace, batch: int, proxy: int, full: int, fraction: float) -> None:
    """A batch size the proxy training set (`proxy` of `full` images) cannot fill: CnnlabError in the terms of
    the settings that decide it, with fixes that reach it — a larger search.proxy_train_fraction (when the split
    holds the batch), and trainer.batch_size= when that sets it, else (the space sets it: samples or fixes) the
    space's batch sizes narrowed to what fits (a Hydra dict override merges into the space's entry)."""
    if batch <= proxy:
        return
    param, largest = space.param(BATCH_KEY), largest_batch(space, batch)
    needed = -(-largest * 100 // full) / 100  # the smallest fraction, in hundredths, whose share holds `largest`
    what = f"the proxy training set ({proxy} images: search.proxy_train_fraction={fraction:g} of {full})"
    if param is None and BATCH_KEY not in space.fixed:
        smaller = f"use {BATCH_KEY}={min(64, proxy)} (at most {proxy})"
        raise CnnlabError(f"{BATCH_KEY}={batch} is larger than {what}",
                          fix=f"{smaller}, or search.proxy_train_fraction={needed:g} (room for {batch})"
                              if needed <= 1 else f"{smaller}: even the whole training split holds only {full}")
    if param is None:
        how, override = "fixes", f"space.fixed={{{BATCH_KEY}:{proxy}}}"
    elif param.type == "categorical":
        how = "samples"
        fits = [int(c) for c in param.choices if int(c) <= proxy] or [proxy]
        override = f"space.params={{{BATCH_KEY}:{{choices:[{','.join(map(str, fits))}]}}}}"
    else:
        how, low = "samples", min(int(param.low), proxy)  # type: ignore[arg-type]
        override = f"space.params={{{BATCH_KEY}:{{low:{low},high:{proxy}}}}}"
    narrow = f"narrow the space's batch sizes to at most {proxy}: '{override}'"
    fix = (f"trainer.batch_size= cannot change it: use search.proxy_train_fraction={needed:g} (room for the space's "
           f"largest, {largest}), or {narrow}" if needed <= 1 else
           f"trainer.batch_size= cannot change it, and even the whole training split ({full} images) is smaller than "
           f"the space's largest ({largest}): {narrow}")
    raise CnnlabError(f"{BATCH_KEY}={batch} (space {space.name} {how} it) is larger than {what}", fix=fix)


class TooLargeToTrain(CnnlabError):
    """One training batch of a candidate would need more memory than the machine has free: its trial fails (a
    candidate of a space's largest resolution took all 24 GB and the kernel killed the search: probe 185)."""


def require_training_memory(model: nn.Module, spec: InputSpec, batch: int) -> None:
    """TooLargeToTrain when one training batch of `model` at `spec` would need more than the memory available now
    (engine.memory.training_batch_bytes); nothing where either cannot be told."""
    needed = training_batch_bytes(model, spec.channels, spec.size, batch)
    available = available_memory()
    if needed is None or available is None or needed <= available:
        return
    raise TooLargeToTrain(f"one training batch of {batch} images at {spec.size} px needs about {needed / 1e9:,.1f} GB "
                          f"of activations, more than the {available / 1e9:,.1f} GB of memory available here",
                          fix="lower the largest choices of space.params.resolution (or width), or trainer.batch_size")


# a diverging candidate, or one too large for this machine's memory, fails its trial, not the search
TRIAL_ERRORS = (NonFiniteLoss, TooLargeToTrain)


def chosen_candidate(space: SearchSpace, row: Mapping[str, Any]) -> Candidate:
    """The candidate of a trial row (trials.csv's fields): its network, size and overrides."""
    overrides = {**space.fixed, **({} if space.is_architecture else dict(row["params_chosen"]))}
    return Candidate(model=str(row["model"]), image_size=int(row["image_size"]), arch=row.get("arch"),
                     overrides=overrides)


def train_chosen(runner: TrialRunner, candidate: Candidate, trial: int,
                 resume_from: Any = None) -> tuple[Any, TrainedModel]:
    """The chosen candidate trained from scratch for trainer.epochs on the whole training split (last.pt after
    every epoch, continued from `resume_from`); (fit result, what save_and_record writes)."""
    # The data section records the size trained at, so derived runs (distill, evaluate) rebuild the same input.
    cfg = trial_config(runner.cfg, {**candidate.overrides, "dataset.image_size": candidate.image_size})
    recipe = Recipe.from_config(cfg)
    data = runner.data(cfg, candidate)
    torch.manual_seed(recipe.seed)
    model = runner.build(candidate, data)
    runtime = runner.runtime.for_input(data.spec.size)
    loaders = make_loaders(recipe, runtime, data.train, data.val, workers=loader_workers(recipe, data))
    runner.ctx.log.info("training the chosen candidate (trial %d) for %s on the training split (%s) at %d px", trial,
                        counted(recipe.epochs, "epoch"), counted(len(data.train), "image"),  # type: ignore[arg-type]
                        candidate.image_size)
    result = train_model(runner.ctx, runtime, recipe, Trainable(runtime.prepare_model(model)), loaders,
                         classification_objective(recipe, len(data.classes)),
                         Checkpointing(resume_from=resume_from, extra={"search_trial": trial}))
    kwargs = runner.weights.arch_kwargs if candidate.arch is None and runner.weights.pretrained \
        else arch_kwargs(candidate, data.spec, runner.weights)
    return result, TrainedModel(model=model, name=candidate.model, arch_kwargs=kwargs, data=data,
                                dataset_config=cfg.dataset,
                                weights=f"{runner.weights.description} (search trial {trial})")
