"""cnnlab/hydra_args.py: paths written into overrides and printed fixes read back as the same path."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from cnnlab.hydra_args import hydra_value, override_parser, path_argument
from helpers import bash_words

# Folder names users have: spaces, commas (a sweep's separator), Hydra's grammar, quotes, `${` and backslashes.
AWKWARD = ["/tmp/plain/run", "/tmp/my runs/a", "/tmp/a,b/run", "/tmp/x=y/run", "/tmp/it's/run", '/tmp/q"uote/run',
           "/tmp/brack[1]/run", "/tmp/{set}/run", "/tmp/dollar${x}/run", "/tmp/back\\slash/run", "/tmp/(p)/run"]


def composed(override: str) -> Any:
    """The value an override gives the config once Hydra parsed it and OmegaConf resolved it (`\\${` → `${`)."""
    value = override_parser().parse_override(override).value()
    return OmegaConf.to_container(OmegaConf.create({"v": value}), resolve=True)["v"]


def test_a_path_reads_back_as_itself_as_a_value_and_as_a_pasted_word() -> None:
    for path in AWKWARD:
        assert composed(f"source={hydra_value(path)}") == path, path
        [word] = bash_words(path_argument("source", [path]))  # what a user pastes into the shell
        assert composed(word) == path, path
    [word] = bash_words(path_argument("source", AWKWARD[1:3]))
    assert composed(word) == AWKWARD[1:3]
    assert hydra_value("/tmp/plain/run") == "/tmp/plain/run"  # plain paths print as they are
