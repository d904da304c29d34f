"""Benchmark: does knowledge distillation help, and what does the teacher-logit cache save?

1. KD gain (goal: >= +1 point mean over 3 seeds; published logit-KD gains on CIFAR-100: +0.8 to +2.8).
   Per dataset (the embedded `synthetic` and `digits`): one `cnnlab pretrain` trains the teacher, then one
   `cnnlab distill` per seed trains the student with KD *and* alone (distill.baseline=true: same initial
   weights, seed, data order, optimizer and epochs) — the gain is run.json's metrics.kd_gain.
2. Cache speed: the seed-0 KD training (teacher logits cached; cache pass included) against the same
   training with distill.cache_teacher=false (the teacher runs every step). Times are the runs' own
   per-epoch training seconds (run.json history), so process start-up and evaluation are excluded.

Runs the real command line in separate processes with the same thread count. See docs/benchmarks/distill.md.

    python benchmarks/distill_gain.py [--threads 2] [--seeds 0 1 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import cnnlab, dump, pin_threads, print_machine

# The recipe docs/benchmarks/distill.md justifies: a ResNet-18 teacher trained from scratch, a LeNet-5 student
# from scratch with a short budget, deterministic inputs (so the teacher-logit cache applies), T=4, alpha=0.5,
# gradient clipping (the KD term's gradients are large against a confident teacher; the baseline gets it too).
DATASETS = {
    # 64 px: the synthetic set's native size, where a ResNet-18 reaches ~99 % in 5 epochs (its 224-px stem
    # downsamples 16/32 px images too early to be a good teacher there).
    "synthetic": {"data": ["dataset=synthetic", "dataset.image_size=64"], "teacher_epochs": 5,
                  "quick": ["dataset.image_size=32", "dataset.train_size=256", "dataset.val_size=128"]},
    "digits": {"data": ["dataset=digits", "dataset.image_size=16"], "teacher_epochs": 8, "quick": []},
}
TEACHER = "resnet18"
STUDENT = ["student=lenet5", "trainer.epochs=6", "distill.temperature=4", "distill.alpha=0.5",
           "trainer.grad_clip=2"]


def cnnlab_run(outputs: Path, threads: int, *args: str) -> tuple[Path, dict]:
    """Run one command (fp32: the gains compare like with like); (its run folder, its run.json)."""
    record = cnnlab(outputs, threads, *args, "trainer.amp=none")
    return Path(record["run_dir"]), record


def kd_seconds(run: dict) -> float:
    """Training seconds of the KD student, the teacher-logit cache pass included."""
    return sum(e["train_seconds"] for e in run["metrics"]["history"]) + (run["metrics"]["teacher_cache_seconds"] or 0)


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.2f} ± {spread:4.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--quick", action="store_true", help="smoke run: small data, 1-epoch teacher, 2 seeds")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.seeds = args.seeds[:2]
    student = STUDENT + (["trainer.epochs=2"] if args.quick else [])
    print_machine(pin_threads(args.threads))
    print(f"teacher: {TEACHER} from scratch; student: {' '.join(student)}; seeds {args.seeds}\n")

    results: dict = {"datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        for name in args.datasets:
            setting = DATASETS[name]
            data = setting["data"] + (setting["quick"] if args.quick else [])
            epochs = 1 if args.quick else setting["teacher_epochs"]
            teacher_dir, teacher = cnnlab_run(outputs, args.threads, "pretrain", *data, f"model={TEACHER}",
                                          f"trainer.epochs={epochs}")
            distill = ["distill", f"teacher={TEACHER}", f"teacher.weights={teacher_dir}", *student]
            runs = [cnnlab_run(outputs, args.threads, *distill, f"seed={seed}")[1] for seed in args.seeds]
            live = cnnlab_run(outputs, args.threads, *distill, f"seed={args.seeds[0]}", "distill.cache_teacher=false",
                          "distill.baseline=false")[1]
            results["datasets"][name] = {
                "teacher_epochs": epochs, "teacher_val_acc": teacher["metrics"]["val_acc"],
                "image_size": teacher["dataset"]["image_size"],
                "kd_val_acc": [100 * r["metrics"]["val_acc"] for r in runs],
                "alone_val_acc": [100 * r["metrics"]["baseline_val_acc"] for r in runs],
                "gain_points": [100 * r["metrics"]["kd_gain"] for r in runs],
                "cached_kd_seconds": kd_seconds(runs[0]), "live_kd_seconds": kd_seconds(live),
                "cache_seconds": runs[0]["metrics"]["teacher_cache_seconds"],
                "same_result": abs(runs[0]["metrics"]["val_acc"] - live["metrics"]["val_acc"]) <= 0.005,
                "train_size": teacher["dataset"]["train_size"], "val_size": teacher["dataset"]["val_size"],
            }

    print(f"{'dataset':10} {'px':>3} {'train/val':>10} {'teacher':>8} {'student alone':>15} {'student + KD':>15} "
          f"{'gain (points)':>15}")
    for name, r in results["datasets"].items():
        print(f"{name:10} {r['image_size']:3} {r['train_size']:>5}/{r['val_size']:<4} "
              f"{100 * r['teacher_val_acc']:8.2f} "
              f"{mean_std(r['alone_val_acc']):>15} {mean_std(r['kd_val_acc']):>15} {mean_std(r['gain_points']):>15}")
    print(f"\n(mean ± sample std over seeds {args.seeds}; goal: mean gain >= +1 point)\n")
    print(f"{'dataset':10} {'cached s':>9} {'(cache s)':>10} {'every step s':>13} {'speed-up':>9} {'same acc':>9}")
    for name, r in results["datasets"].items():
        print(f"{name:10} {r['cached_kd_seconds']:9.1f} {r['cache_seconds']:10.1f} {r['live_kd_seconds']:13.1f} "
              f"{r['live_kd_seconds'] / r['cached_kd_seconds']:8.1f}x {str(r['same_result']):>9}")
    dump(args.json, results)


if __name__ == "__main__":
    main()
