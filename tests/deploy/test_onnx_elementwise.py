"""unit_squash: which elementwise tails of a graph are a sigmoid, read from the numbers they compute."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from cnnlab.deploy.onnx_elementwise import unit_squash


def _squash(lines: list[str], constants: dict[str, object] | None = None) -> float | None:
    """unit_squash of a tail written as "Op input... output" lines from the computed value `x` to `y`."""
    nodes = [helper.make_node(op, names[:-1], names[-1:]) for op, *names in (line.split() for line in lines)]
    values = {name: np.asarray(value, dtype="float64") for name, value in (constants or {}).items()}
    producers = {output: node for node in nodes for output in node.output}
    producers["x"] = helper.make_node("Gemm", ["features", "w"], ["x"])  # where the logits come from
    return unit_squash("y", producers, values.get, lambda name: name in values)


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
    "through Cast, Reshape and Transpose": (["Neg x n", "Cast n c", "Transpose c t", "Exp t e", "Add e one d",
                                             "Reciprocal d y"], {"one": 1.0}),
}


@pytest.mark.parametrize("spelling", list(SIGMOIDS))
def test_a_sigmoid_in_any_spelling_squashes_onto_zero_one(spelling: str) -> None:
    lines, constants = SIGMOIDS[spelling]
    assert _squash(lines, constants) == pytest.approx(1.0, abs=1e-3)


def test_a_scaled_sigmoid_gives_its_scale() -> None:
    assert _squash(["Neg x n", "Exp n e", "Add e one d", "Div hundred d y"],
                   {"one": 1.0, "hundred": 100.0}) == pytest.approx(100.0)


LOGITS = {
    "nothing after the logits": (["Identity x y"], {}),
    "a temperature": (["Mul x t y"], {"t": 0.5}),
    "tanh (onto [-1, 1])": (["Tanh x y"], {}),
    "relu (unbounded)": (["Relu x y"], {}),
    "exp (unbounded)": (["Exp x y"], {}),
    "SiLU x * sigmoid(x) (two uses of x, unbounded)": (["Sigmoid x s", "Mul x s y"], {}),
    "a sigmoid that never levels off (x / 100)": (["Div x hundred s", "Sigmoid s y"], {"hundred": 100.0}),
    "per-class scales that end at different heights": (["Sigmoid x s", "Mul s c y"], {"c": [1.0, 2.0]}),
    "a matrix constant": (["Mul x m a", "Sigmoid a y"], {"m": [[1.0, 1.0], [2.0, 2.0]]}),
    "an unknown constant": (["Mul x unknown a", "Sigmoid a y"], {}),
    "a bump, not monotone": (["Mul x x s", "Neg s n", "Exp n y"], {}),
}


@pytest.mark.parametrize("what", list(LOGITS))
def test_what_is_no_squash_is_not_taken_for_one(what: str) -> None:
    lines, constants = LOGITS[what]
    assert _squash(lines, constants) is None
