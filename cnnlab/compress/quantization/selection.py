"""Which candidate to keep: the fastest one whose accuracy stays within the budget of the FP32 model's.

Pure functions on measured figures, so the rule can be tested without timing anything. Speed is the
latency relative to FP32 measured in the same run, combined over the timed batch sizes by a geometric mean
(a candidate twice as fast at batch 1 and equally fast at batch 32 counts as 1.41x).

Two refinements of "the fastest":
- portability: a candidate within timing noise of the fastest but read by more runtimes wins (QDQ, read by
  onnxruntime, OpenVINO and TensorRT, over a QOperator file only onnxruntime loads). Noise is the spread of the
  per-round speed-ups of the two files in this session, at least MIN_NOISE.
- FP32 kept: in a search, when no candidate within the budget is measured faster than FP32, the FP32 model is what
  ships (`Selection.fp32_kept`), with the reason — an INT8 file slower than the model it replaces is not a
  compression. "Measured faster" is `PairedRatio.faster`: a speed-up counts as faster (or slower) than FP32 only
  when every round says so, stable or not (deploy/paired.py: UNSTABLE_SPREAD). When the chosen candidate's rounds
  fall on both sides of FP32's, the fastest candidate measured faster in every round ships instead, or FP32 when
  there is none — and the reason says so.
  Every speed-up in a reason carries its rounds' range when they disagree ("(unstable: …)").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from cnnlab.deploy.paired import PairedRatio, SubjectTiming, spread

_EPSILON = 1e-9  # accuracy differences below this are float noise, not a lost image
# Two speed-ups closer than this (relative) are a tie even when the session's rounds agree better: paired rounds
# on a quiet machine still differ by 1-2 % (docs/benchmarks.md, per-round ratios).
MIN_NOISE = 0.02


@dataclass
class CandidateFigures:
    name: str
    acc: float                         # validation accuracy of the INT8 file itself, in [0, 1]
    latency_ms: Mapping[int, float]    # p50 per batch size
    notes: list[str] = field(default_factory=list)
    read_by: tuple[str, ...] = ()      # runtimes that load its layout (formats.READ_BY)
    ran_on: tuple[str, ...] = ()       # ... of them, those that ran this very file here (portability.LOADS)
    rounds: tuple[float, ...] = ()     # its speed-up over FP32 in each interleaved round (round_speedups)

    @property
    def portability(self) -> int:
        return len(self.read_by)

    @property
    def noise(self) -> float:
        """The relative spread of its per-round speed-ups in this session (paired.spread)."""
        return spread(self.rounds)


@dataclass(frozen=True)
class Selection:
    """The INT8 candidate chosen (`chosen`), whether it is within the accuracy budget, and why; `fp32_kept`: no
    candidate within the budget beats FP32 here, so the FP32 model ships instead of `chosen`."""

    chosen: str
    within_budget: bool
    reason: str
    fp32_kept: bool = False


def drop_points(acc: float, fp32_acc: float) -> float:
    """Accuracy lost, in percentage points (negative: the INT8 model scored higher)."""
    return 100.0 * (fp32_acc - acc)


def signed_points(value: float) -> str:
    """+1.25 / -0.50 / +0.00 (never "-0.00" for an unchanged accuracy)."""
    return f"{value + 0.0:+.2f}"


def within_budget(acc: float, fp32_acc: float, max_drop_points: float) -> bool:
    return drop_points(acc, fp32_acc) <= max_drop_points + _EPSILON


def speedup(candidate_ms: Mapping[int, float], fp32_ms: Mapping[int, float]) -> float:
    """FP32 latency / candidate latency, geometric mean over the batch sizes both were timed at."""
    sizes = sorted(set(candidate_ms) & set(fp32_ms))
    if not sizes:
        raise ValueError("no batch size timed for both the candidate and FP32")
    return math.exp(sum(math.log(fp32_ms[b] / candidate_ms[b]) for b in sizes) / len(sizes))


def round_speedups(candidate_rounds: Mapping[int, Sequence[float]],
                   fp32_rounds: Mapping[int, Sequence[float]]) -> tuple[float, ...]:
    """A candidate's speed-up over FP32 in each interleaved round: the geometric mean over the batch sizes of FP32
    p50 / candidate p50 in that round (paired.PairedTiming.ratios, over several batch sizes); () without a round."""
    sizes = sorted(set(candidate_rounds) & set(fp32_rounds))
    count = min((len(candidate_rounds[b]) for b in sizes), default=0)
    return tuple(speedup({b: candidate_rounds[b][r] for b in sizes}, {b: fp32_rounds[b][r] for b in sizes})
                 for r in range(count))


def paired_ratio(candidate: SubjectTiming, fp32: SubjectTiming) -> PairedRatio:
    """A candidate's speed-up over FP32 in one paired session, with its per-round speed-ups, judged by the rule of
    every paired timing (PairedRatio: unstable when the rounds are more than 15 % apart)."""
    return PairedRatio.of_rounds(round_speedups(candidate.p50_per_round, fp32.p50_per_round),
                                 speedup(candidate.p50_ms(), fp32.p50_ms()))


def select(candidates: Sequence[CandidateFigures], *, fp32_acc: float, fp32_latency_ms: Mapping[int, float],
           max_drop_points: float, keep_fp32_if_slower: bool = False) -> Selection:
    """The fastest candidate within `max_drop_points` of `fp32_acc` — or one read by more runtimes within timing
    noise of it; if none is within the budget, the most accurate one (ties: the faster), with within_budget=False.
    `keep_fp32_if_slower`: when the candidate chosen is not measured faster than FP32 (PairedRatio.faster), the
    fastest one that is, else the selection says to ship FP32 (see the module docstring)."""
    if not candidates:
        raise ValueError("no candidate to select from")
    judged = {c.name: PairedRatio.of_rounds(c.rounds, speedup(c.latency_ms, fp32_latency_ms)) for c in candidates}
    speed = {name: ratio.ratio for name, ratio in judged.items()}
    budget = f"{max_drop_points:g}-point accuracy budget"

    def figures(c: CandidateFigures) -> str:
        return f"{judged[c.name].text('FP32')}, {signed_points(-drop_points(c.acc, fp32_acc))} pts"

    eligible = [c for c in candidates if within_budget(c.acc, fp32_acc, max_drop_points)]
    if not eligible:
        best = max(candidates, key=lambda c: (c.acc, speed[c.name]))
        return Selection(best.name, False, f"no candidate is within the {budget}; the most accurate is "
                                           f"{best.name} ({figures(best)})")
    fastest = max(eligible, key=lambda c: (speed[c.name], c.acc))
    reason = (f"{fastest.name}: the fastest of {len(eligible)} candidate(s) within the {budget} ({figures(fastest)})"
              if len(candidates) > 1 else f"{fastest.name}: within the {budget} ({figures(fastest)})")
    chosen = _more_portable_tie(fastest, eligible, speed)
    if chosen is not fastest:
        # the figures the rule used, so the sentence can be checked (probe 177: "within timing noise" of a file
        # 42 % faster read as untrue without the spread behind it)
        gap = 1.0 - speed[chosen.name] / speed[fastest.name]
        reason = (f"{chosen.name} ({figures(chosen)}): {gap:.1%} slower than the fastest, {fastest.name} "
                  f"({figures(fastest)}), within the timing noise (±{_noise(chosen, fastest):.0%}, the larger "
                  f"per-round spread of the two), and read by more runtimes ({_readers(chosen)} vs "
                  f"{_readers(fastest) or 'unknown'})")
    faster_over_budget = [c for c in candidates if c not in eligible and speed[c.name] > speed[chosen.name]]
    if faster_over_budget:
        # faster than the choice, not necessarily than FP32 (probe 73: "1.68× slower than FP32" listed as "faster")
        reason += f"; faster than {chosen.name} but over budget: " + ", ".join(f"{c.name} ({figures(c)})"
                                                                              for c in faster_over_budget)
    if not keep_fp32_if_slower or judged[chosen.name].faster:
        return Selection(chosen.name, True, reason)
    measured = [c for c in eligible if judged[c.name].faster]
    if measured:  # the choice's rounds fell on both sides of FP32's (or it is slower): one faster in every round
        steady = max(measured, key=lambda c: (speed[c.name], c.acc))
        return Selection(steady.name, True, f"{steady.name} ({figures(steady)}): the fastest candidate within the "
                                            f"{budget} measured faster than FP32, chosen over {reason}")
    undecided = judged[chosen.name].faster is None
    return Selection(chosen.name, True, f"FP32 kept: no INT8 candidate within the {budget} is measured faster than "
                                        f"FP32 on this machine; the best, {reason}" +
                     (" — its rounds were both faster and slower than FP32: rerun on a quieter machine or with more "
                      "quantize.bench_rounds (quantize.keep_fp32_if_slower=false ships it)" if undecided else ""),
                     fp32_kept=True)


def _more_portable_tie(fastest: CandidateFigures, eligible: Sequence[CandidateFigures],
                       speed: Mapping[str, float]) -> CandidateFigures:
    """`fastest`, or the fastest of the eligible candidates read by more runtimes whose speed-up is within the
    noise of both files' per-round spreads (at least MIN_NOISE) of it."""
    ties = [c for c in eligible if c.portability > fastest.portability
            and speed[c.name] >= speed[fastest.name] * (1.0 - _noise(c, fastest))]
    return max(ties, key=lambda c: (c.portability, speed[c.name], c.acc)) if ties else fastest


def _readers(candidate: CandidateFigures) -> str:
    """"onnxruntime, openvino" where each ran the file; runtimes that read its layout but were not run on it here
    said so (probe 183: "read by … openvino" of a network OpenVINO had just refused, with
    deploy_runtimes=[onnxruntime] checking nothing else)."""
    ran = [r for r in candidate.read_by if r in candidate.ran_on]
    layout = [r for r in candidate.read_by if r not in candidate.ran_on]
    return "; ".join(([", ".join(ran)] if ran else []) +
                     ([f"{', '.join(layout)} by its layout, not run here"] if layout else []))


def _noise(a: CandidateFigures, b: CandidateFigures) -> float:
    """The relative timing noise between two candidates: the larger per-round spread, at least MIN_NOISE."""
    return max(MIN_NOISE, a.noise, b.noise)
