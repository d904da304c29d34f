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
    assert "faster than slower_ok but over budget: fast_but_bad (5.00× faster than FP32, -5.00 pts)" in chosen.reason


def test_a_candidate_over_budget_is_called_faster_than_the_choice_not_than_fp32() -> None:
    """Probe 73: "faster but over budget: qdq_s8s8 (1.68× slower than FP32, ...)" — it was faster than the choice."""
    candidates = [fig("slow_bad", 0.85, 15.0), fig("slowest_ok", 0.90, 30.0)]
    chosen = select(candidates, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0, keep_fp32_if_slower=True)
    assert chosen.fp32_kept
    assert "faster than slowest_ok but over budget: slow_bad (1.50× slower than FP32" in chosen.reason


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


QDQ_READERS, QOP_READERS = ("onnxruntime", "openvino", "tensorrt"), ("onnxruntime",)


def test_a_more_portable_candidate_within_timing_noise_beats_the_fastest() -> None:
    # MobileNetV2 on onnxruntime (issue 20): QOperator won by 0.001 ms over QDQ and then did not load in OpenVINO.
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.510}, read_by=QOP_READERS)
    qdq = CandidateFigures("qdq_u8s8", 0.90, {1: 0.511}, read_by=QDQ_READERS)
    chosen = select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0)
    assert chosen.chosen == "qdq_u8s8"
    assert "0.2% slower than the fastest, qop_u8s8" in chosen.reason and "openvino" in chosen.reason
    assert "within the timing noise (±2%, the larger per-round spread of the two)" in chosen.reason  # the floor


def test_a_tie_through_a_wide_spread_says_the_gap_and_the_spread_it_used() -> None:
    # Probe 177: a candidate 42 % slower was "within timing noise of the fastest", with no figure to check it by.
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.50}, read_by=QOP_READERS, rounds=(1.2, 2.0, 1.7))
    qdq = CandidateFigures("qdq_u8s8", 0.90, {1: 0.70}, read_by=QDQ_READERS, rounds=(1.1, 1.3, 1.2))
    chosen = select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0)
    noise = max(qop.noise, qdq.noise)
    assert chosen.chosen == "qdq_u8s8" and noise > 1 - 0.50 / 0.70
    assert f"{1 - 1.2 / 1.7:.1%} slower than the fastest, qop_u8s8" in chosen.reason  # the rounds' medians
    assert f"within the timing noise (±{noise:.0%}, the larger per-round spread of the two)" in chosen.reason


def test_a_clearly_faster_less_portable_candidate_still_wins() -> None:
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.40}, read_by=QOP_READERS)
    qdq = CandidateFigures("qdq_u8s8", 0.90, {1: 0.50}, read_by=QDQ_READERS)
    chosen = select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0)
    assert chosen.chosen == "qop_u8s8"


def test_the_noise_band_grows_with_the_sessions_own_round_spread() -> None:
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.45}, read_by=QOP_READERS, rounds=(1.8, 2.0, 2.1))  # spread 15 %
    qdq = CandidateFigures("qdq_u8s8", 0.90, {1: 0.50}, read_by=QDQ_READERS, rounds=(1.69, 1.70, 1.70))
    # 10 % slower: beyond MIN_NOISE but within the 15 % the rounds of the faster file disagreed by
    assert select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0).chosen == "qdq_u8s8"
    steady = CandidateFigures("qop_u8s8", 0.90, {1: 0.45}, read_by=QOP_READERS, rounds=(1.88, 1.89, 1.89))
    assert select([steady, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0).chosen == "qop_u8s8"


def test_a_portable_candidate_over_budget_is_never_preferred() -> None:
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.50}, read_by=QOP_READERS)
    qdq = CandidateFigures("qdq_u8s8", 0.85, {1: 0.50}, read_by=QDQ_READERS)
    assert select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0).chosen == "qop_u8s8"


def test_fp32_is_kept_when_no_candidate_within_budget_beats_it() -> None:
    # EfficientNet-B0 on onnxruntime: INT8 measured 0.86x FP32
    slow = [fig("qdq_u8s8", 0.90, 11.6), fig("qop_u8s8", 0.90, 12.5)]
    kept = select(slow, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0, keep_fp32_if_slower=True)
    assert kept.fp32_kept and kept.within_budget and kept.chosen == "qdq_u8s8"
    assert kept.reason.startswith("FP32 kept: no INT8 candidate") and "1.16× slower than FP32" in kept.reason
    shipped = select(slow, fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert not shipped.fp32_kept  # a format asked for by name ships (with a warning elsewhere)
    fast = select([fig("qdq_u8s8", 0.90, 9.9)], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0,
                  keep_fp32_if_slower=True)
    assert not fast.fp32_kept


def test_round_spread_is_the_relative_range_of_per_round_speedups() -> None:
    from cnnlab.compress.quantization.selection import round_speedups
    from cnnlab.deploy.paired import spread

    def round_spread(candidate: dict, fp32: dict) -> float:  # what a candidate's `noise` is
        return spread(round_speedups(candidate, fp32))

    fp32 = {1: (10.0, 10.0, 10.0)}
    assert round_spread({1: (5.0, 5.0, 5.0)}, fp32) == pytest.approx(0.0)
    assert round_spread({1: (4.0, 5.0, 5.0)}, fp32) == pytest.approx((2.5 - 2.0) / 2.0)
    assert round_spread({1: (5.0,)}, {1: (10.0,)}) == 0.0
    assert round_spread({1: ()}, {1: ()}) == 0.0 and round_spread({1: (5.0, 4.0)}, {4: (10.0, 10.0)}) == 0.0
    # the paired-timing spread itself: with an even count of rounds, the mean of the two middle ones is the median
    # (probe 239: it was the upper one, 2.5)
    assert round_spread({1: (5.0, 5.0, 4.0, 2.0)}, {1: (10.0,) * 4}) == pytest.approx((5.0 - 2.0) / 2.25)


# --- probe 105: a speed-up whose rounds disagree is said to be unstable, and is no win or loss by itself -----------

def test_an_unstable_speedup_is_said_in_the_reason_and_a_verdict_needs_every_round() -> None:
    """Probe 105: rounds 2.04, 0.99, 1.94 were printed and used as "1.94× faster"; prune and bench call such a pair
    unstable (paired.rounds_disagree, > 15 % spread)."""
    wavering = CandidateFigures("qdq_u8s8", 0.90, {1: 10 / 1.94}, rounds=(2.04, 0.99, 1.94))
    kept = select([wavering], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0, keep_fp32_if_slower=True)
    assert kept.fp32_kept and kept.chosen == "qdq_u8s8"
    assert "1.94× faster than FP32 (unstable: 1.01× slower to 2.04× faster)" in kept.reason
    assert "its rounds were both faster and slower than FP32" in kept.reason and "quantize.bench_rounds" in kept.reason
    # without keep_fp32_if_slower it ships, and says the figure is unstable
    shipped = select([wavering], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0)
    assert not shipped.fp32_kept and "(unstable: 1.01× slower to 2.04× faster)" in shipped.reason
    # faster in every round: a win, however far apart the rounds
    every_round = CandidateFigures("qdq_u8s8", 0.90, {1: 5.0}, rounds=(1.5, 2.0, 2.5))
    won = select([every_round], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0, keep_fp32_if_slower=True)
    assert not won.fp32_kept and "2.00× faster than FP32 (unstable: 1.50–2.50× faster)" in won.reason


def test_a_candidate_faster_in_every_round_ships_before_a_wavering_faster_one() -> None:
    wavering = CandidateFigures("qop_u8s8", 0.90, {1: 10 / 1.94}, rounds=(2.04, 0.99, 1.94))
    steady = CandidateFigures("qdq_u8s8", 0.90, {1: 10 / 1.5}, rounds=(1.49, 1.5, 1.52))
    chosen = select([wavering, steady], fp32_acc=0.90, fp32_latency_ms=FP32_MS, max_drop_points=1.0,
                    keep_fp32_if_slower=True)
    assert chosen.chosen == "qdq_u8s8" and not chosen.fp32_kept
    assert chosen.reason.startswith("qdq_u8s8 (1.50× faster than FP32, +0.00 pts): the fastest candidate within the "
                                    "1-point accuracy budget measured faster than FP32, chosen over qop_u8s8")


def test_a_stable_speedup_whose_rounds_fall_on_both_sides_of_fp32_is_not_measured_faster() -> None:
    """Probe 113 (OpenVINO, LeNet-5): qdq_u8s8 at 1.0047× (rounds 1.0047, 0.8831, 0.9445: 12.9 % apart, so stable)
    shipped as "the fastest candidate within the budget measured faster than FP32" while its reason read "as fast
    as FP32 (1.00×)" — two rounds of three slower. Neither file is measured faster: FP32 ships."""
    wavering = CandidateFigures("nncf_qdq", 0.8639, {1: 10 / 1.04}, rounds=(1.08, 1.04, 1 / 1.15))
    level = CandidateFigures("qdq_u8s8", 0.8722, {1: 10 / 1.0047}, rounds=(1.0047, 0.8831, 0.9445))
    kept = select([wavering, level], fp32_acc=0.8667, fp32_latency_ms=FP32_MS, max_drop_points=1.0,
                  keep_fp32_if_slower=True)
    assert kept.fp32_kept and "measured faster than FP32, chosen over" not in kept.reason, kept.reason
    assert "its rounds were both faster and slower than FP32" in kept.reason


def test_the_runtimes_a_tie_break_names_say_which_ran_the_file() -> None:
    # Probe 183: with quantize.deploy_runtimes=[onnxruntime] the reason read "read by more runtimes (onnxruntime,
    # openvino, tensorrt …)" of a network OpenVINO had just refused: only onnxruntime had run either file.
    qop = CandidateFigures("qop_u8s8", 0.90, {1: 0.510}, read_by=QOP_READERS, ran_on=("onnxruntime",))
    qdq = CandidateFigures("qdq_u8s8", 0.90, {1: 0.511}, read_by=QDQ_READERS, ran_on=("onnxruntime",))
    reason = select([qop, qdq], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0).reason
    assert "read by more runtimes (onnxruntime; openvino, tensorrt by its layout, not run here vs onnxruntime)" \
        in reason
    checked = CandidateFigures("qdq_u8s8", 0.90, {1: 0.511}, read_by=QDQ_READERS, ran_on=("onnxruntime", "openvino"))
    reason = select([qop, checked], fp32_acc=0.90, fp32_latency_ms={1: 0.85}, max_drop_points=1.0).reason
    assert "(onnxruntime, openvino; tensorrt by its layout, not run here vs onnxruntime)" in reason
