"""steps/search_trials.py: what one trial does around its proxy training."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.engine.runtime import Runtime
from cnnlab.search.latency import Timed
from cnnlab.steps import search_trials
from cnnlab.steps.search_trials import TrialRunner


def test_timing_a_candidate_leaves_the_training_rng_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing (random inputs) and a reference (random weights) drew from torch's RNG, so a trial's proxy training
    differed with and without search.reference, and between a timed candidate and a cached one (a resumed search):
    trial 0's training loss read 1.3851 with a reference and 1.3863 without."""

    def timing_that_draws(*args, **kwargs) -> Timed:
        torch.rand(1000)  # as an export's example input or a reference's initialisation does
        return Timed(p50_ms=1.0, p50_ms_per_round=(1.0,))

    monkeypatch.setattr(search_trials, "cached_latency", timing_that_draws)
    runner = TrialRunner(ctx=None, cfg=None, runtime=Runtime(device=torch.device("cpu"), amp_dtype=None,  # type: ignore[arg-type]
                                                             channels_last=False),
                         space=None, settings=SimpleNamespace(latency=None, reference=None),  # type: ignore[arg-type]
                         cache=None, study=None)  # type: ignore[arg-type]
    candidate = SimpleNamespace(key="k")
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    timed = runner.latency(candidate, torch.nn.Identity(), SimpleNamespace(spec=None, classes=[]), 0)  # type: ignore[arg-type]
    assert timed.p50_ms == 1.0 and torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("space, fix", [
    ({"kind": "hparams", "params": {"trainer.batch_size": {"type": "categorical", "choices": [15, 16, 17, 32]}}},
     "'space.params={trainer.batch_size:{choices:[16,32]}}'"),
    ({"kind": "hparams", "params": {"trainer.batch_size": {"type": "int", "low": 15, "high": 33}}},
     "'space.params={trainer.batch_size:{low:14,step:2}}'"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.01, "high": 0.1}},
      "fixed": {"trainer.batch_size": 15}}, "'space.fixed={trainer.batch_size:14}'"),
    ({"kind": "hparams", "params": {"optim.lr": {"type": "float", "low": 0.01, "high": 0.1}}},
     "use trainer.batch_size=14"),
])
def test_batch_sizes_that_do_not_split_over_the_ranks_are_refused_before_any_trial(space: dict, fix: str) -> None:
    """Under torchrun a space that sampled 15 failed in trial 0 with "trainer.batch_size=15 does not split over 2
    ranks", though the user had set trainer.batch_size=16: the space's sizes were what needed changing."""
    from cnnlab.errors import CnnlabError
    from cnnlab.search.space import SearchSpace
    from cnnlab.steps.search_trials import check_batches_split

    parsed = SearchSpace.from_mapping("mine", space)
    with pytest.raises(CnnlabError) as error:
        check_batches_split(parsed, 15, world_size=2)
    assert fix in error.value.fix
    check_batches_split(parsed, 15, world_size=1)  # one process: any size


def test_batch_sizes_that_split_pass() -> None:
    from cnnlab.search.space import SearchSpace
    from cnnlab.steps.search_trials import check_batches_split

    space = SearchSpace.from_mapping("mine", {"kind": "hparams", "params": {
        "trainer.batch_size": {"type": "categorical", "choices": [16, 32]}}})
    check_batches_split(space, 15, world_size=2)  # trainer.batch_size is not what the trials use


def test_a_trial_stopped_at_a_rung_gets_its_line_in_the_log(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Completed and failed trials each had a line; a trial stopped at a rung had none (trials.csv said `pruned`)."""
    import logging

    import optuna

    def stopped(self, trial, started):  # type: ignore[no-untyped-def]
        raise optuna.TrialPruned("stopped at epoch 1: val top-1 25.00% is dominated at this rung")

    monkeypatch.setattr(TrialRunner, "_run", stopped)
    runner = TrialRunner(ctx=SimpleNamespace(log=logging.getLogger("cnnlab")), cfg=None, runtime=None,  # type: ignore[arg-type]
                         space=None, settings=None, cache=None, study=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="cnnlab"), pytest.raises(optuna.TrialPruned):
        runner(SimpleNamespace(number=6, user_attrs={}, params={"optim.lr": 0.01, "trainer.batch_size": 16}))
    # probe 201: completed trials' lines named their candidate, a stopped one's did not
    assert "trial 6: optim.lr=0.01 trainer.batch_size=16 — stopped at epoch 1: val top-1 25.00% is dominated at " \
        "this rung" in caplog.text


def _search_config(space: str = "hparams"):
    import cnnlab.app  # noqa: F401 - registers the run-dir resolver the config refers to
    from hydra import compose, initialize_config_module

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        return compose("config", overrides=["command=search", f"space={space}"])


@pytest.mark.parametrize("params, fixed, said", [
    # probe 56: every trial trained search.proxy_epochs epochs; the "chosen" trainer.epochs played no part
    ({"trainer.epochs": {"type": "int", "low": 1, "high": 2}}, {}, "trainer.epochs cannot be searched"),
    ({"seed": {"type": "int", "low": 0, "high": 3}}, {}, "seed cannot be searched"),
    ({"optim.lr": {"type": "float", "low": 0.01, "high": 0.1}}, {"seed": 3}, "seed cannot be fixed by a space"),
    # probe 58: trials scored on different val splits, compared; a native size that played no part; another dataset
    ({"dataset.val_fraction": {"type": "float", "low": 0.1, "high": 0.5}}, {}, "every trial is scored on the same"),
    ({"dataset.seed": {"type": "int", "low": 0, "high": 5}}, {}, "dataset.seed cannot be searched"),
    ({"dataset.native_size": {"type": "int", "low": 16, "high": 32}}, {}, "dataset.native_size cannot be searched"),
    ({"dataset.name": {"type": "categorical", "choices": ["digits", "synthetic"]}}, {}, "dataset.name cannot be"),
    # probe 56: a typo was found by the first trial, after the search had started (and left a run to resume)
    ({"optim.lrr": {"type": "float", "low": 0.01, "high": 0.1}}, {}, "did you mean optim.lr?"),
    ({"trainer.batch_size": {"type": "int", "low": 0, "high": 64}}, {}, "its low 0 is not allowed"),
    ({"trainer.batch_size": {"type": "categorical", "choices": [32, -8]}}, {}, "its choice -8 is not allowed"),
    ({"optim.lr": {"type": "float", "low": 0.01, "high": 0.1}}, {"trainer.mixup": -1}, "its fixed value -1"),
    # probe 57: "chose" resnet18 while every trial trained LeNet-5; a proxy of 2 epochs while each trained 1
    ({"model.name": {"type": "categorical", "choices": ["lenet5", "resnet18"]}}, {}, "model.name cannot be searched"),
    ({"search.proxy_epochs": {"type": "int", "low": 1, "high": 3}}, {}, "search.proxy_epochs cannot be searched"),
    ({"dataset.image_size": {"type": "int", "low": 16, "high": 32}}, {}, "dataset.image_size cannot be searched"),
    # probe 57: "did you mean sched.gamma?" (spelled right: step's, not the default cosine's)
    ({"sched.gamma": {"type": "float", "low": 0.1, "high": 0.5}}, {}, "is a setting of sched=step, not of the sched "
                                                                      "this search uses — add sched=step"),
    # probe 57: shown as [32,64], the text "32" invisible
    ({"trainer.batch_size": {"type": "categorical", "choices": ["32", 64]}}, {}, "its choice '32' is not allowed"),
])
def test_a_space_is_checked_against_the_settings_before_any_trial(params: dict, fixed: dict, said: str) -> None:
    from cnnlab.errors import CnnlabError
    from cnnlab.search.space import SearchSpace

    space = SearchSpace.from_mapping("mine", {"kind": "hparams", "params": params, "fixed": fixed})
    with pytest.raises(CnnlabError) as info:
        search_trials.check_space_keys(space, _search_config())
    assert info.value.one_line().startswith("space mine: ") and said in info.value.one_line(), info.value.one_line()


@pytest.mark.parametrize("name", ["hparams", "mobilenet", "efficientnet"])
def test_the_packaged_spaces_pass(name: str) -> None:
    from omegaconf import OmegaConf

    from cnnlab.search.space import SearchSpace

    cfg = _search_config(name)
    search_trials.check_space_keys(SearchSpace.from_mapping(name, OmegaConf.to_container(cfg.space)), cfg)



def test_the_settings_check_leaves_a_spaces_values_to_the_search() -> None:
    """Probe 57: `choices: ["32", 64]` was refused by the settings check as `space.params.trainer.batch_size.choices`,
    with a fix (`'space.params.trainer.batch_size.choices=[32,64,128]'`) Hydra then refused as an unknown key."""
    from omegaconf import OmegaConf, open_dict

    from cnnlab.settings import check_config

    cfg = _search_config()
    with open_dict(cfg):
        cfg.space.params["trainer.batch_size"] = {"type": "categorical", "choices": ["32", 64]}
    check_config(OmegaConf.to_container(cfg, resolve=True), "search")  # type: ignore[arg-type]
