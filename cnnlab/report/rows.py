"""Run records → report rows: one row per trained model, with the latency its bench runs measured.

Reads run.json (and nothing else): a row is a completed pretrain/finetune/distill/prune/quantize run with
a validation accuracy. Export runs are the same model in another format and bench runs are measurements,
so both attach to the model run they came from (following `source` links through exports). A latency comes
from the newest paired session (`cnnlab bench source=[...]`) that timed the model, else from its newest
own bench; a speed-up only ever from a paired session (report/paired.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Iterable

from cnnlab.report.paired import SpeedUp, sessions, speedup
from cnnlab.runs import RunInfo, iter_runs

MODEL_COMMANDS = ("pretrain", "finetune", "distill", "prune", "quantize")


@dataclass(frozen=True)
class Comparison:
    """What makes latencies comparable: the same backend, device, batch size and threads."""

    backend: str = "onnxruntime"
    batch: int = 1
    device: str | None = None     # None: the most common device among the benches
    threads: int | None = None    # None: the most common thread count


@dataclass
class Row:
    run: RunInfo
    command: str
    model: str
    dataset: str
    dataset_key: tuple[Any, ...]          # name, classes, image size: only equal keys are compared
    accuracy: float
    params: int | None
    flops: int | None
    file_bytes: int | None
    file_kind: str                        # "onnx" (deployable graph) or "pt" (checkpoint)
    source: Path | None                   # the model run this one was derived from
    latency: dict[str, Any] | None = None  # the matching bench record (p50_ms, backend, batch_size, ...)
    bench_run: Path | None = None
    speedup: SpeedUp | None = None        # against `source` (None: no source row), from a paired session only
    pareto: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.command}:{self.model}"

    @property
    def p50_ms(self) -> float | None:
        return None if self.latency is None else float(self.latency["p50_ms"])


def collect_runs(outputs: Path, pattern: str | None = None) -> list[RunInfo]:
    """Completed (and damaged) runs under `outputs`, optionally only those whose folder (relative) matches `pattern`."""
    runs = []
    for run in iter_runs(outputs):
        relative = str(run.path.relative_to(outputs)) if run.path.is_relative_to(outputs) else str(run.path)
        # damaged runs come along so that the report lists them as left out, with the reason
        if (run.status == "completed" or run.damaged) and (pattern is None or fnmatch(relative, pattern)):
            runs.append(run)
    return runs


def _source_run(run: RunInfo) -> Path | None:
    source = run.data.get("source") or {}
    return Path(source["run"]).resolve() if source.get("run") else None


def _origins(runs: Iterable[RunInfo]) -> dict[Path, Path]:
    """Export run → the model run it exported (exports of exports followed to the end)."""
    export_source = {r.path.resolve(): _source_run(r) for r in runs if r.command == "export"}

    def origin(path: Path) -> Path:
        seen = set()
        while path in export_source and export_source[path] is not None and path not in seen:
            seen.add(path)
            path = export_source[path]  # type: ignore[assignment]
        return path

    return {path: origin(path) for path in export_source}


def _file(run: RunInfo, exports: dict[Path, list[RunInfo]]) -> tuple[int | None, str]:
    onnx = run.artifact("onnx")
    if onnx is None:
        for export in exports.get(run.path.resolve(), []):
            onnx = export.artifact("onnx") or onnx
    if onnx is not None:
        return onnx.stat().st_size, "onnx"
    model = run.artifact("model")
    return (model.stat().st_size, "pt") if model is not None else ((run.data.get("model") or {}).get("file_bytes"), "pt")


def build_rows(runs: list[RunInfo], comparison: Comparison) -> tuple[list[Row], list[tuple[Path, str]], Comparison]:
    """(rows, left out with the reason, the comparison actually used)."""
    origins = _origins(runs)

    def origin(path: Path | None) -> Path | None:
        return None if path is None else origins.get(path, path)

    exports: dict[Path, list[RunInfo]] = {}
    benches: dict[Path, list[RunInfo]] = {}
    for run in runs:
        target = origin(_source_run(run))
        if target is not None and run.command == "export":
            exports.setdefault(target, []).append(run)
        elif target is not None and run.command == "bench":
            benches.setdefault(target, []).append(run)

    rows: list[Row] = []
    left_out: list[tuple[Path, str]] = []
    for run in runs:
        if run.damaged:
            left_out.append((run.path, f"damaged run.json: {run.damaged}"))
            continue
        if run.command not in MODEL_COMMANDS:
            continue
        metrics, model, dataset = run.data.get("metrics") or {}, run.data.get("model") or {}, run.data.get("dataset") or {}
        if metrics.get("val_acc") is None:
            left_out.append((run.path, "no validation accuracy recorded"))
            continue
        size, kind = _file(run, exports)
        rows.append(Row(run=run, command=run.command, model=str(model.get("name", "?")),
                        dataset=str(dataset.get("name", "?")),
                        dataset_key=(dataset.get("name"), dataset.get("num_classes"), dataset.get("image_size")),
                        accuracy=float(metrics["val_acc"]), params=model.get("params"), flops=model.get("flops"),
                        file_bytes=size, file_kind=kind, source=origin(_source_run(run))))

    paired = sessions(runs, origin)
    comparison = _settle(comparison, [*(b for bs in benches.values() for b in bs), *(s.run for s in paired)])

    def matches(record: dict[str, Any]) -> bool:
        return (record["backend"], record["batch_size"], record["device"], record["threads"]) == \
            (comparison.backend, comparison.batch, comparison.device, comparison.threads)

    by_path = {row.run.path.resolve(): row for row in rows}

    def same_network(a: Path, b: Path) -> bool:
        """One architecture, (almost) the same parameters, both FP32 or both INT8: it should time alike."""
        ra, rb = by_path.get(a), by_path.get(b)
        if ra is None or rb is None or ra.model != rb.model or not ra.params or not rb.params:
            return False
        return abs(ra.params - rb.params) <= 0.02 * max(ra.params, rb.params) and \
            (ra.command == "quantize") == (rb.command == "quantize")

    for row in rows:
        path = row.run.path.resolve()
        timed = next(((s, t) for s in paired if (t := s.timing(path, matches)) is not None), None)
        if timed is not None:  # the newest paired session that timed it
            row.bench_run, row.latency = timed[0].run.path, timed[1].record
        else:
            _attach_latency(row, benches.get(path, []), comparison)
        if row.source is not None and row.source in by_path:
            row.speedup = speedup(path, row.source, paired, matches, same_network)
    return rows, left_out, comparison


def _records(bench: RunInfo) -> list[dict[str, Any]]:
    """The latency records of a bench run (a paired session's: one per subject)."""
    return list((bench.data.get("metrics") or {}).get("latency") or [])


def _settle(comparison: Comparison, benches: list[RunInfo]) -> Comparison:
    """Fill in the device and thread count the benches most often used for this backend and batch."""
    matching = [r for b in benches for r in _records(b)
                if r["backend"] == comparison.backend and r["batch_size"] == comparison.batch]

    def most_common(key: str) -> Any:
        values = [r[key] for r in matching]
        return max(set(values), key=values.count) if values else None

    return Comparison(backend=comparison.backend, batch=comparison.batch,
                      device=comparison.device or most_common("device"),
                      threads=comparison.threads or most_common("threads"))


def _attach_latency(row: Row, benches: list[RunInfo], comparison: Comparison) -> None:
    """The newest bench record of this model that matches the comparison exactly."""
    for bench in sorted(benches, key=lambda b: b.started, reverse=True):
        for record in _records(bench):
            if (record["backend"], record["batch_size"], record["device"], record["threads"]) == \
                    (comparison.backend, comparison.batch, comparison.device, comparison.threads):
                row.latency, row.bench_run = record, bench.path
                return
    if benches:
        row.notes.append(f"no {comparison.backend} batch-{comparison.batch} timing on {comparison.device} with "
                         f"{comparison.threads} thread(s)")
    else:
        row.notes.append(f"not benchmarked (cnnlab bench source={row.run.path})")
