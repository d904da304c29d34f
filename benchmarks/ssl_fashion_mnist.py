"""Benchmark (issue 17): what self-supervised pretraining buys on Fashion-MNIST at a stated CPU budget.

Per seed, through the real command line (each step a separate `cnnlab` process, as a user runs them):
  1. pretrain the backbone on the same `--train-images` (a seeded class-balanced subset of the 54,000 training
     images, dataset.label_fraction, dataset.seed fixed) for `--epochs`, once per method: every `--methods`
     entry (simclr, simsiam: labels unused) and `method=supervised` (labels used) — the same images × epochs;
  2. linear probe: `cnnlab finetune model.weights=RUN finetune.mode=linear finetune.new_head=true` (frozen backbone,
     cached features, a fresh head for every backbone) on the labels of the same `--train-images`, for the
     self-supervised backbones, the supervised one and a random-init one (`model.weights=none`), each then scored
     by `cnnlab evaluate split=test` on the official 10,000 test images. Each probe runs twice: on standardised
     features (the product's default, finetune.standardize_features) and on raw ones (=false, the probe before
     2026-12-03). Prints the share of the gap between random init and supervised that each self-supervised
     backbone closes, for both probes (issue 17's goal for SimCLR: ≥ 60 %);
  3. label efficiency: `finetune.mode=full` on `dataset.label_fraction` = each `--fractions` entry (of all 54,000
     training labels), initialised from each `--methods` backbone vs from scratch (model.weights=none), same
     labels, same epochs; test accuracy (goal at 1 %: ≥ +5 points). Beside it, the cheap alternative on the same
     labels: a linear probe of each self-supervised backbone (`finetune.mode=linear`, --probe-epochs);
  4. the kNN monitor's accuracy per epoch (run.json history) of every self-supervised run: a PNG (--plot).
Every step's wall time is printed and kept in --json, with the machine (benchmarks/_common.py).

The network: `--model resnet18` (default) is torchvision's ResNet-18 with the stock 7×7 stride-2 stem and max-pool,
at `--image-size` (default 32: Fashion-MNIST's 28 px upscaled, so the last stage sees 1×1). `--stem cifar` gives it
the small-image stem the published CIFAR recipes use (3×3 stride 1, no max-pool: `model.stem=cifar`,
docs/models.md) at about 13× the compute. `--model lenet5` or `mobilenet_v3_small` are smaller backbones.

Data: the Debian package `dataset-fashion-mnist` (found offline in /usr/share/datasets/fashion-mnist/), or
torchvision's download where the network allows. --quick: tiny synthetic data (no test split: val is scored),
1 epoch of 4 steps, every step above once — proves the script works in a few minutes.

    python benchmarks/ssl_fashion_mnist.py [--train-images 10000] [--epochs 20] [--seeds 0] [--threads 2] \
        [--methods simclr simsiam] [--fractions 0.01 0.1] [--backbone-lr-scale 0.1] [--outputs DIR] \
        [--probes both|standardised|raw] [--json ssl.json] [--plot ssl_knn.png] [--quick]

Cost on 2 cores (a 2-vCPU AMD EPYC VM with AVX2, measured): SimCLR pretraining of ResNet-18 at 32 px, batch 256,
runs at ~24 images/s (each image two views; 28 px at batch 64: ~10 images/s), a forward pass at ~390 images/s.
The defaults (10,000 images × 20 epochs, 15 fine-tuning epochs) take about 8 hours per seed: SimCLR and SimSiam
~2.7 h each (training, precise BN and the kNN monitor), supervised ~1.3 h, the 10 % fine-tunes ~1 h, the rest
~30 min. `--methods simclr` saves the SimSiam run (~2.7 h). Keep the runs with --outputs on a long run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import cnnlab, dump, print_machine, usable_cores

FASHION_TRAIN = 54_000   # the 60,000 official training images less the stratified 10 % val split
QUICK = ["dataset=synthetic", "dataset.image_size=32", "dataset.train_size=256", "dataset.val_size=64",
         "dataset.num_classes=4", "trainer.max_steps_per_epoch=4"]


class Steps:
    """Runs `cnnlab` steps, printing and keeping each one's wall time."""

    def __init__(self, outputs: Path, threads: int) -> None:
        self.outputs, self.threads = outputs, threads
        self.walls: dict[str, float] = {}

    def __call__(self, label: str, *args: str) -> dict:
        started = time.perf_counter()
        record = cnnlab(self.outputs, self.threads, *args)
        self.walls[label] = round(time.perf_counter() - started, 1)
        print(f"  [{self.walls[label]:7.1f} s] {label}", flush=True)
        return record


def test_acc(steps: Steps, label: str, run: dict, split: str) -> float:
    """Top-1 (%) of the run's model.pt on `split` (evaluate's own run record)."""
    record = steps(f"{label} evaluate {split}", "evaluate", f"source={run['run_dir']}", f"split={split}")
    acc = 100 * float(record["metrics"][f"{split}_acc"])
    print(f"    {label}: {split} top-1 {acc:.2f} %", flush=True)  # kept in the log if a long run is cut short
    return acc


def knn_curve(record: dict) -> list[float]:
    """The kNN monitor's accuracy (%) after each epoch, from the run's history."""
    return [100 * float(e["knn_acc"]) for e in record["metrics"]["history"] if e.get("knn_acc") is not None]


def gap_closed(ssl: float, random: float, supervised: float) -> float | None:
    """The share (%) of the random-init → supervised gap a self-supervised backbone closes (None: no gap)."""
    return None if supervised <= random else 100 * (ssl - random) / (supervised - random)


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def plot_knn(curves: dict[str, list[list[float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (method, runs), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        for i, curve in enumerate(runs):
            ax.plot(range(1, len(curve) + 1), curve, marker="o", color=colour, alpha=0.85,
                    label=method if i == 0 else None)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("kNN top-1 on val (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--stem", choices=("imagenet", "cifar"), default="imagenet",
                        help="model.stem: cifar is the small-image stem of the CIFAR recipes (~13x the compute)")
    parser.add_argument("--train-images", type=int, default=10_000,
                        help="pretraining images (and linear-probe labels): a seeded class-balanced subset of 54,000")
    parser.add_argument("--epochs", type=int, default=20, help="pretraining epochs, every method")
    parser.add_argument("--batch-size", type=int, default=256, help="pretraining batch (SimCLR's negatives: 2B − 2)")
    parser.add_argument("--probe-epochs", type=int, default=20, help="linear probe (on cached features: cheap)")
    parser.add_argument("--finetune-epochs", type=int, default=15, help="label-efficiency fine-tunes")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.01, 0.1],
                        help="label fractions of the label-efficiency study (none: skip it)")
    parser.add_argument("--methods", nargs="+", default=["simclr", "simsiam"], choices=("simclr", "simsiam"),
                        help="self-supervised methods; each is also fine-tuned (and linear-probed) for label efficiency")
    parser.add_argument("--knn-bank", type=int, default=5000, help="method.knn.bank_size: bounds the per-epoch kNN")
    parser.add_argument("--probes", choices=("both", "standardised", "raw"), default="both",
                        help="which linear probes to run on the full labels (standardised: the product's default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--backbone-lr-scale", type=float, default=None,
                        help="finetune.backbone_lr_scale of the pretrained-init full fine-tunes (default: the "
                             "product's auto, 0.1 for pretrained weights); scratch keeps one lr (auto: 1)")
    parser.add_argument("--pretrain-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for every pretraining run, repeatable (e.g. optim=lars)")
    parser.add_argument("--outputs", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="the kNN-per-epoch PNG (default: next to --json, else ./ssl_fashion_mnist_knn.png)")
    parser.add_argument("--quick", action="store_true", help="tiny synthetic data, 1 epoch: proves the script works")
    args = parser.parse_args()
    print_machine(args.threads)

    quick = args.quick
    epochs = 1 if quick else args.epochs
    probe_epochs = finetune_epochs = 1 if quick else None
    probe_epochs = probe_epochs or args.probe_epochs
    finetune_epochs = finetune_epochs or args.finetune_epochs
    split = "val" if quick else "test"  # the synthetic set has no test split
    if quick:
        data, train_fraction, batch = QUICK, 1.0, 32
        fractions = [0.1, 0.5]  # 1 % of 256 images leaves one per class
        tune_batch = ["trainer.batch_size=16"]  # 10 % of 256 is 24 images, fewer than the default batch of 64
    else:
        train_fraction = min(1.0, args.train_images / FASHION_TRAIN)
        data = ["dataset=fashion_mnist", f"dataset.image_size={args.image_size}"]
        batch, fractions, tune_batch = args.batch_size, args.fractions, []
    subset = [f"dataset.label_fraction={train_fraction:.6g}"]
    model = [f"model={args.model}", *([f"model.stem={args.stem}"] if args.stem != "imagenet" else [])]
    budget = (f"{args.model}{' (CIFAR stem)' if args.stem == 'cifar' else ''} at {'32' if quick else args.image_size} px, "
              f"{'256 synthetic' if quick else round(train_fraction * FASHION_TRAIN)} images × {epochs} epochs, "
              f"batch {batch}, {args.threads} threads")
    print(f"budget: {budget}")

    plot = Path(args.plot) if args.plot else (Path(args.json).with_suffix(".png") if args.json
                                              else Path("ssl_fashion_mnist_knn.png"))
    probes = [p for p in (("probe", "true", "probe"), ("probe_raw", "false", "raw probe"))
              if args.probes == "both" or (args.probes == "raw") == (p[0] == "probe_raw")]
    rows: list[dict] = []
    curves: dict[str, list[list[float]]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        steps = Steps(Path(args.outputs or tmp) / "outputs", args.threads)
        for seed in args.seeds:
            print(f"seed {seed}", flush=True)
            row: dict = {"seed": seed, "probe": {}, "knn": {}, "images_per_s": {}, "efficiency": {}}
            common = [f"seed={seed}", *data]
            backbones: dict[str, dict | None] = {"random": None}
            for method in [*args.methods, "supervised"]:
                knn = [f"method.knn.bank_size={args.knn_bank}"] if method != "supervised" and not quick else []
                run = steps(f"seed {seed} pretrain {method}", "pretrain", f"method={method}", *model, *common, *subset,
                            f"trainer.epochs={epochs}", f"trainer.batch_size={batch}", *knn, *args.pretrain_override)
                backbones[method] = run
                row["images_per_s"][method] = round(float(run["metrics"]["train_images_per_s"]), 1)
                if method != "supervised":
                    row["knn"][method] = knn_curve(run)
                    curves[method].append(row["knn"][method])
                    print(f"    kNN per epoch: {' '.join(f'{a:.1f}' for a in row['knn'][method])} %", flush=True)

            # linear probes: frozen backbone, a fresh head, same labels; on standardised features (the product's
            # default) and on raw ones (finetune.standardize_features=false, the probe before 2026-12-03)
            row["probe_raw"] = {}
            for name, run in backbones.items():
                weights = ["model.weights=none", *model] if run is None else [f"model.weights={run['run_dir']}"]
                for key, standardize, label in probes:
                    probe = steps(f"seed {seed} {label} {name}", "finetune", *weights, "finetune.mode=linear",
                                  "finetune.new_head=true", f"finetune.standardize_features={standardize}", *common,
                                  *subset, f"trainer.epochs={probe_epochs}")
                    row[key][name] = test_acc(steps, f"seed {seed} {label} {name}", probe, split)
            for method in args.methods:
                for key, _, _ in probes:
                    suffix = "" if key == "probe" else "_raw"
                    row[f"gap_closed_{method}{suffix}"] = gap_closed(row[key][method], row[key]["random"],
                                                                     row[key]["supervised"])

            gentle = ([] if args.backbone_lr_scale is None
                      else [f"finetune.backbone_lr_scale={args.backbone_lr_scale:g}"])
            for fraction in fractions:  # label efficiency: each backbone vs from scratch, the same labels
                labels = [f"dataset.label_fraction={fraction:g}", *tune_batch]
                starts = [(m, [f"model.weights={backbones[m]['run_dir']}", *gentle]) for m in args.methods]  # type: ignore[index]
                for name, weights in (*starts, ("scratch", ["model.weights=none", *model])):
                    tuned = steps(f"seed {seed} full {fraction:g} {name}", "finetune", *weights, "finetune.mode=full",
                                  *common, *labels, f"trainer.epochs={finetune_epochs}")
                    row["efficiency"][f"{fraction:g}/{name}"] = test_acc(steps, f"seed {seed} full {fraction:g} "
                                                                                f"{name}", tuned, split)
                for name, weights in starts:  # the frozen backbone's answer on the same few labels
                    probe = steps(f"seed {seed} linear {fraction:g} {name}", "finetune", weights[0],
                                  "finetune.mode=linear", "finetune.new_head=true", *common, *labels,
                                  f"trainer.epochs={probe_epochs}")
                    row["efficiency"][f"{fraction:g}/{name}/linear"] = test_acc(
                        steps, f"seed {seed} linear {fraction:g} {name}", probe, split)
            rows.append(row)
            print(f"  linear probe ({split}): " + ", ".join(f"{k} {v:.2f} %" for k, v in row[probes[0][0]].items()),
                  flush=True)

    walls = steps.walls
    print(f"\n{budget}; {len(rows)} seed(s); {split} accuracy (%), mean ± std over seeds")
    for key, features in (("probe", "standardised features"), ("probe_raw", "raw features")):
        if key not in {p[0] for p in probes}:
            continue
        print(f"linear probe on {features} (frozen backbone, fresh head, the same labelled images):")
        for name in ["random", *args.methods, "supervised"]:
            print(f"  {name:<10} {mean_std([r[key][name] for r in rows])}")
        suffix = "" if key == "probe" else "_raw"
        for method in args.methods:
            closed = [r[f"gap_closed_{method}{suffix}"] for r in rows if r[f"gap_closed_{method}{suffix}"] is not None]
            verdict = (f"{mean_std(closed)} % (goal ≥ 60 %)" if closed
                       else "undefined: the supervised probe is not above random init")
            print(f"  {method} closes of the random → supervised gap: {verdict}")
    gentler = "" if args.backbone_lr_scale is None else f"; pretrained backbones at {args.backbone_lr_scale:g} x lr"
    print(f"label efficiency (finetune.mode=full, {finetune_epochs} epochs{gentler}; linear: "
          f"finetune.mode=linear, {probe_epochs} epochs), against finetune.mode=full from scratch:")
    for fraction in fractions:
        scratch = [r["efficiency"][f"{fraction:g}/scratch"] for r in rows]
        print(f"  {100 * fraction:g} % labels: scratch {mean_std(scratch)}"
              + (" (goal at 1 %: ≥ +5 points)" if fraction == 0.01 else ""))
        for method in args.methods:
            for mode, key in (("full", f"{fraction:g}/{method}"), ("linear", f"{fraction:g}/{method}/linear")):
                tuned = [r["efficiency"][key] for r in rows]
                print(f"    {method} {mode:<6} {mean_std(tuned)}, "
                      f"difference {mean_std([a - b for a, b in zip(tuned, scratch)])} points")
    print("pretraining throughput (images/s, as the engine logs it): "
          + ", ".join(f"{m} {mean_std([r['images_per_s'][m] for r in rows])}" for m in [*args.methods, "supervised"]))
    for method, runs in curves.items():
        print(f"kNN per epoch, {method}: " + " | ".join(" ".join(f"{a:.1f}" for a in c) for c in runs))
    plot_knn(curves, plot, f"kNN monitor (k=200) per epoch\n{budget}")
    print(f"wrote {plot}")
    print(f"wall time: {sum(walls.values()) / 60:.1f} min in all; per step (s): "
          + ", ".join(f"{k} {v}" for k, v in walls.items()))
    dump(args.json, {"budget": budget, "model": args.model, "epochs": epochs, "split": split,
                     "backbone_lr_scale": args.backbone_lr_scale,
                     "train_fraction": train_fraction, "batch_size": batch, "probe_epochs": probe_epochs,
                     "finetune_epochs": finetune_epochs, "fractions": fractions, "methods": args.methods,
                     "threads": args.threads, "quick": quick, "rows": rows, "walls_s": walls, "plot": str(plot)})


if __name__ == "__main__":
    main()
