"""Post-training quantization of an FP32 ONNX file with onnxruntime's tools.

`preprocess` runs `quant_pre_process` once (symbolic shape inference, graph optimisation such as folding
batch norms into convolutions, ONNX shape inference); every candidate format is then quantized from that one
file: static formats from ranges calibrated once (`calibration.json` in the run folder: the first candidate
runs the calibration, the others load it), dynamic formats without calibration. onnxruntime builds older than
the calibration cache (1.24, the newest OpenVINO build, among them) calibrate again for every format: the
same images in the same order give the same ranges, only slower.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, create_calibrator,
                                      quant_pre_process, quantize_dynamic, quantize_static)
from onnxruntime.quantization import calibrate as ort_calibrate
from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

from cnnlab.compress.quantization.calibration import CalibrationReader
from cnnlab.compress.quantization.formats import Format
from cnnlab.compress.quantization.outputs import float_outputs
from cnnlab.deploy.export import load_onnx
from cnnlab.deploy.onnx_check import QUANTIZED_OPS, graph_precision, quantized_ops  # noqa: F401 - re-exported
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import with_usual_permissions

CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                       "percentile": CalibrationMethod.Percentile}
_TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
_LAYOUTS = {"qdq": QuantFormat.QDQ, "qop": QuantFormat.QOperator}
# Whether this onnxruntime's quantize_static can save calibrated ranges and load them for the next format.
CALIBRATION_CACHE = "calibration_cache_path" in inspect.signature(quantize_static).parameters
# The entropy (KL divergence) calibration's histogram: TensorRT's (Migacz, "8-bit inference with TensorRT", GTC 2017)
# and PyTorch's HistogramObserver's 2048 bins, searched for the threshold whose 128-bin quantization loses least.
# quantize_static passes no bin counts to its calibrator, whose own 128 bins over 128 quantized bins leave the search
# one candidate, the whole range: entropy was min-max (probe 203: the same scales bit for bit on one batch).
ENTROPY_HISTOGRAM = {"num_bins": 2048, "num_quantized_bins": 128}


@dataclass(frozen=True)
class PtqSettings:
    calibrate_method: str = "minmax"
    percentile: float = 99.999
    per_channel: bool = True
    reduce_range: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.calibrate_method not in CALIBRATION_METHODS:
            raise CnnlabError(f"quantize.calibrate_method={self.calibrate_method} is not a calibration method",
                              fix=f"use one of: {', '.join(CALIBRATION_METHODS)}")
        if not 0 < self.percentile <= 100:
            raise CnnlabError(f"quantize.percentile={self.percentile} must be in (0, 100]")


@found_before_work()  # a refusal of the inputs leaves no `failed` run behind (probe 68)
def check_float_graph(path: Path) -> None:
    """Refuse a file that is quantized already (quantizing it again would stack rounding on rounding), and an FP16
    one (INT8 ranges and the FP32 reference start from an FP32 graph): one line each, naming the FP32 source."""
    proto = load_onnx(path)
    found = quantized_ops(proto)
    if found:
        raise CnnlabError(f"{path} is quantized already ({', '.join(f'{n} {op}' for op, n in found.most_common(3))})",
                          fix="pass the FP32 model it came from (its run's source=, or the export/finetune run)")
    if graph_precision(proto) == "fp16":
        raise CnnlabError(f"{path} is an FP16 file: INT8 quantization starts from an FP32 ONNX",
                          fix="pass the FP32 model it came from: the cnnlab export (`cnnlab export source=RUN`) or "
                              "the run's model.pt")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantization tools log advice through the root logger (e.g. "please run pre-processing",
    which cnnlab does); keep their warnings off the run's log while they run — errors still show."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def preprocess(fp32: Path, out: Path) -> Path:
    """quant_pre_process: shape inference + onnxruntime's basic graph optimisations, written to `out`."""
    try:
        with _quiet_root_logger():
            quant_pre_process(str(fp32), str(out))
    except Exception as exc:  # noqa: BLE001 - shape inference raises many types
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CnnlabError(f"onnxruntime's quantization pre-processing failed on {fp32}: {first}",
                          fix="re-export the model with `cnnlab export`; run with --debug for details") from exc
    return out


@found_before_work()
def check_node_names(graph_path: Path, names: Sequence[str]) -> None:
    """Every name in quantize.exclude must be a node of the (pre-processed) graph — a typo would silently
    quantize the node the user meant to keep in float."""
    nodes = [node.name for node in load_onnx(graph_path).graph.node]
    missing = [name for name in names if name not in set(nodes)]
    if missing:
        examples = ", ".join([n for n in nodes if n][:6])
        raise CnnlabError(f"quantize.exclude names no node called {', '.join(missing)} in the FP32 graph "
                          f"(after pre-processing; e.g. {examples}, ...)",
                          fix="use node names of the graph as onnxruntime sees it (open fp32 in Netron, or "
                              "keep quantize.keep_candidates=true and read candidates/fp32_preprocessed.onnx)")


def quantize_static_candidate(preprocessed: Path, out: Path, fmt: Format, settings: PtqSettings,
                              reader: CalibrationReader, calibration_cache: Path, *,
                              input_range: tuple[float, float] | None = None) -> Path:
    """Static INT8 of `preprocessed` in format `fmt`, its outputs (the logits) in float. The first call
    calibrates on `reader` and saves the tensor ranges to `calibration_cache`; later calls (other formats) load
    them instead of calibrating again (without CALIBRATION_CACHE every call calibrates, and no cache file is
    written). `input_range` (calibration.range_off_ties) replaces the calibrated range of the model's input."""
    extra: dict[str, Any] = {"CalibStridedMinMax": 1}  # one batch at a time: memory stays one batch of activations
    if settings.calibrate_method == "percentile":
        extra["CalibPercentile"] = settings.percentile
    cache = {"calibration_cache_path": str(calibration_cache)} if CALIBRATION_CACHE else {}
    method = CALIBRATION_METHODS[settings.calibrate_method]
    overrides: dict[str, list[dict[str, Any]]] = {}
    try:
        if settings.calibrate_method == "entropy" and not (cache and calibration_cache.is_file()):
            ranges = entropy_ranges(preprocessed, reader)
            if cache:  # quantize_static loads them as its own
                ort_calibrate.save_tensors_data(ranges, calibration_cache)
            else:  # an onnxruntime without the cache: the ranges as overrides, its own pass the cheapest one
                overrides = {name: [{"rmin": np.float32(np.min(data.range_value[0])),
                                     "rmax": np.float32(np.max(data.range_value[1]))}]
                             for name, data in ranges.data.items()}
                method = CalibrationMethod.MinMax
        with _quiet_root_logger():
            if input_range is not None:
                overrides[reader.input_name] = [{"rmin": np.float32(input_range[0]),
                                                 "rmax": np.float32(input_range[1])}]
            if overrides:
                extra["TensorQuantOverrides"] = overrides
            reader.set_range(0, len(reader))
            quantize_static(str(preprocessed), str(out), reader, quant_format=_LAYOUTS[fmt.layout],
                            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
                            activation_type=_TYPES[fmt.activations], weight_type=_TYPES[fmt.weights],
                            nodes_to_exclude=list(settings.exclude), calibrate_method=method,
                            extra_options=extra, **cache)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's quantizer raises many types
        raise _quantizer_error(fmt, exc) from exc
    float_outputs(out)  # not logits on an 8-bit grid, where classes tie (outputs.py)
    if cache and calibration_cache.is_file():  # onnxruntime writes it through mkstemp: readable by its owner only
        with_usual_permissions(calibration_cache)
    return out


def entropy_ranges(preprocessed: Path, reader: CalibrationReader) -> Any:
    """onnxruntime's entropy (KL divergence) calibration of `preprocessed` over `reader`'s batches, one at a time,
    with ENTROPY_HISTOGRAM's bin counts: an onnxruntime `TensorsData` of (lowest, highest) per tensor of the ops
    quantize_static quantizes. Raises what onnxruntime's calibrator raises."""
    ops = sorted({*QLinearOpsRegistry, *QDQRegistry})  # what quantize_static calibrates when given no op types
    # said before the root logger is quieted (probe 204: said within, it reached neither the console nor run.log)
    logging.getLogger("cnnlab").info(
        "entropy calibration: the KL-divergence threshold of each tensor over %d-bin histograms (onnxruntime's "
        "search, in Python: about a second per tensor)", ENTROPY_HISTOGRAM["num_bins"])
    # its calibrator prints its progress to stdout, where a run's output is its log's
    with tempfile.TemporaryDirectory(prefix="cnnlab-calibration-") as folder, \
            contextlib.redirect_stdout(io.StringIO()), _quiet_root_logger():
        calibrator = create_calibrator(preprocessed, ops, augmented_model_path=str(Path(folder) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.Entropy, extra_options=ENTROPY_HISTOGRAM)
        for start in range(len(reader)):
            reader.set_range(start, start + 1)
            calibrator.collect_data(reader)
        return calibrator.compute_data()


def quantize_dynamic_candidate(preprocessed: Path, out: Path, fmt: Format, settings: PtqSettings) -> Path:
    """Dynamic INT8: weights stored as INT8, activations quantized at run time (no calibration)."""
    try:
        with _quiet_root_logger():
            quantize_dynamic(str(preprocessed), str(out), per_channel=settings.per_channel,
                             reduce_range=settings.reduce_range, weight_type=_TYPES[fmt.weights],
                             nodes_to_exclude=list(settings.exclude))
    except Exception as exc:  # noqa: BLE001
        raise _quantizer_error(fmt, exc) from exc
    return out


def _quantizer_error(fmt: Format, exc: Exception) -> CnnlabError:
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return CnnlabError(f"onnxruntime could not quantize the model as {fmt.name}: {first}",
                       fix="try another quantize.format, or keep the failing nodes in float with quantize.exclude")


def quantizes_input(path: Path) -> bool:
    """Whether the file quantizes its graph input: a QuantizeLinear takes the input itself (where quantize.exclude
    keeps the first node in float, nothing does)."""
    proto = load_onnx(path)
    name = proto.graph.input[0].name
    return any(node.op_type == "QuantizeLinear" and node.input and node.input[0] == name for node in proto.graph.node)


def graph_input_name(path: Path) -> str:
    return load_onnx(path).graph.input[0].name
