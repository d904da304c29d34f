"""Run folders and their `run.json`, and resolution of `source=` / `model.weights=` references.

A run folder is `outputs/<command>/<date>/<time>/` (multirun: `.../<time>-multirun/<job>/`) holding
`run.json` (this module), `model.pt`, maybe `model.onnx`, `bench.json`, and Hydra's `.hydra/`.
A reference names a run by folder, by file (`.../model.pt`, `.../model.onnx`), or as
`latest` / `latest:<command>` (the newest *completed* run, optionally of one command).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from cnnlab.errors import CnnlabError
from cnnlab.fileio import read_json, write_json

RUN_FILE = "run.json"
MODEL_FILE = "model.pt"        # final weights + what rebuilds the architecture (weights_only loadable)
STATE_FILE = "last.pt"         # resumable training state, rewritten atomically every epoch
ONNX_FILE = "model.onnx"
BENCH_FILE = "bench.json"
SCHEMA_VERSION = 1
PIPELINE_TAG_ENV = "CNNLAB_PIPELINE_TAG"  # set by `cnnlab pipeline` for its stages; recorded in run.json
FINISHED = ("completed",)


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
        }
        record = cls(run_dir, data, enabled=enabled)
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
        self.update(artifacts={name: os.path.relpath(path, self.run_dir)})

    def finish(self, status: str, *, metrics: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.data["status"] = status
        self.data["ended"] = _now()
        self.data["duration_s"] = round(time.monotonic() - self._clock, 1)
        if metrics:
            self.data["metrics"].update(metrics)
        if error:
            self.data["error"] = error
        self.save()


@dataclass(frozen=True)
class RunInfo:
    """A run folder read back from disk."""

    path: Path
    data: dict[str, Any]

    @property
    def command(self) -> str:
        return str(self.data.get("command", "?"))

    @property
    def status(self) -> str:
        return str(self.data.get("status", "?"))

    @property
    def started(self) -> str:
        return str(self.data.get("started") or "")

    def artifact(self, name: str) -> Path | None:
        """Absolute path of a named artifact ('model', 'onnx', 'checkpoint', 'bench') if it exists."""
        rel = (self.data.get("artifacts") or {}).get(name)
        if rel is None:
            return None
        path = self.path / rel
        return path if path.exists() else None


def load_run(path: Path) -> RunInfo:
    run_file = Path(path) / RUN_FILE
    try:
        return RunInfo(Path(path), read_json(run_file))
    except FileNotFoundError:
        raise CnnlabError(f"{path} is not a cnnlab run folder (no {RUN_FILE})",
                          fix="give a folder under outputs/, a model.pt/model.onnx file, latest or latest:<command>")
    except ValueError as exc:
        raise CnnlabError(f"{run_file} is not valid JSON ({exc})", fix="the run record is damaged; pick another run")


def iter_runs(outputs: Path) -> Iterator[RunInfo]:
    """Every readable run under `outputs`, oldest first (by start time)."""
    outputs = Path(outputs)
    if not outputs.is_dir():
        return iter(())
    runs = []
    for run_file in outputs.rglob(RUN_FILE):
        try:
            runs.append(RunInfo(run_file.parent, read_json(run_file)))
        except (OSError, ValueError):
            continue  # a half-copied or foreign file is not a run
    runs.sort(key=lambda r: (r.started, str(r.path)))
    return iter(runs)


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

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "path": str(self.path),
                "run": str(self.run.path) if self.run else None,
                "command": self.run.command if self.run else None}


_KINDS = {".pt": "checkpoint", ".pth": "checkpoint", ".onnx": "onnx"}
_ARTIFACT_OF_KIND = {"checkpoint": "model", "onnx": "onnx"}
_HOW_TO_NAME = "give a run folder, a model.pt/.onnx file, latest, or latest:<command> (see `cnnlab list runs`)"


def resolve_source(spec: str, outputs: Path, *, want: tuple[str, ...] = ("checkpoint", "onnx"),
                   key: str = "source") -> Source:
    """Turn `source=...` into a file. `want` lists acceptable kinds in order of preference."""
    spec = str(spec).strip()
    if spec == "latest" or spec.startswith("latest:"):
        command = spec.partition(":")[2] or None
        run = None
        for kind in want:
            run = latest_run(outputs, command, artifact=_ARTIFACT_OF_KIND[kind])
            if run is not None:
                break
        if run is None:
            what = f"completed `cnnlab {command}` run" if command else "completed run"
            raise CnnlabError(f"{key}={spec} matches no {what} with a model in {outputs}/",
                              fix=f"run `cnnlab {command or 'pretrain'}` first, or {_HOW_TO_NAME}")
        return _from_run(spec, run, want, key)
    path = Path(spec).expanduser()
    if not path.exists():
        raise CnnlabError(f"{key}={spec}: no such file or folder", fix=_HOW_TO_NAME)
    if path.is_dir():
        return _from_run(spec, load_run(path), want, key)
    kind = _KINDS.get(path.suffix.lower())
    if kind is None or kind not in want:
        accepted = ", ".join(sorted(s for s, k in _KINDS.items() if k in want))
        raise CnnlabError(f"{key}={spec}: expected a {accepted} file or a run folder")
    run_dir = path.parent if (path.parent / RUN_FILE).exists() else None
    return Source(spec, kind, path.resolve(), load_run(run_dir) if run_dir else None)


def _from_run(spec: str, run: RunInfo, want: tuple[str, ...], key: str) -> Source:
    for kind in want:
        file = run.artifact(_ARTIFACT_OF_KIND[kind])
        if file is not None:
            return Source(spec, kind, file.resolve(), run)
    names = " or ".join(_ARTIFACT_OF_KIND[k] for k in want)
    raise CnnlabError(f"{key}={spec}: run {run.path} ({run.command}, {run.status}) holds no {names} file",
                      fix="pick a completed run that produced one (see `cnnlab list runs`)")
