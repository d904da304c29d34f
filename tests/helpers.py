"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import re
import shlex
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from cnnlab.deploy.ort import runtime_missing

# The openvino package (pip install "cnnlab[openvino]", in the test extra): the tests that need it run, those that
# check the message shown without it simulate its absence.
HAS_OPENVINO = runtime_missing("openvino") is None

# Small enough that a whole pretrain run takes a couple of seconds on 2 cores.
TINY = ["dataset=synthetic", "dataset.image_size=16", "dataset.train_size=64", "dataset.val_size=32",
        "dataset.num_classes=4", "model=lenet5", "trainer.epochs=1", "trainer.batch_size=16"]
# Enough for the TINY teacher to beat chance (56 % on 4 classes): a teacher at chance is refused (conftest.teacher_run).
TEACHER_TRAINING = ["trainer.epochs=3", "optim=adamw", "optim.lr=0.003"]
# quantize's latency timing in a few milliseconds (its defaults time each file for at least 0.5 s a round): for tests
# of what quantize trains, chooses or records, not of its timing
QUANTIZE_QUICK_TIMING = ["quantize.bench_warmup=1", "quantize.bench_min_iters=3", "quantize.bench_min_seconds=0",
                         "quantize.bench_threads=1"]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_subprocess(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                   timeout: float = 300) -> CliResult:
    """Run `python -m cnnlab ARGS` as a user would (separate process, real exit code)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_dirs(outputs: Path, command: str) -> list[Path]:
    return sorted(p.parent for p in (outputs / command).rglob("run.json"))


def read_run(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def only_run(outputs: Path, command: str) -> dict:
    dirs = run_dirs(outputs, command)
    assert len(dirs) == 1, dirs
    return read_run(dirs[0])


def hinted_command(message: str) -> list[str]:
    """The arguments after `cnnlab` of the last command an error or hint line names in backticks, to follow it."""
    commands = re.findall(r"`(cnnlab [^`]+)`", message)
    assert commands, f"no `cnnlab ...` command in: {message}"
    return shlex.split(commands[-1])[1:]


def bash_words(text: str) -> list[str]:
    """The words bash passes on for `text` typed as arguments (an AssertionError where bash refuses it, as it does
    `seed=range(2)` or `${paths.data}` unquoted): a printed fix is checked against the shell it is typed into."""
    done = subprocess.run(["bash", "-c", f"printf '%s\\0' {text}"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and not done.stderr, f"bash refuses {text!r}: {done.stderr.strip()}"
    return done.stdout.split("\0")[:-1]


def random_image_folder(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog"), size: int = 16,
                        seed: int = 0) -> Path:
    """root/<class>/<i>.png: `per_class` random RGB pictures of `size` px per class (an `imagefolder` without val/)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def write_idx(folder: Path, prefix: str, count: int, seed: int, classes: int = 4) -> None:
    """MNIST-style gz idx files whose classes are learnable: class c is a bright band at rows 7c..7c+6, + noise."""
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 7 * label:7 * label + 7] = 230
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes()))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(struct.pack(">II", 2049, count) + labels.astype(np.uint8).tobytes()))


def saved_model_val_scores(run_dir: Path, record: dict) -> tuple[float, float, int]:
    """(top-1, mean cross-entropy, images) of the run's saved model.pt, in float32, on the validation split its
    run.json records: what the run's recorded val metrics must equal."""
    import torch

    from cnnlab.data import build_datasets, make_loader, resolve_input_spec
    from cnnlab.engine.checkpoint import load_model

    model, _ = load_model(run_dir / "model.pt")
    config = record["dataset"]["config"]
    data = build_datasets(config, resolve_input_spec(config, None))
    hits, loss = 0, 0.0
    with torch.no_grad():
        for x, y in make_loader(data.val, 64, shuffle=False, seed=0):
            logits = model(x)
            hits += int((logits.argmax(1) == y).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
    return hits / len(data.val), loss / len(data.val), len(data.val)


@contextmanager
def ctrl_c_after_first_checkpoint(monkeypatch) -> Iterator[Callable[[], None]]:
    """Inside: Ctrl-C while a training's first last.pt is written (the epoch's save and record finish first, then the
    run stops: probe 139); yields a function that stops it (conftest's fixture, and one command of a test)."""
    from cnnlab.engine.trainer import Trainer

    save_state = Trainer._save_state

    def save_then_interrupt(self, *args, **kwargs):
        save_state(self, *args, **kwargs)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "_save_state", save_then_interrupt)
    # a shell starts a background job (`pytest … &`) with Ctrl-C ignored, which cnnlab keeps: the run takes it here
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield lambda: monkeypatch.setattr(Trainer, "_save_state", save_state)
    finally:
        signal.signal(signal.SIGINT, previous)
