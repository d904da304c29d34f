"""`cnnlab quantize`'s settings, typed once from the `quantize:` config section (the keys its errors name)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig

from cnnlab.compress.quantization.formats import (AUTO, BF16, PRECISIONS, Format, candidate_formats, resolve_reduce_range,
                                                  saturation_warning, slow_format_warning)
from cnnlab.compress.quantization import ptq
from cnnlab.compress.quantization.ptq import PtqSettings
from cnnlab.deploy.bench import TimingPlan
from cnnlab.deploy.ort import RUNTIME_DEVICES, installed_cpu_runtimes, require_runtime
from cnnlab.deploy.paired import PairedSettings, threads_or_default
from cnnlab.errors import CnnlabError

# The CPU runtimes an INT8 file can be timed and evaluated on: onnxruntime, openvino.
QUANTIZE_RUNTIMES = tuple(runtime for runtime, devices in RUNTIME_DEVICES.items() if "cpu" in devices)


def _nncf_missing(mode: str, engine: str) -> str | None:
    """Why NNCF cannot build candidates here (not installed), when this run would use it; None otherwise."""
    if mode != "ptq" or engine == "onnxruntime":
        return None
    from cnnlab.compress.quantization.nncf_engine import nncf_available

    return nncf_available()


def _deploy_runtimes(setting: object, runtime: str) -> tuple[str, ...]:
    """quantize.deploy_runtimes: null → every CPU runtime installed here; else the ones named, each installed.
    `runtime` (where the choice is measured) is always among them, first."""
    if setting is None or str(setting) == AUTO:
        named = list(installed_cpu_runtimes())
    else:
        named = [str(r) for r in (setting if isinstance(setting, (list, ListConfig)) else [setting])]
        unknown = [r for r in named if r not in QUANTIZE_RUNTIMES]
        if unknown:
            raise CnnlabError(f"quantize.deploy_runtimes names {', '.join(unknown)}, not a CPU runtime",
                              fix=f"use a list of {', '.join(QUANTIZE_RUNTIMES)} (or null: the ones installed)")
        for name in named:
            _require(name, "quantize.deploy_runtimes", f", or leave {name} out of quantize.deploy_runtimes")
    return tuple(dict.fromkeys([runtime, *named]))


def _check_loadable(formats: tuple[Format, ...], requested: str, named: object, runtimes: tuple[str, ...]) -> None:
    """A QOperator format named by hand where OpenVINO must run it: refused before calibration (it was built, then
    refused: "openvino cannot load … QGemm"). OpenVINO reads QDQ pairs, not onnxruntime's own QLinear*/QGemm."""
    if requested == AUTO or formats[0].layout != "qop" or "openvino" not in runtimes:
        return
    why = ("quantize.runtime=openvino" if runtimes[0] == "openvino" else
           "quantize.deploy_runtimes names it" if named is not None and str(named) != AUTO else
           "quantize.deploy_runtimes=null: every CPU runtime installed here, OpenVINO among them")
    qdq = requested.replace("qop_", "qdq_")
    raise CnnlabError(f"quantize.format={requested} writes onnxruntime's own QOperator operators (QLinearConv, QGemm), "
                      f"which OpenVINO does not load, and the file must run on OpenVINO ({why})",
                      fix=f"choose the same quantization as QDQ pairs, which both read: quantize.format={qdq}"
                          + ("" if runtimes[0] == "openvino" else
                             ", or keep the file to onnxruntime: add quantize.deploy_runtimes=[onnxruntime]"))


def _check_bf16(runtime: str, mode: str, requested: str, engine: str, accuracy_control: bool) -> None:
    """quantize.precision=bf16 runs the FP32 graph on OpenVINO in bf16: on a CPU that has it, with no INT8 settings."""
    if runtime != "openvino":
        raise CnnlabError(f"quantize.precision=bf16 runs through OpenVINO, not quantize.runtime={runtime} "
                          "(onnxruntime's CPU kernels have no bf16 convolutions)", fix="add quantize.runtime=openvino")
    if mode != "ptq" or requested != AUTO or engine != AUTO or accuracy_control:
        raise CnnlabError("quantize.precision=bf16 builds no INT8 file: quantize.mode, format, engine and "
                          "nncf_accuracy_control do not apply",
                          fix="drop them, or use quantize.precision=int8")
    from cnnlab.deploy.openvino_runtime import check_precision

    try:
        check_precision("bf16")
    except CnnlabError as err:
        raise CnnlabError(f"quantize.precision=bf16: {err.message}", fix="use quantize.precision=int8 here, or "
                          "quantize on a CPU with AVX512-BF16 or AMX (Intel Sapphire Rapids or later)") from err


def _require(runtime: str, key: str, alternative: str = "") -> None:
    """A CnnlabError naming `key` when `runtime` cannot run on this CPU (deploy.ort.require_runtime says why)."""
    try:
        require_runtime(runtime, "cpu")
    except CnnlabError as err:
        raise CnnlabError(f"{key}: {runtime}: {err.message}", fix=f"{err.fix or 'install it'}{alternative}") from err


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
    precision: str = "int8"          # int8 | bf16 (the FP32 graph on OpenVINO in bfloat16)
    keep_fp32: bool = True           # format=auto ships FP32 when no INT8 candidate beats it
    nncf_accuracy_control: bool = False  # NNCF's candidate in its accuracy-controlled mode (budget: max_acc_drop)
    engine: str = AUTO               # auto | onnxruntime | nncf: what builds the candidates
    deploy_runtimes: tuple[str, ...] = ()   # every candidate must load on each (quantize.runtime among them)
    deploy_runtimes_named: bool = False     # ... named by hand (not null: the runtimes installed here)
    # (quantize.calib_batches, quantize.calib_batch_size) as the user's settings ask, where a model's fixed batch
    # re-cut them into calib_batches x calib_batch_size (pipelines/quantize.fit_fixed_batch); None: those two
    calib_asked: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, section: DictConfig) -> "QuantizeSettings":
        mode, requested, engine = str(section.mode), str(section.format), str(section.get("engine", AUTO))
        precision = str(section.get("precision", "int8")).lower()  # BF16 and bf16 alike
        if precision not in PRECISIONS:
            raise CnnlabError(f"quantize.precision={precision} is not a precision", fix=f"use one of {', '.join(PRECISIONS)}")
        formats = ((BF16,) if precision == "bf16" else
                   tuple(candidate_formats(mode, requested, engine, nncf_missing=_nncf_missing(mode, engine))))
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
        _require(runtime, "quantize.runtime")  # before any work: the OpenVINO package must be installed
        accuracy_control = bool(section.get("nncf_accuracy_control", False))
        if precision == "bf16":
            _check_bf16(runtime, mode, requested, engine, accuracy_control)
        elif accuracy_control and not any(f.engine == "nncf" for f in formats):
            raise CnnlabError("quantize.nncf_accuracy_control=true applies to NNCF's candidate, and this run builds "
                              f"none (quantize.mode={mode}, engine={engine}, format={requested})",
                              fix="use quantize.mode=ptq with quantize.engine=nncf or auto (NNCF installed), or drop "
                                  "quantize.nncf_accuracy_control")
        timing = PairedSettings(
            batch_sizes=tuple(int(b) for b in ([sizes] if isinstance(sizes, int) else sizes)),
            threads=threads_or_default(section.get("bench_threads")),
            rounds=int(section.bench_rounds),
            plan=TimingPlan(int(section.bench_warmup), int(section.bench_min_iters), float(section.bench_min_seconds)),
            runtime=runtime)
        settings = cls(mode=mode, requested_format=requested, formats=formats, ptq=ptq, reduce_range_why=why,
                       calib_batches=int(section.calib_batches), calib_batch_size=int(section.calib_batch_size),
                       max_acc_drop=float(section.max_acc_drop), lr_scale=float(section.lr_scale), timing=timing,
                       keep_candidates=bool(section.keep_candidates), engine=engine,
                       keep_fp32=bool(section.get("keep_fp32_if_slower", True)), precision=precision,
                       nncf_accuracy_control=accuracy_control,
                       deploy_runtimes=_deploy_runtimes(section.get("deploy_runtimes"), runtime),
                       deploy_runtimes_named=section.get("deploy_runtimes") not in (None, AUTO))
        _check_loadable(formats, requested, section.get("deploy_runtimes"), settings.deploy_runtimes)
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
            "precision": self.precision, "mode": self.mode, "format": self.requested_format, "engine": self.engine,
            "candidates": [f.name for f in self.formats], "deploy_runtimes": list(self.deploy_runtimes),
            "per_channel": self.ptq.per_channel, "reduce_range": self.ptq.reduce_range,
            "reduce_range_why": self.reduce_range_why, "exclude": list(self.ptq.exclude),
            "max_acc_drop_points": self.max_acc_drop, "keep_fp32_if_slower": self.keep_fp32,
            "nncf_accuracy_control": self.nncf_accuracy_control,
            "timing": {"runtime": self.timing.runtime, "device": "cpu", "threads": self.timing.threads,
                       "batch_sizes": list(self.timing.batch_sizes), "rounds": self.timing.rounds,
                       "warmup": self.timing.plan.warmup, "min_iters": self.timing.plan.min_iters,
                       "min_seconds": self.timing.plan.min_seconds}}
        if self.mode == "ptq":
            # the settings as asked (probe 188: a fixed-batch file recorded its re-cut 64 x 4 for the 8 x 32 asked);
            # the cut the file's batch forced beside them, and calibration.batches/images what was drawn
            asked = self.calib_asked or (self.calib_batches, self.calib_batch_size)
            described.update(calibrate_method=self.ptq.calibrate_method, calib_batches=asked[0],
                             calib_batch_size=asked[1])
            if asked != (self.calib_batches, self.calib_batch_size):
                described["calib_fixed_batch"] = {"batches": self.calib_batches, "batch_size": self.calib_batch_size}
            if self.ptq.calibrate_method == "percentile":
                described["percentile"] = self.ptq.percentile
            if self.ptq.calibrate_method == "entropy":  # the histogram its KL search ran on (ptq.ENTROPY_HISTOGRAM)
                described["entropy_histogram"] = dict(ptq.ENTROPY_HISTOGRAM)
        if self.mode == "qat":
            described["lr_scale"] = self.lr_scale
        return described

    def saturation_warning(self) -> str | None:
        """Why these settings' INT8 files may saturate this CPU's integer kernels (formats.saturation_warning)."""
        return None if self.precision != "int8" else saturation_warning(self.ptq.reduce_range, self.formats,
                                                                         self.timing.runtime)

    def slow_format_warnings(self) -> list[tuple[str, str]]:
        """(format, why it may not be faster on this CPU) for each format asked for by name."""
        named = self.formats if self.requested_format != AUTO else ()
        return [(f.name, w) for f in named if (w := slow_format_warning(f, self.timing.runtime))]

    @property
    def calibrates(self) -> bool:
        """Whether the candidates need calibration images (static INT8 post-training quantization)."""
        return self.mode == "ptq" and self.precision == "int8"

    @property
    def builds_nncf(self) -> bool:
        """Whether one of the candidates is NNCF's."""
        return any(f.engine == "nncf" for f in self.formats)

    @property
    def keeps_fp32_if_slower(self) -> bool:
        """format=auto never ships an INT8 file slower than FP32 (a format named by hand ships, with a warning),
        unless quantize.keep_fp32_if_slower=false."""
        return self.requested_format == AUTO and self.keep_fp32

    @property
    def no_search(self) -> str | None:
        """Why there is no choice to make (one format), for the reason recorded; None in a search."""
        if self.searching:
            return None
        if self.precision == "bf16":
            return "quantize.precision=bf16: the FP32 graph run by OpenVINO in bfloat16"
        return (f"quantize.format={self.requested_format} was asked for (no search)"
                if self.requested_format != AUTO else
                f"the only {self.mode} format{'' if self.engine == AUTO else f' of quantize.engine={self.engine}'}")
