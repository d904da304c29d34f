"""The accuracy × latency plot: one point per seed group (a run alone is a group of one), marker area by file size,
error bars of ± one std over seeds in both directions, the Pareto front drawn."""

from __future__ import annotations

from typing import Any, Sequence

from cnnlab.report.pareto import front
from cnnlab.report.seeds import SeedGroup
from cnnlab.wording import counted, human_bytes


def error_bars(bars: Sequence[tuple[float, float, float | None]]) -> list[list[float]]:
    """matplotlib's asymmetric [[below…], [above…]] of ± std bars (std, value, ceiling) kept inside what the axis
    can hold: no latency below 0, no top-1 above 100 % (probe 125: 62.04 ± 45.21 % drew a bar up to 107 %)."""
    below = [min(std, value) for std, value, _ in bars]
    above = [std if ceiling is None else max(0.0, min(std, ceiling - value)) for std, value, ceiling in bars]
    return [below, above]


def figure(groups: Sequence[SeedGroup], title: str) -> Any:
    """The matplotlib figure of `plot`; None when no group has a latency."""
    timed = [g for g in groups if g.p50_ms is not None]
    if not timed:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    xs = [g.p50_ms or 0.0 for g in timed]
    ys = [100 * g.accuracy for g in timed]
    sizes_mb = [max((g.file_bytes or 0) / 1e6, 0.01) for g in timed]
    largest = max(sizes_mb)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    ax.scatter(xs, ys, s=[60 + 900 * s / largest for s in sizes_mb],
               c=["tab:red" if g.pareto else "tab:blue" for g in timed], alpha=0.6, edgecolors="black", linewidths=0.6)
    seeded = [(x, y, g) for x, y, g in zip(xs, ys, timed) if g.n > 1]
    if seeded:  # ± one std over seeds; a run alone has none
        ax.errorbar([x for x, _, _ in seeded], [y for _, y, _ in seeded],
                    xerr=error_bars([((g.latency.std if g.latency else None) or 0.0, x, None) for x, _, g in seeded]),
                    yerr=error_bars([(100 * (g.val.std or 0.0), y, 100.0) for _, y, g in seeded]),
                    fmt="none", ecolor="black", elinewidth=0.9, capsize=3, label="± std over seeds")
    for x, y, group in zip(xs, ys, timed):
        seeds = f" ({counted(group.seeds, 'seed')})" if group.n > 1 else ""
        size = "" if group.file_bytes is None else f"\n{human_bytes(group.file_bytes)}"
        ax.annotate(f"{group.label}{seeds}{size}", (x, y), textcoords="offset points", xytext=(8, 6), fontsize=8)
    best = front(timed)
    if len(best) > 1:
        ax.step([g.p50_ms for g in best], [100 * g.accuracy for g in best], where="post", color="tab:red",
                linewidth=1.2, label="Pareto front")
    if len(best) > 1 or seeded:
        ax.legend(loc="lower right")
    ax.set_xlabel("latency p50 (ms, lower is better)")
    ax.set_ylabel("validation top-1 (%)" + (", mean ± std over seeds" if seeded else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    return fig
