"""Search spaces (cnnlab/search/space.py): the packaged spaces load, bad ones are one line each, and a trial
turns into a candidate the zoo builds."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.searched import parse_arch
from cnnlab.search.space import SearchSpace, resolution, sample

SPACES = Path(__file__).resolve().parents[2] / "cnnlab" / "conf" / "space"


def _space(name: str) -> SearchSpace:
    return SearchSpace.from_mapping(name, yaml.safe_load((SPACES / f"{name}.yaml").read_text()))


def _trial(seed: int = 0) -> optuna.Trial:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()


@pytest.mark.parametrize("name", ["mobilenet", "efficientnet", "hparams"])
def test_the_packaged_spaces_load(name: str) -> None:
    space = _space(name)
    assert space.kind == name and space.params
    assert space.describe()["name"] == name


def test_a_mobilenet_trial_is_an_architecture_string_the_zoo_builds() -> None:
    space = _space("mobilenet")
    for seed in range(3):
        trial = _trial(seed)
        candidate = sample(space, trial, image_size=32, model="resnet18")
        assert candidate.model == "searched" and candidate.image_size in (24, 28, 32)
        spec = parse_arch(candidate.arch)  # type: ignore[arg-type]
        assert spec.resolution == candidate.image_size and len(spec.stages) == 7
        assert spec.stages[0].expansion == 1  # MobileNetV2's e1 stage keeps it
        assert {f"kernel_{i}" for i in range(7)} <= set(trial.params)
        assert candidate.key == f"{candidate.arch}@{candidate.image_size}px"
    model = create_model("searched", 3, candidate.image_size, arch=candidate.arch)
    assert model.classifier[1].out_features == 3


def test_an_efficientnet_trial_scales_b0() -> None:
    candidate = sample(_space("efficientnet"), _trial(), image_size=64, model="resnet18")
    spec = parse_arch(candidate.arch)  # type: ignore[arg-type]
    assert all(stage.se and stage.activation == "silu" for stage in spec.stages)
    assert 0.25 <= spec.width <= 1.2 and 48 <= candidate.image_size <= 80


def test_an_hparams_trial_is_overrides_with_the_fixed_ones() -> None:
    candidate = sample(_space("hparams"), _trial(), image_size=28, model="lenet5")
    assert candidate.arch is None and candidate.model == "lenet5" and candidate.image_size == 28
    assert candidate.overrides["dataset.augment.randaugment"] is True
    assert 0.001 <= candidate.overrides["optim.lr"] <= 0.3
    assert candidate.overrides["trainer.batch_size"] in (32, 64, 128)


def test_resolution_rounds_to_four_and_has_a_floor() -> None:
    assert resolution(28, 0.875) == 24 and resolution(32, 1.0) == 32 and resolution(16, 0.5) == 16


@pytest.mark.parametrize("data, message", [
    ({"kind": "mobilenet"}, "space mine is empty"),
    ({"kind": "hparams", "params": {}}, "space mine is empty"),
    ({"kind": "nas", "params": {"a": {"type": "int", "low": 0, "high": 1}}}, "kind=nas is not a kind"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.1, "high": 0.001}}},
     "low=0.1 is above high=0.001"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "gaussian", "low": 0, "high": 1}}}, "type=gaussian"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}},
     "a log range needs low > 0"),
    ({"kind": "hparams", "params": {"trainer.batch_size": {"type": "categorical", "choices": []}}}, "no choices"),
    ({"kind": "hparams", "params": {"optim.lr": 0.1}}, "not a range"),
    ({"kind": "mobilenet", "params": {"width": {"type": "float", "low": 0.5, "high": 1}}}, "needs `base:`"),
    ({"kind": "mobilenet", "base": "k3e6c24n2s2", "params": {"lr": {"type": "float", "low": 0.5, "high": 1}}},
     "no parameter 'lr'"),
    ({"kind": "mobilenet", "base": "k3e6c24n2s2",
      "params": {"activation": {"type": "categorical", "choices": ["gelu"]}}}, "activation choice 'gelu'"),
    # probe 119: each passed the check and failed trial 0 naming a model.arch the user never gave, or (se, depth,
    # resolution) built something other than the record says
    *[({"kind": "mobilenet", "base": "k3e6c24n2s2", "params": {knob: range_}}, message) for knob, range_, message in (
        ("se", {"type": "categorical", "choices": ["no", True]}, "choice 'no' is not true or false"),
        ("kernel", {"type": "categorical", "choices": [3, 4]}, "4 builds no network (stage k4e6c24n2s2: kernel 4"),
        ("kernel", {"type": "int", "low": 3, "high": 5}, "4 builds no network"),  # every value of an int range
        ("expansion", {"type": "categorical", "choices": [0]}, "expansion 0 must be in 1..16"),
        ("stem_stride", {"type": "categorical", "choices": [8]}, "stride 1..4"),
        ("width", {"type": "float", "low": 0, "high": 1}, "0.0 is no width multiplier"),
        ("depth", {"type": "categorical", "choices": [0, 1]}, "0 is no depth multiplier"),
        ("resolution", {"type": "categorical", "choices": [-1]}, "-1 is no resolution multiplier"),
        ("kernel", {"type": "categorical", "choices": ["big"]}, "choice 'big' is not a number"),
        # probe 123: a log int range and a float range reached kernel 4 in trial 1; 3.5 was built as 3
        ("kernel", {"type": "int", "low": 3, "high": 7, "log": True}, "4 builds no network"),
        ("kernel", {"type": "float", "low": 3, "high": 7}, "a float range draws fractions"),
        ("stem_stride", {"type": "categorical", "choices": [2, 3.92]}, "3.92 is no whole number"))],
    # probe 185: a traceback, Optuna's own error after the run began, a typo that changed the search, a false reason
    ({"kind": "hparams", "params": {"trainer.batch_size": {"type": "categorical", "choices": 32}}},
     "choices is 32, not a list — write choices: [32]"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1, "step": -0.01}}},
     "step=-0.01 must be a number above 0"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1, "lg": True}}},
     "lg is no field of a float parameter — use the fields type, low, high, log, step, per_stage"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.001, "high": float("inf")}}},
     "a range needs finite ends"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": float("nan"), "high": 0.1}}},
     "a range needs finite ends"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}},
      "fixed": {"optim.lr": 0.5}}, "optim.lr is both searched (params) and fixed"),
])
def test_an_empty_or_contradictory_space_is_one_line(data: dict, message: str) -> None:
    with pytest.raises(CnnlabError) as caught:
        SearchSpace.from_mapping("mine", data)
    line = caught.value.one_line()
    assert message in line and "\n" not in line and caught.value.fix


def test_a_range_on_a_step_grid_is_checked_where_optuna_draws_and_the_resolution_at_the_datas_size() -> None:
    """Probe 123: width 0.5..4.1 in steps of 0.25 (Optuna draws at most 4.0) was refused for 4.1; a resolution
    multiplier past 4096 px ran trial 0 out of memory (166 GB)."""
    space = SearchSpace.from_mapping("mine", {"kind": "mobilenet", "base": "k3e6c24n2s2", "params": {
        "width": {"type": "float", "low": 0.5, "high": 4.1, "step": 0.25},
        "resolution": {"type": "categorical", "choices": [1.0, 200]}}})
    with pytest.raises(CnnlabError, match="200 × the data's 32 px is 6400 px, above the 4096 px"):
        space.check_resolution(32)
    space.check_resolution(16)  # 3200 px: a size a network takes


def test_settings_that_build_the_same_network_train_the_same_candidate() -> None:
    """Depth on one-block stages, or resolutions that round to one size, sample other settings for the same
    network: one identity, so the search trains it once. Other overrides (an hparams space) are another one."""
    from cnnlab.search.space import Candidate

    arch = "r16_w1_stem8s2_k3e1c8n1s1_k3e3c16n1s2_head32"
    assert Candidate("searched", 16, arch).identity == Candidate("searched", 16, arch).identity
    assert Candidate("searched", 16, arch).identity != Candidate("searched", 20, arch).identity
    assert Candidate("lenet5", 16, overrides={"optim.lr": 0.01}).identity != \
        Candidate("lenet5", 16, overrides={"optim.lr": 0.05}).identity
    assert Candidate("lenet5", 16, overrides={"a": 1, "b": 2}).identity == \
        Candidate("lenet5", 16, overrides={"b": 2, "a": 1}).identity


def test_a_dotted_parameter_split_by_a_command_line_key_names_the_space_file_way() -> None:
    """Probe 151: `+space.params.optim.lr.low=0.01` (the unknown-setting fix) added params.optim beside
    params['optim.lr'] and read "params.optim: type=(missing) is unknown"."""
    data = {"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.001, "high": 0.3},
                                          "optim": {"lr": {"low": 0.01}}}}
    with pytest.raises(CnnlabError) as caught:
        SearchSpace.from_mapping("hparams", data)
    assert "params.optim was added by a command-line key, but the parameter is named 'optim.lr'" in \
        caught.value.message
    assert "`cnnlab search space=hparams --cfg job` shows under `space:`" in (caught.value.fix or "")


def test_a_dotted_space_parameter_on_the_command_line_names_the_space_file_way(cli) -> None:
    result = cli("search", "space=hparams", "model=lenet5", "space.params.optim.lr.low=0.01")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "a space parameter named with dots (space=hparams' optim.lr) cannot be set on the " \
        "command line" in said and "--config-dir DIR space=mine" in said, result.output
