"""Shared by the quantize benchmarks (quantize_speedup.py, quantize_qat.py): run `cnnlab quantize` as a user
would, and rebuild a run's data for measurements made outside cnnlab.

Training the source model, exporting it and the independent onnxruntime timing are shared with the prune
benchmark (benchmarks/_common.py), so that both benchmarks measure the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from _common import (QUICK_DATA, cnnlab, export_dense, independent_latency, run_cnnlab,  # noqa: F401
                     train_dense)

QUICK_TIMING = ["quantize.bench_rounds=1", "quantize.bench_min_iters=3", "quantize.bench_min_seconds=0",
                "quantize.calib_batches=2"]


def quantize(outputs: Path, threads: int, source_run: dict, *args: str) -> tuple[int, dict]:
    """`cnnlab quantize source=RUN ARGS`: (exit code, its run.json). A run over the accuracy budget exits
    non-zero but keeps a complete record, which the benchmark reports like any other."""
    command = ["quantize", f"source={source_run['run_dir']}", f"quantize.bench_threads={threads}", *args]
    code, record, stderr = run_cnnlab(outputs, threads, *command)
    if record is None or "quantize" not in record:
        sys.exit(f"`cnnlab {' '.join(command)}` failed:\n{stderr}")
    return code, record


def run_data(run: dict):  # type: ignore[no-untyped-def]
    """The data a training run recorded (its dataset config), at its model's input spec, without augmentation."""
    from omegaconf import OmegaConf

    from cnnlab.data import build_datasets
    from cnnlab.engine.checkpoint import load_model

    _, checkpoint = load_model(Path(run["run_dir"]) / "model.pt")
    return build_datasets(OmegaConf.create(run["dataset"]["config"]), checkpoint.spec, train_augment=False)
