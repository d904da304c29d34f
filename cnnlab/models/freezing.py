"""Which parameters train when fine-tuning: freeze a registered network's backbone up to a module.

Transfer learning's three regimes (Yosinski et al. 2014, "How transferable are features in deep neural
networks?"; torchvision's and timm's fine-tuning recipes):

linear   only the classifier head trains (a linear probe of frozen features);
partial  the last `unfreeze` backbone stages and everything after them (pooling, pre-logits, head) train;
full     everything trains.

The zoo's networks define their modules in execution order, so "everything after" is "every module from
the first module of the first trainable stage onwards, in definition order". Stage names may be ranges
("features.7..13"): the first trainable module is then `features.7`, not the range's name.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models.registry import get_entry

FINETUNE_MODES = ("linear", "partial", "full")


def stage_start(stage: str) -> str:
    """The module path where a stage begins: "features.7..13" → "features.7", "layer4" → "layer4",
    "conv1..maxpool" → "conv1"."""
    first, _, last = stage.partition("..")
    return first if last else stage


@found_before_work()  # a setting or input refused: the run it stops leaves no folder (probe 100)
def first_trainable(name: str, mode: str, unfreeze: int = 1) -> str | None:
    """The module path from which `name` trains in `mode` (None: everything trains).

    Errors: CnnlabError for an unknown mode, or an `unfreeze` outside 1..number of stages (the message
    lists the stages).
    """
    entry = get_entry(name)
    if mode == "full":
        return None
    if mode == "linear":
        return entry.head
    if mode != "partial":
        raise CnnlabError(f"finetune.mode={mode} is not a mode", fix=f"use one of: {', '.join(FINETUNE_MODES)}")
    stages = entry.stages
    if not 1 <= unfreeze <= len(stages):
        raise CnnlabError(f"finetune.unfreeze={unfreeze} but {name} has {len(stages)} stages",
                          fix=f"use 1..{len(stages)} ({', '.join(stages)})")
    return stage_start(stages[-unfreeze])


def freeze_before(model: nn.Module, path: str | None) -> list[nn.Module]:
    """Set requires_grad=False on every parameter of the modules defined before module `path`.

    Returns the frozen leaf modules, which the trainer keeps in eval mode so that their BatchNorm running
    statistics and dropout do not change. `path=None` freezes nothing. Errors: CnnlabError when `model`
    has no module `path` (a model that does not match its registered name).
    """
    if path is None:
        return []
    paths = {module_path for module_path, _ in model.named_modules()}
    if path not in paths:
        raise CnnlabError(f"the model has no module {path!r} to train from",
                          fix="the model does not match its name; rebuild it with create_model")
    frozen: list[nn.Module] = []
    for module_path, module in model.named_modules():
        if module_path == path or module_path.startswith(path + "."):
            break
        if next(module.children(), None) is None:  # a leaf: freeze its own parameters
            for param in module.parameters(recurse=False):
                param.requires_grad_(False)
            frozen.append(module)
    return frozen
