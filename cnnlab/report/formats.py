"""The report as a rich table (terminal), Markdown, CSV and JSON — the same columns everywhere.

The tables show one row per seed group (report/seeds.py): mean ± std over its seeds, with the runs of a group of
several listed under it ("└ seed 0 ..."); a run alone reads as before. Under each dataset's table, the differences
the report highlights (KD gain, pruning and INT8 top-1 change) with their 95 % CI paired over seeds."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

from rich.table import Table
from rich.text import Text

from cnnlab.wording import counted, human_bytes, listed, ratio_text, visible
from cnnlab.deploy.names import TORCH_BACKENDS  # names only: the report loads no runtime
from cnnlab.report.paired import REFERENCE, SAME_NETWORK, UNPAIRED, UNSTABLE
from cnnlab.report.rows import MISSING, Comparison, Row, bench_command
from cnnlab.report.seeds import SeedGroup
from cnnlab.report.stats import Change, Spread, ratio_mean

COLUMNS = ("run", "command", "model", "dataset", "val top-1", "params", "FLOPs", "size", "p50 ms", "speed-up",
           "Pareto")
TEST_COLUMN = "test top-1"   # shown only where some model of the table was scored with `cnnlab evaluate split=test`
SEEDS_COLUMN = "seeds"      # n seeds: shown only where some group has several runs (or missing seeds)
TEXT_COLUMNS = ("run", SEEDS_COLUMN, "command", "model", "dataset")  # left-aligned; the numbers are right-aligned
MEMBER = "└ "               # a seed run listed under its group
DIFFERENCE_COLUMNS = ("run", "model", "difference", "top-1 on", "n seeds", "mean ± std", "95 % CI", "verdict")


MARKDOWN_START = "# cnnlab report: "  # how report.md begins: another file of that name is the user's


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def human_flops(count: int) -> str:
    """FLOPs per image (a multiply-add = 2), in the unit that keeps 3 significant digits ("1.5 k", not "0.00 M")."""
    return f"{count / 1e9:.2f} G" if count >= 1e8 else f"{count / 1e6:.2f} M" if count >= 1e5 else \
        f"{count / 1e3:.1f} k"


def human_params(count: int) -> str:
    """A parameter count in the unit that keeps it readable: "750", "16.9 k", "11.18 M" (a pruned LeNet-5 of 750
    parameters read "0.00 M": probe 73)."""
    return f"{count / 1e6:.2f} M" if count >= 100_000 else f"{count / 1e3:.1f} k" if count >= 1_000 else str(count)


def speedup_cell(row: Row) -> str:
    """"2.50× faster", "1.03× slower", "1.02× faster (same network: noise)", "3.09× faster vs mobilenet_v2" (a search
    against its reference), "— (unstable)" or "—"."""
    speed = row.speedup
    if speed is None or speed.shown is None:
        return "— (unstable)" if speed is not None and speed.status == UNSTABLE else "—"
    return ratio_text(speed.shown) + _qualifier(speed.status, speed.versus)


def _qualifier(status: str, versus: str | None) -> str:
    if status == SAME_NETWORK:
        return " (same network: noise)"
    return f" vs {versus}" if status == REFERENCE else ""


def speedup_notes(rows: Sequence[Row]) -> list[tuple[Row, str]]:
    """Why a row shows no speed-up (unpaired, unstable)."""
    return [(row, row.speedup.note) for row in rows
            if row.speedup is not None and row.speedup.shown is None and row.speedup.note]


def test_notes(rows: Sequence[Row]) -> list[tuple[Row, str]]:
    """Why a row evaluated on the test split shows no test top-1 (its evaluations scored other data)."""
    return [(row, row.test_note) for row in rows if row.test_accuracy is None and row.test_note]


def columns(rows: Sequence[Row], groups: Sequence[SeedGroup] = ()) -> tuple[str, ...]:
    """The table's columns: COLUMNS, with the test accuracy beside the validation one when any row has it, and
    the number of seeds after the run when some group has several runs or misses some."""
    shown = COLUMNS
    if any(row.test_accuracy is not None for row in rows):
        at = shown.index("val top-1") + 1
        shown = (*shown[:at], TEST_COLUMN, *shown[at:])
    if any(group.n > 1 or group.missing for group in groups):
        shown = (shown[0], SEEDS_COLUMN, *shown[1:])
    return shown


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _test_runtime(row: Row) -> str:
    """" (openvino)" after a test score not made on onnxruntime; " (onnxruntime)" after one that was, in a row whose
    model column names another runtime for its val score (probe 84: an OpenVINO val and an onnxruntime test score
    in one row read `(int8, openvino)`)."""
    if row.test_accuracy is None:
        return ""
    runtime = row.test_scored_on or ("onnxruntime" if row.scored_on else None)
    return f" ({runtime})" if runtime else ""


EARLIER_PLAN = "earlier plan"


def _stage(row: Row) -> str:
    """" (stage pruned)" after a pipeline stage's run, " (stage pruned, earlier plan)" after one whose settings the
    plan has no more: an edited recipe's runs stay in its workspace beside the new ones, and read alike."""
    if row.stage is None:
        return ""
    return f" (stage {row.stage}{', ' + EARLIER_PLAN if row.earlier_plan else ''})"


def _group_stage(group: SeedGroup) -> str:
    """_stage of a seed group's line: its stage where its runs share one (probe 178: a group of two seeds lost it),
    and how many of them are of an earlier plan where not all are."""
    stages = {row.stage for row in group.rows}
    if len(stages) != 1 or None in stages:
        return ""
    earlier = sum(row.earlier_plan for row in group.rows)
    mark = "" if not earlier else f", {EARLIER_PLAN}" if earlier == group.n else f", {earlier} of {group.n} " \
        f"{EARLIER_PLAN}"
    return f" (stage {stages.pop()}{mark})"


def plan_note(rows: Sequence[Row]) -> str | None:
    """What the rows marked "earlier plan" are, when there are any."""
    earlier = [row for row in rows if row.earlier_plan]
    if not earlier:
        return None
    removed = sorted({str(row.stage) for row in earlier if row.stage_removed})
    why = [*(["edited since they ran"] if any(not row.stage_removed for row in earlier) else []),
           *([f"{listed(removed)} removed from the plan since"] if removed else [])]
    return (f"{counted(len(earlier), 'row')} marked \"{EARLIER_PLAN}\": runs of pipeline stages with settings this "
            f"pipeline's plan no longer has ({'; '.join(why)}), kept for comparison; each was timed in the bench "
            "session of its own plan")


def _values(row: Row, base: Path) -> dict[str, str]:
    """The row's cell of every column."""
    return {
        "run": _relative(row.run.path, base) + _stage(row) + (f" ({' '.join(row.swept)})" if row.swept else ""),
        "command": row.command, "model": row.display_model,
        "dataset": row.dataset or MISSING, "val top-1": _percent(row.accuracy),
        TEST_COLUMN: _percent(row.test_accuracy) + _test_runtime(row),
        "params": "—" if row.params is None else human_params(row.params),
        "FLOPs": "—" if row.flops is None else human_flops(row.flops),
        "size": ("—" if row.file_bytes is None else f"{human_bytes(row.file_bytes)} {row.file_kind}")
                + (f" ({row.file_recorded})" if row.file_recorded else ""),
        "p50 ms": "—" if row.p50_ms is None else f"{row.p50_ms:.3f}",
        "speed-up": speedup_cell(row), "Pareto": pareto_cell(row),
    }


SAME_AS_SOURCE = "= source"


def pareto_cell(row: Row | SeedGroup) -> str:
    """★ on the front; "= source" for a quantize run that kept FP32 — its source's network timed again, not ranked
    apart from it (a dominated source starred and its faster FP32 copy blank read as a wrong front: probe 124)."""
    if row.pareto:
        return "★"
    return SAME_AS_SOURCE if row.source_ranked else ""


def cells(row: Row, base: Path, shown: Sequence[str] = COLUMNS) -> list[str]:
    """The row's cells for the `shown` columns (see `columns`)."""
    values = _values(row, base)
    return [values.get(column, "") for column in shown]


def spread_cell(spread: Spread | None, of: int, *, percent: bool = True) -> str:
    """mean ± std over seeds ("92.00 ± 2.00%", latency "1.234 ± 0.050"); "(2 of 3)" when not every run has it."""
    if spread is None:
        return "—"
    scale, digits, unit = (100, 2, "%") if percent else (1, 3, "")
    text = f"{scale * spread.mean:.{digits}f}"
    if spread.std is not None:
        text += f" ± {scale * spread.std:.{digits}f}"
    return text + unit + (f" ({spread.n} of {of})" if spread.n < of else "")


def _group_swept(group: SeedGroup) -> str:
    """" (optim.lr=0.1)": the swept overrides every run of a seed group shares, what tells two groups of one sweep
    apart (probe 229: an lr × seed sweep's groups read `./{2,3}` and `./{0,1}`, alike, the learning rate only in
    report.csv's swept column). "" where they share none."""
    shared = set.intersection(*(set(row.swept) for row in group.rows))
    kept = [override for override in group.rows[0].swept if override in shared]
    return f" ({' '.join(kept)})" if kept else ""


def _group_run(group: SeedGroup, base: Path) -> str:
    """The group's run folders: `sweep/{0,1,2}` when they share a folder, else the first and how many more."""
    paths = [_relative(row.run.path, base) for row in group.rows]
    parents = {str(Path(p).parent) for p in paths}
    if len(parents) == 1:
        return f"{parents.pop()}/{{{','.join(Path(p).name for p in paths)}}}"
    return f"{paths[0]} (+{len(paths) - 1})"


def seeds_cell(group: SeedGroup) -> str:
    """n seeds: "3", "2 of 3" (one did not complete), "4 runs, 3 seeds" (a seed run twice), "3 runs, 3 seeds, 1 model"
    (seeds that wrote the very same file: one replicate)."""
    if group.seeds < group.distinct_seeds:
        return f"{group.n} runs, {group.distinct_seeds} seeds, {counted(group.seeds, 'model')}"
    text = str(group.seeds) if not group.missing else f"{group.seeds} of {group.seeds + len(group.missing)}"
    return text if group.n == group.seeds else f"{group.n} runs, {text} seed{'' if text == '1' else 's'}"


def _shown_speedups(group: SeedGroup) -> list[float | None]:
    """Each seed's shown speed-up (the geometric mean of that seed's runs': a seed run twice counts once), in the
    order of group.per_seed; None for a seed none of whose runs has one."""
    return group.per_seed([row.speedup.shown if row.speedup is not None else None for row in group.rows],
                          mean=ratio_mean)


def group_speedup(group: SeedGroup) -> float | None:
    """The group's speed-up: the geometric mean over its seeds of their shown ratios (ratios: 2× and 0.5× make 1×);
    None when no run has one shown."""
    shown = [ratio for ratio in _shown_speedups(group) if ratio is not None]
    return ratio_mean(shown) if shown else None


def group_speedup_cell(group: SeedGroup) -> str:
    """`group_speedup`, what kind of ratio it is and how many runs it is over: "2.00× faster (geometric mean of
    3 seeds)", "1.50× faster (geometric mean of 2 of 3 seeds; 1 unpaired)", "3.09× faster vs mobilenet_v2 (1 of
    2 seeds; 1 with no ratio recorded)"."""
    if group.n == 1:
        return speedup_cell(group.first)
    speeds = [row.speedup for row in group.rows if row.speedup is not None]
    shown = [s for s in speeds if s.shown is not None]
    mean = group_speedup(group)
    if mean is None:
        return "— (unstable)" if any(s.status == UNSTABLE for s in speeds) else "—"
    text = ratio_text(mean)
    if len({(s.status, s.versus) for s in shown}) == 1:  # one kind of ratio: say which
        text += _qualifier(shown[0].status, shown[0].versus)
    return f"{text} ({_coverage(group)})"


def _coverage(group: SeedGroup) -> str:
    """Over how many of the group's seeds a speed-up is, and why the others have none ("1 unstable": the reason of
    that seed's newest run)."""
    seeds = _shown_speedups(group)
    shown, total = sum(ratio is not None for ratio in seeds), group.seeds
    if shown == total:
        return f"geometric mean of {total} seeds" if total > 1 else f"1 seed, {group.n} runs"
    head = f"geometric mean of {shown} of {total} seeds" if shown > 1 else f"1 of {total} seeds"
    newest = dict(zip(group.replicates, group.rows))  # members: by seed, then by start
    why = Counter(_why_no_speedup(newest[lineage]) for lineage, ratio in zip(newest, seeds) if ratio is None)
    return head + "; " + ", ".join(f"{count} {reason}" for reason, count in why.items())


def _why_no_speedup(row: Row) -> str:
    """A run's missing speed-up in a few words (the notes under the table say more)."""
    if row.speedup is None:  # a search without a recorded ratio, or a model whose source is not in the report
        return "with no ratio recorded" if row.command == "search" else "with its source outside the report"
    return {UNSTABLE: "unstable", UNPAIRED: "unpaired"}.get(row.speedup.status, row.speedup.status)


def _mean_count(values: Sequence[int | float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def group_cells(group: SeedGroup, base: Path, shown: Sequence[str]) -> list[str]:
    """A seed group's cells: a run alone reads like its row; several runs read mean ± std (n seeds)."""
    values = _values(group.first, base)
    values.update({SEEDS_COLUMN: seeds_cell(group), "Pareto": pareto_cell(group)})
    if group.n > 1:
        params, flops = _mean_count([r.params for r in group.rows]), _mean_count([r.flops for r in group.rows])
        values.update({
            "run": _group_run(group, base) + _group_swept(group) + _group_stage(group),
            "val top-1": spread_cell(group.val, group.seeds),
            TEST_COLUMN: spread_cell(group.test, group.seeds),
            "params": "—" if params is None else human_params(params),
            "FLOPs": "—" if flops is None else human_flops(round(flops)),
            "size": group_size_cell(group),
            "p50 ms": _group_latency_cell(group), "speed-up": group_speedup_cell(group)})
    return [values.get(column, "") for column in shown]


def _group_latency_cell(group: SeedGroup) -> str:
    """The group's p50 over seeds, and how many of its runs were timed where a seed's mean stands on fewer runs than
    it has (probe 180: "2 runs, 1 seed" read `0.131`, one run's, where the size cell beside it said "1 of 2 runs")."""
    cell = spread_cell(group.latency, group.seeds, percent=False)
    timed = sum(row.p50_ms is not None for row in group.rows)
    latency = group.latency
    if latency is not None and latency.n == group.seeds and timed < len(group.rows):
        cell += f" ({timed} of {len(group.rows)} runs)"
    return cell


def group_size_cell(group: SeedGroup) -> str:
    """'0.25 MB pt', or '0.28 MB onnx (1 of 3 runs)' when the others' files are of another kind
    (SeedGroup.file_size)."""
    size = group.file_size
    if size is None:
        return "—"
    bytes_, kind, count = size
    sized = sum(row.file_bytes is not None for row in group.rows)
    return f"{human_bytes(bytes_)} {kind}" + (f" ({count} of {sized} runs)" if count < sized else "")


def member_cells(group: SeedGroup, base: Path, shown: Sequence[str]) -> Iterator[list[str]]:
    """The runs of a group of several, one line each, listed under the group's line."""
    if group.n < 2:
        return
    shared = len({row.run.path.parent for row in group.rows}) == 1  # the group's line names the folder
    for lineage, row in group.members:
        values = _values(row, base)
        values.update({"run": MEMBER + (row.run.path.name + _stage(row) if shared else values["run"]),
                       SEEDS_COLUMN: group.seed_label(lineage), "Pareto": ""})
        if SEEDS_COLUMN not in shown:
            values["run"] += f" ({group.seed_label(lineage)})"
        yield [values.get(column, "") for column in shown]


def points(value: float, *, sign: bool = True) -> str:
    """A top-1 difference (a fraction) in percentage points."""
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def difference_cells(group: SeedGroup, change: Change, base: Path) -> list[str]:
    """One highlighted difference: mean ± std over seeds in points, its 95 % CI and whether it is significant."""
    interval, spread = change.interval, change.spread
    text = points(spread.mean) + ("" if spread.std is None else f" ± {points(spread.std, sign=False)}")
    if interval is None:
        ci = "1 seed: no interval"
    else:
        ci = f"[{points(interval[0])}, {points(interval[1])}]"
    if change.image_interval is not None:  # the test images' own uncertainty, seeds or not
        low, high = change.image_interval
        ci += f"; [{points(low)}, {points(high)}] over {change.images} images"
    verdict = "" if change.significant is None else "significant" if change.significant else "not significant"
    if change.caveat:
        verdict = f"{verdict} ({change.caveat})" if verdict else change.caveat
    run = _group_run(group, base) + _group_swept(group) + _group_stage(group) if group.n > 1 else \
        _relative(group.first.run.path, base) + _stage(group.first)
    first = group.first  # the runtime that scored this split's top-1, not always the val top-1's (probe 78)
    model = first.model_scored_on(first.scored_on if change.split == "val" else first.test_scored_on)
    return [run, model, f"{change.what} (vs {change.against})", change.split, str(spread.n),
            f"{text} points", ci, verdict]


def differences(groups: Sequence[SeedGroup], base: Path) -> list[list[str]]:
    return [difference_cells(group, change, base) for group in groups for change in group.changes]


def group_notes(groups: Sequence[SeedGroup], base: Path) -> list[str]:
    """Seed groups that are partial: the seeds that did not complete, and where they are."""
    return [f"{group.label} ({_group_run(group, base) if group.n > 1 else _relative(group.first.run.path, base)}): "
            f"{group.seed_label(lineage)} {status} ({_relative(path, base)})"
            for group in groups for lineage, status, path in group.missing]


def gone_source_notes(groups: Sequence[SeedGroup], base: Path) -> list[str]:
    """Runs whose source run is gone or unreadable: they stand apart from the runs of their source's other seeds."""
    return [f"{_relative(path, base)}: {problem}, so which seed group it belongs to cannot be told (the source's "
            "settings decide it) and its test top-1 is not compared with its source's: it is shown apart"
            for group in groups for path, problem in group.sources_gone]


def row_fields(row: Row, base: Path) -> dict[str, Any]:
    """One machine-readable row (report.json / report.csv)."""
    # `source`: the run it was derived from, else the model file outside any run (`cnnlab quantize source=FILE.onnx`)
    source = row.source or row.source_file
    return {
        "run": _relative(row.run.path, base), "swept": list(row.swept), "stage": row.stage,
        "earlier_plan": row.earlier_plan,
        "command": row.command, "model": row.model, "dataset": row.dataset, "dataset_folder": row.dataset_key.folder,
        "precision": row.precision, "arch": row.arch,
        "image_size": row.dataset_key.image_size, "accuracy": row.accuracy, "test_accuracy": row.test_accuracy,
        # the runtime that scored each, where not onnxruntime (probe 75: report.md said openvino, the csv/json not)
        "accuracy_runtime": row.scored_on, "test_accuracy_runtime": row.test_scored_on,
        "evaluate_run": None if row.evaluate_run is None else _relative(row.evaluate_run, base),
        "test_note": row.test_note,
        "params": row.params, "flops": row.flops, "file_bytes": row.file_bytes, "file_kind": row.file_kind,
        "p50_ms": row.p50_ms, "latency": None if row.latency is None else row.latency.to_dict(),
        "bench_run": None if row.bench_run is None else
        _relative(row.bench_run, base), "source": None if source is None else _relative(source, base),
        "speedup_vs_source": None if row.speedup is None else row.speedup.vs_source,
        "speedup_vs_reference": row.speedup.shown if row.speedup and row.speedup.status == REFERENCE else None,
        "reference": None if row.speedup is None else row.speedup.versus,
        "speedup": None if row.speedup is None else {
            "status": row.speedup.status, "ratio": row.speedup.ratio, "per_round": list(row.speedup.per_round),
            "bench_run": None if row.speedup.bench_run is None else _relative(row.speedup.bench_run, base),
            "note": row.speedup.note, "versus": row.speedup.versus},
        "pareto": row.pareto, "notes": row.notes, "file_note": row.file_note,
    }


def spread_fields(spread: Spread | None) -> dict[str, Any] | None:
    return None if spread is None else {"mean": spread.mean, "std": spread.std, "n": spread.n,
                                        "values": list(spread.values)}


def group_fields(group: SeedGroup, base: Path) -> dict[str, Any]:
    """One machine-readable seed group (report.json `groups`): mean ± std over its seeds (a seed run twice: the mean
    of its runs, once) and its differences."""
    first = group.first
    return {
        "runs": [_relative(row.run.path, base) for row in group.rows],
        "seeds": [group.seed_value(lineage) for lineage in group.lineages], "n_runs": group.n, "n_seeds": group.seeds,
        # the seed of each entry of a spread's `values` (one per seed: a seed run twice is its runs' mean)
        "value_seeds": [group.seed_value(lineage) for lineage in dict.fromkeys(group.replicates)],
        "command": first.command, "model": first.model, "precision": first.precision, "arch": first.arch,
        "dataset": first.dataset, "dataset_folder": first.dataset_key.folder,
        "image_size": first.dataset_key.image_size,
        "val_top1": spread_fields(group.val), "test_top1": spread_fields(group.test),
        "p50_ms": spread_fields(group.latency), "pareto": group.pareto,
        "missing": [{"run": _relative(path, base), "seed": group.seed_value(lineage), "status": status}
                    for lineage, status, path in group.missing],
        "changes": [change.to_dict() for change in group.changes],
    }


def legend(comparison: Comparison) -> str:
    """What the columns mean: where the latencies come from, the Pareto mark, the speed-up, the accuracies."""
    return (f"val top-1: accuracy on the validation split, as the run recorded it (test top-1: on the test split, "
            f"from the newest `cnnlab evaluate split=test` of the model on its own data); runs that differ only in "
            f"seed are one row, mean ± std over the n seeds (sample std), with each run listed under it; latency: "
            f"p50 of "
            f"{comparison.describe()}{' (from bench runs)' if comparison.timed else ''}; ★ = Pareto-optimal in accuracy × latency "
            f"among models of the same dataset (seed groups by their means; {SAME_AS_SOURCE}: a quantize run that "
            f"kept FP32, its source's network timed again, not ranked apart from it); speed-up is against the model "
            f"it was derived from, both timed interleaved in one bench session (paired), or, for a search, against its "
            f"search.reference as the search timed them interleaved (\"vs NAME\"), a seed group's the geometric mean "
            f"of its seeds' ratios; — when there is no such timing or it was unstable")


DIFFERENCES_LEGEND = ("differences in top-1 percentage points, one per seed against the run's own reference; "
                      "95 % CI: Student t over the per-seed differences (n - 1 dof); on test top-1 also a paired "
                      "bootstrap over the test images both models scored (evaluate's outcomes.csv), the interval "
                      "a single seed has; not significant when the interval (seeds, else images) contains zero")


def _table_lines(groups: Sequence[SeedGroup], base: Path) -> tuple[tuple[str, ...], list[tuple[list[str], str | None]]]:
    """(columns, [(cells, terminal style)]) of one dataset's table: each group (bold on the front), then its runs."""
    shown = columns([row for group in groups for row in group.rows], groups)
    lines: list[tuple[list[str], str | None]] = []
    for group in groups:
        lines.append((group_cells(group, base, shown), "bold" if group.pareto else None))
        lines += [(cells, "dim") for cells in member_cells(group, base, shown)]
    return shown, lines


def rich_table(groups: Sequence[SeedGroup], base: Path, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    shown, lines = _table_lines(groups, base)
    for column in shown:
        table.add_column(column, justify="left" if column in TEXT_COLUMNS else "right")
    for line, style in lines:
        # cells hold run.json text: never read as rich markup, nor control characters sent to the terminal
        table.add_row(*(Text(visible(cell, lines=True)) for cell in line), style=style)
    return table


def rich_differences(groups: Sequence[SeedGroup], base: Path, title: str) -> Table | None:
    found = differences(groups, base)
    if not found:
        return None
    table = Table(title=f"{title}: differences (95 % CI paired over seeds)", title_justify="left")
    for column in DIFFERENCE_COLUMNS:
        table.add_column(column, justify="left" if column in ("run", "model", "difference", "verdict") else "right")
    for line in found:
        table.add_row(*(Text(visible(cell, lines=True)) for cell in line))
    return table


def _markdown_table(shown: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
            *("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines)]


def sessions_note(tables: dict[str, list[SeedGroup]], comparison: Comparison) -> str | None:
    """When the p50 figures of one dataset's table (`tables`: the report's tables, by title) come from more than one
    bench session: how far such figures drift apart, that the table's Pareto front compares them, and the command
    that times its rows side by side (probe 58: one LeNet-5 read 0.059, 0.074 and 0.076 ms in three sessions, and a
    pruned one was starred by the luckier session's figure) in the setting `comparison` compares (rows.bench_command:
    at bench's defaults it timed every thread and the note came back, figures and all). Rows of two tables are never
    compared (probe 154: the note counted them). A paired session times ONNX files only: under a PyTorch backend the
    note says so (followed, its command came back word for word)."""
    backend = comparison.backend
    timed, most = [], 0
    for members in tables.values():
        rows = [row for group in members for row in group.rows
                if row.latency is not None and row.bench_run is not None]
        if len({row.bench_run for row in rows}) > 1:
            timed += rows
            most = max(most, len({row.bench_run for row in rows}))
    if not timed:
        return None
    # a table's count: rows of two tables are never compared (probe 156: "3 sessions" where each table had 2)
    sessions = f"{most} bench sessions" + (" within one dataset table" if len(tables) > 1 else "")
    drift = (f"p50 comes from {sessions}: one network timed in separate sessions read up to 35 % apart on a 2-core "
             "machine (docs/benchmarks.md), and the Pareto front compares these figures")
    # a session times each model once per round: past a dozen, the rows on the Pareto front are the ones it decides
    # (probe 111: 320 runs made an 18,177-character command)
    chosen, what = timed, "every row"
    if len(timed) > SESSION_ROWS:
        front = [row for row in timed if row.pareto][:SESSION_ROWS]
        others = sorted((r for r in timed if r not in front), key=lambda r: -r.accuracy)[:SESSION_ROWS - len(front)]
        chosen = front + others
        what = f"the {counted(len(front), 'row')} on the Pareto front and the {len(others)} next most accurate"
        if len({row.bench_run for row in chosen}) == 1:  # probe 114: followed, the note came back unchanged
            return (f"p50 comes from {sessions}: {what} were timed in one; the other "
                    f"{len(timed) - len(chosen)} rows' figures come from other sessions, which read up to 35 % apart "
                    "on a 2-core machine (docs/benchmarks.md)")
    command = bench_command([r.run.path for r in chosen], comparison)
    if backend in TORCH_BACKENDS:
        return (f"{drift}; a side-by-side session times ONNX files only, so --backend {backend} has no such figure: "
                f"read the report with --backend onnxruntime after timing {what} in one session: {command}")
    return f"{drift}; to time {what} side by side, in one session: {command}"


SESSION_ROWS = 12  # the most rows sessions_note names for one paired session
FEW_RUNS = 10  # a p50 of fewer timed runs is a sample, not a median (bench's default is 30 runs and 1 s)


def few_runs_note(rows: Sequence[Row], comparison: Comparison) -> str | None:
    """When a row's p50 comes from fewer than FEW_RUNS timed runs (bench.min_iters=1 and min_seconds=0): which, and
    how to time them again in the setting `comparison` compares (probe 134: a 1-run 12 ms "p50" stood for a model a
    591-run bench put at 0.83 ms)."""
    few = [row for row in rows if row.latency is not None and row.latency.iterations is not None
           and row.latency.iterations < FEW_RUNS]
    if not few:
        return None
    # a row timed in a paired session is read from it until a newer paired session times it (probe 137: followed,
    # `source=RUN` alone left the note standing): one such row is timed beside another, its source where shown
    timed = few[:SESSION_ROWS]
    if len(timed) == 1 and timed[0].latency.subject is not None:  # type: ignore[union-attr]
        source = timed[0].source.resolve() if timed[0].source is not None else None
        partner = next((r for r in rows if r.run.path.resolve() == source), None) or \
            next((r for r in rows if r is not timed[0]), None)
        timed = timed + ([partner] if partner is not None else [])
    runs = ", ".join(str(row.latency.iterations) for row in few)  # type: ignore[union-attr]
    return (f"p50 of fewer than {FEW_RUNS} timed runs for {counted(len(few), 'row')} ({runs}): one stall of the "
            "machine decides such a figure; time them again with bench.min_iters and bench.min_seconds at their "
            "defaults (30 runs, 1 s): " + bench_command([r.run.path for r in timed], comparison))
def busy_note(rows: Sequence[Row], comparison: Comparison) -> str | None:
    """When a row's p50 comes from a bench run that warned other processes kept cores busy while it timed: which
    rows, the warning, and the command that times them again (probe 213: the bench said so, the report did not)."""
    busy = [row for row in rows if row.latency is not None and row.bench_busy is not None]
    if not busy:
        return None
    warning = busy[0].bench_busy.split(":", 1)[0]  # type: ignore[union-attr]
    return (f"p50 of {counted(len(busy), 'row')} comes from bench runs that warned \"{warning}\": latencies read "
            "high and speed-ups favour the faster model; time them again on a quiet machine: "
            + bench_command([r.run.path for r in busy[:SESSION_ROWS]], comparison))


def timing_notes(groups: dict[str, list[SeedGroup]], comparison: Comparison) -> list[str]:
    """The notes under the tables on where their p50 figures come from (terminal and report.md alike)."""
    rows = [row for members in groups.values() for group in members for row in group.rows]
    notes = (sessions_note(groups, comparison), few_runs_note(rows, comparison), busy_note(rows, comparison),
             plan_note(rows))
    return [note for note in notes if note is not None]


PLOT_ALT = "accuracy vs latency"  # report.md's text for each plot it shows (report._plots_of finds them by it)


def markdown(groups: dict[str, list[SeedGroup]], left_out: Sequence[tuple[Path, str]], base: Path,
             comparison: Comparison, plots: dict[str, str]) -> str:
    lines = [f"{MARKDOWN_START}{base}", "", legend(comparison) + ".", ""]
    for note in timing_notes(groups, comparison):  # the command it ends with, as code (else a plain stop)
        lines += [note.replace("cnnlab bench ", "`cnnlab bench ") + "`." if "cnnlab bench " in note else note + ".", ""]
    for title, members in groups.items():
        shown, table = _table_lines(members, base)
        lines += [f"## {title}", "", *_markdown_table(shown, [line for line, _ in table])]
        if title in plots:
            lines += ["", f"![{PLOT_ALT}]({plots[title]})"]
        found = differences(members, base)
        if found:
            lines += ["", "### Differences (95 % CI paired over seeds)", "", DIFFERENCES_LEGEND + ".", "",
                      *_markdown_table(DIFFERENCE_COLUMNS, found)]
        lines.append("")
    every = [group for members in groups.values() for group in members]
    rows = [row for group in every for row in group.rows]
    notes = [(row, note) for row in rows for note in row.notes]
    unpaired = speedup_notes(rows)
    untested = test_notes(rows)
    partial = group_notes(every, base)
    if partial:
        lines += ["## Partial seed groups", "", *(f"- {note}" for note in partial), ""]
    if (apart := gone_source_notes(every, base)):
        lines += ["## Runs whose source is gone", "", *(f"- {note}" for note in apart), ""]
    deleted = [row for row in rows if row.file_note]
    if left_out:
        lines += ["## Left out of the comparison", ""]
        lines += [f"- `{_relative(path, base)}`: {reason}" for path, reason in left_out]
        lines.append("")
    # rows in the table with one figure held back or taken from the record (probe 162: listed under "Left out of the
    # comparison", where they were not)
    if notes or unpaired or untested or deleted:
        lines += ["## Figures held back or as recorded", ""]
        lines += [f"- `{_relative(row.run.path, base)}` (model file): {row.file_note}" for row in deleted]
        lines += [f"- `{_relative(row.run.path, base)}` (no test top-1): {note}" for row, note in untested]
        lines += [f"- `{_relative(row.run.path, base)}` (no latency): {note}" for row, note in notes]
        lines += [f"- `{_relative(row.run.path, base)}` (no speed-up): {note}" for row, note in unpaired]
        lines.append("")
    return "\n".join(lines)


def _membership(groups: Sequence[SeedGroup]) -> dict[Path, tuple[int, int | str | None]]:
    """run folder → (index of its group in report.json `groups`, its seed: SeedGroup.seed_value)."""
    return {row.run.path: (index, group.seed_value(lineage))
            for index, group in enumerate(groups) for lineage, row in group.members}


def csv_text(rows: Sequence[Row], base: Path, groups: Sequence[SeedGroup] = ()) -> str:
    """One line per run; `group` (its index in report.json's groups) and `seed` (an integer, empty when not
    recorded; docs/report.md) tie it to its seed group."""
    buffer = io.StringIO()
    fields = [k for k in row_fields(rows[0], base) if k not in ("latency", "notes", "speedup")] if rows else ["run"]
    writer = csv.DictWriter(buffer, fieldnames=[*fields, "group", "seed"], extrasaction="ignore")
    writer.writeheader()
    membership = _membership(groups)
    for row in rows:
        index, seed = membership.get(row.run.path, (None, None))
        fields = row_fields(row, base)
        writer.writerow({**fields, "swept": " ".join(fields["swept"]), "group": index, "seed": seed})
    return buffer.getvalue()


def json_text(rows: Sequence[Row], left_out: Sequence[tuple[Path, str]], base: Path, comparison: Comparison,
              groups: Sequence[SeedGroup] = ()) -> str:
    return json.dumps({"comparison": comparison.setting(), "rows": [row_fields(r, base) for r in rows],
                       "groups": [group_fields(g, base) for g in groups],
                       "left_out": [{"run": _relative(p, base), "reason": reason} for p, reason in left_out]},
                      indent=2, default=str) + "\n"
