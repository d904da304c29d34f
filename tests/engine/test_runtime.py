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
