"""Hydra's composing of a config, kept per test process and handed out again for the same inputs.

Composing cnnlab's config takes ~0.18 s of every command (Hydra parses each override with its ANTLR grammar, builds
the defaults tree and loads and merges every YAML file it names), about a third of the suite's CPU time, and the
tests compose the same few configs thousands of times. Four of Hydra's steps are deterministic in what they are given
and are kept here:

- parsing one override string (`OverridesParser.parse_rule(s, "override")`), for strings that call no grammar function;
- the defaults list (`create_defaults_list`), keyed by the config name, the overrides that pick config groups, the
  flags and the config sources (a `file://` source by the bytes of every file under it, so a test's --config-dir
  edited between two commands is composed again); the value overrides (`trainer.epochs=1`, `dataset.root=...`), which
  Hydra only passes through this step, are put back for each call, in its order;
- the config merged from a defaults list (`_compose_config_from_defaults_list`), keyed by that list and the sources;
- loading one config file (`ConfigRepository.load_config`), keyed by its name and the sources.

Hydra also deep-copies its whole ConfigStore (every plugin's structured configs) into each composing's repository,
~30 ms a command in the suite: here the copy shares the store, which is only read (its `load` copies what it hands
out).

Everything else — checking the overrides, applying the value overrides, the run's Hydra settings — runs as Hydra
runs it. Each kept value is handed out as a fresh copy (Hydra writes into what it gets). A step that raised is not
kept; one that warned is not kept either and its warnings are raised again, so every call warns as it did.
CNNLAB_TEST_COMPOSE_CACHE=0 leaves every compose to Hydra; =check composes every config both ways and fails on any
difference (the cache's own test: run the suite with it once after changing this file).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable

_parsed: dict[tuple, Any] = {}
_loaded: dict[tuple, Any] = {}
_defaults: dict[tuple, Any] = {}
_composed: dict[tuple, Any] = {}
_MAX_ENTRIES = 512  # per table: a composed config is ~100 kB


def _sources_key(repo: Any) -> tuple:
    """_read_sources_key of `repo`, read once per composing: the repositories one composing uses carry it."""
    key = getattr(repo, "cnnlab_sources_key", None)
    return _read_sources_key(repo) if key is None else key


def _read_sources_key(repo: Any) -> tuple:
    """The config sources `repo` reads, with the content of each file source (path and bytes of every file under
    it); package and structured sources are what is installed and registered, the same all session."""
    from hydra.core.config_store import ConfigStore

    key: list[Any] = []
    for source in repo.get_sources():
        entry: list[Any] = [source.provider, source.scheme(), source.path]
        if source.scheme() == "file":
            digest = hashlib.sha256()
            root = Path(source.path)
            for file in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else ():
                digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
            entry.append(digest.hexdigest())
        key.append(tuple(entry))
    key.append(_store_size(ConfigStore.instance().repo))
    return tuple(key)


def _store_size(node: Any) -> int:
    """How many configs Hydra's ConfigStore holds: a plugin imported later registers more."""
    return sum(_store_size(value) for value in node.values()) if isinstance(node, dict) else 1


def _kept(table: dict, key: tuple, make: Callable[[], Any], stored: Callable[[Any], Any] = lambda value: value) -> Any:
    """`table[key]`, made by `make` where missing and kept (as `stored(value)`) unless it warned; handed out as a
    fresh copy: unpickled (3x faster than a deep copy of a composed config), or deep-copied where it cannot be
    pickled."""
    if key in table:
        how, kept = table[key]
        return pickle.loads(kept) if how == "pickle" else copy.deepcopy(kept)
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        value = make()
    for warning in raised:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if not raised:
        if len(table) >= _MAX_ENTRIES:
            table.pop(next(iter(table)))
        try:
            table[key] = ("pickle", pickle.dumps(stored(value)))
        except (pickle.PicklingError, TypeError, AttributeError):
            table[key] = ("copy", copy.deepcopy(stored(value)))
    return value


def install() -> None:
    """Wrap Hydra's four steps with the per-process tables and share the ConfigStore (once;
    CNNLAB_TEST_COMPOSE_CACHE=0: not at all)."""
    import hydra._internal.config_loader_impl as loader_module
    from hydra._internal.config_repository import CachingConfigRepository, ConfigRepository
    from hydra.core.config_store import ConfigStore
    from hydra._internal.defaults_list import DefaultsList
    from hydra.core.override_parser.overrides_parser import OverridesParser

    mode = os.environ.get("CNNLAB_TEST_COMPOSE_CACHE", "1")
    if mode == "0" or getattr(OverridesParser.parse_rule, "cached_for_tests", False):
        return
    parse_rule = OverridesParser.parse_rule
    create_defaults_list = loader_module.create_defaults_list
    compose = loader_module.ConfigLoaderImpl._compose_config_from_defaults_list
    load_config = ConfigRepository.load_config

    def parse_rule_kept(self: Any, s: str, rule_name: str) -> Any:
        if rule_name != "override" or "(" in s:  # a grammar function (choice, range, shuffle...) is parsed each time
            return parse_rule(self, s, rule_name)
        return _kept(_parsed, (s,), lambda: parse_rule(self, s, rule_name))

    def create_defaults_list_kept(repo: Any, config_name: Any, overrides_list: list, prepend_hydra: bool,
                                  skip_missing: bool) -> DefaultsList:
        # the split Hydra's Overrides makes: a group's choice shapes the list; a value (or a dict) passes through
        passes = [not o.is_sweep_override() and (isinstance(o.value(), dict) or not repo.group_exists(o.key_or_group))
                  for o in overrides_list]
        shaping = tuple(o.input_line for o, passing in zip(overrides_list, passes) if not passing)
        key = (config_name, shaping, prepend_hydra, skip_missing, _sources_key(repo))
        kept = _kept(_defaults, key, lambda: create_defaults_list(
            repo=repo, config_name=config_name, overrides_list=overrides_list, prepend_hydra=prepend_hydra,
            skip_missing=skip_missing), stored=_without_value_overrides)
        # this call's own value overrides, in its order (the kept list's are those of the call that made it)
        kept.overrides.config_overrides = kept.config_overrides = [
            o for o, passing in zip(overrides_list, passes) if passing]
        return kept

    def compose_kept(self: Any, defaults: list, repo: Any) -> Any:
        return _kept(_composed, (repr(defaults), _sources_key(repo)), lambda: compose(self, defaults, repo))

    def load_config_kept(self: Any, config_path: str) -> Any:
        return _kept(_loaded, (config_path, _sources_key(self)), lambda: load_config(self, config_path))

    def caching_repository(self: Any, delegate: Any) -> None:
        store = ConfigStore.instance()
        self.delegate = copy.deepcopy(delegate, {id(store): store})
        self.cache = {}
        # Hydra makes this repository for one composing, whose sources cannot change while it runs: their key (a walk
        # of the ConfigStore, every file of a --config-dir read) is read once for all its steps
        self.cnnlab_sources_key = self.delegate.cnnlab_sources_key = _read_sources_key(self.delegate)

    if mode == "check":
        parse_rule_kept = _checked(parse_rule, parse_rule_kept, repr)
        compose_kept = _checked(compose, compose_kept, _yaml)
        create_defaults_list_kept = _checked(create_defaults_list, create_defaults_list_kept, _defaults_text)
        load_config_kept = _checked(load_config, load_config_kept, _loaded_text)
    parse_rule_kept.cached_for_tests = True  # type: ignore[attr-defined]
    OverridesParser.parse_rule = parse_rule_kept  # type: ignore[method-assign]
    loader_module.create_defaults_list = create_defaults_list_kept
    loader_module.ConfigLoaderImpl._compose_config_from_defaults_list = compose_kept  # type: ignore[method-assign]
    ConfigRepository.load_config = load_config_kept  # type: ignore[method-assign]
    CachingConfigRepository.__init__ = caching_repository  # type: ignore[method-assign]


def _without_value_overrides(defaults: Any) -> Any:
    """`defaults` (a DefaultsList) less its value overrides, which each call puts back: parsed, they hold their
    config loader, a copy of Hydra's whole repository."""
    overrides = copy.copy(defaults.overrides)
    overrides.config_overrides = []
    return dataclasses.replace(defaults, config_overrides=overrides.config_overrides, overrides=overrides)


def _yaml(config: Any) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(config) + repr(config._metadata.flags)


def _loaded_text(result: Any) -> str:
    return "None" if result is None else repr((result.provider, result.path, result.is_schema_source, result.header,
                                               result.defaults_list, _yaml(result.config)))


def _defaults_text(defaults: Any) -> str:
    return repr((defaults.defaults, [o.input_line for o in defaults.config_overrides], defaults.overrides.known_choices,
                 repr(defaults.defaults_tree)))


def _checked(real: Callable[..., Any], kept: Callable[..., Any], text: Callable[[Any], str]) -> Callable[..., Any]:
    """`kept`, with `real` called beside it and their results compared as `text` (CNNLAB_TEST_COMPOSE_CACHE=check)."""
    def both(*args: Any, **kwargs: Any) -> Any:
        value = kept(*args, **kwargs)
        expected = real(*args, **kwargs)
        assert text(value) == text(expected), f"the compose cache gave\n{text(value)}\nwhere Hydra gives\n" \
                                              f"{text(expected)}"
        return value
    return both
