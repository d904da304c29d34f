"""INT8 formats, the engines that build them, the runtimes that read them, and what this CPU is known to run fast
or slowly.

A format is the graph layout (QDQ: QuantizeLinear/DequantizeLinear pairs around float operators, which
onnxruntime fuses into integer kernels when it loads the model; QOperator: integer operators such as
QLinearConv written into the file; dynamic: weights stored as INT8, activations quantized at run time)
plus the activation and weight types, built by an engine: onnxruntime's quantizer (every format below) or NNCF
(Intel's post-training quantizer: `nncf_qdq`, QDQ with its own choice of which nodes to quantize). Which one is fast depends on the CPU's integer instructions, so
`quantize.format=auto` measures the candidates instead of trusting this table; the table only supplies
the warnings for a format chosen by hand.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Sequence

from cnnlab.environment import has_cpu_flag
from cnnlab.errors import CnnlabError

MODES = ("ptq", "dynamic", "qat")
AUTO = "auto"
ENGINES = ("auto", "onnxruntime", "nncf")
# Which runtimes read each layout. QDQ is the ONNX standard's portable INT8 form (onnxruntime, OpenVINO and TensorRT
# fuse the pairs into integer kernels); QOperator (QLinearConv, QGemm & co, some in onnxruntime's com.microsoft
# domain) is onnxruntime's own: OpenVINO has no conversion for it. Dynamic files (ConvInteger, DynamicQuantizeLinear:
# standard ops) load in OpenVINO 2026 too; TensorRT has no ConvInteger.
READ_BY: dict[str, tuple[str, ...]] = {"qdq": ("onnxruntime", "openvino", "tensorrt"),
                                       "qop": ("onnxruntime",), "dynamic": ("onnxruntime", "openvino")}


@dataclass(frozen=True)
class Format:
    name: str
    mode: str          # "static" (calibrated; ptq and qat) or "dynamic"
    layout: str        # "qdq" | "qop" | "dynamic"
    activations: str   # "u8" | "s8" | "dynamic"
    weights: str       # "u8" | "s8"
    engine: str = "onnxruntime"   # what builds it: onnxruntime's quantizer | nncf

    @property
    def inference_precision(self) -> str:
        """What the runtime computes in when it runs this candidate: "bf16" for the bf16 candidate (the FP32 file,
        run with OpenVINO's bf16 hint), else "f32" (INT8 files: integer kernels; the rest of the graph in f32)."""
        return "bf16" if self.layout == "bf16" else "f32"

    @property
    def portability(self) -> int:
        """How many runtimes read this layout (READ_BY): a candidate within timing noise of a faster one but read
        by more runtimes wins (selection.select)."""
        return len(READ_BY.get(self.layout, ()))

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "layout": self.layout, "activations": self.activations, "weights": self.weights,
                "engine": self.engine}


def _static(layout: str, activations: str, weights: str) -> Format:
    return Format(f"{layout}_{activations}{weights}", "static", layout, activations, weights)


FORMATS: dict[str, Format] = {f.name: f for f in (
    _static("qdq", "u8", "s8"), _static("qdq", "s8", "s8"), _static("qop", "u8", "s8"), _static("qop", "s8", "s8"),
    _static("qdq", "u8", "u8"), _static("qop", "u8", "u8"),
    Format("dynamic_s8", "dynamic", "dynamic", "dynamic", "s8"),
    Format("dynamic_u8", "dynamic", "dynamic", "dynamic", "u8"),
    # NNCF's ONNX backend: QDQ, U8 activations, S8 symmetric per-channel weights, its own placement of quantizers
    Format("nncf_qdq", "static", "qdq", "u8", "s8", engine="nncf"),
)}
# What format=auto builds, times and evaluates per mode (S8 weights for static formats, as the issue asks:
# U8 weights are asymmetric and slower on x86). QAT trains for one format: the QDQ U8xS8 layout that
# onnxruntime fuses into its VNNI kernels on x86 (the fastest static format measured there).
AUTO_CANDIDATES: dict[str, tuple[str, ...]] = {
    "ptq": ("qdq_u8s8", "qdq_s8s8", "qop_u8s8", "qop_s8s8", "nncf_qdq"),
    "dynamic": ("dynamic_s8", "dynamic_u8"),
    "qat": ("qdq_u8s8",),
}
# quantize.precision=bf16: no new file — the FP32 graph run by OpenVINO in bfloat16 (its INFERENCE_PRECISION_HINT),
# on CPUs with AVX512-BF16 or AMX. Measured and evaluated like an INT8 candidate.
BF16 = Format("bf16", "bf16", "bf16", "bf16", "bf16", engine="openvino")
PRECISIONS = ("int8", "bf16")
QAT_FORMATS = ("qdq_u8s8", "qdq_s8s8")
DYNAMIC_NOTE = ("dynamic quantization stores the weights as INT8 and quantizes activations at run time: "
                "convolutions (ConvInteger) gain little or nothing from it; it helps MatMul/Linear-heavy "
                "models. Static quantization (quantize.mode=ptq) is the one that makes a CNN faster. Each call takes "
                "one activation range for its whole batch, so an image's scores depend on its batch-mates: the "
                "accuracy recorded was scored one image per call, as quantize times it (evaluate and predict score "
                "such a file so too).")


def candidate_formats(mode: str, requested: str, engine: str = AUTO, *, nncf_missing: str | None = None) -> list[Format]:
    """The formats a run builds: every auto candidate of `mode` that `engine` builds (auto: both engines; NNCF's
    left out when `nncf_missing` says why it cannot run here), or the one `requested` by name.
    Raises CnnlabError for an unknown mode, format or engine, or a combination that cannot go together."""
    if mode not in MODES:
        raise CnnlabError(f"quantize.mode={mode} is not a mode", fix=f"use one of: {', '.join(MODES)}")
    if engine not in ENGINES:
        raise CnnlabError(f"quantize.engine={engine} is not an engine", fix=f"use one of: {', '.join(ENGINES)}")
    if engine == "nncf" and mode != "ptq":
        raise CnnlabError(f"quantize.engine=nncf does post-training quantization only, not quantize.mode={mode}",
                          fix="use quantize.mode=ptq with engine=nncf, or quantize.engine=onnxruntime")
    if requested == AUTO:
        formats = [FORMATS[name] for name in AUTO_CANDIDATES[mode] if engine in (AUTO, FORMATS[name].engine)]
        if engine == "nncf" and nncf_missing:
            raise CnnlabError(f"quantize.engine=nncf: {nncf_missing}", fix='pip install "cnnlab[openvino]"')
        if engine == AUTO and nncf_missing:
            formats = [f for f in formats if f.engine != "nncf"]
        return formats
    if requested not in FORMATS:
        raise CnnlabError(f"quantize.format={requested} is not a format",
                          fix=f"use auto or one of: {', '.join(FORMATS)}")
    chosen = FORMATS[requested]
    if engine != AUTO and chosen.engine != engine:
        raise CnnlabError(f"quantize.format={requested} is built by {chosen.engine}, not quantize.engine={engine}",
                          fix=f"drop quantize.engine, or use quantize.engine={chosen.engine}")
    if chosen.engine == "nncf" and nncf_missing:
        raise CnnlabError(f"quantize.format={requested}: {nncf_missing}", fix='pip install "cnnlab[openvino]"')
    allowed = QAT_FORMATS if mode == "qat" else [n for n, f in FORMATS.items()
                                                if (f.mode == "dynamic") == (mode == "dynamic")]
    if chosen.name not in allowed:
        raise CnnlabError(f"quantize.format={requested} does not go with quantize.mode={mode}",
                          fix=f"with mode={mode} use auto or one of: {', '.join(allowed)}")
    return [chosen]


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def has_vnni() -> bool:
    """8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI; AMX-INT8 CPUs have VNNI too)."""
    return any(has_cpu_flag(flag) for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def resolve_reduce_range(setting: object) -> tuple[bool, str]:
    """(reduce_range, why). auto: 7-bit weights on x86 CPUs without VNNI, whose U8xS8 instruction (vpmaddubsw)
    adds pairs of products into a saturating 16-bit sum; with VNNI (vpdpbusd, 32-bit sums) nothing saturates."""
    text = str(setting).lower()
    if text in ("true", "false"):
        return text == "true", f"quantize.reduce_range={text}"
    if text != AUTO:
        raise CnnlabError(f"quantize.reduce_range={setting} must be auto, true or false")
    if not is_x86():
        return False, f"{platform.machine()} CPU: full 8-bit weights"
    if has_vnni():
        return False, "the CPU has VNNI: 8-bit products sum without saturation, full 8-bit weights"
    return True, "x86 CPU without VNNI: 7-bit weights avoid vpmaddubsw's 16-bit saturation"


def saturation_warning(reduce_range: bool, formats: Sequence[Format], runtime: str = "onnxruntime") -> str | None:
    """Why full 8-bit weights are a risk here, or None: on an x86 CPU without VNNI onnxruntime's U8 x S8 kernels
    (vpmaddubsw) add pairs of products into saturating 16-bit sums (probe 177, an AVX2-only EPYC: ResNet-18's
    logits 7.5 away from the file's own arithmetic, 36 of 360 top-1 classes changed, and an accuracy check that
    missed it, moving either way). S8 x S8 files take another kernel; OpenVINO compiles its own."""
    if reduce_range or runtime != "onnxruntime" or not is_x86() or has_vnni():
        return None
    at_risk = [f.name for f in formats if f.weights == "s8" and f.activations != "s8"]
    if not at_risk:
        return None
    return ("quantize.reduce_range=false on an x86 CPU without VNNI: onnxruntime's U8 x S8 kernels "
            f"({', '.join(at_risk)}) add pairs of 8-bit products into saturating 16-bit sums here, so an INT8 "
            "file's outputs may differ from "
            "its own arithmetic beyond rounding, which its accuracy on the validation images need not show — "
            "quantize.reduce_range=auto gives 7-bit weights on this CPU")


def slow_format_warning(fmt: Format, runtime: str = "onnxruntime") -> str | None:
    """Why `fmt` is known to run slowly on this CPU with onnxruntime's own kernels (None when nothing is known
    against it; OpenVINO compiles the graph with kernels of its own, so what is known here says nothing there)."""
    if not is_x86() or runtime != "onnxruntime":
        return None
    if fmt.layout == "dynamic":
        return None if fmt.weights == "u8" else (
            "S8 weights with dynamic quantization: onnxruntime's x86 ConvInteger takes a slow path for them "
            "(measured slower than FP32)")
    if fmt.weights == "u8":
        return ("U8 weights: x86 integer kernels multiply unsigned activations by signed weights (VNNI's "
                "vpdpbusd); U8xU8 takes a slower path")
    if fmt.activations == "s8" and fmt.layout == "qop":
        return ("S8 activations in QOperator format: onnxruntime's x86 QLinearConv has no fast S8xS8 path "
                "(measured several times slower than FP32)")
    if fmt.activations == "s8":
        return ("S8 activations: x86 integer kernels are built for U8 activations x S8 weights (VNNI); "
                "S8xS8 gains little over FP32")
    return None
