"""The config tree composes for every command and every group choice (lightning-hydra-template habit)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from cnnlab import conftree
from cnnlab.commands import COMMANDS
from cnnlab.models import canonical_name


def compose_for(command: str, *overrides: str):
    with initialize_config_module(config_module="cnnlab.conf", version_base="1.3"):
        return compose(config_name="config", overrides=[f"command={command}", *overrides], return_hydra_config=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_composes(command: str) -> None:
    cfg = compose_for(command)
    assert cfg.hydra.runtime.choices.command == command
    OmegaConf.to_container(cfg, resolve=False)  # every node is well formed


@pytest.mark.parametrize("group", ["dataset", "model", "optim", "sched", "trainer"])
def test_every_choice_of_every_group_composes(group: str) -> None:
    for choice in conftree.choices(group):
        cfg = compose_for("finetune", f"{group}={choice}")
        chosen = cfg[group]
        # The group's file was the one composed: its identity field says which choice it is.
        if group == "optim":
            assert chosen._target_.rsplit(".", 1)[-1].lower() == choice.lower(), (group, choice)
        elif group == "model":
            assert chosen.name == canonical_name(choice), (group, choice)
        elif group == "trainer":
            assert int(chosen.epochs) >= 1 and int(chosen.batch_size) >= 1, (group, choice)
        else:
            assert chosen.name == choice, (group, choice)


def test_names_the_acceptance_uses_exist() -> None:
    cfg = compose_for("finetune")
    for key in ("trainer.epochs", "trainer.batch_size", "optim.lr", "seed", "device", "dataset.image_size",
                "model.weights", "finetune.mode", "source", "resume"):
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key
    assert cfg.dataset.name == "synthetic" and cfg.model.name == "resnet18" and cfg.model.weights == "imagenet"


def test_pretrain_starts_from_random_weights_and_mobilenet_is_an_alias() -> None:
    assert compose_for("pretrain").model.weights == "none"
    assert compose_for("finetune", "model=mobilenet").model.name == "mobilenet_v2"


def test_help_defaults_match_the_composed_config() -> None:
    defaults = conftree.default_choices("finetune")
    cfg = compose_for("finetune")
    for group in ("dataset", "model", "optim", "sched", "trainer"):
        assert cfg.hydra.runtime.choices[group] == defaults[group]


def test_every_packaged_config_file_is_a_mapping(tmp_path) -> None:
    files = sorted(conftree.CONF_DIR.rglob("*.yaml"))
    assert len(files) > 20 and [f for f in files if conftree.not_a_mapping(f)] == []
    for text, what in (("- a\n- b\n", "a list"), ("just words\n", "a single value ('just words')")):
        (tmp_path / "x.yaml").write_text(text)
        assert conftree.not_a_mapping(tmp_path / "x.yaml") == (f"{tmp_path / 'x.yaml'}: its top level is {what}, "
                                                               "but a config file must be a mapping (`key: value`)")
    for text in ("", "# only a comment\n", "a: [1\n"):  # empty is fine; a YAML error is reported as one
        (tmp_path / "x.yaml").write_text(text)
        assert conftree.not_a_mapping(tmp_path / "x.yaml") is None


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_sweep_job_folder_goes_through_the_resolver_that_never_reuses_a_run_folder(command: str) -> None:
    """Probe 64: `cnnlab pipeline` set its own `hydra.sweep.subdir: ${hydra.job.num}`, so `-m … hydra.sweep.dir=DIR
    rerun=true` wrote its job 0 over DIR/0/run.json, while every other command got `0-again1/`."""
    subdir = OmegaConf.to_container(compose_for(command).hydra.sweep, resolve=False)["subdir"]
    assert subdir.startswith("${cnnlab_job_subdir:${hydra.job.num},${hydra.sweep.dir}}"), subdir
