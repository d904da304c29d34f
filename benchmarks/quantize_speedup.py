"""Benchmark: INT8 (`cnnlab quantize`, format=auto) vs FP32 onnxruntime latency and accuracy, and vs what a user
gets from onnxruntime's `quantize_static` with its default settings — all measured in the same run.
Goals (issue "cnnlab quantize"): >= 3x faster than FP32 for the ResNets and >= 2x for MobileNetV2 at 224 px on a
VNNI CPU, batch 1 and 32, losing <= 1 point of validation accuracy.

For each model:
  1. the FP32 model: `cnnlab finetune finetune.mode=full` from ImageNet weights when torchvision's file is in
     the torch hub cache, else `cnnlab pretrain` (the script says which) — on scikit-learn's real handwritten
     digits at the benchmark's resolution (224 px by default; --dataset synthetic: the embedded images);
  2. `cnnlab quantize source=RUN quantize.bench_batch_sizes=[1,32]` (ptq, format=auto, the defaults otherwise):
     the run times and evaluates every candidate itself (columns "harness");
  3. onnxruntime's defaults, built here: `quantize_static(fp32.onnx, out, reader)` with nothing else set (QDQ,
     S8 activations, S8 per-tensor weights, MinMax, no pre-processing), calibrated on the same number of the
     same training images as cnnlab's run, evaluated on the same validation split with the same code;
  4. an independent timing here: plain onnxruntime sessions of the FP32 export, cnnlab's model.onnx and the
     default-settings file, interleaved rounds, same threads, batch 1 and 32 (columns "independent").
With --runtime openvino every file is chosen, evaluated and timed on onnxruntime's OpenVINO provider instead
(FP32 too: it stays FP32 there), in an environment where onnxruntime-openvino replaces onnxruntime.

    python benchmarks/quantize_speedup.py [--models resnet18,resnet50,mobilenet_v2,efficientnet_b0]
                                          [--image-size 224] [--epochs 5] [--threads N] [--quick]
                                          [--runtime onnxruntime|openvino]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import add_runtime_argument, add_train_and_time_arguments, data_overrides, print_machine
from quantize_common import (QUICK_DATA, QUICK_TIMING, export_dense, independent_latency, quantize, run_data,
                             train_dense)

GOALS = {"resnet18": 3.0, "resnet34": 3.0, "resnet50": 3.0, "mobilenet_v2": 2.0}


def onnxruntime_defaults(fp32: Path, target: Path, run: dict, calib_batches: int, calib_batch_size: int,
                         eval_batch: int, runtime: str) -> float:
    """What a user gets without cnnlab: quantize_static with its defaults; its validation accuracy."""
    from onnxruntime.quantization import quantize_static

    from cnnlab.compress.quantization import CalibrationReader, calibration_batches
    from cnnlab.data import make_loader
    from cnnlab.deploy.ort import evaluate_onnx

    data = run_data(run)
    batches = calibration_batches(data.train, batches=calib_batches, batch_size=calib_batch_size, seed=0)
    quantize_static(str(fp32), str(target), CalibrationReader("input", batches))
    loader = make_loader(data.val, eval_batch, shuffle=False, seed=0)
    return float(evaluate_onnx(target, loader, runtime=runtime)["acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet_b0")
    add_train_and_time_arguments(parser, image_size=224, epochs=5, epochs_help="FP32 training epochs", rounds=5,
                                 iterations=20)
    parser.add_argument("--batches", default="1,32", help="timed batch sizes")
    add_runtime_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: resnet18, small synthetic data at 32 px, 1 epoch, short timing")
    args = parser.parse_args()
    data = data_overrides(args)
    extra: list[str] = []
    if args.quick:
        args.models, args.epochs, args.rounds, args.iterations, args.batches = "resnet18", 1, 2, 5, "1,4"
        data, extra = QUICK_DATA, QUICK_TIMING
    batches = [int(b) for b in args.batches.split(",")]
    print_machine(args.threads)
    print(f"{args.runtime} CPU, {args.threads} intra-op threads, batches {batches}; data: {' '.join(data)}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        for model in args.models.split(","):
            dense, how = train_dense(outputs, args.threads, model, data, args.epochs)
            size = dense["dataset"]["image_size"]
            code, run = quantize(outputs, args.threads, dense, f"quantize.bench_batch_sizes=[{args.batches}]",
                                 f"quantize.runtime={args.runtime}", *extra)
            report, metrics = run["quantize"], run["metrics"]
            calibration = report["calibration"]
            fp32 = export_dense(dense, Path(tmp) / f"{model}-fp32.onnx")
            default_file = Path(tmp) / f"{model}-ort-defaults.onnx"
            default_acc = onnxruntime_defaults(fp32, default_file, dense, calibration["batches"],
                                               calibration["images"] // calibration["batches"], 64, args.runtime)
            files = {"fp32": fp32, "cnnlab": Path(run["run_dir"]) / "model.onnx", "ort_default": default_file}
            for batch in batches:
                latency = independent_latency(files, size, args.threads, batch, args.rounds, args.iterations,
                                              runtime=args.runtime)
                rows.append({
                    "model": model, "trained": how, "batch": batch, "format": metrics["format"], "exit": code,
                    "acc_fp32": metrics["fp32_val_acc"], "acc_cnnlab": metrics["val_acc"], "acc_default": default_acc,
                    "harness": metrics.get(f"speedup_b{batch}"), "fp32_ms": latency["fp32"],
                    "cnnlab_ms": latency["cnnlab"], "default_ms": latency["ort_default"],
                    "cnnlab_x": latency["fp32"] / latency["cnnlab"], "default_x": latency["fp32"] / latency["ort_default"],
                    "mb_fp32": fp32.stat().st_size / 1e6, "mb_int8": metrics["onnx_bytes_int8"] / 1e6,
                    "candidates": {c["name"]: {"acc": c.get("acc"), "speedup": c.get("speedup")}
                                   for c in report["candidates"]}})
            print(f"\n{model} ({how}, {args.epochs} epochs, {size} px): cnnlab chose {metrics['format']} — "
                  f"{report['reason']}")

    print(f"\n{'model':16} {'batch':>5} {'format':>9} {'fp32 ms':>8} {'int8 ms':>8} {'speed-up':>9} {'harness':>8} "
          f"{'ort-default':>12} {'acc fp32':>9} {'acc int8':>9} {'Δ pts':>6} {'acc default':>12} {'MB':>12}")
    for r in rows:
        harness = f"{r['harness']:.2f}x" if r["harness"] else "-"
        print(f"{r['model']:16} {r['batch']:5d} {r['format']:>9} {r['fp32_ms']:8.2f} {r['cnnlab_ms']:8.2f} "
              f"{r['cnnlab_x']:8.2f}x {harness:>8} {r['default_x']:11.2f}x {r['acc_fp32']:9.2%} {r['acc_cnnlab']:9.2%} "
              f"{100 * (r['acc_cnnlab'] - r['acc_fp32']):+6.2f} {r['acc_default']:12.2%} "
              f"{r['mb_fp32']:5.1f}→{r['mb_int8']:5.1f}")
    if not args.quick:
        for r in rows:
            goal = GOALS.get(r["model"])
            if goal is None:
                continue
            drop = 100 * (r["acc_fp32"] - r["acc_cnnlab"])
            met = r["cnnlab_x"] >= goal and drop <= 1.0
            print(f"goal ({r['model']}, batch {r['batch']}: >= {goal:g}x, <= 1 point): {r['cnnlab_x']:.2f}x, "
                  f"{-drop:+.2f} pts -> {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "data": data, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
