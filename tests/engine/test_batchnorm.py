"""Precise BN: BatchNorm running statistics recomputed for the trained weights, frozen layers untouched,
and the training engine evaluating (and saving) with the recomputed statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.data import build_datasets, make_loader, resolve_input_spec
from cnnlab.engine.batchnorm import recompute_bn_stats, set_bn_momentum, training_batchnorms
from cnnlab.engine.objectives import ClassificationObjective
from cnnlab.engine.runtime import Runtime
from cnnlab.engine.seeding import seed_everything
from cnnlab.engine.recipe import Recipe
from cnnlab.engine.trainer import Loaders, Trainer
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model

# Real handwritten digits at 16 px, deterministic transforms; 10 classes: chance is 10 %. The "mean" leaves the
# inputs un-centred (about 3 to 6, as a deep layer's activations can be): BatchNorm's initial running statistics
# (0, 1) are then far off, and momentum 0.01 needs hundreds of steps to forget them.
DATA_CFG = {"name": "digits", "image_size": 16, "val_fraction": 0.2, "seed": 0, "mean": [-1.0] * 3, "std": [0.35] * 3,
            "augment": {"hflip": False, "random_crop": False, "randaugment": False}}
CPU = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
CHANCE_MARGIN = 1.5 / 10


@pytest.fixture(scope="module")
def data():
    return build_datasets(DATA_CFG, resolve_input_spec(DATA_CFG, None))


def lagging_bn_net() -> nn.Sequential:
    """A small CNN whose BatchNorm layers average with momentum 0.01, like torchvision's MobileNetV3: after a
    few dozen steps their running statistics are still mostly the initial (0, 1)."""
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout, momentum=0.01), nn.ReLU()]

    return nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 32, 2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10))


def accuracy(model: nn.Module, loader) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(images).argmax(1) == labels).sum()) for images, labels in loader)
    return hits / len(loader.dataset)


def fit(data, model: nn.Module, *, epochs: int = 2, **settings) -> tuple[dict, nn.Module]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(CPU, Recipe(epochs=epochs, **settings), show_progress=False)
    result = trainer.fit(model, ClassificationObjective(10), Loaders(make_loader(data.train, 64, shuffle=True, seed=0),
                                                                     make_loader(data.val, 256, shuffle=False, seed=0)),
                         optimizer, None)
    return result.final, model


@pytest.fixture(scope="module")
def trained(data) -> nn.Module:
    """lagging_bn_net after two epochs of plain training (no precise BN)."""
    seed_everything(0)
    return fit(data, lagging_bn_net(), precise_bn=False)[1]


def test_recomputed_statistics_turn_chance_into_train_accuracy(data, trained: nn.Module) -> None:
    model = trained
    train_eval = make_loader(data.train, 256, shuffle=False, seed=0)
    val = make_loader(data.val, 256, shuffle=False, seed=0)
    assert accuracy(model, val) < CHANCE_MARGIN  # the bug: lagging statistics, chance in eval mode
    weights = {name: p.clone() for name, p in model.named_parameters()}

    used = recompute_bn_stats(model, make_loader(data.train, 64, shuffle=True, seed=1), batches=10)

    assert used == 640
    train_acc, val_acc = accuracy(model, train_eval), accuracy(model, val)
    assert train_acc > 0.85 and val_acc > train_acc - 0.1
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())  # only the statistics


def test_matches_the_population_statistics_and_restores_the_layer(data) -> None:
    bn = nn.BatchNorm2d(3, momentum=0.01)
    bn.num_batches_tracked.fill_(7)
    model = nn.Sequential(bn).eval()
    images = torch.stack([data.train[i][0] for i in range(128)])
    loader = [(images[:64],), (images[64:],)]
    expected_rand = (torch.manual_seed(3), torch.rand(3))[1]
    torch.manual_seed(3)

    assert recompute_bn_stats(model, loader, batches=5) == 128

    batch_means = torch.stack([b[0].mean(dim=(0, 2, 3)) for b in loader])
    torch.testing.assert_close(bn.running_mean, batch_means.mean(0))
    batch_vars = torch.stack([b[0].transpose(0, 1).flatten(1).var(dim=1) for b in loader])  # unbiased, as BN keeps
    torch.testing.assert_close(bn.running_var, batch_vars.mean(0))
    assert bn.momentum == 0.01 and int(bn.num_batches_tracked) == 7 and not model.training and not bn.training
    assert torch.equal(torch.rand(3), expected_rand)  # the RNG stream training draws from did not move


def test_frozen_batchnorm_keeps_its_statistics(data) -> None:
    seed_everything(0)
    model = lagging_bn_net()
    frozen = [model[0], model[1]]  # the first conv + BN, as finetune freezes a backbone's first stage
    model[1].running_mean.fill_(0.5)
    model[1].running_var.fill_(2.0)
    kept = {key: value.clone() for key, value in model[1].state_dict().items()}
    others = model[4].running_mean.clone()

    recompute_bn_stats(model, make_loader(data.train, 64, shuffle=False, seed=0), batches=2, frozen=frozen)

    assert all(torch.equal(value, kept[key]) for key, value in model[1].state_dict().items())
    assert not torch.equal(model[4].running_mean, others)
    assert training_batchnorms(model, frozen) == [model[4], model[7]]


def test_a_model_without_batchnorm_is_unchanged(data) -> None:
    model = create_model("lenet5", num_classes=10, image_size=16)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert recompute_bn_stats(model, make_loader(data.train, 64, shuffle=False, seed=0), batches=3) == 0
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert recompute_bn_stats(lagging_bn_net(), [], batches=3) == 0  # an empty loader changes nothing either


def test_fit_evaluates_with_recomputed_statistics(data) -> None:
    seed_everything(0)
    final, model = fit(data, lagging_bn_net())  # trainer.precise_bn: auto
    assert final["train_acc"] > 0.7 and final["val_acc"] > final["train_acc"] - 0.1
    assert final["bn_seconds"] > 0
    # What the reported val_acc used is what the model now holds (and what model.pt / last.pt save).
    assert accuracy(model, make_loader(data.val, 256, shuffle=False, seed=0)) == pytest.approx(final["val_acc"])


def test_precise_bn_does_not_change_training(data, trained: nn.Module) -> None:
    seed_everything(0)
    _, with_pass = fit(data, lagging_bn_net(), precise_bn=True)
    for (name, a), (_, b) in zip(trained.named_parameters(), with_pass.named_parameters()):
        assert torch.equal(a, b), name  # same weights: only the running statistics differ


def test_frozen_modules_and_cached_features_skip_the_pass(data) -> None:
    head = nn.Linear(32, 10)  # the feature-cache path trains the head alone: nothing to recompute
    trainer = Trainer(CPU, Recipe(), show_progress=False)
    loader = make_loader(data.train, 64, shuffle=False, seed=0)
    assert trainer._precise_bn_batches(head, loader, ()) == 0
    model = lagging_bn_net()
    assert trainer._precise_bn_batches(model, loader, list(model)) == 0  # a fully frozen backbone
    assert trainer._precise_bn_batches(model, loader, ()) == 20  # trainer.precise_bn_batches
    whole = Trainer(CPU, Recipe(precise_bn_batches=100), show_progress=False)
    assert whole._precise_bn_batches(model, loader, ()) == 23  # at most one epoch: 1437 images / 64
    capped = Trainer(CPU, Recipe(max_steps_per_epoch=4), show_progress=False)
    assert capped._precise_bn_batches(model, loader, ()) == 4


def test_settings_and_momentum_override() -> None:
    assert Recipe.from_config({"trainer": {}}).precise_bn is None
    assert Recipe.from_config({"trainer": {"precise_bn": "false"}}).precise_bn is False
    assert Recipe.from_config({"trainer": {"precise_bn": True, "precise_bn_batches": 8}}).precise_bn_batches == 8
    with pytest.raises(CnnlabError, match="trainer.precise_bn=maybe"):
        Recipe.from_config({"trainer": {"precise_bn": "maybe"}})
    with pytest.raises(CnnlabError, match="precise_bn_batches=0"):
        Recipe.from_config({"trainer": {"precise_bn_batches": 0}})
    model = lagging_bn_net()
    assert set_bn_momentum(model, 0.1, frozen=[model[1]]) == 2
    assert model[1].momentum == 0.01 and model[4].momentum == 0.1
    with pytest.raises(ValueError):
        set_bn_momentum(model, 0.0)


def test_one_value_per_channel_finds_the_batchnorm_a_lone_image_reaches_at_1x1() -> None:
    """Probe 62: trainer.batch_size=1 with resnet18 at 16 px stopped in the first step with torch's "Expected more
    than 1 value per channel when training" as a traceback. The layer is found beforehand; modes are kept."""
    from cnnlab.engine.batchnorm import one_value_per_channel
    from cnnlab.models import create_model

    model = create_model("resnet18", num_classes=4, image_size=16).train()
    found = one_value_per_channel(model, torch.zeros(1, 3, 16, 16))
    assert found == ("layer3.0.bn1", (1, 256, 1, 1)) and model.training and model.layer1.training
    assert one_value_per_channel(model, torch.zeros(1, 3, 64, 64)) is None  # 2×2 at the end: 4 values per channel
    assert one_value_per_channel(model, torch.zeros(1, 3, 16, 16), frozen=[model.layer3, model.layer4]) is None
    assert one_value_per_channel(nn.Sequential(nn.Flatten(), nn.Linear(48, 4)), torch.zeros(1, 3, 4, 4)) is None


def test_a_batch_of_one_image_that_batchnorm_cannot_train_is_refused_before_training(cli, outputs) -> None:
    tiny = ["dataset.image_size=16", "dataset.train_size=8", "dataset.val_size=4", "dataset.num_classes=2"]
    result = cli("pretrain", "model=resnet18", *tiny, "trainer.batch_size=1", "trainer.epochs=1")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "trainer.batch_size=1: one image per batch reaches the BatchNorm layer layer3.0.bn1 " \
        "as [1, 256, 1, 1]" in said and "use trainer.batch_size=2 or more" in said, result.output
    assert not (outputs / "pretrain").exists()  # refused before any work: no failed run left
    # probe 64: prune recalibrates BatchNorm before it trains: the same traceback there
    assert cli("pretrain", "model=resnet18", *tiny, "trainer.batch_size=4", "trainer.epochs=1").code == 0
    pruned = cli("prune", "source=latest:pretrain", "trainer.batch_size=1")
    assert pruned.code == 2 and "one image per batch reaches the BatchNorm layer" in pruned.stderr, pruned.output
    assert not (outputs / "prune").exists()


def test_the_batch_of_one_refusal_names_the_batch_of_all_processes() -> None:
    """Probe 64: under torchrun with 2 processes, trainer.batch_size=2 is one image per process, and the fix said
    "use trainer.batch_size=2 or more" — what was typed."""
    from torch.utils.data import DataLoader, TensorDataset

    from cnnlab.engine.batchnorm import refuse_batch_of_one
    from cnnlab.errors import CnnlabError
    from cnnlab.models import create_model

    model = create_model("resnet18", num_classes=2, image_size=16)
    loader = DataLoader(TensorDataset(torch.zeros(4, 3, 16, 16), torch.zeros(4, dtype=torch.long)), batch_size=1)
    with pytest.raises(CnnlabError) as err:
        refuse_batch_of_one(model, loader, world_size=2)
    assert "trainer.batch_size=2: one image per batch per process" in err.value.message
    assert err.value.fix == "use trainer.batch_size=4 or more (or a larger dataset.image_size)"
    refuse_batch_of_one(model, DataLoader(loader.dataset, batch_size=2))  # two images: nothing to say
