"""`cnnlab report`: one table of accuracy × size × latency (and a plot) from run records alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.fileio import write_text
from cnnlab.report.formats import csv_text, json_text, legend, markdown, rich_table, speedup_notes
from cnnlab.report.pareto import mark_pareto
from cnnlab.report.plot import plot
from cnnlab.report.rows import Comparison, Row, build_rows, collect_runs

__all__ = ["Comparison", "Report", "build_report", "write_report"]


@dataclass
class Report:
    base: Path
    groups: dict[str, list[Row]]          # "dataset (classes, size)" → rows, most accurate first
    left_out: list[tuple[Path, str]]
    comparison: Comparison

    @property
    def rows(self) -> list[Row]:
        return [row for rows in self.groups.values() for row in rows]


def build_report(outputs: Path, *, pattern: str | None = None, comparison: Comparison = Comparison()) -> Report:
    outputs = Path(outputs).resolve()
    if not outputs.is_dir():
        raise CnnlabError(f"{outputs} is not a folder", fix="give the outputs folder (or a run/sweep folder in it)")
    runs = collect_runs(outputs, pattern)
    rows, left_out, comparison = build_rows(runs, comparison)
    if not rows:
        what = f" matching --runs {pattern}" if pattern else ""
        raise CnnlabError(f"no completed model runs{what} under {outputs}",
                          fix="train something first (cnnlab pipeline, or cnnlab finetune + cnnlab bench)")
    mark_pareto(rows)
    groups: dict[str, list[Row]] = {}
    for row in rows:
        name, classes, size = row.dataset_key
        groups.setdefault(f"{name} ({classes} classes, {size} px)", []).append(row)
    for members in groups.values():
        members.sort(key=lambda r: (-r.accuracy, r.p50_ms if r.p50_ms is not None else float("inf")))
    return Report(base=outputs, groups=groups, left_out=left_out, comparison=comparison)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_report(report: Report, folder: Path | None = None) -> list[Path]:
    """report.md, report.csv, report.json and one PNG per dataset group, written atomically."""
    folder = Path(folder or report.base)
    plots: dict[str, str] = {}
    for title, rows in report.groups.items():
        name = "report.png" if len(report.groups) == 1 else f"report-{_slug(title)}.png"
        if plot(rows, folder / name, f"{title} — {report.comparison.backend}, batch {report.comparison.batch}, "
                                     f"{report.comparison.device}"):
            plots[title] = name
    written = [folder / name for name in plots.values()]
    for name, text in (("report.md", markdown(report.groups, report.left_out, report.base, report.comparison, plots)),
                       ("report.csv", csv_text(report.rows, report.base)),
                       ("report.json", json_text(report.rows, report.left_out, report.base, report.comparison))):
        write_text(folder / name, text)
        written.append(folder / name)
    return written


def print_report(report: Report) -> None:
    from cnnlab.console import out

    for title, rows in report.groups.items():
        out.print(rich_table(rows, report.base, title))
    out.print(legend(report.comparison), soft_wrap=True)
    for path, reason in report.left_out:
        out.print(f"left out {path}: {reason}", markup=False, highlight=False)
    for row in report.rows:
        for note in row.notes:
            out.print(f"no latency for {row.run.path}: {note}", markup=False, highlight=False)
    for row, note in speedup_notes(report.rows):
        out.print(f"no speed-up for {row.run.path}: {note}", markup=False, highlight=False)
