from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, create_model, feature_stages, get_head, replace_head


@pytest.mark.parametrize("name", MODELS)
def test_head_is_the_final_classifier(built_model: Callable[[str, int], nn.Module], name: str) -> None:
    head = get_head(built_model(name, 32), name)
    assert isinstance(head, nn.Linear) and head.out_features == 7


def test_replace_head_keeps_in_features_and_changes_the_logits() -> None:
    model = create_model("resnet18", 7, 16).eval()
    old = get_head(model, "resnet18")
    new = replace_head(model, "resnet18", 3)
    assert new is get_head(model, "resnet18") and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 3)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_replace_head_works_inside_a_sequential_classifier() -> None:
    model = create_model("mobilenet", 7, 16)
    replace_head(model, "mobilenet", 5)
    assert model.classifier[1].out_features == 5


@pytest.mark.parametrize("name", MODELS)
def test_stages_are_the_models_modules_in_forward_order(built_model: Callable[[str, int], nn.Module],
                                                        name: str) -> None:
    model = built_model(name, 32)
    stages = feature_stages(model, name)
    assert len(stages) >= 3
    model_params = {id(p) for p in model.parameters()}
    seen: set[int] = set()
    for _, stage in stages:
        stage_params = {id(p) for p in stage.parameters()}
        assert stage_params and stage_params <= model_params  # shared with the model, not copies
        assert not stage_params & seen  # stages do not overlap
        seen |= stage_params
    assert not {id(p) for p in get_head(model, name).parameters()} & seen  # the head is not a stage

    # Every stage's output comes from stage[-1]: hooks there fire once each, in stage order.
    fired: list[str] = []
    handles = [stage[-1].register_forward_hook(lambda *_, label=label: fired.append(label)) for label, stage in stages]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 32, 32))
    finally:
        for handle in handles:
            handle.remove()
    assert fired == [label for label, _ in stages]


def test_stage_views_freeze_the_real_network() -> None:
    model = create_model("resnet18", 7, 16)
    model.requires_grad_(False)
    _, last = feature_stages(model, "resnet18")[-1]
    last.requires_grad_(True)
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}


def test_stage_ranges_run_like_the_network() -> None:
    model = create_model("mobilenet_v2", 7, 32).eval()
    image = torch.randn(1, 3, 32, 32)
    x = image
    with torch.no_grad():
        for _, stage in feature_stages(model, "mobilenet_v2"):  # the stages cover all of `features`
            x = stage(x)
        assert torch.equal(x, model.features(image))


def test_a_model_that_does_not_match_its_name_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="no module 'classifier.1'"):
        get_head(create_model("resnet18", 7, 16), "mobilenet_v2")
