"""The model `cnnlab quantize` works on: the FP32 form of its source (`load_fp32_model`), and — for
quantize.mode=qat — its quantization-aware training through the one training engine (`train_qat_candidate`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from cnnlab.compress.quantization import CandidateResult, check_float_graph, quantized_ops
from cnnlab.compress.quantization.settings import QuantizeSettings
from cnnlab.context import RunContext
from cnnlab.data import DataBundle
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import read_onnx_metadata
from cnnlab.deploy.subject import chained_model, run_model_name
from cnnlab.engine.checkpoint import load_model, require_trained_head, require_trained_onnx_head
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.steps.sources import require_source
from cnnlab.steps.augment_on import classifier_loaders
from cnnlab.steps.training import RecoveryTraining, classification_objective, setup_runtime
from cnnlab.runs import Source


@dataclass(frozen=True)
class Fp32Model:
    """What is quantized: the source, its input spec and classes, and its FP32 forms."""

    source: Source
    name: str
    spec: InputSpec
    classes: list[str]
    model: nn.Module | None          # the PyTorch model, when the source chain has one (QAT needs it)
    onnx: Path | None                # the source's own FP32 ONNX file, if it has one


def load_fp32_model(cfg: DictConfig, ctx: RunContext, mode: str) -> Fp32Model:
    """The source as FP32: an ONNX file (with cnnlab's metadata) and/or a model.pt. PTQ prefers the source's
    own ONNX file; QAT needs the PyTorch model (an ONNX source's chain must hold its model.pt)."""
    source = require_source(cfg, ctx, want=("checkpoint", "onnx") if mode == "qat" else ("onnx", "checkpoint"))
    if source.kind == "checkpoint":
        model, checkpoint = load_model(source.path)
        require_trained_head(checkpoint, source.path, "the INT8 model's accuracy")
        own_onnx = source.run.artifact("onnx") if source.run is not None else None
        if own_onnx is not None and (quantized_ops(own_onnx)
                                     or read_onnx_metadata(own_onnx)["spec"] != checkpoint.spec):
            own_onnx = None  # not the FP32 form of this checkpoint: export it here instead
        return Fp32Model(source, checkpoint.name, checkpoint.spec, list(checkpoint.classes), model.eval(), own_onnx)
    check_float_graph(source.path)
    meta = read_onnx_metadata(source.path)
    require_trained_onnx_head(meta, source.path, "the INT8 model's accuracy")
    if meta["spec"] is None or not meta["classes"]:
        raise CnnlabError(f"{source.path} has no cnnlab metadata (input size, mean/std, class names)",
                          fix="export it with `cnnlab export`, or pass the run or model.pt it came from")
    model = None
    if mode == "qat":
        with found_before_work():  # a refusal leaves no `failed` run behind (probe 71)
            chained = chained_model(meta, source)
            if isinstance(chained, str):
                raise CnnlabError(f"quantize.mode=qat fine-tunes the PyTorch model {source.path} was exported from, "
                                  f"and {chained}", fix="pass the run or model.pt the ONNX file was exported from")
        model = chained[0]
    # An ONNX file made before its metadata named the architecture: the source run's record still does.
    name = str(meta.get("arch") or run_model_name(source) or source.path.stem)
    return Fp32Model(source, name, meta["spec"], list(meta["classes"]), model, source.path)


def train_qat_candidate(cfg: DictConfig, ctx: RunContext, recipe: Recipe, settings: QuantizeSettings,
                        fp32: Fp32Model, data: DataBundle, work: Path) -> tuple[CandidateResult, dict[str, Any]]:
    """Fake-quantized fine-tuning of the source model for trainer.epochs through the one training engine
    (optim.lr x quantize.lr_scale; float32: autocast would add rounding the INT8 model does not have), then
    the QDQ export. The record's `trained_fp32_val_acc` is the trained weights' top-1 with fake quantization off:
    the training's part of the INT8 file's change against the source (probe 105: +4.90 points, nearly all training)."""
    from cnnlab.compress.quantization.qat import export_qat_onnx, fake_quantization_off, prepare_qat

    assert fp32.model is not None, "load_fp32_model gives QAT a PyTorch model"
    qat_recipe = replace(recipe, amp="none").with_lr_scale(settings.lr_scale)
    runtime = setup_runtime(cfg, qat_recipe)
    spec, fmt = fp32.spec, settings.formats[0]
    example = torch.zeros(2, spec.channels, spec.size, spec.size)
    model = runtime.prepare_model(prepare_qat(fp32.model, example, fmt, per_channel=settings.ptq.per_channel,
                                              reduce_range=settings.ptq.reduce_range, exclude=settings.ptq.exclude))
    loaders = classifier_loaders(ctx, qat_recipe, runtime, data)
    ctx.log.info("quantization-aware training: %d epoch(s) at lr %.3g", qat_recipe.epochs, qat_recipe.lr)
    objective = classification_objective(qat_recipe, len(data.classes))
    training = RecoveryTraining(ctx, runtime, qat_recipe, loaders, objective)
    result = training.train(model)
    with fake_quantization_off(model):
        trained_fp32 = training.accuracy(model, desc="val (QAT-trained weights, float)")
    path = (export_qat_onnx(model, work / f"{fmt.name}.onnx", spec=spec, classes=fp32.classes,
                            metadata={"arch": fp32.name}) if ctx.is_main else None)
    return CandidateResult(fmt, path), {"epochs": len(result.history), "lr": qat_recipe.lr,
            "fake_quant_val_acc": result.final.get("val_acc"), "trained_fp32_val_acc": trained_fp32,
            "history": result.history,
            "method": "torch.ao FX prepare_qat_fx, batch norms folded, exported as QDQ"}
