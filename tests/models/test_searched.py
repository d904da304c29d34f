"""The `searched` zoo entry (cnnlab/models/searched.py): architecture strings round-trip, build any network of
the grammar, export to ONNX, prune with Torch-Pruning and rebuild from a model.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from cnnlab.compress.pruning import ChannelPruner, ChannelSettings, layer_widths
from cnnlab.data.spec import InputSpec
from cnnlab.deploy.export import export_onnx, verify_onnx
from cnnlab.engine.checkpoint import load_model, save_model
from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, count_params, create_model, feature_stages
from cnnlab.models.searched import (MOBILENET_V2_ARCH, ArchSpec, StageSpec, format_arch, make_divisible,
                                    parse_arch)

SMALL = "r16_w0.5_stem16s1_k3e1c16n1s1_k5e4c24n2s2.se_k7e6c32n2s2.se.hs_k3e3c48n1s1.si_head64"
CLASSES = [str(i) for i in range(5)]


@pytest.mark.parametrize("arch", [SMALL, MOBILENET_V2_ARCH, "w1.25_stem8s2_k1e1.5c8n3s4.si_head0",
                                  "r224_w0.35_stem32s2_k3e1c16n1s1.se.hs_k5e6c24n2s2_head1280"])
def test_canonical_strings_round_trip(arch: str) -> None:
    spec = parse_arch(arch)
    assert format_arch(spec) == arch
    assert parse_arch(format_arch(spec)) == spec


def test_a_spec_round_trips_through_its_string() -> None:
    spec = ArchSpec(stages=(StageSpec(5, 6.0, 24, 2, 2, se=True, activation="hardswish"),
                            StageSpec(3, 1.0, 16, 1, 1, activation="silu")),
                    width=0.75, stem_channels=16, stem_stride=1, head_channels=0, resolution=28)
    assert format_arch(spec) == "r28_w0.75_stem16s1_k5e6c24n2s2.se.hs_k3e1c16n1s1.si_head0"
    assert parse_arch(format_arch(spec)) == spec


def test_defaults_fill_what_a_short_string_leaves_out() -> None:
    spec = parse_arch("k3e6c24n2s2.re")
    assert (spec.width, spec.stem_channels, spec.stem_stride, spec.head_channels, spec.resolution) == \
        (1.0, 32, 2, 1280, None)
    assert format_arch(spec) == "w1_stem32s2_k3e6c24n2s2_head1280"


@pytest.mark.parametrize("arch, detail", [
    ("", "empty"),
    ("w1_stem32s2_head1280", "no stage"),
    ("w1_k3e6c24n2s2_bogus", "token 'bogus'"),
    ("k4e6c24n2s2", "kernel 4 must be odd"),
    ("k3e6c24n2s2.se.se", "flags"),
    ("k3e6c24n2s2.hs.si", "flags"),
    ("k3e0c24n2s2", "expansion 0"),
    ("k3e6c24n0s2", "n >= 1"),
    ("w9_k3e6c24n2s2", "width w9"),
    # a second token of one field silently won (w2 built; head640 built): refused, both named
    ("w1_w2_k3e6c24n2s2", "'w1' and 'w2' both set the width multiplier"),
    ("k3e6c24n2s2_head1280_head640", "'head1280' and 'head640' both set the head channels"),
    ("stem32s2_stem16s1_k3e6c24n2s2", "'stem32s2' and 'stem16s1' both set the stem"),
    ("r24_r32_k3e6c24n2s2", "'r24' and 'r32' both set the resolution"),
])
def test_a_bad_string_is_one_line_with_the_grammar(arch: str, detail: str) -> None:
    with pytest.raises(CnnlabError) as caught:
        parse_arch(arch)
    line = caught.value.one_line()
    assert detail in line and "\n" not in line and "docs/search.md" in line


def test_a_searched_network_at_another_size_than_its_search_is_said() -> None:
    """`r24_...` trained at 32 px was silent: the search's latency and accuracy are not that network's."""
    from cnnlab.models import resolution_hint

    hint = resolution_hint("searched", 32, "r24_k3e6c24n2s2")
    assert hint is not None and "r24" in hint and "32 px" in hint and "dataset.image_size=24" in hint
    assert resolution_hint("searched", 24, "r24_k3e6c24n2s2") is None
    assert resolution_hint("searched", 32, "k3e6c24n2s2") is None  # no r token: nothing recorded to differ from
    assert resolution_hint("searched", 32, None) is None and resolution_hint("resnet18", 32, None) is None


def test_the_default_is_mobilenet_v2() -> None:
    model = create_model("searched", 10, 32)
    assert count_params(model) == count_params(tvm.mobilenet_v2(num_classes=10))


def test_channel_rounding_is_mobilenets() -> None:
    assert [make_divisible(v) for v in (16 * 0.35, 24 * 0.5, 32 * 0.75, 1280.0, 3.0)] == [8, 16, 24, 1280, 8]


def test_builds_any_string_and_classifies_grayscale() -> None:
    model = create_model("searched", 5, 16, arch=SMALL, in_channels=1).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 1, 16, 16))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Hardswish", "SiLU", "SqueezeExcitation", "Hardsigmoid"} <= kinds
    assert [name for name, _ in feature_stages(model, "searched")] == ["stem", "blocks", "final"]
    assert len(model.blocks) == 4 and [len(stage) for stage in model.blocks] == [1, 2, 2, 1]


def test_a_bad_string_fails_create_model_in_one_line() -> None:
    with pytest.raises(CnnlabError, match="is not an architecture string"):
        create_model("searched", 5, 16, arch="k2e6c24n2s2")


def test_exports_to_onnx_and_agrees(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("searched", 5, 16, arch=SMALL).eval()
    spec = InputSpec(16, (0.5,) * 3, (0.25,) * 3)
    path = export_onnx(model, tmp_path / "m.onnx", spec=spec, classes=CLASSES)
    result = verify_onnx(path, model, torch.randn(4, 3, 16, 16), atol=1e-4, rtol=1e-4)
    assert result["passed"], result


def _lively(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.2, 1.5)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_the_checkpoint_rebuilds_it_and_a_pruned_one(tmp_path: Path) -> None:
    """The architecture string travels in arch.kwargs; Torch-Pruning shrinks the network (SE, residual adds,
    depthwise convolutions) and the pruned file rebuilds too."""
    torch.manual_seed(0)
    kwargs = {"arch": SMALL, "in_channels": 1}
    model = _lively(create_model("searched", 5, 16, **kwargs))
    spec = InputSpec(16, (0.5,) * 3, (0.25,) * 3, channels=1)
    images = torch.randn(3, 1, 16, 16)

    def round_trip(net: nn.Module, name: str) -> nn.Module:
        path = save_model(tmp_path / name, net, arch={"name": "searched", "num_classes": 5, "image_size": 16,
                                                      "kwargs": kwargs}, classes=CLASSES, spec=spec)
        rebuilt, checkpoint = load_model(path)
        assert checkpoint.arch["kwargs"]["arch"] == SMALL
        return rebuilt

    with torch.no_grad():
        assert torch.allclose(round_trip(model, "dense.pt")(images), model(images), atol=1e-5)
    before, widths = count_params(model), layer_widths(model)
    pruner = ChannelPruner(model, torch.zeros(1, 1, 16, 16), ChannelSettings(ratio=0.5), keep=[MODELS["searched"].head])
    pruner.step()
    assert count_params(model) < 0.8 * before and layer_widths(model) != widths
    with torch.no_grad():
        assert torch.allclose(round_trip(model, "pruned.pt")(images), model(images), atol=1e-5)
