"""The INT8 format search: candidate files built from one FP32 ONNX file, each measured on this machine, one chosen.

1. `build_onnx_candidates` (ptq, dynamic): `quant_pre_process` once, calibration once (static formats), one
   quantized file per format — by onnxruntime's quantizer, or by NNCF for `nncf_qdq` (nncf_engine.py), from the
   same pre-processed graph and calibration images. QAT candidates come from fine-tuning (`qat.export_qat_onnx`).
2. `search_formats`: whether each candidate runs, and gives onnxruntime's top-1 classes at batch 1 and at the scored
   batch, on the runtime it is scored on and on every deployment runtime (portability.py); the accuracy of FP32 and
   of every candidate that does, the file itself on the validation loader, on the runtime it will be deployed on;
   their latency in one paired session (cnnlab/deploy/paired.py); the fastest candidate within the accuracy
   budget, a more portable one within timing noise of it, or FP32 when no candidate is measured faster
   (selection.select). In a search (`no_search=None`) a candidate that cannot be built or run is recorded with
   its error and skipped; a format asked for by name fails instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnlab.compress.quantization.calibration import (CalibrationReader, calibration_batches, calibration_shortfall,
                                                      range_off_ties)
from cnnlab.compress.quantization.formats import READ_BY, Format, slow_format_warning
from cnnlab.compress.quantization.nncf_engine import AccuracyControl, nncf_describe, quantize_with_nncf
from cnnlab.compress.quantization.outputs import float_outputs
from cnnlab.compress.quantization.ptq import (CALIBRATION_CACHE, PtqSettings, check_node_names, graph_input_name,
                                              preprocess, quantize_dynamic_candidate, quantize_static_candidate,
                                              quantized_ops, quantizes_input)
from cnnlab.compress.quantization.result import FP32, Accuracy, CandidateResult, Fp32Figures, QuantizationResult
from cnnlab.compress.quantization.portability import LOADS, cannot_run, check_runtimes, failure, unreadable
from cnnlab.compress.quantization.selection import CandidateFigures, paired_ratio, round_speedups, select
from cnnlab.deploy.onnx_check import weight_types
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
    asked: tuple[int, int]            # (quantize.calib_batches, quantize.calib_batch_size) asked for, as set
    input_range: tuple[float, float] | None = None   # the model input's range, widened off rounding ties
    fixed_batch: int | None = None    # the model's fixed batch: drawn in whole batches of it

    @classmethod
    def draw(cls, dataset: Any, batches: int, batch_size: int, *, seed: int, workers: int, method: str,
             cache: Path, whole: bool = False, asked: tuple[int, int] | None = None) -> "Calibration":
        """`batches` x `batch_size` training images (calibration.calibration_batches: seeded, deterministic; full
        batches only with `whole`, for a file whose batch is fixed to `batch_size`). `asked`: the user's
        (quantize.calib_batches, quantize.calib_batch_size) where they were re-cut into these batches
        (pipelines/quantize.fit_fixed_batch); `batches`, `batch_size` when None."""
        drawn = calibration_batches(dataset, batches=batches, batch_size=batch_size, seed=seed, workers=workers,
                                    whole=whole)
        # entropy and percentile clip the range themselves, off the pixel grid
        widened = range_off_ties(drawn) if method == "minmax" else None
        return cls(drawn, method, cache, asked or (batches, batch_size), widened,
                   fixed_batch=batch_size if whole else None)

    def widened_for(self, candidates: Sequence[CandidateResult]) -> tuple[float, float] | None:
        """`input_range` where one of onnxruntime's static `candidates` quantizes the model's input (quantize.exclude
        can keep its first node in float: probe 183 read "widened" of a file with no quantizer on its input)."""
        if self.input_range is None:
            return None
        static = [c.path for c in candidates if c.path is not None and c.format.engine == "onnxruntime"
                  and c.format.mode == "static"]
        return self.input_range if any(quantizes_input(path) for path in static) else None

    def shortfall(self, num_classes: int) -> str | None:
        """A warning when fewer images were drawn than asked for, or than there are classes."""
        return calibration_shortfall(sum(len(b) for b in self.batches), batches=self.asked[0],
                                     batch_size=self.asked[1], num_classes=num_classes,
                                     drawn_batches=len(self.batches), fixed_batch=self.fixed_batch)

    def describe(self, candidates: Sequence[CandidateResult] = ()) -> dict[str, Any]:
        """The record's calibration section; `input_range` where `candidates` used it (widened_for)."""
        widened = self.widened_for(candidates)
        return {"method": self.method, "batches": len(self.batches), "images": sum(len(b) for b in self.batches),
                "split": "train (deterministic transforms)",
                "ranges": f"calibrated once, reused by every format ({self.cache.name})" if CALIBRATION_CACHE
                else "calibrated for every format (this onnxruntime has no calibration cache)",
                **({"input_range": [*widened], "input_range_why": "min/max widened by half an INT8 step: "
                    "the pixels sat on rounding ties"} if widened else {})}


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
                path = quantize_static_candidate(preprocessed, target, fmt, settings, reader, calibration.cache,
                                                 input_range=calibration.input_range)
            else:
                path = quantize_dynamic_candidate(preprocessed, target, fmt, settings)
            built.append(CandidateResult(fmt, path))
        except CnnlabError as err:
            if not searching:
                raise
            built.append(CandidateResult(fmt, error=err.message))
            log.warning("skipping %s: %s", fmt.name, err.message)
    widened = calibration.widened_for(built) if calibration is not None else None
    if widened is not None:
        log.info("the input's min/max range put its pixels halfway between INT8 codes (a mean-0.5 normalisation): "
                 "widened by half a step at each end to [%.4g, %.4g], so the codes do not hang on the "
                 "preprocessing's last float bit", *widened)
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
                                accuracy_control=accuracy_control, reduce_range=settings.reduce_range)
    float_outputs(result.path)
    return CandidateResult(fmt, result.path, built_by=nncf_describe(result))


def search_formats(fp32_file: Path, candidates: Sequence[CandidateResult], val_loader: Any, *, timing: PairedSettings,
                   max_acc_drop: float, no_search: str | None = None, flops: int | None = None,
                   deploy_runtimes: Sequence[str] = (), keep_fp32_if_slower: bool | None = None,
                   fp32_fails_on: Sequence[str] = ()) -> QuantizationResult:
    """Measure FP32 and every built candidate, and choose. `val_loader` yields (images, targets); `timing` is the
    paired session's settings (runtime, threads, batch sizes, rounds); `max_acc_drop` in percentage points;
    `no_search`: why there is no choice to make (one format asked for by name), prefixed to the reason;
    `deploy_runtimes`: runtimes besides `timing.runtime` every candidate must run on, computing onnxruntime's top-1
    classes (portability.check_runtimes, on the first validation batch), to be scored and chosen;
    `keep_fp32_if_slower` (default: in a search): ship FP32 when the candidate chosen is not measured faster;
    `fp32_fails_on`: runtimes that cannot run the FP32 file itself (deployable_runtimes), so no candidate counts them
    among the runtimes that read it (probe 181: a QDQ file was chosen over a 35 % faster QOperator one as "read by
    onnxruntime, openvino, tensorrt" where OpenVINO read neither).
    Raises CnnlabError when no candidate can be run (or runs right on every deployment runtime)."""
    runtime, searching = timing.runtime, no_search is None
    probe = first_images(val_loader)
    fp32_accuracy = Accuracy.of(evaluate_onnx(fp32_file, val_loader, desc="val (fp32 onnx)", runtime=runtime))
    checked = [_check_deployment(c, runtime, deploy_runtimes, probe, threads=timing.threads, searching=searching)
               for c in candidates]
    evaluated = [_evaluate(c, val_loader, runtime, searching=searching) for c in checked]
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
                                read_by=tuple(r for r in READ_BY.get(c.format.layout, ()) if r not in fp32_fails_on),
                                ran_on=tuple(r for r, verdict in (c.loads_on or {}).items() if verdict == LOADS),
                                rounds=round_speedups(c.timing.p50_per_round,  # type: ignore[union-attr]
                                                      fp32.timing.p50_per_round))
               for name, c in timed.items()]
    selection = select(figures, fp32_acc=fp32_accuracy.acc, fp32_latency_ms=fp32.timing.p50_ms(),
                       max_drop_points=max_acc_drop,
                       keep_fp32_if_slower=searching if keep_fp32_if_slower is None else keep_fp32_if_slower)
    if not searching:
        selection = replace(selection, reason=f"{no_search}; {selection.reason}")
    result = QuantizationResult(fp32, tuple(timed.get(c.format.name, c) for c in evaluated), selection, timing,
                                max_acc_drop, tuple(deploy_runtimes), eval_batch_size=len(probe))
    if selection.fp32_kept:
        log.warning("no INT8 candidate within the budget is measured faster than FP32 on this machine: model.onnx is "
                    "the FP32 model (small models: quantizing and dequantizing costs more than the integer arithmetic "
                    "saves)")
    return result


def deployable_runtimes(fp32_file: Path, scored_on: str, deploy_runtimes: Sequence[str], images: np.ndarray, *,
                        threads: int, named: bool) -> tuple[tuple[str, ...], str | None]:
    """The runtimes of `deploy_runtimes` that run the FP32 file itself as onnxruntime does (portability.check_runtimes
    on the validation `images`), and a warning naming those left out; no INT8 file of a network a runtime cannot run
    would run there either (probe 181: OpenVINO refused GoogLeNet's 16-px export, so every candidate was refused and
    the fix offered, quantize.mode=dynamic, failed alike). CnnlabError, before any candidate is built, when the
    runtime scored on (`scored_on`) cannot run it, or a runtime the user `named` in quantize.deploy_runtimes."""
    verdicts = check_runtimes(fp32_file, list(deploy_runtimes), images, threads=threads)
    failing = unreadable(verdicts)
    if not failing:
        return tuple(deploy_runtimes), None
    # the file is the run's working copy, gone once the run ends (probe 183): named by what it is
    said = "; ".join(failure(r, verdicts[r]) for r in failing).replace(str(fp32_file), "the FP32 ONNX file")
    kept = [r for r in deploy_runtimes if r not in failing]
    if scored_on in failing or named:
        raise CnnlabError(f"the FP32 model itself does not run on {', '.join(failing)} ({said}), so no INT8 file of it "
                          "would", fix=(f"deploy it on {kept[0]}: quantize.runtime={kept[0]} "
                                        f"quantize.deploy_runtimes=[{','.join(kept)}]") if kept else
                          "train and export the model at a larger dataset.image_size, or another model")
    return tuple(kept), (f"the FP32 model itself does not run on {', '.join(failing)} ({said}): the INT8 candidates "
                         f"are checked on {', '.join(kept)} only, and none is deployable on {', '.join(failing)}")


def first_images(val_loader: Any) -> np.ndarray:
    """The first validation batch's images, float32 [N, C, H, W]: N is the batch every accuracy is scored at."""
    images = next(iter(val_loader))[0]
    return np.asarray(images.numpy() if hasattr(images, "numpy") else images, dtype=np.float32)


def _check_deployment(candidate: CandidateResult, scored_on: str, deploy_runtimes: Sequence[str], images: np.ndarray,
                      *, threads: int, searching: bool) -> CandidateResult:
    """The candidate with the verdict of `scored_on` (quantize.runtime) and of each deployment runtime on the
    validation `images` (portability.check_runtimes: run at their batch and at batch 1, top-1 classes compared with
    onnxruntime's); an error, so that it is neither scored nor chosen, when one of them cannot run it or computes
    other classes. A bf16 candidate (the FP32 file) is checked on `scored_on` in bf16 only: every runtime reads the
    file. A format asked for by name fails instead."""
    if candidate.path is None or candidate.error is not None:
        return candidate
    precision = candidate.format.inference_precision
    runtimes = [scored_on] if precision != "f32" else [scored_on, *(r for r in deploy_runtimes if r != scored_on)]
    verdicts = check_runtimes(candidate.path, runtimes, images, threads=threads, precision=precision)
    checked = replace(candidate, loads_on=verdicts)
    failing = unreadable(verdicts)
    if not failing:
        return checked
    error = "; ".join(failure(r, verdicts[r]) for r in failing)
    if not searching:
        others = [r for r in failing if r != scored_on]
        raise CnnlabError(f"{candidate.format.name}: {error}",
                          fix=(f"leave {', '.join(others)} out of quantize.deploy_runtimes, or " if others else
                               "use another quantize.runtime, or ") +
                              ("choose a QDQ format (read by onnxruntime, OpenVINO and TensorRT)"
                               if all(cannot_run(verdicts[r]) for r in failing)
                               else "choose another quantize.format"))
    log.warning("skipping %s: %s", candidate.format.name, error)
    return replace(checked, error=error)


def _evaluate(candidate: CandidateResult, val_loader: Any, runtime: str, *, searching: bool) -> CandidateResult:
    """The candidate with what makes it INT8 and its accuracy on the validation split (or why it cannot run); one that
    failed its runtime check (_check_deployment) is not scored."""
    if candidate.path is None or candidate.error is not None:
        return candidate
    precision = candidate.format.inference_precision
    ops = dict(quantized_ops(candidate.path)) if precision == "f32" else {}
    notes = () if ops or precision != "f32" else ("nothing was quantized (every node excluded or unsupported)",)
    stored = dict(weight_types(candidate.path)) if precision == "f32" else {}
    asked = candidate.format.weights
    if stored and set(stored) != {asked}:  # onnxruntime's per-channel convolutions are S8 whatever was asked
        counts = ", ".join(f"{kind.upper()}: {count}" for kind, count in sorted(stored.items()))
        notes += (f"{asked.upper()} weights asked for, but {sum(stored.values()) - stored.get(asked, 0)} of "
                  f"{sum(stored.values())} weight tensors are stored otherwise ({counts}; onnxruntime stores "
                  "per-channel convolution weights as S8)",)
    try:
        session = onnx_session(candidate.path, runtime=runtime, precision=precision)
        figures = evaluate_onnx(session, val_loader, desc=f"val ({candidate.format.name})")
    except CnnlabError as err:
        if not searching:
            raise
        error = f"{runtime} cannot run it: {err.message}"
        log.warning("skipping %s: %s", candidate.format.name, error)
        return replace(candidate, int8_ops=ops, weight_tensors=stored, notes=notes, error=error)
    return replace(candidate, accuracy=Accuracy.of(figures), int8_ops=ops, weight_tensors=stored, notes=notes)


def _with_speed_note(candidate: CandidateResult, fp32: Fp32Figures, runtime: str, *, warn: bool) -> CandidateResult:
    """A note (and, for a format chosen by hand, a warning) when the candidate is not measured faster than FP32 here
    (PairedRatio.faster: every round says so; probe 114: a 1.0047× whose rounds read 1.00, 0.88, 0.94 had none), with
    its rounds' range when they disagree (PairedRatio.text)."""
    assert candidate.timing is not None
    ratio = paired_ratio(candidate.timing, fp32.timing)
    if ratio.faster:
        return candidate
    known = slow_format_warning(candidate.format, runtime)
    said = ratio.text("FP32 on this machine")
    if warn:
        log.warning("%s runs %s%s", candidate.format.name, said, f": {known}" if known else "")
    return replace(candidate, notes=(*candidate.notes, said + (f" ({known})" if known else "")))
