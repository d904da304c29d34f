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
