"""Shared bits of the benchmark scripts: thread pinning, the machine fingerprint, robust statistics."""

from __future__ import annotations

import json
import statistics
from typing import Iterable


def pin_threads(threads: int) -> int:
    """Set torch's intra-op threads explicitly (benchmarks always record what they ran with)."""
    import torch

    torch.set_num_threads(threads)
    return torch.get_num_threads()


def print_machine(threads: int | None) -> None:
    from cnnlab.environment import fingerprint

    info = fingerprint()
    cpu = info["cpu"]
    print(f"machine: {cpu['model']} | {cpu['usable_cores']} usable cores | flags {' '.join(cpu['flags'])}")
    print(f"software: python {info['python']} | " + " | ".join(f"{k} {v}" for k, v in info["packages"].items() if v))
    print(f"torch threads: {threads if threads is not None else 'n/a'}")


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def dump(path: str | None, data: dict) -> None:
    if path:
        with open(path, "w") as handle:
            json.dump(data, handle, indent=2)
