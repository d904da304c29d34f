"""Whether a file loads and runs on each deployment runtime (cnnlab/compress/quantization/portability.py): the
verdicts recorded, on tiny hand-built graphs (no export needed)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from cnnlab.compress.quantization.portability import LOADS, check_runtimes, unreadable


def relu_onnx(path: Path, shape: list) -> Path:  # type: ignore[type-arg]
    """A one-node float32 graph whose input and output have `shape` (ints, or names for dynamic axes)."""
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["logits"])], "relu",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_a_file_that_runs_on_a_batch_of_zeros_loads(tmp_path: Path) -> None:
    verdicts = check_runtimes(relu_onnx(tmp_path / "m.onnx", ["batch", 3, 4, 4]), ["onnxruntime"])
    assert verdicts == {"onnxruntime": LOADS} and unreadable(verdicts) == []


def test_a_symbolic_image_dim_or_an_unreadable_file_is_recorded_with_the_reason(tmp_path: Path) -> None:
    symbolic = check_runtimes(relu_onnx(tmp_path / "m.onnx", ["batch", 3, "height", 4]), ["onnxruntime"])
    assert symbolic == {"onnxruntime": "symbolic image shape [3, 'height', 4]"}
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all" * 10)
    verdict = check_runtimes(bad, ["onnxruntime"])["onnxruntime"]
    assert verdict.startswith(f"onnxruntime cannot load {bad}: ") and unreadable({"onnxruntime": verdict})
