"""Benchmark: `cnnlab --help` wall time vs `python -c "import torch"` (goal: <= 0.3x).

Help paths (and `cnnlab list datasets`) must not import torch; this measures what a user waits for. Both commands are run
alternately N times in fresh processes; the medians are compared.

A second table times what a training command imports before it starts (`import cnnlab.app`, in a fresh process)
against the same plus the ONNX checker it imported before it was imported only for an ONNX source (onnx and
ml_dtypes), alternating.

A third table times a command's own start in one process (`cnnlab inspect model=lenet5`, invoked as the test
suite invokes commands): Hydra composing the config once (cnnlab.app skips Hydra's extra compose that only reads
`hydra.mode`) against composing it twice as Hydra 1.3 does by itself, alternating, in the same run.

    python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import median, print_machine


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 runs each")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    beside_python = Path(sys.executable).parent / "cnnlab"  # the venv's script, even if not on PATH
    cnnlab = str(beside_python) if beside_python.exists() else shutil.which("cnnlab")
    if cnnlab is None:
        sys.exit("cnnlab is not installed in this environment")
    commands = {
        "cnnlab --help": [cnnlab, "--help"],
        "cnnlab finetune --help": [cnnlab, "finetune", "--help"],
        "cnnlab list datasets": [cnnlab, "list", "datasets"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    print_machine(threads=None)
    alternate(commands, runs, "python -c 'import torch'", "command", "ratio vs import torch")
    command_imports(runs)
    in_process_commands(runs)


def alternate(commands: dict[str, list[str]], runs: int, baseline: str, title: str, ratio: str) -> None:
    """Each command in a fresh process, in turn, `runs` times (after one warm-up each: the file cache); a table of
    their medians and each one's ratio to `baseline`'s."""
    for cmd in commands.values():
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    base = median(times[baseline])
    print(f"\n{title:40} {'median s':>9} {ratio:>22}")
    for name, values in times.items():
        print(f"{name:40} {median(values):9.3f} {median(values) / base:22.2f}")


def command_imports(runs: int) -> None:
    """`import cnnlab.app` (what `cnnlab pretrain` and every other command imports before it starts) against the
    same with cnnlab.deploy.onnx_check, which steps/sources imported for every command until it was imported only
    where a source is an ONNX file; fresh processes, alternating."""
    before = "+ cnnlab.deploy.onnx_check (before)"
    alternate({"import cnnlab.app": [sys.executable, "-c", "import cnnlab.app"],
               before: [sys.executable, "-c", "import cnnlab.deploy.onnx_check, cnnlab.app"]},
              runs, before, "a command's start imports", "ratio vs before")


def in_process_commands(runs: int) -> None:
    """`cnnlab inspect model=lenet5` in this process, one compose (cnnlab's) against two (Hydra's own), alternating."""
    from typer.testing import CliRunner

    import cnnlab.app
    from cnnlab.cli import app

    once = cnnlab.app._mode_from_the_command_line
    args = ["inspect", "model=lenet5", "dataset.image_size=32"]

    def invoke() -> float:
        saved = list(sys.argv)
        start = time.perf_counter()
        result = CliRunner().invoke(app, args)
        elapsed = time.perf_counter() - start
        sys.argv[:] = saved  # launch() rewrites argv for Hydra
        assert result.exit_code == 0, result.output
        return elapsed

    invoke()  # imports and caches
    times: dict[str, list[float]] = {"one compose (cnnlab)": [], "two composes (Hydra 1.3 alone)": []}
    for _ in range(runs):
        cnnlab.app._mode_from_the_command_line = once
        times["one compose (cnnlab)"].append(invoke())
        cnnlab.app._mode_from_the_command_line = contextlib.nullcontext  # type: ignore[assignment]
        times["two composes (Hydra 1.3 alone)"].append(invoke())
    cnnlab.app._mode_from_the_command_line = once
    baseline = median(times["two composes (Hydra 1.3 alone)"])
    print(f"\n{'in-process: ' + ' '.join(args):40} {'median s':>9} {'ratio vs two composes':>22}")
    for name, values in times.items():
        print(f"{name:40} {median(values):9.3f} {median(values) / baseline:22.2f}")


if __name__ == "__main__":
    main()
