"""cnnlab report from fabricated run records: rows, latency matching, speed-ups, Pareto front, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.report import Comparison, build_report, write_report
from cnnlab.runs import RunRecord

DATASET = {"name": "digits", "num_classes": 10, "image_size": 64}


def model_run(outputs: Path, command: str, name: str, acc: float, *, model: str = "resnet18", source: Path | None = None,
              params: int = 1_000_000, onnx_bytes: int | None = None, status: str = "completed",
              dataset: dict | None = None) -> Path:
    run_dir = outputs / command / "2026-11-28" / name
    record = RunRecord.start(run_dir, command)
    record.update(model={"name": model, "params": params, "flops": 2 * params}, dataset=dataset or DATASET,
                  source={"run": str(source)} if source else None)
    (run_dir / "model.pt").write_bytes(b"\0" * 1000)
    record.add_artifact("model", run_dir / "model.pt")
    if onnx_bytes:
        (run_dir / "model.onnx").write_bytes(b"\0" * onnx_bytes)
        record.add_artifact("onnx", run_dir / "model.onnx")
    record.finish(status, metrics={"val_acc": acc})
    return run_dir


def bench_run(outputs: Path, name: str, source: Path, p50: float, *, backend: str = "onnxruntime", batch: int = 1,
              device: str = "cpu", threads: int = 2) -> Path:
    run_dir = outputs / "bench" / "2026-11-28" / name
    record = RunRecord.start(run_dir, "bench")
    record.update(source={"run": str(source)})
    record.finish("completed", metrics={"latency": [{"backend": backend, "batch_size": batch, "device": device,
                                                     "threads": threads, "p50_ms": p50}]})
    return run_dir


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
    model_run(out, "finetune", "failed", 0.99, status="failed")
    return out


def test_rows_latency_speedup_and_pareto(study: Path) -> None:
    report = build_report(study)
    rows = {row.run.path.name: row for row in report.rows}
    assert set(rows) == {"teacher", "pruned", "int8", "student", "worse"}  # failed run and export are not rows
    assert rows["teacher"].p50_ms == 10.0 and rows["teacher"].file_kind == "onnx"
    assert rows["teacher"].file_bytes == 44_000  # the export's ONNX is the teacher's deployable size
    assert rows["pruned"].speedup == pytest.approx(2.5)
    assert rows["int8"].speedup == pytest.approx(10 / 3)  # the quantize source is an export: traced to the teacher
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
    report = build_report(study, comparison=Comparison(threads=8))
    assert all(row.p50_ms is None for row in report.rows)
    assert all("8 thread(s)" in row.notes[0] for row in report.rows)


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


def test_runs_glob_and_empty_folder(study: Path, tmp_path: Path) -> None:
    report = build_report(study, pattern="prune/*")
    assert {row.command for row in report.rows} == {"prune"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match="no completed model runs"):
        build_report(tmp_path / "empty")


def test_report_command_line_needs_no_torch(study: Path) -> None:
    code = ("import sys; from typer.testing import CliRunner; from cnnlab.cli import app; "
            f"r = CliRunner().invoke(app, ['report', {str(study)!r}]); print(r.stdout); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"COLUMNS": "200",
                          **__import__("os").environ})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Pareto" in proc.stdout and "wrote" in proc.stdout


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
