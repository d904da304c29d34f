"""The INT8 format search: candidate files built from one FP32 ONNX file, each measured on this machine, one chosen.

1. `build_onnx_candidates` (ptq, dynamic): `quant_pre_process` once, calibration once (static formats), one
   quantized file per format. QAT candidates come from fine-tuning instead (`qat.export_qat_onnx`).
2. `search_formats`: the accuracy of FP32 and of every candidate file itself on the validation loader, on the
   runtime it will be deployed on; their latency in one paired session (cnnlab/deploy/paired.py); the fastest
   candidate within the accuracy budget (selection.select). In a search (`no_search=None`) a candidate that
   cannot be built or run is recorded with its error and skipped; a format asked for by name fails instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnlab.compress.quantization.calibration import CalibrationReader, calibration_batches, calibration_shortfall
from cnnlab.compress.quantization.formats import Format, slow_format_warning
from cnnlab.compress.quantization.ptq import (CALIBRATION_CACHE, PtqSettings, check_node_names, graph_input_name,
                                              preprocess, quantize_dynamic_candidate, quantize_static_candidate,
                                              quantized_ops)
from cnnlab.compress.quantization.result import FP32, Accuracy, CandidateResult, Fp32Figures, QuantizationResult
from cnnlab.compress.quantization.selection import CandidateFigures, Selection, select, speedup
from cnnlab.deploy.bench_report import ratio_text
from cnnlab.deploy.ort import evaluate_onnx
from cnnlab.deploy.paired import PairedSettings, time_paired
from cnnlab.errors import CnnlabError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """Static PTQ: the calibration batches (N x C x H x W float32 each) and where the ranges are cached."""

    batches: Sequence[np.ndarray]
    method: str
    cache: Path
    asked: tuple[int, int]            # (batches, batch size) asked for

    @classmethod
    def draw(cls, dataset: Any, batches: int, batch_size: int, *, seed: int, workers: int, method: str,
             cache: Path) -> "Calibration":
        """`batches` x `batch_size` training images (calibration.calibration_batches: seeded, deterministic)."""
        drawn = calibration_batches(dataset, batches=batches, batch_size=batch_size, seed=seed, workers=workers)
        return cls(drawn, method, cache, (batches, batch_size))

    def shortfall(self, num_classes: int) -> str | None:
        """A warning when fewer images were drawn than asked for, or than there are classes."""
        return calibration_shortfall(sum(len(b) for b in self.batches), batches=self.asked[0],
                                     batch_size=self.asked[1], num_classes=num_classes)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "batches": len(self.batches), "images": sum(len(b) for b in self.batches),
                "split": "train (deterministic transforms)",
                "ranges": f"calibrated once, reused by every format ({self.cache.name})" if CALIBRATION_CACHE
                else "calibrated for every format (this onnxruntime has no calibration cache)"}


def build_onnx_candidates(fp32_file: Path, formats: Sequence[Format], settings: PtqSettings, work: Path, *,
                          calibration: Calibration | None, searching: bool) -> tuple[CandidateResult, ...]:
    """One quantized file per format in `work` (`<format>.onnx`): static with `calibration`, dynamic without.
    Raises CnnlabError for a bad quantize.exclude name, or a failing format when not `searching`."""
    preprocessed = preprocess(fp32_file, work / f"{FP32}_preprocessed.onnx")
    check_node_names(preprocessed, settings.exclude)
    reader = CalibrationReader(graph_input_name(preprocessed), list(calibration.batches)) if calibration else None
    built = []
    for fmt in formats:
        target = work / f"{fmt.name}.onnx"
        log.info("quantizing: %s", fmt.name)
        try:
            if reader is not None and calibration is not None:
                path = quantize_static_candidate(preprocessed, target, fmt, settings, reader, calibration.cache)
            else:
                path = quantize_dynamic_candidate(preprocessed, target, fmt, settings)
            built.append(CandidateResult(fmt, path))
        except CnnlabError as err:
            if not searching:
                raise
            built.append(CandidateResult(fmt, error=err.message))
            log.warning("skipping %s: %s", fmt.name, err.message)
    return tuple(built)


def search_formats(fp32_file: Path, candidates: Sequence[CandidateResult], val_loader: Any, *, timing: PairedSettings,
                   max_acc_drop: float, no_search: str | None = None, flops: int | None = None) -> QuantizationResult:
    """Measure FP32 and every built candidate, and choose. `val_loader` yields (images, targets); `timing` is the
    paired session's settings (runtime, threads, batch sizes, rounds); `max_acc_drop` in percentage points;
    `no_search`: why there is no choice to make (one format asked for by name), prefixed to the reason.
    Raises CnnlabError when no candidate can be run."""
    runtime = timing.runtime
    fp32_accuracy = Accuracy.of(evaluate_onnx(fp32_file, val_loader, desc="val (fp32 onnx)", runtime=runtime))
    evaluated = [_evaluate(c, val_loader, runtime, searching=no_search is None) for c in candidates]
    ready = [c for c in evaluated if c.error is None and c.accuracy is not None]
    if not ready:
        raise CnnlabError("no candidate format could be quantized and run: " +
                          "; ".join(f"{c.format.name}: {c.error}" for c in evaluated),
                          fix="try quantize.mode=dynamic, other quantize.exclude nodes, or report the model")
    paired = time_paired({FP32: fp32_file, **{c.format.name: c.path for c in ready if c.path}}, timing, flops=flops)
    fp32 = Fp32Figures(fp32_file, fp32_accuracy, paired[FP32])
    timed = {c.format.name: _with_speed_note(replace(c, timing=paired[c.format.name]), fp32, runtime,
                                             warn=no_search is not None) for c in ready}
    selection = select([CandidateFigures(name, c.accuracy.acc, c.timing.p50_ms())  # type: ignore[union-attr]
                        for name, c in timed.items()],
                       fp32_acc=fp32_accuracy.acc, fp32_latency_ms=fp32.timing.p50_ms(), max_drop_points=max_acc_drop)
    if no_search is not None:
        selection = Selection(selection.chosen, selection.within_budget, f"{no_search}; {selection.reason}")
    result = QuantizationResult(fp32, tuple(timed.get(c.format.name, c) for c in evaluated), selection, timing,
                                max_acc_drop)
    if no_search is None and result.speedup(result.chosen) < 1.0:
        log.warning("the fastest INT8 candidate within the budget, %s, is slower than FP32 on this machine "
                    "(small models: quantizing and dequantizing costs more than the integer arithmetic saves)",
                    selection.chosen)
    return result


def _evaluate(candidate: CandidateResult, val_loader: Any, runtime: str, *, searching: bool) -> CandidateResult:
    """The candidate with what makes it INT8 and its accuracy on the validation split (or why it cannot run)."""
    if candidate.path is None:
        return candidate
    ops = dict(quantized_ops(candidate.path))
    notes = () if ops else ("nothing was quantized (every node excluded or unsupported)",)
    try:
        figures = evaluate_onnx(candidate.path, val_loader, desc=f"val ({candidate.format.name})", runtime=runtime)
    except CnnlabError as err:
        if not searching:
            raise
        error = f"{runtime} cannot run it: {err.message}"
        log.warning("skipping %s: %s", candidate.format.name, error)
        return replace(candidate, int8_ops=ops, notes=notes, error=error)
    return replace(candidate, accuracy=Accuracy.of(figures), int8_ops=ops, notes=notes)


def _with_speed_note(candidate: CandidateResult, fp32: Fp32Figures, runtime: str, *, warn: bool) -> CandidateResult:
    """A note (and, for a format chosen by hand, a warning) when the candidate is not faster than FP32 here."""
    assert candidate.timing is not None
    ratio = speedup(candidate.timing.p50_ms(), fp32.timing.p50_ms())
    if ratio >= 1.0:
        return candidate
    known = slow_format_warning(candidate.format, runtime)
    if warn:
        log.warning("%s runs %s than FP32 on this CPU%s", candidate.format.name, ratio_text(ratio),
                    f": {known}" if known else "")
    note = f"{ratio_text(ratio)} than FP32 on this machine" + (f" ({known})" if known else "")
    return replace(candidate, notes=(*candidate.notes, note))
