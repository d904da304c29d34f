"""Which backends a benchmark can run here: the plan (`plan_backends`), and every backend (or batch size) left out,
with the reason, for the table, bench.json and run.json (`SkippedBackend`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from cnnlab.deploy.bench_report import skipped_lines
from cnnlab.deploy.bench_settings import ONNX_BACKENDS, BenchSettings
from cnnlab.deploy.ort import check_runtime_device, require_runtime
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class SkippedBackend:
    """A backend that was not timed — at `batch_size`, or at any (None) — and why, in one line."""

    backend: str
    batch_size: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """bench.json's `skipped` entry: {backend, batch_size, reason}."""
        return {"backend": self.backend, "batch_size": self.batch_size, "reason": self.reason}


def skipped_summary(skipped: Sequence[SkippedBackend]) -> str:
    """Every skip in one line, as the terminal shows them ("skipped X: why; skipped Y at batch 8: why")."""
    return "; ".join(skipped_lines({"skipped": [s.to_dict() for s in skipped]}))


@dataclass(frozen=True)
class BackendPlan:
    """The backends to time, in order, and the ones left out already (not installed here, no PyTorch model)."""

    backends: tuple[str, ...]
    skipped: tuple[SkippedBackend, ...] = ()

    @property
    def needs_onnx(self) -> bool:
        """Whether any backend to time runs an ONNX file."""
        return any(b in ONNX_BACKENDS for b in self.backends)

    def without(self, backends: Iterable[str], reason: str) -> "BackendPlan":
        """This plan with `backends` left out for `reason` (each one planned gets a skip, at every batch size)."""
        dropped = set(backends)
        return BackendPlan(tuple(b for b in self.backends if b not in dropped),
                           self.skipped + tuple(SkippedBackend(b, None, reason) for b in self.backends if b in dropped))


def plan_backends(settings: BenchSettings, device_kind: str) -> BackendPlan:
    """The backends `settings` ask for on `device_kind` (cpu | cuda) that can run here. Raises CnnlabError for what
    the user must change (tensorrt on the CPU, openvino on CUDA, onnxruntime asked for by name but unable to run
    here); a runtime that is merely not installed is skipped with the reason."""
    runnable, skipped = [], []
    for backend in settings.requested(device_kind):
        if backend in ONNX_BACKENDS:
            check_runtime_device(backend, device_kind)  # tensorrt on the CPU, openvino on CUDA: the user must change
            try:
                require_runtime(backend, device_kind)
            except CnnlabError as err:
                if backend == "onnxruntime" and settings.backends:  # asked for by name: the user must change it
                    raise
                # Not installed here (TensorRT; the openvino package, `pip install "cnnlab[openvino]"`; CPU-only
                # onnxruntime on a GPU machine by default): time the others, say why not this one.
                skipped.append(SkippedBackend(backend, None, err.one_line()))
                continue
        runnable.append(backend)
    return BackendPlan(tuple(runnable), tuple(skipped))
