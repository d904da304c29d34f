"""ONNX files other tools make from a cnnlab export (tests/onnx_variants.py): a Softmax after the logits, FP16, a
fixed batch, onnxruntime's dynamic INT8 — read, scored, predicted and timed as what they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.deploy.bench import TimingPlan, time_onnx
from cnnlab.deploy.infer import open_model
from cnnlab.deploy.onnx_check import check_onnx_file
from cnnlab.deploy.ort import evaluate_onnx, example_feed, onnx_session
from cnnlab.errors import CnnlabError
from helpers import HAS_OPENVINO
from onnx_variants import (dynamic_int8, to_float16, with_ending_then, with_ensemble, with_fixed_batch, with_softmax,
                           with_softmax_in_function, with_written_out_sigmoid, with_written_out_softmax)

QUICK = TimingPlan(warmup=1, min_iters=3, min_seconds=0.0)
RUNTIMES = ("onnxruntime", "openvino") if HAS_OPENVINO else ("onnxruntime",)


def _images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_a_graph_ending_in_softmax_gives_the_models_probabilities_not_a_second_softmax(
        lenet_onnx_once, tmp_path: Path, op: str, runtime: str) -> None:
    """evaluate's ECE and predict's probabilities came from softmax(softmax(logits)): 47.1 % shown for 98.8 %."""
    model, path = lenet_onnx_once
    ending = with_softmax(path, tmp_path / f"{op}.onnx", op=op)
    images = _images()
    with torch.no_grad():
        expected = model(images).softmax(dim=-1)
    loaded = open_model("onnx", ending, runtime=runtime)
    probabilities = loaded.logits(images).softmax(dim=-1)
    assert torch.allclose(probabilities, expected, atol=1e-5), (probabilities, expected)

    from cnnlab.deploy.onnx_check import output_kind

    assert output_kind(ending) == ("probabilities" if op == "Softmax" else "log-probabilities")
    assert output_kind(path) == "logits"
    assert loaded.outputs == output_kind(ending) and loaded.describe()["outputs"] == loaded.outputs


def test_evaluate_onnx_and_predict_score_a_softmax_file_as_its_source(lenet_onnx_once, tmp_path: Path) -> None:
    from cnnlab.pipelines.predict import predict_files

    _, path = lenet_onnx_once
    ending = with_softmax(path, tmp_path / "softmax.onnx")
    loader = DataLoader(TensorDataset(_images(12), torch.arange(12) % 4), batch_size=5)
    plain, softmax = evaluate_onnx(path, loader), evaluate_onnx(ending, loader)
    assert softmax["acc"] == plain["acc"] and softmax["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    # through a session too (quantize scores its candidates so)
    assert evaluate_onnx(onnx_session(ending), loader)["loss"] == pytest.approx(plain["loss"], abs=1e-5)

    from PIL import Image

    picture = tmp_path / "one.png"
    Image.fromarray((torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()
                    ).save(picture)
    [from_logits], _ = predict_files(open_model("onnx", path), [picture], topk=4, batch_size=1)
    [from_probabilities], _ = predict_files(open_model("onnx", ending), [picture], topk=4, batch_size=1)
    assert from_probabilities.labels == from_logits.labels
    assert from_probabilities.probabilities == pytest.approx(from_logits.probabilities, abs=1e-5)


@pytest.mark.parametrize("make", [with_softmax_in_function, with_written_out_softmax])
def test_a_softmax_inside_a_function_or_written_out_is_not_softmaxed_again(lenet_onnx_once, tmp_path: Path,
                                                                          make, caplog: pytest.LogCaptureFixture
                                                                          ) -> None:
    """The graph walk stopped at a local function (dynamo exports wrap modules in them) and at a softmax written
    out as Exp/ReduceSum/Div: such files were scored as logits, softmaxed twice — a wrong loss, ECE and
    probabilities with exit 0. The walk now enters functions; what it cannot see, the first outputs show."""
    import logging

    from cnnlab.deploy.onnx_check import output_kind

    model, path = lenet_onnx_once
    ending = make(path, tmp_path / "ending.onnx")
    assert output_kind(ending) == ("probabilities" if make is with_softmax_in_function else "logits")
    images = _images()
    with torch.no_grad():
        expected = model(images).softmax(dim=-1)
    loaded = open_model("onnx", ending)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        probabilities = loaded.logits(images).softmax(dim=-1)
    assert torch.allclose(probabilities, expected, atol=1e-5), (probabilities, expected)
    assert loaded.outputs == "probabilities" and loaded.describe()["outputs"] == "probabilities"
    assert ("every output row is a probability vector" in caplog.text) == (make is with_written_out_softmax)
    loader = DataLoader(TensorDataset(_images(12), torch.arange(12) % 4), batch_size=5)
    assert evaluate_onnx(ending, loader)["loss"] == pytest.approx(evaluate_onnx(path, loader)["loss"], abs=1e-5)
    assert open_model("onnx", path).logits(images).softmax(dim=-1) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_sigmoid_head_shows_its_own_probabilities_and_ranks_by_them(lenet_onnx_once, tmp_path: Path,
                                                                      runtime: str) -> None:
    """A graph ending in Sigmoid (one-vs-rest, a BCE-trained head) was scored as logits: predict showed the softmax
    of the sigmoids (41 % for a class the model gives 97 %), and evaluate's ECE binned those — exit 0."""
    from PIL import Image

    from cnnlab.data.transforms import eval_transform
    from cnnlab.deploy.onnx_check import output_kind
    from cnnlab.pipelines.evaluate import score
    from cnnlab.pipelines.predict import predict_files

    model, path = lenet_onnx_once
    ending = with_softmax(path, tmp_path / "sigmoid.onnx", op="Sigmoid")
    assert output_kind(ending) == "sigmoid-probabilities" and check_onnx_file(ending).outputs == output_kind(ending)
    assert output_kind(with_softmax(path, tmp_path / "hard.onnx", op="HardSigmoid")) == "sigmoid-probabilities"
    images = _images(12)
    with torch.no_grad():
        raw = model(images)
    expected = raw.sigmoid()
    loaded = open_model("onnx", ending, runtime=runtime)
    logits, probabilities = loaded.scores(images)
    assert torch.allclose(probabilities, expected, atol=1e-5), (probabilities, expected)
    normalised = expected / expected.sum(dim=1, keepdim=True)
    assert torch.allclose(logits.softmax(dim=-1), normalised, atol=1e-5)  # the cross-entropy's distribution
    assert loaded.describe()["outputs"] == "sigmoid-probabilities"

    targets = torch.arange(12) % 4
    scores = score(loaded, DataLoader(TensorDataset(images, targets), batch_size=5))
    assert torch.equal(scores.predicted, raw.argmax(dim=1))
    assert torch.allclose(scores.confidence, expected.max(dim=1).values, atol=1e-5)  # ECE bins the model's own

    picture = tmp_path / "one.png"
    Image.fromarray((torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()
                    ).save(picture)
    [own], _ = predict_files(open_model("onnx", path), [picture], topk=4, batch_size=1)
    [shown], _ = predict_files(loaded, [picture], topk=4, batch_size=1)
    assert shown.labels == own.labels  # the same ranking
    with torch.no_grad():
        [sigmoids] = model(eval_transform(loaded.spec.preprocessing())(Image.open(picture))[None]).sigmoid().tolist()
    assert list(shown.probabilities) == pytest.approx([sigmoids[loaded.classes.index(c)] for c in shown.labels],
                                                      abs=1e-5)


# The tester of the first three (probe 41) found the rest still read as logits and softmaxed, exit 0: torch's stable
# where() sigmoid, a probit, a temperature of 10 (levels off past ±50), ones_like(x) as ConstantOfShape, a QDQ pair.
_PROBABILITY = {"reciprocal": torch.sigmoid, "exp_ratio": torch.sigmoid, "tanh": torch.sigmoid,
                "stable_where": torch.sigmoid, "probit": lambda x: 0.5 * (1 + torch.erf(x / 2 ** 0.5)),
                "temperature_10": lambda x: torch.sigmoid(x / 10), "ones_like": torch.sigmoid,
                "qdq": torch.sigmoid, "cat_groups": torch.sigmoid, "nan_to_num": torch.sigmoid,
                "masked_class": lambda x: torch.sigmoid(x) * torch.tensor([1.0, 1.0, 0.0, 1.0]),
                "above_mean_mask": lambda x: torch.sigmoid(x) * (x >= x.mean()),
                "clamp_eps_sub": lambda x: torch.sigmoid(x).clamp(1e-6, 1 - 1e-6),
                "squared": lambda x: torch.sigmoid(x) ** 2}
# ... and the tester of those (probe 42): after a Concat, an IsNaN/Where, a class mask, a computed mask, a clamp whose
# bound is computed, or a square, a sigmoid was softmaxed again (or refused when it was a Sigmoid node)


@pytest.mark.parametrize("spelling", list(_PROBABILITY))
def test_a_sigmoid_written_out_shows_its_own_probabilities(lenet_onnx_once, tmp_path: Path, spelling: str) -> None:
    """A sigmoid spelled without a Sigmoid node — 1 / (1 + exp(−x)), exp(x) / (1 + exp(x)), 0.5 · (1 + tanh(x / 2))
    — was read as logits and softmaxed: predict showed the softmax of the sigmoids and the ECE binned those, exit 0
    (found by the tester of stop 40). Its output is now read as the one-vs-rest probabilities it is."""
    from cnnlab.deploy.onnx_check import output_kind

    model, path = lenet_onnx_once
    written = with_written_out_sigmoid(path, tmp_path / f"{spelling}.onnx", spelling)
    assert output_kind(written) == "sigmoid-probabilities"
    images = _images(12)
    with torch.no_grad():
        expected = _PROBABILITY[spelling](model(images))
    _, probabilities = open_model("onnx", written).scores(images)
    tolerance = 0.03 if spelling == "qdq" else 1e-5  # exp(−x) on a grid of 0.05: the file's own rounding
    assert torch.allclose(probabilities, expected, atol=tolerance), (probabilities, expected)


def test_an_int8_copy_of_a_written_out_sigmoid_is_read_as_its_float_source(lenet_onnx_once, tmp_path: Path) -> None:
    """onnxruntime's quantize_dynamic turns the Gemm into MatMulInteger → Cast → Mul by a scale computed at run time
    → Add: the tail then starts from two computed values, and the INT8 file was read as logits (probe 41)."""
    from cnnlab.deploy.onnx_check import output_kind

    _, path = lenet_onnx_once
    written = with_written_out_sigmoid(path, tmp_path / "float.onnx", "reciprocal")
    quantized = dynamic_int8(written, tmp_path / "int8.onnx")
    assert output_kind(quantized) == "sigmoid-probabilities"
    images = _images(8)
    session = onnx_session(quantized)
    # one image per run: a dynamic INT8 file's ranges are its batch's (ort.run_images)
    raw = np.concatenate([session.run(None, {session.get_inputs()[0].name: image[None]})[0]
                          for image in images.numpy()])
    _, probabilities = open_model("onnx", quantized).scores(images)
    assert torch.allclose(probabilities, torch.from_numpy(raw), atol=1e-6)


def test_a_sigmoid_written_out_and_scaled_is_refused_in_one_line(lenet_onnx_once, tmp_path: Path) -> None:
    """100 / (1 + exp(−x)): percent from a written-out sigmoid; read as logits it was softmaxed (exit 0)."""
    _, path = lenet_onnx_once
    percent = with_written_out_sigmoid(path, tmp_path / "percent.onnx", "percent")
    assert check_onnx_file(percent).unreadable is not None  # bench still times it
    with pytest.raises(CnnlabError) as refused:
        open_model("onnx", percent)
    message = str(refused.value)
    assert "a sigmoid (Neg, Exp, Add, Div on the logits) scaled to [0, 100]" in message and "\n" not in message
    assert "export the model with the logits" in message


@pytest.mark.parametrize("spelling, words", [
    ("per_class_percent", "scaled per class to [0, c], c from 1 to 100"),
    ("label_smoothing", "a sigmoid (Sigmoid, Mul, Add on the logits) narrowed to [0.05, 0.95]"),
    ("relu6", "bounded to [0, 6] by Clip on the logits: a hard sigmoid scaled by 6, or the logits clamped"),
    ("log", "the log of a sigmoid (Neg, Exp, Add, Log"),
])
def test_a_written_out_sigmoid_that_is_no_probability_is_refused_naming_its_ops(
        lenet_onnx_once, tmp_path: Path, spelling: str, words: str) -> None:
    """Found by the tester of probe 41: [100, 100, 1, 1] / (1 + exp(−x)) and log σ(x) written out were read as
    logits and softmaxed (exit 0); a ReLU6 head was refused with a message naming Exp and Div, which it has not."""
    _, path = lenet_onnx_once
    written = with_written_out_sigmoid(path, tmp_path / f"{spelling}.onnx", spelling)
    with pytest.raises(CnnlabError) as refused:
        open_model("onnx", written)
    message = str(refused.value)
    assert words in message and "\n" not in message, message
    if spelling == "relu6":
        assert "Exp" not in message and "before any clamp" in message


def test_exp_of_a_log_sigmoid_is_a_sigmoid(lenet_onnx_once, tmp_path: Path) -> None:
    """torch.exp(F.logsigmoid(x)) exports as Sigmoid → Log → Exp: a sigmoid, refused before (probe 41)."""
    from cnnlab.deploy.onnx_check import output_kind

    _, path = lenet_onnx_once
    written = with_ending_then(path, tmp_path / "exp_log.onnx", [("Log", None, {}), ("Exp", None, {})], op="Sigmoid")
    assert output_kind(written) == "sigmoid-probabilities"


@pytest.mark.parametrize("op", ["Softmax", "Sigmoid"])
def test_arithmetic_after_the_probabilities_is_refused_in_one_line(lenet_onnx_once, tmp_path: Path, op: str) -> None:
    """A Softmax or Sigmoid times 100 (percent) was read as logits and softmaxed: probabilities near 100 % for
    every image's top class, a wrong loss and ECE, exit 0. Such an output is none of the kinds cnnlab reads."""
    from cnnlab.deploy.onnx_check import output_kind

    _, path = lenet_onnx_once
    percent = with_ending_then(path, tmp_path / "percent.onnx", [("Mul", 100.0, {})], op=op)
    with pytest.raises(CnnlabError) as refused:
        open_model("onnx", percent)
    with pytest.raises(CnnlabError):
        output_kind(percent)
    message = str(refused.value)
    # a sigmoid's tail is read from its numbers (onnx_elementwise), as a written-out sigmoid's is
    expected = "computed from a Softmax by Mul" if op == "Softmax" else "a sigmoid (Sigmoid, Mul on the logits) scaled"
    assert str(percent) in message and expected in message and "\n" not in message
    assert "export the model with the logits" in message
    shifted = with_ending_then(path, tmp_path / "shifted.onnx", [("Cast", None, {"to": 1}), ("Add", 0.5, {}),
                                                                ("Clip", None, {})], op=op)
    problem = check_onnx_file(shifted).unreadable  # a latency is still a latency: only reading scores is refused
    expected = "computed from a Softmax by Add then Clip" if op == "Softmax" else "a sigmoid (Sigmoid, Add, Clip"
    assert problem is not None and expected in str(problem)
    loader = DataLoader(TensorDataset(_images(4), torch.arange(4)), batch_size=4)
    with pytest.raises(CnnlabError, match=f"{shifted}: its output is " +
                       (f"computed from a {op}" if op == "Softmax" else r"a sigmoid \(Sigmoid, Add, Clip")):
        evaluate_onnx(shifted, loader)


def test_neutral_steps_transposes_and_a_log_keep_what_the_output_is(lenet_onnx_once, tmp_path: Path) -> None:
    """× 1, a transpose pair (tf2onnx writes one around a softmax on another axis) and Log(Softmax) leave a
    readable output; a softmax between transposes that is not over the classes leaves logits."""
    from cnnlab.deploy.onnx_check import output_kind

    model, path = lenet_onnx_once
    pair = [("Transpose", None, {"perm": [1, 0]})]
    before = [("before:Transpose", None, {"perm": [1, 0]})]
    cases = [
        ("probabilities", with_ending_then(path, tmp_path / "one.onnx", [("Mul", 1.0, {}), ("Div", 1.0, {})])),
        ("sigmoid-probabilities", with_ending_then(path, tmp_path / "t.onnx", pair + pair, op="Sigmoid")),
        ("log-probabilities", with_ending_then(path, tmp_path / "log.onnx", [("Log", None, {})])),
        # [N, C] → [C, N] → a softmax over axis 0, the classes → [N, C]
        ("probabilities", with_ending_then(path, tmp_path / "around.onnx", before + pair, axis=0)),
        ("logits", with_ending_then(path, tmp_path / "over_batch.onnx", before + pair, axis=-1)),
    ]
    assert [output_kind(file) for _, file in cases] == [kind for kind, _ in cases]
    images = _images()
    with torch.no_grad():
        expected = model(images).softmax(dim=-1)
    for kind, file in cases[:1] + cases[2:4]:
        _, probabilities = open_model("onnx", file).scores(images)
        assert torch.allclose(probabilities, expected, atol=1e-5), file


def test_an_ensemble_of_softmaxes_is_read_from_its_values(lenet_onnx_once, tmp_path: Path) -> None:
    """The mean of two softmaxes is probabilities; the same × 50 (percent) was read as logits and softmaxed — a
    wrong number the first-batch check could not see (rows summing to 50). Arithmetic on several values one of
    which is a softmax leaves the first batch to decide: probability rows are read so, anything else is refused."""
    from cnnlab.deploy.onnx_check import output_kind

    model, path = lenet_onnx_once
    images = _images()
    with torch.no_grad():
        logits = model(images)
    mean = with_ensemble(path, tmp_path / "mean.onnx")
    assert output_kind(mean) == "computed-from-probabilities"
    loaded = open_model("onnx", mean)
    _, probabilities = loaded.scores(images)
    expected = (logits.softmax(dim=-1) + (2 * logits).softmax(dim=-1)) / 2
    assert torch.allclose(probabilities, expected, atol=1e-5) and loaded.outputs == "probabilities"
    loader = DataLoader(TensorDataset(images, torch.arange(6) % 4), batch_size=3)
    assert evaluate_onnx(mean, loader)["loss"] == pytest.approx(
        float(torch.nn.functional.nll_loss(expected.log(), torch.arange(6) % 4)), abs=1e-4)

    percent = with_ensemble(path, tmp_path / "percent.onnx", scale=50.0)
    with pytest.raises(CnnlabError, match="sums to 50") as refused:
        open_model("onnx", percent).scores(images)
    assert str(percent) in str(refused.value)
    with pytest.raises(CnnlabError, match="sums to 50"):
        evaluate_onnx(percent, loader)
    assert output_kind(with_ensemble(path, tmp_path / "silu.onnx", silu=True)) == "logits"  # a head ending in SiLU


def test_probabilities_scaled_past_the_graph_walk_are_refused_from_their_values(lenet_onnx_once,
                                                                                 tmp_path: Path) -> None:
    """Found by a tester: Softmax × 100 with one node the walk does not pass between them (an Unsqueeze/Squeeze
    pair, a Slice, a Sum; a dynamo ensemble's Concat/ReduceMean) was read as logits — loss 18.75 for 1.58, exit 0.
    Rows that all sum to one constant other than 1, none negative, are scaled probabilities; and a TopK's sorted
    columns are not the classes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from cnnlab.deploy.onnx_check import output_kind

    _, path = lenet_onnx_once
    images = _images(6)
    percent = with_ending_then(path, tmp_path / "percent.onnx", [("Mul", 100.0, {}), ("Sum", None, {})])
    assert output_kind(percent) == "logits"  # the walk stops at the Sum: the values decide
    with pytest.raises(CnnlabError, match="every output row sums to 100") as refused:
        open_model("onnx", percent).scores(images)
    assert str(percent) in str(refused.value)
    with pytest.raises(CnnlabError, match="every output row sums to 100"):
        evaluate_onnx(percent, DataLoader(TensorDataset(images, torch.arange(6) % 4), batch_size=3))
    plain = with_ending_then(path, tmp_path / "plain.onnx", [("Sum", None, {})])
    assert open_model("onnx", plain).scores(images)[1].sum(dim=1).allclose(torch.ones(6), atol=1e-5)

    k = numpy_helper.from_array(np.array([5], dtype=np.int64), "k")
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["p"], axis=-1),
                               helper.make_node("TopK", ["p", "k"], ["y", "i"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], [k])
    with pytest.raises(CnnlabError, match="TopK"):
        output_kind(onnx.ModelProto.FromString(helper.make_model(graph).SerializeToString()))


def _graph(nodes: list, initializers: dict | None = None, *, opset: int = 13, functions: tuple = ()):
    """x [2, 5] → nodes → y [2, 5], a model of opset `opset` (with local functions of domain "pkg.t")."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tensors = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in (initializers or {}).items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], tensors)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("pkg.t", 1)]
    return onnx.ModelProto.FromString(helper.make_model(graph, opset_imports=opsets,
                                                        functions=list(functions)).SerializeToString())


def test_the_graph_walk_reads_what_exporters_write_after_a_softmax() -> None:
    """Found by a reviewer of the walk above: a percent Mul inside a local function (the dynamo exporter's
    aten_mul), behind an Identity, or as onnxruntime's QLinearMul was read as logits (a wrong number); a Transpose
    whose perm is out of range raised IndexError (a traceback, in bench too); an opset-11 softmax over axis 0 of
    [C, N] (all values at once) was read as probabilities; Clip/Relu of probabilities, Exp(LogSoftmax) and
    Log(Clip(Softmax)) were refused."""
    from onnx import helper

    from cnnlab.deploy.onnx_check import output_kind

    node = helper.make_node
    softmax = node("Softmax", ["x"], ["p"], axis=-1)
    aten_mul = helper.make_function("pkg.t", "aten_mul", ["self", "other"], ["r"],
                                    [node("Mul", ["self", "other"], ["r"])], [helper.make_opsetid("", 13)])
    refused = {
        "in a function": _graph([softmax, node("aten_mul", ["p", "c"], ["y"], domain="pkg.t")], {"c": 100.0},
                                functions=(aten_mul,)),
        "behind an Identity": _graph([softmax, node("Identity", ["c0"], ["c"]), node("Mul", ["p", "c"], ["y"])],
                                     {"c0": 100.0}),
        "QLinearMul": _graph([softmax, node("QuantizeLinear", ["p", "s"], ["q"]),
                              node("QLinearMul", ["q", "s", "z", "cq", "s", "z", "s", "z"], ["m"],
                                   domain="com.microsoft"),
                              node("DequantizeLinear", ["m", "s"], ["y"])],
                             {"s": 0.01, "z": 0.0, "cq": 100.0}),
    }
    for what, proto in refused.items():
        with pytest.raises(CnnlabError, match="computed from a Softmax by"):
            output_kind(proto)
    assert output_kind(_graph([softmax, node("aten_mul", ["p", "c"], ["y"], domain="pkg.t")], {"c": 1.0},
                              functions=(aten_mul,))) == "probabilities"
    bad_perm = _graph([softmax, node("Transpose", ["p"], ["y"], perm=[2, 0])])
    assert output_kind(bad_perm) == "logits"
    flattened = _graph([node("Transpose", ["x"], ["t"], perm=[1, 0]), node("Softmax", ["t"], ["u"], axis=0),
                        node("Transpose", ["u"], ["y"], perm=[1, 0])], opset=11)
    assert output_kind(flattened) == "logits"  # before opset 13, axis 0 normalises over every value
    readable = {
        "probabilities": [_graph([softmax, node("Clip", ["p", "lo", "hi"], ["y"])], {"lo": 1e-7, "hi": 1.0}),
                          _graph([softmax, node("Relu", ["p"], ["y"])]),
                          _graph([node("LogSoftmax", ["x"], ["l"], axis=-1), node("Exp", ["l"], ["y"])])],
        "log-probabilities": [_graph([softmax, node("Clip", ["p", "lo"], ["c"]), node("Log", ["c"], ["y"])],
                                     {"lo": 1e-7})],
    }
    for kind, protos in readable.items():
        assert [output_kind(proto) for proto in protos] == [kind] * len(protos)
    with pytest.raises(CnnlabError, match="by Clip"):  # a clip inside [0, 1] changes probabilities
        output_kind(_graph([softmax, node("Clip", ["p", "lo", "hi"], ["y"])], {"lo": 0.1, "hi": 0.9}))


def test_quantized_operator_endings_are_read_as_what_they_output() -> None:
    """onnxruntime's QOperator INT8 graphs end in com.microsoft's QLinearSoftmax / QLinearSigmoid and a
    DequantizeLinear: they were taken for logits."""
    import onnx
    from onnx import TensorProto, helper

    from cnnlab.deploy.onnx_check import output_kind

    for op, kind in (("QLinearSoftmax", "probabilities"), ("QLinearSigmoid", "sigmoid-probabilities")):
        scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
        zero = helper.make_tensor("z", TensorProto.UINT8, [], [0])
        attributes = {"axis": -1, "opset": 13} if op == "QLinearSoftmax" else {}
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                 helper.make_node(op, ["xq", "s", "z", "s", "z"], ["yq"], domain="com.microsoft", **attributes),
                 helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"])]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [scale, zero])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                        helper.make_opsetid("com.microsoft", 1)])
        assert output_kind(onnx.ModelProto.FromString(proto.SerializeToString())) == kind


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_fp16_file_takes_float16_images_and_scores_like_its_fp32_source(lenet_onnx_once, tmp_path: Path,
                                                                          runtime: str) -> None:
    """A float16 input was fed float32: onnxruntime's InvalidArgument "expected (tensor(float16))", a traceback."""
    model, path = lenet_onnx_once
    half = to_float16(path, tmp_path / "fp16.onnx")
    images = _images()
    with torch.no_grad():
        expected = model(images)
    loaded = open_model("onnx", half, runtime=runtime)
    logits = loaded.logits(images)
    assert logits.dtype == torch.float32 and torch.allclose(logits, expected, atol=2e-2), (logits, expected)
    loader = DataLoader(TensorDataset(images, torch.arange(6) % 4), batch_size=4)
    assert evaluate_onnx(half, loader, runtime=runtime)["n"] == 6
    assert loaded.precision == "fp16" and check_onnx_file(half).precision == "fp16"


def test_bench_times_an_fp16_file_in_float16(lenet_onnx_once, tmp_path: Path) -> None:
    half = to_float16(lenet_onnx_once[1], tmp_path / "fp16.onnx")
    stats = time_onnx(half, 2, threads=1, plan=QUICK)
    assert stats.batch_size == 2 and stats.p50_ms > 0
    assert next(iter(example_feed(onnx_session(half), 2, seed=0).values())).dtype.name == "float16"


def test_a_fixed_batch_file_is_refused_at_another_batch_in_one_line(lenet_onnx_once, tmp_path: Path) -> None:
    """onnxruntime's cut-off "Got invalid dimensions for input: input for the following indices" was the message."""
    fixed = with_fixed_batch(lenet_onnx_once[1], tmp_path / "fixed_batch3.onnx", 3)
    with pytest.raises(CnnlabError) as err:
        time_onnx(fixed, 1, threads=1, plan=QUICK)
    assert "fixed batch dimension of 3" in err.value.message and "batch 1" in err.value.message
    assert "dynamic batch" in (err.value.fix or "") and "invalid dimensions" not in err.value.one_line()
    assert time_onnx(fixed, 3, threads=1, plan=QUICK).batch_size == 3
    assert open_model("onnx", fixed).logits(_images(5)).shape == (5, 4)  # scoring feeds it in chunks of 3
    assert check_onnx_file(fixed).batch == 3 and check_onnx_file(lenet_onnx_once[1]).batch is None


def test_precision_is_read_from_the_graph_by_the_one_test_quantize_uses(lenet_onnx_once, tmp_path: Path) -> None:
    """A quantize_dynamic file (no `quantization` metadata entry) was recorded as fp32 by evaluate, while quantize
    refused it as quantized already."""
    from cnnlab.compress.quantization import check_float_graph, quantized_ops

    _, path = lenet_onnx_once
    int8 = dynamic_int8(path, tmp_path / "dynamic_int8.onnx")
    assert open_model("onnx", int8).precision == "int8" and open_model("onnx", path).precision == "fp32"
    assert quantized_ops(int8)
    with pytest.raises(CnnlabError, match="quantized already"):
        check_float_graph(int8)

    from cnnlab.deploy.onnx_check import graph_precision, quantized_ops as graph_quantized_ops

    assert quantized_ops is graph_quantized_ops and graph_precision(int8) == "int8"  # one function, not a copy


def test_quantize_refuses_an_fp16_file_naming_the_fp32_sources(lenet_onnx_once, tmp_path: Path) -> None:
    """quantize of an FP16 file failed inside onnxruntime's quantizer with "try another quantize.format"."""
    from cnnlab.compress.quantization import check_float_graph

    half = to_float16(lenet_onnx_once[1], tmp_path / "fp16.onnx")
    with pytest.raises(CnnlabError) as err:
        check_float_graph(half)
    assert "FP16" in err.value.message and "INT8 quantization starts from an FP32 ONNX" in err.value.message
    assert "cnnlab export" in err.value.fix and "model.pt" in err.value.fix
    check_float_graph(lenet_onnx_once[1])  # the FP32 export passes


@pytest.mark.parametrize("declared", [True, False])
def test_an_integer_output_is_refused_in_one_line(lenet_onnx_once, tmp_path: Path, declared: bool) -> None:
    """A Sigmoid then a QuantizeLinear as the output (uint8 0–255, a converted fully-quantized classifier) was read
    as probabilities, each clamped to 1: every class at 100 %, exit 0 (probe 42); with no output type declared it
    is refused from the values the run returns (probe 43)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    output = proto.graph.output[0].name
    proto.graph.node[-1].output[0] = "raw_logits"
    proto.graph.initializer.extend([numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
                                    numpy_helper.from_array(np.array(0, np.uint8), "zero")])
    proto.graph.node.extend([helper.make_node("Sigmoid", ["raw_logits"], ["s"]),
                             helper.make_node("QuantizeLinear", ["s", "scale", "zero"], [output])])
    if declared:
        proto.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    else:
        proto.graph.output[0].ClearField("type")
    quantized = tmp_path / "uint8.onnx"
    onnx.save(proto, str(quantized))
    with pytest.raises(CnnlabError, match="its output holds uint8 values") as refused:
        open_model("onnx", quantized).scores(_images(2))
    assert "\n" not in str(refused.value) and "DequantizeLinear at the end" in str(refused.value)


def test_probabilities_outside_zero_one_are_refused_not_clamped() -> None:
    """Whatever the graph walk says, a first batch read as probabilities must lie in [0, 1]: a misreading (a class
    permutation taken for a move gave sigmoid-probabilities of 6.35 and −5.02, shown as 1 and 0) is refused."""
    from cnnlab.deploy.onnx_check import SIGMOID_PROBABILITIES
    from cnnlab.deploy.ort import sensed_output_kind

    inside = torch.tensor([[0.98, 1.0, 0.0, 0.05]])
    assert sensed_output_kind(inside, SIGMOID_PROBABILITIES) == SIGMOID_PROBABILITIES
    with pytest.raises(CnnlabError, match=r"values outside \[0, 1\] \(-5.02 to 6.35\)"):
        sensed_output_kind(torch.tensor([[0.98, 6.35, -5.02, 0.05]]), SIGMOID_PROBABILITIES, "m.onnx")


def test_a_bfloat16_output_is_refused_in_one_line(lenet_onnx_once, tmp_path: Path) -> None:
    """onnxruntime cannot hand a bfloat16 output back to Python: a traceback ending "this is a bug in cnnlab"."""
    import onnx
    from onnx import helper

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    output = proto.graph.output[0].name
    proto.graph.node[-1].output[0] = "raw_logits"
    proto.graph.node.append(helper.make_node("Cast", ["raw_logits"], [output], to=onnx.TensorProto.BFLOAT16))
    proto.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.BFLOAT16
    bf16 = tmp_path / "bf16.onnx"
    onnx.save(proto, str(bf16))
    with pytest.raises(CnnlabError, match="its output is bfloat16.*a Cast to float at the end"):
        open_model("onnx", bf16)


def test_nan_probabilities_keep_the_broken_weights_message() -> None:
    """The [0, 1] check must leave NaN to the check that names broken weights and an earlier checkpoint (probe 43)."""
    from cnnlab.deploy.onnx_check import PROBABILITIES
    from cnnlab.deploy.ort import sensed_output_kind

    assert sensed_output_kind(torch.tensor([[float("nan")] * 4]), PROBABILITIES) == PROBABILITIES


def test_torchscripts_nan_to_num_of_a_sigmoid_is_a_sigmoid(tmp_path: Path) -> None:
    """torch.nan_to_num(torch.sigmoid(x)) as the TorchScript exporter writes it (IsNaN, IsInf, Less, Casts to bool,
    And, Where): read as logits and softmaxed after the dynamo form was fixed (probe 43)."""
    import warnings

    from cnnlab.deploy.onnx_check import output_kind

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nan_to_num(torch.sigmoid(self.head(x)))

    path = tmp_path / "nan_to_num.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Model().eval(), (torch.rand(2, 3, 2, 2),), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["scores"])
    assert output_kind(path) == "sigmoid-probabilities"


def test_an_aux_output_before_the_logits_is_refused_and_two_outputs_are_named(lenet_onnx_once, tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Probe 90: an `aux` head first and `logits` second: evaluate scored the aux head (11.67 % for 44.44 %), and
    nothing said the file had two outputs."""
    from onnx_variants import with_aux_output_first

    _, path = lenet_onnx_once
    with pytest.raises(CnnlabError, match="its first output is 'aux' and another is named 'logits'"):
        check_onnx_file(with_aux_output_first(path, tmp_path / "aux.onnx"))
    other = with_aux_output_first(path, tmp_path / "two.onnx", name="head_a", logits="head_b")  # no name says which
    with caplog.at_level("WARNING"):
        check_onnx_file(other)
    assert "has 2 outputs (head_a, head_b): cnnlab reads the first, head_a" in caplog.text
    # probe 187: features [N, 8] first, the scores second: "its output has 8 classes", no word of the other output
    features = with_aux_output_first(path, tmp_path / "feat.onnx", name="features", logits="scores", aux_width=8)
    with pytest.raises(CnnlabError) as refused:
        check_onnx_file(features)
    assert ("its first output (of 2) 'features' has 8 classes but the metadata names 4, and its output 'scores' "
            "has the 4 classes: cnnlab reads the first output") in str(refused.value)


def test_a_graph_of_another_size_than_its_metadata_says_is_refused(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 90: a ResNet-34 graph carrying a ResNet-18 export's metadata was timed and recorded as ResNet-18 (its
    parameters and FLOPs), and its PyTorch twin was the ResNet-18 checkpoint."""
    import json

    import onnx

    from cnnlab.deploy.onnx_check import graph_weights

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert 0.99 <= graph_weights(proto) / json.loads(props["params"]) <= 1.01  # an export: its own count
    for entry in proto.metadata_props:
        if entry.key == "params":
            entry.value = json.dumps(json.loads(props["params"]) // 2)
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(CnnlabError, match="its graph holds [0-9,]+ weights, and the metadata describes a network of"):
        check_onnx_file(tmp_path / "other.onnx")


def test_flops_recorded_at_another_size_than_the_graph_computes_are_refused(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 187: a file whose metadata recorded the FLOPs of 32 px beside an input of 48 px was timed at 48 px and
    its GFLOP/s and % of peak read 2.25x low, exit 0: nothing checked `flops` against the graph."""
    import json

    import onnx

    from cnnlab.deploy.export import read_onnx_metadata
    from cnnlab.deploy.onnx_check import graph_flops

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    spec = read_onnx_metadata(path)["spec"]
    assert graph_flops(proto, spec) == json.loads(props["flops"])  # an export: torch's own count, to the FLOP
    for entry in proto.metadata_props:
        if entry.key == "flops":
            entry.value = json.dumps(json.loads(props["flops"]) * 4 // 9)  # 32 px of a 48 px network
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(CnnlabError, match=f"its graph computes [0-9,]+ FLOPs an image at {spec.size} px, and the "
                                          "metadata records [0-9,]+"):
        check_onnx_file(tmp_path / "other.onnx")
    # probe 193: 16 % off (the FLOPs of 26 px beside 28) passed a 0.8-1.25 tolerance; "abc" was a traceback in bench,
    # -5 a GFLOP/s of -0.0
    for recorded, said in ((json.loads(props["flops"]) * 84 // 100, "its graph computes"),
                           ("abc", "flops is 'abc', not a positive whole number"),
                           (-5, "flops is -5, not a positive whole number")):
        for entry in proto.metadata_props:
            if entry.key == "flops":
                entry.value = json.dumps(recorded)
        onnx.save(proto, str(tmp_path / "other.onnx"))
        with pytest.raises(CnnlabError, match=said):
            check_onnx_file(tmp_path / "other.onnx")


def test_metadata_naming_a_class_twice_is_refused(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 155: classes ["a"] * 4 were accepted, and predict's table read "a 67.6 % | a 19.8 %" (read_checkpoint
    refuses the same in a model.pt)."""
    import json

    import onnx

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    for entry in proto.metadata_props:
        if entry.key == "classes":
            entry.value = json.dumps(["a", "b", "a", "b"])
    onnx.save(proto, str(tmp_path / "twice.onnx"))
    with pytest.raises(CnnlabError, match=r"classes names a and b more than once"):
        check_onnx_file(tmp_path / "twice.onnx")


def test_a_file_with_external_data_is_sized_whole_and_a_missing_data_file_is_named(lenet_onnx_once,
                                                                                  tmp_path: Path) -> None:
    """Probe 90: a 93 kB stub of a 44.7 MB model was recorded as the FP32 size (INT8 "122x larger"); without its
    .data file it was "not a readable ONNX model (ValidationError)"."""
    from cnnlab.deploy.export import load_onnx, model_file_bytes
    from onnx_variants import with_external_data

    _, path = lenet_onnx_once
    split = with_external_data(path, tmp_path / "ext" / "m.onnx")
    data = tmp_path / "ext" / "m.onnx.data"
    assert data.stat().st_size > split.stat().st_size
    assert model_file_bytes(split) == split.stat().st_size + data.stat().st_size
    assert model_file_bytes(path) == path.stat().st_size
    assert check_onnx_file(split).classes == list("abcd")  # read as the whole model
    whole = data.read_bytes()
    data.write_bytes(whole[: len(whole) // 2])  # probe 187: the intact .onnx was "not a readable ONNX model"
    with pytest.raises(CnnlabError) as short:
        load_onnx(split)
    assert f"{data} is cut short: {len(whole) // 2:,} of the {len(whole):,} bytes of weights m.onnx reads" in \
        str(short.value) and "copy m.onnx.data whole" in (short.value.fix or "")
    data.rename(tmp_path / "elsewhere.data")
    with pytest.raises(CnnlabError, match=r"keeps its weights in m.onnx.data beside it \(ONNX external data\), and "):
        load_onnx(split)
    # probe 209: a location outside the model's folder was followed (/etc/passwd, refused only for its size, with
    # "copy passwd next to the model"); one of the right size was "not a readable ONNX model (ValidationError)"
    (tmp_path / "elsewhere.data").write_bytes(whole)
    import onnx

    for location in (str(tmp_path / "elsewhere.data"), "../elsewhere.data"):
        proto = onnx.load(str(split), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(proto, str(split))
        with pytest.raises(CnnlabError) as outside:
            load_onnx(split)
        assert outside.value.message.startswith(f"{split} names {tmp_path / 'ext' / location} for its weights (ONNX "
                                                 "external data), outside its folder"), outside.value.message
        assert "copy" not in (outside.value.fix or "")


def test_a_file_of_dynamic_height_and_width_is_timed_at_the_size_its_metadata_records(lenet_onnx_once,
                                                                                       tmp_path: Path) -> None:
    """Probe 90: predict and evaluate read an [N, 3, H, W] file at its metadata's 16 px; bench and quantize refused it
    ("symbolic image shape: cannot choose an input size"), with no fix that worked."""
    import onnx

    from cnnlab.compress.quantization.portability import LOADS, check_runtimes
    from cnnlab.deploy.ort import example_feed

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.save(proto, str(tmp_path / "dynamic.onnx"))
    session = onnx_session(tmp_path / "dynamic.onnx")
    assert next(iter(example_feed(session, 2).values())).shape == (2, 3, 16, 16)
    assert time_onnx(tmp_path / "dynamic.onnx", batch_size=1, threads=1, plan=QUICK).p50_ms > 0
    assert set(check_runtimes(tmp_path / "dynamic.onnx", RUNTIMES).values()) == {LOADS}


def test_a_huge_fixed_batch_is_refused_before_one_image_is_padded_up_to_it(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 90: a file fixed to batch 100,000: predicting one image padded it to 100,000 (10.3 GB, 92 s), silently."""
    from onnx_variants import with_fixed_batch

    _, path = lenet_onnx_once
    with pytest.raises(CnnlabError, match="has its batch dimension fixed to 1,500,000: every run would feed"):
        check_onnx_file(with_fixed_batch(path, tmp_path / "huge.onnx", 1_500_000))
    assert check_onnx_file(with_fixed_batch(path, tmp_path / "b64.onnx", 64)).batch == 64


def test_a_file_without_cnnlab_metadata_is_one_refusal_with_a_fix_for_a_file_from_elsewhere_and_no_run_left(
        cli, outputs: Path, lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 90: the fix ("bench its model.pt") was no use to a user who has only the ONNX file. Probe 187: bench and
    quantize left a `failed` run folder for it, and the four commands said it three ways."""
    import onnx

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    image = tmp_path / "a.png"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(image)
    lines = set()
    for args in (("bench", f"source={bare}"), ("quantize", f"source={bare}"), ("evaluate", f"source={bare}"),
                 ("predict", f"source={bare}", str(image))):
        result = cli(*args)
        [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error")] or [result.output]
        assert result.code == 2 and "Traceback" not in result.output, result.output
        lines.add(" ".join(line.split()))
    [line] = lines  # one message, whichever command read the file
    assert f"{bare} has no cnnlab metadata (input size, mean/std, class names)" in line
    assert "copy the metadata of the export it came from (docs/export.md, 'The file')" in line
    assert not outputs.exists() or not any(outputs.rglob("run.json")), list(outputs.rglob("run.json"))


def test_the_runtime_check_runs_a_fixed_batch_file_at_its_batch(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 94: quantize's runtime check fed a file fixed to batch 4 one image, so OpenVINO "could not run" every
    candidate and the fixes offered did not help."""
    from cnnlab.compress.quantization.portability import LOADS, check_runtimes
    from onnx_variants import with_fixed_batch

    _, path = lenet_onnx_once
    assert set(check_runtimes(with_fixed_batch(path, tmp_path / "b4.onnx", 4), RUNTIMES).values()) == {LOADS}


def test_an_initializer_no_node_reads_is_not_counted_as_weights(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 94: a file with one large unused initializer (onnxruntime runs it as the export) was refused by the
    weight count."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    _, path = lenet_onnx_once
    proto = onnx.load(str(path))
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros(200_000, dtype=np.float32), "unused"))
    onnx.save(proto, str(tmp_path / "unused.onnx"))
    assert check_onnx_file(tmp_path / "unused.onnx").classes == list("abcd")


def test_a_file_keeping_even_its_shape_tensors_outside_names_a_fix_that_works(tmp_path: Path) -> None:
    """Probe 94: onnx.save(..., size_threshold=0) puts a Reshape's shape in the .data file, and onnxruntime refuses
    the file; the fix offered was to re-export with `cnnlab export`, which a file made elsewhere cannot be."""
    import shlex
    import subprocess
    import sys

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from cnnlab.errors import ModelLoadError

    shape = numpy_helper.from_array(np.array([1, 2, 2], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    with pytest.raises(ModelLoadError) as refused:
        onnx_session(tmp_path / "m.onnx")
    command = refused.value.fix.split("): ", 1)[1].split(", then use ")[0]
    assert command.startswith("python -c ")
    subprocess.run([sys.executable, *shlex.split(command)[1:]], check=True)
    session = onnx_session(tmp_path / "m-inline.onnx")
    out = session.run(None, {"x": np.arange(4, dtype=np.float32)[None]})[0]
    assert out.tolist() == [[[0, 1], [2, 3]]]


@pytest.mark.parametrize("scale", [float("nan"), 0.0, -0.5, float("inf")])
def test_an_int8_file_whose_quantization_scale_is_no_scale_is_refused(lenet_onnx_once, tmp_path: Path,
                                                                       scale: float) -> None:
    """Probe 212: a QDQ file copied out of its run (no recorded digest to tell it changed) with a NaN, zero, negative
    or infinite scale was scored (10 %) and timed without a word."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    _, path = lenet_onnx_once

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32)}
                                 for i in range(2)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.batches, None)

    int8 = tmp_path / "int8.onnx"
    quantize_static(str(path), str(int8), Images(), quant_format=QuantFormat.QDQ)
    check_onnx_file(int8)  # as quantized: its scales are scales
    proto = onnx.load(str(int8))
    name = next(node.input[1] for node in proto.graph.node if node.op_type == "DequantizeLinear")
    tensor = next(t for t in proto.graph.initializer if t.name == name)
    values = numpy_helper.to_array(tensor).astype(np.float32).copy()
    values.flat[0] = scale
    tensor.CopyFrom(numpy_helper.from_array(values, name))
    onnx.save(proto, str(int8))
    with pytest.raises(CnnlabError) as refused:
        check_onnx_file(int8)
    assert f"its quantization scale {name!r} (DequantizeLinear) holds {scale!r}, where a scale is a positive, " \
           "finite number" in refused.value.message, refused.value.message


def test_a_dynamic_int8_file_whose_weight_scale_is_no_scale_is_refused(lenet_onnx_once, tmp_path: Path) -> None:
    """Probe 212: dynamic INT8 (ConvInteger, then a Mul by the input's and the weight's scales) kept its weight
    scales unchecked, where QDQ's were refused."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _, path = lenet_onnx_once
    int8 = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(path), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul"])
    check_onnx_file(int8)  # as quantized: its scales are scales
    proto = onnx.load(str(int8))
    assert any(node.op_type == "ConvInteger" for node in proto.graph.node)
    stored = {t.name: t for t in proto.graph.initializer}
    name = next(i for node in proto.graph.node if node.op_type == "Mul" for i in node.input if i in stored)
    stored[name].CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(stored[name]), -0.5), name))
    onnx.save(proto, str(int8))
    with pytest.raises(CnnlabError) as refused:
        check_onnx_file(int8)
    assert f"its quantization scale {name!r} (Mul) holds -0.5" in refused.value.message, refused.value.message
