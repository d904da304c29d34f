"""`cnnlab quantize source=RUN`: an INT8 ONNX model measured to be faster than FP32 and still accurate.

1. Settings (compress/quantization/settings.py), the training recipe (engine/recipe.py); the FP32 graph
   (quantize_model.py): the source's model.onnx, or its model.pt exported here; the data the source was trained
   on (calibration: a few batches of training images; evaluation: the validation split).
2. Candidates, one per format (`quantize.format=auto`: every candidate of the mode, else the one named):
   ptq — `quant_pre_process` once, calibration once, a static INT8 file per format; dynamic — a file per
   weight type (compress/quantization/search.py); qat — fake-quantized fine-tuning of the source model through
   the one training engine (quantize_model.py: the recipe in float32 at optim.lr x quantize.lr_scale), exported
   as QDQ.
3. `search_formats`: every candidate and the FP32 graph measured in this run — the accuracy of the ONNX file
   itself on the validation split and its latency in one paired session (cnnlab/deploy/paired.py), both on
   `quantize.runtime` — and the fastest candidate within `quantize.max_acc_drop` points of FP32 chosen.
4. The chosen file becomes model.onnx (input spec and classes in its metadata); run.json gets every candidate's
   figures and why the winner won. If none is within the budget, model.onnx holds the most accurate one, the
   record is complete, and the run fails with the figures.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig

from cnnlab.compress.quantization import (DYNAMIC_NOTE, FP32, Calibration, CandidateResult, QuantizationResult,
                                          build_onnx_candidates, search_formats)
from cnnlab.compress.quantization.calibration import asked_for
from cnnlab.compress.quantization.formats import BF16
from cnnlab.compress.quantization.nncf_engine import AccuracyControl
from cnnlab.compress.quantization.portability import LOADS
from cnnlab.compress.quantization.search import deployable_runtimes, first_images
from cnnlab.compress.quantization.settings import QuantizeSettings
from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.export import ModelIdentity, copy_with_metadata, export_onnx, read_onnx_metadata
from cnnlab.deploy.onnx_check import fixed_batch
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.steps.quantize_model import load_fp32_model, prepared_for_qat, train_qat_candidate
from cnnlab.deploy.subject import require_batch_memory
from cnnlab.steps.sources import model_labelled, source_data
from cnnlab.steps.recording import dataset_record, record_subject, record_warning
from cnnlab.steps.training import eval_loader, loader_workers
from cnnlab.runs import ONNX_FILE
from cnnlab.wording import counted

WORK_DIR = "candidates"          # every intermediate file; deleted at the end unless quantize.keep_candidates
CALIBRATION_FILE = "calibration.json"
ACCURACY_CONTROL_IMAGES = 1000   # validation images NNCF's accuracy control evaluates on (quantize.nncf_accuracy_control)


def check(cfg: DictConfig) -> None:
    """What `cnnlab quantize` parses itself: QuantizeSettings and the recipe (cnnlab/commands.py: `check`)."""
    QuantizeSettings.from_config(cfg.quantize)
    Recipe.from_config(cfg)


@found_before_work()
def fit_fixed_batch(ctx: RunContext, settings: QuantizeSettings, batch: int, path: Path) -> QuantizeSettings:
    """`settings` for an ONNX source whose batch is fixed to `batch` (onnxsim --overwrite-input-shape 1,...): its
    calibration and timing run at that batch, said in the log; a batch the user typed that it cannot take is refused
    (probe 90: onnxruntime's "Got invalid dimensions" cut short, and a fix, quantize.mode=dynamic, that failed too)."""
    for key, sizes in (("quantize.calib_batch_size", (settings.calib_batch_size,)),
                       ("quantize.bench_batch_sizes", settings.timing.batch_sizes)):
        if ctx.explicitly_set(key) and any(size != batch for size in sizes):
            raise CnnlabError(f"{path} has a fixed batch dimension of {batch}, and {key}={','.join(map(str, sizes))} "
                              "would feed it other batches", fix=f"use {key}={batch if 'calib' in key else [batch]}, "
                                                                 "or export the model with a dynamic batch")
    # as many calibration images as asked (batches x size), not batches of `batch` (probe 131: 8 images, not 256);
    # quantize.calib_batches typed counts batches of the file's own batch (calib_batch_size cannot differ from it)
    asked = (settings.calib_batches,
             batch if ctx.explicitly_set("quantize.calib_batches") else settings.calib_batch_size)
    images = asked[0] * asked[1]
    batches = -(-images // batch) if images > 0 else settings.calib_batches  # 0 or less: refused as typed
    if settings.calib_batch_size != batch or settings.timing.batch_sizes != (batch,):
        # what is asked and how it is cut, not what the split allows (unknown yet: Calibration.shortfall says it)
        detail = (f": the {images} images asked for ({asked_for(*asked, fixed_batch=batch)})"
                  + (f" in {batches} batches of {batch}" if asked[1] != batch else "")
                  + (f" ({batches * batch} images: whole batches)" if batches * batch != images else ""))
        ctx.log.info("%s has a fixed batch dimension of %d: %s at batch %d%s", path, batch,
                     "calibrated and timed" if settings.calibrates else "timed", batch,
                     detail if settings.calibrates else "")
    return replace(settings, calib_batch_size=batch, calib_batches=batches,
                   timing=replace(settings.timing, batch_sizes=(batch,)), calib_asked=asked)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings = QuantizeSettings.from_config(cfg.quantize)
    recipe = Recipe.from_config(cfg)
    fp32 = load_fp32_model(cfg, ctx, settings.mode)
    fixed = fixed_batch(fp32.onnx) if fp32.onnx is not None else None
    if fixed is not None:
        settings = fit_fixed_batch(ctx, settings, fixed, fp32.onnx)
    require_batch_memory([fp32.spec], settings.timing.batch_sizes, key="quantize.bench_batch_sizes")
    data, dataset_cfg = source_data(cfg, ctx, fp32.source, fp32.spec, train_augment=settings.mode == "qat")
    data = model_labelled(data, fp32.classes)
    if len(data.val) == 0:
        raise CnnlabError(f"dataset {data.name} has no validation images to measure the INT8 model's accuracy on",
                          fix="use a dataset with a validation split")
    workers = loader_workers(recipe, data)
    calibration = (Calibration.draw(data.train, settings.calib_batches, settings.calib_batch_size, seed=recipe.seed,
                                    workers=workers, method=settings.ptq.calibrate_method,
                                    cache=ctx.path(CALIBRATION_FILE), whole=fixed is not None,
                                    asked=settings.calib_asked)
                   if settings.calibrates else None)
    shortfall = calibration.shortfall(len(data.classes)) if calibration else None
    if shortfall:
        record_warning(ctx, shortfall)
    saturation = settings.saturation_warning()
    if saturation:
        record_warning(ctx, saturation)
    for name, warning in settings.slow_format_warnings():
        ctx.log.warning("quantize.format=%s may not be faster on this CPU: %s", name, warning)
    ctx.log.info("quantize %s (%s, %d px) from %s: mode %s, candidates %s", fp32.name, data.name, fp32.spec.size,
                 fp32.source.path, settings.mode, ", ".join(f.name for f in settings.formats))

    prepared = prepared_for_qat(settings, fp32) if settings.mode == "qat" and settings.precision != "bf16" else None
    with _candidates_folder(ctx, keep=settings.keep_candidates) as work:
        identity = ModelIdentity(arch=fp32.name, classes=tuple(fp32.classes), spec=fp32.spec,
                                 source=fp32.source.describe(), dataset=dataset_record(data, dataset_cfg))
        record_subject(ctx, fp32.name, identity.dataset or {})
        fp32_path = fp32.onnx or export_onnx(fp32.model, work / f"{FP32}.onnx",  # type: ignore[arg-type]
                                             identity=identity)
        fp32_meta = read_onnx_metadata(fp32_path)
        fp32_fails_on: tuple[str, ...] = ()
        if settings.precision != "bf16" and len(settings.deploy_runtimes) > 1:
            with found_before_work():
                runtimes, dropped = deployable_runtimes(
                    fp32_path, settings.timing.runtime, settings.deploy_runtimes,
                    first_images(eval_loader(recipe, data.val, workers=workers)), threads=settings.timing.threads,
                    named=settings.deploy_runtimes_named)
            if dropped:
                record_warning(ctx, dropped)
                fp32_fails_on = tuple(r for r in settings.deploy_runtimes if r not in runtimes)
                settings = replace(settings, deploy_runtimes=runtimes)
        report: dict[str, Any] = settings.describe()
        if settings.precision == "bf16":
            candidates: tuple[CandidateResult, ...] = (CandidateResult(BF16, fp32_path),)
        elif settings.mode == "qat":
            built, report["qat"] = train_qat_candidate(cfg, ctx, recipe, settings, fp32, prepared, data, work)
            candidates = (built,)
        else:
            control = (nncf_accuracy_control(eval_loader(recipe, data.val, workers=workers), settings.max_acc_drop)
                       if settings.builds_nncf and settings.nncf_accuracy_control else None)
            candidates = build_onnx_candidates(fp32_path, settings.formats, settings.ptq, work, calibration=calibration,
                                               searching=settings.searching, accuracy_control=control)
            if calibration is not None:
                report["calibration"] = calibration.describe(candidates)
                if calibration.cache.exists():
                    ctx.record.add_artifact("calibration", calibration.cache)
        if not ctx.is_main:
            return {}

        result = search_formats(fp32_path, candidates, eval_loader(recipe, data.val, workers=workers),
                                timing=settings.timing, max_acc_drop=settings.max_acc_drop,
                                no_search=settings.no_search,
                                flops=fp32_meta.get("flops"), deploy_runtimes=settings.deploy_runtimes,
                                keep_fp32_if_slower=settings.keeps_fp32_if_slower, fp32_fails_on=fp32_fails_on)
        if "qat" in report:  # the QAT-trained weights' float accuracy: what of the INT8 file's change is training
            result = replace(result, qat_fp32_acc=report["qat"]["trained_fp32_val_acc"])
        if result.threads != settings.timing.threads:
            record_warning(ctx, f"{settings.timing.runtime} ran {counted(result.threads, 'inference thread')}, not the "
                                f"{settings.timing.threads} of quantize.bench_threads (it takes no more than the cores "
                                f"this process may use); the timings are recorded at {result.threads}")
        target = write_model(ctx, identity, fp32_meta, result, settings)
        metrics = result.metrics(target)
        described = result.describe()
        described["fp32"].update(file=str(fp32_path) if fp32.onnx else None,
                                 origin=("the source's ONNX file" if fp32.onnx
                                         else "exported from the source for this run")
                                 + (", before QAT training (what ships when FP32 is kept)" if "qat" in report else ""))
        report.update(described)
        if settings.mode == "dynamic":
            report["note"] = DYNAMIC_NOTE
        ctx.record.update(
            quantize=report, metrics=metrics, dataset=identity.dataset,
            model={"name": fp32.name, "format": "onnx",
                   "precision": "fp32" if result.fp32_kept else "bf16" if settings.precision == "bf16" else "int8",
                   "quantization": result.shipped,
                   "mode": settings.mode, "params": fp32_meta.get("params"), "flops": fp32_meta.get("flops"),
                   "image_size": fp32.spec.size, "num_classes": len(fp32.classes), "file_bytes": target.stat().st_size})
        out.print(result.table(settings.mode))
        out.print(f"chosen: {result.reason}")
    if settings.mode == "dynamic":
        ctx.log.info(DYNAMIC_NOTE)
    if not result.selection.within_budget:
        raise result.over_budget(settings.ptq.calibrate_method)
    return metrics


@contextlib.contextmanager
def _candidates_folder(ctx: RunContext, *, keep: bool) -> Iterator[Path]:
    """The run's candidates/ folder for every intermediate file, removed at the end unless `keep` — also when the run
    fails (probe 168: a typo in quantize.exclude, refused once fp32.onnx was written, left 86 MB of candidates in a
    `failed` run). A refusal of the settings (CnnlabError.before_work) takes the calibration cache too, so the run
    leaves no folder (cnnlab.app)."""
    work = ctx.path(WORK_DIR)
    work.mkdir(exist_ok=True)
    try:
        yield work
    except BaseException as exc:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, CnnlabError) and exc.before_work:
            ctx.path(CALIBRATION_FILE).unlink(missing_ok=True)
        raise
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def nncf_accuracy_control(val_loader: Any, max_acc_drop: float) -> AccuracyControl:
    """NNCF's accuracy control on the first ACCURACY_CONTROL_IMAGES validation images (as numpy; the whole split at
    224 px would not fit in memory), within the run's budget."""
    batches, count = [], 0
    for images, targets, *_ in val_loader:
        batches.append((images.numpy(), targets.numpy().astype("int64")))
        count += len(targets)
        if count >= ACCURACY_CONTROL_IMAGES:
            break
    return AccuracyControl(tuple(batches), max_acc_drop)


def write_model(ctx: RunContext, identity: ModelIdentity, fp32_meta: dict[str, Any], result: QuantizationResult,
                settings: QuantizeSettings) -> Path:
    """The chosen candidate as model.onnx — or the FP32 graph when no candidate beats it — with the model's identity
    (architecture, source, dataset, classes, input spec), the FP32 graph's params and FLOPs, and how it was
    quantized (an INT8 file's `quantization` entry; the FP32 one's `fp32_kept` says why it is not INT8)."""
    chosen, chosen_on = result.chosen, f"{settings.timing.runtime} cpu, {counted(result.threads, 'thread')}"
    if result.fp32_kept:
        source, extra = result.fp32.path, {"fp32_kept": {"reason": result.reason, "chosen_on": chosen_on}}
    elif chosen.format == BF16:  # the FP32 graph; the deployment runs it in bf16 (OpenVINO's precision hint)
        source, extra = result.fp32.path, {"inference_precision": {"precision": "bf16", "runtime": "openvino",
                                                                   "chosen_on": chosen_on}}
    else:
        source, extra = chosen.path, {"quantization": {
            "mode": settings.mode, "format": chosen.format.name, **chosen.format.describe(), **chosen.stored_weights(),
            "per_channel": settings.ptq.per_channel, "reduce_range": settings.ptq.reduce_range,
            "chosen_on": chosen_on, "loads_on": sorted(r for r, v in (chosen.loads_on or {}).items() if v == LOADS)}}
    target = copy_with_metadata(source, ctx.path(ONNX_FILE), identity,  # type: ignore[arg-type]
                                params=fp32_meta.get("params"), flops=fp32_meta.get("flops"), extra=extra)
    ctx.record.add_artifact("onnx", target)
    return target
