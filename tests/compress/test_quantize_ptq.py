"""Post-training quantization of an ONNX file: real INT8 graphs that onnxruntime runs, one calibration for all
formats, dynamic quantization, exclusions, and the calibration data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch.utils.data import TensorDataset

from cnnlab.compress.quantization import (CALIBRATION_CACHE, FORMATS, CalibrationReader, PtqSettings,
                                          calibration_batches, check_float_graph, check_node_names, graph_input_name,
                                          preprocess, quantize_dynamic_candidate, quantize_static_candidate,
                                          quantized_ops)
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import ModelIdentity, copy_with_metadata, export_onnx, read_onnx_metadata
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model

SIZE = 16
# The entropy search's time grows with the square of the bins (onnxruntime's, in Python): 25 s for LeNet-5 at 2048.
# 512 bins over 128 quantized ones still leave it hundreds of thresholds (128/128 left one: probe 203).
FEWER_BINS = {"num_bins": 512, "num_quantized_bins": 128}


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A LeNet-5 (16 px, 4 classes) as FP32 ONNX, and its pre-processed form."""
    folder = tmp_path_factory.mktemp("ptq")
    torch.manual_seed(0)
    model = create_model("lenet5", 4, SIZE).eval()
    fp32 = export_onnx(model, folder / "fp32.onnx", spec=InputSpec(SIZE), classes=list("abcd"),
                       metadata={"arch": "lenet5"})
    return fp32, preprocess(fp32, folder / "fp32_preprocessed.onnx")


def random_batches(count: int, batch: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((batch, 3, SIZE, SIZE), dtype=np.float32) for _ in range(count)]


def run(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


class CountingReader(CalibrationReader):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.served = 0
        super().__init__(*args, **kwargs)

    def get_next(self):  # type: ignore[no-untyped-def]
        item = super().get_next()
        self.served += item is not None
        return item


def test_static_formats_are_int8_smaller_and_close_to_fp32(graphs: tuple[Path, Path], tmp_path: Path) -> None:
    fp32, pre = graphs
    reader = CountingReader(graph_input_name(pre), random_batches(3))
    cache = tmp_path / "calibration.json"
    images = random_batches(1, batch=16, seed=1)[0]
    expected = run(fp32, images)
    qdq = quantize_static_candidate(pre, tmp_path / "qdq.onnx", FORMATS["qdq_u8s8"], PtqSettings(), reader, cache)
    assert reader.served == 3 and cache.is_file() == CALIBRATION_CACHE  # calibrated on every batch
    qop = quantize_static_candidate(pre, tmp_path / "qop.onnx", FORMATS["qop_u8s8"], PtqSettings(), reader, cache)
    # The second format reuses the ranges: no second calibration pass (older onnxruntime: the same batches again).
    assert reader.served == (3 if CALIBRATION_CACHE else 6)

    assert {"QuantizeLinear", "DequantizeLinear"} <= set(quantized_ops(qdq))
    assert quantized_ops(qop)["QLinearConv"] == 2 and quantized_ops(qop)["QGemm"] == 3
    for path in (qdq, qop):
        assert path.stat().st_size < fp32.stat().st_size / 2  # INT8 weights: ~4x smaller
        kernels = [t.data_type for t in onnx.load(str(path)).graph.initializer if len(t.dims) == 4]
        assert onnx.TensorProto.INT8 in kernels and onnx.TensorProto.FLOAT not in kernels  # no float conv weight
        actual = run(path, images)
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() < 0.1 * np.abs(expected).max()
    assert not quantized_ops(fp32)


def test_without_a_calibration_cache_every_format_calibrates_on_the_same_batches(
        graphs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime builds before the cache (the OpenVINO build is 1.24) still quantize every format."""
    import cnnlab.compress.quantization.ptq as ptq

    monkeypatch.setattr(ptq, "CALIBRATION_CACHE", False)
    _, pre = graphs
    reader = CountingReader(graph_input_name(pre), random_batches(3))
    cache = tmp_path / "calibration.json"
    first = quantize_static_candidate(pre, tmp_path / "a.onnx", FORMATS["qdq_u8s8"], PtqSettings(), reader, cache)
    second = quantize_static_candidate(pre, tmp_path / "b.onnx", FORMATS["qdq_u8s8"], PtqSettings(), reader, cache)
    assert reader.served == 6 and not cache.exists()
    ranges = [{t.name: onnx.numpy_helper.to_array(t).tolist() for t in onnx.load(str(path)).graph.initializer
               if t.name.endswith("_scale")} for path in (first, second)]
    assert ranges[0] and ranges[0] == ranges[1]  # the same images in the same order: the same scales


def test_other_calibration_methods_and_per_tensor_weights(graphs: tuple[Path, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.compress.quantization.ptq as ptq

    monkeypatch.setattr(ptq, "ENTROPY_HISTOGRAM", FEWER_BINS)
    _, pre = graphs
    for method in ("entropy", "percentile"):
        settings = PtqSettings(calibrate_method=method, percentile=99.9, per_channel=False, reduce_range=True)
        reader = CalibrationReader(graph_input_name(pre), random_batches(2))
        path = quantize_static_candidate(pre, tmp_path / f"{method}.onnx", FORMATS["qdq_u8s8"], settings, reader,
                                         tmp_path / f"{method}.json")
        assert quantized_ops(path)["QuantizeLinear"] > 0
        assert run(path, random_batches(1)[0]).shape == (8, 4)
    with pytest.raises(CnnlabError, match="calibrate_method=kl is not a calibration method"):
        PtqSettings(calibrate_method="kl")


def _scales(path: Path) -> dict[str, float]:
    """The activation scales of a QDQ file: each QuantizeLinear's scale, by the tensor it quantizes."""
    graph = onnx.load(str(path)).graph
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    return {node.input[0]: float(constants[node.input[1]]) for node in graph.node if node.op_type == "QuantizeLinear"
            and node.input[1] in constants and constants[node.input[1]].size == 1}


@pytest.mark.parametrize("cache", [True, False])
def test_entropy_calibration_clips_the_tails_that_min_max_keeps(graphs: tuple[Path, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, cache: bool) -> None:
    """Probe 203: `calibrate_method=entropy` wrote min-max's scales bit for bit (onnxruntime's 128 histogram bins
    over 128 quantized bins leave its KL search one threshold: the whole range). On images with rare outliers the
    KL threshold now clips them: narrower ranges than min-max's, on either onnxruntime (with or without the cache)."""
    import cnnlab.compress.quantization.ptq as ptq

    monkeypatch.setattr(ptq, "CALIBRATION_CACHE", cache and CALIBRATION_CACHE)
    monkeypatch.setattr(ptq, "ENTROPY_HISTOGRAM", FEWER_BINS, raising=False)  # (absent before: this test then fails)
    _, pre = graphs
    rng = np.random.default_rng(0)
    batches = random_batches(2)
    for batch in batches:  # one pixel in a thousand far out: the tails min-max must cover and KL need not
        batch[rng.random(batch.shape) < 1e-3] = 40.0
    scales = {}
    for method in ("minmax", "entropy"):
        reader = CalibrationReader(graph_input_name(pre), batches)
        path = quantize_static_candidate(pre, tmp_path / f"{method}.onnx", FORMATS["qdq_u8s8"],
                                         PtqSettings(calibrate_method=method), reader, tmp_path / f"{method}.json")
        scales[method] = _scales(path)
        assert run(path, batches[0]).shape == (8, 4)
    assert scales["minmax"].keys() == scales["entropy"].keys()
    narrower = [name for name in scales["minmax"] if scales["entropy"][name] < 0.9 * scales["minmax"][name]]
    assert graph_input_name(pre) in narrower and len(narrower) >= len(scales["minmax"]) // 2, scales
    assert all(scales["entropy"][name] <= scales["minmax"][name] * 1.0001 for name in scales["minmax"]), scales


def test_dynamic_quantization_stores_int8_weights_and_quantizes_activations_at_run_time(
        graphs: tuple[Path, Path], tmp_path: Path) -> None:
    _, pre = graphs
    path = quantize_dynamic_candidate(pre, tmp_path / "dynamic.onnx", FORMATS["dynamic_u8"], PtqSettings())
    ops = quantized_ops(path)
    assert ops["ConvInteger"] == 2 and ops["DynamicQuantizeLinear"] > 0
    assert run(path, random_batches(1)[0]).shape == (8, 4)


def test_excluded_nodes_stay_float_and_unknown_names_are_refused(graphs: tuple[Path, Path], tmp_path: Path) -> None:
    _, pre = graphs
    first_conv = next(n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv")
    check_node_names(pre, [first_conv])
    settings = PtqSettings(exclude=(first_conv,))
    path = quantize_static_candidate(pre, tmp_path / "partial.onnx", FORMATS["qop_u8s8"], settings,
                                     CalibrationReader(graph_input_name(pre), random_batches(1)), tmp_path / "c.json")
    kinds = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    assert kinds[first_conv] == "Conv" and quantized_ops(path)["QLinearConv"] == 1
    with pytest.raises(CnnlabError, match="no node called conv9"):
        check_node_names(pre, ["conv9"])


def test_a_quantized_file_is_not_quantized_again(graphs: tuple[Path, Path], tmp_path: Path) -> None:
    fp32, pre = graphs
    check_float_graph(fp32)
    path = quantize_dynamic_candidate(pre, tmp_path / "q.onnx", FORMATS["dynamic_u8"], PtqSettings())
    with pytest.raises(CnnlabError, match="is quantized already"):
        check_float_graph(path)


def test_the_written_model_carries_metadata(graphs: tuple[Path, Path], tmp_path: Path) -> None:
    fp32, pre = graphs
    path = quantize_dynamic_candidate(pre, tmp_path / "q.onnx", FORMATS["dynamic_u8"], PtqSettings())
    identity = ModelIdentity(arch="lenet5", classes=tuple("abcd"), spec=InputSpec(SIZE))
    target = copy_with_metadata(path, tmp_path / "model.onnx", identity, params=123, flops=456,
                                extra={"quantization": {"format": "dynamic_u8"}})
    meta = read_onnx_metadata(target)
    assert meta["spec"] == InputSpec(SIZE) and meta["classes"] == list("abcd") and meta["arch"] == "lenet5"
    assert meta["props"]["quantization"] == {"format": "dynamic_u8"}
    assert (meta["params"], meta["flops"]) == (123, 456)
    assert quantized_ops(target) == quantized_ops(path)


def test_calibration_batches_are_a_seeded_shuffle_of_the_training_images() -> None:
    images = torch.arange(20, dtype=torch.float32).view(20, 1, 1, 1).expand(20, 3, 2, 2).contiguous()
    dataset = TensorDataset(images, torch.zeros(20, dtype=torch.long))
    first = calibration_batches(dataset, batches=2, batch_size=4, seed=0)
    again = calibration_batches(dataset, batches=2, batch_size=4, seed=0)
    assert len(first) == 2 and first[0].shape == (4, 3, 2, 2) and first[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    drawn = sorted(float(v) for batch in first for v in batch[:, 0, 0, 0])
    assert drawn != [float(v) for v in range(8)]  # shuffled, not the first 8 images
    assert len(calibration_batches(dataset, batches=100, batch_size=8, seed=0)) == 3  # all there is

    reader = CalibrationReader("input", first)
    assert reader.images == 8 and len(reader) == 2
    reader.set_range(1, 2)
    assert np.array_equal(reader.get_next()["input"], first[1]) and reader.get_next() is None  # type: ignore[index]


@pytest.mark.parametrize("batches, size, message", [
    (0, 4, "calib_batches=0: static quantization needs calibration images"),
    (-1, 4, "calib_batches=-1"),
    (2, 0, "calib_batch_size=0 must be at least 1"),
])
def test_an_empty_calibration_set_is_refused(batches: int, size: int, message: str) -> None:
    dataset = TensorDataset(torch.zeros(4, 3, 2, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(CnnlabError, match=message):
        calibration_batches(dataset, batches=batches, batch_size=size, seed=0)
    empty = TensorDataset(torch.zeros(0, 3, 2, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(CnnlabError, match="calibration set is empty"):
        calibration_batches(empty, batches=2, batch_size=4, seed=0)


def test_a_calibration_set_smaller_than_asked_or_than_the_classes_is_one_warning_line() -> None:
    from cnnlab.compress.quantization.calibration import calibration_shortfall

    assert calibration_shortfall(256, batches=8, batch_size=32, num_classes=10) is None
    short = calibration_shortfall(64, batches=8, batch_size=32, num_classes=10)
    assert short is not None and "\n" not in short
    assert "on 64 training images" in short and "256 asked for" in short and "classes" not in short
    # probe 224: the whole split calibrated, and "may not cover" was said of it
    assert short.endswith("the training split holds no more: the activation ranges are those of the whole split")
    tiny = calibration_shortfall(2, batches=1, batch_size=2, num_classes=4)
    assert tiny is not None and "on 2 training images" in tiny and "fewer than the 4 classes" in tiny
    assert tiny.endswith("may not cover what the validation images produce")
    assert "asked" not in tiny  # 1 x 2 were asked for and drawn


def test_a_shortfall_cites_the_settings_as_set_and_the_batches_drawn(tmp_path: Path) -> None:
    """A file fixed to batch 4 with quantize.calib_batches and calib_batch_size left at 8 and 32: the 256 images asked
    for were re-cut into 64 batches of 4, the 64-image split gave 16 of them, and the warning said "on 64 training
    images, fewer than the 256 asked for (quantize.calib_batches=64 x quantize.calib_batch_size=4)" — settings the
    user never set, and not the 16 batches used."""
    from cnnlab.compress.quantization.search import Calibration

    data = TensorDataset(torch.randn(64, 3, 4, 4), torch.zeros(64, dtype=torch.long))
    draw = {"seed": 0, "workers": 0, "method": "minmax", "cache": tmp_path / "c.json"}
    recut = Calibration.draw(data, 64, 4, whole=True, asked=(8, 32), **draw)  # type: ignore[arg-type]
    assert len(recut.batches) == 16
    warning = recut.shortfall(4)
    assert warning is not None and "on 64 training images in 16 batches of 4, fewer than the 256 asked for " \
        "(quantize.calib_batches=8 × quantize.calib_batch_size=32, drawn in batches of 4: the model's fixed batch)" \
        in warning and "no more whole batches of 4" in warning and "=64" not in warning
    # quantize.calib_batches=30 typed on the same file: 30 batches of its 4 asked for, 16 drawn
    typed = Calibration.draw(data, 30, 4, whole=True, **draw).shortfall(4)  # type: ignore[arg-type]
    assert typed is not None and "on 64 training images in 16 batches of 4, fewer than the 120 asked for " \
        "(quantize.calib_batches=30 batches of 4: the model's fixed batch)" in typed
    # a dynamic batch: the settings as they are, the last batch as the split ends it
    dynamic = Calibration.draw(data, 4, 32, **draw).shortfall(4)  # type: ignore[arg-type]
    assert dynamic is not None and "on 64 training images in 2 batches, fewer than the 128 asked for " \
        "(quantize.calib_batches=4 × quantize.calib_batch_size=32): the training split holds no more:" in dynamic
    assert Calibration.draw(data, 2, 32, whole=True, asked=(1, 64), **draw).shortfall(4) is None  # type: ignore


def test_quantize_records_the_calibration_shortfall(cli, outputs: Path) -> None:
    from helpers import TINY, read_run, run_dirs

    assert cli("pretrain", *TINY).code == 0  # 64 training images, 4 classes
    fast = ["quantize.format=qdq_u8s8", "quantize.max_acc_drop=100", "quantize.bench_rounds=1",
            "quantize.bench_warmup=1", "quantize.bench_min_iters=2", "quantize.bench_min_seconds=0",
            "quantize.bench_threads=1"]
    result = cli("quantize", "source=latest:pretrain", "quantize.calib_batches=1", "quantize.calib_batch_size=3",
                 *fast)
    assert result.code == 0, result.output
    [warning] = read_run(run_dirs(outputs, "quantize")[0])["warnings"]
    assert "on 3 training images" in warning and "fewer than the 4 classes" in warning
    assert warning in " ".join(result.stderr.split())  # the log line says it too
    many = cli("quantize", "source=latest:pretrain", "quantize.calib_batches=4", "quantize.calib_batch_size=32", *fast)
    assert many.code == 0, many.output
    [warning] = read_run(run_dirs(outputs, "quantize")[1])["warnings"]
    assert "on 64 training images" in warning and "128 asked for" in warning


def test_a_fixed_batch_model_is_calibrated_on_full_batches_only() -> None:
    """Probe 95: 30 training images in batches of 4 ended in a batch of 2, which a file fixed to batch 4 cannot take
    (every candidate failed with onnxruntime's "Got invalid dimensions")."""
    import torch
    from torch.utils.data import TensorDataset

    from cnnlab.compress.quantization.calibration import calibration_batches
    from cnnlab.errors import CnnlabError

    data = TensorDataset(torch.randn(30, 3, 8, 8), torch.zeros(30, dtype=torch.long))
    whole = calibration_batches(data, batches=40, batch_size=4, seed=0, whole=True)
    assert [len(b) for b in whole] == [4] * 7
    assert [len(b) for b in calibration_batches(data, batches=40, batch_size=4, seed=0)][-1] == 2  # dynamic: all 30
    with pytest.raises(CnnlabError, match="batch is fixed to 32 and the training split holds only 30"):
        calibration_batches(data, batches=1, batch_size=32, seed=0, whole=True)


def _input_codes(path: Path, images: np.ndarray) -> np.ndarray:
    """The INT8 codes the file's own first QuantizeLinear gives `images` (onnxruntime, not a reimplementation)."""
    proto = onnx.load(str(path))
    name = proto.graph.input[0].name
    first = next(n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == name)
    del proto.graph.output[:]
    code_type = onnx.TensorProto.UINT8 if "u8" in path.stem else onnx.TensorProto.INT8
    proto.graph.output.append(onnx.helper.make_tensor_value_info(first.output[0], code_type, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {name: images})[0].astype(np.int32)


@pytest.mark.parametrize("fmt", ["qdq_u8s8", "qdq_s8s8"])
def test_pixels_normalised_with_mean_half_do_not_sit_on_rounding_ties(graphs: tuple[Path, Path], tmp_path: Path,
                                                                    fmt: str) -> None:
    # Probe 179: (k/255 - 0.5)/0.25 min/max-calibrated put every pixel exactly halfway between two codes, so the
    # codes (and the top-1) changed with the preprocessing's last float bit: /255 against *(1/255).
    from cnnlab.compress.quantization.calibration import range_off_ties

    _, pre = graphs
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 3, SIZE, SIZE))
    pixels[0, 0, 0, 0, :2] = (0, 255)  # the full range, as real images hold it
    divided = [((p / 255.0).astype(np.float32) - np.float32(0.5)) / np.float32(0.25) for p in pixels]
    multiplied = [((p * np.float32(1 / 255)).astype(np.float32) - np.float32(0.5)) / np.float32(0.25) for p in pixels]
    widened = range_off_ties(divided)
    assert widened is not None and widened[0] < -2 < 2 < widened[1]
    path = quantize_static_candidate(pre, tmp_path / f"{fmt}.onnx", FORMATS[fmt], PtqSettings(),
                                     CalibrationReader(graph_input_name(pre), divided), tmp_path / "c.json",
                                     input_range=widened)
    a, b = _input_codes(path, divided[0]), _input_codes(path, multiplied[0])
    assert np.array_equal(a, b)
    # 255 codes for the 256 pixel values (only the two beside the mean share one); the tied grid's half-to-even
    # rounding merged 17 to 41 pairs, depending on the float bit
    assert len(np.unique(a)) == len(np.unique(pixels[0])) - 1 == 255
    tied = quantize_static_candidate(pre, tmp_path / f"tied_{fmt}.onnx", FORMATS[fmt], PtqSettings(),
                                     CalibrationReader(graph_input_name(pre), divided), tmp_path / "c.json")
    assert not np.array_equal(_input_codes(tied, divided[0]), _input_codes(tied, multiplied[0]))  # the bug, shown


def test_pixels_already_on_the_int8_grid_keep_their_exact_codes() -> None:
    from cnnlab.compress.quantization.calibration import range_off_ties

    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 3, SIZE, SIZE))
    pixels[0, 0, 0, 0, :2] = (0, 255)
    assert range_off_ties([(p / 255.0).astype(np.float32) for p in pixels]) is None   # ToTensor alone: exact codes
    assert range_off_ties(random_batches(2)) is None                                 # off the grid: nothing to do
    imagenet = (np.float32(0.485), np.float32(0.229))
    assert range_off_ties([((p / 255.0).astype(np.float32) - imagenet[0]) / imagenet[1] for p in pixels]) is None


def test_a_dynamic_int8_file_scores_each_image_as_it_would_alone(graphs: tuple[Path, Path], tmp_path: Path) -> None:
    # Probe 181: onnxruntime's dynamic quantization takes one activation range per run, over the whole batch, so a
    # file scored in batches of 128 read 41.11 % and one image at a time 43.06 %. Every score goes through run_images.
    from cnnlab.deploy.onnx_check import batch_dependent
    from cnnlab.deploy.ort import onnx_session, run_images

    _, pre = graphs
    path = quantize_dynamic_candidate(pre, tmp_path / "dynamic_u8.onnx", FORMATS["dynamic_u8"], PtqSettings())
    assert batch_dependent(path) and not batch_dependent(pre)
    images = random_batches(1, batch=8, seed=3)[0]
    images[0] *= 50  # one bright image widens the batch's range: the others lose resolution when run beside it
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    alone = np.concatenate([session.run(None, {session.get_inputs()[0].name: image[None]})[0] for image in images])
    together = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert not np.allclose(alone[1:], together[1:], atol=1e-4)  # the effect is real here
    assert np.array_equal(run_images(onnx_session(path), images), alone)


def test_a_widened_input_range_is_recorded_only_where_a_file_quantizes_its_input(graphs: tuple[Path, Path],
                                                                                 tmp_path: Path) -> None:
    # Probe 183: with the first convolution kept in float (quantize.exclude) the input has no quantizer, and the
    # log and run.json still said its range was widened.
    from cnnlab.compress.quantization import CandidateResult
    from cnnlab.compress.quantization.calibration import range_off_ties
    from cnnlab.compress.quantization.ptq import quantizes_input
    from cnnlab.compress.quantization.search import Calibration

    _, pre = graphs
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 3, SIZE, SIZE))
    batches = [((p / 255.0).astype(np.float32) - np.float32(0.5)) / np.float32(0.5) for p in pixels]
    calibration = Calibration(batches, "minmax", tmp_path / "c.json", (2, 8), range_off_ties(batches))
    reader = CalibrationReader(graph_input_name(pre), batches)
    first = next(n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv")
    made = {}
    for name, settings in (("all", PtqSettings()), ("first_in_float", PtqSettings(exclude=(first,)))):
        path = quantize_static_candidate(pre, tmp_path / f"{name}.onnx", FORMATS["qdq_u8s8"], settings, reader,
                                         tmp_path / f"{name}.json", input_range=calibration.input_range)
        made[name] = CandidateResult(FORMATS["qdq_u8s8"], path)
    assert quantizes_input(made["all"].path) and not quantizes_input(made["first_in_float"].path)  # type: ignore
    assert calibration.describe([made["all"]])["input_range"] == list(calibration.input_range)  # type: ignore
    assert "input_range" not in calibration.describe([made["first_in_float"]])
