"""Which candidate to keep: the fastest one whose accuracy stays within the budget of the FP32 model's.

Pure functions on measured figures, so the rule can be tested without timing anything. Speed is the
latency relative to FP32 measured in the same run, combined over the timed batch sizes by a geometric mean
(a candidate twice as fast at batch 1 and equally fast at batch 32 counts as 1.41x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from cnnlab.deploy.bench_report import ratio_text

_EPSILON = 1e-9  # accuracy differences below this are float noise, not a lost image


@dataclass
class CandidateFigures:
    name: str
    acc: float                         # validation accuracy of the INT8 file itself, in [0, 1]
    latency_ms: Mapping[int, float]    # p50 per batch size
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    chosen: str
    within_budget: bool
    reason: str


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


def select(candidates: Sequence[CandidateFigures], *, fp32_acc: float, fp32_latency_ms: Mapping[int, float],
           max_drop_points: float) -> Selection:
    """The fastest candidate within `max_drop_points` of `fp32_acc`; if none is, the most accurate one
    (ties: the faster), with within_budget=False."""
    if not candidates:
        raise ValueError("no candidate to select from")
    speed = {c.name: speedup(c.latency_ms, fp32_latency_ms) for c in candidates}
    budget = f"{max_drop_points:g}-point accuracy budget"

    def figures(c: CandidateFigures) -> str:
        return f"{ratio_text(speed[c.name])} than FP32, {signed_points(-drop_points(c.acc, fp32_acc))} pts"

    eligible = [c for c in candidates if within_budget(c.acc, fp32_acc, max_drop_points)]
    if not eligible:
        best = max(candidates, key=lambda c: (c.acc, speed[c.name]))
        return Selection(best.name, False, f"no candidate is within the {budget}; the most accurate is "
                                           f"{best.name} ({figures(best)})")
    chosen = max(eligible, key=lambda c: (speed[c.name], c.acc))
    reason = (f"{chosen.name}: the fastest of {len(eligible)} candidate(s) within the {budget} ({figures(chosen)})"
              if len(candidates) > 1 else f"{chosen.name}: within the {budget} ({figures(chosen)})")
    faster_over_budget = [c for c in candidates if c not in eligible and speed[c.name] > speed[chosen.name]]
    if faster_over_budget:
        reason += "; faster but over budget: " + ", ".join(f"{c.name} ({figures(c)})" for c in faster_over_budget)
    return Selection(chosen.name, True, reason)
