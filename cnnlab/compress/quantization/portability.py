"""Whether an INT8 file runs, and computes what onnxruntime computes, on each runtime it is scored on
(`quantize.runtime`) or may be deployed on (`quantize.deploy_runtimes`).

A file chosen for being fastest on onnxruntime is no use to a user who deploys on OpenVINO if OpenVINO cannot read
it (QOperator's QLinearConv has no conversion there) — or reads it and computes something else. Probe 105: NNCF's
MobileNetV2 and EfficientNet-B0 files at 32 px gave chance-level top-1 on OpenVINO 2026.4 at batch 1 with a dynamic
batch axis (a per-channel activation QuantizeLinear after a 1x1 convolution on a 1x1 map) and the right classes at
batch 8 and up, where quantize scored them: 85.56 % recorded "on openvino", 9.72 % for one image at a time. Running
a file once on zeros said "loads". So every candidate is run on real validation images on every runtime checked —
at the batch its accuracy is scored at, and one image at a time (batch 1: what quantize times and `cnnlab predict`
runs) — and its top-1 classes are compared with those onnxruntime gives for the same file at the scored batch. Only
a runtime whose classes agree (`agreement`) is recorded as LOADS; any other verdict keeps the file from being scored
or chosen there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cnnlab.deploy.agreement import DISAGREES, REFERENCE, disagreement
from cnnlab.errors import CnnlabError

LOADS = "loads"  # the recorded verdict of a runtime that ran the file and agreed with onnxruntime
UNCHECKED = "outputs not checked"  # ... and one whose outputs had nothing to be compared with


def check_runtimes(path: Path, runtimes: Sequence[str], images: np.ndarray | None = None, *,
                   threads: int | None = None, precision: str = "f32") -> dict[str, str]:
    """runtime → LOADS, or the one-line reason it cannot open or run `path`, or how its outputs disagree.

    `images`: float32 [N, C, H, W] validation images, N the batch the accuracy is scored at. Each runtime runs them
    at N and the first deploy.agreement.PROBE_IMAGES one at a time; the top-1 class of each image must agree with
    onnxruntime's for the same file at N (deploy.agreement). None: one batch of zeros (batch 1, or the file's
    fixed batch) is run, and nothing compared. `threads`: per session (None: the runtime's default); `precision`
    (f32 | bf16) is OpenVINO's inference precision; the reference is f32."""
    from cnnlab.deploy.ort import onnx_session, run_images

    reference, verdicts = None, {}
    if images is not None:
        try:
            reference = run_images(onnx_session(path, threads=threads, runtime=REFERENCE), images)
        except Exception as exc:  # noqa: BLE001 - as below
            unchecked = f"{UNCHECKED}: {REFERENCE} cannot run it ({_reason(exc)})"
            return {runtime: _reason(exc) if runtime == REFERENCE else unchecked for runtime in runtimes}
    for runtime in runtimes:
        try:
            session = onnx_session(path, threads=threads, runtime=runtime,
                                   precision=precision if runtime == "openvino" else "f32")
            verdicts[runtime] = _runs_on_zeros(session) if images is None or reference is None else \
                _agrees(session, runtime, images, reference)
        except Exception as exc:  # noqa: BLE001 - a runtime's own error types when the file loads but cannot run
            verdicts[runtime] = _reason(exc)
    return verdicts


def cannot_run(verdict: str) -> bool:
    """Whether a verdict says the runtime could not open or run the file (not: ran it, and its outputs disagreed or
    could not be compared)."""
    return verdict != LOADS and not verdict.startswith((DISAGREES, UNCHECKED))


def failure(runtime: str, verdict: str) -> str:
    """One line for a runtime's verdict other than LOADS: "openvino cannot run it: …", "openvino: outputs at …"."""
    return f"{runtime} cannot run it: {verdict}" if cannot_run(verdict) else f"{runtime}: {verdict}"


def unreadable(verdicts: Mapping[str, str]) -> list[str]:
    """The runtimes of `verdicts` that could not run the file, or computed other classes than onnxruntime."""
    return [runtime for runtime, verdict in verdicts.items() if verdict != LOADS]


def _runs_on_zeros(session: Any) -> str:
    from cnnlab.deploy.ort import run_on_zeros

    run_on_zeros(session)
    return LOADS


def _agrees(session: Any, runtime: str, images: np.ndarray, reference: np.ndarray) -> str:
    """LOADS, or the first batch (the scored one, then 1) at which the top-1 classes disagree with the reference's."""
    # the reference at the scored batch is itself
    problem = disagreement(session, images, reference, batches=(1,) if runtime == REFERENCE else None,
                           what="validation images")
    return LOADS if problem is None else problem


def _reason(exc: BaseException) -> str:
    """A CnnlabError's message, or a runtime's own error past OpenVINO's "Exception from src/..." (probe 90)."""
    from cnnlab.deploy.openvino_runtime import first_reason

    return exc.message if isinstance(exc, CnnlabError) else first_reason(exc)
