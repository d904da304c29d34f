"""Fine-tuning modes train exactly what they say, for every network of the zoo."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, create_model, feature_stages, first_trainable, freeze_before, get_head
from cnnlab.models.freezing import stage_start


def _trainable(model: nn.Module) -> set[int]:
    return {id(p) for p in model.parameters() if p.requires_grad}


def _ids(module: nn.Module) -> set[int]:
    return {id(p) for p in module.parameters()}


def _frozen_copy(name: str, mode: str, unfreeze: int = 1) -> tuple[nn.Module, list[nn.Module]]:
    model = create_model(name, 7, 32)
    return model, freeze_before(model, first_trainable(name, mode, unfreeze))


@pytest.fixture
def shared_model(built_model: Callable[[str, int], nn.Module]) -> Iterator[Callable[[str], nn.Module]]:
    """The session's cached model with every parameter trainable again after the test (building VGG is slow)."""
    used: list[nn.Module] = []

    def get(name: str) -> nn.Module:
        model = built_model(name, 32).requires_grad_(True)
        used.append(model)
        return model

    yield get
    for model in used:
        model.requires_grad_(True)


@pytest.mark.parametrize("name", MODELS)
def test_modes_train_what_they_say(name: str, shared_model: Callable[[str], nn.Module]) -> None:
    trained: dict[str, set[int]] = {}
    for mode, unfreeze in (("linear", 1), ("partial", 1), ("partial", 2), ("full", 1)):
        model = shared_model(name)
        frozen = freeze_before(model, first_trainable(name, mode, unfreeze))
        trainable = _trainable(model)
        stages = [module for _, module in feature_stages(model, name)]
        head = _ids(get_head(model, name))
        key = f"{mode}{unfreeze}"
        trained[key] = trainable
        assert head <= trainable, f"{name} {key}: the head must train"
        if mode == "linear":
            assert trainable == head, f"{name}: linear trains the head alone"
        if mode == "partial":
            assert all(_ids(stage) <= trainable for stage in stages[-unfreeze:]), f"{name} {key}: last stages train"
            assert not any(_ids(stage) & trainable for stage in stages[:-unfreeze]), f"{name} {key}: earlier frozen"
        if mode == "full":
            assert trainable == _ids(model) and frozen == []
        # Every frozen leaf holds only frozen parameters; BatchNorm among them is kept in eval by the trainer.
        assert not any(p.requires_grad for module in frozen for p in module.parameters(recurse=False))
    counts = {key: len(ids) for key, ids in trained.items()}
    assert counts["linear1"] < counts["partial1"] < counts["partial2"] < counts["full1"], counts


@pytest.mark.parametrize("name", MODELS)
def test_every_stage_can_be_the_first_trainable(name: str, built_model: Callable[[str, int], nn.Module]) -> None:
    model = built_model(name, 32)
    paths = {path for path, _ in model.named_modules()}
    for stage in MODELS[name].stages:
        assert stage_start(stage) in paths, f"{name}: stage {stage} does not start at a module"


def test_frozen_batchnorm_keeps_its_statistics_while_training() -> None:
    from cnnlab.engine.trainer import set_train_mode

    model, frozen = _frozen_copy("mobilenet_v3_small", "partial", 1)
    frozen_ids = {id(module) for module in frozen}
    norms = {path: module for path, module in model.named_modules() if isinstance(module, nn.BatchNorm2d)}
    before = {path: norm.running_mean.clone() for path, norm in norms.items()}
    set_train_mode(model, frozen)
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32) * 3 + 1)
    changed = {path for path, norm in norms.items() if not torch.equal(before[path], norm.running_mean)}
    assert changed, "the trainable stage's BatchNorm statistics update"
    assert not any(id(norms[path]) in frozen_ids for path in changed), "frozen BatchNorm keeps its statistics"
    assert any(id(norm) in frozen_ids for norm in norms.values())


def test_unfreeze_out_of_range_names_the_stages() -> None:
    with pytest.raises(CnnlabError, match=r"finetune.unfreeze=9 .*features\.9\.\.12"):
        first_trainable("mobilenet_v3_small", "partial", 9)


def test_unknown_module_is_a_clear_error() -> None:
    with pytest.raises(CnnlabError, match="no module 'nope'"):
        freeze_before(create_model("lenet5", 3, 32), "nope")
