"""The machine's theoretical FP32 peak, so a benchmark can say which fraction of it a model reaches.

CPU: cores × SIMD lanes × FMA units × 2 FLOPs per FMA × clock. Lanes come from the CPU flags (AVX-512: 16
FP32 lanes, AVX/AVX2: 8, SSE/NEON: 4); two FMA units per core is assumed (true of x86 cores since Haswell /
Zen and of server AVX-512 parts, not of every Xeon Silver/Bronze); the clock is the highest one the OS
reports. Cores are the physical cores the benchmark's threads can occupy, so the fraction says how well a
run uses the cores it was given. CUDA: SMs × FP32 lanes per SM (from the compute capability) × 2 × clock;
TF32/FP16 tensor cores are not counted. `bench.peak_gflops` overrides either estimate.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cnnlab.environment import cpu_info
from cnnlab.wording import counted

_FMA_UNITS = 2
_CPUINFO_MHZ = "/proc/cpuinfo cpu MHz"
_FLOPS_PER_FMA = 2
# FP32 lanes per streaming multiprocessor by compute capability (CUDA C programming guide, "arithmetic
# instructions" throughput table).
_CUDA_FP32_LANES = {(6, 0): 64, (6, 1): 128, (6, 2): 128, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64,
                    (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128, (10, 3): 128,
                    (12, 0): 128, (12, 1): 128}


@dataclass(frozen=True)
class PeakEstimate:
    """A device's theoretical FP32 peak in GFLOP/s (10^9 floating-point operations a second, a multiply-add counted
    as 2), or None with the reason in `basis`: what bench divides a model's achieved GFLOP/s by."""

    gflops: float | None       # None: cannot be estimated honestly here
    basis: str                 # how it was obtained, in words (or why it is unknown)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def simd_fp32_lanes(flags: set[str] | list[str]) -> tuple[int, str]:
    flags = set(flags)
    if "avx512f" in flags:
        return 16, "AVX-512"
    if "avx2" in flags or "avx" in flags:
        return 8, "AVX2" if "avx2" in flags else "AVX"
    if "asimd" in flags or "neon" in flags:
        return 4, "NEON"
    return 4, "SSE"


@lru_cache(maxsize=1)
def cpu_clock_ghz() -> tuple[float | None, str]:
    """The highest clock the OS reports: cpufreq's maximum, else the GHz in the model name, else cpuinfo's MHz."""
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    cpuinfo = Path("/proc/cpuinfo")
    return clock_from(max_freq.read_text() if max_freq.is_file() else None, cpu_info()["model"],
                      cpuinfo.read_text(errors="ignore") if cpuinfo.is_file() else None)


def clock_from(max_freq_khz: str | None, model_name: str, cpuinfo: str | None) -> tuple[float | None, str]:
    """(GHz, source) from cpufreq's cpuinfo_max_freq text (kHz), the CPU model name ("... @ 2.10GHz") and
    /proc/cpuinfo's text, in that order of trust; (None, reason) when none gives a clock."""
    if max_freq_khz is not None:
        try:
            return int(max_freq_khz.strip()) / 1e6, "cpufreq max"
        except ValueError:
            pass
    named = re.search(r"@\s*([\d.]+)\s*GHz", model_name)
    if named:
        return float(named.group(1)), "model name"
    if cpuinfo is not None:
        mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
        if mhz:
            return float(mhz.group(1)) / 1000, _CPUINFO_MHZ
    return None, "no clock reported"


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads share their core's FMA units)."""
    usable = cpu_info()["usable_cores"] or 1
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return usable
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return cores_from(cpuinfo.read_text(errors="ignore"), allowed) or usable


def cores_from(cpuinfo: str, allowed: set[int] | None = None) -> int:
    """Distinct (physical id, core id) pairs among the `allowed` logical CPUs of a /proc/cpuinfo text
    (0 when it lists none); a CPU without a core id counts as its own core."""
    cores = set()
    for block in cpuinfo.split("\n\n"):
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}
        if "processor" not in fields or (allowed is not None and int(fields["processor"]) not in allowed):
            continue
        cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
    return len(cores)


def occupied_cores(threads: int) -> int:
    """The physical cores `threads` threads can occupy: min(threads, physical cores), at least one."""
    return max(1, min(int(threads), physical_cores()))


def cpu_peak(threads: int) -> PeakEstimate:
    """This CPU's FP32 peak in GFLOP/s over the physical cores `threads` intra-op threads occupy (fp32_peak)."""
    info = cpu_info()
    return fp32_peak(occupied_cores(threads), info["flags"], cpu_clock_ghz(), vendor=info.get("vendor"),
                     family=info.get("family"))


def fp32_peak(cores: int, flags: set[str] | list[str], clock: tuple[float | None, str], *,
              vendor: str | None = None, family: int | None = None) -> PeakEstimate:
    """cores × FP32 lanes × FMA units × 2 × GHz for a CPU with these flags, clock (GHz, where it came from), and
    x86 vendor/family. AMD's Zen 4 (family 25) runs an AVX-512 FMA as two 256-bit halves on its two FMA pipes, one
    512-bit FMA a cycle: half of what 16 lanes × 2 units says (AMD's Zen 4 software optimization guide, §2.11);
    Zen 5 (26) has full 512-bit pipes."""
    ghz, clock_source = clock
    if ghz is None:
        return PeakEstimate(None, "CPU clock unknown (set bench.peak_gflops)")
    lanes, isa = simd_fp32_lanes(flags)
    has_fma = bool({"fma", "asimd"} & set(flags))
    fma_units = _FMA_UNITS if has_fma else 1  # without FMA: one multiply and one add port ≈ one FMA unit
    if isa == "AVX-512" and vendor == "AuthenticAMD" and family == 25:
        fma_units, isa = 1, "AVX-512 on Zen 4: two 256-bit halves"
    if clock_source == _CPUINFO_MHZ:
        clock_source += ": a VM's base clock, which boost exceeds — % peak can read above 100 %"
    gflops = cores * lanes * fma_units * _FLOPS_PER_FMA * ghz
    return PeakEstimate(round(gflops, 1), f"{counted(cores, 'core')} × {lanes} FP32 lanes ({isa}) × {fma_units} FMA "
                                          f"units × {_FLOPS_PER_FMA} FLOPs × {ghz:.2f} GHz ({clock_source})")


def cuda_peak(index: int = 0) -> PeakEstimate:
    """CUDA device `index`'s FP32 peak in GFLOP/s: FP32 lanes per SM (by compute capability) × SMs × 2 × clock;
    None (with why) for an architecture or clock not known here."""
    import torch

    props = torch.cuda.get_device_properties(index)
    lanes = _CUDA_FP32_LANES.get((props.major, props.minor))
    clock_khz = getattr(props, "clock_rate", None)
    if lanes is None or not clock_khz:
        return PeakEstimate(None, f"FP32 lanes or clock unknown for {props.name} (compute capability "
                                  f"{props.major}.{props.minor}); set bench.peak_gflops")
    clock = clock_khz / 1e6
    gflops = props.multi_processor_count * lanes * _FLOPS_PER_FMA * clock
    return PeakEstimate(round(gflops, 1), f"{props.multi_processor_count} SMs × {lanes} FP32 lanes × "
                                          f"{_FLOPS_PER_FMA} FLOPs × {clock:.2f} GHz ({props.name}; tensor cores "
                                          "not counted)")


def peak_estimate(device: str, threads: int, override: float | None = None) -> PeakEstimate:
    """The FP32 peak a run's "% peak" divides by: `override` (bench.peak_gflops) as given — on a CPU, the peak of the
    cores the run's threads occupy, which the basis says (probe 170: a whole chip's figure given at one thread of two
    cores halved every fraction, recorded as plain "bench.peak_gflops") — else the device's estimate."""
    kind, _, index = str(device).partition(":")
    if override is not None:
        return PeakEstimate(float(override), "bench.peak_gflops" if kind == "cuda" else
                            f"bench.peak_gflops, given for the {counted(occupied_cores(threads), 'core')} the run's "
                            "threads occupy")
    if kind == "cuda":
        return cuda_peak(int(index or 0))
    return cpu_peak(threads)
