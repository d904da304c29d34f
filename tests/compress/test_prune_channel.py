"""Channel pruning (cnnlab/compress/pruning/channel.py): every zoo family shrinks, still runs, and
rebuilds from its model.pt; importance, global ranking, round_to, steps, ignore and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.compress.pruning import (ChannelPruner, ChannelSettings, accumulate_gradients, layer_widths,
                                     run_naming_layer)
from cnnlab.data.spec import InputSpec
from cnnlab.engine.checkpoint import load_model, save_model
from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, count_params, create_model

SIZE = 32


def _model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model(name, 5, SIZE)
    for module in model.modules():  # non-trivial BN scales and statistics, as in a trained network
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.2, 1.5)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _prune(model: nn.Module, name: str, **settings) -> ChannelPruner:
    pruner = ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(**settings),
                           keep=[MODELS[name].head])
    for _ in range(pruner.settings.steps):
        pruner.step()
    return pruner


def _round_trip(model: nn.Module, name: str, tmp_path: Path) -> nn.Module:
    path = save_model(tmp_path / "model.pt", model, arch={"name": name, "num_classes": 5, "image_size": SIZE},
                      classes=[str(i) for i in range(5)], spec=InputSpec(SIZE, (0.5,) * 3, (0.25,) * 3))
    rebuilt, _ = load_model(path)  # torch.load(weights_only=True) + capture_structure/apply_structure
    return rebuilt.eval()


FAST = ["lenet5", "resnet18", "mobilenet_v3_small", "googlenet"]
SLOW = ["resnet50", "mobilenet_v2", "efficientnet_b0", "vgg11", "alexnet"]


@pytest.mark.parametrize("name", FAST + [pytest.param(n, marks=pytest.mark.slow) for n in SLOW])
def test_every_family_prunes_runs_and_rebuilds_from_its_checkpoint(name: str, tmp_path: Path) -> None:
    """Residual adds (resnet), bottlenecks (resnet50), depthwise convs (mobilenet_v2), inception
    concatenations (googlenet), squeeze-excitation (efficientnet, mobilenet_v3), plain stacks (vgg,
    alexnet, lenet5)."""
    model = _model(name)
    dense_params, dense_widths = count_params(model), layer_widths(model)
    _prune(model, name, ratio=0.5)

    image = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        logits = model(image)
    assert logits.shape == (2, 5)
    assert count_params(model) < 0.6 * dense_params
    widths = layer_widths(model)
    head = MODELS[name].head
    assert widths[head] == 5  # the classifier never loses outputs ...
    assert model.get_submodule(head).in_features < create_model(name, 5, SIZE).get_submodule(head).in_features
    assert sum(widths.values()) < sum(dense_widths.values())  # ... while its input shrank with the backbone

    rebuilt = _round_trip(model, name, tmp_path)
    with torch.no_grad():
        assert torch.equal(rebuilt(image), logits)


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale", "taylor"])
def test_importances_choose_different_channels(importance: str) -> None:
    model = _model("resnet18")
    if importance == "taylor":
        batches = [(torch.randn(4, 3, SIZE, SIZE), torch.randint(0, 5, (4,))) for _ in range(2)]
        used = accumulate_gradients(model, batches, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
                                    limit=2)
        assert used == 2
    conv1_before = model.conv1.weight.detach().clone()
    _prune(model, "resnet18", ratio=0.25, importance=importance)
    assert model.conv1.out_channels == 48
    kept = [i for i in range(64) if any(torch.equal(model.conv1.weight[j], conv1_before[i]) for j in range(48))]
    assert len(kept) == 48
    if importance == "l1":  # the 16 filters with the smallest L1 norm went
        norms = conv1_before.abs().flatten(1).sum(1)
        removed = sorted(set(range(64)) - set(kept))
        # conv1 is coupled with layer1's residual convs; the group's mean score decides, so the removed
        # filters are mostly (not necessarily all) the weakest of conv1 alone.
        assert norms[removed].mean() < norms[kept].mean()


def test_taylor_without_gradients_is_a_programming_error() -> None:
    model = _model("lenet5")
    pruner = ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.5, importance="taylor"),
                           keep=[MODELS["lenet5"].head])
    with pytest.raises(RuntimeError, match="accumulate_gradients"):
        pruner.step()


def test_local_pruning_keeps_the_ratio_in_every_layer_and_global_does_not() -> None:
    local, global_ = _model("resnet18"), _model("resnet18")
    dense = layer_widths(local)
    _prune(local, "resnet18", ratio=0.5)
    _prune(global_, "resnet18", ratio=0.5, global_ranking=True)
    head = MODELS["resnet18"].head
    local_w, global_w = layer_widths(local), layer_widths(global_)
    assert all(local_w[p] == dense[p] // 2 for p in dense if p != head)
    fractions = {global_w[p] / dense[p] for p in dense if p != head}
    assert len(fractions) > 1  # uneven widths
    assert sum(global_w[p] for p in dense if p != head) < 0.7 * sum(dense[p] for p in dense if p != head)


def test_round_to_keeps_the_nearest_multiple() -> None:
    model = _model("resnet18")
    dense = layer_widths(model)
    _prune(model, "resnet18", ratio=0.3, round_to=16)
    widths = layer_widths(model)
    for path, width in widths.items():
        if path != MODELS["resnet18"].head:
            assert width % 16 == 0, (path, width)
            # nearest multiple of 16 to 70 %, not rounded down (64 → 48, not 32; 512 → 352 or 368)
            assert abs(width - 0.7 * dense[path]) <= 8, (path, width)


def test_round_to_rounds_halves_up() -> None:
    model = _model("resnet18")
    _prune(model, "resnet18", ratio=0.6875, round_to=8)  # 64 → 20 kept = 2.5 x 8 → 24; 128 → 40 = 5 x 8
    assert model.conv1.out_channels == 24 and model.layer2[0].conv1.out_channels == 40


def test_round_to_leaves_layers_narrower_than_the_multiple_whole() -> None:
    model = _model("lenet5")
    _prune(model, "lenet5", ratio=0.5, round_to=8)
    widths = layer_widths(model)
    assert widths["features.0"] == 6  # 3 channels is no multiple of 8: the layer stays whole
    assert widths["features.3"] == 8 and widths["classifier.0"] == 64


def test_kept_channels_are_the_floor_of_the_exact_count_and_narrow_layers_stay_whole() -> None:
    """Torch-Pruning truncates C x (1 - ratio) in floating point: 120 x (1 - 0.9) = 11.999…, so 11 channels were kept
    (8 after rounding to 8, where the nearest multiple of 12 is 16); a layer narrower than round_to was refused
    when the ratio truncated it to nothing, though the docs say it stays whole."""
    exact = _model("lenet5")
    ChannelPruner(exact, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.9),
                  keep=[MODELS["lenet5"].head, "features.0"]).step()
    assert layer_widths(exact)["classifier.0"] == 12 and layer_widths(exact)["features.3"] == 1  # 1.6 → 1
    rounded = _model("lenet5")
    _prune(rounded, "lenet5", ratio=0.9, round_to=8)
    assert layer_widths(rounded)["classifier.0"] == 16  # 12 → 16 (halves up)
    narrow = _model("lenet5")
    _prune(narrow, "lenet5", ratio=0.85, round_to=8)  # 6 x 0.15 = 0.9 channels: no multiple of 8 fits
    assert layer_widths(narrow)["features.0"] == 6 and layer_widths(narrow)["classifier.0"] == 16  # 18 → 16


def test_iterative_steps_reach_the_ratio() -> None:
    model = _model("resnet18")
    pruner = ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.5, steps=2),
                           keep=[MODELS["resnet18"].head])
    pruner.step()
    assert pruner.current_ratio == 0.25 and model.conv1.out_channels == 48
    pruner.step()
    assert pruner.current_ratio == 0.5 and model.conv1.out_channels == 32
    with pytest.raises(RuntimeError):
        pruner.step()


def test_ignored_layers_keep_their_channels() -> None:
    model = _model("mobilenet_v2")
    pruner = ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.5),
                           keep=[MODELS["mobilenet_v2"].head, "features.18.0"])
    pruner.step()
    assert model.features[18][0].out_channels == 1280
    assert model.features[17].conv[0][0].out_channels < 960


def test_unknown_ignored_layer_is_named() -> None:
    with pytest.raises(CnnlabError, match="no layer 'layer9'"):
        ChannelPruner(_model("resnet18"), torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.5),
                      keep=["fc", "layer9"])


def test_removing_a_whole_layer_is_refused_naming_it_before_any_step() -> None:
    """Probe 200: under per-layer ranking the widths tell it before the data is read; it was refused at the step
    (after the steps and recovery training before it)."""
    model = _model("lenet5")
    with pytest.raises(CnnlabError, match=r"remove all 6 channels of layer 'features.0'") as refused:
        ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.9, steps=3),
                      keep=[MODELS["lenet5"].head])
    assert refused.value.before_work
    assert layer_widths(model)["features.0"] == 6
    # global: the ranking decides where the cut falls, known only at the step
    pruner = ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.9, global_ranking=True),
                           keep=[MODELS["lenet5"].head])
    with pytest.raises(CnnlabError, match=r"would remove"):
        pruner.step()


def test_every_layer_a_ratio_would_empty_is_named_at_once_and_the_fix_works() -> None:
    """Probe 196: ResNet-18 at ratio 0.99 was refused for conv1, then (conv1 left out) for layer1.0.conv1, then for
    layer1.1.conv1: a run per layer. One refusal names them all, with the prune.ignore that passes."""
    model = _model("resnet18")
    settings = ChannelSettings(0.99)
    with pytest.raises(CnnlabError) as refused:
        ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), settings, keep=["fc", "layer4"],
                      ignored=["layer4"]).step()
    emptied = ["conv1", "layer1.0.conv1", "layer1.1.conv1"]  # 64 channels: ⌊64 × 0.01⌋ = 0 kept
    assert refused.value.message == ("prune.ratio=0.99 would remove every channel of 3 layers: " + ", ".join(
        f"'{name}' (64)" for name in emptied) + ", i.e. the whole layers")
    assert refused.value.fix.endswith(f"or leave them out: 'prune.ignore=[layer4,{','.join(emptied)}]'")
    model = _model("resnet18")  # followed: the wider layers keep one channel each
    ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), settings, keep=["fc", "layer4", *emptied]).step()
    assert layer_widths(model)["layer2.0.conv1"] == 1 and layer_widths(model)["conv1"] == 64
    # probe 200: a global ranking moves its cut onto other layers when these are left out (six refusals in a row):
    # its fix is per-layer ranking, not prune.ignore
    with pytest.raises(CnnlabError) as refused:
        ChannelPruner(_model("resnet18"), torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.99, global_ranking=True),
                      keep=["fc"]).step()
    assert "would remove" in refused.value.message and "prune.ignore" not in refused.value.fix
    assert refused.value.fix.startswith("lower prune.ratio, or use prune.global=false"), refused.value.fix


def test_a_layer_of_one_channel_is_refused_with_exact_widths_not_left_whole() -> None:
    """Probe 96 (Torch-Pruning #179, #126): Torch-Pruning skips the group of a 1-channel layer, so a LeNet-5 pruned to
    features.0 = 1 channel and pruned again at ratio 0.6 kept that channel, exit 0, the ratio recorded."""
    model = _model("lenet5")
    ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.8), keep=[MODELS["lenet5"].head]).step()
    assert layer_widths(model)["features.0"] == 1
    with pytest.raises(CnnlabError, match=r"prune.ratio=0.6 would remove all 1 channels of layer 'features.0'"):
        ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.6), keep=[MODELS["lenet5"].head])
    ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.6, round_to=8),  # narrower than 8: whole
                  keep=[MODELS["lenet5"].head]).step()
    assert layer_widths(model)["features.0"] == 1
    ChannelPruner(model, torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.6),  # or left out, as the fix says
                  keep=[MODELS["lenet5"].head, "features.0"]).step()


@pytest.mark.parametrize("bad", [dict(ratio=1.0), dict(ratio=-0.1), dict(ratio=0.5, importance="entropy"),
                                 dict(ratio=0.5, steps=0), dict(ratio=0.5, round_to=0)])
def test_bad_settings_are_user_errors(bad: dict) -> None:
    with pytest.raises(CnnlabError):
        ChannelSettings(**bad)


def test_bn_scale_needs_batch_norms() -> None:
    with pytest.raises(CnnlabError, match="no batch norms"):
        ChannelPruner(_model("lenet5"), torch.zeros(1, 3, SIZE, SIZE), ChannelSettings(0.5, importance="bn_scale"),
                      keep=["classifier.4"])


class _ToNumpy(nn.Module):
    """A layer autograd cannot follow (it leaves torch for numpy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy() * 2.0)


class _FixedScale(nn.Module):
    """Multiplies by a per-channel buffer: Torch-Pruning does not see it, so pruning breaks its shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _net(middle: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), middle, nn.Conv2d(8, 8, 3), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 3))


def test_an_untraceable_graph_is_refused_naming_the_layer() -> None:
    with pytest.raises(CnnlabError, match=r"cannot trace .* at layer '2' \(_ToNumpy\)"):
        ChannelPruner(_net(_ToNumpy()), torch.zeros(1, 3, 16, 16), ChannelSettings(0.5), keep=["6"])


def test_a_graph_pruning_misread_is_caught_naming_the_layer() -> None:
    pruner = ChannelPruner(_net(_FixedScale(8)), torch.zeros(1, 3, 16, 16), ChannelSettings(0.5), keep=["6"])
    with pytest.raises(CnnlabError, match=r"no longer runs.* at layer '2' \(_FixedScale\)"):
        pruner.step()


def test_run_naming_layer_passes_results_through() -> None:
    model = _net(nn.Identity())
    assert run_naming_layer(model, lambda: 41 + 1, what="x", fix="y") == 42
