"""steps/stage_check.py: every stage of a pipeline is composed and checked before the first one runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from cnnlab.errors import CnnlabError
from cnnlab.steps.plan import build_plan
from cnnlab.steps.stage_check import check_stages

BENCH = {"backends": None, "batch_sizes": [1], "min_seconds": 0.1, "rounds": 1}


def _stages(plan: dict) -> list:
    return build_plan(plan, export=True, bench=BENCH)


def _check(plan: dict) -> None:
    import cnnlab.app  # noqa: F401 - registers the run-dir resolver the config refers to

    stages = _stages(plan)
    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        check_stages(stages, {s.name for s in stages}, ["seed=0", "device=cpu"], "config")


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (Path(__file__).parents[2] / "cnnlab/conf/experiment")
                                              .glob("*.yaml")))
def test_every_packaged_experiment_passes(experiment: str) -> None:
    import cnnlab.app  # noqa: F401

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["command=pipeline", f"experiment={experiment}"])
    _check(OmegaConf.to_container(cfg.pipeline.plan, resolve=True))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad, said", [
    ("model=lenet55", "Could not find 'model/lenet55'"),
    ("trainer.epoch=1", "did you mean trainer.epochs?"),
    ("trainer.epochs=0", "trainer.epochs takes an integer >= 1"),
    # probe 57: its fix was a command line (`cnnlab finetune model.weights=@pre …`) that fails typed alone
    ("sched.gamma=0.5", "sched.gamma is a setting of sched=step, not of the sched this stage uses — add sched=step "
                        "to pipeline.plan.tune.overrides"),
    ("+bench.rounds=3", "bench.* is read by `cnnlab bench`"),
    # probe 55: another command's setting in a stage failed only when that stage ran, after the stages before it
    ("prune.ratio=0.5", "prune.ratio is a setting of `cnnlab prune`, not of `cnnlab finetune`"),
    # settings the command parses itself (its pipeline module's `check`): found only when the stage ran
    ("finetune.mode=nosuch", "finetune.mode=nosuch is not a mode"),
    ("optim=adamw +optim.momentum=0.9", "torch.optim.AdamW takes no momentum argument — drop it: add "
                                        "~optim.momentum to pipeline.plan.tune.overrides"),  # probe 60
])
def test_a_mistake_in_a_later_stage_names_that_stage(bad: str, said: str) -> None:
    plan = {"pre": {"command": "pretrain", "overrides": ["model=lenet5"]},
            "tune": {"command": "finetune", "overrides": ["model.weights=@pre", "dataset=digits", *bad.split()]}}
    with pytest.raises(CnnlabError) as info:
        _check(plan)
    line = info.value.one_line()
    assert line.startswith("pipeline.plan.tune (cnnlab finetune): ") and said in line, line


def test_a_stage_that_takes_its_sources_data_composes_its_dataset_keys_as_its_process_does() -> None:
    """`dataset.val_fraction=` in a prune stage edits the source's recorded data (hydra_args: `++dataset.KEY`), which
    the default dataset (synthetic) lacks: composed plainly, the check would refuse what the stage accepts."""
    _check({"tune": {"command": "finetune", "overrides": ["model=lenet5", "dataset=digits"]},
            "prune": {"command": "prune", "overrides": ["source=@tune", "dataset.val_fraction=0.3"]}})


@pytest.mark.parametrize("command, bad, said", [
    ("prune", "prune.method=nosuch", "prune.method=nosuch is not a pruning method"),
    ("quantize", "quantize.mode=nosuch", "quantize.mode=nosuch is not a mode"),
    ("pretrain", "method=simclr trainer.batch_size=1", "a batch of one has no negatives"),
])
def test_a_stage_commands_own_settings_are_checked_before_the_first_stage(command: str, bad: str, said: str) -> None:
    """Probe 58: `prune.method=nosuch` in a prune stage was refused by prune itself, after the stages before it."""
    source = [] if command == "pretrain" else ["source=@pre"]
    plan = {"pre": {"command": "pretrain", "overrides": ["model=lenet5", "dataset=digits"]},
            "late": {"command": command, "overrides": [*source, *bad.split()]}}
    with pytest.raises(CnnlabError) as info:
        _check(plan)
    assert info.value.one_line().startswith(f"pipeline.plan.late (cnnlab {command}): ") and said in str(info.value)


def test_outside_a_hydra_app_nothing_is_checked() -> None:
    stages = _stages({"tune": {"command": "finetune", "overrides": ["model=lenet55"]}})
    check_stages(stages, {s.name for s in stages}, [], "config")


def test_the_pipeline_refuses_before_its_first_stage_runs(cli, outputs, tmp_path: Path) -> None:
    """A typo in the second stage was found when that stage started, after the first had trained."""
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "two.yaml").write_text(
        "# @package _global_\npipeline:\n  name: two\n  plan:\n"
        "    pre: {command: pretrain, overrides: [model=lenet5, dataset=digits, trainer.epochs=1]}\n"
        "    tune: {command: finetune, overrides: ['model.weights=@pre', dataset=digits, trainer.epoch=1]}\n")
    result = cli("pipeline", "--config-dir", str(tmp_path / "conf"), "experiment=two")
    assert result.code == 2 and "pipeline.plan.tune (cnnlab finetune): unknown setting 'trainer.epoch'" in \
        result.stderr, result.output
    assert not (outputs / "pipeline" / "two" / "runs").exists()


def test_a_pipeline_refuses_a_setting_its_stages_would_not_get_unless_its_plan_reads_it(cli, outputs,
                                                                                        tmp_path: Path) -> None:
    """`cnnlab pipeline trainer.epochs=1` ran every stage at the plan's own epochs, exit 0. A plan that interpolates
    the setting (`dataset.image_size=${dataset.image_size}`) does pass it on, and is not refused."""
    refused = cli("pipeline", "trainer.epochs=1")
    assert refused.code == 2 and "`cnnlab pipeline` passes only seed= and device= on to its stages" in \
        refused.stderr, refused.output
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "look.yaml").write_text(
        "# @package _global_\npipeline:\n  name: look\n  report: false\n  plan:\n"
        "    look: {command: pretrain, overrides: [model=lenet5, 'dataset.image_size=${dataset.image_size}']}\n")
    # past the check, to the next one (an unknown stage to run), so that no stage trains
    passed = cli("pipeline", "--config-dir", str(tmp_path / "conf"), "experiment=look", "dataset.image_size=40",
                 "pipeline.stages=[zzz]")
    assert passed.code == 2 and "unknown stage 'zzz'" in passed.stderr, passed.output


def test_a_command_that_trains_nothing_refuses_training_settings_before_any_run_folder(cli, outputs) -> None:
    result = cli("bench", "model=lenet5", "trainer.batch_size=32")
    assert result.code == 2 and "`cnnlab bench` trains nothing, so trainer.* would be ignored" in result.stderr
    assert not (outputs / "bench").exists()


def test_an_input_size_unlike_the_source_stages_is_refused_before_any_stage_runs() -> None:
    """A prune stage given another dataset.image_size than the stage it prunes was refused only when it ran, after
    the training stage had trained."""
    train = {"command": "pretrain", "overrides": ["model=lenet5", "dataset=digits", "dataset.image_size=16"]}
    plan = {"train": train, "pruned": {"command": "prune", "overrides": ["source=@train", "dataset.image_size=32"]}}
    with pytest.raises(CnnlabError) as info:
        _check(plan)
    line = info.value.one_line()
    assert line.startswith("pipeline.plan.pruned (cnnlab prune): dataset.image_size=32, but stage train trains its "
                           "model at 16 px") and "drop dataset.image_size= from pipeline.plan.pruned.overrides" in line
    plan["pruned"]["overrides"] = ["source=@train", "dataset.image_size=16"]  # the same size: nothing to say
    _check(plan)
    plan["pruned"]["overrides"] = ["source=@train"]  # the fix, followed
    _check(plan)
