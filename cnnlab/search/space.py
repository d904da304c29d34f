"""Search spaces (the `space` config group, docs/search.md): what a trial may choose, checked once, and how one
Optuna trial turns into a `Candidate` — an architecture string at an input size, or config overrides.

Schema of a space file (conf/space/NAME.yaml, or DIR/space/NAME.yaml with `--config-dir DIR`):

    kind: mobilenet | efficientnet | hparams
    base: ARCH STRING         # mobilenet / efficientnet: the network the choices scale and edit
    params:                   # name → range; at least one
      NAME: {type: float, low: 1e-4, high: 0.1, log: true}    # float: low <= high (log: low > 0), optional step
      NAME: {type: int, low: 0, high: 15, step: 1}           # int
      NAME: {type: categorical, choices: [a, b]}             # categorical: a non-empty list
      NAME: {..., per_stage: true}                           # mobilenet: one choice per stage of the base
    fixed: {KEY: VALUE}       # hparams: overrides every trial (and the chosen model's training) gets

Architecture kinds know their parameter names (ARCH_PARAMS); hparams parameter names are config keys
(optim.lr, trainer.batch_size, dataset.augment.randaugment_magnitude, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from cnnlab.errors import CnnlabError
from cnnlab.models.searched import (MAX_RESOLUTION, ArchSpec, arch_problem, depth_scaled, format_arch,
                                    parse_arch)

KINDS = ("mobilenet", "efficientnet", "hparams")
TYPES = ("float", "int", "categorical")
# The knobs of each architecture kind (a space may fix any of them by leaving it out).
ARCH_PARAMS = {
    "mobilenet": {"width": False, "depth": False, "resolution": False, "stem_stride": False,
                  "kernel": True, "expansion": True, "se": True, "activation": True},
    "efficientnet": {"width": False, "depth": False, "resolution": False},
}
_ACTIVATION_NAMES = {"relu": "relu", "hardswish": "hardswish", "hs": "hardswish", "silu": "silu", "swish": "silu"}
MIN_RESOLUTION = 16


@dataclass(frozen=True)
class Param:
    """One searchable value: a float or int range (log scale, step) or a list of choices; `per_stage`: one
    independent choice per stage of the base network."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    per_stage: bool = False

    def suggest(self, trial: Any, name: str | None = None) -> Any:
        """The value an Optuna trial picks for this parameter (under `name`, default its own)."""
        key = name or self.name
        if self.type == "categorical":
            return trial.suggest_categorical(key, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(key, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(key, float(self.low), float(self.high), step=self.step,  # type: ignore[arg-type]
                                   log=self.log)

    def describe(self) -> str:
        if self.type == "categorical":
            return "{" + ", ".join(str(c) for c in self.choices) + "}"
        return (f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")
                + (" per stage" if self.per_stage else ""))


@dataclass(frozen=True)
class SearchSpace:
    """A checked space: its name, kind, base architecture (architecture kinds) and parameters."""

    name: str
    kind: str
    params: tuple[Param, ...]
    base: ArchSpec | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_architecture(self) -> bool:
        return self.kind != "hparams"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any] | None) -> "SearchSpace":
        """The space of a `space` config section (plain values). Raises CnnlabError, one line naming the key,
        for an empty space, an unknown kind or type, low > high, empty choices, an unknown architecture knob."""
        data = dict(data or {})
        kind = str(data.get("kind") or "")
        if kind not in KINDS:
            raise CnnlabError(f"space {name}: kind={kind or '(missing)'} is not a kind of search space",
                              fix=f"set space.kind to one of {', '.join(KINDS)} (docs/search.md)")
        params = data.get("params") or {}
        if not isinstance(params, Mapping) or not params:
            raise CnnlabError(f"space {name} is empty: it names no parameter to search",
                              fix="add params: {NAME: {type: float, low: ..., high: ...}} (docs/search.md)")
        _refuse_a_dotted_name_split(name, params)
        parsed = tuple(_param(name, str(key), value) for key, value in params.items())
        base = None
        if kind != "hparams":
            unknown = [p.name for p in parsed if p.name not in ARCH_PARAMS[kind]]
            if unknown:
                raise CnnlabError(f"space {name}: {kind} spaces have no parameter {unknown[0]!r}",
                                  fix=f"use {', '.join(ARCH_PARAMS[kind])}")
            if not data.get("base"):
                raise CnnlabError(f"space {name}: a {kind} space needs `base:` (an architecture string)",
                                  fix="e.g. base: w1_stem32s2_k3e1c16n1s1_k3e6c24n2s2_head1280 (docs/search.md)")
            base = parse_arch(str(data["base"]))
            parsed = tuple(replace(p, per_stage=ARCH_PARAMS[kind][p.name]) for p in parsed)  # the kind decides
            activation = next((p for p in parsed if p.name == "activation"), None)
            if activation is not None:
                bad = [c for c in activation.choices if str(c).lower() not in _ACTIVATION_NAMES]
                if bad:
                    raise CnnlabError(f"space {name}: activation choice {bad[0]!r} is unknown",
                                      fix="use relu, hardswish or silu")
            for param in parsed:
                _check_arch_values(cls(name=name, kind=kind, params=(param,), base=base), param)
        fixed = data.get("fixed") or {}
        if not isinstance(fixed, Mapping):
            raise CnnlabError(f"space {name}: fixed must map config keys to values",
                              fix="e.g. fixed: {trainer.mixup: 0.2}")
        both = sorted(set(fixed) & {p.name for p in parsed})
        if both:  # probe 185: the fixed value was dropped for the sampled one, and run.json recorded both
            raise CnnlabError(f"space {name}: {', '.join(both)} is both searched (params) and fixed",
                              fix=f"keep {both[0]} in one of them: under params to search it, under fixed to set it")
        return cls(name=name, kind=kind, params=parsed, base=base, fixed=dict(fixed))

    def check_resolution(self, image_size: int) -> None:
        """Every input size the resolution multiplier may give at the data's `image_size` px is one a network takes
        (at most MAX_RESOLUTION): past 4096 px trial 0 ran out of memory (166 GB) with a fix naming other settings
        (probe 123). CnnlabError naming the key, before any work."""
        param = self.param("resolution")
        if param is None:
            return
        assert self.base is not None
        for factor in _values(param):
            size = resolution(image_size, float(factor))
            if arch_problem(self.base.with_resolution(size)) is not None:  # the architecture string's own bound
                raise CnnlabError(f"space {self.name}: params.resolution {factor!r} × the data's {image_size} px is "
                                  f"{size} px, above the {MAX_RESOLUTION} px a network takes",
                                  fix="lower space.params.resolution (docs/search.md)")

    def describe(self) -> dict[str, Any]:
        """run.json's search.space: name, kind, base and every parameter's range in words."""
        return {"name": self.name, "kind": self.kind, "base": None if self.base is None else format_arch(self.base),
                "params": {p.name: p.describe() for p in self.params}, "fixed": dict(self.fixed)}


# How a space whose parameters are named with dots (optim.lr) is changed: Hydra's command line cannot address them.
OWN_SPACE_FIX = ("write the space to a file: copy what `cnnlab search space=NAME --cfg job` shows under `space:` "
                 "into DIR/space/mine.yaml, change it there, and run with --config-dir DIR space=mine "
                 "(docs/search.md, \"A space of your own\")")


def _refuse_a_dotted_name_split(space: str, params: Mapping[str, Any]) -> None:
    """CnnlabError for a parameter a command-line key made by splitting a dotted name (`+space.params.optim.lr.low=
    0.01` adds params.optim.lr.low beside params['optim.lr']): probe 151, "params.optim: type=(missing) is unknown"."""
    for key, value in params.items():
        dotted = sorted(other for other in params if str(other).startswith(f"{key}."))
        if dotted and isinstance(value, Mapping) and "type" not in value:
            raise CnnlabError(f"space {space}: params.{key} was added by a command-line key, but the parameter is "
                              f"named {dotted[0]!r} — a name with dots, which the command line cannot address",
                              fix=OWN_SPACE_FIX.replace("space=NAME", f"space={space}"))


def _param(space: str, name: str, value: Any) -> Param:
    where = f"space {space}: params.{name}"
    if not isinstance(value, Mapping):
        raise CnnlabError(f"{where} is {value!r}, not a range", fix="write {type: float, low: 0.1, high: 1.0}")
    kind = str(value.get("type") or "")
    if kind not in TYPES:
        raise CnnlabError(f"{where}: type={kind or '(missing)'} is unknown", fix=f"use type: {' | '.join(TYPES)}")
    fields = _FIELDS["categorical" if kind == "categorical" else "range"]
    unknown = sorted(str(key) for key in value if key not in fields)
    if unknown:  # probe 185: `lg: true` searched a linear range, nothing said
        raise CnnlabError(f"{where}: {', '.join(unknown)} is no field of a {kind} parameter",
                          fix=f"use the fields {', '.join(fields)}")
    per_stage = bool(value.get("per_stage", False))
    if kind == "categorical":
        given = value.get("choices")
        if given is not None and not isinstance(given, (list, tuple)):  # probe 185: `choices: 32` was a traceback
            raise CnnlabError(f"{where}: choices is {given!r}, not a list", fix=f"write choices: [{given}]")
        choices = tuple(given or ())
        if not choices:
            raise CnnlabError(f"{where} has no choices", fix="give choices: [a, b, ...]")
        if any(not isinstance(c, (str, int, float, bool)) and c is not None for c in choices):
            raise CnnlabError(f"{where}: choices must be plain values (numbers, text, true/false)")
        return Param(name, kind, choices=choices, per_stage=per_stage)
    try:
        low, high = float(value["low"]), float(value["high"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CnnlabError(f"{where} needs numeric low and high",
                          fix="e.g. {type: float, low: 0.001, high: 0.1}") from exc
    log = bool(value.get("log", False))
    step = value.get("step")
    if not (math.isfinite(low) and math.isfinite(high)):  # probe 185: nan and inf were told to swap them
        raise CnnlabError(f"{where}: low={low:g}, high={high:g} — a range needs finite ends",
                          fix="give numbers, e.g. {type: float, low: 0.001, high: 0.1}")
    if low > high:
        raise CnnlabError(f"{where}: low={low:g} is above high={high:g}", fix="swap them: low must be <= high")
    if step is not None and not (isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0
                                 and math.isfinite(step)):  # probe 185: Optuna's own error, after the run began
        raise CnnlabError(f"{where}: step={step!r} must be a number above 0", fix="e.g. step: 0.01, or drop step")
    if log and low <= 0:
        raise CnnlabError(f"{where}: a log range needs low > 0 (got {low:g})", fix="raise low, or drop log: true")
    if log and step is not None:
        raise CnnlabError(f"{where}: step and log cannot be combined (Optuna)", fix="drop one of them")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise CnnlabError(f"{where}: an int range needs whole low and high", fix="use type: float")
    return Param(name, kind, low=low, high=high, log=log, step=None if step is None else float(step),
                 per_stage=per_stage)


# The fields a parameter may have (anything else is a typo that would change the search unsaid).
_FIELDS = {"categorical": ("type", "choices", "per_stage"),
           "range": ("type", "low", "high", "log", "step", "per_stage")}


# Multipliers of the whole network, which no check of the architecture string sees: 0 or below has no network
# (probe 119: depth 0 built one block per stage, resolution 0 or -1 trained at 16 px, unsaid).
_MULTIPLIERS = ("width", "depth", "resolution")


# Knobs that count (a kernel side, a stride): whole numbers only — 3.5 was truncated to 3 while trials.csv said 3.5,
# and a float or log range of kernels reached an even one in trial 1 (probe 123).
_WHOLE = ("kernel", "stem_stride")


def _values(param: Param) -> tuple[Any, ...]:
    """What `param` may give a trial, to check: its choices, every value of an int range (log too: Optuna draws
    whole numbers from it; up to 256 of them), a float range's ends (the high end the last on its step grid)."""
    if param.type == "categorical":
        return param.choices
    assert param.low is not None and param.high is not None
    step = param.step or 1
    if param.type == "int" and (param.high - param.low) / step <= 256:
        return tuple(range(int(param.low), int(param.high) + 1, int(step)))
    if param.type == "float" and param.step:  # Optuna never draws past the grid (high 4.1, step 0.25: 4.0)
        return (param.low, param.low + math.floor((param.high - param.low) / param.step + 1e-9) * param.step)
    return (param.low, param.high)


class _Picks:
    """A stand-in for an Optuna trial that picks `value` for every parameter it is asked for."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def suggest_categorical(self, *args: Any, **kwargs: Any) -> Any:
        return self.value

    suggest_int = suggest_float = suggest_categorical


def _check_arch_values(space: SearchSpace, param: Param) -> None:
    """Every value `param` may give builds a network, checked before any work: a kernel of 4, an expansion or
    width of 0, a stem stride of 8 passed and failed trial 0 with an error about a `model.arch=` the user never
    gave; `se: [no]` built squeeze-excitation everywhere while trials.csv said `se_0=no` (bool("no") is True; probe
    119). One line naming the key."""
    where = f"space {space.name}: params.{param.name}"
    fix = f"change space.params.{param.name} (docs/search.md)"
    assert space.base is not None
    if param.name in _WHOLE and param.type == "float":
        raise CnnlabError(f"{where}: a {param.name} is a whole number, and a float range draws fractions",
                          fix=f"use type: int (or categorical) for space.params.{param.name}")
    for value in _values(param):
        if param.name == "activation":
            continue  # its names were checked, and no value of it is out of range
        if param.name == "se":
            if not (isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))):
                raise CnnlabError(f"{where}: choice {value!r} is not true or false", fix="use choices: [false, true]")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CnnlabError(f"{where}: choice {value!r} is not a number", fix=fix)
        if param.name in _WHOLE and value != int(value):
            raise CnnlabError(f"{where}: {value!r} is no whole number (a {param.name} counts pixels)", fix=fix)
        if param.name in _MULTIPLIERS and not value > 0:
            raise CnnlabError(f"{where}: {value!r} is no {param.name} multiplier (it must be above 0)", fix=fix)
        problem = arch_problem(_architecture(space, space.base, _Picks(value)))
        if problem is not None:
            raise CnnlabError(f"{where}: {value!r} builds no network ({problem})", fix=fix)


@dataclass(frozen=True)
class Candidate:
    """What one trial builds and trains: a zoo model (name + architecture options) at `image_size` px, with
    config `overrides` (hparams; `fixed` included). `arch` is the architecture string of a searched network."""

    model: str
    image_size: int
    arch: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What identifies the network for the latency cache: the same key, the same graph."""
        return f"{self.arch or self.model}@{self.image_size}px"

    @property
    def identity(self) -> str:
        """What a trial trains: the network (`key`) and the config overrides. Sampled settings that build the
        same network (a depth multiplier on one-block stages, resolutions that round to one size) share it."""
        overrides = ",".join(f"{k}={self.overrides[k]!r}" for k in sorted(self.overrides))
        return f"{self.key}|{overrides}"


def sample(space: SearchSpace, trial: Any, *, image_size: int, model: str) -> Candidate:
    """The candidate `trial` picks from `space`; `image_size` is the dataset's (resolution multiplies it),
    `model` the zoo model an hparams space trains."""
    if space.kind == "hparams":
        values = {p.name: p.suggest(trial) for p in space.params}
        return Candidate(model=model, image_size=image_size, overrides={**space.fixed, **values})
    assert space.base is not None
    spec = _architecture(space, space.base, trial)
    size = resolution(image_size, _value(space, "resolution", trial, 1.0))
    return Candidate(model="searched", image_size=size, arch=format_arch(spec.with_resolution(size)),
                     overrides=dict(space.fixed))


def resolution(image_size: int, factor: float) -> int:
    """The dataset's size x factor, rounded to a multiple of 4 (at least MIN_RESOLUTION)."""
    return max(MIN_RESOLUTION, round(image_size * float(factor) / 4) * 4)


def _value(space: SearchSpace, name: str, trial: Any, default: Any, suffix: str = "") -> Any:
    param = space.param(name)
    return default if param is None else param.suggest(trial, name + suffix)


def _architecture(space: SearchSpace, base: ArchSpec, trial: Any) -> ArchSpec:
    """Width, depth and stem stride for the whole network; kernel, expansion, SE and activation per stage
    (stage i of the base: `kernel_i`, ...). A stage whose base expansion is 1 keeps it (MobileNetV2's first)."""
    width = float(_value(space, "width", trial, 1.0))
    depth = float(_value(space, "depth", trial, 1.0))
    stem_stride = int(_value(space, "stem_stride", trial, base.stem_stride))
    stages = []
    for index, stage in enumerate(base.stages):
        suffix = f"_{index}"
        expansion = stage.expansion if stage.expansion == 1 else float(_value(space, "expansion", trial,
                                                                               stage.expansion, suffix))
        activation = _ACTIVATION_NAMES[str(_value(space, "activation", trial, stage.activation, suffix)).lower()]
        stages.append(replace(stage, kernel=int(_value(space, "kernel", trial, stage.kernel, suffix)),
                              expansion=expansion, se=bool(_value(space, "se", trial, stage.se, suffix)),
                              activation=activation, repeats=depth_scaled(stage.repeats, depth)))
    return replace(base, width=round(width * base.width, 4), stem_stride=stem_stride, stages=tuple(stages))
