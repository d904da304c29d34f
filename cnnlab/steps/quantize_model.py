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
from cnnlab.deploy.onnx_check import no_metadata
from cnnlab.deploy.ort import onnx_session
from cnnlab.deploy.subject import chained_model, run_model_name
from cnnlab.engine.checkpoint import load_model, require_trained_head, require_trained_onnx_head
from cnnlab.engine.recipe import Recipe
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.models import get_entry
from cnnlab.steps.linear_probe import trained_head_only
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
    head_only: bool = False          # its model.pt is a linear probe: only its head trained (QAT trains only it)


@found_before_work()  # every refusal of the source leaves no `failed` run behind (probes 71, 209)
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
        return Fp32Model(source, checkpoint.name, checkpoint.spec, list(checkpoint.classes), model.eval(), own_onnx,
                         head_only=trained_head_only(checkpoint))
    check_float_graph(source.path)
    onnx_session(source.path, threads=1)  # onnxruntime refused a file it cannot load once every candidate was made
    meta = read_onnx_metadata(source.path)
    require_trained_onnx_head(meta, source.path, "the INT8 model's accuracy")
    if meta["spec"] is None or not meta["classes"]:
        raise no_metadata(source.path)
    model, head_only = None, False
    if mode == "qat":
        chained = chained_model(meta, source)
        if isinstance(chained, str):
            raise CnnlabError(f"quantize.mode=qat fine-tunes the PyTorch model {source.path} was exported from, "
                              f"and {chained}", fix="pass the run or model.pt the ONNX file was exported from")
        model, _, checkpoint = chained
        head_only = trained_head_only(checkpoint)
    # An ONNX file made before its metadata named the architecture: the source run's record still does.
    name = str(meta.get("arch") or run_model_name(source) or source.path.stem)
    return Fp32Model(source, name, meta["spec"], list(meta["classes"]), model, source.path, head_only=head_only)


def _freeze_all_but_head(model: nn.Module, name: str) -> list[nn.Module]:
    """Train what a linear-probe source trained, its head: through that head, folded from standardised features and
    as large as they are small, the backbone's gradients wrecked it within 5 steps at QAT's rate (probe 115: LeNet-5
    86.67 % → 11.67 %, ResNet-18 94.72 % → 10.56 %; frozen: 86.67 % and 94.44 %). Returns the modules whose
    parameters are frozen (kept in eval mode). By parameter name, not models.freeze_before: the head's module path
    survives torch.ao's FX preparation, the definition order and the leaf modules that one goes by do not."""
    head = get_entry(name).head
    for path, parameter in model.named_parameters():
        parameter.requires_grad_(path.startswith(f"{head}."))
    return [module for module in model.modules() if (own := list(module.parameters(recurse=False)))
            and not any(p.requires_grad for p in own)]


@found_before_work()  # probe 142: a quantize.exclude typo was refused after the FP32 export, leaving a failed run
def prepared_for_qat(settings: QuantizeSettings, fp32: Fp32Model) -> Any:
    """The source model fake-quantized for QAT (batch norms folded; cnnlab.compress.quantization.qat.prepare_qat),
    before any work: a module path quantize.exclude does not know is refused with nothing written."""
    from cnnlab.compress.quantization.qat import prepare_qat

    assert fp32.model is not None, "load_fp32_model gives QAT a PyTorch model"
    spec = fp32.spec
    return prepare_qat(fp32.model, torch.zeros(2, spec.channels, spec.size, spec.size), settings.formats[0],
                       per_channel=settings.ptq.per_channel, reduce_range=settings.ptq.reduce_range,
                       exclude=settings.ptq.exclude)


def train_qat_candidate(cfg: DictConfig, ctx: RunContext, recipe: Recipe, settings: QuantizeSettings,
                        fp32: Fp32Model, prepared: Any, data: DataBundle,
                        work: Path) -> tuple[CandidateResult, dict[str, Any]]:
    """Fake-quantized fine-tuning of the source model for trainer.epochs through the one training engine
    (optim.lr x quantize.lr_scale; float32: autocast would add rounding the INT8 model does not have), then
    the QDQ export. The record's `trained_fp32_val_acc` is the trained weights' top-1 with fake quantization off:
    the training's part of the INT8 file's change against the source (probe 105: +4.90 points, nearly all training)."""
    from cnnlab.compress.quantization.qat import export_qat_onnx, fake_quantization_off

    qat_recipe = replace(recipe, amp="none").with_lr_scale(settings.lr_scale)
    runtime = setup_runtime(cfg, qat_recipe)
    spec, fmt = fp32.spec, settings.formats[0]
    frozen = _freeze_all_but_head(prepared, fp32.name) if fp32.head_only else []
    if frozen:
        ctx.log.info("quantization-aware training of %s's head only: the source is a linear probe, which did not train "
                     "its backbone (the backbone's fake quantization still observes its activations)", fp32.name)
    model = runtime.prepare_model(prepared)
    loaders = classifier_loaders(ctx, qat_recipe, runtime, data)
    ctx.log.info("quantization-aware training: %d epoch(s) at lr %.3g", qat_recipe.epochs, qat_recipe.lr)
    objective = classification_objective(qat_recipe, len(data.classes))
    training = RecoveryTraining(ctx, runtime, qat_recipe, loaders, objective)
    result = training.train(model, frozen=frozen)
    with fake_quantization_off(model):
        trained_fp32 = training.accuracy(model, desc="val (QAT-trained weights, float)")
    path = (export_qat_onnx(model, work / f"{fmt.name}.onnx", spec=spec, classes=fp32.classes,
                            metadata={"arch": fp32.name}) if ctx.is_main else None)
    return CandidateResult(fmt, path), {"epochs": len(result.history), "lr": qat_recipe.lr,
            "fake_quant_val_acc": result.final.get("val_acc"), "trained_fp32_val_acc": trained_fp32,
            "history": result.history,
            "method": "torch.ao FX prepare_qat_fx, batch norms folded, exported as QDQ"}
