"""The one check of every setting, where it enters: right after Hydra composes the config.

A setting's rule (type, range, choices) comes from two places:

1. derived from the packaged YAML defaults, so a new knob is covered without touching this file: a key
   whose default is an int takes an integer, a float takes a number, a bool takes true/false, a list
   takes a list (of numbers when its default holds numbers); a default of null in any choice of its
   group (dataset.image_size is 64 for synthetic, null for imagefolder) also allows null;
2. `RULES` below: ranges and choices for the known knobs, and the type of knobs whose default is null.

`check_settings(cfg, command)` raises one CnnlabError naming the key, the value, what is allowed and a
value that works. Lower layers still check their arguments; this check makes their parse errors
unreachable from the command line.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Mapping, Sequence


from cnnlab.commands import COMMANDS
from cnnlab.conftree import CONF_DIR, default_choices
from cnnlab.fileio import load_yaml
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import NO_RESUME, path_argument, resume_spec
from cnnlab.wording import listed

MIN_IMAGE_SIZE = 8      # a dataset's native size (sklearn's digits are 8 px): the smallest image there is
MIN_INPUT_SIZE = 16     # the smallest input any zoo model takes (models/registry.py min_size; each checks its own)
MAX_IMAGE_SIZE = 4096   # a typo like 22400 would otherwise allocate gigabytes per image
MAX_CLASSES = 1_000_000  # as a checkpoint may hold (engine/checkpoint.py): 10**12 allocated 336 TB (probe 118's kind)
_NOT_DERIVED = {"hydra", "experiment"}  # Hydra's own tree; experiments are deltas, not defaults
_MISSING = "???"


@dataclass(frozen=True)
class Rule:
    """What one setting accepts. kind: int | number | bool | str | list | scalar (any str/number/bool)."""

    kind: str
    nullable: bool = False
    low: float | None = None
    low_open: bool = False            # True: value > low, else value >= low
    high: float | None = None
    high_open: bool = False           # True: value < high, else value <= high
    choices: tuple[Any, ...] = ()     # kind "str": the only values; other kinds: extra words allowed (auto)
    item: "Rule | None" = None        # kind "list": each element's rule
    length: int | None = None         # kind "list": exact length
    # kind "list" with a length: where a list of one value is accepted too, in words ("for pictures read in one
    # channel"); the layer that knows whether that case holds refuses it otherwise (data/registry.stated_triple)
    one_too: str = ""
    ascending: bool = False           # kind "list": a [min, max] range, each item <= the next
    example: Any = None               # the fix's value where the lowest one means off (trainer.grad_clip=0)

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if value in self.choices and isinstance(value, str):
            return True
        if self.kind == "str" and self.choices:
            return False
        if self.kind == "list":
            if not isinstance(value, list) or (self.length is not None and len(value) != self.length
                                               and not (self.one_too and len(value) == 1)):
                return False
            if self.item is not None and not all(self.item.accepts(v) for v in value):
                return False
            return not self.ascending or all(a <= b for a, b in zip(value, value[1:]))
        if not _has_kind(value, self.kind):
            return False
        return self._in_range(value) if self.kind in ("int", "number") else True

    def _in_range(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """What is allowed, in words: 'an integer >= 1', 'true, false or auto', 'null or a number > 0'."""
        if self.kind == "str" and self.choices:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        elif self.kind == "list":
            items = _plural(self.item.describe()) if self.item is not None else "values"
            text = f"a list of {self.length} {items}" if self.length is not None else f"a list of {items}"
            text += f" (or of 1, {self.one_too})" if self.one_too and self.length is not None else ""
            text += ", the smaller first" if self.ascending else ""
        else:
            base = ["true", "false"] if self.kind == "bool" else [
                {"int": "an integer", "number": "a number", "str": "a text", "scalar": "a single value"}[self.kind]
                + self._range_text()]
            words = base + [str(c) for c in self.choices]
            text = ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
        return f"null or {text}" if self.nullable else text

    def _range_text(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f" in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {_number(self.high)}"
        return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _plural(text: str) -> str:
    return text.replace("an integer", "integers").replace("a number", "numbers").replace("a text", "texts")


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int in Python; never a number setting
        return kind == "scalar"
    if kind == "int":
        return isinstance(value, int)
    if kind == "number":
        return isinstance(value, (int, float))
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, (str, int, float))  # scalar


def _int(low: float | None = None, **kw: Any) -> Rule:
    return Rule("int", low=low, **kw)


def _num(low: float | None = None, **kw: Any) -> Rule:
    return Rule("number", low=low, **kw)


_TRISTATE = Rule("bool", choices=("auto",))              # auto | true | false
_FRACTION = _num(0, high=1, high_open=True)              # [0, 1)
_POSITIVE = _num(0, low_open=True)                       # > 0
_COUNT = _int(1)                                          # >= 1
_OPTIONAL_COUNT = _int(1, nullable=True)
_OPTIONAL_OFF = _int(0, nullable=True)                   # null or 0: off / every core
_IMAGE_SIZE = _int(MIN_INPUT_SIZE, high=MAX_IMAGE_SIZE, nullable=True)
# dataset.mean / std: one value a channel, R, G, B — or the one value of pictures read in one channel (a grey set,
# dataset.channels=1, a 1-channel model's run): registry.stated_triple and steps/input_settings know the channels
_ONE_CHANNEL = "for pictures read in one channel"
_NORMALISATION = Rule("list", item=_num(), length=3, one_too=_ONE_CHANNEL)

# Ranges and choices of the known knobs, and the type of those whose default is null. Knobs with a list
# of choices owned by a lower layer (finetune.mode, prune.method, quantize.format, bench.backends, ...) keep
# that check there, so the list is written once.
RULES: dict[str, Rule] = {
    "seed": _int(0, high=2**32 - 1),
    "device": Rule("str"),
    "trainer.epochs": _COUNT,
    "trainer.batch_size": _COUNT,
    "trainer.eval_batch_size": _OPTIONAL_COUNT,
    "trainer.workers": _int(0, choices=("auto",)),
    "trainer.amp": Rule("str", choices=("auto", "bf16", "fp16", "none")),
    "trainer.channels_last": _TRISTATE,
    "trainer.grad_clip": _num(0, nullable=True, example=1.0),     # 0 or null: off (probe 103: the fix said 0)
    "trainer.label_smoothing": _FRACTION,
    "trainer.mixup": _num(0),
    "trainer.cutmix": _num(0),
    "trainer.log_every": _COUNT,
    "trainer.checkpoint_every": _COUNT,
    "trainer.max_steps_per_epoch": _OPTIONAL_COUNT,  # 0 read as "no cap" (probe 70): null says that
    # Capped: from about 1e38 torch cannot even hold the rate (float32 overflow, a traceback); no network trains
    # at more than a few units.
    "optim.lr": _num(0, low_open=True, high=1e6),
    "optim.weight_decay": _num(0),
    "optim.momentum": _FRACTION,
    "optim.betas": Rule("list", item=_FRACTION, length=2),
    "sched.warmup_epochs": _num(0),
    "sched.min_lr_ratio": _num(0, high=1),
    "sched.step_epochs": _COUNT,
    "sched.gamma": _POSITIVE,
    "dataset.image_size": _IMAGE_SIZE,
    "dataset.native_size": _int(MIN_IMAGE_SIZE, high=MAX_IMAGE_SIZE),
    "dataset.num_classes": _int(2, high=MAX_CLASSES),
    "dataset.train_size": _COUNT,
    "dataset.val_size": _COUNT,
    "dataset.val_fraction": _num(0, low_open=True, high=1, high_open=True),
    "dataset.seed": _int(0, high=2**32 - 1),
    "dataset.mean": _NORMALISATION,
    "dataset.std": Rule("list", item=_POSITIVE, length=3, one_too=_ONE_CHANNEL),
    "dataset.root": Rule("str", nullable=True),
    "dataset.label_fraction": _num(0, low_open=True, high=1),
    "dataset.channels": _int(1, high=3),
    "split": Rule("str", choices=("test", "val", "train", "all")),
    "predict.topk": _COUNT,
    "predict.batch_size": _COUNT,
    "dataset.download": _TRISTATE,
    # probe 99: [1, 0.5] passed item by item and failed in torch's uniform_ (a traceback)
    "dataset.augment.crop_scale": Rule("list", item=_num(0, low_open=True, high=1), length=2, ascending=True),
    "method.views.crop_scale": Rule("list", item=_num(0, low_open=True, high=1), length=2, ascending=True),
    "dataset.augment.randaugment_magnitude": _int(0, high=30),
    "finetune.unfreeze": _COUNT,
    "finetune.backbone_lr_scale": _num(0, choices=("auto",)),
    "finetune.new_head": _TRISTATE,
    "finetune.augment": _TRISTATE,
    "finetune.cache_features": _TRISTATE,
    "finetune.standardize_features": _TRISTATE,
    "prune.ratio": _FRACTION,
    "prune.round_to": _OPTIONAL_OFF,
    "prune.steps": _COUNT,
    "prune.finetune_epochs": _int(0),
    "prune.lr_scale": _POSITIVE,
    "prune.taylor_batches": _COUNT,
    "prune.bench_threads": _OPTIONAL_OFF,
    "prune.bench_batch": _COUNT,
    "prune.bench_seconds": _num(0),
    "prune.ignore": Rule("list", item=Rule("str")),
    "quantize.percentile": _num(0, low_open=True, high=100),
    "quantize.calib_batches": _int(0, example=8),                # 0: fine for dynamic/qat; ptq says why not
    "quantize.calib_batch_size": _COUNT,
    "quantize.reduce_range": _TRISTATE,
    "quantize.max_acc_drop": _num(0),
    "quantize.lr_scale": _POSITIVE,
    "quantize.bench_batch_sizes": Rule("list", item=_COUNT),
    "quantize.bench_threads": _OPTIONAL_OFF,
    "quantize.bench_rounds": _COUNT,
    "quantize.bench_warmup": _int(0),
    "quantize.bench_min_iters": _COUNT,
    "quantize.bench_min_seconds": _num(0),
    "quantize.exclude": Rule("list", item=Rule("str")),
    "distill.temperature": _num(0.01, high=100),  # compress.distill.MIN_TEMPERATURE, MAX_TEMPERATURE (no torch here)
    "distill.alpha": _num(0, high=1),
    "distill.feature_weight": _num(0),
    "distill.feature_stages": Rule("list", item=_int(), length=2),
    "distill.cache_teacher": _TRISTATE,
    "export.opset": _int(18),
    "export.verify_images": _COUNT,
    "export.atol": _num(0),
    "export.rtol": _num(0),
    "bench.batch_sizes": Rule("list", item=_COUNT),
    "bench.threads": _OPTIONAL_COUNT,
    "bench.warmup": _int(0),
    "bench.min_iters": _COUNT,
    "bench.min_seconds": _num(0),
    "bench.image_size": _IMAGE_SIZE,
    "bench.num_classes": _int(2, high=MAX_CLASSES, nullable=True),  # 1 was "set e.g." and then refused (probe 120)
    "bench.peak_gflops": _num(0, low_open=True, nullable=True),
    "inspect.num_classes": _int(2, high=MAX_CLASSES, nullable=True),
    "pipeline.bench.threads": _OPTIONAL_COUNT,
    "pipeline.bench.batch_sizes": Rule("list", item=_COUNT),
    "pipeline.bench.min_seconds": _num(0),
}
# Where one command gives a knob another meaning.
COMMAND_RULES: dict[str, dict[str, Rule]] = {
    "prune": {"trainer.epochs": _int(0)},  # 0 epochs: prune without recovery training
}
# Single values also accepted where a list is the default (the lower layer wraps them).
_SCALAR_FOR_LIST = {"prune.ignore", "quantize.exclude", "quantize.bench_batch_sizes"}


def _package(path: Path) -> str:
    """The key prefix a YAML file's content lands under: its group folder, or '' for _global_."""
    header = next((ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.startswith("# @package")), "")
    if "_global_" in header or path.parent == CONF_DIR:
        return ""
    return ".".join(path.relative_to(CONF_DIR).parent.parts)


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "defaults" and not prefix:
                continue
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


@lru_cache(maxsize=1)
def packaged_defaults() -> dict[str, tuple[Any, ...]]:
    """key → every default value the packaged YAML files give it (one per group choice)."""
    found: dict[str, list[Any]] = {}
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        if path.relative_to(CONF_DIR).parts[0] in _NOT_DERIVED:
            continue
        data = load_yaml(path) or {}
        prefix = _package(path)
        for key, value in _leaves({k: v for k, v in data.items() if k not in ("defaults", "hydra")}, prefix):
            found.setdefault(key, []).append(value)
    return {key: tuple(values) for key, values in found.items()}


def _kind_of(values: list[Any]) -> str | None:
    kinds = {"bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "number"
             if isinstance(v, float) else "list" if isinstance(v, list) else "str" if isinstance(v, str) else "other"
             for v in values}
    if not kinds or "other" in kinds:
        return None
    if kinds <= {"int"}:
        return "int"
    if kinds <= {"int", "number"}:
        return "number"
    if kinds == {"bool"}:
        return "bool"
    if kinds == {"list"}:
        return "list"
    return None if "list" in kinds else "scalar"


def derived_rule(defaults: tuple[Any, ...]) -> Rule | None:
    """The rule a knob's default values imply, or None when they say nothing (all null, dicts)."""
    present = [v for v in defaults if v is not None]
    kind = _kind_of(present)
    if kind is None:
        return None
    if kind == "list":
        items = [item for value in present for item in value]
        item_kind = _kind_of(items)
        item = Rule(item_kind) if item_kind in ("int", "number", "bool") else None
        return Rule("list", nullable=None in defaults, item=item)
    # a word default (auto, imagenet) stays "scalar": it may also be set to true/false or a number
    return Rule(kind, nullable=None in defaults)


def rule_for(key: str, command: str | None = None) -> Rule | None:
    """The rule of one dotted key for `command`: the command's own, the explicit one, else the derived one."""
    explicit = (COMMAND_RULES.get(command or "", {}).get(key) or RULES.get(key))
    if explicit is not None:
        return explicit
    defaults = packaged_defaults()
    if key in defaults:
        return derived_rule(defaults[key])
    if key.startswith(("teacher.", "student.")):  # teacher/student pick from the model zoo
        return rule_for("model." + key.split(".", 1)[1], command)
    return None


def _example(key: str, rule: Rule, *, one: bool = False) -> str:
    """A value that passes `rule`, for the fix: the packaged default when it does, else a plain one. `one`: a list of
    one value where the rule takes one (`Rule.one_too`) — the one value of a grey set's default (dataset.mean=[0.3]
    refused for another reason was offered CIFAR's R, G, B mean)."""
    if rule.example is not None:
        return _show(rule.example)
    if one and rule.one_too:
        grey = next((value[:1] for value in packaged_defaults().get(key, ()) if isinstance(value, list) and value
                     and len(set(value)) == 1 and rule.accepts(value[:1])), None)
        if grey is not None:
            return _show(grey)
    for value in packaged_defaults().get(key, ()):
        if value is not None and rule.accepts(value):
            return _show(value)
    if rule.kind == "list":
        return "[...]"
    if rule.kind == "str" and rule.choices:
        return str(rule.choices[0])
    if rule.kind == "bool":
        return "true"
    if rule.kind in ("int", "number") and rule.low is not None:
        low = rule.low + (1 if rule.kind == "int" and rule.low_open else 0)
        return _show(int(low) if rule.kind == "int" else (low * 2 or 1.0) if rule.low_open else low)
    return "null" if rule.nullable else "..."


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def check_setting(key: str, value: Any, command: str | None = None, *, one_channel: bool = False) -> None:
    """A CnnlabError when `value` does not fit the rule of `key` (keys without a rule are not checked). `one_channel`:
    the config reads its pictures in one channel (dataset.channels=1), so a fix offers one value where the rule
    takes one (dataset.mean=[0.25], not an R, G, B triple), as it does for a list of one value typed."""
    rule = rule_for(key, command)
    if rule is None or value == _MISSING:
        return
    if key in _SCALAR_FOR_LIST and not isinstance(value, list) and rule.item is not None:
        if rule.item.accepts(value):
            return
    if not rule.accepts(value) and isinstance(value, str) and rule.accepts(_unquoted(value)):
        # probe 77: `optim.lr="0.01"` read "optim.lr=0.01 is not allowed: optim.lr takes a number"; probe 99: the
        # same text came from `${oc.env:MYLR}` (an environment variable is text), and "drop the quotes" was no fix
        decoded = shlex.quote(f'{key}="${{oc.decode:${{oc.env:NAME}}}}"')
        raise CnnlabError(f'{key}="{value}" is text (quoted, or read from an environment variable, which is text), '
                          f"and {key} takes {rule.describe()}",
                          fix=f"drop the quotes: {shlex.quote(f'{key}={value}')}; from a variable NAME, decode it: "
                              f"{decoded}")
    if not rule.accepts(value) and rule.kind in ("int", "number") and isinstance(value, float) \
            and not math.isfinite(value):  # probe 83: `inf` "is not allowed: … takes a number"
        raise CnnlabError(f"{key}={_show(value)} is not a finite number: {key} takes {rule.describe()}",
                          fix=f"set e.g. {shlex.quote(f'{key}={_example(key, rule)}')}")
    if not rule.accepts(value) and rule.kind == "str" and isinstance(value, list):
        # probe 130: a folder named "[br]" read as a list by Hydra; quoted for Hydra, it is that text
        text = _show(value)
        said = f"{key}={text} was read as a list (Hydra reads [ ] as one), and {key} takes {rule.describe()}"
        if rule.accepts(text):
            raise CnnlabError(said, fix=f"quote it for Hydra, within single quotes: "
                                        f"{shlex.quote(f'{key}=' + chr(34) + text + chr(34))}")
        if value and all(rule.accepts(item) for item in value):
            # probe 184: split=[test,val] was told to quote it, and the quoted text was refused as no split
            sweep = f"{key}={','.join(str(item) for item in value)}"
            raise CnnlabError(said, fix=f"one value a run: run the command once for each, or all of them as one "
                                        f"sweep — the same command with -m and {sweep}")
        raise CnnlabError(said, fix=f"set e.g. {shlex.quote(f'{key}={_example(key, rule)}')}")
    if not rule.accepts(value):
        # one value where a list goes: the list of it (probe 80: `predict.inputs=a.png` was offered `=[]`, refused)
        listed_one = rule.kind == "list" and not isinstance(value, list) and rule.accepts([value])
        one = one_channel or (isinstance(value, list) and len(value) == 1)  # typed for one channel: so is the fix
        example = _show([value]) if listed_one else _example(key, rule, one=one)
        raise CnnlabError(f"{key}={_show(value)} is not allowed: {key} takes {rule.describe()}",
                          # quoted as bash passes it on: `${paths.data}/cifar10` bare is "bad substitution"
                          fix=f"{'write it as a list' if listed_one else 'set e.g.'} {shlex.quote(f'{key}={example}')}")


def _unquoted(text: str) -> Any:
    """What `text` would be typed without quotes (Hydra's reading of `key=text`), or `text` when it does not parse."""
    from cnnlab.hydra_args import override_parser

    try:
        return override_parser().parse_override(f"key={text}").value()
    except Exception:  # noqa: BLE001 - Hydra's grammar refuses it: it is no unquoted value either
        return text


# Sections whose keys cnnlab does not all read itself: optim files carry the PyTorch optimizer's keyword arguments
# (sched is cnnlab's own LambdaLR, engine/optim.build_scheduler: a key it does not know is ignored, probe 55),
# a search space names its own parameters, a pipeline plan its own stages (steps/plan.py checks them), `paths`
# holds folders a user's config file interpolates, `hydra` is Hydra's. Every other key is read by cnnlab, so one
# that no packaged file or rule knows is a typo or a key that would be ignored without a word: `imag_size: 16` in
# myconf/dataset/x.yaml (the run would train at another size), or `+export.foo=1` / `+pipeline.bench.foo=1`.
_OPEN_SECTIONS = ("optim", "space", "pipeline.plan", "paths", "hydra")


def may_add(key: str) -> bool:
    """Whether `+KEY=VALUE` may add `key`: only inside a section whose keys cnnlab does not all read (_OPEN_SECTIONS);
    anywhere else a new key would be ignored."""
    return within(key, _OPEN_SECTIONS)


def is_known(key: str) -> bool:
    """Whether some packaged config file or rule has `key` (teacher.X and student.X as model.X: model entries)."""
    group, _, rest = key.partition(".")
    as_model = f"model.{rest}" if group in ("teacher", "student") else key
    return bool({key, as_model} & _known_keys())


@lru_cache(maxsize=1)
def _known_keys() -> frozenset[str]:
    """Every key a packaged file or rule has: built once, not for each of a config's leaves (check_settings)."""
    return frozenset(packaged_defaults()) | frozenset(RULES)


# Settings that moved, old key → new key: "did you mean" names the new one (spelling would not find it).
MOVED = {"method.augment_on": "trainer.augment_on"}  # every training command reads it now, not pretrain alone


def closest_setting(key: str) -> str | None:
    """The known setting nearest to `key` in spelling (its own section first), or where it moved (MOVED), for
    "did you mean"."""
    import difflib

    if key in MOVED:
        return MOVED[key]
    if "." not in key:  # a section or group misspelled (`modle=lenet5`, `datset=mnist`: "dataset.std" was offered)
        shared, own = _sections()
        close = difflib.get_close_matches(key, sorted(shared.union(*own.values()) - {"hydra"}), n=1)
        return close[0] if close else None
    group = key.split(".", 1)[0]
    known = [k for k in (*packaged_defaults(), *RULES) if k.split(".", 1)[0] == group] or list(packaged_defaults())
    # close as a whole key, and in its last word: the shared `search.` made `search.sampler` "close" to `search.eta`
    # (probe 119), `dataset.augment.` `mixup` to `hflip`; a short word keeps its one-letter typo (`optim.lt`)
    leaf = key.rsplit(".", 1)[-1]
    cutoff = 0.5 if len(leaf) <= 3 else 0.7  # `pruner` is 0.62 like `runtime`
    return next((match for match in difflib.get_close_matches(key, known, n=5)
                 if difflib.SequenceMatcher(None, leaf, match.rsplit(".", 1)[-1]).ratio() >= cutoff), None)


@lru_cache(maxsize=1)
def _sections() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """(the top-level sections every command has — config.yaml's keys and groups —, command → the sections its
    conf/command file adds: its own, such as `bench:`, and the groups its defaults pull in, such as /method)."""
    def tops(path: Path) -> set[str]:
        data = load_yaml(path) or {}
        groups = {str(next(iter(entry))).split("@")[0].removeprefix("override ").strip("/").split("/")[0]
                  for entry in data.get("defaults") or [] if isinstance(entry, dict)}
        return {str(k) for k in data if k not in ("defaults", "hydra")} | groups

    shared = frozenset(tops(CONF_DIR / "config.yaml") | {"hydra"})
    own = {path.stem: frozenset(tops(path) - shared) for path in sorted((CONF_DIR / "command").glob("*.yaml"))}
    return shared, own


def read_by_others(key: str, command: str) -> tuple[str, ...]:
    """The commands whose own section holds `key` when `command` has no such section (`bench.batch_sizes` typed for
    `cnnlab pretrain`: ("bench",)); () when `command` reads it or it is a section every command has."""
    shared, own = _sections()
    top = key.split(".", 1)[0]
    if top in shared or top in own.get(command, ()):
        return ()
    return tuple(name for name, sections in own.items() if top in sections)


_OPTIMIZER_ARGUMENT = re.compile(r"optim\.(?!lr$|_target_$)\w+")
_PLAN_STAGE = re.compile(r"pipeline\.plan\.[^.=]+")  # a whole stage of a pipeline's plan: leaves it out, said


def check_nothing_deleted(overrides: list[str], command: str) -> None:
    """`~KEY` (Hydra's delete) is refused for every setting cnnlab reads itself: a deleted one fell back to a
    built-in value without a word (`~optim.lr` trained at lr 0, exit 0). Allowed: `~optim.KEY` for an argument of
    the optimizer class (not lr), which then takes the class's own default — how another torch.optim class drops
    SGD's nesterov (engine/optim.py); `~pipeline.plan.STAGE`, which leaves a stage out of a pipeline's plan (probe
    197: the only way to, and `--cfg job` showed it gone). A sweep writes a delete as `~KEY=null`."""
    deleted = next((name for o in overrides if o.startswith("~")
                    and not _OPTIMIZER_ARGUMENT.fullmatch((name := o.split("=", 1)[0])[1:])
                    and not _PLAN_STAGE.fullmatch(name[1:])), None)
    if deleted is not None:
        key = deleted[1:]
        raise CnnlabError(f"{deleted} deletes a setting of `cnnlab {command}`; a deleted setting would fall back "
                          "silently to a built-in value",
                          fix=f"drop {deleted} (to change the setting, give {key}=VALUE; `cnnlab {command} --help` "
                              "lists the settings)")


def check_known(key: str, command: str = "CMD", typed: Sequence[str] = ()) -> None:
    """A CnnlabError for a key outside _OPEN_SECTIONS that cnnlab does not know, with the closest known key. `typed`:
    the command line's overrides (a key typed there is said to be, not guessed at)."""
    group, _, rest = key.partition(".")
    if may_add(key) or is_known(key):
        return
    if group == "experiment":  # a user's experiment file without the package line: Hydra nests it, nothing reads it
        raise CnnlabError(f"{key}: an experiment file's settings land under `experiment.`, where nothing reads them",
                          fix="make the file's first line `# @package _global_` (as in cnnlab/conf/experiment/*.yaml), "
                              f"so that they set the whole config (`{rest}`)")
    close = closest_setting(key)
    close = f"did you mean {close}? " if close and close != key else ""  # never the key itself
    if any(o.lstrip("+~").partition("=")[0] == key for o in typed):  # probe 147: a resume's plain typo read "typed
        # with +" (cnnlab adds the `++` itself: hydra_args.recorded_groups)
        raise CnnlabError(f"{key} is not a setting cnnlab reads, so it would be ignored",
                          fix=f"{close}rename or remove it (`cnnlab {command} --cfg job` lists every setting)")
    raise CnnlabError(f"{key} is not a setting cnnlab reads, so it would be ignored (typed with +{key}=, or set in "
                      "a --config-dir file or an experiment?)",
                      fix=f"{close}rename or remove it; `cnnlab {command} --cfg job` shows the composed config")


# Group folders whose options differ in keys: a key spelled right may belong to another choice than the one a run
# uses (`sched=cosine sched.gamma=0.5`: gamma is step's), and the message says which (errors_view). teacher and
# student options are model entries (conf/teacher/*.yaml pull in /model), so their keys are read from model/.
_CHOICE_GROUPS = ("dataset", "method", "model", "optim", "sched")
_AS_MODEL = ("teacher", "student")
# Of those, the groups whose choice names the code that reads them (engine/optim.build_scheduler, pipelines/pretrain
# and the model registry dispatch on `name`) and that code reads only its own file's keys: a key of another choice
# added there is ignored without a word, so it is refused (check_chosen). The dataset's builder reads its own keys,
# and common code reads a few of every choice (_READ_FOR_EVERY_DATASET): `+dataset.val_fraction=0.2` on Flowers,
# which keeps its official val split, ran and recorded 0.2 (probe 66). Not optim (an open section: its keys go to
# the PyTorch optimizer as they are).
_CHOSEN_BY_NAME = ("sched", "method", "model", "dataset")
_READ_FOR_EVERY_DATASET = frozenset({"channels", "seed"})  # the transforms; label_fraction's draw
# Keys of one dataset that `cnnlab inspect` and `bench model=NAME` read for any: they size the head by
# dataset.num_classes (synthetic's: the classes it draws), so "ignored" is not true there; every other set's count is
# its own (steps/zoo_model: MNIST 10, imagefolder's folders), and those commands' own knob sets another head size.
_OWN_COUNT_INSTEAD = {"num_classes": "`cnnlab inspect` takes inspect.num_classes=N, `cnnlab bench model=NAME` "
                                      "bench.num_classes=N"}


@lru_cache(maxsize=1)
def _choices() -> dict[str, tuple[tuple[str, str, frozenset[str]], ...]]:
    """group → (option, its `name`, its file's keys: top-level and dotted nested ones) per packaged file of the
    group."""
    found: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
    for group in _CHOICE_GROUPS:
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            data = load_yaml(path) or {}
            # `views.crop_scale` (_leaves passes over the defaults list), and `views` itself
            keys = frozenset(key for key, _ in _leaves(data, "")) | frozenset(str(k) for k in data if k != "defaults")
            found.setdefault(group, []).append((path.stem, str(data.get("name", path.stem)), keys))
    return {group: tuple(files) for group, files in found.items()}


def _group_files(group: str) -> tuple[tuple[str, str, frozenset[str]], ...]:
    return _choices().get("model" if group in _AS_MODEL else group, ())


def choices_with(key: str) -> tuple[str, ...]:
    """The `GROUP=OPTION` choices whose packaged file has `key` when some options of its group lack it
    (`sched.gamma` → ("sched=step",), `student.arch` → ("student=searched",)); () for a key every option has, a key
    none has, or a group without packaged options."""
    group, _, rest = key.partition(".")
    files = _group_files(group)
    # the whole dotted path: `method.views.crop_scal` (a typo) is in no file though `views` is (probe 123)
    having = [option for option, _, keys in files if rest in keys]
    default = default_choices().get("model" if group in _AS_MODEL else group)
    having.sort(key=lambda option: option != default)  # the packaged default first: the fix offers the first
    return tuple(f"{group}={option}" for option in having) if having and len(having) < len(files) else ()


def check_named(config: Mapping[str, Any]) -> None:
    """A CnnlabError for a section of a group chosen by name (_CHOSEN_BY_NAME; teacher, student) without a `name`: a
    --config-dir file sched/mine.yaml of `step_epochs: 1, gamma: 0.5` and no `name: step` trained the cosine
    schedule, its own keys unread, while the saved config showed them (probe 99)."""
    for group in (*_CHOSEN_BY_NAME, *_AS_MODEL):
        node = config.get(group)
        if isinstance(node, Mapping) and node and node.get("name") in (None, ""):
            names = sorted({name for _, name, _ in _group_files(group)})
            raise CnnlabError(f"the {group} settings have no name, so nothing says which {group} code reads them (a "
                              f"--config-dir file {group}/<yours>.yaml without `name:`?)",
                              fix=f"add `name: {names[0] if names else '...'}` to that file (the {group} it is: "
                                  f"{', '.join(names)})")


def check_chosen(key: str, config: Mapping[str, Any]) -> None:
    """A CnnlabError for a key of another choice of its group than the one `config` chose (a packaged one, by name),
    in a group whose chosen code reads only its own keys (_CHOSEN_BY_NAME): nothing reads it. A choice of the user's
    own (--config-dir) is judged by its `name` (the code that reads it); one with a name cnnlab does not ship is not."""
    group, _, rest = key.partition(".")
    if ("model" if group in _AS_MODEL else group) not in _CHOSEN_BY_NAME:
        return
    if group == "dataset" and rest.split(".", 1)[0] in _READ_FOR_EVERY_DATASET:
        return
    node = config.get(group)
    chosen = node.get("name") if isinstance(node, Mapping) else None
    same = [keys for _, name, keys in _group_files(group) if name == str(chosen)]
    having = choices_with(key)
    if not having or not same or any(rest.split(".", 1)[0] in keys for keys in same):
        return
    # named by `name`, which decides what reads it: a user's myconf/sched/mine.yaml with name: cosine is cosine's code
    instead = _OWN_COUNT_INSTEAD.get(rest) if group == "dataset" else None
    why = ", whose class count is its own" if instead else ", so it would be ignored"
    raise CnnlabError(f"{key} is a setting of {listed(having)}, not of the {group} this run uses ({group}.name="
                      f"{chosen}){why} (typed with +, or set in a --config-dir file or an experiment?)",
                      fix=f"choose {having[0]}, or remove {key}"
                          + (f" (for another head size, {instead})" if instead else ""))


def check_added_keys(overrides: Sequence[str], command: str, *, unknown_too: bool = False) -> None:
    """A CnnlabError for a `+KEY=VALUE` typed for `command` whose section belongs to other commands
    (`cnnlab pretrain +bench.batch_sizes=[1,8]`): the key is known, so check_known passes it, yet nothing in this
    command reads it. (A --config-dir file may set several commands' sections for all of them: not refused.) With
    `unknown_too` (a sweep without --config-dir, whose files may hold keys of their own), a key nothing reads
    (`+foo=1,2`) is refused here too, before each job fails on it."""
    for override in overrides:
        key = override.lstrip("+").split("=", 1)[0]
        if unknown_too and override.startswith("+") and not key.startswith("hydra") and "/" not in key \
                and not (CONF_DIR / key).is_dir():  # a group added (`+experiment=NAME`) is Hydra's to check
            check_known(key, command)
        others = read_by_others(key, command) if override.startswith("+") else ()
        if others:
            nested = f"{command}.{key}"
            instead = f" (for this command's own: {nested}=...)" if is_known(nested) else ""
            raise CnnlabError(f"{override}: {key.split('.', 1)[0]}.* is read by `cnnlab {others[0]}`, not by "
                              f"`cnnlab {command}`, so it would be ignored",
                              fix=f"drop {override}{instead}")


def check_sections_read(overrides: Sequence[str], command: str, plan_text: str = "") -> None:
    """A CnnlabError for a typed override in a section `command` never reads (CommandInfo.unread): `cnnlab bench
    optim.lr=0.1` or `cnnlab pipeline trainer.epochs=1` ran without it. `plan_text`: a pipeline's plan as written
    (unresolved), where an interpolation such as `${trainer.epochs}` does read the section."""
    info = COMMANDS[command]
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        top = key.split(".", 1)[0]
        # a plan reads what it interpolates: `${trainer.epochs}` that key, `${trainer}` the section (probe 58)
        interpolated = "${" + key + "}" in plan_text or "${" + top + "}" in plan_text
        if top in info.unread and key not in info.reads_only and not interpolated:
            stages = "; to change a stage, set it in that stage's overrides (pipeline.plan.<stage>.overrides of " \
                     "the experiment file: docs/pipeline.md)" if command == "pipeline" else ""
            read = [k for k in info.reads_only if k.startswith(f"{top}.")]
            what = f"{key} would be ignored (of {top}.* it reads only {', '.join(read)})" if read else \
                f"{top}.* would be ignored"
            raise CnnlabError(f"{override}: `cnnlab {command}` {info.unread_reason}, so {what}",
                              fix=f"drop {override}{stages}")


def check_experiment_is_read(experiment: str | None, sections: Collection[str], command: str) -> None:
    """A CnnlabError for `cnnlab CMD experiment=X` where X is a pipeline's recipe (it sets `pipeline:`) and CMD is not
    `pipeline`: the plan was composed and ignored, exit 0, where typing one of its keys is refused (probe 130:
    `cnnlab pretrain experiment=quickstart` trained the default pretrain). `sections`: the composed config's."""
    if command != "pipeline" and "pipeline" in sections:  # `experiment=[quickstart]` names no choice (probe 133)
        experiment = experiment or "…"
        raise CnnlabError(f"experiment={experiment} is a `cnnlab pipeline` recipe (it sets pipeline.*), which "
                          f"`cnnlab {command}` does not read", fix=f"run `cnnlab pipeline experiment={experiment}`, "
                                                                   "or drop experiment=")


def plan_stages(command: str, typed: Sequence[str]) -> tuple[str, ...]:
    """The stage names of the experiment a command line picks (`experiment=NAME`, else the command's default), read
    from its file in a typed --config-dir or the package; () where there is none to read."""
    picked = [a.partition("=")[2] for a in typed if a.lstrip("+").startswith("experiment=")]
    defaults = [o.partition("=")[2] for o in COMMANDS[command].default_overrides if o.startswith("experiment=")] \
        if command in COMMANDS else []
    name = (picked or defaults or [""])[-1]
    folders = [Path(b) for a, b in zip(typed, typed[1:]) if a in ("--config-dir", "-cd")] + [CONF_DIR]
    for folder in folders:
        path = folder / "experiment" / f"{name}.yaml"
        if name and path.is_file():
            try:
                plan = ((load_yaml(path) or {}).get("pipeline") or {}).get("plan") or {}
            except Exception:  # a file that does not read: composing says why
                return ()
            return tuple(str(stage) for stage in plan) if isinstance(plan, Mapping) else ()
    return ()


def setting_facts(command: str, typed: Sequence[str] = (), stage: str | None = None) -> Any:
    """What this layer knows of a key, for the fixes errors_view words (an errors_view.SettingFacts; that leaf may not
    import settings). `typed`: the command line's arguments after the command (a fix repeats them); `stage`: the
    pipeline stage overrides they are instead (a fix edits those)."""
    from cnnlab.errors_view import SettingFacts  # lazy: imports Hydra's and OmegaConf's error types

    def kind(key: str) -> str | None:
        if read_by_others(key, command):
            return None
        rule = rule_for(key, command)
        return rule.kind if rule is not None else "list" if key in _NULL_LISTS else None

    return SettingFacts(kind=kind, may_add=may_add, known=is_known, closest=closest_setting,
                        plan_stages=lambda: plan_stages(command, typed),
                        read_by_others=lambda key: read_by_others(key, command), choices_with=choices_with,
                        typed=tuple(typed), stage=stage,
                        resumes=any(arg.startswith("resume=") and not resumes_nothing(arg.partition("=")[2])
                                    for arg in typed))


def check_settings(config: Mapping[str, Any], command: str | None = None, *, recorded: Collection[str] = (),
                   typed: Sequence[str] = ()) -> None:
    """Check every leaf of a composed, resolved config (plain dicts and lists, e.g. from
    OmegaConf.to_container(cfg, resolve=True)). Raises the first CnnlabError, keys in config order.
    `recorded`: the groups whose node stands for one a run recorded (hydra_args.recorded_groups: a source's data, a
    resumed run's sections), so their composed choice is not the run's and their keys are not judged by it (nor the
    optimizer's: steps/resume checks the resumed run's)."""
    dataset = config.get("dataset")
    one_channel = isinstance(dataset, Mapping) and dataset.get("channels") == 1  # a fix offers one mean, one std
    for key, value in _leaves(config, ""):
        check_known(key, command or "CMD", typed)
        if key.split(".", 1)[0] not in recorded:
            check_chosen(key, config)
        if not within(key, ("space.params", "space.fixed")):  # a space's values: steps/search_trials checks them
            check_setting(key, value, command, one_channel=one_channel)
    if isinstance(config.get("optim"), Mapping) and "optim" not in recorded:  # the keys against the class: before
        # the data is read, not after
        from cnnlab.engine.optim import check_optimizer_config  # torch: imported only where a config is composed

        check_optimizer_config(config["optim"], typed)


# Settings whose default is null that take a list (a lone name too, so no list rule): `bench.backends=a,b` meant
# one, and the fix puts it in brackets (session 60: it was told to quote "a,b" as one value).
_NULL_LISTS = ("bench.backends", "quantize.deploy_runtimes", "pipeline.stages")


# Where each command takes a finished run as its starting point (the fix for resume= given the wrong run, and for
# source= given to a command that does not read it: cnnlab.app).
START_FROM_RUN = {"finetune": "model.weights", "distill": "teacher.weights", "prune": "source",
                  "quantize": "source", "export": "source", "bench": "source"}


# Settings that say where and how visibly a run runs, not what it trains: a resume that changes only these continues
# the same course (cnnlab report groups it with the run it continued; distill's baseline stays like-for-like).
HOW_IT_RUNS = ("device", "trainer.workers", "trainer.log_every", "trainer.checkpoint_every", "logger", "paths")


def within(key: str, sections: Iterable[str]) -> bool:
    """Whether dotted `key` is one of `sections` or a setting inside one (trainer.workers within ("trainer",))."""
    return any(key == name or key.startswith(f"{name}.") for name in sections)


def changes_the_course(override: str) -> bool:
    """Whether a `key=value` override given on resume= changes what the run trains (trainer.epochs=6, optim.lr=...)
    rather than where or how visibly it runs (HOW_IT_RUNS: device=cpu, trainer.workers=0, logger=...)."""
    return not within(override.partition("=")[0].lstrip("+~"), HOW_IT_RUNS)


def resumes_latest(spec: Any, command: str) -> bool:
    """resume=true / yes / on / 1 / latest / latest:COMMAND: the newest unfinished run of `command` (a run folder of
    that name, e.g. a sweep job's `1`, wins where one exists: steps/resume.py resume_target)."""
    return spec is True or str(spec).strip().lower() in ("true", "yes", "on", "1", "latest", f"latest:{command}")


def resumed_by(command: str, args: Sequence[str]) -> str | None:
    """What a `resume=` among `args` (a command line's words) continues — the run folder it names, or "the latest
    run" — or None when it resumes nothing (resume=false, or none given)."""
    spec = resume_spec(args)
    if spec is None or resumes_nothing(spec):
        return None
    return "the latest run" if resumes_latest(spec, command) else spec


def resumes_nothing(spec: Any) -> bool:
    """resume=false / null / none / no / off / 0: a fresh run, exactly as without resume=."""
    return spec is None or spec is False or str(spec).strip().lower() in NO_RESUME


def check_resume(spec: Any, command: str, outputs: Path | None = None) -> None:
    """`resume=` must name a run of the same command: resume continues that run with its own config. A run of
    another command (a folder, or `latest:CMD`: the newest CMD run in `outputs`) is refused with what does work:
    continuing it with its own command when it was interrupted (it holds a checkpoint), else the key that starts
    from its model (model.weights=, source=)."""
    from cnnlab.runs import RUN_FILE, iter_runs, load_run  # runs reads files; keep `settings` importable on its own

    text = "" if spec is None or isinstance(spec, bool) else str(spec)
    if isinstance(spec, str) and not spec.strip():  # probe 144: `resume=$RUN`, RUN unset — a fresh run, unsaid
        raise CnnlabError("resume= is empty (a shell variable that is not set?), so it names no run to continue",
                          fix="give the run folder (resume=outputs/<command>/<date>/<time>), resume=true for the "
                              "latest interrupted run, or drop resume= for a new run")
    if text.lower().startswith("latest:"):
        other = text.split(":", 1)[1]
        if other == command:
            _refuse_unless_resumable(spec, command)  # the same as resume=true
            return
        newest = [r for r in iter_runs(outputs) if r.command == other] if outputs is not None else []
        if not newest:
            _refuse_unless_resumable(spec, command)  # its fix would name a resume=true that cannot work
            raise CnnlabError(f"resume={text}: `cnnlab {command} resume=` continues an interrupted {command} run, "
                              f"and there is no {other} run here either",
                              fix=f"pass resume=true for the latest interrupted `cnnlab {command}` run, or start a new "
                                  "run without resume=")
        _refuse_another_commands_run(newest[-1], text, command)
    folder = Path(text).expanduser()
    if text and (folder / RUN_FILE).is_file():
        run = load_run(folder)
        if run.command != command:  # its own fix (start from that run's model) beats "does not resume"
            _refuse_another_commands_run(run, text, command)
    # otherwise true, or not a run folder: a resumable command's resolving of resume= says so with its own message
    _refuse_unless_resumable(spec, command)


def _refuse_unless_resumable(spec: Any, command: str) -> None:
    """CnnlabError for `resume=` (anything but unset or false) given to a command that keeps no checkpoint to
    continue from (prune, quantize, export, ...): it used to be ignored, so `resume=` silently started over."""
    from cnnlab.commands import COMMANDS  # the table of commands, no torch

    info = COMMANDS.get(command)
    if resumes_nothing(spec) or info is None or info.resumable:
        return
    given = str(spec).lower() if isinstance(spec, bool) else spec
    again = f"run `cnnlab {command}` again without resume="
    if info.rerun_note:  # the pipeline: running it again is what continues it (its stages resume themselves)
        raise CnnlabError(f"resume={given}: `cnnlab {command}` takes no resume= — running it again is what "
                          "continues it", fix=f"{again}: {info.rerun_note}")
    raise CnnlabError(f"resume={given}: `cnnlab {command}` does not resume — it keeps no checkpoint of an "
                      "unfinished run to continue from", fix=f"{again} (it starts over)")


def _refuse_another_commands_run(run: Any, spec: str, command: str) -> None:
    """CnnlabError for `resume=` given `run` (a runs.RunInfo) of another command, with the fix that works for it."""
    from cnnlab.commands import COMMANDS
    from cnnlab.runs import RESUMABLE_STATUSES

    folder = run.path
    if run.status in RESUMABLE_STATUSES and run.artifact("checkpoint") is not None:
        instead = f"to continue that run, use `cnnlab {run.command} {path_argument('resume', [folder])}`"
    elif run.artifact("model") is None:
        instead = f"pick a `cnnlab {command}` run (`cnnlab list runs` shows each run's command and status)"
    elif start := START_FROM_RUN.get(command):
        instead = f"to start from its model, run `cnnlab {command} {path_argument(start, [folder])}` (without resume=)"
    else:
        instead = (f"{command} starts from random weights; to train further from that run use "
                   f"`cnnlab finetune {path_argument('model.weights', [folder])}`")
    named = "" if spec == str(folder) else f" ({folder})"
    takes = (f"`cnnlab {command} resume=` continues an interrupted {command} run" if COMMANDS[command].resumable
             else f"`cnnlab {command}` does not resume")
    raise CnnlabError(f"resume={spec}{named} is a `cnnlab {run.command}` run ({run.status}), but {takes}", fix=instead)


def check_config(config: Mapping[str, Any], command: str, *, recorded: Collection[str] = (),
                 typed: Sequence[str] = ()) -> None:
    """Everything `execute` checks before a command runs: every setting's type and range, and resume=. `typed`: the
    overrides as the user typed them (a fix drops what they added); `recorded`: as check_settings takes it."""
    check_settings(config, command, recorded=recorded, typed=typed)
    check_named(config)
    outputs = (config.get("paths") or {}).get("outputs")
    check_resume(config.get("resume"), command, Path(str(outputs)) if outputs else None)
