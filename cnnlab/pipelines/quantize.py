"""`cnnlab quantize source=RUN`: an INT8 ONNX model measured to be faster than FP32 and still accurate.

1. The FP32 graph: the source's model.onnx, or its model.pt exported here; the data the source was trained
   on (calibration: a few batches of training images; evaluation: the validation split).
2. Candidates, one per format (`quantize.format=auto`: every candidate of the mode, else the one named):
   ptq — `quant_pre_process` once, calibration once, a static INT8 file per format; dynamic — a file per
   weight type; qat — fake-quantized fine-tuning of the source model, exported as QDQ.
3. Every candidate and the FP32 graph measured in this run: the accuracy of the ONNX file itself on the
   validation split and its latency on this machine, both on `quantize.runtime` (onnxruntime's own CPU
   kernels, or OpenVINO's through onnxruntime; interleaved rounds, same threads).
4. The fastest candidate within `quantize.max_acc_drop` points of FP32 becomes model.onnx (input spec and
   classes in its metadata); run.json gets every candidate's figures and why the winner won.
5. If no candidate is within the budget, model.onnx holds the most accurate one, the record is complete,
   and the run fails with the figures.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from torch import nn

from cnnlab.compress.quantization import (AUTO, CALIBRATION_CACHE, DYNAMIC_NOTE, CalibrationReader,
                                          CandidateFigures, FileTiming, Format, PtqSettings, Selection,
                                          TimingSettings, calibration_batches, candidate_formats, check_float_graph,
                                          check_node_names, drop_points, graph_input_name, preprocess,
                                          quantize_dynamic_candidate, quantize_static_candidate, quantized_ops,
                                          resolve_reduce_range, select, signed_points, slow_format_warning, speedup,
                                          time_files, within_budget)
from cnnlab.compress.quantization.calibration import calibration_shortfall
from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.data import DataBundle, make_loader
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.bench import TimingPlan
from cnnlab.deploy.bench_report import ratio_text
from cnnlab.deploy.export import ModelIdentity, copy_with_metadata, export_onnx, read_onnx_metadata
from cnnlab.deploy.ort import RUNTIME_DEVICES, evaluate_onnx, execution_providers
from cnnlab.engine.checkpoint import load_model
from cnnlab.environment import cpu_info
from cnnlab.errors import CnnlabError
from cnnlab.pipelines.bench_subject import chain_checkpoint, run_model_name
from cnnlab.pipelines.sources import check_same_classes, require_source, source_data
from cnnlab.pipelines.training import (classification_objective, dataset_record, eval_batch_size, loader_workers,
                                       make_loaders, record_warning, setup_runtime, train)
from cnnlab.runs import ONNX_FILE, Source

# The CPU runtimes an INT8 file can be timed and evaluated on: onnxruntime, openvino.
QUANTIZE_RUNTIMES = tuple(runtime for runtime, devices in RUNTIME_DEVICES.items() if "cpu" in devices)
WORK_DIR = "candidates"          # every intermediate file; deleted at the end unless quantize.keep_candidates
CALIBRATION_FILE = "calibration.json"
FP32 = "fp32"


@dataclass(frozen=True)
class QuantizeSettings:
    mode: str
    requested_format: str
    formats: tuple[Format, ...]
    ptq: PtqSettings
    reduce_range_why: str
    calib_batches: int
    calib_batch_size: int
    max_acc_drop: float              # percentage points
    lr_scale: float
    timing: TimingSettings
    keep_candidates: bool

    @classmethod
    def from_config(cls, section: DictConfig) -> "QuantizeSettings":
        mode, requested = str(section.mode), str(section.format)
        formats = tuple(candidate_formats(mode, requested))
        reduce_range, why = resolve_reduce_range(section.reduce_range)
        exclude = section.get("exclude") or []
        ptq = PtqSettings(calibrate_method=str(section.calibrate_method), percentile=float(section.percentile),
                          per_channel=bool(section.per_channel), reduce_range=reduce_range,
                          exclude=tuple(str(n) for n in ([exclude] if isinstance(exclude, str) else exclude)))
        sizes = section.bench_batch_sizes
        threads = section.get("bench_threads")
        runtime = str(section.get("runtime", "onnxruntime"))
        if runtime not in QUANTIZE_RUNTIMES:
            raise CnnlabError(f"unknown quantize.runtime={runtime}",
                              fix=f"use one of {', '.join(QUANTIZE_RUNTIMES)}")
        execution_providers("cpu", runtime=runtime)  # before any work: the OpenVINO build must be installed
        timing = TimingSettings(
            batch_sizes=tuple(int(b) for b in ([sizes] if isinstance(sizes, int) else sizes)),
            threads=int(threads) if threads not in (None, 0) else int(cpu_info()["usable_cores"] or 1),
            rounds=int(section.bench_rounds),
            plan=TimingPlan(int(section.bench_warmup), int(section.bench_min_iters), float(section.bench_min_seconds)),
            runtime=runtime)
        settings = cls(mode=mode, requested_format=requested, formats=formats, ptq=ptq, reduce_range_why=why,
                       calib_batches=int(section.calib_batches), calib_batch_size=int(section.calib_batch_size),
                       max_acc_drop=float(section.max_acc_drop), lr_scale=float(section.lr_scale), timing=timing,
                       keep_candidates=bool(section.keep_candidates))
        if settings.max_acc_drop < 0:
            raise CnnlabError(f"quantize.max_acc_drop={settings.max_acc_drop} must be 0 or more (percentage points)")
        if settings.lr_scale <= 0:
            raise CnnlabError(f"quantize.lr_scale={settings.lr_scale} must be positive")
        return settings

    @property
    def searching(self) -> bool:
        return self.requested_format == AUTO and len(self.formats) > 1

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mode": self.mode, "format": self.requested_format, "candidates": [f.name for f in self.formats],
            "per_channel": self.ptq.per_channel, "reduce_range": self.ptq.reduce_range,
            "reduce_range_why": self.reduce_range_why, "exclude": list(self.ptq.exclude),
            "max_acc_drop_points": self.max_acc_drop,
            "timing": {"runtime": self.timing.runtime, "device": "cpu", "threads": self.timing.threads,
                       "batch_sizes": list(self.timing.batch_sizes), "rounds": self.timing.rounds,
                       "warmup": self.timing.plan.warmup, "min_iters": self.timing.plan.min_iters,
                       "min_seconds": self.timing.plan.min_seconds}}
        if self.mode == "ptq":
            described.update(calibrate_method=self.ptq.calibrate_method, calib_batches=self.calib_batches,
                             calib_batch_size=self.calib_batch_size)
            if self.ptq.calibrate_method == "percentile":
                described["percentile"] = self.ptq.percentile
        if self.mode == "qat":
            described["lr_scale"] = self.lr_scale
        return described


@dataclass
class Fp32Model:
    """What is quantized: the source, its input spec and classes, and its FP32 forms."""

    source: Source
    name: str
    spec: InputSpec
    classes: list[str]
    model: nn.Module | None          # the PyTorch model, when the source chain has one (QAT needs it)
    onnx: Path | None                # the source's own FP32 ONNX file, if it has one


@dataclass
class Candidate:
    format: Format
    path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)      # acc, top5, loss, n of the file itself
    timing: FileTiming | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None                                  # why it could not be built or run

    @property
    def usable(self) -> bool:
        """Built, loaded and evaluated: it takes part in the timing and the selection."""
        return self.error is None and self.path is not None and "acc" in self.metrics


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    if ctx.explicitly_set("model", "model.name", "model.weights"):
        raise CnnlabError("quantize works on the model of source=, not model=", fix="drop model=..., pass source=RUN")
    settings = QuantizeSettings.from_config(cfg.quantize)
    fp32 = load_fp32_model(cfg, ctx, settings.mode)
    data, dataset_cfg = source_data(cfg, ctx, fp32.source, fp32.spec, train_augment=settings.mode == "qat")
    check_same_classes(data, fp32.classes)
    if len(data.val) == 0:
        raise CnnlabError(f"dataset {data.name} has no validation images to measure the INT8 model's accuracy on",
                          fix="use a dataset with a validation split")
    batches = (calibration_batches(data.train, batches=settings.calib_batches, batch_size=settings.calib_batch_size,
                                   seed=int(cfg.seed), workers=loader_workers(cfg, data))
               if settings.mode == "ptq" else None)
    shortfall = calibration_shortfall(sum(len(b) for b in batches), batches=settings.calib_batches,
                                      batch_size=settings.calib_batch_size, num_classes=len(data.classes)) \
        if batches is not None else None
    if shortfall:
        record_warning(ctx, shortfall)
    for fmt in settings.formats if settings.requested_format != AUTO else ():
        warning = slow_format_warning(fmt, settings.timing.runtime)
        if warning:
            ctx.log.warning("quantize.format=%s may not be faster on this CPU: %s", fmt.name, warning)
    ctx.log.info("quantize %s (%s, %d px) from %s: mode %s, candidates %s", fp32.name, data.name, fp32.spec.size,
                 fp32.source.path, settings.mode, ", ".join(f.name for f in settings.formats))

    work = ctx.path(WORK_DIR)
    work.mkdir(exist_ok=True)
    identity = ModelIdentity(arch=fp32.name, classes=tuple(fp32.classes), spec=fp32.spec,
                             source=fp32.source.describe(), dataset=dataset_record(data, dataset_cfg))
    fp32_path = fp32.onnx or export_onnx(fp32.model, work / f"{FP32}.onnx", identity=identity)  # type: ignore[arg-type]
    fp32_meta = read_onnx_metadata(fp32_path)
    report: dict[str, Any] = settings.describe()
    candidates = [Candidate(fmt) for fmt in settings.formats]
    if settings.mode == "qat":
        report["qat"] = build_qat_candidate(cfg, ctx, settings, fp32, data, candidates[0], work)
    else:
        report.update(build_onnx_candidates(ctx, settings, fp32_path, batches, candidates, work))
    if not ctx.is_main:
        return {}

    val_loader = make_loader(data.val, eval_batch_size(cfg), shuffle=False, seed=int(cfg.seed),
                             workers=loader_workers(cfg, data))
    fp32_metrics = evaluate_onnx(fp32_path, val_loader, desc="val (fp32 onnx)", runtime=settings.timing.runtime)
    measure_candidates(ctx, candidates, val_loader, settings)
    usable = [c for c in candidates if c.usable]
    if not usable:
        raise CnnlabError("no candidate format could be quantized and run: " +
                          "; ".join(f"{c.format.name}: {c.error}" for c in candidates),
                          fix="try quantize.mode=dynamic, other quantize.exclude nodes, or report the model")
    timings = time_files({FP32: fp32_path, **{c.format.name: c.path for c in usable}},  # type: ignore[misc]
                         settings.timing, flops=fp32_meta.get("flops"))
    for candidate in usable:
        candidate.timing = timings[candidate.format.name]
    selection = choose(settings, usable, fp32_metrics["acc"], timings[FP32])
    chosen = next(c for c in usable if c.format.name == selection.chosen)
    for candidate in usable:
        note_speed(ctx, settings, candidate, timings[FP32])
    if settings.searching and speedup(chosen.timing.p50_ms(), timings[FP32].p50_ms()) < 1.0:  # type: ignore[union-attr]
        ctx.log.warning("the fastest INT8 candidate within the budget, %s, is slower than FP32 on this machine "
                        "(small models: quantizing and dequantizing costs more than the integer arithmetic saves)",
                        chosen.format.name)

    target = write_model(ctx, identity, fp32_meta, chosen, settings)
    metrics = summary_metrics(fp32_path, fp32_metrics, timings[FP32], chosen, target, selection)
    report.update(fp32={"file": str(fp32_path) if fp32.onnx else None,
                        "origin": "the source's ONNX file" if fp32.onnx else "exported from the source for this run",
                        "val_acc": fp32_metrics["acc"], "val_top5": fp32_metrics["top5"],
                        "val_loss": fp32_metrics["loss"], "file_bytes": fp32_path.stat().st_size,
                        "latency": timings[FP32].to_dict()},
                  candidates=[describe_candidate(c, fp32_metrics["acc"], timings[FP32]) for c in candidates],
                  chosen=selection.chosen, reason=selection.reason, within_budget=selection.within_budget)
    if settings.mode == "dynamic":
        report["note"] = DYNAMIC_NOTE
    ctx.record.update(
        quantize=report, metrics=metrics, dataset=identity.dataset,
        model={"name": fp32.name, "format": "onnx", "precision": "int8", "quantization": selection.chosen,
               "mode": settings.mode, "params": fp32_meta.get("params"), "flops": fp32_meta.get("flops"),
               "image_size": fp32.spec.size, "num_classes": len(fp32.classes), "file_bytes": target.stat().st_size})
    print_summary(settings, fp32_metrics, timings[FP32], fp32_path, candidates, selection)
    if not settings.keep_candidates:
        shutil.rmtree(work, ignore_errors=True)
    if settings.mode == "dynamic":
        ctx.log.info(DYNAMIC_NOTE)
    if not selection.within_budget:
        raise CnnlabError(
            f"no INT8 candidate is within quantize.max_acc_drop={settings.max_acc_drop:g} points of the FP32 accuracy "
            f"({fp32_metrics['acc']:.2%}): {selection.reason}. model.onnx holds it; run.json has every candidate",
            fix="raise quantize.max_acc_drop, calibrate with more quantize.calib_batches or "
                "quantize.calibrate_method=entropy|percentile, keep sensitive nodes in float (quantize.exclude), "
                "or train for it (quantize.mode=qat)")
    return metrics


# ------------------------------------------------------------------------------------------------ the source
def load_fp32_model(cfg: DictConfig, ctx: RunContext, mode: str) -> Fp32Model:
    """The source as FP32: an ONNX file (with cnnlab's metadata) and/or a model.pt. PTQ prefers the source's
    own ONNX file; QAT needs the PyTorch model (an ONNX source's chain must hold its model.pt)."""
    source = require_source(cfg, ctx, want=("checkpoint", "onnx") if mode == "qat" else ("onnx", "checkpoint"))
    if source.kind == "checkpoint":
        model, checkpoint = load_model(source.path)
        own_onnx = source.run.artifact("onnx") if source.run is not None else None
        if own_onnx is not None and (quantized_ops(own_onnx)
                                     or read_onnx_metadata(own_onnx)["spec"] != checkpoint.spec):
            own_onnx = None  # not the FP32 form of this checkpoint: export it here instead
        return Fp32Model(source, checkpoint.name, checkpoint.spec, list(checkpoint.classes), model.eval(), own_onnx)
    check_float_graph(source.path)
    meta = read_onnx_metadata(source.path)
    if meta["spec"] is None or not meta["classes"]:
        raise CnnlabError(f"{source.path} has no cnnlab metadata (input size, mean/std, class names)",
                          fix="export it with `cnnlab export`, or pass the run or model.pt it came from")
    model = None
    if mode == "qat":
        checkpoint_path = chain_checkpoint(meta, source)
        if checkpoint_path is None:
            raise CnnlabError(f"quantize.mode=qat fine-tunes the PyTorch model, and {source.path} comes without one",
                              fix="pass the run or model.pt the ONNX file was exported from")
        model = load_model(checkpoint_path)[0].eval()
    # An ONNX file made before its metadata named the architecture: the source run's record still does.
    name = str(meta.get("arch") or run_model_name(source) or source.path.stem)
    return Fp32Model(source, name, meta["spec"], list(meta["classes"]), model, source.path)


# ------------------------------------------------------------------------------------------------ candidates
def build_onnx_candidates(ctx: RunContext, settings: QuantizeSettings, fp32_path: Path, batches: list | None,
                          candidates: list[Candidate], work: Path) -> dict[str, Any]:
    """ptq / dynamic: pre-process once, then one quantized file per format. In a search a format that fails
    is recorded and skipped; a format asked for by name fails the run."""
    preprocessed = preprocess(fp32_path, work / f"{FP32}_preprocessed.onnx")
    check_node_names(preprocessed, settings.ptq.exclude)
    report: dict[str, Any] = {}
    reader = None
    if batches is not None:
        reader = CalibrationReader(graph_input_name(preprocessed), batches)
        report["calibration"] = {"method": settings.ptq.calibrate_method, "batches": len(batches),
                                 "images": reader.images, "split": "train (deterministic transforms)",
                                 "ranges": f"calibrated once, reused by every format ({CALIBRATION_FILE})"
                                 if CALIBRATION_CACHE else "calibrated for every format (this onnxruntime "
                                                           "has no calibration cache)"}
    for candidate in candidates:
        target = work / f"{candidate.format.name}.onnx"
        ctx.log.info("quantizing: %s", candidate.format.name)
        try:
            if reader is not None:
                candidate.path = quantize_static_candidate(preprocessed, target, candidate.format, settings.ptq,
                                                           reader, ctx.path(CALIBRATION_FILE))
            else:
                candidate.path = quantize_dynamic_candidate(preprocessed, target, candidate.format, settings.ptq)
        except CnnlabError as err:
            if not settings.searching:
                raise
            candidate.error = err.message
            ctx.log.warning("skipping %s: %s", candidate.format.name, err.message)
    if reader is not None and ctx.path(CALIBRATION_FILE).exists():
        ctx.record.add_artifact("calibration", ctx.path(CALIBRATION_FILE))
    return report


def build_qat_candidate(cfg: DictConfig, ctx: RunContext, settings: QuantizeSettings, fp32: Fp32Model,
                        data: DataBundle, candidate: Candidate, work: Path) -> dict[str, Any]:
    """Fake-quantized fine-tuning of the source model for trainer.epochs through the one training engine
    (optim.lr x quantize.lr_scale; float32: autocast would add rounding the INT8 model does not have), then
    the QDQ export."""
    from cnnlab.compress.quantization.qat import export_qat_onnx, prepare_qat

    assert fp32.model is not None, "load_fp32_model gives QAT a PyTorch model"
    qat_cfg = OmegaConf.merge(cfg, {"trainer": {"amp": "none"}})
    assert isinstance(qat_cfg, DictConfig)
    runtime = setup_runtime(qat_cfg)
    spec = fp32.spec
    example = torch.zeros(2, spec.channels, spec.size, spec.size)
    model = prepare_qat(fp32.model, example, candidate.format, per_channel=settings.ptq.per_channel,
                        reduce_range=settings.ptq.reduce_range, exclude=settings.ptq.exclude)
    model = runtime.prepare_model(model)
    train_loader, val_loader = make_loaders(qat_cfg, runtime, data.train, data.val, workers=loader_workers(cfg, data))
    ctx.log.info("quantization-aware training: %d epoch(s) at lr %.3g", int(cfg.trainer.epochs),
                 float(cfg.optim.lr) * settings.lr_scale)
    result = train(qat_cfg, ctx, runtime, model, train_loader, val_loader,
                   objective=classification_objective(cfg, len(data.classes)), backbone_lr_scale=settings.lr_scale,
                   checkpoint=False)
    if ctx.is_main:
        candidate.path = export_qat_onnx(model, work / f"{candidate.format.name}.onnx", spec=spec,
                                         classes=fp32.classes, metadata={"arch": fp32.name})
    return {"epochs": len(result.history), "lr": float(cfg.optim.lr) * settings.lr_scale,
            "fake_quant_val_acc": result.final.get("val_acc"), "history": result.history,
            "method": "torch.ao FX prepare_qat_fx, batch norms folded, exported as QDQ"}


# ------------------------------------------------------------------------------------------------ measuring
def measure_candidates(ctx: RunContext, candidates: list[Candidate], val_loader: Any,
                       settings: QuantizeSettings) -> None:
    """The accuracy of every built file on the validation split, and what makes it INT8."""
    for candidate in candidates:
        if candidate.path is None:
            continue
        candidate.metrics = {"int8_ops": dict(quantized_ops(candidate.path))}
        if not candidate.metrics["int8_ops"]:
            candidate.notes.append("nothing was quantized (every node excluded or unsupported)")
        try:
            candidate.metrics.update(evaluate_onnx(candidate.path, val_loader, desc=f"val ({candidate.format.name})",
                                                   runtime=settings.timing.runtime))
        except CnnlabError as err:
            if not settings.searching:
                raise
            candidate.error = f"{settings.timing.runtime} cannot run it: {err.message}"
            ctx.log.warning("skipping %s: %s", candidate.format.name, candidate.error)


def choose(settings: QuantizeSettings, usable: list[Candidate], fp32_acc: float, fp32_timing: FileTiming) -> Selection:
    figures = [CandidateFigures(c.format.name, c.metrics["acc"], c.timing.p50_ms())  # type: ignore[union-attr]
               for c in usable]
    selection = select(figures, fp32_acc=fp32_acc, fp32_latency_ms=fp32_timing.p50_ms(),
                       max_drop_points=settings.max_acc_drop)
    if not settings.searching:
        how = (f"quantize.format={settings.requested_format} was asked for (no search)"
               if settings.requested_format != AUTO else f"the only {settings.mode} format")
        selection = Selection(selection.chosen, selection.within_budget, f"{how}; {selection.reason}")
    return selection


def note_speed(ctx: RunContext, settings: QuantizeSettings, candidate: Candidate, fp32_timing: FileTiming) -> None:
    """Record (and, for a format chosen by hand, warn) when a candidate is not faster than FP32 here."""
    ratio = speedup(candidate.timing.p50_ms(), fp32_timing.p50_ms())  # type: ignore[union-attr]
    if ratio >= 1.0:
        return
    known = slow_format_warning(candidate.format, settings.timing.runtime)
    candidate.notes.append(f"{ratio_text(ratio)} than FP32 on this machine" + (f" ({known})" if known else ""))
    if not settings.searching:
        ctx.log.warning("%s runs %s than FP32 on this CPU%s", candidate.format.name, ratio_text(ratio),
                        f": {known}" if known else "")


# ------------------------------------------------------------------------------------------------ results
def write_model(ctx: RunContext, identity: ModelIdentity, fp32_meta: dict[str, Any], chosen: Candidate,
                settings: QuantizeSettings) -> Path:
    """The chosen candidate as model.onnx, with the model's identity (architecture, source, dataset, classes, input
    spec), the FP32 graph's params and FLOPs, and how it was quantized."""
    quantization = {"mode": settings.mode, "format": chosen.format.name, **chosen.format.describe(),
                    "per_channel": settings.ptq.per_channel, "reduce_range": settings.ptq.reduce_range,
                    "chosen_on": f"{settings.timing.runtime} cpu, {settings.timing.threads} thread(s)"}
    target = copy_with_metadata(chosen.path, ctx.path(ONNX_FILE), identity,  # type: ignore[arg-type]
                                params=fp32_meta.get("params"), flops=fp32_meta.get("flops"),
                                extra={"quantization": quantization})
    ctx.record.add_artifact("onnx", target)
    return target


def summary_metrics(fp32_path: Path, fp32_metrics: dict[str, Any], fp32_timing: FileTiming, chosen: Candidate,
                    target: Path, selection: Selection) -> dict[str, Any]:
    timing = chosen.timing
    assert timing is not None
    metrics: dict[str, Any] = {
        "val_acc": chosen.metrics["acc"], "val_top5": chosen.metrics["top5"], "val_loss": chosen.metrics["loss"],
        "fp32_val_acc": fp32_metrics["acc"], "acc_drop": fp32_metrics["acc"] - chosen.metrics["acc"],
        "speedup": speedup(timing.p50_ms(), fp32_timing.p50_ms()),
        "onnx_bytes_fp32": fp32_path.stat().st_size, "onnx_bytes_int8": target.stat().st_size,
        "format": selection.chosen, "within_budget": selection.within_budget}
    metrics["size_ratio"] = metrics["onnx_bytes_fp32"] / metrics["onnx_bytes_int8"]
    for batch, stats in timing.stats.items():
        reference = fp32_timing.stats[batch].p50_ms
        metrics.update({f"latency_p50_ms_fp32_b{batch}": reference, f"latency_p50_ms_int8_b{batch}": stats.p50_ms,
                        f"speedup_b{batch}": reference / stats.p50_ms})
    return metrics


def describe_candidate(candidate: Candidate, fp32_acc: float, fp32_timing: FileTiming) -> dict[str, Any]:
    described: dict[str, Any] = {**candidate.format.describe(), "notes": candidate.notes}
    if candidate.error is not None:
        return {**described, "error": candidate.error}
    described.update({key: candidate.metrics.get(key) for key in ("acc", "top5", "loss", "n", "int8_ops")})
    if candidate.path is not None and candidate.path.exists():
        described["file_bytes"] = candidate.path.stat().st_size
    if candidate.timing is not None and candidate.timing.stats:
        described.update(acc_drop_points=drop_points(candidate.metrics["acc"], fp32_acc),
                         speedup=speedup(candidate.timing.p50_ms(), fp32_timing.p50_ms()),
                         latency=candidate.timing.to_dict())
    return described


def print_summary(settings: QuantizeSettings, fp32_metrics: dict[str, Any], fp32_timing: FileTiming, fp32_path: Path,
                  candidates: list[Candidate], selection: Selection) -> None:
    sizes = settings.timing.batch_sizes
    table = Table(title=f"quantize.mode={settings.mode} · {settings.timing.runtime} CPU, "
                        f"{settings.timing.threads} thread(s)",
                  title_justify="left")
    table.add_column("model")
    for column in ("val acc", "Δ pts", *(f"p50 ms b{b}" for b in sizes), "speed-up", "MB"):
        table.add_column(column, justify="right")
    table.add_column("")
    table.add_row(FP32, f"{fp32_metrics['acc']:.2%}", "", *(f"{fp32_timing.stats[b].p50_ms:.3g}" for b in sizes),
                  "reference", f"{fp32_path.stat().st_size / 1e6:.3g}", "")
    for c in candidates:
        if not c.usable:
            table.add_row(c.format.name, *[""] * (4 + len(sizes)), f"failed: {c.error}")
            continue
        assert c.timing is not None and c.path is not None
        over_budget = not within_budget(c.metrics["acc"], fp32_metrics["acc"], settings.max_acc_drop)
        mark = "chosen" if c.format.name == selection.chosen else "over budget" if over_budget else ""
        table.add_row(c.format.name, f"{c.metrics['acc']:.2%}",
                      signed_points(-drop_points(c.metrics["acc"], fp32_metrics["acc"])),
                      *(f"{c.timing.stats[b].p50_ms:.3g}" for b in sizes),
                      ratio_text(speedup(c.timing.p50_ms(), fp32_timing.p50_ms())),
                      f"{c.path.stat().st_size / 1e6:.3g}", "; ".join([mark, *c.notes]).strip("; "))
    out.print(table)
    out.print(f"chosen: {selection.reason}", soft_wrap=True)
