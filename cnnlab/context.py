"""What a pipeline gets besides its config: where to write, the live run record, what the user typed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.runs import RunRecord


@dataclass
class RunContext:
    command: str
    run_dir: Path
    outputs: Path                      # root of all run folders (for source=latest...)
    record: RunRecord
    overrides: list[str] = field(default_factory=list)   # the user's key=value overrides, as typed
    multirun: bool = False
    is_main: bool = True               # rank 0 (or the only process): the one that writes files
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("cnnlab"))

    def given_keys(self) -> set[str]:
        """The dotted keys the user typed on the command line (`++trainer.epochs=3` → trainer.epochs)."""
        return {override.split("=", 1)[0].lstrip("+~") for override in self.overrides}

    def explicitly_set(self, *keys: str) -> bool:
        """True when the user typed `key=...` for any of `keys` on the command line."""
        return not self.given_keys().isdisjoint(keys)

    def typed(self, key: str) -> list[str]:
        """The overrides the user typed for `key` or any key under it, as typed (`dataset=imagefolder`,
        `dataset.root=abd`): what "drop ..." must name for the fix to work when followed."""
        typed = [o.lstrip("+") for o in self.overrides]  # cnnlab adds ++ to a source's dataset edits
        return [o for o in typed if (k := o.split("=", 1)[0].lstrip("~")) == key or k.startswith(key + ".")]

    def path(self, name: str) -> Path:
        return self.run_dir / name
