"""Benchmark: the same FP32 and INT8 ONNX files on onnxruntime's CPU execution provider and on its OpenVINO
execution provider — how much of the INT8 speed-up the runtime, not the file, decides.

Why: onnxruntime's CPU provider runs cnnlab's INT8 files with VNNI kernels; on CPUs with AMX-INT8 (Sapphire
Rapids and later) OpenVINO also uses AMX. This script needs the `onnxruntime-openvino` wheel, which *replaces*
the `onnxruntime` wheel (same module name): run it from an environment where it does (cnnlab's, after
`pip uninstall -y onnxruntime && pip install onnxruntime-openvino`, or a bare one with numpy and
onnxruntime-openvino only — the script needs neither torch nor cnnlab):

    ov/bin/python benchmarks/openvino_int8.py --pair resnet18=fp32.onnx,int8.onnx [--pair ...] [--threads 2]

Each pair is an FP32 file and an INT8 file of the same model (e.g. `cnnlab export` and `cnnlab quantize`
outputs, or candidates/ kept with quantize.keep_candidates=true). The baseline is the FP32 file on the CPU
provider, timed in the same interleaved rounds as the other three sessions. Latency only: the accuracy on
OpenVINO comes from `cnnlab quantize quantize.runtime=openvino`, which evaluates every file there.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import onnxruntime as ort
from _common import RUNTIME_PROVIDERS, plain_session, time_sessions, usable_cores


def input_shape(made: ort.InferenceSession, batch: int) -> tuple[int, ...]:
    dims = made.get_inputs()[0].shape
    return (batch, *(int(d) for d in dims[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", action="append", required=True, metavar="NAME=FP32.onnx,INT8.onnx")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    missing = [p for p in RUNTIME_PROVIDERS.values() if p not in ort.get_available_providers()]
    if missing:
        raise SystemExit(f"this onnxruntime ({ort.__version__}) lacks {', '.join(missing)}: "
                         "install onnxruntime-openvino in place of onnxruntime (see the docstring)")
    print(f"machine: {platform.processor() or platform.machine()} | {usable_cores()} usable cores | "
          f"onnxruntime-openvino {ort.__version__} | {args.threads} threads")
    print(f"{'model':16} {'batch':>5} {'cpu fp32':>9} {'cpu int8':>9} {'ov fp32':>9} {'ov int8':>9} "
          f"{'cpu int8 x':>10} {'ov int8 x':>10} {'ov int8 x':>10}")
    print(f"{'':16} {'':>5} {'ms':>9} {'ms':>9} {'ms':>9} {'ms':>9} {'(cpu fp32)':>10} {'(ov fp32)':>10} "
          f"{'(cpu fp32)':>10}")
    for pair in args.pair:
        name, files = pair.split("=", 1)
        fp32, int8 = files.split(",")
        sessions = {f"{kind}_{tag}": plain_session(path, runtime, args.threads)
                    for kind, path in (("fp32", fp32), ("int8", int8))
                    for tag, runtime in (("cpu", "onnxruntime"), ("ov", "openvino"))}
        for batch in (int(b) for b in args.batches.split(",")):
            first = next(iter(sessions.values()))
            feed = {first.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
                input_shape(first, batch), dtype=np.float32)}
            ms = time_sessions(sessions, feed, args.rounds, args.iterations)
            print(f"{name:16} {batch:5d} {ms['fp32_cpu']:9.2f} {ms['int8_cpu']:9.2f} {ms['fp32_ov']:9.2f} "
                  f"{ms['int8_ov']:9.2f} {ms['fp32_cpu'] / ms['int8_cpu']:9.2f}x {ms['fp32_ov'] / ms['int8_ov']:9.2f}x "
                  f"{ms['fp32_cpu'] / ms['int8_ov']:9.2f}x", flush=True)


if __name__ == "__main__":
    main()
