"""Workspaces made once per test process and restored for every test that starts from them.

A tiny pretrain and its export take ~2 s, and ~100 tests start from the same few runs: made once and restored, they
keep the suite inside its 10-minute budget on two cores. A workspace is restored file for file at the absolute path
it was made in (run.json, the ONNX file's metadata and Hydra's records hold absolute paths; copies keep modification
times, which a folder's content fingerprint reads), so a test cannot tell a restored run from one it made itself, and
what one test changes is gone at the next restore. `workspace(request)` in conftest.py picks one by the fixtures a
test asks for.
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from helpers import CliResult

# fixture name → the build of the workspace a test asking for that fixture starts in (`starts_in`).
BUILDS: dict[str, Callable[[Path], None]] = {}
# build function → its snapshot, per test process (pytest-xdist runs each worker in a process of its own).
_SNAPSHOTS: dict[Callable[[Path], None], Path] = {}


def starts_in(fixture: str) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    """Decorator: a test that asks for `fixture` (directly or through another fixture) runs in the workspace the
    decorated `build(workspace)` makes, restored."""

    def register(build: Callable[[Path], None]) -> Callable[[Path], None]:
        if BUILDS.setdefault(fixture, build) is not build:
            raise ValueError(f"two workspaces are built for fixture {fixture!r}: name one of them otherwise")
        return build

    return register


def restore(build: Callable[[Path], None], base: Path) -> Path:
    """The workspace `build` makes, at base/<its name>: made by `build(workspace)` the first time in this process
    (what it leaves is kept as a snapshot), copied back from the snapshot every later time."""
    name = f"{build.__module__}.{build.__qualname__}".replace("<", "").replace(">", "")
    workspace, snapshot = base / name, base / f"{name}.snapshot"
    shutil.rmtree(workspace, ignore_errors=True)
    if build in _SNAPSHOTS:
        shutil.copytree(_SNAPSHOTS[build], workspace, symlinks=True)
        return workspace
    workspace.mkdir(parents=True)
    build(workspace)
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(workspace, snapshot, symlinks=True)
    _SNAPSHOTS[build] = snapshot
    return workspace


@contextmanager
def commands_in(workspace: Path) -> Iterator[None]:
    """cnnlab commands run from `workspace` and write into workspace/outputs while inside."""
    before, cwd = os.environ.get("CNNLAB_OUTPUTS"), os.getcwd()
    os.environ["CNNLAB_OUTPUTS"] = str(workspace / "outputs")
    os.chdir(workspace)
    try:
        yield
    finally:
        os.chdir(cwd)
        if before is None:
            os.environ.pop("CNNLAB_OUTPUTS", None)
        else:
            os.environ["CNNLAB_OUTPUTS"] = before


def invoke(*args: str) -> CliResult:
    """`cnnlab ARGS` in this process (the `cli` fixture's runner; launch() rewrites sys.argv for Hydra, so it is put
    back after)."""
    from typer.testing import CliRunner

    from cnnlab.cli import app

    argv = list(sys.argv)
    try:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        sys.argv = argv
        drop_closed_log_streams()
    return CliResult(result.exit_code, result.stdout, result.stderr)


def build_run(workspace: Path, *commands: tuple[str, ...]) -> None:
    """Run each command (a tuple of cnnlab arguments) in `workspace`; each must succeed."""
    with commands_in(workspace):
        for args in commands:
            result = invoke(*args)
            assert result.code == 0, result.output


def drop_closed_log_streams() -> None:
    """Remove the log handlers that write to a stream CliRunner has closed. In one process (these tests) a handler
    Hydra attached to one command's captured stderr outlived it, and a later command's first log record, written
    before Hydra configured its logging again, printed "--- Logging error --- … I/O operation on closed file" into
    that command's stderr (a CI run of 2026-12-06). A real `cnnlab` command is a process of its own."""
    import logging

    loggers = [logging.getLogger(), *(v for v in logging.root.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and getattr(handler.stream, "closed", False):
                logger.removeHandler(handler)
