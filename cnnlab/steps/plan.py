"""A pipeline's plan: stages, the references between them, and a fingerprint per stage.

An experiment declares `pipeline.plan` as NAME → {command, overrides}; an override may name another
stage's run folder as `@stage` (`source=@finetune`). From that come the order, the dependencies, for
each model stage an export (when it has no model.onnx of its own), and at the end one `bench` stage that
times every model in one interleaved session (`cnnlab bench source=[...]`: the paired figures the
report's speed-ups come from). A stage's fingerprint hashes its command, its overrides and its inputs'
fingerprints, so a re-run recognises work already done — and redoes everything downstream of a stage
whose settings changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from cnnlab.commands import commands_where
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import hydra_value

REFERENCE = re.compile(r"@([A-Za-z_][\w.-]*)")
_REFERENCED_PATH = re.compile(REFERENCE.pattern + r"(/[^,\[\]{}()'\"=\s]*)?")  # @stage or @stage/file.pt
MODEL_COMMANDS = commands_where(produces_model=True)
HAS_OWN_ONNX = commands_where(writes_onnx=True)
RESUMABLE = commands_where(resumable=True)  # keep last.pt and accept resume=RUN
# what a stage can run: a command that writes a run folder, except a pipeline inside a pipeline
STAGE_COMMANDS = tuple(c for c in commands_where(records_run=True) if c != "pipeline")
BENCH_STAGE = "bench"                   # the one automatic stage that times every model together


@dataclass
class Stage:
    name: str
    command: str
    overrides: list[str]
    inputs: list[str] = field(default_factory=list)   # stages referenced with @name
    automatic: bool = False                          # an export/bench added by the pipeline

    def resolved_overrides(self, run_dirs: Mapping[str, str]) -> list[str]:
        """The overrides with each `@stage` replaced by its run folder, Hydra-quoted where the folder's path
        holds a comma or a space (an outputs folder `a b,c/` made `source=` a sweep and stopped the stage)."""
        return [_REFERENCED_PATH.sub(lambda m: hydra_value(run_dirs[m.group(1)] + (m.group(2) or "")), o)
                for o in self.overrides]

    def fingerprint(self, upstream: Mapping[str, str], common: Iterable[str]) -> str:
        text = [REFERENCE.sub(lambda m: "@" + upstream[m.group(1)], o) for o in self.overrides]
        return fingerprint(self.command, text, common)


def fingerprint(command: str, overrides: Iterable[str], common: Iterable[str] = ()) -> str:
    """What recognises a run done before: the command, its overrides in order, and the settings every run of
    the batch shares (`common`, any order). A pipeline stage and a sweep's job (steps/jobs.py) both use it."""
    payload = json.dumps([command, list(overrides), sorted(common)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def build_plan(plan: Mapping[str, Any], *, export: bool, bench: Mapping[str, Any]) -> list[Stage]:
    """The declared stages in order, each model stage followed by its export, then one bench of all models."""
    if not plan:
        raise CnnlabError("the experiment declares no pipeline.plan",
                          fix="use experiment=quickstart, or write conf/experiment/<name>.yaml with pipeline.plan")
    backends = bench.get("backends")  # a list, one name, or null / auto: the device's defaults
    names = None if backends in (None, "auto") else backends if isinstance(backends, list) else [backends]
    bench_overrides = ["bench.backends=auto" if names is None else f"bench.backends=[{','.join(map(str, names))}]",
                       f"bench.batch_sizes=[{','.join(str(b) for b in bench['batch_sizes'])}]",
                       f"bench.min_seconds={bench['min_seconds']}", f"bench.rounds={bench.get('rounds', 3)}"]
    if bench.get("threads") is not None:
        bench_overrides.append(f"bench.threads={bench['threads']}")
    stages: list[Stage] = []
    timed: list[str] = []
    for name, spec in plan.items():
        if name == BENCH_STAGE:
            raise CnnlabError(f"pipeline.plan.{name}: '{BENCH_STAGE}' is the name of the pipeline's own benchmark "
                              "stage", fix="give the stage another name")
        if not isinstance(spec, Mapping) or "command" not in spec:
            raise CnnlabError(f"pipeline.plan.{name} needs a command",
                              fix=f"write {{command: CMD, overrides: [...]}}, or leave the stage out with "
                                  f"~pipeline.plan.{name}")
        command = str(spec["command"])
        if command not in STAGE_COMMANDS:  # `inspect` writes no run folder: nothing for the pipeline to find
            raise CnnlabError(f"pipeline.plan.{name}: command {command!r} cannot be a stage",
                              fix=f"use one of {', '.join(STAGE_COMMANDS)}")
        extra = sorted(set(spec) - {"command", "overrides"})
        if extra:  # `overide: [...]` would run the stage with none of them, without a word
            raise CnnlabError(f"pipeline.plan.{name}.{extra[0]} is not a stage setting (a stage has a command and "
                              "overrides)", fix=f"write pipeline.plan.{name} as {{command: CMD, overrides: [...]}}")
        listed = spec.get("overrides") or []
        if not isinstance(listed, (list, tuple)):  # `overrides: model=lenet5` is a string: one override per letter
            raise CnnlabError(f"pipeline.plan.{name}.overrides is {listed!r}, not a list",
                              fix=f"write it in brackets: overrides: [{listed}]")
        overrides = [str(o) for o in listed]
        if any(o.lstrip("+~").split("=", 1)[0] == "resume" for o in overrides):  # probe 57: `resume=@tune` never works
            raise CnnlabError(f"pipeline.plan.{name}: resume= is the pipeline's own: it resumes an interrupted "
                              "training stage from its last.pt itself (a stage referred to with @ has completed)",
                              fix=f"drop resume= from pipeline.plan.{name}.overrides, and run the same `cnnlab "
                                  "pipeline` again to continue an interrupted one")
        inputs = sorted({ref for o in overrides for ref in REFERENCE.findall(o)})
        known = {s.name for s in stages}
        missing = [ref for ref in inputs if ref not in known]
        if missing:
            # probe 198: after ~pipeline.plan.finetune, the stages that used it had no fix
            raise CnnlabError(f"pipeline.plan.{name} refers to @{missing[0]}, which is not a stage before it",
                              fix=f"stages before {name}: {', '.join(sorted(known)) or '(none)'}; or leave {name} out "
                                  f"too (~pipeline.plan.{name})")
        stage = Stage(name, command, overrides, inputs)
        stages.append(stage)
        if stage.command not in MODEL_COMMANDS:
            continue
        if export and stage.command not in HAS_OWN_ONNX:
            stages.append(Stage(f"{name}.export", "export", [f"source=@{name}"], [name], automatic=True))
            timed.append(f"{name}.export")
        else:
            timed.append(name)
    if timed:  # one session for all: a speed-up divides latencies measured side by side, never at different times
        stages.append(bench_stage(timed, bench_overrides))
    return stages


def bench_stage(timed: list[str], settings: list[str]) -> Stage:
    """The automatic stage that times the models of the stages `timed` in one `cnnlab bench` session, with the
    bench `settings` (overrides)."""
    sources = f"source=[{','.join('@' + t for t in timed)}]" if len(timed) > 1 else f"source=@{timed[0]}"
    return Stage(BENCH_STAGE, "bench", [sources, *settings], list(timed), automatic=True)


def bench_of_available(bench: Stage, available: Iterable[str]) -> Stage | None:
    """`bench` (the automatic bench stage) timing only the models of the stages in `available` (those with a run:
    run this time, or completed before and still standing), None when none has one. A subset of the plan
    (`pipeline.stages=[...]`) times what it has: probe 197, `pipeline.stages=[pretrain,finetune,prune]` trained for
    minutes and then failed at the bench, which needed the quantize and distill it had left out."""
    have = set(available)
    timed = [name for name in bench.inputs if name in have]
    if timed == bench.inputs:
        return bench
    return bench_stage(timed, bench.overrides[1:]) if timed else None


def with_upstream(stages: list[Stage], name: str, missing: Iterable[str], asked: Iterable[str]) -> list[str]:
    """What `pipeline.stages` must list for stage `name` to run: the declared stages asked for, and every stage
    upstream of `name` (through all its `@` references, not only the direct ones) that is among `missing`; an
    automatic export stands for its stage (select() adds it back). In plan order."""
    by_name = {s.name: s for s in stages}
    found: set[str] = set()
    todo = list(by_name[name].inputs)
    while todo:
        upstream = todo.pop()
        if upstream not in found:
            found.add(upstream)
            todo += by_name[upstream].inputs
    asked = set(asked)
    needed = {n.split(".")[0] for n in found & set(missing)} | asked
    return [s.name for s in stages if s.name in needed and (not s.automatic or s.name in asked)]


def select(stages: list[Stage], wanted: Iterable[str] | None) -> set[str]:
    """Names of the stages to run: all, or the wanted ones with their automatic export and the bench (which then
    times the models that have a run: bench_of_available)."""
    if wanted is None:
        return {s.name for s in stages}
    wanted = [str(w) for w in wanted]
    declared = [s.name for s in stages if not s.automatic or s.name == BENCH_STAGE]
    if not wanted:  # probe 87: `pipeline.stages=[]` ran nothing, exit 0
        raise CnnlabError("pipeline.stages=[] names no stage", fix=f"name some of {', '.join(declared)}, or drop it")
    unknown = [w for w in wanted if w not in {s.name for s in stages}]
    if unknown:  # probe 198: no nearest name, and the exports it accepts were not said
        near = difflib.get_close_matches(unknown[0], [s.name for s in stages], n=1)
        exports = " and their exports (NAME.export)" if any(s.automatic and s.name != BENCH_STAGE for s in stages) \
            else ""
        raise CnnlabError(f"pipeline.stages names an unknown stage '{unknown[0]}'",
                          fix=(f"did you mean {near[0]}? " if near else "") + f"the experiment's stages: "
                              f"{', '.join(declared)}{exports} (several: pipeline.stages=[{','.join(declared[:2])}])")
    chosen = set(wanted)
    chosen |= {s.name for s in stages if s.automatic and s.name.split(".")[0] in chosen}
    chosen |= {s.name for s in stages if s.name == BENCH_STAGE and chosen & set(s.inputs)}
    return chosen
