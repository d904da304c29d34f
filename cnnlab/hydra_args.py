"""How `cnnlab COMMAND k=v ...` becomes the overrides Hydra composes: one place, for the command line (cli.py) and
for a pipeline's check of its stages before any of them runs (steps/stage_check.py), so that both compose alike.

A leaf: it imports Hydra's override parser and cnnlab.commands, no torch.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path
from typing import Any, Sequence

from cnnlab.commands import COMMANDS

# Hydra's flags whose value is the next argument (`--cfg job`, `--config-dir DIR`, ...): the CLI's parsing and the
# error view's search for a malformed override both read them
HYDRA_VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-name", "-cn",
                               "--config-path", "-cp", "--info", "-i", "--experimental-rerun"})

# Characters that give a value structure in Hydra's override grammar (sweeps, lists, dicts, functions, quotes,
# interpolations, escapes): a value holding one is never quoted for the user — a typo there must stay an error.
_STRUCTURE = set(",[]{}()'\"$=\\")


def hydra_overrides(command: str, overrides: Sequence[str], device: str | None = None) -> list[str]:
    """`command=COMMAND`, the command's default overrides the user did not set, `device=` (the --device option) and
    the user's overrides as Hydra can read them (quote_plain_value; `dataset.KEY=` onto a source's recorded data)."""
    overrides = [quote_plain_value(o) for o in overrides]
    typed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    recorded = recorded_groups(command, overrides)
    overrides = [_onto_recorded(o, recorded) for o in overrides]
    defaults = [d for d in COMMANDS[command].default_overrides if d.split("=", 1)[0] not in typed]
    return [f"command={command}", *defaults, *([f"device={device}"] if device else []), *overrides]


@functools.lru_cache(maxsize=1)
def override_parser() -> Any:
    """Hydra's override parser, built once per process (quote_plain_value asks it of every override)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def sweep_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """Each job's overrides, by job number, as Hydra's basic sweeper makes them (`seed=0,1 optim.lr=0.1,0.2` → the
    product, the last key varying fastest; BasicSweeper.split_arguments); `hydra.*` overrides are left out.
    Raises hydra.errors.HydraException on an override Hydra cannot parse."""
    import itertools

    parsed = override_parser().parse_overrides([str(o) for o in overrides if not str(o).startswith("hydra")])
    lists = [[f"{o.get_key_element()}={value}" for value in o.sweep_string_iterator()] if o.is_sweep_override()
             else [f"{o.get_key_element()}={o.get_value_element_as_str()}"] for o in parsed]
    return [list(job) for job in itertools.product(*lists)]


def quote_plain_value(override: str) -> str:
    """`key=value` as Hydra can read it: a plain value its grammar rejects unquoted — a leading `~`
    (`dataset.root=~/photos`, as the docs write it: the shell does not expand it there), a letter outside ASCII
    (`source=modèle.onnx`) — is single-quoted, which Hydra reads as that very text (cnnlab expands `~` in paths
    itself); so is each such item of a sweep (`-m dataset.root=~/a,~/b`: two jobs, as typed). Anything else, and a
    value with structure (_STRUCTURE), is left for Hydra and its error."""
    from hydra.errors import HydraException

    parser = override_parser()

    def reads(text: str) -> bool:
        try:
            parser.parse_override(text)
        except HydraException:
            return False
        return True

    key, sep, value = override.partition("=")
    if not sep or not value or (_STRUCTURE - {","}) & set(value) or reads(override):
        return override
    items = [item if reads(f"{key}={item}") else f"'{item}'" for item in value.split(",")]
    quoted = f"{key}={','.join(items)}"
    return quoted if reads(quoted) else override


# values of resume= that resume nothing: the same run as leaving resume out (the default, null)
NO_RESUME = ("", "false", "null", "none", "no", "off", "0", "~")
# The groups whose options hold keys the others lack (dataset.val_fraction, method.temperature, sched.step_epochs,
# optim.betas) and whose composed choice a resumed run's saved one replaces (steps/resume.resumed_config).
RESUMED_GROUPS = ("dataset", "method", "optim", "sched")


def recorded_groups(command: str, overrides: Sequence[str]) -> tuple[str, ...]:
    """The groups whose composed node stands for one a run recorded, so that their `GROUP.KEY=`s edit that one,
    whatever the composed choice: a resumed run's RESUMED_GROUPS (its saved config replaces the composed one), or the
    dataset of a source the command rebuilds (edits_source_data)."""
    if resumes_a_run(overrides):
        return RESUMED_GROUPS
    return ("dataset",) if edits_source_data(command, overrides) else ()


def resume_spec(overrides: Sequence[str]) -> str | None:
    """The value of the (last) `resume=` among `overrides` (a command line's words), or None without one."""
    spec = None
    for override in overrides:
        key, sep, value = override.partition("=")
        spec = value if sep and key.lstrip("+~") == "resume" else spec
    return spec


def resumes_a_run(overrides: Sequence[str]) -> bool:
    """Whether the `resume=` among `overrides` continues a run: not one of NO_RESUME, nor absent."""
    spec = resume_spec(overrides)
    return spec is not None and spec.strip().lower() not in NO_RESUME


def _onto_recorded(override: str, groups: Sequence[str]) -> str:
    """`GROUP.KEY=V` as `++GROUP.KEY=V` for a GROUP in `groups` (recorded_groups): Hydra checks a plain override
    against the composed choice (dataset=synthetic, without `root`; method=supervised, without `temperature`), not the
    one the run recorded — whose keys cnnlab checks against the recorded choice instead (probe 147: `resume=RUN
    dataset.val_fraction=0.2` of a digits run, its own value, was refused as "not of the dataset the resumed run
    uses")."""
    key = override.split("=", 1)[0]
    return f"++{override}" if "=" in override and key.split(".", 1)[0] in groups and "." in key else override


def edits_source_data(command: str, overrides: Sequence[str]) -> bool:
    """The command rebuilds its source's recorded data (rebuilds_source_data) and no `dataset=` picks other data:
    its `dataset.KEY=`s edit that data."""
    typed = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return rebuilds_source_data(command, overrides) and "dataset" not in typed


def rebuilds_source_data(command: str, overrides: Sequence[str]) -> bool:
    """CommandInfo.reads_source_data for the command line's (last) `ROLE.weights=` (distill: the teacher's)."""
    info = COMMANDS[command]
    key = f"{info.source_dataset_role}.weights"
    weights = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key]
    return info.reads_source_data(weights[-1] if weights else None)


def hydra_quoted(text: str) -> str:
    """`text` as a single-quoted Hydra override value that reads back as exactly `text`: in Hydra's quoted strings
    only the backslashes before a quote (or before the closing one) are escapes, and OmegaConf resolves `${...}`
    unless escaped as `\\${` (a file named `x${y}.png` stopped with "Interpolation key 'y' not found";
    `m\\n.png` became `m\\\\n.png`, no such file)."""
    text = re.sub(r"(\\+)(?='|$|\$\{)", lambda run: run.group(1) * 2, text)
    return "'" + text.replace("'", "\\'").replace("${", "\\${") + "'"


def hydra_value(path: Any) -> str:
    """A path as one Hydra override value: as it is when plain, else Hydra-quoted (a comma made `source=a,b` a
    sweep, a space or `=` another parse)."""
    return str(path) if re.fullmatch(r"[\w./+@-]+", str(path)) else hydra_quoted(str(path))


def path_argument(key: str, paths: Sequence[Any]) -> str:
    """`key=PATH` (one path) or `key=[A,B]` as one shell word that Hydra reads back as those paths: a path with a
    space, a comma or another character of Hydra's grammar is Hydra-quoted, and the word shell-quoted — the report's
    `cnnlab bench source=...` hints, pasted, failed for a folder `with space/` or `a,b/` (probe 98)."""
    items = [hydra_value(p) for p in paths]
    value = items[0] if len(items) == 1 else f"[{','.join(items)}]"
    return shlex.quote(f"{key}={value}")


def resume_argument(command: str, run_dir: Path | None, outputs: Path | None) -> str:
    """The `resume=` word that continues the run in `run_dir`: `resume=true` where that finds it (a run folder under
    `outputs`/COMMAND/), else the folder itself, shell-ready — `resume=true` looks only there (probe 167: the hint
    after a run given `hydra.run.dir=` found no run to continue)."""
    if run_dir is None or outputs is None:
        return "resume=true"
    try:
        found = Path(run_dir).resolve().is_relative_to((Path(outputs) / command).resolve())
    except OSError:
        found = False
    return "resume=true" if found else path_argument("resume", [run_dir])
