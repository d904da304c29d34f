"""Scoring and predicting through a loaded model file: static-batch files and broken weights."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import onnx
import pytest
import torch

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.infer import model_device, open_model
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model

SPEC = InputSpec(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _export(tmp_path: Path, *, nan: bool = False) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = create_model("lenet5", 4, 16).eval()
    if nan:
        with torch.no_grad():
            model.classifier[-1].weight.fill_(float("nan"))
    return model, export_onnx(model, tmp_path / "model.onnx", spec=SPEC, classes=list("abcd"))


def test_a_static_batch_file_scores_any_number_of_images(tmp_path: Path) -> None:
    model, path = _export(tmp_path)
    proto = onnx.load(str(path))
    for value in (*proto.graph.input, *proto.graph.output):  # as `onnxsim --overwrite-input-shape 1,3,16,16` leaves it
        value.type.tensor_type.shape.dim[0].dim_value = 1
    static = tmp_path / "static.onnx"
    onnx.save(proto, str(static))
    images = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        expected = model(images)
    runtimes = ("onnxruntime", "openvino") if importlib.util.find_spec("openvino") else ("onnxruntime",)
    for runtime, file in itertools.product(runtimes, (path, static)):  # a dynamic batch, and chunks of one
        loaded = open_model("onnx", file, runtime=runtime)
        logits = loaded.logits(images)
        assert loaded.runtime == runtime and logits.shape == (5, 4) and torch.allclose(logits, expected, atol=1e-4)


def test_nan_outputs_are_refused_not_scored(tmp_path: Path) -> None:
    _, path = _export(tmp_path, nan=True)
    loaded = open_model("onnx", path, runtime="onnxruntime")
    with pytest.raises(CnnlabError, match="NaN or infinite outputs"):
        loaded.logits(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "tpu"])
@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_an_unknown_device_is_one_line_before_any_file_opens(kind: str, device: str) -> None:
    """evaluate/predict checked `device=` only when the model moved there: `device=gpu` with a model.pt was a
    traceback (torch's RuntimeError)."""
    with pytest.raises(CnnlabError, match="unknown device") as err:
        model_device(device, kind, "auto")
    assert err.value.fix and "device=" in err.value.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("kind", ["checkpoint", "onnx"])
def test_cuda_without_a_gpu_names_device_cpu(kind: str) -> None:
    with pytest.raises(CnnlabError) as err:
        model_device("cuda", kind, "auto")
    assert "device=cpu" in err.value.fix and "bench.backends" not in err.value.fix


@pytest.mark.parametrize("kind, expected", [("checkpoint", "cuda" if torch.cuda.is_available() else "cpu"),
                                            ("onnx", "cpu")])
def test_auto_and_cpu_devices(kind: str, expected: str) -> None:
    assert model_device("auto", kind, "auto") == expected
    assert model_device("CPU", kind, "auto") == "cpu"
