"""How an exception looks to the user: one line for mistakes they can fix, a traceback for bugs."""

from __future__ import annotations

import difflib

import re
import shlex
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import yaml
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

from cnnlab.commands import COMMANDS
from cnnlab.errors import CnnlabError
from cnnlab.fileio import (disk_full_behind, disk_full_error, link_loop, link_loop_error, name_too_long,
                           name_too_long_error)
from cnnlab.hydra_args import HYDRA_VALUE_FLAGS
from cnnlab.wording import listed


@dataclass(frozen=True)
class SettingFacts:
    """What the settings layer knows about a dotted key, for the words of a fix (this leaf module does not import
    it: cli.py fills this in). `typed`: the user's arguments after the command, so a fix can repeat the line."""

    kind: Callable[[str], str | None] = lambda key: None            # settings.Rule.kind: list, int, number, bool, str
    may_add: Callable[[str], bool] = lambda key: True                # `+KEY=` adds what cnnlab then reads
    known: Callable[[str], bool] = lambda key: False
    closest: Callable[[str], str | None] = lambda key: None
    read_by_others: Callable[[str], tuple[str, ...]] = lambda key: ()  # commands whose section it is, not this one's
    choices_with: Callable[[str], tuple[str, ...]] = lambda key: ()   # `sched.gamma` → ("sched=step",)
    plan_stages: Callable[[], tuple[str, ...]] = lambda: ()  # the stages of the experiment a pipeline runs
    typed: tuple[str, ...] = ()
    resumes: bool = False  # the line continues a run (resume= not settings.resumes_nothing): its config is saved
    # a pipeline stage's overrides ("pipeline.plan.tune.overrides"): a fix edits them, not a command line (whose
    # `@stage` references only the pipeline resolves)
    stage: str | None = None


class UserAbort(BaseException):
    """Carries a CnnlabError past Hydra's job runner (which would otherwise print its own banner)."""

    def __init__(self, error: CnnlabError) -> None:
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


def interpolation_error(exc: InterpolationResolutionError, typed: Sequence[str],
                        choices: dict[str, str]) -> CnnlabError:
    """One line for a `${...}` that does not resolve — a typed override's (`trainer.epochs=${nosuch}`) or a config
    file's (`val_fraction: ${nosuch.key}` in a --config-dir dataset): the setting, where it came from, and the fix.
    Hydra printed "Error executing job …" and OmegaConf's bare "Interpolation key 'nosuch' not found" (probe 130),
    leaving a half-written run folder. A cnnlab resolver's own refusal is returned as it is. `typed`: the task
    overrides as typed; `choices`: the config groups chosen (dataset → missing)."""
    ours = next((e for e in _causes(exc) if isinstance(e, CnnlabError)), None)
    if ours is not None:
        return ours
    too_long = name_too_long(exc)  # the run-folder resolver met the system's limit: no interpolation to fix (probe 235)
    if too_long is not None:
        return name_too_long_error(too_long)
    why = _first_line(str(exc)).replace("KeyError raised while resolving interpolation: ", "").strip('"')
    key = str(getattr(exc, "full_key", "") or "")
    if not key or key.startswith("hydra."):  # met while Hydra's own record of the typed overrides was read
        where = " ".join(t for t in typed if "${" in t) or "an override"
    else:
        group = key.partition(".")[0]
        override = next((t for t in typed if t.partition("=")[0].lstrip("+~") == key), None)
        sources = [f"{g}={choices[g]}" for g in (group, "experiment") if choices.get(g)]  # an experiment sets any key
        where = override or (f"{key} (from {' or '.join(sources)})" if sources else key)
    return CnnlabError(f"{where}: its interpolation does not resolve ({why})",
                       fix="give a value, or interpolate a setting that exists (e.g. ${paths.data}/x); an environment "
                           "variable that may be unset with a default: ${oc.env:NAME,default}")


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it wraps, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        wrapper = isinstance(current, (HydraException, OmegaConfBaseException))
        # OmegaConf re-raises a resolver's error `from None`: only its context holds it. Other exceptions'
        # context is not followed: a bug raised while handling a CnnlabError stays a bug.
        current = current.__cause__ or (current.__context__ if wrapper else None)
    return chain


def yaml_message(exc: yaml.YAMLError) -> str:
    """One line for a YAML file that does not parse: the file, line and column, and the problem."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or _first_line(str(exc))
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "a config file"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:  # where the broken construct began
        problem += f" ({context} that starts at line {context_mark.line + 1}, column {context_mark.column + 1})"
    return (f"invalid YAML in {where}: {problem} — correct the file (YAML: `key: value`, lists in [a, b]), "
            f"or take it out of the --config-dir")


def _added_existing(text: str) -> tuple[str, str] | None:
    """(KEY, 'KEY=VALUE') when Hydra refused a `+KEY=VALUE` override because KEY is already in the config: "Could
    not append to config. An item is already at 'KEY'" (a setting), "Multiple values for GROUP" or "GROUP appears
    more than once in the final defaults list" (a config group chosen twice). The last two also come from a config
    file that lists a group twice: they are matched only when the command line holds `+GROUP=...`."""
    if text.startswith("Could not append to config. An item is already at '"):
        key = text.split("'")[1]
        line = next((ln for ln in text.splitlines() if "remove + prefix: '" in ln), "")
        plain = line.split("remove + prefix: '", 1)[1].rstrip().removesuffix("'") if line else f"{key}=VALUE"
        return key, plain
    group = None
    if text.startswith("Multiple values for "):
        group = text.removeprefix("Multiple values for ").split(". ")[0].rstrip(".")
    elif text.rstrip().endswith(" appears more than once in the final defaults list"):
        group = text.rstrip().removesuffix(" appears more than once in the final defaults list")
    if not group:
        return None
    typed = next((arg for arg in sys.argv[1:] if arg.startswith(f"+{group}=")), None)  # not `++GROUP=`
    return (group, typed[1:]) if typed is not None else None


def _sweep_without_multirun(text: str, command: str, facts: SettingFacts) -> str | None:
    """Hydra's refusal of sweep syntax in a single run (`dataset.root=/data/a,b`: "Ambiguous value for argument";
    `seed=range(3)`: "Sweep parameters ... requires --multirun") as one line whose fixes work as typed in a shell —
    Hydra's own (`key=\\'value1,value2\\'`) does not. A list setting gets brackets as its fix; the `-m` fix repeats
    the whole command line (`facts.typed`). None for any other error."""
    first = _first_line(text)
    for head, tail in (("Ambiguous value for argument '", "'"), ("Sweep parameters '", "' requires --multirun")):
        if first.startswith(head) and first.endswith(tail):
            override = first[len(head):len(first) - len(tail)]
            break
    else:
        return None
    # as the user typed it: cli.py adds `++` to a source's dataset.KEY= and quotes a plain item Hydra rejects (`~/a`)
    bare = override.removeprefix("++") if override.startswith("++dataset.") else override
    key, _, value = bare.partition("=")
    if facts.read_by_others(key.lstrip("+")):  # neither a sweep nor a list of it would be read here
        return _unknown_setting(key.lstrip("+"), command, facts)
    if not key.startswith(("+", "hydra.")) and not facts.known(key):  # probe 230: `images=a.png,b.png` was told to
        return _unknown_setting(key, command, facts)                  # quote it, then "unknown setting 'images'"
    value = ",".join(item[1:-1] if len(item) > 1 and item[0] == item[-1] == "'" else item for item in value.split(","))
    typed = f"{key}={value}"
    # the line as typed, with -m; each word as the shell must pass it on (`seed=range(2)` bare is a syntax error)
    others = [arg for arg in facts.typed if arg.lstrip("+").split("=", 1)[0] != key.lstrip("+")]
    sweep = f"to run one job per value, add -m: {shlex.join(['cnnlab', command, '-m', *others, typed])}"
    if "interval(" in value:
        return _interval_hint(typed, command, others)
    if "," not in value:
        return f"{typed}: a sweep runs several jobs — {sweep}"
    kind = facts.kind(key.lstrip("+"))
    if kind == "list":  # `bench.batch_sizes=1,8` meant a list; no list holds a path
        return (f"{typed}: a comma separates the values of a sweep — for a list, put it in brackets: "
                f"{shlex.quote(f'{key}=[{value}]')}; {sweep}")
    if kind in ("int", "number", "bool"):  # no such value holds a comma: only the sweep is meant
        return f"{typed}: a comma separates the values of a sweep — {sweep}"
    quoted = shlex.quote(f'{key}="{value}"')
    paired = (f"for one paired session of those models: {shlex.quote(f'{key}=[{value}]')}; "
              if command == "bench" and key.lstrip("+") == "source" else "")  # probe 109: the list was not named
    return (f"{typed}: a comma separates the values of a sweep — {paired}for one value that holds a comma (a path), "
            f"quote it for Hydra inside the shell's quotes: {quoted}; {sweep}")


def _interval_hint(typed: str, command: str, others: Sequence[str]) -> str:
    """`KEY=interval(a,b)`, with or without -m: Hydra's basic sweeper refuses it ("does not support sweep type"), so
    the `-m` its first refusal pointed to failed too (probe 99)."""
    key = typed.split("=", 1)[0]
    grid = shlex.join(["cnnlab", command, "-m", *others, f"{key}=VALUE1,VALUE2,VALUE3"])
    return (f"{typed}: interval() is a range to sample from, for a sweeper that samples — Hydra's basic sweeper takes "
            "lists, choice(), range() and glob(); cnnlab's own search samples ranges (`cnnlab search space=hparams`, "
            f"docs/search.md); for a grid of values: {grid}")


def _mapping_merged(key: str, detail: str, facts: SettingFacts) -> str | None:
    """`KEY={…}` where KEY holds a mapping already: Hydra merges the two, and a field the old one lacks ("Key 'low' is
    not in struct") read as "unknown setting 'KEY'" — a key that exists (probe 185: space.params.width={type:float,
    low:…}); `+KEY=` merged and kept the old `choices`. The fix replaces the entry: delete it, then add it. None
    for any other error."""
    inner = detail.split("'")[1] if detail.startswith("Key '") and detail.count("'") >= 2 else None
    typed = next((t for t in facts.typed if t.split("=", 1)[0].lstrip("+") == key and "=" in t), None)
    if inner is None or inner == key or typed is None or not typed.split("=", 1)[1].lstrip().startswith("{"):
        return None
    value = typed.split("=", 1)[1]
    said = (f"{key}={value}: {key} exists, and a mapping given for it is merged into the one it holds, which has no "
            f"field '{inner}'")
    if key.startswith("space."):  # cnnlab refuses ~KEY (a deleted setting falls back unsaid): the space's own file
        return (f"{said} — to replace an entry of the space, write the space to a file: copy what `cnnlab search "
                "--cfg job` shows under `space:` into DIR/space/mine.yaml, change it there, and run with "
                "--config-dir DIR space=mine")
    fields = ", ".join(f"{key}.{field}=…" for field in _fields_of(value))
    return f"{said} — set its fields one by one ({fields}), each one it has"


def _fields_of(mapping: str) -> list[str]:
    """The top-level field names of a `{a:1,b:{c:2}}` override value (a best effort, for the words of a fix)."""
    depth, names, current = 0, [], ""
    for char in mapping.strip()[1:-1] + ",":
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
        if char == "," and depth == 0:
            name = current.split(":", 1)[0].strip()
            if name:
                names.append(name)
            current = ""
        else:
            current += char
    return names


def _unknown_setting(key: str, command: str, facts: SettingFacts) -> str:
    """Hydra's "Key 'KEY' is not in struct" as one line whose fix works: another command's setting says whose; `+KEY=`
    is offered only where cnnlab reads what it adds (optim/sched keyword arguments: facts.may_add)."""
    others = facts.read_by_others(key)
    if others:
        nested = f"{command}.{key}"  # `cnnlab pipeline bench.rounds=5`: pipeline.bench.rounds is its own
        instead = f", or set {nested}= (this command's own)" if facts.known(nested) else ""
        return (f"{key} is a setting of `cnnlab {others[0]}`, not of `cnnlab {command}` — drop it{instead} "
                f"(`cnnlab {command} --help` lists this command's settings)")
    having = facts.choices_with(key)
    if having:  # `sched=cosine sched.gamma=0.5`: a key of another choice of the group, not a typo
        return _another_choices_setting(key, command, facts, having)
    if key.startswith("space.params.") and key.count(".") >= 4:  # probe 151: space=hparams' optim.lr, say
        return (f"unknown setting '{key}': a space parameter named with dots (space=hparams' optim.lr) cannot be set "
                "on the command line — write the space to a file: copy what `cnnlab search --cfg job` shows under "
                "`space:` into DIR/space/mine.yaml, change it there, and run with --config-dir DIR space=mine")
    parts = key.split(".")
    if parts[:2] == ["pipeline", "plan"] and len(parts) > 3:  # probe 197: "+KEY adds a new key", then "needs a command"
        stages = facts.plan_stages()
        if parts[2] in stages:  # a stage's own key misspelt (probe 198: "no stage 'prune'", its stages listing prune)
            near = difflib.get_close_matches(parts[3], ["command", "overrides"], n=1)
            guess = f"did you mean pipeline.plan.{parts[2]}.{near[0]}? " if near else ""
            return (f"stage {parts[2]} has no setting '{'.'.join(parts[3:])}' ({key}) — {guess}a stage has a command "
                    "and overrides; the command's own settings go in its overrides list (docs/pipeline.md)")
        near = difflib.get_close_matches(parts[2], stages, n=1)
        guess = f"did you mean pipeline.plan.{near[0]}.{'.'.join(parts[3:])}? " if near else ""
        return (f"the experiment's plan has no stage '{parts[2]}' ({key}) — {guess}(its stages: "
                f"{', '.join(stages) or 'see `cnnlab pipeline --cfg job`'}); a new stage is added whole: "
                f"'+pipeline.plan.{parts[2]}={{command: CMD, overrides: [\"KEY=VALUE\", ...]}}'")
    close = facts.closest(key)
    fix = f"did you mean {close}? (" if close and close != key else "check the spelling ("
    fix += f"`cnnlab {command} --cfg job` lists every setting)"
    if facts.may_add(key):
        fix += f"; +{key}=VALUE adds a new key on purpose"
    return f"unknown setting '{key}' — {fix}"


# Hydra's plugins of the options a user names most (docs/configuration.md): a missing one is a pip install away.
_HYDRA_PLUGINS = {"hydra/sweeper/optuna": "hydra-optuna-sweeper", "hydra/launcher/joblib": "hydra-joblib-launcher",
                  "hydra/launcher/submitit_local": "hydra-submitit-launcher",
                  "hydra/launcher/submitit_slurm": "hydra-submitit-launcher"}


def _another_choices_setting(key: str, command: str, facts: SettingFacts, having: tuple[str, ...]) -> str:
    """A key spelled right that only other choices of its group have (`having`: "sched=step"): which choice reads
    it, with a fix for where it was typed — a command line, a sweep, a pipeline stage (probes 56, 57)."""
    group, owners = key.split(".", 1)[0], listed(having)
    info = COMMANDS.get(command)
    if info is not None and group not in (*info.groups, *info.extra_groups):
        # `cnnlab distill model.arch=…`: distill takes its networks from teacher= and student=
        where = info.model_fix if group == "model" and info.model_fix else \
            f"`cnnlab {command} --help` lists the groups it has"
        return f"{key}: `cnnlab {command}` has no {group}= choice, so it would be ignored — drop it; {where}"
    if facts.stage:  # `cnnlab finetune model.weights=@pre …` fails typed alone: the fix edits the stage
        return (f"{key} is a setting of {owners}, not of the {group} this stage uses — add {having[0]} to "
                f"{facts.stage}" + (", or drop it" if group == "dataset" else ""))
    if facts.resumes:  # probe 145: `dataset=…` and `--cfg job` are no fixes for a resume, whose config is saved
        return (f"{key} is a setting of {owners}, not of the {group} the resumed run uses — drop {key}= (a resume "
                f"continues the run with its own {group})")
    kept = [arg for arg in facts.typed if arg.lstrip("+").split("=", 1)[0] != group]
    line = shlex.join(["cnnlab", command, *kept, having[0]])
    swept = next((arg for arg in facts.typed if arg.split("=", 1)[0] == group and "," in arg), None)
    if swept is not None:  # `-m sched=step,cosine sched.gamma=0.5`: only some jobs of the sweep read it
        return (f"{key} is a setting of {owners}, not of every {group} this sweep runs ({swept}) — run the "
                f"{having[0]} jobs with it: {line}; and the others apart, without it")
    if group == "dataset":  # other data altogether: dropping the key is the likelier wish — with every other key
        # typed that this dataset lacks too, or the command shown fails on the next one (probe 69)
        typed_keys = [arg.lstrip("+").split("=", 1)[0] for arg in facts.typed]
        # not those the dataset typed has too (probe 193: `dataset=imagefolder dataset.root=grey dataset.channels=1`
        # was told to drop dataset.root as well, and the command shown then lacked the folder)
        current = next((f"dataset={arg.split('=', 1)[1]}" for arg in facts.typed if arg.split("=", 1)[0] == "dataset"),
                       None)
        keys = [key, *(k for k in typed_keys if k.startswith("dataset.") and k != key and facts.choices_with(k)
                       and current not in facts.choices_with(k))]
        without = [arg for arg, typed_key in zip(facts.typed, typed_keys) if typed_key not in keys]
        shown = shlex.join(["cnnlab", command, *without, "--cfg", "job"])
        these = f"{key} is a setting" if len(keys) == 1 else f"{listed(keys)} are settings"
        return (f"{these} of {owners}, not of the dataset this run uses — drop {'it' if len(keys) == 1 else 'them'} "
                f"(`{shown}` shows the settings it has), or use that dataset: {line}")
    return f"{key} is a setting of {owners}, not of the {group} this run uses — choose it: {line}"


_ASKED = re.compile(r"(?:tried to allocate|Tried to allocate) ([\d.]+) ?(bytes|[KMGT]i?B)")
_NUMBERS = re.compile(r"[-+\d.e\[\], ]+")  # a typed value that is a number or a list of numbers
# a setting whose number sizes a tensor (bench.batch_sizes, dataset.image_size, inspect.num_classes, model.width,
# dataset.train_size): not a count of runs or seconds (probe 134: bench.warmup=0 and bench.min_iters=1 were named)
_SIZES = re.compile(r"size|batch|classes|width|channels|images|calibration|resolution|dim", re.I)
_UNITS = {"bytes": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30,
          "TiB": 2**40}


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed: torch.OutOfMemoryError (CUDA, MPS; torch.cuda.OutOfMemoryError is it), Python's
    MemoryError, and the CPU allocator's failure, which torch raises as a plain RuntimeError ("DefaultCPUAllocator:
    can't allocate memory"); by name, as this module imports no torch. Linux may instead kill the process outright
    (the OOM killer): that run then reads `dead`."""
    if type(exc).__name__ in ("OutOfMemoryError", "MemoryError"):
        return True
    text = str(exc)
    return "DefaultCPUAllocator" in text and ("can't allocate memory" in text or "not enough memory" in text)


def out_of_memory_error(exc: BaseException, typed: Sequence[str]) -> CnnlabError | None:
    """The one-line error for an allocation that failed outside training (whose own handler names the batch size),
    or None when `exc` is none: how much was asked for, and the sizes the user typed (`typed`: the overrides). A
    setting that sizes a tensor — a head of 10**12 classes, a batch of 10**11, a synthetic set of 10**11 images —
    was a traceback and "a bug in cnnlab" (probe 118's kind)."""
    memory = next((e for e in _causes(exc) if is_out_of_memory(e)), None)
    if memory is None:
        return None
    asked = _ASKED.search(str(memory))
    amount = ""
    if asked:
        size = float(asked[1]) * _UNITS[asked[2]]
        unit = next((u for u in ("TB", "GB", "MB", "KB") if size >= _UNITS[u]), "bytes")
        value = size / _UNITS[unit]
        amount = f": one allocation asked for {value:,.0f} {unit}" if value >= 100 else \
            f": one allocation asked for {value:.3g} {unit}"
    sizes = [arg for arg in typed if "=" in arg and not arg.startswith("-") and _NUMBERS.fullmatch(arg.split("=", 1)[1])
             and _SIZES.search(arg.split("=", 1)[0].rsplit(".", 1)[-1])]
    fix = (f"lower the sizes you set ({', '.join(sizes)})" if sizes else
           "lower the batch size (trainer.batch_size), the image size (dataset.image_size) or choose a smaller model=")
    return CnnlabError(f"out of memory{amount}", fix=fix)


def _malformed_override(typed: Sequence[str]) -> str | None:
    """The first of the `typed` arguments that Hydra's override grammar refuses on its own, None if none does."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for before, arg in zip(("", *typed), typed):
        if arg.startswith("-") or before in HYDRA_VALUE_FLAGS:  # `--config-dir DIR`: DIR is no override (probe 197)
            continue
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            return arg
    return None


def describe(exc: BaseException, command: str = "CMD", facts: SettingFacts = SettingFacts()) -> tuple[str, bool]:
    """(message, is_bug) for an exception that reached the command line. (A config file that is not a mapping, which
    Hydra fails on without naming it, is named before: cnnlab.app.main.)"""
    if isinstance(exc, UserAbort):
        exc = exc.error
    # ours, maybe wrapped (an OmegaConf resolver such as the run-folder one wraps what it raises)
    ours = next((e for e in _causes(exc) if isinstance(e, CnnlabError)), None)
    if ours is not None:
        return ours.one_line(), False
    if getattr(exc, "is_user_error", False):
        return str(exc), False
    too_long = name_too_long(exc)  # wherever a path met the system's limit: pathlib, Hydra, OmegaConf's resolvers
    if too_long is not None:
        return name_too_long_error(too_long).one_line(), False
    # a full disk or a file-size limit met outside cnnlab's own writes: Hydra's .hydra/ files (probe 237)
    full = disk_full_behind(exc)
    if full is not None:
        return disk_full_error(full).one_line(), False
    loop = link_loop(exc)
    if loop is not None:
        return link_loop_error(loop).one_line(), False
    memory = out_of_memory_error(exc, facts.typed)
    if memory is not None:
        return memory.one_line(), False
    parse_error = next((e for e in _causes(exc) if isinstance(e, yaml.YAMLError)), None)
    if parse_error is not None:  # a user's --config-dir file (Hydra passes PyYAML's error on, maybe wrapped)
        return yaml_message(parse_error), False
    text = str(exc)
    interval = next((arg for arg in facts.typed if "interval(" in arg), None)
    if interval is not None and "does not support sweep type" in text:
        others = [arg for arg in facts.typed if arg not in (interval, "-m", "--multirun")]
        return _interval_hint(interval, command, others), False
    if isinstance(exc, OverrideParseException):
        culprit = _malformed_override(facts.typed)  # probe 142: of eight overrides, which one?
        named = f" {culprit}" if culprit else ""
        return (f"malformed override{named}: {_first_line(text)} — write key=value (a list as key=[a,b]); to pass a "
                "value as plain text, quote it for Hydra inside the shell's quotes: 'key=\"text\"' (in a sweep, each "
                "item: 'key=\"a\",\"b\"')"), False
    if isinstance(exc, RuntimeError) and 'Could not detect "srun"' in text:  # probe 152: an experiment file's
        # SLURM launcher, which launch_checks cannot see before Hydra composes, on a machine without SLURM
        return ("the sweep's launcher submits the jobs to SLURM, and this machine has no SLURM (no srun on the PATH) — "
                "run the command on the cluster's login node, or try the sweep here with "
                "hydra/launcher=submitit_local"), False
    if isinstance(exc, MissingConfigException):
        first = re.sub(r"^In '[^']*': ", "", _first_line(text))
        # Hydra lists the group's options below its first line (probe 86: `--help` names no launcher)
        options = re.search(r"Available options in '([^']+)':\n((?:\t.*\n?)+)", text)
        if options:
            plugin = next((pip for name, pip in _HYDRA_PLUGINS.items() if f"'{name}'" in first), None)
            install = f" (`pip install {plugin}` adds it)" if plugin else ""  # probe 151: no hint for optuna
            return f"{first} — choose one of {', '.join(o.strip() for o in options.group(2).splitlines())}" \
                + install, False
        return first + f" — see `cnnlab {command} --help` for the choices", False
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        cause = exc.__cause__
        detail = _first_line(str(cause)) if cause is not None else ""
        if text.startswith("Could not delete from config.") and "'" in text:  # Hydra: `~KEY` of a null or absent KEY
            key = text.split("'")[1]
            return (f"~{key}: there is no {key} value to delete (the setting is absent or already null) — drop "
                    f"~{key}; `cnnlab {command} --cfg job` lists every setting"), False
        sweep = _sweep_without_multirun(text, command, facts)
        if sweep is not None:
            return sweep, False
        added = _added_existing(text)
        if added is not None:  # `+KEY=VALUE` (or `+GROUP=CHOICE`) for something the config already has
            key, plain = added
            return f"+{plain}: {key} already exists, and '+' only adds what does not — drop the '+': {plain}", False
        if "is not in struct" in text or "is not in struct" in detail:
            key = text.split("'")[1] if "'" in text else "?"
            merged = _mapping_merged(key, detail, facts)
            return merged or _unknown_setting(key, command, facts), False
        message = _first_line(text)
        if detail and detail not in message:
            message = f"{message} ({detail})"
        return message, False
    return f"{type(exc).__name__}: {text}", True
