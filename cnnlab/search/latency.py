"""Latency of a candidate network on the target, measured — not estimated from FLOPs — and cached per
architecture in the run folder (latency.json), so a resumed search or a repeated candidate is not timed twice.

A candidate is exported to ONNX (the file a deployment would run) and timed by cnnlab's one paired-timing
harness (deploy/paired.py: warm-up, timed runs until min_iters and min_seconds, `rounds` rounds, the median
round's p50) with the runtime, device, threads and batch size of `search.latency` — as `cnnlab bench` times.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.ort import execution_providers
from cnnlab.deploy.paired import time_paired
from cnnlab.fileio import read_json, write_json
from cnnlab.search.settings import LatencySettings

CACHE_FILE = "latency.json"


def check_runtime(settings: LatencySettings) -> None:
    """A CnnlabError, before any trial, when the latency runtime is not installed here (with how to get it)."""
    execution_providers(settings.device, runtime=settings.runtime, threads=settings.threads)


@dataclass(frozen=True)
class Timed:
    """One candidate's measured latency (ms, median round's p50) and every round's p50."""

    p50_ms: float
    p50_ms_per_round: tuple[float, ...]
    cached: bool = False


class LatencyCache:
    """latency.json: {setting key: {candidate key: {p50_ms, p50_ms_per_round}}}; written atomically on every put."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = dict(read_json(path)) if path.is_file() else {}

    def get(self, setting: str, key: str) -> Timed | None:
        entry = self.data.get(setting, {}).get(key)
        if not entry:
            return None
        return Timed(float(entry["p50_ms"]), tuple(float(v) for v in entry.get("p50_ms_per_round", ())), cached=True)

    def put(self, setting: str, key: str, timed: Timed) -> None:
        self.data.setdefault(setting, {})[key] = {"p50_ms": timed.p50_ms,
                                                  "p50_ms_per_round": list(timed.p50_ms_per_round)}
        write_json(self.path, self.data)


def measure(model: nn.Module, spec: InputSpec, classes: list[str], settings: LatencySettings, *,
            flops: int | None = None, folder: Path | None = None) -> Timed:
    """Export `model` (eval mode, input `spec`) to a temporary ONNX file in `folder` and time it."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".latency-") as tmp:
        path = export_onnx(model.eval(), Path(tmp) / "candidate.onnx", spec=spec, classes=classes)
        timing = time_paired({"candidate": path}, settings.paired(), flops=flops)
    subject = timing["candidate"]
    batch = settings.batch_size
    return Timed(subject.stats[batch].p50_ms, tuple(subject.p50_per_round[batch]))


def cached_latency(cache: LatencyCache, settings: LatencySettings, key: str, model: nn.Module, spec: InputSpec,
                   classes: list[str], *, flops: int | None = None) -> Timed:
    """The cached latency of candidate `key` under `settings`, else a measurement (then cached)."""
    found = cache.get(settings.key, key)
    if found is not None:
        return found
    timed = measure(model, spec, classes, settings, flops=flops, folder=cache.path.parent)
    cache.put(settings.key, key, timed)
    return timed
