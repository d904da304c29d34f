"""Benchmark: what a model and its compressed forms score on Fashion-MNIST's official 10,000 test images.

Per seed, through the real command line (each stage a separate `cnnlab` process, as a user runs them):
  1. `cnnlab pretrain model=M dataset=fashion_mnist seed=S`  — from random weights on the 54,000 training images
     (6,000 carved off as val, dataset.seed fixed so every seed sees the same split);
  2. `cnnlab export` → `cnnlab evaluate split=test` on the FP32 ONNX file (onnxruntime);
  3. `cnnlab quantize` (PTQ, format chosen by measurement) → `cnnlab evaluate split=test` on the INT8 file;
  4. `cnnlab prune prune.ratio=0.5` (channel pruning + recovery epochs) → `cnnlab evaluate split=test`;
  5. optionally (--teacher RUN) `cnnlab distill` from a trained teacher, twice per seed: the student with KD, and
     the same student from the same initial weights, seed, data order and budget on the labels alone
     (distill.alpha=0: plain cross-entropy; `--kd-epochs`); both scored by `cnnlab evaluate split=test`, the gain
     paired per seed and per test image;
  6. optionally (--qat) `cnnlab quantize quantize.mode=qat` (fake-quantized fine-tuning, `--qat-epochs`) →
     `cnnlab evaluate split=test`, paired against stage 3's PTQ file: does QAT recover what PTQ lost? With
     `--quantize-override` (both stages) a harder scheme shows a PTQ loss to recover, e.g. per-tensor weights
     (`quantize.per_channel=false`) in one format (`quantize.format=qdq_u8s8`, QAT's) and no budget to refuse it
     (`quantize.max_acc_drop=100`).
Differences (INT8 − FP32, pruned − dense, QAT − PTQ) are paired per seed; the 95 % confidence interval is Student's
t over the seeds (n − 1 degrees of freedom), marked "not significant" when it contains zero. Test accuracy also gets a
binomial standard error (one seed: sqrt(p(1 − p)/10,000) ≈ 0.3 points at 90 %).

Data: the Debian package `dataset-fashion-mnist` (found offline in /usr/share/datasets/fashion-mnist/), or
torchvision's download where the network allows.

    python benchmarks/fashion_mnist.py [--model lenet5] [--epochs 15] [--seeds 0 1 2] [--threads 2] [--quick]
    python benchmarks/fashion_mnist.py --teacher RUN --skip train --kd-epochs 5     # the KD rows alone
    python benchmarks/fashion_mnist.py --model resnet18 --seeds 0 --trained RUN    # a run trained across sessions
    python benchmarks/fashion_mnist.py --trained R0 R1 R2 --skip prune --qat --quantize-override \
        quantize.per_channel=false ...                                               # PTQ vs QAT, per-tensor

--trained takes finished `cnnlab pretrain` runs (one per seed, in --seeds order) instead of training: a network
too slow to train in one sitting is trained with `cnnlab pretrain ... resume=true` over several, then scored here.
Its training time is the sum of the epochs' own `train_seconds` from the run record.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from _common import cnnlab, dump, print_machine, usable_cores
from cnnlab.evaluation.files import OUTCOMES_FILE, read_outcomes_csv
from cnnlab.report.stats import paired_bootstrap, paired_interval

QUICK = ["dataset=synthetic", "dataset.image_size=28", "dataset.train_size=256", "dataset.val_size=64",
         "dataset.num_classes=4", "trainer.max_steps_per_epoch=4"]


def timed(outputs: Path, threads: int, *args: str) -> tuple[dict, float]:
    started = time.perf_counter()
    record = cnnlab(outputs, threads, *args)
    return record, time.perf_counter() - started


def test_acc(outputs: Path, threads: int, run: dict, quick: bool) -> tuple[float, list[bool]]:
    """Top-1 of the run's model file on the test split (evaluate's own run record) and each image's outcome."""
    split = "val" if quick else "test"  # the synthetic set has no test split
    record = cnnlab(outputs, threads, "evaluate", f"source={run['run_dir']}", f"split={split}")
    return float(record["metrics"][f"{split}_acc"]), read_outcomes_csv(Path(record["run_dir"]) / OUTCOMES_FILE)


def interval(diffs: list[float], reference: list[list[bool]], changed: list[list[bool]]) -> str:
    """mean, the 95 % Student t interval over paired per-seed differences, and the paired bootstrap interval over
    the test images (cnnlab's report/stats.py), in points."""
    mean = statistics.mean(diffs)
    low, high = paired_bootstrap(reference, changed)
    images = f"images [{100 * low:+.2f}, {100 * high:+.2f}]"
    if len(diffs) < 2:
        return f"{mean:+.2f} (1 seed: no seed interval; {images})"
    seeds = paired_interval(diffs)
    assert seeds is not None
    verdict = "not significant" if seeds[0] <= 0 <= seeds[1] else "significant"
    return f"{mean:+.2f} seeds [{seeds[0]:+.2f}, {seeds[1]:+.2f}] ({verdict}); {images}"


def kd_rows(args: argparse.Namespace, outputs: Path, data: list[str], seed: int, row: dict,
            outcomes: dict[str, dict[int, list[bool]]]) -> None:
    """The student with KD and its twin on the labels alone (distill.alpha=0: the same start, seed, data order and
    epochs), both scored on the test split; fills row["kd"], row["alone"] (%), their wall times and outcomes."""
    epochs = 1 if args.quick else (args.kd_epochs or args.epochs)
    row["kd_epochs"] = epochs
    common = ["distill", f"teacher.weights={args.teacher}", f"student={args.model}", *data, f"seed={seed}",
              f"trainer.epochs={epochs}", "distill.baseline=false", *args.kd_override]
    for name, extra in (("kd", []), ("alone", ["distill.alpha=0"])):
        run, row[f"{name}_s"] = timed(outputs, args.threads, *common, *extra)
        acc, outcomes[name][seed] = test_acc(outputs, args.threads, run, args.quick)
        row[name] = 100 * acc


def finished_run(folder: str, model: str, seed: int, dataset: str) -> dict:
    """The run.json of a completed `cnnlab pretrain` run of `model` with `seed` on `dataset` in `folder` (stops the
    benchmark otherwise), with the seconds its epochs trained for (summed over resumed sessions; validation and
    start-up not included)."""
    path = Path(folder) / "run.json"
    if not path.is_file():
        raise SystemExit(f"--trained {folder}: no run.json there (give a `cnnlab pretrain` run folder)")
    record = json.loads(path.read_text())
    arch = (record.get("model") or {}).get("name")
    if record.get("command") != "pretrain" or record.get("status") != "completed" or arch != model:
        raise SystemExit(f"--trained {folder}: a {record.get('status')} `{record.get('command')}` run of {arch}, "
                         f"not a completed pretrain run of {model}")
    config = yaml.safe_load((Path(folder) / ".hydra" / "config.yaml").read_text())
    trained_on = (record.get("dataset") or {}).get("name")
    if config.get("seed") != seed or trained_on != dataset:
        raise SystemExit(f"--trained {folder}: trained with seed {config.get('seed')} on {trained_on}, not seed {seed} "
                         f"on {dataset} (give the runs in --seeds order)")
    record["train_seconds"] = sum(e.get("train_seconds", 0.0) for e in record["metrics"].get("history", []))
    return record


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--recovery-epochs", type=int, default=3, help="prune's recovery training")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for the training run, repeatable (e.g. optim.lr=0.1)")
    parser.add_argument("--teacher", help="a trained teacher run folder: adds the KD rows (student = --model)")
    parser.add_argument("--kd-epochs", type=int, help="the KD student's and its twin's epochs (default: --epochs)")
    parser.add_argument("--kd-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for both distill runs, repeatable (e.g. distill.temperature=2)")
    parser.add_argument("--quantize-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for PTQ and QAT alike, repeatable (e.g. quantize.per_channel=false)")
    parser.add_argument("--qat", action="store_true", help="adds QAT (quantize.mode=qat) beside PTQ, paired with it")
    parser.add_argument("--qat-epochs", type=int, default=1, help="QAT's fine-tuning epochs")
    parser.add_argument("--qat-override", action="append", default=[], metavar="KEY=VALUE",
                        help="one more override for QAT alone, repeatable (e.g. trainer.max_steps_per_epoch=300)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("train", "quantize", "prune"),
                        help="stages to leave out; `train` leaves only the KD rows (needs --teacher)")
    parser.add_argument("--trained", nargs="+", metavar="RUN",
                        help="finished pretrain runs, one per seed (in --seeds order), to start from instead of training")
    parser.add_argument("--outputs", help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="tiny synthetic data: proves the script works")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.qat and "quantize" in args.skip:
        parser.error("--qat is paired with the PTQ stage: leave `quantize` out of --skip")
    if args.trained and len(args.trained) != len(args.seeds):
        parser.error(f"--trained names {len(args.trained)} run(s) for {len(args.seeds)} seed(s)")
    print_machine(args.threads)
    data = QUICK if args.quick else ["dataset=fashion_mnist"]
    epochs = 1 if args.quick else args.epochs
    recovery = 1 if args.quick else args.recovery_epochs

    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(args.outputs or tmp) / "outputs"
        rows: list[dict] = []
        outcomes: dict[str, dict[int, list[bool]]] = {"fp32": {}, "int8": {}, "qat": {}, "pruned": {}, "alone": {},
                                                       "kd": {}}
        for seed in args.seeds:
            row: dict = {"seed": seed}
            if "train" in args.skip:  # the KD rows alone
                kd_rows(args, outputs, data, seed, row, outcomes)
                rows.append(row)
                continue
            if args.trained:
                train = finished_run(args.trained[args.seeds.index(seed)], args.model, seed,
                                     "synthetic" if args.quick else "fashion_mnist")
                row["train_s"], row["trained"] = train["train_seconds"], train["run_dir"]
                row["epochs"] = len(train["metrics"]["history"])
            else:
                train, row["train_s"] = timed(outputs, args.threads, "pretrain", f"model={args.model}", *data,
                                              f"seed={seed}", f"trainer.epochs={epochs}", *args.train_override)
            row["val"] = 100 * train["metrics"]["val_acc"]
            exported = cnnlab(outputs, args.threads, "export", f"source={train['run_dir']}")
            fp32, outcomes["fp32"][seed] = test_acc(outputs, args.threads, exported, args.quick)
            row["fp32"] = 100 * fp32
            if "quantize" not in args.skip:
                quant, row["quantize_s"] = timed(outputs, args.threads, "quantize", f"source={train['run_dir']}",
                                                 *args.quantize_override)
                int8, outcomes["int8"][seed] = test_acc(outputs, args.threads, quant, args.quick)
                row["int8"] = 100 * int8
                row["int8_format"], row["int8_speedup"] = quant["metrics"]["format"], quant["metrics"]["speedup"]
            if args.qat:
                qat, row["qat_s"] = timed(outputs, args.threads, "quantize", f"source={train['run_dir']}",
                                          "quantize.mode=qat", f"trainer.epochs={1 if args.quick else args.qat_epochs}",
                                          *args.quantize_override, *args.qat_override)
                acc, outcomes["qat"][seed] = test_acc(outputs, args.threads, qat, args.quick)
                row["qat"], row["qat_speedup"] = 100 * acc, qat["metrics"]["speedup"]
            if "prune" not in args.skip:
                pruned, row["prune_s"] = timed(outputs, args.threads, "prune", f"source={train['run_dir']}",
                                               "prune.ratio=0.5", f"trainer.epochs={recovery}")
                acc, outcomes["pruned"][seed] = test_acc(outputs, args.threads, pruned, args.quick)
                row["pruned"] = 100 * acc
                row["prune_speedup"] = pruned["metrics"].get("speedup")
            if args.teacher:
                kd_rows(args, outputs, data, seed, row, outcomes)
            rows.append(row)
            print(" | ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)

    def paired(changed: str) -> tuple[list[list[bool]], list[list[bool]]]:
        return [outcomes["fp32"][r["seed"]] for r in rows], [outcomes[changed][r["seed"]] for r in rows]

    if args.teacher:
        gains = [r["kd"] - r["alone"] for r in rows]
        print(f"\nKD from {args.teacher}: student {args.model}, {rows[0]['kd_epochs']} epochs, {len(rows)} seed(s)")
        print(f"  student alone (distill.alpha=0) test top-1: {mean_std([r['alone'] for r in rows])} %")
        print(f"  student with KD test top-1: {mean_std([r['kd'] for r in rows])} %")
        kd_pairs = [outcomes["alone"][r["seed"]] for r in rows], [outcomes["kd"][r["seed"]] for r in rows]
        print(f"  KD gain: {interval(gains, *kd_pairs)} points (goal ≥ +0.5, interval above zero)")
        print(f"  wall time per seed: KD {mean_std([r['kd_s'] / 60 for r in rows])} min, alone "
              f"{mean_std([r['alone_s'] / 60 for r in rows])} min")
    if "fp32" not in rows[0]:
        dump(args.json, {"model": args.model, "epochs": epochs, "teacher": args.teacher, "rows": rows})
        return
    fp32 = [r["fp32"] for r in rows]
    n_test = 64 if args.quick else 10_000
    binomial = 100 * math.sqrt(statistics.mean(fp32) / 100 * (1 - statistics.mean(fp32) / 100) / n_test)
    epochs = rows[0].get("epochs", epochs)
    print(f"\n{args.model}, {epochs} epochs, {len(rows)} seeds, {n_test} test images (binomial SE of one run "
          f"{binomial:.2f} points)")
    what = "training time per seed (the epochs' own seconds, --trained)" if args.trained else "train wall time per seed"
    print(f"  {what}: {mean_std([r['train_s'] / 60 for r in rows])} min")
    print(f"  FP32 test top-1: {mean_std(fp32)} %  (val {mean_std([r['val'] for r in rows])} %)")
    if "int8" in rows[0]:
        print(f"  INT8 test top-1: {mean_std([r['int8'] for r in rows])} %  formats "
              f"{sorted({r['int8_format'] for r in rows})}, speed-up {mean_std([r['int8_speedup'] for r in rows])}x")
        print(f"  INT8 - FP32: {interval([r['int8'] - r['fp32'] for r in rows], *paired('int8'))} points")
    if "qat" in rows[0]:
        print(f"  QAT test top-1: {mean_std([r['qat'] for r in rows])} % after {args.qat_epochs} epoch(s), speed-up "
              f"{mean_std([r['qat_speedup'] for r in rows])}x")
        print(f"  QAT - FP32: {interval([r['qat'] - r['fp32'] for r in rows], *paired('qat'))} points")
        ptq_qat = [outcomes["int8"][r["seed"]] for r in rows], [outcomes["qat"][r["seed"]] for r in rows]
        print(f"  QAT - PTQ: {interval([r['qat'] - r['int8'] for r in rows], *ptq_qat)} points (what QAT recovers)")
    if "pruned" in rows[0]:
        speedups = [r["prune_speedup"] for r in rows if r["prune_speedup"] is not None]
        print(f"  pruned 0.5 test top-1: {mean_std([r['pruned'] for r in rows])} % after {recovery} recovery "
              f"epochs, speed-up {mean_std(speedups) if speedups else 'not measured'}x")
        print(f"  pruned - dense: {interval([r['pruned'] - r['fp32'] for r in rows], *paired('pruned'))} points")
    dump(args.json, {"model": args.model, "epochs": epochs, "teacher": args.teacher, "rows": rows})


if __name__ == "__main__":
    main()
