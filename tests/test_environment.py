"""The software fingerprint recorded with every run."""

from __future__ import annotations

from importlib import metadata

import pytest

from cnnlab import environment


def test_a_module_installed_by_another_distribution_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.version

    def version(name: str) -> str:
        if name == "onnxruntime":  # as after `pip uninstall onnxruntime && pip install onnxruntime-openvino`
            raise metadata.PackageNotFoundError(name)
        return "1.24.1" if name == "onnxruntime-openvino" else real(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(metadata, "packages_distributions", lambda: {"onnxruntime": ["onnxruntime-openvino"]})
    versions = environment.package_versions()
    assert versions["onnxruntime"] == "1.24.1 (onnxruntime-openvino)"
    assert versions["torch"] == real("torch")


def test_a_module_nobody_installed_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "_PACKAGES", ("surely-not-installed-pkg",))
    assert environment.package_versions() == {"surely-not-installed-pkg": None}


def test_the_ranks_torchrun_launched_are_read_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app (which rank writes the run folder) and the runtime (which joins the process group) read them alike;
    an empty or garbled value is the single-process default, not a crash before the run starts."""
    from cnnlab import app
    from cnnlab.engine.runtime import Runtime
    from cnnlab.environment import Ranks, launched_ranks

    monkeypatch.setenv("RANK", "")
    monkeypatch.setenv("WORLD_SIZE", "two")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert launched_ranks() == Ranks() and app._rank() == 0
    runtime = Runtime.from_config({"device": "cpu", "trainer": {"amp": "none"}})
    assert (runtime.rank, runtime.world_size, runtime.local_rank) == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launched_ranks() == Ranks(rank=3, world_size=4, local_rank=1) and app._rank() == 3
