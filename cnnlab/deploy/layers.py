"""A layer-by-layer account of one forward pass: what each leaf module does to the feature map.

Forward hooks on the leaf modules (those without children) give the rows, in execution order: a module
called twice (ResNet's shared ReLU) gets two rows. FLOPs are torch's FlopCounterMode counts, read before
and after each leaf call, so the rows add up to `cnnlab.models.count_flops`; FLOPs of operations outside
any leaf (rare in the zoo) appear only in the total. Receptive fields come from `receptive_field.FieldTracer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.deploy.receptive_field import Field, FieldTracer
from cnnlab.models import count_params


@dataclass(frozen=True)
class LayerRow:
    name: str                      # dotted module path
    kind: str                      # module class name
    geometry: str                  # kernel/stride/padding for convolutions and pools, "" elsewhere
    output_shape: tuple[int, ...]  # without the batch axis
    params: int                    # parameters first used by this call (shared ones are counted once)
    flops: int
    field: Field | None            # receptive field of the output
    field_growth: int | None       # how much this layer widened it


@dataclass
class LayerTable:
    image_size: int
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    total_flops: int = 0
    output_field: Field | None = None
    input_shape: tuple[int, ...] = ()


def geometry(module: nn.Module) -> str:
    """'5×5 s1 p2', '3×3 s2 p1 dw' (depthwise), 'g4' (grouped), '→ 5×5' (adaptive pools)."""
    if isinstance(module, nn.Conv2d):
        text = f"{_square(module.kernel_size)} s{_one(module.stride)} p{_padding(module.padding)}"
        if _one(module.dilation) != 1:
            text += f" d{_one(module.dilation)}"
        if module.groups > 1:
            text += " dw" if module.groups == module.in_channels == module.out_channels else f" g{module.groups}"
        return text
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        text = f"{_square(module.kernel_size)} s{_one(module.stride or module.kernel_size)} p{_padding(module.padding)}"
        return text + (" ceil" if module.ceil_mode else "")
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return f"→ {_square(module.output_size)}"
    return ""


def _one(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) and len(set(value)) == 1 else value


def _square(value: Any) -> str:
    value = _one(value)
    return "×".join(map(str, value)) if isinstance(value, (tuple, list)) else f"{value}×{value}"


def _padding(value: Any) -> str:
    return str(_one(value)) if not isinstance(value, str) else value


def layer_table(model: nn.Module, image_size: int, *, channels: int = 3) -> LayerTable:
    """Run one eval-mode forward pass on a zero image of `image_size` px and record every leaf call."""
    table = LayerTable(image_size=image_size, input_shape=(channels, image_size, image_size),
                       total_params=count_params(model))
    tracer = FieldTracer()
    counter = FlopCounterMode(display=False)
    seen_params: set[int] = set()
    flops_before: dict[int, int] = {}

    def before(module: nn.Module, inputs: tuple) -> None:
        flops_before[id(module)] = counter.get_total_flops()

    def after(module: nn.Module, inputs: tuple, output: Any) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        fresh = [p for p in module.parameters() if id(p) not in seen_params]
        seen_params.update(id(p) for p in fresh)
        in_field = tracer.field(inputs[0]) if inputs else None
        out_field = tracer.field(out)
        table.rows.append(LayerRow(
            name=names[id(module)], kind=type(module).__name__, geometry=geometry(module),
            output_shape=tuple(out.shape[1:]) if isinstance(out, Tensor) else (),
            params=sum(p.numel() for p in fresh), flops=counter.get_total_flops() - flops_before[id(module)],
            field=out_field,
            field_growth=out_field.size - in_field.size if out_field is not None and in_field is not None else None,
        ))

    names = {id(module): name for name, module in model.named_modules()}
    leaves = [module for module in model.modules() if next(module.children(), None) is None]
    handles = [h for m in leaves for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    reference = next(model.parameters(), None)
    image = torch.zeros(1, channels, image_size, image_size,
                        device=reference.device if reference is not None else None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter, tracer:
            output = model(tracer.start(image))
        table.output_field = tracer.field(output)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    table.total_flops = counter.get_total_flops()
    return table
