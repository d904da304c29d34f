"""Benchmark: measured CPU latency speed-up of channel pruning vs its FLOPs reduction, with accuracy after
recovery — the honest curve that MAC-ratio "speed-ups" hide.
Goal (issue "cnnlab prune"): ResNet-18 at prune.ratio=0.5 >= 2.5x faster on CPU under onnxruntime, within
1 point of the dense accuracy after recovery.

For each model it runs the real command line:
  1. the dense model: `cnnlab finetune finetune.mode=full` from ImageNet weights when torchvision's file
     is in the torch hub cache, else `cnnlab pretrain` (the script says which) — on scikit-learn's real
     handwritten digits at 96 px by default (--dataset synthetic: the embedded procedural images);
  2. per ratio, `cnnlab prune source=DENSE prune.ratio=R` (l2 importance, prune.round_to=8, recovery of
     --recovery-epochs), which itself exports dense and pruned ONNX and times both with cnnlab's harness
     in the same run (column "harness");
  3. an independent timing here: the dense model exported once, then plain onnxruntime sessions of the
     dense and every pruned model.onnx, run in interleaved rounds (dense, pruned, dense, ...) with the
     same threads and batch, median of the rounds' medians (column "independent").
Ratios are pruned / dense (params, FLOPs) and dense / pruned (latency), all against the dense model
timed in the same run.

    python benchmarks/prune_speedup.py [--models resnet18,resnet50,mobilenet_v2] [--ratios 0.3,0.5,0.7]
                                       [--threads N] [--epochs 10] [--recovery-epochs 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


from _common import (QUICK_DATA, add_train_and_time_arguments, cnnlab, data_overrides, export_dense,
                     independent_latency, print_machine, train_dense)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,resnet50,mobilenet_v2")
    parser.add_argument("--ratios", default="0.3,0.5,0.7")
    add_train_and_time_arguments(parser, image_size=96, epochs=10, epochs_help="dense training epochs", rounds=7,
                                 iterations=50)
    parser.add_argument("--recovery-epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="timing batch size")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: resnet18, ratio 0.5, small synthetic data at 32 px, 1 epoch, short timing")
    args = parser.parse_args()
    data = data_overrides(args)
    if args.quick:
        args.models, args.ratios, args.epochs, args.recovery_epochs = "resnet18", "0.5", 1, 1
        args.rounds, args.iterations = 3, 10
        data = QUICK_DATA
    models, ratios = args.models.split(","), [float(r) for r in args.ratios.split(",")]
    print_machine(args.threads)
    print(f"onnxruntime CPU, {args.threads} intra-op threads, batch {args.batch}; data: {' '.join(data)}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        for model in models:
            dense, how = train_dense(outputs, args.threads, model, data, args.epochs)
            size = dense["dataset"]["image_size"]
            print(f"\n{model}: {how}, {args.epochs} epochs, val acc {dense['metrics']['val_acc']:.2%} "
                  f"({dense['dataset']['name']}, {size} px)")
            onnx_files = {"dense": export_dense(dense, Path(tmp) / f"{model}-dense.onnx")}
            runs = {}
            for ratio in ratios:
                runs[ratio] = cnnlab(outputs, args.threads, "prune", f"source={dense['run_dir']}",
                                     f"prune.ratio={ratio}", f"trainer.epochs={args.recovery_epochs}",
                                     f"prune.bench_threads={args.threads}", f"prune.bench_batch={args.batch}")
                onnx_files[ratio] = Path(runs[ratio]["run_dir"]) / runs[ratio]["artifacts"]["onnx"]
            latency = independent_latency(onnx_files, size, args.threads, args.batch, args.rounds, args.iterations)
            for ratio, run in runs.items():
                m = run["metrics"]
                rows.append({"model": model, "ratio": ratio, "params": m["params_after"] / m["params_before"],
                             "flops": m["flops_after"] / m["flops_before"], "harness": m["speedup"],
                             "dense_ms": latency["dense"], "pruned_ms": latency[ratio],
                             "independent": latency["dense"] / latency[ratio], "acc_dense": m["acc_before"],
                             "acc_pruned": m["acc_after_prune"], "acc_recovered": m["acc_after_recovery"],
                             "onnx_mb": m["onnx_bytes_after"] / 1e6})

    print(f"\n{'model':13} {'ratio':>5} {'params':>7} {'FLOPs':>6} {'speed-up':>9} {'speed-up':>12} "
          f"{'dense ms':>9} {'pruned ms':>10} {'acc dense':>10} {'pruned':>7} {'recovered':>10} {'Δ pts':>6}")
    print(f"{'':13} {'':>5} {'×dense':>7} {'×dense':>6} {'harness':>9} {'independent':>12}")
    for r in rows:
        recovered = r["acc_recovered"] if r["acc_recovered"] is not None else r["acc_pruned"]
        print(f"{r['model']:13} {r['ratio']:5.2f} {r['params']:7.3f} {r['flops']:6.3f} {r['harness']:8.2f}x "
              f"{r['independent']:11.2f}x {r['dense_ms']:9.2f} {r['pruned_ms']:10.2f} {r['acc_dense']:10.2%} "
              f"{r['acc_pruned']:7.2%} {recovered:10.2%} {100 * (recovered - r['acc_dense']):+6.2f}")
    goal = [r for r in rows if r["model"] == "resnet18" and r["ratio"] == 0.5]
    if goal and not args.quick:
        r = goal[0]
        delta = 100 * ((r["acc_recovered"] or r["acc_pruned"]) - r["acc_dense"])
        met = r["independent"] >= 2.5 and delta >= -1.0
        print(f"\ngoal (resnet18, ratio 0.5: >= 2.5x faster, within 1 point): {r['independent']:.2f}x, "
              f"{delta:+.2f} pts -> {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "batch": args.batch, "data": data,
                                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
