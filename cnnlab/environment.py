"""The hardware/software fingerprint recorded with every run and benchmark."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("cnnlab", "torch", "torchvision", "onnx", "onnxruntime", "hydra-core", "torch-pruning", "numpy")
# CPU flags that decide which kernels (and which INT8 formats) are fast.
_INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
                      "amx_bf16", "amx_int8", "amx_tile", "neon", "asimd")


@lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """CPU model, core counts and SIMD flags from /proc/cpuinfo (Linux); best effort elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="ignore").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 1
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": affinity,
        "flags": sorted(f for f in _INTERESTING_FLAGS if f in flags),
    }


def has_cpu_flag(flag: str) -> bool:
    return flag in cpu_info()["flags"]


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = _replacement_version(name)
    return versions


def _replacement_version(name: str) -> str | None:
    """'1.24.1 (onnxruntime-openvino)' when another distribution provides the module `name` (onnxruntime-gpu
    or onnxruntime-openvino install in place of onnxruntime), else None."""
    others = [d for d in metadata.packages_distributions().get(name, []) if d != name]
    return f"{metadata.version(others[0])} ({others[0]})" if others else None


def git_revision(path: Path | None = None) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path or Path.cwd(),
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def gpu_info() -> list[dict[str, Any]]:
    """CUDA devices, if torch is already imported and CUDA is present (never initialises CUDA needlessly)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    return [{"name": torch.cuda.get_device_name(i),
             "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
             "capability": ".".join(map(str, torch.cuda.get_device_capability(i)))}
            for i in range(torch.cuda.device_count())]


def fingerprint() -> dict[str, Any]:
    import sys

    torch = sys.modules.get("torch")
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "cuda": getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None,
        "git_rev": git_revision(),
    }
