"""Whether a file loads and runs on each deployment runtime (cnnlab/compress/quantization/portability.py): the
verdicts recorded, on tiny hand-built graphs (no export needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnnlab.compress.quantization.portability import LOADS, check_runtimes, unreadable
from helpers import HAS_OPENVINO


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


# --- probe 105: a runtime that runs the file but computes other classes is not "loads" --------------------------------

def images(count: int = 8, size: int = 4, seed: int = 1) -> np.ndarray:
    """`count` float32 [3, size, size] images, varied enough that the graphs below rank their classes differently."""
    return (np.random.default_rng(seed).standard_normal((count, 3, size, size)) * 3).astype(np.float32)


def classifier_onnx(path: Path, classes: int = 5) -> Path:
    """images [batch, 3, 4, 4] → global average pool → a random linear layer → logits [batch, classes]."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "classifier",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
                              [numpy_helper.from_array(rng.standard_normal((classes, 3)).astype(np.float32), "w"),
                               numpy_helper.from_array(np.zeros(classes, np.float32), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


class WrongAtBatchOne:
    """A stand-in for a runtime whose kernels go wrong at batch 1 only (probe 105's OpenVINO): onnxruntime's session,
    with the classes of a one-image batch rotated by one."""

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        self.session = session

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.session, name)

    def run(self, names, feed):  # type: ignore[no-untyped-def]
        outputs = self.session.run(names, feed)
        return [np.roll(o, 1, axis=-1) if len(o) == 1 else o for o in outputs]


@pytest.fixture
def openvino_wrong_at_batch_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnx_session(runtime="openvino") gives onnxruntime's session — WrongAtBatchOne for a file named wrong*: needs
    no OpenVINO."""
    import cnnlab.deploy.ort as ort_module

    real = ort_module.onnx_session

    def session(path, *, runtime="onnxruntime", precision="f32", **options):  # type: ignore[no-untyped-def]
        if runtime != "openvino":
            return real(path, runtime=runtime, precision=precision, **options)
        opened = real(path, **options)
        return WrongAtBatchOne(opened) if Path(path).name.startswith("wrong") else opened

    monkeypatch.setattr(ort_module, "onnx_session", session)


def test_a_runtime_that_gets_batch_1_wrong_is_not_listed_as_loading_the_file(
        tmp_path: Path, openvino_wrong_at_batch_one: None) -> None:
    """Probe 105: "loads_on: openvino" for a file OpenVINO ran once on zeros, and computed at chance level for one
    image at a time. Now the verdict compares top-1 classes on real images, at the scored batch and at batch 1."""
    from cnnlab.compress.quantization.portability import cannot_run, failure

    assert check_runtimes(classifier_onnx(tmp_path / "right.onnx"), ["onnxruntime", "openvino"], images(8)) == {
        "onnxruntime": LOADS, "openvino": LOADS}
    verdicts = check_runtimes(classifier_onnx(tmp_path / "wrong.onnx"), ["onnxruntime", "openvino"], images(8))
    assert verdicts["onnxruntime"] == LOADS
    assert verdicts["openvino"] == ("outputs at batch 1 disagree with onnxruntime's at batch 8: the top-1 class (or "
                                    "a near-tie of it) for 1 of 8 validation images (5 needed)")
    assert unreadable(verdicts) == ["openvino"] and not cannot_run(verdicts["openvino"])
    assert failure("openvino", verdicts["openvino"]).startswith("openvino: outputs at batch 1 disagree")
    assert failure("openvino", "no conversion for QLinearConv") == \
        "openvino cannot run it: no conversion for QLinearConv"


def test_agreement_asks_for_more_than_halfway_from_chance_to_every_image() -> None:
    from cnnlab.deploy.agreement import agreement

    reference = np.eye(10, dtype=np.float32)[np.arange(32) % 10]    # 32 images, 10 classes
    assert agreement(reference, reference) == (32, 18)              # ceil(32 × (1 + 1/10) / 2)
    shifted = np.roll(reference, 1, axis=-1)
    assert agreement(shifted, reference) == (0, 18)
    two_classes = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    assert agreement(two_classes, two_classes)[1] == 6             # chance is a half: three quarters needed
    # probe 108: a one-image predict refused for scores 0.0671 and 0.0672 — a near-tie flipped agrees
    near = np.array([[0.0671, 0.0672, 0.001]], np.float32)
    assert agreement(near[:, [1, 0, 2]], near) == (1, 1) and agreement(near[:, [2, 0, 1]], near) == (0, 1)
    # probe 109: two classes (their gap the only spread), and a class scored far below widening the tolerance
    pair = np.array([[0.10001, 0.1]], np.float32)
    assert agreement(pair[:, ::-1], pair) == (1, 1)
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((100, 10)).astype(np.float32)
    scores[:, 9] = -40.0  # a class the model never predicts
    unrelated = rng.standard_normal((100, 10)).astype(np.float32)
    same, needed = agreement(unrelated, scores)
    assert same < needed
    # probe 110: unrelated outputs agreed as 1000-class probabilities near chance, logits offset by 1000, or rows
    # half -inf (a Log of underflowed probabilities)
    logits, other = rng.standard_normal((64, 1000)), rng.standard_normal((64, 1000))
    softmax = np.exp(logits * 0.01) / np.exp(logits * 0.01).sum(axis=-1, keepdims=True)
    for reference in (softmax, logits + 1000, np.where(np.arange(1000) < 600, -np.inf, logits)):
        same, needed = agreement(other, reference)
        assert same < needed, (same, needed)
    assert agreement(softmax, softmax) == (64, needed)


def test_the_search_neither_scores_nor_chooses_a_file_a_deployment_runtime_computes_wrongly(
        tmp_path: Path, openvino_wrong_at_batch_one: None) -> None:
    from cnnlab.compress.quantization import FORMATS, CandidateResult, search_formats

    fp32 = classifier_onnx(tmp_path / "fp32.onnx")
    wrong = CandidateResult(FORMATS["nncf_qdq"], classifier_onnx(tmp_path / "wrong_nncf_qdq.onnx"))
    right = CandidateResult(FORMATS["qdq_u8s8"], classifier_onnx(tmp_path / "qdq_u8s8.onnx"))
    result = search_formats(fp32, [wrong, right], val_batches(), timing=quick_timing(), max_acc_drop=100.0,
                            deploy_runtimes=["openvino"], keep_fp32_if_slower=False)
    checked = result.candidates[0]
    assert checked.error is not None and checked.accuracy is None and not checked.usable   # neither scored nor timed
    assert checked.loads_on == {"onnxruntime": LOADS, "openvino": checked.loads_on["openvino"]}
    assert "openvino: outputs at batch 1 disagree with onnxruntime's at batch 8" in checked.error
    assert result.selection.chosen == "qdq_u8s8" and result.chosen.loads_on == {"onnxruntime": LOADS,
                                                                                "openvino": LOADS}
    described = result.describe()
    assert described["eval_batch_size"] == 8   # the batch every accuracy was scored at
    assert described["candidates"][0]["loads_on"]["openvino"].startswith("outputs at batch 1 disagree")
    assert "failed: openvino: outputs at batch 1 disagree" in table_text(result)


def val_batches(count: int = 16, batch: int = 8) -> list:  # type: ignore[type-arg]
    """(images, labels) batches of torch tensors, as a validation loader yields them."""
    import torch

    data = torch.from_numpy(images(count))
    labels = torch.arange(count) % 5
    return [(data[i:i + batch], labels[i:i + batch]) for i in range(0, count, batch)]


def quick_timing(runtime: str = "onnxruntime"):  # type: ignore[no-untyped-def]
    from cnnlab.deploy.bench import TimingPlan
    from cnnlab.deploy.paired import PairedSettings

    return PairedSettings(batch_sizes=(1,), threads=1, rounds=1, plan=TimingPlan(0, 1, 0.0), runtime=runtime)


def table_text(result) -> str:  # type: ignore[no-untyped-def]
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(result.table("ptq"))
    return console.export_text()


def per_channel_after_1x1_onnx(path: Path, *, quantized: bool = True, channels: int = 8) -> Path:
    """The pattern of NNCF's MobileNetV2 file that OpenVINO 2026.4 computes wrongly at batch 1 with a dynamic batch
    axis (probe 105, bisected): a QDQ 1x1 convolution on a 1x1 map, ReLU6, a per-channel activation QuantizeLinear
    (NNCF's before a depthwise convolution), a depthwise 3x3 convolution. images [batch, 3, 4, 4] → logits
    [batch, channels]; `quantized=False`: the same arithmetic in float (the FP32 model)."""
    rng = np.random.default_rng(0)
    w1 = rng.integers(-127, 127, (channels, 3, 1, 1)).astype(np.int8)
    w1_scale = rng.uniform(0.005, 0.02, channels).astype(np.float32)
    w2 = rng.integers(-127, 127, (channels, 1, 3, 3)).astype(np.int8)
    w2_scale = np.full(channels, 0.01, np.float32)
    arrays = {"b1": rng.standard_normal(channels).astype(np.float32), "b2": np.zeros(channels, np.float32),
              "lo": np.float32(0), "hi": np.float32(6)}
    if quantized:
        arrays.update(xs=np.float32(0.05), xz=np.uint8(128), w1q=w1, w1s=w1_scale, w1z=np.zeros(channels, np.int8),
                      w2q=w2, w2s=w2_scale, w2z=np.zeros(channels, np.int8),
                      a_s=rng.uniform(0.01, 0.06, channels).astype(np.float32), a_z=np.zeros(channels, np.uint8))
        nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["w1q", "w1s", "w1z"], ["w1"], axis=0),
                 helper.make_node("Conv", ["xd", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
                 helper.make_node("Clip", ["c1", "lo", "hi"], ["c"]),
                 helper.make_node("QuantizeLinear", ["c", "a_s", "a_z"], ["q"], axis=1),
                 helper.make_node("DequantizeLinear", ["q", "a_s", "a_z"], ["dq"], axis=1),
                 helper.make_node("DequantizeLinear", ["w2q", "w2s", "w2z"], ["w2"], axis=0)]
    else:
        arrays.update(w1=w1 * w1_scale[:, None, None, None], w2=w2 * w2_scale[:, None, None, None])
        nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[1, 1]),
                 helper.make_node("Clip", ["c1", "lo", "hi"], ["dq"])]
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["x"]), *nodes,
             helper.make_node("Conv", ["dq", "w2", "b2"], ["y"], group=channels, pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3]),
             helper.make_node("Flatten", ["y"], ["logits"])]
    graph = helper.make_graph(nodes, "per_channel_after_1x1",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", channels])],
                              [numpy_helper.from_array(np.asarray(a, dtype=a.dtype), n) for n, a in arrays.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)
    return path


@pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "cnnlab[openvino]"')
def test_openvinos_own_batch_1_error_keeps_the_file_from_being_scored_or_chosen(tmp_path: Path) -> None:
    """Probe 105, reproduced on the real runtime: the file's classes on OpenVINO for one image at a time are not
    onnxruntime's; at 8 they are. Quantize scored at the larger batch and recorded "loads_on: openvino"."""
    from cnnlab.compress.quantization import FORMATS, CandidateResult, search_formats
    from cnnlab.deploy.ort import onnx_session, run_images
    from cnnlab.errors import CnnlabError

    path = per_channel_after_1x1_onnx(tmp_path / "nncf_qdq.onnx")
    session = onnx_session(path, runtime="openvino")
    batch = images(8)
    one_at_a_time = np.concatenate([run_images(session, image[None]) for image in batch])
    if np.array_equal(one_at_a_time.argmax(-1), run_images(session, batch).argmax(-1)):
        pytest.skip("this OpenVINO computes the pattern right at batch 1 (its bug is fixed)")

    fp32 = per_channel_after_1x1_onnx(tmp_path / "fp32.onnx", quantized=False)
    nncf = CandidateResult(FORMATS["nncf_qdq"], path)
    sound = CandidateResult(FORMATS["qdq_u8s8"], fp32)   # a file OpenVINO computes right (nothing quantized)
    result = search_formats(fp32, [nncf, sound], val_batches(), timing=quick_timing("openvino"), max_acc_drop=100.0,
                            deploy_runtimes=["onnxruntime"], keep_fp32_if_slower=False)
    assert not result.candidates[0].usable and result.candidates[0].accuracy is None
    assert "openvino: outputs at batch 1 disagree" in str(result.candidates[0].error)
    assert result.selection.chosen == "qdq_u8s8"
    verdicts = check_runtimes(path, ["openvino", "onnxruntime"], batch)
    assert verdicts["onnxruntime"] == LOADS and verdicts["openvino"].startswith(
        "outputs at batch 1 disagree with onnxruntime's at batch 8: the top-1 class (or a near-tie of it) for ")
    with pytest.raises(CnnlabError) as named:   # asked for by name: refused, with what to change
        search_formats(fp32, [nncf], val_batches(), timing=quick_timing("openvino"), max_acc_drop=100.0,
                       no_search="quantize.format=nncf_qdq", deploy_runtimes=["onnxruntime"])
    assert named.value.message.startswith("nncf_qdq: openvino: outputs at batch 1 disagree")
    assert named.value.fix == "use another quantize.runtime, or choose another quantize.format"


def wide_pool_onnx(path: Path) -> Path:
    """A 3x3 max-pool (ceil mode) over a 2x2 map: onnxruntime runs it, OpenVINO 2026 does not convert it — GoogLeNet's
    export at 16 px (probe 181), in one node."""
    node = helper.make_node("MaxPool", ["images"], ["pooled"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    flat = helper.make_node("Flatten", ["pooled"], ["logits"])
    graph = helper.make_graph([node, flat], "wide_pool",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 2, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)
    return path


@pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "cnnlab[openvino]"')
def test_a_runtime_that_cannot_run_the_fp32_model_is_left_out_or_refused_before_any_candidate(tmp_path: Path) -> None:
    # Probe 181: every candidate was refused on OpenVINO (the network itself does not convert there), exit 2, and the
    # fix offered (quantize.mode=dynamic) failed the same way; bench's fix said to re-export a fresh export.
    from cnnlab.compress.quantization.search import deployable_runtimes
    from cnnlab.deploy.ort import onnx_session
    from cnnlab.errors import CnnlabError

    path = wide_pool_onnx(tmp_path / "fp32.onnx")
    probe = np.random.default_rng(0).standard_normal((4, 3, 2, 2), dtype=np.float32)
    if check_runtimes(path, ["openvino"], probe)["openvino"] == LOADS:
        pytest.skip("this OpenVINO converts a pooling window wider than its map")
    kept, warning = deployable_runtimes(path, "onnxruntime", ["onnxruntime", "openvino"], probe, threads=1,
                                        named=False)
    assert kept == ("onnxruntime",) and warning is not None
    assert warning.startswith("the FP32 model itself does not run on openvino (openvino cannot run it: ")
    with pytest.raises(CnnlabError) as named:   # named by hand: refused, with the setting that works
        deployable_runtimes(path, "onnxruntime", ["onnxruntime", "openvino"], probe, threads=1, named=True)
    assert named.value.fix == "deploy it on onnxruntime: quantize.runtime=onnxruntime " \
                              "quantize.deploy_runtimes=[onnxruntime]"
    with pytest.raises(CnnlabError) as loading:
        onnx_session(path, runtime="openvino")
    assert (loading.value.fix or "").startswith("onnxruntime runs this file, so it is sound")
