"""Read the config tree as files (no Hydra, no torch): groups, their choices, defaults.

Used by `--help` and by the early check of `group=choice` overrides, both of which must stay
fast; Hydra itself composes the real config.
"""

from __future__ import annotations

import itertools

import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import yaml

from cnnlab.fileio import UNREADABLE_YAML, YAML_LOADER, load_yaml

CONF_DIR = Path(__file__).resolve().parent / "conf"
# Groups Hydra or the CLI manage; not user-facing choices.
_INTERNAL_GROUPS = {"hydra", "command"}


def folder_from_env(name: str, default: str) -> str:
    """The folder environment variable `name` names, `~` expanded; `default` when it is unset or blank. An empty
    CNNLAB_OUTPUTS (`CNNLAB_OUTPUTS= cnnlab ...`) made the working folder the outputs root: `list runs` read every
    folder below it and `source=latest` took an unrelated run (probe 98); a quoted `~/runs` made a folder named ~."""
    value = os.environ.get(name, "").strip()
    if "${" in value:  # probe 98: "Interpolation key 'y' not found", after making the folder, naming neither
        from cnnlab.errors import CnnlabError  # conftree stays import-light

        raise CnnlabError(f"{name}={value} holds '${{', which Hydra reads as the start of an interpolation in the "
                          "run folder's path", fix=f"point {name} to a folder whose path has no '${{'")
    return os.path.expanduser(value) if value else default


def outputs_folder() -> Path:
    """Where commands write their runs: $CNNLAB_OUTPUTS (folder_from_env), else ./outputs."""
    return Path(folder_from_env("CNNLAB_OUTPUTS", "outputs"))


def group_dirs(extra_dirs: Iterable[Path] = ()) -> dict[str, list[Path]]:
    """Every config group name → the folders that provide its choices (packaged conf + user --config-dir)."""
    found: dict[str, list[Path]] = {}
    for root in (CONF_DIR, *extra_dirs):
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if sub.name not in _INTERNAL_GROUPS:
                found.setdefault(sub.name, []).append(sub)
    return found


def config_files_digest(folders: Iterable[Path], chosen: Mapping[str, Any]) -> str | None:
    """A digest of what the user's config folders say for one run: the YAML files of the options it chose
    (`chosen`: group → option, e.g. Hydra's runtime.choices, or a stage's `group=option` overrides over the packaged
    defaults) and the user files their defaults lists pull in, plus any primary config at a folder's top. A run
    recognised by its overrides and folders (a sweep's job, a pipeline stage) is then not reused after
    `dataset/birds.yaml` was edited (probe 86: every stage reused at the old image size), while files it does not
    read — another model's, the runs' own .hydra/*.yaml when outputs/ lies inside the folder (probe 87) — change
    nothing. None when no user file is read; the packaged conf/ is cnnlab's own and left out."""
    import hashlib

    roots = [root for root in sorted({Path(f).resolve() for f in folders} - {CONF_DIR}) if root.is_dir()]
    read: set[Path] = {path for root in roots for path in root.glob("*.yaml")}
    pending = [(str(group), str(option)) for group, option in chosen.items() if option not in (None, "")]
    seen: set[tuple[str, str]] = set()
    while pending:
        group, option = pending.pop()
        if (group, option) in seen:
            continue
        seen.add((group, option))
        for root in roots:
            path = root / group / f"{option}.yaml"
            if path.is_file():
                read.add(path)
                pending += _user_defaults(path, group)
    if not read:
        return None
    digest = hashlib.sha256()
    for path in sorted(read):
        digest.update(f"{path}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _user_defaults(path: Path, group: str) -> list[tuple[str, str]]:
    """(group, option) of the entries of a user file's defaults list: `- name` (an option of its own group) and
    `- /group: option` / `- override /group: option` (_default_entries); unreadable files give none (Hydra says
    why)."""
    try:
        data = load_yaml(path) or {}
    except UNREADABLE_YAML:
        return []
    entries = data.get("defaults") if isinstance(data, dict) else None
    same_group = [(group, entry) for entry in (entries if isinstance(entries, list) else [])
                  if isinstance(entry, str) and entry != "_self_"]
    return same_group + [(key, str(value)) for key, value in _default_entries(data) if value is not None]


def user_config_dirs(hydra_cfg: Any) -> list[Path]:
    """A running job's config folders besides the packaged one (--config-dir, hydra.searchpath): the file
    entries of Hydra's `hydra.runtime.config_sources` that are not the main (packaged) config."""
    return [Path(str(s.path)) for s in hydra_cfg.runtime.config_sources if s.schema == "file" and s.provider != "main"]


def shadowed_file(chosen: Mapping[str, Any], extra_dirs: Iterable[Path],
                  config_name: str = "config") -> tuple[Path, str | None] | None:
    """(file, its group; None for the main config) of the first --config-dir file a job chose (`chosen`: Hydra's
    runtime.choices, group → option) or composed from (`config_name`) and did not read: Hydra searches cnnlab's own
    conf/ before the folders --config-dir adds, so myconf/optim/sgd.yaml lost to cnnlab's optim/sgd.yaml without a
    word (probe 99: its lr 0.123 trained at 0.05)."""
    wanted: list[tuple[str, str | None]] = [(f"{group}/{option}", str(group)) for group, option in chosen.items()
                                            if isinstance(option, str)]  # hydra/launcher too (probe 100)
    for path, group in [*wanted, (config_name, None)]:
        for folder in extra_dirs:
            if Path(folder).resolve() == CONF_DIR:  # cnnlab's own files, given again: nothing of the user's hidden
                continue
            mine, own = Path(folder) / f"{path}.yaml", CONF_DIR / f"{path}.yaml"
            if mine.is_file() and own.is_file() and not _says_the_same(mine, own):
                return mine, group
    return None


def _says_the_same(mine: Path, own: Path) -> bool:
    """Whether a --config-dir file holds what cnnlab's own file of that name holds (comments and layout aside): a
    copy of cnnlab's conf/ given as --config-dir hides nothing of the user's, and was refused once per file."""
    try:
        return load_yaml(mine) == load_yaml(own)
    except UNREADABLE_YAML:
        return False


def shadowed_message(mine: Path, group: str | None) -> tuple[str, str]:
    """(message, fix) for a --config-dir file cnnlab's own of that name hides (`shadowed_file`)."""
    hidden = f"{group}={mine.stem}" if group else "the main config"
    message = (f"{mine} is not read: cnnlab's own file of that name comes first in Hydra's search path (--config-dir "
               f"adds folders after it), so {hidden} is cnnlab's")
    if group in (None, "command"):  # the commands are cnnlab's: another name is no command
        return message, ("put its settings in an experiment file (DIR/experiment/mine.yaml starting `# @package "
                         "_global_`) and pass experiment=mine")
    return message, f"rename it to {mine.with_name('my_' + mine.name)} and choose {group}=my_{mine.stem}"


def choices(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of one group, e.g. choices('model') → ['alexnet', ..., 'vgg16']: its regular .yaml files (Hydra
    reads no other)."""
    names: set[str] = set()
    for folder in group_dirs(extra_dirs).get(group, []):
        names.update(p.stem for p in folder.glob("*.yaml") if p.is_file())
    return sorted(names)


def is_pipeline_recipe(option: str, extra_dirs: Iterable[Path] = (), depth: int = 0) -> bool:
    """Whether experiment `option` sets `pipeline:`, itself or through an experiment its defaults list takes in
    (`- /experiment/quickstart`, probe 137): a `cnnlab pipeline` recipe, which every other command refuses
    (settings.check_experiment_is_read)."""
    data = _choice_file(f"experiment/{option}", extra_dirs)
    if data is None:
        return False
    if "pipeline" in data:
        return True
    entries = data.get("defaults") if isinstance(data.get("defaults"), list) else []
    taken = [(group, str(name)) for group, name in _default_entries(data)]  # `- /experiment: quickstart`
    for entry in entries:
        if isinstance(entry, str) and entry != "_self_":  # `- /experiment/quickstart`, or `- quickstart` (its group)
            group, _, name = entry.strip("/").rpartition("/")
            taken.append((group if entry.startswith("/") else group or "experiment", name))
    return depth < 4 and any(is_pipeline_recipe(name, extra_dirs, depth + 1)
                             for group, name in taken if group == "experiment")


def irregular_choice(group: str, name: str, extra_dirs: Iterable[Path] = ()) -> Path | None:
    """The `group/name.yaml` of a config folder that is there but is no regular file (a named pipe, a device, a
    folder): Hydra passes it over and said it "could not find" the option."""
    for folder in group_dirs(extra_dirs).get(group, []):
        path = folder / f"{name}.yaml"
        if (path.exists() or path.is_symlink()) and not path.is_file():  # a broken link exists() not
            return path
    return None


def twins(group: str, options: Iterable[str], extra_dirs: Iterable[Path] = ()) -> dict[str, str]:
    """alias → option for the `options` of `group` whose files say the same thing (comments aside, a model entry
    they take in with `- /model@_here_: NAME` read in) as another of them: model=mobilenet is model=mobilenet_v2
    under a second name, so a sweep over both runs one network twice (student=, teacher= alike). The option whose
    settings' `name` is its own file name is the one kept."""
    said: dict[str, list[tuple[str, Any]]] = {}
    for option in sorted(set(options)):
        data = _settings_said(group, option, list(extra_dirs))
        if data:
            said.setdefault(yaml.safe_dump(data, sort_keys=True), []).append((option, data.get("name")))
    found: dict[str, str] = {}
    for same in (same for same in said.values() if len(same) > 1):
        kept = next((option for option, name in same if option == name), same[0][0])
        found.update({option: kept for option, _ in same if option != kept})
    return found


def _choice_file(config_path: str, extra_dirs: Iterable[Path]) -> dict[str, Any] | None:
    """The mapping the file Hydra loads for `group/name` holds; None when none holds it, or it cannot be read or is
    no mapping (untrusted: a --config-dir file)."""
    path = config_file(config_path, extra_dirs)
    try:
        data = load_yaml(path) if path is not None else None
    except UNREADABLE_YAML:
        return None
    return data if isinstance(data, dict) else None


def _settings_said(group: str, option: str, extra_dirs: list[Path], depth: int = 0) -> dict[str, Any] | None:
    """What `group/option`'s file sets, with the model entry it takes in (`/model@_here_: NAME`) merged under its own
    keys; None for a file that cannot be read."""
    data = _choice_file(f"{group}/{option}", extra_dirs)
    if data is None:
        return None
    said: dict[str, Any] = {}
    for taken, option in _default_entries(data) if depth < 4 else ():
        if taken == "model":  # student/teacher files: `- /model@_here_: NAME`
            said.update(_settings_said("model", str(option), extra_dirs, depth + 1) or {})
    said.update({key: value for key, value in data.items() if key != "defaults"})
    return said


# The fix for a config file whose top level is not a mapping (Hydra would merge a list silently or fail in two lines).
MAPPING_FIX = "write its settings as `key: value` lines; a list goes under a key, e.g. `names: [a, b]`"


def config_file(config_path: str, extra_dirs: Iterable[Path] = ()) -> Path | None:
    """The file Hydra loads for `group/name` (e.g. 'experiment/mine'): cnnlab's conf/ first, then each --config-dir,
    in Hydra's search order; None when none holds it."""
    name = config_path if config_path.endswith(".yaml") else f"{config_path}.yaml"
    return next((root / name for root in (CONF_DIR, *extra_dirs) if (root / name).is_file()), None)


def not_a_mapping(path: Path) -> str | None:
    """'{path}: its top level is a list, ...' when the file parses to something other than a mapping; None for a
    mapping, an empty file, or one that does not parse (Hydra reports that YAML error itself)."""
    try:
        data = load_yaml(path)
    except UNREADABLE_YAML:
        return None
    if data is None or isinstance(data, dict):
        return None
    what = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
    return f"{path}: its top level is {what}, but a config file must be a mapping (`key: value`)"


# The fix for a config file nested past what the YAML reader can follow (PyYAML recurses once per level).
NESTING_FIX = "write it with fewer levels of lists and mappings inside each other"
# libyaml's parser (fileio.YAML_LOADER) reads a file in milliseconds where the pure-Python one took ~10 s per read of
# a 5,000-level file (its scanner is quadratic in the depth); it refuses nesting past 1,000 levels, which is then what
# yaml_shape says: deeper than 1,000 (DEEPER_THAN_PARSED).
DEEPER_THAN_PARSED = 1001


def levels_text(depth: int) -> str:
    """'5001 levels' or, for a depth the parser stopped counting at, 'more than 1000 levels'."""
    return f"more than {DEEPER_THAN_PARSED - 1} levels" if depth >= DEEPER_THAN_PARSED else f"{depth} levels"


def nesting_depth(path: Path) -> int:
    """How many lists and mappings `path`'s YAML nests inside each other once its aliases are expanded (`*a` stands
    for the whole node anchored `&a`: probe 147, 100 lines of `lN: &lN [*lN-1]` read as 2 levels and nested 101),
    read as parser events (no recursion, so any depth is measured); 0 for a file that cannot be read or parsed."""
    return yaml_shape(path)[0]


def yaml_shape(path: Path) -> tuple[int, int, int]:
    """(nesting depth, values, values written) of `path`'s YAML once its aliases are expanded — the depth as
    nesting_depth says it, the values as many as OmegaConf would build, each alias counting its node's whole size
    (probe 150: a 300-byte file of 6 levels of ten aliases each, "billion laughs", composed for minutes into
    gigabytes), and the values the file writes (an alias one); read as parser events, without expanding anything.
    (0, 0, 0) for a file that cannot be read or parsed."""
    heights: dict[str, tuple[int, int]] = {}  # anchor → (levels its node nests, values it holds)
    open_nodes: list[list[Any]] = []  # [anchor, levels nested so far, values so far] of each open collection
    deepest = total = written = 0

    def add(levels: int, values: int) -> None:  # a child node of `levels` and `values` into the open collection
        nonlocal total
        if open_nodes:
            open_nodes[-1][1] = max(open_nodes[-1][1], 1 + levels)
            open_nodes[-1][2] += values
        else:
            total += values

    try:
        for event in yaml.parse(path.read_text(encoding="utf-8"), Loader=YAML_LOADER):
            written += isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.ScalarEvent,
                                          yaml.AliasEvent))
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                open_nodes.append([event.anchor, 1, 1])
                deepest = max(deepest, len(open_nodes))
            elif isinstance(event, yaml.ScalarEvent):
                if event.anchor is not None:
                    heights[event.anchor] = (0, 1)
                add(0, 1)
            elif isinstance(event, yaml.AliasEvent):
                levels, values = heights.get(event.anchor, (0, 1))
                deepest = max(deepest, len(open_nodes) + levels)
                add(levels, values)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)) and open_nodes:
                anchor, levels, values = open_nodes.pop()
                if anchor is not None:
                    heights[anchor] = (levels, values)
                add(levels, values)
    except yaml.YAMLError as exc:
        # libyaml's limit, not a fault of the file's (the Python parser reads it, and OmegaConf recurses past it)
        return (DEEPER_THAN_PARSED, 0, 0) if "maximum nesting depth" in str(exc) else (0, 0, 0)
    except (OSError, ValueError):
        return 0, 0, 0
    return deepest, total, written


def value_depth(override: str) -> int:
    """How many lists and mappings a command-line override's value (`key=[[1]]`) nests inside each other: its
    brackets and braces, outside quotes."""
    depth = deepest = 0
    quote = None
    for char in override.partition("=")[2]:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def user_config_files(config_dirs: Sequence[Path], most: int = 2000) -> Iterator[Path]:
    """The YAML files under a user's --config-dir folders (untrusted, small), in name order: the first `most`."""
    return itertools.islice((path for folder in config_dirs for path in sorted(Path(folder).rglob("*.yaml"))), most)


def nested_too_deep(config_dirs: Sequence[Path], choices: Iterable[str] = (), most: int = 2000
                    ) -> tuple[Path, int] | None:
    """(file, depth) of the YAML file that composing recursed past Python's limit on (probe 144: a traceback): the
    deepest of the files the `choices` name (`group/name`), else of the first `most` others under `config_dirs` (a
    user's --config-dir: untrusted, small) — OmegaConf recurses several frames a level, so ~200 levels already fail
    (probe 145); None when no file nests more than 50."""
    named = [path for choice in choices if (path := config_file(choice, config_dirs)) is not None]
    others = user_config_files(config_dirs, most)
    for candidates in (named, list(others)):
        deepest = max(((path, nesting_depth(path)) for path in candidates), key=lambda found: found[1], default=None)
        if deepest is not None and deepest[1] > 50:
            return deepest
    return None


def not_a_mapping_at(config_path: str, extra_dirs: Iterable[Path] = ()) -> str | None:
    """not_a_mapping() of the file Hydra loads for `group/name` (see config_file); None when none holds it."""
    path = config_file(config_path, extra_dirs)
    return not_a_mapping(path) if path is not None else None


def _default_entries(data: Any) -> Iterator[tuple[str, Any]]:
    """(group, option) of the mapping entries of a config's defaults list: `- override /group@pkg: option` gives
    (group, option)."""
    entries = data.get("defaults") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                yield str(key).removeprefix("override ").strip("/").split("@")[0], value


def _defaults_of(path: Path) -> dict[str, str | None]:
    return dict(_default_entries(load_yaml(path) or {}))


def default_choices(command: str | None = None) -> dict[str, str | None]:
    """group → default choice, from config.yaml and the command's own defaults list."""
    picked = _defaults_of(CONF_DIR / "config.yaml")
    if command and (CONF_DIR / "command" / f"{command}.yaml").is_file():
        picked.update(_defaults_of(CONF_DIR / "command" / f"{command}.yaml"))
    return picked


def commands_using(group: str) -> list[str]:
    """The commands whose own defaults list selects `group` (e.g. method → [pretrain], teacher → [distill]);
    empty for a group the root config selects for every command."""
    if group in _defaults_of(CONF_DIR / "config.yaml"):
        return []
    return sorted(path.stem for path in (CONF_DIR / "command").glob("*.yaml") if group in _defaults_of(path))


def command_settings_text(command: str) -> str:
    """The command's own YAML (its knobs with their comments), minus the Hydra header lines."""
    path = CONF_DIR / "command" / f"{command}.yaml"
    if not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("# @package")]
    return "\n".join(lines).strip()
