"""Benchmark: the test suite's compose cache (tests/compose_cache.py) — CPU time of a set of test files with it and
without it (`CNNLAB_TEST_COMPOSE_CACHE=0`), alternating in the same run.

Each round runs `pytest -n 0` on the files once each way, in that order and then the other (A B, B A, ...), and
measures the child's CPU time (user + system, getrusage) and its wall time; the ratio of each round is printed and
their median is the figure. CPU time is the measure because the suite's budget is 2 cores busy: what one worker
saves is what the other gets. The files default to three that run many in-process commands.

    python benchmarks/suite_compose_cache.py [--rounds 3] [FILES ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import median, print_machine

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = ["tests/test_cli.py", "tests/pipelines/test_finetune.py", "tests/test_errors_view.py"]


def run_files(files: list[str], cache: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `pytest -n 0 FILES` with the compose cache on or off; exits on a failure."""
    env = {**os.environ, "CNNLAB_TEST_COMPOSE_CACHE": "1" if cache else "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", *files], cwd=ROOT,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"pytest failed (cache {'on' if cache else 'off'}):\n{done.stdout[-3000:]}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round of tests/test_errors_view.py")
    args = parser.parse_args()
    files, rounds = (["tests/test_errors_view.py"], 1) if args.quick else (args.files, args.rounds)
    print_machine(threads=None)
    print(f"files: {' '.join(files)}; {rounds} rounds, alternating\n")
    print(f"{'round':>5} {'CPU on s':>9} {'CPU off s':>10} {'ratio':>6} {'wall on s':>10} {'wall off s':>11}")
    ratios, walls = [], []
    for index in range(rounds):
        order = (True, False) if index % 2 == 0 else (False, True)
        measured = {cache: run_files(files, cache) for cache in order}
        (cpu_on, wall_on), (cpu_off, wall_off) = measured[True], measured[False]
        ratios.append(cpu_on / cpu_off)
        walls.append(wall_on / wall_off)
        print(f"{index + 1:5d} {cpu_on:9.1f} {cpu_off:10.1f} {ratios[-1]:6.2f} {wall_on:10.1f} {wall_off:11.1f}")
    print(f"\nCPU time with the cache / without: median of the rounds {median(ratios):.2f}x "
          f"(range {min(ratios):.2f}-{max(ratios):.2f}); wall time {median(walls):.2f}x")


if __name__ == "__main__":
    main()
