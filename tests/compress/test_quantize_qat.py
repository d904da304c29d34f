"""Quantization-aware training: fake quantization where onnxruntime quantizes, ranges observed on training
batches only, and a QDQ export with INT8 weights that onnxruntime fuses into integer kernels."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cnnlab.compress.quantization import FORMATS, quantized_ops
from cnnlab.compress.quantization.qat import TrainingFakeQuantize, export_qat_onnx, prepare_qat
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError

SIZE = 16


class Block(nn.Module):
    """Conv-BN-ReLU6, a depthwise Conv-BN-ReLU with a residual addition (MobileNet's and ResNet's patterns)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8))
        self.relu = nn.ReLU()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.relu(self.depthwise(x) + x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def trained_qat_model(fmt: str = "qdq_u8s8", **kwargs) -> nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = Block().eval()
    qat = prepare_qat(model, torch.zeros(2, 3, SIZE, SIZE), FORMATS[fmt], **kwargs)
    optimizer = torch.optim.SGD(qat.parameters(), lr=0.01)
    qat.train()
    for _ in range(3):
        loss = nn.functional.cross_entropy(qat(torch.randn(8, 3, SIZE, SIZE)), torch.randint(0, 4, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return qat.eval()


def test_batch_norms_are_folded_and_relu6_is_fused_into_the_quantized_conv() -> None:
    qat = trained_qat_model()
    modules = list(qat.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, TrainingFakeQuantize) for m in modules)
    graph = {node.name: node for node in qat.graph.nodes}
    relu6 = next(n for n in graph.values() if n.op == "call_module" and isinstance(qat.get_submodule(n.target), nn.ReLU6))
    (producer,) = relu6.all_input_nodes
    assert isinstance(qat.get_submodule(producer.target), nn.Conv2d)  # no fake-quantizer between conv and ReLU6


def test_activation_ranges_move_on_training_batches_only() -> None:
    qat = trained_qat_model()
    quantizers = [m for m in qat.modules() if isinstance(m, TrainingFakeQuantize)]
    before = [q.scale.clone() for q in quantizers]
    with torch.no_grad():
        qat.eval()(10 * torch.randn(4, 3, SIZE, SIZE))  # an evaluation pass on very different data
    assert all(torch.equal(b, q.scale) for b, q in zip(before, quantizers))
    qat.train()(10 * torch.randn(4, 3, SIZE, SIZE))
    assert any(not torch.equal(b, q.scale) for b, q in zip(before, quantizers))


def test_the_export_is_qdq_with_int8_weights_that_onnxruntime_fuses(tmp_path: Path) -> None:
    qat = trained_qat_model()
    path = export_qat_onnx(qat, tmp_path / "qat.onnx", spec=InputSpec(SIZE), classes=list("abcd"))
    proto = onnx.load(str(path))
    ops = quantized_ops(path)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]  # weights: DQ only
    kernels = [t.data_type for t in proto.graph.initializer if len(t.dims) == 4]
    assert kernels and all(k == onnx.TensorProto.INT8 for k in kernels)  # stored as INT8, not float + Q

    images = torch.randn(5, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = qat(images).numpy()
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    actual = session.run(None, {"input": images.numpy()})[0]
    assert actual.shape == (5, 4)
    assert np.abs(actual - expected).max() <= 0.05 * np.abs(expected).max() + 1e-3  # integer kernels vs simulation
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert fused["QLinearConv"] == 2 and fused["Clip"] == 0 and fused["Conv"] == 0


def test_s8_activations_and_per_tensor_weights_export_too(tmp_path: Path) -> None:
    qat = trained_qat_model("qdq_s8s8", per_channel=False, reduce_range=True)
    path = export_qat_onnx(qat, tmp_path / "s8.onnx", spec=InputSpec(SIZE), classes=list("abcd"))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((1, 3, SIZE, SIZE), np.float32)})[0].shape == (1, 4)
    graph = onnx.load(str(path)).graph
    int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 0}
    # probe 144: the S8 file held weights only (DequantizeLinear on constants) — the activations stayed float
    quantized = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[2] in int8]
    u8 = export_qat_onnx(trained_qat_model("qdq_u8s8", per_channel=False, reduce_range=True), tmp_path / "u8.onnx",
                         spec=InputSpec(SIZE), classes=list("abcd"))
    assert len(quantized) == sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(u8)).graph.node) > 0


def test_excluded_modules_stay_float_and_bad_requests_are_refused() -> None:
    qat = trained_qat_model(exclude=("head",))
    assert not hasattr(qat.get_submodule("head"), "weight_fake_quant")
    assert hasattr(qat.get_submodule("stem.0"), "weight_fake_quant")
    with pytest.raises(CnnlabError, match="no module nope"):
        prepare_qat(Block(), torch.zeros(2, 3, SIZE, SIZE), FORMATS["qdq_u8s8"], exclude=("nope",))
    with pytest.raises(CnnlabError, match="exports QDQ with S8 weights, not qop_u8s8"):
        prepare_qat(Block(), torch.zeros(2, 3, SIZE, SIZE), FORMATS["qop_u8s8"])

    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(CnnlabError, match="needs a model torch.fx can trace"):
        prepare_qat(DataDependent(), torch.zeros(2, 3, SIZE, SIZE), FORMATS["qdq_u8s8"])


class SiluBlock(nn.Module):
    """EfficientNet's activations: an nn.SiLU module and a functional SiLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.pointwise = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.silu(self.pointwise(self.conv(x)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_silu_is_quantized_like_onnxruntimes_ptq_does_it(tmp_path: Path) -> None:
    """Left as FX leaves it, SiLU ran as float Sigmoid and Mul between dequantize/quantize pairs (EfficientNet's
    QAT file was 1.3x slower than its PTQ one); written out as x * sigmoid(x) both become integer kernels."""
    torch.manual_seed(0)
    model = SiluBlock().eval()
    images = torch.randn(6, 3, SIZE, SIZE)
    qat = prepare_qat(model, images, FORMATS["qdq_u8s8"])
    assert not any(isinstance(m, nn.SiLU) for m in qat.modules())
    qat.train()
    qat(images)  # observe activation ranges
    qat.eval()
    path = export_qat_onnx(qat, tmp_path / "silu.onnx", spec=InputSpec(SIZE), classes=list("abcd"))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected, float_logits = qat(images).numpy(), model(images).numpy()
    actual = session.run(None, {"input": images.numpy()})[0]
    assert np.abs(actual - expected).max() <= 0.05 * np.abs(expected).max() + 1e-3
    assert np.abs(expected - float_logits).max() <= 0.1 * np.abs(float_logits).max() + 1e-3  # still the same network
    fused = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert fused["QLinearSigmoid"] == 2 and fused["QLinearMul"] == 2
    assert fused["Sigmoid"] == 0 and fused["Mul"] == 0


def test_fake_quantization_off_gives_the_trained_weights_in_float_and_is_restored() -> None:
    """Probe 105: a QAT run's INT8 file read +4.90 points over the source — nearly all of it training. The trained
    weights' float accuracy (fake quantization off) is the reference that tells the two apart."""
    import copy

    from torch.ao.quantization import FakeQuantizeBase

    from cnnlab.compress.quantization.qat import fake_quantization_off

    qat = trained_qat_model()
    images = torch.randn(4, 3, SIZE, SIZE)

    def without_quantizers(parent: nn.Module) -> nn.Module:
        for name, child in list(parent._modules.items()):
            if isinstance(child, FakeQuantizeBase):
                setattr(parent, name, nn.Identity())
            elif child is not None:
                without_quantizers(child)
        return parent

    with torch.no_grad():
        quantized = qat(images)
        floating = without_quantizers(copy.deepcopy(qat))(images)
        with fake_quantization_off(qat):
            off = qat(images)
        assert torch.allclose(off, floating, atol=1e-6) and not torch.allclose(off, quantized, atol=1e-4)
        assert torch.equal(qat(images), quantized)   # every flag restored


def test_the_logits_trained_and_scored_are_float_as_the_exported_files_are(tmp_path: Path) -> None:
    """export_qat_onnx ships float logits; the fake-quantized model kept a quantizer on them, so the top-1 it was
    scored by each epoch was not the file's (probe 115: 28.89 % against 10.00 %, 8-bit logits tying at its
    ceiling). Now no fake-quantizer sits on the graph output, and the model's logits are the file's."""
    from cnnlab.compress.quantization.qat import float_graph_outputs

    qat = trained_qat_model()
    output = next(node for node in qat.graph.nodes if node.op == "output")
    [logits] = output.all_input_nodes
    assert not (logits.op == "call_module" and "post_process" in str(logits.target))
    assert float_graph_outputs(qat) == 0  # nothing left to take off
    path = export_qat_onnx(qat, tmp_path / "qat.onnx", spec=InputSpec(SIZE), classes=list("abcd"))
    images = torch.randn(64, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = qat(images).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"input": images.numpy()})[0]
    assert len(np.unique(expected)) > 0.9 * expected.size  # not rounded to 8-bit levels
    assert (actual.argmax(1) == expected.argmax(1)).mean() >= 0.95
