"""Benchmark: does quantization-aware training recover what post-training quantization loses, at the same speed?
Issue "cnnlab quantize": show it on a model where PTQ loses accuracy — MobileNetV2 (depthwise convolutions,
ReLU6) is the classic case.

1. the FP32 model: `cnnlab finetune finetune.mode=full` from ImageNet weights when torchvision's file is in the
   torch hub cache, else `cnnlab pretrain` — on scikit-learn's real handwritten digits (--image-size, 96 px by
   default; --dataset synthetic: the embedded images);
2. four INT8 models of it, all in the same QDQ U8xS8 format so that only the method differs:
   PTQ per-channel and per-tensor weights (`cnnlab quantize quantize.format=qdq_u8s8 [quantize.per_channel=false]`),
   QAT per-channel and per-tensor (`cnnlab quantize quantize.mode=qat trainer.epochs=E ...`);
   per-tensor weights are where depthwise convolutions hurt PTQ most (one scale for channels whose ranges differ
   by orders of magnitude);
3. a control for QAT's extra training: the FP32 model trained for the same --qat-epochs at QAT's learning rate
   (`cnnlab finetune model.weights=RUN finetune.mode=full finetune.backbone_lr_scale=1`), then PTQ per-channel
   of it — so "QAT recovers" is measured against PTQ of a model that got the same training, not against one
   that got less (an under-trained source gains from any extra epochs);
4. every accuracy is the INT8 ONNX file's own, measured by each run on the validation split; latency: each run's
   harness, plus an independent interleaved timing here of the FP32 export and the INT8 model.onnx files.

    python benchmarks/quantize_qat.py [--model mobilenet_v2] [--image-size 96] [--epochs 10] [--qat-epochs 2]
                                      [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import add_train_and_time_arguments, data_overrides, print_machine
from quantize_common import (QUICK_DATA, QUICK_TIMING, cnnlab, export_dense, independent_latency, quantize,
                             train_dense)

VARIANTS = {
    "ptq per-channel": ["quantize.mode=ptq", "quantize.format=qdq_u8s8"],
    "ptq per-tensor": ["quantize.mode=ptq", "quantize.format=qdq_u8s8", "quantize.per_channel=false"],
    "qat per-channel": ["quantize.mode=qat"],
    "qat per-tensor": ["quantize.mode=qat", "quantize.per_channel=false"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    add_train_and_time_arguments(parser, image_size=96, epochs=10, epochs_help="FP32 training epochs", rounds=5,
                                 iterations=30)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="timing batch size")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: small synthetic data at 32 px, 1 epoch each, short timing")
    args = parser.parse_args()
    data = data_overrides(args)
    extra: list[str] = []
    if args.quick:
        args.epochs, args.qat_epochs, args.rounds, args.iterations = 1, 1, 2, 5
        data, extra = QUICK_DATA, QUICK_TIMING
    print_machine(args.threads)
    print(f"onnxruntime CPU, {args.threads} intra-op threads, batch {args.batch}; data: {' '.join(data)}")

    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "outputs"
        dense, how = train_dense(outputs, args.threads, args.model, data, args.epochs)
        size = dense["dataset"]["image_size"]
        print(f"\n{args.model}: {how}, {args.epochs} epochs, {size} px, val acc {dense['metrics']['val_acc']:.2%}")
        runs = {}
        for name, overrides in VARIANTS.items():
            # No accuracy budget: every variant is recorded and compared here, over budget or not.
            _, runs[name] = quantize(outputs, args.threads, dense, *overrides, f"trainer.epochs={args.qat_epochs}",
                                     "quantize.max_acc_drop=100", *extra)
        qat_lr = runs["qat per-channel"]["quantize"]["qat"]["lr"]
        control = cnnlab(outputs, args.threads, "finetune", f"model={args.model}", f"model.weights={dense['run_dir']}",
                         "finetune.mode=full", "finetune.backbone_lr_scale=1", f"optim.lr={qat_lr}",
                         f"trainer.epochs={args.qat_epochs}", *data)
        _, runs["ptq of control"] = quantize(outputs, args.threads, control, *VARIANTS["ptq per-channel"],
                                             "quantize.max_acc_drop=100", *extra)
        files = {"fp32": export_dense(dense, Path(tmp) / "fp32.onnx"),
                 **{name: Path(run["run_dir"]) / "model.onnx" for name, run in runs.items()}}
        latency = independent_latency(files, size, args.threads, args.batch, args.rounds, args.iterations)

    fp32_acc = runs["ptq per-channel"]["metrics"]["fp32_val_acc"]
    control_acc = runs["ptq of control"]["metrics"]["fp32_val_acc"]
    print(f"\n{'variant':16} {'val acc':>8} {'Δ pts':>6} {'ms':>7} {'speed-up':>9} {'harness':>8}")
    print(f"{'fp32':16} {fp32_acc:8.2%} {'':>6} {latency['fp32']:7.2f} {'1.00x':>9}")
    print(f"{'fp32 control':16} {control_acc:8.2%} {100 * (control_acc - fp32_acc):+6.2f}   (+{args.qat_epochs} epochs "
          f"at the QAT learning rate)")
    rows = []
    for name, run in runs.items():
        m = run["metrics"]
        row = {"variant": name, "acc": m["val_acc"], "delta_pts": 100 * (m["val_acc"] - fp32_acc),
               "ms": latency[name], "speedup": latency["fp32"] / latency[name], "harness": m["speedup"],
               "qat_fake_quant_acc": (run["quantize"].get("qat") or {}).get("fake_quant_val_acc")}
        rows.append(row)
        print(f"{name:16} {row['acc']:8.2%} {row['delta_pts']:+6.2f} {row['ms']:7.2f} {row['speedup']:8.2f}x "
              f"{row['harness']:7.2f}x")
    if not args.quick:
        for kind in ("per-channel", "per-tensor"):
            ptq, qat = (next(r for r in rows if r["variant"] == f"{m} {kind}") for m in ("ptq", "qat"))
            print(f"{kind}: PTQ {ptq['delta_pts']:+.2f} pts, QAT {qat['delta_pts']:+.2f} pts "
                  f"({qat['delta_pts'] - ptq['delta_pts']:+.2f} recovered); QAT/PTQ latency "
                  f"{qat['ms'] / ptq['ms']:.2f}")
        same_training = next(r for r in rows if r["variant"] == "ptq of control")
        qat = next(r for r in rows if r["variant"] == "qat per-channel")
        print(f"same training budget: QAT {qat['acc']:.2%} vs PTQ of the control {same_training['acc']:.2%} "
              f"({100 * (qat['acc'] - same_training['acc']):+.2f} pts)")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "data": data, "fp32_acc": fp32_acc,
                                               "fp32_control_acc": control_acc,
                                               "fp32_ms": latency["fp32"], "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
