"""What a finished search shows: the trials as rows (trials.csv), the Pareto front of validation top-1 against
measured latency (a rich table and a PNG, trials coloured by feasibility), the chosen trial (best accuracy
within the constraints, else the closest to meeting them), and how well FLOPs rank the measured latencies
(Spearman's rho over every timed trial)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rich.table import Table

from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path, write_text
from cnnlab.search.study import latency_objective

CSV_FIELDS = ("trial", "state", "feasible", "val_acc", "latency_ms", "speedup", "reference_ms", "params", "flops",
              "image_size", "epochs", "seconds", "violation", "model", "arch", "params_chosen")

Row = Mapping[str, Any]
NOISE_ROOM = 0.05  # a suggested limit leaves this much room: a new search times its candidates anew


def cost(row: Row) -> float:
    """The latency a timed row is ranked by (search/study.py: latency_objective)."""
    value = latency_objective(row)
    assert value is not None, "cost() of a trial that was never timed"
    return value


def relative(rows: Sequence[Row]) -> bool:
    """Whether these rows were timed against a reference (their latency axis is then relative)."""
    return any(r.get("speedup") for r in rows)


def write_trials_csv(path: Path, rows: Sequence[Row]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "params_chosen": " ".join(f"{k}={v}" for k, v in (row.get("params_chosen") or {}).items())})
    write_text(path, buffer.getvalue())
    return path


def trained(rows: Sequence[Row]) -> list[Row]:
    """Trials with a validation accuracy (completed or stopped early) and a latency."""
    return [r for r in rows if r.get("val_acc") is not None and r.get("latency_ms") is not None]


def pareto_front(rows: Sequence[Row], *, feasible_only: bool = True) -> list[Row]:
    """The completed trials no other completed one beats on accuracy and latency at once, fastest first."""
    pool = [r for r in trained(rows) if r["state"] == "complete" and (r["feasible"] or not feasible_only)]

    def beaten(row: Row) -> bool:
        return any(o["val_acc"] >= row["val_acc"] and cost(o) <= cost(row)
                   and (o["val_acc"] > row["val_acc"] or cost(o) < cost(row)) for o in pool)

    return sorted((r for r in pool if not beaten(r)), key=cost)


def best_feasible(rows: Sequence[Row]) -> Row | None:
    """The most accurate completed trial that meets every constraint (the faster one of a tie)."""
    pool = [r for r in trained(rows) if r["state"] == "complete" and r["feasible"]]
    return max(pool, key=lambda r: (r["val_acc"], -cost(r))) if pool else None


def closest(rows: Sequence[Row]) -> Row | None:
    """The trial that came nearest to meeting the constraints (smallest total violation, then most accurate)."""
    pool = [r for r in rows if r.get("violation") is not None]
    return min(pool, key=lambda r: (r["violation"], -(r.get("val_acc") or 0.0))) if pool else None


def latency_flops_correlation(rows: Sequence[Row]) -> float | None:
    """Spearman's rank correlation of FLOPs and measured latency (relative to the reference when there is one:
    its ranks are free of the machine's drift) over every timed trial (None: < 3 distinct)."""
    points = {(r["flops"], cost(r)) for r in rows if r.get("flops") and r.get("latency_ms") is not None}
    if len(points) < 3:
        return None
    from scipy.stats import spearmanr

    flops, latency = zip(*sorted(points))
    rho = float(spearmanr(flops, latency).statistic)
    return None if math.isnan(rho) else rho


def front_table(rows: Sequence[Row], chosen: Row | None, title: str) -> Table:
    """The Pareto front (feasible trials) as a rich table; the chosen trial marked."""
    table = Table(title=title)
    paired = relative(rows)
    columns = ("trial", "val top-1", "latency ms", *(("× ref",) if paired else ()), "params", "MFLOPs", "px")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("architecture", justify="left")
    for row in pareto_front(rows):
        mark = " *" if chosen is not None and row["trial"] == chosen["trial"] else ""
        speedup = (f"{row['speedup']:.2f}",) if paired else ()
        table.add_row(f"{row['trial']}{mark}", f"{100 * row['val_acc']:.2f}%", f"{row['latency_ms']:.3f}", *speedup,
                      f"{row['params']:,}", f"{row['flops'] / 1e6:.1f}", str(row["image_size"]),
                      str(row.get("arch") or " ".join(f"{k}={v}" for k, v in row["params_chosen"].items())))
    return table


def plot_front(rows: Sequence[Row], path: Path, title: str, reference: str | None = None, *,
               limit: tuple[float, str] | None = None, chosen: Row | None = None) -> Path | None:
    """Latency (x: ms, or candidate ÷ `reference` latency when the trials were timed against one) against
    validation top-1 (y) for every timed trial: feasible ones blue, infeasible red, stopped early hollow, the
    feasible Pareto front as a step line, the latency `limit` (x, label) as a dashed line, the `chosen` trial as
    a star. None when nothing was timed."""
    timed = [r for r in rows if r.get("latency_ms") is not None]
    if not timed:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for feasible, colour, label in ((True, "tab:blue", "feasible"), (False, "tab:red", "infeasible")):
        for state, face, suffix in (("complete", colour, ""), ("pruned", "none", ", stopped early")):
            group = [r for r in timed if bool(r["feasible"]) == feasible and r["state"] == state
                     and r.get("val_acc") is not None]
            if group:
                ax.scatter([cost(r) for r in group], [100 * r["val_acc"] for r in group], c=face,
                           edgecolors=colour, s=45, label=label + suffix)
    untrained = [r for r in timed if r.get("val_acc") is None]
    if untrained:
        ax.scatter([cost(r) for r in untrained], [0.0] * len(untrained), marker="x", c="tab:red",
                   label="infeasible, not trained (at 0)")
    best = pareto_front(rows)
    if best:
        ax.step([cost(r) for r in best], [100 * r["val_acc"] for r in best], where="post", color="tab:blue",
                linewidth=1.2)
    if chosen is not None:
        ax.scatter([cost(chosen)], [100 * chosen["val_acc"]], marker="*", s=220, c="gold", edgecolors="black",
                   zorder=3, label=f"chosen: trial {chosen['trial']}")
    if limit is not None:
        ax.axvline(limit[0], color="tab:red", linestyle="--", linewidth=1, label=limit[1])
    ax.set_xlabel(f"latency relative to {reference or 'the reference'} (candidate ÷ reference p50, paired)"
                  if relative(timed) else "measured latency, ms (p50)")
    ax.set_ylabel("validation top-1, % (proxy training)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _significant(value: float, direction: Callable[[float], float], digits: int = 3) -> float:
    """`value` to `digits` significant digits, rounded up (math.ceil) or down (math.floor): a suggested limit
    that admits the value it was read from, as printed."""
    scale = 10 ** (digits - 1 - math.floor(math.log10(abs(value)))) if value else 1
    return direction(value * scale) / scale


def no_candidate_met(rows: Sequence[Row], *, max_latency_ms: float | None, max_params: int | None,
                     min_speedup: float | None = None) -> CnnlabError:
    """No trial met the constraints: the error names the closest one and the value that would admit it."""
    near = closest(rows)
    limits = " and ".join(f"search.{k}={v}" for k, v in (("max_latency_ms", max_latency_ms),
                                                          ("max_params", max_params),
                                                          ("min_speedup", min_speedup)) if v is not None)
    if near is None or near["violation"] <= 0:  # feasible ones exist, but none completed its proxy training
        return CnnlabError("no trial completed its proxy training (every one failed or was stopped early)",
                           fix="run more trials (search.trials=...), raise search.min_rung_trials, or check run.log")
    need = []
    if max_latency_ms is not None and near["latency_ms"] > max_latency_ms:
        need.append(f"search.max_latency_ms={_significant(near['latency_ms'] * (1 + NOISE_ROOM), math.ceil):g}")
    if max_params is not None and near["params"] > max_params:
        need.append(f"search.max_params={near['params']}")
    speed = ""
    if near.get("speedup") is not None:
        speed = f", speed-up {near['speedup']:.2f}x over the reference"
        if min_speedup is not None and near["speedup"] < min_speedup:
            need.append(f"search.min_speedup={_significant(near['speedup'] * (1 - NOISE_ROOM), math.floor):g}")
    return CnnlabError(f"no candidate met {limits}: the closest was trial {near['trial']} ({near['arch'] or near['model']}, "
                       f"{near['latency_ms']:.3f} ms{speed}, {near['params']:,} params); the study and trials.csv are "
                       "kept",
                       fix="relax the constraint " + (f"({' '.join(need)}: the closest trial's figure with "
                                                      f"{NOISE_ROOM:.0%} room, as a new search times anew) "
                                                      if need else "")
                           + "or search a smaller space (e.g. lower space.params.width)")
