"""`cnnlab report`: one table of accuracy × size × latency (and a plot) from run records alone."""

from __future__ import annotations

import os
import re
from collections import Counter
from fnmatch import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Collection

from cnnlab import conftree
from cnnlab.errors import CnnlabError
from cnnlab.links import RunLinks
from cnnlab.fileio import atomic_paths, text_for
from cnnlab.report.formats import (DIFFERENCES_LEGEND, MARKDOWN_START, PLOT_ALT, csv_text, gone_source_notes,
                                   group_notes, json_text, legend, markdown, rich_differences, rich_table,
                                   speedup_notes, test_notes, timing_notes)
from cnnlab.report.pareto import mark_pareto
from cnnlab.report.plot import figure
from cnnlab.report.rows import (ATTACHED, MODEL_COMMANDS, Comparison, Row, build_rows, check_comparison, dataset_title,
                                mark_swept, matching_runs, replaced_stage_runs, usable)
from cnnlab.report.seeds import UNFINISHED, SeedGroup, SeedKeys, group_by_seed
from cnnlab.report.sweeps import SWEEP_FILE, unstarted_jobs
from cnnlab.runs import RUN_FILE, RunInfo, gone_sweep_links, iter_runs, records_gone
from cnnlab.wording import visible

__all__ = ["Comparison", "Report", "SeedGroup", "build_report", "dataset_title", "report_folder", "write_report"]


@dataclass
class Report:
    base: Path
    groups: dict[str, list[Row]]          # dataset title (rows.dataset_title) → rows, most accurate first
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
    """The report of the runs under `outputs` (those whose folder matches `pattern`). A pipeline stage's run that a
    newer run of that stage replaced is left out, with the reason, so that a stage's two runs are not read as two
    seeds of one model (probe 57; probe 104: `cnnlab report outputs/pipeline/NAME` still pooled them). A stage's run
    with settings the workspace's newest plan has no more is marked "earlier plan" (`current_plan`)."""
    outputs = Path(outputs).resolve()
    if not outputs.is_dir():
        raise CnnlabError(f"{outputs} is not a folder", fix="give the outputs folder (or a run/sweep folder in it)")
    matched = matching_runs(outputs, pattern)
    replaced = {old.resolve(): new for old, new in replaced_stage_runs(matched).items()}
    everything = [run for run in matched if run.path.resolve() not in replaced]
    check_comparison(comparison, everything)
    comparison = replace(comparison, bench_outputs=bench_outputs(outputs, everything))
    around = _runs_around(outputs, everything, pattern, left=set(replaced))
    # copied, moved or renamed runs are found where they are now
    links = RunLinks([*everything, *around.attached, *around.models])
    replaced_notes = [(old, _replaced_note(new)) for old, new in replaced.items()]
    around_notes = [(old, _replaced_note(new)) for old, new in around.replaced.items()]
    plan = current_plan(matched)
    rows, left_out, comparison = build_rows([run for run in everything if usable(run)], comparison,
                                            attachable=around.attached, links=links, around=around.models,
                                            left=[*replaced_notes, *around_notes],
                                            plan=set(plan.values()) if plan is not None else ())
    left_out += replaced_notes
    # probe 145: a skipped sweep job's link whose run was moved or deleted was left out without a word
    left_out += [(link, f"a sweep job's link to the run it stood for, {os.readlink(link)}, which is no longer there "
                        "(moved or deleted)") for link in gone_sweep_links(outputs)]
    left_out += [(folder, "holds a model but no run.json (deleted?): without its record nothing says what it is or "
                          "how it scored") for folder in records_gone(outputs)
                 if pattern is None or fnmatch(str(folder.relative_to(outputs)), pattern)]
    sweeps = [run.path.parent for run in matched if (run.path.parent / SWEEP_FILE).is_file()]
    # the runs already read serve where no pattern narrowed them (a big workspace is read once)
    left_out += [(folder, why) for folder, why in unstarted_jobs(sweeps, matched if pattern is None
                                                                   else iter_runs(outputs))
                 if pattern is None or fnmatch(str(folder.relative_to(outputs)), pattern)]
    if not rows:
        raise _nothing_to_report(outputs, pattern, everything)
    if plan is not None:
        for row in rows:
            recipe = (row.run.data.get("pipeline") or {}).get("recipe")  # a run from before it was recorded: unknown
            row.earlier_plan = row.stage is not None and isinstance(recipe, str) and recipe not in plan.values()
            row.stage_removed = row.earlier_plan and row.stage not in plan  # `~pipeline.plan.NAME`, not an edit
    mark_swept(rows, everything)
    mark_pareto(rows)
    unfinished = [run for run in everything if run.status in UNFINISHED and run.command in MODEL_COMMANDS]
    seeded = group_by_seed(rows, unfinished, SeedKeys(links))
    mark_pareto(seeded)
    return Report(base=outputs, groups=_by_dataset(rows), left_out=left_out, comparison=comparison,
                  seed_groups=_by_dataset(seeded))


def current_plan(runs: Collection[RunInfo]) -> dict[str, str] | None:
    """The stage recipes, by stage, of the newest `cnnlab pipeline` among `runs` (run.json pipeline.plan: each stage's
    fingerprint without the seed, so another seed of the same plan is no earlier one — probe 178), None where there is
    none, or it was a job of a sweep: a sweep's jobs are plans of one comparison, none of them an earlier one."""
    newest = max((run for run in runs if run.command == "pipeline" and not run.damaged), default=None,
                 key=lambda run: run.started_at)
    plan = ((newest.data.get("pipeline") or {}).get("plan") if newest is not None else None)
    if not isinstance(plan, dict) or any(part.endswith("-multirun") for part in newest.path.parts):  # type: ignore
        return None
    return {str(stage): str(fingerprint) for stage, fingerprint in plan.items()}


@dataclass(frozen=True)
class Around:
    """The runs in the outputs folders around the runs reported, not among them (`_runs_around`)."""

    attached: list[RunInfo]     # completed export, bench and evaluate runs: they attach to the rows they came from
    models: list[RunInfo]       # completed model runs and damaged records: a row's source among them is compared
    replaced: dict[Path, Path]  # runs there that a newer run of their pipeline stage replaced → that run


def _runs_around(outputs: Path, selected: list[RunInfo], pattern: str | None, left: Collection[Path] = ()) -> Around:
    """The runs in the outputs folders the `selected` runs live in, but not among them: `cnnlab report SWEEP_FOLDER`
    (or `--runs GLOB`) said "not benchmarked" of models that bench runs beside the folder had timed, and dropped their
    test top-1 (probe 63); and the runs they were derived from, which their speed-up and test difference are against
    (probe 184: "not among the runs reported" of a prune sweep's pretrained sources beside it). A run's outputs folder
    is the one above its `<command>/` folder (outputs/prune/<date>/<time>-multirun/1 → outputs). Without `pattern`,
    every run under `outputs` is selected already: only folders above it are read. Nor the runs `left` out, or
    replaced by a newer run of their pipeline stage (probe 151: a replaced export's damaged file gave its model's row a
    1.0 kB size)."""
    roots = ({outputs} if pattern is not None else set()) | _outputs_above(outputs, selected)
    chosen = {run.path.resolve() for run in selected} | set(left)
    found: dict[Path, RunInfo] = {}
    for root in roots:
        for run in iter_runs(root):
            if run.path.resolve() not in chosen and (run.damaged or run.status == "completed"
                                                     and run.command in (*ATTACHED, *MODEL_COMMANDS)):
                found.setdefault(run.path.resolve(), run)
    replaced = {old.resolve(): new for old, new in
                replaced_stage_runs(sorted(found.values(), key=lambda r: r.started_at)).items()}
    kept = [run for path, run in found.items() if path not in replaced]
    return Around(attached=[run for run in kept if run.command in ATTACHED],
                  models=[run for run in kept if run.command not in ATTACHED], replaced=replaced)


def _outputs_root(run: RunInfo) -> Path | None:
    """A run's outputs folder: the one above its `<command>/` folder (outputs/prune/<date>/<time>-multirun/1 →
    outputs), resolved; None for a run outside that layout."""
    return next((p.parent for p in run.path.resolve().parents if p.name == run.command), None)


def _outputs_above(outputs: Path, selected: list[RunInfo]) -> set[Path]:
    """The outputs folders of the `selected` runs that hold `outputs` (a sweep, pipeline or date folder in them),
    other than `outputs` itself: the report reads the runs there too (_runs_around)."""
    roots = {_outputs_root(run) for run in selected}
    return {root for root in roots if root is not None and root != outputs and outputs.is_relative_to(root)}


def bench_outputs(outputs: Path, selected: list[RunInfo]) -> Path | None:
    """Where a `cnnlab bench` the report prints must write its run for this report — of `outputs`, resolved, and the
    `selected` runs there — to read it (the `paths.outputs=` of rows.bench_command): None where bench's default
    folder ($CNNLAB_OUTPUTS, else ./outputs) is one the report reads (`outputs`, a folder below it, or the outputs
    folder the runs live in), else the runs' outputs folder around `outputs`, else the one below it most of the runs
    live in (a project folder holding outputs/: probe 194's `paths.outputs=PROJECT` made PROJECT/bench/, a second runs
    folder beside PROJECT/outputs/), else `outputs` itself. A report of another folder printed `cnnlab bench
    source=RUN`, which, followed, wrote into ./outputs: the same note again."""
    above = _outputs_above(outputs, selected)
    try:
        default = conftree.outputs_folder().resolve()
    except CnnlabError:  # a $CNNLAB_OUTPUTS bench refuses: the folder named keeps the hint working
        default = None
    if default is not None and (default.is_relative_to(outputs) or default in above):
        return None
    if above:
        return max(above, key=lambda folder: len(folder.parts))  # the one nearest to `outputs`
    below = Counter(root for root in map(_outputs_root, selected)
                    if root is not None and root.is_relative_to(outputs) and not _stage_runs_folder(root))
    return max(below, key=lambda root: (below[root], -len(root.parts)), default=outputs)


def _stage_runs_folder(folder: Path) -> bool:
    """Whether `folder` is a pipeline workspace's runs/ (outputs/pipeline/NAME/runs: its stages' runs), where a bench
    run of the user's does not belong: a hint for the workspace names the workspace."""
    return folder.name == "runs" and folder.parent.parent.name == "pipeline"


def _replaced_note(new: Path) -> str:
    return f"an earlier run of the same pipeline stage, replaced by {new}"


def _nothing_to_report(outputs: Path, pattern: str | None, matched: list[RunInfo]) -> CnnlabError:
    """Why there is no row, with the fix that helps: a --runs glob that matched no run folder is not a folder
    without runs ("train something first" would send the user the wrong way)."""
    listing = f"`cnnlab list runs --outputs {outputs}`"
    if pattern is not None and not matched:
        present = sorted(str(run.path.relative_to(outputs)) for run in iter_runs(outputs)
                         if run.path.is_relative_to(outputs))
        if present:
            # one example under each top folder (a command, a pipeline's runs/): what a glob starts with
            first: dict[str, str] = {}
            for path in present:
                first.setdefault(Path(path).parts[0], path)
            examples = ", ".join(list(first.values())[:6])
            return CnnlabError(f"--runs '{pattern}' matched no run folder under {outputs}",
                               fix=f"give a glob over the run folders relative to it ({len(present)} there, e.g. "
                                   f"{examples}); {listing} lists them all")
    if matched:
        # a damaged record names no command (probe 144: "only damaged ? runs")
        what = ", ".join(sorted({"damaged" if run.damaged else f"{run.status} {run.command}" for run in matched}))
        where = f" matching --runs '{pattern}'" if pattern else ""
        return CnnlabError(f"no completed model runs{where} under {outputs} (only {what} runs)",
                           fix=(f"give --runs a glob that matches model runs ({', '.join(MODEL_COMMANDS)}); "
                                if pattern else "") + f"{listing} shows them all, or train a model first "
                               "(cnnlab pipeline, or cnnlab finetune + cnnlab bench)")
    if (outputs / "multirun.yaml").is_file():  # probe 141: a rerun sweep whose every job was done before
        return CnnlabError(f"no runs under {outputs}: a sweep whose jobs ran elsewhere (each skipped as completed "
                           "before, in the folder its skip line named)",
                           fix="report the outputs folder that holds them all (`cnnlab report` reads the one "
                               "cnnlab writes to), or the sweep folders the skip lines named")
    return CnnlabError(f"no completed model runs under {outputs} (no runs at all)",
                       fix="train something first (cnnlab pipeline, or cnnlab finetune + cnnlab bench), or give the "
                           "outputs folder your runs are in")


def _by_dataset(items: list[Any]) -> dict[str, list[Any]]:
    """Rows or seed groups by dataset identity, titled ("digits (10 classes, 64 px)", a user folder's with its root),
    most accurate first, then fastest."""
    found: dict[Any, list[Any]] = {}
    for item in items:
        found.setdefault(item.dataset_key, []).append(item)
    titled: dict[str, list[Any]] = {}
    # the validation split is said where two tables would read alike without it (digits at two val_fractions)
    plain = [dataset_title(identity, val_split=False) for identity in found]
    for (identity, members), short in zip(found.items(), plain):
        members.sort(key=lambda r: (-r.accuracy, r.p50_ms if r.p50_ms is not None else float("inf")))
        title = dataset_title(identity, val_split=plain.count(short) > 1) + _also_read_at(identity, members)
        # two identities read alike only when a record holds odd values: never merge their tables
        titled[_unique(title, titled)] = members
    return titled


def _also_read_at(identity: Any, members: list[Any]) -> str:
    """" (also read at /mnt/rgb)": the other roots of one user folder's content among `members` and the evaluations
    that gave their test top-1 (a folder moved with `mv` is the same data, DatasetIdentity), so that a title naming
    the first root read does not hide the others."""
    others = sorted(set().union(*(m.read_at for m in members)) - {identity.folder, None})
    return f" (also read at {', '.join(others)})" if others else ""


def _unique(name: str, taken: Any, form: str = "{name} [{count}]") -> str:
    """`name`, or `form` with count 2, 3, ... when it is taken."""
    count, unique = 1, name
    while unique in taken:
        count += 1
        unique = form.format(name=name, count=count)
    return unique


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _run_folder_at_or_above(folder: Path) -> Path | None:
    """The run folder `folder` is or lies in (it, or a folder above it, holds a run.json), else None."""
    folder = Path(folder).resolve()
    return next((f for f in (folder, *folder.parents) if (f / RUN_FILE).is_file()), None)


def report_folder(folder: Path, out: Path | None = None) -> Path:
    """Where `cnnlab report FOLDER [--out OUT]` writes its files: OUT, else FOLDER. Never into a run folder —
    source runs are never modified: CnnlabError (exit 2) naming --out and --no-write instead."""
    target = Path(out or folder)
    run = _run_folder_at_or_above(target)
    if run is not None:
        what = f"{target} is a run folder" if run == target.resolve() else f"{target} lies in the run folder {run}"
        raise CnnlabError(f"{what}, and the report does not write into runs (source runs are never modified)",
                          fix="write the report elsewhere with --out DIR (a folder outside every run), or only "
                              "print it with --no-write")
    return target


def write_report(report: Report, folder: Path | None = None) -> list[Path]:
    """report.md, report.csv, report.json and one PNG per dataset group, written atomically into `folder` (default:
    the folder reported on); never into a run folder (`report_folder`)."""
    folder = report_folder(report.base, folder)
    try:
        return _write_files(report, folder)
    except OSError as exc:  # probe 98: a read-only outputs folder, `--out FILE`: tracebacks "a bug in cnnlab"
        reason = "it is a file" if folder.is_file() else (exc.strerror or type(exc).__name__).lower() + \
            (f" ({exc.filename})" if exc.filename and Path(exc.filename) != folder else "")
        raise CnnlabError(f"cannot write the report into {folder}: {reason}",
                          fix="write it into another folder with --out DIR, or only print it with --no-write") \
            from exc


# How each file cnnlab writes begins: another file of that name in the folder is the user's, never replaced
_OWN_START = {"report.md": MARKDOWN_START, "report.csv": "run,", "report.json": '{\n  "comparison": '}


def _refuse_foreign_files(folder: Path) -> None:
    """CnnlabError for a report.md/.csv/.json in `folder` that cnnlab did not write (probe 98: `--out DIR` replaced a
    user's own report.md without a word); cnnlab's own, from an earlier report, are replaced."""
    for name, start in _OWN_START.items():
        path = folder / name
        try:
            with path.open(encoding="utf-8", errors="replace") as file:
                head = file.read(len(start))
        except (FileNotFoundError, NotADirectoryError):
            continue
        if head != start:
            raise CnnlabError(f"{path} is not a report cnnlab wrote: not replaced",
                              fix="write the report into another folder with --out DIR, or only print it with "
                                  "--no-write")


def _write_files(report: Report, folder: Path) -> list[Path]:
    """Every file of the report, replaced together (fileio.atomic_paths): a failure leaves the earlier report's."""
    _refuse_foreign_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, tuple[str, Any]] = {}  # title → (file name, figure), for the tables with a latency
    for title, groups in report.seed_groups.items():
        fig = figure(groups, f"{title} — {report.comparison.describe()}")
        if fig is not None:  # slugs of two titles can meet (/data/a-b and /data/a_b): one name each
            figures[title] = ("report.png" if len(report.seed_groups) == 1 else _unique(
                f"report-{_slug(title)}", {n[:-4] for n, _ in figures.values()}, "{name}-{count}") + ".png", fig)
    plots = {title: name for title, (name, _) in figures.items()}
    groups = report.all_seed_groups
    texts = {"report.md": markdown(report.seed_groups, report.left_out, report.base, report.comparison, plots),
             "report.csv": csv_text(report.rows, report.base, groups),
             "report.json": json_text(report.rows, report.left_out, report.base, report.comparison, groups)}
    targets = [folder / name for name in (*plots.values(), *texts)]
    earlier_plots = _plots_of(folder / "report.md")
    try:
        with atomic_paths(targets) as temporary:
            for (_, fig), temp in zip(figures.values(), temporary):
                fig.savefig(temp, format="png")
            for (name, text), temp in zip(texts.items(), temporary[len(figures):]):
                temp.write_text(text_for(name, text), encoding="utf-8")
    finally:
        if figures:
            import matplotlib.pyplot as plt  # figure() chose the Agg backend before

            for _, fig in figures.values():
                plt.close(fig)
    for name in earlier_plots - set(plots.values()):  # probe 114: an earlier report's plots stayed beside this one
        (folder / name).unlink(missing_ok=True)
    return targets


def _plots_of(markdown_file: Path) -> set[str]:
    """The plot files an earlier report.md of cnnlab's in this folder showed (its own: _refuse_foreign_files)."""
    try:
        text = markdown_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return set(re.findall(re.escape(f"![{PLOT_ALT}](") + r"(report[^/()]*\.png)\)", text))


def print_report(report: Report) -> None:
    from cnnlab.console import out

    def say(line: str) -> None:  # run.json text (paths, names): printed as written, control characters escaped
        out.print(visible(line), markup=False, highlight=False)

    for title, groups in report.seed_groups.items():
        out.print(rich_table(groups, report.base, title))
        found = rich_differences(groups, report.base, title)
        if found is not None:
            out.print(found)
    out.print(legend(report.comparison))
    for note in timing_notes(report.seed_groups, report.comparison):
        out.print(note, markup=False, highlight=False)
    if any(group.changes for group in report.all_seed_groups):
        out.print(f"differences: {DIFFERENCES_LEGEND}")
    for note in group_notes(report.all_seed_groups, report.base):
        say(f"partial seed group {note}")
    for note in gone_source_notes(report.all_seed_groups, report.base):
        say(note)
    for path, reason in report.left_out:
        say(f"left out {path}: {reason}")
    for row, note in test_notes(report.rows):
        say(f"no test top-1 for {row.run.path}: {note}")
    for row in report.rows:
        if row.file_note:
            say(f"model file of {row.run.path}: {row.file_note}")
        for note in row.notes:
            say(f"no latency for {row.run.path}: {note}")
    for row, note in speedup_notes(report.rows):
        say(f"no speed-up for {row.run.path}: {note}")
