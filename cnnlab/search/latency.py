"""Latency of a candidate network on the target, measured — not estimated from FLOPs — and cached per
architecture in the run folder (latency.json), so a resumed search or a repeated candidate is not timed twice.

A candidate is exported to ONNX (the file a deployment would run) and timed by cnnlab's one paired-timing
harness (deploy/paired.py: warm-up, timed runs until min_iters and min_seconds, `rounds` rounds, the median
round's p50) with the runtime, device, threads and batch size of `search.latency` — as `cnnlab bench` times.

With a reference (search.reference), the reference's ONNX file is timed beside every candidate in the same
interleaved rounds, and the candidate's speed-up is the median of the per-round ratios reference ÷ candidate:
a slow minute on the machine slows both and leaves the ratio where it was (docs/search.md, "Budgets relative to
a reference").

A new timing of the same candidate reads differently: by its rounds' spread (deploy/paired.py: spread), and by at
least TIMING_NOISE between sessions — the room a limit suggested from a timing must leave (noise_room).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.ort import RuntimeKeys, execution_providers
from cnnlab.deploy.paired import paired_speedup, spread, time_paired
from cnnlab.fileio import read_json, write_json
from cnnlab.search.settings import LatencySettings

CACHE_FILE = "latency.json"
# The share by which repeated timings of one network, in separate sessions, differ from their median (docs/search.md:
# MobileNetV2 at width 0.5 against MobileNetV2 read 1.65-1.95x in five timings on a 2-core VM, ± 8 %): a paired
# speed-up, where drift moves both networks alike.
TIMING_NOISE = 0.08
# The same for one network's own p50 in ms, which drift moves (benchmarks/latency_noise.py, docs/benchmarks.md: on a
# 2-core VM most sessions agree within 8 %, but LeNet-5 at 2 threads flips between two speeds 29 % apart, and one
# session in eight may land 50-77 % slow). Probe 56: a search.max_latency_ms suggested 8 % above the closest trial's
# p50 was missed by the next search. A single slow session can still miss this room; paired speed-ups
# (search.reference, search.min_speedup) are the steady budget.
LATENCY_NOISE = 0.35


def noise_room(rounds: Sequence[float], floor: float = TIMING_NOISE) -> float:
    """How far (a share of the figure) a new timing may land from one whose rounds read `rounds`: their spread
    ((max - min) / median: the median may be read anywhere in that range next time), at least `floor` (one
    session's rounds miss the drift between sessions; one round shows no spread at all): TIMING_NOISE for a paired
    speed-up, LATENCY_NOISE for a latency in ms."""
    return max(floor, spread(rounds))


# The fixes a runtime error gives, in the search's own settings (not bench's --device and bench.backends).
SEARCH_KEYS = RuntimeKeys(device="search.latency.device=", alternative="use search.latency.device=cpu")


def check_runtime(settings: LatencySettings) -> None:
    """A CnnlabError, before any trial, when the latency runtime is not installed here (with how to get it)."""
    execution_providers(settings.device, runtime=settings.runtime, threads=settings.threads, keys=SEARCH_KEYS)


@dataclass(frozen=True)
class Reference:
    """The model candidates are timed against: its registry name, its ONNX file and its input size (px)."""

    name: str
    path: Path
    image_size: int

    @property
    def key(self) -> str:
        return f"{self.name}@{self.image_size}px"


@dataclass(frozen=True)
class Timed:
    """One candidate's measured latency (ms, median round's p50) and every round's p50; with a reference, the
    reference's p50 in the same session (ms), the speed-up (median per-round reference ÷ candidate) and every
    round's ratio (empty in caches written before they were kept)."""

    p50_ms: float
    p50_ms_per_round: tuple[float, ...]
    cached: bool = False
    reference_ms: float | None = None
    speedup: float | None = None
    speedup_per_round: tuple[float, ...] = ()

    @property
    def relative(self) -> float | None:
        """Candidate ÷ reference latency (None without a reference)."""
        return None if self.speedup is None else 1.0 / self.speedup

    @property
    def objective(self) -> float:
        """What the study minimises: the relative latency with a reference, else p50 in ms (study.latency_objective)."""
        relative = self.relative
        return self.p50_ms if relative is None else relative


class LatencyCache:
    """latency.json: {setting key: {candidate key: {p50_ms, p50_ms_per_round}}}; written atomically on every put."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = dict(read_json(path)) if path.is_file() else {}

    def get(self, setting: str, key: str) -> Timed | None:
        entry = self.data.get(setting, {}).get(key)
        if not entry:
            return None
        optional = {k: float(entry[k]) for k in ("reference_ms", "speedup") if entry.get(k) is not None}
        return Timed(float(entry["p50_ms"]), tuple(float(v) for v in entry.get("p50_ms_per_round", ())), cached=True,
                     speedup_per_round=tuple(float(v) for v in entry.get("speedup_per_round", ())), **optional)

    def put(self, setting: str, key: str, timed: Timed) -> None:
        entry: dict[str, Any] = {"p50_ms": timed.p50_ms, "p50_ms_per_round": list(timed.p50_ms_per_round)}
        if timed.speedup is not None:
            entry |= {"reference_ms": timed.reference_ms, "speedup": timed.speedup,
                      "speedup_per_round": list(timed.speedup_per_round)}
        self.data.setdefault(setting, {})[key] = entry
        write_json(self.path, self.data)


def export_reference(model: nn.Module, name: str, spec: InputSpec, classes: list[str], path: Path) -> Reference:
    """The reference `model` (registry `name`, eval mode, input `spec`) exported to `path` once per run."""
    export_onnx(model.eval(), path, spec=spec, classes=classes)
    return Reference(name, path, spec.size)


def measure(model: nn.Module, spec: InputSpec, classes: list[str], settings: LatencySettings, *,
            flops: int | None = None, folder: Path | None = None, reference: Reference | None = None) -> Timed:
    """Export `model` (eval mode, input `spec`) to a temporary ONNX file in `folder` and time it (beside
    `reference`, interleaved, when given)."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".latency-") as tmp:
        path = export_onnx(model.eval(), Path(tmp) / "candidate.onnx", spec=spec, classes=classes)
        files = {"candidate": path} if reference is None else {"reference": reference.path, "candidate": path}
        timing = time_paired(files, settings.paired(), flops={"candidate": flops})
    subject, batch = timing["candidate"], settings.batch_size
    timed = Timed(subject.stats[batch].p50_ms, tuple(subject.p50_per_round[batch]))
    if reference is None:
        return timed
    ratios = timing.ratios("reference", "candidate", batch)
    return Timed(timed.p50_ms, timed.p50_ms_per_round, reference_ms=timing["reference"].stats[batch].p50_ms,
                 speedup=paired_speedup(ratios), speedup_per_round=ratios)


def setting_key(settings: LatencySettings, reference: Reference | None) -> str:
    """What makes two cached timings comparable: the harness setting and, with one, the reference."""
    return settings.key if reference is None else f"{settings.key} vs {reference.key}"


def cached_latency(cache: LatencyCache, settings: LatencySettings, key: str, model: nn.Module, spec: InputSpec,
                   classes: list[str], *, flops: int | None = None, reference: Reference | None = None) -> Timed:
    """The cached latency of candidate `key` under `settings` (and `reference`), else a measurement (then
    cached)."""
    setting = setting_key(settings, reference)
    found = cache.get(setting, key)
    if found is not None:
        return found
    timed = measure(model, spec, classes, settings, flops=flops, folder=cache.path.parent, reference=reference)
    cache.put(setting, key, timed)
    return timed
