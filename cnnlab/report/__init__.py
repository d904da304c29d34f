"""`cnnlab report`: one table of accuracy × size × latency (and a plot) from run records alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.fileio import write_text
from cnnlab.report.formats import (DIFFERENCES_LEGEND, csv_text, group_notes, json_text, legend, markdown,
                                   rich_differences, rich_table, speedup_notes)
from cnnlab.report.pareto import mark_pareto
from cnnlab.report.plot import plot
from cnnlab.report.rows import MODEL_COMMANDS, Comparison, Row, build_rows, check_comparison, matching_runs, usable
from cnnlab.report.seeds import UNFINISHED, SeedGroup, group_by_seed

__all__ = ["Comparison", "Report", "SeedGroup", "build_report", "write_report"]


@dataclass
class Report:
    base: Path
    groups: dict[str, list[Row]]          # "dataset (classes, size)" → rows, most accurate first
    left_out: list[tuple[Path, str]]
    comparison: Comparison
    seed_groups: dict[str, list[SeedGroup]]  # the same datasets → runs that differ only in seed, by mean val top-1

    @property
    def rows(self) -> list[Row]:
        return [row for rows in self.groups.values() for row in rows]

    @property
    def all_seed_groups(self) -> list[SeedGroup]:
        return [group for groups in self.seed_groups.values() for group in groups]


def build_report(outputs: Path, *, pattern: str | None = None, comparison: Comparison = Comparison()) -> Report:
    outputs = Path(outputs).resolve()
    if not outputs.is_dir():
        raise CnnlabError(f"{outputs} is not a folder", fix="give the outputs folder (or a run/sweep folder in it)")
    everything = matching_runs(outputs, pattern)
    check_comparison(comparison, everything)
    rows, left_out, comparison = build_rows([run for run in everything if usable(run)], comparison)
    if not rows:
        what = f" matching --runs {pattern}" if pattern else ""
        raise CnnlabError(f"no completed model runs{what} under {outputs}",
                          fix="train something first (cnnlab pipeline, or cnnlab finetune + cnnlab bench)")
    mark_pareto(rows)
    unfinished = [run for run in everything if run.status in UNFINISHED and run.command in MODEL_COMMANDS]
    seeded = group_by_seed(rows, unfinished)
    mark_pareto(seeded)
    return Report(base=outputs, groups=_by_dataset(rows), left_out=left_out, comparison=comparison,
                  seed_groups=_by_dataset(seeded))


def _by_dataset(items: list[Any]) -> dict[str, list[Any]]:
    """Rows or seed groups by dataset title ("digits (10 classes, 64 px)"), most accurate first, then fastest."""
    found: dict[str, list[Any]] = {}
    for item in items:
        found.setdefault(dataset_title(*item.dataset_key), []).append(item)
    for members in found.values():
        members.sort(key=lambda r: (-r.accuracy, r.p50_ms if r.p50_ms is not None else float("inf")))
    return found


def dataset_title(name: str | None, classes: int | None, size: int | None) -> str:
    """"digits (10 classes, 64 px)"; what the runs did not record is left out ("dataset not recorded" for all)."""
    details = ", ".join(([] if classes is None else [f"{classes} classes"]) + ([] if size is None else [f"{size} px"]))
    if name is None:
        return f"dataset not recorded ({details})" if details else "dataset not recorded"
    return f"{name} ({details})" if details else name


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def write_report(report: Report, folder: Path | None = None) -> list[Path]:
    """report.md, report.csv, report.json and one PNG per dataset group, written atomically."""
    folder = Path(folder or report.base)
    plots: dict[str, str] = {}
    for title, groups in report.seed_groups.items():
        name = "report.png" if len(report.seed_groups) == 1 else f"report-{_slug(title)}.png"
        if plot(groups, folder / name, f"{title} — {report.comparison.describe()}"):
            plots[title] = name
    written = [folder / name for name in plots.values()]
    groups = report.all_seed_groups
    for name, text in (("report.md", markdown(report.seed_groups, report.left_out, report.base, report.comparison,
                                              plots)),
                       ("report.csv", csv_text(report.rows, report.base, groups)),
                       ("report.json", json_text(report.rows, report.left_out, report.base, report.comparison,
                                                 groups))):
        write_text(folder / name, text)
        written.append(folder / name)
    return written


def print_report(report: Report) -> None:
    from cnnlab.console import out

    for title, groups in report.seed_groups.items():
        out.print(rich_table(groups, report.base, title))
        found = rich_differences(groups, report.base, title)
        if found is not None:
            out.print(found)
    out.print(legend(report.comparison), soft_wrap=True)
    if any(group.changes for group in report.all_seed_groups):
        out.print(f"differences: {DIFFERENCES_LEGEND}", soft_wrap=True)
    for note in group_notes(report.all_seed_groups, report.base):
        out.print(f"partial seed group {note}", markup=False, highlight=False)
    for path, reason in report.left_out:
        out.print(f"left out {path}: {reason}", markup=False, highlight=False)
    for row in report.rows:
        for note in row.notes:
            out.print(f"no latency for {row.run.path}: {note}", markup=False, highlight=False)
    for row, note in speedup_notes(report.rows):
        out.print(f"no speed-up for {row.run.path}: {note}", markup=False, highlight=False)
