"""Benchmark: naming a --config-dir file nested too deep (conftree.nested_too_deep → yaml_shape), as cnnlab does it
now — libyaml's parser, which stops at 1,000 levels — against PyYAML's pure-Python parser reading the same file to
its end, as before (its scanner is quadratic in the depth), interleaved in one run.

    python benchmarks/config_depth.py [--levels 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _common import interleaved, median, print_machine, print_medians

from cnnlab.conftree import DEEPER_THAN_PARSED, nesting_depth


def pure_python_depth(path: Path) -> int:
    depth = deepest = 0
    for event in yaml.parse(path.read_text(), Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return deepest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", type=int, default=5000, help=f"at least {DEEPER_THAN_PARSED}")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.levels < DEEPER_THAN_PARSED:  # libyaml's parser stops at 1,000 levels: the case this times
        parser.error(f"--levels {args.levels}: use at least {DEEPER_THAN_PARSED} (a file deeper than libyaml parses)")
    print_machine(None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "deep.yaml"
        path.write_text("x: " + "[" * args.levels + "]" * args.levels + "\n")
        assert nesting_depth(path) == DEEPER_THAN_PARSED and pure_python_depth(path) == args.levels + 1
        times = interleaved({"libyaml (conftree.nesting_depth)": lambda: nesting_depth(path),
                             "pure Python (yaml.SafeLoader)": lambda: pure_python_depth(path)}, args.rounds)
    fast, slow = (median(t) for t in times.values())
    print(f"a file nested {args.levels} levels deep, {args.rounds} interleaved rounds, medians:")
    print_medians(times, width=34, digits=4)
    print(f"  speed-up: {slow / fast:.0f}x")


if __name__ == "__main__":
    main()
