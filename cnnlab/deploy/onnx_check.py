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

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import onnx
from onnx import TensorProto

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import load_onnx, read_onnx_metadata
from cnnlab.errors import CnnlabError

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
# (domain, op) → kind; onnxruntime's QOperator INT8 graphs end in its QLinear versions.
_OUTPUT_OPS = {("", "Softmax"): PROBABILITIES, ("", "LogSoftmax"): LOG_PROBABILITIES,
               ("", "Sigmoid"): SIGMOID_PROBABILITIES, ("", "HardSigmoid"): SIGMOID_PROBABILITIES,
               ("com.microsoft", "QLinearSoftmax"): PROBABILITIES,
               ("com.microsoft", "QLinearSigmoid"): SIGMOID_PROBABILITIES}
# Nodes between a Softmax and the graph output that leave the values as they are (a converter's Cast, a reshape,
# a quantizer's Q/DQ pair around the probabilities).
_PASS_THROUGH = frozenset({"Identity", "Cast", "Reshape", "Flatten", "Squeeze", "QuantizeLinear", "DequantizeLinear"})
_FUNCTION_DEPTH = 16  # local functions calling local functions: deeper than any exporter nests (untrusted files)
_FIX = "re-export it from its run with `cnnlab export source=RUN`, or point to the run's own model.onnx"


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file that passed `check_onnx_file`: its path, input spec and class names (from its metadata;
    None for a file without cnnlab metadata), the full decoded metadata (read_onnx_metadata's dict), and what
    its graph says: `precision` ("fp32" | "fp16" | "int8", `graph_precision`), `outputs` (LOGITS | PROBABILITIES
    | LOG_PROBABILITIES | SIGMOID_PROBABILITIES, `output_kind`) and `batch` (the fixed batch size of its input;
    None: dynamic)."""

    path: Path
    spec: InputSpec | None
    classes: list[str] | None
    metadata: dict[str, Any]
    precision: str = "fp32"
    outputs: str = LOGITS
    batch: int | None = None


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


def output_kind(model: onnx.ModelProto | Path | str) -> str:
    """What the first output holds: PROBABILITIES when a Softmax over the classes makes it (possibly followed by
    a Cast, Identity, reshape or Q/DQ pair), LOG_PROBABILITIES for a LogSoftmax, SIGMOID_PROBABILITIES for a
    Sigmoid or HardSigmoid (one-vs-rest), else LOGITS (cnnlab's own exports)."""
    proto = _proto(model)
    if not proto.graph.output:
        return LOGITS
    functions = {(f.domain, f.name): f for f in proto.functions}
    kind, _ = _traced_kind(proto.graph.output[0].name, list(proto.graph.node), functions, _opset(proto), 0)
    return kind or LOGITS


def _traced_kind(name: str, nodes: list[Any], functions: dict[tuple[str, str], Any], opset: int,
                 depth: int) -> tuple[str | None, str]:
    """(the output kind of value `name` among `nodes`, a graph's or a local function's, name): walking back through
    pass-through nodes and into local functions (torch.onnx's dynamo exporter wraps modules in them). (None, INPUT)
    when the walk reaches INPUT, an input of this scope: the caller goes on from the matching input of its call."""
    producers = {output: node for node in nodes for output in node.output}
    for _ in range(len(nodes) + 1):
        node = producers.get(name)
        if node is None:
            return None, name
        function = functions.get((node.domain, node.op_type))
        if function is not None:
            index = list(node.output).index(name)
            if depth >= _FUNCTION_DEPTH or index >= len(function.output):
                return LOGITS, name
            kind, reached = _traced_kind(function.output[index], list(function.node), functions, opset, depth + 1)
            if kind is not None:
                return kind, name
            position = list(function.input).index(reached) if reached in function.input else len(node.input)
            if position >= len(node.input) or not node.input[position]:
                return LOGITS, name
            name = node.input[position]
            continue
        ending = _OUTPUT_OPS.get(("" if node.domain == "ai.onnx" else node.domain, node.op_type))
        if ending == SIGMOID_PROBABILITIES:  # elementwise: no axis
            return ending, name
        if ending is not None:
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1 if opset >= 13 else 1)
            return (ending if axis in (-1, 1) else LOGITS), name  # a softmax over [N, classes]'s classes
        if node.op_type not in _PASS_THROUGH or not node.input:
            return LOGITS, name
        name = node.input[0]
    return LOGITS, name


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


def graph_problems(proto: onnx.ModelProto, spec: InputSpec | None, num_classes: int | None) -> list[str]:
    """What in the graph contradicts the metadata (`spec`, `num_classes`; None: not recorded), in words."""
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
    if not proto.graph.output:
        problems.append("it has no output")
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
            problems.append(f"its output has {dims[1]} classes but the metadata names {num_classes}")
    if not any(node.op_type in COMPUTE_OPS for node in _nodes(proto)):
        ops = sorted({node.op_type for node in _nodes(proto)})
        problems.append(f"it has no convolution or matrix product (its nodes: {', '.join(ops[:6]) or 'none'})")
    return problems


def check_onnx_file(path: Path) -> OnnxModel:
    """Load an ONNX file from disk and check its graph against its metadata, before anyone uses it.

    Returns the OnnxModel (with the graph's precision, output kind and fixed batch). Raises CnnlabError (one
    line) for a missing file, one that is not ONNX, metadata that cannot be decoded, or a graph that contradicts
    its metadata (input shape and channels vs the input spec, output shape vs the class count, no
    Conv/Gemm/MatMul-like node at all).
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
    spec = meta.get("spec")
    proto = load_onnx(path)
    if not proto.graph.node:  # an empty or truncated file parses as an empty model: nothing to check against
        raise CnnlabError(f"{path} holds no ONNX graph (an empty or truncated file)", fix=_FIX)
    problems = graph_problems(proto, spec, len(classes) if classes is not None else None)
    if problems:
        raise CnnlabError(f"{path} does not match its own metadata: {'; '.join(problems)}", fix=_FIX)
    return OnnxModel(path=path, spec=spec, classes=classes, metadata=meta, precision=graph_precision(proto),
                     outputs=output_kind(proto), batch=fixed_batch(proto))
