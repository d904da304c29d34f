"""Quantization-aware training with torch.ao's FX graph mode, exported as a QDQ ONNX file that onnxruntime
runs with the same integer kernels as a post-training quantized one.

1. `prepare_qat`: batch norms are folded into their convolutions (the network is fine-tuned in its deployed,
   folded form: onnxruntime folds them too), then `prepare_qat_fx` inserts fake-quantization on every weight
   (S8, symmetric, per channel) and activation (U8 or S8, asymmetric, per tensor) where onnxruntime's static
   quantizer would put them. The model is then an ordinary nn.Module for the training engine.
2. Activation ranges are observed on training batches only (an evaluation pass must not move them); weight
   ranges always follow the current weights.
3. `export_qat_onnx`: each fake-quantizer becomes a fixed quantize → dequantize pair with its learned scale and
   zero point, which torch's dynamo exporter writes as QuantizeLinear/DequantizeLinear. onnxruntime fuses
   DequantizeLinear → Conv → QuantizeLinear into QLinearConv when it loads the file (the same fused graph as
   `quantize.mode=ptq` with format qdq_u8s8: same speed).

Why FX rather than PT2E: torch 2.14 moved PT2E to the separate torchao package; FX is still in torch, and its
fused Conv(+ReLU)/Add(+ReLU) patterns match onnxruntime's QDQ fusions. The one pattern it leaves unfused,
a clipping activation after a quantized op (ReLU6 in MobileNetV2), is fused here (`fuse_clipping`), as
onnxruntime's quantizer does; otherwise every ReLU6 would stay a float Clip between integer kernels.
"""

from __future__ import annotations

import contextlib
import copy
import operator
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import onnx
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed (Q/DQ ops)
from torch import Tensor, fx, nn
from torch.ao.quantization import (FakeQuantize, FakeQuantizeBase, FixedQParamsFakeQuantize, FixedQParamsObserver,
                                   MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver, QConfig,
                                   QConfigMapping)
from torch.ao.quantization.backend_config import BackendConfig, DTypeConfig, get_native_backend_config
from torch.ao.quantization.quantize_fx import prepare_qat_fx
from torch.fx.experimental.optimization import fuse as fold_batch_norms
from torch.nn import functional as F

from cnnlab.compress.quantization.formats import Format
from cnnlab.compress.quantization.outputs import float_outputs
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path

_RANGES = {"u8": (0, 255, torch.quint8, torch.uint8), "s8": (-128, 127, torch.qint8, torch.int8)}
_CLIPPING_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
_CLIPPING_FUNCTIONS = (F.relu, F.relu6, F.hardtanh, torch.relu, torch.clamp)
_SILU_FUNCTIONS = (F.silu,)


class TrainingFakeQuantize(FakeQuantize):
    """FakeQuantize whose observer watches training batches only: evaluating the model (the engine's
    validation pass) must not move the activation ranges that will be deployed."""

    def forward(self, X: Tensor) -> Tensor:
        if self.training:
            return super().forward(X)
        observing = self.observer_enabled.clone()
        self.observer_enabled.fill_(0)
        try:
            return super().forward(X)
        finally:
            self.observer_enabled.copy_(observing)


def qat_qconfig(fmt: Format, *, per_channel: bool, reduce_range: bool) -> QConfig:
    """Fake quantization matching onnxruntime's static formats: asymmetric per-tensor activations of the
    format's type, symmetric S8 weights (7-bit with reduce_range), per output channel or per tensor."""
    if fmt.layout != "qdq" or fmt.weights != "s8":
        raise CnnlabError(f"quantization-aware training exports QDQ with S8 weights, not {fmt.name}",
                          fix="use quantize.format=qdq_u8s8 (or qdq_s8s8) with quantize.mode=qat")
    qmin, qmax, qdtype, _ = _RANGES[fmt.activations]
    activation = TrainingFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=qmin,
                                                quant_max=qmax, dtype=qdtype, qscheme=torch.per_tensor_affine)
    wmin, wmax = (-64, 63) if reduce_range else (-128, 127)
    # averaging_constant=1: the weight range is the current weights' range, not a running average.
    if per_channel:
        weight = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
                                        quant_min=wmin, quant_max=wmax, dtype=torch.qint8,
                                        qscheme=torch.per_channel_symmetric, ch_axis=0)
    else:
        weight = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, averaging_constant=1.0,
                                        quant_min=wmin, quant_max=wmax, dtype=torch.qint8,
                                        qscheme=torch.per_tensor_symmetric)
    return QConfig(activation=activation, weight=weight)


def backend_config(fmt: Format) -> BackendConfig:
    """The patterns and dtypes FX may fake-quantize for `fmt`: torch's native (x86) config, whose activations are U8
    only — for S8 activations each U8 entry gets its S8 twin. Without it FX matched no S8 activation config and left
    every activation in float without a word (probe 144: a `qdq_s8s8` QAT file held weights only, recorded as S8xS8)."""
    native = get_native_backend_config()
    if fmt.activations != "s8":
        return native
    s8 = BackendConfig("cnnlab_s8_activations")
    for pattern in native.configs:
        for dtypes in list(pattern.dtype_configs):
            if torch.quint8 in (dtypes.input_dtype, dtypes.output_dtype):
                pattern.add_dtype_config(DTypeConfig(
                    input_dtype=torch.qint8 if dtypes.input_dtype == torch.quint8 else dtypes.input_dtype,
                    output_dtype=torch.qint8 if dtypes.output_dtype == torch.quint8 else dtypes.output_dtype,
                    weight_dtype=dtypes.weight_dtype, bias_dtype=dtypes.bias_dtype, is_dynamic=dtypes.is_dynamic))
        s8.set_backend_pattern_config(pattern)
    return s8


def sigmoid_qconfig(fmt: Format, base: QConfig) -> QConfig:
    """A sigmoid's output is in [0, 1]: quantized with the fixed scale 1/256 (FX quantizes sigmoids only with
    fixed parameters; with a learned range it leaves them in float and warns)."""
    qmin, qmax, qdtype, _ = _RANGES[fmt.activations]
    observer = FixedQParamsObserver.with_args(scale=1.0 / 256.0, zero_point=qmin, dtype=qdtype, quant_min=qmin,
                                              quant_max=qmax)
    return QConfig(activation=FixedQParamsFakeQuantize.with_args(observer=observer), weight=base.weight)


def prepare_qat(model: nn.Module, example: Tensor, fmt: Format, *, per_channel: bool = True,
                reduce_range: bool = False, exclude: Sequence[str] = ()) -> fx.GraphModule:
    """A fake-quantized copy of `model` (batch norms folded) ready to train; `exclude` lists module paths
    left in float."""
    source = copy.deepcopy(model).cpu().eval()
    try:
        folded = fold_batch_norms(source)
    except Exception as exc:  # noqa: BLE001 - symbolic tracing raises many types
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise CnnlabError(f"quantization-aware training needs a model torch.fx can trace: {first}",
                          fix="use quantize.mode=ptq for this model") from exc
    qconfig = qat_qconfig(fmt, per_channel=per_channel, reduce_range=reduce_range)
    mapping = QConfigMapping().set_global(qconfig)
    for sigmoid in (torch.sigmoid, F.sigmoid, nn.Sigmoid):
        mapping.set_object_type(sigmoid, sigmoid_qconfig(fmt, qconfig))
    known = dict(folded.named_modules())
    missing = [name for name in exclude if name not in known]
    if missing:
        raise CnnlabError(f"quantize.exclude names no module {', '.join(missing)} (with quantize.mode=qat it takes "
                          f"module paths, e.g. {', '.join(n for n in list(known)[1:5])})",
                          fix="use module paths as `cnnlab inspect` lists them")
    for name in exclude:
        mapping.set_module_name(name, None)
    expand_silu(folded)
    with warnings.catch_warnings():
        # torch announces FX's move to torchao (see the module docstring); it still works and is what cnnlab uses.
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        prepared = prepare_qat_fx(folded.train(), mapping, (example.cpu(),), backend_config=backend_config(fmt))
    fuse_clipping(prepared)
    float_graph_outputs(prepared)
    return prepared


def float_graph_outputs(graph_module: fx.GraphModule) -> int:
    """Take the fake-quantizer off each graph output (the logits), in place; returns how many. export_qat_onnx
    ships the logits in float (outputs.py: 8-bit logits tie), so the model trained and scored is then the one shipped:
    with it, the per-epoch fake-quant top-1 of a LeNet-5 read 28.89 % where the exported file read 10.00 % (probe
    115: 173 of 360 images' top two logits tied at the quantizer's ceiling), and logits past its moving range got no
    gradient."""
    output = next(node for node in graph_module.graph.nodes if node.op == "output")
    dropped: list[fx.Node] = []

    def unwrap(node: fx.Node) -> fx.Node:
        if _is_fake_quant(graph_module, node) and len(node.users) == 1:
            dropped.append(node)
            return node.args[0]  # type: ignore[return-value]
        return node

    output.args = fx.node.map_arg(output.args, unwrap)
    for node in dropped:
        graph_module.graph.erase_node(node)
    if dropped:
        _rebuild(graph_module)
    return len(dropped)


def expand_silu(graph_module: fx.GraphModule) -> int:
    """Rewrite every SiLU (EfficientNet's activation) as x * sigmoid(x), in place; returns how many.

    FX has no quantized SiLU, so it leaves the whole activation in float, and the exported graph runs it as a
    float Sigmoid and Mul between dequantize/quantize pairs. Written out, both get fake-quantizers and the file
    has the layout onnxruntime's quantizer produces for a PTQ model (QLinearSigmoid, QLinearMul): EfficientNet-B0's
    QAT file was 1.3x slower than its PTQ one before this."""
    rewritten = 0
    for node in list(graph_module.graph.nodes):
        if not _calls(graph_module, node, nn.SiLU, _SILU_FUNCTIONS):
            continue
        with graph_module.graph.inserting_after(node):
            gate = graph_module.graph.call_function(torch.sigmoid, (node.args[0],))
        with graph_module.graph.inserting_after(gate):
            product = graph_module.graph.call_function(operator.mul, (node.args[0], gate))
        node.replace_all_uses_with(product)
        graph_module.graph.erase_node(node)
        rewritten += 1
    if rewritten:
        _rebuild(graph_module)
    return rewritten


def _calls(graph_module: fx.GraphModule, node: fx.Node, modules: type | tuple[type, ...],
           functions: tuple[Any, ...] = ()) -> bool:
    """Whether `node` runs a module of one of the types `modules` or one of `functions`."""
    if node.op == "call_module":
        return isinstance(graph_module.get_submodule(str(node.target)), modules)
    return node.op == "call_function" and node.target in functions


def _rebuild(graph_module: fx.GraphModule) -> None:
    """After a graph rewrite: check it, regenerate forward() and drop the submodules no node calls any more."""
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()


def _is_fake_quant(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    return _calls(graph_module, node, FakeQuantizeBase)


def _is_clipping(graph_module: fx.GraphModule, node: fx.Node) -> bool:
    return _calls(graph_module, node, _CLIPPING_MODULES, _CLIPPING_FUNCTIONS)


def fuse_clipping(graph_module: fx.GraphModule) -> int:
    """Drop the fake-quantizer between an op and a clipping activation (ReLU, ReLU6, Hardtanh) whose output is
    fake-quantized itself: the clip then happens in float before the one quantization, as in onnxruntime's
    fused kernels (its quantizer removes such activations; the output range encodes the clip). Returns how
    many were dropped."""
    dropped = 0
    for node in list(graph_module.graph.nodes):
        if not _is_fake_quant(graph_module, node) or len(node.users) != 1:
            continue
        (user,) = node.users
        if _is_clipping(graph_module, user) and user.users and all(_is_fake_quant(graph_module, u) for u in user.users):
            node.replace_all_uses_with(node.args[0])  # type: ignore[arg-type]
            graph_module.graph.erase_node(node)
            dropped += 1
    if dropped:
        _rebuild(graph_module)
    return dropped


class QuantDequant(nn.Module):
    """A frozen fake-quantizer: quantize → dequantize with fixed scale and zero point, written with the
    quantized_decomposed ops that the ONNX exporter turns into QuantizeLinear/DequantizeLinear."""

    def __init__(self, fake_quant: FakeQuantizeBase) -> None:
        super().__init__()
        scale, zero_point = fake_quant.calculate_qparams()  # type: ignore[operator]
        self.quant_min, self.quant_max = int(fake_quant.quant_min), int(fake_quant.quant_max)  # type: ignore[arg-type]
        self.int_dtype = _RANGES["u8"][3] if self.quant_min >= 0 else _RANGES["s8"][3]
        self.axis = int(fake_quant.ch_axis) if fake_quant.is_per_channel else None  # type: ignore[arg-type]
        if self.axis is None:
            # Python numbers, not tensors: torch.export would otherwise trace a data-dependent .item().
            self.scale, self.zero_point = float(scale), int(zero_point)
        else:
            self.register_buffer("scale", scale.detach().float().clone())
            self.register_buffer("zero_point", zero_point.detach().to(torch.int32).clone())

    def forward(self, x: Tensor) -> Tensor:
        ops = torch.ops.quantized_decomposed
        bounds = (self.quant_min, self.quant_max, self.int_dtype)
        if self.axis is None:
            q = ops.quantize_per_tensor(x, self.scale, self.zero_point, *bounds)
            return ops.dequantize_per_tensor(q, self.scale, self.zero_point, *bounds)
        q = ops.quantize_per_channel(x, self.scale, self.zero_point, self.axis, *bounds)
        return ops.dequantize_per_channel(q, self.scale, self.zero_point, self.axis, *bounds)


def freeze_fake_quant(model: nn.Module) -> nn.Module:
    """Replace every fake-quantizer of `model` (in place) by its QuantDequant; a quantizer shared by two ops
    stays shared. Weight quantizers first see the final weights, so their scales are exact."""
    for module in model.modules():
        weight_fake_quant = getattr(module, "weight_fake_quant", None)
        if isinstance(weight_fake_quant, FakeQuantizeBase):
            with torch.no_grad():
                weight_fake_quant(module.weight)  # type: ignore[arg-type]
    frozen: dict[int, QuantDequant] = {}

    def replace(parent: nn.Module) -> None:
        for name, child in list(parent._modules.items()):  # not named_children(): it skips shared modules
            if isinstance(child, FakeQuantizeBase):
                frozen.setdefault(id(child), QuantDequant(child))
                setattr(parent, name, frozen[id(child)])
            elif child is not None:
                replace(child)

    replace(model)
    return model


@contextlib.contextmanager
def fake_quantization_off(model: nn.Module) -> Iterator[nn.Module]:
    """`model` computing in float for the duration — every fake-quantizer passes its input through (its
    `fake_quant_enabled` flag off), each flag restored afterwards: the QAT-trained weights' own accuracy, the reference
    that tells the training's gain from INT8's."""
    quantizers = [m for m in model.modules() if isinstance(m, FakeQuantizeBase)]
    flags = [m.fake_quant_enabled.clone() for m in quantizers]  # type: ignore[operator]
    for module in quantizers:
        module.disable_fake_quant()
    try:
        yield model
    finally:
        for module, flag in zip(quantizers, flags):
            module.fake_quant_enabled.copy_(flag)  # type: ignore[operator]


def export_qat_onnx(model: nn.Module, path: Path, *, spec: InputSpec, classes: Sequence[str],
                    metadata: Mapping[str, Any] | None = None) -> Path:
    """The trained fake-quantized model as a QDQ ONNX file with INT8 weights and float logits (the model is left
    as it is)."""
    frozen = freeze_fake_quant(copy.deepcopy(model).cpu().eval())
    frozen.requires_grad_(False)  # an inference graph: no fake-quant gradient masks to trace
    export_onnx(frozen, path, spec=spec, classes=classes, metadata=metadata)
    fold_weight_quantization(path)
    float_outputs(path)  # the logits in float, as the PTQ candidates' (outputs.py)
    return path


def fold_weight_quantization(path: Path) -> Path:
    """Store each weight as its INT8 values: the exporter writes float weights followed by QuantizeLinear, which
    onnxruntime would fold when loading; folding it in the file makes it 4x smaller, like a post-training
    quantized one. Done by onnxruntime's *basic* optimisation level (constant folding and other
    hardware-independent rewrites, standard operators only), so the QDQ layout stays as it is."""
    import onnxruntime as ort

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="cnnlab-qat-") as folder:
        folded = Path(folder) / path.name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        options.log_severity_level = 3
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        proto = onnx.load(str(folded))
    # onnxruntime declares every operator domain it knows; keep the ones the graph uses.
    used = {node.domain or "ai.onnx" for node in proto.graph.node} | {"ai.onnx"}
    kept = [entry for entry in proto.opset_import if (entry.domain or "ai.onnx") in used]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return path
