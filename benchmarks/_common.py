"""Shared bits of the benchmark scripts: thread pinning, the machine fingerprint, robust statistics."""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def pin_threads(threads: int) -> int:
    """Set torch's intra-op threads explicitly (benchmarks always record what they ran with)."""
    import torch

    torch.set_num_threads(threads)
    return torch.get_num_threads()


def print_machine(threads: int | None) -> None:
    from cnnlab.environment import fingerprint

    info = fingerprint()
    cpu = info["cpu"]
    family = f" (family {cpu['family']} model {cpu['model_number']})" if cpu.get("family") is not None else ""
    print(f"machine: {cpu['model']}{family} | {cpu['usable_cores']} usable cores | flags {' '.join(cpu['flags'])}")
    print(f"software: python {info['python']} | " + " | ".join(f"{k} {v}" for k, v in info["packages"].items() if v))
    print(f"torch threads: {threads if threads is not None else 'n/a'}")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def interleaved(measures: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each named measure, `rounds` times, the measures taking turns within each round (so a slow spell
    of a shared machine falls on all of them alike)."""
    times: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            start = time.perf_counter()
            measure()
            times[name].append(time.perf_counter() - start)
    return times


def print_medians(times: dict[str, list[float]], *, width: int = 30, digits: int = 3) -> None:
    """Each measure's median and rounds, one line each (`times` as `interleaved` gives them)."""
    for name, values in times.items():
        rounds = ", ".join(f"{v:.{digits}f}" for v in values)
        print(f"  {name:{width}s} {median(values):.{digits}f} s  (rounds: {rounds})")


def dump(path: str | None, data: dict) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(data, handle, indent=2)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --quick: tiny synthetic data, so the train-then-time scripts prove they work in about a minute.
QUICK_DATA = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=128", "dataset.val_size=64",
              "dataset.num_classes=4", "trainer.batch_size=32"]


def add_train_and_time_arguments(parser: argparse.ArgumentParser, *, image_size: int, epochs: int, epochs_help: str,
                                 rounds: int, iterations: int) -> None:
    """The flags every benchmark that trains a model and then times it shares: data, epochs, threads, timing
    rounds and --json; each script adds its own (models, ratios, batches, --quick)."""
    parser.add_argument("--dataset", choices=("digits", "synthetic"), default="digits")
    parser.add_argument("--image-size", type=int, default=image_size)
    parser.add_argument("--data-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more dataset override, repeatable (e.g. dataset.num_classes=100)")
    parser.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    parser.add_argument("--threads", type=int, default=usable_cores(), help="training and timing threads")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--iterations", type=int, default=iterations)
    parser.add_argument("--json", help="also write the results here")


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=tuple(RUNTIME_PROVIDERS), default="onnxruntime",
                        help="the CPU runtime INT8 files are chosen, evaluated and timed on (quantize.runtime); "
                             "openvino needs onnxruntime-openvino in place of onnxruntime")


def data_overrides(args: argparse.Namespace) -> list[str]:
    """The dataset overrides --dataset, --image-size and --data-override stand for."""
    return [f"dataset={args.dataset}", f"dataset.image_size={args.image_size}", *args.data_override]


def run_cnnlab(outputs: Path, threads: int, *args: str) -> tuple[int, dict | None, str]:
    """Run `cnnlab ARGS` as a user would, with runs under `outputs`: (exit code, the new run's run.json or
    None, the end of stderr)."""
    env = {**os.environ, "CNNLAB_OUTPUTS": str(outputs), "OMP_NUM_THREADS": str(threads)}
    outputs.mkdir(parents=True, exist_ok=True)
    before = set(outputs.rglob("run.json"))
    proc = subprocess.run([sys.executable, "-m", "cnnlab", *args], env=env, cwd=outputs.parent,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    new = sorted(set(outputs.rglob("run.json")) - before, key=lambda p: p.stat().st_mtime)
    return proc.returncode, (json.loads(new[-1].read_text()) if new else None), proc.stderr[-3000:]


def cnnlab(outputs: Path, threads: int, *args: str) -> dict:
    """Run `cnnlab ARGS`; its run.json (the run folder is run.json["run_dir"]). Stops the benchmark on failure."""
    code, record, stderr = run_cnnlab(outputs, threads, *args)
    if code != 0 or record is None:
        sys.exit(f"`cnnlab {' '.join(args)}` failed:\n{stderr}")
    return record


def has_imagenet_weights(model: str) -> bool:
    import torchvision.models as tvm

    from cnnlab.models import MODELS, hub_checkpoint_path

    tv = MODELS[model].tv_weights
    return tv is not None and hub_checkpoint_path(tvm.get_weight(tv).url).is_file()


def train_dense(outputs: Path, threads: int, model: str, data: list[str], epochs: int) -> tuple[dict, str]:
    common = [f"model={model}", *data, f"trainer.epochs={epochs}"]
    if has_imagenet_weights(model):
        return cnnlab(outputs, threads, "finetune", *common, "model.weights=imagenet",
                      "finetune.mode=full"), "fine-tuned from ImageNet weights"
    return cnnlab(outputs, threads, "pretrain", *common), "trained from scratch (no ImageNet file in the hub cache)"


def export_dense(run: dict, path: Path, size: int | None = None) -> Path:
    """The run's model.pt as FP32 ONNX (cnnlab's exporter and metadata); `size`: the same weights at another
    input size (the run's preprocessing, resized to it), e.g. a model trained at 96 px timed at 224 px."""
    from cnnlab.deploy.export import export_onnx
    from cnnlab.engine.checkpoint import load_model

    model, checkpoint = load_model(Path(run["run_dir"]) / "model.pt")
    spec = checkpoint.spec if size is None else resized_spec(checkpoint.spec, size)
    return export_onnx(model, path, spec=spec, classes=checkpoint.classes)


def resized_spec(spec, size: int):  # type: ignore[no-untyped-def]
    """`spec` (cnnlab.data.InputSpec) at `size` px: a square resize stays a square resize to the new size; any
    other geometry is dropped (build_datasets then gives the data's own)."""
    from dataclasses import replace

    if spec.resize == "square" and spec.crop is None:
        return replace(spec, size=int(size), resize_to=int(size))
    return spec.with_size(int(size))


def independent_latency(paths: dict[str, Path], image_size: int, threads: int, batch: int, rounds: int,
                        iterations: int, runtime: str = "onnxruntime") -> dict[str, float]:
    """Median latency (ms) per file: plain onnxruntime sessions on `runtime` (onnxruntime's own CPU kernels or
    its OpenVINO provider), interleaved rounds so drift hits every model alike."""
    sessions = {key: plain_session(str(p), runtime, threads) for key, p in paths.items()}
    feed = {"input": np.random.default_rng(0).standard_normal((batch, 3, image_size, image_size), dtype=np.float32)}
    return time_sessions(sessions, feed, rounds, iterations)


RUNTIME_PROVIDERS = {"onnxruntime": "CPUExecutionProvider", "openvino": "OpenVINOExecutionProvider"}


def plain_openvino(model, threads: int, batch: int | None = None):  # type: ignore[no-untyped-def]
    """An OpenVINO compiled model made without cnnlab, from an ONNX path or an `openvino.Model` (e.g. NNCF's
    output): the native `openvino` package's CPU plugin with PERFORMANCE_HINT=LATENCY, INFERENCE_NUM_THREADS=
    `threads` and INFERENCE_PRECISION_HINT=f32 (pinned: on a CPU with bf16 the plugin would otherwise run an FP32
    model in bf16), reshaped to a static `batch` first when one is given. Checks that the plugin kept f32."""
    core = _openvino_core()
    model = core.read_model(str(model)) if isinstance(model, (str, Path)) else model.clone()
    if batch is not None:
        shape = model.inputs[0].get_partial_shape()
        model.reshape([batch, *(shape[i].get_length() for i in range(1, shape.rank.get_length()))])
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(model, "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if str(precision) != "f32":
        raise RuntimeError(f"OpenVINO compiled for {precision}, not the f32 asked for")
    return compiled


def plain_session(path: str, runtime: str, threads: int):  # type: ignore[no-untyped-def]
    """An onnxruntime session made without cnnlab (all graph optimisations, `threads` threads) on `runtime`,
    which must really start: no silent fallback to the CPU provider. Needs only onnxruntime."""
    import onnxruntime as ort

    provider = RUNTIME_PROVIDERS[runtime]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: OpenVINO's node-assignment notices are not results
    chosen = ([(provider, {"device_type": "CPU", "num_of_threads": str(threads)})] if runtime == "openvino"
              else [provider])
    session = ort.InferenceSession(path, options, providers=chosen)
    if session.get_providers()[0] != provider:
        raise SystemExit(f"{provider} did not start for {path} (got {session.get_providers()})")
    return session


@functools.lru_cache(maxsize=1)
def _openvino_core():  # type: ignore[no-untyped-def]
    import openvino as ov

    return ov.Core()


def time_sessions(sessions: dict, feed: dict, rounds: int, iterations: int) -> dict[str, float]:
    """Median latency (ms) per onnxruntime session on `feed`: a warm-up, then interleaved rounds (each session
    `iterations` runs per round) so drift hits every model alike; the median over rounds of each round's median.
    Needs only numpy and onnxruntime, so a script in another environment (openvino_int8.py) can use it."""
    for session in sessions.values():  # warm-up
        for _ in range(max(3, iterations // 4)):
            session.run(None, feed)
    per_round: dict[str, list[float]] = {key: [] for key in sessions}
    for _ in range(rounds):
        for key, session in sessions.items():
            times = []
            for _ in range(iterations):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            per_round[key].append(1000 * statistics.median(times))
    return {key: statistics.median(values) for key, values in per_round.items()}
