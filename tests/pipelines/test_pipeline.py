"""`cnnlab pipeline`: stages as ordinary linked runs, skip/resume on re-run, subsets, the user's config folder passed
to every stage, one paired bench of every model, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.pipelines.pipeline import decide
from cnnlab.steps.plan import Stage, build_plan, select, with_upstream
from cnnlab.runs import RunInfo, RunRecord, iter_runs
from helpers import TINY, random_image_folder

BENCH = {"backends": ["onnxruntime"], "batch_sizes": [1], "threads": 1, "min_seconds": 0.0}
# TINY without its dataset: the teacher learns `dataset=shapes`, a dataset defined only in the user's config folder
# (the embedded synthetic data under another name), so every stage must be given --config-dir.
TINY_TEXT = ", ".join(o for o in TINY if not o.startswith("dataset"))
SHAPES = """defaults: [synthetic, _self_]
image_size: 16
train_size: 64
val_size: 32
num_classes: 4
"""

EXPERIMENT = f"""# @package _global_
pipeline:
  name: tiny
  bench: {{backends: [onnxruntime], batch_sizes: [1], threads: 1, min_seconds: 0.02, rounds: 2}}
  plan:
    teacher:
      command: pretrain
      overrides: [dataset=shapes, {TINY_TEXT}]
    pruned:
      command: prune
      overrides: [source=@teacher, prune.ratio=RATIO, trainer.epochs=1, prune.measure=false]
"""


def write_experiment(root: Path, ratio: float | str = 0.5) -> Path:
    folder = root / "myconf" / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(EXPERIMENT.replace("RATIO", str(ratio)))
    (root / "myconf" / "dataset").mkdir(exist_ok=True)
    (root / "myconf" / "dataset" / "shapes.yaml").write_text(SHAPES)
    return root / "myconf"


def pipeline_records(outputs: Path) -> list[dict]:
    """The pipeline's own run records (one per invocation), oldest first."""
    workspace = outputs / "pipeline" / "tiny"
    return [r.data for r in iter_runs(workspace) if r.command == "pipeline"]


def stage_runs(outputs: Path) -> list[RunInfo]:
    return [r for r in iter_runs(outputs / "pipeline" / "tiny" / "runs")]


def test_plan_adds_export_and_one_paired_bench_and_checks_references() -> None:
    stages = build_plan({"a": {"command": "pretrain"}, "b": {"command": "quantize", "overrides": ["source=@a"]}},
                        export=True, bench=BENCH)
    assert [s.name for s in stages] == ["a", "a.export", "b", "bench"]  # quantize has its own ONNX
    bench = stages[-1]  # every model in one session: paired timings, the only ones the report divides
    assert bench.overrides[0] == "source=[@a.export,@b]" and bench.inputs == ["a.export", "b"]
    assert "bench.rounds=3" in bench.overrides and stages[2].inputs == ["a"]
    with pytest.raises(CnnlabError, match="refers to @c") as refused:
        build_plan({"b": {"command": "prune", "overrides": ["source=@c"]}}, export=True, bench=BENCH)
    assert refused.value.fix.endswith("or leave b out too (~pipeline.plan.b)")  # probe 198: after ~pipeline.plan.c
    with pytest.raises(CnnlabError, match="pipeline's own benchmark"):
        build_plan({"bench": {"command": "pretrain"}}, export=True, bench=BENCH)
    # an unknown command was a KeyError traceback once stages were checked before running; inspect writes no run
    # folder, so the pipeline found no attempt and said "failed with exit code 0"
    with pytest.raises(CnnlabError, match=r"overrides is 'model=lenet5', not a list — write it in brackets"):
        build_plan({"a": {"command": "pretrain", "overrides": "model=lenet5"}}, export=True, bench=BENCH)
    with pytest.raises(CnnlabError, match=r"pipeline.plan.b: resume= is the pipeline's own"):
        build_plan({"a": {"command": "pretrain"}, "b": {"command": "finetune", "overrides": ["resume=@a"]}},
                   export=True, bench=BENCH)
    for command in ("foo", "inspect", "pipeline"):
        with pytest.raises(CnnlabError, match=f"command '{command}' cannot be a stage — use one of pretrain, "):
            build_plan({"a": {"command": command}}, export=True, bench=BENCH)
    # a typo in a stage ran it without its overrides (pipeline.plan is an open section of the settings check)
    with pytest.raises(CnnlabError, match=r"pipeline.plan.a.overide is not a stage setting"):
        build_plan({"a": {"command": "pretrain", "overide": ["model=lenet5"]}}, export=True, bench=BENCH)
    assert select(stages, ["b"]) == {"b", "bench"}
    assert select(stages, ["a"]) == {"a", "a.export", "bench"}
    with pytest.raises(CnnlabError, match="unknown stage 'z'"):
        select(stages, ["z"])


def test_the_device_defaults_reach_the_bench_stage_as_auto() -> None:
    """pipeline.bench.backends=auto (what bench.backends=auto means) became `bench.backends=[a,u,t,o]`, and null
    a TypeError traceback."""
    for backends in ("auto", None):
        stages = build_plan({"a": {"command": "pretrain"}}, export=True, bench={**BENCH, "backends": backends})
        assert "bench.backends=auto" in stages[-1].overrides
    one = build_plan({"a": {"command": "pretrain"}}, export=True, bench={**BENCH, "backends": "onnxruntime"})
    assert "bench.backends=[onnxruntime]" in one[-1].overrides


def test_a_stage_setting_its_mode_does_not_read_is_refused_before_any_stage_runs(cli, outputs: Path,
                                                                                 tmp_path: Path) -> None:
    """Probe 140: a stage's `finetune.mode=full finetune.unfreeze=2` was refused only when that stage ran, after the
    stages before it had trained; docs/pipeline.md says every stage is checked before the first runs."""
    conf = write_experiment(tmp_path)
    recipe = conf / "experiment" / "tiny.yaml"
    recipe.write_text(recipe.read_text() + "    tuned:\n      command: finetune\n      overrides: "
                      "[model.weights=@teacher, finetune.mode=full, finetune.unfreeze=2, trainer.epochs=1]\n")
    result = cli("pipeline", "--config-dir", str(conf), "experiment=tiny")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "pipeline.plan.tuned (cnnlab finetune): finetune.unfreeze=2 applies to" in said, \
        result.output
    assert stage_runs(outputs) == []


def test_a_bench_setting_is_refused_by_its_pipeline_key_before_any_stage_runs(cli, outputs: Path,
                                                                               tmp_path: Path) -> None:
    """pipeline.bench.batch_sizes=[1,1] trained every model, then its bench stage failed with "use
    bench.batch_sizes=[1]" — a key the pipeline does not pass on."""
    conf = write_experiment(tmp_path)
    for typed, fix in (("pipeline.bench.batch_sizes=[1,1]", "use pipeline.bench.batch_sizes=[1]"),
                       ("pipeline.bench.backends=[onnx]", "choose from"),
                       ("pipeline.bench.min_seconds=-1", "set e.g. pipeline.bench.min_seconds=1.0"),
                       ("pipeline.bench.rounds=0", "pipeline.bench.rounds=3")):
        result = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", typed)
        assert result.code == 2 and fix in result.stderr and "Traceback" not in result.stderr, result.output
        assert "backends=auto" not in result.stderr  # the command line refuses it there ("takes a list")
    assert stage_runs(outputs) == []
    # probe 86: an empty `plan:` or pipeline.plan=null was a traceback ("this is a bug in cnnlab"), and a failed run
    empty = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.plan=null")
    assert empty.code == 2 and "declares no pipeline.plan" in empty.stderr and "Traceback" not in empty.output
    one = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=nosuch")  # no brackets
    assert one.code == 2 and "'nosuch'" in one.stderr and "'n'" not in one.stderr, one.output
    for typed, said in (("pipeline.stages=1", "unknown stage '1'"), ("pipeline.stages=true", "unknown stage 'True'"),
                        ("pipeline.stages=[]", "names no stage")):  # probe 87: a traceback; the last ran nothing
        result = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", typed)
        assert result.code == 2 and said in result.stderr and "Traceback" not in result.output, result.output
    assert not (outputs / "pipeline" / "tiny").exists() or not list((outputs / "pipeline" / "tiny").rglob("run.json"))
    # probe 197: a stage left out with ~ was refused ("deletes a setting"), though --cfg job showed it gone; a stage
    # set to null was told to have a command only
    dropped = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "~pipeline.plan.pruned",
                  "pipeline.stages=[nosuch]")
    assert dropped.code == 2 and "the experiment's stages: teacher, bench " in " ".join(dropped.stderr.split()), \
        dropped.output
    nulled = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.plan.pruned=null")
    assert nulled.code == 2 and "or leave the stage out with ~pipeline.plan.pruned" in " ".join(
        nulled.stderr.split()), nulled.output
    # a misspelt stage was "unknown setting …; +KEY=VALUE adds a new key on purpose", which then "needs a command",
    # and its refusal left two empty folders beside the workspace
    typo = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.plan.prunde.overrides=['a=1']")
    said = " ".join(typo.stderr.split())
    assert typo.code == 2 and "the experiment's plan has no stage 'prunde' (pipeline.plan.prunde.overrides) — did " \
        "you mean pipeline.plan.pruned.overrides? (its stages: teacher, pruned)" in said, typo.output
    assert not [p for p in outputs.rglob("*") if p.is_dir() and not any(p.iterdir())]
    # probe 198: a stage's own key misspelt was "no stage 'pruned'" with the misspelt key as its "did you mean"
    key = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.plan.pruned.overides=['a=1']")
    assert key.code == 2 and "stage pruned has no setting 'overides' (pipeline.plan.pruned.overides) — did you mean " \
        "pipeline.plan.pruned.overrides?" in " ".join(key.stderr.split()), key.output
    # one stage without brackets: its fix was built from its letters ('[teacher]', pruned left out)
    scalar = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=pruned")
    assert scalar.code == 2 and "'pipeline.stages=[teacher,pruned]'" in scalar.stderr, scalar.output
    # the bench alone of a new workspace failed in its report and left a failed run
    bench = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=[bench]")
    assert bench.code == 2 and "stage bench has no model to time" in bench.stderr and \
        "'pipeline.stages=[teacher,bench]'" in bench.stderr, bench.output
    # a stage added without source= started after the stages before it had run, and failed there
    sourceless = cli("pipeline", "--config-dir", str(conf), "experiment=tiny",
                     '+pipeline.plan.p2={command: prune, overrides: ["prune.ratio=0.3"]}')
    said = " ".join(sourceless.stderr.split())
    assert sourceless.code == 2 and "pipeline.plan.p2 (cnnlab prune): `cnnlab prune` needs a model to work on — add " \
        "source=@STAGE (a model stage before it) to pipeline.plan.p2.overrides" in said, sourceless.output
    near = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=[prunde]")
    assert near.code == 2 and "did you mean pruned? the experiment's stages: teacher, pruned, bench and their " \
        "exports (NAME.export)" in " ".join(near.stderr.split()), near.output
    assert not list(outputs.rglob("run.json")) and not [p for p in outputs.rglob("*") if p.is_dir()
                                                         and not any(p.iterdir())]
    added = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=[nosuch]",
                '+pipeline.plan.prunde={command: prune, overrides: ["source=@teacher", "prune.ratio=0.3"]}')
    assert added.code == 2 and "teacher, pruned, prunde, bench" in " ".join(added.stderr.split()), added.output


def test_fingerprints_follow_settings_and_inputs() -> None:
    a = Stage("a", "pretrain", ["trainer.epochs=1"])
    b = Stage("b", "prune", ["source=@a"], ["a"])
    fa = a.fingerprint({}, ["seed=0"])
    assert fa == Stage("a", "pretrain", ["trainer.epochs=1"]).fingerprint({}, ["seed=0"])
    assert fa != a.fingerprint({}, ["seed=1"])
    assert b.fingerprint({"a": fa}, []) != b.fingerprint({"a": "another"}, [])  # upstream change → redo


def test_decide_reuses_resumes_or_runs(tmp_path: Path) -> None:
    def attempt(status: str, checkpoint: bool) -> RunInfo:
        folder = tmp_path / status / str(checkpoint)
        record = RunRecord.start(folder, "finetune")
        if checkpoint:
            (folder / "last.pt").write_bytes(b"x")
            record.add_artifact("checkpoint", folder / "last.pt")
        record.finish(status)
        return RunInfo(folder, json.loads((folder / "run.json").read_text()))

    train, bench = Stage("t", "finetune", []), Stage("b", "bench", [])
    assert decide(train, None) == "ran"
    assert decide(train, attempt("completed", False)) == "reused"
    assert decide(train, attempt("interrupted", True)) == "resumed"
    assert decide(train, attempt("failed", False)) == "ran"
    assert decide(bench, attempt("failed", True)) == "ran"  # only training commands resume
    assert decide(Stage("d", "distill", []), attempt("dead", True)) == "resumed"


def test_an_attempt_made_after_the_change_is_resumed_and_those_before_it_are_not_reused(tmp_path: Path) -> None:
    """A completed run of the old images hid the newer interrupted one: every re-run trained from scratch."""
    from cnnlab.pipelines.pipeline import _find
    from cnnlab.steps.freshness import changed_since

    runs = tmp_path / "runs"
    for minute, (name, status, inputs) in enumerate((("a", "completed", "/runs/old"), ("b", "interrupted", "/runs/new"))):
        record = RunRecord.start(runs / name, "finetune")
        record.update(pipeline={"fingerprint": "f", "inputs": {"teacher": inputs}}, started=f"2026-12-02T10:0{minute}")
        (runs / name / "last.pt").write_bytes(b"x")
        record.add_artifact("checkpoint", runs / name / "last.pt")
        record.finish(status)
    now = {"teacher": "/runs/new"}
    assert _find(runs, "f").path.name == "a"  # the newest completed one, stale
    fresh = _find(runs, "f", lambda r: not changed_since(r, now))
    assert fresh is not None and fresh.path.name == "b" and decide(Stage("s", "finetune", []), fresh) == "resumed"
    assert _find(runs, "f", lambda r: not changed_since(r, {"teacher": "/runs/newer"})) is None  # start over


def test_a_stage_stopped_again_before_its_first_checkpoint_resumes_the_attempt_that_kept_one(tmp_path: Path) -> None:
    """Probe 175: A stopped after epoch 1 (last.pt), B resumed it and was stopped before writing one: the next
    pipeline found B, the newest attempt, without a checkpoint, and trained the stage from epoch 1 again."""
    from cnnlab.pipelines.pipeline import _find

    runs = tmp_path / "runs"
    for minute, (name, checkpoint) in enumerate((("a", True), ("b", False))):
        record = RunRecord.start(runs / name, "pretrain")
        record.update(pipeline={"fingerprint": "f"}, started=f"2026-12-06T10:0{minute}")
        if checkpoint:
            (runs / name / "last.pt").write_bytes(b"x")
            record.add_artifact("checkpoint", runs / name / "last.pt")
        record.finish("interrupted")
    found = _find(runs, "f")
    assert found is not None and found.path.name == "a" and decide(Stage("s", "pretrain", []), found) == "resumed"


def test_the_stages_a_subset_needs_are_named_through_every_reference() -> None:
    """Probe 56: `pipeline.stages=[quantize]` offered `[finetune,quantize]`; typed, that offered `[pretrain,finetune]`,
    which dropped quantize."""
    stages = build_plan({"pretrain": {"command": "pretrain"},
                         "finetune": {"command": "finetune", "overrides": ["model.weights=@pretrain"]},
                         "quantize": {"command": "quantize", "overrides": ["source=@finetune"]},
                         "prune": {"command": "prune", "overrides": ["source=@finetune"]}}, export=True, bench=BENCH)
    everything = [s.name for s in stages]
    assert with_upstream(stages, "quantize", everything, ["quantize"]) == ["pretrain", "finetune", "quantize"]
    done = [n for n in everything if n not in ("pretrain", "pretrain.export")]  # pretrain completed before
    assert with_upstream(stages, "quantize", done, ["quantize"]) == ["finetune", "quantize"]
    assert with_upstream(stages, "bench", everything, ["prune", "bench"]) == everything[:1] + [
        "finetune", "quantize", "prune", "bench"]


def test_a_subset_of_the_plan_is_refused_before_any_stage_when_it_needs_one_left_out() -> None:
    """Probe 197: `pipeline.stages=[pretrain,...]` trained its first stages for minutes before a later one was refused
    for a stage left out; the bench (added by the pipeline) then needed every model stage. A stage to run that needs
    one neither run now nor completed before is refused first; the bench times the models that have a run."""
    from cnnlab.pipelines.pipeline import _refuse_unmet_inputs
    from cnnlab.steps.plan import bench_of_available

    stages = build_plan({"pretrain": {"command": "pretrain"},
                         "finetune": {"command": "finetune", "overrides": ["model.weights=@pretrain"]},
                         "quantize": {"command": "quantize", "overrides": ["source=@finetune"]}}, export=True,
                        bench=BENCH)
    wanted = select(stages, ["pretrain", "quantize"])
    with pytest.raises(CnnlabError, match=r"stage quantize needs stage finetune, which has not completed") as refused:
        _refuse_unmet_inputs(stages, wanted, lambda name: None, ["pretrain", "quantize"])
    assert refused.value.before_work and "'pipeline.stages=[pretrain,finetune,quantize]'" in refused.value.fix
    completed = RunInfo(Path("x"), {"status": "completed"})
    _refuse_unmet_inputs(stages, wanted, lambda name: completed if name == "finetune" else None, None)  # done before
    bench = stages[-1]
    assert bench.inputs == ["pretrain.export", "finetune.export", "quantize"]
    timed = bench_of_available(bench, {"pretrain": "a", "pretrain.export": "b", "quantize": "c"})
    assert timed is not None and timed.inputs == ["pretrain.export", "quantize"]
    assert timed.overrides[0] == "source=[@pretrain.export,@quantize]" and timed.overrides[1:] == bench.overrides[1:]
    assert bench_of_available(bench, {"pretrain": "a"}) is None and bench_of_available(bench, bench.inputs) is bench


def test_model_stages_and_resumable_ones_come_from_the_command_table() -> None:
    stages = build_plan({"a": {"command": "distill"}, "b": {"command": "prune", "overrides": ["source=@a"]},
                         "c": {"command": "evaluate", "overrides": ["source=@a"]}}, export=True, bench=BENCH)
    assert [s.name for s in stages] == ["a", "a.export", "b", "c", "bench"]  # prune writes its own ONNX
    assert stages[-1].inputs == ["a.export", "b"]  # evaluate makes no model: nothing to time


def test_a_distill_stage_resumes_the_way_the_pipeline_runs_it(cli, outputs: Path) -> None:
    """What _run_stage runs for a resumed stage: the stage's own overrides again, plus resume=RUN."""
    from helpers import run_dirs

    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim=adamw", "optim.lr=0.003").code == 0  # beats chance
    stage = Stage("d", "distill", ["teacher=lenet5", "teacher.weights=@t", "student=lenet5", "trainer.epochs=EPOCHS",
                                   "trainer.batch_size=16", "trainer.amp=none", "distill.baseline=false"], ["t"])

    def overrides(epochs: int) -> list[str]:
        resolved = stage.resolved_overrides({"t": str(run_dirs(outputs, "pretrain")[0])})
        return ["seed=0", "device=cpu", *(o.replace("EPOCHS", str(epochs)) for o in resolved)]

    assert cli("distill", *overrides(1)).code == 0  # an attempt that stopped after its first epoch
    first = run_dirs(outputs, "distill")[0]
    result = cli("distill", *overrides(2), f"resume={first}")
    assert result.code == 0, result.output
    resumed = RunInfo.read(run_dirs(outputs, "distill")[-1])
    assert resumed.data["resumed_from"] == str(first) and resumed.metrics.extra["epochs"] == 2
    assert resumed.metrics.extra["history"][0] == RunInfo.read(first).metrics.extra["history"][0]


def test_pipeline_runs_a_subset_then_every_stage_then_reuses_them(cli, outputs: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """A subset first (probe 197: in a new workspace no `pipeline.stages` subset could end with exit 0: the bench
    stage the pipeline adds needed every model stage, and its fix named the stages left out), then the whole plan,
    which reuses the subset's stages, then the same again: every stage reused. (One test: each stage is a process.)"""
    conf = write_experiment(tmp_path)
    subset = cli("pipeline", "--config-dir", str(conf), "experiment=tiny", "pipeline.stages=[teacher]")
    assert subset.code == 0, subset.output
    assert "leaves out pruned (not in pipeline.stages): no run of its settings (seed included) in this workspace" in \
        " ".join(subset.output.split()), subset.output
    by_stage = {r.data["pipeline"]["stage"]: r for r in stage_runs(outputs)}
    assert sorted(by_stage) == ["bench", "teacher", "teacher.export"]
    assert by_stage["bench"].data["source"]["run"] == str(by_stage["teacher.export"].path)  # the one model it has
    report = json.loads((outputs / "pipeline" / "tiny" / "report.json").read_text())
    assert [row["command"] for row in report["rows"]] == ["pretrain"]
    subset_bench = by_stage["bench"].path

    first = cli("pipeline", "--config-dir", str(conf), "experiment=tiny")
    assert first.code == 0, first.output
    runs = [r for r in stage_runs(outputs) if r.path != subset_bench]
    stages = sorted(r.data["pipeline"]["stage"] for r in runs)
    assert stages == ["bench", "pruned", "teacher", "teacher.export"]
    assert all(r.status == "completed" for r in runs)
    by_stage = {r.data["pipeline"]["stage"]: r for r in runs}
    teacher = by_stage["teacher"].data
    assert teacher["dataset"]["name"] == "synthetic" and teacher["dataset"]["num_classes"] == 4  # myconf's shapes
    bench = by_stage["bench"]  # one session timed both models, round by round
    subjects = bench.data["paired"]["subjects"]
    assert [s["run"] for s in subjects] == [str(by_stage["teacher.export"].path), str(by_stage["pruned"].path)]
    latency = bench.data["metrics"]["latency"]
    assert sorted(r["subject"] for r in latency) == [0, 1] and all(len(r["p50_ms_per_round"]) == 2 for r in latency)
    records = pipeline_records(outputs)
    assert len(records) == 2 and records[-1]["status"] == "completed"
    assert {n: s["how"] for n, s in records[-1]["pipeline"]["stages"].items()} == {
        "teacher": "reused", "teacher.export": "reused", "pruned": "ran", "bench": "ran"}  # the bench: new models
    workspace = outputs / "pipeline" / "tiny"
    assert (workspace / "report.md").is_file() and (workspace / "report.png").is_file()
    report = json.loads((workspace / "report.json").read_text())
    assert {row["command"] for row in report["rows"]} == {"pretrain", "prune"}
    assert all(row["p50_ms"] is not None for row in report["rows"]) and any(row["pareto"] for row in report["rows"])
    pruned = next(row for row in report["rows"] if row["command"] == "prune")
    assert pruned["speedup"]["status"] in ("paired", "unstable")  # from the session; stable or not is the machine's
    assert pruned["speedup"]["bench_run"] == str(bench.path.relative_to(workspace))
    assert len(pruned["speedup"]["per_round"]) == 2

    # Hydra resolved the default run and sweep folders while merging the pipeline's own: two empty folders a run
    assert [p for p in outputs.rglob("*") if p.is_dir() and not any(p.iterdir())] == []

    again = cli("pipeline", "--config-dir", str(conf), "experiment=tiny")
    assert again.code == 0, again.output
    assert len(stage_runs(outputs)) == 5  # nothing ran twice (the subset's bench, and the four stages)
    assert {s["how"] for s in pipeline_records(outputs)[-1]["pipeline"]["stages"].values()} == {"reused"}
    # probe 104: a copied workspace ran every stage after the first again ("stage teacher ran again since"): its
    # runs record the folders they were written to
    import shutil

    copy = tmp_path / "copied" / "outputs"
    shutil.copytree(outputs, copy, symlinks=True)
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(copy))
    in_copy = cli("pipeline", "--config-dir", str(conf), "experiment=tiny")
    assert in_copy.code == 0 and "ran again since" not in in_copy.output, in_copy.output
    assert {s["how"] for s in pipeline_records(copy)[-1]["pipeline"]["stages"].values()} == {"reused"}
    copied = json.loads((copy / "pipeline" / "tiny" / "report.json").read_text())
    assert all(row["p50_ms"] is not None for row in copied["rows"])  # its bench session, read in the copy
    # probe 56 (a deleted model file, a reused stage): tests/steps/test_freshness.py; probe 57 (the replaced export
    # and bench pooled with the new ones): tests/report/test_report.py


@pytest.mark.slow  # ~60 s (three pipelines); the decisions are unit-tested above and in tests/steps/test_freshness.py
def test_a_stage_whose_image_folder_changed_runs_again_with_everything_after_it(cli, outputs: Path,
                                                                                 tmp_path: Path) -> None:
    """The fingerprint is the command line: new images in the same folder reused the old model and its scores."""
    data = random_image_folder(tmp_path / "photos")
    folder = tmp_path / "myconf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "photos.yaml").write_text(f"""# @package _global_
pipeline:
  name: tiny
  report: false
  bench: {{backends: [onnxruntime], batch_sizes: [1], threads: 1, min_seconds: 0.0, rounds: 1}}
  plan:
    teacher:
      command: pretrain
      overrides: [dataset=imagefolder, dataset.root={data}, dataset.image_size=16, model=lenet5, trainer.epochs=1,
                  trainer.batch_size=4]
""")
    command = ["pipeline", "--config-dir", str(tmp_path / "myconf"), "experiment=photos"]
    assert cli(*command).code == 0
    assert {s["how"] for s in pipeline_records(outputs)[-1]["pipeline"]["stages"].values()} == {"ran"}
    assert cli(*command).code == 0
    assert {s["how"] for s in pipeline_records(outputs)[-1]["pipeline"]["stages"].values()} == {"reused"}
    random_image_folder(tmp_path / "new", per_class=1, classes=("dog",), seed=1)
    (tmp_path / "new" / "dog" / "0.png").rename(data / "dog" / "new.png")
    again = cli(*command)
    assert again.code == 0, again.output
    assert "changed since it ran" in " ".join(again.output.split())
    stages = pipeline_records(outputs)[-1]["pipeline"]["stages"]
    assert {name: s["how"] for name, s in stages.items()} == {"teacher": "ran", "teacher.export": "ran", "bench": "ran"}
    exported = RunInfo.read(Path(stages["teacher.export"]["run"])).data
    assert exported["pipeline"]["inputs"] == {"teacher": stages["teacher"]["run"]}  # what makes the stages after rerun
    teacher = RunInfo.read(Path(stages["teacher"]["run"])).data
    assert teacher["dataset"]["val_size"] + teacher["dataset"]["train_size"] == 13  # the folder as it is now


@pytest.mark.slow  # ~40 s; what a change redoes is unit-tested above (fingerprints, decide)
def test_pipeline_redoes_only_what_changed(cli, outputs: Path, tmp_path: Path) -> None:
    conf = write_experiment(tmp_path)
    assert cli("pipeline", "--config-dir", str(conf), "experiment=tiny").code == 0
    write_experiment(tmp_path, ratio=0.3)  # the prune stage changed: it and the bench run again
    changed = cli("pipeline", "--config-dir", str(conf), "experiment=tiny")
    assert changed.code == 0, changed.output
    assert len(stage_runs(outputs)) == 6
    counts = {}
    for run in stage_runs(outputs):
        counts[run.data["pipeline"]["stage"]] = counts.get(run.data["pipeline"]["stage"], 0) + 1
    assert counts == {"teacher": 1, "teacher.export": 1, "pruned": 2, "bench": 2}
    # probe 86: the user's dataset file edited, and every stage was reused at the old image size
    shapes = conf / "dataset" / "shapes.yaml"
    shapes.write_text(shapes.read_text().replace("image_size: 16", "image_size: 20"))
    assert cli("pipeline", "--config-dir", str(conf), "experiment=tiny").code == 0
    teachers = [r for r in stage_runs(outputs) if r.data["pipeline"]["stage"] == "teacher"]
    assert sorted(r.data["dataset"]["image_size"] for r in teachers) == [16, 20]


def test_a_stage_identity_follows_the_user_files_it_reads_and_no_other(tmp_path: Path) -> None:
    """What a stage's fingerprint holds of the user's config folders (pipelines/pipeline.stage_files): the files its
    group choices read. Probe 86: an edited dataset file was not seen; probe 87: a stage choosing `experiment=pre`
    from the folder did not see pre.yaml edited, and with outputs/ inside the folder the runs' own .hydra/*.yaml
    made every run new; a file no stage reads re-ran everything."""
    from cnnlab.pipelines.pipeline import stage_files

    conf = write_experiment(tmp_path)
    teacher = Stage("teacher", "pretrain", ["dataset=shapes", "model=lenet5"])
    pre = Stage("pre", "pretrain", ["experiment=pre"])
    (conf / "experiment" / "pre.yaml").write_text("# @package _global_\ntrainer:\n  epochs: 1\n")
    before = {stage.name: stage_files(stage, [conf]) for stage in (teacher, pre)}
    assert all(before.values())
    write_experiment(tmp_path, ratio=0.3)  # the pipeline's own plan: its stages' overrides say it
    (conf / "model").mkdir()
    (conf / "model" / "other.yaml").write_text("defaults: [resnet18, _self_]\n")  # read by no stage
    (conf / "outputs" / "pretrain" / "run" / ".hydra").mkdir(parents=True)  # runs inside the folder
    (conf / "outputs" / "pretrain" / "run" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    assert {stage.name: stage_files(stage, [conf]) for stage in (teacher, pre)} == before
    (conf / "experiment" / "pre.yaml").write_text("# @package _global_\ntrainer:\n  epochs: 2\n")
    assert stage_files(pre, [conf]) != before["pre"] and stage_files(teacher, [conf]) == before["teacher"]
    shapes = conf / "dataset" / "shapes.yaml"
    shapes.write_text(shapes.read_text().replace("image_size: 16", "image_size: 20"))
    assert stage_files(teacher, [conf]) != before["teacher"]
    assert stage_files(teacher, []) == []


def test_a_stage_run_again_replaces_its_earlier_run_and_other_seeds_stay(tmp_path: Path) -> None:
    from cnnlab.report.rows import replaced_stage_runs
    from cnnlab.runs import RunRecord

    def replaced_runs(root: Path) -> dict[Path, Path]:
        return replaced_stage_runs(iter_runs(root))

    def stage(name: str, fingerprint: str, started: str, status: str = "completed") -> Path:
        record = RunRecord.start(tmp_path / name, "finetune")
        record.update(started=started, pipeline={"stage": "tune", "fingerprint": fingerprint})
        record.finish(status)
        return tmp_path / name

    first, seed1 = stage("a", "f0", "2026-01-01T10:00:00"), stage("s1", "f1", "2026-01-01T10:30:00")
    stage("failed", "f0", "2026-01-01T10:45:00", status="failed")
    second, third = stage("b", "f0", "2026-01-01T11:00:00"), stage("c", "f0", "2026-01-01T12:00:00")
    assert replaced_runs(tmp_path) == {first: third, second: third}  # seed1 (another fingerprint) stays
    assert seed1 not in replaced_runs(tmp_path)
    # probe 106: a workspace copied beside the original: its runs are no newer attempts of the original's stages
    import shutil

    workspace = tmp_path / "ws" / "runs" / "finetune" / "2026-01-01"
    workspace.mkdir(parents=True)
    for name in ("a", "b", "c"):
        shutil.copytree(tmp_path / name, workspace / name)
    copy = tmp_path / "ws-copy"
    shutil.copytree(tmp_path / "ws", copy)
    both = replaced_runs(tmp_path / "ws") | replaced_runs(copy)
    together = replaced_runs(tmp_path)
    assert {old: new for old, new in together.items() if "ws" in str(old)} == both
    assert all(old.parts[-5] == new.parts[-5] for old, new in together.items())  # never across workspaces


def test_a_stage_that_left_no_run_is_not_sent_to_an_earlier_attempts_log(tmp_path: Path, monkeypatch) -> None:
    """A stage refused before any work leaves no run folder (cnnlab.app); the failure named the newest earlier attempt
    of the stage (its run.log, from another time and cause) as where to look."""
    from cnnlab.context import RunContext
    from cnnlab.pipelines import pipeline

    runs_root = tmp_path / "runs"
    earlier = RunRecord.start(runs_root / "earlier", "prune")
    earlier.update(pipeline={"stage": "pruned", "fingerprint": "f1"})
    earlier.finish("failed", error="an older failure")
    monkeypatch.setattr(pipeline, "_run_child", lambda argv, env, ctx: (2, -1))  # refused: no run of its own
    ctx = RunContext(command="pipeline", run_dir=tmp_path / "p", outputs=tmp_path,
                     record=RunRecord.start(tmp_path / "p", "pipeline"))
    stage = Stage(name="pruned", command="prune", overrides=["prune.ratio=0.5"])
    with pytest.raises(CnnlabError) as info:
        pipeline._run_stage(stage, {}, [], runs_root, "f1", "tiny", None, ctx)
    line = info.value.one_line()
    assert "earlier" not in line and "before it started any work" in line, line


def test_a_stage_is_judged_by_its_own_run_not_that_of_the_same_pipeline_run_elsewhere(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    """Probe 173: two pipelines of one name at once — the stage that completed was reported "failed with exit code 0",
    its newest run of the same fingerprint being the other pipeline's, still running."""
    from cnnlab.context import RunContext
    from cnnlab.pipelines import pipeline

    runs_root = tmp_path / "runs"

    def both_ran(argv, env, ctx):  # type: ignore[no-untyped-def]
        for name, pid, status in (("mine", 4242, "completed"), ("theirs", 4343, "running")):
            record = RunRecord.start(runs_root / name, "prune")
            record.update(pipeline={"stage": "pruned", "fingerprint": "f1"}, process={"pid": pid})
            if status == "completed":
                record.finish("completed")
        return 0, 4242

    monkeypatch.setattr(pipeline, "_run_child", both_ran)
    ctx = RunContext(command="pipeline", run_dir=tmp_path / "p", outputs=tmp_path,
                     record=RunRecord.start(tmp_path / "p", "pipeline"))
    stage = Stage(name="pruned", command="prune", overrides=["prune.ratio=0.5"])
    assert pipeline._run_stage(stage, {}, [], runs_root, ("f1", "r1"), "tiny", None, ctx) == runs_root / "mine"


@pytest.mark.parametrize("sent_to", ["the terminal's group", "the pipeline alone"])
def test_a_stage_stopped_by_ctrl_c_is_given_time_to_record_it(tmp_path: Path, sent_to: str) -> None:
    """Probe 86: Ctrl-C on `cnnlab pipeline` killed the stage 0.25 s after (subprocess.run), before it wrote its
    record: its run.json stayed `running`, listed as `dead`, not `interrupted`. Probe 173: `kill -INT` of the
    pipeline's pid alone never reached the stage, which trained on until killed a minute later; the signal is passed
    on — once: a second Ctrl-C would cut the stage's clean-up short."""
    import logging
    import os
    import signal
    import sys
    import threading
    import time
    from types import SimpleNamespace

    from cnnlab.pipelines.pipeline import _run_child

    pid_file, recorded = tmp_path / "pid", tmp_path / "recorded"
    script = ("import os, pathlib, sys, time\n"
              "from cnnlab.interrupts import signals_as_interrupt\n"
              f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
              "try:\n"
              "    with signals_as_interrupt():\n"
              "        time.sleep(30)\n"
              "except KeyboardInterrupt:\n"
              "    time.sleep(1.0)  # writing its checkpoint and run.json; a second Ctrl-C here would stop that\n"
              f"    pathlib.Path({str(recorded)!r}).write_text('interrupted')\n"
              "    sys.exit(130)\n")

    def ctrl_c() -> None:  # a terminal: SIGINT to the stage and to the pipeline; `kill -INT PID`: the pipeline only
        while not pid_file.exists() or not pid_file.read_text():
            time.sleep(0.05)
        time.sleep(0.5)  # the stage's handlers installed
        if sent_to == "the terminal's group":
            os.kill(int(pid_file.read_text()), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _run_child([sys.executable, "-c", script], dict(os.environ), SimpleNamespace(log=logging.getLogger("t")))
    assert recorded.read_text() == "interrupted"


def test_a_stage_names_an_upstream_folder_whose_path_holds_a_comma_or_a_space() -> None:
    """An outputs folder `a b,c/` made the export stage's `source=` a sweep: the stage stopped ("a comma separates
    the values of a sweep") after its upstream had trained."""
    from cnnlab.hydra_args import override_parser

    folder = "/tmp/a b,c/outputs/pipeline/tiny/runs/pretrain/x"
    stage = Stage("b", "prune", ["source=@a", "model.weights=@a/model.pt", "source=[@a,@a]", "trainer.epochs=1"])
    parsed = [override_parser().parse_override(o).value() for o in stage.resolved_overrides({"a": folder})]
    assert parsed == [folder, f"{folder}/model.pt", [folder, folder], 1]
    assert Stage("b", "prune", ["source=@a"]).resolved_overrides({"a": "/tmp/plain"}) == ["source=/tmp/plain"]
