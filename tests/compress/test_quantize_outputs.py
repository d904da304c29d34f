"""compress/quantization/outputs.py: an INT8 graph's logits stay float, in both onnxruntime layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cnnlab.compress.quantization import (FORMATS, CalibrationReader, PtqSettings, graph_input_name, preprocess,
                                          quantize_static_candidate, resolve_reduce_range)
from cnnlab.compress.quantization.outputs import float_outputs
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.models import create_model


def _logits(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.parametrize("fmt", ["qdq_u8s8", "qop_u8s8"])
def test_the_logits_of_an_int8_file_are_not_on_an_8_bit_grid(tmp_path: Path, fmt: str) -> None:
    """Probe 70: the last Gemm's output was quantized (QuantizeLinear → DequantizeLinear, or QGemm's INT8 output):
    2.9 % of Fashion-MNIST's test images had tied top logits, and argmax took the lower class index."""
    torch.manual_seed(0)
    fp32 = export_onnx(create_model("lenet5", 10, 16).eval(), tmp_path / "fp32.onnx", spec=InputSpec(16),
                       classes=[str(i) for i in range(10)])
    pre = preprocess(fp32, tmp_path / "pre.onnx")
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((8, 3, 16, 16), dtype=np.float32) for _ in range(3)]
    reader = CalibrationReader(graph_input_name(pre), batches)
    # 7-bit weights where the CPU lacks VNNI, as `cnnlab quantize` chooses: full 8-bit U8S8 saturates there
    settings = PtqSettings(reduce_range=resolve_reduce_range("auto")[0])
    quantized = quantize_static_candidate(pre, tmp_path / f"{fmt}.onnx", FORMATS[fmt], settings, reader,
                                          tmp_path / "calibration.json")
    graph = onnx.load(str(quantized)).graph
    last = next(node for node in graph.node if graph.output[0].name in node.output)
    assert last.op_type in ("Gemm", "QGemm"), last.op_type  # no DequantizeLinear writes the logits
    images = rng.standard_normal((64, 3, 16, 16), dtype=np.float32)
    logits = _logits(quantized, images)
    # float: more distinct values than an 8-bit grid holds (a grid on 7-bit weights may still meet twice),
    # and no image's two top logits tied
    assert len(np.unique(logits)) > 256
    top2 = np.sort(logits, axis=1)[:, -2:]
    assert (top2[:, 1] > top2[:, 0]).all()
    reference = _logits(fp32, images)
    assert np.abs(logits - reference).max() < 0.1 * np.abs(reference).max()  # still the network's numbers
    assert float_outputs(quantized) == []  # nothing left to change


def test_an_output_of_another_pattern_is_left_as_it_is(tmp_path: Path) -> None:
    fp32 = export_onnx(create_model("lenet5", 4, 16).eval(), tmp_path / "fp32.onnx", spec=InputSpec(16),
                       classes=list("abcd"))
    before = fp32.read_bytes()
    assert float_outputs(fp32) == [] and fp32.read_bytes() == before  # a float graph: untouched
