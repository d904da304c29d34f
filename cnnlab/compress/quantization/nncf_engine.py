"""NNCF (Intel's Neural Network Compression Framework, https://github.com/openvinotoolkit/nncf) as a second
post-training INT8 engine: the same FP32 ONNX file and the same calibration batches as onnxruntime's quantizer
(ptq.py), a QDQ ONNX file out.

What NNCF's ONNX backend does by default (nncf 3.4, `target_device=ANY`, preset `performance`; read from the
files it writes — see tests/compress/test_quantize_nncf.py):

* Quantized: the inputs of the ops NNCF marks inputs-quantizable (nncf/onnx/graph/metatypes/groups.py:
  Conv/ConvTranspose, Gemm/MatMul, Add, Sub, Mul, AveragePool/GlobalAveragePool, Resize, ...; ReduceMean too in
  practice) — a weight through an INT8 initializer + DequantizeLinear, every activation input through a
  QuantizeLinear/DequantizeLinear pair. Quantize-agnostic ops (MaxPool, Reshape, Flatten, ...) pass the quantized
  tensor through; quantizers are moved up to the producers so that one pair serves every consumer. Network
  outputs stay float.
* Weights: INT8, symmetric (zero point 0), per output channel (opset >= 13), narrow range [-127, 127]. NNCF's
  "overflow fix" for the 16-bit accumulators of CPUs without VNNI (AdvancedQuantizationParameters.overflow_fix)
  halves that range ([-64, 64]) for the first layer only by default; here it follows quantize.reduce_range, as
  onnxruntime's candidates do: every layer (`enable`) where 7-bit weights are asked for, none (`disable`)
  otherwise (probe 177: on an AVX2-only EPYC 20 of ResNet-18's 21 weight tensors used the full range, recorded
  as reduce_range true, and onnxruntime's kernels moved LeNet-5's logits by up to 0.46 from the file's arithmetic).
* Activations: per tensor. Preset `performance`: symmetric (zero point 0), UINT8 where the calibration saw no
  negative values (after ReLU), INT8 elsewhere (e.g. the image input). Preset `mixed`: asymmetric (a non-zero
  zero point where the range is not centred, e.g. INT8 with zero point 4 on a test model's image input;
  post-ReLU tensors stay UINT8 with zero point 0); weights as above.
* Ranges: weights min/max; activations the mean over calibration images of each image's min and max
  (RangeEstimatorParametersSet.MEAN_MINMAX, per-image "batchwise" statistics — see below); then
  FastBiasCorrection shifts each quantized layer's bias to undo the mean error quantization puts on its output.

Calibration: NNCF iterates its Dataset item by item (one inference per item; here an item is one N x C x H x W
batch) and stops after `subset_size` items; its statistic collectors also count one sample per item. So
`subset_size` is set to the number of batches: every given image is used (the number of images would be the
same in effect, but NNCF then warns "dataset contains only N samples, smaller than the requested subset size").
Within a batch NNCF reduces either the whole batch to one min/max (batchwise_statistics off: what it does for a
plain list, and the range then depends on the batch size) or each image separately (on: what it does for a torch
DataLoader with batch_size > 1, and the same ranges as NNCF's batch-size-1 reference setting). This module turns
it on, so every image weighs the same whatever the calibration batch size. (NNCF warns that per-image statistics
may be inaccurate only for graphs with ROIAlign or embedding ops.)

Accuracy control (`AccuracyControl`): NNCF 3.4 implements `nncf.quantize_with_accuracy_control` for ONNX models
(nncf/onnx/quantization/quantize_model.py: quantize_with_accuracy_control_impl), so it runs on the ONNX graph
itself and the result is a QDQ ONNX file. Its algorithm (NNCF docs, "Post-training Quantization with Accuracy
Control"): quantize fully; evaluate FP32 and INT8 with the validation function; while the drop exceeds
`max_drop`, rank the groups of quantizers by the metric on the validation items the quantized model gets most
wrong when each group alone is reverted to float, revert the worst group, re-evaluate (re-ranking after a step
that made things worse); stop within budget or when nothing is quantized any more. Here the metric is top-1 in
percent on the validation images, each image one NNCF data item (so ranking picks individual images; inference
still runs in batches of the validation batch size), `max_drop` = `max_drop_points` (absolute), and the ranking
subset is NNCF's usual 300 items (or all images, when fewer). NNCF does not return what it reverted; it is read
off the graphs instead: NNCF saves the fully quantized model before restoring accuracy
(AdvancedAccuracyRestorerParameters.intermediate_model_dir) and the nodes that read fewer inputs through a
DequantizeLinear in the result than there are the ones it reverted. (NNCF's own log line "Reverted N operations"
counts only the Conv/Gemm-like ops of a removed quantizer group: removing the quantizer in front of a ReduceMean
reads "Reverted 0 operations" there, and node_mean here.)
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from cnnlab.compress.quantization.ptq import check_float_graph, check_node_names
from cnnlab.deploy.export import load_onnx
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path

log = logging.getLogger(__name__)

INSTALL_FIX = 'pip install "cnnlab[openvino]"'
PRESETS = ("performance", "mixed")
MODES = ("default", "accuracy_control")
# How NNCF sets activation ranges here, whatever quantize.calibrate_method (onnxruntime's) says (module docstring).
NNCF_RANGES = "mean over calibration images of each image's min and max (NNCF MEAN_MINMAX)"
# NNCF's default number of data items to rank quantizer groups on (quantize_with_accuracy_control's subset_size).
RANKING_ITEMS = 300
_QDQ = ("QuantizeLinear", "DequantizeLinear")


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy-controlled mode: keep the drop on the validation batches within max_drop_points."""

    val_batches: Sequence[tuple[np.ndarray, np.ndarray]]   # (images float32 N×C×H×W, int64 labels N)
    max_drop_points: float                                  # percentage points of top-1

    @property
    def images(self) -> int:
        return sum(len(labels) for _, labels in self.val_batches)


@dataclass(frozen=True)
class NncfResult:
    """What `quantize_with_nncf` wrote and did.

    path: the QDQ ONNX file; mode: "default" | "accuracy_control"; preset: "performance" | "mixed";
    nncf_version: nncf.__version__; calibration_images / calibration_batches: what statistics were collected on;
    excluded: the node names kept in float (NNCF's ignored scope).
    Accuracy control only (None otherwise): reverted — the nodes NNCF reverted to float, in graph order (each
    reads fewer inputs through a DequantizeLinear than in the fully quantized model); quantizers_removed — how
    many DequantizeLinear nodes that removed; max_drop_points — the budget; fp32_top1 / int8_top1 — top-1 in
    percent of the FP32 model and of the written file on the validation images.
    """

    path: Path
    mode: str
    preset: str
    nncf_version: str
    calibration_images: int
    calibration_batches: int
    excluded: tuple[str, ...] = ()
    reverted: tuple[str, ...] | None = None
    quantizers_removed: int | None = None
    max_drop_points: float | None = None
    fp32_top1: float | None = None
    int8_top1: float | None = None

    @property
    def drop_points(self) -> float | None:
        """FP32 minus INT8 top-1 on the validation images, in percentage points (accuracy control only)."""
        if self.fp32_top1 is None or self.int8_top1 is None:
            return None
        return self.fp32_top1 - self.int8_top1

    @property
    def within_budget(self) -> bool | None:
        """Whether the drop is within max_drop_points (accuracy control only; None otherwise)."""
        drop = self.drop_points
        if drop is None or self.max_drop_points is None:
            return None
        return drop <= self.max_drop_points + 1e-9


def nncf_available() -> str | None:
    """None when nncf imports here, else a one-line reason that names the install command."""
    try:
        _import_nncf()
    except CnnlabError as err:
        return err.one_line()
    return None


def quantize_with_nncf(fp32_file: Path, target: Path, batches: Sequence[np.ndarray], *,
                       exclude: Sequence[str] = (), preset: str = "performance",
                       accuracy_control: AccuracyControl | None = None, reduce_range: bool = False) -> NncfResult:
    """Quantize the FP32 ONNX file `fp32_file` with NNCF's ONNX backend and write the QDQ result to `target`
    (atomically: a temporary file in the same folder, then os.replace).

    fp32_file: an FP32 ONNX graph; in `cnnlab quantize` pass the pre-processed one (ptq.preprocess) so that the
    `exclude` names mean the same nodes for both engines. batches: calibration images, float32 N x C x H x W
    each (search.Calibration.batches); all are used (see the module docstring on `subset_size`). exclude: node
    names to keep in float (nncf.IgnoredScope(names=...): neither the node's weight nor its inputs are
    quantized). preset: "performance" (symmetric activations) or "mixed" (asymmetric activations). reduce_range:
    7-bit weights in every layer (NNCF's overflow_fix `enable`), else 8-bit in every layer (`disable`).
    accuracy_control: None for nncf.quantize, else nncf.quantize_with_accuracy_control with top-1 (percent) on
    its validation batches and max_drop = its max_drop_points (absolute).

    Raises CnnlabError when nncf is not installed (fix: pip install "cnnlab[openvino]"), `preset` is unknown,
    there are no calibration (or validation) images, `fp32_file` is unreadable or quantized already, an
    `exclude` name is not a node of the graph (ptq.check_node_names), or NNCF fails (its first line).
    """
    if preset not in PRESETS:
        raise CnnlabError(f"NNCF preset {preset!r} is not one of {', '.join(PRESETS)}",
                          fix="use performance (symmetric activations) or mixed (asymmetric activations)")
    batches = [_as_images(batch, "calibration") for batch in batches]
    if not batches or not sum(len(b) for b in batches):
        raise CnnlabError("NNCF needs calibration images: no calibration batch was given",
                          fix="draw calibration batches (quantize.calib_batches=8 or more)")
    if accuracy_control is not None:
        _check_accuracy_control(accuracy_control)
    nncf = _import_nncf()
    fp32_file, target = Path(fp32_file), Path(target)
    check_float_graph(fp32_file)
    if exclude:
        check_node_names(fp32_file, exclude)
    model = load_onnx(fp32_file)
    input_name = model.graph.input[0].name
    from nncf.quantization.advanced_parameters import OverflowFix

    advanced = nncf.AdvancedQuantizationParameters(  # per-image ranges, and the overflow fix: see above
        batchwise_statistics=True, overflow_fix=OverflowFix.ENABLE if reduce_range else OverflowFix.DISABLE)
    settings: dict[str, Any] = {
        "preset": nncf.QuantizationPreset(preset),
        "subset_size": len(batches),
        "ignored_scope": nncf.IgnoredScope(names=list(exclude)) if exclude else None,
    }
    calibration = nncf.Dataset(batches, lambda batch: {input_name: batch})
    fields: dict[str, Any] = {}
    try:
        with _quiet_nncf():
            if accuracy_control is None:
                quantized = nncf.quantize(model, calibration, advanced_parameters=advanced, **settings)
            else:
                quantized, fields = _with_accuracy_control(nncf, model, calibration, accuracy_control, settings,
                                                           advanced, work=target.parent)
    except CnnlabError:
        raise
    except Exception as exc:  # noqa: BLE001 - NNCF and onnxruntime raise many types
        raise CnnlabError(f"NNCF could not quantize {fp32_file.name}: {_first_line(exc)}",
                          fix="keep the failing nodes in float (exclude), try preset=mixed, or use onnxruntime's "
                              "quantizer; run with --debug for details") from exc
    _save(quantized, target)
    result = NncfResult(target, "default" if accuracy_control is None else "accuracy_control", preset,
                        str(nncf.__version__), sum(len(b) for b in batches), len(batches), tuple(exclude), **fields)
    if result.within_budget is False:
        log.warning("NNCF's accuracy control did not reach the budget: top-1 %.2f%% vs FP32 %.2f%% (-%.2f points, "
                    "budget %.2f) after reverting %d node(s) to float", result.int8_top1, result.fp32_top1,
                    result.drop_points, result.max_drop_points,
                    len(result.reverted or ()))
    return result


def nncf_describe(result: NncfResult) -> dict[str, Any]:
    """The engine's entry for run.json: engine, NNCF version, preset, mode, calibration, excluded nodes and, with
    accuracy control, the budget, the nodes reverted to float and the top-1 figures (percent)."""
    described: dict[str, Any] = {
        "engine": "nncf", "version": result.nncf_version, "preset": result.preset, "mode": result.mode,
        "calibration": {"batches": result.calibration_batches, "images": result.calibration_images,
                        "ranges": NNCF_RANGES},
        "excluded": list(result.excluded),
    }
    if result.mode == "accuracy_control":
        described["accuracy_control"] = {
            "max_drop_points": result.max_drop_points,
            "reverted_nodes": list(result.reverted or ()),
            "quantizers_removed": result.quantizers_removed,
            "val_top1": {"fp32": result.fp32_top1, "int8": result.int8_top1},
            "drop_points": result.drop_points,
            "within_budget": result.within_budget,
        }
    return described


def _with_accuracy_control(nncf: ModuleType, model: Any, calibration: Any, control: AccuracyControl,
                           settings: dict[str, Any], advanced: Any, *, work: Path) -> tuple[Any, dict[str, Any]]:
    """nncf.quantize_with_accuracy_control on the ONNX model; the quantized model and NncfResult's accuracy
    fields (what was reverted: the fully quantized model NNCF saves first — in a temporary folder under `work`,
    deleted afterwards — diffed against its result)."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    input_name = model.graph.input[0].name
    val = [(_as_images(images, "validation"), np.asarray(labels)) for images, labels in control.val_batches]
    items = [(images[i], int(labels[i])) for images, labels in val for i in range(len(labels))]
    chunk = _batch_size(model, max(len(labels) for _, labels in control.val_batches))

    def validate(candidate: Any, data: Iterable[tuple[np.ndarray, int]]) -> tuple[float, list[float]]:
        return _top1(_session(candidate), input_name, data, chunk)

    validation = nncf.Dataset(items, lambda item: {input_name: item[0][None]})
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".nncf_ac_", dir=work) as folder:
        restorer = AdvancedAccuracyRestorerParameters(ranking_subset_size=min(RANKING_ITEMS, len(items)),
                                                      intermediate_model_dir=folder)
        quantized = nncf.quantize_with_accuracy_control(
            model, calibration, validation, validate, max_drop=float(control.max_drop_points),
            drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=advanced,
            advanced_accuracy_restorer_parameters=restorer, **settings)
        full = load_onnx(Path(folder) / "intermediate_model.onnx")
    before, after = _dequantized_inputs(full), _dequantized_inputs(quantized)
    reverted = tuple(name for name, count in after.items() if count < before.get(name, 0))
    fields = {
        "reverted": reverted,
        "quantizers_removed": _count(full, "DequantizeLinear") - _count(quantized, "DequantizeLinear"),
        "max_drop_points": float(control.max_drop_points),
        "fp32_top1": validate(model, items)[0],
        "int8_top1": validate(quantized, items)[0],
    }
    return quantized, fields


def _top1(session: Any, input_name: str, data: Iterable[tuple[np.ndarray, int]],
          chunk: int) -> tuple[float, list[float]]:
    """Top-1 in percent over (image C x H x W, label) items, and each item's score (100.0 right, 0.0 wrong):
    NNCF's "metric mode" validation function. Inference runs `chunk` images at a time."""
    scores: list[float] = []
    images: list[np.ndarray] = []
    labels: list[int] = []

    def flush() -> None:
        logits = session.run(None, {input_name: np.stack(images)})[0]
        scores.extend(100.0 * (np.argmax(logits, axis=1) == np.asarray(labels)))
        images.clear()
        labels.clear()

    for image, label in data:
        images.append(image)
        labels.append(int(label))
        if len(images) == chunk:
            flush()
    if images:
        flush()
    return (float(np.mean(scores)) if scores else 0.0), [float(s) for s in scores]


def _session(model: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _batch_size(model: Any, wanted: int) -> int:
    """`wanted`, or the graph's batch size when its batch axis is fixed."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else wanted


def _dequantized_inputs(model: Any) -> dict[str, int]:
    """For every node other than Q/DQ: how many of its inputs come out of a DequantizeLinear."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return {node.name: sum(name in dequantized for name in node.input)
            for node in model.graph.node if node.op_type not in _QDQ}


def _count(model: Any, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


def _check_accuracy_control(control: AccuracyControl) -> None:
    if not control.val_batches or not control.images:
        raise CnnlabError("NNCF's accuracy control needs validation images: no validation batch was given")
    if not control.max_drop_points >= 0:
        raise CnnlabError(f"the accuracy budget {control.max_drop_points} points must be 0 or more")
    for images, labels in control.val_batches:
        _as_images(images, "validation")
        if np.ndim(labels) != 1 or len(labels) != len(images):
            raise CnnlabError(f"a validation batch has {len(images)} images but labels of shape "
                              f"{tuple(np.shape(labels))}: one integer class index per image is expected")


def _as_images(batch: Any, what: str) -> np.ndarray:
    array = np.ascontiguousarray(batch, dtype=np.float32)
    if array.ndim != 4:
        raise CnnlabError(f"a {what} batch has shape {array.shape}: N x C x H x W images are expected")
    return array


def _save(model: Any, target: Path) -> None:
    import onnx

    with atomic_path(target) as tmp:
        onnx.save(model, str(tmp))


def _import_nncf() -> ModuleType:
    """The nncf module (imported here, lazily: it is optional and slow to import); CnnlabError naming the extra
    to install when it does not import."""
    try:
        import nncf
    except Exception as exc:  # noqa: BLE001 - a broken install raises more than ImportError
        raise CnnlabError(f"NNCF is not importable here ({_first_line(exc)})", fix=INSTALL_FIX) from exc
    from cnnlab.deploy.openvino_runtime import keep_absl_off_borrowed_streams

    keep_absl_off_borrowed_streams()  # nncf imports openvino, and with it absl's logging (see there)
    return nncf


class _Forward(logging.Handler):
    """NNCF's log records into cnnlab's log: warnings stay warnings, the rest becomes debug."""

    def emit(self, record: logging.LogRecord) -> None:
        log.log(record.levelno if record.levelno >= logging.WARNING else logging.DEBUG, "nncf: %s",
                record.getMessage())


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """While NNCF runs: its rich progress bars (written to sys.stdout) are swallowed, its logger (which writes
    INFO lines straight to stdout) forwards into this module's log instead, and torch's "No CUDA runtime is
    found" notice (NNCF probes torch's extensions) is muted. Warnings still reach the run's log."""
    nncf_log = logging.getLogger("nncf")
    cuda_notice = logging.getLogger("torch.utils.cpp_extension")
    handlers, notice_level = nncf_log.handlers[:], cuda_notice.level
    nncf_log.handlers = [_Forward()]
    cuda_notice.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        nncf_log.handlers = handlers
        cuda_notice.setLevel(notice_level)


def _first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
