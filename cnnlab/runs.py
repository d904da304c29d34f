"""Run folders and their `run.json`, and resolution of `source=` / `model.weights=` references.

A run folder is `outputs/<command>/<date>/<time>/` (multirun: `.../<time>-multirun/<job>/`) holding
`run.json` (this module), `model.pt`, maybe `model.onnx`, `bench.json`, and Hydra's `.hydra/`.
A reference names a run by folder, by file (`.../model.pt`, `.../model.onnx`), or as
`latest` / `latest:<command>` (the newest *completed* run, optionally of one command).

A run's status is what its process last wrote (running, completed, failed, interrupted), except that a
`running` run whose process is gone from this host reads `dead` (SIGKILL, the OOM killer, a power cut):
run.json records pid, host and the process's start time, and the check is made on every read — the file is
never rewritten for it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Iterable, Iterator, Mapping, Sequence, TypeVar

from cnnlab.commands import COMMANDS
from cnnlab.errors import CnnlabError
from cnnlab.fileio import (NOT_A_REGULAR_FILE, NotARegularFile, claim, file_sha256, file_version, is_regular_file,
                           read_json, read_yaml_mapping, why_missing, write_json)
from cnnlab.hydra_args import path_argument
from cnnlab.records import (SECTIONS, DatasetSection, MetricsSection, ModelSection, RecordProblem, Section,
                            SourceSection, artifact_escape, artifacts_from_dict, type_problem)
from cnnlab.wording import listed

RUN_FILE = "run.json"
RUN_ID = "run_id"               # run.json and last.pt (its `extra`): which run a training state belongs to
MODEL_FILE = "model.pt"        # final weights + what rebuilds the architecture (weights_only loadable)
SAVED_CONFIG = Path(".hydra") / "config.yaml"  # the config a run ran with (a resumed run: the one it continued)
HYDRA_RECORD = Path(".hydra") / "hydra.yaml"  # Hydra's own record of a run: where it started, its group choices
STATE_FILE = "last.pt"         # resumable training state, rewritten atomically every epoch
ONNX_FILE = "model.onnx"
BENCH_FILE = "bench.json"
SCHEMA_VERSION = 1
PIPELINE_TAG_ENV = "CNNLAB_PIPELINE_TAG"  # set by `cnnlab pipeline` for its stages; recorded in run.json
FINISHED = ("completed",)
DEAD = "dead"                  # never written: read for a `running` run whose process is gone
RESUMABLE_STATUSES = ("interrupted", "failed", DEAD)  # what `resume=true` continues
WRITTEN_STATUSES = ("running", "completed", "failed", "interrupted")  # what RunRecord writes (DEAD is read)
# The artifacts a later command reads as a model: run.json `digests` keeps their SHA-256, taken when the run wrote
# them, and a source naming one is checked against it (`check_intact`) — the run's scores are that file's only.
DIGESTED = ("model", "onnx")
NO_CHECKPOINT = "no_checkpoint"  # run.json: why a run of a resumable command keeps no last.pt by design


def hydra_runtime(run_dir: Path) -> dict[str, Any]:
    """Hydra's record of how a run was started (.hydra/hydra.yaml `hydra.runtime`: `cwd`, `choices`, ...); {} when
    it is missing or unreadable. Untrusted: callers check each value's type."""
    hydra = (read_yaml_mapping(run_dir / HYDRA_RECORD) or {}).get("hydra")
    runtime = hydra.get("runtime") if isinstance(hydra, dict) else None
    return runtime if isinstance(runtime, dict) else {}


def no_checkpoint_reason(data: Mapping[str, Any]) -> str | None:
    """Why the run (run.json's `data`) keeps no last.pt by design — a linear probe on cached features — or None;
    a record is untrusted input: anything but a short text is None."""
    reason = data.get(NO_CHECKPOINT)
    return reason if isinstance(reason, str) and 0 < len(reason) <= 200 else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) from Linux's /proc/PID/stat; None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces and ')'
    try:
        return fields[0], int(fields[19])       # fields 3 (state) and 22 (starttime) of proc(5)
    except (IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """What identifies the process writing a run: pid, host, and (Linux) the boot and the process's start
    time, so that a pid reused by another process after a reboot or a crash is not taken for the run's."""
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return {"pid": pid, "host": socket.gethostname(), "start_ticks": stat[1] if stat else None,
            "boot_id": _boot_id()}


def process_alive(identity: dict[str, Any] | None) -> bool | None:
    """Whether the process of `identity` (see process_identity) still runs: True or False on the host that
    recorded it, None where that cannot be told (another host, an old record without a pid)."""
    if not identity or not isinstance(identity.get("pid"), int) or identity.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if identity.get("boot_id") and boot and identity["boot_id"] != boot:
        return False  # the machine rebooted since: every process of that boot is gone
    pid = identity["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    except OSError:
        return None
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: the pid exists, which is all that can be known
    state, ticks = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return identity.get("start_ticks") in (None, ticks)  # another start time: the pid was reused


def started_seconds(started: str) -> float:
    """A recorded `started` time (ISO 8601, usually with its UTC offset) in seconds since the epoch; a time without
    an offset is this machine's local time; -inf for an empty or unreadable one (such runs sort first)."""
    try:
        return _dt.datetime.fromisoformat(started).timestamp() if started else float("-inf")
    except ValueError:
        return float("-inf")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


class RunRecord:
    """The live `run.json` of the current run. Every change is written atomically at once, so a
    crash leaves a readable record whose status says `running` (or `failed`/`interrupted`)."""

    def __init__(self, run_dir: Path, data: dict[str, Any], *, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.data = data
        self.enabled = enabled  # False on DDP ranks > 0: rank 0 alone writes
        self._clock = time.monotonic()

    @classmethod
    def start(cls, run_dir: Path, command: str, *, overrides: Iterable[str] = (),
              environment: dict[str, Any] | None = None, enabled: bool = True) -> "RunRecord":
        data = {
            "schema": SCHEMA_VERSION,
            # which run a last.pt belongs to (steps/resume.check_state_is_the_runs; probe 145: another run's one-epoch
            # file copied in was taken for this run's own)
            RUN_ID: uuid.uuid4().hex,
            "command": command,
            "status": "running",
            "started": _now(),
            "ended": None,
            "run_dir": str(run_dir),
            "overrides": list(overrides),
            "source": None,
            "model": None,
            "dataset": None,
            "metrics": {},
            "artifacts": {},
            "environment": environment or {},
            "error": None,
            "process": process_identity(),  # tells a live run from a killed one (RunInfo.status)
        }
        record = cls(run_dir, data, enabled=enabled)
        if enabled and not claim(run_dir / RUN_FILE):
            # probe 98: two commands given one hydra.run.dir (or hydra.sweep.dir) at once both passed the check for
            # a run.json there; one's record replaced the other's, exit 0, beside the other's .hydra/config.yaml
            raise CnnlabError(f"{run_dir} already holds a run: another cnnlab process wrote its {RUN_FILE} there a "
                              "moment ago (two commands given one hydra.run.dir or hydra.sweep.dir at once?)",
                              fix="give each command its own folder, or drop hydra.run.dir= / hydra.sweep.dir= and "
                                  "let cnnlab name one per run (it never shares one)")
        record.save()
        return record

    def save(self) -> None:
        if self.enabled:
            write_json(self.run_dir / RUN_FILE, self.data)

    def update(self, **fields: Any) -> None:
        """Set top-level fields; dict values merge into existing dicts (metrics, artifacts, ...)."""
        for key, value in fields.items():
            current = self.data.get(key)
            if isinstance(current, dict) and isinstance(value, dict):
                current.update(value)
            else:
                self.data[key] = value
        self.save()

    def add_artifact(self, name: str, path: Path) -> None:
        """Record the file `path` as artifact `name`, with its SHA-256 for a model file (DIGESTED): called once the
        file is written whole (a file not there yet gets no digest, and is then read unchecked)."""
        sha256 = file_sha256(path) if name in DIGESTED and self.enabled else None
        self.update(artifacts={name: os.path.relpath(path, self.run_dir)},
                    **({"digests": {name: sha256}} if sha256 is not None else {}))

    def finish(self, status: str, *, metrics: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.data["status"] = status
        self.data["ended"] = _now()
        self.data["duration_s"] = round(time.monotonic() - self._clock, 1)
        if metrics:
            self.data["metrics"].update(metrics)
        if error:
            self.data["error"] = error
        self.save()


# ------------------------------------------------------------------------------ reading records back
# run.json is untrusted input (hand-edited, truncated by a full disk, copied from elsewhere): every field a
# reader uses is checked once, on read. A record that fails is kept as a *damaged* run, listed with the reason
# and skipped by latest/report/resume, never silently dropped.
DAMAGED = "damaged"            # never written: read for a run.json that cannot be used
# top-level fields → accepted types (None allowed everywhere but in `command` and `status`); the sections
# (model, dataset, source, metrics, artifacts) are checked by their typed readers in cnnlab/records.py.
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "command": (str,), "status": (str,), "started": (str,), "ended": (str,), "run_dir": (str,),
    "overrides": (list,), "pipeline": (dict,), "job": (dict,), "environment": (dict,), "process": (dict,),
    "error": (str,), "digests": (dict,), "paired": (dict,), "run_id": (str,)}
# the fields of the sections that recognise a run done before (a pipeline's stage; a sweep's or SLURM's job)
_NESTED_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "pipeline": {"fingerprint": (str,), "inputs": (dict,)},
    "job": {"fingerprint": (str,), "num": (int,), "slurm": (dict,)},
    "paired": {"subjects": (list,), "rounds": (int,)}}  # a paired bench session (probe 107: unchecked, a traceback)


def record_problem(data: Any, run_dir: Path) -> str | None:
    """Why a decoded run.json cannot be used as a run record, or None when every field readers use is sound."""
    if not isinstance(data, dict):
        return f"it holds a JSON {type(data).__name__}, not a run record"
    for key, types in _TOP_FIELDS.items():
        problem = type_problem(key, data.get(key), types, required=key in ("command", "status"))
        if problem:
            return problem
    for section, fields in _NESTED_FIELDS.items():
        for key, types in fields.items():
            problem = type_problem(f"{section}.{key}", (data.get(section) or {}).get(key), types)
            if problem:
                return problem
    if data["command"] not in COMMANDS or not COMMANDS[data["command"]].records_run:  # probe 209: "rm -rf" was a
        # completed run in `list runs`, a source, and a report row dropped without a "left out" line
        return f"command is {data['command']!r}, not a cnnlab command that records a run"
    if data["status"] not in WRITTEN_STATUSES:  # probe 98: "weird" was in no report row and no "left out" line
        return f"status is {data['status']!r}, expected one of {', '.join(WRITTEN_STATUSES)}"
    schema = data.get("schema")
    if schema is not None and (isinstance(schema, bool) or not isinstance(schema, int)):  # probe 107: "1" was "newer"
        return f"schema is {schema!r}, expected an integer (this cnnlab reads schema {SCHEMA_VERSION})"
    if schema is not None and schema > SCHEMA_VERSION:
        return f"schema is {schema!r}: written by a newer cnnlab (this one reads schema {SCHEMA_VERSION})"
    paired = data.get("paired") or {}
    if "paired" in data and data["paired"] is not None and not isinstance(paired.get("subjects"), list):
        return "paired.subjects is missing: a paired session names the models it timed"
    if not all(isinstance(subject, dict) for subject in paired.get("subjects") or []):
        return "paired.subjects holds an entry that is not a mapping"
    if data.get("started") and started_seconds(data["started"]) == float("-inf"):
        return f"started is {data['started']!r}, not a time (ISO 8601)"
    if not all(isinstance(o, str) for o in data.get("overrides") or []):
        return "overrides holds a non-text entry"
    if not all(isinstance(d, str) and len(d) == 64 for d in (data.get("digests") or {}).values()):
        return "digests holds an entry that is not a SHA-256 (64 hex digits)"
    try:
        for name, section in SECTIONS.items():
            section.from_dict(data.get(name))
        artifacts_from_dict(data.get("artifacts"), run_dir)
    except RecordProblem as exc:
        return str(exc)
    return _subject_problem(data, len(paired["subjects"])) if paired else None


def _subject_problem(data: dict[str, Any], subjects: int) -> str | None:
    """A latency record naming a subject the session does not list (probe 125: `"subject": 99` was explained as "its
    sessions with its source timed another backend, batch, …"); None when each names one of its `subjects`."""
    latency = (data.get("metrics") or {}).get("latency") or []
    for i, record in enumerate(latency):
        subject = record.get("subject")
        if subject is not None and subject >= subjects:
            return (f"metrics.latency[{i}].subject is {subject}, but paired.subjects lists "
                    f"{subjects} model{'s' if subjects != 1 else ''}")
    return None


S = TypeVar("S", bound=Section)


class _SectionOf(Generic[S]):
    """A RunInfo attribute: the run.json section of the same name as its typed object, read on first use and
    then kept (like functools.cached_property: the value goes into the instance's __dict__, which wins after)."""

    def __init__(self, kind: type[S]) -> None:
        self.kind = kind

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, run: "RunInfo", owner: type | None = None) -> S:
        section = run.__dict__[self.name] = self.kind.from_dict(run.data.get(self.name))
        return section


@dataclass(frozen=True)
class RunInfo:
    """A run folder read back from disk. `data` is the record, its fields checked by `record_problem`;
    a damaged record (`damaged` says why) has empty `data` and the status `damaged`."""

    path: Path
    data: dict[str, Any]
    damaged: str | None = None
    # A model file's own record of its data standing in for a run's (steps/sources.with_file_dataset): the folder
    # holding the file is no run, and records and messages must not name it as one (probe 199: `"command": "?"`).
    file_record: bool = False

    @classmethod
    def read(cls, path: Path) -> "RunInfo":
        """The run in folder `path`, damaged when its run.json cannot be read or used.
        Raises FileNotFoundError when there is no run.json at all."""
        path = Path(path)
        try:
            data = read_json(path / RUN_FILE)
        except FileNotFoundError:
            raise
        except IsADirectoryError:  # probe 107: "not valid JSON ([Errno 21] ...)" here, "no run.json" when named
            return cls(path, {}, damaged=f"{RUN_FILE} is a folder, not a file")
        except NotARegularFile:  # probe 114: a named pipe hung `cnnlab list runs` and the report
            return cls(path, {}, damaged=NOT_A_REGULAR_FILE)
        except (OSError, ValueError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
            return cls(path, {}, damaged=f"not valid JSON ({_first_line(exc)})")
        problem = record_problem(data, path)
        return cls(path, {}, damaged=problem) if problem else cls(path, data)

    @property
    def command(self) -> str:
        return str(self.data.get("command", "?"))

    @property
    def status(self) -> str:
        """The recorded status, or `dead` for a `running` run whose process is gone from this host
        (computed on each read; run.json is left as it is), or `damaged` for an unusable run.json."""
        if self.damaged:
            return DAMAGED
        status = str(self.data.get("status", "?"))
        if status == "running" and process_alive(self.data.get("process")) is False:
            return DEAD
        return status

    @property
    def started(self) -> str:
        return str(self.data.get("started") or "")

    @property
    def started_at(self) -> float:
        """When the run started, in seconds since the epoch: what orders runs. The recorded text carries the UTC
        offset of the machine that ran it, so text order put a run started under another offset (a DST change, a
        laptop that travelled, cluster nodes in other zones) before older ones (probe 91). -inf when unrecorded."""
        return started_seconds(self.started)

    # The typed sections (cnnlab/records.py); empty ones for a damaged record. Sound: `read` checked them.
    model = _SectionOf(ModelSection)
    dataset = _SectionOf(DatasetSection)
    source = _SectionOf(SourceSection)
    metrics = _SectionOf(MetricsSection)

    def deleted_files(self, names: Sequence[str] = ("onnx", "model")) -> list[str]:
        """The recorded artifacts among `names` (its model files, by default) whose file is gone since the run:
        their paths as recorded ("model.pt"). A run that reads as completed but cannot be exported, timed or
        reused (probes 56, 57)."""
        files = self.data.get("artifacts") or {}
        return [str(files[name]) for name in names if name in files and self.artifact(name) is None]

    def artifact_changed(self, name: str) -> bool:
        """Whether the artifact `name` is there and its bytes are no longer those whose SHA-256 run.json's `digests`
        recorded when the run wrote it (False where nothing was recorded, or the file is gone or unreadable)."""
        recorded = (self.data.get("digests") or {}).get(name)
        path = self.artifact(name) if recorded is not None else None
        digest = file_sha256(path) if path is not None else None
        return digest is not None and digest != recorded

    def changed_files(self) -> list[str]:
        """The model files (DIGESTED) changed since the run wrote them (`artifact_changed`): their paths as recorded.
        A pipeline does not reuse such a stage (steps/freshness.py)."""
        return [str(self.data["artifacts"][name]) for name in DIGESTED if self.artifact_changed(name)]

    def artifact(self, name: str) -> Path | None:
        """Absolute path of a named artifact ('model', 'onnx', 'checkpoint', 'bench') if it exists.
        Raises CnnlabError, without opening it, when it leads outside the run folder (checked again here:
        a symlink may have changed since the record was read)."""
        rel = (self.data.get("artifacts") or {}).get(name)
        if rel is None:
            return None
        escape = artifact_escape(self.path, name, str(rel))
        if escape:
            raise CnnlabError(f"run {self.path}: {escape}; refused",
                              fix="pick another run (see `cnnlab list runs`); a run's files live in its folder")
        path = self.path / rel
        return path if path.exists() else None


def started_from(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The recorded sources of the models a run started from, by role: "" its own (run.json `source`: model.weights,
    source=, teacher.weights) and "student" a distill's student's starting weights (`distill.student.source`). A
    source that is not a mapping is left out."""
    distill = data.get("distill")
    student = distill.get("student") if isinstance(distill, Mapping) else None
    found = {"": data.get("source"), "student": student.get("source") if isinstance(student, Mapping) else None}
    return {role: dict(source) for role, source in found.items() if isinstance(source, Mapping)}


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


def load_run(path: Path) -> RunInfo:
    """The run in folder `path`; a CnnlabError when it has no run.json or a damaged one."""
    try:
        run = RunInfo.read(Path(path))
    except FileNotFoundError:
        raise CnnlabError(f"{path} is not a cnnlab run folder (no {RUN_FILE})",
                          fix="give a folder under outputs/, a model.pt/model.onnx file, latest or latest:<command>")
    if run.damaged:
        raise CnnlabError(f"{Path(path) / RUN_FILE} is damaged: {run.damaged}",
                          fix="pick another run (`cnnlab list runs` marks the damaged ones)")
    return run


def iter_runs(outputs: Path) -> Iterator[RunInfo]:
    """Every run under `outputs`, oldest first (by start time), damaged ones included (status `damaged`,
    `.damaged` says why; they sort first). Raises CnnlabError when `outputs` is a file."""
    outputs = Path(outputs)
    if outputs.exists() and not outputs.is_dir():
        raise CnnlabError(f"the outputs folder {outputs} is a file, not a folder",
                          fix="move or rename that file, or point to the runs with --outputs DIR / CNNLAB_OUTPUTS=DIR")
    if not outputs.is_dir():
        return iter(())
    runs = []
    for run_file in _run_files(outputs):
        try:
            runs.append(RunInfo.read(run_file.parent))
        except FileNotFoundError:
            continue  # gone between the listing and the read
    runs.sort(key=lambda r: (r.started_at, str(r.path)))
    return iter(runs)


def _run_files(outputs: Path) -> Iterator[Path]:
    """The run.json files under `outputs` (a run.json that is a folder too: a damaged run), in the folders below it
    and in linked folders that are runs themselves (probe 106: a run moved elsewhere and linked back was in no
    listing or report, its children's speed-ups gone unsaid). Other links are not followed: a linked dataset folder
    of 70,000 pictures is no place to look for runs."""
    inside, linked_runs = outputs.resolve(), {}
    for root, folders, files in os.walk(outputs):
        if RUN_FILE in files or RUN_FILE in folders:
            yield Path(root) / RUN_FILE
        _note_run_links(Path(root), folders, linked_runs)
    # a link to a run in this folder (outputs/best → a run), or a second link to one run, names a run listed already
    # (probe 108: listed twice, the real folder then left out of the report as the link's copy); of several links to
    # one run, the one at a run's place (<command>/<date>/<time>) rather than a short name
    for target, links in linked_runs.items():
        if not target.is_relative_to(inside):
            yield max(links, key=lambda link: (len(link.parts), str(link))) / RUN_FILE


def _note_run_links(root: Path, folders: Iterable[str], linked_runs: dict[Path, list[Path]]) -> None:
    """Add the linked folders among `folders` (of `root`) that are runs to `linked_runs` (run → its links)."""
    for name in folders:
        linked = root / name
        if linked.is_symlink() and (linked / RUN_FILE).exists():
            linked_runs.setdefault(linked.resolve(), []).append(linked)


def run_links(outputs: Path) -> dict[Path, list[Path]]:
    """Every link under `outputs` to a run folder, by the run it names (resolved): a re-run sweep's skipped jobs
    (`0-again` → the run of an earlier sweep), `best` → a run. Listings name each run once, by its own folder; a
    pattern over folders (`cnnlab report --runs`) matches its links too."""
    linked_runs: dict[Path, list[Path]] = {}
    for root, folders, _ in os.walk(outputs):
        _note_run_links(Path(root), folders, linked_runs)
    return linked_runs


def gone_sweep_links(outputs: Path) -> list[Path]:
    """The links under `outputs` in a sweep's folder (one holding Hydra's multirun.yaml) whose run is no longer there:
    a skipped job's link to the run it stood for (cnnlab.app._link_to_earlier), that run moved or deleted since."""
    found = []
    for root, folders, files in os.walk(outputs):
        if "multirun.yaml" in files:
            found += [Path(root) / name for name in sorted([*folders, *files])
                      if (Path(root) / name).is_symlink() and not (Path(root) / name / RUN_FILE).exists()]
    return found


# The files only a run writes into its own folder: one holding them without a run.json lost its record.
_RUN_ARTIFACTS = ("model.pt", "model.onnx", "last.pt")


def records_gone(outputs: Path) -> list[Path]:
    """The folders under `outputs` that hold a model a run wrote (model.pt, model.onnx, last.pt) but no run.json:
    its record deleted (probe 180: such a sweep job vanished from the report without a word, where an empty run.json
    was named). Not below a run's folder (a pipeline keeps its stages' files there), nor in linked folders."""
    found = []
    for root, folders, files in os.walk(outputs):
        if RUN_FILE in files or RUN_FILE in folders:
            folders[:] = []
            continue
        folders[:] = [name for name in folders if not name.startswith(".")]
        if any(name in files for name in _RUN_ARTIFACTS):
            found.append(Path(root))
    return sorted(found)


def latest_run(outputs: Path, command: str | None = None, *, artifact: str | None = None,
               statuses: tuple[str, ...] = FINISHED) -> RunInfo | None:
    """The newest run with the given status (default: completed), command and artifact."""
    best = None
    for run in iter_runs(outputs):
        if run.status not in statuses or (command and run.command != command):
            continue
        if artifact and run.artifact(artifact) is None:
            continue
        best = run
    return best


@dataclass(frozen=True)
class Source:
    """What a `source=` reference points at: a file, and the run it came from when known."""

    spec: str
    kind: str                 # "checkpoint" (.pt/.pth) or "onnx"
    path: Path
    run: RunInfo | None

    @property
    def origin(self) -> Path:
        """Where the model comes from, for messages: its run folder, else the file itself."""
        return self.writer.path if self.writer else self.path

    @property
    def writer(self) -> RunInfo | None:
        """The run that wrote the file; None for a file outside a run, even where the file's own record of its data
        stands in for a run's (`RunInfo.file_record`)."""
        return self.run if self.run is not None and not self.run.file_record else None

    def describe(self) -> dict[str, Any]:
        """The source for records (run.json `source`, a model file's metadata): with the file's SHA-256, so that a
        later command that follows the record back to the file can tell it is the same (deploy/subject.py)."""
        writer = self.writer
        return {"spec": self.spec, "kind": self.kind, "path": str(self.path),
                "run": str(writer.path) if writer else None,
                "command": writer.command if writer else None, "sha256": model_sha256(self.path)}


_KINDS = {".pt": "checkpoint", ".pth": "checkpoint", ".onnx": "onnx"}
_ARTIFACT_OF_KIND = {"checkpoint": "model", "onnx": "onnx"}
_FILE_OF_KIND = {"checkpoint": "a model.pt", "onnx": "a model.onnx"}
def _how_to_name(want: tuple[str, ...]) -> str:
    """How to name a source of the kinds `want` accepts: prune and export take a model.pt only (probe 73: the hint
    offered a model.onnx file, which prune then refused)."""
    files = "/".join(_FILE_OF_KIND[kind].removeprefix("a ") for kind in want)
    return f"give a run folder, a {files} file, latest, or latest:<command> (see `cnnlab list runs`)"


# The commands whose completed runs hold a model file of each kind: what `latest:<command>` can name
# (tests/test_runs.py checks this against cnnlab.commands.COMMANDS).
MODEL_MAKERS = {"checkpoint": ("pretrain", "finetune", "distill", "search", "prune"),
                "onnx": ("prune", "quantize", "export")}


def latest_makers(want: tuple[str, ...] = ("checkpoint", "onnx")) -> list[str]:
    """`latest:<command>` for every command whose runs hold a model of a kind in `want`, in COMMANDS order."""
    from cnnlab.commands import COMMANDS  # a table without heavy imports

    makers = {command for kind in want for command in MODEL_MAKERS[kind]}
    return [f"latest:{command}" for command in COMMANDS if command in makers]


def missing_source_fix(outputs: Path, want: tuple[str, ...] = ("checkpoint", "onnx")) -> str:
    """The fix for a command run without `source=`: `latest:<command>` of the newest completed run under `outputs`
    that holds a model of a kind in `want`, or, where none does, the command that makes one (probe 214: it named
    latest:finetune in a workspace without a finetune run)."""
    makers, newest = {command for kind in want for command in MODEL_MAKERS[kind]}, None
    for run in iter_runs(outputs):
        if run.status == "completed" and run.command in makers \
                and any(run.artifact(_ARTIFACT_OF_KIND[kind]) is not None for kind in want):
            newest = run
    files = "source=path/to/" + "|".join(_FILE_OF_KIND[kind].removeprefix("a ") for kind in want)
    if newest is None:
        return (f"no run under {outputs} holds a model yet: train one (`cnnlab finetune dataset=...`) and pass "
                f"source=latest:finetune, or pass {files}")
    return f"pass source=latest:{newest.command} (the newest: {newest.path}), source=RUN_FOLDER or {files}"


def check_latest_command(spec: str, key: str, want: tuple[str, ...] = ("checkpoint", "onnx")) -> None:
    """`latest:<command>` whose <command> is no cnnlab command, or one whose runs never hold a model (evaluate,
    bench, ...): a CnnlabError listing the latest:<command> forms that work for `want`."""
    from cnnlab.commands import COMMANDS, RUNLESS_COMMANDS

    command = spec.partition(":")[2] if spec.startswith("latest:") else ""
    if not command:
        return
    choices = f"use one of {', '.join(latest_makers(want))}, or latest (the newest run with a model)"
    if command in RUNLESS_COMMANDS:
        raise CnnlabError(f"{key}={spec}: `cnnlab {command}` reads runs and writes none", fix=choices)
    if command not in COMMANDS:
        raise CnnlabError(f"{key}={spec}: `{command}` is not a cnnlab command", fix=choices)
    if not any(command in makers for makers in MODEL_MAKERS.values()):
        raise CnnlabError(f"{key}={spec}: `cnnlab {command}` runs hold no model to start from", fix=choices)


def _refuse_a_newer_run_with_its_model_deleted(spec: str, newest: RunInfo, chosen: RunInfo,
                                               want: tuple[str, ...], key: str = "source") -> None:
    """A CnnlabError when the newest completed run that wrote a model is not `chosen` because its model file was
    deleted since: `latest:finetune` quietly took an older run, at another input size (probe 57)."""
    gone = newest.deleted_files(tuple(_ARTIFACT_OF_KIND[kind] for kind in want))
    if not gone or newest.path == chosen.path:
        return
    raise CnnlabError(f"{key}={spec}: the newest completed `cnnlab {newest.command}` run, {newest.path}, has its "
                      f"{' and '.join(gone)} deleted, and the next newest with a model file is {chosen.path}",
                      fix=f"name the run to use ({path_argument(key, [chosen.path])}), restore the file, or "
                          "train again")


def resolve_source(spec: str, outputs: Path, *, want: tuple[str, ...] = ("checkpoint", "onnx"),
                   key: str = "source", runtime_key: str | None = None) -> Source:
    """Turn `source=...` into a file. `want` lists acceptable kinds in order of preference; `runtime_key`: the
    command's setting that would run the other kind (predict.runtime), named by the error for a file of it."""
    spec = str(spec).strip()
    if spec == "latest" or spec.startswith("latest:"):
        check_latest_command(spec, key, want)
        command = spec.partition(":")[2] or None
        # one read of the records for every question below (each latest_run call reads them all again)
        finished = [r for r in iter_runs(outputs) if r.status in FINISHED and (not command or r.command == command)]

        wanted = tuple(_ARTIFACT_OF_KIND[kind] for kind in want)  # the artifacts that hold a model of a wanted kind

        def newest_holding(kinds: Iterable[str]) -> RunInfo | None:  # the newest run holding any of the kinds (probe
            # 107: an older run's ONNX was taken over a newer model.pt, where the command reads both); _from_run then
            # takes its file of the kind preferred
            names = [_ARTIFACT_OF_KIND[kind] for kind in kinds]
            return next((r for r in reversed(finished) if any(r.artifact(name) is not None for name in names)), None)

        # the newest run that wrote a model of a wanted kind, whether or not the file is still there (probe 104: an
        # evaluate or bench run after it hid a deleted model.pt, and `latest` took an older model unsaid)
        recorded = next((r for r in reversed(finished) if any(name in (r.data.get("artifacts") or {})
                                                               for name in wanted)), None)
        run = newest_holding(want)
        if run is None and recorded is not None:
            gone = listed(recorded.deleted_files(wanted))
            others = f"`cnnlab {command}` run" if command else "run here"
            raise CnnlabError(f"{key}={spec}: the newest completed `cnnlab {recorded.command}` run, {recorded.path}, "
                              f"has its {gone} deleted, and no other {others} holds a model",
                              fix=f"restore {gone} in {recorded.path}, or train again")
        if run is None:
            other = newest_holding(kind for kind in _ARTIFACT_OF_KIND if kind not in want)
            if other is not None:
                raise _wrong_kind(f"{key}={spec}: the newest completed `cnnlab {other.command}` run, {other.path},",
                                  other.path, want, runtime_key, other)
            what = f"completed `cnnlab {command}` run" if command else "completed run"
            if command and f"latest:{command}" not in latest_makers(want):  # its runs hold the other kind
                files = " or ".join(_FILE_OF_KIND[kind] for kind in want)
                raise CnnlabError(f"{key}={spec} matches no {what} with a model in {outputs}/, and `cnnlab {command}` "
                                  f"runs do not hold {files}", fix=f"use one of {', '.join(latest_makers(want))}")
            raise CnnlabError(f"{key}={spec} matches no {what} with a model in {outputs}/",
                              fix=f"run `cnnlab {command or 'pretrain'}` first, or {_how_to_name(want)}")
        _refuse_a_newer_run_with_its_model_deleted(spec, recorded or run, run, want, key)
        newer = newest_holding(kind for kind in _ARTIFACT_OF_KIND if kind not in want)
        if newer is not None and newer.started_at > run.started_at:  # probe 108: skipped without a word
            files = " or ".join(_FILE_OF_KIND[kind] for kind in want)
            logging.getLogger("cnnlab").warning(
                "%s=%s is %s, the newest run holding %s: the newer `cnnlab %s` run %s holds no such file (%s)",
                key, spec, run.path, files, newer.command, newer.path,
                f"{runtime_key}=pytorch runs its model.pt" if runtime_key and newer.artifact("model") is not None
                else "not a file this command reads")
        return _from_run(spec, run, want, key, runtime_key)
    path = Path(spec).expanduser()
    if not path.exists():
        raise CnnlabError(f"{key}={spec}: {why_missing(path, absent='no such file or folder')}",
                          fix=_how_to_name(want))
    if not is_regular_file(path) and not path.is_dir():  # probe 114: a named pipe's open waited forever
        raise CnnlabError(f"{key}={spec}: {NOT_A_REGULAR_FILE}", fix=_how_to_name(want))
    if path.is_dir():  # resolved: a link to a run ("best") records the run it named then (probe 72)
        if not (path / RUN_FILE).exists():
            raise CnnlabError(f"{path} is not a cnnlab run folder (no {RUN_FILE})", fix=_how_to_name(want))
        return _from_run(spec, load_run(path.resolve()), want, key, runtime_key)
    kind = _KINDS.get(path.suffix.lower())
    if kind is not None and kind not in want:
        beside = _run_beside(path, path.parent) if (path.parent / RUN_FILE).is_file() and kind == "onnx" else None
        # the subject of "holds …" (probe 196: "source=…/model.onnx: holds the ONNX file it exported")
        what = f"{key}={spec}" + (f": its run {beside.path} ({beside.command})" if beside is not None else "")
        raise _wrong_kind(what, path, want, runtime_key, beside)
    if kind is None:
        accepted = ", ".join(sorted(s for s, k in _KINDS.items() if k in want))
        raise CnnlabError(f"{key}={spec}: expected a {accepted} file or a run folder")
    run_dir = path.parent.resolve() if (path.parent / RUN_FILE).exists() else None
    run = _run_beside(path, run_dir) if run_dir else None
    if run is not None and not _written_by(run, path):
        logging.getLogger("cnnlab").info("%s is not the model.pt or model.onnx run %s recorded: it is read with its "
                                         "own record, as a file outside a run", path, run.path)
        run = None
    return check_intact(Source(spec, kind, path.resolve(), run))


def _written_by(run: RunInfo, path: Path) -> bool:
    """Whether the file `path` in `run`'s folder is a model file the run wrote: one of its DIGESTED artifacts, or a
    file with the bytes of one (a copy under another name; a run from before `digests` cannot tell those). Another
    file there (another run's model.pt copied in as better.pt) was taken as the run's, and `cnnlab report` showed its
    test score in the run's row (probes 71, 72)."""
    resolved = path.resolve()
    if any((file := run.artifact(name)) is not None and file.resolve() == resolved for name in DIGESTED):
        return True
    return file_sha256(resolved) in (run.data.get("digests") or {}).values()


# The model files this run resolved as sources (with an ONNX file's external-data files), each with the version it
# had when first resolved (before it was hashed or read), its metadata and its SHA-256 then (check_reads_unchanged).
_READS: dict[Path, tuple[Any, Any, str | None]] = {}


def forget_reads() -> None:
    """Start a run's list of source files afresh (jobs of a sweep run one after another in one process)."""
    _READS.clear()


def _note_read(path: Path) -> None:
    """Remember a source's files as they are before this run reads them (check_reads_unchanged)."""
    for file in (path, *model_companions(path)):
        if file not in _READS:
            version = file_version(file)  # first: any change from here on is a change
            _READS[file] = (version, _metadata(file), file_sha256(file))


def _metadata(path: Path) -> tuple[int, ...] | None:
    """What a change of metadata alone changes beside the change time: mode, links, owner (chmod, ln, chown)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mode, info.st_nlink, info.st_uid, info.st_gid


def check_reads_unchanged() -> None:
    """CnnlabError when a model file this run resolved as a source (or an ONNX file's external data) was written or
    replaced since: another inode (a file moved or copied over it), another size or modification time (written in
    place), or a change time moved by no change of mode, links or owner. What the run read and what it recorded of
    the file — its SHA-256, the run it came from, its accuracy beside the source's — may then be two files (probe
    112: swapped between the check and the load, an export recorded one model.pt's digest and held another network,
    "val acc 95.00 % (source: 66.39 %)"). A chmod, a hard link (a backup's) or a chown moves the change time and
    leaves the bytes: with the same bytes it is no change (probe 114: each failed a sound run). The inode alone does
    not tell a file swapped back: a file system hands a freed inode number out again at once."""
    for path, (version, metadata, digest) in _READS.items():
        now = file_version(path)
        if now == version or (now is not None and version is not None and now[:5] == version[:5]
                              and _metadata(path) != metadata and file_sha256(path) == digest):
            continue
        raise CnnlabError(f"{path} was {'removed' if now is None else 'written or replaced'} while this run read it, "
                          "so what the run recorded of that file (its SHA-256, its run, its scores) may not be what "
                          "it read", fix="run the command again once nothing changes that file")


def model_companions(path: Path) -> list[Path]:
    """The files an .onnx model keeps its tensors in beside it (onnx's external data; deploy.export); [] for any
    other file."""
    if Path(path).suffix.lower() != ".onnx":
        return []
    from cnnlab.deploy.export import external_data_files  # onnx: only where an ONNX source is read

    return external_data_files(Path(path))


def model_sha256(path: Path) -> str | None:
    """The SHA-256 that identifies a model file: the file's own, or for an .onnx file that keeps its tensors in
    external-data files, one over the file's and theirs (probe 114: two networks in `model.onnx.data` beside one
    model.onnx were recorded as one source). None when a file cannot be read."""
    digests = [file_sha256(file) for file in (path, *model_companions(path))]
    if any(d is None for d in digests):
        return None
    return digests[0] if len(digests) == 1 else hashlib.sha256(" ".join(digests).encode()).hexdigest()  # type: ignore


def check_intact(source: Source) -> Source:
    """`source`, when its file is byte for byte the model file its run wrote, or when nothing can tell (no run, a
    file the run did not record as its model, a record from before `digests`). Raises CnnlabError when the file's
    SHA-256 differs from the one run.json recorded with it: the file was replaced or changed after the run (another
    run's model.onnx copied in, bytes damaged on disk), and read as the run's it would be scored, compared and
    reported beside scores, settings and data that are not its own (probe 68: an altered ONNX file was scored with
    exit 0)."""
    _note_read(source.path)
    run = source.run
    if run is None:
        return source
    for name in DIGESTED:
        file = run.artifact(name)
        if file is not None and file.resolve() == source.path and run.artifact_changed(name):
            raise CnnlabError(f"{source.path} is not the file run {run.path} wrote: its SHA-256 differs from the one "
                              f"in the run's run.json, so the run's scores and settings are not this file's (it was "
                              f"replaced or changed after the run)",
                              fix=f"put back the run's own {source.path.name} (or run `cnnlab {run.command}` again); "
                                  "to use this file as it is, copy it out of the run folder and name the copy: it is "
                                  "then read with its own record")
    return source


def _run_beside(path: Path, run_dir: Path) -> RunInfo | None:
    """The run whose folder holds the model file `path`; None, with a warning, when its run.json is damaged: the file
    carries its own record of its data (checkpoint extra, ONNX metadata) and is read as a file copied out of its run
    (probe 68: refused with "pick another run" although the user named an intact file)."""
    try:
        return load_run(run_dir)
    except CnnlabError as exc:
        logging.getLogger("cnnlab").warning("%s; %s is read with its own record, as a file outside a run",
                                            exc.message, path)
        return None


def _from_run(spec: str, run: RunInfo, want: tuple[str, ...], key: str, runtime_key: str | None) -> Source:
    for kind in want:
        file = run.artifact(_ARTIFACT_OF_KIND[kind])
        if file is not None:
            return check_intact(Source(spec, kind, file.resolve(), run))
    if any(run.artifact(_ARTIFACT_OF_KIND[k]) is not None for k in _ARTIFACT_OF_KIND if k not in want):
        raise _wrong_kind(f"{key}={spec}: run {run.path} ({run.command})", run.path, want, runtime_key, run)
    names = " or ".join(_ARTIFACT_OF_KIND[k] for k in want)
    raise CnnlabError(f"{key}={spec}: run {run.path} ({run.command}, {run.status}) holds no {names} file",
                      fix="pick a completed run that produced one (see `cnnlab list runs`)")


def _wrong_kind(what: str, where: Path, want: tuple[str, ...], runtime_key: str | None = None,
                run: RunInfo | None = None) -> CnnlabError:
    """A source that holds a model of another kind than the command (or its runtime) runs: how to convert it, or
    (`runtime_key`) the setting that runs it as it is. `run`: the run that holds it, where known."""
    if want == ("onnx",):
        on_pytorch = f", or run the model.pt on PyTorch with {runtime_key}=pytorch" if runtime_key else ""
        return CnnlabError(f"{what} holds a model.pt (PyTorch checkpoint), and this runs ONNX files",
                           fix=f"export it first (`cnnlab export {path_argument('source', [where])}`) and pass that "
                               f"run{on_pytorch}")
    quantized = run is not None and not run.damaged and run.command == "quantize"
    if quantized and run.model.extra.get("precision") == "int8":  # probe 162: "exported from" said of an INT8 file
        origin = run.source.run or run.source.path
        return CnnlabError(f"{what} holds the INT8 ONNX file `cnnlab quantize` wrote, and this needs a model.pt "
                           "(PyTorch checkpoint): an INT8 graph is not pruned, fine-tuned or exported again",
                           fix=f"pass the run it was quantized from{f' ({origin})' if origin else ''}, then quantize "
                               "the result again")
    # probe 176: "exported from" said of a quantize run's FP32 file, and neither named the run its record names
    made = {"quantize": "quantized", "export": "exported"}.get(run.command) if run is not None and not run.damaged \
        else None
    origin = (run.source.run or run.source.path) if made else None  # type: ignore[union-attr]
    if made and origin:
        kept = "the FP32 ONNX file `cnnlab quantize` kept" if made == "quantized" else "the ONNX file it exported"
        return CnnlabError(f"{what} holds {kept}, and this needs a model.pt (PyTorch checkpoint)",
                           fix=f"pass the run it was {made} from: {path_argument(what.partition('=')[0], [origin])}")
    # not "the model.pt beside it": another network's may lie there (probe 178); the file's own record is deploy's
    held = "is" if run is None and is_regular_file(where) else "holds"  # probe 219: "the file holds an ONNX file"
    return CnnlabError(f"{what} {held} an ONNX file, and this needs a model.pt (PyTorch checkpoint)",
                       fix="pass the run or model.pt the ONNX file was exported from")
