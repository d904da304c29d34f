"""run.json's dataset section (cnnlab/steps/recording.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cnnlab.conftree import CONF_DIR
from cnnlab.data import build_datasets
from cnnlab.data.spec import InputSpec
from cnnlab.steps.recording import dataset_record


def test_the_recorded_config_gives_the_size_the_images_were_made_at() -> None:
    """Probe 53 (N1): `cnnlab evaluate dataset=synthetic` of a 32 px model drew the images at 32 px, as the model's
    spec says, but run.json's `dataset.config.image_size` said the config's 64: a client that rebuilt the data
    from the record drew other pictures (58.33 % instead of 57.33 %)."""
    config = OmegaConf.load(CONF_DIR / "dataset" / "synthetic.yaml")
    config.train_size, config.val_size = 20, 20
    data = build_datasets(config, InputSpec(size=32), train_augment=False)
    assert data.val[0][0].shape[-1] == 32
    record = dataset_record(data, config)
    assert record["config"]["image_size"] == record["image_size"] == 32
    config.image_size = None  # null (the native size) stays as typed: a rebuild gives the same
    assert dataset_record(build_datasets(config, InputSpec(size=32), train_augment=False), config)["config"][
        "image_size"] is None


def test_the_training_rate_is_all_images_over_all_seconds_not_the_mean_of_epoch_rates() -> None:
    """Probe 74: a sweep job recorded 1,547.8 images/s — the mean of its epochs' 657.2 and 2,438.5 — where its 256
    images took 0.2473 s: 1,035.3 images/s."""
    from cnnlab.engine.trainer import FitResult
    from cnnlab.steps.recording import fit_metrics

    history = [{"epoch": 1, "val_acc": 0.1, "images_per_s": 657.2, "train_seconds": 0.1948},
               {"epoch": 2, "val_acc": 0.1, "images_per_s": 2438.5, "train_seconds": 0.0525}]
    rate = fit_metrics(FitResult(history))["train_images_per_s"]
    assert rate == pytest.approx(256 / 0.2473, rel=2e-3)
    assert fit_metrics(FitResult([{"epoch": 1, "val_acc": 0.1, "images_per_s": 500.0}]))["train_images_per_s"] == 500


def test_a_warning_met_twice_is_recorded_once(tmp_path) -> None:
    """distill trains its student and its baseline with one schedule: a warning about it was logged and recorded
    twice."""
    from cnnlab.context import RunContext
    from cnnlab.runs import RunRecord
    from cnnlab.steps.recording import record_warning

    ctx = RunContext(command="distill", run_dir=tmp_path, outputs=tmp_path, record=RunRecord.start(tmp_path, "distill"))
    for message in ("a", "b", "a"):
        record_warning(ctx, message)
    assert ctx.record.data["warnings"] == ["a", "b"]


def test_a_warning_marked_for_the_run_lands_in_its_warnings_while_the_command_runs(tmp_path) -> None:
    """The data builders have no run context: a 1-channel model's colour warning reached run.log only, run.json's
    `warnings` stayed null. Marked RUN_WARNING, a warning is recorded while `recorded_warnings` is open (cnnlab.app
    opens it around every command) — once; unmarked ones and ones logged after are not."""
    import logging

    from cnnlab.context import RunContext
    from cnnlab.console import RUN_WARNING
    from cnnlab.runs import RunRecord
    from cnnlab.steps.recording import recorded_warnings

    ctx = RunContext(command="evaluate", run_dir=tmp_path, outputs=tmp_path,
                     record=RunRecord.start(tmp_path, "evaluate"))
    log = logging.getLogger("cnnlab.data.folder")
    with recorded_warnings(ctx):
        log.warning("%s of its pictures", 4, extra=RUN_WARNING)
        log.warning("4 of its pictures", extra=RUN_WARNING)  # the same line again
        log.warning("a layout note")
    log.warning("after the run", extra=RUN_WARNING)
    assert ctx.record.data["warnings"] == ["4 of its pictures"]
