"""Benchmark (issue 18): hardware-aware architecture search against MobileNetV2 on Fashion-MNIST.

Through the real command line (each step a separate `cnnlab` process, as a user runs them), 2 threads, onnxruntime
on the CPU, batch 1:
  1. MobileNetV2 (width 1.0) at --image-size is the search's reference
     (search.reference=mobilenet_v2), timed beside every candidate in the same interleaved rounds; a candidate
     must be --speedup times faster than it (search.min_speedup) — a ratio the machine's drift cannot move;
  2. `cnnlab search space=mobilenet dataset=fashion_mnist` with <= 40 trials (NSGA-II, measured latency, proxy
     trainings of search.proxy_epochs on a share of the training split) at the same input size (the resolution
     is searched too with --search-resolution); the chosen model trained for --epochs;
  3. `cnnlab pretrain model=mobilenet_v2` with the same budget (epochs, recipe, data, resolution);
  4. both exported and scored on the official 10,000 test images (`cnnlab evaluate split=test`);
  5. both timed again by an independent interleaved timing (plain onnxruntime sessions, not cnnlab's harness);
  6. the speed-up, the test accuracy difference, the search's wall time, and Spearman's rank correlation of
     FLOPs and measured latency over every trial the search timed;
  7. the hand-picked baselines (--baselines: MobileNetV3-Small, MobileNetV2 at width 0.5, ResNet-18, LeNet-5)
     trained with the same budget, exported, scored on the same test images and timed in the same interleaved
     rounds; a plot (--plot) of the search's trials (proxy validation top-1 against measured latency, coloured
     by feasibility) beside every final model's test top-1 against the independent latency.

Data: the Debian package `dataset-fashion-mnist` (offline in /usr/share/datasets/fashion-mnist/).

    python benchmarks/search_mobilenet.py [--trials 40] [--image-size 28] [--epochs 10] [--label-fraction 1]
        [--baselines mobilenet_v3_small,mobilenet_v2_w0.5,resnet18,lenet5] [--plot PNG] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path


from cnnlab.wording import ratio_text

from _common import cnnlab, dump, plain_session, print_machine, time_sessions

QUICK = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=128", "dataset.val_size=64",
         "dataset.num_classes=4", "trainer.max_steps_per_epoch=4"]
QUICK_TIMING = ["search.latency.rounds=1", "search.latency.warmup=1", "search.latency.min_iters=5",
                "search.latency.min_seconds=0"]


BASE_SPACE = Path(__file__).resolve().parent.parent / "conf" / "space" / "mobilenet.yaml"


def baseline_overrides(name: str) -> list[str]:
    """The model overrides of a hand-picked baseline. `mobilenet_v2_wW` is MobileNetV2 at width multiplier W,
    written as the search space's own base string (MobileNetV2) with its width token changed."""
    if name.startswith("mobilenet_v2_w"):
        import yaml

        base = str(yaml.safe_load(BASE_SPACE.read_text())["base"])
        width = name.removeprefix("mobilenet_v2_w")
        return ["model=searched", f"model.arch=w{width}_" + base.split("_", 1)[1]]
    return [f"model={name}"]


class OwnInput:
    """An onnxruntime session that runs on its own random input (the searched network takes 1-channel images,
    MobileNetV2 3), whatever feed it is given: time_sessions' one feed cannot fit both."""

    def __init__(self, session) -> None:  # type: ignore[no-untyped-def]
        from cnnlab.deploy.ort import example_feed

        self.session = session
        self.feed = example_feed(session, 1, seed=0)

    def run(self, outputs, _feed):  # type: ignore[no-untyped-def]
        return self.session.run(outputs, self.feed)


def interleaved_latency(paths: dict[str, Path], threads: int, rounds: int, iterations: int) -> dict[str, float]:
    """Median latency (ms) per ONNX file at batch 1: plain onnxruntime sessions, not cnnlab's harness, in
    interleaved rounds (benchmarks/_common.py: time_sessions)."""
    sessions = {key: OwnInput(plain_session(str(path), "onnxruntime", threads)) for key, path in paths.items()}
    return time_sessions(sessions, {}, rounds, iterations)


def test_acc(outputs: Path, threads: int, run: dict, split: str) -> float:
    record = cnnlab(outputs, threads, "evaluate", f"source={run['run_dir']}", f"split={split}")
    return 100 * float(record["metrics"][f"{split}_acc"])


def trial_speedup(row: dict) -> float:
    """A trial's speed-up over the reference, as the search measured it (paired, same rounds)."""
    return float(row["speedup"])


def plot(path: Path, trials_csv: Path, finals: dict[str, tuple[float, float]], min_speedup: float | None,
         title: str, split: str, correlation: tuple[float | None, int]) -> None:
    """Left: every trial's proxy validation top-1 against its speed-up over MobileNetV2 (search harness, paired),
    feasible or not. Middle: every trial's latency relative to MobileNetV2 against its FLOPs (why cnnlab
    measures). Right: each final model's test top-1 against the independent interleaved latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in csv.DictReader(trials_csv.open()) if r["latency_ms"]]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.8))
    trained = [r for r in rows if r["val_acc"]]
    for state, marker, label in (("complete", "o", "trained"), ("pruned", "v", "stopped early")):
        pick = [r for r in trained if r["state"] == state]
        left.scatter([trial_speedup(r) for r in pick], [100 * float(r["val_acc"]) for r in pick],
                     c=["tab:blue" if r["feasible"] == "True" else "tab:grey" for r in pick], marker=marker, s=20,
                     label=f"{label} ({len(pick)})")
    untrained = [trial_speedup(r) for r in rows if not r["val_acc"]]  # over a constraint: timed, not trained
    if untrained:
        bottom = min([100 * float(r["val_acc"]) for r in trained] or [0.0]) - 3
        left.scatter(untrained, [bottom] * len(untrained), c="tab:grey", marker="x", s=20,
                     label=f"over a constraint, not trained ({len(untrained)})")
    if min_speedup:
        left.axvline(min_speedup, color="tab:red", ls="--", lw=1, label=f"search.min_speedup={min_speedup:g}")
    left.set(xscale="log", xlabel="speed-up over MobileNetV2 (search harness: paired rounds, batch 1)",
             ylabel="val top-1 after the proxy training, %", title="search trials")
    left.legend(fontsize=8)
    rho, timed = correlation
    middle.scatter([float(r["flops"]) / 1e6 for r in rows], [1 / trial_speedup(r) for r in rows], s=20,
                   c="tab:purple")
    middle.set(xscale="log", yscale="log", xlabel="MFLOPs per image",
               ylabel="latency relative to MobileNetV2 (paired)",
               title=f"measured latency vs FLOPs, {timed} timed candidates: Spearman ρ = "
                     + ("n/a" if rho is None else f"{rho:.2f}"))
    for name, (latency, acc) in finals.items():
        right.scatter(latency, acc, s=40, c="tab:red" if name == "searched" else "tab:green")
        right.annotate(name, (latency, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    right.set(xscale="log", xlabel="latency, ms (independent interleaved timing, batch 1)", ylabel=f"{split} top-1, %",
              title="final models, same training budget")
    from matplotlib.ticker import ScalarFormatter

    for axis in (left.xaxis, middle.xaxis, middle.yaxis, right.xaxis):  # 0.5, 2 — not 5×10⁻¹, 2×10⁰
        axis.set_major_formatter(ScalarFormatter())
        if axis is not right.xaxis:  # a decade or more wide: its minor labels would overlap
            axis.set_minor_formatter(ScalarFormatter())
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def spearman_of(search: dict) -> tuple[float | None, int]:
    """The search's own latency-vs-FLOPs rank correlation and the number of timed candidates it used (run.json:
    each candidate once, relative to the reference when there is one)."""
    summary = search.get("search") or {}
    return summary.get("spearman_latency_flops"), int(summary.get("spearman_candidates") or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=28, help="Fashion-MNIST is 28 px; 32 also fits")
    parser.add_argument("--epochs", type=int, default=10, help="training of the chosen model and of MobileNetV2")
    parser.add_argument("--label-fraction", type=float, default=1.0,
                        help="dataset.label_fraction for every training: a seeded class-balanced share of the "
                             "training split (the budget; the test set stays whole)")
    parser.add_argument("--baselines", default="mobilenet_v3_small,mobilenet_v2_w0.5,resnet18,lenet5",
                        help="hand-picked models trained with the same budget ('' for none)")
    parser.add_argument("--population", type=int, default=10, help="search.population (NSGA-II generation)")
    parser.add_argument("--plot", help="write the trials / final models plot here (PNG)")
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-fraction", type=float, default=0.2, help="share of the training split per trial")
    parser.add_argument("--speedup", type=float, default=1.5,
                        help="search.min_speedup over MobileNetV2 (the search's reference; 0: no constraint)")
    parser.add_argument("--search-resolution", action="store_true",
                        help="also search the input resolution (default: both models at --image-size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for both trainings, repeatable (e.g. optim=adamw)")
    parser.add_argument("--outputs", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="synthetic data, 3 trials, 1 epoch: proves it runs")
    parser.add_argument("--json")
    args = parser.parse_args()
    print_machine(args.threads)
    if args.quick:
        args.trials, args.epochs, args.proxy_epochs, args.rounds, args.iterations = 3, 1, 1, 2, 20
        args.image_size, args.proxy_fraction, args.speedup, args.population = 32, 1.0, 1.1, 3
        args.baselines = "lenet5,mobilenet_v2_w0.5"
    data = QUICK if args.quick else ["dataset=fashion_mnist", f"dataset.image_size={args.image_size}",
                                     f"dataset.label_fraction={args.label_fraction}"]
    baselines = [name for name in args.baselines.split(",") if name]
    split = "val" if args.quick else "test"  # the synthetic set has no test split
    train = [*data, f"trainer.epochs={args.epochs}", *args.train_override]

    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(args.outputs or tmp) / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        constraint = ["search.reference=mobilenet_v2", *([f"search.min_speedup={args.speedup}"] if args.speedup else [])]

        started = time.perf_counter()
        same_size = [] if args.search_resolution else ["space.params.resolution.choices=[1.0]"]
        search = cnnlab(outputs, args.threads, "search", "space=mobilenet", *same_size, *train,
                        f"search.trials={args.trials}", f"search.population={args.population}",
                        f"search.proxy_epochs={args.proxy_epochs}", f"search.proxy_train_fraction={args.proxy_fraction}",
                        f"search.latency.threads={args.threads}", "search.latency.batch_size=1", *constraint,
                        *(QUICK_TIMING if args.quick else []))
        search_s = time.perf_counter() - started
        chosen = search["search"]["chosen"]
        print(f"search: {search['search']['finished']} trials ({search['search']['pruned']} stopped early) in "
              f"{search_s / 60:.1f} min; chosen trial {chosen['trial']}: {chosen['arch']}", flush=True)

        runs, train_s = {"searched": search}, {}
        for name in ["mobilenet_v2", *baselines]:
            started_baseline = time.perf_counter()
            runs[name] = cnnlab(outputs, args.threads, "pretrain", *baseline_overrides(name), *train)
            train_s[name] = time.perf_counter() - started_baseline
            print(f"baseline {name}: val top-1 {100 * runs[name]['metrics']['val_acc']:.2f} % "
                  f"({train_s[name] / 60:.1f} min)", flush=True)
        files, acc = {}, {}
        for key, run in runs.items():
            exported = cnnlab(outputs, args.threads, "export", f"source={run['run_dir']}")
            files[key] = Path(exported["run_dir"]) / "model.onnx"
            acc[key] = test_acc(outputs, args.threads, run, split)
        latency = interleaved_latency(files, args.threads, args.rounds, args.iterations)
        trials_csv = Path(search["run_dir"]) / "trials.csv"
        rho, timed = spearman_of(search)
        if args.plot:
            plot(Path(args.plot), trials_csv, {key: (latency[key], acc[key]) for key in runs}, args.speedup or None,
                 f"Fashion-MNIST{' (quick)' if args.quick else ''} at {args.image_size} px, {args.epochs} epochs "
                 f"on {args.label_fraction:g} of the training split, {args.threads} threads, onnxruntime CPU", split,
                 (rho, timed))

    speedup = latency["mobilenet_v2"] / latency["searched"]
    params = {key: run["model"]["params"] for key, run in runs.items()}
    print(f"\nFashion-MNIST{' (quick: synthetic)' if args.quick else ''} at {args.image_size} px, {args.epochs} "
          f"epochs each, {args.threads} threads, onnxruntime CPU, batch 1")
    for key in runs:
        versus = "the reference" if key == "mobilenet_v2" else \
            f"{ratio_text(latency['mobilenet_v2'] / latency[key])} than MobileNetV2"
        print(f"  {key:20s} {split} top-1 {acc[key]:6.2f} %   {latency[key]:7.3f} ms ({versus})   "
              f"{params[key]:>10,} params")
    print(f"  searched vs MobileNetV2 (independent interleaved timing): {ratio_text(speedup)};  accuracy difference "
          f"{acc['searched'] - acc['mobilenet_v2']:+.2f} points")
    print(f"  search wall time {search_s / 60:.1f} min for {search['search']['finished']} trials; the search's own "
          f"paired ratio for its choice: {ratio_text(chosen['speedup'])}")
    print(f"  latency (relative to MobileNetV2) vs FLOPs over {timed} timed candidates: Spearman rho = "
          + ("n/a (fewer than 3)" if rho is None else f"{rho:.3f}"))
    dump(args.json, {"args": vars(args), "chosen": chosen, "search_seconds": search_s, "accuracy": acc, "latency_ms": latency,
                     "speedup": speedup, "params": params, "spearman_latency_flops": rho, "timed_trials": timed,
                     "baselines": baselines, "baseline_train_seconds": train_s})


if __name__ == "__main__":
    main()
