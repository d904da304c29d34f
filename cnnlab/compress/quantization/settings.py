"""`cnnlab quantize`'s settings, typed once from the `quantize:` config section (the keys its errors name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from cnnlab.compress.quantization.formats import (AUTO, Format, candidate_formats, resolve_reduce_range,
                                                  slow_format_warning)
from cnnlab.compress.quantization.ptq import PtqSettings
from cnnlab.deploy.bench import TimingPlan
from cnnlab.deploy.ort import RUNTIME_DEVICES, execution_providers
from cnnlab.deploy.paired import PairedSettings, threads_or_default
from cnnlab.errors import CnnlabError

# The CPU runtimes an INT8 file can be timed and evaluated on: onnxruntime, openvino.
QUANTIZE_RUNTIMES = tuple(runtime for runtime, devices in RUNTIME_DEVICES.items() if "cpu" in devices)


@dataclass(frozen=True)
class QuantizeSettings:
    """The `quantize:` section of the config (cnnlab/conf/command/quantize.yaml), checked once."""

    mode: str
    requested_format: str
    formats: tuple[Format, ...]
    ptq: PtqSettings
    reduce_range_why: str
    calib_batches: int
    calib_batch_size: int
    max_acc_drop: float              # percentage points
    lr_scale: float
    timing: PairedSettings           # FP32 and the candidates, one paired session
    keep_candidates: bool

    @classmethod
    def from_config(cls, section: DictConfig) -> "QuantizeSettings":
        mode, requested = str(section.mode), str(section.format)
        formats = tuple(candidate_formats(mode, requested))
        reduce_range, why = resolve_reduce_range(section.reduce_range)
        exclude = section.get("exclude") or []
        ptq = PtqSettings(calibrate_method=str(section.calibrate_method), percentile=float(section.percentile),
                          per_channel=bool(section.per_channel), reduce_range=reduce_range,
                          exclude=tuple(str(n) for n in ([exclude] if isinstance(exclude, str) else exclude)))
        sizes = section.bench_batch_sizes
        runtime = str(section.get("runtime", "onnxruntime"))
        if runtime not in QUANTIZE_RUNTIMES:
            raise CnnlabError(f"unknown quantize.runtime={runtime}",
                              fix=f"use one of {', '.join(QUANTIZE_RUNTIMES)}")
        execution_providers("cpu", runtime=runtime)  # before any work: the OpenVINO build must be installed
        timing = PairedSettings(
            batch_sizes=tuple(int(b) for b in ([sizes] if isinstance(sizes, int) else sizes)),
            threads=threads_or_default(section.get("bench_threads")),
            rounds=int(section.bench_rounds),
            plan=TimingPlan(int(section.bench_warmup), int(section.bench_min_iters), float(section.bench_min_seconds)),
            runtime=runtime)
        settings = cls(mode=mode, requested_format=requested, formats=formats, ptq=ptq, reduce_range_why=why,
                       calib_batches=int(section.calib_batches), calib_batch_size=int(section.calib_batch_size),
                       max_acc_drop=float(section.max_acc_drop), lr_scale=float(section.lr_scale), timing=timing,
                       keep_candidates=bool(section.keep_candidates))
        if settings.max_acc_drop < 0:
            raise CnnlabError(f"quantize.max_acc_drop={settings.max_acc_drop} must be 0 or more (percentage points)")
        if settings.lr_scale <= 0:
            raise CnnlabError(f"quantize.lr_scale={settings.lr_scale} must be positive")
        return settings

    @property
    def searching(self) -> bool:
        return self.requested_format == AUTO and len(self.formats) > 1

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "mode": self.mode, "format": self.requested_format, "candidates": [f.name for f in self.formats],
            "per_channel": self.ptq.per_channel, "reduce_range": self.ptq.reduce_range,
            "reduce_range_why": self.reduce_range_why, "exclude": list(self.ptq.exclude),
            "max_acc_drop_points": self.max_acc_drop,
            "timing": {"runtime": self.timing.runtime, "device": "cpu", "threads": self.timing.threads,
                       "batch_sizes": list(self.timing.batch_sizes), "rounds": self.timing.rounds,
                       "warmup": self.timing.plan.warmup, "min_iters": self.timing.plan.min_iters,
                       "min_seconds": self.timing.plan.min_seconds}}
        if self.mode == "ptq":
            described.update(calibrate_method=self.ptq.calibrate_method, calib_batches=self.calib_batches,
                             calib_batch_size=self.calib_batch_size)
            if self.ptq.calibrate_method == "percentile":
                described["percentile"] = self.ptq.percentile
        if self.mode == "qat":
            described["lr_scale"] = self.lr_scale
        return described

    def slow_format_warnings(self) -> list[tuple[str, str]]:
        """(format, why it may not be faster on this CPU) for each format asked for by name."""
        named = self.formats if self.requested_format != AUTO else ()
        return [(f.name, w) for f in named if (w := slow_format_warning(f, self.timing.runtime))]

    @property
    def no_search(self) -> str | None:
        """Why there is no choice to make (one format), for the reason recorded; None in a search."""
        if self.searching:
            return None
        return (f"quantize.format={self.requested_format} was asked for (no search)"
                if self.requested_format != AUTO else f"the only {self.mode} format")
