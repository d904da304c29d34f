"""ONNX files that other tools make from a cnnlab export, built here with the `onnx` API (no extra packages):
a Softmax after the logits, an FP16 conversion (as onnxconverter_common's convert_float_to_float16 without
keep_io_types leaves it), a fixed batch dimension and onnxruntime's dynamic INT8 quantization. The metadata
of the export is kept in every one, as the tools keep it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(proto: onnx.ModelProto, target: Path) -> Path:
    onnx.checker.check_model(proto)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target))
    return target


def with_softmax(source: Path, target: Path, op: str = "Softmax") -> Path:
    """`source` with a Softmax (or LogSoftmax, or an elementwise Sigmoid) over the classes before its `logits`
    output, same output name."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    axis = {} if op in ("Sigmoid", "HardSigmoid") else {"axis": -1}
    proto.graph.node.append(helper.make_node(op, ["raw_logits"], [output], name="probabilities", **axis))
    return _save(proto, target)


def with_ending_then(source: Path, target: Path, steps: list[tuple[str, float | None, dict]],
                     op: str = "Softmax", axis: int = -1) -> Path:
    """`source` with `op` over its logits (a Softmax over `axis`, or an elementwise Sigmoid) and then `steps`
    before its output: (op_type, a scalar constant second operand or None, attributes) each, e.g. ("Mul", 100.0,
    {}) for percent, ("Transpose", None, {"perm": [1, 0]}). A step before `op` is written ("before", ...) in
    op_type's place: ("before:Transpose", None, {...})."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    before = [step for step in steps if step[0].startswith("before:")]
    after = [step for step in steps if not step[0].startswith("before:")]
    name, nodes = "raw_logits", []

    def add(op_type: str, constant: float | None, attributes: dict, last: bool) -> None:
        nonlocal name
        inputs = [name]
        if constant is not None:
            proto.graph.initializer.append(numpy_helper.from_array(np.array(constant, dtype=np.float32),
                                                                   f"c{len(nodes)}"))
            inputs.append(f"c{len(nodes)}")
        produced = output if last else f"v{len(nodes)}"
        nodes.append(helper.make_node(op_type, inputs, [produced], **attributes))
        name = produced

    for step_op, constant, attributes in before:
        add(step_op.removeprefix("before:"), constant, attributes, False)
    add(op, None, {} if op in ("Sigmoid", "HardSigmoid") else {"axis": axis}, not after)
    for index, (step_op, constant, attributes) in enumerate(after):
        add(step_op, constant, attributes, index == len(after) - 1)
    proto.graph.node.extend(nodes)
    return _save(proto, target)


def with_ensemble(source: Path, target: Path, scale: float = 1.0, silu: bool = False) -> Path:
    """`source` whose output is the mean of softmax(logits) and softmax(2 · logits), times `scale` (an ensemble of
    two heads; scale 50 gives percent) — or, with `silu`, logits · sigmoid(logits) (a head ending in SiLU)."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    constants = {"two": 2.0, "half": 0.5 * scale}
    proto.graph.initializer.extend(numpy_helper.from_array(np.array(v, dtype=np.float32), k)
                                   for k, v in constants.items())
    node = helper.make_node
    if silu:
        nodes = [node("Sigmoid", ["raw_logits"], ["gate"]), node("Mul", ["raw_logits", "gate"], [output])]
    else:
        nodes = [node("Softmax", ["raw_logits"], ["p1"], axis=-1), node("Mul", ["raw_logits", "two"], ["sharp"]),
                 node("Softmax", ["sharp"], ["p2"], axis=-1), node("Add", ["p1", "p2"], ["total"]),
                 node("Mul", ["total", "half"], [output])]
    proto.graph.node.extend(nodes)
    return _save(proto, target)


def _renamed_output(proto: onnx.ModelProto) -> str:
    """Renames what produces the graph's output to `raw_logits`; returns the output's name (for the new tail)."""
    output = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = ["raw_logits" if name == output else name for name in node.output]
    return output


def with_softmax_in_function(source: Path, target: Path) -> Path:
    """`source` whose logits go through a local function (as torch.onnx's dynamo exporter writes a module) that
    holds an Identity and the Softmax."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    domain = "pkg.torch.head"
    function = helper.make_function(domain, "ClassifierHead", ["x"], ["probs"],
                                    [helper.make_node("Identity", ["x"], ["y"]),
                                     helper.make_node("Softmax", ["y"], ["probs"], axis=-1)],
                                    [helper.make_opsetid("", proto.opset_import[0].version)])
    proto.functions.append(function)
    proto.opset_import.append(helper.make_opsetid(domain, 1))
    proto.graph.node.append(helper.make_node("ClassifierHead", ["raw_logits"], [output], domain=domain))
    return _save(proto, target)


def with_written_out_softmax(source: Path, target: Path) -> Path:
    """`source` ending in a softmax written out as Exp / ReduceSum / Div (no Softmax node to recognise)."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    proto.graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "softmax_axes"))
    proto.graph.node.extend([helper.make_node("Exp", ["raw_logits"], ["exp"]),
                             helper.make_node("ReduceSum", ["exp", "softmax_axes"], ["total"], keepdims=1),
                             helper.make_node("Div", ["exp", "total"], [output])])
    return _save(proto, target)


def node_from_line(line: str) -> onnx.NodeProto:
    """A node from "Op input... output [name=value...]": `domain=` sets its domain, `value=` makes a one-element
    float tensor (ConstantOfShape's), a whole number an int attribute (`to=1`, `axis=1`), any other a float."""
    op, *tokens = line.split()
    names = [t for t in tokens if "=" not in t]
    attributes: dict[str, object] = dict(t.split("=", 1) for t in tokens if "=" in t)
    domain = str(attributes.pop("domain", ""))
    for key, text in list(attributes.items()):
        attributes[key] = (numpy_helper.from_array(np.array([float(text)], dtype=np.float32)) if key == "value"
                           else int(text) if text.lstrip("-").isdigit() else float(text))
    return helper.make_node(op, names[:-1], names[-1:], domain=domain, **attributes)


# A sigmoid without a Sigmoid node, as converters and hand-written heads spell it: (nodes from "raw_logits" to
# "OUT", constants: float32 unless given as a numpy array). "label_smoothing", "percent", "per_class_percent",
# "relu6" and "log" are refused (narrowed, scaled, clamped logits, log-sigmoid).
_SIGMOIDS = {
    "reciprocal": (["Neg raw_logits n", "Exp n e", "Add e one d", "Reciprocal d OUT"], {"one": 1.0}),
    "exp_ratio": (["Exp raw_logits e", "Add one e d", "Div e d OUT"], {"one": 1.0}),
    "tanh": (["Mul raw_logits half h", "Tanh h t", "Add t one u", "Mul half u OUT"], {"one": 1.0, "half": 0.5}),
    # torch.where(x >= 0, 1 / (1 + exp(-x)), exp(x) / (1 + exp(x))): the numerically stable sigmoid
    "stable_where": (["Neg raw_logits n", "Exp n e", "Add e one d", "Reciprocal d positive", "Exp raw_logits ex",
                      "Add ex one dx", "Div ex dx negative", "GreaterOrEqual raw_logits zero c",
                      "Where c positive negative OUT"], {"one": 1.0, "zero": 0.0}),
    "probit": (["Div raw_logits root r", "Erf r e", "Add e one u", "Mul half u OUT"],
               {"root": 2 ** 0.5, "one": 1.0, "half": 0.5}),
    "temperature_10": (["Div raw_logits ten t", "Neg t n", "Exp n e", "Add e one d", "Reciprocal d OUT"],
                       {"ten": 10.0, "one": 1.0}),
    # torch.ones_like(x) / (torch.ones_like(x) + torch.exp(-x)), as TorchScript exports it
    "ones_like": (["Shape raw_logits s", "ConstantOfShape s ones value=1", "Neg raw_logits n", "Exp n e",
                   "Add ones e d", "Div ones d OUT"], {}),
    # onnxruntime's QDQ format (quantize_static): a QuantizeLinear / DequantizeLinear pair after each step, and the
    # constant 1 stored as uint8 20 × 0.05
    "qdq": (["Neg raw_logits n", "Exp n e", "QuantizeLinear e scale zero q", "DequantizeLinear q scale zero dq",
             "DequantizeLinear one_q scale zero one", "Add dq one d", "Reciprocal d OUT"],
            {"one_q": np.array(20, dtype=np.uint8), "scale": 0.05, "zero": np.array(0, dtype=np.uint8)}),
    # found by the tester of the above (probe 42): nodes after a sigmoid the grid did not follow
    "cat_groups": (["Slice raw_logits zero_i two_i one_i first", "Slice raw_logits two_i four_i one_i second",
                    "Sigmoid first s1", "Neg second n", "Exp n e", "Add e one d", "Reciprocal d s2",
                    "Concat s1 s2 OUT axis=1"],
                   {"zero_i": np.array([0]), "two_i": np.array([2]), "four_i": np.array([4]), "one_i": np.array([1]),
                    "one": 1.0}),
    "nan_to_num": (["Sigmoid raw_logits s", "IsNaN s nan", "Where nan zero s a", "IsInf a inf", "Where inf one a OUT"],
                   {"zero": 0.0, "one": 1.0}),
    "masked_class": (["Sigmoid raw_logits s", "Where mask zero s OUT"],
                     {"mask": np.array([False, False, True, False]), "zero": 0.0}),
    "above_mean_mask": (["ReduceMean raw_logits m", "GreaterOrEqual raw_logits m keep", "Sigmoid raw_logits s",
                         "Where keep s zero OUT"], {"zero": 0.0}),
    "clamp_eps_sub": (["Sigmoid raw_logits s", "Sub one eps high", "Clip s eps high OUT"], {"one": 1.0, "eps": 1e-6}),
    "squared": (["Sigmoid raw_logits s", "Mul s s OUT"], {}),
    "label_smoothing": (["Sigmoid raw_logits s", "Mul s ninety m", "Add m five OUT"], {"ninety": 0.9, "five": 0.05}),
    "percent": (["Neg raw_logits n", "Exp n e", "Add e one d", "Div hundred d OUT"], {"one": 1.0, "hundred": 100.0}),
    "per_class_percent": (["Neg raw_logits n", "Exp n e", "Add e one d", "Div scales d OUT"],
                          {"one": 1.0, "scales": [100.0, 100.0, 1.0, 1.0]}),
    "relu6": (["Clip raw_logits zero six OUT"], {"zero": 0.0, "six": 6.0}),
    "log": (["Neg raw_logits n", "Exp n e", "Add e one d", "Log d l", "Neg l OUT"], {"one": 1.0}),
}


def with_written_out_sigmoid(source: Path, target: Path, spelling: str) -> Path:
    """`source` ending in a sigmoid written out in elementwise arithmetic: `spelling` is a key of _SIGMOIDS."""
    proto = onnx.load(str(source))
    output = _renamed_output(proto)
    lines, constants = _SIGMOIDS[spelling]
    for name, value in constants.items():
        array = value if isinstance(value, np.ndarray) else np.array(value, dtype=np.float32)
        proto.graph.initializer.append(numpy_helper.from_array(array, name))
    proto.graph.node.extend(node_from_line(line.replace("OUT", output)) for line in lines)
    return _save(proto, target)


def to_float16(source: Path, target: Path) -> Path:
    """`source` in float16 throughout: weights, constants, input and output (no Cast kept at the edges)."""
    proto = onnx.load(str(source))
    graph = proto.graph
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT:
            half = numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)
            graph.initializer[index].CopyFrom(half)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == TensorProto.FLOAT:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float16)))
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                attribute.i = TensorProto.FLOAT16
    for value in (*graph.input, *graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    del graph.value_info[:]  # inferred again by the runtime, in the new types
    return _save(proto, target)


def with_fixed_batch(source: Path, target: Path, batch: int) -> Path:
    """`source` with its batch dimension (input and output) fixed to `batch`."""
    proto = onnx.load(str(source))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = batch
    del proto.graph.value_info[:]
    return _save(proto, target)


def dynamic_int8(source: Path, target: Path) -> Path:
    """onnxruntime.quantization.quantize_dynamic of `source` (its metadata kept, no `quantization` entry)."""
    from onnxruntime.quantization import quantize_dynamic

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(source), str(target))
    proto = onnx.load(str(target))
    if not proto.metadata_props:  # the quantizer keeps them; make sure, as the tester's file had them
        proto.metadata_props.extend(onnx.load(str(source)).metadata_props)
        onnx.save(proto, str(target))
    return target


def with_aux_output_first(source: Path, target: Path, *, name: str = "aux", logits: str = "logits",
                          aux_width: int | None = None) -> Path:
    """`source` with a second head (a fixed random Linear of its logits, of the same width or `aux_width`) as its
    first output, the logits second (renamed `logits`): an auxiliary classifier, as GoogLeNet/Inception training
    graphs keep them, or features ahead of the scores."""
    proto = onnx.load(str(source))
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [logits if out == old else out for out in node.output]
        node.input[:] = [logits if value == old else value for value in node.input]
    proto.graph.output[0].name = logits
    logits = proto.graph.output[0]
    width = logits.type.tensor_type.shape.dim[-1].dim_value
    aux_width = aux_width or width
    weight = np.random.default_rng(0).standard_normal((width, aux_width)).astype(np.float32)
    proto.graph.initializer.append(numpy_helper.from_array(weight, "aux_weight"))
    proto.graph.node.append(helper.make_node("MatMul", [logits.name, "aux_weight"], [name], name="aux_head"))
    aux = helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", aux_width])
    outputs = [aux, *proto.graph.output]
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    return _save(proto, target)


def with_external_data(source: Path, target: Path) -> Path:
    """`source` saved as onnx's external-data layout: a small .onnx beside a `<name>.data` file of its weights."""
    proto = onnx.load(str(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{target.name}.data", size_threshold=0)
    return target
