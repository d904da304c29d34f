"""Shared fixtures: an isolated outputs folder and an in-process CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import compose_cache
import export_cache
import prebuilt
from helpers import TEACHER_TRAINING, TINY, ctrl_c_after_first_checkpoint, run_dirs

# Wide, unwrapped tables and log lines whatever the runner says (pytest-xdist sets COLUMNS=80).
os.environ["COLUMNS"] = "200"

# One thread per test process: on a shared 2-core machine two threads per op can run 10x slower
# (oversubscription), and `pytest -n 2` already uses both cores.
torch.set_num_threads(1)
# The same for what cnnlab starts itself: its onnxruntime and OpenVINO sessions and a pipeline's stage processes
# (the user's explicit thread count: cnnlab.environment.job_threads).
os.environ["CNNLAB_THREADS"] = "1"
# And what it is: `pytest -n 2` runs two jobs at once on the cores (environment.jobs_in_parallel), so a training on
# image files gets its core share less one, no DataLoader worker: each worker is a fork of a test process holding
# gigabytes, whose copy-on-write page faults cost more system time than its tiny folder takes to decode.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # set in each worker (pytest -n N), never in the controller
    os.environ["CNNLAB_PARALLEL_JOBS"] = os.environ["PYTEST_XDIST_WORKER_COUNT"]
# The same network exported again in this process gets its graph back (checked against PyTorch as every export is):
# torch's exporter takes ~1 s a call, and most tests export the same few tiny networks (export_cache.py).
export_cache.install()
# The same config composed again in this process is Hydra's kept result (compose_cache.py): composing takes ~0.18 s
# of every command, a third of the suite's time, and the tests compose the same few configs thousands of times.
compose_cache.install()


@pytest.fixture(autouse=True)
def load_of_the_other_test_worker_unseen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run two at once on two cores (`-n 2`): every paired timing would see the other worker as a busy
    neighbour and warn (deploy/contention.py), or not, as the workers happen to overlap. The kernel's counts read as
    unknown here; tests/deploy/test_contention.py gives them back to test the check itself."""
    from cnnlab.deploy import contention

    monkeypatch.setattr(contention, "_STAT", os.devnull)


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
def workspace(request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder a test's commands run in, holding its outputs/: tmp_path, or where the test asks for a fixture
    that starts in a prebuilt workspace (prebuilt.starts_in), that workspace restored."""
    builds = {prebuilt.BUILDS[name] for name in request.fixturenames if name in prebuilt.BUILDS}
    if not builds:
        return tmp_path
    assert len(builds) == 1, f"{request.node.name} asks for fixtures of {len(builds)} prebuilt workspaces"
    return prebuilt.restore(builds.pop(), tmp_path_factory.getbasetemp() / "prebuilt")


@pytest.fixture
def outputs(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs folder (CNNLAB_OUTPUTS) and working directory per test."""
    out = workspace / "outputs"
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(out))
    monkeypatch.chdir(workspace)
    return out


@pytest.fixture
def cli(outputs: Path):
    """Run `cnnlab ARGS` in this process (fast: torch is imported once per test session)."""
    return prebuilt.invoke


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


@prebuilt.starts_in("tiny_export")
def tiny_export_made(workspace: Path) -> None:
    prebuilt.build_run(workspace, ("pretrain", *TINY), ("export", "source=latest:pretrain", "export.evaluate=false"))


@pytest.fixture
def tiny_export(outputs: Path) -> Path:
    """A tiny run's cnnlab export (synthetic data, 4 classes, LeNet-5 at 16 px): model.onnx whose metadata names the
    run's model.pt (made once per process: prebuilt.py)."""
    return run_dirs(outputs, "export")[0] / "model.onnx"


@prebuilt.starts_in("tiny_run")
def tiny_run_made(workspace: Path) -> None:
    prebuilt.build_run(workspace, ("pretrain", *TINY))


@pytest.fixture
def tiny_run(outputs: Path) -> Path:
    """`cnnlab pretrain` of TINY (synthetic data, 4 classes, LeNet-5 at 16 px, one epoch), made once per process
    (prebuilt.py): its run folder."""
    return run_dirs(outputs, "pretrain")[0]


@prebuilt.starts_in("teacher_run")
def teacher_made(workspace: Path) -> None:
    prebuilt.build_run(workspace, ("pretrain", *TINY, *TEACHER_TRAINING))


@pytest.fixture
def teacher_run(outputs: Path) -> Path:
    """A TINY pretrain run that learned (TEACHER_TRAINING: 56 % on 4 classes, where chance is 25 %): distill's
    teacher, a classifier to continue (made once per process: prebuilt.py)."""
    return run_dirs(outputs, "pretrain")[0]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks (--dist loadgroup, pyproject.toml)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that share something made once per process run in one process: those starting in the same prebuilt
    workspace, and a module's tests that use one of its module-scoped fixtures. Spread over both workers, each was
    made twice."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        builds = sorted(name for name in names if name in prebuilt.BUILDS)
        definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        shared = any(defs and defs[-1].scope == "module" for defs in definitions.values())
        if builds:
            item.add_marker(pytest.mark.xdist_group(f"prebuilt-{builds[0]}"))
        elif shared:
            item.add_marker(pytest.mark.xdist_group(f"module-{item.nodeid.split('::')[0]}"))


def pytest_configure(config: pytest.Config) -> None:
    """Refuses a pytest and pytest-xdist that run `-n` with `--dist loadgroup` (addopts) but ignore its groups:
    pytest 9.2's node ids dropped the suffix pytest-xdist 3.8 writes them (pytest-xdist#1386), and the groups above
    went unheeded, unsaid, from the day pytest 9.2 was installed."""
    from importlib.metadata import version

    from packaging.version import Version

    if config.getvalue("dist") == "loadgroup" and config.getvalue("numprocesses") and \
            Version(pytest.__version__) >= Version("9.2") and Version(version("pytest-xdist")) <= Version("3.8.0"):
        raise pytest.UsageError(f"pytest {pytest.__version__} with pytest-xdist {version('pytest-xdist')} ignores "
                                "--dist loadgroup (pytest-xdist#1386): pip install 'pytest<9.2'")
