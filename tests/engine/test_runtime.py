from __future__ import annotations

import pytest
import torch

from cnnlab.engine import runtime as rt
from cnnlab.errors import CnnlabError


def test_auto_device_and_amp_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rt.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(rt, "cpu_has_fast_bf16", lambda: True)
    assert rt.resolve_amp("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(rt, "cpu_has_fast_bf16", lambda: False)
    assert rt.resolve_amp("auto", torch.device("cpu")) is None
    assert rt.resolve_amp("none", torch.device("cpu")) is None


def test_cuda_requested_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CnnlabError, match="no CUDA GPU is visible") as info:
        rt.resolve_device("cuda")
    assert "device=cpu" in info.value.fix


@pytest.mark.parametrize("device, amp, message", [("tpu", "auto", "unknown device"),
                                                   ("cpu", "fp8", "unknown trainer.amp"),
                                                   ("cpu", "fp16", "not supported on the CPU")])
def test_bad_settings(device: str, amp: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        rt.resolve_amp(amp, rt.resolve_device(device))


def test_runtime_from_config_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    runtime = rt.Runtime.from_config({"device": "cpu", "trainer": {"amp": "none", "channels_last": False}})
    assert runtime.is_main and not runtime.distributed and runtime.amp_dtype is None
    x = runtime.to_device(torch.zeros(1, 3, 4, 4))
    assert x.is_contiguous()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runtime_trains_a_step_with_amp() -> None:
    runtime = rt.Runtime.from_config({"device": "cuda", "trainer": {"amp": "auto", "channels_last": "auto"}})
    model = runtime.prepare_model(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(),
                                                      torch.nn.Linear(8 * 6 * 6, 2)))
    x = runtime.to_device(torch.randn(4, 3, 8, 8))
    with runtime.autocast():
        loss = model(x).float().sum()
    loss.backward()
    assert runtime.device.type == "cuda" and runtime.amp_dtype in (torch.bfloat16, torch.float16)


RANK_ZERO_SCRIPT = """
import json, sys
from pathlib import Path

import torch

from cnnlab.engine.metrics import ClassificationMeter
from cnnlab.engine.runtime import Runtime, from_rank_zero
from cnnlab.errors import CnnlabError

rank, out = int(sys.argv[1]), Path(sys.argv[2])
torch.distributed.init_process_group("gloo", init_method=f"file://{out / 'store'}", rank=rank, world_size=2)
runtime = Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False, rank=rank, world_size=2)
seen = {"value": from_rank_zero(runtime, lambda: {"ms": 1.5 + rank, "rank": rank})}
try:
    from_rank_zero(runtime, lambda: (_ for _ in ()).throw(CnnlabError("timing failed", fix="try again")))
except CnnlabError as exc:
    seen["error"] = [exc.message, exc.fix]
meter = ClassificationMeter(torch.device("cpu"))
meter.update(torch.tensor(float("nan") if rank == 1 else 0.5), torch.eye(2), torch.tensor([0, 1]))
seen["finite_here"] = meter.loss_is_finite()
seen["finite_everywhere"] = meter.loss_is_finite(across_ranks=True)
(out / f"rank{rank}.json").write_text(json.dumps(seen))
torch.distributed.destroy_process_group()
"""


def test_rank_zero_decides_for_every_rank_and_its_errors_reach_them_all(tmp_path) -> None:
    """What one rank measures (a latency) is what every rank uses; an error there ends all ranks instead of leaving
    them waiting; a NaN loss on one rank stops every rank."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(RANK_ZERO_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert zero["value"] == one["value"] == {"ms": 1.5, "rank": 0}
    assert zero["error"] == one["error"] == ["timing failed", "try again"]
    assert (zero["finite_here"], one["finite_here"]) == (True, False)
    assert zero["finite_everywhere"] is one["finite_everywhere"] is False


def test_rank_zero_work_in_a_single_process_is_a_plain_call() -> None:
    runtime = rt.Runtime(device=torch.device("cpu"), amp_dtype=None, channels_last=False)
    assert rt.from_rank_zero(runtime, lambda: 7) == 7


def test_amp_auto_trains_depthwise_networks_in_float32_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 autocast made MobileNetV2 train 2-3x slower than float32 on an AMX Xeon (benchmarks/cpu_amp.py), while
    ResNet-18 at 64 px gained 1.4x: `auto` now decides per network; an explicit bf16 is kept."""
    from cnnlab.models import create_model

    monkeypatch.setattr(rt, "cpu_has_fast_bf16", lambda: True)
    auto = rt.Runtime.from_config({"device": "cpu", "trainer": {"amp": "auto"}})
    asked = rt.Runtime.from_config({"device": "cpu", "trainer": {"amp": "bf16"}})
    mobilenet = create_model("mobilenet_v2", num_classes=3, image_size=32)
    resnet = create_model("resnet18", num_classes=3, image_size=32)
    assert auto.amp_dtype == torch.bfloat16 and auto.for_network(mobilenet).amp_dtype is None
    assert auto.for_network(resnet).amp_dtype == torch.bfloat16
    assert asked.for_network(mobilenet).amp_dtype == torch.bfloat16


def test_amp_auto_keeps_networks_whose_deepest_maps_are_1x1_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an AMX Xeon, ResNet-18 at 28 px (its last stage on 1x1 maps) trained 1.3-1.5x slower in bf16 than in
    float32, at batch 64 and 256 alike; at 64 px (2x2 maps), or at 28 px with model.stem=cifar (4x4), bf16 was
    1.25-1.7x faster (benchmarks/cpu_amp.py). An unknown size, or an explicit bf16, keeps bf16."""
    from cnnlab.models import create_model
    from cnnlab.models.measure import smallest_conv_input

    monkeypatch.setattr(rt, "cpu_has_fast_bf16", lambda: True)
    auto = rt.Runtime.from_config({"device": "cpu", "trainer": {"amp": "auto"}})
    asked = rt.Runtime.from_config({"device": "cpu", "trainer": {"amp": "bf16"}})
    stock = create_model("resnet18", num_classes=10, image_size=28)
    cifar = create_model("resnet18", num_classes=10, image_size=28, stem="cifar")
    assert (smallest_conv_input(stock, 28), smallest_conv_input(stock, 64), smallest_conv_input(cifar, 28)) == (1, 2, 4)
    small = auto.for_input(28).for_network(stock)
    assert small.amp_dtype is None and "1x1 maps" in str(small.float32_reason)
    assert auto.for_input(64).for_network(create_model("resnet18", num_classes=10, image_size=64)).amp_dtype \
        == torch.bfloat16
    assert auto.for_input(28).for_network(cifar).amp_dtype == torch.bfloat16
    assert auto.for_network(stock).amp_dtype == torch.bfloat16  # size unknown: the depthwise rule alone
    assert asked.for_input(28).for_network(stock).amp_dtype == torch.bfloat16
    assert small.for_network(stock) == small  # deciding again changes nothing
    assert stock.training  # probing the shapes left the model as it was


def test_a_fit_of_a_depthwise_network_under_amp_auto_runs_without_autocast(caplog: pytest.LogCaptureFixture,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from torch import nn

    from cnnlab.engine import trainer
    from cnnlab.engine.objectives import ClassificationObjective
    from cnnlab.engine.recipe import Recipe
    from cnnlab.engine.trainer import Loaders, Trainer, evaluate

    monkeypatch.setattr(trainer, "_SAID", set())  # said once a process: another test may have said it

    seen: list[bool] = []
    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    depthwise.register_forward_pre_hook(lambda *_: seen.append(torch.is_autocast_enabled("cpu")))
    model = nn.Sequential(depthwise, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    data = torch.utils.data.TensorDataset(torch.randn(8, 4, 6, 6), torch.arange(8) % 2)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    auto_bf16 = rt.Runtime(device=torch.device("cpu"), amp_dtype=torch.bfloat16, channels_last=False, amp_auto=True)
    with caplog.at_level("INFO"):
        Trainer(auto_bf16, Recipe(epochs=1), show_progress=False).fit(
            model, ClassificationObjective(2), Loaders(loader, loader), torch.optim.SGD(model.parameters(), lr=0.1),
            None)
    assert seen and not any(seen)
    seen.clear()
    evaluate(model, loader, auto_bf16)  # scored in the precision it trained in
    assert seen and not any(seen)
    assert "float32, not bf16" in caplog.text and "trainer.amp=bf16 forces it" in caplog.text
