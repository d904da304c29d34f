"""NNCF as a second INT8 engine (cnnlab/compress/quantization/nncf_engine.py): a QDQ ONNX file from the same FP32
file and calibration batches as onnxruntime's quantizer, exclusions, accuracy control, and the errors.

The model is a tiny CNN (conv-BN-ReLU, max-pool, conv-BN-ReLU, global mean, linear; 16 px, 4 classes) trained
for a few steps on a synthetic task (the class is the brighter colour), so its logits have margins and top-1
means something. `outlier` is the same network with one channel of the second conv scaled up 1000x and the
linear layer's matching column scaled down (the same function in FP32): per-tensor activation quantization then
flattens every other channel and INT8 top-1 collapses — the case accuracy control exists for.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from cnnlab.compress.quantization.nncf_engine import (INSTALL_FIX, AccuracyControl, NncfResult, nncf_available,
                                                      NNCF_RANGES, nncf_describe, quantize_with_nncf)
from cnnlab.compress.quantization.ptq import preprocess, quantized_ops
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.errors import CnnlabError

try:
    import nncf
except ImportError:  # the optional extra: only the tests that run NNCF need it
    nncf = None

needs_nncf = pytest.mark.skipif(nncf is None, reason='NNCF is not installed (pip install "cnnlab[openvino]")')

SIZE = 16
CLASSES = 4


class TinyCnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


# Per class, the brightness offset of each colour channel: the class is the brighter (or darker) colour.
OFFSETS = 0.5 * np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], np.float32)


def images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` noise images (float32 N x 3 x 16 x 16) offset by their class's OFFSETS, and the labels (int64 N)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, count)
    x = rng.standard_normal((count, 3, SIZE, SIZE), dtype=np.float32) + OFFSETS[labels][:, :, None, None]
    return x, labels.astype(np.int64)


def calibration(sizes: tuple[int, ...] = (8, 8, 8), seed: int = 100) -> list[np.ndarray]:
    return [images(size, seed + i)[0] for i, size in enumerate(sizes)]


def validation(batches: int = 4, size: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    return [images(size, 200 + i) for i in range(batches)]


def run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def top1(path: Path, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    correct = sum(int((run(path, x).argmax(1) == y).sum()) for x, y in batches)
    return 100.0 * correct / sum(len(y) for _, y in batches)


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def nodes(model: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    return [node for node in model.graph.node if node.op_type == op_type]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32: the trained tiny CNN exported by cnnlab; pre: its pre-processed form (what `cnnlab quantize` feeds
    the quantizers); outlier: fp32 with the function-preserving channel scaling described above."""
    folder = tmp_path_factory.mktemp("nncf")
    torch.manual_seed(0)
    model = TinyCnn()
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for step in range(20):
        x, y = images(32, step)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    fp32 = export_onnx(model.eval(), folder / "fp32.onnx", spec=InputSpec(SIZE), classes=list("abcd"))
    assert top1(fp32, validation()) >= 90.0  # trained: its top-1 means something

    proto = onnx.load(str(fp32))
    values = {init.name: init for init in proto.graph.initializer}
    conv2, gemm = nodes(proto, "Conv")[1], nodes(proto, "Gemm")[0]
    assert {a.name: a.i for a in gemm.attribute}.get("transB") == 1  # fc weight: classes x 16
    for name, scale in ((conv2.input[1], 1000.0), (conv2.input[2], 1000.0)):  # channel 0 of conv2 (BN folded in)
        array = numpy_helper.to_array(values[name]).copy()
        array[0] *= scale
        values[name].CopyFrom(numpy_helper.from_array(array, name))
    weight = numpy_helper.to_array(values[gemm.input[1]]).copy()
    weight[:, 0] /= 1000.0
    values[gemm.input[1]].CopyFrom(numpy_helper.from_array(weight, gemm.input[1]))
    outlier = folder / "outlier.onnx"
    onnx.save(proto, str(outlier))
    x = images(32, 7)[0]
    np.testing.assert_allclose(run(outlier, x), run(fp32, x), rtol=1e-3, atol=1e-3)  # the same function
    return {"fp32": fp32, "pre": preprocess(fp32, folder / "fp32_preprocessed.onnx"), "outlier": outlier}


@needs_nncf
def test_default_mode_writes_a_qdq_file_close_to_fp32(graphs: dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "int8" / "nncf.onnx"
    result = quantize_with_nncf(graphs["pre"], target, calibration())
    assert result == NncfResult(target, "default", "performance", nncf.__version__, 24, 3)
    assert capsys.readouterr().out == ""  # NNCF's progress bars and INFO lines stay off stdout
    assert sorted(p.name for p in target.parent.iterdir()) == ["nncf.onnx"]  # no temporary file left behind

    model = onnx.load(str(target))
    onnx.checker.check_model(model)
    made = producers(model)
    initializers = {init.name: init for init in model.graph.initializer}
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(quantized_ops(target))
    for node in nodes(model, "Conv") + nodes(model, "Gemm"):
        # The weight: an INT8 initializer (symmetric: zero point 0) behind a DequantizeLinear, per output channel.
        weight_dq = made[node.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        kernel = initializers[weight_dq.input[0]]
        assert kernel.data_type == onnx.TensorProto.INT8
        assert not numpy_helper.to_array(initializers[weight_dq.input[2]]).any()
        assert list(initializers[weight_dq.input[1]].dims) == [kernel.dims[0]]
        # The activation: dequantized, directly or through the quantize-agnostic MaxPool.
        source = made[node.input[0]]
        source = made[source.input[0]] if source.op_type == "MaxPool" else source
        assert source.op_type == "DequantizeLinear"
    assert not [i for i in initializers.values() if len(i.dims) == 4 and i.data_type == onnx.TensorProto.FLOAT]

    x, y = images(128, 9)
    expected, actual = run(graphs["fp32"], x), run(target, x)
    assert actual.shape == expected.shape == (128, CLASSES)
    assert (actual.argmax(1) == expected.argmax(1)).mean() >= 0.95
    # As close as onnxruntime's own QDQ U8S8 gets on this model (mean error 5%, worst logit 27% of the largest).
    error = np.abs(actual - expected)
    assert error.mean() < 0.1 * np.abs(expected).mean() and error.max() < 0.3 * np.abs(expected).max()
    assert nncf_describe(result) == {"engine": "nncf", "version": nncf.__version__, "preset": "performance",
                                     "mode": "default",
                                     "calibration": {"batches": 3, "images": 24, "ranges": NNCF_RANGES},
                                     "excluded": []}


@needs_nncf
@pytest.mark.parametrize("reduce_range, widest", [(True, 64), (False, 127)])
def test_every_layers_weights_follow_reduce_range(graphs: dict[str, Path], tmp_path: Path, reduce_range: bool,
                                                  widest: int) -> None:
    """Probe 177: NNCF halved the first layer's weights only (its default overflow fix) where quantize.reduce_range
    asked for 7-bit weights everywhere, and the record said reduce_range true: on an AVX2-only EPYC the other
    layers saturated onnxruntime's 16-bit sums. Every layer now follows the setting."""
    target = tmp_path / "nncf.onnx"
    quantize_with_nncf(graphs["pre"], target, calibration(), reduce_range=reduce_range)
    model = onnx.load(str(target))
    kernels = [numpy_helper.to_array(i) for i in model.graph.initializer
               if i.data_type == onnx.TensorProto.INT8 and len(i.dims) >= 2]
    assert len(kernels) >= 2 and all(np.abs(k).max() == widest for k in kernels), [np.abs(k).max() for k in kernels]


@needs_nncf
def test_every_calibration_image_counts_the_same(graphs: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Batches of unequal size: NNCF sees every batch, and the input's range is the mean over all 16 images
    of each image's absolute maximum (per-image statistics; symmetric INT8: scale = range / 127)."""
    served: list[int] = []

    class CountingDataset(nncf.Dataset):  # type: ignore[misc, name-defined]
        def __init__(self, source, transform=None):  # type: ignore[no-untyped-def]
            def counting(batch):  # type: ignore[no-untyped-def]
                served.append(len(batch))
                return transform(batch)
            super().__init__(source, counting)

    monkeypatch.setattr(nncf, "Dataset", CountingDataset)
    batches = calibration((8, 5, 3), seed=300)
    with caplog.at_level(logging.DEBUG, logger="cnnlab"):
        result = quantize_with_nncf(graphs["fp32"], tmp_path / "nncf.onnx", batches)
    assert (result.calibration_batches, result.calibration_images) == (3, 16)
    assert sorted(set(served)) == [3, 5, 8]
    assert "smaller than the requested subset size" not in caplog.text

    model = onnx.load(str(result.path))
    first = next(n for n in nodes(model, "QuantizeLinear") if n.input[0] == model.graph.input[0].name)
    scale = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}[first.input[1]]
    per_image = np.abs(np.concatenate(batches)).reshape(16, -1).max(1).mean()
    assert float(scale) * 127 == pytest.approx(per_image, rel=1e-3)


@needs_nncf
def test_preset_mixed_gives_asymmetric_activations(graphs: dict[str, Path], tmp_path: Path) -> None:
    """Calibration images shifted by +1 (input range about [-2, 4]): `performance` keeps the input's zero point
    at 0 (symmetric), `mixed` moves it (asymmetric)."""
    def input_zero_point(path: Path) -> int:
        model = onnx.load(str(path))
        quantize = next(n for n in nodes(model, "QuantizeLinear") if n.input[0] == model.graph.input[0].name)
        return int({i.name: numpy_helper.to_array(i) for i in model.graph.initializer}[quantize.input[2]])

    shifted = [batch + 1.0 for batch in calibration()]
    symmetric = quantize_with_nncf(graphs["fp32"], tmp_path / "performance.onnx", shifted)
    mixed = quantize_with_nncf(graphs["fp32"], tmp_path / "mixed.onnx", shifted, preset="mixed")
    assert (mixed.preset, nncf_describe(mixed)["preset"]) == ("mixed", "mixed")
    assert input_zero_point(symmetric.path) == 0 and input_zero_point(mixed.path) != 0
    x = images(64, 11)[0] + 1.0
    assert (run(mixed.path, x).argmax(1) == run(graphs["fp32"], x).argmax(1)).mean() >= 0.9


@needs_nncf
def test_an_excluded_node_stays_float(graphs: dict[str, Path], tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    fp32 = onnx.load(str(graphs["pre"]))
    kept, other = nodes(fp32, "Conv")[1].name, nodes(fp32, "Conv")[0].name
    with caplog.at_level(logging.DEBUG, logger="cnnlab"):
        result = quantize_with_nncf(graphs["pre"], tmp_path / "nncf.onnx", calibration(), exclude=[kept])
    assert "nncf: 1 ignored nodes were found by names" in caplog.text  # NNCF's log reaches cnnlab's (as debug)
    assert result.excluded == (kept,) and nncf_describe(result)["excluded"] == [kept]
    model = onnx.load(str(result.path))
    made = producers(model)
    by_name = {node.name: node for node in model.graph.node}
    initializers = {init.name: init for init in model.graph.initializer}
    excluded = by_name[kept]
    assert initializers[excluded.input[1]].data_type == onnx.TensorProto.FLOAT  # float weight, read directly
    assert all(made.get(name) is None or made[name].op_type != "DequantizeLinear" for name in excluded.input)
    assert made[by_name[other].input[1]].op_type == "DequantizeLinear"  # the other conv is still INT8
    x = images(64, 12)[0]
    assert (run(result.path, x).argmax(1) == run(graphs["fp32"], x).argmax(1)).mean() >= 0.95


@needs_nncf
def test_an_unknown_exclude_name_is_refused(graphs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="no node called conv_typo") as err:
        quantize_with_nncf(graphs["pre"], tmp_path / "nncf.onnx", calibration(), exclude=["conv_typo"])
    assert "node_" in err.value.message  # names a few real nodes to pick from
    assert err.value.fix and "Netron" in err.value.fix
    assert not (tmp_path / "nncf.onnx").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "fast"}, "preset 'fast' is not one of performance, mixed"),
    ({"batches": []}, "needs calibration images"),
    ({"batches": [np.zeros((3, SIZE, SIZE), np.float32)]}, r"N x C x H x W images are expected"),
    ({"accuracy_control": AccuracyControl([], 1.0)}, "needs validation images"),
    ({"accuracy_control": AccuracyControl(validation(1), -1.0)}, "must be 0 or more"),
    ({"accuracy_control": AccuracyControl([(images(4, 1)[0], np.zeros(3, np.int64))], 1.0)},
     "one integer class index per image"),
])
def test_bad_arguments_are_refused_before_nncf_runs(graphs: dict[str, Path], tmp_path: Path, kwargs: dict,
                                                    message: str) -> None:
    arguments = {"batches": calibration((2,)), **kwargs}
    with pytest.raises(CnnlabError, match=message):
        quantize_with_nncf(graphs["fp32"], tmp_path / "nncf.onnx", **arguments)


@needs_nncf
def test_a_quantized_file_is_not_quantized_again(graphs: dict[str, Path], tmp_path: Path) -> None:
    first = quantize_with_nncf(graphs["fp32"], tmp_path / "once.onnx", calibration((8,)))
    with pytest.raises(CnnlabError, match="quantized already"):
        quantize_with_nncf(first.path, tmp_path / "twice.onnx", calibration((8,)))


def test_without_nncf_the_error_names_the_extra_to_install(graphs: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert (nncf_available() is None) == (nncf is not None)
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` now raises ImportError
    reason = nncf_available()
    assert reason is not None and "\n" not in reason and 'pip install "cnnlab[openvino]"' in reason
    with pytest.raises(CnnlabError, match="NNCF is not importable here") as err:
        quantize_with_nncf(graphs["fp32"], tmp_path / "nncf.onnx", calibration((2,)))
    assert err.value.fix == INSTALL_FIX == 'pip install "cnnlab[openvino]"'


@needs_nncf
def test_an_nncf_failure_is_one_line(graphs: dict[str, Path], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("\nthe model has an op NNCF cannot handle\nTraceback-like detail")

    monkeypatch.setattr(nncf, "quantize", failing)
    with pytest.raises(CnnlabError) as err:
        quantize_with_nncf(graphs["fp32"], tmp_path / "nncf.onnx", calibration((2,)))
    assert err.value.message == "NNCF could not quantize fp32.onnx: the model has an op NNCF cannot handle"
    assert "exclude" in (err.value.fix or "")
    assert not (tmp_path / "nncf.onnx").exists()


@needs_nncf
def test_accuracy_control_with_a_generous_budget_keeps_everything_quantized(graphs: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    val = validation()
    result = quantize_with_nncf(graphs["fp32"], tmp_path / "nncf.onnx", calibration(),
                                accuracy_control=AccuracyControl(val, max_drop_points=20.0))
    assert result.mode == "accuracy_control"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nncf.onnx"]  # NNCF's intermediate model is gone
    assert result.reverted == () and result.quantizers_removed == 0
    assert result.fp32_top1 == pytest.approx(top1(graphs["fp32"], val))
    assert result.int8_top1 == pytest.approx(top1(result.path, val))  # measured on the written file
    assert result.within_budget and result.drop_points is not None and result.drop_points <= 20.0
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(quantized_ops(result.path))
    described = nncf_describe(result)
    assert described["mode"] == "accuracy_control"
    assert described["accuracy_control"] == {
        "max_drop_points": 20.0, "reverted_nodes": [], "quantizers_removed": 0,
        "val_top1": {"fp32": result.fp32_top1, "int8": result.int8_top1}, "drop_points": result.drop_points,
        "within_budget": True}


@needs_nncf
def test_accuracy_control_reverts_the_quantizers_that_cost_accuracy(graphs: dict[str, Path],
                                                                    tmp_path: Path) -> None:
    val = validation()
    fp32_top1 = top1(graphs["outlier"], val)
    plain = quantize_with_nncf(graphs["outlier"], tmp_path / "plain.onnx", calibration())
    assert top1(plain.path, val) < fp32_top1 - 30  # fully quantized, the outlier channel ruins it

    result = quantize_with_nncf(graphs["outlier"], tmp_path / "controlled.onnx", calibration(),
                                accuracy_control=AccuracyControl(val, max_drop_points=3.0))
    assert result.within_budget and result.fp32_top1 == pytest.approx(fp32_top1)
    assert top1(result.path, val) == pytest.approx(result.int8_top1)
    assert result.int8_top1 is not None and result.int8_top1 >= fp32_top1 - 3.0
    assert result.reverted and result.quantizers_removed and result.quantizers_removed > 0
    model = onnx.load(str(result.path))
    made = producers(model)
    by_name = {node.name: node for node in model.graph.node}
    for name in result.reverted:  # reverted: no input read through a DequantizeLinear any more
        assert all(made.get(i) is None or made[i].op_type != "DequantizeLinear" for i in by_name[name].input)
    # The quantizer that goes is the one on the outlier tensor (conv2's ReLU output, read by the global mean;
    # NNCF's own log says "Reverted 0 operations" there: it only counts Conv/Gemm-like ops). The convs stay INT8.
    assert nodes(model, "ReduceMean")[0].name in result.reverted
    for conv in nodes(model, "Conv"):
        assert conv.name not in result.reverted and made[conv.input[1]].op_type == "DequantizeLinear"
    assert nncf_describe(result)["accuracy_control"]["reverted_nodes"] == list(result.reverted)
