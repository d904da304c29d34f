"""A benchmark session: one model timed on every planned backend at every batch size (`time_backends`), or
several timed against each other in interleaved rounds (`time_paired_backends`, through cnnlab/deploy/paired.py,
the one paired timing of bench, prune, quantize and the report). A backend or batch size that cannot run is
skipped with the reason (logged as a warning); the result says what was timed and what was not."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cnnlab.deploy.backends import BackendPlan, SkippedBackend, skipped_summary
from cnnlab.deploy.bench import LatencyStats, time_onnx, time_torch
from cnnlab.deploy.contention import CpuWatch, say_if_busy
from cnnlab.deploy.bench_settings import TORCH_BACKENDS, BenchSettings
from cnnlab.deploy.paired import time_paired
from cnnlab.deploy.subject import TimedModel
from cnnlab.errors import CnnlabError, ModelLoadError

log = logging.getLogger("cnnlab")

# The fields of a record that run.json's metrics keep (bench.json keeps them all).
_METRIC_KEYS = ("backend", "device", "batch_size", "threads", "iterations", "p50_ms", "p90_ms", "p99_ms", "mean_ms",
                "throughput", "gflops_per_s", "peak_fraction")


@dataclass(frozen=True)
class TimedRecord:
    """One backend at one batch size: its latency statistics (ms), the file timed (None for a temporary export),
    and in a paired session the model's index in source=[...] and every round's p50 (ms)."""

    stats: LatencyStats
    file: Path | None
    subject: int | None = None
    p50_ms_per_round: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """bench.json's record: LatencyStats' fields, `file`, and in a paired session `subject`, `p50_ms_per_round`."""
        record = {**self.stats.to_dict(), "file": str(self.file) if self.file else None}
        if self.subject is not None:
            record.update(subject=self.subject, p50_ms_per_round=list(self.p50_ms_per_round))
        return record

    def metrics(self) -> dict[str, Any]:
        """run.json's metrics.latency entry: the headline figures (and the paired fields) of `to_dict`."""
        record = self.to_dict()
        keys = _METRIC_KEYS + (("subject", "p50_ms_per_round") if self.subject is not None else ())
        return {key: record[key] for key in keys}


@dataclass(frozen=True)
class BenchTimings:
    """What a session timed, in order (backend, then batch size, then model), and everything skipped: the plan's
    skips first, then those of the session."""

    records: tuple[TimedRecord, ...]
    skipped: tuple[SkippedBackend, ...]

    def require_records(self) -> "BenchTimings":
        """This result, when anything was timed. Raises CnnlabError when every backend was skipped."""
        if not self.records:
            raise CnnlabError(f"every backend was skipped: {skipped_summary(self.skipped)}")
        return self

    def record_dicts(self) -> list[dict[str, Any]]:
        """bench.json's `records`."""
        return [r.to_dict() for r in self.records]

    def skipped_dicts(self) -> list[dict[str, Any]]:
        """bench.json's (and run.json's metrics') `skipped`."""
        return [s.to_dict() for s in self.skipped]


def time_backends(subject: TimedModel, plan: BackendPlan, settings: BenchSettings, device: str,
                  peak_gflops: float | None) -> BenchTimings:
    """`subject` on every backend of `plan` at every batch size of `settings`, on `device` (cpu | cuda:N). The
    torch backends need `subject.model`, the ONNX ones `subject.onnx` (see `exported_onnx`). A batch size that
    fails is skipped; torch_compile failing, or a runtime that cannot load the file (ModelLoadError), skips the
    whole backend."""
    records, skipped = [], list(plan.skipped)
    watch = CpuWatch.start()
    for backend in plan.backends:
        for batch in settings.batch_sizes:
            try:
                stats, timed_file = _time_one(subject, backend, batch, settings, device, peak_gflops)
            except CnnlabError as err:
                # torch_compile failing, or a runtime that cannot load the file at all, fails at every batch size
                whole_backend = backend == "torch_compile" or isinstance(err, ModelLoadError)
                skipped.append(SkippedBackend(backend, None if whole_backend else batch, err.one_line()))
                log.warning("skipped %s%s: %s", backend, "" if whole_backend else f" at batch {batch}", err.one_line())
                if whole_backend:
                    break
                continue
            log.info("%-13s batch %3d: p50 %.3f ms, %.1f images/s", backend, batch, stats.p50_ms, stats.throughput)
            records.append(TimedRecord(stats, timed_file))
    say_if_busy(watch)
    return BenchTimings(tuple(records), tuple(skipped))


def _time_one(subject: TimedModel, backend: str, batch: int, settings: BenchSettings, device: str,
              peak_gflops: float | None) -> tuple[LatencyStats, Path | None]:
    """(statistics, the file timed) of one backend at one batch size. Raises CnnlabError when it cannot run."""
    plan = settings.plan
    if backend in TORCH_BACKENDS:
        assert subject.model is not None
        return time_torch(subject.model, batch, image_size=subject.spec.size, threads=settings.threads, device=device,
                          compile=backend == "torch_compile", plan=plan, flops=subject.flops,
                          peak_gflops=peak_gflops, channels=subject.spec.channels), subject.model_file
    assert subject.onnx is not None
    return time_onnx(subject.onnx, batch, threads=settings.threads, device=device, runtime=backend,
                     plan=plan, flops=subject.flops, peak_gflops=peak_gflops), subject.source_onnx


def time_paired_backends(subjects: Sequence[TimedModel], plan: BackendPlan, settings: BenchSettings,
                         device: str) -> BenchTimings:
    """Every subject's ONNX file (each must have one: see `exported_onnx_all`) timed in `settings.rounds`
    interleaved rounds per ONNX backend of `plan` and batch size; per model the median round, and every round's
    p50 for the report's stability check. A backend that cannot run a file is skipped."""
    files = {str(i): s.onnx for i, s in enumerate(subjects)}
    flops = {str(i): s.flops for i, s in enumerate(subjects)}
    records, skipped = [], list(plan.skipped)
    for backend in plan.backends:
        try:
            timings = time_paired(files, settings.paired(backend, device), flops=flops)  # type: ignore[arg-type]
        except CnnlabError as err:
            skipped.append(SkippedBackend(backend, None, err.one_line()))
            log.warning("skipped %s: %s", backend, err.one_line())
            continue
        records += [TimedRecord(timings[str(i)].stats[batch], s.source_onnx, i, timings[str(i)].p50_per_round[batch])
                    for batch in settings.batch_sizes for i, s in enumerate(subjects)]
    return BenchTimings(tuple(records), tuple(skipped))
