"""The report reads the runs that records name where they are now (cnnlab/links.py): an outputs folder copied, moved
or with a run renamed reports what the original does; a folder trained into again is not the model that was read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report.fakes import evaluate_run, model_run, paired_run

from cnnlab.errors import CnnlabError
from cnnlab.fileio import file_sha256
from cnnlab.links import RunLinks
from cnnlab.report import build_report
from cnnlab.report.formats import gone_source_notes
from cnnlab.runs import RunInfo


def _read_from(derived: Path, source: Path) -> None:
    """Record in `derived`'s run.json that it read `source`'s model.pt, with its SHA-256, as the commands do."""
    record = json.loads((derived / "run.json").read_text())
    model = source / "model.pt"
    record["source"] = {"spec": str(source), "kind": "checkpoint", "path": str(model), "run": str(source),
                        "command": "finetune", "sha256": file_sha256(model)}
    (derived / "run.json").write_text(json.dumps(record))


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """A fine-tune, its pruned child that read it, both timed in one session and both scored on the test split."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.90, onnx_bytes=40_000)
    pruned = model_run(out, "prune", "pruned", 0.88, source=tuned, onnx_bytes=12_000, params=300_000)
    _read_from(pruned, tuned)
    paired_run(out, "paired", [tuned, pruned], [[4.0, 4.1, 3.9], [2.0, 2.05, 1.95]])
    evaluate_run(out, "t1", tuned, 0.91)
    evaluate_run(out, "t2", pruned, 0.87)
    return out


def _figures(outputs: Path) -> dict[str, tuple]:
    return {row.run.path.name: (row.p50_ms, row.speedup.shown if row.speedup else None, row.test_accuracy,
                                row.file_kind) for row in build_report(outputs).rows}


def test_a_copied_moved_or_renamed_run_reports_what_the_original_does(chain: Path, tmp_path: Path) -> None:
    """Probe 104: after `cp -a outputs copy/` (or tar, zip, mv, or one run folder renamed) every model read "not
    benchmarked", and the speed-ups, test top-1 and differences were gone: records name the folders they were
    written to."""
    before = _figures(chain)
    assert before["pruned"] == (2.0, 2.0, 0.87, "onnx") and before["tuned"][0] == 4.0
    copy = tmp_path / "elsewhere" / "outputs"
    shutil.copytree(chain, copy)
    assert _figures(copy) == before  # the original still there: the copy's own runs are read
    moved = tmp_path / "moved"
    chain.rename(moved)
    assert _figures(moved) == before
    (moved / "finetune" / "2026-11-28" / "tuned").rename(moved / "finetune" / "2026-11-28" / "best")
    renamed = _figures(moved)
    assert renamed["best"] == before["tuned"] and renamed["pruned"] == before["pruned"]
    [change] = [c for g in build_report(moved).all_seed_groups for c in g.changes if c.split == "test"]
    assert change.differences == pytest.approx((0.87 - 0.91,))


def test_a_folder_trained_into_again_is_not_the_model_its_children_read(chain: Path) -> None:
    """Probe 104: `rm -rf RUN` and a new fine-tune into the same folder: the report compared the old pruned model
    with the new one ("+7.94 points, significant" where the change was +2.49) and showed the new model with the old
    one's latency."""
    tuned = chain / "finetune" / "2026-11-28" / "tuned"
    shutil.rmtree(tuned)
    model_run(chain, "finetune", "tuned", 0.50)
    (tuned / "model.pt").write_bytes(b"another model")  # its own bytes, recorded as its run records them
    record = json.loads((tuned / "run.json").read_text())
    record["digests"]["model"] = file_sha256(tuned / "model.pt")
    (tuned / "run.json").write_text(json.dumps(record))
    report = build_report(chain)
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["pruned"].source is None and rows["pruned"].speedup.shown is None
    assert "holds another model now" in rows["pruned"].speedup.note
    assert not [c for g in report.all_seed_groups for c in g.changes if c.split == "test"]
    [note] = gone_source_notes(report.all_seed_groups, chain)
    assert "its source run's folder" in note and "holds another model now" in note
    links = RunLinks(RunInfo.read(p.parent) for p in chain.rglob("run.json"))
    link = links.source_of(RunInfo.read(chain / "prune" / "2026-11-28" / "pruned"))
    assert link is not None and link.replaced and link.path is None


def test_a_gone_source_keeps_the_speed_up_its_session_timed_and_says_what_is_missing(chain: Path) -> None:
    """Probe 104: with the fine-tune's folder deleted, the pruned model's speed-up went "—" without a word,
    though the session had timed both."""
    shutil.rmtree(chain / "finetune" / "2026-11-28" / "tuned")
    row = next(r for r in build_report(chain).rows if r.run.path.name == "pruned")
    assert row.speedup.shown == 2.0
    paired = chain / "bench" / "2026-11-28" / "paired"
    shutil.rmtree(paired)
    row = next(r for r in build_report(chain).rows if r.run.path.name == "pruned")
    assert row.speedup.shown is None and "is gone, and no bench session timed the two" in row.speedup.note


def test_a_quantize_run_whose_onnx_was_deleted_shows_the_recorded_size_as_onnx(tmp_path: Path) -> None:
    """Probe 104: "78.1 kB pt (deleted)" for the ONNX size of a run that never wrote a model.pt."""
    out = tmp_path / "outputs"
    run = model_run(out, "quantize", "q", 0.9, onnx_bytes=5_000)
    record = json.loads((run / "run.json").read_text())
    del record["artifacts"]["model"]
    record["model"]["file_bytes"] = 5_000
    (run / "run.json").write_text(json.dumps(record))
    (run / "model.pt").unlink()
    (run / "model.onnx").unlink()
    [row] = build_report(out).rows
    assert (row.file_bytes, row.file_kind, row.file_recorded) == (5_000, "onnx", "deleted")


def test_latencies_of_two_machines_are_not_averaged_or_compared(tmp_path: Path) -> None:
    """Probe 107: seed 0 timed here, seed 1 on a laptop (another CPU, 6× slower): the seed group read
    "0.088 ± 0.088" ms, the mean of the two machines, starred on the Pareto front, and nothing named the laptop."""
    from report.fakes import bench_run, sweep

    from cnnlab.report import Comparison

    out = tmp_path / "outputs"
    seeds = sweep(out, "finetune", [0.69, 0.68])
    bench_run(out, "here", seeds[0], 0.025, cpu="AMD EPYC")
    bench_run(out, "here-again", seeds[0], 0.026, cpu="AMD EPYC")
    bench_run(out, "laptop", seeds[1], 0.151, cpu="Intel Core i5-8250U")
    report = build_report(out)
    assert report.comparison.machine == "AMD EPYC (family 6, model 142)"
    rows = {row.run.path.name: row for row in report.rows}
    assert rows["0"].p50_ms in (0.025, 0.026) and rows["1"].p50_ms is None
    assert "on cpu (AMD EPYC (family 6, model 142))" in rows["1"].notes[0]
    [group] = report.all_seed_groups
    assert [r.p50_ms for r in group.rows if r.p50_ms is not None] == [rows["0"].p50_ms]
    laptop = build_report(out, comparison=Comparison(machine="Intel Core i5-8250U (family 6, model 142)"))
    assert {row.run.path.name: row.p50_ms for row in laptop.rows} == {"0": None, "1": 0.151}
    with pytest.raises(CnnlabError, match=r"--machine AMD EPYC: no bench run here names that machine"):
        build_report(out, comparison=Comparison(machine="AMD EPYC"))  # probe 108: the fix listed batch sizes
    for name in ("laptop-4-threads", "laptop-4-threads-again"):
        bench_run(out, name, seeds[1], 0.09, cpu="Intel Core i5-8250U", threads=4)
    # probe 108: the machines were counted over every thread count (the laptop's 3 records beat these 2)
    settled = build_report(out).comparison
    assert settled.threads == 2 and settled.machine == "AMD EPYC (family 6, model 142)"
    one = tmp_path / "one"  # one machine, or records that name none: nothing is said or filtered
    seeds = sweep(one, "finetune", [0.69, 0.68])
    bench_run(one, "a", seeds[0], 0.025, cpu="AMD EPYC")
    bench_run(one, "b", seeds[1], 0.027)
    assert build_report(one).comparison.machine is None
    assert sorted(row.p50_ms for row in build_report(one).rows) == [0.025, 0.027]


def test_records_without_run_dir_and_a_backup_taken_mid_training_link_to_the_run(chain: Path, tmp_path: Path) -> None:
    """Probe 107: in a moved folder, records from before `run_dir` was kept lost their export and bench ("not
    benchmarked"), and a `cp -r` backup of a run taken mid-training (its path sorting first) took them instead."""
    before = _figures(chain)
    backup = chain / "finetune" / "2026-11-28" / "a-backup"
    shutil.copytree(chain / "finetune" / "2026-11-28" / "tuned", backup)
    record = json.loads((backup / "run.json").read_text())
    (backup / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    moved = tmp_path / "moved"
    chain.rename(moved)
    assert _figures(moved) == before
    for path in moved.rglob("run.json"):  # as an older cnnlab wrote them
        record = json.loads(path.read_text())
        record.pop("run_dir")
        path.write_text(json.dumps(record))
    shutil.rmtree(moved / "finetune" / "2026-11-28" / "a-backup")
    again = tmp_path / "again"
    moved.rename(again)
    assert _figures(again) == before


def test_two_copies_of_a_run_that_disagree_say_so_and_which_is_counted(chain: Path) -> None:
    """Probe 125: two copies of a gone run, one edited to 90 % where the other said 88 %: "a copy of the run in …:
    counted once", the table showing whichever sorted first, nothing saying the records disagree."""
    folder = chain / "prune" / "2026-11-28"
    for name in ("1a", "1b"):
        shutil.copytree(folder / "pruned", folder / name)
    shutil.rmtree(folder / "pruned")
    record = json.loads((folder / "1b" / "run.json").read_text())
    record["metrics"]["val_acc"] = 0.9
    (folder / "1b" / "run.json").write_text(json.dumps(record))
    report = build_report(chain)
    [row] = [r for r in report.rows if r.command == "prune"]
    [(left, why)] = [(path, why) for path, why in report.left_out if "a copy of the run" in why]
    assert row.run.path.name == "1a" and left.name == "1b" and row.accuracy == 0.88
    assert "the two records differ in metrics" in why and "the first by folder name" in why
    shutil.rmtree(folder / "1b")
    shutil.copytree(folder / "1a", folder / "1c")  # a true copy: no word of a difference
    [(_, why)] = [(path, why) for path, why in build_report(chain).left_out if "a copy of the run" in why]
    assert why.endswith("counted once")


def _own_model(run: Path, content: bytes) -> Path:
    """Give `run` a model.pt of `content`, recorded as its run records it."""
    (run / "model.pt").write_bytes(content)
    record = json.loads((run / "run.json").read_text())
    record["digests"]["model"] = file_sha256(run / "model.pt")
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_two_runs_swapped_by_name_keep_their_own_figures(chain: Path) -> None:
    """Probe 106: two fine-tunes' folders swapped in place: the children were rightly told "holds another model
    now", but both fine-tunes lost their test top-1 unsaid and one read "not benchmarked"."""
    folder = chain / "finetune" / "2026-11-28"
    tuned = _own_model(folder / "tuned", b"the tuned model")
    other = _own_model(model_run(chain, "finetune", "other", 0.80, onnx_bytes=30_000, params=500_000), b"other")
    pruned = chain / "prune" / "2026-11-28" / "pruned"
    for run, model in ((chain / "evaluate" / "2026-11-28" / "t1", tuned), (evaluate_run(chain, "t3", other, 0.79),
                                                                           other), (pruned, tuned)):
        _read_from(run, model)
    session = chain / "bench" / "2026-11-28" / "paired"  # as `cnnlab bench` records its subjects: with what it read
    record = json.loads((session / "run.json").read_text())
    record["paired"]["subjects"][0]["source"] = json.loads((pruned / "run.json").read_text())["source"]
    (session / "run.json").write_text(json.dumps(record))
    by_accuracy = {row.accuracy: (row.p50_ms, row.test_accuracy) for row in build_report(chain).rows}
    (folder / "tuned").rename(folder / "swap")
    (folder / "other").rename(folder / "tuned")
    (folder / "swap").rename(folder / "other")
    swapped = {row.accuracy: (row.p50_ms, row.test_accuracy) for row in build_report(chain).rows}
    assert swapped == by_accuracy and by_accuracy[0.90] == (4.0, 0.91) and by_accuracy[0.80] == (None, 0.79)
    pruned_row = next(row for row in build_report(chain).rows if row.run.path == pruned)
    assert pruned_row.speedup.shown == 2.0  # its source found at its new name


def test_a_copy_beside_its_original_is_read_within_itself(chain: Path, tmp_path: Path) -> None:
    """Probe 108: in a `cp -a` copy (the original still there), a source deleted and trained into again in the copy
    was read from the original folder: the pruned model's speed-up and test difference went "—" unsaid."""
    _own_model(chain / "finetune" / "2026-11-28" / "tuned", b"the tuned model")
    _read_from(chain / "prune" / "2026-11-28" / "pruned", chain / "finetune" / "2026-11-28" / "tuned")
    copy = tmp_path / "copy" / "outputs"
    shutil.copytree(chain, copy)
    tuned = copy / "finetune" / "2026-11-28" / "tuned"
    shutil.rmtree(tuned)
    _own_model(model_run(copy, "finetune", "tuned", 0.50), b"a new model")
    rows = {row.run.path.name: row for row in build_report(copy).rows}
    assert rows["pruned"].source is None and "holds another model now" in rows["pruned"].speedup.note
    assert str(copy) in rows["pruned"].speedup.note and str(chain) not in rows["pruned"].speedup.note
    # probe 109: runs named by hydra.run.dir (one folder each), the copy under another name
    flat = tmp_path / "flat"
    named = (chain / "finetune" / "2026-11-28" / "tuned", chain / "prune" / "2026-11-28" / "pruned")
    for run in named:
        shutil.copytree(run, flat / "outputs" / run.name)
    for path in (flat / "outputs").rglob("run.json"):  # as if they had run there
        for run in named:
            path.write_text(path.read_text().replace(str(run), str(flat / "outputs" / run.name)))
    shutil.copytree(flat / "outputs", flat / "elsewhere")
    shutil.rmtree(flat / "elsewhere" / "tuned")
    _own_model(model_run(flat / "elsewhere", "finetune", "tuned", 0.5), b"retrained")
    (flat / "elsewhere" / "finetune" / "2026-11-28" / "tuned").rename(flat / "elsewhere" / "tuned")
    rows = {row.run.path.name: row for row in build_report(flat / "elsewhere").rows}
    assert "holds another model now" in rows["pruned"].speedup.note


def test_a_source_outside_the_runs_reported_is_said(chain: Path, tmp_path: Path) -> None:
    """Probe 110: the pruned run copied alone (its source intact in the original folder): speed-up "—" and no test
    difference, unsaid."""
    part = tmp_path / "part" / "outputs"
    shutil.copytree(chain / "prune", part / "prune")
    [row] = build_report(part).rows
    assert row.speedup.shown is None and "is not among the runs reported" in row.speedup.note
