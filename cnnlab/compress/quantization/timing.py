"""Latency of several ONNX files on this machine, measured so that they can be compared.

Each file is timed on the runtime it will be deployed on (onnxruntime's CPU kernels, or OpenVINO's) with
cnnlab's harness (`cnnlab.deploy.bench.time_onnx`: warm-up, then timed runs until
a minimum count and time) in interleaved rounds — FP32, candidate 1, candidate 2, …, FP32, … — so a
machine that speeds up or slows down during the run (turbo, thermal limits, a neighbour's job) affects
every file alike. Per file and batch size the round with the median p50 is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from cnnlab.deploy.bench import LatencyStats, TimingPlan, time_onnx
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class TimingSettings:
    batch_sizes: tuple[int, ...] = (1,)
    threads: int = 1
    rounds: int = 3
    plan: TimingPlan = TimingPlan()
    runtime: str = "onnxruntime"  # the runtime the file will be deployed on: onnxruntime | openvino | tensorrt
    device: str = "cpu"           # cpu | cuda[:N] (`cnnlab bench` times several sources on either)

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise CnnlabError(f"quantize.bench_batch_sizes={list(self.batch_sizes)} needs batch sizes of at least 1",
                              fix="use quantize.bench_batch_sizes=[1] or [1,32]")
        if self.rounds < 1 or self.threads < 1:
            raise CnnlabError(f"quantize.bench_rounds={self.rounds} and bench_threads={self.threads} must be >= 1")


@dataclass
class FileTiming:
    """One file's latency per batch size (the median round), and every round's p50."""

    stats: dict[int, LatencyStats]
    p50_per_round: dict[int, list[float]]

    def p50_ms(self) -> dict[int, float]:
        return {batch: stats.p50_ms for batch, stats in self.stats.items()}

    def to_dict(self) -> dict[str, object]:
        return {str(batch): {**stats.to_dict(), "p50_ms_per_round": self.p50_per_round[batch]}
                for batch, stats in self.stats.items()}


def time_files(files: Mapping[str, Path], settings: TimingSettings, *,
               flops: int | Mapping[str, int | None] | None = None) -> dict[str, FileTiming]:
    """Time every file at every batch size in `settings.rounds` interleaved rounds. `flops` per image: one
    figure for all files, or one per file name."""
    plan = settings.plan
    rounds: dict[str, dict[int, list[LatencyStats]]] = {name: {b: [] for b in settings.batch_sizes} for name in files}
    for _ in range(settings.rounds):
        for batch in settings.batch_sizes:
            for name, path in files.items():
                rounds[name][batch].append(time_onnx(path, batch, threads=settings.threads, runtime=settings.runtime,
                                                     device=settings.device, warmup=plan.warmup,
                                                     min_iters=plan.min_iters, min_seconds=plan.min_seconds,
                                                     flops=flops.get(name) if isinstance(flops, Mapping) else flops))
    return {name: FileTiming(stats={b: median_round(r) for b, r in per_batch.items()},
                             p50_per_round={b: [s.p50_ms for s in r] for b, r in per_batch.items()})
            for name, per_batch in rounds.items()}


def median_round(rounds: Sequence[LatencyStats]) -> LatencyStats:
    """The round with the median p50 (the upper middle one of an even count)."""
    return sorted(rounds, key=lambda stats: stats.p50_ms)[len(rounds) // 2]
