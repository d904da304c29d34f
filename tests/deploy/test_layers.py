"""The layer table behind `cnnlab inspect`: rows, shapes, kernel geometry, FLOPs, receptive fields."""

from __future__ import annotations

import pytest
from torch import nn

from cnnlab.deploy.layers import geometry, layer_table
from cnnlab.models import count_flops, count_params, create_model


def test_lenet_rows_shapes_and_fields() -> None:
    model = create_model("lenet5", num_classes=10, image_size=32)
    table = layer_table(model, 32)
    rows = {row.name: row for row in table.rows}
    assert [row.name for row in table.rows][:3] == ["features.0", "features.1", "features.2"]
    assert rows["features.0"].geometry == "5×5 s1 p2" and rows["features.0"].output_shape == (6, 32, 32)
    assert rows["features.3"].output_shape == (16, 12, 12)  # 5×5 without padding: 16 → 12
    assert rows["features.5"].output_shape == (16, 6, 6)
    assert rows["classifier.4"].output_shape == (10,)
    assert [rows[n].field.size for n in ("features.0", "features.2", "features.3", "features.5", "avgpool")] == \
        [5, 6, 14, 16, 20]
    assert rows["classifier.0"].field.size == 20 + 4 * 4 and rows["classifier.0"].field_growth == 16
    assert rows["features.0"].params == 6 * 3 * 25 + 6
    assert rows["features.0"].flops == 2 * 6 * 32 * 32 * 3 * 25  # a MAC is 2 FLOPs
    assert table.total_params == count_params(model) == sum(row.params for row in table.rows)
    assert table.total_flops == count_flops(model, 32) == sum(row.flops for row in table.rows)
    assert table.input_shape == (3, 32, 32)


@pytest.mark.parametrize("name, size, stage_end, expected", [
    ("vgg16", 32, "features.30", 212),   # the textbook VGG-16 field
    ("resnet18", 64, "layer4.1.relu", 435),
    ("resnet50", 64, "layer4.2.relu", 427),
])
def test_classic_receptive_fields(name: str, size: int, stage_end: str, expected: int) -> None:
    rows = [row for row in layer_table(create_model(name, 4, size), size).rows if row.name == stage_end]
    assert rows[-1].field is not None and rows[-1].field.size == expected


def test_shared_modules_give_one_row_per_call_and_count_params_once() -> None:
    model = create_model("resnet18", num_classes=4, image_size=32)
    table = layer_table(model, 32)
    relu_rows = [row for row in table.rows if row.name == "layer1.0.relu"]
    assert len(relu_rows) == 2  # BasicBlock calls its ReLU twice
    assert sum(row.params for row in table.rows) == count_params(model)


def test_geometry_text() -> None:
    assert geometry(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)) == "3×3 s2 p1 dw"
    assert geometry(nn.Conv2d(8, 16, 3, groups=4, dilation=2)) == "3×3 s1 p0 d2 g4"
    assert geometry(nn.MaxPool2d(3, 2, ceil_mode=True)) == "3×3 s2 p0 ceil"
    assert geometry(nn.AdaptiveAvgPool2d((7, 7))) == "→ 7×7"
    assert geometry(nn.ReLU()) == ""


def test_training_mode_is_restored() -> None:
    model = create_model("lenet5", num_classes=4, image_size=16).train()
    layer_table(model, 16)
    assert model.training and not model._forward_hooks and not model.features[0]._forward_hooks
