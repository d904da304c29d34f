"""Run records → report rows: one row per trained model, with the latency its bench runs measured.

Reads run.json (and nothing else), through the typed sections of cnnlab/records.py: a row is a completed run
of a command that produces a model (commands.py: pretrain, finetune, distill, prune, quantize) with a validation
accuracy. Export runs are the same model in another format, bench runs measurements and evaluate runs scores,
so all three attach to the model run they came from (following `source` links through exports). A latency comes
from the newest paired session (`cnnlab bench source=[...]`) that timed the model (a pipeline's: its newest plan's
bench stage first), else from its newest own bench; a speed-up only ever from a paired session (report/paired.py); a
test accuracy from the newest `cnnlab evaluate split=test` of the model on its own data (the same DatasetIdentity,
cnnlab/records.py).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence

from cnnlab.commands import commands_where
from cnnlab.data.layout import folder_and_training_digests
from cnnlab.deploy.names import BACKENDS, EXPORTED_FOR_BENCH, TORCH_BACKENDS  # names only: no runtime loaded
from cnnlab.deploy.contention import BUSY_PREFIX
from cnnlab.deploy.paired import NetworkKey
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import hydra_quoted, path_argument
from cnnlab.links import RunLinks, moved_root
from cnnlab.records import FOLDER_DATASETS, DatasetIdentity, LatencyRecord
from cnnlab.report.paired import UNPAIRED, SpeedUp, machine_label, reference_speedup, sessions, speedup
from cnnlab.runs import RunInfo, iter_runs, run_links
from cnnlab.wording import counted, human_bytes, listed

MODEL_COMMANDS = commands_where(produces_model=True)
CONVERTING_COMMANDS = commands_where(converts_source=True)
MISSING = "—"                                # a table cell whose value no run recorded
ATTACHED = ("export", "bench", "evaluate")   # runs that attach to the model run they came from


@dataclass(frozen=True)
class Comparison:
    """What makes latencies comparable: the same backend, device, batch size and threads."""

    backend: str = "onnxruntime"
    batch: int = 1
    device: str | None = None     # None: the most common device among the benches
    threads: int | None = None    # None: the most common thread count
    timed: bool = True            # False: no bench run of the models here timed anything (an accuracy-only report)
    # the CPU or GPU that timed them (report.paired.machine_label); None: the benches name one machine (or none)
    machine: str | None = None
    # not a setting: where a `cnnlab bench` the report prints must write its run for the report to read it (set by
    # build_report: the `paths.outputs=` of bench_command); None: bench's own default folder is one the report reads
    bench_outputs: Path | None = field(default=None, compare=False)

    def setting(self) -> dict[str, Any]:
        """The fields that make latencies comparable, by name (as report.json writes them): all but
        `bench_outputs`, which says where a hinted bench writes, not what it measured."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}

    def admits(self, record: LatencyRecord) -> bool:
        """Whether `record` was measured in exactly this setting: on this machine, where it names one (a record
        that names none, from before it was recorded, cannot be told apart)."""
        return record.setting == (self.backend, self.batch, self.device, self.threads) and \
            (self.machine is None or record.machine in (None, self.machine))

    def describe(self) -> str:
        """The setting in words, "onnxruntime, batch 1, on cpu with 2 threads"; what the bench runs timed without
        recording it reads "device and threads not recorded" rather than None; with no bench run at all,
        "no bench runs" (nothing was left unrecorded)."""
        device = f"{self.device} ({self.machine})" if self.device and self.machine else self.device
        where = " ".join(([f"on {device}"] if device else [])
                         + ([f"with {counted(self.threads, 'thread')}"] if self.threads is not None else []))
        missing = " and ".join(([] if self.device else ["device"]) + ([] if self.threads is not None else ["threads"]))
        unknown = (f"{missing} not recorded" if self.timed else "no bench runs") if missing else ""
        return ", ".join(part for part in (self.backend, f"batch {self.batch}", where, unknown) if part)


def bench_command(paths: Sequence[Path], comparison: Comparison) -> str:
    """`cnnlab bench source=...` that times `paths` in the setting `comparison` compares — its backend, batch size,
    thread count and device, as far as the bench runs recorded them — so that following it gives the report a record
    it reads: at bench's defaults (every physical core, batch sizes 1, 8, 32, torch and onnxruntime) the session timed
    another setting, and the report printed the same note and figures again. A paired session (several paths) times
    ONNX files only: under a PyTorch backend it names onnxruntime. Without bench runs there is no setting to keep.
    Where the report reads runs elsewhere than bench's default folder, `paths.outputs=` that folder
    (comparison.bench_outputs): else the run landed in ./outputs, unread, and the report printed the note again."""
    words = [path_argument("source", paths)]
    if comparison.timed:
        backend = "onnxruntime" if len(paths) > 1 and comparison.backend in TORCH_BACKENDS else comparison.backend
        words += [shlex.quote(f"bench.backends=[{backend}]"), shlex.quote(f"bench.batch_sizes=[{comparison.batch}]")]
        if comparison.threads is not None:
            words.append(f"bench.threads={comparison.threads}")
        if comparison.device not in (None, "cpu"):  # bench times on the CPU unless told (device=auto)
            device = str(comparison.device)  # cuda:0 as Hydra reads it; anything odd (run.json is untrusted) quoted
            plain = re.fullmatch(r"[\w.:-]+", device)
            words.append(shlex.quote(f"device={device if plain else hydra_quoted(device)}"))
    if comparison.bench_outputs is not None:  # followed, the run went to ./outputs and the note came back
        words.append(path_argument("paths.outputs", [comparison.bench_outputs]))
    return "cnnlab bench " + " ".join(words)


def check_comparison(comparison: Comparison, runs: Sequence[RunInfo]) -> None:
    """CnnlabError (exit 2) for a backend `cnnlab bench` cannot time or a batch size below 1; the fix names the valid
    values and what the bench runs among `runs` hold."""
    held = [r for run in runs if run.command == "bench" and not run.damaged for r in run.metrics.latency_records]
    if comparison.backend not in BACKENDS:
        timed = sorted({r.backend for r in held})
        raise CnnlabError(f"--backend {comparison.backend} is not a bench backend",
                          fix=f"choose one of {', '.join(BACKENDS)}"
                              + (f" (the bench runs here timed {', '.join(timed)})" if timed else ""))
    if comparison.device is not None and not comparison.device.strip():  # probe 180: read as no --device at all
        devices = sorted({str(r.device) for r in held if r.backend == comparison.backend})
        raise CnnlabError(f"--device {comparison.device!r} names no device",
                          fix="leave --device out for the most benchmarked one" +
                              (f", or give one the bench runs here timed on: {', '.join(devices)}" if devices else ""))
    if comparison.batch < 1:
        sizes = sorted({r.batch_size for r in held if r.backend == comparison.backend})
        raise CnnlabError(f"--batch {comparison.batch}: a batch size must be at least 1",
                          fix=f"use one the {comparison.backend} bench runs here timed: {', '.join(map(str, sizes))}"
                          if sizes else "use e.g. --batch 1")


@dataclass
class Row:
    run: RunInfo
    command: str
    model: str | None                     # None: the run recorded no model name
    dataset: str | None                   # None: the run recorded no dataset name
    dataset_key: DatasetIdentity          # only rows of one dataset identity are compared
    accuracy: float                       # top-1 on the validation split
    params: int | None
    flops: int | None
    file_bytes: int | None
    file_kind: str                        # "onnx" (deployable graph) or "pt" (checkpoint)
    source: Path | None                   # the model run this one was derived from
    source_file: Path | None = None       # ... or the model file, where that lies in no run (source=FILE.onnx)
    latency: LatencyRecord | None = None  # the matching bench record
    bench_run: Path | None = None
    bench_busy: str | None = None         # the bench run's warning that other processes kept cores busy meanwhile
    test_accuracy: float | None = None    # top-1 on the test split, from the newest `cnnlab evaluate split=test`
    evaluate_run: Path | None = None      # ... of the model on its own data
    test_read_at: str | None = None       # ... read at this root (a user folder moved since training: another one)
    test_note: str | None = None          # why there is no test top-1 although the model was evaluated
    test_split: tuple[Any, float, str] | None = None  # (data, started_at, whole-folder digest) of its test evaluation
    speedup: SpeedUp | None = None        # against `source`, from a paired session only (a search: its reference)
    pareto: bool = False
    source_ranked: bool = False           # repeats its source's network, and the source is ranked (pareto.py)
    # the row of its `source` run, shown or not (one beside the runs reported: probe 184), for its differences
    source_row: Row | None = field(default=None, repr=False, compare=False)
    notes: list[str] = field(default_factory=list)  # why it has no latency
    file_note: str | None = None          # a model file it recorded was deleted or changed since it ran (ModelFile)
    file_recorded: str = ""               # "deleted" / "changed": the size shown is the one run.json recorded
    precision: str = "fp32"               # what the model file computes in: fp32 | int8 | bf16 (model.precision)
    arch: str | None = None               # a searched network's arch string (run.json model.arch), or "stem=cifar"
    scored_on: str | None = None          # the runtime that scored the val top-1 where not onnxruntime (openvino)
    test_scored_on: str | None = None     # ... and the test top-1 (`cnnlab evaluate evaluate.runtime=openvino`)
    earlier_plan: bool = False            # a pipeline stage's run whose settings the pipeline's plan has no more
    stage_removed: bool = False           # ... because its stage is gone from the plan (not edited)
    swept: tuple[str, ...] = ()           # a sweep job's overrides that its sweep varies (mark_swept)

    @property
    def stage(self) -> str | None:
        """The pipeline stage this run was (run.json `pipeline.stage`), None for a run typed by hand."""
        stage = (self.run.data.get("pipeline") or {}).get("stage")
        return stage if isinstance(stage, str) else None

    @property
    def read_at(self) -> set[str]:
        """The roots this row's data was read at: for training, and for its test top-1 (a user folder)."""
        return {f for f in (self.dataset_key.folder, self.test_read_at) if f is not None}

    @property
    def model_digests(self) -> frozenset[str]:
        """The SHA-256 that names the run's network (run.json `digests`): its model.pt's where it wrote one, else its
        ONNX file's; equal: the very same network. Not both: a run's model.onnx records the run's own path in its
        metadata (probe 144: three seeds of a prune no seed changed wrote one model.pt and three ONNX files, and read
        as three replicates)."""
        digests = self.run.data.get("digests") or {}
        named = next((digests[k] for k in ("model", "onnx") if isinstance(digests.get(k), str)), None)
        return frozenset({named}) if named else frozenset()

    @property
    def run_paths(self) -> frozenset[Path]:
        return frozenset({self.run.path.resolve()})

    @property
    def source_paths(self) -> frozenset[Path]:
        return frozenset({self.source}) if self.source is not None else frozenset()

    @property
    def repeats_source(self) -> bool:
        """A quantize run that kept FP32: its model.onnx is its source's network, timed again — off the Pareto
        front, where timing noise alone decided which of the two got the star (probe 83)."""
        return self.command == "quantize" and self.precision == "fp32" and self.source is not None

    @property
    def display_model(self) -> str:
        """The model column: the model — a searched network with its arch string — and the precision of a
        quantize run (int8, bf16, or fp32 when FP32 was kept), with the runtime that scored it when that is not
        onnxruntime ("mobilenet_v2 (int8, openvino)": probe 73, one file reads 66.67 % on OpenVINO and 63.33 % on
        onnxruntime); "—" for a name the run did not record."""
        return self.model_scored_on(self.scored_on)

    def model_scored_on(self, runtime: str | None) -> str:
        """The model column for a score made on `runtime` (None: onnxruntime or PyTorch): the test top-1's runtime
        can differ from the val top-1's (an `evaluate` of a `quantize.runtime=openvino` file on onnxruntime)."""
        model = self.model or MISSING
        model = f"{model}[{self.arch}]" if self.arch else model
        notes = ([self.precision] if self.command == "quantize" else []) + ([runtime] if runtime else [])
        return f"{model} ({', '.join(notes)})" if notes else model

    @property
    def label(self) -> str:
        """"quantize:resnet18 (int8)"; the command alone when the run recorded no model name."""
        return f"{self.command}:{self.display_model}" if self.model or self.arch else self.command

    @property
    def p50_ms(self) -> float | None:
        return None if self.latency is None else float(self.latency.p50_ms)


def mark_swept(rows: Sequence[Row], runs: Iterable[RunInfo]) -> None:
    """Set .swept of each sweep job's row: its overrides that not every job of its sweep shares (a sweep folder's rows
    read `0` and `1`, nothing saying which was optim.lr=0.01: probe 180). A job is a run whose parent folder holds
    Hydra's multirun.yaml; its sweep's jobs are all of `runs` in that folder, reported or not."""
    sweeps: dict[Path, list[set[str]]] = {}
    for run in runs:
        if (run.path.parent / "multirun.yaml").is_file() and not run.damaged:
            sweeps.setdefault(run.path.parent.resolve(), []).append(set(run.data.get("overrides") or []))
    for row in rows:
        jobs = sweeps.get(row.run.path.parent.resolve())
        if jobs and len(jobs) > 1:
            shared = set.intersection(*jobs)
            row.swept = tuple(o for o in row.run.data.get("overrides") or [] if o not in shared)


def matching_runs(outputs: Path, pattern: str | None = None) -> list[RunInfo]:
    """Every run under `outputs` (any status), optionally only those whose folder (relative) matches `pattern`."""
    runs = []
    # a run matches by its own folder or by a link to it: the jobs a re-run sweep skipped are links to the earlier
    # sweep's runs, and `--runs 'SWEEP/*'` left them out, unsaid, where reporting SWEEP counted them (probe 206)
    links = run_links(outputs) if pattern is not None else {}
    for run in iter_runs(outputs):
        names = [run.path, *links.get(run.path.resolve(), [])]
        relative = [str(p.relative_to(outputs)) if p.is_relative_to(outputs) else str(p) for p in names]
        if pattern is None or any(fnmatch(name, pattern) for name in relative):
            runs.append(run)
    return runs


def usable(run: RunInfo) -> bool:
    """Completed runs, and damaged ones: the report lists those as left out, with the reason."""
    return run.status == "completed" or bool(run.damaged)


def collect_runs(outputs: Path, pattern: str | None = None) -> list[RunInfo]:
    """Completed (and damaged) runs under `outputs`, optionally only those whose folder (relative) matches `pattern`."""
    return [run for run in matching_runs(outputs, pattern) if usable(run)]


def _origins(runs: Iterable[RunInfo], links: RunLinks) -> dict[Path, Path]:
    """Export run → the model run it exported (exports of exports followed to the end)."""
    export_source = {r.path.resolve(): links.source_path(r) for r in runs if r.command == "export"}

    def origin(path: Path) -> Path:
        seen = set()
        while path in export_source and export_source[path] is not None and path not in seen:
            seen.add(path)
            path = export_source[path]  # type: ignore[assignment]
        return path

    return {path: origin(path) for path in export_source}


@dataclass(frozen=True)
class ModelFile:
    """What the size column shows: the bytes of the deployable file (its ONNX, or an export's; else model.pt), its
    kind, and `note` when a file the run recorded is gone (probe 56/57) or of another size (probe 98) since; `recorded`
    ("deleted" / "changed"): the bytes are those run.json recorded, as no file (or another file) is there now."""

    bytes: int | None
    kind: str
    note: str | None = None
    recorded: str = ""


def model_file(run: RunInfo, exports: dict[Path, list[RunInfo]]) -> ModelFile:
    gone = run.deleted_files()
    its_exports = exports.get(run.path.resolve(), [])
    # its own ONNX, else the newest export's (exports come oldest first), as before the ModelFile change
    writer, onnx = next(((r, path) for r in (run, *reversed(its_exports)) if (path := r.artifact("onnx")) is not None),
                        (run, None))
    if onnx is not None and writer.artifact_changed("onnx"):
        # probe 162: an INT8 model.onnx replaced by an FP32 one read "11.28 MB onnx" beside the INT8 file's top-1,
        # latency and speed-up, no note. The size recorded is the ONNX file's where it is the run's model file
        # (export, quantize); a prune run's records its model.pt's.
        recorded = None if "model" in (writer.data.get("artifacts") or {}) else writer.model.file_bytes
        return ModelFile(recorded, "onnx", f"{onnx.name} changed since it ran ({human_bytes(onnx.stat().st_size)} "
                                           "now): the row's figures are those of the file it wrote", recorded="changed")
    if onnx is not None:  # the deployable graph is there: a deleted checkpoint changes nothing shown
        return ModelFile(onnx.stat().st_size, "onnx")
    gone += _exports_deleted(its_exports)  # the timed file
    model = run.artifact("model")
    recorded = run.model.file_bytes
    if model is not None and recorded is not None and model.stat().st_size != recorded:
        # probe 98: a model.pt replaced by a 5-byte file read "0.0 kB pt", no note (its SHA-256 refuses it elsewhere)
        return ModelFile(recorded, "pt", f"{model.name} changed since it ran ({human_bytes(model.stat().st_size)} "
                                         f"now): the size shown is the one recorded", recorded="changed")
    if model is not None:
        return ModelFile(model.stat().st_size, "pt",
                         f"{listed(gone)} deleted since it ran: the size shown is its model.pt's" if gone
                         else None)
    note = f"{listed(gone)} deleted since it ran: the size shown is the one recorded" if gone else None
    # the file the recorded size is of: a quantize run writes no model.pt (probe 104: "78.1 kB pt" of its ONNX)
    kind = "pt" if "model" in (run.data.get("artifacts") or {}) else "onnx"
    return ModelFile(run.model.file_bytes, kind, note, recorded="deleted" if gone else "")


def _exports_deleted(exports: Sequence[RunInfo]) -> list[str]:
    """The deleted ONNX files of a run's exports, as a note says them: "its export's model.onnx", "the model.onnx of
    its 4 exports" (probe 169: "its export's model.onnx, its export's model.onnx, … and 1 more")."""
    names = [name for e in exports for name in e.deleted_files(("onnx",))]
    return [f"the {name} of its {counted(names.count(name), 'export')}" if names.count(name) > 1
            else f"its export's {name}" for name in dict.fromkeys(names)]


def replaced_stage_runs(runs: Iterable[RunInfo]) -> dict[Path, Path]:
    """Each completed pipeline stage run that a newer completed run of the same stage (its fingerprint: the same
    settings and seed) has replaced — run again because its model file was deleted, its images changed or an
    upstream stage ran again — → that newer run. Not a second seed (probe 57)."""
    # per workspace (<workspace>/runs/<command>/<date>/<time>): a copy of a workspace beside it is no newer attempt
    # (probe 106: every stage run of the original read as "replaced by" its own copy)
    attempts: dict[tuple[Path, str], list[Path]] = {}  # (workspace, fingerprint) → its completed runs, oldest first
    for run in runs:
        fingerprint = (run.data.get("pipeline") or {}).get("fingerprint")
        if run.status == "completed" and isinstance(fingerprint, str):
            above = run.path.resolve().parents
            attempts.setdefault((above[min(3, len(above) - 1)], fingerprint), []).append(run.path)
    return {old: paths[-1] for paths in attempts.values() for old in paths[:-1]}


def copies(runs: Iterable[RunInfo]) -> dict[Path, Path]:
    """Run folders that are copies of another one here (a backup `cp -r RUN RUN_backup`): the same recorded run
    folder and start time. Copy → the folder counted instead: the one the record names when it is among `runs`,
    else the first. A copy counted as a run of its own would be a second seed of the same training."""
    found: dict[tuple[str, str], list[RunInfo]] = {}
    for run in runs:
        recorded = run.data.get("run_dir")
        if not run.damaged and isinstance(recorded, str) and run.started:
            found.setdefault((os.path.realpath(recorded), run.started), []).append(run)
    copied: dict[Path, Path] = {}
    for (recorded, _), same in found.items():
        if len(same) < 2:
            continue
        kept = next((r for r in same if os.path.realpath(r.path) == recorded), same[0])
        copied.update({r.path: kept.path for r in same if r is not kept})
    return copied


# What two records of one run must agree on to be copies of it, not two versions of it (one edited).
_COPY_KEYS = ("status", "model", "dataset", "metrics", "digests")


def _copy_note(copy: RunInfo, kept: RunInfo) -> str:
    """Why `copy` is left out for `kept`; where their records differ (probe 125: one edited to 90 % where the other
    says 20 %), which keys and why the one counted is counted."""
    note = f"a copy of the run in {kept.path} (its record names the same folder and start time): counted once"
    differ = [key for key in _COPY_KEYS if copy.data.get(key) != kept.data.get(key)]
    if not differ:
        return note
    named = os.path.realpath(kept.path) == os.path.realpath(str(kept.data.get("run_dir")))
    return (f"{note} — but the two records differ in {', '.join(differ)}: one was changed after the run; the one "
            f"counted is {'the folder the records name' if named else 'the first by folder name'}")


def build_rows(runs: list[RunInfo], comparison: Comparison, attachable: Sequence[RunInfo] = (),
               links: RunLinks | None = None, around: Sequence[RunInfo] = (),
               left: Sequence[tuple[Path, str]] = (), plan: Collection[str] = ()
               ) -> tuple[list[Row], list[tuple[Path, str]], Comparison]:
    """(rows, left out with the reason, the comparison actually used). `attachable`: export, bench and evaluate runs
    outside the runs reported on (a sweep folder's models timed and scored by runs in the outputs folder around it),
    which attach to their rows as those in `runs` do; they make no row of their own. `around`: model runs there
    (damaged records too): a row's source among them is its reference — speed-up, test difference — without a row of
    its own (probe 184). `left`: runs left out before (replaced pipeline stage runs), whose reasons a row's note names
    where one is its source. `links`: where the runs that records name are now (cnnlab/links.py; default: among
    these runs). `plan`: the stage recipes of the workspace's newest pipeline plan, whose bench stage's session
    times a model before any newer session of another plan does (probe 213: a plan restored after an edit read its
    rows from the edited plan's session, which its pipeline's bench stage had not run)."""
    # oldest first, as model_file and the latencies read them (probe 151: the attachable runs came after the
    # reported ones, so a replaced export's file read as the newest)
    context = sorted([*runs, *(run for run in attachable if run.command in ATTACHED)],
                     key=lambda run: (run.started_at, str(run.path)))
    links = links or RunLinks(context)
    origins = _origins(context, links)

    def origin(path: Path | None) -> Path | None:
        return None if path is None else origins.get(path, path)

    # command (export, bench, evaluate) → model run → the runs of that command that came from it
    attached: dict[str, dict[Path, list[RunInfo]]] = {command: {} for command in ATTACHED}
    for run in context:
        target = origin(links.source_path(run))
        if target is not None and run.command in attached:
            attached[run.command].setdefault(target, []).append(run)
    exports, benches = attached["export"], attached["bench"]
    maker = _RowMaker(exports, attached["evaluate"], origin, links)
    rows, left_out = maker.rows(runs)
    # the sources of these rows among the runs around them (only those: a row reads its model files' digests), and
    # the damaged records there, which a source's note may name (a copy's: _left_out_source)
    wanted = {origin(links.source_path(run)) for run in runs if not run.damaged}
    references, unread = maker.rows([run for run in around if run.damaged or run.path.resolve() in wanted])
    _one_test_split_per_data([*rows, *references])
    # why each run that is no row is not: a row whose source is one says so (probe 180)
    not_rows = {path.resolve(): why for path, why in (*left_out, *unread, *left)}

    files = _file_sources(rows)
    paired = sessions(context, lambda subject: origin(links.subject(subject)) or _file_subject(subject, files))
    paired.sort(key=lambda session: (session.run.data.get("pipeline") or {}).get("recipe") not in plan)  # stable
    # only what timed the models reported: with --runs, another model's bench set the legend and refusals (probe 125)
    reported = {row.run.path.resolve() for row in rows}
    timings = [*(b for path, bs in benches.items() if path in reported for b in bs),
               *(s.run for s in paired if reported.intersection(s.subjects))]
    comparison = _settle(comparison, timings)
    _check_timed(comparison, timings)

    def matches(record: dict[str, Any]) -> bool:  # paired.py hands over the records as run.json holds them
        return comparison.admits(LatencyRecord.from_dict(record))

    by_path = {row.run.path.resolve(): row for row in (*references, *rows)}
    for row in rows:
        row.source_row = by_path.get(row.source) if row.source is not None else None
        row.arch = row.arch or _inherited_arch(row, by_path)

    def same_network(a: Path, b: Path) -> bool:  # deploy.paired.NetworkKey: it should time alike
        ra, rb = by_path.get(a), by_path.get(b)
        if ra is None or rb is None:  # a model file outside any run: known only to the row it is the source of
            return _keeps_file(ra, b) or _keeps_file(rb, a)
        return NetworkKey(ra.model, ra.params, ra.precision, ra.flops).same_as(
            NetworkKey(rb.model, rb.params, rb.precision, rb.flops))

    for row in rows:
        path = row.run.path.resolve()
        timed = next(((s, t) for s in paired if (t := s.timing(path, matches)) is not None), None)
        if timed is not None:  # the newest paired session that timed it
            row.bench_run, row.latency = timed[0].run.path, LatencyRecord.from_dict(timed[1].record)
            row.bench_busy = busy_warning(timed[0].run)
            subject = timed[0].run.data["paired"]["subjects"][timed[1].record["subject"]]
            timed_run, exported = links.subject(subject), _exported_for_the_bench(subject)
        else:
            _attach_latency(row, benches.get(path, []), comparison, paired=any(path in s.subjects for s in paired))
            bench = next((b for b in benches.get(path, []) if b.path == row.bench_run), None)
            timed_run = links.source_path(bench) if bench is not None else None
            exported = _exported_for_the_bench(bench.data.get("model")) if bench is not None else None
        _size_of_the_file_timed(row, timed_run, exports.get(path, []),
                                exported if row.latency is not None and row.latency.backend not in TORCH_BACKENDS
                                else None)
        row.speedup = _speedup_of(row, links, not_rows,
                                  versus=lambda source: speedup(path, source, paired, matches, same_network,
                                                                unpaired=_unpaired_note(row, source, comparison)),
                                  timed_both=any(path in s.subjects and row.source in s.subjects for s in paired))
    return rows, left_out, comparison


@dataclass
class _RowMaker:
    """Rows of model runs, with the files, test scores and sources their attached runs give them."""

    exports: dict[Path, list[RunInfo]]       # model run → its export runs
    evaluations: dict[Path, list[RunInfo]]   # model run → its evaluate runs
    origin: Callable[[Path | None], Path | None]  # a source folder → the model run behind it (an export's source)
    links: RunLinks
    folders_now: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # digests, once per folder

    def rows(self, runs: Sequence[RunInfo]) -> tuple[list[Row], list[tuple[Path, str]]]:
        """(the rows of `runs`, those left out with the reason)."""
        rows: list[Row] = []
        left_out: list[tuple[Path, str]] = []
        copied = copies(runs)
        by_folder = {run.path: run for run in runs}
        for run in runs:
            if run.damaged:
                left_out.append((run.path, f"damaged run.json: {run.damaged}"))
            elif run.path in copied:
                left_out.append((run.path, _copy_note(run, by_folder[copied[run.path]])))
            elif run.command in MODEL_COMMANDS and run.metrics.val_acc is None:
                left_out.append((run.path, _no_top1(run)))
            elif run.command in MODEL_COMMANDS:
                rows.append(self.row(run))
        return rows, left_out

    def row(self, run: RunInfo) -> Row:
        file = model_file(run, self.exports)
        evaluations = self.evaluations.get(run.path.resolve(), [])
        test = _newest_test(evaluations, run.dataset.identity)
        split = _test_split(test) if test is not None else None
        outdated = split is not None and _outdated_test(split[0], split[2], self.folders_now)
        if outdated:  # probe 77: a seed's score on test/ as it was, averaged with one on test/ as it is
            test = split = None
        accuracy = run.metrics.val_acc
        assert accuracy is not None  # `rows` leaves a run without one out
        return Row(run=run, command=run.command, model=run.model.name, dataset=run.dataset.name,
                   dataset_key=run.dataset.identity, accuracy=float(accuracy),
                   params=run.model.params, flops=run.model.flops, file_bytes=file.bytes, file_kind=file.kind,
                   source=self.origin(self.links.source_path(run)), source_file=_file_source(run),
                   test_accuracy=None if test is None else test.metrics.test_acc,
                   evaluate_run=None if test is None else test.path,
                   test_read_at=None if test is None else test.dataset.identity.folder,
                   test_note=None if test is not None else OUTDATED_TEST if outdated else
                   _other_data_note(evaluations, run.dataset.identity),
                   test_scored_on=None if test is None else _scored_on(test, "evaluate"),
                   test_split=split,
                   precision=precision_of(run), arch=_arch(run), file_note=file.note,
                   file_recorded=file.recorded, scored_on=_scored_on(run, "quantize"))


def _exported_for_the_bench(model: Any) -> int | None:
    """The bytes of the ONNX file a bench exported for its timing, from its record of the model timed (run.json
    `model`, or a paired subject's entry; untrusted), None where it timed a file that was there already."""
    if not isinstance(model, Mapping) or model.get("onnx_origin") != EXPORTED_FOR_BENCH:
        return None
    size = model.get("onnx_bytes")
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def _size_of_the_file_timed(row: Row, timed_run: Path | None, exports: Sequence[RunInfo],
                            exported: int | None = None) -> None:
    """The row's size, that of the export whose file its latency timed (model_file alone shows the newest export's:
    probe 170, the size of an opset-28 export beside the latency of the opset-18 one) — or, where the bench timed
    the run's model.pt through an ONNX file it exported for the timing (`exported`: its bytes), that file's, not an
    export's it never timed (probe 219: 0.26 MB of an opset-21 export beside the p50 of a 0.28 MB one)."""
    timed = next((e for e in exports if timed_run is not None and e.path.resolve() == timed_run.resolve()), None)
    if timed is None and exported is not None and exports and row.run.artifact("onnx") is None \
            and timed_run is not None and timed_run.resolve() == row.run.path.resolve():
        row.file_bytes, row.file_kind = exported, "onnx"
    if timed is None:
        return
    file = model_file(row.run, {row.run.path.resolve(): [timed]})
    row.file_bytes, row.file_kind, row.file_note, row.file_recorded = file.bytes, file.kind, file.note, file.recorded


def _speedup_of(row: Row, links: RunLinks, not_rows: Mapping[Path, str], *, versus: Any, timed_both: bool
                ) -> SpeedUp | None:
    """The row's speed-up over its source (`versus(source)`: from the paired sessions), or why there is none: its
    source's folder holds another model now, the source is gone and no session timed the two, it is left out
    (`not_rows`: why), or it is neither among the runs reported nor beside them (probes 104, 110: each was "—"
    unsaid); a search's over its search.reference; a model made from a file outside any run (`source_file`), over
    that file as the paired sessions that timed it recorded it (it was "—" unsaid too)."""
    link = links.source_of(row.run)
    if link is not None and link.replaced:  # the folder's timings are another model's
        return SpeedUp(UNPAIRED, note=f"{link.problem}: no speed-up against it")
    if row.source is None and row.source_file is not None:  # a model file outside any run, timed by its path
        return versus(row.source_file)
    gone = row.source is not None and links.run(row.source) is None
    if row.source is not None and (row.source_row is not None or (gone and timed_both)):
        return versus(row.source)  # a gone source's session still counts
    if row.source is None or row.run.command == "search":
        return reference_speedup(row.run)
    left = _left_out_source(row, not_rows)
    if left is not None:
        return SpeedUp(UNPAIRED, note=f"its source run {left[0]} is left out ({left[1]}): no speed-up or test "
                                      "difference against it")
    if gone:
        return SpeedUp(UNPAIRED, note=f"its source run {row.source} is gone, and no bench session timed the two: "
                                      "no speed-up against it")
    return SpeedUp(UNPAIRED, note=f"its source run {row.source} is not among the runs reported (it lies outside this "
                                  "folder and the outputs folder around it): no speed-up or test difference against it")


def _left_out_source(row: Row, not_rows: Mapping[Path, str]) -> tuple[Path, str] | None:
    """(folder, why) of the run left out that is `row`'s source: at the folder its record names, or at that folder's
    place where the row's own folder was copied or moved since it ran — a damaged record cannot say where it was
    written, so cnnlab/links.py follows the source back to the original folder (probe 180: after `cp -a outputs c1`
    with c1's source damaged, the note named the original's run, which is no run of the report)."""
    assert row.source is not None
    places = [row.source]
    written = row.run.data.get("run_dir")
    # the folder above the row's own moved, its source with it
    moved = moved_root(Path(os.path.realpath(written)), row.run.path.resolve()) \
        if isinstance(written, str) and written else None
    if moved is not None and row.source.is_relative_to(moved[0]):
        places.insert(0, moved[1] / row.source.relative_to(moved[0]))
    return next(((place, not_rows[place]) for place in places if place in not_rows), None)


def _keeps_file(row: Row | None, file: Path) -> bool:
    """Whether `row` ships the network of `file`, its source outside any run: a quantize run that kept that file in
    FP32 (Row.repeats_source, for a file) — timed beside it, the difference is noise (`cnnlab bench` itself read the
    pair "1.00× (same network: noise)" where the report read "1.00× faster")."""
    return row is not None and row.source_file == file and row.command == "quantize" and row.precision == "fp32"


def _unpaired_note(row: Row, source: Path, comparison: Comparison) -> str:
    """Why `row` has no speed-up over `source` when no session timed the two, with the command that times them in
    the setting compared; a source that is a file outside any run says so (a `cnnlab quantize source=FILE.onnx` read
    "—" with no note: docs/report.md has every "—" say why)."""
    command = bench_command([source, row.run.path], comparison)
    if row.source is None and row.source_file == source:
        return f"its source is a file outside any run ({source}), and no bench session timed the two: time both in " \
               f"one session, e.g. {command}"
    return f"no paired timing with its source: time both in one session, e.g. {command}"


# the kinds of recorded source a bench session can time (a state dict is no model file: model.weights=init.pth)
_TIMED_KINDS = ("checkpoint", "onnx")


def _file_source(run: RunInfo) -> Path | None:
    """The model file `run` was made from, where its record names no run around it (`cnnlab quantize
    source=FILE.onnx`: run.json `source.run` null): the file's path as recorded, resolved; None otherwise."""
    return _loose_file(run.data.get("source"))


def _file_sources(rows: Sequence[Row]) -> dict[Path, set[str | None]]:
    """The model files outside any run that `rows` were made from → the SHA-256s their runs recorded reading."""
    files: dict[Path, set[str | None]] = {}
    for row in rows:
        if row.source_file is not None:
            digest = (row.run.data.get("source") or {}).get("sha256")
            files.setdefault(row.source_file, set()).add(digest if isinstance(digest, str) else None)
    return files


def _file_subject(subject: Any, files: dict[Path, set[str | None]]) -> Path | None:
    """The file among `files` that a paired session's subject timed where it names no run (`cnnlab bench
    source=[FILE.onnx,RUN]`): matched by its path as the session recorded it, and by its SHA-256 where both records
    hold one (the same path holding another file since is another model); None otherwise."""
    source = subject.get("source") if isinstance(subject, dict) else None
    path = _loose_file(source)
    if path is None or path not in files:
        return None
    digest = source.get("sha256")  # type: ignore[union-attr]
    read = files[path]
    return path if not isinstance(digest, str) or None in read or digest in read else None


def _loose_file(recorded: Any) -> Path | None:
    """The model file (resolved) a recorded source ({run, path, kind, sha256}: run.json `source`, a session's
    subject's) names where it names no run, and is of a kind bench times; None otherwise."""
    if not isinstance(recorded, dict) or recorded.get("run") or recorded.get("kind") not in _TIMED_KINDS \
            or not isinstance(recorded.get("path"), str) or not recorded["path"]:
        return None
    try:
        return Path(os.path.realpath(recorded["path"]))
    except (OSError, ValueError):  # ValueError: a NUL in an untrusted path
        return None


def _arch(run: RunInfo) -> str | None:
    """The arch string of a run whose model is a searched network (model=searched, or a search run's choice);
    "stem=cifar" for a zoo network built with the small-image stem (run.json model.stem)."""
    arch, stem = run.model.extra.get("arch"), run.model.extra.get("stem")
    if isinstance(arch, str) and arch:
        return arch
    return f"stem={stem}" if isinstance(stem, str) and stem and stem != "imagenet" else None


def _inherited_arch(row: Row, by_path: dict[Path, Row]) -> str | None:
    """For a run whose model is its source's network in another form (quantize: an INT8 ONNX file), the source's
    arch string or stem, up the chain of such runs: a model.stem=cifar ResNet-18 stays one, and its INT8 row must
    not read as the stock network. Other commands record their network's own shape (a stock network records none)."""
    seen: set[Path] = set()
    while row.command in CONVERTING_COMMANDS and row.source is not None and row.source not in seen:
        seen.add(row.source)
        parent = by_path.get(row.source)
        if parent is None or parent.model != row.model:
            return None
        if parent.arch is not None or parent.command not in CONVERTING_COMMANDS:
            return parent.arch
        row = parent
    return None


def precision_of(run: RunInfo) -> str:
    """What a run's model computes in: its recorded model.precision (a quantize run that kept FP32 says fp32);
    runs recorded before that field existed: int8 for quantize, else fp32."""
    recorded = run.model.extra.get("precision")
    if recorded in ("fp32", "fp16", "int8", "bf16"):
        return str(recorded)
    return "int8" if run.command == "quantize" else "fp32"


def recorded_fraction(value: Any) -> float | None:
    """A recorded accuracy (metrics' untyped extras): a finite number in [0, 1], else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def run_section(run: RunInfo, name: str) -> dict[str, Any]:
    """A section of a run's run.json (untrusted input: {} unless a mapping)."""
    section = run.data.get(name)
    return section if isinstance(section, dict) else {}


def _no_top1(run: RunInfo) -> str:
    """Why a model run has no row: a self-supervised pretraining has no classifier to score — its kNN accuracy
    says how its features sort the val images (probe 83: "no validation accuracy recorded" said neither)."""
    method = run_section(run, "pretrain").get("method")
    if method in ("simclr", "simsiam"):
        knn = recorded_fraction(run.metrics.extra.get("knn_acc"))
        seen = f"kNN accuracy {knn:.2%}" if knn is not None else "no kNN accuracy (no labelled val split)"
        return f"self-supervised ({method}): {seen}; no classifier to score — fine-tune it for a top-1 " \
               "(cnnlab finetune model.weights=RUN)"
    return "no validation accuracy recorded"


def _scored_on(run: RunInfo, section: str) -> str | None:
    """The runtime a quantize run scored its candidates on (`quantize.timing.runtime`), or an evaluate run its split
    (`evaluate.runtime`), when it is neither onnxruntime, which the report's latencies and a reader assume, nor
    PyTorch for a checkpoint; None otherwise and for records without it."""
    recorded = run_section(run, section)
    if section == "quantize":
        recorded = recorded.get("timing") if isinstance(recorded.get("timing"), dict) else {}
    runtime = recorded.get("runtime")
    return str(runtime) if isinstance(runtime, str) and runtime not in ("onnxruntime", "torch", "pytorch") else None


OUTDATED_TEST = ("its newest test evaluation scored the folder's test split as it was before it changed (the training "
                 "pictures are as they were): evaluate it again (`cnnlab evaluate source=RUN split=test`)")


def _test_split(evaluation: RunInfo) -> tuple[Any, float, str] | None:
    """(its data for test scores, when it ran, the whole-folder digest it read) of an evaluation of a user folder that
    recorded both digests; None otherwise."""
    identity, content = evaluation.dataset.identity, evaluation.dataset.extra.get("content")
    if identity.train_content is None or not isinstance(content, str):
        return None
    return identity.test_images, evaluation.started_at, content


def _one_test_split_per_data(rows: Sequence[Row]) -> None:
    """Of the test scores of one data (the same training pictures) that read different versions of its test split —
    where the folder on disk could not tell (probe 79: a folder moved, then test/ edited and one seed evaluated at
    the new place: 70.45 ± 28.93 % averaged two test sets) — keep those of the newest evaluation's version; the
    others are left out with the note, so that no table or seed group mixes two test splits."""
    newest: dict[Any, tuple[float, str]] = {}
    for row in rows:
        if row.test_split is not None and row.test_accuracy is not None:
            data, started, content = row.test_split
            if data not in newest or started >= newest[data][0]:
                newest[data] = (started, content)
    for row in rows:
        if row.test_split is not None and row.test_accuracy is not None \
                and row.test_split[2] != newest[row.test_split[0]][1]:
            row.test_accuracy, row.evaluate_run, row.test_read_at, row.test_scored_on = None, None, None, None
            row.test_note = OUTDATED_TEST


def _outdated_test(identity: DatasetIdentity, recorded: str, digests: dict[str, tuple[str | None, str | None]]
                   ) -> bool:
    """Whether an evaluation of `identity` (a user folder recorded with both digests: _test_split), which read the
    whole folder as `recorded`, scored a test split that is not the folder's now: its training pictures as recorded,
    the whole folder not (probe 77: a seed's score on test/ as it was averaged with one on test/ as it is; probe 78:
    a rule that took the newest evaluation for the current test split showed a stale one after test/ was put back).
    A folder that is gone, or whose training pictures changed too, cannot tell its test split apart: the score is
    shown, as before. `digests`: the folders' (whole, training) digests now, filled once per folder."""
    if identity.folder is None:
        return False
    root = os.path.realpath(identity.folder)
    if root not in digests:
        digests[root] = folder_and_training_digests(Path(root))
    whole, training = digests[root]
    return whole is not None and whole != recorded and training == identity.train_content


def _test_scores(evaluations: list[RunInfo]) -> list[RunInfo]:
    return [r for r in evaluations if r.metrics.split == "test" and r.metrics.test_acc is not None]


def _newest_test(evaluations: list[RunInfo], data: DatasetIdentity) -> RunInfo | None:
    """The newest evaluate run that scored the test split of the model's own data (`data`): a score on other data
    (`cnnlab evaluate dataset.root=ELSEWHERE`) says nothing about the model's test accuracy. None when the model did
    not record its data: unknown data is never taken for the same."""
    if not data.known:
        return None
    return max((r for r in _test_scores(evaluations) if r.dataset.identity.test_images == data.test_images),
               key=lambda r: r.started_at, default=None)


def _other_data_note(evaluations: list[RunInfo], data: DatasetIdentity) -> str | None:
    """Why a model evaluated on the test split shows no test top-1: every such evaluation scored other data."""
    other = sorted(_test_scores(evaluations), key=lambda r: r.started_at)
    if not other:
        return None
    newest = other[-1]
    what = dataset_title(newest.dataset.identity)
    more = f" (and {len(other) - 1} more)" if len(other) > 1 else ""
    mine = "its own data is not recorded" if not data.known else f"not its own, {dataset_title(data)}"
    return f"its test evaluations scored other data: {newest.path}{more} on {what}; {mine}"


def dataset_title(data: DatasetIdentity, *, val_split: bool = True) -> str:
    """"digits (10 classes, 64 px)"; a user folder's at its root ("imagefolder (3 classes, 32 px) at /data/rgb"), a
    generated set's with its settings; with `val_split`, what decides its validation images ("digits (10 classes,
    64 px; 360 val images: val_fraction 0.2, dataset.seed 0)"). What the runs did not record is left out
    ("dataset not recorded" for all)."""
    details = ", ".join(([] if data.num_classes is None else [f"{data.num_classes} classes"])
                        + ([] if data.image_size is None else [f"{data.image_size} px"]))
    if data.settings:
        details += ("; " if details else "") + ", ".join(f"{key} {value}" for key, value in data.settings)
    split = dict(data.val_split) if val_split else {}
    if split:  # "360 val images: val_fraction 0.2, seed 0"
        count = f"{split.pop('val_size')} val images" if "val_size" in split else "val"
        # dataset.seed, not seed: the table's rows show their own (training) seeds
        drawn = ", ".join(f"{'dataset.seed' if key == 'seed' else key} {value}" for key, value in split.items())
        details += ("; " if details else "") + count + (f": {drawn}" if drawn else "")
    name = data.name if data.name is not None else "dataset not recorded"
    title = f"{name} ({details})" if details else name
    if data.folder is not None:
        return f"{title} at {data.folder}"
    return title + (", folder not recorded" if data.name in FOLDER_DATASETS else "")


def _settle(comparison: Comparison, benches: list[RunInfo]) -> Comparison:
    """Fill in the device and thread count the benches most often used for this backend and batch (the threads:
    on the device asked for)."""
    # a paired session's records: one per subject
    matching = [r for b in benches for r in timed_records(b)
                if r.backend == comparison.backend and r.batch_size == comparison.batch]

    def most_common(key: str, records: list[LatencyRecord]) -> Any:
        values = [getattr(r, key) for r in records]
        return max(set(values), key=lambda v: (values.count(v), str(v))) if values else None

    device = comparison.device or most_common("device", matching)
    on_device = [r for r in matching if r.device == device]
    threads = comparison.threads if comparison.threads is not None else most_common("threads", on_device)
    # the machine: the one that timed most at that thread count; a tie goes to this machine (probe 108: counted over
    # every thread count, and ties broken by name, it took a laptop's CPU over the one that timed the setting more)
    named = [r for r in on_device if r.threads == threads and r.machine is not None]
    machine = comparison.machine
    if machine is None and len({r.machine for r in named}) > 1:
        here = {this_machine()}
        counts = {m: sum(r.machine == m for r in named) for m in {r.machine for r in named}}
        machine = max(counts, key=lambda m: (counts[m], m in here, str(m)))
    return replace(comparison, device=device, threads=threads, timed=any(b.metrics.latency_records for b in benches),
                   machine=machine)


def this_machine() -> str | None:
    """This machine's CPU as machine_label names a bench run's (cnnlab.environment.cpu_info: no torch)."""
    from cnnlab.environment import cpu_info

    return machine_label({"cpu": cpu_info()}, "cpu")


def timed_records(bench: RunInfo) -> list[LatencyRecord]:
    """A bench run's latency records, each with the machine that timed it (report.paired.machine_label)."""
    environment = bench.data.get("environment")
    return [replace(r, machine=r.machine or machine_label(environment, r.device))
            for r in bench.metrics.latency_records]


def _timed_setting(record: LatencyRecord) -> str:
    """"onnxruntime, batch 1, on cpu with 2 threads" for one bench record."""
    return Comparison(record.backend, record.batch_size, record.device, record.threads,
                      machine=record.machine).describe()


def _setting_order(record: LatencyRecord) -> tuple[Any, ...]:
    """Settings listed by backend, then batch size as a number (batch 8 before 32, not as text), device, threads."""
    return record.backend, record.batch_size, record.device, record.threads or 0, str(record.machine)


def _check_timed(comparison: Comparison, benches: list[RunInfo]) -> None:
    """CnnlabError (exit 2) when the models' bench runs timed something, but nothing in the setting asked for: a
    report with every latency blank is no comparison. The fix lists the settings they did time."""
    held = [r for b in benches for r in timed_records(b)]
    if not held or any(comparison.admits(r) for r in held):
        return
    machines = sorted({str(r.machine) for r in held if r.machine is not None})
    if comparison.machine is not None and comparison.machine not in machines:  # probe 108: the fix named batches
        raise CnnlabError(f"--machine {comparison.machine}: no bench run here names that machine",
                          fix="give one as the report names it: " + "; ".join(repr(m) for m in machines)
                          if machines else "leave --machine out: the bench runs here name no machine")
    where = " ".join(([f"on {comparison.device}"] if comparison.device else [])
                     + ([f"with {counted(comparison.threads, 'thread')}"] if comparison.threads is not None else []))
    asked = ", ".join(part for part in (comparison.backend, f"batch {comparison.batch}", where) if part)
    same = [r for r in held if r.backend == comparison.backend]
    on_device = [r for r in same if comparison.device is None or r.device == comparison.device]
    described = {_timed_setting(r): r for r in same or held}
    timed = "; ".join(sorted(described, key=lambda text: _setting_order(described[text])))
    if same and not on_device:  # probe 113: `--device cuda` where all ran on the CPU was told to pick a batch
        devices = " or ".join(f"--device {d}" for d in sorted({str(r.device) for r in same}))
        fix = f"use a device the {comparison.backend} bench runs here timed on: {devices} ({timed})"
    elif on_device:
        batches = ", ".join(map(str, sorted({r.batch_size for r in on_device})))
        fix = f"use one the {comparison.backend} bench runs here timed: {batches} ({timed})"
    else:
        fix = f"use a setting the bench runs here timed: {timed}"
    raise CnnlabError(f"no bench run here timed the setting asked for ({asked})", fix=fix)


def busy_warning(bench: RunInfo) -> str | None:
    """The warning a bench run recorded that other processes kept cores busy while it timed (contention.busy_note),
    None where it recorded none (run.json is untrusted: only text entries count)."""
    warnings = bench.data.get("warnings")
    return next((w for w in warnings if isinstance(w, str) and w.startswith(BUSY_PREFIX)), None) \
        if isinstance(warnings, list) else None


def _attach_latency(row: Row, benches: list[RunInfo], comparison: Comparison, *, paired: bool = False) -> None:
    """The newest bench record of this model that matches the comparison exactly; else a note saying why there is
    none (`paired`: a paired session timed the model, in another setting)."""
    for bench in sorted(benches, key=lambda b: b.started_at, reverse=True):
        for record in timed_records(bench):
            if comparison.admits(record):
                row.latency, row.bench_run, row.bench_busy = record, bench.path, busy_warning(bench)
                return
    if benches or paired:
        row.notes.append(f"no timing in the setting compared ({comparison.describe()})")
    else:
        row.notes.append(f"not benchmarked ({bench_command([row.run.path], comparison)})")
