"""Benchmark: a whole tiny command (`cnnlab pretrain`, LeNet-5 on 64 synthetic 16-px images, one epoch), run in one
process, with the settings checks reading the packaged config files as cnnlab does now — fileio.load_yaml: libyaml,
once per version of a file — against reading them as before, with PyYAML's pure-Python yaml.safe_load on every read
(~25 reads a command), interleaved round by round in one run. The first command of each kind warms up and is not
counted.

    python benchmarks/config_reads.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml
from _common import interleaved, median, print_machine, print_medians

COMMAND = ["pretrain", "dataset=synthetic", "dataset.image_size=16", "dataset.train_size=64", "dataset.val_size=32",
           "dataset.num_classes=4", "model=lenet5", "trainer.epochs=1", "trainer.batch_size=16"]
READERS = ("cnnlab.settings", "cnnlab.conftree", "cnnlab.listing")  # the modules that read config files


def _pure_python(path: Any) -> Any:
    return yaml.safe_load(Path(path).read_text())


@contextlib.contextmanager
def reading(how: str) -> Iterator[None]:
    """Every reader module's `load_yaml` as `how` says: "now" (fileio.load_yaml) or "before" (yaml.safe_load)."""
    import importlib

    from cnnlab.fileio import load_yaml

    modules = [importlib.import_module(name) for name in READERS]
    for module in modules:
        module.load_yaml = load_yaml if how == "now" else _pure_python
    try:
        yield
    finally:
        for module in modules:
            module.load_yaml = load_yaml


def one_command(how: str) -> None:
    """The command once, with the config files read as `how` says (the switch itself costs microseconds)."""
    from typer.testing import CliRunner

    from cnnlab.cli import app

    with reading(how):
        result = CliRunner().invoke(app, COMMAND, catch_exceptions=False)
    assert result.exit_code == 0, result.output


NOW, BEFORE = "libyaml, read once (fileio.load_yaml)", "pure Python, every read"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print_machine(None)
    measures = {NOW: lambda: one_command("now"), BEFORE: lambda: one_command("before")}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["CNNLAB_OUTPUTS"] = folder
        interleaved(measures, 1)  # warm-up: imports, and the first read of each file
        times = interleaved(measures, args.rounds)
    now, before = median(times[NOW]), median(times[BEFORE])
    print(f"`cnnlab {' '.join(COMMAND)}` in one process, {args.rounds} interleaved rounds, medians:")
    print_medians(times, width=40)
    saved = f"{before - now:.2f} s less" if before >= now else f"{now - before:.2f} s more"
    print(f"  speed-up: {before / now:.2f}x  ({saved} per command)")


if __name__ == "__main__":
    main()
