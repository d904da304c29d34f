"""Read the config tree as files (no Hydra, no torch): groups, their choices, defaults.

Used by `--help` and by the early check of `group=choice` overrides, both of which must stay
fast; Hydra itself composes the real config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

CONF_DIR = Path(__file__).resolve().parent / "conf"
# Groups Hydra or the CLI manage; not user-facing choices.
_INTERNAL_GROUPS = {"hydra", "command"}


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


def config_files_digest(folders: Iterable[Path], *, skip: Iterable[str] = ()) -> str | None:
    """A digest of the YAML files (names and bytes) under the user's config folders — what their settings say, so
    that a run recognised by its overrides and folders (a sweep's job, a pipeline stage) is not reused after
    `dataset/birds.yaml` was edited (probe 86: image_size 16 → 20, and every stage was reused at 16 px). `skip`:
    group folders left out (a pipeline's stages take the experiment's settings as their own overrides, so an edited
    plan redoes only the stages it changed). None for no folder; the packaged conf/ is cnnlab's own and left out."""
    import hashlib

    digest, seen, skipped = hashlib.sha256(), False, set(skip)
    for folder in sorted({Path(f).resolve() for f in folders} - {CONF_DIR}):
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                           and p.relative_to(folder).parts[0] not in skipped):
            digest.update(f"{path.relative_to(folder)}\0".encode() + path.read_bytes() + b"\0")
            seen = True
    return digest.hexdigest()[:16] if seen else None


def user_config_dirs(hydra_cfg: Any) -> list[Path]:
    """A running job's config folders besides the packaged one (--config-dir, hydra.searchpath): the file
    entries of Hydra's `hydra.runtime.config_sources` that are not the main (packaged) config."""
    return [Path(str(s.path)) for s in hydra_cfg.runtime.config_sources if s.schema == "file" and s.provider != "main"]


def choices(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of one group, e.g. choices('model') → ['alexnet', ..., 'vgg16']."""
    names: set[str] = set()
    for folder in group_dirs(extra_dirs).get(group, []):
        names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


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
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if data is None or isinstance(data, dict):
        return None
    what = "a list" if isinstance(data, list) else f"a single value ({data!r:.40})"
    return f"{path}: its top level is {what}, but a config file must be a mapping (`key: value`)"


def not_a_mapping_at(config_path: str, extra_dirs: Iterable[Path] = ()) -> str | None:
    """not_a_mapping() of the file Hydra loads for `group/name` (see config_file); None when none holds it."""
    path = config_file(config_path, extra_dirs)
    return not_a_mapping(path) if path is not None else None


def _defaults_of(path: Path) -> dict[str, str | None]:
    data = yaml.safe_load(path.read_text()) or {}
    picked: dict[str, str | None] = {}
    for entry in data.get("defaults", []) or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                key = key.removeprefix("override ").strip("/").split("@")[0]
                picked[key] = value
    return picked


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
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("# @package")]
    return "\n".join(lines).strip()
