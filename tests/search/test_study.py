"""The study (cnnlab/search/study.py): stored in SQLite, successive halving that respects two objectives,
and a resumed study that runs the interrupted trial again."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from cnnlab.search.study import (STUDY_FILE, constraints_of, dominated_too_often, finished_trials, open_study,
                                 requeue_interrupted, rung_epochs, rung_peers, set_constraints,
                                 trial_record)


def test_rungs_are_powers_of_eta_before_the_last_epoch() -> None:
    assert rung_epochs(1, 3) == () and rung_epochs(3, 3) == (1,) and rung_epochs(10, 3) == (1, 3, 9)
    assert rung_epochs(9, 3) == (1, 3) and rung_epochs(5, 2) == (1, 2, 4)


def test_one_objective_keeps_the_top_third() -> None:
    peers = [(a, 1.0) for a in (0.5, 0.6, 0.7, 0.8, 0.9)]  # equal latency: plain successive halving
    assert dominated_too_often(0.55, 1.0, peers, eta=3, min_peers=4)
    assert not dominated_too_often(0.85, 1.0, peers, eta=3, min_peers=4)
    assert not dominated_too_often(0.1, 1.0, peers[:3], eta=3, min_peers=4)  # too few at the rung yet


def test_a_fast_trial_is_not_stopped_for_being_less_accurate_than_slow_ones() -> None:
    slow = [(a, 5.0) for a in (0.7, 0.8, 0.9, 0.95)]
    assert not dominated_too_often(0.4, 0.5, slow, eta=3, min_peers=4)
    assert dominated_too_often(0.4, 6.0, slow, eta=3, min_peers=4)


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    x = trial.suggest_float("x", 0, 1)
    trial.set_user_attr("latency_ms", 1 + x)
    set_constraints(trial, {"latency_ms": x - 0.5})
    trial.set_user_attr("val_acc@1", x)
    trial.set_user_attr("val_acc", x)
    return x, 1 + x


def test_the_study_lives_in_the_run_folder_and_reloads(tmp_path: Path) -> None:
    study = open_study(tmp_path, multi_objective=True, seed=0, population=4, constrained=True)
    study.optimize(_objective, n_trials=5)
    assert (tmp_path / STUDY_FILE).is_file()
    again = open_study(tmp_path, multi_objective=True, seed=0, population=4, constrained=True)
    assert len(finished_trials(again)) == 5
    row = trial_record(again.trials[0])
    x = again.trials[0].params["x"]
    assert row["state"] == "complete" and row["epochs"] == 1 and row["feasible"] == (x <= 0.5)
    assert row["violation"] == max(0.0, x - 0.5) and row["params_chosen"] == {"x": x}
    assert constraints_of(again.trials[0]) == [x - 0.5]
    assert len(rung_peers(again, 1, number=0)) == 4


def test_an_interrupted_trial_runs_again_once(tmp_path: Path) -> None:
    study = open_study(tmp_path, multi_objective=False, seed=0, population=4, constrained=False)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    stopped = study.ask()
    stopped.suggest_float("x", 0, 1)
    stopped.set_user_attr("interrupted", True)
    study.tell(stopped, state=TrialState.FAIL)
    study.enqueue_trial({"x": 0.123})  # not drawn: seeded per draw, it would repeat the stopped trial's x
    killed = study.ask()  # left running by a killed process
    killed.suggest_float("x", 0, 1)
    assert requeue_interrupted(study) == [2, 3]
    assert requeue_interrupted(study) == []  # queued already
    assert study.trials[3].user_attrs["interrupted"]
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [study.trials[2].params, study.trials[3].params]
    assert study.trials[3].state == TrialState.FAIL


def test_a_reloaded_study_draws_new_candidates_not_the_first_runs_again(tmp_path: Path) -> None:
    """The sampler's random state is not stored: seeded as before, a resumed search drew (and re-trained) the
    interrupted run's first candidates once more."""
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        return trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)

    for multi_objective in (True, False):
        folder = tmp_path / str(multi_objective)
        folder.mkdir()
        first = open_study(folder, multi_objective=multi_objective, seed=0, population=8, constrained=False)
        first.optimize(objective if multi_objective else lambda t: objective(t)[0], n_trials=3)
        resumed = open_study(folder, multi_objective=multi_objective, seed=0, population=8, constrained=False)
        resumed.optimize(objective if multi_objective else lambda t: objective(t)[0], n_trials=3)
        drawn = [t.params for t in resumed.trials]  # all six within the random first generation / startup trials
        assert drawn[3:] != drawn[:3] and not set(map(str, drawn[3:])) & set(map(str, drawn[:3]))


def test_a_candidate_proposed_again_finds_its_scored_twin(tmp_path: Path) -> None:
    """A twin trains what the trial trains (the TRAINS attribute), whatever settings were sampled to build it;
    only a completed trial with a score is one, never the trial itself."""
    from cnnlab.search.study import TRAINS, scored_twin

    study = open_study(tmp_path, multi_objective=False, seed=0, population=4, constrained=False)

    def trains(trial: optuna.Trial, what: str) -> optuna.Trial:
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(TRAINS, what)
        return trial

    for what in ("net-a", "net-b"):
        done = trains(study.ask(), what)
        done.set_user_attr("val_acc", 0.5)
        study.tell(done, 0.5)
    assert scored_twin(study, trains(study.ask(), "net-b")).number == 1  # other sampled x, the same network
    new = trains(study.ask(), "net-c")
    assert scored_twin(study, new) is None
    study.tell(new, state=optuna.trial.TrialState.PRUNED)  # stopped at a rung: no score to reuse
    assert scored_twin(study, trains(study.ask(), "net-c")) is None


def test_a_resumed_study_proposes_what_the_uninterrupted_one_would(tmp_path: Path) -> None:
    """Interrupted at its fourth trial and resumed, a search ran that trial again and then drew candidates of a
    sampler seeded `seed + trials held`: not those the same search run without a stop proposes."""
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_int("y", 0, 8)
        return x + y / 10, 1 + x

    for multi_objective in (True, False):
        goal = objective if multi_objective else (lambda t: objective(t)[0])
        for name in ("straight", "stopped"):
            (tmp_path / f"{name}{multi_objective}").mkdir()
        straight = open_study(tmp_path / f"straight{multi_objective}", multi_objective=multi_objective, seed=4,
                              population=4, constrained=False)
        straight.optimize(goal, n_trials=14)  # past NSGA-II's random first generation and TPE's startup trials
        stopped = open_study(tmp_path / f"stopped{multi_objective}", multi_objective=multi_objective, seed=4,
                             population=4, constrained=False)
        stopped.optimize(goal, n_trials=5)
        trial = stopped.ask()  # the sixth, stopped by Ctrl-C (seed 4: a candidate no trial before it had)
        objective(trial)
        trial.set_user_attr("interrupted", True)
        stopped.tell(trial, state=TrialState.FAIL)
        resumed = open_study(tmp_path / f"stopped{multi_objective}", multi_objective=multi_objective, seed=4,
                             population=4, constrained=False)
        assert requeue_interrupted(resumed) == [5]
        resumed.optimize(goal, n_trials=9)
        done = [t.params for t in resumed.trials if t.state == TrialState.COMPLETE]
        assert done == [t.params for t in straight.trials], multi_objective


def test_searches_of_neighbouring_seeds_draw_unrelated_candidates() -> None:
    """Probe 85: draw i of seed s was seeded s + i, so `-m seed=0,1` gave two searches whose trials were one
    another's shifted by one (all but one first-generation candidate shared)."""
    from cnnlab.search.study import draw_seed

    seed0 = [draw_seed(0, i) for i in range(20)]
    seed1 = [draw_seed(1, i) for i in range(20)]
    assert not set(seed0) & set(seed1) and len(set(seed0)) == 20
    assert seed0 == [draw_seed(0, i) for i in range(20)]  # reproducible


def test_a_trial_stopped_while_its_settings_were_drawn_runs_again_only_once(tmp_path: Path) -> None:
    """Probe 135: stopped after drawing x but not y, the trial was queued with {x}; its rerun drew y as well, so the
    rerun's params never equalled the stopped trial's, and every later resume queued it once more (a duplicate
    candidate counted as a new trial)."""
    study = open_study(tmp_path, multi_objective=False, seed=0, population=4, constrained=False)
    stopped = study.ask()
    stopped.suggest_float("x", 0, 1)  # Ctrl-C before y
    stopped.set_user_attr("interrupted", True)
    study.tell(stopped, state=TrialState.FAIL)
    assert requeue_interrupted(study) == [0]
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("y", 0, 1), n_trials=1)
    rerun = study.trials[1]
    assert rerun.params["x"] == stopped.params["x"] and set(rerun.params) == {"x", "y"}
    assert requeue_interrupted(study) == []  # the next resume (extending the finished search) draws a new one
