"""The accuracy × latency Pareto front: models no other model beats on both at once.

Works on report rows and on seed groups alike (a group counts with its mean val top-1 and mean p50)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, TypeVar

from cnnlab.records import DatasetIdentity


class Point(Protocol):
    pareto: bool
    source_ranked: bool    # a point that repeats its source's network, and the source is ranked: it stands for it

    @property
    def accuracy(self) -> float: ...

    @property
    def p50_ms(self) -> float | None: ...

    @property
    def dataset_key(self) -> DatasetIdentity: ...

    @property
    def repeats_source(self) -> bool: ...

    @property
    def model_digests(self) -> frozenset[str]: ...

    @property
    def run_paths(self) -> frozenset[Path]: ...

    @property
    def source_paths(self) -> frozenset[Path]: ...


P = TypeVar("P", bound=Point)


def dominates(a: Point, b: Point) -> bool:
    """a is at least as accurate and at least as fast as b, and strictly better in one of the two."""
    assert a.p50_ms is not None and b.p50_ms is not None
    return a.accuracy >= b.accuracy and a.p50_ms <= b.p50_ms and (a.accuracy > b.accuracy or a.p50_ms < b.p50_ms)


def mark_pareto(points: Sequence[Point]) -> None:
    """Set .pareto within each group of comparable points (same dataset; those without latency are never on it,
    nor a point that repeats its source's network where the source is ranked: the source stands for it, and
    .source_ranked says so). Points that wrote the very same model files (equal recorded digests) are one network,
    never ranked apart: timing noise alone would pick the star (probe 141: a sweep over a setting that changed
    nothing starred one of two identical files by 0.6 %)."""
    timed = [p for p in points if p.p50_ms is not None]
    ranked_runs = frozenset().union(*(p.run_paths for p in timed if not p.repeats_source))
    for point in timed:
        # probe 180: with its source not in the report (another folder, left out), the FP32 copy was off the front
        # too, and a slower, less accurate INT8 file of the same network took the star
        point.source_ranked = point.repeats_source and bool(point.source_paths & ranked_runs)
    ranked = [p for p in timed if not p.source_ranked]
    for point in ranked:
        rivals = [other for other in ranked if other is not point and other.dataset_key == point.dataset_key
                  and not (point.model_digests and other.model_digests == point.model_digests)]
        point.pareto = not any(dominates(other, point) for other in rivals)


def front(points: Sequence[P]) -> list[P]:
    """The Pareto points, fastest first (the order to draw the front in)."""
    return sorted((p for p in points if p.pareto), key=lambda p: p.p50_ms or 0.0)
