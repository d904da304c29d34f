"""What an elementwise tail of an ONNX graph computes, found by running it on numbers rather than by its ops.

A converter or a hand-written head can spell a sigmoid without a Sigmoid node — `1 / (1 + exp(-x))`,
`exp(x) / (1 + exp(x))`, `0.5 · (1 + tanh(x / 2))`, a hard sigmoid as `clip(x + 3, 0, 6) / 6`, torch's
numerically stable `where(x >= 0, …, …)`, a probit `0.5 · (1 + erf(x / √2))` — and then its output holds one
probability per class, not logits. Matching every spelling by its nodes would never end; instead `unit_squash`
follows the graph's output back through elementwise nodes to the value they all start from, evaluates that
function f on a grid of inputs, and reports when f maps the real line monotonically onto [0, c] — a squashing
function (c = 1: probabilities, as a Sigmoid's; c ≠ 1: scaled probabilities, percent) — or is the log of one.

Where the walk cannot evaluate a node (an operator it does not know, a constant that is not a scalar or a vector
over the classes, two computed inputs that start from different values, a broadcast that fails), that node is
where f starts: the output is still f of that node's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

# Where f is evaluated: ±50 in steps of 0.25, then far points out to ±1e6, so that a sigmoid of x / 100 or a
# softsign (which nears its limits as 1/x) is seen to level off. A column: vector constants over the classes
# broadcast it to one column per class. Far points where an exact spelling overflows (exp(x) / (1 + exp(x)) is
# inf / inf past x = 709) are left out; the ±50 stretch must be finite.
_CENTRE = np.linspace(-50.0, 50.0, 401)
_FAR = np.array([75.0, 100.0, 200.0, 500.0, 1e3, 1e4, 1e5, 1e6])
_GRID = np.concatenate([-_FAR[::-1], _CENTRE, _FAR])[:, None]
_CENTRAL = slice(len(_FAR), len(_FAR) + len(_CENTRE))
_LIMIT = 1e-3  # f ≤ c·_LIMIT at the outermost points one side, f ≥ c·(1 − _LIMIT) the other: it levels off
_ENDS = 3      # how many outermost (finite) points each side must be within _LIMIT of the bound
_COLUMNS = 256          # classes evaluated at once: memory is nodes × grid × this, whatever the class count
_MAX_NODES = 128        # a longer elementwise tail is no head anyone exports: not evaluated
_MAX_DEPTH = 100        # nodes of arithmetic between the output and where f starts (moves not counted)
_MAX_WORK = 4_000_000   # nodes × classes: past it not evaluated
_MAX_CLASSES = 100_000  # a longer vector, where the graph does not declare its classes, is not over them

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Exp": np.exp, "Log": np.log, "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0.0), "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Softplus": lambda x: np.logaddexp(0.0, x), "Softsign": lambda x: x / (1.0 + np.abs(x)),
    "Erf": lambda x: torch.special.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy(),
    "Sign": np.sign, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
    "Not": lambda x: (x == 0).astype("float64")}
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power, "Max": np.maximum,
    "Min": np.minimum, "Sum": np.add, "Mean": np.add,
    # comparisons give 0/1, as ONNX's bool tensors do for Where and Cast
    "Greater": lambda a, b: (a > b).astype("float64"), "Less": lambda a, b: (a < b).astype("float64"),
    "GreaterOrEqual": lambda a, b: (a >= b).astype("float64"), "LessOrEqual": lambda a, b: (a <= b).astype("float64"),
    "Equal": lambda a, b: (a == b).astype("float64"), "And": lambda a, b: ((a != 0) & (b != 0)).astype("float64"),
    "Or": lambda a, b: ((a != 0) | (b != 0)).astype("float64")}
# Steps that are not piecewise linear: a bounded output made with one of them is a squash someone wrote on
# purpose; made with Clip/Relu/Min/Max alone it may be the logits clamped (a ReLU6 head).
_SMOOTH = frozenset({"Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Sigmoid", "Softplus", "Softsign", "Erf", "Pow"})
# Nodes that move values without changing them (a layout change is no change to an elementwise function; a
# Q/DQ pair is the same values on an integer grid: onnxruntime's quantizers write them around every step).
_MOVES = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Dropout",
                    "QuantizeLinear", "DequantizeLinear"})
# ...of which these may put another axis last: a vector constant met past one is not over the classes.
_RELAYOUTS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
_VARIADIC = frozenset({"Sum", "Mean", "Max", "Min"})  # any number of inputs, one included
_QLINEAR = frozenset({"QLinearAdd", "QLinearMul"})  # onnxruntime's QOperator format (com.microsoft)


@dataclass(frozen=True)
class Squash:
    """An output that is f(x) for one computed x, where every class's f maps the real line monotonically onto
    [0, c_k] (`lowest`, `highest`: the least and greatest c_k; both 1 for a sigmoid), or — `logarithm` — the log
    of such an f. `ops`: the tail's operators from x to the output; `smooth`: one of them is not piecewise linear
    (Exp, Tanh, Erf, …), so the bound is a squash written on purpose, not logits clamped by a Clip."""

    lowest: float
    highest: float
    ops: tuple[str, ...]
    smooth: bool
    logarithm: bool = False

    @property
    def unit(self) -> bool:
        """Every class's f levels off at 0 and 1 (within 1e-3): one-vs-rest probabilities."""
        return abs(self.lowest - 1.0) <= 1e-3 and abs(self.highest - 1.0) <= 1e-3


@dataclass(frozen=True)
class _Value:
    """A value on the grid: `array` (grid × 1 or × classes, or 1 × k for a constant), the computed value it is a
    function of (`source`; None: a constant), the ops from there (`ops`, in order) and whether one is smooth."""

    array: np.ndarray
    source: str | None = None
    ops: tuple[str, ...] = ()
    smooth: bool = False

    def then(self, op: str, array: np.ndarray, *others: "_Value", smooth: bool = False) -> "_Value":
        ops = dict.fromkeys([*self.ops, *(o for other in others for o in other.ops), op])
        return _Value(array, self.source or next((o.source for o in others if o.source), None), tuple(ops),
                      smooth or op in _SMOOTH or self.smooth or any(o.smooth for o in others))


class _TooLarge(Exception):
    """A tail or a constant past the limits above: not evaluated (its output is then read as logits)."""


class _Evaluation:
    """f on the grid for one output name, `columns` of its classes at a time (every value a _Value)."""

    def __init__(self, producers: Mapping[str, Any], value: Callable[[str], Any], is_constant: Callable[[str], bool],
                 classes: int | None, columns: slice):
        self.producers, self.value, self.is_constant = producers, value, is_constant
        self.classes, self.columns = classes, columns
        self.per_class = False  # a vector constant was met: every class has its own f
        self._cache: dict[tuple[str, bool], _Value] = {}

    def at(self, name: str, moved: bool = False, depth: int = 0) -> _Value:
        # Moves are passed in a loop: a chain of hundreds of Identity nodes costs no recursion.
        for _ in range(len(self.producers) + 1):
            node = self.producers.get(name)
            if self.is_constant(name) or node is None or node.op_type not in _MOVES or \
                    node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
                break
            moved = moved or node.op_type in _RELAYOUTS
            name = node.input[0]
        key = (name, moved)
        if key not in self._cache:
            if len(self._cache) >= _MAX_NODES:
                raise _TooLarge
            self._cache[key] = self._compute(name, moved, depth)
        return self._cache[key]

    def _compute(self, name: str, moved: bool, depth: int) -> _Value:
        node = self.producers.get(name)
        if self.is_constant(name) and not (node is not None and node.op_type == "ConstantOfShape"):
            row = self._row(self.value(name), moved)
            return _Value(row) if row is not None else self._start(name)
        if node is None or depth > _MAX_DEPTH:
            return self._start(name)
        try:
            with np.errstate(all="ignore"):
                result = self._apply(node, moved, depth)
        except ValueError:  # a broadcast that fails on the grid (per-class constants on both sides of a Reshape)
            result = None
        return self._start(name) if result is None else result

    def _start(self, name: str) -> _Value:
        """`name` is where f starts: its value is the grid."""
        return _Value(_GRID.copy(), name)

    def _apply(self, node: Any, moved: bool, depth: int) -> _Value | None:
        """The node's value on the grid, or None when it is where f starts."""
        domain = "" if node.domain == "ai.onnx" else node.domain
        op = node.op_type
        inputs = [i for i in node.input if i]
        if domain == "" and op == "ConstantOfShape":  # ones_like(x): a scalar whatever x's shape
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            return _Value(np.full((1, 1), 0.0 if tensor is None else _scalar(tensor)))
        if domain == "com.microsoft" and op in _QLINEAR and len(node.input) >= 6:
            arguments = [self._dequantized(node, 0, moved, depth), self._dequantized(node, 3, moved, depth)]
            return self._combine(op[len("QLinear"):], arguments)
        if domain != "" or not inputs:
            return None
        if op == "Cast":
            if not _to_float(node):
                return None  # a Cast to an integer type changes the values
            return self.at(inputs[0], moved, depth + 1)
        if op in _UNARY or op in ("HardSigmoid", "LeakyRelu", "Elu"):
            argument = self.at(inputs[0], moved, depth + 1)
            return argument.then(op, _unary(op, node, argument.array))
        if op in _BINARY and (len(inputs) >= 2 or op in _VARIADIC):
            return self._combine(op, [self.at(i, moved, depth + 1) for i in inputs])
        if op == "Where" and len(inputs) == 3:
            condition, then, otherwise = (self.at(i, moved, depth + 1) for i in inputs)
            if _several_sources([condition, then, otherwise]):
                return None
            return condition.then(op, np.where(condition.array != 0, then.array, otherwise.array), then, otherwise)
        if op == "Clip":
            argument = self.at(inputs[0], moved, depth + 1)
            low, high = self._bound(node, 1, "min"), self._bound(node, 2, "max")
            return (None if low is False or high is False else argument.then(
                op, np.clip(argument.array, -np.inf if low is None else low, np.inf if high is None else high)))
        return None

    def _combine(self, op: str, arguments: list[_Value]) -> _Value | None:
        """An n-ary elementwise op (Max, Min, Sum, Mean take any number of inputs): None when the inputs start from
        different computed values (then this node is where f starts)."""
        if _several_sources(arguments):
            return None
        result = arguments[0].array
        for argument in arguments[1:]:
            result = _BINARY[op](result, argument.array)
        if op == "Mean":
            result = result / len(arguments)
        # a computed divisor or exponent: 1 / (1 + exp(−x)) spelled with Div is a smooth squash
        smooth = op in ("Div", "Pow") and arguments[1].source is not None
        return arguments[0].then(op, result, *arguments[1:], smooth=smooth)

    def _dequantized(self, node: Any, index: int, moved: bool, depth: int) -> _Value:
        """Input `index` of a QLinear op by its real value: a constant (scale · (q − zero point)) or, computed,
        the float value it stands for (Q/DQ are moves here)."""
        name = node.input[index]
        if not self.is_constant(name):
            return self.at(name, moved, depth + 1)
        zero = self.value(node.input[index + 2]) if len(node.input) > index + 2 and node.input[index + 2] else 0.0
        real = dequantize(self.value(name), self.value(node.input[index + 1]), zero)
        row = None if real is None else self._row(real, moved)
        if row is None:
            raise ValueError("a quantized constant that is not a scalar or over the classes: not evaluated here")
        return _Value(row)

    def _row(self, constant: Any, moved: bool) -> np.ndarray | None:
        """A constant as a row [1, k] that broadcasts against the grid column: a scalar, or a vector over the
        classes (every dimension 1 but the last, its length the class count) sliced to this evaluation's columns;
        None for anything else (unknown, empty, a matrix, a vector met past a reshape)."""
        if constant is None or constant.size == 0 or (constant.ndim and any(d != 1 for d in constant.shape[:-1])):
            return None
        row = np.asarray(constant, dtype="float64").reshape(1, -1)
        if row.shape[1] == 1:
            return row
        if moved or (self.classes is not None and row.shape[1] != self.classes):
            return None
        if self.classes is None:  # not declared: the first vector met says it, every other must agree
            if row.shape[1] > _MAX_CLASSES:
                return None
            self.classes = row.shape[1]
        self.per_class = True
        return row[:, self.columns]

    def _bound(self, node: Any, index: int, attribute: str) -> float | None | bool:
        """A Clip bound (its input since opset 11, its attribute before): a float, None when absent, False when
        not a known scalar."""
        if len(node.input) > index and node.input[index]:
            constant = self.value(node.input[index])  # a Clip bound is a scalar by the operator's definition
            return False if constant is None or constant.size != 1 else float(constant.reshape(-1)[0])
        return next((a.f for a in node.attribute if a.name == attribute), None)


def dequantize(quantized: Any, scale: Any, zero: Any = 0.0, axis: int = 1) -> np.ndarray | None:
    """ONNX DequantizeLinear on constants: (quantized − zero) · scale, per tensor (scalar scale) or per `axis`
    (scale a vector along it); None when a part is unknown or the shapes do not fit."""
    if quantized is None or scale is None or zero is None:
        return None
    quantized, scale, zero = (np.asarray(a, dtype="float64") for a in (quantized, scale, zero))
    if scale.size != 1:
        if scale.ndim != 1 or zero.size not in (1, scale.size) or not -quantized.ndim <= axis < quantized.ndim or \
                quantized.shape[axis] != scale.size:
            return None
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape) if zero.size > 1 else zero.reshape(-1)[0]
    elif zero.size != 1:
        return None
    return (quantized - zero) * scale


def _unary(op: str, node: Any, argument: np.ndarray) -> np.ndarray:
    attributes = {a.name: a.f for a in node.attribute}
    if op == "LeakyRelu":
        return np.where(argument >= 0, argument, attributes.get("alpha", 0.01) * argument)
    if op == "Elu":
        return np.where(argument >= 0, argument, attributes.get("alpha", 1.0) * np.expm1(argument))
    if op == "HardSigmoid":
        return np.clip(attributes.get("alpha", 0.2) * argument + attributes.get("beta", 0.5), 0.0, 1.0)
    return _UNARY[op](argument)


def _several_sources(arguments: list[_Value]) -> bool:
    """Whether the arguments start from different computed values."""
    return len({a.source for a in arguments if a.source is not None}) > 1


def _scalar(tensor: Any) -> float:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor).reshape(-1)
    return float(values[0]) if values.size else 0.0


def _to_float(node: Any) -> bool:
    """A Cast to float, double, half or bfloat16 (a Cast to an integer type changes the values)."""
    return next((a.i for a in node.attribute if a.name == "to"), 1) in (1, 10, 11, 16)


def _heights(f: np.ndarray) -> np.ndarray | None:
    """c_k for every column of f (grid × classes) when each maps the grid monotonically (either way) onto
    [0, c_k], c_k > 0, levelling off at both ends; else None."""
    finite = np.isfinite(f).all(axis=1)
    if not finite[_CENTRAL].all():
        return None
    f = f[finite]
    f = np.where(f[0] > f[-1], f[::-1], f)  # a class whose weight is negative: σ(−w·x) is a squash too
    c = f[-1]
    if (c <= 0).any() or (f < -1e-6 * c).any() or (f > c * (1 + 1e-6)).any() or \
            (np.diff(f, axis=0) < -1e-9 * c).any():
        return None
    levels_off = (f[:_ENDS] <= c * _LIMIT).all() and (f[-_ENDS:] >= c * (1 - _LIMIT)).all()
    return c if levels_off else None


def unit_squash(output: str, producers: Mapping[str, Any], value: Callable[[str], Any],
                is_constant: Callable[[str], bool], classes: int | None = None) -> Squash | None:
    """A Squash when `output` is f(x) for one computed value x, made by elementwise nodes whose other operands
    are constants (scalars, or vectors over the `classes`: then each class's own f), and every class's f maps the
    real line monotonically (either way) onto [0, c_k] — a sigmoid written out (c = 1), scaled by c, or the log of
    one. None otherwise: no elementwise node at all, an f that is no such function (logits scaled, shifted,
    clipped on one side), or a tail past the size limits (`_MAX_NODES`, `_MAX_WORK`).

    `producers` maps a value's name to the node making it; `value(name)` gives a constant's float array (or None);
    `is_constant(name)` says whether a name is known before the graph runs (onnx_check's walk provides all three);
    `classes`: the output's class count when the graph declares it (None: taken from the first vector constant).
    Memory: about nodes × 417 × 256 floats, whatever the class count (classes are evaluated 256 at a time)."""
    lowest, highest, logarithm, start = np.inf, -np.inf, None, 0
    first: _Value | None = None
    while True:
        evaluation = _Evaluation(producers, value, is_constant, classes, slice(start, start + _COLUMNS))
        try:
            result = evaluation.at(output)
        except (_TooLarge, RecursionError):
            return None
        if result.source in (None, output):
            return None
        first, f = first or result, result.array
        classes = evaluation.classes
        if evaluation.per_class and classes is not None and classes * len(evaluation._cache) > _MAX_WORK:
            return None
        with np.errstate(all="ignore"):
            f = np.broadcast_to(f, (len(_GRID), f.shape[1]))
            heights, log = _heights(f), False
            if heights is None and result.smooth and (f[np.isfinite(f)] <= 1e-12).all():
                heights, log = _heights(np.exp(f)), True  # log σ(x) = −softplus(−x): the log of a squash
        if heights is None or logarithm not in (None, log):
            return None
        lowest, highest, logarithm = min(lowest, float(heights.min())), max(highest, float(heights.max())), log
        start += _COLUMNS
        if not evaluation.per_class or classes is None or start >= classes:
            break
    return Squash(lowest, highest, first.ops, first.smooth, bool(logarithm))
