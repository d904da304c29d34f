"""The accuracy × latency Pareto front: models no other model beats on both at once."""

from __future__ import annotations

from typing import Sequence

from cnnlab.report.rows import Row


def dominates(a: Row, b: Row) -> bool:
    """a is at least as accurate and at least as fast as b, and strictly better in one of the two."""
    assert a.p50_ms is not None and b.p50_ms is not None
    return a.accuracy >= b.accuracy and a.p50_ms <= b.p50_ms and (a.accuracy > b.accuracy or a.p50_ms < b.p50_ms)


def mark_pareto(rows: Sequence[Row]) -> None:
    """Set row.pareto within each group of comparable rows (same dataset; rows without latency are never on it)."""
    timed = [r for r in rows if r.p50_ms is not None]
    for row in timed:
        rivals = [other for other in timed if other is not row and other.dataset_key == row.dataset_key]
        row.pareto = not any(dominates(other, row) for other in rivals)


def front(rows: Sequence[Row]) -> list[Row]:
    """The Pareto rows, fastest first (the order to draw the front in)."""
    return sorted((r for r in rows if r.pareto), key=lambda r: r.p50_ms or 0.0)
