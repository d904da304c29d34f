"""Typed dataset settings a model's recorded preprocessing overrides: refused, not silently ignored.

A model trained (or pretrained weights) records its whole preprocessing (data/spec.py InputSpec): it is fed the
way it learned, whatever `dataset.mean`, `std` or `image_size` say (`dataset.channels` describes the images,
which the transforms convert to the model's channels, so it is not one of them). A setting the user typed for it
that differs would be dropped without a word and still written into run.json's dataset config — so it is refused
with the value that applies.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from cnnlab.context import RunContext
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError, found_before_work

INPUT_KEYS = ("image_size", "mean", "std")  # the dataset settings an InputSpec fixes


def _applied(spec: InputSpec, key: str) -> Any:
    """What `spec` applies for dataset.KEY, as its model records it (a 1-channel model: one mean, one std)."""
    return {"image_size": spec.size, "mean": list(spec.mean[:spec.channels]),
            "std": list(spec.std[:spec.channels])}[key]


def _same(typed: Any, applied: Any) -> bool:
    if isinstance(applied, list):  # one value, or one for each of R, G, B (a dataset's config holds three)
        values = OmegaConf.to_container(typed) if OmegaConf.is_config(typed) else typed
        if not isinstance(values, (list, tuple)) or len(values) not in (1, 3):
            return False
        if len(values) < len(applied):  # one value where the model reads R, G and B: refused, as for a new model
            return False
        triple, wanted = [*values] * (3 // len(values)), [*applied] * (3 // len(applied))
        return all(isinstance(v, (int, float)) and abs(float(v) - a) < 1e-6 for v, a in zip(triple, wanted))
    return typed is not None and str(typed) == str(applied)


def typed_normalisation(cfg: DictConfig, ctx: RunContext) -> tuple[Any, Any] | None:
    """(dataset.mean, dataset.std) as composed, when either was typed on this command line: what a plain state dict,
    which records no normalisation, is then read with in place of ImageNet's (cnnlab.weights.resolve_weights;
    probe 175: typed, they were ignored without a word, where an at-chance teacher's hint asked for them)."""
    if not ctx.explicitly_set("dataset.mean", "dataset.std"):
        return None
    return OmegaConf.select(cfg, "dataset.mean"), OmegaConf.select(cfg, "dataset.std")


@found_before_work()
def refuse_ignored_input_settings(cfg: DictConfig, ctx: RunContext, spec: InputSpec, whose: str,
                                  keys: tuple[str, ...] = INPUT_KEYS) -> None:
    """CnnlabError when a `dataset.KEY=` typed on this command line (KEY in `keys`) differs from what `spec` — the
    preprocessing of `whose` ("the model", "the pretrained weights") — applies. Raises nothing for untyped keys:
    the composed defaults (a dataset's own mean/std) give way to the model's without being the user's choice."""
    for key in keys:
        if not ctx.explicitly_set(f"dataset.{key}"):
            continue
        typed, applied = OmegaConf.select(cfg, f"dataset.{key}"), _applied(spec, key)
        if typed is not None and not _same(typed, applied):  # `dataset.image_size=null`: the model's, as untyped
            values = OmegaConf.to_container(typed) if OmegaConf.is_config(typed) else typed
            # as typed (probe 194: Python's `[0.4, 0.4, 0.4]` for `[0.4,0.4,0.4]`)
            shown = "[" + ",".join(str(v) for v in values) + "]" if isinstance(values, list) else values
            what = f"{applied} px images" if key == "image_size" else f"{key} {applied}"
            # one value where the model reads R, G and B: refused as the settings rule refuses it for 3 channels
            one = isinstance(values, list) and len(values) == 1 and isinstance(applied, list) and len(applied) == 3
            said = f"dataset.{key}={shown} is not allowed: dataset.{key} takes a list of 3 numbers for the 3 " \
                   f"channels (R, G, B) {whose} reads, and it" if one else f"dataset.{key}={shown}, but {whose}"
            raise CnnlabError(f"{said} takes {what} (its preprocessing is recorded with it and applied as recorded)",
                              fix=f"drop dataset.{key}=, or train a model with that setting and use that one")
