"""cnnlab/app.py: how a command is handed to Hydra."""

from __future__ import annotations

import sys

import pytest
from hydra._internal.hydra import Hydra

from cnnlab.app import _mode_from_the_command_line


def test_hydra_composes_once_unless_hydra_mode_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra 1.3 composed every command's config twice, once only for `hydra.mode` (~0.13 s a command,
    docs/benchmarks.md); the mode is the command line's, so that compose is skipped — but not for a typed
    `hydra.mode=`, which Hydra must read."""
    original = Hydra.get_mode
    monkeypatch.setattr(sys, "argv", ["cnnlab", "command=pretrain", "seed=1"])
    with _mode_from_the_command_line():
        assert Hydra.get_mode(None, "config", ["seed=1"]) is None  # type: ignore[arg-type]
    assert Hydra.get_mode is original
    monkeypatch.setattr(sys, "argv", ["cnnlab", "command=pretrain", "hydra.mode=MULTIRUN", "seed=1,2"])
    with _mode_from_the_command_line():
        assert Hydra.get_mode is original


def test_a_typed_hydra_mode_still_sweeps(cli, outputs) -> None:
    from helpers import TINY, run_dirs

    result = cli("pretrain", *TINY, "hydra.mode=MULTIRUN", "seed=0,1")
    assert result.code == 0, result.output
    assert len(run_dirs(outputs, "pretrain")) == 2
