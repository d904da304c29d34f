"""unit_squash: which elementwise tails of a graph are a sigmoid, read from the numbers they compute."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from onnx import helper

from cnnlab.deploy.onnx_elementwise import Squash, dequantize, unit_squash
from onnx_variants import node_from_line


def _squash(lines: list[str], constants: dict[str, object] | None = None, classes: int | None = None) -> Squash | None:
    """unit_squash of a tail written as node_from_line lines from the computed value `x` to `y`."""
    nodes = [node_from_line(line) for line in lines]
    values = {name: np.asarray(value, dtype="float64") for name, value in (constants or {}).items()}
    producers = {output: node for node in nodes for output in node.output}
    producers["x"] = helper.make_node("Gemm", ["features", "w"], ["x"])  # where the logits come from
    return unit_squash("y", producers, values.get, lambda name: name in values, classes)


_STABLE = ["Neg x n", "Exp n e", "Add e one d", "Reciprocal d positive", "Exp x ex", "Add ex one dx",
           "Div ex dx negative", "GreaterOrEqual x zero c", "Where c positive negative y"]
SIGMOIDS = {
    "1 / (1 + exp(-x))": (["Neg x n", "Exp n e", "Add e one d", "Reciprocal d y"], {"one": 1.0}),
    "1 / (1 + exp(x * -1))": (["Mul x minus m", "Exp m e", "Add one e d", "Div one d y"], {"one": 1.0, "minus": -1.0}),
    "exp(x) / (exp(x) + 1)": (["Exp x e", "Add e one d", "Div e d y"], {"one": 1.0}),
    "(tanh(x / 2) + 1) / 2": (["Div x two h", "Tanh h t", "Add t one u", "Div u two y"], {"one": 1.0, "two": 2.0}),
    "hard sigmoid clip(x + 3, 0, 6) / 6": (["Add x three a", "Clip a zero six c", "Div c six y"],
                                           {"three": 3.0, "zero": 0.0, "six": 6.0}),
    "per-class temperature and sign": (["Mul x w m", "Neg m n", "Exp n e", "Add e one d", "Reciprocal d y"],
                                       {"w": [[1.0, -2.0, 0.25, 3.0]], "one": 1.0}),
    "a Sigmoid after per-class bias": (["Add x b a", "Sigmoid a y"], {"b": [0.0, 1.0, -2.0]}),
    "through Cast, Reshape and Transpose": (["Neg x n", "Cast n c to=1", "Transpose c t", "Exp t e", "Add e one d",
                                             "Reciprocal d y"], {"one": 1.0}),
    # found by the tester of the above (probe 41): each read as logits and softmaxed, exit 0
    "torch's stable where(x >= 0, 1 / (1 + exp(-x)), exp(x) / (1 + exp(x)))": (_STABLE, {"one": 1.0, "zero": 0.0}),
    "dynamo's softplus exp(-softplus(-x)) with its threshold Where": (
        ["Neg x n", "Greater n twenty big", "Softplus n soft", "Where big n soft sp", "Neg sp m", "Exp m y"],
        {"twenty": 20.0}),
    "probit 0.5 * (1 + erf(x / sqrt(2)))": (["Div x root r", "Erf r e", "Add e one u", "Mul half u y"],
                                           {"root": 2 ** 0.5, "one": 1.0, "half": 0.5}),
    "a temperature of 10, levelling off past x = 50": (["Div x ten t", "Sigmoid t y"], {"ten": 10.0}),
    "a temperature of 100": (["Div x hundred s", "Sigmoid s y"], {"hundred": 100.0}),
    "softsign 0.5 + 0.5 * x / (1 + |x|)": (["Softsign x s", "Mul s half h", "Add h half y"], {"half": 0.5}),
    "sigmoid(leaky_relu(x, 0.1))": (["LeakyRelu x l alpha=0.1", "Sigmoid l y"], {}),
    "ones_like(x) / (ones_like(x) + exp(-x)) (ConstantOfShape)": (
        ["Shape x s", "ConstantOfShape s ones value=1", "Neg x n", "Exp n e", "Add ones e d", "Div ones d y"], {}),
    "the same with dynamo's Expand(1, shape)": (
        ["Shape x s", "Expand one s ones", "Neg x n", "Exp n e", "Add ones e d", "Div ones d y"], {"one": 1.0}),
    "INT8 QDQ around every step": (["QuantizeLinear x sc zp q", "DequantizeLinear q sc zp dq", "Neg dq n", "Exp n e",
                                    "QuantizeLinear e sc zp qe", "DequantizeLinear qe sc zp de", "Add de one d",
                                    "Reciprocal d y"], {"one": 1.0, "sc": 0.1, "zp": 0.0}),
    "INT8 QOperator: QLinearAdd of a quantized 1": (
        ["Neg x n", "Exp n e", "QLinearAdd e sc zp one sc1 zp e_sc zp d domain=com.microsoft", "Reciprocal d y"],
        {"sc": 0.5, "zp": 0.0, "one": 10.0, "sc1": 0.1, "e_sc": 0.5}),
    "dynamic INT8: MatMulInteger, Cast, Mul by a runtime scale, Add bias": (
        ["DynamicQuantizeLinear features qf scale zero", "MatMulInteger qf w_q zero w_zero acc", "Cast acc af to=1",
         "Mul scale w_scale s", "Mul af s z", "Add z bias y0", "Neg y0 n", "Exp n e", "Add e one d", "Reciprocal d y"],
        {"w_q": [[1.0]], "w_zero": 0.0, "w_scale": 0.01, "bias": [0.1, -0.2], "one": 1.0}),
    "per-class constants on both sides of a Reshape (no broadcast error)": (
        ["Add x b4 a", "Reshape a shape r", "Mul r w2 m", "Reshape m shape2 o", "Neg o n", "Exp n e", "Add e one d",
         "Reciprocal d y"], {"b4": [1.0, 2.0, 3.0, 4.0], "w2": [2.0, 3.0], "shape": [0, 2, 2], "shape2": [0, 4],
                             "one": 1.0}),
    "behind 100 Identity nodes": ([*(f"Identity i{k} i{k + 1}" for k in range(100)), "Neg i100 n", "Exp n e",
                                   "Add e one d", "Reciprocal d y"], {"one": 1.0}),
    "a one-input Sum at the output": (["Sigmoid x s", "Sum s y"], {}),
    # found by the tester of those (probe 42)
    "arctan atan(x) / pi + 0.5": (["Atan x t", "Div t pi u", "Add u half y"], {"pi": np.pi, "half": 0.5}),
    "a sharp exp(900x) / (1 + exp(900x)), inf / inf past x = 0.79": (["Mul x k z", "Exp z e", "Add e one d",
                                                                     "Div e d y"], {"k": 900.0, "one": 1.0}),
    "the Max of two sigmoid heads of different logits": (["Sigmoid x s1", "Sigmoid other s2", "Max s1 s2 y"], {}),
    "a sigmoid masked per class (a constant class)": (["Sigmoid x s", "Mul s mask y"], {"mask": [1.0, 0.0, 1.0]}),
    # found by the tester of those (probe 43)
    "TorchScript's nan_to_num: IsNaN and IsInf, Casts to bool, Wheres": (
        ["Sigmoid x s", "IsNaN s n", "Cast n nb to=9", "Where nb zero s a", "IsInf a i", "Cast i ib to=9",
         "Where ib zero a y"], {"zero": 0.0}),
    "INT8 QOperator: QLinearConcat of QLinearSigmoids": (
        ["QLinearSigmoid x sc zp sc zp s1 domain=com.microsoft",
         "QLinearSigmoid other sc zp sc zp s2 domain=com.microsoft",
         "QLinearConcat sc zp s1 sc zp s2 sc zp y axis=1 domain=com.microsoft"], {"sc": 1 / 255, "zp": 0.0}),
    "two identical Reshape nodes of the logits": (["Reshape x shape a", "Reshape x shape b", "Exp a e", "Exp b f",
                                                   "Add f one d", "Div e d y"], {"shape": [0, 4], "one": 1.0}),
    "a matrix constant: the Mul is where the function starts": (["Mul x m a", "Sigmoid a y"],
                                                               {"m": [[1.0, 1.0], [2.0, 2.0]]}),
}
SIGMOIDS["behind 100 Identity nodes"][0].insert(0, "Identity x i0")


@pytest.mark.parametrize("spelling", list(SIGMOIDS))
def test_a_sigmoid_in_any_spelling_squashes_onto_zero_one(spelling: str) -> None:
    lines, constants = SIGMOIDS[spelling]
    squash = _squash(lines, constants)
    assert squash is not None and squash.unit and not squash.logarithm, squash


def test_a_scaled_sigmoid_gives_its_scale_and_its_ops() -> None:
    squash = _squash(["Neg x n", "Exp n e", "Add e one d", "Div hundred d y"], {"one": 1.0, "hundred": 100.0})
    assert squash is not None and not squash.unit and squash.smooth
    assert squash.top == pytest.approx((100.0, 100.0)) and squash.from_zero
    assert squash.ops == ("Neg", "Exp", "Add", "Div")


def test_per_class_scales_are_told_apart_from_one_scale() -> None:
    """[100, 100, 1, 1] / (1 + exp(−x)) — every class squashed onto its own [0, c]: read as logits before."""
    squash = _squash(["Sigmoid x s", "Mul s c y"], {"c": [100.0, 100.0, 1.0, 1.0]})
    assert squash is not None and squash.top == pytest.approx((1.0, 100.0)) and squash.from_zero


def test_a_clamp_of_the_logits_is_not_smooth() -> None:
    """ReLU6 on the logits (Clip(x, 0, 6)) levels off at 0 and 6 like a hard sigmoid × 6: the caller must be able to
    say which ops made it (piecewise linear only), not name Exp or Div."""
    squash = _squash(["Clip x zero six y"], {"zero": 0.0, "six": 6.0})
    assert squash is not None and not squash.smooth and squash.ops == ("Clip",) and squash.top == (6.0, 6.0)


@pytest.mark.parametrize("lines", [["Sigmoid x s", "Log s y"], ["Neg x n", "Softplus n s", "Neg s y"]])
def test_the_log_of_a_sigmoid_is_found(lines: list[str]) -> None:
    squash = _squash(lines)
    assert squash is not None and squash.logarithm and squash.unit


LOGITS = {
    "nothing after the logits": (["Identity x y"], {}),
    "a temperature": (["Mul x t y"], {"t": 0.5}),
    "tanh (onto [-1, 1])": (["Tanh x y"], {}),
    "relu (unbounded)": (["Relu x y"], {}),
    "exp (unbounded)": (["Exp x y"], {}),
    "SiLU x * sigmoid(x) (two uses of x, unbounded)": (["Sigmoid x s", "Mul x s y"], {}),
    "GELU x * 0.5 * (1 + erf(x / sqrt(2)))": (["Div x root r", "Erf r e", "Add e one u", "Mul x u g", "Mul g half y"],
                                              {"root": 2 ** 0.5, "one": 1.0, "half": 0.5}),
    "a sigmoid that never levels off on the grid (x / 1e9)": (["Div x big s", "Sigmoid s y"], {"big": 1e9}),
    "a bump, not monotone": (["Mul x x s", "Neg s n", "Exp n y"], {}),
    "minus a relu (not the log of a squash: piecewise linear)": (["Relu x r", "Neg r y"], {}),
    "the mean of two sigmoids of different logits (a merge: where f starts)": (
        ["Sigmoid x s", "Sigmoid other t", "Add s t y"], {}),
    "a Cast to an integer type": (["Sigmoid x s", "Cast s y to=7"], {}),
    "x − a class permutation of x, plus a sigmoid (a channel shuffle is no move)": (
        ["Reshape x shape r", "Transpose r t", "Reshape t shape2 shuffled", "Sub x shuffled diff", "Sigmoid x s",
         "Add s diff y"], {"shape": [0, 2, 2], "shape2": [0, 4]}),
    "the Sum of two sigmoid heads (onto [0, 2]: no selector)": (["Sigmoid x s1", "Sigmoid other s2", "Sum s1 s2 y"],
                                                                {}),
}


@pytest.mark.parametrize("what", list(LOGITS))
def test_what_is_no_squash_is_not_taken_for_one(what: str) -> None:
    lines, constants = LOGITS[what]
    assert _squash(lines, constants) is None


@pytest.mark.parametrize("length, classes", [(100_000, 4), (400_000, None)])
def test_a_constant_of_another_length_than_the_classes_is_not_over_the_classes(length: int,
                                                                              classes: int | None) -> None:
    """A "per-class" bias of 100,000 entries on a 4-class output (a malformed file: 2.5 GB of grid before), or of
    400,000 where the output does not declare its classes (6.5 GB), is where the function starts, not broadcast
    into that many columns."""
    squash = _squash(["Add x b a", "Sigmoid a y"], {"b": np.zeros(length)}, classes=classes)
    assert squash is not None and squash.unit


def test_many_classes_are_evaluated_in_bounded_memory() -> None:
    """21,843 classes (ImageNet-21k) with a per-class bias and ten per-class scales took 1.2 GB of grid (one
    [401, C] array per node); the classes are now evaluated a slice at a time. A class past the first slices still
    counts: its scale of 100 is found."""
    classes = 21_843
    scale = np.ones(classes)
    scale[-1] = 100.0
    lines = ["Add x b a0", *(f"Mul a{k} w a{k + 1}" for k in range(10)), "Sigmoid a10 s", "Mul s scale y"]
    tracemalloc.start()
    try:
        squash = _squash(lines, {"b": np.linspace(-1, 1, classes), "w": np.ones(classes), "scale": scale}, classes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert squash is not None and squash.top == pytest.approx((1.0, 100.0))
    assert peak < 200 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB"


def test_dequantize_follows_onnx_per_tensor_and_per_axis() -> None:
    """ONNX DequantizeLinear: (q − zero) · scale; per axis, scale and zero run along `axis`."""
    q = np.array([[10, 20], [30, 40]], dtype=np.uint8)
    assert dequantize(q, 0.5, 10) == pytest.approx(np.array([[0.0, 5.0], [10.0, 15.0]]))
    per_row = dequantize(q, np.array([1.0, 0.1]), np.array([0, 10]), axis=0)
    assert per_row == pytest.approx(np.array([[10.0, 20.0], [2.0, 3.0]]))
    assert dequantize(q, np.array([1.0, 2.0, 3.0]), 0, axis=1) is None  # three scales for two columns
    assert dequantize(None, 1.0) is None


def test_a_constant_of_an_unknown_type_is_no_traceback() -> None:
    """ConstantOfShape whose value tensor has data type 99 (or 0): KeyError / TypeError out of `cnnlab predict`
    (probe 42). A node that cannot be read is where the function starts."""
    from onnx import TensorProto

    tensor = TensorProto(data_type=99, dims=[1], name="v")
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["ones"], value=tensor),
             helper.make_node("Add", ["x", "ones"], ["y"])]
    producers = {n.output[0]: n for n in nodes}
    assert unit_squash("y", producers, lambda name: None, lambda name: False) is None


def test_a_chain_of_dequantized_constants_is_read_once_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """K DequantizeLinear nodes each taking the previous value as data, scale and zero point: the constant reader
    followed all three inputs of each, 3^K reads (K = 16: half an hour in `cnnlab predict`, probe 42)."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    from cnnlab.deploy import onnx_check

    nodes, previous = [], "d0"
    initializers = [numpy_helper.from_array(np.array(1.0, np.float32), "d0")]
    for k in range(1, 21):
        nodes += [helper.make_node("Cast", [previous], [f"q{k}"], to=TensorProto.INT8),
                  helper.make_node("DequantizeLinear", [f"q{k}", previous, f"q{k}"], [f"d{k}"])]
        previous = f"d{k}"
    nodes.append(helper.make_node("Mul", ["x", previous], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], initializers)
    reads = []
    original = onnx_check._OutputWalk._read_value

    def counted(self, name, depth):
        reads.append(name)
        return original(self, name, depth)

    monkeypatch.setattr(onnx_check._OutputWalk, "_read_value", counted)
    assert onnx_check.output_kind(helper.make_model(graph)) == "logits"
    assert len(reads) == len(set(reads)) <= 3 * 21


@pytest.mark.parametrize("after, unit, top", [("Mul c hundred y", False, 100.0), ("Mean c half y", False, 0.75),
                                              ("Identity c y", True, 1.0)])
def test_arithmetic_after_a_concat_of_sigmoids_is_read_as_after_one(after: str, unit: bool, top: float) -> None:
    """torch.cat of sigmoids × 100 was softmaxed (100 % shown for 74.3 %), and the Mean of it with 0.5 (narrowed to
    [0.25, 0.75]) accepted, where the same after one Sigmoid is refused (probe 43)."""
    squash = _squash(["Sigmoid x s1", "Sigmoid other s2", "Concat s1 s2 c axis=1", after],
                     {"hundred": 100.0, "half": 0.5})
    assert squash is not None and squash.unit == unit and squash.top[1] == pytest.approx(top), squash
