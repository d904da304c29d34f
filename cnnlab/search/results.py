"""What a finished search shows: the trials as rows (trials.csv), the Pareto front of validation top-1 against
measured latency (a rich table and a PNG, trials coloured by feasibility), the chosen trial (best accuracy
within the constraints, else the closest to meeting them), and how well FLOPs rank the measured latencies
(Spearman's rho over every timed trial). Ratios read as `cnnlab report` prints them (bench_report.ratio_text)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rich.table import Table

from cnnlab.deploy.paired import rounds_disagree
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path, csv_text, write_text
from cnnlab.search.latency import LATENCY_NOISE, TIMING_NOISE, noise_room
from cnnlab.search.study import latency_objective
from cnnlab.wording import counted, ratio_range_text, ratio_text

CSV_FIELDS = ("trial", "state", "feasible", "val_acc", "latency_ms", "speedup", "reference_ms", "params", "flops",
              "image_size", "epochs", "seconds", "same_as", "violation", "model", "arch", "params_chosen")

Row = Mapping[str, Any]


def speedup_text(speedup: float, reference: str | None, rounds: Sequence[float] | None = None) -> str:
    """A speed-up over the reference as `cnnlab report` says it: '1.63× faster vs lenet5', '2.83× slower vs ...';
    with its per-round ratios spread by more than paired.UNSTABLE_SPREAD, their range too ('4.40× faster vs
    mobilenet_v3_small (unstable: 3.81–5.08× faster)', probe 194), as every paired ratio is told."""
    shown = f"{ratio_text(speedup)} vs {reference or 'the reference'}"
    if rounds and rounds_disagree(rounds):
        shown += f" (unstable: {ratio_range_text(min(rounds), max(rounds))})"
    return shown


def cost(row: Row) -> float:
    """The latency a timed row is ranked by (search/study.py: latency_objective)."""
    value = latency_objective(row)
    assert value is not None, "cost() of a trial that was never timed"
    return value


def relative(rows: Sequence[Row]) -> bool:
    """Whether these rows were timed against a reference (their latency axis is then relative)."""
    return any(r.get("speedup") for r in rows)


def write_trials_csv(path: Path, rows: Sequence[Row]) -> Path:
    """trials.csv at `path` (atomically): one row per trial, columns CSV_FIELDS — val_acc a fraction, latency_ms and
    reference_ms in ms, speedup a ratio, flops per image (a multiply-add = 2), seconds of training; returns `path`."""
    lines: list[list[object]] = [list(CSV_FIELDS)]
    for row in rows:
        chosen = " ".join(f"{k}={v}" for k, v in (row.get("params_chosen") or {}).items())
        lines.append([chosen if key == "params_chosen" else row.get(key, "") for key in CSV_FIELDS])
    write_text(path, csv_text(lines))
    return path


def trained(rows: Sequence[Row]) -> list[Row]:
    """Trials with a validation accuracy (completed or stopped early) and a latency, each candidate once: a twin
    (`same_as`: a re-proposed candidate that reused an earlier trial's score) is that trial's point again."""
    return [r for r in rows if r.get("val_acc") is not None and r.get("latency_ms") is not None
            and r.get("same_as") in (None, "")]


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


def correlation_points(rows: Sequence[Row]) -> list[tuple[int, float]]:
    """(FLOPs, latency objective) of every timed trial, a candidate timed twice (a repeat, a resumed trial) once."""
    return sorted({(r["flops"], cost(r)) for r in rows if r.get("flops") and r.get("latency_ms") is not None})


def latency_flops_correlation(rows: Sequence[Row]) -> float | None:
    """Spearman's rank correlation of FLOPs and measured latency (relative to the reference when there is one:
    its ranks are free of the machine's drift) over correlation_points (None: < 3 of them)."""
    points = correlation_points(rows)
    if len(points) < 3:
        return None
    from scipy.stats import spearmanr

    flops, latency = zip(*points)
    rho = float(spearmanr(flops, latency).statistic)
    return None if math.isnan(rho) else rho


def correlation_line(rows: Sequence[Row]) -> str | None:
    """'latency vs FLOPs over 12 timed candidates: Spearman rho = 0.612' — the count is what the rho was computed
    over (trials never timed and repeats left out); None when there is no rho."""
    rho = latency_flops_correlation(rows)
    if rho is None:
        return None
    used = counted(len(correlation_points(rows)), "timed candidate")
    return f"latency vs FLOPs over {used}: Spearman rho = {rho:.3f}"


def front_table(rows: Sequence[Row], chosen: Row | None, title: str, reference: str | None = None) -> Table:
    """The Pareto front (feasible trials) as a rich table; the chosen trial marked; with a reference, each trial's
    speed-up over it as `cnnlab report` writes one."""
    table = Table(title=title)
    paired = relative(rows)
    columns = ("trial", "val top-1", "latency ms", *((f"vs {reference or 'ref'}",) if paired else ()), "params",
               "MFLOPs", "px")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("architecture", justify="left")
    for row in pareto_front(rows):
        mark = " *" if chosen is not None and row["trial"] == chosen["trial"] else ""
        speedup = (ratio_text(row["speedup"]),) if paired else ()
        table.add_row(f"{row['trial']}{mark}", f"{100 * row['val_acc']:.2f}%", f"{row['latency_ms']:.3f}", *speedup,
                      f"{row['params']:,}", f"{row['flops'] / 1e6:.1f}", str(row["image_size"]),
                      str(row.get("arch") or " ".join(f"{k}={v}" for k, v in row["params_chosen"].items())))
    return table


def empty_front_line(rows: Sequence[Row]) -> str:
    """What stands in for an empty front's table: why nothing is on it."""
    finished = sum(r["state"] in ("complete", "pruned") for r in rows)
    if not finished:
        return "no finished trial yet"
    return (f"no trial on the Pareto front: none of the {counted(finished, 'finished trial')} completed its proxy "
            "training within the constraints")


def plot_front(rows: Sequence[Row], path: Path, title: str, reference: str | None = None, *,
               limit: tuple[float, str] | None = None, chosen: Row | None = None,
               chosen_label: str = "chosen") -> Path | None:
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
                   zorder=3, label=f"{chosen_label}: trial {chosen['trial']}")
    if limit is not None:
        ax.axvline(limit[0], color="tab:red", linestyle="--", linewidth=1, label=limit[1])
    ax.set_xlabel(f"latency relative to {reference or 'the reference'} (candidate ÷ reference p50, paired)"
                  if relative(timed) else "measured latency, ms (p50)")
    ax.set_ylabel("validation top-1, % (proxy training)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # every trial failed: nothing to label (matplotlib warns)
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


def suggested_limits(near: Row, *, max_latency_ms: float | None, max_params: int | None,
                     min_speedup: float | None) -> list[tuple[str, float | None]]:
    """(search.KEY=VALUE, room) for each constraint the `near` trial broke: a timed figure with `room` (a share) for
    the timing noise — its rounds' spread, at least TIMING_NOISE (latency.noise_room): a new search times anew —
    rounded so that the figure is admitted; a counted one (parameters) as it is (room None)."""
    need: list[tuple[str, float | None]] = []
    if max_latency_ms is not None and near["latency_ms"] > max_latency_ms:
        room = noise_room(near.get("latency_ms_per_round") or (), LATENCY_NOISE)
        need.append((f"search.max_latency_ms={_significant(near['latency_ms'] * (1 + room), math.ceil):g}", room))
    if max_params is not None and near["params"] > max_params:
        need.append((f"search.max_params={near['params']}", None))
    if min_speedup is not None and near.get("speedup") is not None and near["speedup"] < min_speedup:
        room = noise_room(near.get("speedup_per_round") or ())
        # the counterpart of a latency `room` slower; above 0 for any room, as search.min_speedup must be
        need.append((f"search.min_speedup={_significant(near['speedup'] / (1 + room), math.floor):g}", room))
    return need


def _why(rooms: Sequence[tuple[str, float]]) -> str:
    """Why the suggested timed limits are not the closest trial's figures. `rooms`: (key, room) of each."""
    noise = " and ".join(dict.fromkeys(f"{room:.0%}" for _, room in rooms))
    floors = " and ".join(dict.fromkeys(f"{LATENCY_NOISE if 'latency' in key else TIMING_NOISE:.0%}"
                                        for key, _ in rooms))
    slower = any(key.startswith("search.min_speedup=") and float(key.split("=", 1)[1]) < 1 for key, _ in rooms)
    return (f": the closest trial's timed figures with {noise} room for timing noise (its rounds' spread, at least "
            f"{floors}), as a new search times anew"
            # probe 124: 0.648 offered to a user who asked for 1.5× faster, unsaid that it admits slower models
            + ("; a min_speedup below 1 admits models slower than the reference — more rounds "
               "(search.latency.rounds) narrow that room" if slower else "")) if rooms else ""


def no_candidate_met(rows: Sequence[Row], *, max_latency_ms: float | None, max_params: int | None,
                     min_speedup: float | None = None, reference: str | None = None,
                     architecture: bool = True) -> CnnlabError:
    """No trial met the constraints: the error names the closest one and the values that would admit it, or a
    smaller space (`architecture`) or model (a hyperparameter space: every trial trains the same network)."""
    near = closest(rows)
    limits = " and ".join(f"search.{k}={v}" for k, v in (("max_latency_ms", max_latency_ms),
                                                          ("max_params", max_params),
                                                          ("min_speedup", min_speedup)) if v is not None)
    if near is None or near["violation"] <= 0:  # feasible ones exist, but none completed its proxy training
        if rows and all(r["state"] == "fail" for r in rows):
            return CnnlabError(f"every trial failed ({len(rows)}); run.log gives each one's reason",
                               fix="for a loss that became NaN/inf, lower optim.lr (or the learning rates the space "
                                   "samples); otherwise fix what run.log names and search again")
        return CnnlabError("no trial completed its proxy training (every one failed or was stopped early)",
                           fix="run more trials (search.trials=...), raise search.min_rung_trials, or check run.log")
    need = suggested_limits(near, max_latency_ms=max_latency_ms, max_params=max_params, min_speedup=min_speedup)
    speed = "" if near.get("speedup") is None else f", {speedup_text(near['speedup'], reference)}"
    relaxed = " ".join(text for text, _ in need) + _why([(text, room) for text, room in need if room is not None])
    return CnnlabError(f"no candidate met {limits}: the closest was trial {near['trial']} "
                       f"({near['arch'] or near['model']}, {near['latency_ms']:.3f} ms{speed}, {near['params']:,} "
                       "params); the study and trials.csv are kept",
                       fix="relax the constraint " + (f"({relaxed}) " if need else "")
                           # probe 201: at the lowest width the head set the floor, which width does not scale
                           + ("or search a smaller space (e.g. lower space.params.width, or a base network with a "
                              "narrower head: space.base=…_headN, which the width multiplier leaves as it is)"
                              if architecture else
                              "or pick a smaller model= (each trial of a hyperparameter space trains the same network; "
                              "`cnnlab list models`)"))
