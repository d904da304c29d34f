"""`cnnlab inspect`: the layer table on stdout, no run folder."""

from __future__ import annotations

from pathlib import Path

from cnnlab.models import count_params, create_model


def test_lenet_table_has_every_layer_and_the_totals(cli, outputs: Path) -> None:
    result = cli("inspect", "model=lenet5", "dataset.image_size=32")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("features.0" in ln and "Conv2d" in ln and "5×5 s1 p2" in ln and "6×32×32" in ln for ln in lines)
    assert any("features.3" in ln and "16×12×12" in ln for ln in lines)
    total = next(ln for ln in lines if " total " in ln)
    assert f"{count_params(create_model('lenet5', 10, 32)):,}" in total  # synthetic: 10 classes
    assert "receptive field" in result.stdout
    assert not outputs.exists() or not list(outputs.rglob("run.json"))  # read-only: no run folder


def test_the_network_inspected_for_a_dataset_is_the_one_pretrain_builds(cli, outputs: Path) -> None:
    """`inspect model=lenet5 dataset=mnist` described a 3-channel, 1000-class LeNet-5 (146,156 parameters, 1.47 M
    FLOPs), not the 1-channel, 10-class one pretrain trains (61,706; probe 66). No files are needed for it."""
    result = cli("inspect", "model=lenet5", "dataset=mnist", "dataset.root=/nonexistent")
    assert result.code == 0, result.output
    assert "10 classes" in result.stdout and "1×28×28" in result.stdout and "61,706" in result.stdout
    flowers = cli("inspect", "model=lenet5", "dataset=flowers", "dataset.image_size=32")
    assert flowers.code == 0 and "102 classes" in flowers.stdout and "3×32×32" in flowers.stdout


def test_depthwise_and_gated_layers_are_marked(cli) -> None:
    result = cli("inspect", "model=mobilenet_v3_small", "dataset.image_size=32", "inspect.num_classes=5")
    assert result.code == 0, result.output
    depthwise = [ln for ln in result.stdout.splitlines() if "Conv2d" in ln and " dw" in ln]
    assert depthwise and "3×3 s2 p1 dw" in depthwise[0]  # MobileNetV3-Small's first block: stride-2 depthwise
    gated = [ln for ln in result.stdout.splitlines() if "features.1.block.2" in ln]  # after its SE gate
    assert gated and "*" in gated[0] and "5 classes" in result.stdout


def test_unknown_model_is_one_line(cli) -> None:
    result = cli("inspect", "model=resnet51")
    assert result.code == 2 and "resnet51" in result.stderr and "Traceback" not in result.stderr


def test_a_device_is_refused_not_ignored(cli) -> None:
    """Probe 146: `cnnlab inspect --device foo` (or cuda on a machine without one) printed the table, exit 0."""
    for args in (["--device", "foo"], ["device=cuda:3"]):
        result = cli("inspect", *args, "model=lenet5")
        assert result.code == 2 and "`cnnlab inspect` reads no device" in result.stderr, result.output
    assert cli("inspect", "model=lenet5", "device=auto").code == 0
