"""Choosing the INT8 candidate: the fastest within the accuracy budget, from measured figures."""

from __future__ import annotations

import pytest

from cnnlab.compress.quantization import (CandidateFigures, drop_points, select, signed_points, speedup,
                                          within_budget)

FP32_MS = {1: 10.0}


def fig(name: str, acc: float, ms: float | dict[int, float]) -> CandidateFigures:
    return CandidateFigures(name, acc, ms if isinstance(ms, dict) else {1: ms})


def test_the_fastest_candidate_within_the_budget_wins() -> None:
    candidates = [fig("qdq_u8s8", 0.895, 3.0), fig("qdq_s8s8", 0.90, 8.0), fig("qop_s8s8", 0.90, 40.0)]
    chosen = select(candidates, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert chosen.chosen == "qdq_u8s8" and chosen.within_budget
    assert "fastest of 3" in chosen.reason and "3.33× faster than FP32" in chosen.reason and "-0.50 pts" in chosen.reason


def test_a_faster_candidate_over_budget_loses_and_is_named() -> None:
    candidates = [fig("fast_but_bad", 0.85, 2.0), fig("slower_ok", 0.899, 5.0), fig("slowest_ok", 0.90, 9.0)]
    chosen = select(candidates, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert chosen.chosen == "slower_ok" and chosen.within_budget
    assert "faster but over budget: fast_but_bad (5.00× faster than FP32, -5.00 pts)" in chosen.reason


def test_no_candidate_within_budget_reports_the_most_accurate() -> None:
    candidates = [fig("a", 0.80, 2.0), fig("b", 0.86, 6.0), fig("c", 0.86, 4.0)]
    chosen = select(candidates, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert not chosen.within_budget
    assert chosen.chosen == "c"  # as accurate as b, and faster
    assert "no candidate is within the 1-point accuracy budget" in chosen.reason and "-4.00 pts" in chosen.reason


def test_the_budget_is_inclusive_and_in_points() -> None:
    assert within_budget(0.89, 0.90, 1.0)          # exactly one point
    assert not within_budget(0.8899, 0.90, 1.0)
    assert within_budget(0.95, 0.90, 0.0)          # better than FP32 is always fine
    assert drop_points(0.88, 0.90) == pytest.approx(2.0)
    chosen = select([fig("a", 0.885, 1.0), fig("b", 0.89, 9.0)], fp32_acc=0.90, fp32_latency_ms=FP32_MS,
                    max_drop_points=1.0)
    assert chosen.chosen == "b"


def test_speed_over_several_batch_sizes_is_a_geometric_mean() -> None:
    fp32 = {1: 10.0, 32: 100.0}
    assert speedup({1: 5.0, 32: 100.0}, fp32) == pytest.approx(2 ** 0.5)
    # a: 4x at batch 1, 1x at 32 (2x overall); b: 1.5x at both → a is faster overall
    chosen = select([fig("a", 0.9, {1: 2.5, 32: 100.0}), fig("b", 0.9, {1: 10 / 1.5, 32: 100 / 1.5})],
                    fp32_acc=0.9, fp32_latency_ms=fp32, max_drop_points=1.0)
    assert chosen.chosen == "a"
    with pytest.raises(ValueError):
        speedup({8: 1.0}, fp32)


def test_a_single_candidate_is_judged_against_the_budget_too() -> None:
    ok = select([fig("only", 0.90, 5.0)], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert ok.within_budget and ok.reason.startswith("only: within the 1-point accuracy budget")
    bad = select([fig("only", 0.50, 5.0)], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert not bad.within_budget and bad.chosen == "only"
    with pytest.raises(ValueError):
        select([], fp32_acc=0.9, fp32_latency_ms=FP32_MS, max_drop_points=1.0)


def test_signed_points_never_prints_minus_zero() -> None:
    assert signed_points(-0.0) == "+0.00"
    assert signed_points(-drop_points(0.5, 0.5)) == "+0.00"
    assert signed_points(-1.234) == "-1.23"
