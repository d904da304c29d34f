"""What an elementwise tail of an ONNX graph computes, found by running it on numbers rather than by its ops.

A converter or a hand-written head can spell a sigmoid without a Sigmoid node — `1 / (1 + exp(-x))`,
`exp(x) / (1 + exp(x))`, `0.5 · (1 + tanh(x / 2))`, a hard sigmoid as `clip(x + 3, 0, 6) / 6`, torch's
numerically stable `where(x >= 0, …, …)`, a probit `0.5 · (1 + erf(x / √2))` — and then its output holds one
probability per class, not logits. Matching every spelling by its nodes would never end; instead `unit_squash`
follows the graph's output back through elementwise nodes to the value they all start from, evaluates that
function f on a grid of inputs, and reports when f maps the real line monotonically between two levels ≥ 0 — a
squashing function: onto [0, 1] probabilities, as a Sigmoid's; onto [0, c ≠ 1] scaled ones (percent); onto a
narrower range, label smoothing — or is the log of one. onnx_check decides which of those it reads.

Where the walk cannot evaluate a node (an operator it does not know, a constant that is not a scalar or a vector
over the classes, two computed inputs that start from different values, a broadcast that fails), that node is
where f starts: the output is still f of that node's value. A Concat, Max or Where of squashes (torch.cat of
per-group sigmoids) starts f too, with a squash's values, so that what follows it is read as after a Sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch

# Where f is evaluated: ±50 in steps of 0.25, then far points out to ±1e8, so that a sigmoid of x / 1e4 or a
# softsign (which nears its limits as 1/x) is seen to level off. A column: vector constants over the classes
# broadcast it to one column per class. Points where an exact spelling overflows (exp(x) / (1 + exp(x)) is
# inf / inf past x = 709, exp(900x) / (1 + exp(900x)) past 0.79) are left out; _ENDS points each side of 0 must
# remain, and f must level off over the outermost ones.
_CENTRE = np.linspace(-50.0, 50.0, 401)
_FAR = np.array([75.0, 100.0, 200.0, 500.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
_GRID = np.concatenate([-_FAR[::-1], _CENTRE, _FAR])[:, None]
_LIMIT = 1e-3  # f moves less than _LIMIT of its range over the _ENDS outermost points each side: it levels off
_ENDS = 3      # (and a level within _LIMIT of 0 or 1 is 0 or 1)
_COLUMNS = 256          # classes evaluated at once: memory is nodes × grid × this, whatever the class count
_MAX_NODES = 128        # a longer elementwise tail is no head anyone exports: not evaluated
_MAX_DEPTH = 100        # nodes of arithmetic between the output and where f starts (moves not counted)
_MAX_WORK = 4_000_000   # nodes × classes: past it not evaluated
_MAX_CLASSES = 100_000  # a longer vector, where the graph does not declare its classes, is not over them
_MAX_PARTS = 3          # nested Concat / Max / Where of squashes followed (a per-group sigmoid head is one)

_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Exp": np.exp, "Log": np.log, "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0.0), "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Softplus": lambda x: np.logaddexp(0.0, x), "Softsign": lambda x: x / (1.0 + np.abs(x)),
    "Erf": lambda x: torch.special.erf(torch.from_numpy(np.ascontiguousarray(x))).numpy(),
    "Atan": np.arctan, "Sign": np.sign, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
    "Not": lambda x: (x == 0).astype("float64"), "IsNaN": lambda x: np.isnan(x).astype("float64")}
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
_SMOOTH = frozenset({"Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Sigmoid", "Softplus", "Softsign", "Erf", "Pow",
                     "Atan"})
# Nodes that move values without changing them (a layout change is no change to an elementwise function; a
# Q/DQ pair is the same values on an integer grid: onnxruntime's quantizers write them around every step).
_MOVES = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Dropout",
                    "QuantizeLinear", "DequantizeLinear"})
# ...of which these may put another axis last: a vector constant met past one is not over the classes.
_RELAYOUTS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
_VARIADIC = frozenset({"Sum", "Mean", "Max", "Min"})  # any number of inputs, one included
_QLINEAR = frozenset({"QLinearAdd", "QLinearMul"})  # onnxruntime's QOperator format (com.microsoft)
# Nodes whose every output value is one of their data inputs' (or their mean): a squash of each input is one of
# the output — torch.cat of per-group sigmoids, the Max of two sigmoid heads, a top-k mask's Where.
_SELECTORS = {("", "Concat"): slice(None), ("", "Max"): slice(None), ("", "Min"): slice(None),
              ("", "Mean"): slice(None), ("", "Where"): slice(1, 3),
              ("com.microsoft", "QLinearConcat"): slice(2, None, 3)}  # (Y scale, Y zero, then X, scale, zero...)
# ...of which these pass every value of one input as it is: a constant input in [0, 1] is a probability there (a
# masked class); Max, Min and Mean change values with a constant (Max(σ, 0.5) is narrowed), so the grid reads them.
_PASSING = frozenset({("", "Concat"), ("", "Where"), ("com.microsoft", "QLinearConcat")})


@dataclass(frozen=True)
class Squash:
    """An output that is f(x) for one computed x (or a Concat, Max, Min, Mean or Where of such outputs), where
    every class's f is monotone (either way) from a level `bottom` to a level `top`, levelling off at both ends —
    or a constant (a masked class: `constant`). `bottom`, `top`, `constant`: the least and greatest such level over
    the classes (a sigmoid: 0, 1). `logarithm`: the output is the log of such an f. `ops`: the tail's operators
    from x to the output; `smooth`: one of them is not piecewise linear (Exp, Tanh, Erf, …), so the bound is a
    squash written on purpose, not logits clamped by a Clip."""

    bottom: tuple[float, float]
    top: tuple[float, float]
    ops: tuple[str, ...]
    smooth: bool
    logarithm: bool = False
    constant: tuple[float, float] | None = None

    @property
    def from_zero(self) -> bool:
        """Every class's f starts at 0 (within _LIMIT of its top)."""
        return self.bottom[1] <= _LIMIT * self.top[0]

    @property
    def unit(self) -> bool:
        """Every class's f levels off at 0 and 1 (within 1e-3), constant classes within [0, 1]: one-vs-rest
        probabilities."""
        return self.bottom[1] <= _LIMIT and abs(self.top[0] - 1.0) <= _LIMIT and abs(self.top[1] - 1.0) <= _LIMIT \
            and (self.constant is None or (self.constant[0] >= 0 and self.constant[1] <= 1 + _LIMIT))

    def merged(self, other: "Squash") -> "Squash | None":
        """The Squash of both outputs side by side (two slices of classes, two inputs of a Concat/Max/Where), or
        None when one is a log and the other not."""
        if self.logarithm != other.logarithm:
            return None
        constants = [c for c in (self.constant, other.constant) if c is not None]
        return Squash(_span(self.bottom, other.bottom), _span(self.top, other.top),
                      tuple(dict.fromkeys([*self.ops, *other.ops])), self.smooth or other.smooth, self.logarithm,
                      None if not constants else (min(c[0] for c in constants), max(c[1] for c in constants)))


def _span(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), max(a[1], b[1])


_NONE = (np.inf, -np.inf)  # an empty span: a part with constant classes only


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
                 classes: int | None, columns: slice, nesting: int = 0,
                 selected: dict[str, _Value | None] | None = None):
        self.producers, self.value, self.is_constant = producers, value, is_constant
        self.classes, self.columns, self.nesting = classes, columns, nesting
        # _selected's answers, shared by the evaluations of every slice of classes: a selector's value does not
        # depend on the slice, and finding it evaluates each of its inputs over all their classes
        self.selected = {} if selected is None else selected
        self.per_class = False  # a vector constant was met: every class has its own f
        self._cache: dict[tuple[str, tuple[str, ...]], _Value] = {}

    def at(self, name: str, path: tuple[str, ...] = (), depth: int = 0) -> _Value:
        """The value of `name` reached through the relayouts `path` (Reshape, Transpose, … passed so far)."""
        # Moves are passed in a loop: a chain of hundreds of Identity nodes costs no recursion.
        for _ in range(len(self.producers) + 1):
            node = self.producers.get(name)
            if self.is_constant(name) or node is None or node.op_type not in _MOVES or \
                    node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
                break
            if node.op_type in _RELAYOUTS:
                path = (*path, self._relayout(node))
            name = node.input[0]
        key = (name, path)
        if key not in self._cache:
            if len(self._cache) >= _MAX_NODES:
                raise _TooLarge
            self._cache[key] = self._compute(name, path, depth)
        return self._cache[key]

    def _compute(self, name: str, path: tuple[str, ...], depth: int) -> _Value:
        node = self.producers.get(name)
        if self.is_constant(name) and not (node is not None and node.op_type == "ConstantOfShape"):
            constant = self.value(name)
            if constant is not None or node is None:  # else computed from constants (1 − eps): evaluated below
                row = self._row(constant, bool(path))
                return _Value(row) if row is not None else self._start(name, path)
        if node is None or depth > _MAX_DEPTH:
            return self._start(name, path)
        try:
            with np.errstate(all="ignore"):
                result = self._apply(node, path, depth) or self._selected(name, node)
        except (_TooLarge, RecursionError):
            raise
        except Exception:  # noqa: BLE001 - a failed broadcast (per-class constants on both sides of a Reshape), a
            result = None  # malformed constant of an untrusted file: not evaluated here
        return self._start(name, path) if result is None else result

    def _selected(self, name: str, node: Any) -> _Value | None:
        if name not in self.selected:
            self.selected[name] = self._select(name, node)
        return self.selected[name]

    def _select(self, name: str, node: Any) -> _Value | None:
        """A Concat / Max / Min / Mean / Where (or QLinearConcat) of inputs that are each a squash (or, where values
        pass as they are, a constant in [0, 1]) — torch.cat of per-group sigmoids, the Max of two sigmoid heads, a
        top-k mask: where f starts, with the value of a squash between their levels (σ of the grid), so that
        arithmetic after it (× 100, label smoothing, log) is read as after a Sigmoid. None when it is no such node."""
        key = ("" if node.domain == "ai.onnx" else node.domain, node.op_type)
        if key not in _SELECTORS or self.nesting >= _MAX_PARTS:
            return None
        squash: Squash | None = None
        for part in [i for i in node.input][_SELECTORS[key]]:
            if not part:
                return None
            if self.is_constant(part):
                constant = self.value(part)
                if key not in _PASSING or constant is None or constant.size == 0 or constant.min() < 0 or \
                        constant.max() > 1:
                    return None
                found: Squash | None = Squash(_NONE, _NONE, (), False, False,
                                              (float(constant.min()), float(constant.max())))
            else:  # each part has its own classes: its vectors are over them
                found = _squash(part, self.producers, self.value, self.is_constant, None, self.nesting + 1)
            squash = found if squash is None or found is None else squash.merged(found)
            if squash is None:
                return None
        if squash is None or squash.bottom == _NONE:
            return None  # constants only
        sigmoid = 1.0 / (1.0 + np.exp(-_GRID))
        low, high = squash.bottom[0], squash.top[1]
        array = np.log(sigmoid) if squash.logarithm else low + (high - low) * sigmoid
        return _Value(array, f"{name} (selected)", (*squash.ops, node.op_type), squash.smooth)

    def _relayout(self, node: Any) -> str:
        """What a relayout does, as text: two Reshape nodes to the same shape are the same move."""
        constants = [str(np.asarray(self.value(i)).tolist()) for i in node.input[1:] if i]
        attributes = [f"{a.name}={list(a.ints) if a.ints else a.i}" for a in node.attribute]
        return f"{node.op_type}({', '.join([*constants, *attributes])})"

    def _start(self, name: str, path: tuple[str, ...]) -> _Value:
        """`name` is where f starts: its value is the grid. Reached through relayouts it is another value — a
        class permutation of x is not x — so the path is part of its name."""
        return _Value(_GRID.copy(), name if not path else f"{name} via {' '.join(path)}")

    def _apply(self, node: Any, path: tuple[str, ...], depth: int) -> _Value | None:
        """The node's value on the grid, or None when it is where f starts."""
        domain = "" if node.domain == "ai.onnx" else node.domain
        op = node.op_type
        inputs = [i for i in node.input if i]
        if domain == "" and op == "ConstantOfShape":  # ones_like(x): a scalar whatever x's shape
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            return _Value(np.full((1, 1), 0.0 if tensor is None else _scalar(tensor)))
        if domain == "com.microsoft" and op == "QLinearSigmoid" and node.input and node.input[0]:
            argument = self.at(node.input[0], path, depth + 1)  # Q/DQ are moves: its real values
            return argument.then("Sigmoid", _UNARY["Sigmoid"](argument.array))
        if domain == "com.microsoft" and op in _QLINEAR and len(node.input) >= 6:
            arguments = [self._dequantized(node, 0, path, depth), self._dequantized(node, 3, path, depth)]
            return self._combine(op[len("QLinear"):], arguments)
        if domain != "" or not inputs:
            return None
        if op == "Cast":
            to = next((a.i for a in node.attribute if a.name == "to"), 1)
            argument = self.at(inputs[0], path, depth + 1)
            if to == 9:  # bool: TorchScript's nan_to_num casts IsNaN's mask so
                return argument.then("Cast", (argument.array != 0).astype("float64"))
            return argument if _to_float(node) else None  # a Cast to an integer type changes the values
        if op in _UNARY or op in ("HardSigmoid", "LeakyRelu", "Elu", "IsInf"):
            argument = self.at(inputs[0], path, depth + 1)
            return argument.then(op, _unary(op, node, argument.array))
        if op in _BINARY and (len(inputs) >= 2 or op in _VARIADIC):
            return self._combine(op, [self.at(i, path, depth + 1) for i in inputs])
        if op == "Where" and len(inputs) == 3:
            condition, then, otherwise = (self.at(i, path, depth + 1) for i in inputs)
            if _several_sources([condition, then, otherwise]):
                return None
            return condition.then(op, np.where(condition.array != 0, then.array, otherwise.array), then, otherwise)
        if op == "Clip":
            argument = self.at(inputs[0], path, depth + 1)
            low, high = self._bound(node, 1, "min", path, depth), self._bound(node, 2, "max", path, depth)
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

    def _dequantized(self, node: Any, index: int, path: tuple[str, ...], depth: int) -> _Value:
        """Input `index` of a QLinear op by its real value: a constant (scale · (q − zero point)) or, computed,
        the float value it stands for (Q/DQ are moves here)."""
        name = node.input[index]
        if not self.is_constant(name):
            return self.at(name, path, depth + 1)
        zero = self.value(node.input[index + 2]) if len(node.input) > index + 2 and node.input[index + 2] else 0.0
        real = dequantize(self.value(name), self.value(node.input[index + 1]), zero)
        row = None if real is None else self._row(real, bool(path))
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

    def _bound(self, node: Any, index: int, attribute: str, path: tuple[str, ...], depth: int) -> float | None | bool:
        """A Clip bound (its input since opset 11, its attribute before): a float, None when absent, False when
        not a known scalar (a Clip bound is a scalar by the operator's definition)."""
        if len(node.input) > index and node.input[index]:
            bound = self.at(node.input[index], path, depth + 1)
            return False if bound.source is not None or bound.array.size != 1 else float(bound.array.reshape(-1)[0])
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
    if op == "IsInf":
        ints = {a.name: a.i for a in node.attribute}
        return ((np.isposinf(argument) & bool(ints.get("detect_positive", 1))) |
                (np.isneginf(argument) & bool(ints.get("detect_negative", 1)))).astype("float64")
    if op == "HardSigmoid":
        return np.clip(attributes.get("alpha", 0.2) * argument + attributes.get("beta", 0.5), 0.0, 1.0)
    return _UNARY[op](argument)


def _several_sources(arguments: list[_Value]) -> bool:
    """Whether the arguments start from different computed values."""
    return len({a.source for a in arguments if a.source is not None}) > 1


def _scalar(tensor: Any) -> float:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor).reshape(-1)
    if np.iscomplexobj(values):
        raise ValueError("a complex constant")
    return float(values[0]) if values.size else 0.0


def _to_float(node: Any) -> bool:
    """A Cast to float, double, half or bfloat16 (a Cast to an integer type changes the values)."""
    return next((a.i for a in node.attribute if a.name == "to"), 1) in (1, 10, 11, 16)


def _levels(f: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(bottom, top) per column of f (grid × classes) when each column is constant or monotone (either way),
    levelling off at both ends of the grid; None otherwise."""
    finite = np.isfinite(f).all(axis=1)
    x = _GRID[finite, 0]
    if (x < 0).sum() < _ENDS or (x > 0).sum() < _ENDS:
        return None
    f = f[finite]
    f = np.where(f[0] > f[-1], f[::-1], f)  # a class whose weight is negative: σ(−w·x) is a squash too
    bottom, top = f[0], f[-1]
    span = top - bottom
    if (np.diff(f, axis=0) < -1e-9 * span).any() or (f < bottom - 1e-9 * span).any() or \
            (f > top + 1e-9 * span).any():
        return None
    levels_off = (f[_ENDS - 1] - bottom <= _LIMIT * span).all() and (top - f[-_ENDS] <= _LIMIT * span).all()
    return (bottom, top) if levels_off else None


def _squash_of(f: np.ndarray, value: _Value) -> Squash | None:
    """The Squash that f (grid × classes, from `value`) is, or its log; None when it is neither (a class that
    goes below 0: tanh, logits clipped both ways)."""
    log = False
    levels = _levels(f)
    if levels is None and value.smooth and (f[np.isfinite(f)] <= 1e-12).all():
        levels, log = _levels(np.exp(f)), True  # log σ(x) = −softplus(−x): the log of a squash
    if levels is None:
        return None
    bottom, top = levels
    flat = top - bottom <= 1e-9 * np.maximum(np.abs(top), 1e-12)
    moving_bottom, moving_top = bottom[~flat], top[~flat]
    if (moving_bottom < -1e-6 * np.abs(moving_top)).any() or (bottom[flat] < 0).any():
        return None
    constant = None if not flat.any() else (float(bottom[flat].min()), float(bottom[flat].max()))
    spans = [(float(v.min()), float(v.max())) if v.size else _NONE for v in (moving_bottom, moving_top)]
    return Squash(spans[0], spans[1], value.ops, value.smooth, log, constant)


def _grid_squash(output: str, producers: Mapping[str, Any], value: Callable[[str], Any],
                 is_constant: Callable[[str], bool], classes: int | None, nesting: int) -> Squash | None:
    """The Squash of `output` evaluated on the grid (`_COLUMNS` classes at a time), or None."""
    squash: Squash | None = None
    start, selected = 0, {}
    while True:
        evaluation = _Evaluation(producers, value, is_constant, classes, slice(start, start + _COLUMNS), nesting,
                                 selected)
        try:
            result = evaluation.at(output)
        except (_TooLarge, RecursionError):
            return None
        if result.source in (None, output):
            return None
        classes = evaluation.classes
        if evaluation.per_class and classes is not None and classes * len(evaluation._cache) > _MAX_WORK:
            return None
        with np.errstate(all="ignore"):
            part = _squash_of(np.broadcast_to(result.array, (len(_GRID), result.array.shape[1])), result)
        squash = part if squash is None or part is None else squash.merged(part)
        if squash is None:
            return None
        start += _COLUMNS
        if not evaluation.per_class or classes is None or start >= classes:
            return squash


def _squash(output: str, producers: Mapping[str, Any], value: Callable[[str], Any],
            is_constant: Callable[[str], bool], classes: int | None, depth: int) -> Squash | None:
    squash = _grid_squash(output, producers, value, is_constant, classes, depth)
    return None if squash is None or squash.bottom == _NONE else squash  # constant classes only: no squash


def unit_squash(output: str, producers: Mapping[str, Any], value: Callable[[str], Any],
                is_constant: Callable[[str], bool], classes: int | None = None) -> Squash | None:
    """A Squash when `output` is f(x) for one computed value x, made by elementwise nodes whose other operands
    are constants (scalars, or vectors over the `classes`: then each class's own f), and every class's f is
    monotone (either way) between two levels ≥ 0, levelling off at both ends, or constant — a sigmoid written out
    (levels 0 and 1), scaled (0 and c), narrowed (label smoothing: 0.05 and 0.95), or the log of one; or a Concat,
    Max, Min, Mean or Where of such outputs. None otherwise: no elementwise node at all, an f that is no such
    function (logits scaled, shifted, clipped on one side, tanh), or a tail past the size limits (`_MAX_NODES`,
    `_MAX_WORK`).

    `producers` maps a value's name to the node making it; `value(name)` gives a constant's float array (or None);
    `is_constant(name)` says whether a name is known before the graph runs (onnx_check's walk provides all three);
    `classes`: the output's class count when the graph declares it (None: taken from the first vector constant).
    Memory: about nodes × 421 × 256 floats, whatever the class count (classes are evaluated 256 at a time)."""
    return _squash(output, producers, value, is_constant, classes, 0)
