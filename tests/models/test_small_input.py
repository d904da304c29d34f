"""`model.stem=cifar`: the CIFAR-style small-image stem, its checks, and what a checkpoint records."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import MODELS, check_stem, count_flops, create_model, model_options


def first_stage_size(model: nn.Module, stage: nn.Module, size: int) -> tuple[int, int]:
    """Spatial size (H, W) of the input `stage` receives when `model` sees a size×size image."""
    seen: list[tuple[int, int]] = []
    handle = stage.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape[-2:])))
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_the_resnet_cifar_stem_keeps_the_first_stage_at_input_resolution(name: str) -> None:
    stock, cifar = create_model(name, 10, 28), create_model(name, 10, 28, stem="cifar")
    assert first_stage_size(stock, stock.layer1, 28) == (7, 7)  # 7×7 stride-2 conv, then a stride-2 max-pool
    assert first_stage_size(cifar, cifar.layer1, 28) == (28, 28)
    assert first_stage_size(cifar, cifar.layer4, 28) == (7, 7)  # stock: 1×1
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1) and cifar.conv1.bias is None
    assert isinstance(cifar.maxpool, nn.Identity)
    kaiming_fan_out = (2 / (64 * 3 * 3)) ** 0.5  # torchvision's ResNet initialisation, not PyTorch's default
    assert float(cifar.conv1.weight.detach().std()) == pytest.approx(kaiming_fan_out, rel=0.1)
    assert 10 < count_flops(cifar, 28) / count_flops(stock, 28) < 20  # the price: ~16× the compute


def test_the_mobilenet_v2_cifar_stem_keeps_every_weight_shape() -> None:
    stock, cifar = create_model("mobilenet_v2", 10, 28), create_model("mobilenet_v2", 10, 28, stem="cifar")
    assert first_stage_size(stock, stock.features[18], 28) == (1, 1)  # overall stride 32: 28 px → 1 px
    assert first_stage_size(cifar, cifar.features[18], 28) == (4, 4)  # overall stride 8
    # shape-preserving, so torchvision's ImageNet state dict (1000 classes) loads into it strictly
    imagenet_shaped = create_model("mobilenet_v2", 1000, 28, stem="cifar")
    imagenet_shaped.load_state_dict(tvm.mobilenet_v2(weights=None).state_dict())


def test_the_stem_option_is_checked_and_recorded_in_one_spelling() -> None:
    with_stem = sorted(name for name, entry in MODELS.items() if entry.cifar_stem is not None)
    assert with_stem == ["mobilenet_v2", "resnet18", "resnet34", "resnet50"]
    with pytest.raises(CnnlabError, match="vgg11 has no small-image stem") as err:
        create_model("vgg11", 10, 32, stem="cifar")
    assert "resnet18" in err.value.fix
    with pytest.raises(CnnlabError, match="teacher.stem=tiny is not a stem") as err:
        check_stem("resnet18", "tiny", role="teacher")
    assert "teacher.stem=cifar" in err.value.fix
    assert check_stem("mobilenet", None) == "imagenet" and check_stem("resnet18", " CIFAR ") == "cifar"
    assert model_options({"name": "resnet18", "stem": " CIFAR"}) == {"stem": "cifar"}
    assert model_options({"name": "resnet18", "stem": "imagenet"}) == model_options({"name": "resnet18", "stem": None}) == {}


def test_a_stock_stem_on_1x1_maps_gets_a_hint_towards_the_cifar_stem() -> None:
    """Stock ResNet-18 at 28 px scored 90.1 % on Fashion-MNIST's test set, no better than LeNet-5: pretrain says
    that model.stem=cifar exists where the last stage sees 1x1 maps, and only there."""
    from cnnlab.models import stem_hint

    def hint(name: str, size: int, stem: str | None = None) -> str | None:
        return stem_hint(name, create_model(name, num_classes=10, image_size=size, **({"stem": stem} if stem else {})),
                         size, stem)

    assert "model.stem=cifar" in str(hint("resnet18", 28)) and "1x1 maps" in str(hint("mobilenet_v2", 28))
    assert hint("resnet18", 64) is None  # its last stage sees 2x2
    assert hint("resnet18", 28, "cifar") is None and hint("lenet5", 28) is None and hint("vgg11", 32) is None
