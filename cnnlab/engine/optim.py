"""Optimizer and learning-rate schedule from the `optim` and `sched` config groups.

The optimizer class comes from `optim._target_` (any torch.optim class, or `LARS` below); cnnlab builds the parameter
groups: no weight decay on norms and biases (the torchvision-reference habit), and an optional lower
learning rate for a pretrained backbone. Schedules are per step: linear warm-up, then cosine or step.
On resume, `hyperparameters` / `reapply_hyperparameters` keep this run's settings over the restored
ones, and `place_schedule` puts the schedule at the step this run's batch size makes of the epochs done.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import warnings
from typing import Any, Iterable, Mapping, Sequence

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.errors import CnnlabError, found_before_work

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def _split_decay(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    decay, no_decay = [], []
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            (no_decay if isinstance(sub, _NORM_TYPES) or name == "bias" else decay).append(param)
    return decay, no_decay


def param_groups(model: nn.Module, lr: float, weight_decay: float, *,
                 head: nn.Module | None = None, backbone_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Trainable parameters in groups: (head | backbone) x (decay | no decay). Frozen ones are left out."""
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    groups: list[dict[str, Any]] = []
    decay, no_decay = _split_decay(model)
    for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
        body = [p for p in params if id(p) not in head_ids]
        top = [p for p in params if id(p) in head_ids]
        if body:
            groups.append({"params": body, "lr": lr * backbone_lr_scale, "weight_decay": wd, "name": "backbone"})
        if top:
            groups.append({"params": top, "lr": lr, "weight_decay": wd, "name": "head"})
    if not groups:
        raise CnnlabError("nothing to train: every parameter is frozen",
                          fix="use finetune.mode=partial or full, or check the model")
    return groups


# What `optim._target_` may name: a config (a resumed run's saved one included) is untrusted input, and
# instantiate() calls whatever it names.
OPTIMIZER_MODULE, LARS_TARGET = "torch.optim.", "cnnlab.engine.optim.LARS"


# Optimizers that cannot train cnnlab's networks (dense gradients).
UNSUITABLE = {"torch.optim.SparseAdam": "it takes only sparse gradients, and a CNN's gradients are dense",
              "torch.optim.LBFGS": "it re-evaluates the loss through a closure and takes one parameter group, while "
                                   "cnnlab takes one step per batch over several groups"}


def _optimizer_class(target: str) -> type:
    """The class `target` names. CnnlabError naming torch.optim's optimizers when there is none."""
    module, _, name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        found = None
    if not isinstance(found, type):
        known = sorted(n for n, v in vars(torch.optim).items()
                       if isinstance(v, type) and issubclass(v, torch.optim.Optimizer) and v is not torch.optim.Optimizer
                       and f"torch.optim.{n}" not in UNSUITABLE)
        raise CnnlabError(f"optim._target_={target} names no class", fix=f"use one of torch.optim.{{{', '.join(known)}}}"
                                                                          " (or optim=sgd, optim=adamw, optim=lars)")
    return found


def default_weight_decay(target: str) -> float:
    """The weight decay the optimizer class `target` applies when given none (torch.optim.AdamW: 0.01; SGD: 0) — what
    `~optim.weight_decay` leaves, as docs/configuration.md says (probe 99: cnnlab's parameter groups gave 0.0)."""
    try:
        default = inspect.signature(_optimizer_class(target).__init__).parameters["weight_decay"].default
    except (CnnlabError, KeyError, TypeError, ValueError):
        return 0.0
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else 0.0


def _refused_keys(cls: type, cfg: DictConfig) -> list[str]:
    """The `optim.*` keys that `cls` takes no argument for (none when it takes **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [str(key) for key in cfg if not str(key).startswith("_") and str(key) not in params]


# torch.optim arguments for ways of training cnnlab has no part in
_NOT_FOR_CNNLAB = {"capturable": "CUDA graph capture (the optimizer asserts its parameters and step counters are on "
                                 "the GPU)",
                   "differentiable": "differentiating through the optimizer step (meta-learning)"}


def _kind_taken(param: inspect.Parameter) -> str | None:
    """'bool' or 'number' when the optimizer argument's default (else its annotation) says it takes one, else None."""
    default = param.default
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, (int, float)):
        return "number"
    if isinstance(default, tuple) and default and all(isinstance(v, (int, float)) for v in default):
        return "numbers"  # betas, etas, step_sizes (probe 102: `step_sizes=[1e-6,yes]` failed at the first step)
    annotation = str(param.annotation)
    return "bool" if "bool" in annotation and "float" not in annotation else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mistyped_key(cls: type, cfg: DictConfig) -> tuple[str, Any, str, Any] | None:
    """(key, value, 'true or false' | 'a number' | 'a list of numbers', the class's default) for the first `optim.*`
    value of another type than the class's argument takes. Probe 99: `+optim.maximize=off` reached torch as the text 'off', which counts as true — training
    climbed the loss — while `off` in a YAML file is false; `+optim.amsgrad=no` turned AMSGrad on."""
    params = inspect.signature(cls.__init__).parameters
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    for key, value in plain.items():  # type: ignore[union-attr]
        param = params.get(str(key))
        if param is None or str(key).startswith("_") or value is None:
            continue
        kind = _kind_taken(param)
        if kind == "bool" and not isinstance(value, bool):
            return str(key), value, "true or false", param.default
        if kind == "number" and not _is_number(value):
            return str(key), value, "a number", param.default
        if kind == "numbers" and not (isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)):
            return str(key), value, "a list of numbers", param.default
    return None


def check_optimizer_config(optim_cfg: Mapping[str, Any], typed: Sequence[str] = ()) -> None:
    """Raises CnnlabError for a target outside torch.optim (OPTIMIZER_MODULE) and LARS, one that cannot train a CNN
    (UNSUITABLE), or settings the class takes no argument for (named, with the `~optim.KEY` overrides that drop
    them — or, where the user added them (`+optim.amsgrad=true` in `typed`), dropping those). Checked with every
    setting before a run starts (settings.check_settings), and again when it builds."""
    cfg = optim_cfg if isinstance(optim_cfg, DictConfig) else OmegaConf.create(dict(optim_cfg))
    target = str(cfg.get("_target_"))
    if not (target.startswith(OPTIMIZER_MODULE) or target == LARS_TARGET):
        raise CnnlabError(f"optim._target_={target} is not an optimizer cnnlab builds: it takes a torch.optim class "
                          "or cnnlab.engine.optim.LARS", fix="use optim=sgd, optim=adamw, optim=lars, or another "
                          "torch.optim class without optim=sgd's nesterov (e.g. optim._target_=torch.optim.RMSprop "
                          "~optim.nesterov)")
    if target in UNSUITABLE:
        raise CnnlabError(f"optim._target_={target} cannot train this network: {UNSUITABLE[target]}",
                          fix="use optim=adamw (or optim=sgd)")
    cls = _optimizer_class(target)
    refused = _refused_keys(cls, cfg)
    if refused:
        # `++` is also cnnlab's own spelling of a key typed for a resumed run (hydra_args.recorded_groups)
        added = [o.removeprefix("++") for o in typed if o.startswith("+") and o.lstrip("+").partition("=")[0] in
                 {f"optim.{key}" for key in refused}]
        # probe 130: `+optim.amsgrad=true` was told to add `~optim.amsgrad` after it, not to drop what it typed
        fix = f"drop {' '.join(added)} from the command" if len(added) == len(refused) else \
            f"drop {'them' if len(refused) > 1 else 'it'}: add {' '.join(f'~optim.{key}' for key in refused)} to the " \
            "command"
        raise CnnlabError(f"{target} takes no {' or '.join(refused)} argument", fix=fix)
    mistyped = _mistyped_key(cls, cfg)
    if mistyped is not None:
        key, value, wanted, default = mistyped
        example = str(default).lower() if isinstance(default, bool) else \
            f"[{','.join(str(v) for v in default)}]" if isinstance(default, tuple) else str(default)
        words = " (on the command line yes, no, on and off are text, which an optimizer reads as true)" \
            if wanted == "true or false" else ""
        raise CnnlabError(f"optim.{key}={value!r}: {target} takes {wanted} there{words}",
                          fix=f"write +optim.{key}={example} (optim.{key}={example} where the optim file has the key)")
    for key, why in _NOT_FOR_CNNLAB.items():  # probes 99, 100: an error at the first step, shown as a bug in cnnlab
        if cfg.get(key) is True:
            raise CnnlabError(f"optim.{key}=true is for {why}, which cnnlab does not do", fix=f"drop it: ~optim.{key}")


def build_optimizer(optim_cfg: Mapping[str, Any], groups: Iterable[dict[str, Any]]) -> torch.optim.Optimizer:
    """The optimizer `optim_cfg._target_` names over the parameter groups. Raises CnnlabError as
    check_optimizer_config does, or for arguments the class refuses."""
    cfg = optim_cfg if isinstance(optim_cfg, DictConfig) else OmegaConf.create(dict(optim_cfg))
    check_optimizer_config(cfg)
    try:
        # _partial_: Hydra would wrap the parameter tensors in OmegaConf nodes if passed as kwargs.
        factory = instantiate(cfg, _partial_=True, _convert_="all")
        return factory(list(groups))
    except Exception as exc:  # a bad _target_ or argument in the user's optim config
        cause = str(exc.__cause__ or exc)
        given = " ".join(f"optim.{k}={v}" for k, v in cfg.items() if not str(k).startswith("_"))
        # probe 57: `+optim.dampening=0.1` on optim=sgd (nesterov: true) was told to "check the optim group"
        fix = "set optim.nesterov=false (Nesterov momentum needs momentum > 0 and dampening 0)" \
            if "Nesterov" in cause else f"change the setting it names (this optimizer was given {given})"
        with found_before_work():  # built before the first step: the run it stops leaves no folder (probe 102)
            raise CnnlabError(f"cannot build optimizer {cfg.get('_target_')}: {cause}", fix=fix) from exc


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, "Large Batch Training of
    Convolutional Networks", arXiv:1708.03888), as SimCLR trains with it (arXiv:2002.05709, §B.1; its reference
    `LARSOptimizer`).

    Per parameter tensor w with gradient g: d = g + weight_decay * w; d is scaled by the trust ratio
    trust_coefficient * ||w|| / ||d|| (1 where either norm is 0); then v = momentum * v + d and w -= lr * v.
    Biases and normalisation parameters (1-d tensors) keep the plain SGD update: SimCLR's reference excludes
    BatchNorm and bias from the adaptation, as from weight decay (which cnnlab's parameter groups already give 0).
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001, eps: float = 1e-8) -> None:
        if lr <= 0 or not 0 <= momentum < 1 or weight_decay < 0 or trust_coefficient <= 0:
            raise ValueError(f"LARS: lr={lr} must be > 0, momentum={momentum} in [0, 1), weight_decay="
                             f"{weight_decay} >= 0 and trust_coefficient={trust_coefficient} > 0")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "trust_coefficient": trust_coefficient, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                update = param.grad
                if group["weight_decay"]:
                    update = update.add(param, alpha=group["weight_decay"])
                if param.ndim > 1:  # not a bias or a norm's scale/shift
                    weight_norm, update_norm = torch.linalg.vector_norm(param), torch.linalg.vector_norm(update)
                    trust = torch.where((weight_norm > 0) & (update_norm > 0),
                                        group["trust_coefficient"] * weight_norm / (update_norm + group["eps"]),
                                        torch.ones_like(weight_norm))
                    update = update * trust
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update.detach().clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, name: str,
              min_lr_ratio: float = 0.0, step_size: int = 1, gamma: float = 0.1) -> float:
    """Multiplier of the base learning rate at a given optimizer step."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if name == "constant":
        return 1.0
    if name == "step":
        return gamma ** ((step - warmup_steps) // max(1, step_size))
    if name == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    raise CnnlabError(f"unknown schedule '{name}'", fix="use sched=cosine, step or constant")


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """The linear warm-up's length in steps: `warmup_epochs` of the run, or half the run where that would leave fewer
    than two steps after it. A run that was all warm-up (or all but its last step, which a schedule starts at its
    peak) never decayed and ended at its peak rate (probe 103: every 1-epoch run on the default `warmup_epochs: 1`,
    and each of prune's 1-epoch fine-tunes between steps; probe 106: 0.9 of a 5-step run)."""
    asked = max(0, int(round(warmup_epochs * steps_per_epoch)))
    # at most half the run, and two steps after it at least (probe 108: 1 of a 2-step run ended at the peak)
    return asked if asked < total_steps - 1 or asked == 0 else max(0, min(total_steps // 2, total_steps - 2))


def warmup_plan(sched_cfg: Mapping[str, Any], *, steps_per_epoch: int, epochs: int) -> tuple[int, int, int]:
    """(warm-up steps asked by `sched.warmup_epochs`, warm-up steps the schedule uses (`warmup_steps`), total steps)
    of a run of `epochs` × `steps_per_epoch` optimizer steps: what build_scheduler builds, and what a cut says."""
    total = max(1, steps_per_epoch * epochs)
    asked = float(sched_cfg.get("warmup_epochs", 0) or 0)
    return max(0, int(round(asked * steps_per_epoch))), warmup_steps(asked, steps_per_epoch, total), total


def build_scheduler(sched_cfg: Mapping[str, Any], optimizer: torch.optim.Optimizer, *,
                    steps_per_epoch: int, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR for the `sched` section: linear warm-up (warmup_plan) then cosine, step or constant
    (lr_factor), over `steps_per_epoch` × `epochs` optimizer steps. Raises CnnlabError for an unknown name now."""
    _, warmup, total = warmup_plan(sched_cfg, steps_per_epoch=steps_per_epoch, epochs=epochs)
    kwargs = {"total_steps": total, "warmup_steps": warmup, "name": str(sched_cfg.get("name", "cosine")),
              "min_lr_ratio": float(sched_cfg.get("min_lr_ratio", 0.0)),
              "step_size": int(sched_cfg.get("step_epochs", 1)) * steps_per_epoch,
              "gamma": float(sched_cfg.get("gamma", 0.1))}
    lr_factor(0, **kwargs)  # validate the name now, not mid-epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, **kwargs))


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """A copy of each param group's settings (lr, initial_lr, weight_decay, momentum, betas, ...), without
    its parameters: what `reapply_hyperparameters` puts back after `optimizer.load_state_dict`."""
    return [{key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            for group in optimizer.param_groups]


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return not torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):  # betas come back as a list or a tuple
        return list(a) != list(b)
    return bool(a != b)


def reapply_hyperparameters(optimizer: torch.optim.Optimizer,
                            chosen: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """Set every group's settings back to `chosen` (from `hyperparameters`, same groups) where the loaded
    state differs; returns {key: (loaded value, chosen value)} of the first group that differed. A scheduled
    `lr` is left alone: its base is `initial_lr`, and the schedule sets `lr` from it (`place_schedule`)."""
    changed: dict[str, tuple[Any, Any]] = {}
    for group, wanted in zip(optimizer.param_groups, chosen):
        for key, value in wanted.items():
            if key == "lr" and "initial_lr" in wanted:
                continue
            if key in group and _differs(group[key], value):
                changed.setdefault(key, (group[key], value))
                group[key] = copy.deepcopy(value)
    return changed


def place_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler, optimizer: torch.optim.Optimizer,
                   step: int) -> None:
    """Move a per-step schedule to optimizer step `step` (0 = before the first step), with the groups'
    current `initial_lr` as its base rates, and set each group's `lr` to the schedule's value there."""
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    scheduler.last_epoch = step - 1
    with warnings.catch_warnings():  # not "step() before optimizer.step()": the position is set, not advanced
        warnings.simplefilter("ignore", UserWarning)
        scheduler.step()
