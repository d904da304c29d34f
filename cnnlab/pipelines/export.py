"""`cnnlab export source=RUN`: the source's model.pt as a verified, self-describing model.onnx.

1. load the source model and rebuild the data it was trained on;
2. export to a temporary file (optionally simplified with onnxslim);
3. verify: onnx.checker, then onnxruntime vs PyTorch on the first validation images — beyond tolerance the
   run fails with the numbers and the temporary file is deleted, so no model.onnx exists that looks valid;
4. rename it to model.onnx and measure the file's own accuracy on the validation split (metrics.val_acc).
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from cnnlab.context import RunContext
from cnnlab.deploy.export import ModelIdentity, OnnxMismatch, check_opset, export_onnx, verify_onnx
from cnnlab.deploy.ort import evaluate_onnx
from cnnlab.deploy.simplify import simplify_onnx
from cnnlab.engine.checkpoint import self_supervised_method
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path
from cnnlab.models import count_flops, count_params
from cnnlab.steps.sources import (dataset_config_of, load_source_model, model_labelled, same_data,
                                   source_data, with_file_dataset)
from cnnlab.steps.freshness import data_changed
from cnnlab.steps.recording import dataset_record
from cnnlab.steps.training import eval_loader, loader_workers
from cnnlab.runs import ONNX_FILE, Source


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings, recipe = cfg.export, Recipe.from_config(cfg)
    opset = check_opset(int(settings.opset))
    verify_count = int(settings.verify_images)
    if verify_count < 1:
        raise CnnlabError(f"export.verify_images={verify_count} must be at least 1")
    loaded = load_source_model(cfg, ctx)
    checkpoint, model = loaded.checkpoint, loaded.model.eval()
    # verified on val; the record (run.json, the file's metadata) keeps the labels the model trained on
    data, dataset_cfg = source_data(cfg, ctx, loaded.source, checkpoint.spec, reads=("val",), labels="kept")
    data = model_labelled(data, checkpoint.classes)
    ctx.log.info("export %s (%s, %d px) from %s to ONNX opset %d", checkpoint.name, data.name,
                 checkpoint.spec.size, loaded.source.path, opset)

    images = first_images(data.val, verify_count)
    dataset = dataset_record(data, dataset_cfg)
    untrained_head = self_supervised_method(checkpoint)
    identity = ModelIdentity(arch=checkpoint.name, classes=tuple(checkpoint.classes), spec=checkpoint.spec,
                             source=loaded.source.describe(), dataset=dataset,
                             untrained_head=untrained_head)  # evaluate/predict refuse such files
    target = ctx.path(ONNX_FILE)
    # on the CPU whatever device= says: the file is device-independent, the reference logits fp32 CPU kernels' (probe
    # 219: device=cuda was recorded as the override, and nothing said where the export ran)
    report: dict[str, Any] = {"opset": opset, "exporter": "torch.onnx (dynamo)", "simplify": bool(settings.simplify),
                              "atol": float(settings.atol), "rtol": float(settings.rtol), "device": "cpu"}
    if str(cfg.get("device", "auto")) not in ("auto", "cpu"):
        ctx.log.info("export runs on the CPU whatever device= says (device=%s not used): the ONNX file runs on any "
                     "device, and its check compares it with float32 CPU kernels", cfg.get("device"))
    with atomic_path(target) as unverified:  # renamed to model.onnx only if everything below succeeds
        export_onnx(model, unverified, identity=identity, opset=opset)
        if settings.simplify:
            report["simplified"] = simplify_onnx(unverified)
        try:
            report["verification"] = verify_onnx(unverified, model, images, atol=float(settings.atol),
                                                 rtol=float(settings.rtol))
        except OnnxMismatch as mismatch:
            ctx.record.update(export={**report, "verification": mismatch.result})
            raise
    ctx.record.add_artifact("onnx", target)
    verification = report["verification"]
    ctx.log.info("verified on %d images: max |logit difference| %.3g (tolerance %.3g), top-1 agreement %.1f%%",
                 verification["n"], verification["max_abs_diff"], verification["tolerance"],
                 100 * verification["top1_agreement"])

    metrics: dict[str, Any] = {"max_abs_diff": verification["max_abs_diff"],
                               "top1_agreement": verification["top1_agreement"], "verify_images": verification["n"],
                               "onnx_bytes": target.stat().st_size}
    source_acc = source_val_acc(loaded.source, dataset_cfg, len(data.val))
    if settings.evaluate and untrained_head is not None:  # its head was never trained: a top-1 is chance, no figure
        ctx.log.info("model.onnx is a %s backbone (its head never trained): no val accuracy measured — fine-tune it "
                     "for one (docs/pretrain.md)", untrained_head)
    elif settings.evaluate:
        onnx_metrics = evaluate_onnx(target, eval_loader(recipe, data.val, workers=loader_workers(recipe, data)))
        metrics.update(val_acc=onnx_metrics["acc"], val_top5=onnx_metrics["top5"], val_loss=onnx_metrics["loss"])
        ctx.log.info("model.onnx: val acc %.2f%% on %d images%s", 100 * onnx_metrics["acc"], onnx_metrics["n"],
                     "" if source_acc is None else f" (source: {100 * source_acc:.2f}%)")
    if source_acc is not None:
        metrics["source_val_acc"] = source_acc
    ctx.record.update(
        export=report,
        model={"name": checkpoint.name, "format": "onnx", "opset": opset, "params": count_params(model),
               "flops": count_flops(model, checkpoint.spec.size), "image_size": checkpoint.spec.size,
               "num_classes": len(checkpoint.classes), "file_bytes": target.stat().st_size},
        dataset=dataset,
    )
    return metrics


def source_val_acc(source: Source, dataset_cfg: Any, val_images: int) -> float | None:
    """The source's recorded val top-1 — its run record's, for the file that run wrote (its SHA-256 checked when the
    source was resolved) — when this export scores the same images: the same data, a user folder whose pictures have
    not changed since the source ran (run.json `dataset.content`), and as many val images (`val_images`) as the source
    recorded. A top-1 on other images beside model.onnx's would read as a loss or gain of the export itself (probe
    53: 100 % on 9 images beside 55.56 % on the 27 of a val/ folder that grew since). A file outside its run has none:
    the figure it carries is of the weights it was saved with, and nothing tells that they are still these (probe 96:
    a model.pt re-saved with other weights read "source: 6.25 %" beside its export's 15.62 %)."""
    if source.run is None:
        return None
    run = with_file_dataset(source).run
    recorded = dataset_config_of(run)
    if recorded is None or not same_data(recorded, OmegaConf.to_container(dataset_cfg, resolve=True)):
        return None
    assert run is not None
    size = (run.data.get("dataset") or {}).get("val_size")
    if data_changed(run) or (isinstance(size, int) and size != val_images):
        return None
    metrics = source.run.data.get("metrics") or {}
    value = metrics.get("val_acc")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def first_images(dataset: Dataset, count: int) -> torch.Tensor:
    """The first `count` images of a (deterministically transformed) split, stacked."""
    total = len(dataset)  # type: ignore[arg-type]
    if total == 0:
        raise CnnlabError("the validation split is empty: nothing to verify the export on",
                          fix="use a dataset with validation images")
    return torch.stack([dataset[i][0] for i in range(min(count, total))])
