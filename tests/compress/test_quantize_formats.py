"""INT8 formats: which candidates a mode builds, names, reduce_range, and the warnings for slow formats."""

from __future__ import annotations

import pytest

from cnnlab.compress.quantization import FORMATS, candidate_formats, resolve_reduce_range, slow_format_warning
from cnnlab.compress.quantization import formats as formats_module
from cnnlab.errors import CnnlabError


def names(mode: str, requested: str) -> list[str]:
    return [f.name for f in candidate_formats(mode, requested)]


def test_auto_builds_qdq_and_qoperator_with_u8_and_s8_activations_and_s8_weights() -> None:
    assert names("ptq", "auto") == ["qdq_u8s8", "qdq_s8s8", "qop_u8s8", "qop_s8s8", "nncf_qdq"]
    assert all(FORMATS[n].weights == "s8" for n in names("ptq", "auto"))
    assert names("dynamic", "auto") == ["dynamic_s8", "dynamic_u8"]
    assert names("qat", "auto") == ["qdq_u8s8"]


def test_a_named_format_skips_the_search() -> None:
    assert names("ptq", "qop_u8u8") == ["qop_u8u8"]
    assert names("qat", "qdq_s8s8") == ["qdq_s8s8"]
    assert names("dynamic", "dynamic_u8") == ["dynamic_u8"]


@pytest.mark.parametrize("mode, requested, message", [
    ("ptq", "int4", "quantize.format=int4 is not a format"),
    ("ptq", "dynamic_u8", "does not go with quantize.mode=ptq"),
    ("dynamic", "qdq_u8s8", "does not go with quantize.mode=dynamic"),
    ("qat", "qop_u8s8", "does not go with quantize.mode=qat"),
    ("fp16", "auto", "quantize.mode=fp16 is not a mode"),
])
def test_bad_names_are_refused(mode: str, requested: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        candidate_formats(mode, requested)


def test_reduce_range_auto_follows_vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats_module, "is_x86", lambda: True)
    monkeypatch.setattr(formats_module, "has_cpu_flag", lambda flag: flag == "avx2")
    reduce, why = resolve_reduce_range("auto")
    assert reduce and "without VNNI" in why
    monkeypatch.setattr(formats_module, "has_cpu_flag", lambda flag: flag in ("avx2", "avx512_vnni"))
    assert resolve_reduce_range("auto")[0] is False
    monkeypatch.setattr(formats_module, "is_x86", lambda: False)
    monkeypatch.setattr(formats_module, "has_cpu_flag", lambda flag: False)
    assert resolve_reduce_range("auto")[0] is False  # ARM: no vpmaddubsw saturation to avoid
    assert resolve_reduce_range(True) == (True, "quantize.reduce_range=true")
    assert resolve_reduce_range("false")[0] is False
    with pytest.raises(CnnlabError, match="auto, true or false"):
        resolve_reduce_range("maybe")


def test_full_8_bit_weights_on_an_x86_cpu_without_vnni_are_said_to_saturate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 177: quantize.reduce_range=false on an AVX2-only EPYC moved ResNet-18's logits 7.5 from the file's own
    arithmetic (36 of 360 classes), and nothing said so; an accuracy check on 360 images moved either way."""
    from cnnlab.compress.quantization.formats import saturation_warning

    monkeypatch.setattr(formats_module, "is_x86", lambda: True)
    monkeypatch.setattr(formats_module, "has_cpu_flag", lambda flag: flag == "avx2")
    everything = candidate_formats("ptq", "auto")
    said = saturation_warning(False, everything)
    assert said is not None and "qdq_u8s8, qop_u8s8, nncf_qdq" in said and "qdq_s8s8" not in said
    assert "quantize.reduce_range=auto" in said
    assert saturation_warning(True, everything) is None  # 7-bit weights
    assert saturation_warning(False, [FORMATS["qop_s8s8"]]) is None  # another kernel
    assert saturation_warning(False, everything, runtime="openvino") is None  # its own kernels
    monkeypatch.setattr(formats_module, "has_cpu_flag", lambda flag: flag in ("avx2", "avx512_vnni"))
    assert saturation_warning(False, everything) is None  # 32-bit sums


def test_formats_known_to_be_slow_on_x86_come_with_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats_module, "is_x86", lambda: True)
    assert slow_format_warning(FORMATS["qdq_u8s8"]) is None
    assert slow_format_warning(FORMATS["qop_u8s8"]) is None
    assert "QOperator" in slow_format_warning(FORMATS["qop_s8s8"])  # type: ignore[operator]
    assert "S8 activations" in slow_format_warning(FORMATS["qdq_s8s8"])  # type: ignore[operator]
    assert "U8 weights" in slow_format_warning(FORMATS["qdq_u8u8"])  # type: ignore[operator]
    assert "ConvInteger" in slow_format_warning(FORMATS["dynamic_s8"])  # type: ignore[operator]
    monkeypatch.setattr(formats_module, "is_x86", lambda: False)
    assert slow_format_warning(FORMATS["qop_s8s8"]) is None  # nothing known elsewhere: the timing decides


def test_the_engine_picks_which_auto_candidates_are_built() -> None:
    from cnnlab.compress.quantization import candidate_formats

    both = [f.name for f in candidate_formats("ptq", "auto", "auto")]
    assert "nncf_qdq" in both and "qdq_u8s8" in both
    assert [f.name for f in candidate_formats("ptq", "auto", "nncf")] == ["nncf_qdq"]
    assert "nncf_qdq" not in [f.name for f in candidate_formats("ptq", "auto", "onnxruntime")]
    # NNCF not installed: auto builds onnxruntime's candidates only; asking for NNCF by name says how to install it
    assert "nncf_qdq" not in [f.name for f in candidate_formats("ptq", "auto", "auto", nncf_missing="no nncf")]
    for engine, fmt in (("nncf", "auto"), ("auto", "nncf_qdq")):
        with pytest.raises(CnnlabError) as err:
            candidate_formats("ptq", fmt, engine, nncf_missing="nncf is not installed")
        assert 'cnnlab[openvino]' in (err.value.fix or "")


def test_engine_mismatches_are_one_line_errors() -> None:
    from cnnlab.compress.quantization import candidate_formats

    with pytest.raises(CnnlabError, match="post-training quantization only"):
        candidate_formats("qat", "auto", "nncf")
    with pytest.raises(CnnlabError, match="built by nncf, not quantize.engine=onnxruntime"):
        candidate_formats("ptq", "nncf_qdq", "onnxruntime")
    with pytest.raises(CnnlabError, match="not an engine"):
        candidate_formats("ptq", "auto", "tensorrt")


def test_qdq_is_read_by_more_runtimes_than_qoperator() -> None:
    from cnnlab.compress.quantization import FORMATS

    assert FORMATS["qdq_u8s8"].portability > FORMATS["qop_u8s8"].portability
    assert FORMATS["nncf_qdq"].portability == FORMATS["qdq_s8s8"].portability
