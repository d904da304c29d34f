"""Which backends a benchmark plans to time, and the skips it records with their reasons (cnnlab/deploy/backends.py)."""

from __future__ import annotations

from omegaconf import OmegaConf

from cnnlab.deploy.backends import BackendPlan, SkippedBackend, plan_backends, skipped_summary
from cnnlab.deploy.bench_settings import TORCH_BACKENDS, BenchSettings

SECTION = {"backends": None, "batch_sizes": [1, 8], "threads": 1, "warmup": 1, "min_iters": 1, "min_seconds": 0}


def test_the_cpu_defaults_are_torch_and_onnxruntime_with_compile_after_torch() -> None:
    plan = plan_backends(BenchSettings.from_config(OmegaConf.create(SECTION)), "cpu")
    assert plan == BackendPlan(("torch", "onnxruntime"))
    compiled = plan_backends(BenchSettings.from_config(OmegaConf.create({**SECTION, "compile": True})), "cpu")
    assert compiled.backends == ("torch", "torch_compile", "onnxruntime") and compiled.needs_onnx


def test_leaving_backends_out_records_one_skip_each_with_the_reason() -> None:
    plan = BackendPlan(("torch", "torch_compile", "onnxruntime"), (SkippedBackend("tensorrt", None, "not here"),))
    onnx_only = plan.without(TORCH_BACKENDS, "no PyTorch model")
    assert onnx_only.backends == ("onnxruntime",) and onnx_only.needs_onnx
    assert [s.to_dict() for s in onnx_only.skipped] == [
        {"backend": "tensorrt", "batch_size": None, "reason": "not here"},
        {"backend": "torch", "batch_size": None, "reason": "no PyTorch model"},
        {"backend": "torch_compile", "batch_size": None, "reason": "no PyTorch model"}]
    assert not onnx_only.without(["onnxruntime"], "gone").needs_onnx
    assert skipped_summary((SkippedBackend("torch", None, "why"), SkippedBackend("onnxruntime", 8, "too big"))) == \
        "skipped torch: why; skipped onnxruntime at batch 8: too big"


def test_openvino_is_planned_beside_onnxruntime_where_the_package_is_installed() -> None:
    import pytest

    pytest.importorskip("openvino", reason='needs pip install "cnnlab[openvino]"')
    section = OmegaConf.create({**SECTION, "backends": ["onnxruntime", "openvino"]})
    assert plan_backends(BenchSettings.from_config(section), "cpu") == BackendPlan(("onnxruntime", "openvino"))
