"""A row's source run that is no row of the report: one beside the runs reported (in the outputs folder around them)
is still the reference of its speed-up and test difference; one left out is named, with why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from report.fakes import evaluate_run, model_run, paired_run, sweep

from cnnlab.report import build_report
from cnnlab.report.formats import speedup_notes

PRUNE_SWEEP = "prune/2026-11-28/10-00-00-multirun"


@pytest.fixture
def pruned_pretrains(tmp_path: Path) -> Path:
    """Probe 184: `pretrain seed=0` and `seed=1`, `prune -m source=RUN0,RUN1`, `evaluate source=R` of all four (200
    test images each: the prune loses 2 and 1 of them), the first pair timed side by side."""
    out = tmp_path / "outputs"
    sources = [model_run(out, "pretrain", f"20-00-0{i}", acc, seed=i) for i, acc in enumerate((0.50, 0.60))]
    pruned = sweep(out, "prune", [0.45, 0.58], sources=sources, params=300_000,
                   metrics=[{"acc_before": 0.40}, {"acc_before": 0.50}])
    for i, (source, prune, lost) in enumerate(zip(sources, pruned, (2, 1))):
        evaluate_run(out, f"source-{i}", source, 0.70 + i / 100, correct=[k < 140 + 2 * i for k in range(200)])
        evaluate_run(out, f"pruned-{i}", prune, 0.70 + i / 100 - lost / 200,
                     correct=[k < 140 + 2 * i - lost for k in range(200)])
    paired_run(out, "paired", [sources[0], pruned[0]], [[4.0, 4.1, 3.9], [2.0, 2.05, 1.95]])
    return out


def _prune_figures(report) -> tuple:
    [group] = [g for g in report.all_seed_groups if g.first.command == "prune"]
    [test] = [c for c in group.changes if c.split == "test"]
    rows = {row.run.path.name: row for row in group.rows}
    return test.differences, test.image_interval, rows["0"].speedup.shown, rows["1"].speedup.note


@pytest.mark.parametrize("part", ["--runs", "sweep folder"])
def test_a_source_run_beside_the_runs_reported_is_their_reference_without_a_row(pruned_pretrains: Path,
                                                                                part: str) -> None:
    """Probe 184: `cnnlab report --runs 'prune/*/*-multirun/*'` dropped the test difference (-0.75 points, [-1.13,
    -0.37] over the whole folder) and the speed-up, saying the source runs were "not among the runs reported" though
    they, and the evaluate runs that scored them, lie in the same outputs folder."""
    whole = _prune_figures(build_report(pruned_pretrains))
    report = build_report(pruned_pretrains, pattern="prune/*/*-multirun/*") if part == "--runs" else \
        build_report(pruned_pretrains / PRUNE_SWEEP)
    assert _prune_figures(report) == whole
    differences, interval, speedup, note = whole
    assert differences == pytest.approx((-0.01, -0.005)) and interval is not None and speedup == 2.0
    assert note.startswith("no paired timing with its source")
    # the sources are references only: no row, no seed group, no place on the Pareto front
    assert {row.command for row in report.rows} == {"prune"} and len(report.all_seed_groups) == 1
    assert not any("not among the runs reported" in note for _, note in speedup_notes(report.rows))


def test_a_source_left_out_is_named_where_it_is_with_why(tmp_path: Path) -> None:
    """Probe 180: after `cp -a outputs c1`, with c1's fine-tune damaged, its INT8 child's note named the original
    folder's run ("its source run /…/outputs/finetune/… is not among the runs reported"), not c1's, nor why."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.90, onnx_bytes=4_000)
    model_run(out, "quantize", "int8", 0.89, source=tuned, onnx_bytes=1_000)
    copy = tmp_path / "c1"
    shutil.copytree(out, copy)
    (copy / "finetune" / "2026-11-28" / "tuned" / "run.json").write_text("{ damaged")

    def note(folder: Path, pattern: str | None = None) -> str:
        [row] = build_report(folder, pattern=pattern).rows
        assert row.speedup.shown is None
        return row.speedup.note

    for pattern in (None, "quantize/*/*"):
        said = note(copy, pattern)
        assert f"its source run {copy / 'finetune' / '2026-11-28' / 'tuned'} is left out (damaged run.json: not " \
               "valid JSON" in said and str(out) not in said
    # the same, reported in place (it read "is gone"), and with the damaged source beside the runs reported
    (out / "finetune" / "2026-11-28" / "tuned" / "run.json").write_text("{ damaged")
    for pattern in (None, "quantize/*/*"):
        assert note(out, pattern).startswith(f"its source run {tuned} is left out (damaged run.json: not valid JSON")
