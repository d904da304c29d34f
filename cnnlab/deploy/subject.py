"""What a benchmark times — a `TimedModel`: a model file and how to load it (its ONNX file and the PyTorch model
it came from), described for bench.json. `cnnlab bench` makes one per source (or per randomly initialised
`model=NAME`); `chain_checkpoint` and `run_model_name` also serve every command that follows an ONNX file back
to its model.pt (quantize).

An ONNX source brings its PyTorch model when the chain has one: the checkpoint recorded in the file's
metadata (`cnnlab export` writes it), else a model.pt in the same run folder. A checkpoint source, and
model=NAME, get an ONNX file exported for the benchmark (unverified: timing does not need it to be exact,
`cnnlab export` is what verifies).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.names import EXPORTED_FOR_BENCH
from cnnlab.deploy.export import (SHIPPED_ATOL, SHIPPED_RTOL, ModelIdentity, compare_logits, export_onnx, load_onnx,
                                  logits_side_by_side, model_file_bytes, read_onnx_metadata)
from cnnlab.deploy.onnx_check import fixed_batch, graph_precision, no_metadata
from cnnlab.engine.checkpoint import ModelCheckpoint, load_model
from cnnlab.environment import available_memory
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.fileio import file_sha256
from cnnlab.hydra_args import path_argument
from cnnlab.models import count_flops, count_params
from cnnlab.runs import Source, check_intact, model_sha256
from cnnlab.wording import human_bytes


@dataclass(frozen=True)
class TimedModel:
    """A model as `cnnlab bench` times it: the ONNX file and/or PyTorch model, its input spec and size figures
    (params, FLOPs per image, file sizes in bytes)."""

    name: str
    spec: InputSpec
    num_classes: int
    model: nn.Module | None              # None: no PyTorch model in the chain (the torch backends are skipped)
    model_file: Path | None
    onnx: Path | None                    # None until `exported_onnx` gives a copy with one
    onnx_origin: str                     # "source" | "exported for this benchmark"
    params: int | None
    flops: int | None                    # per image
    onnx_bytes: int | None = None
    source: Source | None = None
    notes: tuple[str, ...] = ()                     # why a PyTorch model is missing, for the skip reason
    checkpoint_classes: tuple[str, ...] = ()        # a checkpoint source's class names
    precision: str = "fp32"                         # what the source's ONNX graph computes in (graph_precision)
    fixed_batch: int | None = None                  # the batch size the source's ONNX input is fixed to, if any

    def identity(self) -> ModelIdentity:
        """For a temporary export: the checkpoint's classes when it has them (a zoo model's are numbered)."""
        classes = self.checkpoint_classes or tuple(str(i) for i in range(self.num_classes))
        return ModelIdentity(arch=self.name, classes=classes, spec=self.spec,
                             source=self.source.describe() if self.source is not None else None)

    @property
    def source_onnx(self) -> Path | None:
        """The ONNX file when it is the source's own (None for none yet, or a temporary export)."""
        return self.onnx if self.onnx and self.onnx_origin == "source" else None

    def describe(self) -> dict[str, Any]:
        """bench.json's `model` section: name, input size, classes, params, FLOPs per image, the precision of the
        ONNX file (fp32 | fp16 | int8), the files and sizes."""
        return {"name": self.name, "image_size": self.spec.size, "num_classes": self.num_classes,
                "params": self.params, "flops": self.flops, "precision": self.precision,
                "onnx_file": str(self.source_onnx) if self.source_onnx else None,
                "onnx_origin": self.onnx_origin if self.onnx else None,
                "onnx_bytes": self.onnx_bytes,
                "pt_file": str(self.model_file) if self.model_file else None,
                "pt_bytes": self.model_file.stat().st_size if self.model_file else None}


    def describe_source(self) -> dict[str, Any] | None:
        """bench.json's `source` section: the source= reference (None for a zoo model)."""
        return self.source.describe() if self.source is not None else None


def timed_zoo_model(name: str, model: nn.Module, spec: InputSpec, num_classes: int) -> TimedModel:
    """A freshly built network `model` (zoo name `name`, `num_classes` outputs) at `spec`'s input: timed as PyTorch,
    and through an ONNX file exported for the benchmark."""
    return TimedModel(name=name, spec=spec, num_classes=num_classes, model=model, model_file=None, onnx=None,
                      onnx_origin=EXPORTED_FOR_BENCH, params=count_params(model),
                      flops=count_flops(model, spec.size))


def timed_model_of(source: Source, *, torch_twin: bool = True) -> TimedModel:
    """What to time for a resolved source; `torch_twin`: also load the PyTorch model behind an ONNX file."""
    if source.kind == "checkpoint":
        model, checkpoint = load_model(source.path)
        return TimedModel(name=checkpoint.name, spec=checkpoint.spec, num_classes=len(checkpoint.classes),
                          model=model.eval(), model_file=source.path, onnx=None,
                          onnx_origin=EXPORTED_FOR_BENCH, params=count_params(model),
                          flops=count_flops(model, checkpoint.spec.size), source=source,
                          checkpoint_classes=tuple(checkpoint.classes))
    return _onnx_timed_model(source, torch_twin)


def _onnx_timed_model(source: Source, torch_twin: bool) -> TimedModel:
    meta = read_onnx_metadata(source.path)
    spec, classes = meta["spec"], meta["classes"]
    if spec is None:
        raise no_metadata(source.path)
    proto = load_onnx(source.path)
    subject = TimedModel(name=str(meta.get("arch") or run_model_name(source) or source.path.stem), spec=spec,
                         num_classes=len(classes) if classes else 0, model=None, model_file=None, onnx=source.path,
                         onnx_origin="source", params=meta.get("params"), flops=meta.get("flops"),
                         onnx_bytes=model_file_bytes(source.path), source=source, precision=graph_precision(proto),
                         fixed_batch=fixed_batch(proto))
    if not torch_twin:
        return subject
    if subject.precision != "fp32":  # the graph's own precision: the test quantize uses (onnx_check.quantized_ops)
        return replace(subject, notes=(f"an {subject.precision.upper()} file has no PyTorch twin (its model.pt chain "
                                       "is the FP32 model)",))
    try:
        chained = chained_model(meta, source)
    except CnnlabError as exc:  # the twin changed since the export: the ONNX file is still timed, without it
        return replace(subject, notes=(exc.message,))
    if isinstance(chained, str):
        return replace(subject, notes=(chained,))
    model, path, _ = chained
    return replace(subject, model=model, model_file=path)


@found_before_work()  # refused before anything is timed: no failed run left behind
def require_batch_sizes(subjects: Sequence[TimedModel], batch_sizes: Sequence[int],
                        key: str = "bench.batch_sizes") -> None:
    """Nothing when every subject's own ONNX file takes every batch size of `batch_sizes`; else CnnlabError (one
    line, before anything is timed) naming the file's fixed batch and the fix: `key`=[that batch], or an export
    with a dynamic batch (`cnnlab export` writes one)."""
    for subject in subjects:
        fixed = subject.fixed_batch if subject.source_onnx is not None else None
        other = [b for b in batch_sizes if fixed is not None and b != fixed]
        if other:
            raise CnnlabError(f"{subject.source_onnx} has a fixed batch dimension of {fixed}: it cannot run at "
                              f"batch {', '.join(str(b) for b in other)}",
                              fix=f"use {key}=[{fixed}], or export the model with a dynamic batch "
                                  "(`cnnlab export source=RUN` does)")


@found_before_work()
def require_batch_memory(specs: Sequence[InputSpec], batch_sizes: Sequence[int], key: str = "bench.batch_sizes",
                         available: int | None = None) -> None:
    """Nothing when one batch of the largest size fits in the memory available now (`available`, bytes; read from
    the system when None); else CnnlabError, before anything is timed, naming the batch size that does. The bound
    is the batch's float32 input alone, which the timing creates whole (the network's activations come on top): a
    batch that large can only end in the kernel's out-of-memory kill, which leaves no message and a run recorded
    `running` (bench.batch_sizes=[10000000] of a 16-px LeNet-5: 30.7 GB of input)."""
    available = available_memory() if available is None else available
    if available is None or not batch_sizes:
        return
    largest = max(batch_sizes)
    per_image = max(4 * spec.channels * spec.size * spec.size for spec in specs)
    if largest * per_image <= available:
        return
    fits = max(1, available // per_image)
    def amount(count: int) -> str:
        return f"{count / 1e9:,.1f} GB" if count >= 1e9 else human_bytes(count)

    raise CnnlabError(f"{key}: one batch of {largest:,} images holds {amount(largest * per_image)} of float32 input "
                      f"alone ({human_bytes(per_image)} an image), more than the {amount(available)} of memory "
                      "available here",
                      fix=f"use batch sizes well under {fits:,} (the network's activations need memory too), "
                          f"e.g. {key}=[1,32]")


def run_model_name(source: Source) -> str | None:
    """The model name the source's run recorded (for ONNX files written before their metadata named it)."""
    return ((source.run.data.get("model") or {}).get("name") if source.run is not None else None) or None


def chain_checkpoint(meta: dict[str, Any], source: Source, *, _followed: int = 0) -> Path | None:
    """The model.pt an ONNX file was exported from: named in its metadata, or in that of the ONNX file it was made
    from, unchanged (a quantize run that kept FP32 ships its source's file: probe 192, "the source chain holds no
    model.pt" of a chain that held one), else beside it in its run; None when the chain holds none. Raises
    CnnlabError when the file there is not the one the ONNX file came from: its SHA-256 differs from the one the
    metadata (or the run's run.json) recorded — another model.pt copied to that path since, whose latency or
    fine-tuning would be reported under the ONNX file's name, parameters and FLOPs (probe 69: a dense network timed,
    and QAT-trained, as its pruned ONNX file)."""
    origin = meta.get("source")
    if isinstance(origin, dict) and origin.get("kind") == "checkpoint" and origin.get("path"):
        path = Path(origin["path"])
        if path.is_file():
            recorded = origin.get("sha256")
            if isinstance(recorded, str) and file_sha256(path) != recorded:
                raise CnnlabError(f"{path}, the model.pt {source.path.name} was exported from, has changed since (its "
                                  f"SHA-256 differs from the one in {source.path}'s metadata): it is another network",
                                  fix=f"put back the model.pt {source.path.name} was exported from; for the network "
                                      f"now at {path}, name it instead ({path_argument('source', [path])})")
            return path
    if isinstance(origin, dict) and origin.get("kind") == "onnx" and origin.get("path") and _followed < 4:
        path = Path(origin["path"])
        if path.is_file() and path.resolve() != source.path.resolve():
            # the same network only while the file is the one recorded: its SHA-256, as the model.pt's above
            if origin.get("sha256") != model_sha256(path):
                raise CnnlabError(f"{path}, the ONNX file {source.path.name} was made from, has changed since (its "
                                  f"SHA-256 differs from the one in {source.path}'s metadata): the model.pt behind it "
                                  "is another network's", fix=f"put back the file {source.path.name} was made from")
            found = chain_checkpoint(read_onnx_metadata(path), Source(str(path), "onnx", path.resolve(), None),
                                     _followed=_followed + 1)
            if found is not None:
                return found
    if source.run is None or source.run.artifact("model") is None:
        return None
    model = source.run.artifact("model")
    return check_intact(Source(str(model), "checkpoint", model.resolve(), source.run)).path


def chained_model(meta: dict[str, Any], source: Source) -> tuple[nn.Module, Path, ModelCheckpoint] | str:
    """The PyTorch model behind the ONNX file `source` (metadata `meta`), its model.pt (`chain_checkpoint`) and that
    file's checkpoint, or
    why there is none: the chain holds no model.pt, or the one there is another network than the file's by what both
    record: input size, classes, parameter count (a file exported before the metadata kept the model.pt's SHA-256).
    Raises CnnlabError as chain_checkpoint does, for a model.pt whose SHA-256 differs from the recorded one."""
    path = chain_checkpoint(meta, source)
    if path is None:
        return "the source chain holds no model.pt"
    model, checkpoint = load_model(path)
    spec, classes, params = meta.get("spec"), meta.get("classes"), meta.get("params")
    if (spec is not None and checkpoint.spec.size != spec.size) or list(checkpoint.classes) != list(classes or []):
        return f"{path} does not match the ONNX file's input size or classes"
    if isinstance(params, int) and count_params(model) != params:
        return (f"{path} has {count_params(model):,} parameters and the ONNX file's network {params:,}: another "
                "network (replaced since the export?)")
    differs = other_outputs(model.eval(), source.path, checkpoint.spec)
    if differs is not None:  # probe 219: another network's file under metadata copied from this export
        return (f"{path}, which the ONNX file's metadata names, computes other outputs than the file ({differs}): "
                "the file is not its export")
    return model, path, checkpoint


def other_outputs(model: nn.Module, onnx_file: Path, spec: InputSpec) -> str | None:
    """None when the FP32 ONNX file computes `model`'s logits on a seeded random batch of `spec`'s shape, within
    export's shipped tolerance (export.compare_logits: SHIPPED_ATOL + SHIPPED_RTOL x the largest logit, what float32
    arithmetic of two runtimes needs); else how they differ. The same class count, input size and parameter count
    do not make a twin: a network of the same architecture with other weights (probe 219: a random-weight
    MobileNetV3 under metadata copied from a trained one's export, benched beside the trained model.pt)."""
    import torch

    from cnnlab.deploy.ort import onnx_session

    session = onnx_session(onnx_file, threads=1)
    declared = session.get_inputs()[0].shape[0]
    batch = declared if isinstance(declared, int) and declared > 0 else 2
    images = torch.randn(batch, spec.channels, spec.size, spec.size, generator=torch.Generator().manual_seed(0))
    expected, actual = logits_side_by_side(model, session, [images])
    compared = compare_logits(expected, actual, atol=SHIPPED_ATOL, rtol=SHIPPED_RTOL)
    if compared["passed"]:
        return None
    return (f"outputs of shape {list(actual.shape)} where it gives {list(expected.shape)}"
            if compared.get("shape_mismatch") else
            f"max |logit difference| {compared['max_abs_diff']:.3g} on a random batch, where float32 arithmetic "
            f"allows {compared['tolerance']:.3g}")


@contextlib.contextmanager
def exported_onnx_all(subjects: Sequence[TimedModel]) -> Iterator[list[TimedModel]]:
    """Every subject with an ONNX file (`exported_onnx`), in order; the temporary ones are removed at the end."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(exported_onnx(s, needed=True)) for s in subjects]


@contextlib.contextmanager
def exported_onnx(subject: TimedModel, needed: bool) -> Iterator[TimedModel]:
    """`subject` with an ONNX file for the onnxruntime backends: a copy with a temporary export (valid inside the
    `with` block only) when it has none, is `needed` and has a PyTorch model; else `subject` itself."""
    if subject.onnx is not None or not needed or subject.model is None:
        yield subject
        return
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as folder:
        onnx = export_onnx(subject.model, Path(folder) / "model.onnx", identity=subject.identity())
        yield replace(subject, onnx=onnx, onnx_bytes=onnx.stat().st_size)
