"""Seed groups in `cnnlab report`: runs that differ only in seed are one row (mean ± std over n seeds), the KD gain,
pruning and INT8 top-1 changes come with a 95 % CI paired over seeds, error bars in the plot; partial and damaged
groups never crash the report."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from report.fakes import bench_run, evaluate_run, folder_dataset, model_run, paired_run, sweep

from cnnlab.report import build_report, print_report, write_report
from cnnlab.report.plot import figure
from cnnlab.report.seeds import SeedGroup
from cnnlab.fileio import file_sha256
from cnnlab.runs import RunRecord

T2 = 4.303  # two-sided 95 % Student t with 2 degrees of freedom (t table)


def group_of(report, command: str, **match) -> SeedGroup:
    found = [g for g in report.all_seed_groups if g.first.command == command
             and all(getattr(g.first, k) == v for k, v in match.items())]
    assert len(found) == 1, [g.label for g in report.all_seed_groups]
    return found[0]


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """`finetune -m seed=0,1,2` (top-1 90, 92, 94 %, p50 2.0, 2.2, 2.4 ms), a prune and a quantize of each seed's model,
    and a fine-tuning with other settings (5 epochs)."""
    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92, 0.94], onnx_bytes=44_000)
    for i, run in enumerate(tuned):
        bench_run(out, f"b{i}", run, 2.0 + 0.2 * i)
    # pruning changes +1.0, +1.2, +1.4 points against the model before pruning (recorded as acc_before)
    sweep(out, "prune", [0.91, 0.932, 0.954], sources=tuned, params=300_000, onnx_bytes=12_000,
          metrics=[{"acc_before": a} for a in (0.90, 0.92, 0.94)])
    # INT8 changes +1.0, -2.0, +0.4 points against FP32 (fp32_val_acc)
    sweep(out, "quantize", [0.91, 0.90, 0.944], sources=tuned, onnx_bytes=11_000,
          metrics=[{"fp32_val_acc": a} for a in (0.90, 0.92, 0.94)])
    model_run(out, "finetune", "long", 0.95, seed=0, settings={"trainer": {"epochs": 5}})
    return out


def test_runs_that_differ_only_in_seed_are_one_row_with_mean_and_std(seeds: Path) -> None:
    report = build_report(seeds)
    assert len(report.rows) == 10  # every run is still a row of its own (report.json `rows`)
    tuned = group_of(report, "finetune", model="resnet18", accuracy=0.90)
    assert tuned.n == 3 and tuned.seeds == 3
    assert tuned.val.mean == pytest.approx(0.92) and tuned.val.std == pytest.approx(0.02)
    assert tuned.latency.mean == pytest.approx(2.2) and tuned.latency.std == pytest.approx(0.2)
    assert [tuned.seed_label(s) for s in tuned.lineages] == ["seed 0", "seed 1", "seed 2"]
    longer = group_of(report, "finetune", accuracy=0.95)  # 5 epochs instead of 2: another experiment
    assert longer.n == 1 and longer.val.std is None
    # the pruned models of the three seeds are one group too: their sources are one group
    pruned = group_of(report, "prune")
    assert pruned.n == 3 and pruned.val.mean == pytest.approx(0.932)
    assert [pruned.seed_label(s) for s in pruned.lineages] == ["seed 0", "seed 1", "seed 2"]  # fine-tuning seeds

    write_report(report)
    md = (seeds / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| finetune/2026-11-28/10-00-00-multirun/{0,1,2} "))
    assert "| 3 |" in line and "| 92.00 ± 2.00% |" in line and "| 2.200 ± 0.200 |" in line
    assert "| └ 1 | seed 1 | finetune |" in md and "| 92.00% |" in md  # the runs, listed under their group
    assert "| finetune/2026-11-28/long | 1 | finetune | resnet18 | digits | 95.00% |" in md
    data = json.loads((seeds / "report.json").read_text())
    assert len(data["rows"]) == 10 and len(data["groups"]) == 4
    group = next(g for g in data["groups"] if g["command"] == "finetune" and g["n_runs"] == 3)
    assert group["val_top1"]["mean"] == pytest.approx(0.92) and group["val_top1"]["std"] == pytest.approx(0.02)
    assert group["runs"] == [f"finetune/2026-11-28/10-00-00-multirun/{i}" for i in range(3)]
    csv_lines = (seeds / "report.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",group,seed") and len(csv_lines) == 11


def test_pruning_and_int8_changes_come_with_a_paired_interval(seeds: Path) -> None:
    report = build_report(seeds)
    [pruning] = group_of(report, "prune").changes
    assert pruning.what == "pruning top-1 change" and pruning.split == "val"
    assert list(pruning.differences) == pytest.approx([0.010, 0.012, 0.014])
    half = T2 * 0.002 / math.sqrt(3)  # std of the differences 0.2 points
    assert pruning.interval == pytest.approx((0.012 - half, 0.012 + half), abs=1e-5)
    assert pruning.significant is True  # [+0.70, +1.70] points
    [int8] = group_of(report, "quantize").changes
    assert list(int8.differences) == pytest.approx([0.010, -0.020, 0.004])
    half = T2 * math.sqrt(0.000252) / math.sqrt(3)
    assert int8.interval == pytest.approx((-0.002 - half, -0.002 + half), abs=1e-5)
    assert int8.significant is False  # [-4.14, +3.74] points: contains zero

    write_report(report)
    md = (seeds / "report.md").read_text()
    assert "### Differences (95 % CI paired over seeds)" in md
    prune_line = next(ln for ln in md.splitlines() if "pruning top-1 change" in ln)
    assert "| val | 3 | +1.20 ± 0.20 points | [+0.70, +1.70] | significant |" in prune_line
    int8_line = next(ln for ln in md.splitlines() if "INT8 top-1 change" in ln)
    assert "| -0.20 ± 1.59 points | [-4.14, +3.74] | not significant |" in int8_line
    data = json.loads((seeds / "report.json").read_text())
    change = next(g for g in data["groups"] if g["command"] == "quantize")["changes"][0]
    assert change["significant"] is False and change["ci95"][0] == pytest.approx(-0.002 - half, abs=1e-5)


def test_without_a_recorded_reference_the_source_row_counts_and_test_top1_is_paired_too(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92, 0.94])
    int8 = sweep(out, "quantize", [0.89, 0.915, 0.93], sources=tuned, onnx_bytes=1000)  # no fp32_val_acc recorded
    for i, (fp32_test, int8_test) in enumerate([(0.90, 0.899), (0.91, 0.911), (0.92, 0.918)]):
        evaluate_run(out, f"fp32-{i}", tuned[i], fp32_test)
        evaluate_run(out, f"int8-{i}", int8[i], int8_test)
    report = build_report(out)
    tuned_group = group_of(report, "finetune")
    assert tuned_group.test.mean == pytest.approx(0.91) and tuned_group.test.std == pytest.approx(0.01)
    val, test = group_of(report, "quantize").changes
    assert val.split == "val" and list(val.differences) == pytest.approx([-0.01, -0.005, -0.01])
    assert test.split == "test" and list(test.differences) == pytest.approx([-0.001, 0.001, -0.002])
    assert test.significant is False
    write_report(report)
    md = (out / "report.md").read_text()
    assert "| val top-1 | test top-1 |" in md and "| 92.00 ± 2.00% | 91.00 ± 1.00% |" in md


def test_one_seed_with_per_image_outcomes_gets_a_bootstrap_interval_over_the_test_images(tmp_path: Path) -> None:
    """INT8 loses 30 of 1,000 test images and wins none: one seed, yet the images alone show a real drop."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "fp32", 0.90, seed=0)
    int8 = model_run(out, "quantize", "int8", 0.88, source=tuned, seed=0, onnx_bytes=1000)
    fp32_correct = [i < 900 for i in range(1000)]
    int8_correct = [i < 870 for i in range(1000)]
    evaluate_run(out, "fp32-test", tuned, 0.90, correct=fp32_correct)
    evaluate_run(out, "int8-test", int8, 0.87, correct=int8_correct)
    test = next(c for c in group_of(build_report(out), "quantize").changes if c.split == "test")
    assert test.interval is None and test.images == 1000
    low, high = test.image_interval
    # 30 losses in 1,000 paired images: mean -0.03, binomial SE sqrt(0.03 * 0.97 / 1000) = 0.0054
    assert -0.03 - 2.6 * 0.0054 < low < -0.03 < high < -0.03 + 2.6 * 0.0054
    assert test.significant is True
    report = build_report(out)
    write_report(report)
    line = next(ln for ln in (out / "report.md").read_text().splitlines()
                if "INT8 top-1 change" in ln and "| test |" in ln)
    assert "1 seed: no interval; [" in line and "over 1000 images" in line and "| significant |" in line


def test_a_seed_run_twice_bootstraps_the_mean_of_its_runs_not_its_newest(tmp_path: Path) -> None:
    """One seed quantized twice: the table's mean change is the two runs' mean (-0.5 points here), but the image
    interval bootstrapped the newest run alone (+2.0) and called it significant beside a mean it excluded."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "fp32", 0.90, seed=0)
    evaluate_run(out, "fp32-test", tuned, 0.90, correct=[i < 900 for i in range(1000)])
    for name, correct in (("a", 870), ("b", 920)):  # -3.0 and +2.0 points on the same 1,000 images
        int8 = model_run(out, "quantize", f"int8-{name}", 0.88, source=tuned, seed=0, onnx_bytes=1000)
        evaluate_run(out, f"{name}-test", int8, correct / 1000, correct=[i < correct for i in range(1000)])
    test = next(c for c in group_of(build_report(out), "quantize").changes if c.split == "test")
    assert test.differences == pytest.approx((-0.005,))
    low, high = test.image_interval
    assert low < -0.005 < high  # the interval is around the mean it stands beside


def test_outcomes_of_different_lengths_give_no_bootstrap(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "fp32", 0.90, seed=0)
    int8 = model_run(out, "quantize", "int8", 0.88, source=tuned, seed=0, onnx_bytes=1000)
    evaluate_run(out, "fp32-test", tuned, 0.90, correct=[True] * 10)
    evaluate_run(out, "int8-test", int8, 0.87, correct=[True] * 9)
    test = next(c for c in group_of(build_report(out), "quantize").changes if c.split == "test")
    assert test.image_interval is None and test.significant is None


def test_one_seed_gives_no_interval(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    teacher = model_run(out, "finetune", "teacher", 0.97, seed=0)
    model_run(out, "distill", "kd", 0.88, model="mobilenet_v2", source=teacher, seed=0,
              metrics={"baseline_val_acc": 0.87})
    report = build_report(out)
    [gain] = group_of(report, "distill").changes
    assert gain.what == "KD gain" and gain.differences == pytest.approx((0.01,)) and gain.interval is None
    write_report(report)
    md = (out / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if "KD gain" in ln)
    assert "| 1 | +1.00 points | 1 seed: no interval |  |" in line
    assert "| seeds |" not in md  # no group of several: the table keeps its columns


def test_kd_gain_over_three_seeds_excludes_zero(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    teacher = model_run(out, "finetune", "teacher", 0.97, seed=0)
    sweep(out, "distill", [0.88, 0.90, 0.91], model="mobilenet_v2", source=teacher,
          metrics=[{"baseline_val_acc": b} for b in (0.87, 0.885, 0.90)])  # gains 1.0, 1.5, 1.0 points
    group = group_of(build_report(out), "distill")
    [gain] = group.changes
    assert group.n == 3
    std = math.sqrt(((0.01 - 0.011667) ** 2 * 2 + (0.015 - 0.011667) ** 2) / 2)  # 0.2887 points
    half = T2 * std / math.sqrt(3)
    assert gain.spread.mean == pytest.approx(0.011667, abs=1e-6)
    assert gain.interval == pytest.approx((gain.spread.mean - half, gain.spread.mean + half), abs=1e-5)
    assert gain.interval[0] > 0 and gain.significant is True


def test_partial_and_damaged_groups_never_crash_the_report(seeds: Path) -> None:
    sweep_dir = "11-00-00-multirun"
    sweep(seeds, "finetune", [0.80, 0.82], name=sweep_dir, model="lenet5")
    model_run(seeds, "finetune", f"{sweep_dir}/2", 0.5, seed=2, model="lenet5", status="failed")  # seed 2 failed
    damaged = seeds / "finetune" / "2026-11-28" / sweep_dir / "3"
    damaged.mkdir()
    (damaged / "run.json").write_text("{not json")
    # dataset.seed is not the training seed: another split of the data, another group
    model_run(seeds, "finetune", "other-split", 0.81, seed=1, model="lenet5", settings={"dataset": {"seed": 1}})
    # an unreadable saved config: settings that cannot be read are never taken for equal
    garbled = model_run(seeds, "finetune", "garbled", 0.83, seed=1, model="lenet5")
    (garbled / ".hydra" / "config.yaml").write_text("dataset: [unclosed\n  : :")
    # a pruned model whose source run folder is gone
    model_run(seeds, "prune", "orphan", 0.7, model="lenet5", seed=0, source=seeds / "finetune" / "gone")
    # and a reference of the wrong type: damage (probe 225: ignored, the change measured against the source's
    # accuracy under the label "vs before pruning")
    nonsense = model_run(seeds, "prune", "nonsense", 0.7, model="lenet5", seed=1, metrics={"acc_before": "high"})
    report = build_report(seeds)
    lenet = [g for g in report.all_seed_groups if g.first.model == "lenet5" and g.first.command == "finetune"]
    sizes = sorted(g.n for g in lenet)
    assert sizes == [1, 1, 2]
    partial = next(g for g in lenet if g.n == 2)
    assert partial.val.mean == pytest.approx(0.81) and partial.val.std == pytest.approx(math.sqrt(0.0002))
    assert [(partial.seed_label(seed), status) for seed, status, _ in partial.missing] == [("seed 2", "failed")]
    assert group_of(report, "prune", model="lenet5").changes == []
    assert any(path == damaged and "damaged" in reason for path, reason in report.left_out)
    assert "metrics.acc_before is str, expected int or float" in dict(report.left_out)[nonsense]
    print_report(report)
    write_report(report)
    md = (seeds / "report.md").read_text()
    assert "| 2 of 3 |" in md and "## Partial seed groups" in md
    assert f"seed 2 failed (finetune/2026-11-28/{sweep_dir}/2)" in md
    missing = next(g for g in json.loads((seeds / "report.json").read_text())["groups"] if g["missing"])["missing"]
    assert missing == [{"run": f"finetune/2026-11-28/{sweep_dir}/2", "seed": 2, "status": "failed"}]


def test_without_a_saved_config_the_recorded_overrides_group_the_runs(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    for seed, acc in enumerate([0.90, 0.92]):
        model_run(out, "finetune", f"s{seed}", acc, overrides=["command=finetune", "model=resnet18", f"seed={seed}"])
    model_run(out, "finetune", "lr", 0.93, overrides=["command=finetune", "model=resnet18", "optim.lr=0.1", "seed=0"])
    model_run(out, "finetune", "bare", 0.91)  # neither: a group of its own
    model_run(out, "finetune", "bare2", 0.91)
    report = build_report(out)
    assert sorted(g.n for g in report.all_seed_groups) == [1, 1, 1, 2]
    two = next(g for g in report.all_seed_groups if g.n == 2)
    assert two.val.mean == pytest.approx(0.91) and {r.run.path.name for r in two.rows} == {"s0", "s1"}


def test_a_seed_run_twice_counts_once_as_a_seed(tmp_path: Path) -> None:
    """The mean, std and interval were over runs: seed 1 run twice weighed twice (92.00 ± 1.00 % here, where the two
    seeds give 91.25 ± 1.77 %), and one seed run three times read "± 0.00" with a zero-width interval called
    significant. Each seed is now its runs' mean, once."""
    out = tmp_path / "outputs"
    sweep(out, "finetune", [0.90, 0.93, 0.92, 0.92], seeds=[0, 1, 1, 1])
    report = build_report(out)
    [group] = report.all_seed_groups
    assert group.n == 4 and group.seeds == 2
    assert group.val.values == pytest.approx((0.90, 0.92 + 0.01 / 3)) and group.val.n == 2
    write_report(report)
    assert "| 4 runs, 2 seeds |" in (out / "report.md").read_text()
    [fields] = json.loads((out / "report.json").read_text())["groups"]
    assert fields["value_seeds"] == [0, 1] and len(fields["val_top1"]["values"]) == 2


def test_one_seed_run_several_times_has_no_spread_and_no_interval(tmp_path: Path) -> None:
    """Three identical prune runs of one fine-tuned model read "-3.33 ± 0.00 points [-3.33, -3.33] significant"."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.9389, seed=0)
    sweep(out, "prune", [0.9056] * 3, sources=[tuned] * 3, params=300_000, metrics=[{"acc_before": 0.9389}] * 3)
    report = build_report(out)
    group = group_of(report, "prune")
    assert (group.n, group.seeds, group.val.std) == (3, 1, None)
    [change] = group.changes
    assert change.differences == pytest.approx((0.9056 - 0.9389,)) and change.interval is None
    assert change.significant is None
    write_report(report)
    text = (out / "report.md").read_text()
    assert "| 3 runs, 1 seed |" in text and "± 0.00" not in text


def test_a_seed_run_twice_counts_once_in_a_group_speedup(tmp_path: Path) -> None:
    """The geometric mean was over runs: seed 0's 4× run twice and seed 1's 1× made 2.52×, not the seeds' 2×."""
    from cnnlab.report.formats import group_speedup_cell

    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92])
    int8 = sweep(out, "quantize", [0.89, 0.89, 0.91], sources=[tuned[0], tuned[0], tuned[1]], onnx_bytes=1000)
    for i, (source, model, ms) in enumerate(((tuned[0], int8[0], 2.0), (tuned[0], int8[1], 2.0),
                                              (tuned[1], int8[2], 8.0))):
        paired_run(out, f"p{i}", [source, model], [[8.0] * 3, [ms] * 3])
    group = group_of(build_report(out), "quantize")
    assert group_speedup_cell(group) == "2.00× faster (geometric mean of 2 seeds)"


def test_a_backup_copy_of_a_run_folder_is_not_another_run(tmp_path: Path) -> None:
    """`cp -r RUN RUN_backup` made the report read three runs, two seeds: 91.67 ± 14.43 % where the two seeds give
    87.50 %."""
    import shutil

    out = tmp_path / "outputs"
    first, second = sweep(out, "finetune", [1.00, 0.75])
    shutil.copytree(first, first.parent / "0_backup")
    report = build_report(out)
    [group] = report.all_seed_groups
    assert group.n == 2 and group.val.mean == pytest.approx(0.875)
    assert [(p.name, "a copy" in reason) for p, reason in report.left_out] == [("0_backup", True)]
    shutil.rmtree(first)  # the original gone: the copy stands for the run
    [group] = build_report(out).all_seed_groups
    assert group.n == 2 and {r.run.path.name for r in group.rows} == {"0_backup", second.name}


def test_resumed_run_is_grouped_by_the_settings_of_the_run_it_continued(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    first = sweep(out, "finetune", [0.90, 0.92])
    interrupted = model_run(out, "finetune", "10-00-00-multirun/2", 0.0, seed=2, status="interrupted")
    resumed = out / "finetune" / "2026-11-28" / "resumed"
    record = RunRecord.start(resumed, "finetune", overrides=["command=finetune", f"resume={interrupted}"])
    (resumed / ".hydra").mkdir()
    (resumed / ".hydra" / "config.yaml").write_text(f"seed: 0\nresume: {interrupted}\nmodel: {{name: lenet5}}\n")
    # the network the interrupted run was training (fakes.model_run's), continued
    record.update(model={"name": "resnet18", "params": 1_000_000, "flops": 2_000_000},
                  dataset={"name": "digits", "num_classes": 10, "image_size": 64},
                  resumed_from=str(interrupted))
    record.finish("completed", metrics={"val_acc": 0.94})
    report = build_report(out)
    [group] = report.all_seed_groups
    assert {r.run.path for r in group.rows} == {*first, resumed} and group.val.mean == pytest.approx(0.92)
    assert group.missing == []  # seed 2 was interrupted, and completed on resuming


def _resumed(out: Path, name: str, continued: Path, overrides: list[str], acc: float, *, took_over: int | None,
             seed: int = 0) -> Path:
    """A run that continued `continued` with `overrides` (as run.json records the command line)."""
    resumed = out / "finetune" / "2026-11-28" / name
    record = RunRecord.start(resumed, "finetune", overrides=["command=finetune", f"resume={continued}", *overrides])
    (resumed / ".hydra").mkdir(parents=True)
    (resumed / ".hydra" / "config.yaml").write_text(f"seed: {seed}\nresume: {continued}\nmodel: {{name: lenet5}}\n")
    record.update(model={"name": "resnet18", "params": 1_000_000, "flops": 2_000_000},
                  dataset={"name": "digits", "num_classes": 10, "image_size": 64}, resumed_from=str(continued),
                  **({"resumed_after_epoch": took_over} if took_over is not None else {}))
    record.finish("completed", metrics={"val_acc": acc})
    return resumed


def test_a_sweep_job_continued_by_running_the_sweep_again_stays_in_its_group(tmp_path: Path) -> None:
    """Run again as the interrupt line says, a sweep job records the sweep's overrides (model=lenet5,
    dataset=digits, seed=1, ...): applied as values, `model=lenet5` replaced the model section with a string, so the
    resumed seed was a row of its own and the group listed it as missing."""
    out = tmp_path / "outputs"
    first = sweep(out, "finetune", [0.90, 0.92])
    interrupted = model_run(out, "finetune", "10-00-00-multirun/2", 0.0, seed=2, status="interrupted")
    again = _resumed(out, "11-00-00-multirun/2", interrupted, ["model=resnet18", "dataset=digits", "seed=2",
                                                                 "trainer.epochs=2"], 0.94, took_over=1, seed=2)
    [group] = build_report(out).all_seed_groups
    assert {r.run.path for r in group.rows} == {*first, again} and group.missing == []


def test_a_run_resumed_with_changed_settings_is_not_grouped_with_fresh_runs_of_them(tmp_path: Path) -> None:
    """A 2-epoch run extended with resume= trainer.epochs=4 trained another course (its schedule planned for 2) than
    a fresh 4-epoch run: they were one group, "± std" the gap between two recipes. Where it took over and what it
    changed are part of what a run is; resumes that took over at the same epoch with the same change group."""
    out = tmp_path / "outputs"
    fresh = sweep(out, "finetune", [0.95, 0.96], settings={"trainer": {"epochs": 4}})
    short = sweep(out, "finetune", [0.90, 0.91], name="09-00-00-multirun")
    extended = [_resumed(out, f"ext{i}", run, ["trainer.epochs=4"], 0.93, took_over=2, seed=i)
                for i, run in enumerate(short)]
    elsewhere = _resumed(out, "ext_at_1", short[0], ["trainer.epochs=4"], 0.92, took_over=1)
    unknown = _resumed(out, "ext_unknown", short[1], ["trainer.epochs=4"], 0.92, took_over=None, seed=1)
    groups = {frozenset(r.run.path for r in g.rows) for g in build_report(out).all_seed_groups}
    assert frozenset(fresh) in groups and frozenset(extended) in groups
    assert frozenset([elsewhere]) in groups and frozenset([unknown]) in groups


def test_a_value_typed_as_hydra_reads_it_is_no_change_on_resume(tmp_path: Path) -> None:
    """`resume=true optim.lr=1e-3` retyped with the saved 0.001: YAML 1.1 read "1e-3" as text, a changed setting, so
    the resumed seed left its group (and the group listed it as missing)."""
    out = tmp_path / "outputs"
    first = sweep(out, "finetune", [0.90, 0.92], settings={"optim": {"lr": 0.001}})
    interrupted = model_run(out, "finetune", "10-00-00-multirun/2", 0.0, seed=2, status="interrupted",
                            settings={"optim": {"lr": 0.001}})
    again = _resumed(out, "again", interrupted, ["seed=2", "optim.lr=1e-3"], 0.94, took_over=1, seed=2)
    [group] = build_report(out).all_seed_groups
    assert {r.run.path for r in group.rows} == {*first, again} and group.missing == []


def test_a_resume_that_only_moved_the_run_stays_in_its_group(tmp_path: Path) -> None:
    """`resume=RUN device=cpu trainer.workers=0` runs the same course elsewhere: it was a course of its own (and its
    group listed the seed as missing); a changed setting beside them still is one."""
    out = tmp_path / "outputs"
    first = sweep(out, "finetune", [0.90, 0.92])
    interrupted = model_run(out, "finetune", "10-00-00-multirun/2", 0.0, seed=2, status="interrupted")
    moved = _resumed(out, "moved", interrupted, ["seed=2", "device=cpu", "trainer.workers=0", "logger=csv"], 0.94,
                     took_over=1, seed=2)
    changed = _resumed(out, "changed", interrupted, ["seed=2", "device=cpu", "trainer.epochs=9"], 0.95, took_over=1,
                       seed=2)
    groups = {frozenset(r.run.path for r in g.rows) for g in build_report(out).all_seed_groups}
    assert frozenset([*first, moved]) in groups and frozenset([changed]) in groups


def test_a_fresh_seed_run_elsewhere_or_more_visibly_stays_in_its_group(tmp_path: Path) -> None:
    """Probe 88: `seed=2 trainer.log_every=5` (or device=cpu, trainer.workers=0) on a fresh run made a group of its
    own, though the docs call these no change of course (and a resume with them stayed in the group)."""
    out = tmp_path / "outputs"
    first = sweep(out, "finetune", [0.90, 0.92])
    visible = model_run(out, "finetune", "more-visible", 0.94, seed=2,
                        settings={"device": "cpu", "trainer": {"log_every": 5, "workers": 0}, "logger": "csv"})
    plain = [model_run(out, "finetune", f"plain-{i}", 0.5, overrides=["command=finetune", "model=lenet5", f"seed={i}",
                                                                       *(["trainer.log_every=5"] if i else [])])
             for i in range(2)]  # without a saved config: grouped by the overrides run.json records
    other = model_run(out, "finetune", "other-epochs", 0.95, seed=3, settings={"trainer": {"epochs": 9}})
    groups = {frozenset(r.run.path for r in g.rows) for g in build_report(out).all_seed_groups}
    assert {frozenset([*first, visible]), frozenset(plain), frozenset([other])} <= groups


def test_a_nul_in_a_recorded_run_path_is_a_damaged_reference_not_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    sweep(out, "finetune", [0.90, 0.92])
    odd = _resumed(out, "odd", tmp_path / "x", [], 0.9, took_over=1)
    record = json.loads((odd / "run.json").read_text())
    (odd / "run.json").write_text(json.dumps({**record, "resumed_from": "a\u0000b"}))
    report = build_report(out)
    assert sum(g.n for g in report.all_seed_groups) + len(report.left_out) == 3


def test_plot_has_error_bars_of_one_std_over_seeds(seeds: Path) -> None:
    from matplotlib.container import ErrorbarContainer

    for command, p50s in (("prune", (1.0, 1.1, 1.2)), ("quantize", (0.5, 0.5, 0.5))):
        for i, p50 in enumerate(p50s):
            bench_run(seeds, f"{command}-{i}", seeds / command / "2026-11-28" / "10-00-00-multirun" / str(i), p50)
    report = build_report(seeds)
    [groups] = report.seed_groups.values()
    fig = figure(groups, "digits")
    [bars] = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    segments = [seg for collection in bars.lines[2] for seg in collection.get_segments()]
    vertical = {round(abs(s[1][1] - s[0][1]), 4) for s in segments if s[0][0] == s[1][0] and s[0][1] != s[1][1]}
    horizontal = {round(abs(s[1][0] - s[0][0]), 4) for s in segments if s[0][1] == s[1][1]}
    # ± one std: finetune 92.00 ± 2.00 % → a 4-point bar; prune 93.20 ± 2.20; quantize 91.80 ± 2.31 (90.0, 91.0, 94.4)
    assert vertical == {4.0, 4.4, round(2 * 100 * math.sqrt(((0.91 - 0.918) ** 2 + (0.90 - 0.918) ** 2
                                                             + (0.944 - 0.918) ** 2) / 2), 4)}
    assert horizontal == {0.4, 0.2, 0.0}  # 2.2 ± 0.2 ms, 1.1 ± 0.1 ms, 0.5 ± 0 ms
    assert len(groups) == 4  # the 5-epoch fine-tuning: a run alone, no bar
    assert "(3 seeds)" in " ".join(t.get_text() for t in fig.axes[0].texts)
    import matplotlib.pyplot as plt

    plt.close(fig)
    write_report(report)
    assert (seeds / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_error_bars_stay_inside_what_the_axes_can_hold() -> None:
    """Probe 125: 62.04 ± 45.21 % drew a bar up to 107 %; a latency bar may not reach below 0 ms either."""
    from cnnlab.report.plot import error_bars

    assert error_bars([(45.21, 62.04, 100.0), (2.0, 92.0, 100.0), (5.0, 3.0, 100.0)]) == \
        [[45.21, 2.0, 3.0], [pytest.approx(37.96), 2.0, 5.0]]
    assert error_bars([(0.3, 0.2, None), (0.1, 1.0, None)]) == [[0.2, 0.1], [0.3, 0.1]]


def test_a_real_seed_sweep_is_one_group(cli, outputs: Path) -> None:
    """End to end: `cnnlab pretrain -m seed=0,1` saves its configs where the report reads them."""
    from helpers import TINY

    assert cli("pretrain", "-m", *TINY, "seed=0,1").code == 0
    assert cli("pretrain", *TINY, "seed=0", "trainer.epochs=2").code == 0  # other settings: its own group
    result = cli("report", str(outputs))
    assert result.code == 0, result.output
    groups = json.loads((outputs / "report.json").read_text())["groups"]
    assert sorted(g["n_runs"] for g in groups) == [1, 2]
    pair = next(g for g in groups if g["n_runs"] == 2)
    assert pair["seeds"] == [0, 1] and pair["val_top1"]["std"] is not None
    assert "seed 1" in result.stdout


@pytest.mark.parametrize("rounds, cell", [
    # seed 0 twice as fast, seed 1 twice as slow: 1×, where the arithmetic mean of 2 and 0.5 said 1.25×
    (([10.0, 5.0], [5.0, 10.0]), "1.00× (geometric mean of 2 seeds)"),
    (([8.0, 2.0], [4.0, 4.0]), "2.00× faster (geometric mean of 2 seeds)"),  # 4× and 1×: not 2.50×
])
def test_a_group_speedup_is_the_geometric_mean_of_its_runs_ratios(tmp_path: Path, rounds, cell: str) -> None:
    from cnnlab.report.formats import group_speedup_cell

    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92])
    int8 = sweep(out, "quantize", [0.89, 0.91], sources=tuned, onnx_bytes=1000)
    for i, (source_ms, int8_ms) in enumerate(rounds):
        paired_run(out, f"p{i}", [tuned[i], int8[i]], [[source_ms] * 3, [int8_ms] * 3])
    report = build_report(out)
    group = group_of(report, "quantize")
    assert group_speedup_cell(group) == cell
    from cnnlab.report.formats import group_speedup

    ratios = [row.speedup.shown for row in group.rows]
    assert group_speedup(group) == pytest.approx(math.sqrt(ratios[0] * ratios[1]))
    write_report(report)
    assert f"| {cell} |" in (out / "report.md").read_text()


def _search_reference(run_dir: Path, name: str) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**record, "search": {"settings": {"reference": name}}}))


def test_a_group_speedup_says_what_it_is_and_why_some_seeds_have_none(tmp_path: Path) -> None:
    """A search group read "3.00× faster vs mobilenet_v2 (1 of 2 paired)": its ratio is not a paired bench
    session's, and the other seed was not unpaired — its search recorded no ratio. The count says seeds, and why."""
    from cnnlab.report.formats import group_speedup_cell

    out = tmp_path / "outputs"
    searched = sweep(out, "search", [0.94, 0.93], model="searched",
                     metrics=[{"speedup_vs_reference": 3.0}, {}])
    for run in searched:
        _search_reference(run, "mobilenet_v2")
    tuned = sweep(out, "finetune", [0.90, 0.92, 0.94], name="11-00-00-multirun")
    int8 = sweep(out, "quantize", [0.89, 0.91, 0.93], sources=tuned, onnx_bytes=1000, name="11-00-00-multirun")
    paired_run(out, "p0", [tuned[0], int8[0]], [[10.0, 10.1, 9.9], [5.0, 5.05, 4.95]])  # 2×
    paired_run(out, "p1", [tuned[1], int8[1]], [[10.0, 12.0, 9.0], [5.0, 4.0, 6.0]])    # rounds 2×, 3×, 1.5×
    kept = sweep(out, "quantize", [0.90, 0.92], sources=tuned[:2], onnx_bytes=4000, precision="fp32",
                 name="12-00-00-multirun")
    paired_run(out, "p2", [tuned[0], kept[0]], [[10.0, 10.1, 9.9], [10.1, 10.2, 10.0]])  # the FP32 graph kept
    report = build_report(out)
    cells = {f"{group.first.command} {group.first.run.path.parent.name}": group_speedup_cell(group)
             for group in report.all_seed_groups if group.n > 1}
    assert cells["search 10-00-00-multirun"] == "3.00× faster vs mobilenet_v2 (1 of 2 seeds; 1 with no ratio recorded)"
    assert cells["quantize 11-00-00-multirun"] == "2.00× faster (1 of 3 seeds; 1 unstable, 1 unpaired)"
    # the qualifier of the ratios shown stays, whatever the others are
    assert cells["quantize 12-00-00-multirun"] == "1.01× slower (same network: noise) (1 of 2 seeds; 1 unpaired)"
    assert cells["finetune 11-00-00-multirun"] == "—" and not any(" paired)" in cell for cell in cells.values())


def test_report_csv_and_json_hold_seeds_as_numbers(seeds: Path) -> None:
    """report.csv's seed column read "seed 0": text a spreadsheet or pandas cannot sort or join on."""
    tuned = [seeds / "finetune" / "2026-11-28" / "10-00-00-multirun" / str(i) for i in range(3)]
    # prune seeds 0 and 1 of fine-tuning seed 0, seed 0 of fine-tuning seed 1: two seed levels vary
    sweep(seeds, "prune", [0.80, 0.81, 0.82], name="11-00-00-multirun", sources=[tuned[0], tuned[0], tuned[1]],
          seeds=[0, 1, 0], model="resnet18", params=200_000, settings={"prune": {"ratio": 0.7}})
    for name in ("a", "b"):  # grouped by their recorded overrides, which set no seed
        model_run(seeds, "finetune", f"unseeded-{name}", 0.5, model="lenet5",
                  overrides=["command=finetune", "model=lenet5"])
    report = build_report(seeds)
    write_report(report)
    with open(seeds / "report.csv", newline="") as f:
        found = {line["run"]: line["seed"] for line in csv.DictReader(f)}
    assert found["finetune/2026-11-28/10-00-00-multirun/2"] == "2"
    assert found["prune/2026-11-28/10-00-00-multirun/1"] == "1"  # its fine-tuning seed: what varies in its group
    assert found["finetune/2026-11-28/long"] == "0"
    assert found["finetune/2026-11-28/unseeded-a"] == "" and found["finetune/2026-11-28/unseeded-b"] == ""
    assert [found[f"prune/2026-11-28/11-00-00-multirun/{i}"] for i in range(3)] == ["0/0", "0/1", "1/0"]
    assert all(seed == "" or seed.isdigit() or "/" in seed for seed in found.values())
    groups = {tuple(g["runs"]): g["seeds"] for g in json.loads((seeds / "report.json").read_text())["groups"]}
    assert groups[tuple(f"finetune/2026-11-28/10-00-00-multirun/{i}" for i in range(3))] == [0, 1, 2]
    assert groups[("finetune/2026-11-28/unseeded-a", "finetune/2026-11-28/unseeded-b")] == [None, None]
    md = (seeds / "report.md").read_text()
    assert "| └ unseeded-a | seed not recorded |" in md and "| └ 1 | seed 0/1 |" in md and "seed ?" not in md


def test_one_recipe_that_produced_different_networks_is_never_one_seed_group(tmp_path: Path) -> None:
    """Two `cnnlab search` runs with the same settings and seed chose different networks; the report made them one
    group ("2 runs, 1 seeds"): accuracy averaged over two models, params from one, latency from the other."""
    out = tmp_path / "outputs"
    a = model_run(out, "search", "a", 0.25, model="searched", seed=0, params=2260, arch="r16_w0.5_k3e6")
    b = model_run(out, "search", "b", 0.50, model="searched", seed=0, params=2492, arch="r16_w0.5_k5e3.se")
    same = model_run(out, "search", "c", 0.75, model="searched", seed=1, params=2260, arch="r16_w0.5_k3e6")
    bench_run(out, "ba", a, 1.0)
    bench_run(out, "bb", b, 9.0)
    # one prune recipe over fine-tuning seeds: a run that kept other channels (other params) is another network
    tuned = sweep(out, "finetune", [0.9, 0.9, 0.9])
    pruned = sweep(out, "prune", [0.8, 0.8, 0.8], sources=tuned, name="11-00-00-multirun")
    odd = model_run(out, "prune", "11-00-00-multirun-odd", 0.7, seed=0, source=tuned[0], params=400_000)
    report = build_report(out)
    groups = {frozenset(r.run.path for r in g.rows): g for g in report.all_seed_groups}
    assert frozenset({a, same}) in groups and frozenset({b}) in groups
    assert groups[frozenset({a, same})].latency.values == (1.0,) and groups[frozenset({b})].p50_ms == 9.0
    assert frozenset(pruned) in groups and frozenset({odd}) in groups
    write_report(report)
    by_run = {row["run"]: row["group"] for row in csv.DictReader((out / "report.csv").open())}
    assert by_run["search/2026-11-28/a"] == by_run["search/2026-11-28/c"] != by_run["search/2026-11-28/b"]
    assert by_run["prune/2026-11-28/11-00-00-multirun-odd"] != by_run["prune/2026-11-28/11-00-00-multirun/0"]


@pytest.mark.parametrize("value", ["false", "null", "none", "no", "0", "False", "~"])
def test_resume_false_like_values_do_not_split_a_seed_group(tmp_path: Path, value: str) -> None:
    """`resume=false` on the command line (recorded in the saved config and the overrides) put an otherwise
    identical run in a group of its own."""
    import yaml

    out = tmp_path / "outputs"
    runs = sweep(out, "finetune", [0.90, 0.92])
    extra = model_run(out, "finetune", "10-00-00-multirun/2", 0.94, seed=2, overrides=[f"resume={value}"],
                      settings={"resume": yaml.safe_load(value)})
    # without a saved config: grouped by the overrides run.json records
    plain = [model_run(out, "finetune", f"plain-{i}", 0.5, overrides=["command=finetune", "model=lenet5", f"seed={i}",
                                                                       *([f"resume={value}"] if i else [])])
             for i in range(2)]
    report = build_report(out)
    groups = {frozenset(r.run.path for r in g.rows) for g in report.all_seed_groups}
    assert groups == {frozenset({*runs, extra}), frozenset(plain)}


def test_a_distill_resumed_with_changed_settings_says_its_kd_gain_is_not_like_for_like(tmp_path: Path) -> None:
    """The run warned that kd_gain compares unlike courses, but the report's differences table showed the figure
    under "the student alone, same budget" with no word of it."""
    out = tmp_path / "outputs"
    model_run(out, "distill", "fresh", 0.60, seed=0, metrics={"baseline_val_acc": 0.55})
    resumed = model_run(out, "distill", "extended", 0.62, seed=0, metrics={"baseline_val_acc": 0.58},
                        settings={"trainer": {"epochs": 3}})
    record = json.loads((resumed / "run.json").read_text())
    (resumed / "run.json").write_text(json.dumps({**record, "resume_changed": ["trainer.epochs=2 (saved: 1)"]}))
    report = build_report(out)
    caveats = {g.first.run.path.name: [c.caveat for c in g.changes] for g in report.all_seed_groups}
    assert caveats["fresh"] == [""] and "unlike courses" in caveats["extended"][0]
    write_report(report)
    line = next(ln for ln in (out / "report.md").read_text().splitlines() if "extended" in ln and "KD gain" in ln)
    assert "unlike courses" in line
    [changes] = [g["changes"] for g in json.loads((out / "report.json").read_text())["groups"]
                 if g["runs"][0].endswith("extended")]
    assert "unlike courses" in changes[0]["caveat"]



def test_a_distill_group_over_teacher_seeds_with_one_student_seed_says_so(tmp_path: Path) -> None:
    """Probe 88: `distill -m teacher.weights=T0,T1,T2` (each distill at seed 0) read as a 3-seed KD gain with an
    interval, though the three students started from one initialisation and data order."""
    out = tmp_path / "outputs"
    teachers = sweep(out, "pretrain", [0.90, 0.92, 0.91])
    sweep(out, "distill", [0.60, 0.62, 0.61], name="11-00-00-multirun", sources=teachers,
          metrics=[{"baseline_val_acc": 0.55}] * 3)  # one student seed: its baseline alike
    own = sweep(out, "distill", [0.60, 0.62, 0.61], name="12-00-00-multirun", sources=teachers, seeds=[5, 6, 7],
                metrics=[{"baseline_val_acc": b} for b in (0.55, 0.57, 0.53)], settings={"trainer": {"epochs": 3}})
    caveats = {g.first.run.path.parent.name: g.changes[0].caveat for g in build_report(out).all_seed_groups
               if g.first.run.command == "distill"}
    assert "every student trained with seed 0: the spread is the teachers' alone" in caveats["11-00-00-multirun"]
    assert caveats[own[0].parent.name] == ""  # each student its own seed


def test_a_lone_derived_run_names_every_seed_of_its_lineage() -> None:
    """Probe 63: a lone prune (seed 0) of a seed-4 fine-tune read seed 0 in report.csv, while in a group the column
    holds the fine-tuning seed: joined on `seed`, it paired with seed 0's runs."""
    lone = SeedGroup(members=[((4, 0), None)])  # type: ignore[list-item]  # seed_* read only the lineage
    assert lone.seed_value((4, 0)) == "4/0" and lone.seed_label((4, 0)) == "seed 4/0"
    longer = SeedGroup(members=[((4, 0, 0, 0), None)])  # type: ignore[list-item]  # its export's quantize: probe 64
    assert longer.seed_value((4, 0, 0, 0)) == "4/0"
    same = SeedGroup(members=[((3, 3), None)])  # type: ignore[list-item]
    assert same.seed_value((3, 3)) == 3 and same.seed_label((3, 3)) == "seed 3"
    grouped = SeedGroup(members=[((1, 0), None), ((2, 0), None)])  # type: ignore[list-item]
    assert [grouped.seed_value(s) for s in grouped.lineages] == [1, 2]


def test_a_sweep_folder_reported_alone_keeps_the_bench_and_evaluate_runs_beside_it(tmp_path: Path) -> None:
    """Probe 63: `cnnlab report SWEEP_FOLDER` (and `--runs GLOB`) said "not benchmarked" of models that bench runs in
    the outputs folder around it had timed, and dropped their test top-1; its hint (`cnnlab bench source=…`) wrote
    one more bench run there, so following it changed nothing."""
    out = tmp_path / "outputs"
    tuned = sweep(out, "finetune", [0.90, 0.92, 0.94])
    for i, run in enumerate(tuned):
        bench_run(out, f"b{i}", run, 2.0 + 0.2 * i)
        evaluate_run(out, f"e{i}", run, 0.89 + 0.01 * i)
    for report in (build_report(tuned[0].parent), build_report(out, pattern="finetune/*/*-multirun/*")):
        rows = sorted(report.rows, key=lambda row: row.accuracy)
        assert [row.latency.p50_ms if row.latency else None for row in rows] == [2.0, 2.2, 2.4]
        assert [row.test_accuracy for row in rows] == pytest.approx([0.89, 0.90, 0.91])
        assert len(rows) == 3  # the bench and evaluate runs attach; they make no row


def test_a_run_whose_source_is_gone_is_shown_apart_and_said_so(seeds: Path) -> None:
    """Probe 63: a source run deleted after its children were made split its child off its seed group (3 runs with
    an interval became 2 and 1) without a word."""
    import shutil

    source = next(p for p in (seeds / "finetune").rglob("run.json") if p.parent.name == "1").parent
    shutil.rmtree(source)
    report = build_report(seeds)
    apart = [g for g in report.all_seed_groups if g.sources_gone]  # the prune and the quantize of seed 1
    assert sorted((g.first.command, g.n) for g in apart) == [("prune", 1), ("quantize", 1)]
    write_report(report)
    md = (seeds / "report.md").read_text()
    assert "## Runs whose source is gone" in md and f"its source run {source} is gone or unreadable" in md


def test_a_seed_scored_on_test_as_it_was_is_not_averaged_with_one_scored_on_test_as_it_is(tmp_path: Path) -> None:
    """Probe 77: after test/ was edited and seed 1 evaluated again, the group's test top-1 averaged seed 0's 100 % on
    the old test/ (12 images) with seed 1's score on the new one (14 images): 82.14 ± 25.25 %, nothing said. Probe
    78: a rule that took the newest evaluation for the current test split showed a stale score once test/ changed
    again. A test score whose folder's test split is not the one on disk now (its training pictures as recorded) is
    left out with a note; evaluated again, it counts."""
    from cnnlab.data.content import folder_digest
    from cnnlab.data.layout import training_digest

    pics = tmp_path / "pics"
    for split in ("train", "test"):
        (pics / split / "cat").mkdir(parents=True)
        (pics / split / "cat" / "0.png").write_bytes(split.encode())

    def now() -> dict:
        return {**folder_dataset(pics), "content": folder_digest(pics), "train_content": training_digest(pics)}

    out = tmp_path / "outputs"
    trained = now()
    seed0 = model_run(out, "pretrain", "s0", 0.9, seed=0, dataset=trained)
    seed1 = model_run(out, "pretrain", "s1", 0.9, seed=1, dataset=trained)
    evaluate_run(out, "e0", seed0, 1.0, dataset=trained, started="2026-11-28T10:00:00")
    (pics / "test" / "cat" / "0.png").unlink()  # test/ edited: the training pictures as they were
    (pics / "test" / "cat" / "1.png").write_bytes(b"new")
    evaluate_run(out, "e1", seed1, 0.5, dataset=now(), started="2026-11-28T10:01:00")
    report = build_report(out)
    rows = {row.run.path: row for row in report.rows}
    assert rows[seed1].test_accuracy == 0.5
    assert rows[seed0].test_accuracy is None and "as it was before it changed" in rows[seed0].test_note
    group = next(g for g in report.all_seed_groups if len(g.rows) == 2)
    assert group.test is not None and group.test.mean == 0.5 and group.test.n == 1
    (pics / "test" / "cat" / "2.png").write_bytes(b"newer")  # changed again: neither score is of test/ as it is
    assert all(row.test_accuracy is None for row in build_report(out).rows)
    evaluate_run(out, "e0again", seed0, 0.75, dataset=now(), started="2026-11-28T10:02:00")  # the fix
    evaluate_run(out, "e1again", seed1, 0.5, dataset=now(), started="2026-11-28T10:03:00")
    group = next(g for g in build_report(out).all_seed_groups if len(g.rows) == 2)
    assert group.test is not None and group.test.n == 2 and group.test.mean == pytest.approx(0.625)


def test_seeds_scored_on_two_versions_of_a_moved_folders_test_split_are_not_averaged(tmp_path: Path) -> None:
    """Probe 79: two seeds evaluated, the folder moved (`mv` keeps names, sizes and times), test/ edited, seed 0
    evaluated at the new place: the group read 70.45 ± 28.93 %, seed 1's score on the old test/ (whose folder is gone,
    so the disk cannot tell) averaged with seed 0's on the new one. The records tell: the same training pictures,
    two whole-folder digests; the newest evaluation's version is kept."""
    import shutil

    from report.fakes import folder_dataset

    from cnnlab.data.content import folder_digest
    from cnnlab.data.layout import training_digest

    pics = tmp_path / "pics"
    for split in ("train", "test"):
        (pics / split / "cat").mkdir(parents=True)
        (pics / split / "cat" / "0.png").write_bytes(split.encode())

    def now(root: Path) -> dict:
        return {**folder_dataset(root), "content": folder_digest(root), "train_content": training_digest(root)}

    out = tmp_path / "outputs"
    trained = now(pics)
    seed0 = model_run(out, "pretrain", "s0", 0.9, seed=0, dataset=trained)
    seed1 = model_run(out, "pretrain", "s1", 0.9, seed=1, dataset=trained)
    evaluate_run(out, "e1", seed1, 0.5, dataset=trained, started="2026-11-28T10:00:00")
    moved = tmp_path / "moved"
    shutil.move(str(pics), str(moved))
    (moved / "test" / "cat" / "1.png").write_bytes(b"new")
    assert training_digest(moved) == trained["train_content"]  # mv kept the training pictures' names and times
    evaluate_run(out, "e0", seed0, 0.9, dataset=now(moved), started="2026-11-28T11:00:00")
    rows = {row.run.path: row for row in build_report(out).rows}
    assert rows[seed0].test_accuracy == 0.9
    assert rows[seed1].test_accuracy is None and "as it was before it changed" in (rows[seed1].test_note or "")
    group = next(g for g in build_report(out).all_seed_groups if len(g.rows) == 2)
    assert group.test is not None and group.test.n == 1 and group.test.mean == 0.9


def test_a_seed_groups_size_is_of_one_file_kind_and_a_changed_model_pt_keeps_its_recorded_size(tmp_path: Path) -> None:
    """Probe 98: three seeds, one exported (ONNX 283,688 B) and two not (model.pt 253,749 B), read "0.26 MB onnx" — the
    mean of both kinds, a size no file has; a model.pt replaced by a 5-byte file read "0.0 kB pt" with no note."""
    import json

    from cnnlab.report import Comparison, build_report
    from cnnlab.report.formats import group_size_cell

    out = tmp_path / "outputs"
    runs = sweep(out, "finetune", [0.90, 0.92, 0.94])
    (runs[0] / "model.onnx").write_bytes(b"\0" * 5000)
    record = json.loads((runs[0] / "run.json").read_text())
    record["artifacts"]["onnx"] = "model.onnx"
    (runs[0] / "run.json").write_text(json.dumps(record))
    [group] = build_report(out, comparison=Comparison()).all_seed_groups
    assert group_size_cell(group) == "1.0 kB pt (2 of 3 runs)"
    record = json.loads((runs[1] / "run.json").read_text())
    record["model"]["file_bytes"] = 1000
    (runs[1] / "run.json").write_text(json.dumps(record))
    (runs[1] / "model.pt").write_bytes(b"hello")
    report = build_report(out, comparison=Comparison())
    [group] = report.all_seed_groups
    changed = next(row for row in report.rows if row.run.path == runs[1])
    assert changed.file_bytes == 1000 and changed.file_recorded == "changed"
    assert changed.file_note == "model.pt changed since it ran (0.0 kB now): the size shown is the one recorded"


def test_seeds_of_one_folder_read_through_a_link_or_after_a_move_are_one_group(tmp_path: Path) -> None:
    """Probe 101: three seeds of one recipe, seed 0 reading the folder through a symlink (or before a `mv`), were two
    rows (41.33 ± 6.60 % and 35.33 %) where the same three typed alike were one (39.33 ± 5.81 %)."""
    from cnnlab.data.content import folder_digest
    from cnnlab.data.layout import training_digest

    pics = tmp_path / "pics"
    (pics / "cat").mkdir(parents=True)
    (pics / "cat" / "0.png").write_bytes(b"pixels")
    (tmp_path / "link").symlink_to(pics)
    out = tmp_path / "outputs"
    for seed, (root, acc) in enumerate(((tmp_path / "link", 0.3533), (pics, 0.4133), (pics, 0.40))):
        recorded = {**folder_dataset(root), "content": folder_digest(pics), "train_content": training_digest(pics)}
        model_run(out, "pretrain", f"s{seed}", acc, seed=seed, dataset=recorded,
                  settings={"dataset": {"name": "imagefolder", "root": str(root)}})
    [group] = build_report(out).all_seed_groups
    assert group.n == 3 and group.val.n == 3
    # probe 102: a second folder of the same training pictures with another test split is other data for a test score
    other = tmp_path / "other"
    (other / "train" / "cat").mkdir(parents=True)
    (other / "train" / "cat" / "0.png").write_bytes(b"pixels")
    (other / "test" / "cat").mkdir(parents=True)
    (other / "test" / "cat" / "0.png").write_bytes(b"other test")
    recorded = {**folder_dataset(other), "content": folder_digest(other), "train_content": training_digest(other)}
    model_run(out, "pretrain", "s3", 0.39, seed=3, dataset=recorded,
              settings={"dataset": {"name": "imagefolder", "root": str(other)}})
    assert sorted(g.n for g in build_report(out).all_seed_groups) == [1, 3]


def test_a_qat_runs_change_is_told_from_its_training(tmp_path: Path) -> None:
    """Probe 105: a QAT run's "INT8 top-1 change (vs FP32) +4.90 points" was one more epoch of training of an
    under-trained source; INT8 changed the QAT-trained weights by +0.07. With the trained weights scored in float,
    the INT8 change is against them; without (an older record), the change is named as QAT's as a whole."""
    import json

    out = tmp_path / "outputs"
    source = model_run(out, "finetune", "src", 0.69, seed=0)
    qat = model_run(out, "quantize", "qat", 0.7388, source=source, precision="int8", seed=0,
                    metrics={"fp32_val_acc": 0.6898, "qat_fp32_val_acc": 0.7381})
    record = json.loads((qat / "run.json").read_text())
    (qat / "run.json").write_text(json.dumps({**record, "quantize": {"mode": "qat"}}))
    [change] = [c for g in build_report(out).all_seed_groups for c in g.changes]
    assert (change.what, change.against) == ("INT8 top-1 change", "the QAT-trained weights in FP32")
    assert change.differences == pytest.approx((0.7388 - 0.7381,))
    record["metrics"].pop("qat_fp32_val_acc")
    (qat / "run.json").write_text(json.dumps({**record, "quantize": {"mode": "qat"}}))
    [change] = [c for g in build_report(out).all_seed_groups for c in g.changes]
    assert (change.what, change.against) == ("QAT top-1 change (training + INT8)", "the FP32 source")
    assert change.differences == pytest.approx((0.7388 - 0.6898,))


def test_seeds_that_wrote_one_model_file_are_one_replicate_not_three(tmp_path: Path) -> None:
    """Probe 141: `cnnlab prune -m seed=0,1,2 trainer.epochs=0` wrote one file three times (a prune no seed changes);
    the report read "74.72 ± 0.00%" over 3 seeds and a pruning change of -14.72 points with the interval
    [-14.72, -14.72], "significant" — one measurement, said as three."""
    from cnnlab.fileio import file_sha256

    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.8944)
    pruned = sweep(out, "prune", [0.7472] * 3, sources=[tuned] * 3, seeds=[0, 1, 2], params=300_000,
                   metrics=[{"acc_before": 0.8944}] * 3)
    for run in pruned:  # the very same model.pt; each run's model.onnx names the run in its metadata (probe 144)
        (run / "model.pt").write_bytes(b"one pruned network".ljust(1000, b"\0"))
        (run / "model.onnx").write_bytes(f"the same graph, source {run}".encode())
        record = json.loads((run / "run.json").read_text())
        record["digests"].update(model=file_sha256(run / "model.pt"), onnx=file_sha256(run / "model.onnx"))
        (run / "run.json").write_text(json.dumps(record))
    report = build_report(out)
    group = group_of(report, "prune")
    assert group.n == 3 and group.distinct_seeds == 3 and group.seeds == 1
    assert group.val.n == 1 and group.val.std is None  # no "± 0.00"
    [change] = group.changes
    assert list(change.differences) == pytest.approx([0.7472 - 0.8944]) and change.interval is None
    write_report(report)
    md = (out / "report.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| prune/"))
    assert "| 3 runs, 3 seeds, 1 model |" in line and "± 0.00" not in md, line


def test_two_settings_that_wrote_one_model_file_are_never_ranked_apart_on_the_pareto_front(tmp_path: Path) -> None:
    """Probe 141: `prune -m prune.taylor_batches=4,8` (a setting l2 importance never reads) wrote one file twice; the
    front starred one of the two by 0.6 % of timing noise."""
    from cnnlab.fileio import file_sha256

    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.85)
    runs = [model_run(out, "prune", f"p{n}", 0.7972, source=tuned, params=300_000,
                      settings={"prune": {"taylor_batches": n}}) for n in (4, 8)]
    for run, p50 in zip(runs, (0.049103, 0.049413)):
        (run / "model.pt").write_bytes(b"one pruned network".ljust(1000, b"\0"))
        (run / "model.onnx").write_bytes(f"the same graph, source {run}".encode())  # as real runs (probe 144)
        record = json.loads((run / "run.json").read_text())
        record["digests"].update(model=file_sha256(run / "model.pt"), onnx=file_sha256(run / "model.onnx"))
        (run / "run.json").write_text(json.dumps(record))
        bench_run(out, f"b-{run.name}", run, p50)
    bench_run(out, "b-tuned", tuned, 0.2)
    report = build_report(out)
    pruned = [g for g in report.all_seed_groups if g.first.command == "prune"]
    assert len(pruned) == 2 and all(g.pareto for g in pruned), [(g.label, g.pareto) for g in pruned]


def test_distill_runs_whose_students_started_from_different_models_are_no_seed_group(tmp_path: Path) -> None:
    """Probe 171: `distill -m student.weights=A,B` (one teacher, seed 0; students of 86.67 % and 55.00 %) read as one
    "2 runs, 1 seed" row of 70.83 % and one KD gain, with "the spread is the teachers' alone" for a single teacher:
    the student's start was set aside with the other references, and a distill's source is its teacher."""
    out = tmp_path / "outputs"
    teacher = model_run(out, "finetune", "teacher", 0.97, seed=0)
    starts = [model_run(out, "pretrain", "a", 0.80, seed=0),
              model_run(out, "pretrain", "b", 0.50, seed=0, settings={"trainer": {"epochs": 3}})]
    for name, start in (("kd-a", starts[0]), ("kd-b", starts[1]), ("kd-a-again", starts[0])):
        run = model_run(out, "distill", name, 0.87 if start == starts[0] else 0.55, source=teacher, seed=0,
                        metrics={"baseline_val_acc": 0.5})
        record = json.loads((run / "run.json").read_text())
        record["distill"] = {"student": {"source": {"run": str(start), "kind": "checkpoint",
                                                    "path": str(start / "model.pt"),
                                                    "sha256": file_sha256(start / "model.pt")}}}
        (run / "run.json").write_text(json.dumps(record))
    groups = {tuple(sorted(row.run.path.name for row in g.rows)): g for g in build_report(out).all_seed_groups
              if g.first.run.command == "distill"}
    assert sorted(groups) == [("kd-a", "kd-a-again"), ("kd-b",)], sorted(groups)
    assert groups[("kd-a", "kd-a-again")].changes[0].caveat == ""  # one teacher, one seed: no spread of teachers


def test_a_groups_p50_says_how_many_of_its_runs_were_timed(tmp_path: Path) -> None:
    """Probe 180: "2 runs, 1 seed" (the same settings run twice) read `0.131` — one run's p50 — where the size cell
    beside it said "(1 of 2 runs)"."""
    from cnnlab.report import build_report
    from cnnlab.report.formats import COLUMNS, group_cells

    out = tmp_path / "outputs"
    timed = model_run(out, "finetune", "a", 0.36, seed=0)
    model_run(out, "finetune", "b", 0.36, seed=0)
    bench_run(out, "b1", timed, 0.131)
    [group] = build_report(out).all_seed_groups
    assert len(group.rows) == 2 and group.seeds == 1
    cell = group_cells(group, out, COLUMNS)[list(COLUMNS).index("p50 ms")]
    assert cell == "0.131 (1 of 2 runs)"


def test_every_accuracy_a_change_is_measured_against_is_checked_on_read() -> None:
    """The report's reference keys (seeds.CHANGES, QAT_INT8, QAT_WHOLE) and the ones run.json's reader checks
    (records.REFERENCE_ACCURACIES) are two lists: a reference added to one alone would be read unchecked again
    (probe 225: `acc_before: 1.7` measured the change against the source's accuracy instead)."""
    from cnnlab.records import REFERENCE_ACCURACIES
    from cnnlab.report.seeds import CHANGES, QAT_INT8, QAT_WHOLE

    used = {key for _, key, _ in (*CHANGES.values(), QAT_INT8, QAT_WHOLE)}
    assert used <= set(REFERENCE_ACCURACIES), used - set(REFERENCE_ACCURACIES)
