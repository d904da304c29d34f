"""What both pruning methods need from a network: which layers count, by path, and where a forward pass
breaks (so an error names the layer instead of printing a traceback)."""

from __future__ import annotations

import contextlib
import difflib
from typing import Callable, Iterator, Sequence, TypeVar

from torch import nn

from cnnlab.errors import CnnlabError, found_before_work

T = TypeVar("T")

# The layers pruning works on: they hold the weights and define the channel counts.
WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{path: module} for every Conv2d and Linear, in definition order."""
    return {path: module for path, module in model.named_modules() if isinstance(module, WEIGHT_LAYERS)}


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output channels (Conv2d) or features (Linear) of every weight layer."""
    return {path: int(module.out_channels if isinstance(module, nn.Conv2d) else module.out_features)
            for path, module in weight_layers(model).items()}


@found_before_work()
def resolve_layers(model: nn.Module, paths: Sequence[str], *, key: str, arch: str | None = None) -> list[nn.Module]:
    """The modules at `paths`, each a Conv2d or Linear or a block holding one; an unknown path, or one with nothing
    to prune under it (a pooling layer, an activation: leaving it out would change nothing, probe 73), is a user error
    that suggests the closest path that holds a weight layer."""
    known = dict(model.named_modules())
    holding = [p for p, module in known.items() if p and any(isinstance(m, WEIGHT_LAYERS) for m in module.modules())]
    modules = []
    for path in paths:
        if path in holding:
            modules.append(known[path])
            continue
        close = difflib.get_close_matches(path, holding, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        what = (f"layer {path!r} ({type(known[path]).__name__}) holds no Conv2d or Linear, so leaving it out would "
                "change nothing") if path and path in known else f"the model has no layer {path!r}"
        raise CnnlabError(f"{key}: {what}", fix=f"{hint}list the layers with `cnnlab inspect model={arch or 'NAME'}`")
    return modules


@contextlib.contextmanager
def _running_layers(model: nn.Module) -> Iterator[list[str]]:
    """Keep the stack of modules whose forward is running; after an exception its top is the culprit."""
    stack: list[str] = []

    def enter(path: str) -> Callable[..., None]:
        return lambda *_: stack.append(path)  # list.append returns None: the input is left alone

    def leave(*_: object) -> None:  # must return None, or it would replace the module's output
        if stack:
            stack.pop()

    handles = []
    for path, module in model.named_modules():
        if path:
            handles.append(module.register_forward_pre_hook(enter(path)))
            handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def run_naming_layer(model: nn.Module, action: Callable[[], T], *, what: str, fix: str) -> T:
    """Run `action` (which runs `model` forward); if it fails, raise one CnnlabError naming the layer
    that was running: "{what} at layer 'x' (Conv2d): ...". """
    with _running_layers(model) as stack:
        try:
            return action()
        except CnnlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside a user's model becomes one clear line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if stack:
                layer = stack[-1]
                where = f"at layer {layer!r} ({type(model.get_submodule(layer)).__name__})"
            else:
                where = "outside any layer (in the model's own forward code)"
            raise CnnlabError(f"{what} {where}: {detail}", fix=fix) from exc
