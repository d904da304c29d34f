"""What a search shows (cnnlab/search/results.py): front, choice, closest trial, rank correlation, files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cnnlab.search.results import (best_feasible, closest, front_table, latency_flops_correlation, pareto_front,
                                   plot_front, write_trials_csv)


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
    assert plot_front(ROWS, tmp_path / "pareto.png", "t") == tmp_path / "pareto.png"
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert plot_front([], tmp_path / "none.png", "t") is None
    assert front_table(ROWS, ROWS[1], "front").row_count == 2
