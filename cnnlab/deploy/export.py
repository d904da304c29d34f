"""ONNX export of a cnnlab model: one self-describing file, checked against PyTorch before anyone uses it.

Exporter: torch's dynamo exporter (`torch.onnx.export(dynamo=True)`, torch.export + onnxscript). It exports
every network of the zoo correctly at every size; the TorchScript exporter cannot export an adaptive average
pool whose output is not a divisor of its input (LeNet-5, AlexNet and VGG at small sizes) and is deprecated.
See docs/export.md for the measurements behind this choice.

The file: input `input` [N, 3, H, W] (float32, normalised) with a dynamic batch axis N, output `logits`
[N, classes], and `metadata_props` that say everything a deployment needs (`read_onnx_metadata`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data
import torch
from torch import Tensor, nn

from cnnlab import __version__
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import atomic_path, why_not_a_file
from cnnlab.models import count_flops, count_params

# The dynamo exporter writes opset 18 natively and silently raises any lower request to 18; onnxruntime
# (>= 1.14), TensorRT (>= 8.6) and OpenCV 5 all run 18. Higher opsets go through onnx's version converter.
DEFAULT_OPSET = 18
MIN_OPSET = 18
MAX_OPSET = onnx.defs.onnx_opset_version()
# export.atol / export.rtol's shipped values (conf/command/export.yaml): float32 kernels of two runtimes differ by
# about 1e-6 of the largest logit; a failure within these is a tolerance set tighter than float32 arithmetic
SHIPPED_ATOL = SHIPPED_RTOL = 1.0e-4
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# a client that reads only this line must not skip the resize and crop: probe 53's lost 3 points of top-1 so
INPUT_FORMAT = ("NCHW float32 RGB (1 channel: input_channels) of the picture a viewer shows (EXIF orientation "
                "applied, transparency on white, 16-bit grey / 257, first frame; cnnlab docs/datasets.md 'How images "
                "are read'); "
                "resize, centre-crop and interpolate as input_spec says (resize, resize_to, crop, interpolation, "
                "antialias), then pixel values x in [0, 255] → (x / 255 - mean) / std")
# torch.export specialises a dimension whose example size is 1, so the example batch must not be 1.
_EXAMPLE_BATCH = 2
# The exporter's graph passes log every rewrite at INFO; a run's log should say what cnnlab did.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")


@found_before_work()  # a setting refused: the run leaves no folder (probe 114: `hydra.run.dir=DIR` kept its failed run)
def check_opset(opset: int) -> int:
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise CnnlabError(f"export.opset={opset} is out of range: torch's exporter writes opset {MIN_OPSET} to "
                          f"{MAX_OPSET}", fix=f"use export.opset={DEFAULT_OPSET} (the default)")
    return int(opset)


@dataclass(frozen=True)
class ModelIdentity:
    """What a model file is, written into the metadata of every ONNX file cnnlab makes (export, prune, quantize)
    and read back by `read_onnx_metadata`, so a file copied anywhere still says what it is.

    arch: the zoo name (`resnet18`; None for an anonymous file); classes: the class names, in output order;
    spec: the input it expects and how to get there from an image (size, mean, std, channels, resize, crop,
    interpolation: `InputSpec.to_dict()`, stored whole as `input_spec` beside the older `input_*` entries); source: what the file was made from (a
    `cnnlab.runs.Source.describe()`: kind, path, run, command); dataset: the run record's dataset section (name,
    classes, image size, and the config, with absolute roots, that rebuilds the data); untrained_head: the
    self-supervised method of a backbone exported before any fine-tune (its outputs are not class scores)."""

    arch: str | None
    classes: tuple[str, ...]
    spec: InputSpec
    source: Mapping[str, Any] | None = None
    dataset: Mapping[str, Any] | None = None
    untrained_head: str | None = None  # simclr, simsiam: a self-supervised backbone whose head was never trained

    def props(self) -> dict[str, Any]:
        """The metadata entries (JSON values); fields that are None are left out."""
        spec = self.spec.to_dict()  # one mean and std per channel, in input_spec and input_mean/std alike (probe 84)
        props: dict[str, Any] = {
            "arch": self.arch, "classes": list(self.classes), "input_size": self.spec.size,
            "input_channels": self.spec.channels, "input_mean": spec["mean"], "input_std": spec["std"],
            "input_format": INPUT_FORMAT, "input_spec": spec,
            "source": dict(self.source) if self.source is not None else None,
            "dataset": dict(self.dataset) if self.dataset is not None else None, "untrained_head": self.untrained_head}
        return {key: value for key, value in props.items() if value is not None}

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> "ModelIdentity | None":
        """The identity in decoded metadata entries; None for a file without cnnlab's input metadata."""
        older = "input_size" in props and "input_mean" in props
        if not isinstance(props.get("input_spec"), Mapping) and not older:
            return None  # input_spec alone is enough (probe 155: refused as "records no input spec")
        # input_spec carries the whole preprocessing (resize, crop, interpolation); files written before it
        # existed have the input_* entries alone, which mean a square resize to input_size.
        recorded = props["input_spec"] if isinstance(props.get("input_spec"), Mapping) else {
            "size": props["input_size"], "mean": props["input_mean"], "std": props["input_std"],
            "channels": props.get("input_channels", 3)}
        spec = InputSpec.from_dict(recorded)
        return cls(arch=props.get("arch"), classes=tuple(props.get("classes") or ()), spec=spec,
                   source=props.get("source"), dataset=props.get("dataset"),
                   untrained_head=str(props["untrained_head"]) if props.get("untrained_head") else None)


def set_metadata(proto: onnx.ModelProto, identity: ModelIdentity, *, params: int | None, flops: int | None,
                 extra: Mapping[str, Any] | None = None) -> None:
    """Replace `proto`'s metadata_props with `identity`, the cnnlab version, the FP32 graph's params and FLOPs
    per image, and `extra` (e.g. how it was quantized); the one place cnnlab writes ONNX metadata."""
    props = {**dict(extra or {}), "params": params, "flops": flops, "cnnlab_version": __version__,
             **identity.props()}
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {key: _prop_text(value) for key, value in props.items() if value is not None})
    proto.producer_name = "cnnlab"
    proto.producer_version = __version__


def export_onnx(model: nn.Module, path: Path, *, identity: ModelIdentity | None = None,
                spec: InputSpec | None = None, classes: Sequence[str] | None = None,
                metadata: Mapping[str, Any] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Write `model` as ONNX to `path` atomically (a crash leaves no half-written file).

    metadata_props hold `identity` (every cnnlab command passes one; `spec` + `classes` alone make an anonymous
    one, for tests and benchmarks), the cnnlab version, params and FLOPs, plus `metadata` (extra entries; the
    identity's fields win). The model's train/eval mode is restored afterwards.
    """
    if identity is None:
        if spec is None or classes is None:
            raise TypeError("export_onnx needs identity=, or spec= and classes=")
        identity = ModelIdentity(arch=None, classes=tuple(classes), spec=spec)
    opset = check_opset(opset)
    proto = _export_proto(standard_layout(model), identity.spec, opset)
    strip_default_attributes(proto.graph)
    set_metadata(proto, identity, params=count_params(model), flops=count_flops(model, identity.spec.size),
                 extra={"exporter": f"torch.onnx dynamo (torch {torch.__version__})", **dict(metadata or {})})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path


def copy_with_metadata(source: Path, target: Path, identity: ModelIdentity, *, params: int | None,
                       flops: int | None, extra: Mapping[str, Any] | None = None) -> Path:
    """Copy the graph `source` (e.g. a quantized candidate) to `target` atomically with `set_metadata`'s entries."""
    proto = load_onnx(source)
    set_metadata(proto, identity, params=params, flops=flops, extra=extra)
    with atomic_path(Path(target)) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(target)


def standard_layout(model: nn.Module) -> nn.Module:
    """`model`, or a copy of it in the standard (contiguous NCHW) memory layout when any weight is channels_last
    (the training engine's default on CPU). Exported from channels_last, torch.export records the strided views
    behind every keepdim mean (squeeze-excitation, global pooling) and the ONNX graph carries them as Shape/Range/
    Gather index arithmetic: EfficientNet-B0's QAT file ran 1.2x slower for it. The caller's model is left as is."""
    if any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters()):
        return copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    return model


def _export_proto(model: nn.Module, spec: InputSpec, opset: int) -> onnx.ModelProto:
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    example = torch.zeros(_EXAMPLE_BATCH, spec.channels, spec.size, spec.size, device=device)
    was_training = model.training
    model.eval()
    try:
        with _quiet_exporter(), _reused_torchlib_registry():
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - torch raises many types; the user needs one line
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CnnlabError(f"torch could not export {type(model).__name__} to ONNX: {first}",
                          fix="run with --debug for the exporter's report; file an issue with it") from exc
    finally:
        model.train(was_training)
    assert program is not None  # dynamo=True always returns an ONNXProgram
    proto = program.model_proto
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise CnnlabError(f"torch wrote opset {written} although export.opset={opset} was asked for",
                          fix=f"use export.opset={DEFAULT_OPSET}")
    return proto


# torch's ATen → ONNX function tables, one per registry class, opset and set of operator namespaces torch has
# registered (`_reused_torchlib_registry`).
_TORCHLIB_REGISTRIES: dict[tuple[type, int | None, frozenset[str]], Any] = {}


@contextlib.contextmanager
def _reused_torchlib_registry() -> Iterator[None]:
    """Build torch's table of ATen → ONNX functions once per process and opset, not once per export.

    `torch.onnx.export(dynamo=True)` rebuilds it from onnxscript's torchlib on every call (1.3-1.7 s on a 2-core
    Xeon; benchmarks/export_speed.py times the difference). A search exports every trial; prune and quantize
    export two or more models. The exporter only reads the table (`custom_translation_table`, which would add to
    it, is never passed), so one table serves every export of the same opset and the graphs are byte-identical
    (tests/deploy/test_export.py). The table only covers the operators torch had registered when it was built: QAT's
    `quantized_decomposed` ops are registered when torch.ao's FX quantization is first imported, after quantize has
    exported the FP32 model, so a table is kept per set of registered operator namespaces (13 ms to list; the
    `prims` torch.export adds to on its first run leave the set as it is) and one built before them is not used for
    the QAT graph. Private torch API: where it has moved, each export builds its own.
    """
    try:
        from torch.onnx._internal.exporter import _registration
        registry_class = _registration.ONNXRegistry
        original = registry_class.__dict__["from_torchlib"]
        build = original.__func__
        registered_ops = torch._C._dispatch_get_all_op_names
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def reused(cls: type, opset_version: int | None = None) -> Any:
        key = (cls, opset_version, frozenset(name.split("::")[0] for name in registered_ops()))
        if key not in _TORCHLIB_REGISTRIES:
            _TORCHLIB_REGISTRIES[key] = build(cls) if opset_version is None else build(cls, opset_version)
        return _TORCHLIB_REGISTRIES[key]

    registry_class.from_torchlib = classmethod(reused)
    try:
        yield
    finally:
        registry_class.from_torchlib = original


class _ConverterFallback(logging.Filter):
    """onnxscript's WARNING that its version converter hands an opset it has no rules for (28) to onnx's C API one
    (probe 170: a third-party "fallback" warning on a correct export, opset and outputs checked as always), said as
    what it is, at INFO under cnnlab's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "fallback is enabled" not in record.getMessage():
            return True
        logging.getLogger(__name__).info("the opset is converted by onnx's own version converter (onnxscript's has no "
                                         "rules for it); the file is checked against PyTorch as every export is")
        return False


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    converter, fallback = logging.getLogger("onnxscript.version_converter"), _ConverterFallback()
    converter.addFilter(fallback)
    try:
        yield
    finally:
        converter.removeFilter(fallback)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def strip_default_attributes(graph: onnx.GraphProto) -> None:
    """Drop node attributes whose value is the operator's documented default — a no-op for the graph's meaning.

    The dynamo exporter writes defaults explicitly (e.g. HardSigmoid's beta=0.5), and OpenCV 5.0's DNN
    module computes MobileNetV3's squeeze-excitation blocks wrongly when HardSigmoid carries an explicit
    beta; without it, OpenCV matches onnxruntime (see docs/export.md).
    """
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            schema = onnx.defs.get_schema(node.op_type)
        except onnx.defs.SchemaError:
            continue
        kept = []
        for attribute in node.attribute:
            declared = schema.attributes.get(attribute.name)
            default = declared.default_value if declared is not None else None
            if default is not None and default.type != 0 and _same_attribute_value(attribute, default):
                continue
            kept.append(attribute)
            if attribute.type == onnx.AttributeProto.GRAPH:
                strip_default_attributes(attribute.g)
        if len(kept) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(kept)


def _same_attribute_value(attribute: onnx.AttributeProto, default: onnx.AttributeProto) -> bool:
    if attribute.type != default.type:
        return False
    value, default_value = onnx.helper.get_attribute_value(attribute), onnx.helper.get_attribute_value(default)
    if isinstance(value, (list, np.ndarray)):
        return list(value) == list(default_value)
    return bool(value == default_value)


def _prop_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _prop_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # an untrusted file's entry nested past the limit is text (probe 136's kind)
        return text


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    """What an exported file says about itself: identity (ModelIdentity, None for a foreign file) and its fields
    classes, spec (InputSpec), arch, source, dataset; cnnlab_version, params, flops, opset, input/output names,
    and `props` (every metadata entry, decoded). Keys a foreign ONNX file lacks are None."""
    proto = load_onnx(path)
    props = {entry.key: _prop_value(entry.value) for entry in proto.metadata_props}
    try:
        identity = ModelIdentity.from_props(props)
    except (ValueError, TypeError, KeyError) as exc:  # metadata is untrusted input like the rest of the file
        raise CnnlabError(f"ONNX file {path} has invalid cnnlab metadata ({exc})",
                          fix="re-export it with `cnnlab export source=RUN`") from exc
    for key in ("params", "flops"):  # what bench divides by and the report shows (probe 193: "abc" a traceback,
        value = props.get(key)      # -5 a GFLOP/s of -0.0)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise CnnlabError(f"ONNX file {path} has invalid cnnlab metadata ({key} is {value!r}, not a positive "
                              "whole number)", fix="re-export it with `cnnlab export source=RUN`")
    return {
        "identity": identity,
        "classes": props.get("classes"),
        "spec": identity.spec if identity is not None else None,
        "source": props.get("source"),
        "dataset": props.get("dataset"),
        "cnnlab_version": props.get("cnnlab_version"),
        "arch": props.get("arch"),
        "params": props.get("params"),
        "flops": props.get("flops"),
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "inputs": [value.name for value in proto.graph.input],
        "outputs": [value.name for value in proto.graph.output],
        "props": props,
    }


def load_onnx(path: Path) -> onnx.ModelProto:
    """onnx.load with one clear line for a missing, truncated or foreign file, or a missing external-data file."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"ONNX file {path} {why_not_a_file(path)}")
    outside = next((file for file in external_data_needs(path) if file not in external_data_files(path)), None)
    if outside is not None:  # probe 209: /etc/passwd was read as weights, and "copy passwd next to the model" said
        raise CnnlabError(f"{path} names {outside} for its weights (ONNX external data), outside its folder: an ONNX "
                          "model's external data lies beside it",
                          fix="use a model file whose weights are inside it or next to it, e.g. re-export it with "
                              "`cnnlab export source=RUN`")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        missing = [file for file in external_data_files(path) if not file.is_file()]
        if missing:  # probe 90: "not a readable ONNX model (ValidationError)" named neither the cause nor the file
            raise CnnlabError(f"{path} keeps its weights in {missing[0].name} beside it (ONNX external data), and "
                              f"{missing[0]} is missing", fix=f"put {missing[0].name} next to {path.name}, as the "
                                                              "model was saved, or save the model as one file") from exc
        for file, needed in external_data_needs(Path(path)).items():  # probe 187: the intact .onnx was blamed
            if file.is_file() and file.stat().st_size < needed:
                raise CnnlabError(f"{file} is cut short: {file.stat().st_size:,} of the {needed:,} bytes of weights "
                                  f"{path.name} reads from it (ONNX external data)",
                                  fix=f"copy {file.name} whole from where the model was saved, next to {path.name}") \
                    from exc
        with path.open("rb") as head:
            zipped = head.read(4) == b"PK\x03\x04"
        if zipped:  # torch.save's zip archive (probe 155: "not a readable ONNX model", no more)
            raise CnnlabError(f"{path} is a PyTorch file (torch.save's zip archive), not an ONNX model",
                              fix=f"name it {path.stem}.pt, or point to a model.onnx written by `cnnlab export`") \
                from exc
        raise CnnlabError(f"{path} is not a readable ONNX model ({type(exc).__name__})",
                          fix="point to a model.onnx written by `cnnlab export`, or re-export it") from exc


def external_data_files(path: Path) -> list[Path]:
    """The files beside `path` an ONNX model keeps its tensors in (onnx's save_as_external_data, torch.onnx for models
    over 2 GB), unique, in order; [] for a self-contained file or one that does not parse. Locations that lead out
    of the model's folder are left out (onnx refuses to read them too)."""
    path = Path(path)
    folder = path.parent.resolve()
    return [file for file in external_data_needs(path) if file.resolve().is_relative_to(folder)]


def external_data_needs(path: Path) -> dict[Path, int]:
    """Per external-data file the ONNX model at `path` names, in order: how many bytes its tensors reach into it (the
    largest offset + length; a tensor without a length takes its dims × element size). {} for a self-contained file
    or one that does not parse."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - load_onnx says what is wrong with such a file
        return {}
    needs: dict[Path, int] = {}
    for tensor in proto.graph.initializer:
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        length = info.length if info.length else \
            math.prod(tensor.dims) * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        file = path.parent / info.location
        needs[file] = max(needs.get(file, 0), (info.offset or 0) + length)
    return needs


def model_file_bytes(path: Path) -> int:
    """The bytes of a model file; for an .onnx file, with the external-data files beside it (probe 90: a 93 kB stub of
    a 44.7 MB model was recorded as the FP32 size, and its INT8 file as 122× larger)."""
    path = Path(path)
    external = external_data_files(path) if path.suffix.lower() == ".onnx" else []
    return path.stat().st_size + sum(file.stat().st_size for file in external if file.is_file())


class OnnxMismatch(CnnlabError):
    """onnxruntime's logits differ from PyTorch's beyond the tolerance; `.result` holds the numbers."""

    def __init__(self, message: str, result: dict[str, Any], fix: str | None = None) -> None:
        self.result = result
        super().__init__(message, fix=fix)


def verify_onnx(path: Path, model: nn.Module, images: Tensor, *, atol: float, rtol: float = 0.0,
                batch_size: int = 32) -> dict[str, Any]:
    """onnx.checker, then onnxruntime vs `model` on `images`.

    Returns max_abs_diff, top1_agreement, n, tolerance (atol + rtol * the largest |logit|) and logit_scale.
    Raises OnnxMismatch (a CnnlabError) when max_abs_diff exceeds the tolerance or an output is not finite.
    Runs the first image alone as well, so the dynamic batch axis is exercised at N=1 and N=batch_size.
    """
    from cnnlab.deploy.ort import onnx_session

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        raise CnnlabError(f"{path} fails onnx.checker: {first}") from exc
    if len(images) == 0:
        raise CnnlabError("no images to verify the ONNX file on", fix="use a dataset with a validation split")
    expected, actual = logits_side_by_side(model, onnx_session(path), [images[:1], *images.split(batch_size)])
    result = compare_logits(expected, actual, atol=atol, rtol=rtol)
    result["n"] = len(images)  # the single-image rerun is not counted twice
    if not result["passed"]:
        shipped = SHIPPED_ATOL + SHIPPED_RTOL * (result["logit_scale"] or 0.0)
        # probe 136: export.atol=1e-7 failed on a 2.9e-6 difference, and the fix named the simplifier and the opset
        fix = (f"the difference is within the shipped tolerance ({shipped:.3g}: export.atol={SHIPPED_ATOL:g} "
               f"export.rtol={SHIPPED_RTOL:g}), which float32 arithmetic of two runtimes needs: use those"
               if result["max_abs_diff"] <= shipped else
               "try export.simplify=false or another export.opset; report the model if it persists")
        raise OnnxMismatch(
            f"ONNX output differs from PyTorch: max |logit difference| {result['max_abs_diff']:.3g} > tolerance "
            f"{result['tolerance']:.3g}, top-1 agreement {result['top1_agreement']:.1%} on {result['n']} images",
            result, fix=fix)
    return result


def logits_side_by_side(model: nn.Module, session: Any, chunks: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """`model`'s logits in eval mode (float32, on the CPU) and the ONNX `session`'s first output on the same image
    `chunks` ([N, C, H, W] float32 each), each concatenated over the chunks; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    name = session.get_inputs()[0].name
    expected, actual = [], []
    try:
        with torch.no_grad():
            for chunk in chunks:
                expected.append(model(chunk.to(device)).float().cpu())
                actual.append(torch.from_numpy(session.run(None, {name: chunk.numpy()})[0]))
    finally:
        model.train(was_training)
    return torch.cat(expected), torch.cat(actual)


def compare_logits(expected: Tensor, actual: Tensor, *, atol: float, rtol: float = 0.0) -> dict[str, Any]:
    """max |difference|, top-1 agreement and whether the difference is within atol + rtol * max |expected|."""
    if expected.shape != actual.shape:
        return {"max_abs_diff": float("inf"), "top1_agreement": 0.0, "n": len(expected), "tolerance": atol,
                "logit_scale": None, "passed": False, "shape_mismatch": [list(expected.shape), list(actual.shape)]}
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    tolerance = float(atol) + float(rtol) * scale
    finite = bool(torch.isfinite(actual).all())
    diff = float((expected - actual).abs().max()) if finite else float("inf")
    agreement = float((expected.argmax(-1) == actual.argmax(-1)).float().mean())
    return {"max_abs_diff": diff, "top1_agreement": agreement, "n": len(expected), "tolerance": tolerance,
            "logit_scale": scale, "passed": finite and diff <= tolerance}
