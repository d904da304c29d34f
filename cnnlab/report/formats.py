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

COLUMNS = ("run", "command", "model", "dataset", "accuracy", "params", "FLOPs", "size", "p50 ms", "speed-up",
           "Pareto")


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


def cells(row: Row, base: Path) -> list[str]:
    size = "—" if row.file_bytes is None else f"{human_bytes(row.file_bytes)} {row.file_kind}"
    return [
        _relative(row.run.path, base), row.command, row.model, row.dataset, f"{row.accuracy:.2%}",
        "—" if row.params is None else f"{row.params / 1e6:.2f} M",
        "—" if row.flops is None else human_flops(row.flops),
        size,
        "—" if row.p50_ms is None else f"{row.p50_ms:.3f}",
        speedup_cell(row),
        "★" if row.pareto else "",
    ]


def record(row: Row, base: Path) -> dict[str, Any]:
    """One machine-readable row (report.json / report.csv)."""
    return {
        "run": _relative(row.run.path, base), "command": row.command, "model": row.model, "dataset": row.dataset,
        "image_size": row.dataset_key[2], "accuracy": row.accuracy, "params": row.params, "flops": row.flops,
        "file_bytes": row.file_bytes, "file_kind": row.file_kind,
        "p50_ms": row.p50_ms, "latency": row.latency, "bench_run": None if row.bench_run is None else
        _relative(row.bench_run, base), "source": None if row.source is None else _relative(row.source, base),
        "speedup_vs_source": None if row.speedup is None else row.speedup.shown,
        "speedup": None if row.speedup is None else {
            "status": row.speedup.status, "ratio": row.speedup.ratio, "per_round": list(row.speedup.per_round),
            "bench_run": None if row.speedup.bench_run is None else _relative(row.speedup.bench_run, base),
            "note": row.speedup.note},
        "pareto": row.pareto, "notes": row.notes,
    }


def describe(comparison: Comparison) -> str:
    return (f"latency: p50 of {comparison.backend}, batch {comparison.batch}, on {comparison.device or '?'} with "
            f"{comparison.threads or '?'} thread(s) (from bench runs); ★ = Pareto-optimal in accuracy × latency "
            f"among models of the same dataset; speed-up is against the model it was derived from, both timed "
            f"interleaved in one bench session (paired); — when there is no such timing or it was unstable")


def rich_table(rows: Sequence[Row], base: Path, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("run", "command", "model", "dataset") else "right")
    for row in rows:
        table.add_row(*cells(row, base), style="bold" if row.pareto else None)
    return table


def markdown(groups: dict[str, list[Row]], left_out: Sequence[tuple[Path, str]], base: Path,
             comparison: Comparison, plots: dict[str, str]) -> str:
    lines = [f"# cnnlab report: {base}", "", describe(comparison) + ".", ""]
    for title, rows in groups.items():
        lines += [f"## {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row, base)) + " |" for row in rows]
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
    fields = [k for k in record(rows[0], base) if k not in ("latency", "notes", "speedup")] if rows else ["run"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(record(row, base))
    return buffer.getvalue()


def json_text(rows: Sequence[Row], left_out: Sequence[tuple[Path, str]], base: Path, comparison: Comparison) -> str:
    return json.dumps({"comparison": comparison.__dict__, "rows": [record(r, base) for r in rows],
                       "left_out": [{"run": _relative(p, base), "reason": reason} for p, reason in left_out]},
                      indent=2, default=str) + "\n"
