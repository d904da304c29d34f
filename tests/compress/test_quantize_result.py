"""What a format search's result says about itself (cnnlab/compress/quantization/result.py): its terminal table, its
run.json sections and its reason, from hand-made figures (no file is quantized or timed)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from cnnlab.compress.quantization import FORMATS, Accuracy, CandidateResult, Fp32Figures, QuantizationResult, select
from cnnlab.compress.quantization.selection import CandidateFigures, round_speedups
from cnnlab.deploy.bench import summarize
from cnnlab.deploy.paired import PairedSettings, SubjectTiming


def timing(rounds: tuple[float, ...]) -> SubjectTiming:
    """A file timed at batch 1 in len(rounds) rounds with these p50s (ms); the median round's statistics."""
    median = sorted(rounds)[len(rounds) // 2]
    return SubjectTiming({1: summarize([median], backend="onnxruntime", device="cpu", batch_size=1, threads=1,
                                       flops=None, peak_gflops=None)}, {1: rounds})


def result(tmp_path: Path, candidate_rounds: tuple[float, ...], *, acc: float = 0.90, fp32_acc: float = 0.90,
           keep_fp32_if_slower: bool = True, fp32_ms: float = 0.25,
           **extra) -> QuantizationResult:  # type: ignore[no-untyped-def]
    """FP32 at `fp32_ms` in every round, one qdq_u8s8 candidate with `candidate_rounds` (ms), selected as the search
    selects."""
    files = {name: tmp_path / f"{name}.onnx" for name in ("fp32", "qdq_u8s8")}
    for path in files.values():
        path.write_bytes(b"0" * 1000)
    fp32 = Fp32Figures(files["fp32"], Accuracy(fp32_acc, 1.0, 0.5, 100), timing((fp32_ms,) * len(candidate_rounds)))
    candidate = CandidateResult(FORMATS["qdq_u8s8"], files["qdq_u8s8"], Accuracy(acc, 1.0, 0.5, 100), {},
                                timing(candidate_rounds), loads_on={"onnxruntime": "loads"})
    figures = CandidateFigures("qdq_u8s8", acc, candidate.timing.p50_ms(),  # type: ignore[union-attr]
                               rounds=round_speedups(candidate.timing.p50_per_round,  # type: ignore[union-attr]
                                                     fp32.timing.p50_per_round))
    selection = select([figures], fp32_acc=fp32_acc, fp32_latency_ms=fp32.timing.p50_ms(), max_drop_points=1.0,
                       keep_fp32_if_slower=keep_fp32_if_slower)
    return QuantizationResult(fp32, (candidate,), selection, PairedSettings(threads=1), 1.0, ("onnxruntime",),
                              **extra)


def text(table) -> str:  # type: ignore[no-untyped-def]
    console = Console(width=300, record=True)
    console.print(table)
    return console.export_text()


def test_an_unstable_speedup_is_said_in_the_table_the_record_and_the_reason(tmp_path: Path) -> None:
    """Probe 105: FP32 p50 [0.2491, 0.1691, 0.2487] ms against qdq_u8s8 [0.1222, 0.1712, 0.1284] ms — rounds 2.04,
    0.99, 1.94 — printed and used as "1.94× faster"."""
    wavering = result(tmp_path, (0.1225, 0.2525, 0.1289), keep_fp32_if_slower=False)   # 2.04, 0.99, 1.94
    shown = text(wavering.table("ptq"))
    assert "1.94× faster (unstable: 1.01× slower to 2.04× faster)" in shown
    candidate = wavering.describe()["candidates"][0]
    assert candidate["stable"] is False and candidate["speedup_rounds"] == pytest.approx([2.0408, 0.9901, 1.9395],
                                                                                          rel=1e-3)
    assert wavering.metrics(tmp_path / "qdq_u8s8.onnx")["speedup_stable"] is False
    kept = result(tmp_path, (0.1225, 0.2525, 0.1289))   # keep_fp32_if_slower: not measured faster in every round
    assert kept.fp32_kept and "both faster and slower than FP32" in kept.describe()["reason"]
    assert "best INT8, not measured faster than FP32" in text(kept.table("ptq"))
    assert kept.metrics(tmp_path / "fp32.onnx")["int8_best_speedup_stable"] is False
    steady = result(tmp_path, (0.125, 0.125, 0.125))
    assert steady.describe()["candidates"][0]["stable"] is True and "(unstable" not in text(steady.table("ptq"))
    once = result(tmp_path, (0.125,))  # probe 192: one round, no second to check it: not a stable figure
    assert once.describe()["candidates"][0]["stable"] is False and "(one round: unchecked)" in text(once.table("ptq"))


def test_every_p50_in_the_table_has_three_significant_digits(tmp_path: Path) -> None:
    """An FP32 p50 of 2.003908 ms printed as `2` (`:.3g` drops trailing zeros) beside the candidate's `0.811`."""
    shown = text(result(tmp_path, (0.811,) * 3, fp32_ms=2.003908).table("ptq"))
    cells = {row.split("│")[1].strip(): [c.strip() for c in row.split("│")[2:]] for row in shown.splitlines()
             if row.startswith("│")}
    column = [c.strip() for c in next(r for r in shown.splitlines() if "p50 ms b1" in r).split("┃")[1:]].index(
        "p50 ms b1")
    assert cells["fp32"][column - 1] == "2.00" and cells["qdq_u8s8"][column - 1] == "0.811", shown
    from cnnlab.compress.quantization.result import p50_text

    assert [p50_text(ms) for ms in (2.003908, 0.811, 0.5, 12.5, 10.0, 99.96, 123.4, 1234.5)] == \
        ["2.00", "0.811", "0.500", "12.5", "10.0", "100", "123", "1234"]


def test_a_qat_result_tells_the_training_from_int8_and_says_which_fp32_ships(tmp_path: Path) -> None:
    """Probe 105: a QAT run listed its INT8 file at +4.90 points over FP32 — the gain of one more epoch of training
    of an under-trained source, not of INT8 — and, with FP32 kept, shipped the source without saying so."""
    qat = result(tmp_path, (0.125,) * 3, acc=0.7388, fp32_acc=0.6898, qat_fp32_acc=0.7379,
                 keep_fp32_if_slower=False)
    shown = text(qat.table("qat"))
    assert "fp32 (source)" in shown and "fp32, QAT-trained" in shown and "+4.81" in shown
    assert "+0.09 pts vs the QAT-trained weights" in shown
    metrics = qat.metrics(tmp_path / "qdq_u8s8.onnx")
    assert metrics["qat_fp32_val_acc"] == 0.7379 and metrics["qat_int8_acc_drop"] == pytest.approx(-0.0009)
    assert "the trained weights score 73.79% in float (+4.81 pts against the source: training), INT8 changes " \
           "them by +0.09 pts" in qat.reason
    kept = result(tmp_path, (0.5,) * 3, acc=0.7388, fp32_acc=0.6898, qat_fp32_acc=0.7379)   # INT8 slower: FP32 kept
    assert kept.fp32_kept and kept.describe()["reason"].endswith(
        "model.onnx is the source's FP32 model, as given, not the QAT-trained weights")
    assert "qat_fp32_val_acc" not in result(tmp_path, (0.125,) * 3).metrics(tmp_path / "qdq_u8s8.onnx")


def test_an_over_budget_search_names_the_fix_of_its_mode(tmp_path: Path) -> None:
    """Probe 113: QAT took 86.67 % to 11.67 % in float (training at the default rate) and the error said to calibrate
    (PTQ's settings) or to use quantize.mode=qat, which it was; lowering quantize.lr_scale was what worked."""
    ptq = result(tmp_path, (0.125,) * 3, acc=0.10, fp32_acc=0.8667).over_budget()
    assert "quantize.calib_batches" in ptq.fix and "quantize.mode=qat" in ptq.fix
    lost_in_training = result(tmp_path, (0.125,) * 3, acc=0.10, fp32_acc=0.8667, qat_fp32_acc=0.1167).over_budget()
    assert "quantize.lr_scale" in lost_in_training.fix and "calib" not in lost_in_training.fix
    assert "quantize.mode=qat" not in lost_in_training.fix
    assert "-75.00 pts against the source" in lost_in_training.message
    lost_in_int8 = result(tmp_path, (0.125,) * 3, acc=0.70, fp32_acc=0.8667, qat_fp32_acc=0.86).over_budget()
    assert "quantize.exclude" in lost_in_int8.fix and "lr_scale" not in lost_in_int8.fix
    assert "calib" not in lost_in_int8.fix and "quantize.mode=qat" not in lost_in_int8.fix


def test_a_candidate_not_measured_faster_in_every_round_gets_the_note(tmp_path: Path) -> None:
    """Probe 114: a format chosen by hand whose speed-up was 1.0047× from rounds 1.0047, 0.8831, 0.9445 got no note
    (the rule was ratio >= 1), where the search calls it not measured faster."""
    from cnnlab.compress.quantization.search import _with_speed_note

    fp32 = Fp32Figures(tmp_path / "fp32.onnx", Accuracy(0.9, 1.0, 0.5, 100), timing((1.00, 1.20, 1.10)))
    level = CandidateResult(FORMATS["qdq_u8s8"], tmp_path / "q.onnx", Accuracy(0.9, 1.0, 0.5, 100), {},
                            timing((0.99, 1.30, 1.08)))  # 1.02× by the median rounds; rounds 1.01, 0.92, 1.02
    noted = _with_speed_note(level, fp32, "onnxruntime", warn=False)
    assert noted.notes and "FP32 on this machine" in noted.notes[-1], noted.notes
    faster = replace(level, timing=timing((0.5, 0.5, 0.5)))
    assert _with_speed_note(faster, fp32, "onnxruntime", warn=False).notes == faster.notes
