"""Benchmark: a 4-job sweep on 2 cores, one job after another vs `hydra/launcher=joblib hydra.launcher.n_jobs=2`
(goal: joblib >= 1.6x faster in wall time, same metrics).

Each job of a parallel sweep takes its share of the cores (docs/scale-out.md: threads = usable cores ÷ jobs at
once), so two jobs side by side on 2 cores use one thread each instead of fighting over two. Both ways run as
`python -m cnnlab pretrain -m ... seed=0,1,2,3` pinned to the same 2 cores, alternately (sequential, joblib,
sequential, ...) so that a change of the machine's speed during the session hits both; the medians are
compared, and every job's metrics must agree between the two (different thread counts only reorder sums).
With --threads N both ways give every job N threads (OMP_NUM_THREADS, the user's explicit choice): the jobs then
differ in nothing but how they are launched, and their metrics must agree to the last digit.

A parallel sweep can beat one-after-another only by what a job loses when it gets 2 threads instead of 1: with
S = (a job's speed on 2 threads) / (its speed on 1), two 1-thread jobs side by side finish 2 / S times sooner
than the same jobs run one after another on 2 threads (less, when they contend for memory bandwidth). The
script prints each job's training throughput both ways, so S (and that bound) is read off the same run.

    python benchmarks/parallel_sweep.py [--reps 3] [--json out.json]
    python benchmarks/parallel_sweep.py --set model=mobilenet_v2 --set dataset=fashion_mnist ...   # other jobs
    python benchmarks/parallel_sweep.py --threads 1 ...   # every job 1 thread, both ways: metrics to the digit
    python benchmarks/parallel_sweep.py --quick      # tiny jobs, one repetition: proves the script works
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dump, median, print_machine

SEEDS = "0,1,2,3"
FULL = ["model=resnet18", "dataset=synthetic", "trainer.epochs=1"]  # the default pretrain, about a minute a job
QUICK = ["model=lenet5", "dataset=synthetic", "dataset.image_size=16", "dataset.train_size=128",
         "dataset.val_size=64", "dataset.num_classes=4", "trainer.epochs=1", "trainer.batch_size=32"]
LAUNCHERS = {"sequential": [], "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
TOLERANCE = 1e-3            # on losses (the DDP tests' tolerance: other thread counts only reorder sums)
ACC_TOLERANCE = 1 / 64 + 1e-9  # on accuracies: one image of 64 may flip


def two_cores() -> set[int]:
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        sys.exit(f"this benchmark needs 2 usable cores; this process may use {len(usable)}")
    return set(usable[:2])


def sweep(launcher: str, settings: list[str], outputs: Path, cores: set[int], threads: int | None = None) -> float:
    """Wall seconds of one 4-job sweep, pinned to `cores`, with no thread setting from this shell (a job would
    take OMP_NUM_THREADS for the user's explicit choice and not take its share) unless `threads` sets one."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CNNLAB_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env["CNNLAB_OUTPUTS"] = str(outputs)
    command = [sys.executable, "-m", "cnnlab", "pretrain", "-m", *LAUNCHERS[launcher], *settings, "device=cpu",
               f"seed={SEEDS}"]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.sched_setaffinity(0, cores))
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{launcher} sweep failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds


def job_metrics(outputs: Path) -> dict[str, dict]:
    """seed=N → (metrics, torch threads) of every job of the sweep under `outputs`."""
    found = {}
    for run_file in outputs.rglob("run.json"):
        record = json.loads(run_file.read_text())
        seed = next(o for o in record["overrides"] if o.startswith("seed="))
        found[seed] = {"metrics": record["metrics"], "threads": record["environment"]["torch_threads"],
                       "status": record["status"]}
    return found


def compare(sequential: dict[str, dict], parallel: dict[str, dict], *, exact: bool = False) -> list[str]:
    """Every job's differences beyond the tolerances (none at all when `exact`)."""
    tolerance, acc_tolerance = (0.0, 0.0) if exact else (TOLERANCE, ACC_TOLERANCE)
    problems = []
    if set(sequential) != set(parallel) or len(sequential) != 4:
        return [f"jobs differ: {sorted(sequential)} vs {sorted(parallel)}"]
    for seed, one in sorted(sequential.items()):
        two = parallel[seed]
        if {one["status"], two["status"]} != {"completed"}:
            problems.append(f"{seed}: {one['status']} / {two['status']}")
            continue
        for key in ("val_loss", "train_loss"):
            if abs(one["metrics"][key] - two["metrics"][key]) > tolerance:
                problems.append(f"{seed}: {key} {one['metrics'][key]:.5f} vs {two['metrics'][key]:.5f}")
        if abs(one["metrics"]["val_acc"] - two["metrics"]["val_acc"]) > acc_tolerance:
            problems.append(f"{seed}: val_acc {one['metrics']['val_acc']:.4f} vs {two['metrics']['val_acc']:.4f}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions of each way (default 3)")
    parser.add_argument("--quick", action="store_true", help="tiny jobs, one repetition")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="the jobs' settings instead of the default ResNet-18 ones (repeatable)")
    parser.add_argument("--threads", type=int, help="give every job this many threads both ways (OMP_NUM_THREADS); "
                        "the metrics must then agree exactly")
    parser.add_argument("--json", help="write the timings and the verdict here")
    args = parser.parse_args()
    settings, reps = (QUICK, 1) if args.quick else (args.set or FULL, args.reps)
    cores = two_cores()
    print_machine(None)
    print(f"4-job sweep (seed={SEEDS}) pinned to cores {sorted(cores)}: {' '.join(settings)}; {reps} repetition(s)")

    times: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    metrics: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="cnnlab-parallel-sweep-") as scratch:
        for rep in range(reps):
            for name in LAUNCHERS:  # interleaved: sequential, joblib, sequential, joblib, ...
                outputs = Path(scratch) / f"{name}-{rep}"
                times[name].append(sweep(name, settings, outputs, cores, args.threads))
                metrics[name] = job_metrics(outputs)
                threads = sorted({job["threads"] for job in metrics[name].values()})
                print(f"  rep {rep + 1} {name:<10} {times[name][-1]:7.1f} s  (torch threads per job: {threads})")

    ratio = median(times["sequential"]) / median(times["joblib"])
    problems = compare(metrics["sequential"], metrics["joblib"], exact=args.threads is not None)
    throughput = {name: median(job["metrics"]["train_images_per_s"] for job in jobs.values())
                  for name, jobs in metrics.items()}
    scaling = throughput["sequential"] / throughput["joblib"]
    print(f"training throughput per job (median): {throughput['sequential']:.0f} images/s alone on its threads, "
          f"{throughput['joblib']:.0f} images/s beside another job → S = {scaling:.2f}, "
          f"bound on the joblib gain 2 / S = {2 / scaling:.2f}x (start-up overlap aside)")
    accuracy = {name: [100 * jobs[seed]["metrics"]["val_acc"] for seed in sorted(jobs)]
                for name, jobs in metrics.items()}
    print("val top-1 per seed: " + "; ".join(f"{name} " + ", ".join(f"{a:.2f}" for a in values)
                                            for name, values in accuracy.items()))
    print(f"median wall time: sequential {median(times['sequential']):.1f} s, joblib n_jobs=2 "
          f"{median(times['joblib']):.1f} s → joblib is {ratio:.2f}x faster (goal >= 1.6x)")
    if args.quick:
        print("(--quick: process start-up dominates jobs this small; the ratio says nothing about the goal)")
    same = "exactly the same" if args.threads is not None else "the same within tolerance"
    print(f"metrics: {same}" if not problems else "metrics differ:\n  " + "\n  ".join(problems))
    dump(args.json, {"settings": settings, "threads": args.threads, "cores": sorted(cores), "seconds": times,
                     "ratio": round(ratio, 3),
                     "images_per_s": throughput, "thread_scaling": round(scaling, 3), "val_acc": accuracy,
                     "metrics_match": not problems, "problems": problems, "quick": args.quick})
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
