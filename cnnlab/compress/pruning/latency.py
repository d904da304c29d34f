"""What pruning bought, measured: the dense and the pruned model exported to ONNX and timed against each other in
one paired session on this machine (cnnlab/deploy/paired.py: same threads, same batch, interleaved rounds), next to
the FLOPs ratio that is often quoted instead."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from cnnlab.deploy.export import ModelIdentity, export_onnx
from cnnlab.deploy.paired import PairedSettings, PairedTiming, time_paired

DENSE, PRUNED = "dense", "pruned"


@dataclass(frozen=True)
class PruneLatency:
    """Dense against pruned at one batch size: the paired timing and both files' sizes (bytes)."""

    timing: PairedTiming
    batch: int
    bytes_before: int
    bytes_after: int

    def metrics(self) -> dict[str, Any]:
        dense, pruned = (self.timing[name].stats[self.batch] for name in (DENSE, PRUNED))
        return {"onnx_bytes_before": self.bytes_before, "onnx_bytes_after": self.bytes_after,
                "latency_p50_ms_before": dense.p50_ms, "latency_p50_ms_after": pruned.p50_ms,
                "speedup": self.timing.speedup(DENSE, PRUNED, self.batch)}

    def round_speedups(self) -> tuple[float, ...]:
        """Dense p50 / pruned p50 of each interleaved round (> 1: the pruned model is faster)."""
        return self.timing.ratios(DENSE, PRUNED, self.batch)

    def describe(self, image_size: int) -> dict[str, Any]:
        """run.json's `latency` section: settings, both median rounds, every round's p50."""
        settings = self.timing.settings
        return {"runtime": settings.runtime, "device": settings.device, "batch": self.batch,
                "threads": settings.threads, "image_size": image_size, "rounds": settings.rounds,
                **{name: self.timing[name].stats[self.batch].to_dict() for name in (DENSE, PRUNED)},
                **{f"{name}_p50_ms_per_round": list(self.timing[name].p50_per_round[self.batch])
                   for name in (DENSE, PRUNED)},
                "stable": self.timing.stable(DENSE, PRUNED, self.batch),
                "others_cores": self.timing.others_cores}  # other processes' use meanwhile (contention.CpuWatch)


def dense_copy(model: nn.Module) -> nn.Module:
    """Pruning works in place: a copy of the dense network (on the CPU) to export for the timing at the end."""
    return copy.deepcopy(model).cpu()


def measure_pruning(dense: nn.Module, pruned: nn.Module, *, dense_file: Path, pruned_file: Path,
                    dense_identity: ModelIdentity, pruned_identity: ModelIdentity, settings: PairedSettings,
                    flops: tuple[int, int], metadata: dict[str, Any] | None = None) -> PruneLatency:
    """Export `pruned` to `pruned_file` (kept) and `dense` to `dense_file` (deleted afterwards: the source can always
    be exported again) and time both at `settings.batch_sizes[0]`; `flops` per image (dense, pruned)."""
    pruned_path = _export(pruned, pruned_file, pruned_identity, metadata)
    dense_path = _export(dense, dense_file, dense_identity, metadata)
    try:
        timing = time_paired({DENSE: dense_path, PRUNED: pruned_path}, settings,
                             flops={DENSE: flops[0], PRUNED: flops[1]})
        return PruneLatency(timing, settings.batch_sizes[0], dense_path.stat().st_size, pruned_path.stat().st_size)
    finally:
        dense_path.unlink()


def _export(model: nn.Module, path: Path, identity: ModelIdentity, metadata: dict[str, Any] | None) -> Path:
    with _eval_mode(model):
        return export_onnx(model, path, identity=identity, metadata=metadata)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
