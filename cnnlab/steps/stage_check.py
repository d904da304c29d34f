"""A pipeline's stages composed and checked before the first one runs.

Each stage runs as its own `cnnlab COMMAND ...` process, which checks its settings when it starts. A mistake in a
later stage's overrides — `model=lenet55`, `trainer.epoch=3`, `sched.gamma=0.5` under sched=cosine, a value out of
range — was found only then, after every stage before it had trained. Here each stage's config is composed the way
its process will compose it (hydra_args.hydra_overrides, the pipeline's own config folders) and checked with the
same rules (settings.check_settings, and the stage command's own `check`), so the pipeline refuses it before any
work.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Collection, Mapping, Sequence

from omegaconf import OmegaConf

from cnnlab.commands import COMMANDS
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import hydra_overrides, recorded_groups
from cnnlab.settings import check_added_keys, check_settings, setting_facts
from cnnlab.steps.plan import REFERENCE, Stage


def check_stages(stages: Sequence[Stage], wanted: Collection[str], common: Sequence[str], config_name: str) -> None:
    """Compose every wanted stage's config as `cnnlab STAGE.COMMAND *common *overrides` would (an `@stage` reference
    stands for a run folder not made yet) and check it. Raises a CnnlabError naming the stage. Needs the running
    Hydra app (GlobalHydra: its config search path, --config-dir included); outside one it checks nothing."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    from cnnlab.errors_view import describe

    if not GlobalHydra.instance().is_initialized():
        return
    folders = {stage.name: f"/pipeline/{stage.name}/run" for stage in stages}  # a path, as the real one will be
    composed: dict[str, Any] = {}
    for stage in stages:
        if stage.name not in wanted:
            continue
        overrides = [*common, *stage.resolved_overrides(folders)]
        try:
            check_added_keys(overrides, stage.command)
            config = compose(config_name, overrides=hydra_overrides(stage.command, overrides))
            composed[stage.name] = config
            _check_input_size(stage, [*common, *stage.overrides], composed)
            check_settings(OmegaConf.to_container(config, resolve=True, throw_on_missing=False), stage.command,
                           recorded=recorded_groups(stage.command, overrides))
            if COMMANDS[stage.command].reads_source and config.get("source") in (None, "", "null"):
                # probe 198: a stage added without source= started, after the stages before it, and failed there
                raise CnnlabError(f"`cnnlab {stage.command}` needs a model to work on",
                                  fix=f"add source=@STAGE (a model stage before it) to pipeline.plan.{stage.name}"
                                      ".overrides")
            pipeline = importlib.import_module(COMMANDS[stage.command].pipeline)
            if hasattr(pipeline, "check"):  # what the stage's command parses itself (prune.method=nosuch)
                pipeline.check(config)
        except Exception as exc:  # noqa: BLE001 - Hydra's and OmegaConf's refusals, worded as the stage would
            facts = setting_facts(stage.command, stage.overrides, f"pipeline.plan.{stage.name}.overrides")
            message, is_bug = describe(exc, stage.command, facts)
            if is_bug:
                raise
            # a fix worded for a command line is typed into the stage's overrides (probe 60: `~optim.momentum`)
            message = re.sub(r" to the command( line)?\b", f" to pipeline.plan.{stage.name}.overrides", message)
            raise CnnlabError(f"pipeline.plan.{stage.name} (cnnlab {stage.command}): {message}") from None


# the commands that read their input size from their source's model file: a `dataset.image_size=` typed for them
# must be the model's (steps/sources.source_data refuses any other, but only when the stage runs)
_SIZED_BY_SOURCE = ("prune", "quantize", "export", "evaluate", "bench", "predict")


def _check_input_size(stage: Stage, typed: Sequence[str], composed: Mapping[str, Any]) -> None:
    """CnnlabError when `stage` reads its model from an earlier stage (`source=@NAME`) and a `dataset.image_size=`
    typed for it (`typed`: the common settings and its own overrides) differs from the size that stage's config
    trains at: found only when the stage ran, after everything before it had trained. Nothing is
    said where either size is left to the model (null) or the earlier stage is not part of this run."""
    if stage.command not in _SIZED_BY_SOURCE or not any(o.lstrip("+").startswith("dataset.image_size=")
                                                        for o in typed):
        return
    references = (REFERENCE.search(o) for o in stage.overrides if o.startswith("source="))
    source = next((found.group(1) for found in references if found), None)
    if source not in composed:
        return
    given = OmegaConf.select(composed[stage.name], "dataset.image_size")
    trained = OmegaConf.select(composed[source], "dataset.image_size")
    if given is None or trained is None or given == trained:
        return
    raise CnnlabError(f"dataset.image_size={given}, but stage {source} trains its model at {trained} px, and "
                      f"`cnnlab {stage.command}` feeds a model the images it was trained on",
                      fix=f"drop dataset.image_size= from pipeline.plan.{stage.name}.overrides (or give stage {source} "
                          "that size)")
