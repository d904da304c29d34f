"""INT8 quantization: post-training (static and dynamic, with onnxruntime's tools on an ONNX file) and
quantization-aware training (torch.ao FX, exported as QDQ ONNX), and the search that measures candidate formats
on this machine and keeps one (search.py, result.py). `cnnlab quantize` (pipelines/quantize.py) drives them;
these modules are plain functions on files, models and measured figures."""

from __future__ import annotations

from cnnlab.compress.quantization.calibration import CalibrationReader, calibration_batches
from cnnlab.compress.quantization.formats import (AUTO, AUTO_CANDIDATES, DYNAMIC_NOTE, FORMATS, MODES, QAT_FORMATS,
                                                  Format, candidate_formats, has_vnni, resolve_reduce_range,
                                                  slow_format_warning)
from cnnlab.compress.quantization.ptq import (CALIBRATION_CACHE, CALIBRATION_METHODS, QUANTIZED_OPS, PtqSettings,
                                              check_float_graph, check_node_names, graph_input_name, preprocess,
                                              quantize_dynamic_candidate, quantize_static_candidate, quantized_ops)
from cnnlab.compress.quantization.result import (FP32, Accuracy, CandidateResult, Fp32Figures,
                                                 QuantizationResult)
from cnnlab.compress.quantization.search import Calibration, build_onnx_candidates, search_formats
from cnnlab.compress.quantization.selection import (CandidateFigures, Selection, drop_points, select,
                                                    signed_points, speedup, within_budget)

__all__ = [
    "AUTO", "AUTO_CANDIDATES", "CALIBRATION_CACHE", "CALIBRATION_METHODS", "DYNAMIC_NOTE", "FORMATS", "FP32", "MODES",
    "QAT_FORMATS", "QUANTIZED_OPS", "Accuracy", "Calibration", "CalibrationReader", "CandidateFigures",
    "CandidateResult", "Format", "Fp32Figures", "PtqSettings", "QuantizationResult", "Selection",
    "build_onnx_candidates", "calibration_batches", "candidate_formats", "check_float_graph", "check_node_names",
    "drop_points", "graph_input_name", "has_vnni", "preprocess", "quantize_dynamic_candidate",
    "quantize_static_candidate", "quantized_ops", "resolve_reduce_range", "search_formats", "select",
    "signed_points", "slow_format_warning", "speedup", "within_budget",
]
