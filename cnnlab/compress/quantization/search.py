"""The INT8 format search: candidate files built from one FP32 ONNX file, each measured on this machine, one chosen.

1. `build_onnx_candidates` (ptq, dynamic): `quant_pre_process` once, calibration once (static formats), one
   quantized file per format — by onnxruntime's quantizer, or by NNCF for `nncf_qdq` (nncf_engine.py), from the
   same pre-processed graph and calibration images. QAT candidates come from fine-tuning (`qat.export_qat_onnx`).
2. `search_formats`: the accuracy of FP32 and of every candidate file itself on the validation loader, on the
   runtime it will be deployed on; whether each candidate loads on every deployment runtime (portability.py);
   their latency in one paired session (cnnlab/deploy/paired.py); the fastest candidate within the accuracy
   budget, a more portable one within timing noise of it, or FP32 when no candidate beats it
   (selection.select). In a search (`no_search=None`) a candidate that cannot be built or run is recorded with
   its error and skipped; a format asked for by name fails instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnlab.compress.quantization.calibration import CalibrationReader, calibration_batches, calibration_shortfall
from cnnlab.compress.quantization.formats import READ_BY, Format, slow_format_warning
from cnnlab.compress.quantization.nncf_engine import AccuracyControl, nncf_describe, quantize_with_nncf
from cnnlab.compress.quantization.outputs import float_outputs
from cnnlab.compress.quantization.ptq import (CALIBRATION_CACHE, PtqSettings, check_node_names, graph_input_name,
                                              preprocess, quantize_dynamic_candidate, quantize_static_candidate,
                                              quantized_ops)
from cnnlab.compress.quantization.result import FP32, Accuracy, CandidateResult, Fp32Figures, QuantizationResult
from cnnlab.compress.quantization.portability import LOADS, check_runtimes, unreadable
from cnnlab.compress.quantization.selection import CandidateFigures, round_spread, select, speedup
from cnnlab.wording import ratio_than
from cnnlab.deploy.ort import evaluate_onnx, onnx_session
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
             cache: Path, whole: bool = False) -> "Calibration":
        """`batches` x `batch_size` training images (calibration.calibration_batches: seeded, deterministic; full
        batches only with `whole`, for a file whose batch is fixed)."""
        drawn = calibration_batches(dataset, batches=batches, batch_size=batch_size, seed=seed, workers=workers,
                                    whole=whole)
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
                          calibration: Calibration | None, searching: bool,
                          accuracy_control: AccuracyControl | None = None) -> tuple[CandidateResult, ...]:
    """One quantized file per format in `work` (`<format>.onnx`): static with `calibration`, dynamic without;
    `accuracy_control` (validation images and the budget) puts NNCF's candidate in its accuracy-controlled mode.
    Raises CnnlabError for a bad quantize.exclude name, or a failing format when not `searching`."""
    preprocessed = preprocess(fp32_file, work / f"{FP32}_preprocessed.onnx")
    check_node_names(preprocessed, settings.exclude)
    reader = CalibrationReader(graph_input_name(preprocessed), list(calibration.batches)) if calibration else None
    built = []
    for fmt in formats:
        target = work / f"{fmt.name}.onnx"
        log.info("quantizing: %s", fmt.name)
        try:
            if fmt.engine == "nncf" and calibration is not None:
                built.append(_nncf_candidate(fmt, preprocessed, target, calibration, settings, accuracy_control))
                continue
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


def _nncf_candidate(fmt: Format, preprocessed: Path, target: Path, calibration: Calibration, settings: PtqSettings,
                    accuracy_control: AccuracyControl | None) -> CandidateResult:
    """NNCF's QDQ file of the pre-processed graph (so quantize.exclude names the same nodes for both engines), from
    the calibration images every other format uses; what NNCF did goes into the record (`built_by`)."""
    if settings.calibrate_method != "minmax":  # probe 59: the record did not say the setting passed NNCF by
        log.info("%s: NNCF sets its own activation ranges (the mean of per-image min/max); "
                 "quantize.calibrate_method=%s applies to onnxruntime's candidates", fmt.name,
                 settings.calibrate_method)
    result = quantize_with_nncf(preprocessed, target, calibration.batches, exclude=settings.exclude,
                                accuracy_control=accuracy_control)
    float_outputs(result.path)
    return CandidateResult(fmt, result.path, built_by=nncf_describe(result))


def search_formats(fp32_file: Path, candidates: Sequence[CandidateResult], val_loader: Any, *, timing: PairedSettings,
                   max_acc_drop: float, no_search: str | None = None, flops: int | None = None,
                   deploy_runtimes: Sequence[str] = (), keep_fp32_if_slower: bool | None = None) -> QuantizationResult:
    """Measure FP32 and every built candidate, and choose. `val_loader` yields (images, targets); `timing` is the
    paired session's settings (runtime, threads, batch sizes, rounds); `max_acc_drop` in percentage points;
    `no_search`: why there is no choice to make (one format asked for by name), prefixed to the reason;
    `deploy_runtimes`: runtimes besides `timing.runtime` every candidate must load on to be chosen;
    `keep_fp32_if_slower` (default: in a search): ship FP32 when the candidate chosen is slower than it.
    Raises CnnlabError when no candidate can be run (or loads on every deployment runtime)."""
    runtime, searching = timing.runtime, no_search is None
    fp32_accuracy = Accuracy.of(evaluate_onnx(fp32_file, val_loader, desc="val (fp32 onnx)", runtime=runtime))
    evaluated = [_evaluate(c, val_loader, runtime, searching=searching) for c in candidates]
    evaluated = [_check_deployment(c, runtime, [r for r in deploy_runtimes if r != runtime], searching=searching)
                 for c in evaluated]
    ready = [c for c in evaluated if c.error is None and c.accuracy is not None]
    if not ready:
        raise CnnlabError("no candidate format could be quantized and run: " +
                          "; ".join(f"{c.format.name}: {c.error}" for c in evaluated),
                          fix="try quantize.mode=dynamic, other quantize.exclude nodes, fewer "
                              "quantize.deploy_runtimes, or report the model")
    paired = time_paired({FP32: fp32_file, **{c.format.name: c.path for c in ready if c.path}}, timing, flops=flops,
                         precisions={c.format.name: c.format.inference_precision for c in ready})
    fp32 = Fp32Figures(fp32_file, fp32_accuracy, paired[FP32])
    timed = {c.format.name: _with_speed_note(replace(c, timing=paired[c.format.name]), fp32, runtime,
                                             warn=not searching) for c in ready}
    figures = [CandidateFigures(name, c.accuracy.acc, c.timing.p50_ms(),  # type: ignore[union-attr]
                                read_by=READ_BY.get(c.format.layout, ()),
                                noise=round_spread(c.timing.p50_per_round, fp32.timing.p50_per_round))  # type: ignore[union-attr]
               for name, c in timed.items()]
    selection = select(figures, fp32_acc=fp32_accuracy.acc, fp32_latency_ms=fp32.timing.p50_ms(),
                       max_drop_points=max_acc_drop,
                       keep_fp32_if_slower=searching if keep_fp32_if_slower is None else keep_fp32_if_slower)
    if not searching:
        selection = replace(selection, reason=f"{no_search}; {selection.reason}")
    result = QuantizationResult(fp32, tuple(timed.get(c.format.name, c) for c in evaluated), selection, timing,
                                max_acc_drop, tuple(deploy_runtimes))
    if selection.fp32_kept:
        log.warning("no INT8 candidate within the budget is faster than FP32 on this machine: model.onnx is the FP32 "
                    "model (small models: quantizing and dequantizing costs more than the integer arithmetic saves)")
    return result


def _check_deployment(candidate: CandidateResult, evaluated_on: str, runtimes: Sequence[str], *,
                      searching: bool) -> CandidateResult:
    """The candidate with the verdict of each deployment runtime (`evaluated_on` ran it already); an error (so it
    cannot be chosen) when one of them cannot open or run it. A format asked for by name fails instead."""
    if candidate.path is None or candidate.error is not None or candidate.format.inference_precision != "f32":
        return candidate  # a bf16 candidate is the FP32 file: every runtime reads it
    verdicts = {evaluated_on: LOADS, **check_runtimes(candidate.path, runtimes)}
    checked = replace(candidate, loads_on=verdicts)
    failing = unreadable(verdicts)
    if not failing:
        return checked
    error = "; ".join(f"{r} cannot run it: {verdicts[r]}" for r in failing)
    if not searching:
        raise CnnlabError(f"{candidate.format.name}: {error}",
                          fix=f"leave {', '.join(failing)} out of quantize.deploy_runtimes, or choose a QDQ format "
                              "(read by onnxruntime, OpenVINO and TensorRT)")
    log.warning("skipping %s: %s", candidate.format.name, error)
    return replace(checked, error=error)


def _evaluate(candidate: CandidateResult, val_loader: Any, runtime: str, *, searching: bool) -> CandidateResult:
    """The candidate with what makes it INT8 and its accuracy on the validation split (or why it cannot run)."""
    if candidate.path is None:
        return candidate
    precision = candidate.format.inference_precision
    ops = dict(quantized_ops(candidate.path)) if precision == "f32" else {}
    notes = () if ops or precision != "f32" else ("nothing was quantized (every node excluded or unsupported)",)
    try:
        session = onnx_session(candidate.path, runtime=runtime, precision=precision)
        figures = evaluate_onnx(session, val_loader, desc=f"val ({candidate.format.name})")
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
        log.warning("%s runs %s on this CPU%s", candidate.format.name, ratio_than(ratio, "FP32"),
                    f": {known}" if known else "")
    note = f"{ratio_than(ratio, 'FP32')} on this machine" + (f" ({known})" if known else "")
    return replace(candidate, notes=(*candidate.notes, note))
