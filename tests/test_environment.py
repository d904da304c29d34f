"""The software fingerprint recorded with every run."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from importlib import metadata

import pytest
import torch

from cnnlab import environment
from cnnlab.environment import lost_workers


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


class _DiesInItsWorker(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        if torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer ends a worker
        return torch.zeros(1)


class _RaisesInItsWorker(_DiesInItsWorker):
    def __getitem__(self, index: int) -> torch.Tensor:
        raise ValueError("an image that does not decode")


def _raised_by(read) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        read()
    except Exception as exc:  # noqa: BLE001 - what it raised is what is tested
        return exc
    raise AssertionError("nothing was raised")


def test_a_dataloader_worker_killed_or_a_batch_that_cannot_travel_is_a_lost_worker() -> None:
    """A worker the OOM killer took, and the socket under /tmp that passes a batch's file descriptors removed by a
    clean-up (a 15-epoch CPU run died so after 2 epochs with "FileNotFoundError ... a bug in cnnlab")."""
    from multiprocessing import resource_sharer

    killed = _raised_by(lambda: list(torch.utils.data.DataLoader(_DiesInItsWorker(), num_workers=1)))
    assert "DataLoader worker" in (lost_workers(killed) or "")
    gone = _raised_by(lambda: resource_sharer._resource_sharer.get_connection(("/nonexistent/pymp-x/listener", 1)))
    assert isinstance(gone, FileNotFoundError)
    assert "passing a batch from a worker" in (lost_workers(gone) or "")


def test_a_worker_gone_before_it_answers_for_its_batch_is_a_lost_worker(tmp_path: Path) -> None:
    """A worker killed between offering a batch and handing it over: the main process's connection to its resource
    sharer ends at once, EOFError — in a suite run under load, a traceback and "a bug in cnnlab"."""
    import socket
    import threading
    from multiprocessing import resource_sharer

    address = str(tmp_path / "listener")
    server = socket.socket(socket.AF_UNIX)
    server.bind(address)
    server.listen(1)
    threading.Thread(target=lambda: server.accept()[0].close(), daemon=True).start()
    try:
        gone = _raised_by(lambda: resource_sharer._resource_sharer.get_connection((address, 1)))
    finally:
        server.close()
    assert isinstance(gone, EOFError)
    assert lost_workers(gone) == "EOFError: the connection closed, passing a batch from a worker"


def test_an_error_the_dataset_raised_in_a_worker_or_any_other_is_no_lost_worker() -> None:
    raised = _raised_by(lambda: list(torch.utils.data.DataLoader(_RaisesInItsWorker(), num_workers=1)))
    assert "Caught ValueError in DataLoader worker process 0" in str(raised)
    assert lost_workers(raised) is None  # the data's own error, said as it is
    assert lost_workers(FileNotFoundError(2, "No such file or directory", "data/x.png")) is None
    assert lost_workers(RuntimeError("shape mismatch")) is None
