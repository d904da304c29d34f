"""INT8 quantization: post-training (static and dynamic, with onnxruntime's tools on an ONNX file) and
quantization-aware training (torch.ao FX, exported as QDQ ONNX). `cnnlab quantize` (pipelines/quantize.py)
drives them; these modules are plain functions on files, models and measured figures."""

from __future__ import annotations

from cnnlab.compress.quantization.calibration import CalibrationReader, calibration_batches
from cnnlab.compress.quantization.formats import (AUTO, AUTO_CANDIDATES, DYNAMIC_NOTE, FORMATS, MODES, QAT_FORMATS,
                                                  Format, candidate_formats, has_vnni, resolve_reduce_range,
                                                  slow_format_warning)
from cnnlab.compress.quantization.ptq import (CALIBRATION_CACHE, CALIBRATION_METHODS, QUANTIZED_OPS, PtqSettings,
                                              check_float_graph, check_node_names, graph_input_name, preprocess,
                                              quantize_dynamic_candidate, quantize_static_candidate, quantized_ops,
                                              write_with_metadata)
from cnnlab.compress.quantization.selection import (CandidateFigures, Selection, drop_points, select,
                                                    signed_points, speedup, within_budget)
from cnnlab.compress.quantization.timing import FileTiming, TimingSettings, median_round, time_files

__all__ = [
    "AUTO", "AUTO_CANDIDATES", "CALIBRATION_CACHE", "CALIBRATION_METHODS", "DYNAMIC_NOTE", "FORMATS", "MODES", "QAT_FORMATS",
    "QUANTIZED_OPS", "CalibrationReader", "CandidateFigures", "FileTiming", "Format", "PtqSettings", "Selection",
    "TimingSettings", "calibration_batches", "candidate_formats", "check_float_graph", "check_node_names",
    "drop_points", "graph_input_name", "has_vnni", "median_round", "preprocess", "quantize_dynamic_candidate",
    "quantize_static_candidate", "quantized_ops", "resolve_reduce_range", "select", "signed_points",
    "slow_format_warning", "speedup", "time_files", "within_budget", "write_with_metadata",
]
