"""What `cnnlab bench` times, from its settings: a randomly initialised `model=NAME`, one `source=`, or the
models of `source=[A,B,...]` for one paired session — each a `TimedModel` (cnnlab/deploy/subject.py)."""

from __future__ import annotations

from omegaconf import DictConfig

from cnnlab.context import RunContext
from cnnlab.deploy.subject import TimedModel, timed_model_of, timed_zoo_model
from cnnlab.errors import CnnlabError, found_before_work
from cnnlab.runs import resolve_source
from cnnlab.steps.sources import refuse_dataset_settings, require_source
from cnnlab.steps.zoo_model import zoo_model


def bench_model(cfg: DictConfig, ctx: RunContext) -> TimedModel:
    """The one model to time: `source=` (its ONNX file and the PyTorch model behind it, recorded in run.json), or
    without a source a fresh `model=NAME` at bench.image_size / bench.num_classes (default: the dataset's).
    Raises CnnlabError for both given, or a source that cannot be read."""
    settings = cfg.bench
    if cfg.get("source") in (None, "", "null"):
        zoo = zoo_model(cfg, image_size=settings.get("image_size"), num_classes=settings.get("num_classes"),
                        size_key="bench.image_size")
        return timed_zoo_model(zoo.name, zoo.model, zoo.spec, zoo.num_classes)
    _check_source_only(cfg, ctx)
    with found_before_work():  # a file that cannot be read is a refusal too (probe 209: a zero-byte model.pt left a
        return timed_model_of(require_source(cfg, ctx, want=("onnx", "checkpoint")))  # `failed` run)


def paired_models(cfg: DictConfig, ctx: RunContext) -> list[TimedModel]:
    """`source=[A,B,...]`: every source, for one interleaved session (their ONNX files; PyTorch models only where
    an ONNX file must be exported for the timing). Raises CnnlabError for fewer than two."""
    _check_source_only(cfg, ctx)
    specs = [str(spec) for spec in cfg.source]
    # probe 98: `source=[/nope,/nope2]` left a failed run, where `source=/nope` left none; `source=[A]` too (session 72)
    with found_before_work():
        if len(specs) < 2:
            raise CnnlabError(f"source=[{','.join(specs)}] lists {len(specs)} model(s); a paired session times two "
                              "or more", fix="pass source=[A,B,...], or source=A for one model")
        sources = [resolve_source(spec, ctx.outputs, want=("onnx", "checkpoint")) for spec in specs]
        return [timed_model_of(source, torch_twin=False) for source in sources]


@found_before_work()
def _check_source_only(cfg: DictConfig, ctx: RunContext) -> None:
    # model= with source= is refused where every command's settings are checked (app.check_model_is_read)
    if cfg.bench.get("image_size") is not None or cfg.bench.get("num_classes") is not None:
        raise CnnlabError("bench.image_size / bench.num_classes apply to model=NAME only; a source's input is fixed",
                          fix="drop them, or time a fresh model with model=NAME")
    refuse_dataset_settings(ctx, "bench times a source at the input size it records, whatever the dataset says",
                            "a fresh model=NAME takes bench.image_size")
