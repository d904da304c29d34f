"""The accuracy × latency plot: one point per model, marker area by file size, the Pareto front drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from cnnlab.fileio import atomic_path
from cnnlab.report.formats import human_bytes
from cnnlab.report.pareto import front
from cnnlab.report.rows import Row


def plot(rows: Sequence[Row], path: Path, title: str) -> Path | None:
    """Write a PNG of the rows that have a latency; None when there is nothing to draw."""
    timed = [r for r in rows if r.p50_ms is not None]
    if not timed:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    sizes_mb = [max((r.file_bytes or 0) / 1e6, 0.01) for r in timed]
    largest = max(sizes_mb)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    ax.scatter([r.p50_ms for r in timed], [100 * r.accuracy for r in timed],
               s=[60 + 900 * s / largest for s in sizes_mb],
               c=["tab:red" if r.pareto else "tab:blue" for r in timed], alpha=0.6, edgecolors="black", linewidths=0.6)
    for row in timed:
        size = "" if row.file_bytes is None else f"\n{human_bytes(row.file_bytes)}"
        ax.annotate(f"{row.label}{size}", (row.p50_ms, 100 * row.accuracy), textcoords="offset points",
                    xytext=(8, 6), fontsize=8)
    best = front(timed)
    if len(best) > 1:
        ax.step([r.p50_ms for r in best], [100 * r.accuracy for r in best], where="post", color="tab:red",
                linewidth=1.2, label="Pareto front")
        ax.legend(loc="lower right")
    ax.set_xlabel("latency p50 (ms, lower is better)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
