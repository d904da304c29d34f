"""Record and restore the layer shapes of a (pruned) network.

Channel pruning (Torch-Pruning) shrinks convolutions, batch norms and linears in place, so a pruned state
dict no longer fits a freshly built network. A checkpoint stores `capture_structure(model)` — plain ints,
safe under torch.load(weights_only=True) — and the loader rebuilds the stock network, calls
`apply_structure`, then `load_state_dict`.
"""

from __future__ import annotations

from typing import Mapping

from torch import nn

from cnnlab.errors import CnnlabError

_SHAPE_KEYS: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.BatchNorm2d: ("num_features",),
    nn.Linear: ("in_features", "out_features"),
}


def _shape_keys(module: nn.Module) -> tuple[str, ...] | None:
    for kind, keys in _SHAPE_KEYS.items():
        if isinstance(module, kind):
            return keys
    return None


def capture_structure(model: nn.Module) -> dict[str, dict[str, int]]:
    """{module path: constructor shapes} for every Conv2d, BatchNorm2d and Linear of `model`."""
    structure = {}
    for path, module in model.named_modules():
        keys = _shape_keys(module)
        if keys is not None:
            structure[path] = {key: int(getattr(module, key)) for key in keys}
    return structure


def apply_structure(model: nn.Module, structure: Mapping[str, Mapping[str, int]]) -> None:
    """Resize `model`'s modules to the recorded shapes; their values are left for load_state_dict to fill."""
    for path, shape in structure.items():
        try:
            module = model.get_submodule(path)
        except AttributeError as err:
            raise _mismatch(f"it has no module {path!r}") from err
        keys = _shape_keys(module)
        if keys is None or set(keys) != set(shape):
            raise _mismatch(f"{path!r} is a {type(module).__name__}, the recorded one had {sorted(shape)}")
        if all(getattr(module, key) == shape[key] for key in keys):
            continue
        if isinstance(module, nn.Conv2d):
            _resize_conv(module, path, **shape)
        elif isinstance(module, nn.BatchNorm2d):
            _resize_batchnorm(module, **shape)
        else:
            _resize_linear(module, **shape)  # type: ignore[arg-type]


def _mismatch(detail: str) -> CnnlabError:
    return CnnlabError(f"the recorded layer shapes do not fit this network: {detail}",
                       fix="rebuild with the model name and options the checkpoint was made with")


def _resize_conv(conv: nn.Conv2d, path: str, in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups or out_channels % groups:
        raise _mismatch(f"{path!r}: {in_channels}→{out_channels} channels cannot form {groups} groups")
    conv.in_channels, conv.out_channels, conv.groups = in_channels, out_channels, groups
    conv.weight = nn.Parameter(conv.weight.new_zeros(out_channels, in_channels // groups, *conv.kernel_size))
    if conv.bias is not None:
        conv.bias = nn.Parameter(conv.bias.new_zeros(out_channels))


def _resize_batchnorm(norm: nn.BatchNorm2d, num_features: int) -> None:
    norm.num_features = num_features
    if norm.affine:
        norm.weight = nn.Parameter(norm.weight.new_ones(num_features))
        norm.bias = nn.Parameter(norm.bias.new_zeros(num_features))
    if norm.track_running_stats:  # assigning a tensor to a registered buffer name replaces the buffer
        norm.running_mean = norm.running_mean.new_zeros(num_features)
        norm.running_var = norm.running_var.new_ones(num_features)


def _resize_linear(linear: nn.Linear, in_features: int, out_features: int) -> None:
    linear.in_features, linear.out_features = in_features, out_features
    linear.weight = nn.Parameter(linear.weight.new_zeros(out_features, in_features))
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.new_zeros(out_features))
