"""cnnlab report from fabricated run records: rows, latency matching, paired speed-ups, Pareto front, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report.fakes import bench_run, evaluate_run, model_run, paired_run

from cnnlab.errors import CnnlabError
from cnnlab.report import Comparison, build_report, write_report
from cnnlab.report.formats import differences
from cnnlab.runs import RunRecord


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A finetuned teacher, its export, a pruned and a quantized child, a distilled student; all benchmarked."""
    out = tmp_path / "outputs"
    teacher = model_run(out, "finetune", "teacher", 0.97, params=11_000_000)
    export = out / "export" / "2026-11-28" / "e"
    rec = RunRecord.start(export, "export")
    rec.update(source={"run": str(teacher)})
    (export / "model.onnx").write_bytes(b"\0" * 44_000)
    rec.add_artifact("onnx", export / "model.onnx")
    rec.finish("completed", metrics={"val_acc": 0.97})
    pruned = model_run(out, "prune", "pruned", 0.96, source=teacher, params=3_000_000, onnx_bytes=12_000)
    quantized = model_run(out, "quantize", "int8", 0.965, source=export, params=11_000_000, onnx_bytes=11_000)
    student = model_run(out, "distill", "student", 0.93, source=teacher, model="mobilenet_v2", params=2_000_000)
    slow_and_bad = model_run(out, "prune", "worse", 0.90, source=teacher, params=5_000_000, onnx_bytes=20_000)
    bench_run(out, "b1", export, 10.0)              # bench of the export counts for the teacher
    bench_run(out, "b2", pruned, 4.0)
    bench_run(out, "b3", quantized, 3.0)
    bench_run(out, "b4", student, 2.0)
    bench_run(out, "b5", slow_and_bad, 5.0)
    bench_run(out, "b6", student, 0.5, batch=32)    # another batch size: must not be mixed in
    # the same models, timed side by side: where speed-ups come from (the export stands for the teacher)
    paired_run(out, "paired", [export, pruned, quantized, student, slow_and_bad],
               [[10.0, 10.2, 9.9], [4.0, 4.1, 3.95], [3.0, 3.05, 2.98], [2.0, 2.02, 1.99], [5.0, 5.1, 4.9]])
    model_run(out, "finetune", "failed", 0.99, status="failed")
    return out

# The setting the fakes' bench records share, as every printed bench command carries it (probe 187).
ONE_THREAD = "'bench.backends=[onnxruntime]' 'bench.batch_sizes=[1]' bench.threads=2"


def test_rows_latency_speedup_and_pareto(study: Path) -> None:
    report = build_report(study)
    rows = {row.run.path.name: row for row in report.rows}
    assert set(rows) == {"teacher", "pruned", "int8", "student", "worse"}  # failed run and export are not rows
    assert rows["teacher"].p50_ms == 10.0 and rows["teacher"].file_kind == "onnx"
    assert rows["teacher"].file_bytes == 44_000  # the export's ONNX is the teacher's deployable size
    assert rows["pruned"].speedup.shown == pytest.approx(2.5) and rows["pruned"].speedup.status == "paired"
    assert rows["int8"].speedup.shown == pytest.approx(10 / 3)  # the quantize source is an export: traced back
    assert rows["teacher"].speedup is None and rows["teacher"].bench_run.name == "paired"
    assert rows["student"].p50_ms == 2.0  # batch 32 timing ignored
    pareto = {name for name, row in rows.items() if row.pareto}
    assert pareto == {"teacher", "int8", "student"}  # pruned (0.96 @ 4 ms) is beaten by int8 (0.965 @ 3 ms)
    assert report.comparison == Comparison("onnxruntime", 1, "cpu", 2)


def test_only_like_with_like(study: Path) -> None:
    other = model_run(study, "finetune", "flowers", 0.80, dataset={"name": "flowers", "num_classes": 102,
                                                                   "image_size": 224})
    bench_run(study, "b7", other, 0.1)  # faster than everything, but another dataset
    report = build_report(study)
    assert len(report.groups) == 2
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["flowers"].pareto and rows["teacher"].pareto  # each is on its own dataset's front
    unbenched = model_run(study, "finetune", "unbenched", 0.5)
    report = build_report(study)
    row = next(r for r in report.rows if r.run.path == unbenched)
    assert row.p50_ms is None and not row.pareto and "not benchmarked" in row.notes[0]


def test_threads_and_device_must_match(study: Path) -> None:
    """Nothing here was timed with 8 threads: one error naming what was timed, not a report of blank latencies."""
    with pytest.raises(CnnlabError) as caught:
        build_report(study, comparison=Comparison(threads=8))
    assert "(onnxruntime, batch 1, on cpu with 8 threads)" in str(caught.value)
    assert "onnxruntime, batch 1, on cpu with 2 threads" in str(caught.value)


def test_write_report_files(study: Path) -> None:
    report = build_report(study)
    written = {p.name for p in write_report(report)}
    assert written == {"report.md", "report.csv", "report.json", "report.png"}
    md = (study / "report.md").read_text()
    assert "| run | command |" in md and "★" in md and "![accuracy vs latency](report.png)" in md
    data = json.loads((study / "report.json").read_text())
    assert len(data["rows"]) == 5 and data["comparison"]["backend"] == "onnxruntime"
    assert (study / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((study / "report.csv").read_text().splitlines()) == 6


def test_test_accuracy_comes_from_the_newest_test_evaluation(study: Path) -> None:
    export = study / "export" / "2026-11-28" / "e"
    evaluate_run(study, "old", export, 0.91, started="2000-01-01T00:00:00")  # of the export: counts for the teacher
    evaluate_run(study, "new", export, 0.95, started="2999-01-01T00:00:00")
    evaluate_run(study, "val", study / "finetune" / "2026-11-28" / "teacher", 0.5, split="val",
                 started="3000-01-01T00:00:00")  # newer, but not the test split
    report = build_report(study)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["teacher"].test_accuracy == 0.95 and rows["teacher"].evaluate_run.name == "new"
    assert rows["pruned"].test_accuracy is None and len(report.rows) == 5  # evaluate runs are not rows
    write_report(report)
    md = (study / "report.md").read_text()
    assert "| val top-1 | test top-1 | params |" in md and "| 97.00% | 95.00% |" in md and "| 96.00% | — |" in md
    first = json.loads((study / "report.json").read_text())["rows"][0]  # the most accurate: the teacher
    assert first["test_accuracy"] == 0.95 and first["evaluate_run"] == "evaluate/2026-11-28/new"


def test_no_test_column_without_test_evaluations(study: Path) -> None:
    write_report(build_report(study))
    assert "test top-1" not in (study / "report.md").read_text().split("## ")[1]


def test_runs_glob_and_empty_folder(study: Path, tmp_path: Path) -> None:
    report = build_report(study, pattern="prune/*")
    assert {row.command for row in report.rows} == {"prune"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="no completed model runs"):
        build_report(tmp_path / "empty")


def test_a_runs_glob_over_a_re_run_sweep_takes_the_jobs_it_links(tmp_path: Path) -> None:
    """Probe 206: a sweep run again with one more seed links the jobs it skipped to the earlier sweep's runs; the
    report of its folder counted all four seeds, `--runs 'SWEEP/*'` only the one job that ran, unsaid."""
    out = tmp_path / "outputs"
    earlier = [model_run(out, "pretrain", f"first/{seed}", 0.5 + seed / 100, seed=seed) for seed in (0, 1)]
    model_run(out, "pretrain", "again/2", 0.6, seed=2)
    for job, run in enumerate(earlier):
        (out / "pretrain" / "2026-11-28" / "again" / f"{job}-again").symlink_to(run, target_is_directory=True)
    pattern = "pretrain/2026-11-28/again/*"
    assert sorted(row.run.path.name for row in build_report(out, pattern=pattern).rows) == ["0", "1", "2"]
    assert [row.run.path.name for row in build_report(out, pattern=f"{pattern[:-1]}0-again").rows] == ["0"]
    assert len(build_report(out).rows) == 3  # each run once, by its own folder


def test_report_command_line_needs_no_torch(study: Path) -> None:
    code = ("import sys; from typer.testing import CliRunner; from cnnlab.cli import app; "
            f"r = CliRunner().invoke(app, ['report', {str(study)!r}]); print(r.stdout); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "200",
                          **__import__("os").environ})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Pareto" in proc.stdout and "wrote" in proc.stdout


@pytest.mark.slow  # ~30 s; a real `-m seed=0,1` sweep through the report stays in CI (tests/report/test_seeds.py)
def test_report_over_a_real_sweep_marks_the_pareto_front(cli, outputs: Path) -> None:
    """End to end: a multirun sweep of two models, a bench sweep over both, one report."""
    from helpers import TINY, run_dirs

    tiny = [o for o in TINY if not o.startswith("model=")]
    assert cli("pretrain", "-m", *tiny, "model=lenet5,mobilenet_v3_small").code == 0
    trained = run_dirs(outputs, "pretrain")
    assert len(trained) == 2 and all(d.parent.name.endswith("-multirun") for d in trained)
    benched = cli("bench", "-m", f"source={trained[0]},{trained[1]}", "bench.backends=[onnxruntime]",
                  "bench.batch_sizes=[1]", "bench.threads=1", "bench.min_seconds=0.05")
    assert benched.code == 0, benched.output
    result = cli("report", str(outputs))
    assert result.code == 0, result.output
    data = json.loads((outputs / "report.json").read_text())
    assert {row["model"] for row in data["rows"]} == {"lenet5", "mobilenet_v3_small"}
    assert all(row["p50_ms"] is not None for row in data["rows"])
    assert any(row["pareto"] for row in data["rows"]) and "★" in result.stdout


def _cell(report, name: str) -> str:
    from cnnlab.report.formats import speedup_cell

    return speedup_cell(next(row for row in report.rows if row.run.path.name == name))


def test_two_benches_at_different_times_give_no_speedup(tmp_path: Path) -> None:
    """The quick-start incident: one network benchmarked at 16.9 ms and later, under load, its INT8 child at
    0.53 ms, and a "32×" in the report. Without a paired session there is no ratio at all."""
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000)
    bench_run(out, "early", fp32, 16.9)
    bench_run(out, "later", int8, 0.53)
    report = build_report(out)
    row = next(r for r in report.rows if r.run.path == int8)
    assert row.p50_ms == 0.53 and row.speedup.status == "unpaired" and row.speedup.shown is None
    assert "no paired timing" in row.speedup.note
    assert _cell(report, "int8") == "—"
    write_report(report)
    md = (out / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| quantize/"))
    assert "×" not in line and "31.89" not in md and "(no speed-up): no paired timing" in md
    # in the table, its speed-up alone held back: not "left out of the comparison" (probe 162)
    assert "## Left out of the comparison" not in md and "## Figures held back or as recorded" in md
    assert json.loads((out / "report.json").read_text())["rows"][0]["speedup_vs_source"] is None


def test_paired_slowdown_reads_slower(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000)
    paired_run(out, "p", [fp32, int8], [[10.0, 10.1, 9.9], [10.3, 10.4, 10.2]])
    report = build_report(out)
    assert _cell(report, "int8") == "1.03× slower"
    assert "faster" not in _cell(report, "int8")


def test_a_speed_up_is_paired_round_by_round_not_a_ratio_of_medians(tmp_path: Path) -> None:
    """The dense network's median round is its third (10.5 ms), the pruned one's its second (5.3 ms): their ratio
    1.98× compares two moments of the machine. Taken side by side the rounds give 2.00×, 2.08× and 1.93×: 2.00×."""
    out = tmp_path / "outputs"
    dense = model_run(out, "finetune", "dense", 0.98)
    pruned = model_run(out, "prune", "pruned", 0.97, source=dense, params=300_000, onnx_bytes=1000)
    paired_run(out, "p", [dense, pruned], [[10.0, 11.0, 10.5], [5.0, 5.3, 5.45]])
    report = build_report(out)
    assert _cell(report, "pruned") == "2.00× faster"
    assert next(r for r in report.rows if r.run.path == pruned).speedup.ratio == pytest.approx(2.0)


def test_an_unstable_slowdown_says_its_rounds_in_the_units_of_a_speed_up(tmp_path: Path) -> None:
    """The note read "unstable: the rounds gave 0.45–1.04": raw ratios (< 1 = slower) where every speed-up cnnlab
    prints is in words ("never 0.97× faster"), and a range that mixed slower and faster without saying so."""
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000)
    paired_run(out, "shaky", [fp32, int8], [[10.0, 10.0, 10.0], [22.2, 16.0, 9.615]])
    note = next(r for r in build_report(out).rows if r.run.path == int8).speedup.note
    assert note == "unstable: the rounds gave 2.22× slower to 1.04× faster (more than 15% apart)"


def test_a_speed_up_timed_in_one_round_is_no_figure(tmp_path: Path) -> None:
    """Probe 192: `cnnlab bench source=[FP32,INT8] bench.rounds=1` (four sessions: 2.68×, 1.20×, 1.51×, 1.50×
    slower) showed its ratio as a clean, paired speed-up: one round cannot say whether the machine's speed held."""
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000)
    paired_run(out, "once", [fp32, int8], [[10.0], [26.8]])
    report = build_report(out)
    speedup = next(r for r in report.rows if r.run.path == int8).speedup
    assert speedup.status == "unstable" and "timed in one round (bench.rounds=1)" in speedup.note
    assert _cell(report, "int8") == "— (unstable)"


def test_unstable_rounds_and_a_network_timed_twice_differently_are_flagged(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    pretrain = model_run(out, "pretrain", "pre", 0.8)
    finetune = model_run(out, "finetune", "fine", 0.98, source=pretrain)
    pruned = model_run(out, "prune", "pruned", 0.97, source=finetune, params=300_000, onnx_bytes=1000)
    # rounds that disagree: 2x, then 3x, then 1.5x
    paired_run(out, "shaky", [finetune, pruned], [[10.0, 12.0, 9.0], [5.0, 4.0, 6.0]])
    report = build_report(out)
    assert _cell(report, "pruned") == "— (unstable)"
    assert "unstable: the rounds gave" in next(r for r in report.rows if r.run.path == pruned).speedup.note

    # a later session with steady rounds, but pretrain and finetune (one network) at 16.9 and 24.7 ms
    twin = model_run(out, "distill", "twin", 0.97, source=finetune)  # the same network as its teacher
    paired_run(out, "busy", [pretrain, finetune, pruned, twin], [[16.9, 17.0, 16.8], [24.7, 24.9, 24.5],
                                                                  [5.0, 5.1, 4.9], [24.6, 24.8, 24.4]],
               started="2099-01-01T00:00:00+00:00")
    report = build_report(out)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["fine"].speedup.status == "unstable" and "same network timed" in rows["fine"].speedup.note
    assert rows["pruned"].speedup.status == "unstable" and "unstable session" in rows["pruned"].speedup.note
    assert _cell(report, "pruned") == "— (unstable)"
    # probe 88: a same-network pair of that session read "1.00× (same network: noise)"; the runs are named with
    # their parent folder (a sweep's jobs 0 and 1 of several sweeps)
    assert rows["twin"].speedup.status == "unstable" and "(2026-11-28/pre, 2026-11-28/fine)" in \
        rows["twin"].speedup.note, rows["twin"].speedup.note

    # a steady session: the same network within the noise, the pruned model's ratio shown
    paired_run(out, "calm", [pretrain, finetune, pruned], [[10.0, 10.2, 9.9], [10.3, 10.4, 10.1], [5.0, 5.1, 4.9]],
               started="2099-01-02T00:00:00+00:00")
    report = build_report(out)
    assert _cell(report, "fine") == "1.02× slower (same network: noise)"  # rounds 1.030, 1.020, 1.020× slower
    assert _cell(report, "pruned") == "2.06× faster"


def test_a_quantize_run_that_kept_fp32_is_the_same_network_as_its_source(tmp_path: Path) -> None:
    """A quantize run whose model.onnx is the FP32 graph (FP32 kept) was shown as an INT8 row with a 1.01x
    "speed-up" (timing noise between one network), and an unstable-session alarm hid a real INT8 speed-up."""
    from cnnlab.report.seeds import group_by_seed

    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    kept = model_run(out, "quantize", "kept", 0.98, source=fp32, onnx_bytes=4000, precision="fp32",
                     metrics={"fp32_val_acc": 0.98})
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000, precision="int8",
                     metrics={"fp32_val_acc": 0.98})
    paired_run(out, "p", [fp32, kept, int8], [[10.0, 10.1, 9.9], [10.1, 10.0, 10.2], [8.4, 8.5, 8.3]])
    report = build_report(out)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["kept"].label == "quantize:resnet18 (fp32)" and rows["int8"].label == "quantize:resnet18 (int8)"
    assert _cell(report, "kept").endswith("(same network: noise)")
    assert _cell(report, "int8") == "1.19× faster"  # FP32 and INT8 are not "the same network timed apart"
    groups = {g.first.run.path.name: g for g in group_by_seed(report.rows)}
    assert groups["kept"].changes == [] and [c.what for c in groups["int8"].changes] == ["INT8 top-1 change"]


def test_a_searched_network_shows_its_arch_string_beside_hand_picked_models(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    model_run(out, "finetune", "picked", 0.95, model="mobilenet_v2")
    arch = "r32_w0.5_s1-k3e4x1_s2-k5e6x2"
    model_run(out, "search", "searched", 0.94, model="searched", arch=arch)
    report = build_report(out)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["searched"].display_model == f"searched[{arch}]" and rows["picked"].display_model == "mobilenet_v2"
    write_report(report, out)
    fields = {r["run"].split("/")[-1]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert fields["searched"]["arch"] == arch and fields["picked"]["arch"] is None


def test_a_small_image_stem_is_shown_beside_the_stock_network(tmp_path: Path) -> None:
    """Stock and model.stem=cifar ResNet-18 rows both read "resnet18", differing only in FLOPs."""
    out = tmp_path / "outputs"
    model_run(out, "pretrain", "stock", 0.91)
    model_run(out, "pretrain", "cifar", 0.94, stem="cifar")
    rows = {row.run.path.name: row for row in build_report(out).rows}
    assert rows["cifar"].display_model == "resnet18[stem=cifar]" and rows["stock"].display_model == "resnet18"


def test_a_quantized_small_image_stem_network_keeps_its_stem_in_the_report(tmp_path: Path) -> None:
    """quantize records the network's name but not its stem: its row takes the stem from its source, so an INT8
    model.stem=cifar ResNet-18 does not read as the stock network; a run that builds its own network (a stock
    student of a cifar-stem teacher) takes nothing."""
    out = tmp_path / "outputs"
    cifar = model_run(out, "pretrain", "cifar", 0.94, stem="cifar")
    pruned = model_run(out, "prune", "pruned", 0.93, source=cifar, stem="cifar")  # prune records its stem
    model_run(out, "quantize", "int8", 0.93, source=pruned, precision="int8")
    stock = model_run(out, "pretrain", "stock", 0.91)
    model_run(out, "quantize", "stock-int8", 0.91, source=stock, precision="int8")
    model_run(out, "distill", "student", 0.9, source=cifar, model="lenet5")  # another network: nothing to inherit
    # a stock student of a cifar-stem teacher of the same name records no stem: it is the stock network
    twin = model_run(out, "distill", "stock-student", 0.9, source=cifar)
    model_run(out, "quantize", "stock-student-int8", 0.9, source=twin, precision="int8")
    rows = {row.run.path.name: row for row in build_report(out).rows}
    assert rows["pruned"].display_model == "resnet18[stem=cifar]"
    assert rows["int8"].display_model == "resnet18[stem=cifar] (int8)"
    assert rows["stock-int8"].display_model == "resnet18 (int8)" and rows["student"].display_model == "lenet5"
    assert rows["stock-student"].display_model == "resnet18"
    assert rows["stock-student-int8"].display_model == "resnet18 (int8)"


def test_a_search_row_shows_its_speedup_over_the_search_reference(tmp_path: Path) -> None:
    """A search derives from no model, so its speed-up column was "—"; the search's own paired ratio over
    search.reference is the figure a user searched for."""
    out = tmp_path / "outputs"
    searched = model_run(out, "search", "searched", 0.94, model="searched", arch="r32_w0.5_s1-k3e4x1",
                         metrics={"speedup_vs_reference": 3.09})
    _add_search_settings(searched, {"reference": "mobilenet_v2", "min_speedup": 1.5})
    alone = model_run(out, "search", "no-reference", 0.93, model="searched")
    forged = model_run(out, "search", "forged", 0.93, model="searched", metrics={"speedup_vs_reference": "fast"})
    _add_search_settings(forged, {"reference": "mobilenet_v2"})
    huge = model_run(out, "search", "huge", 0.93, model="searched", metrics={"speedup_vs_reference": 1e300})
    _add_search_settings(huge, {"reference": "mobilenet_v2"})
    report = build_report(out)
    assert _cell(report, "searched") == "3.09× faster vs mobilenet_v2"
    assert _cell(report, alone.name) == "—" and _cell(report, forged.name) == "—" and _cell(report, huge.name) == "—"
    write_report(report, out)
    fields = {r["run"].split("/")[-1]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert fields["searched"]["speedup_vs_reference"] == 3.09 and fields["searched"]["reference"] == "mobilenet_v2"
    assert fields["searched"]["speedup_vs_source"] is None  # not a speed-up over a source model
    assert "speedup_vs_reference" in (out / "report.csv").read_text().splitlines()[0]


def test_a_search_speedup_whose_rounds_disagree_is_unstable_like_every_paired_ratio(tmp_path: Path) -> None:
    """Probe 194: a search's rounds against search.reference of 3.81× and 5.08× (29 % apart) read "4.40× faster vs
    mobilenet_v3_small", report.json `per_round: []`, where every other speed-up that unstable is marked so."""
    out = tmp_path / "outputs"
    shaky = model_run(out, "search", "shaky", 0.94, model="searched", metrics={"speedup_vs_reference": 4.3993})
    steady = model_run(out, "search", "steady", 0.93, model="searched", metrics={"speedup_vs_reference": 3.09})
    once = model_run(out, "search", "once", 0.92, model="searched", metrics={"speedup_vs_reference": 2.0})
    for run, rounds in ((shaky, [3.8116, 5.0777]), (steady, [3.0, 3.09, 3.2]), (once, [2.0])):
        _add_search_settings(run, {"reference": "mobilenet_v3_small"}, chosen={"speedup_per_round": rounds})
    report = build_report(out)
    rows = {row.run.path.name: row for row in report.rows}
    assert _cell(report, "shaky") == "— (unstable)" and rows["shaky"].speedup.per_round == (3.8116, 5.0777)
    assert rows["shaky"].speedup.note == ("unstable: the search's rounds against search.reference=mobilenet_v3_small "
                                          "gave 3.81–5.08× faster (more than 15% apart)")
    assert _cell(report, "steady") == "3.09× faster vs mobilenet_v3_small"
    assert rows["steady"].speedup.per_round == (3.0, 3.09, 3.2)
    assert _cell(report, "once") == "— (unstable)" and "in one round" in rows["once"].speedup.note


def test_the_search_says_an_unstable_speedup_over_its_reference() -> None:
    from cnnlab.search.results import speedup_text

    assert speedup_text(4.3993, "mobilenet_v3_small", [3.8116, 5.0777]) == \
        "4.40× faster vs mobilenet_v3_small (unstable: 3.81–5.08× faster)"
    assert speedup_text(3.09, "mobilenet_v2", [3.0, 3.2]) == speedup_text(3.09, "mobilenet_v2") == \
        "3.09× faster vs mobilenet_v2"


def _add_search_settings(run_dir: Path, settings: dict, chosen: dict | None = None) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    search = {"settings": settings, **({"chosen": chosen} if chosen is not None else {})}
    (run_dir / "run.json").write_text(json.dumps({**record, "search": search}))


def test_text_from_run_json_is_printed_as_written_not_read_as_rich_markup(tmp_path: Path) -> None:
    from rich.console import Console

    from cnnlab.report.formats import rich_table
    from cnnlab.report.seeds import group_by_seed

    out = tmp_path / "outputs"
    model_run(out, "finetune", "odd", 0.9, model="[bold red]EVIL[/]")
    model_run(out, "finetune", "\x1b[31mred\rover", 0.8, model="\x1b[2Jwipe")  # probe 132: raw to the terminal
    report = build_report(out)
    console = Console(record=True, width=300)
    console.print(rich_table(group_by_seed(report.rows), out, "digits"))
    text = console.export_text()
    assert "[bold red]EVIL[/]" in text
    assert "\x1b" not in text and "\r" not in text and "\\x1b[2Jwipe" in text


def _report_cli(*args: str) -> tuple[int, str, str]:
    """`cnnlab report ARGS` in this process: (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from cnnlab.cli import app

    result = CliRunner().invoke(app, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("option, message, fix", [
    (["--batch", "0"], "--batch 0: a batch size must be at least 1",
     "use one the onnxruntime bench runs here timed: 1, 32"),
    (["--batch", "-2"], "--batch -2: a batch size must be at least 1", "use one the onnxruntime bench runs here timed"),
    (["--backend", "foo"], "--backend foo is not a bench backend",
     "choose one of torch, torch_compile, onnxruntime, tensorrt, openvino (the bench runs here timed onnxruntime)"),
    (["--device", ""], "--device '' names no device",  # probe 180: read as no --device
     "leave --device out for the most benchmarked one, or give one the bench runs here timed on: cpu"),
])
def test_a_batch_below_one_or_an_unknown_backend_is_one_clear_error(study: Path, option: list[str], message: str,
                                                                   fix: str) -> None:
    """Both were accepted silently: every row then read "no timing", as if nothing had been benchmarked."""
    code, stdout, stderr = _report_cli(str(study), *option, "--no-write")
    assert code == 2 and stdout == ""
    [line] = stderr.splitlines()
    assert line.startswith(f"error: {message} — ") and fix in line and "Traceback" not in stderr
    assert not (study / "report.md").exists()
    with pytest.raises(CnnlabError, match="bench backend|batch size|names no device"):
        build_report(study, comparison=Comparison(backend=option[1]) if option[0] == "--backend"
                     else Comparison(device=option[1]) if option[0] == "--device" else Comparison(batch=int(option[1])))


def test_only_the_reported_models_timings_set_the_legend_and_the_refusals(study: Path) -> None:
    """Probe 125: `--runs` picking untimed runs read "latency: p50 of onnxruntime … (from bench runs)" and refused
    `--batch 4` with "use one the … bench runs here timed: 1, 8, 32", other models' timings."""
    alone = model_run(study, "finetune", "alone", 0.8)
    alone.rename(study / "finetune" / "2026-11-29")
    report = build_report(study, pattern="finetune/2026-11-29", comparison=Comparison(backend="torch", batch=4))
    assert [row.run.path.name for row in report.rows] == ["2026-11-29"]
    assert "no bench runs" in report.comparison.describe()


def test_the_settings_timed_are_listed_by_batch_size_as_a_number(study: Path) -> None:
    """"batch 1 …; batch 32 …; batch 8 …": the settings were sorted as text."""
    bench_run(study, "b7", study / "prune" / "2026-11-28" / "pruned", 1.5, batch=8)
    with pytest.raises(CnnlabError) as info:
        build_report(study, comparison=Comparison(batch=7))
    timed = str(info.value.fix).split("(", 1)[1]
    assert timed.index("batch 1,") < timed.index("batch 8,") < timed.index("batch 32,")


def test_the_report_checks_backend_names_without_loading_a_runtime() -> None:
    import subprocess
    import sys

    code = ("import sys; from cnnlab.report.rows import check_comparison; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"  # `cnnlab report` stays light: the names live in cnnlab/deploy/names.py


def test_a_setting_no_bench_recorded_reads_not_recorded_never_none_or_a_question_mark() -> None:
    assert Comparison("onnxruntime", 1, "cpu", 2).describe() == "onnxruntime, batch 1, on cpu with 2 threads"
    assert Comparison("onnxruntime", 8, "cpu", 1).describe() == "onnxruntime, batch 8, on cpu with 1 thread"
    assert Comparison("torch", 1, "cuda", None).describe() == "torch, batch 1, on cuda, threads not recorded"
    assert Comparison("openvino", 4).describe() == "openvino, batch 4, device and threads not recorded"
    # no bench run at all (an accuracy-only report): nothing was left unrecorded
    assert Comparison("onnxruntime", 1, timed=False).describe() == "onnxruntime, batch 1, no bench runs"


def test_missing_threads_model_and_dataset_names_read_naturally(tmp_path: Path) -> None:
    """The legend read "on cpu with ? thread(s)", a note "on None with None thread(s)" and a dataset title
    "None (None classes, None px)" for values the runs did not record."""
    from rich.console import Console

    from cnnlab.report import print_report
    from cnnlab.report.formats import legend

    out = tmp_path / "outputs"
    timed = model_run(out, "finetune", "timed", 0.9)
    bench_run(out, "b", timed, 2.0, threads=None)  # a bench record without its thread count
    nameless = model_run(out, "finetune", "nameless", 0.8, model=None, dataset={"num_classes": 10})
    bench_run(out, "b2", nameless, 3.0, backend="torch")
    report = build_report(out)
    assert "on cpu, threads not recorded (from bench runs)" in legend(report.comparison)
    row = next(r for r in report.rows if r.run.path == nameless)
    assert row.notes == ["no timing in the setting compared (onnxruntime, batch 1, on cpu, threads not recorded)"]
    assert row.display_model == "—" and row.label == "finetune"
    assert set(report.groups) == {"digits (10 classes, 64 px)", "dataset not recorded (10 classes)"}
    report = build_report(out)
    write_report(report)
    console = Console(record=True, width=300)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cnnlab.console.out", console)
        print_report(report)
    for text in ((out / "report.md").read_text(), console.export_text()):
        assert "None" not in text and "?" not in text and "thread(s)" not in text
    with pytest.raises(CnnlabError) as caught:  # nothing was timed with openvino: an error, not a blank report
        build_report(out, comparison=Comparison(backend="openvino", batch=4))
    assert "None" not in str(caught.value) and "onnxruntime, batch 1, on cpu, threads not recorded" in str(caught.value)
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert next(r for r in rows if r["run"].endswith("nameless"))["model"] is None


def test_a_model_timed_only_in_a_paired_session_is_not_called_unbenchmarked(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.98)
    int8 = model_run(out, "quantize", "int8", 0.97, source=fp32, onnx_bytes=1000)
    paired_run(out, "p", [fp32, int8], [[10.0, 10.1, 9.9], [5.0, 5.1, 4.9]], threads=2)
    bench_run(out, "b4", fp32, 9.0, threads=4)  # the setting compared was timed, for the FP32 model only
    report = build_report(out, comparison=Comparison(threads=4))
    row = next(r for r in report.rows if r.run.path == int8)
    assert row.notes == ["no timing in the setting compared (onnxruntime, batch 1, on cpu with 4 threads)"]
    # not "time both in one session"
    assert "another backend, batch, device, thread count or machine" in row.speedup.note


@pytest.mark.parametrize("option, asked", [
    (["--batch", "7"], "(onnxruntime, batch 7)"),
    (["--backend", "openvino"], "(openvino, batch 1)"),
    (["--device", "cuda"], "(onnxruntime, batch 1, on cuda)"),
])
def test_a_setting_no_bench_run_timed_is_one_clear_error_and_writes_nothing(study: Path, option: list[str],
                                                                            asked: str) -> None:
    """`--batch 7` with benches at 1 and 32 only exited 0 with every latency blank, said "device and threads not
    recorded" (they were, at other batches) and overwrote report.md/.csv/.json with that useless report."""
    (study / "report.md").write_text("the previous report")
    code, stdout, stderr = _report_cli(str(study), *option)
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"error: no bench run here timed the setting asked for {asked} — ")
    assert "onnxruntime, batch 1, on cpu with 2 threads" in line and "not recorded" not in line
    if option[0] == "--batch":
        assert "use one the onnxruntime bench runs here timed: 1, 32 (" in line
    if option[0] == "--device":  # probe 113: told to pick a batch, which failed the same way when followed
        assert "use a device the onnxruntime bench runs here timed on: --device cpu (" in line
        assert _report_cli(str(study), "--device", "cpu", "--no-write")[0] == 0
    assert (study / "report.md").read_text() == "the previous report"
    assert not (study / "report.csv").exists() and not (study / "report.json").exists()


def test_a_report_without_bench_runs_is_accuracy_only_and_does_not_say_not_recorded(tmp_path: Path) -> None:
    from cnnlab.report.formats import legend

    out = tmp_path / "outputs"
    model_run(out, "finetune", "a", 0.9)
    for comparison in (Comparison(), Comparison(batch=7)):
        report = build_report(out, comparison=comparison)
        assert report.rows[0].p50_ms is None and not report.comparison.timed
        assert "not recorded" not in legend(report.comparison) and "no bench runs" in legend(report.comparison)
    # out is not bench's default folder ($CNNLAB_OUTPUTS): the hint names it, for the report to read the run
    assert report.rows[0].notes == [f"not benchmarked (cnnlab bench source={out / 'finetune' / '2026-11-28' / 'a'} "
                                    f"paths.outputs={out})"]


def test_a_report_folder_that_cannot_be_written_is_one_line_naming_out_and_no_write(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    """Probe 98: a read-only outputs folder and `--out FILE` were tracebacks ("a bug in cnnlab")."""
    import errno

    import cnnlab.report as report_module

    out = tmp_path / "outputs"
    model_run(out, "finetune", "a", 0.9)
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(CnnlabError, match="cannot write the report into .*afile: it is a file") as error:
        write_report(build_report(out), tmp_path / "afile")
    assert "--out DIR" in (error.value.fix or "") and "--no-write" in (error.value.fix or "")
    assert (tmp_path / "afile").read_text() == "mine"

    def read_only(targets):  # type: ignore[no-untyped-def]
        raise OSError(errno.EROFS, "Read-only file system", str(targets[0]))

    monkeypatch.setattr(report_module, "atomic_paths", read_only)
    with pytest.raises(CnnlabError, match="cannot write the report into .*outputs: read-only file system"):
        write_report(build_report(out))


def test_a_report_that_cannot_be_written_whole_leaves_every_earlier_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 112: the disk filled while report.json was written: report.md and report.csv were the new report's
    (3 rows) beside the old report.json (1 row), and the message said "the file was not changed"."""
    import errno

    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    bench_run(out, "b1", a, 10.0)
    earlier = {p.name: p.read_bytes() for p in write_report(build_report(out))}
    assert set(earlier) == {"report.png", "report.md", "report.csv", "report.json"}
    model_run(out, "finetune", "b", 0.8)
    written = Path.write_text

    def full_at_json(self: Path, text: str, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        if self.name.startswith(".report.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return written(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_at_json)
    with pytest.raises(CnnlabError, match="disk full while writing .*report.json"):
        write_report(build_report(out))
    assert {p.name: p.read_bytes() for p in out.glob("report*")} == earlier
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_report_file_cnnlab_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """Probe 98: `cnnlab report --out DIR` replaced a report.md of the user's own in DIR without a word."""
    out = tmp_path / "outputs"
    model_run(out, "finetune", "a", 0.9)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes\n")
    with pytest.raises(CnnlabError, match="report.md is not a report cnnlab wrote: not replaced"):
        write_report(build_report(out), mine)
    assert (mine / "report.md").read_text() == "my own notes\n" and not (mine / "report.csv").exists()
    (mine / "report.md").unlink()
    for _ in range(2):  # its own, from an earlier report, are replaced
        assert {p.name for p in write_report(build_report(out), mine)} >= {"report.md", "report.csv", "report.json"}


def test_the_report_never_writes_into_a_run_folder(study: Path, tmp_path: Path) -> None:
    """`cnnlab report RUN` wrote report.* into that run: source runs are never modified."""
    run = study / "finetune" / "2026-11-28" / "teacher"
    before = sorted(p.name for p in run.iterdir())
    code, stdout, stderr = _report_cli(str(run))
    [line] = stderr.splitlines()
    assert code == 2 and stdout == "" and "is a run folder" in line and "--out DIR" in line and "--no-write" in line
    assert sorted(p.name for p in run.iterdir()) == before
    code, stdout, _ = _report_cli(str(run), "--no-write")  # the fixes the line names work
    assert code == 0 and "97.00%" in stdout and sorted(p.name for p in run.iterdir()) == before
    assert "10.000" in stdout  # its export's bench run, in the outputs folder around it (probe 63)
    code, stdout, stderr = _report_cli(str(run), "--out", str(tmp_path / "reports"))
    assert code == 0, stderr
    assert (tmp_path / "reports" / "report.md").is_file() and sorted(p.name for p in run.iterdir()) == before
    code, _, stderr = _report_cli(str(study), "--out", str(run / "sub"))  # nor into a folder inside a run
    assert code == 2 and "lies in the run folder" in stderr and not (run / "sub").exists()
    with pytest.raises(CnnlabError, match="is a run folder"):
        write_report(build_report(run))


def test_a_runs_glob_that_matches_nothing_says_so_and_names_what_exists(study: Path) -> None:
    """It said "train something first" although runs existed and only the glob matched none."""
    code, stdout, stderr = _report_cli(str(study), "--runs", "nomatch/*", "--no-write")
    [line] = stderr.splitlines()
    assert code == 2 and stdout == "" and "Traceback" not in stderr
    assert line.startswith(f"error: --runs 'nomatch/*' matched no run folder under {study} — ")
    assert "train something" not in line and "finetune/2026-11-28/" in line and "cnnlab list runs --outputs" in line
    with pytest.raises(CnnlabError, match="only completed bench runs"):  # matched, but no model among them
        build_report(study, pattern="bench/*")


def test_a_folder_of_damaged_runs_says_so_without_a_question_mark(tmp_path: Path) -> None:
    """Probe 144: "no completed model runs under … (only damaged ? runs)" — a damaged record names no command."""
    run = tmp_path / "outputs" / "x" / "2026-12-05" / "20-00-00"
    run.mkdir(parents=True)
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CnnlabError) as caught:
        build_report(tmp_path / "outputs")
    assert "(only damaged runs)" in caught.value.message and "?" not in caught.value.message


def test_a_sweep_folder_whose_jobs_all_ran_before_is_not_told_to_train_something(tmp_path: Path) -> None:
    """Probe 141: a rerun sweep whose every job was skipped (completed before, elsewhere) holds only multirun.yaml;
    reported, it said "no runs at all — train something first" though its runs exist."""
    sweep_dir = tmp_path / "outputs" / "pretrain" / "2026-12-05" / "18-42-56-multirun"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text("hydra: {}\n")
    with pytest.raises(CnnlabError) as caught:
        build_report(sweep_dir)
    assert "a sweep whose jobs ran elsewhere" in caught.value.message and "train something" not in caught.value.fix
    assert "the sweep folders the skip lines named" in caught.value.fix


def test_a_model_file_deleted_since_the_run_is_said_beside_its_recorded_size(study: Path) -> None:
    """Probe 56: `rm RUN/model.pt` then `cnnlab report` showed the row's size with no word that the file was gone."""
    (study / "distill" / "2026-11-28" / "student" / "model.pt").unlink()
    (study / "finetune" / "2026-11-28" / "teacher" / "model.pt").unlink()  # its export's ONNX is still there
    report = build_report(study)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["student"].file_note == "model.pt deleted since it ran: the size shown is the one recorded"
    assert rows["teacher"].file_note is None and rows["pruned"].file_note is None
    assert rows["student"].file_recorded and not rows["teacher"].file_recorded
    written = write_report(report)
    markdown = next(p for p in written if p.suffix == ".md").read_text()
    assert "(deleted)" in markdown and "student` (model file): model.pt deleted since it ran" in markdown
    data = json.loads(next(p for p in written if p.suffix == ".json").read_text())
    assert [r["file_note"] is not None for r in data["rows"] if r["run"].endswith("student")] == [True]



def test_a_deleted_onnx_beside_its_checkpoint_shows_the_checkpoints_size_and_says_which_file_went(study: Path) -> None:
    """Probe 57: with a prune run's model.onnx deleted, the size column read "0.11 MB pt (deleted)" and the note
    "model.onnx deleted …: the size shown is the one recorded" — the size was model.pt's, on disk."""
    pruned = study / "prune" / "2026-11-28" / "pruned"
    (pruned / "model.onnx").unlink()
    report = build_report(study)
    row = next(r for r in report.rows if r.run.path.name == "pruned")
    assert (row.file_bytes, row.file_kind) == ((pruned / "model.pt").stat().st_size, "pt") and not row.file_recorded
    assert row.file_note == "model.onnx deleted since it ran: the size shown is its model.pt's"
    markdown = next(p for p in write_report(report) if p.suffix == ".md").read_text()
    assert "(deleted)" not in markdown and "pruned` (model file): model.onnx deleted" in markdown


def test_figures_from_several_bench_sessions_are_said_with_the_command_that_times_them_together(tmp_path: Path) -> None:
    """Probe 58: the same LeNet-5 read 0.059, 0.074 and 0.076 ms in three sessions of one workspace, and the Pareto
    front starred rows by whichever session timed them, without a word."""
    from cnnlab.report.formats import sessions_note

    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    b = model_run(out, "prune", "b", 0.88, source=a, params=500_000)
    bench_run(out, "b1", a, 10.0)
    report = build_report(out)
    assert sessions_note(report.seed_groups, report.comparison) is None  # one session (b has none)
    bench_run(out, "b2", b, 5.0)
    report = build_report(out)
    note = sessions_note(report.seed_groups, report.comparison)
    assert note is not None and note.startswith("p50 comes from 2 bench sessions") and \
        note.endswith(f"cnnlab bench 'source=[{a},{b}]' {ONE_THREAD} paths.outputs={out}")
    markdown = next(p for p in write_report(report) if p.suffix == ".md").read_text()
    assert "p50 comes from 2 bench sessions" in markdown


def test_the_sessions_note_counts_a_tables_sessions_and_under_torch_names_what_can_be_timed(tmp_path: Path) -> None:
    """Probe 154: two models of two datasets, each benched alone, drew "p50 comes from 2 bench sessions … the Pareto
    front compares these figures" (it compares rows of one dataset only); under --backend torch its command,
    followed, skipped torch ("a paired session times ONNX files only") and the note came back word for word."""
    from cnnlab.report.formats import sessions_note

    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    fashion = {"name": "fashion_mnist", "num_classes": 10, "image_size": 28}
    other = model_run(out, "finetune", "other", 0.7, dataset=fashion)
    for name, run in (("b1", a), ("b2", other)):
        bench_run(out, name, run, 10.0)
        bench_run(out, f"t{name}", run, 20.0, backend="torch")
    report = build_report(out)
    assert len(report.seed_groups) == 2 and sessions_note(report.seed_groups, report.comparison) is None
    b = model_run(out, "prune", "b", 0.88, source=a, params=500_000)
    bench_run(out, "b3", b, 5.0, backend="torch")
    torch_report = build_report(out, comparison=Comparison(backend="torch"))
    note = sessions_note(torch_report.seed_groups, torch_report.comparison)
    assert note is not None and note.startswith("p50 comes from 2 bench sessions") and "times ONNX files only" in \
        note and "read the report with --backend onnxruntime" in note, note
    assert note.endswith(f"cnnlab bench 'source=[{a},{b}]' {ONE_THREAD} paths.outputs={out}") and \
        str(other) not in note, note
    # probe 156: each table's rows from 2 sessions, 3 in all, read "3 bench sessions"
    c = model_run(out, "prune", "c", 0.6, source=other, params=500_000, dataset=fashion)
    bench_run(out, "b4", c, 5.0, backend="torch")
    both = build_report(out, comparison=Comparison(backend="torch"))
    both = sessions_note(both.seed_groups, both.comparison)
    assert both is not None and both.startswith("p50 comes from 2 bench sessions within one dataset table"), both


def test_the_sessions_note_names_a_session_a_machine_can_time_however_many_rows(tmp_path: Path) -> None:
    """Probe 111: a report of 320 models suggested timing all of them in one paired session, an 18,177-character
    command; past a dozen rows it names the rows on the Pareto front."""
    from cnnlab.report.formats import SESSION_ROWS, sessions_note

    out = tmp_path / "outputs"
    runs = [model_run(out, "finetune", f"m{i:02d}", 0.5 + i / 100) for i in range(15)]
    for i, run in enumerate(runs):
        bench_run(out, f"b{i:02d}", run, 20.0 - i)   # each its own session; the last, fastest and most accurate
    report = build_report(out)
    front = [row.run.path for row in report.rows if row.pareto]
    assert len(report.rows) > SESSION_ROWS and 0 < len(front) < len(report.rows)
    note = sessions_note(report.seed_groups, report.comparison)
    assert note is not None and "to time the 1 row on the Pareto front and the 11 next most accurate" in note, note
    named = note.split("cnnlab bench 'source=[", 1)[1].split("]'", 1)[0].split(",")
    assert named == [str(runs[i].resolve()) for i in range(14, 2, -1)] and front == [runs[14].resolve()], note
    paired_run(out, "p", [Path(n) for n in named], [[1.0 + i] * 3 for i in range(len(named))])  # the fix, followed
    followed = build_report(out)
    followed = sessions_note(followed.seed_groups, followed.comparison)
    assert followed is not None and "were timed in one; the other 3 rows' figures come from other sessions" in \
        followed and "cnnlab bench" not in followed, followed


def test_a_p50_of_a_few_timed_runs_is_said_with_the_command_that_times_it_again(tmp_path: Path) -> None:
    """Probe 134: a newer bench with bench.min_iters=1 gave the report a one-run 12 ms "p50" for a model a 591-run
    bench put at 0.83 ms, and nothing said it was one sample: run.json's latency records did not keep the count."""
    from cnnlab.report.formats import few_runs_note

    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    b = model_run(out, "prune", "b", 0.88, source=a, params=500_000)
    bench_run(out, "b1", a, 1.0, iterations=591)
    report = build_report(out)
    assert few_runs_note(report.rows, report.comparison) is None
    bench_run(out, "b2", b, 12.0, iterations=1)
    report = build_report(out)
    note = few_runs_note(report.rows, report.comparison)
    assert note is not None and note.startswith("p50 of fewer than 10 timed runs for 1 row (1): ") and \
        note.endswith(f"cnnlab bench source={b} {ONE_THREAD} paths.outputs={out}"), note
    markdown = next(p for p in write_report(report) if p.suffix == ".md").read_text()
    assert "p50 of fewer than 10 timed runs for 1 row (1)" in markdown
    assert f"`cnnlab bench source={b} {ONE_THREAD} paths.outputs={out}`." in markdown
    # probe 137: a row timed in a paired session is read from it until a newer paired session times it — a bench of
    # the row alone left the note standing, so the command times that session's rows again, side by side
    out = tmp_path / "paired"
    a = model_run(out, "finetune", "a", 0.9)
    c = model_run(out, "prune", "c", 0.87, source=a, params=400_000)
    d = model_run(out, "prune", "d", 0.86, source=a, params=300_000)
    paired_run(out, "p1", [a, c], [[1.0, 1.0], [2.0, 2.0]], iterations=2, started="2026-11-28T12:00:00")
    paired_run(out, "p2", [a, d], [[1.0, 1.0], [0.5, 0.5]], iterations=600, started="2026-11-28T13:00:00")
    bench_run(out, "b3", c, 2.0, iterations=600)  # alone: not read while the paired session stands
    report = build_report(out)
    note = few_runs_note(report.rows, report.comparison)
    # beside its source
    assert note is not None and note.endswith(f"cnnlab bench 'source=[{c},{a}]' {ONE_THREAD} paths.outputs={out}"), \
        note
    paired_run(out, "p3", [c, a], [[2.0] * 2, [1.0] * 2], iterations=600, started="2026-11-28T14:00:00")  # followed
    report = build_report(out)
    assert few_runs_note(report.rows, report.comparison) is None


def test_a_model_exported_twice_shows_its_newest_exports_size(tmp_path: Path) -> None:
    """The size column is the newest export's ONNX (as before this stop's ModelFile change, which took the oldest)."""
    out = tmp_path / "outputs"
    teacher = model_run(out, "finetune", "teacher", 0.97)
    for name, size in (("e1", 1_000), ("e2", 2_000)):
        export = out / "export" / "2026-11-28" / name
        rec = RunRecord.start(export, "export")
        rec.update(source={"run": str(teacher)})
        (export / "model.onnx").write_bytes(b"\0" * size)
        rec.add_artifact("onnx", export / "model.onnx")
        rec.finish("completed", metrics={"val_acc": 0.97})
    [row] = build_report(out).rows
    assert (row.file_bytes, row.file_kind) == (2_000, "onnx")


def test_a_pipeline_stages_replaced_export_gives_no_size(tmp_path: Path) -> None:
    """Probe 151: a pipeline re-exported a stage whose model.onnx was damaged (1,000 bytes), and the report of the
    workspace showed the damaged file's size: the replaced export run came back as "attachable" (found through the
    pipeline run's own folder) after the newer one, and the last export read was taken as the newest."""
    out = tmp_path / "outputs"
    workspace = out / "pipeline" / "srch"
    RunRecord.start(workspace, "pipeline").finish("completed")
    model = model_run(workspace / "runs", "search", "s", 0.30)
    for name, size, started in (("old", 1_000, "2026-11-28T10:00:00"), ("new", 1_393_907, "2026-11-28T11:00:00")):
        export = workspace / "runs" / "export" / "2026-11-28" / name
        rec = RunRecord.start(export, "export")
        rec.update(source={"run": str(model)}, started=started, pipeline={"stage": "search.export", "fingerprint": "f"})
        (export / "model.onnx").write_bytes(b"\0" * size)
        rec.add_artifact("onnx", export / "model.onnx")
        rec.finish("completed", metrics={"val_acc": 0.30})
    report = build_report(workspace)
    [row] = report.rows
    assert (row.file_bytes, row.file_kind) == (1_393_907, "onnx")
    assert any("replaced by" in why for _, why in report.left_out)


def test_a_pipelines_replaced_export_and_bench_are_neither_pooled_nor_timed(tmp_path: Path) -> None:
    """Probe 57: a pipeline re-ran the export whose model.onnx was deleted, and the bench after it; the report pooled
    the replaced export and bench runs with the new ones as "2 runs, 1 seed" groups, their latencies averaged over two
    sessions. (Once an end-to-end scenario of tests/pipelines/test_pipeline.py: two stage processes.)"""
    out = tmp_path / "outputs"
    workspace = out / "pipeline" / "tiny"
    runs = workspace / "runs"
    RunRecord.start(workspace, "pipeline").finish("completed")

    def stage(run_dir: Path, name: str, started: str) -> Path:  # the stage a finished run stood for, and when
        data = json.loads((run_dir / "run.json").read_text())
        (run_dir / "run.json").write_text(json.dumps({**data, "pipeline": {"stage": name, "fingerprint": name},
                                                      "started": started}))
        return run_dir

    teacher = stage(model_run(runs, "pretrain", "t", 0.60, seed=0), "teacher", "2026-11-28T09:00:00")
    pruned = stage(model_run(runs, "prune", "p", 0.55, seed=0, source=teacher), "pruned", "2026-11-28T09:30:00")
    exports = []
    for name, started in (("old", "2026-11-28T10:00:00"), ("new", "2026-11-28T11:00:00")):
        export = runs / "export" / "2026-11-28" / name
        record = RunRecord.start(export, "export")
        record.update(source={"run": str(teacher)}, started=started,
                      pipeline={"stage": "teacher.export", "fingerprint": "f"})
        (export / "model.onnx").write_bytes(name.encode().ljust(1_000, b"\0"))
        record.add_artifact("onnx", export / "model.onnx")
        record.finish("completed", metrics={"val_acc": 0.60})
        exports.append(export)
    benches = [stage(paired_run(runs, name, [export, pruned], [[p50, p50], [p50 / 2, p50 / 2]]), "bench", started)
               for name, export, p50, started in (("b-old", exports[0], 9.0, "2026-11-28T10:30:00"),
                                                  ("b-new", exports[1], 4.0, "2026-11-28T11:30:00"))]
    for report in (build_report(workspace), build_report(out)):  # the workspace, and the outputs around it
        assert all(len(group.rows) == 1 for group in report.all_seed_groups), report.all_seed_groups
        replaced = {path for path, why in report.left_out if "replaced by" in why}
        assert {exports[0].resolve(), benches[0].resolve()} <= {Path(p).resolve() for p in replaced}
        assert sorted(row.p50_ms for row in report.rows) == [2.0, 4.0]  # the newer session's figures alone


def test_a_pipeline_stage_run_names_its_stage_and_one_of_an_edited_plan_is_marked(tmp_path: Path) -> None:
    """An edited recipe (prune.ratio 0.5 → 0.3) left the 0.5 run in the workspace beside the 0.3 one: two `prune`
    rows that read alike, one timed in another bench session. Rows name their stage, and one whose settings the
    newest pipeline run's plan has no more is marked; a sweep's jobs are all current."""
    out = tmp_path / "outputs"
    workspace = out / "pipeline" / "tiny"
    teacher = model_run(workspace / "runs", "pretrain", "t", 0.60)
    runs = {"t": teacher, "old": model_run(workspace / "runs", "prune", "old", 0.50, source=teacher),
            "new": model_run(workspace / "runs", "prune", "new", 0.55, source=teacher)}
    runs["seed1"] = model_run(workspace / "runs", "prune", "seed1", 0.56, source=teacher)
    runs["before"] = model_run(workspace / "runs", "prune", "before", 0.40, source=teacher)
    # a run's recipe is its fingerprint without the seed: seed1 is another seed of the current plan (probe 178:
    # marked "edited since"); `before` ran before recipes were recorded: not known to be earlier
    tags = {"t": ("teacher", "a", "a"), "old": ("pruned", "b", "b"), "new": ("pruned", "c", "c"),
            "seed1": ("pruned", "c1", "c"), "before": ("pruned", "z", None)}
    for name, (stage, fingerprint, recipe) in tags.items():
        record = json.loads((runs[name] / "run.json").read_text())
        tag = {"stage": stage, "fingerprint": fingerprint, **({"recipe": recipe} if recipe else {})}
        (runs[name] / "run.json").write_text(json.dumps({**record, "pipeline": tag}))
    plan = {"teacher": "a", "pruned": "c"}
    invocation = RunRecord.start(workspace / "2026-11-28" / "12-00-00", "pipeline")
    invocation.update(pipeline={"name": "tiny", "plan": plan}, started="2026-11-28T12:00:00")
    invocation.finish("completed")
    report = build_report(workspace)
    marked = {row.run.path.name: (row.stage, row.earlier_plan) for row in report.rows}
    assert marked == {"t": ("teacher", False), "old": ("pruned", True), "new": ("pruned", False),
                      "seed1": ("pruned", False), "before": ("pruned", False)}
    write_report(report)
    text = (workspace / "report.md").read_text()
    assert "(stage pruned, earlier plan)" in text and "1 row marked \"earlier plan\"" in text
    rows = {row["run"]: row for row in json.loads((workspace / "report.json").read_text())["rows"]}
    assert rows["runs/prune/2026-11-28/old"]["earlier_plan"] and rows["runs/prune/2026-11-28/old"]["stage"] == "pruned"
    assert "(edited since they ran)" in " ".join(text.split())
    # probe 198: a stage removed with `~pipeline.plan.pruned` was said to be "edited since they ran"
    removed = RunRecord.start(workspace / "2026-11-28" / "12-30-00", "pipeline")
    removed.update(pipeline={"name": "tiny", "plan": {"teacher": "a"}}, started="2026-11-28T12:30:00")
    removed.finish("completed")
    write_report(build_report(workspace))
    said = " ".join((workspace / "report.md").read_text().split())
    assert "3 rows marked \"earlier plan\"" in said and "(pruned removed from the plan since)" in said, said
    assert "edited since" not in said
    # the newest pipeline run a job of a sweep: every job's plan is one comparison, none marked
    job = RunRecord.start(workspace / "2026-11-28" / "13-00-00-multirun" / "0", "pipeline")
    job.update(pipeline={"name": "tiny", "plan": {"teacher": "a", "pruned": "b"}}, started="2026-11-28T13:00:00")
    job.finish("completed")
    assert not any(row.earlier_plan for row in build_report(workspace).rows)


def test_a_seed_group_of_a_stage_keeps_its_stage_and_its_plan_mark(tmp_path: Path) -> None:
    """Probe 178: two seeds of an edited stage were one group line, and it (and its runs) lost "(stage …)" and the
    "earlier plan" mark, while the note counted them."""
    workspace = tmp_path / "outputs" / "pipeline" / "tiny"
    teacher = model_run(workspace / "runs", "pretrain", "t", 0.60)
    for seed in (0, 1):
        run = model_run(workspace / "runs", "prune", f"s{seed}", 0.50 + seed / 100, source=teacher, seed=seed)
        record = json.loads((run / "run.json").read_text())
        tag = {"stage": "pruned", "fingerprint": f"f{seed}", "recipe": "old"}
        (run / "run.json").write_text(json.dumps({**record, "pipeline": tag}))
    invocation = RunRecord.start(workspace / "2026-11-28" / "12-00-00", "pipeline")
    invocation.update(pipeline={"name": "tiny", "plan": {"pruned": "new"}})
    invocation.finish("completed")
    report = build_report(workspace)
    [group] = [g for g in report.all_seed_groups if g.n == 2]
    write_report(report)
    text = (workspace / "report.md").read_text()
    assert "{s0,s1} (stage pruned, earlier plan)" in text, text
    assert text.count("(stage pruned, earlier plan)") == 4  # the group's line, each of its runs, its difference


def test_an_accuracy_scored_on_openvino_says_so_and_small_parameter_counts_are_readable(tmp_path: Path) -> None:
    """Probe 73: a `quantize quantize.runtime=openvino` run's val top-1 (66.67 %) is OpenVINO's — the same INT8 file
    read 63.33 % on onnxruntime, the runtime the report's latencies use — and its row looked like any other
    `mobilenet_v2 (int8)` row; the same for an `evaluate evaluate.runtime=openvino` test score. A pruned LeNet-5's
    750 parameters read "0.00 M"."""
    def add(run: Path, **sections: dict) -> None:
        record = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**record, **sections}))

    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.7, params=750)
    plain = model_run(out, "quantize", "int8_ort", 0.6333, source=fp32, onnx_bytes=1000)
    openvino = model_run(out, "quantize", "int8_ov", 0.6667, source=fp32, onnx_bytes=1000)
    for run, runtime in ((plain, "onnxruntime"), (openvino, "openvino")):
        add(run, quantize={"timing": {"runtime": runtime}})
    add(evaluate_run(out, "ev", openvino, 0.61), evaluate={"split": "test", "runtime": "openvino"})
    report = build_report(out)
    rows = {row.run.path: row for row in report.rows}
    assert rows[plain].display_model == "resnet18 (int8)"
    assert rows[openvino].display_model == "resnet18 (int8, openvino)"
    write_report(report)
    md = (out / "report.md").read_text()
    assert "| resnet18 (int8, openvino) |" in md and "61.00% (openvino)" in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| finetune/"))
    assert "| 750 | 1.5 k |" in line and "0.00 M" not in line
    rows = {row["run"]: row for row in json.loads((out / "report.json").read_text())["rows"]}
    scored = rows[str(openvino.relative_to(out))]
    assert scored["accuracy_runtime"] == "openvino" and scored["test_accuracy_runtime"] == "openvino"
    assert rows[str(plain.relative_to(out))]["accuracy_runtime"] is None
    assert "openvino" in (out / "report.csv").read_text()


def test_the_differences_table_names_the_runtime_that_scored_each_split(tmp_path: Path) -> None:
    """Probe 78: an INT8 file scored on OpenVINO by `quantize quantize.runtime=openvino` (val) and on onnxruntime by
    `cnnlab evaluate` (test): the differences table's test row said `resnet18 (int8, openvino)` — the quantize run's
    runtime, not the one that made the test score it shows."""
    def add(run: Path, **sections: dict) -> None:
        record = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**record, **sections}))

    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.70)
    int8 = model_run(out, "quantize", "int8_ov", 0.68, source=fp32, onnx_bytes=1000)
    add(int8, quantize={"timing": {"runtime": "openvino"}})
    evaluate_run(out, "ev_fp32", fp32, 0.66)
    evaluate_run(out, "ev_int8", int8, 0.65)  # evaluate.runtime onnxruntime (the default)
    rows = {line[3]: line for line in differences(build_report(out).all_seed_groups, out)}
    assert rows["val"][1] == "resnet18 (int8, openvino)"
    assert rows["test"][1] == "resnet18 (int8)"
    write_report(build_report(out))  # the main table: the row's test cell says its runtime (probe 84)
    line = next(ln for ln in (out / "report.md").read_text().splitlines() if "(int8, openvino)" in ln)
    assert "65.00% (onnxruntime)" in line


def test_a_self_supervised_run_is_left_out_with_its_knn_accuracy(tmp_path: Path) -> None:
    """Probe 83: SimCLR runs were left out as "no validation accuracy recorded", which says neither that they have
    no classifier to score nor what their kNN monitor read."""
    out = tmp_path / "outputs"
    run = out / "pretrain" / "2026-11-28" / "ssl"
    record = RunRecord.start(run, "pretrain")
    record.update(pretrain={"method": "simclr"}, model={"name": "resnet18", "params": 1})
    record.finish("completed", metrics={"knn_acc": 0.6412})
    model_run(out, "finetune", "probe", 0.7, source=run)
    [(path, why)] = build_report(out).left_out
    assert path == run and why.startswith("self-supervised (simclr): kNN accuracy 64.12%")
    assert "cnnlab finetune model.weights=RUN" in why


def test_a_quantize_run_that_kept_fp32_does_not_take_its_sources_pareto_star(tmp_path: Path) -> None:
    """Probe 83: quantize kept FP32 (no INT8 file was faster), so its model.onnx is the fine-tune's network; timed
    0.141 ms against the fine-tune's 0.143 ms, the star went to the copy by timing noise the row itself called noise."""
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.7194, onnx_bytes=1000)
    kept = model_run(out, "quantize", "kept", 0.7194, source=fp32, onnx_bytes=1000, precision="fp32")
    bench_run(out, "b1", fp32, 0.143)
    bench_run(out, "b2", kept, 0.141)
    report = build_report(out)
    rows = {row.run.path: row for row in report.rows}
    assert rows[fp32].pareto and not rows[kept].pareto
    # probe 124: faster and as accurate, it read as a dominated source starred and a front row left blank: its cell
    # and the legend say why
    from cnnlab.report.formats import legend, pareto_cell

    assert pareto_cell(rows[kept]) == "= source" and pareto_cell(rows[fp32]) == "★"
    assert "= source: a quantize run that kept FP32" in legend(report.comparison)


@pytest.mark.parametrize("source_absent", ["untimed", "filtered out", "damaged"])
def test_a_quantize_run_that_kept_fp32_is_ranked_where_its_source_is_not(tmp_path: Path, source_absent: str) -> None:
    """Probe 180: with its source not ranked (not timed, outside `--runs`, or left out as damaged), the FP32 copy
    stayed off the front too, and an INT8 file of the same network, slower and less accurate, took the star."""
    out = tmp_path / "outputs"
    fp32 = model_run(out, "finetune", "fp32", 0.3611, onnx_bytes=1000)
    kept = model_run(out, "quantize", "kept", 0.3611, source=fp32, onnx_bytes=1000, precision="fp32")
    int8 = model_run(out, "quantize", "int8", 0.3583, source=fp32, onnx_bytes=300, precision="int8")
    bench_run(out, "b1", kept, 0.130)
    bench_run(out, "b2", int8, 0.196)
    if source_absent != "untimed":
        bench_run(out, "b0", fp32, 0.131)
    if source_absent == "damaged":
        (fp32 / "run.json").write_text("{ damaged")
    report = build_report(out, pattern="quantize/*" if source_absent == "filtered out" else None)
    rows = {row.run.path: row for row in report.rows}
    from cnnlab.report.formats import pareto_cell

    assert rows[kept].pareto and not rows[int8].pareto
    assert pareto_cell(rows[kept]) == "★" and pareto_cell(rows[int8]) == ""
    [group] = [g for g in report.all_seed_groups if g.first.run.path == kept]
    assert group.pareto and not group.source_ranked


def test_a_prune_run_of_ratio_zero_says_its_change_is_the_recovery_trainings(tmp_path: Path) -> None:
    """Probe 84: `prune.ratio=0` with recovery epochs read "pruning top-1 change +5.68 points": nothing was removed."""
    out = tmp_path / "outputs"
    dense = model_run(out, "finetune", "dense", 0.80)
    pruned = model_run(out, "prune", "zero", 0.8568, source=dense)
    record = json.loads((pruned / "run.json").read_text())
    recovered = {**record["metrics"], "acc_after_recovery": 0.8568}
    (pruned / "run.json").write_text(json.dumps({**record, "prune": {"ratio": 0}, "metrics": recovered}))
    [line] = differences(build_report(out).all_seed_groups, out)
    assert "prune.ratio=0: nothing removed, the change is the recovery training's" in line[-1]
    # probe 196: `trainer.epochs=0` trains nothing: the recovery was not what changed it
    untrained = {**record["metrics"], "acc_after_recovery": None}
    (pruned / "run.json").write_text(json.dumps({**record, "prune": {"ratio": 0}, "metrics": untrained}))
    [line] = differences(build_report(out).all_seed_groups, out)
    assert "prune.ratio=0: nothing removed and nothing trained: the same network" in line[-1]


def test_the_bench_hints_name_paths_as_the_shell_and_hydra_read_them(tmp_path: Path) -> None:
    """Probe 98: in an outputs folder `with space/` (or `a,b/`) the report's `cnnlab bench source=...` hints, pasted,
    were "malformed override" (the shell split the path) or took `/tmp/a` for the first of two sources."""
    import shlex

    from cnnlab.hydra_args import override_parser

    out = tmp_path / "with space, and comma" / "outputs"
    run = model_run(out, "finetune", "a", 0.9)
    [row] = build_report(out).rows
    hint = row.notes[0].split("cnnlab bench ", 1)[1].removesuffix(")")
    [word, folder] = shlex.split(hint)  # one shell word each: the source, and the folder to write the run into
    assert override_parser().parse_override(word).value() == str(run)
    assert override_parser().parse_override(folder).key_or_group == "paths.outputs"
    assert override_parser().parse_override(folder).value() == str(out)


def test_a_report_replaces_nothing_when_a_file_cannot_go_in_and_drops_its_own_earlier_plots(tmp_path: Path) -> None:
    """Probe 114: a folder named report.png in --out: the renames before it had replaced report.md, .csv and .json,
    and the error named the folder; an earlier report's plots (two dataset tables) stayed beside a new report that
    showed none of them."""
    out = tmp_path / "outputs"
    a = model_run(out, "finetune", "a", 0.9)
    bench_run(out, "b1", a, 10.0)
    written = write_report(build_report(out), tmp_path / "rep")
    earlier = {p.name: p.read_bytes() for p in written}
    (tmp_path / "rep" / "report-old-table.png").write_bytes(b"an earlier report's plot")
    md = tmp_path / "rep" / "report.md"
    md.write_text(md.read_text() + "\n![accuracy vs latency](report-old-table.png)\n")
    earlier["report.md"] = md.read_bytes()
    (tmp_path / "rep" / "report.png").unlink()
    (tmp_path / "rep" / "report.png").mkdir()
    with pytest.raises(CnnlabError, match=r"cannot write the report into .*rep: .*\(.*rep/report.png\)"):
        write_report(build_report(out), tmp_path / "rep")
    assert all((tmp_path / "rep" / name).read_bytes() == data for name, data in earlier.items() if name != "report.png")
    (tmp_path / "rep" / "report.png").rmdir()
    write_report(build_report(out), tmp_path / "rep")
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["report.csv", "report.json", "report.md",
                                                                    "report.png"]


def test_a_replaced_onnx_file_or_a_deleted_export_is_said_beside_the_size(tmp_path: Path) -> None:
    """Probe 162: an INT8 model.onnx replaced by an FP32 one read "11.28 MB onnx", no note, beside the INT8 file's
    top-1, latency, speed-up and ★; with the export's model.onnx deleted, "11.27 MB pt" beside the deleted file's
    latency, no note."""
    from cnnlab.report import build_report

    out = tmp_path / "outputs"
    quantized = model_run(out, "quantize", "q", 0.87, onnx_bytes=2927)
    kept = model_run(out, "quantize", "q2", 0.86, onnx_bytes=3000)
    trained = model_run(out, "finetune", "ft", 0.91)
    export = model_run(out, "export", "ex", 0.91, source=trained, onnx_bytes=11283)
    (quantized / "model.onnx").write_bytes(b"\1" * 11284)  # another model's file, put in its place
    (export / "model.onnx").unlink()
    rows = {row.run.path: row for row in build_report(out).rows}
    assert rows[quantized].file_recorded == "changed" and rows[quantized].file_bytes != 11284
    assert rows[quantized].file_note == ("model.onnx changed since it ran (11.3 kB now): the row's figures are those "
                                         "of the file it wrote")
    assert rows[kept].file_note is None and rows[kept].file_bytes == 3000  # untouched: as before
    assert rows[trained].file_note == "its export's model.onnx deleted since it ran: the size shown is its model.pt's"
    # probe 169: three exports of it deleted read "its export's model.onnx, its export's model.onnx, …"
    for name in ("ex2", "ex3"):
        (model_run(out, "export", name, 0.91, source=trained, onnx_bytes=11283) / "model.onnx").unlink()
    rows = {row.run.path: row for row in build_report(out).rows}
    assert rows[trained].file_note == "the model.onnx of its 3 exports deleted since it ran: the size shown is its " \
                                      "model.pt's"


@pytest.mark.parametrize("paired", [False, True])
def test_the_size_shown_is_that_of_the_export_whose_file_was_timed(tmp_path: Path, paired: bool) -> None:
    """Probe 170: a model exported twice (opset 18, then 28) read the newest export's size beside the latency of the
    older one, which a bench had timed."""
    from cnnlab.report import build_report

    out = tmp_path / "outputs"
    trained = model_run(out, "finetune", "ft", 0.91)
    timed = model_run(out, "export", "ex18", 0.91, source=trained, onnx_bytes=4000)
    if paired:
        paired_run(out, "b", [timed], [[1.0, 1.1, 1.2]])
    else:
        bench_run(out, "b", timed, 1.0)
    model_run(out, "export", "ex28", 0.91, source=trained, onnx_bytes=3900)
    row = next(row for row in build_report(out).rows if row.run.path == trained)
    assert row.latency is not None and row.file_bytes == 4000 and row.file_kind == "onnx", row

    # probe 219: a bench of the model.pt itself times an ONNX file it exports for the timing, then deletes — that
    # file's size, not the 3,900-byte export's it never timed
    bench = paired_run(out, "c", [trained], [[0.9] * 3]) if paired else bench_run(out, "c", trained, 0.9)
    record = json.loads((bench / "run.json").read_text())
    exported = {"onnx_origin": "exported for this benchmark", "onnx_bytes": 4321}
    if paired:
        record["paired"]["subjects"][0].update(exported)
    else:
        record["model"] = exported
    (bench / "run.json").write_text(json.dumps({**record, "started": "2099-01-01T10:00:00+00:00"}))  # the newest
    row = next(row for row in build_report(out).rows if row.run.path == trained)
    assert row.latency is not None and row.latency.p50_ms == 0.9, row.latency
    assert (row.file_bytes, row.file_kind) == (4321, "onnx"), row


def test_a_run_folder_whose_record_was_deleted_is_named_among_the_left_out(tmp_path: Path) -> None:
    """Probe 180: a sweep job's folder holding model.pt without its run.json vanished from the report without a
    word, where an empty run.json was named."""
    out = tmp_path / "outputs"
    kept = model_run(out, "finetune", "kept", 0.7)
    gone = model_run(out, "finetune", "gone", 0.8)
    (gone / "model.pt").write_bytes(b"weights")
    (gone / "run.json").unlink()
    report = build_report(out)
    assert [row.run.path for row in report.rows] == [kept]
    [(path, why)] = report.left_out
    assert path == gone and why.startswith("holds a model but no run.json (deleted?)")
    assert build_report(out, pattern="*/*/kept").left_out == []  # outside --runs: not named


def test_a_sweeps_rows_say_the_values_their_jobs_ran_with(tmp_path: Path) -> None:
    """Probe 180: `cnnlab report SWEEP_FOLDER` showed rows `0` and `1`, nothing saying which was optim.lr=0.01."""
    from cnnlab.report.formats import cells, row_fields

    out = tmp_path / "outputs"
    sweep = out / "finetune" / "2026-11-28" / "10-00-00-multirun"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for job, lr in enumerate(("0.01", "0.05")):
        model_run(out, "finetune", f"10-00-00-multirun/{job}", 0.5 + job / 10,
                  overrides=["model=lenet5", f"optim.lr={lr}", "trainer.epochs=2"])
    alone = model_run(out, "finetune", "alone", 0.3, overrides=["model=lenet5", "optim.lr=0.01"])
    report = build_report(out)
    runs = {row_fields(row, out)["run"]: cells(row, out, ["run"])[0] for row in report.rows}
    job = "finetune/2026-11-28/10-00-00-multirun"
    assert runs == {f"{job}/0": f"{job}/0 (optim.lr=0.01)", f"{job}/1": f"{job}/1 (optim.lr=0.05)",
                    str(alone.relative_to(out)): str(alone.relative_to(out))}
    assert [row_fields(row, out)["swept"] for row in report.rows if row.run.path == alone] == [[]]


def test_the_seed_groups_of_a_sweep_over_a_setting_and_seeds_say_the_value_they_share(tmp_path: Path) -> None:
    """Probe 229: an optim.lr × seed sweep reported two groups, `…/{0,1}` and `…/{2,3}`, alike: which was lr=0.1 was
    only in report.csv's swept column."""
    from cnnlab.report.formats import group_cells

    out = tmp_path / "outputs"
    sweep = out / "finetune" / "2026-11-28" / "10-00-00-multirun"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for job, (lr, seed) in enumerate((("0.05", 0), ("0.05", 1), ("0.1", 0), ("0.1", 1))):
        model_run(out, "finetune", f"10-00-00-multirun/{job}", 0.5 + job / 10, seed=seed,
                  settings={"optim": {"lr": float(lr)}}, overrides=["model=lenet5", f"optim.lr={lr}", f"seed={seed}"])
    groups = build_report(out).all_seed_groups
    runs = sorted(group_cells(group, out, ["run"])[0] for group in groups)
    job = "finetune/2026-11-28/10-00-00-multirun"
    assert runs == [f"{job}/{{0,1}} (optim.lr=0.05)", f"{job}/{{2,3}} (optim.lr=0.1)"], runs


def test_a_plan_restored_after_an_edit_reads_its_rows_from_its_own_bench_session(tmp_path: Path) -> None:
    """Probe 213: the plan run again after an edit (a quantize stage added, then removed) reused its own bench stage,
    but the report read every row's p50 from the edited plan's newer session (prune 0.143 → 0.202 ms), where the
    pipeline's log named the plan's own. The current plan's session comes first; a row it did not time (the removed
    stage's) keeps the session of its own plan."""
    out = tmp_path / "outputs"
    workspace = out / "pipeline" / "tiny"
    teacher = model_run(workspace / "runs", "pretrain", "t", 0.60)
    pruned = model_run(workspace / "runs", "prune", "p", 0.55, source=teacher, params=500_000)
    quant = model_run(workspace / "runs", "quantize", "q", 0.54, source=pruned, params=500_000)
    current = paired_run(workspace / "runs", "current", [teacher, pruned], [[10.0] * 3, [5.0] * 3],
                         started="2026-11-28T12:00:00")
    edited = paired_run(workspace / "runs", "edited", [teacher, pruned, quant], [[12.0] * 3, [7.0] * 3, [3.0] * 3],
                        started="2026-11-28T12:10:00")
    for run, recipe in ((teacher, "a"), (pruned, "b"), (quant, "q"), (current, "bench-1"), (edited, "bench-2")):
        record = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**record, "pipeline": {"stage": run.name, "recipe": recipe}}))
    invocation = RunRecord.start(workspace / "2026-11-28" / "12-20-00", "pipeline")
    invocation.update(pipeline={"name": "tiny", "plan": {"t": "a", "p": "b", "bench": "bench-1"}},
                      started="2026-11-28T12:20:00")
    invocation.finish("completed")
    timed = {row.run.path.name: (row.bench_run.name, row.latency.p50_ms)  # type: ignore[union-attr]
             for row in build_report(workspace).rows}
    assert timed == {"t": ("current", 10.0), "p": ("current", 5.0), "q": ("edited", 3.0)}, timed
