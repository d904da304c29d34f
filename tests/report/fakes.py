"""Run folders written directly on disk, as the commands record them: fast stand-ins for trained models.

`model_run(..., seed=N)` also writes the saved config (.hydra/config.yaml) that seed groups are made from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import yaml

from cnnlab.fileio import file_sha256
from cnnlab.runs import RunRecord

DATASET = {"name": "digits", "num_classes": 10, "image_size": 64}


def folder_dataset(root: Path | str, *, train_size: int = 36, val_size: int = 18, name: str = "imagefolder",
                   **config: Any) -> dict[str, Any]:
    """run.json's dataset section of a run on the folder `root` (recorded absolute, as steps/recording.py does), 3
    classes at 32 px; `name="cifar10"` for a canonical set's copy at `root`; `config` adds to the recorded config."""
    return {"name": name, "num_classes": 3, "image_size": 32, "train_size": train_size, "val_size": val_size,
            "config": {"name": name, "root": str(root), "image_size": 32, "val_fraction": 0.2, "seed": 0, **config}}


def saved_config(command: str, model_name: str, seed: int, source: Path | None, /, **settings: Any) -> dict[str, Any]:
    """What Hydra saves as .hydra/config.yaml (the parts that matter here); `settings` override sections,
    e.g. trainer={"epochs": 5} or model={"weights": "init.pth"}."""
    config: dict[str, Any] = {
        "dataset": {"name": "digits", "seed": 0, "val_fraction": 0.2}, "model": {"name": model_name, "weights": "none"},
        "optim": {"lr": 0.05}, "trainer": {"epochs": 2, "batch_size": 64}, "seed": seed, "device": "auto",
        "source": None if source is None else str(source), "resume": None,
        "paths": {"outputs": "${oc.env:CNNLAB_OUTPUTS,outputs}"}, command: {"ratio": 0.5}}
    for key, value in settings.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


def model_run(outputs: Path, command: str, name: str, acc: float, *, model: str | None = "resnet18",
              source: Path | None = None, params: int = 1_000_000, onnx_bytes: int | None = None,
              status: str = "completed",
              dataset: dict | None = None, seed: int | None = None, settings: dict[str, Any] | None = None,
              metrics: dict[str, Any] | None = None, overrides: Sequence[str] = (),
              precision: str | None = None, arch: str | None = None, stem: str | None = None,
              cwd: Path | None = None, source_file: Path | None = None) -> Path:
    """A model run; with `seed`, its saved config too (`settings` as in `saved_config`), and with `cwd` Hydra's
    record of the folder it was started from (.hydra/hydra.yaml); `metrics` adds to val_acc; `overrides` as run.json
    records the command line's; a `status` other than completed records no dataset (training records it at the end);
    `source_file`: made from a model file outside any run (`cnnlab quantize source=FILE.onnx`), recorded as the
    command records it (run null)."""
    run_dir = outputs / command / "2026-11-28" / name
    record = RunRecord.start(run_dir, command, overrides=overrides)
    if seed is not None:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump(saved_config(command, model, seed, source, **(settings or {}))))
    if cwd is not None:
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"run": {"dir": "x"}, "runtime": {"cwd": str(cwd), "output_dir": str(run_dir)}}}))
    record.update(model={"name": model, "params": params, "flops": 2 * params,
                         **({"precision": precision} if precision else {}), **({"arch": arch} if arch else {}),
                         **({"stem": stem} if stem else {})},
                  dataset=(dataset or DATASET) if status == "completed" else None,
                  source={"run": str(source)} if source else _source_record(source_file) if source_file else None)
    # each run's own bytes (1000 of them), as two trained models have: a model is found again by its SHA-256
    (run_dir / "model.pt").write_bytes(str(run_dir).encode().ljust(1000, b"\0")[:1000])
    record.add_artifact("model", run_dir / "model.pt")
    if onnx_bytes:
        (run_dir / "model.onnx").write_bytes(b"\0" * onnx_bytes)
        record.add_artifact("onnx", run_dir / "model.onnx")
    record.finish(status, metrics={"val_acc": acc, **(metrics or {})})
    return run_dir


def sweep(outputs: Path, command: str, accs: list[float], *, name: str = "10-00-00-multirun",
          sources: list[Path] | None = None, seeds: list[int] | None = None, metrics: list[dict] | None = None,
          **kwargs: Any) -> list[Path]:
    """A `-m seed=0,1,...` multirun: job i in `<name>/<i>` with seed i (or seeds[i]), from sources[i] when given.
    A derived command keeps its own default seed 0 when `sources` are given (the seed is its source's)."""
    return [model_run(outputs, command, f"{name}/{i}", acc, seed=seeds[i] if seeds else 0 if sources else i,
                      metrics=metrics[i] if metrics else None, **({"source": sources[i]} if sources else {}), **kwargs)
            for i, acc in enumerate(accs)]


def bench_run(outputs: Path, name: str, source: Path, p50: float, *, backend: str = "onnxruntime", batch: int = 1,
              device: str = "cpu", threads: int = 2, cpu: str | None = None, iterations: int | None = None) -> Path:
    """A one-model bench run; `cpu`: the CPU model its environment names (None: none recorded); `iterations`: the
    timed runs behind its p50 (None: not recorded, as before cnnlab recorded them)."""
    run_dir = outputs / "bench" / "2026-11-28" / name
    record = RunRecord.start(run_dir, "bench")
    record.update(source={"run": str(source)},
                  **({"environment": {"cpu": {"model": cpu, "family": 6, "model_number": 142}}} if cpu else {}))
    record.finish("completed", metrics={"latency": [{"backend": backend, "batch_size": batch, "device": device,
                                                     "threads": threads, "p50_ms": p50,
                                                     **({"iterations": iterations} if iterations else {})}]})
    return run_dir


def _source_record(run_dir: Path) -> dict:
    """A source record as runs.Source.describe writes it: of a run folder's model.pt, or of a model file outside any
    run (`run` null)."""
    if run_dir.is_file():
        return {"spec": str(run_dir), "kind": "onnx" if run_dir.suffix == ".onnx" else "checkpoint",
                "path": str(run_dir.resolve()), "run": None, "command": None, "sha256": file_sha256(run_dir)}
    model, record = run_dir / "model.pt", run_dir / "run.json"
    command = json.loads(record.read_text()).get("command") if record.is_file() else None
    return {"spec": str(run_dir), "kind": "checkpoint", "path": str(model), "run": str(run_dir), "command": command,
            "sha256": file_sha256(model)}


def paired_run(outputs: Path, name: str, subjects: list[Path], rounds: list[list[float]], *, threads: int = 2,
               started: str | None = None, iterations: int | None = None, batch_sizes: Sequence[int] = (1,),
               backends: Sequence[str] = ("onnxruntime",), device: str = "cpu") -> Path:
    """A paired bench session (`cnnlab bench source=[...]`): per subject, every round's p50 (the median is kept), at
    each of `backends` × `batch_sizes`. Subjects are recorded as `cnnlab bench` records them: the run and the source
    record of the model file timed (probe 125: the fake's run alone hid that a gone source's subject was lost); a
    subject that is a file outside any run, with no run."""
    run_dir = outputs / "bench" / "2026-11-28" / name
    record = RunRecord.start(run_dir, "bench")
    if started:
        record.update(started=started)
    record.update(paired={"rounds": len(rounds[0]), "subjects": [
        {"name": "m", "run": None if s.is_file() else str(s), "source": _source_record(s)} for s in subjects]})
    latency = [{"backend": backend, "batch_size": batch, "device": device, "threads": threads, "subject": i,
                "p50_ms": sorted(r)[len(r) // 2], "p50_ms_per_round": r, **({"iterations": iterations} if iterations
                                                                              else {})}
               for backend in backends for batch in batch_sizes for i, r in enumerate(rounds)]
    record.finish("completed", metrics={"latency": latency})
    return run_dir


def evaluate_run(outputs: Path, name: str, source: Path, acc: float, *, split: str = "test",
                 started: str | None = None, correct: list[bool] | None = None, dataset: dict | None = None) -> Path:
    """A `cnnlab evaluate` run as pipelines/evaluate.py records it: metrics <split>_acc, split, n, ece, and the data
    it scored (`dataset`, default the models' DATASET); with `correct`, its outcomes.csv (one row per image)."""
    run_dir = outputs / "evaluate" / "2026-11-28" / name
    record = RunRecord.start(run_dir, "evaluate")
    if correct is not None:
        rows = "".join(f"{i},a,{'a' if ok else 'b'},{int(ok)},0.9\n" for i, ok in enumerate(correct))
        (run_dir / "outcomes.csv").write_text("index,true,predicted,correct,confidence\n" + rows)
    record.update(source={"run": str(source), "kind": "onnx"}, dataset=dataset or DATASET,
                  **({"started": started} if started else {}))
    record.finish("completed", metrics={f"{split}_acc": acc, f"{split}_top5": 1.0, "ece": 0.01, "n": 100,
                                        "split": split})
    return run_dir
