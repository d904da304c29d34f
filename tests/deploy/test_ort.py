"""onnxruntime sessions and the accuracy of an ONNX file."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.ort import CPU, CUDA, OPENVINO, evaluate_onnx, execution_providers, onnx_session, parse_device
from cnnlab.errors import CnnlabError
from helpers import HAS_OPENVINO

HAS_ORT_CUDA = CUDA in ort.get_available_providers()


@pytest.fixture
def lenet_onnx(tmp_path: Path, lively_model) -> tuple[torch.nn.Module, Path]:
    model = lively_model("lenet5", 16)
    return model, export_onnx(model, tmp_path / "m.onnx", spec=InputSpec(16), classes=list("abcd"))


def test_evaluate_onnx_measures_the_files_own_accuracy(lenet_onnx) -> None:
    model, path = lenet_onnx
    images = torch.randn(40, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(images)
    labels = logits.argmax(1)
    labels[:10] = (labels[:10] + 1) % 4  # 10 of 40 wrong on purpose
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    result = evaluate_onnx(path, loader)
    assert result["n"] == 40 and result["acc"] == pytest.approx(0.75)
    assert result["loss"] == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-4)
    assert result["top5"] == 1.0  # 4 classes: the top five hold every label
    assert evaluate_onnx(onnx_session(path, threads=1), loader)["acc"] == pytest.approx(0.75)  # a session works too


def test_session_threads_must_be_positive(lenet_onnx) -> None:
    with pytest.raises(CnnlabError, match="threads=0"):
        onnx_session(lenet_onnx[1], threads=0)


def test_device_strings() -> None:
    assert parse_device("cpu") == ("cpu", 0) and parse_device("cuda:1") == ("cuda", 1)
    with pytest.raises(CnnlabError, match="unknown device"):
        parse_device("tpu")
    with pytest.raises(CnnlabError, match="runs on CUDA only"):
        execution_providers("cpu", runtime="tensorrt")
    with pytest.raises(CnnlabError, match="openvino runs on the CPU only"):
        execution_providers("cuda", runtime="openvino")
    with pytest.raises(CnnlabError, match="unknown onnxruntime runtime 'tvm'"):
        execution_providers("cpu", runtime="tvm")


@pytest.mark.skipif(HAS_ORT_CUDA, reason="this onnxruntime has the CUDA provider")
def test_cuda_without_the_cuda_provider_names_the_fix(lenet_onnx) -> None:
    with pytest.raises(CnnlabError) as caught:
        onnx_session(lenet_onnx[1], device="cuda")
    assert "CUDAExecutionProvider" in caught.value.message and "onnxruntime-gpu" in str(caught.value.fix)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_ORT_CUDA), reason="needs CUDA and onnxruntime-gpu")
def test_cuda_session_matches_the_cpu(lenet_onnx) -> None:
    _, path = lenet_onnx
    images = torch.randn(8, 3, 16, 16).numpy()
    gpu = onnx_session(path, device="cuda")
    assert gpu.get_providers()[0] == CUDA
    expected = onnx_session(path).run(None, {"input": images})[0]
    assert abs(gpu.run(None, {"input": images})[0] - expected).max() < 1e-3


def test_openvino_gets_the_thread_count_and_the_cpu_provider_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.deploy.ort as ort_module

    monkeypatch.setattr(ort_module, "available_providers", lambda: [OPENVINO, CPU])
    assert execution_providers("cpu", runtime="openvino", threads=2) == [
        (OPENVINO, {"device_type": "CPU", "num_of_threads": "2"}), CPU]
    assert execution_providers("cpu", runtime="openvino") == [(OPENVINO, {"device_type": "CPU"}), CPU]


@pytest.mark.skipif(HAS_OPENVINO, reason="this onnxruntime is the OpenVINO build")
def test_openvino_without_its_build_names_the_wheel_that_replaces_onnxruntime(lenet_onnx) -> None:
    with pytest.raises(CnnlabError) as caught:
        onnx_session(lenet_onnx[1], runtime="openvino")
    assert "has no OpenVINOExecutionProvider" in caught.value.message
    assert caught.value.fix == ("pip uninstall -y onnxruntime && pip install onnxruntime-openvino "
                                "(it replaces the plain wheel)")


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs onnxruntime-openvino in place of onnxruntime")
def test_an_openvino_session_computes_what_the_cpu_provider_does(lenet_onnx) -> None:
    _, path = lenet_onnx
    images = torch.randn(8, 3, 16, 16).numpy()
    session = onnx_session(path, threads=1, runtime="openvino")
    assert session.get_providers()[0] == OPENVINO
    expected = onnx_session(path).run(None, {"input": images})[0]
    assert abs(session.run(None, {"input": images})[0] - expected).max() < 1e-4  # FP32 stays FP32 on the CPU
