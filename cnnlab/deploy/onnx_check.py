"""Is an ONNX file from disk the model its metadata says it is? Checked before it is timed, quantized or scored.

An ONNX file is untrusted input: its metadata (input spec, classes — what `cnnlab export` writes) can sit on
any graph. An Identity graph carrying a ResNet's metadata would otherwise be "benchmarked" at tens of
thousands of images/s. `check_onnx_file` compares the graph with the metadata — the input is [N, C, H, W]
with the recorded channels and size, the first output is [N, num_classes], and at least one node does the
work of a network (a convolution or a matrix product) — without running it.

The same reading of the graph says how to run and score it: what it computes in (`graph_precision`: int8 when
it holds quantized operators — the one test `cnnlab quantize` uses too — fp16 when its weights or input are
float16, else fp32), what its output is (`output_kind`: logits, or probabilities when a Softmax makes it), and
whether its batch dimension is fixed (`fixed_batch`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
import onnx.inliner
from onnx import TensorProto, helper, numpy_helper

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import OUTPUT_NAME, load_onnx, read_onnx_metadata
from cnnlab.deploy.onnx_elementwise import Squash, dequantize, unit_squash
from cnnlab.errors import CnnlabError
from cnnlab.wording import listed

# Nodes that compute a layer of a network, in float and quantized graphs (QDQ keeps Conv; QOperator and
# dynamic quantization use the integer ops; onnxruntime's fused ops appear in pre-optimised files).
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv",
                         "QLinearMatMul", "QGemm", "FusedConv", "FusedGemm", "FusedMatMul", "DynamicQuantizeMatMul",
                         "MatMulIntegerToFloat", "NhwcConv", "QLinearConvTranspose"})
# Operators that only exist in a quantized graph: their presence is what makes a file INT8 (`quantized_ops`).
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
                 "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat",
                 "QLinearSigmoid", "QLinearLeakyRelu", "QGemm", "ConvInteger", "MatMulInteger",
                 "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
# What the first output of a classifier holds (`output_kind`).
LOGITS, PROBABILITIES, LOG_PROBABILITIES = "logits", "probabilities", "log-probabilities"
# One-vs-rest probabilities: each class's own sigmoid (a head trained with binary cross-entropy, as timm's BCE
# recipes and multi-label models are); they need not sum to 1.
SIGMOID_PROBABILITIES = "sigmoid-probabilities"
# Arithmetic on several computed values of which one comes from a softmax (an ensemble's averaged softmaxes,
# or the same × 50): probabilities or not, only the values can tell (ort.sensed_output_kind decides on the first
# batch: probability rows are read as such, anything else is refused).
FROM_PROBABILITIES = "computed-from-probabilities"
# (domain, op) → kind; onnxruntime's QOperator INT8 graphs end in its QLinear versions.
_OUTPUT_OPS = {("", "Softmax"): PROBABILITIES, ("", "LogSoftmax"): LOG_PROBABILITIES,
               ("", "Sigmoid"): SIGMOID_PROBABILITIES, ("", "HardSigmoid"): SIGMOID_PROBABILITIES,
               ("com.microsoft", "QLinearSoftmax"): PROBABILITIES,
               ("com.microsoft", "QLinearSigmoid"): SIGMOID_PROBABILITIES}
# Nodes between a Softmax and the graph output that leave the values as they are (a converter's Cast, a reshape,
# a quantizer's Q/DQ pair around the probabilities).
_PASS_THROUGH = frozenset({"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "QuantizeLinear", "DequantizeLinear"})
# Elementwise arithmetic a converter may put after the probabilities (× 100 for percent), as (domain, op):
# followed back through its one computed input; between an ending and the output it makes the output unreadable
# (`UnreadableOutput`). onnxruntime's QOperator quantizer writes a Mul or Add as QLinearMul / QLinearAdd.
_VALUE_OPS = frozenset({*(("", op) for op in ("Mul", "Div", "Add", "Sub", "Pow", "Exp", "Log", "Neg", "Abs", "Sqrt",
                                              "Reciprocal", "Clip", "Relu", "LeakyRelu", "Max", "Min", "Round", "Floor",
                                              "Ceil")),
                        *(("com.microsoft", op) for op in ("QLinearMul", "QLinearAdd", "QLinearLeakyRelu"))})
_RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze"})  # after a transpose: where each axis ends up is lost
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)  # bfloat16: onnxruntime cannot return it
_LOG_SIGMOID = "log-sigmoid"  # a step of the walk only: no kind cnnlab reads
_LOG_EXP = {(PROBABILITIES, "Log"): LOG_PROBABILITIES, (LOG_PROBABILITIES, "Exp"): PROBABILITIES,
            (SIGMOID_PROBABILITIES, "Log"): _LOG_SIGMOID, (_LOG_SIGMOID, "Exp"): SIGMOID_PROBABILITIES}
log = logging.getLogger(__name__)
MAX_FIXED_INPUT_BYTES = 2 ** 30  # a fixed batch whose input alone is larger is refused (every run pads up to it)
_TOLD: set[Path] = set()  # files whose outputs were named in this process
# … and one whose metadata names a run may be another network under metadata copied from that run's export (probe 226:
# "re-export it from its run" would have exported the run's LeNet-5, not the file's network).
_FIX = ("if it is the network of the run its metadata names, re-export it from that run with `cnnlab export "
        "source=RUN` or point to the run's own model.onnx; a file made elsewhere under metadata copied from an export "
        "needs the metadata of its own network (its params, flops, classes: docs/export.md, 'The file')")
# A file whose metadata names no run it came from (made elsewhere, its metadata copied or written by hand):
# "re-export it from its run" names a run it does not have (probe 187).
_FIX_ELSEWHERE = ("make the file as docs/export.md ('The file') describes — one [N, C, H, W] float32 input, the "
                  "class scores as its first output — with metadata that describes it, or point to a model.onnx "
                  "written by `cnnlab export`")


def _fix_for(meta: dict[str, Any]) -> str:
    """The fix for a file that contradicts its metadata: re-export from its run where the metadata names one."""
    source = meta.get("source")
    return _FIX if isinstance(source, dict) and source.get("run") else _FIX_ELSEWHERE


def no_metadata(path: Path) -> CnnlabError:
    """The one refusal of an ONNX file without cnnlab's metadata (bench, evaluate, predict and quantize each said it
    otherwise, probe 187), marked found before any work: the refused run leaves no folder."""
    error = CnnlabError(f"{path} has no cnnlab metadata (input size, mean/std, class names): cnnlab reads how to feed "
                        "the file and what its outputs are from it",
                        fix="export the model with `cnnlab export source=RUN` (or pass the run's model.pt); for a file "
                            "made elsewhere, copy the metadata of the export it came from (docs/export.md, 'The file')")
    error.before_work = True
    return error


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file that passed `check_onnx_file`: its path, input spec and class names (from its metadata;
    None for a file without cnnlab metadata), the full decoded metadata (read_onnx_metadata's dict), and what
    its graph says: `precision` ("fp32" | "fp16" | "int8", `graph_precision`), `outputs` (LOGITS | PROBABILITIES
    | LOG_PROBABILITIES | SIGMOID_PROBABILITIES | FROM_PROBABILITIES, `output_kind`), `batch` (the fixed batch size
    of its input; None: dynamic) and `unreadable` (why no score can be read from its output, or None)."""

    path: Path
    spec: InputSpec | None
    classes: list[str] | None
    metadata: dict[str, Any]
    precision: str = "fp32"
    outputs: str = LOGITS
    batch: int | None = None
    unreadable: CnnlabError | None = None  # output_kind's UnreadableOutput, with the path: raise it to read scores


def _dims(value: onnx.ValueInfoProto) -> list[int | None] | None:
    """The dims of a tensor value (None for a symbolic or unknown one), or None when its rank is unknown."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _nodes(proto: onnx.ModelProto) -> Iterable[onnx.NodeProto]:
    """Every node: the main graph, model-local functions (the dynamo exporter's modules) and subgraphs."""
    stack = [proto.graph.node, *(f.node for f in proto.functions)]
    while stack:
        for node in stack.pop():
            yield node
            stack.extend(a.g.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)


def _proto(model: onnx.ModelProto | Path | str) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else load_onnx(Path(model))


def quantized_ops(model: onnx.ModelProto | Path | str) -> Counter[str]:
    """How many nodes of each quantized operator type (QUANTIZED_OPS) the graph holds — main graph, functions and
    subgraphs — for a loaded model or a path; empty for a float graph. The one test of "is this file INT8" that
    quantize (refusing to quantize twice), evaluate, predict and bench all use."""
    return Counter(node.op_type for node in _nodes(_proto(model)) if node.op_type in QUANTIZED_OPS)


# Operators whose output for one image depends on the other images of its batch: onnxruntime's dynamic quantization
# sets one activation range per call, over the whole batch (probe 181: a dynamic_u8 MobileNetV2 scored 41.11 % in
# batches of 128 and 43.06 % one image at a time, 5.6 % of its images in another class).
BATCH_DEPENDENT_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul"})


def batch_dependent(model: onnx.ModelProto | Path | str) -> bool:
    """Whether the graph computes an image's output from the whole batch it came in (BATCH_DEPENDENT_OPS), so it is
    scored one image per run (ort.run_images): what `cnnlab bench` times at batch 1 and a server sends."""
    return any(node.op_type in BATCH_DEPENDENT_OPS for node in _nodes(_proto(model)))


# Where each quantized operator takes its weight: the input index of the INT8 weight tensor.
_WEIGHT_INPUT = {"QLinearConv": 3, "QGemm": 3, "QLinearMatMul": 3, "ConvInteger": 1, "MatMulInteger": 1}
_INTEGER_TYPES = {TensorProto.INT8: "s8", TensorProto.UINT8: "u8"}


def weight_types(model: onnx.ModelProto | Path | str) -> Counter[str]:
    """How many quantized weight tensors are stored as "s8" (int8) and "u8" (uint8): the weight inputs of QOperator
    nodes, and the int8/uint8 initializers a QDQ graph dequantizes. What the file holds, which is not always what was
    asked: onnxruntime stores per-channel convolution weights as S8 whatever weight type it is given (probe 131:
    `qop_u8u8` recorded "u8" for a file whose every QLinearConv weight was int8)."""
    proto = _proto(model)
    initializers = {t.name: t.data_type for t in proto.graph.initializer}
    found: Counter[str] = Counter()
    for node in _nodes(proto):
        index = _WEIGHT_INPUT.get(node.op_type, 0 if node.op_type == "DequantizeLinear" else None)
        if index is not None and len(node.input) > index and initializers.get(node.input[index]) in _INTEGER_TYPES:
            found[_INTEGER_TYPES[initializers[node.input[index]]]] += 1
    return found


def graph_precision(model: onnx.ModelProto | Path | str) -> str:
    """What the graph computes in: "int8" when it holds quantized operators (`quantized_ops`), "fp16" when its
    input or most of its float weights are float16 (onnxconverter_common's convert_float_to_float16, with or
    without keep_io_types), else "fp32"."""
    proto = _proto(model)
    if quantized_ops(proto):
        return "int8"
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if inputs and inputs[0].type.tensor_type.elem_type == TensorProto.FLOAT16:
        return "fp16"
    sizes: Counter[int] = Counter()
    for tensor in proto.graph.initializer:
        if tensor.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            sizes[tensor.data_type] += math.prod(tensor.dims)
    return "fp16" if sizes[TensorProto.FLOAT16] > sizes[TensorProto.FLOAT] else "fp32"


class UnreadableOutput(CnnlabError):
    """A graph whose output is computed from its probabilities by further arithmetic (a Softmax × 100 gives
    percent): neither logits, probabilities nor log-probabilities, so no score read from it would be right."""


def integer_output(dtype: str) -> UnreadableOutput:
    """The refusal of an output of integer or bool `dtype` (declared in the graph, or seen in a run's values)."""
    return UnreadableOutput(f"its output holds {dtype} values (a QuantizeLinear or a Cast ends the graph), not float "
                            "scores: read as probabilities or logits they would be wrong",
                            fix="export the model with a float output (the logits, or a DequantizeLinear at the end, "
                                "as onnxruntime's quantizers write)")


def output_kind(model: onnx.ModelProto | Path | str) -> str:
    """What the first output holds: PROBABILITIES when a Softmax over the classes makes it (possibly followed by
    a Cast, Identity, reshape, Transpose or Q/DQ pair), LOG_PROBABILITIES for a LogSoftmax or a Log of a Softmax,
    SIGMOID_PROBABILITIES for a Sigmoid or HardSigmoid (one-vs-rest) or a sigmoid written out in elementwise
    arithmetic (`_OutputWalk.written_out_sigmoid`), FROM_PROBABILITIES for arithmetic on
    several computed values one of which comes from a softmax (an ensemble's mean of softmaxes: its first batch
    decides, ort.sensed_output_kind), else LOGITS (cnnlab's own exports). Model-local functions (torch.onnx's
    dynamo exporter wraps modules in them) are inlined first.

    Errors: UnreadableOutput (a CnnlabError) when elementwise arithmetic stands between such an ending and the
    output (Mul by 100, an Add, ... with one computed input), other than × 1, + 0, a Clip to [0, 1] or a Relu of
    probabilities, Log of probabilities or Exp of log-probabilities."""
    proto = _proto(model)
    if not proto.graph.output:
        return LOGITS
    element = proto.graph.output[0].type.tensor_type.elem_type
    if element == TensorProto.BFLOAT16:
        raise UnreadableOutput("its output is bfloat16, which onnxruntime cannot hand back to Python",
                               fix="export the model with a float32 (or float16) output: a Cast to float at the end")
    if element not in (TensorProto.UNDEFINED, *_FLOATS):
        raise integer_output(TensorProto.DataType.Name(element).lower() if element in TensorProto.DataType.values()
                             else str(element))
    walk = _OutputWalk(_inlined(proto), _opset(proto))
    kind = walk.kind()
    return walk.written_out_sigmoid() if kind == LOGITS else kind


def _inlined(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with its model-local functions inlined (their attribute references resolved), or as it is when it
    has none or they cannot be inlined (recursive, malformed: untrusted files) — the walk then stops at a call."""
    if not proto.functions:
        return proto
    try:
        return onnx.inliner.inline_local_functions(proto)
    except Exception:  # noqa: BLE001 - onnx's ValidationError and parse errors alike: read the calls as opaque
        return proto


@dataclass(frozen=True)
class _Step:
    """An elementwise node between a value and the output: its op, whether it leaves every value as it is (× 1,
    + 0) and whether it leaves values in [0, 1] as they are (a Relu, a Clip to at least [1e-6, 1])."""

    op: str
    identity: bool = False
    keeps_probabilities: bool = False


@dataclass
class _Tail:
    """What lies between the value being traced and the graph's output: elementwise steps passed (`passed`,
    nearest the output first) and where each axis of the value ends up in the output (`axes`; None: unmoved, []:
    lost to a reshape after a transpose, or to a transpose the walk cannot follow)."""

    passed: list[_Step] = field(default_factory=list)
    axes: list[int] | None = None

    def transposed(self, perm: list[int] | None) -> None:
        """Walking back through Transpose(perm): out axis i is in axis perm[i]."""
        rank = len(perm) if perm is not None else len(self.axes or [])
        if perm is None and rank:
            perm = list(range(rank))[::-1]  # the operator's default: reverse the axes
        if perm is None or sorted(perm) != list(range(rank)) or self.axes == [] or \
                (self.axes is not None and len(self.axes) != rank):
            self.axes = []
            return
        outer = self.axes if self.axes is not None else list(range(rank))
        inner = [0] * rank
        for i, j in enumerate(perm):
            inner[j] = outer[i]
        self.axes = inner

    def over_classes(self, axis: int, opset: int) -> bool:
        """Whether a softmax over `axis` of the traced value is over the output's classes (its last axis). Before
        opset 13 a softmax normalises over axes `axis`..last flattened, so it must be the last axis alone."""
        if self.axes is None:
            return axis in (-1, 1)  # [N, classes]; opset < 13's axis=1 flattens to it
        if not self.axes:
            return False
        rank = len(self.axes)
        axis = axis + rank if axis < 0 else axis
        if opset < 13 and axis != rank - 1:
            return False
        return 0 <= axis < rank and self.axes[axis] == rank - 1


class _OutputWalk:
    """Walks back from a graph's output to what makes it (`kind`), through pass-through nodes, transposes and
    elementwise arithmetic with one computed input."""

    def __init__(self, proto: onnx.ModelProto, opset: int) -> None:
        self.opset = opset
        self.output = proto.graph.output[0].name
        dims = _dims(proto.graph.output[0])
        self.classes = dims[-1] if dims and dims[-1] and len(dims) >= 2 else None  # declared: [N, classes]
        self.initializers = {t.name: t for t in proto.graph.initializer}
        self.producers = {output: node for node in proto.graph.node for output in node.output}
        self._constants: dict[str, bool] = {}
        self._values: dict[str, Any] = {}  # _value's answers: a chain of DequantizeLinear nodes is 3^K paths

    def kind(self) -> str:
        name, tail = self.output, _Tail()
        for _ in range(len(self.producers) + 1):
            node = self.producers.get(name)
            if node is None:
                return LOGITS
            domain = "" if node.domain == "ai.onnx" else node.domain
            ending = _OUTPUT_OPS.get((domain, node.op_type))
            if ending is not None:
                return self._ending(node, ending, tail)
            if node.op_type == "TopK" and domain == "":
                raise UnreadableOutput("its output is made by a TopK: its columns are ranks, sorted, not the classes",
                                       fix="export the model with the logits (or the Softmax) over all classes, in "
                                           "class order, as its output")
            if node.op_type == "Transpose" and domain == "":
                tail.transposed(next((list(a.ints) for a in node.attribute if a.name == "perm"), None))
            elif (domain, node.op_type) in _VALUE_OPS:
                variable = [i for i in node.input if i and not self._is_constant(i)]
                if len(variable) != 1:  # several computed values (x * sigmoid(x), an ensemble's mean)
                    return FROM_PROBABILITIES if any(self._reaches_ending(v) for v in variable) else LOGITS
                tail.passed.append(self._step(node, variable[0]))
                name = variable[0]
                continue
            elif domain != "" or node.op_type not in _PASS_THROUGH:
                return LOGITS
            elif tail.axes is not None and node.op_type in _RESHAPES:
                tail.axes = []
            if not node.input:
                return LOGITS
            name = node.input[0]
        return LOGITS

    def written_out_sigmoid(self) -> str:
        """SIGMOID_PROBABILITIES when the output is a sigmoid spelled without a Sigmoid node (1 / (1 + exp(−x)),
        exp(x) / (1 + exp(x)), 0.5 · (1 + tanh(x / 2)), torch's stable `where` form, a probit, a hard sigmoid by
        Clip, a Concat or Max of such: onnx_elementwise.unit_squash), else LOGITS. Errors: UnreadableOutput as
        `_read_squash`."""
        squash = unit_squash(self.output, self.producers, self._value, self._is_constant, self.classes)
        return LOGITS if squash is None else self._read_squash(squash)

    def _read_squash(self, squash: Squash) -> str:
        """SIGMOID_PROBABILITIES for a squash onto [0, 1]; UnreadableOutput, naming its ops, for one scaled (× 100:
        percent; per class), narrowed (label smoothing, a clamp inside (0, 1)), bounded by Clip/Relu alone onto
        [0, c ≠ 1] (a ReLU6 head cannot be told from a hard sigmoid × 6), or the log of one."""
        if squash.unit and not squash.logarithm:
            return SIGMOID_PROBABILITIES
        ops = f"{', '.join(squash.ops)} on the logits"
        low, high = squash.bottom[0], squash.top[1]
        if squash.constant is not None:
            low, high = min(low, squash.constant[0]), max(high, squash.constant[1])
        uniform = squash.top[1] - squash.top[0] <= 1e-3 * squash.top[1]
        if squash.logarithm:
            what = f"the log of a sigmoid ({ops})"
        elif squash.from_zero and uniform and not squash.smooth:
            what = (f"bounded to [0, {high:.4g}] by {ops}: a hard sigmoid scaled by {high:.4g}, or the logits "
                    "clamped")
        elif squash.from_zero and uniform:
            what = f"a sigmoid ({ops}) scaled to [0, {high:.4g}]"
        elif squash.from_zero and squash.constant is None:
            what = f"a sigmoid ({ops}) scaled per class to [0, c], c from {squash.top[0]:.4g} to {high:.4g}"
        elif low >= 0 and high <= 1 + 1e-3:
            what = (f"a sigmoid ({ops}) narrowed to [{low:.4g}, {high:.4g}] (label smoothing, a clamp inside "
                    "(0, 1), a sigmoid of clipped logits)")
        else:
            what = f"a sigmoid ({ops}) moved to [{low:.4g}, {high:.4g}]"
        raise UnreadableOutput(f"its output is {what} — neither logits nor probabilities, so the model's "
                               "probabilities (its loss, calibration) cannot be read from it",
                               fix="export the model with the logits (before any clamp), or the sigmoid itself, as "
                                   "its output, without the arithmetic after it")

    def _reaches_ending(self, name: str) -> bool:
        """Whether a softmax (Softmax, LogSoftmax, QLinearSoftmax) makes `name` through the nodes the walk passes
        (elementwise arithmetic on any number of computed values, transposes, pass-through nodes). Sigmoids do not
        count: x * sigmoid(x) is SiLU, an activation a head may end in, whose values are its logits."""
        stack, seen = [name], set()
        while stack and len(seen) < 256:
            current = stack.pop()
            node = self.producers.get(current)
            if current in seen or node is None:
                continue
            seen.add(current)
            domain = "" if node.domain == "ai.onnx" else node.domain
            if _OUTPUT_OPS.get((domain, node.op_type), SIGMOID_PROBABILITIES) != SIGMOID_PROBABILITIES:
                return True
            if (domain, node.op_type) in _VALUE_OPS:
                stack.extend(i for i in node.input if i and not self._is_constant(i))
            elif domain == "" and (node.op_type in _PASS_THROUGH or node.op_type == "Transpose") and node.input:
                stack.append(node.input[0])
        return False

    def _ending(self, node: Any, ending: str, tail: _Tail) -> str:
        kind = ending
        steps = [step for step in reversed(tail.passed) if not step.identity]  # from the ending to the output
        if ending == SIGMOID_PROBABILITIES and steps:
            # elementwise steps after a sigmoid are read from their numbers, as a written-out sigmoid's are: a clamp
            # to [1e-6, 1 - 1e-6] or σ² stays probabilities, × 100 or label smoothing is refused alike
            squash = unit_squash(self.output, self.producers, self._value, self._is_constant, self.classes)
            if squash is not None:
                return self._read_squash(squash)
        for step in steps:
            if kind in (PROBABILITIES, SIGMOID_PROBABILITIES) and step.keeps_probabilities:
                continue
            # log(softmax(x)), exp(logsoftmax(x)); exp(log(sigmoid(x))) (torch's exp(logsigmoid(x))) is a sigmoid
            after = _LOG_EXP.get((kind, step.op))
            if after is None:
                kind = ""
                break
            kind = after
        if kind in ("", _LOG_SIGMOID):
            raise UnreadableOutput(
                f"its output is computed from a {node.op_type} by {' then '.join(s.op for s in steps)} — neither "
                "logits, probabilities nor log-probabilities, so the model's probabilities (its loss, calibration) "
                "cannot be read from it",
                fix=f"export the model with the logits (or the {node.op_type} itself) as its output, without the "
                    "arithmetic after it")
        if ending != SIGMOID_PROBABILITIES:  # elementwise sigmoids have no axis; a softmax must be over the classes
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if self.opset >= 13 else 1)
            if not tail.over_classes(axis, self.opset):
                return LOGITS
        return kind

    def _step(self, node: Any, variable: str) -> _Step:
        if node.op_type == "Relu":
            return _Step(node.op_type, keeps_probabilities=True)
        if node.op_type == "Clip":
            low, high = self._clip_bounds(node)
            # within 1e-3 of [0, 1]: torch's clamp(eps, 1 - eps) has 1 - 1e-6 = 0.99999899 in float32
            return _Step(node.op_type, keeps_probabilities=(low is None or low <= 1e-3) and
                         (high is None or high >= 1 - 1e-3))
        neutral = {"Mul": 1.0, "Div": 1.0, "Add": 0.0, "Sub": 0.0}.get(node.op_type)
        if neutral is None or len(node.input) != 2 or node.domain not in ("", "ai.onnx"):
            return _Step(node.op_type)
        constant = node.input[1] if node.input[0] == variable else node.input[0]
        if node.op_type in ("Div", "Sub") and constant == node.input[0]:
            return _Step(node.op_type)  # 1 / p or 0 − p
        value = self._value(constant)
        return _Step(node.op_type, identity=value is not None and value.size > 0 and bool((value == neutral).all()))

    def _clip_bounds(self, node: Any) -> tuple[float | None, float | None]:
        """Clip's (min, max): attributes before opset 11, optional inputs since; None where absent. A bound that
        cannot be read is taken as 0.5, one that clips probabilities."""
        attributes = {a.name: a.f for a in node.attribute if a.name in ("min", "max")}
        bounds: list[float | None] = [attributes.get("min"), attributes.get("max")]
        for index, name in enumerate(node.input[1:3]):
            if name:
                value = self._value(name)
                bounds[index] = float(value.reshape(-1)[0]) if value is not None and value.size == 1 else 0.5
        return bounds[0], bounds[1]

    def _is_constant(self, name: str, depth: int = 0) -> bool:
        """Whether `name` is known before the graph runs: an initializer, a Constant, or computed from such only."""
        if name in self._constants:
            return self._constants[name]
        node = self.producers.get(name)
        if name in self.initializers:
            constant = True
        elif node is None or depth > 32:
            constant = False
        elif node.op_type == "Constant":
            constant = True
        else:
            inputs = [i for i in node.input if i]
            constant = bool(inputs) and all(self._is_constant(i, depth + 1) for i in inputs)
        self._constants[name] = constant
        return constant

    def _value(self, name: str, depth: int = 0) -> Any:
        """The float values of constant `name` (an initializer, a Constant node's, through Identity / Cast /
        DequantizeLinear), or None when not known here. Each name is read once."""
        if name not in self._values:
            self._values[name] = self._read_value(name, depth)
        return self._values[name]

    def _read_value(self, name: str, depth: int) -> Any:
        tensor = self.initializers.get(name)
        node = self.producers.get(name)
        try:
            if tensor is not None:
                return numpy_helper.to_array(tensor).astype("float64")
            if node is None or depth > 32:
                return None
            if node.op_type in ("Identity", "Cast") and node.input:
                return self._value(node.input[0], depth + 1)
            if node.op_type == "DequantizeLinear" and len(node.input) >= 2:  # a QDQ file's constants (its 1 in 1 + e)
                zero = self._value(node.input[2], depth + 1) if len(node.input) > 2 and node.input[2] else 0.0
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                return dequantize(self._value(node.input[0], depth + 1), self._value(node.input[1], depth + 1), zero,
                                  axis)
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value":
                        return numpy_helper.to_array(attribute.t).astype("float64")
                    if attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
                        return np.asarray(onnx.helper.get_attribute_value(attribute), dtype="float64")
        except Exception:  # noqa: BLE001 - an external, string or malformed tensor: not known
            return None
        return None


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 13)


def fixed_batch(model: onnx.ModelProto | Path | str) -> int | None:
    """The batch size the (single) image input is fixed to, or None when its first dimension is dynamic (a name,
    or not given) — `cnnlab export` writes a dynamic one."""
    proto = _proto(model)
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    dims = _dims(inputs[0]) if inputs else None
    return dims[0] if dims and dims[0] else None


def _output_read(names: list[str]) -> str:
    """The output cnnlab reads, in words: "its output 'logits'", or "its first output (of 2) 'features'"."""
    return f"its first output (of {len(names)}) {names[0]!r}" if len(names) > 1 else f"its output {names[0]!r}"


def _other_fitting(proto: onnx.ModelProto, num_classes: int) -> str:
    """', and its output 'scores' has the 4 classes: put it first' where another declared output of the graph has
    [N, num_classes] (probe 187: features first, scores second, said as "512 classes" alone); '' otherwise."""
    for value in proto.graph.output[1:]:
        dims = _dims(value)
        if dims is not None and len(dims) == 2 and dims[1] == num_classes:
            return f", and its output {value.name!r} has the {num_classes} classes: cnnlab reads the first output"
    return ""


def graph_problems(proto: onnx.ModelProto, spec: InputSpec | None, num_classes: int | None,
                   params: Any = None, flops: Any = None) -> list[str]:
    """What in the graph contradicts the metadata (`spec`, `num_classes`, `params`: the network's parameter count,
    `flops`: its FLOPs an image at the spec's size; None: not recorded), in words."""
    problems = []
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [v for v in proto.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        problems.append(f"it has {len(inputs)} inputs, not one image batch")
    else:
        dims = _dims(inputs[0])
        expected = None if spec is None else [None, spec.channels, spec.size, spec.size]
        if dims is not None and len(dims) != 4:
            problems.append(f"its input has {len(dims)} dimensions, not [N, C, H, W]")
        elif dims is not None and expected is not None and any(
                d is not None and e is not None and d != e for d, e in zip(dims[1:], expected[1:])):
            shown = ["N" if d is None else d for d in dims]
            problems.append(f"its input is {shown} but the metadata says [N, {spec.channels}, {spec.size}, "  # type: ignore[union-attr]
                            f"{spec.size}]")  # type: ignore[union-attr]
    names = [value.name for value in proto.graph.output]
    if not proto.graph.output:
        problems.append("it has no output")
    elif OUTPUT_NAME in names[1:]:  # probe 90: an `aux` output first, the logits second: the aux head was scored
        problems.append(f"its first output is {names[0]!r} and another is named {OUTPUT_NAME!r}: cnnlab reads the "
                        "first output as the classifier's")
    else:
        dims = _dims(proto.graph.output[0])
        if dims is None or not dims:  # not declared: infer it (cheap, does not run the graph)
            try:
                inferred = onnx.shape_inference.infer_shapes(proto)
                dims = _dims(inferred.graph.output[0])
            except Exception:  # noqa: BLE001 - inference failing says nothing about the file; the other checks stand
                dims = None
        if dims is not None and dims and len(dims) != 2:
            problems.append(f"its output has {len(dims)} dimensions, not [N, classes]")
        elif dims is not None and len(dims) == 2 and num_classes is not None and dims[1] not in (None, num_classes):
            problems.append(f"{_output_read(names)} has {dims[1]} classes but the metadata names "
                            f"{num_classes}{_other_fitting(proto, num_classes)}")
    if not any(node.op_type in COMPUTE_OPS for node in _nodes(proto)):
        ops = sorted({node.op_type for node in _nodes(proto)})
        problems.append(f"it has no convolution or matrix product (its nodes: {', '.join(ops[:6]) or 'none'})")
    weights = graph_weights(proto)
    if isinstance(params, int) and params > 0 and weights and not WEIGHTS_PER_PARAM[0] <= weights / params <= \
            WEIGHTS_PER_PARAM[1]:  # probe 90: a ResNet-34 graph under ResNet-18's metadata was timed as ResNet-18
        problems.append(f"its graph holds {weights:,} weights, and the metadata describes a network of {params:,} "
                        "parameters (another network, or one edited since its export)")
    counted = graph_flops(proto, spec) if isinstance(flops, int) and flops > 0 and spec is not None else None
    if counted and not FLOPS_PER_RECORDED[0] <= counted / flops <= FLOPS_PER_RECORDED[1]:  # type: ignore[operator]
        # probe 187: FLOPs of 32 px recorded for a file timed at 48 px: bench's GFLOP/s and % of peak 2.25x low
        size = spec.size  # type: ignore[union-attr]
        problems.append(f"its graph computes {counted:,} FLOPs an image at {size} px, and the metadata records "
                        f"{flops:,} (another network or input size, or metadata edited since its export)")
    scale = _broken_scale(proto)
    if scale is not None:
        problems.append(scale)
    return problems


# Where quantized operators read their scales (ONNX's QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul;
# onnxruntime's com.microsoft QLinear* ops): each a positive, finite number per tensor or per channel.
_SCALE_INPUTS = {"QuantizeLinear": (1,), "DequantizeLinear": (1,), "QLinearConv": (1, 4, 6),
                 "QLinearMatMul": (1, 4, 6), "QLinearAdd": (1, 4, 6), "QLinearMul": (1, 4, 6),
                 "QLinearGlobalAveragePool": (1, 3), "QLinearAveragePool": (1, 3), "QLinearSigmoid": (1, 3),
                 "QLinearLeakyRelu": (1, 3), "MatMulIntegerToFloat": (2, 3), "DynamicQuantizeMatMul": (2,)}


def _broken_scale(proto: onnx.ModelProto) -> str | None:
    """Why an INT8 graph's stored quantization scale cannot be one (NaN, infinite, zero or negative: probe 212 — a
    copied file with such a scale scored 10 % and was timed, unsaid), or None."""
    stored = {tensor.name: tensor for tensor in proto.graph.initializer}
    nodes = list(_nodes(proto))
    # dynamic INT8 (onnxruntime's quantize_dynamic): ConvInteger's int32 output is scaled by a Mul of the input's
    # scale, computed by DynamicQuantizeLinear, and the weight's, stored (probe 212: not checked)
    dynamic = {node.output[1] for node in nodes if node.op_type == "DynamicQuantizeLinear" and len(node.output) > 1}
    for node in nodes:
        scales = _SCALE_INPUTS.get(node.op_type, ())
        if node.op_type == "Mul" and dynamic & set(node.input):
            scales = tuple(i for i, name in enumerate(node.input) if name not in dynamic)
        for index in scales:
            tensor = stored.get(node.input[index]) if index < len(node.input) else None
            if tensor is None:
                continue
            values = numpy_helper.to_array(tensor).astype(np.float64)
            if values.size and not (np.isfinite(values).all() and (values > 0).all()):
                bad = values[~(np.isfinite(values) & (values > 0))].flat[0]
                return (f"its quantization scale {tensor.name!r} ({node.op_type}) holds {float(bad)!r}, where a "
                        "scale is a positive, finite number: not a working INT8 model")
    return None


# What a graph's FLOPs may come to against those recorded: equal to the FLOP on every export probed (26 zoo exports at
# 16-64 px, pruned, the seven quantize formats, FP16, external data: probes 187, 193), so only rounding's room (probe
# 193: FLOPs of 26 px beside a 28-px input, 16 % off, passed the parameter check's 0.8-1.25).
FLOPS_PER_RECORDED = (0.99, 1.01)

# Where a compute operator reads its weights (convolutions), or its two factors (matrix products).
_CONV_WEIGHT = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}
_PRODUCT_FACTORS = {"Gemm": (0, 1), "QGemm": (0, 3), "MatMul": (0, 1), "MatMulInteger": (0, 1),
                    "QLinearMatMul": (0, 3), "MatMulIntegerToFloat": (0, 1), "DynamicQuantizeMatMul": (0, 1)}
_SHAPE_VALUES = 64  # initializers up to this many values keep them for shape inference (a Reshape's target shape)


def graph_flops(proto: onnx.ModelProto, spec: InputSpec) -> int | None:
    """FLOPs of one image at `spec`'s size through the graph's convolutions and matrix products, a multiply-add
    being 2 FLOPs: what `cnnlab.models.count_flops` (torch's FlopCounterMode) counts of the network, to the FLOP on
    the zoo's exports, FP32, QDQ and dynamic INT8 alike. Shapes come from onnx's shape inference on the graph
    without its weights (milliseconds, even for VGG); None where they cannot be known (operators onnx cannot
    infer, such as onnxruntime's QLinearAdd in a QOperator file, or fused ones)."""
    if proto.functions:
        proto = onnx.inliner.inline_local_functions(proto)
    initializers = list(proto.graph.initializer)
    names = {tensor.name for tensor in initializers}
    inputs = [value for value in proto.graph.input if value.name not in names]
    if len(inputs) != 1:
        return None
    image = helper.make_tensor_value_info(inputs[0].name, inputs[0].type.tensor_type.elem_type,
                                          [1, spec.channels, spec.size, spec.size])
    kept = [tensor for tensor in initializers if math.prod(tensor.dims) <= _SHAPE_VALUES]
    weights = [helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
               for tensor in initializers if math.prod(tensor.dims) > _SHAPE_VALUES]
    light = helper.make_model(helper.make_graph(list(proto.graph.node), "shapes", [image, *weights],
                                                list(proto.graph.output), initializer=kept),
                              opset_imports=list(proto.opset_import))
    light.ir_version = proto.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(light)
    except Exception:  # noqa: BLE001 - a graph onnx cannot infer is not checked, not refused
        return None
    shapes = {value.name: [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
              for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    shapes.update({tensor.name: list(tensor.dims) for tensor in kept})
    total = 0
    for node in inferred.graph.node:
        if node.op_type in _CONV_WEIGHT:
            weight = shapes.get(node.input[_CONV_WEIGHT[node.op_type]])
            # the weight's multiply-adds at every output position (a transposed convolution: every input one)
            positions = shapes.get(node.input[0] if node.op_type == "ConvTranspose" else node.output[0])
            if not weight or not positions or None in weight or None in positions[2:]:
                return None
            total += 2 * math.prod(weight) * math.prod(positions[2:])
        elif node.op_type in _PRODUCT_FACTORS:
            first, second = (shapes.get(node.input[i]) for i in _PRODUCT_FACTORS[node.op_type])
            if not second or None in second or len(second) != 2:
                return None
            # the first factor's rows where inferred (onnx does not infer onnxruntime's QGemm, which feeds the next
            # one); a classifier's product for one image has one row
            transposed = _attribute(node, "transA")
            rows = 1 if not first or None in first else math.prod(first) // first[-2 if transposed else -1]
            total += 2 * rows * math.prod(second)
        elif node.op_type in ("FusedConv", "FusedGemm", "FusedMatMul", "NhwcConv", "QLinearConvTranspose"):
            return None
    return total


def _attribute(node: onnx.NodeProto, name: str) -> int:
    return next((attribute.i for attribute in node.attribute if attribute.name == name), 0)


# What a graph's weights may come to against its network's parameters: BatchNorm folded or kept with its running
# statistics, a quantizer's scales and zero points move the count by about 1 % (0.992-1.008 over 93 files that
# cnnlab and onnxruntime wrote: exports, pruned, QDQ and QOperator INT8 files of 8 networks).
WEIGHTS_PER_PARAM = (0.8, 1.25)
_WEIGHT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16,
                           TensorProto.INT8, TensorProto.UINT8})


def graph_weights(proto: onnx.ModelProto) -> int:
    """How many float or 8-bit integer values the graph's initializers (those a node reads) and Constant nodes hold
    (shapes and other integer constants left out): its weights, as a parameter count."""
    used = {name for node in _nodes(proto) for name in node.input}  # an initializer no node reads is no weight
    tensors = [*(t for t in proto.graph.initializer if t.name in used),
               *(a.t for node in _nodes(proto) if node.op_type == "Constant" for a in node.attribute
                 if a.name == "value")]
    return sum(math.prod(tensor.dims) for tensor in tensors if tensor.data_type in _WEIGHT_TYPES)


def check_onnx_file(path: Path) -> OnnxModel:
    """Load an ONNX file from disk and check its graph against its metadata, before anyone uses it.

    Returns the OnnxModel (with the graph's precision, output kind and fixed batch). Raises CnnlabError (one
    line) for a missing file, one that is not ONNX, metadata that cannot be decoded, or a graph that contradicts
    its metadata (input shape and channels vs the input spec, output shape vs the class count, no
    Conv/Gemm/MatMul-like node at all). An output computed from its probabilities by further arithmetic is no
    error here (its latency is still a latency): `unreadable` holds the error for whoever reads its scores.
    """
    path = Path(path)
    try:
        meta = read_onnx_metadata(path)
    except CnnlabError:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # metadata entries of the wrong type or shape
        raise CnnlabError(f"{path} has unreadable cnnlab metadata ({type(exc).__name__}: {exc})", fix=_FIX) from exc
    classes = meta.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise CnnlabError(f"{path} has unreadable cnnlab metadata (classes is not a list of names)", fix=_FIX)
    if classes is not None and len(set(classes)) != len(classes):  # as read_checkpoint refuses (probe 155: "a 67.6 %
        # | a 19.8 %", two outputs that could not be told apart)
        twice = sorted({name for name in classes if classes.count(name) > 1})
        raise CnnlabError(f"{path} has invalid cnnlab metadata (classes names {listed(twice)} more than once)",
                          fix=_FIX)
    spec = meta.get("spec")
    proto = load_onnx(path)
    if not proto.graph.node:  # an empty or truncated file parses as an empty model: nothing to check against
        raise CnnlabError(f"{path} holds no ONNX graph (an empty or truncated file)", fix=_FIX)
    problems = graph_problems(proto, spec, len(classes) if classes is not None else None, meta.get("params"),
                              meta.get("flops"))
    if problems:
        raise CnnlabError(f"{path} does not match its own metadata: {'; '.join(problems)}", fix=_fix_for(meta))
    batch = fixed_batch(proto)
    fed = batch * spec.channels * spec.size ** 2 * 4 if batch is not None and spec is not None else 0  # float32 bytes
    if fed > MAX_FIXED_INPUT_BYTES:
        # every run is padded up to the fixed batch: predict of one image ran 100,000 (10.3 GB, 92 s; probe 90)
        raise CnnlabError(f"{path} has its batch dimension fixed to {batch:,}: every run would feed {batch:,} images "
                          f"({fed / 1e9:.2g} GB of input before any activation), padded from however few there are",
                          fix="export the model with a dynamic batch (`cnnlab export source=RUN` does), or fix it to "
                              "the batch it will run at")
    if len(proto.graph.output) > 1 and path not in _TOLD:  # which output is scored, said once (probe 90: an aux
        _TOLD.add(path)                                       # head first was scored without a word)
        names = [value.name for value in proto.graph.output]
        log.warning("%s has %d outputs (%s): cnnlab reads the first, %s, as the classifier's scores", path, len(names),
                    ", ".join(names), names[0])
    try:
        outputs, unreadable = output_kind(proto), None
    except UnreadableOutput as exc:  # still timed by bench; refused where scores are read (unreadable_output)
        outputs, unreadable = LOGITS, UnreadableOutput(f"{path}: {exc.message}", fix=exc.fix)
    return OnnxModel(path=path, spec=spec, classes=classes, metadata=meta, precision=graph_precision(proto),
                     outputs=outputs, batch=batch, unreadable=unreadable)
