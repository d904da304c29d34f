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


def run_data(run: dict, size: int | None = None):  # type: ignore[no-untyped-def]
    """The data a training run recorded (its dataset config), at its model's input spec (or that spec resized to
    `size` px, as export_dense(size=) exports it), without augmentation."""
    from _common import resized_spec
    from omegaconf import OmegaConf

    from cnnlab.data import build_datasets
    from cnnlab.engine.checkpoint import load_model

    _, checkpoint = load_model(Path(run["run_dir"]) / "model.pt")
    spec = checkpoint.spec if size is None else resized_spec(checkpoint.spec, size)
    return build_datasets(OmegaConf.create(run["dataset"]["config"]), spec, train_augment=False)


def calibration_images(data, batches: int, batch_size: int) -> list:  # type: ignore[no-untyped-def]
    """The training images `cnnlab quantize` calibrates on with quantize.calib_batches=`batches` and
    quantize.calib_batch_size=`batch_size` (its seeded draw), as N x C x H x W float32 arrays."""
    from cnnlab.compress.quantization import calibration_batches

    return calibration_batches(data.train, batches=batches, batch_size=batch_size, seed=0)


def onnxruntime_default_int8(fp32: Path, target: Path, batches: list) -> Path:  # type: ignore[type-arg]
    """What a user gets from onnxruntime without cnnlab: `quantize_static(fp32, target, reader)` with nothing
    else set (QDQ, S8 activations, S8 per-tensor weights, MinMax, no pre-processing), on `batches`."""
    from onnxruntime.quantization import quantize_static

    from cnnlab.compress.quantization import CalibrationReader

    quantize_static(str(fp32), str(target), CalibrationReader("input", batches))
    return target
