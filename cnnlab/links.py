"""Which run a record names: run records name other runs by the folder they were written to, as an absolute path
(a derived run's `source.run`, a paired bench session's `paired.subjects[].run`, a resumed run's `resumed_from`, a
pipeline stage's inputs). Two things make such a path wrong without a word:

- the runs moved: an outputs folder copied (`cp -a`, tar, zip), moved, or one run folder renamed — the path names
  the old place, or nothing (probe 104: every bench, export and evaluate then fell off the report);
- the folder holds another run now: deleted and trained into again, or another run moved to its name — the path
  names a model the derived run never read (probe 104: the report compared an INT8 model with the new one,
  "+5.35 points, significant", where the true change was -0.10).

`RunLinks` reads both from the runs at hand: a run whose record says it was written elsewhere stands for that
folder (each run records its own folder, run.json `run_dir`), and a named run whose model file's SHA-256 (run.json
`digests`) is not the one the derived run recorded reading (`source.sha256`) is another model. Reads run.json only:
no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from cnnlab.runs import RunInfo

_TAIL = 3  # the folders that name a run within its outputs folder: <command>/<date>/<time> (a sweep's <time>/<job>)
# source.kind → the artifact (and run.json digests key) whose bytes a derived run read
_READ_FILE = {"checkpoint": "model", "onnx": "onnx"}


@dataclass(frozen=True)
class Link:
    """Where a recorded run reference leads: `path` the run's folder now (None where it leads to no run that holds
    what was read), `recorded` the folder the record names, `problem` why it does not lead there, in words."""

    recorded: Path
    path: Path | None
    problem: str | None = None
    replaced: bool = False  # the recorded folder holds another run's model now (not merely gone)


class RunLinks:
    """The runs that recorded references name, among `runs` (those at hand) or, failing that, on disk."""

    def __init__(self, runs: Iterable[RunInfo]) -> None:
        sound = [run for run in runs if not run.damaged]
        self._here = frozenset(run.path.resolve() for run in sound)  # the runs at hand, where `where` looks
        self._runs: dict[Path, RunInfo | None] = {run.path.resolve(): run for run in sound}  # `run`'s reads too
        self._moved: dict[Path, Path] = {}
        # copies of one run: a completed one stands for them (probe 107: a `cp -r` backup taken mid-training, whose
        # path sorted first, took the run's export and bench, and the run read "not benchmarked")
        for run in sorted(sound, key=lambda r: (r.status != "completed", str(r.path))):
            written = run.data.get("run_dir")
            old = _real(written) if isinstance(written, str) and written else None
            if old is not None and old != run.path.resolve() and old not in self._here:
                self._moved.setdefault(old, run.path.resolve())
        # a whole folder copied or moved: where the runs here say their folders were, the others were too (probe 108:
        # in a copy beside its original, a source trained into again there was read from the original)
        roots: dict[tuple[Path, Path], int] = {}
        for old, new in self._moved.items():
            pair = moved_root(old, new)
            if pair is not None:
                roots[pair] = roots.get(pair, 0) + 1
        self._roots = sorted(roots, key=lambda pair: -roots[pair])
        # records from before run_dir was kept: a run here whose last folders (command/date/time) are the recorded
        # folder's, where that folder is gone (probe 107: a copied folder of such records lost every bench)
        self._by_tail: dict[tuple[str, ...], list[Path]] = {}
        for run in sound:
            if not isinstance(run.data.get("run_dir"), str):
                self._by_tail.setdefault(run.path.resolve().parts[-_TAIL:], []).append(run.path.resolve())
        # the run here that wrote a model file, by its SHA-256: where a named folder holds another model or none (two
        # folders swapped by name: probe 106), the model that was read is found by its bytes
        self._by_digest: dict[tuple[str, str], set[Path]] = {}  # (artifact, SHA-256) → the runs that wrote it
        for run in sound:
            digests = run.data.get("digests")
            for name, digest in digests.items() if isinstance(digests, Mapping) else ():
                self._by_digest.setdefault((str(name), str(digest)), set()).add(run.path.resolve())

    def where(self, recorded: Any) -> Path | None:
        """The folder a recorded run folder is now: the run here that was written there (copied, moved or renamed
        since); else the run at its place in a folder copied or moved whole; else, where the recorded folder is
        gone, the one run here with its last folders (records without run_dir); else the path itself. None for no
        path."""
        old = _real(recorded) if isinstance(recorded, (str, Path)) and str(recorded) else None
        if old is None or old in self._moved or old in self._here:
            return None if old is None else self._moved.get(old, old)
        for old_root, new_root in self._roots:
            if old.is_relative_to(old_root) and (here := new_root / old.relative_to(old_root)) in self._here:
                return here
        tail = self._by_tail.get(old.parts[-_TAIL:], [])
        return tail[0] if len(tail) == 1 and not old.exists() else old

    def run(self, path: Path) -> RunInfo | None:
        """The sound run in folder `path` (one at hand, else read from disk), or None."""
        if path not in self._runs:
            try:
                found: RunInfo | None = RunInfo.read(path)
            except (OSError, ValueError):  # ValueError: a NUL in an untrusted path
                found = None
            self._runs[path] = None if found is None or found.damaged else found
        return self._runs[path]

    def source(self, record: Mapping[str, Any] | None, reader: Path | None = None) -> Link | None:
        """Where a recorded source ({run, path, kind, sha256}: run.json `source`, a session's subject's `source`)
        leads; None when it names no run (a loose model file). `reader`: the run that read it (never its own
        source)."""
        if not isinstance(record, Mapping) or not isinstance(record.get("run"), str) or not record["run"]:
            return None
        recorded, path = _real(record["run"]), self.where(record["run"])
        assert path is not None
        run = self.run(path)
        changed = _other_model(record, run) if run is not None else None
        if run is not None and not changed:
            return Link(recorded, path)
        found = self._by_digest.get((_READ_FILE.get(str(record.get("kind")), ""), str(record.get("sha256"))), set())
        found = found - {reader}
        if len(found) == 1:  # the model read, moved to another name
            return Link(recorded, next(iter(found)))
        if run is None:
            return Link(recorded, None, f"its source run {recorded} is gone or unreadable")
        return Link(recorded, None, changed, replaced=True)

    def source_of(self, run: RunInfo) -> Link | None:
        """Where `run`'s own recorded source leads (run.json `source`); None for a run started from no run."""
        return self.source(run.data.get("source"), run.path.resolve())

    def source_path(self, run: RunInfo) -> Path | None:
        """The folder of the run `run` was made from: where it is now; the recorded folder where that run is gone
        (its timings and scores may still name it); None where it names no run, or a folder that holds another
        model now (nothing recorded of that folder is about the model `run` read)."""
        return _folder(self.source_of(run))

    def subject(self, subject: Mapping[str, Any]) -> Path | None:
        """The run folder a paired bench session's subject is now, as `source_path` follows a source: the recorded
        folder where that run is gone (a derived run's speed-up against it still stands: probe 125 lost it, "no bench
        session timed the two", for every record `cnnlab bench` writes); None where it leads to no run, or to a
        folder that holds another model now."""
        if not isinstance(subject, Mapping):
            return None
        link = self.source(subject.get("source")) if isinstance(subject.get("source"), Mapping) else None
        if link is not None:
            return _folder(link)
        return self.where(subject.get("run"))


def moved_root(old: Path, new: Path) -> tuple[Path, Path] | None:
    """(the folder above, where it was; where it is now) for a run folder written at `old` and found at `new` with its
    own folder's name (and those above it) kept: the folder above them was copied or moved, everything in it too.
    None where no name was kept (a rename; probe 109: runs named by hydra.run.dir=outputs/ft, copied to
    outputs_copy/ft, keep `ft`) or nothing moved."""
    same = next((k for k in range(min(len(old.parts), len(new.parts)), 0, -1) if old.parts[-k:] == new.parts[-k:]), 0)
    if not 0 < same < len(old.parts):
        return None
    return Path(*old.parts[:-same]), Path(*new.parts[:-same])


def _folder(link: Link | None) -> Path | None:
    """The run folder a link leads to: where it is now, else where it was (a gone run); None for no link or a folder
    that holds another model now."""
    return None if link is None or link.replaced else link.path or link.recorded


def _real(path: str | Path) -> Path | None:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None


def _other_model(record: Mapping[str, Any], run: RunInfo) -> str | None:
    """Why `run` is not the run a source record read (its model file, recorded by SHA-256, has other bytes now: the
    folder was trained into again, or another run moved there); None when it is, or when nothing tells."""
    name, digests = _READ_FILE.get(str(record.get("kind"))), run.data.get("digests")
    read, now = record.get("sha256"), digests.get(name) if name and isinstance(digests, Mapping) else None
    if not isinstance(read, str) or not isinstance(now, str) or read == now:
        return None
    artifacts = run.data.get("artifacts")
    recorded_file = artifacts.get(name) if isinstance(artifacts, Mapping) else None
    if recorded_file is not None and isinstance(record.get("path"), str) \
            and Path(record["path"]).name != Path(str(recorded_file)).name:
        return None  # it read another file of that run (a last.pt): the digests do not tell
    return (f"its source run's folder {run.path} holds another model now (a run of {run.started or 'unknown time'}: "
            f"its {Path(str(recorded_file or name)).name} is not the file this run read, by SHA-256)")
