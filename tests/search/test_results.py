"""What a search shows (cnnlab/search/results.py): front, choice, closest trial, rank correlation, files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cnnlab.wording import ratio_text
from cnnlab.search.results import (best_feasible, closest, correlation_line, empty_front_line, front_table,
                                   latency_flops_correlation, no_candidate_met, pareto_front, plot_front,
                                   speedup_text, write_trials_csv)
from cnnlab.search.settings import SearchSettings


def _row(trial: int, acc: float | None, ms: float, feasible: bool = True, state: str = "complete",
         flops: int = 1000) -> dict:
    return {"trial": trial, "state": state, "val_acc": acc, "latency_ms": ms, "params": 1000 * (trial + 1),
            "flops": flops, "image_size": 16, "feasible": feasible, "violation": 0.0 if feasible else ms,
            "arch": f"k3e6c{trial + 8}n1s1", "model": "searched", "epochs": 1, "seconds": 1.0,
            "params_chosen": {"width": 0.5}}


ROWS = [_row(0, 0.80, 1.0, flops=100), _row(1, 0.90, 2.0, flops=300), _row(2, 0.85, 3.0, flops=200),
        _row(3, 0.95, 5.0, feasible=False, flops=400), _row(4, 0.99, 0.5, state="pruned", flops=50),
        _row(5, None, 9.0, feasible=False, flops=900)]


def test_the_front_holds_completed_feasible_trials_nothing_beats() -> None:
    assert [r["trial"] for r in pareto_front(ROWS)] == [0, 1]
    assert [r["trial"] for r in pareto_front(ROWS, feasible_only=False)] == [0, 1, 3]


def test_the_choice_is_the_most_accurate_feasible_trial() -> None:
    assert best_feasible(ROWS)["trial"] == 1  # type: ignore[index]
    infeasible = [dict(r, feasible=False, violation=float(r["trial"] + 1)) for r in ROWS]
    assert best_feasible(infeasible) is None
    assert closest(infeasible)["trial"] == 0  # type: ignore[index]


def test_latency_and_flops_rank_correlation() -> None:
    assert latency_flops_correlation(ROWS) == pytest.approx(0.9429, abs=1e-3)
    assert latency_flops_correlation(ROWS[:2]) is None


def test_files_and_table(tmp_path: Path) -> None:
    path = write_trials_csv(tmp_path / "trials.csv", ROWS)
    read = list(csv.DictReader(path.open()))
    assert len(read) == 6 and read[0]["arch"] == "k3e6c8n1s1" and read[0]["params_chosen"] == "width=0.5"
    assert plot_front(ROWS, tmp_path / "pareto.png", "t", chosen=ROWS[1]) == tmp_path / "pareto.png"
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert plot_front([], tmp_path / "none.png", "t") is None
    assert front_table(ROWS, ROWS[1], "front").row_count == 2


def test_with_a_reference_trials_are_ranked_by_the_paired_ratio_not_the_drifting_milliseconds(tmp_path: Path) -> None:
    """Trial 1 was timed in a slow minute (more ms) but is 2x faster than the reference timed beside it; trial 0,
    timed in a fast minute, is only 1.2x faster. The ratio decides the front and the tie, not the milliseconds."""
    rows = [dict(_row(0, 0.90, 1.0), speedup=1.2, reference_ms=1.2), dict(_row(1, 0.90, 1.5), speedup=2.0,
                                                                         reference_ms=3.0)]
    assert [r["trial"] for r in pareto_front(rows)] == [1]
    assert best_feasible(rows)["trial"] == 1  # type: ignore[index]
    table = front_table(rows, rows[1], "t", "mobilenet_v2")
    assert [c.header for c in table.columns][3] == "vs mobilenet_v2"
    assert list(table.columns[3].cells) == ["2.00× faster"]
    read = list(csv.DictReader(write_trials_csv(tmp_path / "trials.csv", rows).open()))
    assert read[1]["speedup"] == "2.0" and read[1]["reference_ms"] == "3.0"
    assert plot_front(rows, tmp_path / "pareto.png", "t", "mobilenet_v2") is not None


@pytest.mark.parametrize("speedup, latency", [(1.4349, 0.4561), (1.23, 7.0001), (0.999, 0.1)])
def test_the_suggested_limit_admits_the_closest_trial_as_printed(speedup: float, latency: float) -> None:
    """Following the fix must work: the suggested search.min_speedup is rounded down, max_latency_ms up."""
    import re

    row = dict(_row(0, None, latency, feasible=False), speedup=speedup, violation=1.0)
    error = no_candidate_met([row], max_latency_ms=latency / 2, max_params=None, min_speedup=speedup + 1)
    suggested = dict(re.findall(r"search\.(min_speedup|max_latency_ms)=([0-9.e+-]+)", error.fix))
    assert set(suggested) == {"min_speedup", "max_latency_ms"}
    settings = SearchSettings.from_config({**SETTINGS, "reference": "lenet5",
                                           **{k: float(v) for k, v in suggested.items()}})
    assert all(v <= 0 for v in settings.violations(latency, 1, speedup).values())
    assert f"{ratio_text(speedup)} vs the reference" in error.one_line()


SETTINGS = {"trials": 1, "proxy_epochs": 1, "proxy_train_fraction": 1, "population": 2, "eta": 2, "min_rung_trials": 1}


def _suggested(error) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import re

    return {k: float(v) for k, v in re.findall(r"search\.(min_speedup|max_latency_ms)=([0-9.e+-]+)", error.fix)}


@pytest.mark.parametrize("ms_rounds, ratio_rounds, latency, speedup", [
    (None, None, 1.35, 1.85),                        # never spread (one round, an old cache): the floors, 35 and 8 %
    ([1.0], [2.0], 1.35, 1.85),                      # one round shows no spread: the floors
    ([0.98, 1.0, 1.02], [1.96, 2.0, 2.04], 1.35, 1.85),  # a spread under the floors: the floors
    ([0.9, 1.0, 1.5], [1.8, 2.0, 2.1], 1.6, 1.73),   # 60 % and 15 % spread: the trial's own noise
])
def test_a_suggested_limit_leaves_room_for_the_timing_noise(ms_rounds, ratio_rounds, latency: float,
                                                             speedup: float) -> None:
    """The search's paired speed-ups of one network differ by ± 8 % between sessions, its p50 in ms by up to 29 %
    (two speeds of LeNet-5 at 2 threads on a 2-core VM: docs/search.md, benchmarks/latency_noise.py); a limit 5 %
    off the closest trial's figure, then 8 % (probe 56), was inside that noise, and the next search missed it."""
    row = dict(_row(0, None, 1.0, feasible=False), speedup=2.0, violation=1.0, latency_ms_per_round=ms_rounds,
               speedup_per_round=ratio_rounds)
    error = no_candidate_met([row], max_latency_ms=0.5, max_params=None, min_speedup=3.0, reference="lenet5")
    assert _suggested(error) == {"max_latency_ms": latency, "min_speedup": speedup}
    assert "room for timing noise (its rounds' spread, at least 35% and 8%)" in error.fix


def test_a_suggested_min_speedup_below_one_says_it_admits_slower_models() -> None:
    """Probe 124: asked for 1.5× faster, told search.min_speedup=0.648 (1.20× with 84 % room for its rounds' spread),
    unsaid that it admits models slower than the reference."""
    row = dict(_row(0, None, 1.0, feasible=False), speedup=1.2, violation=1.0, speedup_per_round=[0.8, 1.2, 1.81])
    error = no_candidate_met([row], max_latency_ms=None, max_params=None, min_speedup=1.5, reference="lenet5")
    assert _suggested(error)["min_speedup"] < 1
    assert "below 1 admits models slower than the reference" in error.fix and "search.latency.rounds" in error.fix
    tight = dict(row, speedup_per_round=[1.19, 1.2, 1.21])  # the floor's room: 1.2 / 1.08, still above 1
    assert "slower than the reference" not in no_candidate_met([tight], max_latency_ms=None, max_params=None,
                                                               min_speedup=1.5, reference="lenet5").fix


def test_a_hyperparameter_search_is_not_told_to_shrink_an_architecture_it_does_not_search() -> None:
    """Probe 56: `space=hparams` was told "lower space.params.width", which that space does not have."""
    row = dict(_row(0, None, 1.0, feasible=False), violation=1.0)
    error = no_candidate_met([row], max_latency_ms=0.5, max_params=None, architecture=False)
    assert "space.params.width" not in error.fix and "smaller model=" in error.fix
    assert "space.params.width" in no_candidate_met([row], max_latency_ms=0.5, max_params=None).fix
    # probe 201: at the lowest width the unscaled head set the floor, and only width was named
    assert "space.base=…_headN" in no_candidate_met([row], max_latency_ms=0.5, max_params=None).fix


def test_a_counted_limit_gets_no_noise_room() -> None:
    row = dict(_row(0, None, 1.0, feasible=False), violation=1.0)  # params 1000
    error = no_candidate_met([row], max_latency_ms=None, max_params=500, min_speedup=None)
    assert "(search.max_params=1000) or search a smaller space" in error.fix


def test_speedups_read_as_cnnlab_report_prints_them() -> None:
    """0.35 is '2.86× slower' — the search printed '0.35x' where `cnnlab report` says '2.86× slower'."""
    assert speedup_text(0.35, "lenet5") == "2.86× slower vs lenet5" == f"{ratio_text(0.35)} vs lenet5"
    assert speedup_text(1.5, None) == "1.50× faster vs the reference"
    row = dict(_row(0, None, 1.0, feasible=False), speedup=0.35, violation=1.0)
    line = no_candidate_met([row], max_latency_ms=None, max_params=None, min_speedup=1.5, reference="lenet5").one_line()
    assert "1.000 ms, 2.86× slower vs lenet5, 1,000 params" in line and "0.35x" not in line
    rows = [dict(_row(0, 0.9, 1.0), speedup=0.35), dict(_row(1, 0.5, 0.5), speedup=1.0)]
    assert list(front_table(rows, None, "t", "lenet5").columns[3].cells) == ["1.00×", "2.86× slower"]


def test_the_correlation_line_counts_the_candidates_it_was_computed_over() -> None:
    """A failed trial that was never timed, and a candidate timed twice, are not in the rho: not in its count."""
    untimed = dict(_row(6, None, 0.0, feasible=False, state="fail"), latency_ms=None, flops=None)
    repeat = dict(ROWS[0], trial=7)
    rows = [*ROWS, untimed, repeat]
    assert correlation_line(rows) == "latency vs FLOPs over 6 timed candidates: Spearman rho = 0.943"
    assert correlation_line(ROWS[:2]) is None


def test_an_empty_front_is_one_line_not_an_empty_table() -> None:
    running = dict(_row(0, None, 1.0), state="running")
    assert empty_front_line([]) == empty_front_line([running]) == "no finished trial yet"
    infeasible = [dict(r, feasible=False) for r in ROWS]
    assert empty_front_line(infeasible) == ("no trial on the Pareto front: none of the 6 finished trials completed "
                                            "its proxy training within the constraints")


def test_a_twin_is_its_first_trials_point_again_not_a_second_row_of_the_front() -> None:
    """A re-proposed candidate (same_as) reused trial 1's score: the front listed the same network twice and the
    choice could fall on the copy."""
    twin = dict(_row(6, 0.90, 2.0), same_as=1)
    assert [r["trial"] for r in pareto_front([*ROWS, twin])] == [r["trial"] for r in pareto_front(ROWS)]
    assert best_feasible([twin, *ROWS])["trial"] == 1
    assert [r["trial"] for r in pareto_front([dict(ROWS[0], same_as=""), twin])] == [0]  # "" : read from trials.csv


def test_a_search_whose_every_trial_failed_says_so_and_plots_without_warnings(tmp_path: Path) -> None:
    """Every trial's loss became NaN: the error said "run more trials" and matplotlib warned about an empty legend."""
    import warnings

    failed = [_row(n, None, 1.0 + n, state="fail") for n in range(3)]
    error = no_candidate_met(failed, max_latency_ms=None, max_params=None, min_speedup=None)
    assert "every trial failed (3)" in error.message and "lower optim.lr" in (error.fix or "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_front(failed, tmp_path / "pareto.png", "t")
