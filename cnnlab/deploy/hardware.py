"""The machine a benchmark ran on, as bench.json's `hardware` section records it (docs/bench.md)."""

from __future__ import annotations

from typing import Any

from cnnlab.deploy.ort import available_providers
from cnnlab.deploy.peak import PeakEstimate, physical_cores
from cnnlab.environment import cpu_info, gpu_info


def bench_hardware(peak: PeakEstimate) -> dict[str, Any]:
    """{cpu, physical_cores, gpus, peak {gflops, basis}, onnxruntime_providers}: the CPU and GPUs here, the FP32
    peak (GFLOP/s) the achieved fractions were computed against, and the onnxruntime providers installed."""
    return {"cpu": cpu_info(), "physical_cores": physical_cores(), "gpus": gpu_info(), "peak": peak.to_dict(),
            "onnxruntime_providers": available_providers()}
