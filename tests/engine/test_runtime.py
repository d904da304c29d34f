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
