"""Receptive fields traced through a real forward pass.

Every tensor computed from the input carries a `Field`: one of its elements sees a `size` × `size` window
of input pixels, and neighbouring elements' windows are `jump` pixels apart. A convolution or pool with
kernel k, stride s and dilation d maps (r, j) to (r + (k - 1)·d·j, j·s) — the classic arithmetic of
Dumoulin & Visin and Araujo et al. An adaptive pool's windows are PyTorch's [⌊i·in/out⌋, ⌈(i+1)·in/out⌉): its
field is that of its widest window (computed, not assumed: ⌈in/out⌉ or ⌈in/out⌉ + 1 positions where out does not
divide in — 54 → 5 has 12, 3 → 2 has 2), and a layer mixing
all its positions sees the whole map it pooled.

Other operations pass their inputs' field on. With several inputs (a residual `add`, an Inception `cat`) the
widest wins: the field of a sum is the union of its paths' fields, and for windows centred on the same
pixel that is the largest. A squeeze-excitation gate — a globally pooled 1×1 tensor broadcast over the
map — is flagged as global context instead of widening the window (it would otherwise make every later
field "the whole image"). Flattening a map keeps each element's field; the first layer that mixes the
flattened positions (a Linear, or a reduction such as `mean`) sees the whole map. An adaptive pool that
upsamples (VGG's 7×7 pool after a 1×1 map at 32 px) repeats windows rather than adding new ones; the zoo only
does that right before its classifier, and a convolution after such a pool is treated as if the repeated
positions were distinct.

Sizes are not clipped at the image border: a field larger than the image means that border units see
padding, as in ResNet-50 (427 px at 224 px input).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class Field:
    size: int     # side of the input window one element sees, in pixels
    jump: int     # distance in input pixels between neighbouring elements (the cumulative stride)
    global_context: bool = False  # a globally pooled gate (squeeze-excitation) was mixed in on the way
    flattened_side: int = 1       # a flattened map's side: positions not yet mixed by a Linear
    distinct_side: int | None = None  # after an upsampling pool: how many different windows a side holds
    # after an adaptive pool: the field of the whole map it pooled (r + (in − 1)·j of its input), what a unit mixing
    # every pooled position sees — its windows overlap unevenly, so no (r, j) pair gives it exactly
    whole_pooled: int | None = None

    def through(self, kernel: int, stride: int, dilation: int = 1) -> "Field":
        return replace(self, size=self.size + (kernel - 1) * dilation * self.jump, jump=self.jump * stride,
                       distinct_side=None, whole_pooled=None)

    def side(self, map_side: int) -> int:
        """Positions per side of a map with this field that see different windows."""
        return map_side if self.distinct_side is None else min(map_side, self.distinct_side)

    def whole_map(self, side: int) -> "Field":
        """The field of a unit that sees all `side` × `side` positions of a map with this field."""
        size = self.whole_pooled if self.whole_pooled is not None else self.size + (side - 1) * self.jump
        return replace(self, size=size, jump=self.jump * side, flattened_side=1, whole_pooled=None)


def _pair(value: Any) -> int:
    """Largest of an int-or-tuple hyper-parameter (the zoo's kernels are square; the larger side bounds the field)."""
    return max(value) if isinstance(value, (tuple, list)) else int(value)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _conv(field: Field, args: tuple, kwargs: dict, source: Tensor, out: Tensor) -> Field:
    weight = _arg(args, kwargs, 1, "weight", None)
    stride, dilation = _arg(args, kwargs, 3, "stride", 1), _arg(args, kwargs, 5, "dilation", 1)
    return field.through(_pair(tuple(weight.shape[2:])), _pair(stride), _pair(dilation))


def _pool(field: Field, args: tuple, kwargs: dict, source: Tensor, out: Tensor) -> Field:
    kernel = _arg(args, kwargs, 1, "kernel_size", 1)
    stride = _arg(args, kwargs, 2, "stride", None) or kernel
    return field.through(_pair(kernel), _pair(stride), _pair(kwargs.get("dilation", 1)))


def adaptive_windows(side_in: int, side_out: int) -> list[range]:
    """The input positions each output position of an adaptive pool reads along one side: [⌊i·in/out⌋,
    ⌈(i+1)·in/out⌉), as PyTorch's adaptive_avg_pool2d and adaptive_max_pool2d compute them."""
    return [range(i * side_in // side_out, -(-(i + 1) * side_in // side_out)) for i in range(side_out)]


def _adaptive_pool(field: Field, args: tuple, kwargs: dict, source: Tensor, out: Tensor) -> Field:
    side_in, side_out = max(source.shape[-2:]), max(out.shape[-2:])
    # The widest window can be ⌈in/out⌉ + 1 where out does not divide in (54 → 5: 12 positions, not 11: probe 120;
    # an upsampling 4 → 5 reads 2 where in divides out reads 1: probe 123).
    windows = adaptive_windows(side_in, side_out)
    widest = max(len(window) for window in windows)
    whole = field.size + (side_in - 1) * field.jump
    if side_out >= side_in:  # identity or upsampling: windows repeat, and no more than `in` of them differ
        grown = replace(field, size=field.size + (widest - 1) * field.jump, distinct_side=field.side(side_in))
        return replace(grown, whole_pooled=whole)
    # the windows start in/out apart, unevenly: the jump given is the widest spacing between two window starts
    # (6 → 5: 1, not ⌈6/5⌉ = 2 — probe 146)
    spacing = max(later.start - earlier.start for earlier, later in zip(windows, windows[1:])) if side_out > 1 \
        else side_in
    pooled = field.through(widest, spacing)
    return replace(pooled, whole_pooled=whole)


def _mixes_positions(field: Field, args: tuple, kwargs: dict, source: Tensor, out: Tensor) -> Field:
    return field.whole_map(field.flattened_side) if field.flattened_side > 1 else field


Rule = Callable[[Field, tuple, dict, Tensor, Tensor], Field]
MAP_RULES: dict[Any, Rule] = {
    F.conv2d: _conv,
    F.max_pool2d: _pool, F.avg_pool2d: _pool, torch.max_pool2d: _pool,
    F.adaptive_avg_pool2d: _adaptive_pool, F.adaptive_max_pool2d: _adaptive_pool,
}
VECTOR_RULES: dict[Any, Rule] = {F.linear: _mixes_positions, torch.matmul: _mixes_positions,
                                 torch.addmm: _mixes_positions, torch.mm: _mixes_positions}


class FieldTracer(TorchFunctionMode):
    """While active, records the receptive field of every tensor derived from the traced input."""

    def __init__(self) -> None:
        super().__init__()
        self._fields: dict[int, tuple[Tensor, Field]] = {}  # id → (tensor kept alive so ids stay unique, field)

    def start(self, image: Tensor) -> Tensor:
        self._fields[id(image)] = (image, Field(1, 1))
        return image

    def field(self, tensor: Any) -> Field | None:
        entry = self._fields.get(id(tensor)) if isinstance(tensor, Tensor) else None
        return entry[1] if entry is not None and entry[0] is tensor else None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        sources = [(t, f) for t in tree_flatten((args, kwargs))[0] if (f := self.field(t)) is not None]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        if sources and outputs:
            field = combine(func, args, kwargs, sources, outputs[0])
            for tensor in outputs:
                self._fields[id(tensor)] = (tensor, field)
        return out


def combine(func: Any, args: tuple, kwargs: dict, sources: list[tuple[Tensor, Field]], out: Tensor) -> Field:
    """The field of `out = func(*args, **kwargs)` from the fields of its traced inputs."""
    maps = [(t, f) for t, f in sources if t.dim() == 4]
    if maps and out.dim() == 4 and func in MAP_RULES:
        return MAP_RULES[func](maps[0][1], args, kwargs, maps[0][0], out)
    if maps and out.dim() < 4:
        tensor, field = max(maps, key=lambda item: item[1].size)
        side = field.side(max(tensor.shape[-2:]))
        if out.numel() == tensor.numel():  # flatten / view: positions kept apart until something mixes them
            return replace(field, flattened_side=side)
        return field.whole_map(side)      # a reduction over the map (mean, amax, ...)
    if not maps and func in VECTOR_RULES:
        return VECTOR_RULES[func](max((f for _, f in sources), key=lambda f: f.size), args, kwargs, sources[0][0], out)
    # Elementwise joins: the union of the paths' windows. An operand on a coarser grid that is broadcast over
    # the output (a squeeze-excitation gate, 1×1) contributes global context, not a wider window.
    same_grid = [f for t, f in maps if t.shape[-2:] == out.shape[-2:]] or [f for _, f in sources]
    widest = max(same_grid, key=lambda f: f.size)
    broadcast = out.dim() == 4 and len(same_grid) < len(sources)
    return replace(widest, jump=max(f.jump for f in same_grid),
                   global_context=broadcast or any(f.global_context for _, f in sources))
