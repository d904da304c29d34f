"""One model file, ready to score batches: a cnnlab checkpoint through PyTorch, or an ONNX file (FP32, FP16 or
INT8) through onnxruntime or OpenVINO's native runtime (`pip install "cnnlab[openvino]"`; computing in f32) — with
the input spec and class names the file records.

`open_model(kind, path, runtime=...)` → `InferenceModel`; `model.logits(images)` takes a float32 [N, C, H, W]
batch preprocessed by `cnnlab.data.transforms.eval_transform(model.spec)` and returns float32 logits [N, classes].
An ONNX file is read through cnnlab.deploy.ort's `run_images` and `as_logits`: an FP16 file gets float16 images,
and a graph ending in Softmax gives the log of its probabilities, so that evaluate's scores and predict's
probabilities are the model's (not a second softmax over probabilities).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import model_file_bytes
from cnnlab.engine.runtime import device_spec, resolve_device
from cnnlab.errors import CnnlabError, found_before_work

log = logging.getLogger("cnnlab")

RUNTIMES = ("auto", "pytorch", "onnxruntime", "openvino")
# Which file of a run each runtime scores (a run may hold both a model.pt and a model.onnx): auto prefers the
# deployable ONNX file (an INT8 one for a quantize run), else the checkpoint.
_KINDS = {"auto": ("onnx", "checkpoint"), "pytorch": ("checkpoint",), "onnxruntime": ("onnx",), "openvino": ("onnx",)}


@dataclass
class InferenceModel:
    """A loaded model file. kind: "checkpoint" | "onnx"; precision: "fp32" | "fp16" | "int8" (an ONNX file's from
    its graph: onnx_check.graph_precision, the test `cnnlab quantize` uses); runtime: what runs it; arch: the zoo
    name (None for an anonymous ONNX file); dataset: the dataset section the file records (its `config` rebuilds
    the data it was trained on), or None; outputs: what the file itself outputs — "logits", or "probabilities" /
    "log-probabilities" / "sigmoid-probabilities" for an ONNX graph ending in Softmax / LogSoftmax / Sigmoid
    (`scores` turns them into logits and the model's probabilities)."""

    kind: str
    path: Path
    runtime: str
    precision: str
    arch: str | None
    classes: list[str]
    spec: InputSpec
    dataset: dict[str, Any] | None
    _run: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)  # the file's raw outputs of a batch
    outputs: str = "logits"
    _sensed: bool = field(default=False, repr=False)  # the first batch's outputs checked (ort.sensed_output_kind)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits [N, len(classes)] of a preprocessed batch [N, spec.channels, spec.size, spec.size]: scores
        whose softmax is a distribution over the classes (`scores`)."""
        return self.scores(images)[0]

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """float32 [N, len(classes)]: the probability the model gives each class of a preprocessed batch (`scores`)."""
        return self.scores(images)[1]

    @torch.no_grad()
    def scores(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, probabilities), both float32 [N, len(classes)], of a preprocessed batch [N, spec.channels,
        spec.size, spec.size] from one run of the model. The probabilities are softmax(logits), except for a graph
        ending in Sigmoid (outputs "sigmoid-probabilities"): each class's own one-vs-rest probability as the model
        gives it, while the logits are their log (softmax: normalised to sum to 1, for the cross-entropy loss).

        Errors: CnnlabError when a logit is NaN or infinite — an accuracy or a ranking computed from them would be
        a number that means nothing (a diverged run's weights give such files)."""
        from cnnlab.deploy.ort import as_logits, class_probabilities, sensed_note, sensed_output_kind

        outputs = self._run(images).float().cpu()
        if self.kind == "onnx" and not self._sensed:  # a softmax the graph walk missed: seen in the outputs
            self._sensed = True
            if (sensed := sensed_output_kind(outputs, self.outputs, self.path)) != self.outputs:
                log.warning("%s", sensed_note(self.path, self.outputs))
                self.outputs = sensed
        logits = as_logits(outputs, self.outputs)
        if not torch.isfinite(logits).all():
            raise CnnlabError(f"{self.path} gives NaN or infinite outputs: its weights are broken (e.g. saved from a "
                              "run whose loss diverged), so no accuracy or prediction can be computed from it",
                              fix="use an earlier checkpoint of that run, or train again with a lower optim.lr")
        return logits, class_probabilities(outputs, self.outputs)

    def describe(self) -> dict[str, Any]:
        """For run.json: kind, path, runtime, precision, arch, input (the spec), num_classes, file_bytes, outputs."""
        return {"kind": self.kind, "path": str(self.path), "runtime": self.runtime, "precision": self.precision,
                "arch": self.arch, "input": self.spec.to_dict(), "num_classes": len(self.classes),
                "file_bytes": model_file_bytes(self.path), "outputs": self.outputs}


def source_kinds(runtime: str) -> tuple[str, ...]:
    """The `want=` of cnnlab.runs.resolve_source for `runtime`: the kinds of file it runs, preferred first."""
    return _KINDS.get(runtime, _KINDS["auto"])


def model_device(device: str | None, kind: str, runtime: str) -> str:
    """The device a file of `kind` runs on for evaluate and predict, checked before the file is opened: device=auto
    is CUDA for PyTorch when there is one (onnxruntime and OpenVINO stay on the CPU unless told). CnnlabError, one
    line with the fix, for an unknown device, CUDA where none is visible, or a runtime that cannot run there."""
    device = device_spec(device)
    runtime = pick_runtime(kind, runtime)
    if device == "auto":
        return "cuda" if runtime == "pytorch" and torch.cuda.is_available() else "cpu"
    if runtime == "pytorch":
        return str(resolve_device(device))
    from cnnlab.deploy.ort import RuntimeKeys, require_runtime  # onnxruntime loads only for ONNX files

    require_runtime(runtime, device, RuntimeKeys(device="device=", alternative="use device=cpu"))
    return device


def _check_on_openvino(path: Path, session: Any, images: Any) -> None:
    """Nothing when OpenVINO computes the classes onnxruntime computes for `path` on this first batch, at its size
    and one image at a time; else a CnnlabError: probe 105's NNCF files scored at chance on OpenVINO at batch 1 only,
    so `evaluate evaluate.runtime=openvino` at batch 128 and `predict` one image at a time told different stories."""
    from cnnlab.deploy.agreement import REFERENCE, disagreement
    from cnnlab.deploy.ort import onnx_session, run_images

    reference = run_images(onnx_session(path, runtime=REFERENCE), images)
    problem = disagreement(session, images, reference)
    if problem is not None:
        raise CnnlabError(f"openvino computes other classes than {REFERENCE} for {path} ({problem}), so its scores "
                          "and predictions would not be the file's",
                          fix=f"run it on {REFERENCE} (evaluate.runtime={REFERENCE} or predict.runtime={REFERENCE}), "
                              "or quantize for OpenVINO with quantize.runtime=openvino, which checks its files so")


@found_before_work()  # a setting's refusal: a run it stops leaves no folder
def pick_runtime(kind: str, runtime: str) -> str:
    """The runtime for a file of `kind`: auto → pytorch for a checkpoint, onnxruntime for ONNX. CnnlabError for
    a combination that cannot run (a checkpoint on onnxruntime, an ONNX file on PyTorch)."""
    if runtime not in RUNTIMES:
        raise CnnlabError(f"unknown runtime {runtime!r}", fix=f"use one of {', '.join(RUNTIMES)}")
    if runtime == "auto":
        return "pytorch" if kind == "checkpoint" else "onnxruntime"
    if kind == "checkpoint" and runtime != "pytorch":
        raise CnnlabError(f"a model.pt runs on PyTorch, not {runtime}",
                          fix="export it first (`cnnlab export source=...`) and pass the export run, or use runtime=pytorch")
    if kind == "onnx" and runtime == "pytorch":
        raise CnnlabError("an ONNX file does not run on PyTorch",
                          fix="use runtime=onnxruntime (or openvino), or pass the run's model.pt")
    return runtime


@found_before_work()
def open_model(kind: str, path: Path, *, runtime: str = "auto", device: str = "cpu") -> InferenceModel:
    """Load `path` (kind "checkpoint" or "onnx", as cnnlab.runs.Source names it) on `runtime`/`device`.
    CnnlabError for an unreadable file, one without cnnlab's input metadata, or a runtime that cannot run it."""
    runtime = pick_runtime(kind, runtime)
    path = Path(path)
    if kind == "checkpoint":
        return _checkpoint(path, device)
    return _onnx(path, runtime, device)


def _checkpoint(path: Path, device: str) -> InferenceModel:
    from cnnlab.engine.checkpoint import load_model, require_trained_head

    model, checkpoint = load_model(path)
    require_trained_head(checkpoint, path, "its scores and predictions")
    target = torch.device(device)
    model = model.to(target).eval()
    dataset = checkpoint.extra.get("dataset")
    return InferenceModel(kind="checkpoint", path=path, runtime="pytorch", precision="fp32", arch=checkpoint.name,
                          classes=list(checkpoint.classes), spec=checkpoint.spec,
                          dataset=dataset if isinstance(dataset, dict) else None,
                          _run=lambda images: model(images.to(target)))


def _onnx(path: Path, runtime: str, device: str) -> InferenceModel:
    from cnnlab.deploy.onnx_check import check_onnx_file, no_metadata
    from cnnlab.deploy.ort import onnx_session, run_images
    from cnnlab.engine.checkpoint import require_trained_onnx_head

    checked = check_onnx_file(path)
    if checked.unreadable is not None:
        raise checked.unreadable
    meta = checked.metadata
    require_trained_onnx_head(meta, path, "its scores and predictions")
    if checked.spec is None or not checked.classes:
        raise no_metadata(path)
    session = onnx_session(path, device=device, runtime=runtime)  # onnxruntime's, or an OpenVinoSession
    if checked.outputs == "probabilities":
        log.info("%s outputs probabilities (its graph ends in Softmax): scored from their log, not softmaxed again",
                 path)
    elif checked.outputs == "sigmoid-probabilities":
        log.warning("%s ends in a sigmoid (a Sigmoid node, or one written out): one probability per class on its own "
                    "(one-vs-rest), not summing to 1. "
                    "Classes are ranked by them, shown as they are, and the ECE bins the top one; the loss is the "
                    "cross-entropy of them normalised to sum to 1", path)
    elif checked.outputs == "log-probabilities":
        log.info("%s outputs log-probabilities (its graph ends in LogSoftmax, or Log of a Softmax): scored as logits",
                 path)

    unchecked = runtime == "openvino"  # its first batch is compared with onnxruntime's (deploy/agreement.py)

    def run(images: torch.Tensor) -> torch.Tensor:
        # float16 in for an FP16 file, float32 out; a fixed batch in chunks (InferenceModel.logits reads the outputs)
        nonlocal unchecked
        outputs = run_images(session, images)
        if unchecked:
            _check_on_openvino(path, session, images.detach().cpu().numpy())
            unchecked = False
        return torch.from_numpy(outputs)

    dataset = meta.get("dataset")
    return InferenceModel(kind="onnx", path=path, runtime=runtime, precision=checked.precision,
                          arch=meta.get("arch"), classes=list(checked.classes), spec=checked.spec,
                          dataset=dataset if isinstance(dataset, dict) else None, _run=run, outputs=checked.outputs)
