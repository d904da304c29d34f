"""The compression issues' acceptance, literally, through the command line on a real digit image folder.

  1. `cnnlab pretrain dataset=synthetic dataset.image_size=96` — a ResNet-18 backbone (no ImageNet file
     offline; with one in the torch hub cache the finetune below could start from it instead);
  2. `cnnlab finetune dataset=imagefolder dataset.root=DIGITS model.weights=latest:pretrain finetune.mode=full`
     — fine-tuned at 96 px on scikit-learn's handwritten digits written out as PNG files;
  3. `cnnlab export source=latest:finetune` — the dense FP32 ONNX;
  4. `cnnlab prune source=latest:finetune prune.method=channel prune.ratio=0.5` → its model.onnx;
  5. `cnnlab quantize source=latest:finetune quantize.runtime=RUNTIME` (format=auto) → the INT8 model.onnx;
  6. an independent timing (plain onnxruntime sessions on RUNTIME, interleaved rounds, same threads, batch 1)
     of the dense export, the pruned and the INT8 file, and each run's recorded accuracy.
Goals: pruned >= 2x faster than the dense export within 2 points; INT8 >= 2.5x faster losing <= 1 point.

    python benchmarks/acceptance_digits.py [--threads N] [--epochs 5] [--runtime onnxruntime|openvino] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import add_runtime_argument, cnnlab, independent_latency, print_machine, usable_cores
from cnnlab.data.digits import write_image_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="lenet5 at 32 px, 1 epoch, short timing")
    add_runtime_argument(parser)
    args = parser.parse_args()
    model = "resnet18"
    if args.quick:
        model, args.size, args.epochs, args.rounds, args.iterations = "lenet5", 32, 1, 2, 5
    print_machine(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_image_folder(Path(tmp) / "digits", size=32)
        outputs = Path(tmp) / "outputs"

        def run(*command: str) -> dict:
            return cnnlab(outputs, args.threads, *command)

        pre = run("pretrain", f"model={model}", "dataset=synthetic", f"dataset.image_size={args.size}",
                  f"trainer.epochs={args.epochs}")
        tuned = run("finetune", "dataset=imagefolder", f"dataset.root={folder}", "model.weights=latest:pretrain",
                    "finetune.mode=full", f"trainer.epochs={args.epochs}")
        dense = run("export", "source=latest:finetune")
        pruned = run("prune", "source=latest:finetune", "prune.method=channel", "prune.ratio=0.5",
                     f"trainer.epochs={args.epochs}")
        int8 = run("quantize", "source=latest:finetune", f"quantize.runtime={args.runtime}")
        files = {name: Path(r["run_dir"]) / "model.onnx" for name, r in
                 (("dense", dense), ("pruned", pruned), ("int8", int8))}
        latency = independent_latency(files, args.size, args.threads, 1, args.rounds, args.iterations,
                                      runtime=args.runtime)
    print(f"\n{model}: pretrained on synthetic {args.size} px (val {pre['metrics']['val_acc']:.2%}), fine-tuned on "
          f"the digit folder ({tuned['dataset']['train_size']} train / {tuned['dataset']['val_size']} val PNGs, "
          f"{args.size} px), {args.threads} threads, {args.runtime} batch 1, independent timing")
    print(f"{'model':8} {'val acc':>8} {'Δ pts':>7} {'p50 ms':>8} {'speed-up':>9}")
    base_acc = dense["metrics"]["val_acc"]
    for name, record in (("dense", dense), ("pruned", pruned), ("int8", int8)):
        acc = record["metrics"]["val_acc"]
        print(f"{name:8} {acc:8.2%} {100 * (acc - base_acc):+7.2f} {latency[name]:8.3f} "
              f"{latency['dense'] / latency[name]:8.2f}x")
    own = int8["metrics"]  # the quantize run's own figures: its harness, FP32 evaluated on the same runtime
    print(f"int8: cnnlab chose {own['format']} on {args.runtime} ({own['speedup']:.2f}x in its own timing, "
          f"{100 * (own['val_acc'] - own['fp32_val_acc']):+.2f} pts against FP32 evaluated there)")
    print("goals: pruned >= 2x within 2 points; int8 >= 2.5x losing <= 1 point")


if __name__ == "__main__":
    main()
