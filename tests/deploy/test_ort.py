"""onnxruntime sessions, which runtimes run where, and the accuracy of an ONNX file (OpenVINO's sessions:
test_openvino_runtime.py)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.deploy.ort import (CPU, CUDA, TENSORRT, evaluate_onnx, example_feed, execution_providers, onnx_session,
                              parse_device, require_runtime)
from cnnlab.errors import CnnlabError, ModelLoadError
from helpers import HAS_OPENVINO

HAS_ORT_CUDA = CUDA in ort.get_available_providers()


@pytest.fixture
def lenet_onnx(lenet_onnx_once) -> tuple[torch.nn.Module, Path]:
    """A lively LeNet-5 (16 px, classes "abcd") and its export, made once for this module: no test changes either."""
    return lenet_onnx_once


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


def test_a_session_without_threads_takes_the_jobs_count(lenet_onnx, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sweep jobs side by side each ran evaluate's and the export check's sessions on every core, and a user's
    OMP_NUM_THREADS=1 limited torch but not onnxruntime: a session without `threads` takes the job's count
    (environment.job_threads), as torch does."""
    from cnnlab import environment

    for name in (environment.THREADS_ENV, environment.PARALLEL_JOBS_ENV, "OMP_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert onnx_session(lenet_onnx[1]).get_session_options().intra_op_num_threads == 0  # onnxruntime's default
    monkeypatch.setenv(environment.THREADS_ENV, "3")
    assert onnx_session(lenet_onnx[1]).get_session_options().intra_op_num_threads == 3
    assert onnx_session(lenet_onnx[1], threads=2).get_session_options().intra_op_num_threads == 2  # asked: kept
    monkeypatch.delenv(environment.THREADS_ENV)
    monkeypatch.setenv(environment.PARALLEL_JOBS_ENV, "2")
    share = environment.core_share()
    assert onnx_session(lenet_onnx[1]).get_session_options().intra_op_num_threads == share
    if HAS_OPENVINO:
        assert onnx_session(lenet_onnx[1], runtime="openvino").inference_threads == share


def fake_session(shape: list) -> SimpleNamespace:  # type: ignore[type-arg]
    """What example_feed reads of a session: its inputs' names and shapes, and its outputs."""
    return SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="images", shape=shape)],
                           get_outputs=lambda: [SimpleNamespace(name="logits", shape=[None, 4])])


@pytest.mark.parametrize("batch_axis", ["batch", None, 2])  # onnxruntime's dim name, OpenVINO's None, a fixed size
def test_example_feed_is_float32_at_the_batch_size_asked_for_with_the_files_image_dims(batch_axis) -> None:
    feed = example_feed(fake_session([batch_axis, 3, 16, 12]), 5)
    assert list(feed) == ["images"]
    images = feed["images"]
    assert images.shape == (5, 3, 16, 12) and images.dtype == np.float32 and not images.any()
    drawn = example_feed(fake_session([batch_axis, 3, 16, 12]), 2, seed=0)["images"]
    assert drawn.shape == (2, 3, 16, 12) and drawn.dtype == np.float32 and drawn.std() > 0.5
    np.testing.assert_array_equal(drawn, example_feed(fake_session([None, 3, 16, 12]), 2, seed=0)["images"])


@pytest.mark.parametrize("image_dims", [["height", 16, 16], [3, None, 16], [3, 0, 16]])
def test_example_feed_refuses_image_dims_that_are_not_fixed(image_dims) -> None:
    with pytest.raises(CnnlabError, match=r"^error: symbolic image shape \["):
        example_feed(fake_session([1, *image_dims]), 1)


def test_example_feed_runs_a_real_export(lenet_onnx) -> None:
    session = onnx_session(lenet_onnx[1], threads=1)
    assert session.run(None, example_feed(session, 3))[0].shape == (3, 4)


def test_a_file_onnxruntime_cannot_read_is_a_model_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError, match=f"^error: onnxruntime cannot load {re.escape(str(bad))}: "):
        onnx_session(bad)
    with pytest.raises(CnnlabError, match="does not exist") as missing:
        onnx_session(tmp_path / "missing.onnx")
    assert not isinstance(missing.value, ModelLoadError)  # a missing file is not one the runtime failed to read


def test_a_sound_file_that_memory_cannot_hold_is_not_told_to_be_exported_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 134: under `ulimit -v`, onnxruntime's load of a sound file failed with std::bad_alloc, and the fix said
    "point to a valid .onnx file (re-export it)", which changes nothing."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"sound, as far as this test goes")

    def no_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Exception during initialization: "
                           "std::bad_alloc")

    monkeypatch.setattr(ort, "InferenceSession", no_memory)
    with pytest.raises(ModelLoadError) as caught:
        onnx_session(path)
    assert "std::bad_alloc" in caught.value.message and "free memory" in caught.value.fix
    assert "re-export" not in caught.value.one_line()


def test_device_strings() -> None:
    assert parse_device("cpu") == ("cpu", 0) and parse_device("cuda:1") == ("cuda", 1)
    with pytest.raises(CnnlabError, match="unknown device"):
        parse_device("tpu")
    with pytest.raises(CnnlabError, match="runs on CUDA only"):
        execution_providers("cpu", runtime="tensorrt")
    with pytest.raises(CnnlabError, match="openvino runs on the CPU only"):
        execution_providers("cuda", runtime="openvino")
    with pytest.raises(CnnlabError, match="unknown ONNX runtime 'tvm'"):
        execution_providers("cpu", runtime="tvm")


@pytest.mark.skipif(HAS_ORT_CUDA, reason="this onnxruntime has the CUDA provider")
def test_cuda_without_the_cuda_provider_names_the_fix(lenet_onnx, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a GPU, the missing provider and onnxruntime-gpu; without one (probe 155: "install onnxruntime-gpu" on a
    machine with no GPU at all), that there is none, and device=cpu."""
    from cnnlab.deploy import ort as ort_module

    monkeypatch.setattr(ort_module, "gpu_visible", lambda: True)
    with pytest.raises(CnnlabError) as caught:
        onnx_session(lenet_onnx[1], device="cuda")
    assert "CUDAExecutionProvider" in caught.value.message and "onnxruntime-gpu" in str(caught.value.fix)
    monkeypatch.setattr(ort_module, "gpu_visible", lambda: False)
    with pytest.raises(CnnlabError) as caught:
        onnx_session(lenet_onnx[1], device="cuda")
    assert "no CUDA GPU is visible" in caught.value.message and "onnxruntime-gpu" not in str(caught.value.fix)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and HAS_ORT_CUDA), reason="needs CUDA and onnxruntime-gpu")
def test_cuda_session_matches_the_cpu(lenet_onnx) -> None:
    _, path = lenet_onnx
    images = torch.randn(8, 3, 16, 16).numpy()
    gpu = onnx_session(path, device="cuda")
    assert gpu.get_providers()[0] == CUDA
    expected = onnx_session(path).run(None, {"input": images})[0]
    assert abs(gpu.run(None, {"input": images})[0] - expected).max() < 1e-3


def test_provider_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.deploy.ort as ort_module

    assert execution_providers("cpu") == [CPU]
    monkeypatch.setattr(ort_module, "available_providers", lambda: [TENSORRT, CUDA, CPU])
    assert execution_providers("cuda:1", runtime="tensorrt") == [
        (TENSORRT, {"device_id": 1}), (CUDA, {"device_id": 1}), CPU]
    require_runtime("tensorrt", "cuda")  # installed: no error


def test_openvino_is_no_onnxruntime_provider() -> None:
    """runtime=openvino is the openvino package (OpenVinoSession), whatever this onnxruntime build offers."""
    pytest.importorskip("openvino", reason='needs pip install "cnnlab[openvino]"')
    assert execution_providers("cpu", runtime="openvino") == []  # checked (installed, CPU), but no providers


# ------------------------------------------------------------------ deploy.onnx_check: graph vs metadata
def _identity_with_metadata_of(real: Path, target: Path, shape: list[int]) -> Path:
    """An Identity graph carrying `real`'s metadata: what `bench` used to time as the real model."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "fake",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *shape[1:]])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", *shape[1:]])])
    fake = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    fake.metadata_props.extend(onnx.load(str(real)).metadata_props)
    onnx.save(fake, str(target))
    return target


def test_onnx_check_accepts_a_real_export(lenet_onnx) -> None:
    from cnnlab.deploy.onnx_check import check_onnx_file

    _, path = lenet_onnx
    checked = check_onnx_file(path)
    assert checked.spec == InputSpec(16) and checked.classes == list("abcd")


@pytest.mark.parametrize("shape, problem", [
    ([1, 3, 16, 16], "not [N, classes]"),          # right input, but nothing computes logits
    ([1, 4], "not [N, C, H, W]"),                   # logits-shaped passthrough
    ([1, 1, 16, 16], "the metadata says [N, 3, 16, 16]"),
])
def test_onnx_check_refuses_a_graph_that_contradicts_its_metadata(lenet_onnx, tmp_path: Path, shape, problem) -> None:
    from cnnlab.deploy.onnx_check import check_onnx_file

    _, real = lenet_onnx
    fake = _identity_with_metadata_of(real, tmp_path / "fake.onnx", shape)
    with pytest.raises(CnnlabError, match="does not match its own metadata") as info:
        check_onnx_file(fake)
    assert problem in str(info.value) and "no convolution or matrix product" in str(info.value)
    # its metadata names no run (made elsewhere): "re-export it from its run" named a run it does not have (probe 187)
    assert "docs/export.md ('The file')" in (info.value.fix or "") and "from its run" not in (info.value.fix or "")


def test_onnx_check_refuses_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    from cnnlab.deploy.onnx_check import check_onnx_file

    text = tmp_path / "model.onnx"
    text.write_text("hello\n")
    with pytest.raises(CnnlabError, match="not a readable ONNX model"):
        check_onnx_file(text)
    with pytest.raises(CnnlabError, match="does not exist"):
        check_onnx_file(tmp_path / "missing.onnx")


def test_onnx_check_refuses_a_class_count_the_graph_does_not_have(lively_model, tmp_path: Path) -> None:
    import onnx

    from cnnlab.deploy.onnx_check import check_onnx_file

    path = export_onnx(lively_model("lenet5", 16), tmp_path / "m.onnx", spec=InputSpec(16), classes=list("abcd"))
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "classes":
            entry.value = '["a", "b", "c", "d", "e", "f", "g"]'
    onnx.save(proto, str(path))
    with pytest.raises(CnnlabError, match="its output 'logits' has 4 classes but the metadata names 7"):
        check_onnx_file(path)
