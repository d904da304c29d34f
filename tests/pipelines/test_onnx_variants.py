"""`cnnlab predict` and `cnnlab quantize` on ONNX files other tools made from a cnnlab export (tests/onnx_variants.py):
a Softmax before `logits`, and an FP16 conversion (float16 input and output), metadata kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import run_dirs
from onnx_variants import to_float16, with_softmax


def test_predict_shows_the_models_probabilities_for_softmax_and_fp16_files(cli, outputs: Path, tiny_export: Path,
                                                                          tmp_path: Path) -> None:
    """The Softmax file printed 47.1 % where its source printed 98.8 % (a softmax of probabilities); the FP16 file
    ended in a traceback "expected (tensor(float16)) — this is a bug in cnnlab"."""
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(pictures / f"{i}.png")
    def predict(source: Path) -> tuple[dict[str, list[dict]], dict]:
        result = cli("predict", f"source={source}", f"predict.inputs=['{pictures}']", "predict.topk=4")
        assert result.code == 0 and "Traceback" not in result.output, result.output
        run_dir = sorted(run_dirs(outputs, "predict"), key=lambda d: d.stat().st_mtime)[-1]
        data = json.loads((run_dir / "predictions.json").read_text())
        return {Path(p["file"]).name: p["top"] for p in data["predictions"]}, data["model"]

    plain, plain_model = predict(tiny_export)
    softmax, softmax_model = predict(with_softmax(tiny_export, tmp_path / "softmax.onnx"))
    for name, top in plain.items():
        assert [t["class"] for t in softmax[name]] == [t["class"] for t in top]
        assert [t["probability"] for t in softmax[name]] == pytest.approx([t["probability"] for t in top], abs=1e-5)
    assert softmax_model["outputs"] == "probabilities" and plain_model["outputs"] == "logits"

    half, half_model = predict(to_float16(tiny_export, tmp_path / "fp16.onnx"))
    for name, top in plain.items():
        assert half[name][0]["class"] == top[0]["class"] or top[0]["probability"] - top[1]["probability"] < 0.01
        assert [t["probability"] for t in half[name]] == pytest.approx([t["probability"] for t in top], abs=0.01)
    assert half_model["precision"] == "fp16" and half_model["outputs"] == "logits"

def test_quantize_of_an_fp16_file_says_int8_starts_from_fp32(cli, outputs: Path, tiny_export: Path,
                                                            tmp_path: Path) -> None:
    """quantize of an FP16 file failed in onnxruntime's quantizer with "try another quantize.format"."""
    half = to_float16(tiny_export, tmp_path / "fp16.onnx")
    result = cli("quantize", f"source={half}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "is an FP16 file: INT8 quantization starts from an FP32 ONNX" in said, result.output
    assert "cnnlab export source=RUN" in said and "model.pt" in said
    assert "another quantize.format" not in said and "Traceback" not in result.output
