from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.runs import RunInfo, RunRecord, iter_runs, latest_run, load_run, resolve_source


def make_run(outputs: Path, command: str, name: str, status: str = "completed", *, model: bool = True,
             onnx: bool = False, started: str | None = None) -> Path:
    run_dir = outputs / command / "2026-01-01" / name
    record = RunRecord.start(run_dir, command)
    if started:
        record.update(started=started)
    if model:
        (run_dir / "model.pt").write_bytes(b"x")
        record.add_artifact("model", run_dir / "model.pt")
    if onnx:
        (run_dir / "model.onnx").write_bytes(b"x")
        record.add_artifact("onnx", run_dir / "model.onnx")
    record.finish(status, metrics={"val_acc": 0.5})
    return run_dir


def test_record_lifecycle_is_written_as_it_goes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    record = RunRecord.start(run_dir, "pretrain", overrides=["trainer.epochs=1"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    record.update(metrics={"val_acc": 0.1})
    record.update(metrics={"val_top5": 0.9})
    record.finish("completed", metrics={"val_acc": 0.75})
    data = json.loads((run_dir / "run.json").read_text())
    assert data["status"] == "completed"
    assert data["metrics"] == {"val_acc": 0.75, "val_top5": 0.9}
    assert data["overrides"] == ["trainer.epochs=1"]
    assert data["ended"] and data["duration_s"] >= 0
    assert not list(run_dir.glob(".run.json.*"))  # no temp files left behind


def test_disabled_record_writes_nothing(tmp_path: Path) -> None:
    RunRecord.start(tmp_path / "rank1", "pretrain", enabled=False).finish("completed")
    assert not (tmp_path / "rank1").exists()


def test_latest_picks_newest_completed_of_command(tmp_path: Path) -> None:
    make_run(tmp_path, "pretrain", "a", started="2026-01-01T10:00:00")
    newest = make_run(tmp_path, "pretrain", "b", started="2026-01-01T11:00:00")
    make_run(tmp_path, "pretrain", "c", status="failed", started="2026-01-01T12:00:00")
    make_run(tmp_path, "finetune", "d", started="2026-01-01T09:00:00")
    assert latest_run(tmp_path, "pretrain").path == newest
    assert latest_run(tmp_path).path == newest
    assert [r.path.name for r in iter_runs(tmp_path)] == ["d", "a", "b", "c"]


def test_runs_are_ordered_by_the_moment_they_started_whatever_utc_offset_recorded_it(tmp_path: Path) -> None:
    """Probe 91: a run started at 01:11 UTC on a machine at UTC-3 records 22:11-03:00 of the day before; text order
    put it before a run of 01:09 UTC, so latest:finetune took the older run."""
    older = make_run(tmp_path, "finetune", "a", started="2026-12-05T01:09:18+00:00")
    newer = make_run(tmp_path, "finetune", "b", started="2026-12-04T22:11:14-03:00")
    assert latest_run(tmp_path, "finetune").path == newer
    assert resolve_source("latest:finetune", tmp_path).path == (newer / "model.pt").resolve()
    unreadable = make_run(tmp_path, "finetune", "d", started="not a time")
    assert [r.path for r in iter_runs(tmp_path)] == [unreadable, older, newer]  # an unreadable time sorts first
    # the autumn DST change: 02:10+01:00 comes 40 minutes after 02:30+02:00
    before = make_run(tmp_path / "dst", "pretrain", "a", started="2026-10-25T02:30:00+02:00")
    after = make_run(tmp_path / "dst", "pretrain", "b", started="2026-10-25T02:10:00+01:00")
    assert [r.path for r in iter_runs(tmp_path / "dst")] == [before, after]


def test_resolve_source_forms(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "finetune", "r1", onnx=True)
    assert resolve_source("latest:finetune", tmp_path).path == (run_dir / "model.pt").resolve()
    assert resolve_source("latest", tmp_path, want=("onnx",)).kind == "onnx"
    by_dir = resolve_source(str(run_dir), tmp_path)
    assert by_dir.kind == "checkpoint" and by_dir.run is not None and by_dir.run.command == "finetune"
    by_file = resolve_source(str(run_dir / "model.onnx"), tmp_path)
    assert by_file.kind == "onnx" and by_file.run is not None


@pytest.mark.parametrize("spec, message", [
    ("latest:prune", "matches no completed `cnnlab prune` run"),
    ("does/not/exist", "no such file or folder"),
])
def test_resolve_source_errors_name_the_fix(tmp_path: Path, spec: str, message: str) -> None:
    make_run(tmp_path, "finetune", "r1")
    with pytest.raises(CnnlabError, match=message) as info:
        resolve_source(spec, tmp_path)
    assert info.value.fix


def test_resolve_source_rejects_folder_without_record_and_wrong_kind(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="not a cnnlab run folder"):
        resolve_source(str(tmp_path / "empty"), tmp_path)
    run_dir = make_run(tmp_path, "pretrain", "r", model=True)
    # a run with only a model.pt, where ONNX files are run: say so and how to convert (not "no such run")
    for spec in (str(run_dir), "latest:pretrain", "latest", str(run_dir / "model.pt")):
        with pytest.raises(CnnlabError, match="holds a model.pt") as info:
            resolve_source(spec, tmp_path, want=("onnx",), runtime_key="predict.runtime")
        # the command's own key: "runtime=pytorch" was an unknown setting when followed
        assert "cnnlab export source=" in (info.value.fix or "") and "predict.runtime=pytorch" in (info.value.fix or "")
        with pytest.raises(CnnlabError, match="holds a model.pt") as info:
            resolve_source(spec, tmp_path, want=("onnx",))  # a command with no runtime setting names none
        assert "runtime" not in (info.value.fix or "")
    (tmp_path / "weights.txt").write_text("?")
    with pytest.raises(CnnlabError, match="expected a"):
        resolve_source(str(tmp_path / "weights.txt"), tmp_path)


def test_load_run_damaged_record(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(CnnlabError, match="not valid JSON"):
        load_run(tmp_path)


def _damage(run_dir: Path, how: str) -> None:
    run_file = run_dir / "run.json"
    good = run_file.read_bytes()
    record = json.loads(good)
    if how == "truncated":
        run_file.write_bytes(good[: len(good) // 2])
    elif how == "list":
        run_file.write_text("[1, 2, 3]")
    elif how == "binary":
        run_file.write_bytes(bytes(range(256)))
    elif how == "nested-past-recursion":  # probe 136: a RecursionError stopped the listing and the report
        run_file.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "wrong-types":
        record["metrics"] = {"val_acc": "high"}
        run_file.write_text(json.dumps(record))
    elif how == "artifacts-a-list":
        record["artifacts"] = ["model.pt"]
        run_file.write_text(json.dumps(record))
    elif how == "test-acc-text":
        record["metrics"] = {"test_acc": "95 %", "split": "test"}
        run_file.write_text(json.dumps(record))
    elif how == "latency-without-device":
        record["metrics"] = {"latency": [{"backend": "onnxruntime", "batch_size": 1, "p50_ms": 1.0}]}
        run_file.write_text(json.dumps(record))
    elif how == "no-command":
        del record["command"]
        run_file.write_text(json.dumps(record))
    elif how == "acc-a-percentage":  # a script that wrote 97.3 for 97.3 % would top every Pareto front
        record["metrics"] = {"val_acc": 97.3}
        run_file.write_text(json.dumps(record))
    elif how == "job-fingerprint-a-number":  # a sweep started again must not take it for one of its jobs
        record["job"] = {"fingerprint": 12, "multirun": True}
        run_file.write_text(json.dumps(record))
    elif how == "acc-nan":
        run_file.write_text(json.dumps(record | {"metrics": {"val_acc": 0.5}}).replace("0.5", "NaN"))
    elif how == "run-json-a-folder":
        run_file.unlink()
        run_file.mkdir()
    elif how == "model-link-loop":
        (run_dir / "model.pt").unlink(missing_ok=True)
        (run_dir / "model.pt").symlink_to("model.pt")
        run_file.write_text(json.dumps(record | {"artifacts": {"model": "model.pt"}}))
    elif how in ("p90-below-p50", "throughput-negative"):
        latency = {"backend": "onnxruntime", "batch_size": 1, "device": "cpu", "p50_ms": 1.0, "p90_ms": 1.2,
                   "p99_ms": 1.5, "min_ms": 0.9, "throughput": 1000.0}
        latency.update({"p90-below-p50": {"p90_ms": 0.5}, "throughput-negative": {"throughput": -1}}[how])
        run_file.write_text(json.dumps(record | {"metrics": {"latency": [latency]}}))
    elif how.startswith(("subject-", "rounds-", "latency-")):
        latency = {"backend": "onnxruntime", "batch_size": 1, "device": "cpu", "p50_ms": 1.0, "subject": 0,
                   "p50_ms_per_round": [1.0]}
        latency.update({"subject-text": {"subject": "0"}, "subject-float": {"subject": 0.0},
                        "subject-negative": {"subject": -1}, "rounds-text": {"p50_ms_per_round": ["n/a"]},
                        "rounds-zero": {"p50_ms_per_round": [0.05, 0, 0.05]}, "latency-zero": {"p50_ms": 0},
                        "subject-past-the-list": {"subject": 1}}[how])
        record["paired"] = {"subjects": [{"run": "x"}], "rounds": 1}
        record["metrics"] = {"latency": [latency]}
        run_file.write_text(json.dumps(record))
    elif how in _HAND_EDITS:  # probe 98: shown as figures (params -5, "999999999999999983222784.00 M", inf G)
        key, value = _HAND_EDITS[how]
        section, _, field = key.partition(".")
        if field:
            record[section] = {**(record.get(section) or {}), field: value}
        else:
            record[section] = value
        run_file.write_text(json.dumps(record))


_HAND_EDITS = {"params-negative": ("model.params", -5), "params-huge": ("model.params", 10**30),
               "flops-infinite": ("model.flops", float("inf")), "image-size-0": ("model.image_size", 0),
               "status-unknown": ("status", "weird"), "schema-future": ("schema", 99),
               "started-not-a-date": ("started", "not a date"), "paired-no-subjects": ("paired", {"rounds": 3}),
               "paired-a-list": ("paired", [1]), "schema-text": ("schema", "1"),
               "command-unknown": ("command", "rm -rf")}


DAMAGES = {"truncated": "not valid JSON", "list": "holds a JSON list", "binary": "not valid JSON",
           "wrong-types": "metrics.val_acc is str", "artifacts-a-list": "artifacts is list",
           "no-command": "command is NoneType", "test-acc-text": "metrics.test_acc is str",
           "latency-without-device": "metrics.latency[0].device is NoneType",
           "acc-a-percentage": "metrics.val_acc is 97.3",
           "acc-nan": "metrics.val_acc is nan", "job-fingerprint-a-number": "job.fingerprint is int",
           "params-negative": "model.params is -5", "params-huge": "model.params is 1000000000000000000000000000000",
           "flops-infinite": "model.flops is inf", "image-size-0": "model.image_size is 0",
           "status-unknown": "status is 'weird'", "schema-future": "written by a newer cnnlab",
           "started-not-a-date": "started is 'not a date'",
           # probe 107: a hand-edited or older paired session stopped the report with a traceback, or (-1) read
           # another model's time; schema "1" was "written by a newer cnnlab"; run.json a folder "not valid JSON"
           "paired-no-subjects": "paired.subjects is missing", "paired-a-list": "paired is list",
           "subject-text": "metrics.latency[0].subject is str", "subject-float": "metrics.latency[0].subject is float",
           "subject-negative": "metrics.latency[0].subject is -1", "rounds-text": "p50_ms_per_round holds ['n/a']",
           # probe 125: a 0 ms latency divided the report's speed-ups by zero (a traceback), or read "0.000 ms"
           "rounds-zero": "p50_ms_per_round holds [0.05, 0, 0.05]", "latency-zero": "metrics.latency[0].p50_ms is 0",
           "subject-past-the-list": "metrics.latency[0].subject is 1, but paired.subjects lists 1 model",
           "schema-text": "schema is '1', expected an integer", "run-json-a-folder": "run.json is a folder, not a file",
           "nested-past-recursion": "nested too deeply to read",
           # probe 209: a command no cnnlab has was a completed run and a source; a p90 below the p50 and a negative
           # throughput were reported; a model.pt linked to itself stopped `list runs` and the report (a traceback)
           "command-unknown": "command is 'rm -rf', not a cnnlab command",
           "p90-below-p50": "metrics.latency[0].p90_ms is 0.5, below its p50_ms of 1.0",
           "throughput-negative": "metrics.latency[0].throughput is -1, not batch_size / p50 (1000 images/s)",
           "model-link-loop": "artifact 'model' (model.pt) is a symbolic link loop"}


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_records_are_listed_with_the_reason_and_skipped(tmp_path: Path, how: str) -> None:
    good = make_run(tmp_path, "pretrain", "a", started="2026-01-01T10:00:00")
    bad = make_run(tmp_path, "pretrain", "b", started="2026-01-01T11:00:00")  # the newest
    _damage(bad, how)
    runs = {run.path.name: run for run in iter_runs(tmp_path)}
    assert set(runs) == {"a", "b"}                       # never silently dropped
    assert runs["b"].status == "damaged" and DAMAGES[how] in (runs["b"].damaged or "")
    assert runs["b"].data == {} and runs["a"].damaged is None
    assert latest_run(tmp_path, "pretrain").path == good  # skipped by latest
    assert resolve_source("latest", tmp_path).run.path == good
    with pytest.raises(CnnlabError, match="is damaged") as info:
        resolve_source(str(bad), tmp_path)
    assert DAMAGES[how] in str(info.value) and info.value.fix


@pytest.mark.parametrize("how", DAMAGES)
def test_list_and_report_name_a_damaged_record_and_go_on(cli, outputs: Path, how: str) -> None:
    make_run(outputs, "pretrain", "a", started="2026-01-01T10:00:00")
    _damage(make_run(outputs, "pretrain", "b", started="2026-01-01T11:00:00"), how)
    listing = cli("list", "runs")
    assert listing.code == 0 and "(run.json: " in listing.stdout  # the reason, maybe wrapped in its cell
    said = " ".join(listing.stdout.split())  # probe 71: "restore their run.json" fixed nothing for a model.pt link
    assert "mend what the reason names" in said and "replace a link with the file" in said
    report = cli("report", str(outputs), "--no-write")
    # the reason as one line: rich wraps it at the terminal's width, where a long temporary path puts the break
    assert report.code == 0 and "left out" in report.stdout and DAMAGES[how] in " ".join(report.stdout.split()), \
        report.output


def test_accuracies_outside_zero_to_one_are_damage() -> None:
    from cnnlab.records import MetricsSection, RecordProblem

    assert MetricsSection.from_dict({"val_acc": 1.0, "test_acc": 0.0}).val_acc == 1.0
    for value in (97.3, -0.1, float("nan"), float("inf")):
        with pytest.raises(RecordProblem, match=r"expected a number in \[0, 1\]"):
            MetricsSection.from_dict({"test_acc": value})


@pytest.mark.parametrize("key", ["acc_before", "fp32_val_acc", "qat_fp32_val_acc", "baseline_val_acc",
                                 "teacher_val_acc"])
def test_the_accuracies_a_change_is_measured_against_are_checked_as_val_acc_is(key: str) -> None:
    """Probe 225: `acc_before: 1.7` and `fp32_val_acc: "high"` passed; the report measured the change against the
    source's accuracy instead, still labelled "vs before pruning" / "vs FP32"."""
    from cnnlab.records import MetricsSection, RecordProblem

    assert MetricsSection.from_dict({key: 0.5}).extra[key] == 0.5 and MetricsSection.from_dict({key: None})
    with pytest.raises(RecordProblem, match=rf"metrics.{key} is 1.7, expected a number in \[0, 1\]"):
        MetricsSection.from_dict({key: 1.7})
    with pytest.raises(RecordProblem, match=rf"metrics.{key} is str, expected int or float"):
        MetricsSection.from_dict({key: "high"})


def test_typed_sections_read_what_the_record_holds(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "bench", "a")
    latency = {"backend": "onnxruntime", "batch_size": 1, "device": "cpu", "threads": 2, "p50_ms": 1.5, "p90_ms": 2.0}
    RunRecord(run_dir, json.loads((run_dir / "run.json").read_text())).update(
        model={"name": "lenet5", "params": 61706, "weights": "none"}, source={"run": "elsewhere"},
        metrics={"latency": [latency]})
    run = RunInfo.read(run_dir)
    assert run.model.name == "lenet5" and run.model.params == 61706 and run.model.extra == {"weights": "none"}
    assert run.model is run.model  # read once
    assert run.source.run_path == Path("elsewhere").resolve() and not run.dataset.identity.known
    assert run.metrics.val_acc == 0.5 and run.metrics.test_acc is None
    assert run.metrics.latency_records[0].setting == ("onnxruntime", 1, "cpu", 2)
    assert run.metrics.to_dict() == run.data["metrics"] and run.model.to_dict() == run.data["model"]
    damaged = RunInfo(run_dir, {}, damaged="why")
    assert damaged.model.name is None and damaged.metrics.latency_records == ()


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_artifacts_outside_the_run_folder_are_refused_unopened(tmp_path: Path, where: str) -> None:
    outside = tmp_path / "secret.pt"
    outside.write_bytes(b"not yours")
    run_dir = make_run(tmp_path / "outputs", "pretrain", "r")
    record = json.loads((run_dir / "run.json").read_text())
    if where == "absolute":
        record["artifacts"]["model"] = str(outside)
    elif where == "dotdot":
        record["artifacts"]["model"] = "../../../../../secret.pt"
    else:
        (run_dir / "model.pt").unlink()
        (run_dir / "model.pt").symlink_to(outside)
    (run_dir / "run.json").write_text(json.dumps(record))
    run = next(iter_runs(tmp_path / "outputs"))
    assert run.status == "damaged" and "outside the run folder" in (run.damaged or "")
    assert latest_run(tmp_path / "outputs") is None
    with pytest.raises(CnnlabError, match="outside the run folder"):
        resolve_source(str(run_dir), tmp_path / "outputs")
    # A record read while the folder was sound, whose symlink is swapped afterwards, is refused on use.
    if where == "symlink":
        sound = RunInfo(run_dir, {**record, "artifacts": {"model": "model.pt"}})
        with pytest.raises(CnnlabError, match="leads outside the run folder"):
            sound.artifact("model")


def test_outputs_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "outputs").write_text("oops")
    with pytest.raises(CnnlabError, match="is a file, not a folder") as info:
        list(iter_runs(tmp_path / "outputs"))
    assert "CNNLAB_OUTPUTS" in (info.value.fix or "")


# ------------------------------------------------------------------ liveness: a killed run reads `dead`
def _reaped_pid() -> int:
    """The pid of a process that has exited and been reaped: nothing runs under it (until reused)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running_run(outputs: Path, name: str, started: str = "2026-01-01T10:00:00", **process: object) -> Path:
    """A run with a last.pt whose record says `running`, its process identity changed by `process`."""
    run_dir = outputs / "pretrain" / "2026-01-01" / name
    RunRecord.start(run_dir, "pretrain").update(process=process, started=started)  # dicts merge
    (run_dir / "last.pt").write_bytes(b"x")
    record = json.loads((run_dir / "run.json").read_text())
    record["artifacts"] = {"checkpoint": "last.pt"}
    (run_dir / "run.json").write_text(json.dumps(record))
    return run_dir


def test_a_record_names_the_process_that_writes_it(tmp_path: Path) -> None:
    import os
    import socket

    RunRecord.start(tmp_path / "r", "pretrain")
    process = json.loads((tmp_path / "r" / "run.json").read_text())["process"]
    assert process["pid"] == os.getpid() and process["host"] == socket.gethostname()
    assert load_run(tmp_path / "r").status == "running"  # this very process: alive


LINUX_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.mark.parametrize("process, status", [
    ({}, "running"),                                       # this test's own process
    ({"pid": "reaped"}, "dead"),                           # SIGKILL, the OOM killer: the process is gone
    pytest.param({"start_ticks": -1}, "dead", marks=LINUX_PROC),            # same pid, another start: reused
    pytest.param({"boot_id": "an-earlier-boot"}, "dead", marks=LINUX_PROC),  # the machine rebooted since
    ({"host": "another-host", "pid": "reaped"}, "running"),  # another machine's process: cannot be told
])
def test_running_is_computed_on_read(tmp_path: Path, process: dict, status: str) -> None:
    if process.get("pid") == "reaped":
        process = {**process, "pid": _reaped_pid()}
    run_dir = _running_run(tmp_path, "r", **process)
    before = (run_dir / "run.json").read_bytes()
    assert load_run(run_dir).status == status
    assert (run_dir / "run.json").read_bytes() == before  # never rewritten silently


def test_a_record_without_a_process_stays_running(tmp_path: Path) -> None:
    run_dir = _running_run(tmp_path, "old")
    record = json.loads((run_dir / "run.json").read_text())
    del record["process"]  # written before cnnlab recorded it
    (run_dir / "run.json").write_text(json.dumps(record))
    assert load_run(run_dir).status == "running"


def test_a_dead_run_is_resumable_and_listed_as_dead(cli, outputs: Path) -> None:
    from cnnlab.runs import RESUMABLE_STATUSES

    _running_run(outputs, "alive", started="2026-01-01T12:00:00")
    dead = _running_run(outputs, "dead", pid=_reaped_pid(), started="2026-01-01T11:00:00")
    assert latest_run(outputs, "pretrain", artifact="checkpoint", statuses=RESUMABLE_STATUSES).path == dead
    listing = cli("list", "runs", "--outputs", outputs.name).stdout  # relative: short rows, never wrapped
    rows = {line.split()[1]: line for line in listing.splitlines() if "/2026-01-01/" in line}
    assert " dead " in rows["outputs/pretrain/2026-01-01/dead"]
    assert " running " in rows["outputs/pretrain/2026-01-01/alive"]


@pytest.mark.parametrize("spec, want, message, fix", [
    # was "run `cnnlab bogus` first"
    ("latest:bogus", ("checkpoint", "onnx"), "source=latest:bogus: `bogus` is not a cnnlab command",
     "use one of latest:pretrain, latest:finetune, latest:distill, latest:search, latest:prune, latest:quantize, "
     "latest:export, or latest (the newest run with a model)"),
    # probe 149: "`report` is not a cnnlab command"
    ("latest:report", ("checkpoint", "onnx"), "source=latest:report: `cnnlab report` reads runs and writes none",
     "use one of latest:pretrain, latest:finetune, latest:distill, latest:search, latest:prune, latest:quantize, "
     "latest:export, or latest (the newest run with a model)"),
    # was "run `cnnlab evaluate` first": an evaluate run never holds a model
    ("latest:evaluate", ("checkpoint",), "`cnnlab evaluate` runs hold no model to start from",
     "use one of latest:pretrain, latest:finetune, latest:distill, latest:search, latest:prune, or latest (the "
     "newest run with a model)"),
    # was "run `cnnlab export` first": an export run holds a model.onnx, not the model.pt asked for
    ("latest:export", ("checkpoint",), "`cnnlab export` runs do not hold a model.pt",
     "use one of latest:pretrain, latest:finetune, latest:distill, latest:search, latest:prune"),
])
def test_latest_of_a_command_that_gives_no_such_model_lists_the_commands_that_do(
        tmp_path: Path, spec: str, want: tuple[str, ...], message: str, fix: str) -> None:
    with pytest.raises(CnnlabError, match=message) as info:
        resolve_source(spec, tmp_path, want=want)
    assert info.value.fix == fix


def test_the_commands_latest_can_name_are_the_commands_that_keep_a_model() -> None:
    from cnnlab.commands import COMMANDS, commands_where
    from cnnlab.runs import MODEL_MAKERS

    makers = {command for commands in MODEL_MAKERS.values() for command in commands}
    assert makers <= set(COMMANDS)
    assert set(commands_where(produces_model=True)) <= makers


def test_latest_does_not_pass_over_a_newer_run_whose_model_file_was_deleted(tmp_path: Path) -> None:
    """Probe 57: with the newest finetune's model.pt deleted, `latest:finetune` quietly took an older finetune (at
    another input size); docs/runs.md promises the newest completed run."""
    older = make_run(tmp_path, "finetune", "a", started="2026-01-01T10:00:00")
    newest = make_run(tmp_path, "finetune", "b", started="2026-01-01T11:00:00")
    assert resolve_source("latest:finetune", tmp_path).run.path == newest  # type: ignore[union-attr]
    (newest / "model.pt").unlink()
    with pytest.raises(CnnlabError) as info:
        resolve_source("latest:finetune", tmp_path)
    assert f"the newest completed `cnnlab finetune` run, {newest}, has its model.pt deleted" in info.value.message
    assert info.value.fix is not None and f"source={older}" in info.value.fix
    resolve_source(f"{older}", tmp_path)  # the fix works
    # probe 191: finetune's model.weights=latest:pretrain was told to name the run as source=, which it does not read
    with pytest.raises(CnnlabError) as info:
        resolve_source("latest:finetune", tmp_path, key="model.weights")
    assert f"model.weights={older}" in (info.value.fix or "") and "source=" not in (info.value.fix or "")


def test_latest_sees_a_deleted_model_past_the_runs_that_keep_none(tmp_path: Path) -> None:
    """Probe 104: the check above looked at the newest completed run of any command — in a real folder an evaluate,
    bench or export run, which keeps no model.pt — so `source=latest` took an older model unsaid; and the only run
    of a command with its model deleted was "no completed run with a model ... run cnnlab distill first"."""
    older = make_run(tmp_path, "prune", "a", started="2026-01-01T10:00:00")
    newest = make_run(tmp_path, "distill", "b", started="2026-01-01T11:00:00")
    make_run(tmp_path, "evaluate", "c", model=False, started="2026-01-01T12:00:00")
    (newest / "model.pt").unlink()
    with pytest.raises(CnnlabError) as info:
        resolve_source("latest", tmp_path, want=("checkpoint",))
    assert f"the newest completed `cnnlab distill` run, {newest}, has its model.pt deleted" in info.value.message
    assert f"source={older}" in (info.value.fix or "")
    with pytest.raises(CnnlabError) as info:
        resolve_source("latest:distill", tmp_path)
    assert f"{newest}, has its model.pt deleted, and no other `cnnlab distill` run holds a model" in info.value.message
    assert info.value.fix == f"restore model.pt in {newest}, or train again"


def test_a_run_folder_linked_into_the_outputs_is_a_run_there(tmp_path: Path) -> None:
    """Probe 106: a run moved elsewhere and linked back was in no listing or report. A linked folder that is no run
    (a dataset of 70,000 pictures) is not searched for runs."""
    outputs = tmp_path / "outputs"
    moved = make_run(tmp_path / "elsewhere", "finetune", "a")
    (outputs / "finetune" / "2026-01-01").mkdir(parents=True)
    (outputs / "finetune" / "2026-01-01" / "a").symlink_to(moved)
    hidden = make_run(tmp_path / "data", "pretrain", "inside")
    (outputs / "data").symlink_to(hidden.parent.parent.parent)
    assert [run.path for run in iter_runs(outputs)] == [outputs / "finetune" / "2026-01-01" / "a"]
    (outputs / "best").symlink_to(outputs / "finetune" / "2026-01-01" / "a")  # probe 108: listed twice
    (outputs / "kept").symlink_to(moved)
    assert [run.path for run in iter_runs(outputs)] == [outputs / "finetune" / "2026-01-01" / "a"]


def test_latest_is_the_newest_run_holding_any_kind_the_command_reads(tmp_path: Path) -> None:
    """Probe 107: `evaluate source=latest` took an older export's model.onnx over a newer model.pt; docs/runs.md:
    the newest completed run that holds the kind of file the command needs. Within a run, the kind preferred."""
    make_run(tmp_path, "export", "a", model=False, onnx=True, started="2026-01-01T10:00:00")
    newer = make_run(tmp_path, "finetune", "b", started="2026-01-01T11:00:00")
    assert resolve_source("latest", tmp_path, want=("onnx", "checkpoint")).path == newer / "model.pt"
    both = make_run(tmp_path, "prune", "c", onnx=True, started="2026-01-01T12:00:00")
    assert resolve_source("latest", tmp_path, want=("onnx", "checkpoint")).path == both / "model.onnx"


def test_latest_says_which_newer_run_it_passed_over(tmp_path: Path, caplog) -> None:
    """Probe 108: `evaluate source=latest evaluate.runtime=openvino` scored an older INT8 file right after a new
    pretrain (OpenVINO reads ONNX only), and only an info line named the file."""
    older = make_run(tmp_path, "quantize", "a", model=False, onnx=True, started="2026-01-01T10:00:00")
    newer = make_run(tmp_path, "pretrain", "b", started="2026-01-01T11:00:00")
    with caplog.at_level("WARNING", logger="cnnlab"):
        chosen = resolve_source("latest", tmp_path, want=("onnx",), key="source", runtime_key="evaluate.runtime")
    assert chosen.path == older / "model.onnx"
    assert f"the newer `cnnlab pretrain` run {newer} holds no such file (evaluate.runtime=pytorch runs its model.pt)" \
        in caplog.text


def test_a_model_file_changed_after_its_run_is_refused_by_every_way_of_naming_it(tmp_path: Path) -> None:
    """run.json keeps the SHA-256 of the model files its run wrote; a file changed since (bytes flipped on disk,
    another run's file copied in) was read as the run's, its scores and settings beside it (probe 68)."""
    outputs = tmp_path / "outputs"
    run = make_run(outputs, "export", "a", model=False, onnx=True)
    assert read_json_digests(run) == {"onnx": hashlib.sha256(b"x").hexdigest()}
    assert resolve_source(str(run), outputs).path == run / "model.onnx"  # intact: read as before
    (run / "model.onnx").write_bytes(b"y")
    for spec in (str(run), str(run / "model.onnx"), "latest", "latest:export"):
        with pytest.raises(CnnlabError) as caught:
            resolve_source(spec, outputs)
        assert f"{run / 'model.onnx'} is not the file run {run} wrote: its SHA-256 differs" in caught.value.message
        assert "put back the run's own model.onnx" in caught.value.fix
    copy = tmp_path / "kept.onnx"  # the fix it names: a copy out of the folder is a file of its own
    copy.write_bytes(b"y")
    assert resolve_source(str(copy), outputs).run is None
    (run / "model.onnx").write_bytes(b"x")  # the other fix: the run's own file put back
    assert resolve_source(str(run), outputs).path == run / "model.onnx"


def test_digests_are_checked_as_untrusted_input(tmp_path: Path) -> None:
    run = make_run(tmp_path, "pretrain", "a")
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "digests": {"model": 5}}))
    assert "digests holds an entry that is not a SHA-256" in str(RunInfo.read(run).damaged)
    (run / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "digests"}))
    (run / "model.pt").write_bytes(b"changed")  # a record from before digests: nothing to tell by
    assert resolve_source(str(run), tmp_path).path == run / "model.pt"
    disabled = RunRecord(tmp_path / "rank1", {"artifacts": {}}, enabled=False)  # DDP rank > 0 writes nothing
    disabled.add_artifact("model", tmp_path / "rank1" / "model.pt")  # nor reads a file it did not write
    assert "digests" not in disabled.data


def read_json_digests(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["digests"]


def test_a_file_the_run_did_not_write_is_read_as_a_file_of_its_own(tmp_path: Path) -> None:
    """Probe 71: another run's model.pt copied into a run's folder as better.pt was read as that run's model, and
    `cnnlab report` showed its test score in the run's row."""
    outputs = tmp_path / "outputs"
    run = make_run(outputs, "pretrain", "a")  # its model.pt holds b"x"
    (run / "better.pt").write_bytes(b"another network")
    assert resolve_source(str(run / "better.pt"), outputs).run is None
    (run / "same.pt").write_bytes(b"x")  # the run's own model under another name: still the run's
    assert resolve_source(str(run / "same.pt"), outputs).run.path == run
    assert resolve_source(str(run / "model.pt"), outputs).run.path == run


def test_a_link_to_a_run_and_a_run_from_before_digests_record_the_right_run(tmp_path: Path) -> None:
    """Probe 72: `source=best` (a link to a run) recorded the link's name, so moving the link moved the score to
    another run's row; a run from before `digests` took any file in its folder as its own."""
    outputs = tmp_path / "outputs"
    run = make_run(outputs, "pretrain", "a")
    (tmp_path / "best").symlink_to(run, target_is_directory=True)
    assert resolve_source(str(tmp_path / "best"), outputs).run.path == run.resolve()
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "digests"}))
    (run / "better.pt").write_bytes(b"another network")
    assert resolve_source(str(run / "better.pt"), outputs).run is None
    assert resolve_source(str(run / "model.pt"), outputs).run.path == run.resolve()


def test_the_hint_for_a_folder_that_is_no_run_names_only_the_files_the_command_takes(tmp_path: Path) -> None:
    """Probe 73: `cnnlab prune source=FOLDER` said to give "a model.pt/model.onnx file"; prune then refused the
    model.onnx it was given."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs import resolve_source

    (tmp_path / "pictures").mkdir()
    for want, files in ((("checkpoint",), "a model.pt file"), (("onnx", "checkpoint"), "a model.onnx/model.pt file")):
        for spec in (str(tmp_path / "pictures"), str(tmp_path / "nowhere")):
            with pytest.raises(CnnlabError) as err:
                resolve_source(spec, tmp_path / "outputs", want=want)
            assert files in (err.value.fix or ""), err.value.one_line()


def test_a_run_folder_is_claimed_by_one_record_only(tmp_path) -> None:
    """Probe 98: two commands given one hydra.run.dir at once both passed the check for a run.json there; the second
    record replaced the first (its val_acc beside the first's .hydra/config.yaml), exit 0 for both."""
    first = RunRecord.start(tmp_path / "rd", "pretrain", overrides=["optim.lr=0.05"])
    with pytest.raises(CnnlabError, match="already holds a run: another cnnlab process wrote its run.json"):
        RunRecord.start(tmp_path / "rd", "pretrain", overrides=["optim.lr=0.2"])
    first.finish("completed", metrics={"val_acc": 0.5})
    saved = json.loads((tmp_path / "rd" / "run.json").read_text())
    assert saved["overrides"] == ["optim.lr=0.05"] and saved["status"] == "completed"
    RunRecord.start(tmp_path / "rank1", "pretrain", enabled=False)  # a record that writes nothing claims nothing
    assert not (tmp_path / "rank1" / "run.json").exists()


def test_a_named_pipe_as_a_model_file_or_a_run_record_is_one_line_not_a_hang(tmp_path: Path) -> None:
    """Probe 114: a FIFO given as source= hung export and bench in open(); one named run.json hung `cnnlab list runs`
    and the report; as model.weights= it was "does not exist"."""
    import os

    from cnnlab.engine.checkpoint import load_tensors

    os.mkfifo(tmp_path / "model.pt")
    with pytest.raises(CnnlabError, match="source=.*model.pt: not a regular file"):
        resolve_source(str(tmp_path / "model.pt"), tmp_path / "outputs")
    with pytest.raises(CnnlabError, match="model.pt is not a regular file"):
        load_tensors(tmp_path / "model.pt")
    run = tmp_path / "outputs" / "finetune" / "a"
    run.mkdir(parents=True)
    os.mkfifo(run / "run.json")
    assert RunInfo.read(run).damaged == "not a regular file (a named pipe, device or socket)"


def _onnx_with_external_data(folder: Path, value: float) -> Path:
    """model.onnx whose one weight lives in model.onnx.data beside it (onnx's external data)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((4, 4), value, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weight])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(helper.make_model(graph), str(folder / "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx.data", size_threshold=0)
    return folder / "model.onnx"


def test_an_onnx_files_external_data_is_part_of_its_identity_and_of_what_a_run_checks(tmp_path: Path) -> None:
    """Probe 114: two networks in model.onnx.data beside one unchanged model.onnx were recorded with one SHA-256
    (66.39 % and 36.94 % "of the same source"), and a .data file replaced mid-run went unnoticed."""
    import os
    import shutil

    from cnnlab.runs import check_reads_unchanged, forget_reads

    first = _onnx_with_external_data(tmp_path / "a", 1.0)
    other = _onnx_with_external_data(tmp_path / "b", 2.0)
    assert first.read_bytes() == other.read_bytes()  # the graph alone cannot tell them apart
    forget_reads()
    before = resolve_source(str(first), tmp_path / "outputs").describe()["sha256"]
    check_reads_unchanged()
    os.chmod(first, 0o600)  # the change time moves, the bytes do not (probe 114: a sound run was failed)
    os.link(first, tmp_path / "hard-link.onnx")
    check_reads_unchanged()
    shutil.copy(other.parent / "model.onnx.data", first.parent / "model.onnx.data")
    with pytest.raises(CnnlabError, match="model.onnx.data was written or replaced while this run read it"):
        check_reads_unchanged()
    forget_reads()
    assert resolve_source(str(first), tmp_path / "outputs").describe()["sha256"] != before


def test_an_int8_file_where_a_model_pt_is_needed_says_what_it_is_and_which_run_to_pass(tmp_path: Path) -> None:
    """Probe 162: `cnnlab prune source=QUANTIZE_RUN` said to pass "the run the ONNX file was exported from" — it was
    quantized, and an INT8 graph cannot be pruned: the run it was quantized from is the one to pass."""
    pruned = make_run(tmp_path, "prune", "p")
    quantized = make_run(tmp_path, "quantize", "q", model=False, onnx=True)
    record = json.loads((quantized / "run.json").read_text())
    record.update(model={"name": "resnet18", "precision": "int8"}, source={"run": str(pruned)})
    (quantized / "run.json").write_text(json.dumps(record))
    for spec in (str(quantized), str(quantized / "model.onnx"), "latest:quantize"):
        with pytest.raises(CnnlabError) as refused:
            resolve_source(spec, tmp_path, want=("checkpoint",))
        assert "holds the INT8 ONNX file `cnnlab quantize` wrote" in refused.value.message, spec
        assert refused.value.fix == f"pass the run it was quantized from ({pruned}), then quantize the result again"
    assert resolve_source(str(pruned), tmp_path, want=("checkpoint",)).kind == "checkpoint"  # the fix, followed


def test_an_fp32_onnx_file_where_a_model_pt_is_needed_names_the_run_it_came_from(tmp_path: Path) -> None:
    """Probe 176: a quantize run that kept FP32, or an export run, as prune's source: "pass the run or model.pt the
    ONNX file was exported from", naming neither, though each run records its source."""
    trained = make_run(tmp_path, "pretrain", "t")
    for command in ("quantize", "export"):
        made = make_run(tmp_path, command, command[0], model=False, onnx=True)
        record = json.loads((made / "run.json").read_text())
        record.update(model={"name": "lenet5", "precision": "fp32"}, source={"run": str(trained)})
        (made / "run.json").write_text(json.dumps(record))
        for spec in (str(made), str(made / "model.onnx")):
            with pytest.raises(CnnlabError) as refused:
                resolve_source(spec, tmp_path, want=("checkpoint",))
            verb = {"quantize": "quantized", "export": "exported"}[command]
            assert refused.value.fix == f"pass the run it was {verb} from: source={trained}", refused.value.fix


def test_a_command_without_source_names_the_latest_form_of_a_run_that_exists(tmp_path: Path) -> None:
    """Probe 214: evaluate without source= named source=latest:finetune in a workspace that held no finetune run."""
    from cnnlab.runs import missing_source_fix

    assert "no run under" in missing_source_fix(tmp_path) and "train one" in missing_source_fix(tmp_path)
    make_run(tmp_path, "pretrain", "a", started="2026-01-01T10:00:00")
    make_run(tmp_path, "quantize", "b", model=False, onnx=True, started="2026-01-01T11:00:00")
    make_run(tmp_path, "finetune", "c", status="failed", started="2026-01-01T12:00:00")
    assert "pass source=latest:quantize (the newest: " in missing_source_fix(tmp_path)
    # prune and export take a model.pt only: the ONNX-only quantize run is not offered
    fix = missing_source_fix(tmp_path, ("checkpoint",))
    assert "pass source=latest:pretrain (the newest: " in fix and fix.endswith("source=path/to/model.pt"), fix
