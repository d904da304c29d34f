"""The report as a rich table (terminal), Markdown, CSV and JSON — the same columns everywhere."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from cnnlab.deploy.bench_report import ratio_text
from cnnlab.report.paired import SAME_NETWORK, UNSTABLE
from cnnlab.report.rows import Comparison, Row

COLUMNS = ("run", "command", "model", "dataset", "val top-1", "params", "FLOPs", "size", "p50 ms", "speed-up",
           "Pareto")
TEST_COLUMN = "test top-1"   # shown only where some model of the table was scored with `cnnlab evaluate split=test`
TEXT_COLUMNS = ("run", "command", "model", "dataset")  # left-aligned; the numbers are right-aligned


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def human_flops(count: int) -> str:
    """FLOPs per image (a multiply-add = 2), in the unit that keeps 3 significant digits."""
    return f"{count / 1e9:.2f} G" if count >= 1e8 else f"{count / 1e6:.2f} M"


def human_bytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def speedup_cell(row: Row) -> str:
    """"2.50× faster", "1.03× slower", "1.02× faster (same network: noise)", "— (unstable)" or "—"."""
    speed = row.speedup
    if speed is None or speed.shown is None:
        return "— (unstable)" if speed is not None and speed.status == UNSTABLE else "—"
    return ratio_text(speed.shown) + (" (same network: noise)" if speed.status == SAME_NETWORK else "")


def speedup_notes(rows: Sequence[Row]) -> list[tuple[Row, str]]:
    """Why a row shows no speed-up (unpaired, unstable)."""
    return [(row, row.speedup.note) for row in rows
            if row.speedup is not None and row.speedup.shown is None and row.speedup.note]


def columns(rows: Sequence[Row]) -> tuple[str, ...]:
    """The table's columns: COLUMNS, with the test accuracy beside the validation one when any row has it."""
    if all(row.test_accuracy is None for row in rows):
        return COLUMNS
    at = COLUMNS.index("val top-1") + 1
    return (*COLUMNS[:at], TEST_COLUMN, *COLUMNS[at:])


def cells(row: Row, base: Path, shown: Sequence[str] = COLUMNS) -> list[str]:
    """The row's cells for the `shown` columns (see `columns`)."""
    size = "—" if row.file_bytes is None else f"{human_bytes(row.file_bytes)} {row.file_kind}"
    test = [] if TEST_COLUMN not in shown else ["—" if row.test_accuracy is None else f"{row.test_accuracy:.2%}"]
    return [
        _relative(row.run.path, base), row.command, row.model, row.dataset, f"{row.accuracy:.2%}", *test,
        "—" if row.params is None else f"{row.params / 1e6:.2f} M",
        "—" if row.flops is None else human_flops(row.flops),
        size,
        "—" if row.p50_ms is None else f"{row.p50_ms:.3f}",
        speedup_cell(row),
        "★" if row.pareto else "",
    ]


def row_fields(row: Row, base: Path) -> dict[str, Any]:
    """One machine-readable row (report.json / report.csv)."""
    return {
        "run": _relative(row.run.path, base), "command": row.command, "model": row.model, "dataset": row.dataset,
        "image_size": row.dataset_key[2], "accuracy": row.accuracy, "test_accuracy": row.test_accuracy,
        "evaluate_run": None if row.evaluate_run is None else _relative(row.evaluate_run, base),
        "params": row.params, "flops": row.flops, "file_bytes": row.file_bytes, "file_kind": row.file_kind,
        "p50_ms": row.p50_ms, "latency": None if row.latency is None else row.latency.to_dict(),
        "bench_run": None if row.bench_run is None else
        _relative(row.bench_run, base), "source": None if row.source is None else _relative(row.source, base),
        "speedup_vs_source": None if row.speedup is None else row.speedup.shown,
        "speedup": None if row.speedup is None else {
            "status": row.speedup.status, "ratio": row.speedup.ratio, "per_round": list(row.speedup.per_round),
            "bench_run": None if row.speedup.bench_run is None else _relative(row.speedup.bench_run, base),
            "note": row.speedup.note},
        "pareto": row.pareto, "notes": row.notes,
    }


def legend(comparison: Comparison) -> str:
    """What the columns mean: where the latencies come from, the Pareto mark, the speed-up, the accuracies."""
    return (f"val top-1: accuracy on the validation split, as the run recorded it (test top-1: on the test split, "
            f"from the newest `cnnlab evaluate split=test` of the model); latency: p50 of {comparison.backend}, "
            f"batch {comparison.batch}, on {comparison.device or '?'} with {comparison.threads or '?'} thread(s) "
            f"(from bench runs); ★ = Pareto-optimal in accuracy × latency among models of the same dataset; "
            f"speed-up is against the model it was derived from, both timed interleaved in one bench session "
            f"(paired); — when there is no such timing or it was unstable")


def rich_table(rows: Sequence[Row], base: Path, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    shown = columns(rows)
    for column in shown:
        table.add_column(column, justify="left" if column in TEXT_COLUMNS else "right")
    for row in rows:
        table.add_row(*cells(row, base, shown), style="bold" if row.pareto else None)
    return table


def markdown(groups: dict[str, list[Row]], left_out: Sequence[tuple[Path, str]], base: Path,
             comparison: Comparison, plots: dict[str, str]) -> str:
    lines = [f"# cnnlab report: {base}", "", legend(comparison) + ".", ""]
    for title, rows in groups.items():
        shown = columns(rows)
        lines += [f"## {title}", "", "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row, base, shown)) + " |" for row in rows]
        if title in plots:
            lines += ["", f"![accuracy vs latency]({plots[title]})"]
        lines.append("")
    notes = [(row, note) for rows in groups.values() for row in rows for note in row.notes]
    unpaired = speedup_notes([row for rows in groups.values() for row in rows])
    if left_out or notes or unpaired:
        lines += ["## Left out of the comparison", ""]
        lines += [f"- `{_relative(path, base)}`: {reason}" for path, reason in left_out]
        lines += [f"- `{_relative(row.run.path, base)}` (no latency): {note}" for row, note in notes]
        lines += [f"- `{_relative(row.run.path, base)}` (no speed-up): {note}" for row, note in unpaired]
        lines.append("")
    return "\n".join(lines)


def csv_text(rows: Sequence[Row], base: Path) -> str:
    buffer = io.StringIO()
    fields = [k for k in row_fields(rows[0], base) if k not in ("latency", "notes", "speedup")] if rows else ["run"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row_fields(row, base))
    return buffer.getvalue()


def json_text(rows: Sequence[Row], left_out: Sequence[tuple[Path, str]], base: Path, comparison: Comparison) -> str:
    return json.dumps({"comparison": comparison.__dict__, "rows": [row_fields(r, base) for r in rows],
                       "left_out": [{"run": _relative(p, base), "reason": reason} for p, reason in left_out]},
                      indent=2, default=str) + "\n"
