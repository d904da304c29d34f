"""The `cnnlab bench ...` commands the report prints: followed as printed, they clear the note they end."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from report.fakes import bench_run, model_run, paired_run, sweep

from cnnlab import conftree
from cnnlab.hydra_args import override_parser
from cnnlab.report import Comparison, build_report, write_report
from cnnlab.report.formats import sessions_note

# what `cnnlab bench` times when a setting is not given (cnnlab/conf/command/bench.yaml): threads null is one per
# physical core — 4 on the machine these tests stand for, more than the 1 thread the tables below compare
BENCH_DEFAULTS = {"threads": 4, "batch_sizes": [1, 8, 32], "backends": ["onnxruntime"], "device": "cpu"}


def follow(command: str, name: str, p50s: list[float]) -> Path:
    """The paired session `command` (a note's `cnnlab bench 'source=[...]' ...`, as the shell splits it) records:
    its sources timed at the settings it names, bench's defaults for the others (a paired session times the ONNX
    backends of the default list: onnxruntime on the CPU) — or one model's bench run (`source=RUN`) — in the outputs
    folder it names (`paths.outputs=`), else in
    bench's default one ($CNNLAB_OUTPUTS) — where bench writes it, not where the report that printed it reads."""
    words = shlex.split(command)
    assert words[:2] == ["cnnlab", "bench"], command
    settings, sources, outputs, paired = dict(BENCH_DEFAULTS), [], conftree.outputs_folder(), True
    for word in words[2:]:
        override = override_parser().parse_override(word)  # each word one Hydra override
        key, value = override.key_or_group, override.value()
        if key == "source":
            paired = isinstance(value, list)  # source=[A,B]: a session; source=A: one model's bench run
            sources = [Path(v) for v in value] if paired else [Path(value)]
        elif key == "paths.outputs":
            outputs = Path(value)
        else:
            assert key in ("bench.threads", "bench.batch_sizes", "bench.backends", "device"), word
            settings[key.removeprefix("bench.")] = value
    if not paired:
        return bench_run(outputs, name, sources[0], p50s[0], threads=settings["threads"], device=settings["device"],
                         batch=settings["batch_sizes"][0], backend=settings["backends"][0])
    return paired_run(outputs, name, sources, [[p50] * 3 for p50 in p50s], threads=settings["threads"],
                      batch_sizes=settings["batch_sizes"], backends=settings["backends"], device=settings["device"])


def test_the_sessions_note_names_its_tables_setting_so_that_following_it_clears_the_note(tmp_path: Path) -> None:
    """The note printed `cnnlab bench 'source=[…]'` under a table of "onnxruntime, batch 1, on cpu with 1 thread":
    run as printed, bench timed every core at batch sizes 1, 8 and 32, and the report came back with the same note
    and figures. The command carries the table's backend, batch size and threads; followed, the note clears."""
    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    b = model_run(out, "prune", "b", 0.88, source=a, params=500_000)
    c = model_run(out, "prune", "c", 0.86, source=a, params=300_000)
    bench_run(out, "b0", a, 10.0, threads=1)
    paired_run(out, "p1", [a, b], [[10.0] * 3, [5.0] * 3], threads=1)
    bench_run(out, "b3", c, 4.0, threads=1)
    report = build_report(out)
    assert report.comparison.describe() == "onnxruntime, batch 1, on cpu with 1 thread"
    note = sessions_note(report.seed_groups, report.comparison)
    assert note is not None and note.startswith("p50 comes from 2 bench sessions"), note
    command = "cnnlab bench " + note.split("cnnlab bench ", 1)[1]
    markdown = next(p for p in write_report(report) if p.suffix == ".md").read_text()
    assert f"`{command}`." in markdown  # the whole command is the code span, settings and all

    follow(command, "followed", [9.0, 4.5, 3.5])
    followed = build_report(out)
    assert followed.comparison == report.comparison
    assert sessions_note(followed.seed_groups, followed.comparison) is None, command
    assert {row.bench_run.name for row in followed.rows} == {"followed"}  # type: ignore[union-attr]
    # tmp_path/outputs is not the default folder ($CNNLAB_OUTPUTS): the command names it
    assert command == (f"cnnlab bench 'source=[{a},{b},{c}]' 'bench.backends=[onnxruntime]' 'bench.batch_sizes=[1]' "
                       f"bench.threads=1 paths.outputs={out}"), command


def test_a_bench_hint_carries_the_setting_compared_and_each_word_is_one_override() -> None:
    """Another batch size, backend and device than bench's defaults are named, each as one shell word Hydra reads;
    a paired session under a PyTorch backend names onnxruntime (it times ONNX files only); a report with no bench
    run compares no setting, so its hint names none."""
    from cnnlab.report.rows import bench_command

    a, b = Path("/w/outputs/finetune/a"), Path("/w/outputs/prune/b")
    command = bench_command([a, b], Comparison("tensorrt", 8, "cuda:0", 4))
    assert command == ("cnnlab bench 'source=[/w/outputs/finetune/a,/w/outputs/prune/b]' 'bench.backends=[tensorrt]' "
                       "'bench.batch_sizes=[8]' bench.threads=4 device=cuda:0")
    read = {o.key_or_group: o.value() for o in map(override_parser().parse_override, shlex.split(command)[2:])}
    assert read == {"source": [str(a), str(b)], "bench.backends": ["tensorrt"], "bench.batch_sizes": [8],
                    "bench.threads": 4, "device": "cuda:0"}
    assert "'bench.backends=[onnxruntime]'" in bench_command([a, b], Comparison("torch", 1, "cpu", 2))
    assert "'bench.backends=[torch]'" in bench_command([a], Comparison("torch", 1, "cpu", 2))  # one model: torch too
    assert bench_command([a], Comparison(threads=None, timed=False)) == f"cnnlab bench source={a}"


def test_a_model_made_from_a_file_outside_any_run_gets_its_speedup_from_a_session_that_timed_the_file(
        tmp_path: Path) -> None:
    """`cnnlab quantize source=FILE.onnx` of a file no cnnlab run holds: its speed-up read "—" with no note
    (report.json `speedup: null, notes: []`), though docs/report.md says every "—" comes with its note, and a paired
    session `cnnlab bench 'source=[FILE.onnx,RUN]'` had timed both. The session's subject records the file's path:
    the ratio is read from it; before it, the note says the source is a file outside any run and how to time it."""
    out = tmp_path / "outputs"
    file = tmp_path / "models" / "net.onnx"
    file.parent.mkdir()
    file.write_bytes(b"an fp32 network")
    int8 = model_run(out, "quantize", "int8", 0.9, source_file=file, onnx_bytes=1_000, precision="int8")
    bench_run(out, "b1", int8, 1.0)
    report = build_report(out)
    [row] = report.rows
    assert row.speedup is not None and row.speedup.status == "unpaired", row.speedup
    note = row.speedup.note
    assert note is not None and note.startswith(f"its source is a file outside any run ({file}), and no bench "
                                                "session timed the two: time both in one session, e.g. "), note
    command = "cnnlab bench " + note.split("cnnlab bench ", 1)[1]
    assert command.startswith(f"cnnlab bench 'source=[{file},{int8}]' "), command
    write_report(report)
    md = (out / "report.md").read_text()
    assert "(no speed-up): its source is a file outside any run" in md
    saved = json.loads((out / "report.json").read_text())["rows"][0]
    assert saved["speedup"]["note"] == note and saved["source"] == str(file.resolve())

    follow(command, "paired", [4.0, 1.0])
    [row] = build_report(out).rows
    assert row.speedup is not None and row.speedup.status == "paired" and row.speedup.shown == pytest.approx(4.0)
    write_report(build_report(out))
    saved = json.loads((out / "report.json").read_text())["rows"][0]
    assert saved["speedup_vs_source"] == pytest.approx(4.0) and "no speed-up" not in (out / "report.md").read_text()
    # the same path holding another file since: a session that timed that one is no timing of the source read
    file.write_bytes(b"another network")
    paired_run(out, "later", [file, int8], [[40.0] * 3, [1.0] * 3])
    [row] = build_report(out).rows
    assert row.speedup.shown == pytest.approx(4.0) and row.speedup.bench_run.name == "paired"  # type: ignore


def test_a_quantize_that_kept_its_source_file_in_fp32_reads_as_the_same_network_timed_twice(tmp_path: Path) -> None:
    """A `cnnlab quantize source=FILE.onnx` that kept FP32 ships the file's network: timed beside it, bench read the
    pair "1.00× (same network: noise)"; the report, matching the file by its path, read it as a ratio like any other
    ("1.00× faster")."""
    out = tmp_path / "outputs"
    file = tmp_path / "net.onnx"
    file.write_bytes(b"an fp32 network")
    kept = model_run(out, "quantize", "kept", 0.9, source_file=file, onnx_bytes=1_000, precision="fp32")
    paired_run(out, "p", [file, kept], [[1.0] * 3, [1.01] * 3])
    [row] = build_report(out).rows
    assert row.speedup is not None and row.speedup.status == "same network", row.speedup


def _hint(note: str) -> str:
    """The `cnnlab bench ...` command a note ends with (inside its parentheses, for "not benchmarked (...)")."""
    return "cnnlab bench " + note.split("cnnlab bench ", 1)[1].removesuffix(")")


def test_a_report_of_another_folder_prints_bench_commands_that_write_into_it(tmp_path: Path, monkeypatch) -> None:
    """User probe: `CNNLAB_OUTPUTS=other cnnlab pretrain ...`, then `cnnlab report other` printed `not benchmarked
    (cnnlab bench source=/tmp/p/other/pretrain/...)`; followed exactly, the bench run went into ./outputs (bench's
    default folder), and `cnnlab report other` printed the same note again. Every bench command of a report of a
    folder other than bench's default names it, absolute (`paths.outputs=`: the report was given `other`, relative),
    one shell word Hydra reads back; followed, the notes clear — the one-model hint and the paired one alike."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNNLAB_OUTPUTS")  # bench's default: ./outputs
    other = tmp_path / "other"
    a = model_run(other, "pretrain", "a", 0.9)
    report = build_report(Path("other"))
    [row] = report.rows
    assert row.notes == [f"not benchmarked (cnnlab bench source={a} paths.outputs={other})"], row.notes
    follow(_hint(row.notes[0]), "followed", [2.0])
    assert not (tmp_path / "outputs").exists()
    [row] = build_report(Path("other")).rows
    assert row.notes == [] and row.p50_ms == 2.0 and row.bench_run == other / "bench" / "2026-11-28" / "followed"

    # a pruned child timed apart from it: the speed-up's hint times the two side by side, in `other` too
    b = model_run(other, "prune", "b", 0.88, source=a, params=500_000)
    bench_run(other, "b", b, 1.0, threads=4)
    report = build_report(Path("other"))
    row = next(r for r in report.rows if r.run.path == b)
    assert row.speedup is not None and row.speedup.note is not None, row.speedup
    command = _hint(row.speedup.note)
    assert command == (f"cnnlab bench 'source=[{a},{b}]' 'bench.backends=[onnxruntime]' 'bench.batch_sizes=[1]' "
                       f"bench.threads=4 paths.outputs={other}"), command
    assert f"`{command}`" in next(p for p in write_report(report) if p.suffix == ".md").read_text()
    follow(command, "paired", [2.0, 1.0])
    row = next(r for r in build_report(Path("other")).rows if r.run.path == b)
    assert row.speedup.status == "paired" and row.speedup.shown == pytest.approx(2.0)  # type: ignore[union-attr]

    # a folder the shell and Hydra would split: one word each, read back as the folder
    spaced = tmp_path / "my runs, 2"
    c = model_run(spaced, "pretrain", "c", 0.9)
    [row] = build_report(spaced).rows
    words = shlex.split(_hint(row.notes[0]))
    read = {o.key_or_group: o.value() for o in map(override_parser().parse_override, words[2:])}
    assert read == {"source": str(c), "paths.outputs": str(spaced)}, words


def test_a_sweep_or_glob_of_another_folder_names_the_outputs_folder_its_runs_live_in(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """`cnnlab report other/finetune/<date>/<time>-multirun` (and `--runs GLOB` over `other`) reads the bench runs in
    the outputs folder around its runs: the hint names that folder, `other` — not the sweep folder, where the bench
    run would sit among the sweep's jobs — and, followed, its note clears."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CNNLAB_OUTPUTS")
    other = tmp_path / "other"
    tuned = sweep(other, "finetune", [0.90, 0.92])
    for report in (build_report(tuned[0].parent), build_report(other, pattern="finetune/*/*-multirun/*")):
        notes = sorted(note for row in report.rows for note in row.notes)
        assert notes == [f"not benchmarked (cnnlab bench source={run} paths.outputs={other})" for run in tuned]
    follow(_hint(notes[0]), "followed", [2.0])
    for report in (build_report(tuned[0].parent), build_report(other, pattern="finetune/*/*-multirun/*")):
        assert [row.p50_ms for row in sorted(report.rows, key=lambda r: r.accuracy)] == [2.0, None]


def test_a_report_of_a_project_folder_names_the_outputs_folder_inside_it(tmp_path: Path, monkeypatch) -> None:
    """Probe 194: `cnnlab report ../proj` (proj holding outputs/) printed `paths.outputs=/…/proj`; followed, bench
    made proj/bench/, a second runs folder beside proj/outputs/, and `cnnlab report ../proj/outputs` said "not
    benchmarked" again. The hint names the outputs folder the runs live in; followed, both reports read the run."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.delenv("CNNLAB_OUTPUTS")
    project = tmp_path / "proj"
    a = model_run(project / "outputs", "pretrain", "a", 0.9)
    [row] = build_report(project).rows
    assert row.notes == [f"not benchmarked (cnnlab bench source={a} paths.outputs={project / 'outputs'})"], row.notes
    follow(_hint(row.notes[0]), "followed", [2.0])
    assert sorted(p.name for p in project.iterdir()) == ["outputs"]  # no second runs folder beside it
    for folder in (project, project / "outputs"):
        [row] = build_report(folder).rows
        assert row.notes == [] and row.p50_ms == 2.0, (folder, row.notes)


def test_a_report_of_bench_s_default_folder_prints_bench_commands_without_a_folder(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """Where bench's default folder is one the report reads — the folder reported ($CNNLAB_OUTPUTS, relative or
    not), a sweep folder or glob in it, a folder that holds it — the command is as before: no `paths.outputs=`."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92])
    for default in (str(out), "outputs"):
        monkeypatch.setenv("CNNLAB_OUTPUTS", default)
        for report in (build_report(out), build_report(Path("outputs")), build_report(tuned[0].parent),
                       build_report(out, pattern="finetune/*/*-multirun/*"), build_report(tmp_path)):
            notes = sorted(note for row in report.rows for note in row.notes)
            assert notes == [f"not benchmarked (cnnlab bench source={run})" for run in tuned], notes
    follow(_hint(notes[0]), "followed", [2.0])
    assert [row.p50_ms for row in sorted(build_report(out).rows, key=lambda r: r.accuracy)] == [2.0, None]


def test_a_pipeline_workspace_in_bench_s_default_folder_gets_its_bench_run_in_the_workspace(tmp_path: Path,
                                                                                           monkeypatch) -> None:
    """`cnnlab report outputs/pipeline/NAME` reads the workspace alone (its stages' runs lie in its runs/ folder, not
    in outputs/<command>/): the hint's bench run, in ./outputs/bench, was not read and the note came back. It names
    the workspace, though it lies in bench's default folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_OUTPUTS", "outputs")
    workspace = tmp_path / "outputs" / "pipeline" / "quick"
    a = model_run(workspace / "runs", "finetune", "a", 0.9)
    [row] = build_report(workspace).rows
    assert row.notes == [f"not benchmarked (cnnlab bench source={a} paths.outputs={workspace})"], row.notes
    follow(_hint(row.notes[0]), "followed", [2.0])
    [row] = build_report(workspace).rows
    assert row.notes == [] and row.p50_ms == 2.0


def test_the_not_benchmarked_hint_run_as_printed_clears_the_note(cli, tiny_run: Path, outputs: Path,
                                                                 monkeypatch) -> None:
    """The user probe, end to end: a real run in a folder that is not bench's default (here $CNNLAB_OUTPUTS names
    another), `cnnlab report FOLDER`'s "not benchmarked" hint run as printed — split as the shell splits it, only
    bench's timing made short (PyTorch alone, a few runs: no ONNX export) — and the same report: the note is gone,
    the run timed. Before, the bench run went into $CNNLAB_OUTPUTS and the report printed the same note again."""
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(outputs.parent / "elsewhere"))
    report = ("report", str(outputs), "--backend", "torch", "--no-write")
    note = f"no latency for {tiny_run}: not benchmarked ("
    printed = cli(*report)
    assert printed.code == 0 and note in printed.stdout, printed.output
    # the line as printed, wrapped at spaces (COLUMNS)
    words = shlex.split(printed.stdout.split(note, 1)[1].split(")\n", 1)[0].replace("\n", " "))
    assert words == ["cnnlab", "bench", f"source={tiny_run}", f"paths.outputs={outputs}"], words
    timing = ["bench.backends=[torch]", "bench.batch_sizes=[1]", "bench.warmup=1", "bench.min_iters=3",
              "bench.min_seconds=0"]
    assert cli(*words[1:], *timing).code == 0
    assert not (outputs.parent / "elsewhere").exists()
    again = cli(*report)
    assert again.code == 0 and "not benchmarked" not in again.stdout and "no latency for" not in again.stdout, \
        again.output


def test_a_bench_that_warned_of_a_busy_machine_is_said_under_the_table(tmp_path: Path) -> None:
    """Probe 213: bench warned that other processes kept cores busy while it timed; the report showed its figures
    and Pareto marks without a word. Timed again on a quiet machine, the note clears."""
    import json as _json

    from cnnlab.report.formats import timing_notes

    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    busy = bench_run(out, "busy", a, 10.0, threads=1)
    record = _json.loads((busy / "run.json").read_text())
    warning = ("other processes kept 1.4 of the 2 cores busy while the models were timed: a longer call is "
               "interrupted more often, so latencies read high and speed-ups favour the faster model — time them again "
               "on a quiet machine")
    (busy / "run.json").write_text(_json.dumps({**record, "warnings": [7, warning],
                                                "started": "2026-11-28T10:00:00+00:00"}))  # before the quiet one
    report = build_report(out)
    [note] = [n for n in timing_notes(report.seed_groups, report.comparison) if "warned" in n]
    assert note.startswith('p50 of 1 row comes from bench runs that warned "other processes kept 1.4 of the 2 cores '
                           'busy while the models were timed"'), note
    markdown = next(p for p in write_report(report) if p.suffix == ".md").read_text()
    assert "warned \"other processes kept 1.4" in markdown
    follow("cnnlab bench " + note.split("cnnlab bench ", 1)[1], "quiet", [9.0])
    quiet = build_report(out)
    assert not [n for n in timing_notes(quiet.seed_groups, quiet.comparison) if "warned" in n]
