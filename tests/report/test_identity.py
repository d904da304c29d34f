"""Which runs are on the same data: a dataset's identity (cnnlab/records.py DatasetIdentity) decides the tables and
Pareto fronts, which evaluate run is a model's test score, which differences mean anything, and (with the data each
run recorded and its paths resolved) which runs are seed twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from report.fakes import bench_run, evaluate_run, folder_dataset, model_run, paired_run, sweep

from cnnlab.conftree import CONF_DIR
from cnnlab.records import FOLDER_DATASETS, GENERATED_DATASETS, DatasetSection
from cnnlab.report import build_report, print_report, write_report
from cnnlab.runs import RunRecord


def _rows(report) -> dict[str, object]:
    return {row.run.path.name: row for row in report.rows}


# --- the identity itself ----------------------------------------------------------------------------------------------

def test_user_folder_and_generated_sets_are_the_ones_conf_declares() -> None:
    """FOLDER_DATASETS must be the sets whose images are the user's folder (conf: `root: null`, required), and a
    generated set's identity settings must be settings it has: records.py cannot import the torch-heavy registry."""
    confs = {path.stem: yaml.safe_load(path.read_text()) for path in (CONF_DIR / "dataset").glob("*.yaml")}
    assert set(FOLDER_DATASETS) == {name for name, conf in confs.items() if "root" in conf and conf["root"] is None}
    for name, settings in GENERATED_DATASETS.items():
        assert "root" not in confs[name] and set(settings) <= set(confs[name])


@pytest.mark.parametrize("a, b, same", [
    (folder_dataset("/A/data/rgb"), folder_dataset("/B/data/rgb"), False),   # two folders: two datasets
    (folder_dataset("/A/data/rgb"), folder_dataset("/A/data/../data/rgb/"), True),
    (folder_dataset("/A/cifar", name="cifar10"), folder_dataset("/B/cifar", name="cifar10"), True),  # two copies
    ({"name": "synthetic", "num_classes": 3, "image_size": 32, "config": {"seed": 0, "train_size": 20, "val_size": 9}},
     {"name": "synthetic", "num_classes": 3, "image_size": 32, "config": {"seed": 1, "train_size": 20, "val_size": 9}},
     False),                                                                 # other settings generate other images
    ({"name": "synthetic", "config": {"seed": 0, "augment": {"hflip": True}}},
     {"name": "synthetic", "config": {"seed": 0, "augment": {"hflip": False}}}, True),
    # a folder whose run recorded its content (folder_digest) is that content: moved, the same data
    ({**folder_dataset("/A/data/rgb"), "content": "0f1e"}, {**folder_dataset("/B/moved"), "content": "0f1e"}, True),
    ({**folder_dataset("/A/data/rgb"), "content": "0f1e"}, {**folder_dataset("/A/data/rgb"), "content": "77aa"}, False),
    (folder_dataset("/A/data/rgb"), {**folder_dataset("/B/moved"), "content": "0f1e"}, False),
])
def test_a_dataset_identity_is_its_folder_or_its_generating_settings_or_its_name(a: dict, b: dict, same: bool) -> None:
    assert (DatasetSection.from_dict(a).identity == DatasetSection.from_dict(b).identity) is same


def test_models_validated_on_other_carved_splits_are_two_tables_titled_by_their_split(tmp_path: Path) -> None:
    """digits at dataset.val_fraction=0.01 (18 val images) and at 0.2 (360 others, some of them the first run's
    training images) shared one table, one ranking and one Pareto front."""
    def digits(val_fraction: float, val_size: int, seed: int = 0) -> dict:
        return {"name": "digits", "num_classes": 10, "image_size": 32, "val_size": val_size,
                "train_size": 1797 - val_size, "config": {"val_fraction": val_fraction, "seed": seed}}

    out = tmp_path / "outputs"
    wide = model_run(out, "finetune", "wide", 0.9667, dataset=digits(0.2, 360))
    narrow = model_run(out, "finetune", "narrow", 0.2778, dataset=digits(0.01, 18))
    redrawn = model_run(out, "finetune", "redrawn", 0.95, dataset=digits(0.2, 360, seed=1))
    alike = model_run(out, "finetune", "alike", 0.96, dataset={**digits(0.2, 360), "train_size": 143,
                                                                 "label_fraction": 0.1})  # the same val images
    for i, run in enumerate((wide, narrow, redrawn, alike)):
        bench_run(out, f"b{i}", run, 2.0 - i / 10)
    report = build_report(out)
    assert {title: sorted(row.run.path.name for row in rows) for title, rows in report.groups.items()} == {
        "digits (10 classes, 32 px; 360 val images: val_fraction 0.2, dataset.seed 0)": ["alike", "wide"],
        "digits (10 classes, 32 px; 18 val images: val_fraction 0.01, dataset.seed 0)": ["narrow"],
        "digits (10 classes, 32 px; 360 val images: val_fraction 0.2, dataset.seed 1)": ["redrawn"]}
    assert _rows(report)["narrow"].pareto and _rows(report)["redrawn"].pareto  # each alone on its own front
    # the official test images do not depend on the carve: an evaluation recorded with another one is still the score
    evaluate_run(out, "test-of-wide", wide, 0.93, dataset=digits(0.3, 540))
    assert _rows(build_report(out))["wide"].test_accuracy == 0.93
    # one split alone: the title stays short
    assert set(build_report(out, pattern="finetune/*/[aw]*").groups) == {"digits (10 classes, 32 px)"}


def test_an_identity_holds_odd_recorded_values_without_failing() -> None:
    """run.json is untrusted: a list where a seed belongs must not make the identity unhashable."""
    identity = DatasetSection.from_dict({"name": "synthetic", "config": {"seed": [1, 2]}}).identity
    assert hash(identity) is not None and identity.settings == (("seed", "[1, 2]"),)


# --- tables and Pareto fronts (bug: imagefolder sets with the same classes and size shared one) -----------------------

def test_models_on_two_image_folders_are_two_tables_with_their_own_fronts(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    rgb = model_run(out, "pretrain", "rgb", 0.95, dataset=folder_dataset("/data/rgb"))
    hard = model_run(out, "pretrain", "hard", 0.30, dataset=folder_dataset("/data/hard"))
    bench_run(out, "b1", rgb, 2.0)
    bench_run(out, "b2", hard, 1.0)  # faster, on easier-looking numbers of another dataset
    report = build_report(out)
    assert set(report.groups) == {"imagefolder (3 classes, 32 px) at /data/rgb",
                                  "imagefolder (3 classes, 32 px) at /data/hard"}
    assert all(row.pareto for row in report.rows)  # each is alone on its own dataset's front
    written = {path.name for path in write_report(report)}
    assert {"report-imagefolder-3-classes-32-px-at-data-rgb.png",
            "report-imagefolder-3-classes-32-px-at-data-hard.png"} <= written
    md = (out / "report.md").read_text()
    assert "## imagefolder (3 classes, 32 px) at /data/rgb" in md and "at /data/hard" in md
    folders = {row["run"]: row["dataset_folder"] for row in json.loads((out / "report.json").read_text())["rows"]}
    assert folders == {"pretrain/2026-11-28/rgb": "/data/rgb", "pretrain/2026-11-28/hard": "/data/hard"}


def test_a_canonical_set_is_one_table_wherever_its_copy_lies_and_a_generated_set_by_its_settings(
        tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    model_run(out, "finetune", "here", 0.9, dataset=folder_dataset("/here/cifar10", name="cifar10"))
    model_run(out, "finetune", "there", 0.8, dataset=folder_dataset("/there/cifar10", name="cifar10"))
    for name, seed in (("s0", 0), ("s0b", 0), ("s1", 1)):
        model_run(out, "pretrain", name, 0.5, dataset={"name": "synthetic", "num_classes": 4, "image_size": 16,
                                                       "config": {"seed": seed, "train_size": 64, "val_size": 32}})
    groups = {title: sorted(row.run.path.name for row in rows) for title, rows in build_report(out).groups.items()}
    assert groups == {"cifar10 (3 classes, 32 px)": ["here", "there"],
                      "synthetic (4 classes, 16 px; seed 0, train_size 64, val_size 32)": ["s0", "s0b"],
                      "synthetic (4 classes, 16 px; seed 1, train_size 64, val_size 32)": ["s1"]}


def test_a_pruned_and_a_quantized_model_share_their_sources_table(tmp_path: Path) -> None:
    """Derived runs record the data they rebuilt from their source's record: the same identity, the same table,
    and a speed-up against the source."""
    out = tmp_path / "outputs"
    data = folder_dataset("/data/rgb")
    tuned = model_run(out, "finetune", "tuned", 0.95, dataset=data, onnx_bytes=40_000)
    pruned = model_run(out, "prune", "pruned", 0.94, source=tuned, dataset=data, onnx_bytes=20_000, params=500_000)
    int8 = model_run(out, "quantize", "int8", 0.945, source=tuned, dataset=data, onnx_bytes=10_000)
    paired_run(out, "paired", [tuned, pruned, int8], [[4.0, 4.0, 4.0], [2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    report = build_report(out)
    assert list(report.groups) == ["imagefolder (3 classes, 32 px) at /data/rgb"]
    rows = _rows(report)
    assert rows["pruned"].speedup.shown == pytest.approx(2.0) and rows["int8"].speedup.shown == pytest.approx(4.0)


# --- test top-1 (bug: an evaluation on other data was shown as the model's test score) ------------------------------

@pytest.fixture
def evaluated(tmp_path: Path) -> Path:
    """A model trained on data/rgb, scored on its own test split (100 %) and then on another folder (33 %)."""
    out = tmp_path / "outputs"
    model = model_run(out, "pretrain", "model", 1.0, dataset=folder_dataset("/p/data/rgb"))
    evaluate_run(out, "own", model, 1.0, started="2026-12-02T06:58:37", dataset=folder_dataset("/p/data/rgb"))
    evaluate_run(out, "swap", model, 1 / 3, started="2026-12-02T06:58:43", dataset=folder_dataset("/p/data/swap"))
    return out


def test_a_test_score_on_other_data_is_not_the_models_test_top1(evaluated: Path) -> None:
    row = _rows(build_report(evaluated))["model"]
    assert row.test_accuracy == 1.0 and row.evaluate_run.name == "own"  # the newer "swap" scored other data


def test_a_test_score_on_the_same_folder_moved_is_the_models_test_top1(tmp_path: Path) -> None:
    """`mv data /mnt/data`, then `evaluate dataset.root=/mnt/data`: the test column stayed empty (other data by
    path), though the recorded content — every picture's path, size and time — is the same."""
    out = tmp_path / "outputs"
    model = model_run(out, "pretrain", "model", 1.0, dataset={**folder_dataset("/p/data/rgb"), "content": "0f1e"})
    evaluate_run(out, "moved", model, 0.9, dataset={**folder_dataset("/mnt/rgb"), "content": "0f1e"})
    report = build_report(out)
    row = _rows(report)["model"]
    assert row.test_accuracy == 0.9 and row.evaluate_run.name == "moved"
    [title] = report.groups  # the root the test score was read at is named too (before: the training root alone)
    assert "/p/data/rgb" in title and "(also read at /mnt/rgb)" in title


def test_the_title_of_a_moved_folder_names_every_root_it_was_read_at(tmp_path: Path) -> None:
    """Runs on one folder's content before and after `mv` are one table, titled by the first root read alone: the
    new root, where the data is now, was nowhere in the report."""
    out = tmp_path / "outputs"
    model = model_run(out, "pretrain", "model", 0.9, dataset={**folder_dataset("/p/data/rgb"), "content": "0f1e"})
    model_run(out, "prune", "pruned", 0.88, source=model, dataset={**folder_dataset("/mnt/rgb"), "content": "0f1e"})
    [title] = build_report(out).groups
    assert "/p/data/rgb" in title and "/mnt/rgb" in title and "(also read at " in title


def test_a_model_evaluated_only_on_other_data_shows_no_test_top1_and_says_why(evaluated: Path) -> None:
    import shutil

    from rich.console import Console

    shutil.rmtree(evaluated / "evaluate" / "2026-11-28" / "own")
    report = build_report(evaluated)
    row = _rows(report)["model"]
    assert row.test_accuracy is None and row.evaluate_run is None
    assert "scored other data" in row.test_note and "/p/data/swap" in row.test_note
    write_report(report)
    md = (evaluated / "report.md").read_text()
    assert "test top-1" not in md.split("## ")[1]  # no table column for a score that is not the model's
    assert "`pretrain/2026-11-28/model` (no test top-1): its test evaluations scored other data" in md
    assert json.loads((evaluated / "report.json").read_text())["rows"][0]["test_accuracy"] is None
    console = Console(record=True, width=400)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cnnlab.console.out", console)
        print_report(report)
    assert "no test top-1 for" in console.export_text() and "33.33" not in console.export_text()


def test_a_model_that_recorded_no_data_takes_no_test_score(tmp_path: Path) -> None:
    """Unknown data is never taken for the same data (a user folder without its root recorded)."""
    out = tmp_path / "outputs"
    model = model_run(out, "pretrain", "model", 0.9, dataset={"name": "imagefolder", "num_classes": 3})
    evaluate_run(out, "e", model, 0.5, dataset={"name": "imagefolder", "num_classes": 3})
    assert _rows(build_report(out))["model"].test_accuracy is None


def test_test_split_changes_compare_scores_on_the_models_own_data(tmp_path: Path) -> None:
    """The pruning change on test top-1 and its bootstrap used the source's newest evaluation, on any data."""
    out = tmp_path / "outputs"
    data, other = folder_dataset("/p/data/rgb"), folder_dataset("/p/data/swap")
    tuned = model_run(out, "finetune", "tuned", 0.95, dataset=data)
    pruned = model_run(out, "prune", "pruned", 0.94, source=tuned, dataset=data, metrics={"acc_before": 0.95})
    evaluate_run(out, "tuned-own", tuned, 0.9, dataset=data, started="2026-12-01T00:00:00",
                 correct=[True] * 9 + [False])
    evaluate_run(out, "tuned-other", tuned, 0.5, dataset=other, started="2026-12-02T00:00:00",
                 correct=[True, False] * 6)
    evaluate_run(out, "pruned-own", pruned, 0.8, dataset=data, started="2026-12-03T00:00:00",
                 correct=[True] * 8 + [False] * 2)
    [change] = [c for g in build_report(out).all_seed_groups for c in g.changes if c.split == "test"]
    assert change.differences == pytest.approx((-0.1,))  # 80 % - 90 %, not 80 % - 50 %
    assert change.images == 10 and change.image_interval is not None  # the same ten test images, paired


def test_a_model_derived_on_other_data_gets_no_difference_against_its_source(tmp_path: Path) -> None:
    """A prune that recovered on another folder (dataset.root=...) is not "its source, pruned" on any split."""
    out = tmp_path / "outputs"
    tuned = model_run(out, "finetune", "tuned", 0.95, dataset=folder_dataset("/p/data/rgb"))
    pruned = model_run(out, "prune", "pruned", 0.60, source=tuned, dataset=folder_dataset("/p/data/hard"))
    evaluate_run(out, "t", tuned, 0.9, dataset=folder_dataset("/p/data/rgb"))
    evaluate_run(out, "p", pruned, 0.5, dataset=folder_dataset("/p/data/hard"))
    report = build_report(out)
    assert len(report.groups) == 2 and not any(g.changes for g in report.all_seed_groups)


# --- seed groups (bug: runs on different data were grouped as seed twins) ---------------------------------------------

def _folder_sweep(out: Path, roots: list[str], cwds: list[Path], sizes: list[int], **kwargs) -> list[Path]:
    """`pretrain -m seed=...` on dataset.root=data/rgb (relative, as typed) from the folders `cwds`."""
    return [model_run(out, "pretrain", f"sweep/{i}", 0.9 + i / 100, seed=i, cwd=cwd,
                      settings={"dataset": {"name": "imagefolder", "root": "data/rgb", "seed": 0}},
                      dataset=folder_dataset(root, train_size=size), **kwargs)
            for i, (root, cwd, size) in enumerate(zip(roots, cwds, sizes))]


def test_one_relative_root_typed_in_two_folders_is_two_datasets_never_one_seed_group(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    _folder_sweep(out, ["/w/A/data/rgb", "/w/B/data/rgb"], [Path("/w/A"), Path("/w/B")], [36, 27])
    report = build_report(out)
    assert len(report.all_seed_groups) == 2 and all(g.n == 1 for g in report.all_seed_groups)


def test_a_folder_that_changed_between_seeds_is_not_one_seed_group(tmp_path: Path) -> None:
    """The same folder, but 36 training images for one seed and 27 for the other: other data."""
    out = tmp_path / "outputs"
    _folder_sweep(out, ["/w/A/data/rgb"] * 3, [Path("/w/A")] * 3, [36, 36, 27])
    groups = build_report(out).all_seed_groups
    assert sorted(g.n for g in groups) == [1, 2]


def test_a_seed_that_failed_in_another_folder_is_not_a_missing_seed_of_this_group(tmp_path: Path) -> None:
    """A failed run records no dataset: its data.root=data/rgb is resolved against the folder it started in."""
    out = tmp_path / "outputs"
    _folder_sweep(out, ["/w/A/data/rgb"] * 2, [Path("/w/A")] * 2, [36, 36])
    settings = {"dataset": {"name": "imagefolder", "root": "data/rgb", "seed": 0}}
    model_run(out, "pretrain", "sweep/2", 0.0, seed=2, cwd=Path("/w/B"), settings=settings, status="failed")
    model_run(out, "pretrain", "sweep/3", 0.0, seed=3, cwd=Path("/w/A"), settings=settings, status="failed")
    [group] = build_report(out).all_seed_groups
    assert group.n == 2 and [path.name for _, _, path in group.missing] == ["3"]


def test_a_canonical_set_named_at_two_roots_stays_one_seed_group(tmp_path: Path) -> None:
    """Where a machine keeps its CIFAR-10 copy does not make other data."""
    out = tmp_path / "outputs"
    for i, root in enumerate(("data/cifar10", "/mnt/datasets/cifar10")):
        model_run(out, "finetune", f"sweep/{i}", 0.9, seed=i, cwd=Path(f"/w/{i}"),
                  settings={"dataset": {"name": "cifar10", "root": root}},
                  dataset=folder_dataset(f"/w/{i}/{root}", name="cifar10"))
    [group] = build_report(out).all_seed_groups
    assert group.n == 2


def test_a_weights_file_named_relatively_in_two_folders_is_two_files(tmp_path: Path) -> None:
    """model.weights=init.pth (a state dict: no source run recorded) from /w/A and from /w/B."""
    out = tmp_path / "outputs"
    for i, cwd in enumerate(("/w/A", "/w/A", "/w/B")):
        model_run(out, "finetune", f"sweep/{i}", 0.9, seed=i, cwd=Path(cwd),
                  settings={"model": {"weights": "init.pth"}})
    groups = build_report(out).all_seed_groups
    assert sorted(g.n for g in groups) == [1, 2]


def test_a_checkpoint_source_recorded_relatively_is_resolved_where_the_run_started(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    for i, cwd in enumerate(("/w/A", "/w/B")):
        run = model_run(out, "finetune", f"sweep/{i}", 0.9, seed=i, cwd=Path(cwd),
                        settings={"model": {"weights": "model.pt"}})
        record = json.loads((run / "run.json").read_text())
        RunRecord(run, record).update(source={"path": "model.pt"})  # weights.py records the name as typed
    assert len(build_report(out).all_seed_groups) == 2


def test_runs_of_one_sweep_on_one_folder_stay_one_seed_group(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    tuned = _folder_sweep(out, ["/w/A/data/rgb"] * 3, [Path("/w/A")] * 3, [36] * 3)
    sweep(out, "prune", [0.9, 0.91, 0.92], sources=tuned, dataset=folder_dataset("/w/A/data/rgb"))
    groups = build_report(out).all_seed_groups
    assert sorted(g.n for g in groups) == [3, 3]


def test_a_hydra_record_that_is_not_a_mapping_is_no_crash(tmp_path: Path) -> None:
    """.hydra/hydra.yaml is untrusted: `hydra: [1]` raised AttributeError in the report."""
    from cnnlab.report.seeds import started_in
    from cnnlab.runs import RunInfo

    for text in ("hydra: [1]\n", "hydra:\n  runtime: 3\n", "[1, 2]\n", "hydra:\n  runtime:\n    cwd: relative\n"):
        (tmp_path / ".hydra").mkdir(exist_ok=True)
        (tmp_path / ".hydra" / "hydra.yaml").write_text(text)
        assert started_in(RunInfo(path=tmp_path, data={})) is None
