"""Is an ONNX file from disk the model its metadata says it is? Checked before it is timed, quantized or scored.

An ONNX file is untrusted input: its metadata (input spec, classes — what `cnnlab export` writes) can sit on
any graph. An Identity graph carrying a ResNet's metadata would otherwise be "benchmarked" at tens of
thousands of images/s. `check_onnx_file` compares the graph with the metadata — the input is [N, C, H, W]
with the recorded channels and size, the first output is [N, num_classes], and at least one node does the
work of a network (a convolution or a matrix product) — without running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import onnx

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import load_onnx, read_onnx_metadata
from cnnlab.errors import CnnlabError

# Nodes that compute a layer of a network, in float and quantized graphs (QDQ keeps Conv; QOperator and
# dynamic quantization use the integer ops; onnxruntime's fused ops appear in pre-optimised files).
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv",
                         "QLinearMatMul", "QGemm", "FusedConv", "FusedGemm", "FusedMatMul", "DynamicQuantizeMatMul",
                         "MatMulIntegerToFloat", "NhwcConv", "QLinearConvTranspose"})
_FIX = "re-export it from its run with `cnnlab export source=RUN`, or point to the run's own model.onnx"


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX file that passed `check_onnx_file`: its path, input spec and class names (from its metadata;
    None for a file without cnnlab metadata), and the full decoded metadata (read_onnx_metadata's dict)."""

    path: Path
    spec: InputSpec | None
    classes: list[str] | None
    metadata: dict[str, Any]


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

    Returns the OnnxModel. Raises CnnlabError (one line) for a missing file, one that is not ONNX, metadata
    that cannot be decoded, or a graph that contradicts its metadata (input shape and channels vs the input
    spec, output shape vs the class count, no Conv/Gemm/MatMul-like node at all).
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
    return OnnxModel(path=path, spec=spec, classes=classes, metadata=meta)
