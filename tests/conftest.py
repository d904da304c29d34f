"""Shared fixtures: an isolated outputs folder and an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from helpers import CliResult, ctrl_c_after_first_checkpoint

# Wide, unwrapped tables and log lines whatever the runner says (pytest-xdist sets COLUMNS=80).
os.environ["COLUMNS"] = "200"

# One thread per test process: on a shared 2-core machine two threads per op can run 10x slower
# (oversubscription), and `pytest -n 2` already uses both cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def outputs_outside_the_repository(tmp_path_factory: pytest.TempPathFactory):
    """Every test without the `outputs` fixture writes its runs — and the run folders Hydra reserves as a config is
    composed — into a temporary folder, never into the repository's outputs/ (test_conf, test_settings and
    test_stage_check left empty run folders there)."""
    before = os.environ.get("CNNLAB_OUTPUTS")
    os.environ["CNNLAB_OUTPUTS"] = str(tmp_path_factory.mktemp("session-outputs"))
    yield
    if before is None:
        os.environ.pop("CNNLAB_OUTPUTS", None)
    else:
        os.environ["CNNLAB_OUTPUTS"] = before


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs folder (CNNLAB_OUTPUTS) and working directory per test."""
    out = tmp_path / "outputs"
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(out))
    monkeypatch.chdir(tmp_path)
    return out


@pytest.fixture
def cli(outputs: Path, monkeypatch: pytest.MonkeyPatch):
    """Run `cnnlab ARGS` in this process (fast: torch is imported once per test session)."""
    from typer.testing import CliRunner

    from cnnlab.cli import app

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # launch() rewrites argv for Hydra

    def invoke(*args: str) -> CliResult:
        try:
            result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        finally:
            _drop_closed_log_streams()
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


def _drop_closed_log_streams() -> None:
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


@pytest.fixture
def fake_imagenet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """install(name): a random 1000-class state dict where torch hub caches torchvision's ImageNet file for
    that model (TORCH_HOME points into tmp_path), so model.weights=imagenet works offline. Returns it."""
    import torchvision.models as tvm

    from cnnlab.models import MODELS, create_model, hub_checkpoint_path

    import cnnlab.models.weights as hub_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    installed: set[Path] = set()
    real_sha256 = hub_weights.file_sha256

    def published_digest(path):  # an installed file reads as torchvision's bytes: the hash prefix its name carries
        match = torch.hub.HASH_REGEX.search(Path(path).name)
        return match.group(1) + "0" * 56 if Path(path) in installed and match else real_sha256(path)

    monkeypatch.setattr(hub_weights, "file_sha256", published_digest)

    def install(name: str) -> dict[str, torch.Tensor]:
        state = create_model(name, num_classes=1000, image_size=224).state_dict()
        path = hub_checkpoint_path(tvm.get_weight(MODELS[name].tv_weights).url)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        installed.add(path)
        return state

    return install


@pytest.fixture
def ctrl_c_after_the_first_checkpoint(monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C while the first epoch's last.pt is written (the epoch's save and record finish first, then the run
    stops: probe 139); yields a function that stops it."""
    with ctrl_c_after_first_checkpoint(monkeypatch) as stop:
        yield stop


@pytest.fixture
def tiny_export(cli, outputs: Path) -> Path:
    """A tiny run's cnnlab export (synthetic data, 4 classes, LeNet-5 at 16 px): model.onnx whose metadata names the
    run's model.pt."""
    from helpers import TINY, run_dirs

    assert cli("pretrain", *TINY).code == 0
    assert cli("export", "source=latest:pretrain", "export.evaluate=false").code == 0
    return run_dirs(outputs, "export")[0] / "model.onnx"
