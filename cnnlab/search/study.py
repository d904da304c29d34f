"""The Optuna study of a search: stored in the run folder (SQLite), its sampler, its constraints, and the
successive-halving rule that stops poor trials early.

- Architecture spaces are multi-objective (maximise validation top-1, minimise measured latency — relative to
  search.reference when one is set) with NSGA-II;
  the hparams space maximises validation top-1 alone with TPE. Constraints (search.max_latency_ms,
  search.max_params) go through the sampler's `constraints_func`, read from the trial's `constraints` attribute.
- Early stopping: Optuna's pruners are single-objective (`Trial.report` is not supported for multi-objective
  studies), so the study applies asynchronous successive halving (ASHA, Li et al. 2020) itself: at rung epochs
  1, eta, eta^2, ... a trial continues only when fewer than 1/eta of the trials that reached the rung dominate
  it (higher accuracy there and no higher latency). With one objective (equal latencies) this is successive
  halving's "keep the top 1/eta"; with two, a fast trial is not stopped for being less accurate than slow ones.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

STUDY_FILE = "study.db"
STUDY_NAME = "cnnlab-search"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ACC_AT = "val_acc@"      # user attribute per epoch: val_acc@1, val_acc@2, ...


def storage_url(folder: Path) -> str:
    return f"sqlite:///{(folder / STUDY_FILE).resolve()}"


# Optuna >= 5 takes constraints from the trial (Trial.set_constraint; `constraints_func` is deprecated there).
_TRIAL_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def constraints_of(trial: FrozenTrial) -> Sequence[float]:
    """The constraint values a trial recorded (<= 0: met); a trial that never measured them is infeasible."""
    return trial.user_attrs.get("constraints", [1.0])


def set_constraints(trial: optuna.Trial, values: Mapping[str, float]) -> None:
    """Record a trial's constraint values (<= 0: met) for the sampler and for trials.csv."""
    trial.set_user_attr("constraints", list(values.values()))
    if _TRIAL_CONSTRAINTS:
        for key, value in values.items():
            trial.set_constraint(key, value)


def draw_index(study: optuna.Study, number: int) -> int:
    """The place of trial `number` in the search as if it had never been stopped: the trials before it that no
    interruption stopped (a stopped trial runs again as a new trial, requeue_interrupted). What seeds its draw
    (DrawSeeded) and its proxy training, so that a resumed search repeats an uninterrupted one."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < number
               and not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


def draw_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th draw (and proxy training) of a search seeded `seed`: one stream per (seed, index)
    from NumPy's SeedSequence. `seed + index` made `seed=1`'s trials `seed=0`'s shifted by one, so a `-m seed=0,1`
    pair of searches shared all but one candidate of their first generation (probe 85)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class DrawSeeded(optuna.samplers.BaseSampler):
    """An Optuna sampler made afresh for each trial, seeded from `seed` and the number of trials before it that an
    interruption did not stop (draw_seed; `make(seed)` builds it: TPE or NSGA-II). A sampler's random state is not
    stored in the study, so one sampler for a whole run drew, once resumed, other candidates than the same search
    run without a stop (seeded with `seed` again, the interrupted run's first ones once more). Seeded per draw from
    what the study holds, a resumed search proposes what the uninterrupted one would: the stopped trial runs again
    with its parameters (requeue_interrupted) and the draws after it are those that followed it."""

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(draw_seed(self._seed, draw_index(study, trial.number)))
        self._inner.before_trial(study, trial)
        if "fixed_params" in trial.system_attrs:
            # queued again with its parameters, nothing is drawn — and Optuna asks the sampler nothing, so NSGA-II
            # gave it no generation and the next generation began a trial late. Asked as for a drawn trial (the
            # answer unused: this sampler serves this trial alone), it takes the place the stopped trial had.
            self._inner.sample_relative(study, trial, self._inner.infer_relative_search_space(study, trial))

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def open_study(folder: Path, *, multi_objective: bool, seed: int, population: int, constrained: bool) -> optuna.Study:
    """The study in `folder`/study.db, created or loaded (a resumed run continues its copy), with a DrawSeeded
    sampler: NSGA-II for two objectives, TPE for one."""
    # cnnlab logs one line per trial itself, a failed one included: Optuna's "Trial N failed" warning carries a
    # traceback, printed before the one-line error of a CnnlabError raised inside a trial
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def sampler(seed: int) -> optuna.samplers.BaseSampler:
        constraints: Callable[[FrozenTrial], Sequence[float]] | None = \
            constraints_of if constrained and not _TRIAL_CONSTRAINTS else None
        if multi_objective:
            return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=constraints)
        return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints, n_startup_trials=min(10, population))

    return optuna.create_study(storage=storage_url(folder), study_name=STUDY_NAME, sampler=DrawSeeded(sampler, seed),
                               directions=["maximize", "minimize"] if multi_objective else ["maximize"],
                               load_if_exists=True)


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state in FINISHED]


AGAIN_OF = "again_of"  # user attribute of a trial queued again: the number of the interrupted trial it reruns
TRAINS = "candidate"  # user attribute: what the trial trains (search.space.Candidate.identity)


def scored_twin(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """The earliest completed trial that trained what `trial` trains (the same TRAINS attribute: the same network
    and overrides, however the settings that built it were sampled) and holds its proxy score, or None.
    NSGA-II's crossover and mutation re-propose candidates in a small space; their score is reused rather than
    trained again (the approach of Optuna's FAQ on duplicate parameters)."""
    trains = trial.user_attrs.get(TRAINS)
    if trains is None:
        return None
    return next((other for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if other.number != trial.number and other.user_attrs.get(TRAINS) == trains
                 and "val_acc" in other.user_attrs), None)


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """A resumed study: trials left running by a killed process become failed, and every trial that an
    interruption stopped is queued again with its parameters (once). Returns the numbers queued again."""
    storage = study._storage  # Optuna has no public call that fails a trial of a dead process
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    taken = [t.params for t in trials if t.state in FINISHED]
    taken += [t.system_attrs.get("fixed_params") for t in trials if t.state == TrialState.WAITING]
    # a trial stopped while its settings were drawn holds some of them, and its rerun all: the params never compare
    # equal, so the rerun says whose it is (probe 135: every later resume queued the stopped trial once more)
    again = {t.user_attrs.get(AGAIN_OF) for t in trials}
    queued = []
    for trial in trials:
        stopped = trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")
        if stopped and trial.params and trial.params not in taken and trial.number not in again:
            study.enqueue_trial(dict(trial.params), user_attrs={AGAIN_OF: trial.number})
            taken.append(trial.params)
            queued.append(trial.number)
    return queued


def rung_epochs(epochs: int, eta: int) -> tuple[int, ...]:
    """The epochs (1, eta, eta^2, ...) before the last at which a trial may be stopped."""
    rungs, epoch = [], 1
    while epoch < epochs:
        rungs.append(epoch)
        epoch *= eta
    return tuple(rungs)


def dominated_too_often(acc: float, latency: float, peers: Sequence[tuple[float, float]], *, eta: int,
                        min_peers: int) -> bool:
    """Whether a trial at a rung (its accuracy there, its latency) is stopped: at least `min_peers` others reached
    the rung and at least a 1/eta share of them dominate it."""
    if len(peers) < min_peers:
        return False
    dominating = sum(1 for a, lat in peers if a >= acc and lat <= latency and (a > acc or lat < latency))
    return dominating >= max(1, math.ceil((len(peers) + 1) / eta))


def latency_objective(attrs: Mapping[str, Any]) -> float | None:
    """The latency a trial (its user attributes, or a trials.csv row) is ranked by: candidate ÷ reference latency
    (1 / speedup) when the search has a reference — the paired ratio drift cannot move — else the measured p50 in
    ms; None when it was never timed."""
    if attrs.get("speedup"):
        return 1.0 / float(attrs["speedup"])
    return None if attrs.get("latency_ms") is None else float(attrs["latency_ms"])


def rung_peers(study: optuna.Study, epoch: int, number: int) -> list[tuple[float, float]]:
    """(accuracy at `epoch`, latency objective) of every other trial that reported that epoch."""
    peers = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        latency = latency_objective(attrs)
        if trial.number != number and f"{ACC_AT}{epoch}" in attrs and latency is not None:
            peers.append((float(attrs[f"{ACC_AT}{epoch}"]), latency))
    return peers


def trial_record(trial: FrozenTrial) -> dict[str, Any]:
    """One row of trials.csv: number, state (Optuna's, lower case; `interrupted` for a trial a stop cut short, which a
    resumed search runs again), the candidate, its measurements (with every timing round's: the
    noise a suggested limit leaves room for) and how far it trained."""
    attrs = trial.user_attrs
    epochs = sorted(int(k[len(ACC_AT):]) for k in attrs if k.startswith(ACC_AT))
    constraints = attrs.get("constraints")
    stopped = trial.state == TrialState.FAIL and attrs.get("interrupted")  # not a failure: it ran again, later
    return {"trial": trial.number, "state": "interrupted" if stopped else trial.state.name.lower(),
            "arch": attrs.get("arch"),
            "model": attrs.get("model"), "image_size": attrs.get("image_size"),
            "val_acc": attrs.get("val_acc"), "latency_ms": attrs.get("latency_ms"), "params": attrs.get("params"),
            "reference_ms": attrs.get("reference_ms"), "speedup": attrs.get("speedup"),
            "latency_ms_per_round": attrs.get("latency_ms_per_round"),
            "speedup_per_round": attrs.get("speedup_per_round"),
            "flops": attrs.get("flops"), "epochs": epochs[-1] if epochs else 0,
            "feasible": None if constraints is None else all(v <= 0 for v in constraints),
            "violation": None if constraints is None else sum(max(0.0, v) for v in constraints),
            "seconds": None if trial.duration is None else round(trial.duration.total_seconds(), 1),
            "same_as": attrs.get("same_as"),
            "params_chosen": dict(trial.params)}
