"""What an elementwise tail of an ONNX graph computes, found by running it on numbers rather than by its ops.

A converter or a hand-written head can spell a sigmoid without a Sigmoid node — `1 / (1 + exp(-x))`,
`exp(x) / (1 + exp(x))`, `0.5 · (1 + tanh(x / 2))`, a hard sigmoid as `clip(x + 3, 0, 6) / 6` — and then its output
holds one probability per class, not logits. Matching every spelling by its nodes would never end; instead
`unit_squash` follows the graph's output back through elementwise nodes whose other operands are scalar
constants to the one computed value they all start from, evaluates that function f on a grid of inputs, and
reports when f maps the real line monotonically onto [0, c] — a squashing function (c = 1: probabilities, as a
Sigmoid's; c ≠ 1: scaled probabilities, percent).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

# Where f is evaluated: far enough out that a sigmoid of x / 4 (a per-class temperature) is within 1e-4 of its
# limits at the ends (σ(±12) = 6e-6 from them). A column: per-class constants (a vector over the classes)
# broadcast it to one column per class.
_GRID = np.linspace(-50.0, 50.0, 401)[:, None]
_LIMIT = 1e-3  # f ≤ c·_LIMIT on [−50, −48] and f ≥ c·(1 − _LIMIT) on [48, 50]: it levels off at both bounds
_ENDS = 9      # grid points in each of those stretches
_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Exp": np.exp, "Log": np.log, "Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal,
    "Tanh": np.tanh, "Relu": lambda x: np.maximum(x, 0.0), "Sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "Softplus": lambda x: np.logaddexp(0.0, x), "Floor": np.floor, "Ceil": np.ceil, "Round": np.round,
    "Identity": lambda x: x}
_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power, "Max": np.maximum,
    "Min": np.minimum, "Sum": np.add}
# Nodes that move values without changing them (a layout change is no change to an elementwise function).
_MOVES = frozenset({"Cast", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})


class _Evaluation:
    """f(_GRID) for one output name: the single non-constant source all its paths lead to, or unknown (None)."""

    def __init__(self, producers: Mapping[str, Any], value: Callable[[str], Any], is_constant: Callable[[str], bool]):
        self.producers, self.value, self.is_constant = producers, value, is_constant
        self.source: str | None = None
        self._cache: dict[str, np.ndarray | None] = {}

    def at(self, name: str, depth: int = 0) -> np.ndarray | None:
        if name not in self._cache:
            self._cache[name] = self._compute(name, depth)
        return self._cache[name]

    def _compute(self, name: str, depth: int) -> np.ndarray | None:
        if self.is_constant(name):
            return _as_row(self.value(name))
        node = self.producers.get(name)
        op = None if node is None or node.domain not in ("", "ai.onnx") or depth > 64 else node.op_type
        inputs = [] if node is None else [i for i in node.input if i]
        if op in _UNARY or (op in _MOVES and op != "Cast") or (op == "Cast" and _to_float(node)):
            argument = self.at(node.input[0], depth + 1) if node.input and node.input[0] else None
            return None if argument is None else _UNARY.get(op, _UNARY["Identity"])(argument)
        if op in _BINARY and len(inputs) >= 2:
            arguments = [self.at(i, depth + 1) for i in inputs]
            if any(a is None for a in arguments):
                return None
            result = arguments[0]
            for argument in arguments[1:]:  # Max, Min and Sum take any number of inputs
                result = _BINARY[op](result, argument)
            return result
        if op == "Clip":
            low, high = (self._bound(node, 1, "min"), self._bound(node, 2, "max"))
            argument = self.at(node.input[0], depth + 1) if node.input and node.input[0] else None
            if argument is None or low is False or high is False:
                return None
            return np.clip(argument, -np.inf if low is None else low, np.inf if high is None else high)
        if op in ("HardSigmoid", "LeakyRelu") and node.input:
            argument = self.at(node.input[0], depth + 1)
            attributes = {a.name: a.f for a in node.attribute}
            if argument is None:
                return None
            if op == "LeakyRelu":
                return np.where(argument >= 0, argument, attributes.get("alpha", 0.01) * argument)
            return np.clip(attributes.get("alpha", 0.2) * argument + attributes.get("beta", 0.5), 0.0, 1.0)
        # Anything else is where the function starts: it must be the same value on every path.
        if self.source not in (None, name):
            return None
        self.source = name
        return _GRID.copy()

    def _bound(self, node: Any, index: int, attribute: str) -> float | None | bool:
        """A Clip bound (its input since opset 11, its attribute before): a float, None when absent, False when not
        a known scalar."""
        if len(node.input) > index and node.input[index]:
            constant = self.value(node.input[index])  # a Clip bound is a scalar by the operator's definition
            return False if constant is None or constant.size != 1 else float(constant.reshape(-1)[0])
        return next((a.f for a in node.attribute if a.name == attribute), None)


def _as_row(constant: Any) -> np.ndarray | None:
    """A constant as a row [1, k] that broadcasts against the grid column: a scalar (k = 1) or a vector over the
    classes (every dimension 1 but the last); None for anything else (unknown, empty, a matrix)."""
    if constant is None or constant.size == 0 or (constant.ndim and any(d != 1 for d in constant.shape[:-1])):
        return None
    return np.asarray(constant, dtype="float64").reshape(1, -1)


def _to_float(node: Any) -> bool:
    """A Cast to float, double or half (a Cast to an integer type changes the values)."""
    return next((a.i for a in node.attribute if a.name == "to"), 1) in (1, 10, 11, 16)


def unit_squash(output: str, producers: Mapping[str, Any], value: Callable[[str], Any],
                is_constant: Callable[[str], bool]) -> float | None:
    """c when `output` is f(x) for one computed value x, made by elementwise nodes whose other operands are
    constants (scalars, or vectors over the classes: then each class's own f), and every class's f maps the real
    line monotonically (either way) onto [0, c] with the same c > 0 — a sigmoid written out (c = 1), or scaled
    by c. None otherwise: no elementwise node at all, several computed values, a constant of another shape, an
    unknown operator, or an f that is not such a squashing function (logits scaled, shifted, clipped on one side).

    `producers` maps a value's name to the node making it; `value(name)` gives a constant's float array (or None);
    `is_constant(name)` says whether a name is known before the graph runs (onnx_check's walk provides all three)."""
    evaluation = _Evaluation(producers, value, is_constant)
    with np.errstate(all="ignore"):
        f = evaluation.at(output)
    if f is None or evaluation.source in (None, output) or not np.isfinite(f).all():
        return None
    f = np.broadcast_to(f, (len(_GRID), f.shape[1]))
    f = np.where(f[0] > f[-1], f[::-1], f)  # a class whose weight is negative: σ(−w·x) is a squash too
    c = float(f[-1].max())
    if c <= 0 or not np.allclose(f[-1], c, rtol=_LIMIT, atol=0) or f.min() < -1e-6 * c or f.max() > c * (1 + 1e-6) \
            or (np.diff(f, axis=0) < -1e-9 * c).any():
        return None
    levels_off = (f[:_ENDS] <= c * _LIMIT).all() and (f[-_ENDS:] >= c * (1 - _LIMIT)).all()
    return c if levels_off else None
