"""OpenVINO's own runtime (the `openvino` package, `pip install "cnnlab[openvino]"`) behind the part of
onnxruntime's `InferenceSession` API that cnnlab uses, so timing, evaluation and prediction run an ONNX file on
either runtime through the same code (`cnnlab.deploy.ort.onnx_session(..., runtime="openvino")`).

OpenVINO reads the ONNX file itself and compiles it for its CPU plugin with the LATENCY hint (one stream: a
request uses every thread it is given), `threads` inference threads, and an inference precision that is pinned:
f32 unless bf16 is asked for. Left to itself the plugin runs an FP32 file in bf16 on CPUs that have bf16
(AVX512-BF16, AMX), so an "FP32" baseline would silently be a bf16 one. The compiled model's precision is
checked after compiling: a request the plugin did not honour is an error, not a different measurement.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping, Sequence

import numpy as np

from cnnlab.errors import CnnlabError, ModelLoadError
from cnnlab.fileio import why_not_a_file

INSTALL_FIX = 'pip install "cnnlab[openvino]" (the openvino package installs beside onnxruntime)'
PRECISIONS = ("f32", "bf16")
PROVIDER = "OpenVINO CPU"  # what `get_providers()` reports, in the place of onnxruntime's provider names
_DEVICE = "CPU"


def load_openvino() -> ModuleType:
    """The `openvino` module. CnnlabError naming the extra to install when it does not import here."""
    try:
        import openvino
    except ImportError as exc:  # not installed, or a broken install (a missing shared library)
        raise CnnlabError(f"the openvino package is not importable here ({exc})", fix=INSTALL_FIX) from exc
    keep_absl_off_borrowed_streams()
    return openvino


def keep_absl_off_borrowed_streams() -> None:
    """Make absl's logging handler, if absl.logging is imported, write to the process's own stderr.

    Importing openvino (or nncf, which imports it) imports absl.logging when absl is installed (openvino's
    model-converter logger does). absl's handler keeps the sys.stderr of that moment and, when logging's
    handlers are shut down — Hydra's logging setup does so at the start of every job — closes that stream
    unless it is still sys.stderr. Once stderr has been redirected in between (a test runner's capture, click's
    CliRunner), it closes a stream it does not own, and every later write to it fails. The process's own
    stderr (sys.__stderr__) is one absl never closes. Call after importing openvino or nncf."""
    absl_logging = sys.modules.get("absl.logging")
    python_handler = getattr(getattr(absl_logging, "_absl_handler", None), "python_handler", None)
    if isinstance(python_handler, logging.StreamHandler) and sys.__stderr__ is not None:
        with python_handler.lock or contextlib.nullcontext():
            python_handler.stream = sys.__stderr__


@lru_cache(maxsize=1)
def _core() -> Any:
    """One `openvino.Core` per process (creating it loads the plugin registry)."""
    return load_openvino().Core()


def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin reports it can compute on this CPU (OPTIMIZATION_CAPABILITIES: FP32, INT8,
    BF16 on a CPU with AVX512-BF16 or AMX, ...)."""
    return tuple(str(c) for c in _core().get_property(_DEVICE, "OPTIMIZATION_CAPABILITIES"))


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes in bf16 on this CPU ("BF16" among its capabilities)."""
    return "BF16" in cpu_capabilities()


def check_precision(precision: str) -> str:
    """`precision` (f32 | bf16) if OpenVINO can compute in it here; CnnlabError (one line) otherwise."""
    if precision not in PRECISIONS:
        raise CnnlabError(f"unknown inference precision {precision!r}", fix=f"use one of {', '.join(PRECISIONS)}")
    if precision == "bf16" and not cpu_has_bf16():
        raise CnnlabError(f"this CPU has no bf16 arithmetic for OpenVINO (its CPU plugin reports "
                          f"{', '.join(cpu_capabilities())})",
                          fix="use precision f32, or run on a CPU with AVX512-BF16 or AMX (Intel Sapphire Rapids "
                              "or later, AMD Zen 4 or later)")
    return precision


def first_reason(exc: BaseException) -> str:
    """The first informative line of a runtime's exception: its first non-empty line, past the lines with
    which OpenVINO's errors name its own C++ sources ("Exception from src/...", "Check '...' failed at ...")."""
    lines = [ln.strip().lstrip("- ").strip() for ln in str(exc).splitlines() if ln.strip()]
    noise = ("Exception from ", "Check '", "FrontEnd API failed")
    useful = [ln for ln in lines if not ln.startswith(noise)]
    if not useful:
        return lines[0] if lines else type(exc).__name__
    # "Model wasn't fully converted." says nothing by itself: OpenVINO's summary names the operators it has no
    # conversion for (e.g. com.microsoft.QGemm, QLinearConv in a QOperator file)
    summary = [ln for ln in useful if ln.startswith(("No conversion rule found", "Conversion is failed for"))]
    if summary:
        head = useful[0].split(" Failed operations detailed log:")[0]
        return f"{head} {'; '.join(summary)}"
    return useful[0]


# A runtime that ran out of memory loading a sound file (probe 134: `ulimit -v` made onnxruntime's load fail with
# std::bad_alloc, and the fix said to re-export the file)
OUT_OF_MEMORY_FIX = ("the file may be sound: free memory for it (other programs, or the limit `ulimit -v` sets) and "
                     "run again")


def ran_out_of_memory(reason: str) -> bool:
    """Whether a runtime's error text says an allocation failed: C++'s std::bad_alloc, or its own words
    (onnxruntime's arena "Failed to allocate memory for requested buffer", OpenVINO's "Failed to allocate N bytes of
    memory", "out of memory", ENOMEM's "Cannot allocate memory"; probe 137)."""
    lowered = reason.lower()
    return "bad_alloc" in lowered or any(words in lowered for words in ("out of memory", "cannot allocate memory",
                                                                         "failed to allocate"))


def _load_fix(reason: str, path: Path) -> str:
    """What to do about a file OpenVINO cannot load: an INT8 file in onnxruntime's own QOperator operators
    (QLinearConv, QGemm, ConvInteger ...) needs onnxruntime or a QDQ re-quantization; memory that ran out, memory; a
    file onnxruntime runs, another runtime or image size (probe 181: GoogLeNet's export at 16 px, a 3x3 max-pool over a
    2x2 map, was told to re-export — a fresh export is what it was); anything else, a re-export."""
    if ran_out_of_memory(reason):
        return OUT_OF_MEMORY_FIX
    if "conversion rule" in reason or "QLinear" in reason or "com.microsoft" in reason:
        return ("it holds onnxruntime-only INT8 operators (QOperator format): run it on onnxruntime, or quantize "
                "again with a QDQ format (quantize.format=qdq_u8s8, or format=auto with openvino in "
                "quantize.deploy_runtimes)")
    if _onnxruntime_runs(path):
        return ("onnxruntime runs this file, so it is sound; OpenVINO does not take one of its operators or shapes "
                "(a pooling window wider than the feature map at a small image size, say): time and deploy it on "
                "onnxruntime (bench.backends=[onnxruntime], quantize.deploy_runtimes=[onnxruntime]), or train at a "
                "larger dataset.image_size")
    return "point to a valid .onnx file (re-export it with `cnnlab export`)"


def _onnxruntime_runs(path: Path) -> bool:
    """Whether onnxruntime opens `path` and runs it on one image of zeros (a fixed batch: at that batch)."""
    try:
        from cnnlab.deploy.ort import onnx_session, run_on_zeros

        run_on_zeros(onnx_session(path, threads=1))
        return True
    except Exception:  # noqa: BLE001 - any failure: not a file onnxruntime runs
        return False


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of the model, as onnxruntime's NodeArg describes it: the tensor name, the shape (an int
    per static axis and None per dynamic one, e.g. [None, 3, 224, 224] for a dynamic batch) and the element type
    in onnxruntime's words ("tensor(float)", "tensor(float16)", ...)."""

    name: str
    shape: list[int | None]
    type: str = "tensor(float)"


# OpenVINO's element type names → onnxruntime's tensor types.
_TYPES = {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)", "bf16": "tensor(bfloat16)"}


def _info(port: Any) -> TensorInfo:
    shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
    kind = str(port.get_element_type().get_type_name())
    return TensorInfo(port.get_any_name(), shape, _TYPES.get(kind, f"tensor({kind})"))


class OpenVinoSession:
    """An ONNX file compiled by OpenVINO for the CPU, used like an onnxruntime InferenceSession: `run`,
    `get_inputs`, `get_outputs`, `get_providers`.

    path: the .onnx file. threads: OpenVINO's inference threads (None: its default, one per core it may use).
    precision: "f32" (default; pinned, see the module docstring) or "bf16" (only on a CPU with bf16).
    Raises CnnlabError when openvino is not installed, the file does not exist, threads < 1, or the precision is
    unknown or not available on this CPU; ModelLoadError (a CnnlabError) when the file cannot be read or compiled.

    One infer request is created and reused by every `run` (a dynamic batch axis takes any batch size); runs
    from several threads are serialised, never interleaved on that request.
    """

    def __init__(self, path: Path | str, *, threads: int | None = None, precision: str = "f32") -> None:
        path = Path(path)
        if threads is not None and threads < 1:
            raise CnnlabError(f"threads={threads} must be at least 1")
        ov = load_openvino()
        precision = check_precision(precision)
        if not path.is_file():
            raise CnnlabError(f"ONNX file {path} {why_not_a_file(path)}")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            # The ONNX frontend itself: Core.read_model would also try the other frontends on a file it
            # cannot parse, and print their errors.
            frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
            model = frontend.convert(frontend.load(str(path)))
            compiled = _core().compile_model(model, _DEVICE, config)
        except Exception as exc:  # noqa: BLE001 - GeneralFailure, OpConversionFailure, RuntimeError, ...
            reason = first_reason(exc)
            raise ModelLoadError(f"openvino cannot load {path}: {reason}", fix=_load_fix(reason, path)) from exc
        self.path = path
        self.threads = threads
        self.precision = precision
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        self._inputs = [_info(port) for port in compiled.inputs]
        self._outputs = [_info(port) for port in compiled.outputs]
        self._output_ports: dict[str, Any] = {}
        for port in compiled.outputs:
            for name in port.get_names():
                self._output_ports.setdefault(name, port)
        compiled_precision = self.inference_precision
        if compiled_precision != precision:
            raise CnnlabError(f"openvino compiled {path} for {compiled_precision}, not the {precision} asked for",
                              fix="use precision f32, or run on a CPU with AVX512-BF16 or AMX")

    @property
    def inference_precision(self) -> str:
        """The precision the compiled model computes in, as OpenVINO reads it back: "f32" or "bf16"."""
        return str(self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    @property
    def inference_threads(self) -> int:
        """The inference threads of the compiled model (OpenVINO's own choice when none were given)."""
        return int(self._compiled.get_property("INFERENCE_NUM_THREADS"))

    def get_inputs(self) -> list[TensorInfo]:
        """The model's inputs: name, and shape with None for each dynamic axis."""
        return list(self._inputs)

    def get_outputs(self) -> list[TensorInfo]:
        """The model's outputs: name, and shape with None for each dynamic axis."""
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """["OpenVINO CPU"]: what runs the model, where onnxruntime names its execution providers."""
        return [PROVIDER]

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named in `output_names` (None: all, in the model's order) for `input_feed` {input name:
        array, e.g. float32 [N, C, H, W]}, as arrays the caller owns (copied out of the request). Raises
        CnnlabError for an output name the model does not have; OpenVINO's own error (RuntimeError) for an
        input it cannot take (a wrong name, or a shape its static axes do not accept)."""
        names = [o.name for o in self._outputs] if output_names is None else list(output_names)
        unknown = [n for n in names if n not in self._output_ports]
        if unknown:
            raise CnnlabError(f"{self.path} has no output {', '.join(unknown)}",
                              fix=f"use one of {', '.join(o.name for o in self._outputs)}")
        feed = {name: np.ascontiguousarray(array) for name, array in input_feed.items()}
        with self._lock:
            # share_inputs: no copy of the (contiguous) input; outputs are copied, as the request is reused.
            results = self._request.infer(feed, share_inputs=True, share_outputs=False)
        return [np.asarray(results[self._output_ports[name]]) for name in names]
