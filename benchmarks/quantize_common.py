"""Shared by the quantize benchmarks (quantize_speedup.py, quantize_qat.py): run `cnnlab quantize` as a user
would, and rebuild a run's data for measurements made outside cnnlab.

Training the source model, exporting it and the independent onnxruntime timing are the prune benchmark's
(benchmarks/prune_speedup.py), reused as they are so that both benchmarks measure the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from prune_speedup import cnnlab, export_dense, independent_latency, train_dense, usable_cores  # noqa: F401  (re-exported)

# --quick: tiny synthetic data, so the scripts prove they work in about a minute.
QUICK_DATA = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=128", "dataset.val_size=64",
              "dataset.num_classes=4", "trainer.batch_size=32"]
QUICK_TIMING = ["quantize.bench_rounds=1", "quantize.bench_min_iters=3", "quantize.bench_min_seconds=0",
                "quantize.calib_batches=2"]


def quantize(outputs: Path, threads: int, source_run: dict, *args: str) -> tuple[int, dict]:
    """`cnnlab quantize source=RUN ARGS`: (exit code, its run.json). A run over the accuracy budget exits
    non-zero but keeps a complete record, which the benchmark reports like any other."""
    env = {**os.environ, "CNNLAB_OUTPUTS": str(outputs), "OMP_NUM_THREADS": str(threads)}
    before = set(outputs.rglob("run.json"))
    command = [sys.executable, "-m", "cnnlab", "quantize", f"source={source_run['run_dir']}",
               f"quantize.bench_threads={threads}", *args]
    proc = subprocess.run(command, env=env, cwd=outputs.parent, capture_output=True, text=True)
    new = set(outputs.rglob("run.json")) - before
    if not new or "quantize" not in json.loads(next(iter(new)).read_text()):
        sys.exit(f"`{' '.join(command[2:])}` failed:\n{proc.stderr[-3000:]}")
    return proc.returncode, json.loads(next(iter(new)).read_text())


def run_data(run: dict):  # type: ignore[no-untyped-def]
    """The data a training run recorded (its dataset config), at its model's input spec, without augmentation."""
    from omegaconf import OmegaConf

    from cnnlab.data import build_datasets
    from cnnlab.engine.checkpoint import load_model

    _, checkpoint = load_model(Path(run["run_dir"]) / "model.pt")
    return build_datasets(OmegaConf.create(run["dataset"]["config"]), checkpoint.spec, train_augment=False)
