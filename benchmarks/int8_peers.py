"""Benchmark: cnnlab's INT8 (`cnnlab quantize`, format=auto) against the strongest INT8 peers a user could pick
instead, side by side on this machine: every subject of a row timed in the same interleaved session, and each
INT8 peer's top-1 change against its own FP32 model.

Subjects (per model; "L" = --image-size, the latency resolution; "A" = --acc-image-size, the accuracy one):
  fp32-ort        the FP32 export (cnnlab's exporter) on onnxruntime's CPU provider (ORT_ENABLE_ALL, T intra-op
                  threads, 1 inter-op);
  fp32-ov         the same file on the native `openvino` package (CPU plugin, PERFORMANCE_HINT=LATENCY,
                  INFERENCE_NUM_THREADS=T, INFERENCE_PRECISION_HINT=f32, reshaped to the static batch);
  ort-default     onnxruntime's `quantize_static(fp32.onnx, out, reader)` with nothing else set, on onnxruntime;
  nncf-default    `nncf.quantize(ov.convert_model(fp32.onnx), nncf.Dataset(images))` with nothing else set,
                  compiled like fp32-ov;
  torch-x86       PyTorch's x86 INT8 path: `torch.export.export(model, example, strict=True)`, torchao's
                  `prepare_pt2e` with `X86InductorQuantizer` (its default config), calibration, `convert_pt2e`,
                  then `torch.compile` with inductor freezing, T torch threads (compiled per T and batch);
  cnnlab@RT       `cnnlab quantize quantize.runtime=RT quantize.format=auto [quantize.engine=E]`: its
                  model.onnx, timed on RT (onnxruntime: as fp32-ort; openvino: as fp32-ov).
Every INT8 peer calibrates on the same training images (cnnlab's seeded draw: --calib-batches x 32).

Two resolutions. Accuracy: the models are trained by cnnlab at A px (scikit-learn's handwritten digits by
default; from ImageNet weights when torchvision's file is in the hub cache) and every subject is evaluated at A
on the validation split (digits: 360 images). Latency: the *same weights* exported at L px (224 by default;
the digits upscaled to L calibrate the L-px INT8 files) — the architectures' real deployment cost. cnnlab is run
at both: at A (its choice, and every candidate's top-1) and on the L-px FP32 file, whose choice is what is timed:
--cnnlab-latency speed (default) searches there with the accuracy gate off (quantize.max_acc_drop=100) — the
candidates ranked by their speed at L — and the timed format's Δ top-1 is the A run's figure for it (over the
budget there: marked so); auto runs cnnlab's defaults at L, whose gate then reads images the model was not
trained at; reuse passes the A choice as quantize.format. With A == L one set of files serves both.

Timing: per row (model x batch x threads) one session of --rounds rounds; each round times every subject once
with cnnlab.deploy.bench.measure (--warmup untimed runs, then runs until --min-iters and --min-seconds), in
the same order; per subject the round with the median p50 is kept and every round's p50 too (the per-round
ratios show whether the session was stable: cnnlab.deploy.paired).

    python benchmarks/int8_peers.py [--models resnet18,resnet50,mobilenet_v2,mobilenet_v3_large,efficientnet_b0]
        [--image-size 224] [--acc-image-size 96] [--batch-sizes 1,32] [--threads 1,2] [--rounds 3]
        [--epochs 5] [--runtimes onnxruntime,openvino] [--engine auto] [--skip-torch] [--json out.json] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (QUICK_DATA, dump, export_dense, plain_openvino, plain_session, print_machine, run_cnnlab,
                     usable_cores)
from quantize_common import QUICK_TIMING, calibration_images, onnxruntime_default_int8, run_data, train_dense

BUDGET = 1.0  # accuracy budget, points of top-1 below the subject's own FP32
# Goals (issue): speed-up of cnnlab's choice over FP32 on the same runtime at batch 1, 2 threads.
SPEED_GOALS = {"resnet18": 3.0, "resnet34": 3.0, "resnet50": 3.0, "mobilenet_v2": 2.0, "efficientnet_b0": 1.3}
FP32_KEPT_OK = {"efficientnet_b0"}  # ... or cnnlab keeping FP32 (no INT8 file faster) counts as met
EVAL_BATCH = 32  # accuracy runs in fixed batches (the last one padded): one compiled shape for torch.compile
RUNNERS = {"fp32-ort": "onnxruntime", "fp32-ov": "openvino", "ort-default": "onnxruntime",
           "nncf-default": "openvino", "torch-x86": "torch.compile"}
REFERENCE = {"ort-default": "fp32-ort", "nncf-default": "fp32-ov", "torch-x86": "torch-fp32"}
SPEED_MODE_DROP = 100  # --cnnlab-latency speed: quantize.max_acc_drop at the latency size (no gate there)
MIN_NOISE = 0.02  # two latencies closer than this are a tie (cnnlab.compress.quantization.selection.MIN_NOISE)


def first_line(text: str) -> str:
    """The informative line of an error: cnnlab's `error:` line, else the last non-empty one."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    marked = [ln for ln in lines if ln.lower().startswith(("error", "cnnlab error")) or "Error:" in ln]
    return (marked[-1] if marked else lines[-1] if lines else "failed")[:240]


# ----------------------------------------------------------------------------------------------- INT8 peers

def nncf_default_int8(fp32: Path, batches: list[np.ndarray]) -> Any:
    """NNCF's defaults on the OpenVINO model converted from the FP32 ONNX file: one calibration item per image
    (NNCF's documented use; its default subset_size 300 takes every image of a smaller set)."""
    import nncf
    import openvino as ov

    items = [image[None] for batch in batches for image in batch]
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars are not results
        return nncf.quantize(ov.convert_model(str(fp32)), nncf.Dataset(items))


def pt2e_x86_int8(model: Any, batches: list[np.ndarray]) -> Any:
    """PyTorch's x86 INT8 recipe (torchao.quantization.pt2e): export, X86InductorQuantizer's default config
    (U8 activations, S8 per-channel weights), calibrate, convert. strict=True: the default non-strict export
    leaves `source_fn_stack` empty, and the quantizer then groups both calls of a block's shared ReLU module into
    one partition ("Input partition has more than one output node", torch 2.14 + torchao 0.18)."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    from cnnlab.deploy.export import standard_layout

    example = (torch.from_numpy(batches[0][:2]),)
    batch = torch.export.Dim("batch", min=1, max=1024)
    exported = torch.export.export(standard_layout(model).eval(), example, dynamic_shapes=({0: batch},),
                                   strict=True).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for images in batches:
            prepared(torch.from_numpy(images))
    converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    return converted


def torch_compiled(module: Any) -> Any:
    """torch.compile as the X86InductorQuantizer recipe asks: inductor's freezing on (weights become constants,
    so the INT8 convolutions are prepacked for oneDNN), one static graph per input shape."""
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(module, dynamic=False)


def build_peers(fp32: Path, model: Any, batches: list[np.ndarray], tag: str, skip_torch: bool) -> dict[str, Any]:
    """The peers' INT8 models of one FP32 file, each built once: {name: path | ov.Model | GraphModule, or an
    Exception (why it could not be built)}."""
    peers: dict[str, Any] = {}
    builders: dict[str, Callable[[], Any]] = {
        "ort-default": lambda: onnxruntime_default_int8(fp32, fp32.with_name(f"{tag}-ort-default.onnx"), batches),
        "nncf-default": lambda: nncf_default_int8(fp32, batches)}
    if not skip_torch:
        builders["torch-x86"] = lambda: pt2e_x86_int8(model, batches)
    for name, build in builders.items():
        started = time.perf_counter()
        try:
            peers[name] = build()
        except Exception as exc:  # noqa: BLE001 - a peer that cannot be built is a result, not a crash
            peers[name] = RuntimeError(f"{type(exc).__name__}: {first_line(str(exc))}")
        print(f"  {tag}: {name} built in {time.perf_counter() - started:.0f} s"
              + (f" — FAILED: {peers[name]}" if isinstance(peers[name], Exception) else ""), flush=True)
    return peers


# -------------------------------------------------------------------------------------------------- cnnlab

def cnnlab_int8(outputs: Path, threads: int, source: str, runtime: str, args: argparse.Namespace,
                extra: list[str], fmt: str = "auto") -> dict[str, Any]:
    """`cnnlab quantize source=SOURCE quantize.runtime=RUNTIME quantize.format=FMT [quantize.engine=E] ...` as a
    user runs it: its choice, accuracy against its own FP32 on RUNTIME and model.onnx — or why it failed."""
    command = ["quantize", f"source={source}", f"quantize.runtime={runtime}", f"quantize.format={fmt}",
               f"quantize.bench_threads={threads}", f"quantize.calib_batches={args.calib_batches}",
               "quantize.calib_batch_size=32", *([f"quantize.engine={args.engine}"] if args.engine != "none" else []),
               *extra]
    started = time.perf_counter()
    code, record, stderr = run_cnnlab(outputs, threads, *command)
    seconds = time.perf_counter() - started
    if record is None or "quantize" not in record:
        return {"error": first_line(stderr), "command": " ".join(command), "seconds": seconds}
    metrics, report = record["metrics"], record["quantize"]
    return {"format": metrics["format"], "fp32_kept": bool(metrics.get("fp32_kept", False)), "exit": code,
            "acc": metrics["val_acc"], "fp32_acc": metrics["fp32_val_acc"],
            "delta_points": 100 * (metrics["val_acc"] - metrics["fp32_val_acc"]), "speedup": metrics.get("speedup"),
            "reason": report.get("reason"), "file": str(Path(record["run_dir"]) / "model.onnx"),
            "candidates": {c.get("name"): {"acc": c.get("acc"), "speedup": c.get("speedup"), "error": c.get("error")}
                           for c in report.get("candidates", [])},
            "command": " ".join(command), "seconds": seconds}


# ------------------------------------------------------------------------------------------------ accuracy

def validation_arrays(data: Any) -> tuple[np.ndarray, np.ndarray]:
    from cnnlab.data import make_loader

    images, labels = [], []
    for batch, targets, *_ in make_loader(data.val, 64, shuffle=False, seed=0):
        images.append(batch.float().numpy())
        labels.append(targets.numpy())
    return np.concatenate(images), np.concatenate(labels)


def top1(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 over the validation arrays in batches of EVAL_BATCH (the last padded with zeros, its padding's
    outputs dropped), so that static-shape subjects see one shape."""
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        chunk = images[start:start + EVAL_BATCH]
        count = len(chunk)
        if count < EVAL_BATCH:
            chunk = np.concatenate([chunk, np.zeros((EVAL_BATCH - count, *chunk.shape[1:]), chunk.dtype)])
        logits = np.asarray(predict(np.ascontiguousarray(chunk)))[:count]
        correct += int((logits.argmax(1) == labels[start:start + count]).sum())
    return correct / len(images)


def ort_predict(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    session = plain_session(str(path), "onnxruntime", threads)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def ov_predict(model: Any, threads: int, batch: int) -> Callable[[np.ndarray], np.ndarray]:
    request = plain_openvino(model, threads, batch).create_infer_request()
    return lambda x: request.infer({0: x}, share_inputs=True)[0]


def torch_predict(module: Any, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from cnnlab.deploy.bench import torch_threads

    def predict(x: np.ndarray) -> np.ndarray:
        with torch_threads(threads), torch.no_grad():
            return module(torch.from_numpy(x)).float().numpy()
    return predict


def accuracies(fp32: Path, model: Any, peers: dict[str, Any], images: np.ndarray, labels: np.ndarray,
               threads: int) -> dict[str, dict[str, Any]]:
    """Top-1 of every subject at the accuracy resolution, and each INT8 peer's change against its own FP32."""
    predictors: dict[str, Callable[[], Callable[[np.ndarray], np.ndarray]]] = {
        "fp32-ort": lambda: ort_predict(fp32, threads),
        "fp32-ov": lambda: ov_predict(fp32, threads, EVAL_BATCH),
        "ort-default": lambda: ort_predict(peers["ort-default"], threads),
        "nncf-default": lambda: ov_predict(peers["nncf-default"], threads, EVAL_BATCH)}
    if "torch-x86" in peers:
        predictors["torch-fp32"] = lambda: torch_predict(model.eval(), threads)  # eager: the reference
        predictors["torch-x86"] = lambda: torch_predict(torch_compiled(peers["torch-x86"]), threads)
    result: dict[str, dict[str, Any]] = {}
    for name, make in predictors.items():
        if isinstance(peers.get(name), Exception):
            result[name] = {"error": str(peers[name])}
            continue
        try:
            result[name] = {"acc": top1(make(), images, labels)}
        except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a working C++ toolchain
            result[name] = {"error": f"{type(exc).__name__}: {first_line(str(exc))}"}
    for name, reference in REFERENCE.items():
        if name in result and "acc" in result[name] and "acc" in result.get(reference, {}):
            result[name]["delta_points"] = 100 * (result[name]["acc"] - result[reference]["acc"])
            result[name]["reference"] = reference
    for name in ("fp32-ort", "fp32-ov"):
        if "acc" in result.get(name, {}):
            result[name]["delta_points"] = 0.0
    return result


# ------------------------------------------------------------------------------------------------- latency

def plan_for(batch: int, args: argparse.Namespace) -> Any:
    """The TimingPlan of one timing at `batch`: --warmup and --min-iters count batch-1 runs, so a batch-B timing
    takes ceil(N / B) of each (at least 1 warm-up and 3 timed runs): about the same images per timing, and a
    batch-32 row of a ResNet-50 does not run for many minutes. --min-seconds holds at every batch size."""
    from cnnlab.deploy.bench import TimingPlan

    return TimingPlan(warmup=max(1, math.ceil(args.warmup / batch)) if args.warmup else 0,
                      min_iters=max(3, math.ceil(args.min_iters / batch)) if batch > 1 else args.min_iters,
                      min_seconds=args.min_seconds)


def time_interleaved(steps: dict[str, Callable[[], Any]], batch: int, threads: int, rounds: int, plan: Any) -> Any:
    """Every step timed once per round, in the same order, each with cnnlab.deploy.bench.measure (warm-up, then
    min_iters and min_seconds); a PairedTiming (median round per subject, every round's p50) over subjects that
    run on different runtimes — time_paired's rule for ONNX files on one runtime, for any callables. Torch
    threads are set to `threads` throughout (onnxruntime sessions and OpenVINO models carry their own)."""
    import torch

    from cnnlab.deploy.bench import measure, summarize, torch_threads
    from cnnlab.deploy.paired import (
        PairedSettings,
        PairedTiming,
        SubjectTiming,
        median_round,
    )

    per_round: dict[str, list[Any]] = {name: [] for name in steps}
    with torch_threads(threads), torch.no_grad():
        for _ in range(rounds):
            for name, step in steps.items():
                times = measure(step, plan)
                per_round[name].append(summarize(times, backend=name, device="cpu", batch_size=batch, threads=threads,
                                                 flops=None, peak_gflops=None))
    settings = PairedSettings(batch_sizes=(batch,), threads=threads, rounds=rounds, plan=plan, runtime="mixed")
    return PairedTiming(settings, {
        name: SubjectTiming(stats={batch: median_round(r)}, p50_per_round={batch: tuple(s.p50_ms for s in r)})
        for name, r in per_round.items()})


def latency_rows(model_name: str, files: dict[str, Any], size: int, args: argparse.Namespace,
                 accuracy: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Time every subject at every (threads, batch): `files` maps a subject to an ONNX path (its runtime from
    RUNNERS, or cnnlab@RT), an ov.Model, a GraphModule (torch-x86) or an Exception."""
    import torch

    from cnnlab.deploy.bench import torch_threads
    from cnnlab.deploy.paired import spread

    rows = []
    channels = plain_session(str(files["fp32-ort"]), "onnxruntime", 1).get_inputs()[0].shape[1]
    for threads in args.threads:
        torch._dynamo.reset()  # inductor bakes the thread count into its kernels: compile again for each
        sessions: dict[str, Any] = {}
        compiled_torch = None
        for batch in args.batches_for.get(model_name, args.batch_sizes):
            images = np.random.default_rng(0).standard_normal((batch, channels, size, size), dtype=np.float32)
            steps: dict[str, Callable[[], Any]] = {}
            errors: dict[str, str] = {}
            for name, subject in files.items():
                runtime = RUNNERS.get(name) or name.split("@", 1)[1]
                if isinstance(subject, Exception):
                    errors[name] = str(subject)
                    continue
                try:
                    if runtime == "onnxruntime":
                        if name not in sessions:
                            sessions[name] = plain_session(str(subject), "onnxruntime", threads)
                        session = sessions[name]
                        feed = {session.get_inputs()[0].name: images}
                        steps[name] = lambda s=session, f=feed: s.run(None, f)
                    elif runtime == "openvino":
                        request = plain_openvino(subject, threads, batch).create_infer_request()
                        steps[name] = lambda r=request, x=images: r.infer({0: x}, share_inputs=True)
                    else:  # torch-x86: compiled for this (threads, batch) by its first run
                        if compiled_torch is None:
                            compiled_torch = torch_compiled(subject)
                        tensor = torch.from_numpy(images)
                        with torch_threads(threads), torch.no_grad():
                            started = time.perf_counter()
                            compiled_torch(tensor)
                        print(f"  torch.compile {model_name} {size} px batch {batch} {threads} threads: "
                              f"{time.perf_counter() - started:.0f} s", flush=True)
                        steps[name] = lambda m=compiled_torch, t=tensor: m(t)
                except Exception as exc:  # noqa: BLE001 - a runtime that cannot run a file is a result
                    errors[name] = f"{type(exc).__name__}: {first_line(str(exc))}"
            stage = time.perf_counter()
            timing = time_interleaved(steps, batch, threads, args.rounds, plan_for(batch, args))
            timed_s = time.perf_counter() - stage
            subjects: dict[str, dict[str, Any]] = {}
            for name in files:
                if name in errors:
                    subjects[name] = {"error": errors[name]}
                    continue
                entry: dict[str, Any] = {"p50_ms": timing[name].stats[batch].p50_ms,
                                         "p50_ms_per_round": list(timing[name].p50_per_round[batch]),
                                         "stats": timing[name].stats[batch].to_dict()}
                for reference, key in (("fp32-ort", "x_fp32_ort"), ("fp32-ov", "x_fp32_ov")):
                    if reference in steps:
                        ratios = timing.ratios(reference, name, batch)
                        entry[key] = timing.speedup(reference, name, batch)
                        entry[f"{key}_per_round"] = list(ratios)
                        entry[f"{key}_spread"] = spread(ratios)
                subjects[name] = entry
            row = {"model": model_name, "batch": batch, "threads": threads, "image_size": size,
                   "subjects": subjects, "seconds": timed_s}
            row.update(verdicts(row, accuracy, timing, args))
            rows.append(row)
            print_row(row, accuracy, args)
    return rows


def verdicts(row: dict[str, Any], accuracy: dict[str, dict[str, Any]], timing: Any,
             args: argparse.Namespace) -> dict[str, Any]:
    """The fastest subject within the accuracy budget, and the goals for each cnnlab subject."""
    batch, timed = row["batch"], {n: s for n, s in row["subjects"].items() if "p50_ms" in s}
    eligible = {n: s["p50_ms"] for n, s in timed.items()
                if accuracy.get(n, {}).get("delta_points") is not None and accuracy[n]["delta_points"] >= -args.budget}
    if not eligible:
        return {"fastest_within_budget": None, "goals": {}}
    fastest = min(eligible, key=eligible.__getitem__)
    goals: dict[str, Any] = {}
    for name in (n for n in timed if n.startswith("cnnlab@")):
        runtime = name.split("@", 1)[1]
        ratios = timing.ratios(name, fastest, batch)  # cnnlab's p50 / the fastest's, round by round
        gap = timed[name]["p50_ms"] / timed[fastest]["p50_ms"] - 1
        noise = max(spread(ratios) if len(ratios) > 1 else 0.0, MIN_NOISE)
        within = accuracy.get(name, {}).get("delta_points") is not None and accuracy[name]["delta_points"] >= -args.budget
        goal: dict[str, Any] = {"within_budget": within, "fastest": name == fastest,
                                "gap_to_fastest": gap, "noise": noise,
                                "fastest_or_within_noise": within and (name == fastest or gap <= noise)}
        target = SPEED_GOALS.get(row["model"])
        reference = "x_fp32_ort" if runtime == "onnxruntime" else "x_fp32_ov"
        if target is not None and batch == 1 and row["threads"] == 2 and reference in timed[name]:
            kept = accuracy.get(name, {}).get("fp32_kept_at_latency", False) and row["model"] in FP32_KEPT_OK
            goal["speed_goal"] = target
            goal["speedup"] = timed[name][reference]
            goal["speed_met"] = within and (timed[name][reference] >= target or kept)
        goals[name] = goal
    return {"fastest_within_budget": fastest, "goals": goals}


def spread(values: Any) -> float:
    from cnnlab.deploy.paired import spread as paired_spread

    return paired_spread(tuple(values))


# ------------------------------------------------------------------------------------------------- output

def print_row(row: dict[str, Any], accuracy: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n{row['model']} · batch {row['batch']} · {row['threads']} thread{'s' if row['threads'] > 1 else ''} — "
          f"latency at {row['image_size']} px ({args.rounds} round{'s' if args.rounds > 1 else ''}, "
          f"{row['seconds']:.0f} s); top-1 at {args.acc_image_size} px (validation; Δ vs the subject's own FP32)")
    print(f"  {'subject':20} {'runs on':14} {'format':10} {'p50 ms':>9} {'vs fp32-ort':>11} {'vs fp32-ov':>10} "
          f"{'spread':>7} {'top-1':>7} {'Δ pts':>6}")
    for name, subject in row["subjects"].items():
        acc = accuracy.get(name, {})
        runtime = RUNNERS.get(name) or name.split("@", 1)[1]
        fmt = acc.get("format_at_latency", acc.get("format", "")) if name.startswith("cnnlab@") else ""
        top = f"{acc['acc']:7.2%}" if "acc" in acc else f"{'-':>7}"
        delta = (f"{'ref':>6}" if name in ("fp32-ort", "fp32-ov") and "acc" in acc else
                 f"{acc['delta_points'] + 0.0:+6.2f}" if acc.get("delta_points") is not None else f"{'-':>6}")
        if "error" in subject:
            print(f"  {name:20} {runtime:14} {fmt:10} {'failed: ' + subject['error'][:90]}")
            continue
        ort = f"{subject['x_fp32_ort']:10.2f}x" if "x_fp32_ort" in subject else f"{'-':>11}"
        ov = f"{subject['x_fp32_ov']:9.2f}x" if "x_fp32_ov" in subject else f"{'-':>10}"
        noise = max(subject.get("x_fp32_ort_spread", 0.0), subject.get("x_fp32_ov_spread", 0.0))
        print(f"  {name:20} {runtime:14} {fmt:10} {subject['p50_ms']:9.3f} {ort} {ov} {noise:6.1%} {top} {delta}")
    fastest = row.get("fastest_within_budget")
    print(f"  fastest within {args.budget:g} point{'s' if args.budget != 1 else ''}: {fastest or '-'}")
    for name, goal in row.get("goals", {}).items():
        why = (f"{goal['gap_to_fastest']:+.1%} vs {fastest}" if goal["within_budget"] else
               "its Δ top-1 is over the budget" if accuracy.get(name, {}).get("delta_points") is not None else
               "its Δ top-1 is unknown")
        text = (f"  goal {name}: fastest within budget (or within noise {goal['noise']:.1%}): "
                f"{'met' if goal['fastest_or_within_noise'] else 'NOT met'} ({why})")
        if "speed_goal" in goal:
            text += (f"; >= {goal['speed_goal']:g}x FP32 same runtime"
                     f"{' or FP32 kept' if row['model'] in FP32_KEPT_OK else ''}: {goal['speedup']:.2f}x "
                     f"{'met' if goal['speed_met'] else 'NOT met'}")
        print(text)


# --------------------------------------------------------------------------------------------------- main

def with_size(overrides: list[str], size: int) -> list[str]:
    return [o for o in overrides if not o.startswith("dataset.image_size=")] + [f"dataset.image_size={size}"]


def cnnlab_accuracy(at_a: dict[str, Any], at_l: dict[str, Any]) -> dict[str, Any]:
    """Top-1 change of what is timed — the file cnnlab chose at the latency size — judged at the accuracy size:
    the accuracy-size run's figure for that format (its choice, or the same format among its candidates), 0 when
    cnnlab ships the FP32 model; None when that run did not evaluate the format."""
    if "error" in at_a:
        return {"error": at_a["error"]}
    entry: dict[str, Any] = {"format": at_a["format"], "fp32_kept": at_a["fp32_kept"], "fp32_acc": at_a["fp32_acc"],
                             "acc_of_choice": at_a["acc"], "delta_of_choice": at_a["delta_points"]}
    if "error" in at_l:
        return {**entry, "acc": at_a["acc"], "delta_points": at_a["delta_points"], "delta_source": "its choice"}
    timed = at_l["format"]
    entry.update(format_at_latency=timed, fp32_kept_at_latency=at_l["fp32_kept"])
    candidate = at_a["candidates"].get(timed, {})
    if at_l["fp32_kept"]:
        entry.update(acc=at_a["fp32_acc"], delta_points=0.0, delta_source="FP32 shipped")
    elif timed == at_a["format"]:
        entry.update(acc=at_a["acc"], delta_points=at_a["delta_points"], delta_source="its choice")
    elif candidate.get("acc") is not None:
        entry.update(acc=candidate["acc"], delta_points=100 * (candidate["acc"] - at_a["fp32_acc"]),
                     delta_source="the same format among its candidates")
    else:
        entry.update(delta_points=None, delta_source=f"{timed} was not evaluated at the accuracy size")
    return entry


def print_accuracy_stage(accuracy: dict[str, dict[str, Any]], cnnlab_a: dict[str, dict[str, Any]],
                         cnnlab_l: dict[str, dict[str, Any]], size_a: int, size_l: int) -> None:
    """cnnlab's choices at both sizes, and every subject's top-1 at the accuracy size."""
    for rt in cnnlab_a:
        for size, record in [(size_a, cnnlab_a[rt])] + ([(size_l, cnnlab_l[rt])] if size_l != size_a else []):
            text = (f"failed: {record['error']}" if "error" in record else
                    f"chose {record['format']}{' (FP32 kept)' if record['fp32_kept'] else ''}; FP32 top-1 there "
                    f"{record['fp32_acc']:.2%}, its choice {record['delta_points']:+.2f} pts; exit {record['exit']}, "
                    f"{record['seconds']:.0f} s — {record.get('reason') or ''}")
            print(f"  cnnlab@{rt} at {size} px: {text}", flush=True)
        entry = accuracy[f"cnnlab@{rt}"]
        if entry.get("delta_source") not in (None, "its choice"):
            print(f"  cnnlab@{rt}: the file timed is {entry.get('format_at_latency')}; its Δ top-1 at {size_a} px: "
                  f"{entry['delta_source']}")
    print(f"  top-1 at {size_a} px: " + ", ".join(
        f"{name} {entry['acc']:.2%}" + (f" ({entry['delta_points']:+.2f} vs {entry['reference']})"
                                        if "reference" in entry else "")
        if "acc" in entry else f"{name}: {entry.get('error') or entry.get('delta_source')}"
        for name, entry in accuracy.items()), flush=True)


def run_model(model: str, args: argparse.Namespace, data: list[str], extra: list[str], tmp: Path) -> dict[str, Any]:
    from cnnlab.engine.checkpoint import load_model

    outputs = tmp / "outputs"
    top_threads = max(args.threads)
    started = time.perf_counter()
    dense, how = train_dense(outputs, top_threads, model, data, args.epochs)
    trained_s = time.perf_counter() - started
    size_a, size_l = int(dense["dataset"]["image_size"]), args.image_size
    print(f"\n{model}: {how}, {args.epochs} epochs at {size_a} px ({trained_s:.0f} s)", flush=True)
    torch_model, _ = load_model(Path(dense["run_dir"]) / "model.pt")
    torch_model.eval()

    # Accuracy resolution: every subject's top-1 on the validation split.
    acc_data = run_data(dense)
    images, labels = validation_arrays(acc_data)
    batches_a = calibration_images(acc_data, args.calib_batches, 32)
    fp32_a = export_dense(dense, tmp / f"{model}-{size_a}-fp32.onnx")
    peers_a = build_peers(fp32_a, torch_model, batches_a, f"{model}-{size_a}", args.skip_torch)
    stage = time.perf_counter()
    accuracy = accuracies(fp32_a, torch_model, peers_a, images, labels, top_threads)
    print(f"  top-1 of every subject at {size_a} px ({len(labels)} validation images): "
          f"{time.perf_counter() - stage:.0f} s", flush=True)
    cnnlab_a = {rt: cnnlab_int8(outputs, top_threads, dense["run_dir"], rt, args, extra) for rt in args.runtimes}

    # Latency resolution: the same weights at L px.
    if size_l == size_a:
        fp32_l, peers_l, cnnlab_l = fp32_a, peers_a, cnnlab_a
    else:
        fp32_l = export_dense(dense, tmp / f"{model}-{size_l}-fp32.onnx", size=size_l)
        batches_l = calibration_images(run_data(dense, size=size_l), args.calib_batches, 32)
        peers_l = build_peers(fp32_l, torch_model, batches_l, f"{model}-{size_l}", args.skip_torch)
        cnnlab_l = {}
        for rt in args.runtimes:
            chosen, more = cnnlab_a[rt], [*extra, *with_size(data, size_l)]
            if args.cnnlab_latency == "reuse" and "error" not in chosen:
                if chosen["fp32_kept"]:  # cnnlab ships the FP32 file: that is what is timed
                    cnnlab_l[rt] = {**chosen, "file": str(fp32_l), "reused": True}
                    continue
                fmt = chosen["format"]
            else:
                fmt = "auto"
            if args.cnnlab_latency == "speed":  # the accuracy gate is the accuracy-size run's (cnnlab_accuracy)
                more.append(f"quantize.max_acc_drop={SPEED_MODE_DROP}")
            cnnlab_l[rt] = cnnlab_int8(outputs, top_threads, str(fp32_l), rt, args, more, fmt)
    for rt in args.runtimes:
        accuracy[f"cnnlab@{rt}"] = cnnlab_accuracy(cnnlab_a[rt], cnnlab_l[rt])
    print_accuracy_stage(accuracy, cnnlab_a, cnnlab_l, size_a, size_l)
    files: dict[str, Any] = {"fp32-ort": fp32_l, "fp32-ov": fp32_l, **peers_l}
    for rt in args.runtimes:
        record = cnnlab_l[rt]
        files[f"cnnlab@{rt}"] = RuntimeError(record["error"]) if "error" in record else Path(record["file"])
    rows = latency_rows(model, files, size_l, args, accuracy)
    return {"trained": how, "epochs": args.epochs, "accuracy_image_size": size_a, "latency_image_size": size_l,
            "validation_images": len(labels), "accuracy": accuracy,
            "cnnlab": {rt: {"at_accuracy_size": cnnlab_a[rt], "at_latency_size": cnnlab_l[rt]}
                       for rt in args.runtimes},
            "rows": rows, "seconds": time.perf_counter() - started}


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,mobilenet_v3_large,efficientnet_b0")
    parser.add_argument("--image-size", type=int, default=224, help="latency resolution (px)")
    parser.add_argument("--acc-image-size", type=int, default=96,
                        help="training and accuracy resolution (px); equal to --image-size: one set of files")
    parser.add_argument("--dataset", choices=("digits", "synthetic"), default="digits")
    parser.add_argument("--data-override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=5, help="FP32 training epochs (at --acc-image-size)")
    parser.add_argument("--batch-sizes", type=ints, default=[1, 32])
    parser.add_argument("--batches-for", action="append", default=[], metavar="MODEL=B1,B2",
                        help="other batch sizes for one model, repeatable (e.g. resnet18=1,32 with --batch-sizes 1)")
    parser.add_argument("--threads", type=ints, default=sorted({1, usable_cores()}),
                        help="timed thread counts, e.g. 1,2 (training and cnnlab's own timing use the largest)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per row")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed runs before each timing (batch 1; batch B: ceil(N/B), at least 1)")
    parser.add_argument("--min-iters", type=int, default=10,
                        help="each timing: at least this many runs (batch 1; batch B: ceil(N/B), at least 3) ...")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="... and at least this long")
    parser.add_argument("--calib-batches", type=int, default=8, help="calibration batches of 32 training images")
    parser.add_argument("--runtimes", default="onnxruntime,openvino",
                        help="cnnlab's quantize.runtime values, one cnnlab subject each")
    parser.add_argument("--engine", default="auto",
                        help="quantize.engine passed to cnnlab (onnxruntime | nncf | auto); 'none': not passed")
    parser.add_argument("--cnnlab-latency", choices=("speed", "auto", "reuse"), default="speed",
                        help="cnnlab on the latency-size file (when it differs from the accuracy size): speed = "
                             "format=auto ranked by speed there, its accuracy gate off (quantize.max_acc_drop=100: "
                             "the accuracy is judged at the accuracy size); auto = its defaults there; reuse = "
                             "quantize.format= its accuracy-size choice")
    parser.add_argument("--budget", type=float, default=BUDGET, help="accuracy budget (points)")
    parser.add_argument("--skip-torch", action="store_true", help="leave the PyTorch x86 INT8 peer out")
    parser.add_argument("--json", help="also write every figure here")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: resnet18 on small synthetic data at 32 px (one set of files for accuracy "
                             "and latency; with --image-size N, latency at N px: the two-resolution path), 1 epoch, "
                             "batch 1 and 4 at the largest --threads, 1 round of few runs")
    args = parser.parse_args()
    data = [f"dataset={args.dataset}", f"dataset.image_size={args.acc_image_size}", *args.data_override]
    extra: list[str] = []
    if args.quick:
        latency_size = args.image_size if args.image_size != parser.get_default("image_size") else 32
        args.models, args.epochs, args.image_size, args.acc_image_size = "resnet18", 1, latency_size, 32
        args.dataset = "synthetic"
        args.batch_sizes, args.rounds, args.warmup, args.min_iters, args.min_seconds = [1, 4], 1, 2, 5, 0.0
        args.threads = [max(args.threads)]
        args.calib_batches = 2
        data = with_size(QUICK_DATA, args.acc_image_size)
        extra = [o for o in QUICK_TIMING if not o.startswith("quantize.calib_batches=")]
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    args.batches_for = {} if args.quick else {
        model: ints(sizes) for model, _, sizes in (item.partition("=") for item in args.batches_for)}
    print_machine(max(args.threads))
    from importlib import metadata

    versions = []
    for package in ("openvino", "nncf", "torchao"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    print(f"peers: {' | '.join(versions)}")
    print(f"accuracy: {' '.join(data)} (trained and evaluated at {args.acc_image_size} px); latency: the same "
          f"weights at {args.image_size} px; batches {args.batch_sizes}"
          + "".join(f", {m} {b}" for m, b in args.batches_for.items())
          + f", threads {args.threads}, {args.rounds} rounds (per timing at batch 1: warm-up {args.warmup}, "
          f">= {args.min_iters} runs, >= {args.min_seconds:g} s; at batch B: ceil(N/B) runs, at least 1 and 3); "
          f"cnnlab runtimes {args.runtimes}, engine {args.engine}; budget {args.budget:g} point(s)", flush=True)

    from cnnlab.environment import fingerprint

    results: dict[str, Any] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            results[model] = run_model(model, args, data, extra, Path(tmp))
            # Written after each model: a long run that stops keeps what it measured.
            dump(args.json, {"machine": fingerprint(), "args": vars(args), "data": data,
                             "seconds": time.perf_counter() - started, "budget_points": args.budget,
                             "models": results})
    summary(results, args)
    print(f"\ntotal {(time.perf_counter() - started) / 60:.1f} min")


def summary(results: dict[str, Any], args: argparse.Namespace) -> None:
    """One line per row: the fastest subject within the budget, and how cnnlab's choices compare."""
    print(f"\nsummary (latency at {args.image_size} px, Δ top-1 at {args.acc_image_size} px):")
    print(f"  {'model':20} {'batch':>5} {'thr':>3} {'fastest within budget':24} "
          + " ".join(f"{'cnnlab@' + rt + ' (x fp32 same rt)':>34}" for rt in args.runtimes))
    for model, result in results.items():
        for row in result["rows"]:
            cells = []
            for rt in args.runtimes:
                subject, goal = row["subjects"].get(f"cnnlab@{rt}", {}), row["goals"].get(f"cnnlab@{rt}")
                key = "x_fp32_ort" if rt == "onnxruntime" else "x_fp32_ov"
                if "p50_ms" not in subject:
                    cells.append(f"{'failed':>34}")
                    continue
                mark = ("" if goal is None else " Δ?/over" if not goal["within_budget"] else
                        " fastest" if goal["fastest"] else " ~tie" if goal["fastest_or_within_noise"] else
                        f" {goal['gap_to_fastest']:+.0%}")
                cells.append(f"{subject['p50_ms']:9.3f} ms {subject.get(key, math.nan):5.2f}x{mark:>9}")
            print(f"  {model:20} {row['batch']:5d} {row['threads']:3d} {row['fastest_within_budget'] or '-':24} "
                  + " ".join(cells))


if __name__ == "__main__":
    main()
