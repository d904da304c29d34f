"""`cnnlab quantize`: PTQ with the auto search, the accuracy budget, dynamic and QAT modes, ONNX sources, the
record, and bad input."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from cnnlab.compress.quantization import CALIBRATION_CACHE, quantized_ops, speedup
from cnnlab.compress.quantization.formats import is_x86
from cnnlab.compress.quantization.selection import MIN_NOISE
from cnnlab.deploy.export import export_onnx, read_onnx_metadata
from cnnlab.engine.checkpoint import load_model
from cnnlab.environment import cpu_info
from cnnlab.wording import counted
from helpers import HAS_OPENVINO, TINY, only_run, read_run, run_dirs

# Tiny calibration and timing: these tests check what is built, measured and recorded, never how fast.
FAST = ["quantize.calib_batches=2", "quantize.calib_batch_size=16", "quantize.bench_rounds=1",
        "quantize.bench_warmup=1", "quantize.bench_min_iters=2", "quantize.bench_min_seconds=0",
        "quantize.bench_threads=1",
        # a tiny LeNet's INT8 file is often slower than FP32; tests that check the INT8 path ship it regardless
        "quantize.keep_fp32_if_slower=false"]
ONNXRUNTIME_ONLY = ["quantize.engine=onnxruntime", "quantize.deploy_runtimes=[onnxruntime]"]
# 32 validation images: one changed prediction is 3 points, so tests that are not about the budget lift it.
NO_BUDGET = "quantize.max_acc_drop=100"
# INT8 rounding of a tiny LeNet moves a few of the 32 predictions, never a quarter of them: a candidate further
# from FP32 than this was evaluated on the wrong file, images or labels.
CLOSE_TO_FP32 = 0.25


def onnx_accuracy(model_file: Path, source: Path) -> tuple[float, float]:
    """Top-1 of an ONNX file on the source run's validation images, computed here with onnxruntime and numpy
    (not through cnnlab's evaluation), as bounds: INT8 logits tie exactly, and which of two tied classes an
    argmax picks is the library's choice. (images whose label alone scores highest, images whose label is
    among the highest) / images."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from cnnlab.data import build_datasets

    data = build_datasets(OmegaConf.create(read_run(source)["dataset"]["config"]),
                          read_onnx_metadata(model_file)["spec"])
    images, labels = zip(*(data.val[i][:2] for i in range(len(data.val))))
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: torch.stack(images).numpy()})[0]
    label_scores = logits[np.arange(len(labels)), np.asarray(labels)]
    best = logits.max(axis=1)
    alone = (label_scores == best) & ((logits == best[:, None]).sum(axis=1) == 1)
    return float(alone.mean()), float((label_scores == best).mean())


def assert_accuracy_of(model_file: Path, source: Path, recorded: float) -> None:
    lowest, highest = onnx_accuracy(model_file, source)
    assert lowest - 1e-9 <= recorded <= highest + 1e-9, (recorded, lowest, highest)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny pretrain run (LeNet-5, 16 px, 4 synthetic classes) that every test quantizes (read-only)."""
    from typer.testing import CliRunner

    from cnnlab.cli import app

    outputs = tmp_path_factory.mktemp("quantize-source") / "outputs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNLAB_OUTPUTS", str(outputs))
        patch.chdir(outputs.parent)
        patch.setattr(sys, "argv", list(sys.argv))
        result = CliRunner().invoke(app, ["pretrain", *TINY], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    return run_dirs(outputs, "pretrain")[0]


def test_ptq_auto_builds_measures_and_keeps_the_fastest_candidate(cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", *FAST, *ONNXRUNTIME_ONLY, NO_BUDGET)
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    run_dir, metrics, report = Path(record["run_dir"]), record["metrics"], record["quantize"]
    assert record["status"] == "completed" and record["source"]["run"] == str(source)

    candidates = {c["name"]: c for c in report["candidates"]}
    assert list(candidates) == ["qdq_u8s8", "qdq_s8s8", "qop_u8s8", "qop_s8s8"]
    fp32 = report["fp32"]
    for c in candidates.values():  # every candidate: its own accuracy on val, its latency, its file
        assert abs(c["acc"] - fp32["val_acc"]) <= CLOSE_TO_FP32 and c["n"] == 32 and c["int8_ops"]
        assert c["acc_drop_points"] == pytest.approx(100 * (fp32["val_acc"] - c["acc"]))
        assert c["latency"]["1"]["threads"] == 1 and c["latency"]["1"]["iterations"] >= 2
        assert c["speedup"] == pytest.approx(fp32["latency"]["1"]["p50_ms"] / c["latency"]["1"]["p50_ms"])
        assert c["file_bytes"] < fp32["file_bytes"] / 2
    assert "QLinearConv" in candidates["qop_u8s8"]["int8_ops"] and "QuantizeLinear" in candidates["qdq_u8s8"]["int8_ops"]
    fastest = max(candidates.values(), key=lambda c: c["speedup"])
    chosen = candidates[report["chosen"]]
    assert report["chosen"] == metrics["format"] and report["within_budget"]
    # probe 59: onnxruntime wrote calibration.json through mkstemp, readable by its owner only (docs/runs.md)
    usual = stat.S_IMODE((run_dir / "run.json").stat().st_mode)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in run_dir.iterdir() if p.is_file()} == \
        {p.name: usual for p in run_dir.iterdir() if p.is_file()}
    assert (run_dir / "calibration.json").is_file()
    if chosen is fastest:
        assert report["reason"].startswith(f"{fastest['name']}: the fastest of 4 candidate(s)")
    else:  # the selection rule's tie: a QDQ file (read by more runtimes) within timing noise of a faster QOperator one
        assert chosen["name"].startswith("qdq_") and fastest["name"].startswith("qop_")
        assert chosen["speedup"] >= fastest["speedup"] * (1 - MIN_NOISE)  # one round: no spread, the floor
        assert report["reason"].startswith(f"{chosen['name']} (") and "slower than the fastest, " \
            f"{fastest['name']}" in report["reason"] and "within the timing noise (±" in report["reason"]
    assert report["deploy_runtimes"] == ["onnxruntime"] and chosen["loads_on"] == {"onnxruntime": "loads"}
    calibration = report["calibration"]
    assert {k: calibration[k] for k in ("method", "batches", "images", "split")} == {
        "method": "minmax", "batches": 2, "images": 32, "split": "train (deterministic transforms)"}
    assert calibration["ranges"].startswith("calibrated once" if CALIBRATION_CACHE else "calibrated for every")
    assert fp32["origin"] == "exported from the source for this run"
    # FP32 ONNX on the validation split is the source model on it: the accuracy the source run recorded
    assert fp32["val_acc"] == pytest.approx(read_run(source)["metrics"]["val_acc"]) and fp32["val_acc"] > 0.25

    assert metrics["val_acc"] == chosen["acc"] and metrics["fp32_val_acc"] == fp32["val_acc"]
    assert metrics["acc_drop"] == pytest.approx(fp32["val_acc"] - chosen["acc"])
    assert metrics["speedup"] == pytest.approx(chosen["speedup"]) == pytest.approx(metrics["speedup_b1"])
    assert metrics["onnx_bytes_int8"] == (run_dir / "model.onnx").stat().st_size < metrics["onnx_bytes_fp32"]
    assert record["artifacts"] == {"onnx": "model.onnx", **({"calibration": "calibration.json"}
                                                             if CALIBRATION_CACHE else {})}
    assert record["model"]["precision"] == "int8" and record["model"]["quantization"] == chosen["name"]
    assert record["dataset"]["config"]["name"] == "synthetic"  # runs derived from this one find the same data
    assert not (run_dir / "candidates").exists()  # intermediate files are gone, their figures stay

    model_file = run_dir / "model.onnx"  # the INT8 file: quantized, self-describing, and onnxruntime runs it
    assert quantized_ops(model_file)
    assert_accuracy_of(model_file, source, metrics["val_acc"])  # what was recorded is this file's accuracy
    meta = read_onnx_metadata(model_file)
    _, checkpoint = load_model(source / "model.pt")
    assert meta["spec"] == checkpoint.spec and meta["classes"] == checkpoint.classes
    assert meta["props"]["quantization"]["format"] == chosen["name"]
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input"
    assert "chosen" in result.stdout and "qop_s8s8" in result.stdout

    runs = len(run_dirs(outputs, "quantize"))
    again = cli("quantize", "source=latest:quantize", *FAST)  # an INT8 model is not quantized twice
    assert again.code == 2 and "is quantized already" in again.stderr
    assert len(run_dirs(outputs, "quantize")) == runs  # refused before any work: no `failed` run (probe 68)


def test_an_unmet_budget_keeps_the_best_candidate_and_the_record_and_fails(
        cli, outputs: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.compress.quantization.ptq as ptq
    import cnnlab.compress.quantization.search as search

    real = search.evaluate_onnx

    def pessimistic(path, loader, *, desc="onnx eval", **options):  # type: ignore[no-untyped-def]
        figures = real(path, loader, desc=desc, **options)
        # FP32 scores perfectly, every INT8 file at most 50%: no candidate can be within one point.
        return {**figures, "acc": 1.0} if "fp32" in desc else {**figures, "acc": figures["acc"] / 2}

    monkeypatch.setattr(search, "evaluate_onnx", pessimistic)
    monkeypatch.setattr(ptq, "ENTROPY_HISTOGRAM", {"num_bins": 512, "num_quantized_bins": 128})  # 2048: ~25 s more
    result = cli("quantize", f"source={source}", *FAST, *ONNXRUNTIME_ONLY, "quantize.calibrate_method=entropy")
    said = " ".join(result.stderr.split())
    assert result.code == 2, result.output
    # probe 179: "no INT8 candidate is within …: no candidate is within …", the shipped file marked "chosen", and
    # the method just followed (entropy) offered again
    assert "error: no candidate is within the 1-point accuracy budget; the most accurate is" in said, said
    assert "(quantize.max_acc_drop=1 points below the FP32 accuracy, 100.00%)" in said and said.count("within") == 1
    assert "quantize.calibrate_method=percentile," in said and "entropy|" not in said
    # probe 204: said while the root logger was quieted, this line reached neither the console nor run.log
    assert "entropy calibration: the KL-divergence threshold of each tensor over 512-bin histograms" in \
        " ".join(result.output.split())
    histogram = only_run(outputs, "quantize")["quantize"]["entropy_histogram"]
    assert histogram == {"num_bins": 512, "num_quantized_bins": 128}  # what the KL search ran on, recorded
    assert "Traceback" not in result.output and "over budget; the most accurate, in model.onnx" in result.stdout
    record = only_run(outputs, "quantize")
    report = record["quantize"]
    assert record["status"] == "failed" and "no candidate is within" in record["error"]
    assert not report["within_budget"] and record["metrics"]["within_budget"] is False
    best = max(report["candidates"], key=lambda c: (c["acc"], c["speedup"]))
    assert report["chosen"] == best["name"] and "the most accurate is" in report["reason"]
    assert all("acc" in c and "latency" in c for c in report["candidates"])  # the record is complete
    assert record["metrics"]["fp32_val_acc"] == 1.0 and record["metrics"]["acc_drop"] > 0.5
    assert quantized_ops(Path(record["run_dir"]) / "model.onnx")  # the best candidate is kept


def test_a_named_format_skips_the_search_and_says_when_it_is_slow(cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", "quantize.format=qop_s8s8", "quantize.keep_candidates=true",
                 *FAST, NO_BUDGET, "quantize.deploy_runtimes=[onnxruntime]")
    assert result.code == 0, result.output
    report = only_run(outputs, "quantize")["quantize"]
    assert [c["name"] for c in report["candidates"]] == ["qop_s8s8"]
    assert report["reason"].startswith("quantize.format=qop_s8s8 was asked for (no search)")
    if is_x86():
        assert "may not be faster on this CPU" in result.stderr and "QOperator" in result.stderr
    run_dir = Path(only_run(outputs, "quantize")["run_dir"])
    assert {p.name for p in (run_dir / "candidates").iterdir()} >= {"fp32.onnx", "fp32_preprocessed.onnx",
                                                                     "qop_s8s8.onnx"}


def test_the_weights_recorded_are_the_ones_the_file_stores(cli, outputs: Path, source: Path) -> None:
    """Probe 131: `qop_u8u8` (per-channel, the default) recorded "weights": "u8" in run.json and the file's metadata,
    where onnxruntime had stored every convolution's weights as int8: the label came from the format's name."""
    import onnx

    from cnnlab.deploy.onnx_check import weight_types

    result = cli("quantize", f"source={source}", "quantize.format=qop_u8u8", "quantize.keep_fp32_if_slower=false",
                 *FAST, NO_BUDGET, "quantize.deploy_runtimes=[onnxruntime]")
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    [candidate] = record["quantize"]["candidates"]
    shipped = Path(record["run_dir"]) / "model.onnx"
    stored = weight_types(shipped)
    assert stored["s8"] > 0  # LeNet-5's convolutions, per channel: int8 whatever was asked
    assert candidate["weights"] == "+".join(sorted(stored)) and candidate["weight_tensors"] == dict(stored)
    assert any("U8 weights asked for, but" in note for note in candidate["notes"])
    metadata = {p.key: p.value for p in onnx.load(str(shipped)).metadata_props}
    assert json.loads(metadata["quantization"])["weights"] == candidate["weights"]


def test_dynamic_mode_quantizes_weights_only_and_says_convolutions_gain_little(
        cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", "quantize.mode=dynamic", *FAST, NO_BUDGET,
                 "quantize.deploy_runtimes=[onnxruntime]")
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report = record["quantize"]
    assert [c["name"] for c in report["candidates"]] == ["dynamic_s8", "dynamic_u8"]
    assert "calibration" not in report and "calibration" not in record["artifacts"]
    assert "convolutions (ConvInteger) gain little" in report["note"]
    assert quantized_ops(Path(record["run_dir"]) / "model.onnx")["ConvInteger"] == 2
    # probe 105: DynamicQuantizeLinear takes one range per call, so the accuracy depends on the batch it was scored at
    assert report["eval_batch_size"] == 32 and "depend on its batch-mates" in report["note"]   # 2 x trainer.batch_size


def test_qat_fine_tunes_and_exports_a_qdq_model_onnxruntime_runs(cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", "quantize.mode=qat", "trainer.epochs=1", "trainer.batch_size=16",
                 *FAST, NO_BUDGET)
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report, metrics = record["quantize"], record["metrics"]
    assert report["mode"] == "qat" and report["chosen"] == "qdq_u8s8"
    assert report["qat"]["epochs"] == 1 and len(report["qat"]["history"]) == 1
    assert report["qat"]["lr"] == pytest.approx(0.05 * 0.02)  # optim.lr x quantize.lr_scale
    model_file = Path(record["run_dir"]) / "model.onnx"
    ops = quantized_ops(model_file)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    assert metrics["onnx_bytes_int8"] < metrics["onnx_bytes_fp32"]
    assert_accuracy_of(model_file, source, metrics["val_acc"])  # the QDQ file itself
    # the fake-quantized PyTorch model and its QDQ export round alike: their accuracies are close
    assert abs(report["qat"]["fake_quant_val_acc"] - metrics["val_acc"]) <= CLOSE_TO_FP32 / 2
    assert metrics["speedup"] == pytest.approx(speedup(
        {1: report["candidates"][0]["latency"]["1"]["p50_ms"]}, {1: report["fp32"]["latency"]["1"]["p50_ms"]}))
    assert "model" not in record["artifacts"] and "checkpoint" not in record["artifacts"]
    # probe 105: the INT8 file's change against the source is mostly training; the trained weights in float say how much
    trained = report["qat"]["trained_fp32_val_acc"]
    assert 0.0 <= trained <= 1.0 and metrics["qat_fp32_val_acc"] == trained
    assert metrics["qat_int8_acc_drop"] == pytest.approx(trained - metrics["val_acc"])
    assert "fp32, QAT-trained" in result.stdout and "pts vs the QAT-trained weights" in result.stdout
    assert "before QAT training" in report["fp32"]["origin"] and "qat: the trained weights score" in report["reason"]


def test_a_bare_onnx_source_brings_its_spec_and_classes_and_the_data_comes_from_the_config(
        cli, outputs: Path, source: Path, tmp_path: Path) -> None:
    model, checkpoint = load_model(source / "model.pt")
    bare = export_onnx(model, tmp_path / "bare.onnx", spec=checkpoint.spec, classes=checkpoint.classes)
    dataset = [o for o in TINY if o.startswith("dataset")]
    result = cli("quantize", f"source={bare}", "quantize.format=qdq_u8s8", *dataset, *FAST, NO_BUDGET)
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    assert record["source"]["kind"] == "onnx" and record["source"]["run"] is None
    assert record["quantize"]["fp32"]["origin"] == "the source's ONNX file"
    assert read_onnx_metadata(Path(record["run_dir"]) / "model.onnx")["classes"] == checkpoint.classes

    qat = cli("quantize", f"source={bare}", "quantize.mode=qat", *dataset, *FAST)
    assert qat.code == 2 and "fine-tunes the PyTorch model" in qat.stderr


def test_an_onnx_source_onnxruntime_cannot_load_is_refused_before_any_candidate(cli, outputs: Path, source: Path,
                                                                                 tmp_path: Path) -> None:
    """A file saved with every tensor outside it (onnx.save's size_threshold=0) is one onnxruntime refuses to load;
    quantize said so only after calibrating and making every candidate, and left that failed run in a named
    hydra.run.dir, where the mended command was then refused."""
    import onnx

    model, checkpoint = load_model(source / "model.pt")
    inline = export_onnx(model, tmp_path / "inline.onnx", spec=checkpoint.spec, classes=checkpoint.classes)
    outside = tmp_path / "outside.onnx"
    onnx.save(onnx.load(str(inline)), str(outside), save_as_external_data=True, location="outside.onnx.data",
              size_threshold=0)
    folder = tmp_path / "named"
    dataset = [o for o in TINY if o.startswith("dataset")]
    result = cli("quantize", f"source={outside}", f"hydra.run.dir={folder}", *dataset, *FAST, NO_BUDGET)
    assert result.code == 2 and "onnxruntime cannot load" in result.stderr and "size_threshold" in result.stderr
    assert "Traceback" not in result.output and "quantizing:" not in result.output
    assert not folder.exists() and not run_dirs(outputs, "quantize")


def fixed_batch_file(source: Path, tmp_path: Path, batch: int) -> Path:
    """The source run's model exported with its batch dimension fixed to `batch` (as onnxsim writes it)."""
    from onnx_variants import with_fixed_batch

    model, checkpoint = load_model(source / "model.pt")
    return with_fixed_batch(export_onnx(model, tmp_path / "bare.onnx", spec=checkpoint.spec,
                                        classes=checkpoint.classes), tmp_path / f"fixed{batch}.onnx", batch)


def test_a_fixed_batch_onnx_source_is_calibrated_and_timed_at_its_batch(cli, outputs: Path, source: Path,
                                                                         tmp_path: Path) -> None:
    """Probe 90: a file fixed to batch 1 (as onnxsim --overwrite-input-shape writes) failed in every candidate with
    onnxruntime's "Got invalid dimensions" cut short, and the fix offered (quantize.mode=dynamic) failed too."""
    fixed = fixed_batch_file(source, tmp_path, 1)
    dataset = [o for o in TINY if o.startswith("dataset")]
    fast = [o for o in FAST if not o.startswith("quantize.calib_batch_size")]
    result = cli("quantize", f"source={fixed}", "quantize.format=qdq_u8s8", *dataset, *fast, NO_BUDGET,
                 *ONNXRUNTIME_ONLY)
    assert result.code == 0, result.output
    assert "has a fixed batch dimension of 1: calibrated and timed at batch 1" in " ".join(result.output.split())
    assert only_run(outputs, "quantize")["quantize"]["calibration"]["images"] == 2  # calib_batches=2, typed
    # probe 131: untyped, the batches of the default size became batches of 1: 8 images, not the 256 asked
    default = [o for o in fast if not o.startswith("quantize.calib_batches")]
    again = cli("quantize", f"source={fixed}", "quantize.format=qdq_u8s8", *dataset, *default, NO_BUDGET,
                *ONNXRUNTIME_ONLY)
    assert again.code == 0, again.output
    newest = read_run(run_dirs(outputs, "quantize")[-1])["quantize"]["calibration"]
    assert newest["images"] == 64  # 8 x 32 asked, as many as the 64 training images allow
    typed = cli("quantize", f"source={fixed}", *dataset, *fast, "quantize.calib_batch_size=16", *ONNXRUNTIME_ONLY)
    assert typed.code == 2 and "has a fixed batch dimension of 1, and quantize.calib_batch_size=16" in typed.stderr
    assert "use quantize.calib_batch_size=1" in typed.stderr


def test_a_fixed_batch_source_logs_the_calibration_asked_and_used(cli, outputs: Path, source: Path,
                                                                   tmp_path: Path) -> None:
    """A file fixed to batch 4, quantize.calib_batches and calib_batch_size left at 8 and 32 (256 images), 64 training
    images: the log said "(64 calibration batches of 4: 256 images, as the training split allows)" and the warning
    "fewer than the 256 asked for (quantize.calib_batches=64 x quantize.calib_batch_size=4)", while 16 batches, 64
    images, were used."""
    fixed = fixed_batch_file(source, tmp_path, 4)
    dataset = [o for o in TINY if o.startswith("dataset")]
    default = [o for o in FAST if not o.startswith("quantize.calib_")]
    result = cli("quantize", f"source={fixed}", "quantize.format=qdq_u8s8", *dataset, *default, NO_BUDGET,
                 *ONNXRUNTIME_ONLY)
    assert result.code == 0, result.output
    said = " ".join(result.output.split())
    assert ("has a fixed batch dimension of 4: calibrated and timed at batch 4: the 256 images asked for "
            "(quantize.calib_batches=8 × quantize.calib_batch_size=32) in 64 batches of 4") in said, said
    assert "as the training split allows" not in said and "calib_batches=64" not in said
    record = only_run(outputs, "quantize")
    assert record["quantize"]["calibration"]["batches"] == 16 and record["quantize"]["calibration"]["images"] == 64
    # probe 188: run.json recorded the re-cut 64 x 4 as the settings, the 8 x 32 asked only in the log
    assert (record["quantize"]["calib_batches"], record["quantize"]["calib_batch_size"]) == (8, 32)
    assert record["quantize"]["calib_fixed_batch"] == {"batches": 64, "batch_size": 4}
    [warning] = [w for w in record["warnings"] if "calibrates on" in w]
    assert ("static quantization calibrates on 64 training images in 16 batches of 4, fewer than the 256 asked for "
            "(quantize.calib_batches=8 × quantize.calib_batch_size=32, drawn in batches of 4") in warning, warning
    assert warning in said  # the log line says it too


@pytest.mark.parametrize("override, message", [
    ("quantize.calib_batches=0", "calib_batches=0: static quantization needs calibration images"),
    ("quantize.format=int4", "quantize.format=int4 is not a format"),
    ("quantize.calibrate_method=kl", "quantize.calibrate_method=kl is not a calibration method"),
    ("quantize.mode=fp16", "quantize.mode=fp16 is not a mode"),
    ("quantize.format=dynamic_u8", "does not go with quantize.mode=ptq"),
    ("quantize.exclude=[nope]", "no node called nope"),
    ("quantize.max_acc_drop=-1", "quantize.max_acc_drop=-1 is not allowed"),
    ("quantize.runtime=tvm", "unknown quantize.runtime=tvm — use one of onnxruntime, openvino"),
    ("model=resnet18", "model=resnet18 would be ignored"),
])
def test_bad_input_is_one_clear_line(cli, source: Path, override: str, message: str) -> None:
    result = cli("quantize", f"source={source}", *FAST, override)
    assert result.code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1


def test_a_qat_exclude_typo_is_refused_before_any_work(cli, outputs: Path, source: Path) -> None:
    """Probe 142: QAT checked quantize.exclude's module paths after exporting the source: a failed run left behind,
    holding candidates/fp32.onnx."""
    result = cli("quantize", f"source={source}", "quantize.mode=qat", "trainer.epochs=1", "quantize.exclude=[nothere]")
    assert result.code == 2 and "quantize.exclude names no module nothere" in result.stderr, result.output
    assert run_dirs(outputs, "quantize") == []


def test_a_ptq_exclude_typo_leaves_no_run_and_a_failed_run_no_candidates(cli, outputs: Path, source: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 168: `quantize.exclude=[nope]` in PTQ, refused once fp32.onnx and its pre-processed copy were written,
    left a `failed` run holding candidates/ (86 MB for a 32 px ResNet-18), keep_candidates=false notwithstanding."""
    result = cli("quantize", f"source={source}", *FAST, "quantize.exclude=[nope]")
    assert result.code == 2 and "no node called nope" in result.stderr, result.output
    assert run_dirs(outputs, "quantize") == []  # a refusal of the settings: no run at all
    import cnnlab.pipelines.quantize as quantize

    def broken(*args, **kwargs):  # any failure once the candidates are written
        raise RuntimeError("the search failed")

    monkeypatch.setattr(quantize, "search_formats", broken)
    assert cli("quantize", f"source={source}", *FAST).code == 1
    [failed] = run_dirs(outputs, "quantize")
    assert not (failed / "candidates").exists() and read_run(failed)["status"] == "failed"


def test_a_missing_source_is_a_clear_error(cli, outputs: Path) -> None:
    result = cli("quantize")
    assert result.code == 2 and "needs a model to work on" in result.stderr
    result = cli("quantize", "source=latest:finetune")
    assert result.code == 2 and "matches no completed `cnnlab finetune` run" in result.stderr
    empty = outputs.parent / "empty-run"  # a run that produced no model (e.g. interrupted before saving)
    empty.mkdir()
    (empty / "run.json").write_text('{"command": "finetune", "status": "failed", "artifacts": {}}')
    result = cli("quantize", f"source={empty}")
    assert result.code == 2 and "holds no onnx or model file" in result.stderr and "Traceback" not in result.output


def test_the_openvino_runtime_without_its_package_names_the_extra_before_any_work(
        cli, outputs: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError: not installed
    result = cli("quantize", f"source={source}", "quantize.runtime=openvino", *FAST)
    assert result.code == 2 and "Traceback" not in result.output
    assert "quantize.runtime: openvino: the openvino package is not importable" in result.stderr
    assert 'pip install "cnnlab[openvino]"' in result.stderr
    for run_dir in run_dirs(outputs, "quantize"):  # stopped before anything was exported or quantized
        assert not (run_dir / "candidates").exists()


@pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "cnnlab[openvino]"')
def test_the_openvino_runtime_times_and_evaluates_every_file_on_openvino(cli, outputs: Path, source: Path) -> None:
    # more threads than the cores: OpenVINO runs no more than those, and the record says what ran (probe 137)
    cores = int(cpu_info()["usable_cores"] or 1)
    more = [o if not o.startswith("quantize.bench_threads=") else f"quantize.bench_threads={cores + 3}" for o in FAST]
    result = cli("quantize", f"source={source}", "quantize.runtime=openvino", "quantize.engine=onnxruntime",
                 *more, NO_BUDGET)
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report = record["quantize"]
    assert report["timing"]["runtime"] == "openvino" and "openvino CPU" in result.stdout
    assert report["fp32"]["latency"]["1"]["backend"] == "openvino"
    usable = [c for c in report["candidates"] if "error" not in c]
    assert [c["name"] for c in usable] == ["qdq_u8s8", "qdq_s8s8"]  # QOperator files do not load in OpenVINO
    assert all(c["latency"]["1"]["backend"] == "openvino" and abs(c["acc"] - report["fp32"]["val_acc"]) <= CLOSE_TO_FP32
               for c in usable)
    props = read_onnx_metadata(Path(record["run_dir"]) / "model.onnx")["props"]
    ran = report["fp32"]["latency"]["1"]["threads"]
    assert ran <= cores and props["quantization"]["chosen_on"] == f"openvino cpu, {counted(ran, 'thread')}"
    assert f"CPU, {counted(ran, 'thread')}" in result.stdout
    said = " ".join(result.stderr.split())
    assert f"openvino ran {counted(ran, 'inference thread')}, not the {cores + 3} of quantize.bench_threads" in said
    assert any("not the" in w for w in record["warnings"])
    assert "may not be faster on this CPU" not in result.stderr  # onnxruntime's kernel caveats are not OpenVINO's


@pytest.mark.skipif(not HAS_OPENVINO, reason='needs pip install "cnnlab[openvino]"')
def test_a_named_format_a_deployment_runtime_cannot_load_is_refused(cli, outputs: Path, source: Path) -> None:
    """A QOperator file, which OpenVINO does not load, asked for where it must run on OpenVINO (the default: every
    runtime installed): refused before calibration, where it was built and then refused, and the fix works."""
    for extra, onnxruntime_only in (([], True), (["quantize.runtime=openvino"], False)):
        result = cli("quantize", f"source={source}", "quantize.format=qop_u8s8", *FAST, NO_BUDGET, *extra)
        assert result.code == 2 and "Traceback" not in result.output
        assert "which OpenVINO does not load" in result.stderr and "quantize.format=qdq_u8s8" in result.stderr
        assert ("add quantize.deploy_runtimes=[onnxruntime]" in result.stderr) == onnxruntime_only
        assert run_dirs(outputs, "quantize") == []  # nothing calibrated, no run folder
    followed = cli("quantize", f"source={source}", "quantize.format=qop_u8s8", *FAST, NO_BUDGET,
                   "quantize.deploy_runtimes=[onnxruntime]")
    assert followed.code == 0, followed.output


def test_a_model_keeps_its_identity_through_prune_quantize_and_export(cli, outputs: Path, source: Path) -> None:
    """prune → quantize once recorded the INT8 model as "model" (the pruned ONNX file did not name its architecture).
    Every command's ONNX file, and every checkpoint, now says what it is: architecture, source, dataset, classes and
    input spec."""
    from cnnlab.engine.checkpoint import read_checkpoint
    from cnnlab.report import build_report

    assert cli("prune", f"source={source}", "trainer.epochs=0", "prune.bench_seconds=0",
               "prune.bench_threads=1").code == 0
    quantized = cli("quantize", "source=latest:prune", "quantize.format=qdq_u8s8", *FAST, NO_BUDGET)
    assert quantized.code == 0, quantized.output
    assert cli("export", "source=latest:prune", "export.evaluate=false").code == 0
    records = {command: only_run(outputs, command) for command in ("prune", "quantize", "export")}
    assert records["quantize"]["model"]["name"] == "lenet5"
    _, checkpoint = load_model(source / "model.pt")
    dataset = read_run(source)["dataset"]
    for command, record in records.items():
        meta = read_onnx_metadata(Path(record["run_dir"]) / "model.onnx")
        assert meta["arch"] == "lenet5" and meta["classes"] == checkpoint.classes, command
        assert meta["spec"] == checkpoint.spec and meta["identity"].spec == checkpoint.spec, command
        assert meta["dataset"]["name"] == "synthetic" and meta["dataset"]["config"] == dataset["config"], command
        assert Path(meta["source"]["path"]).is_file() and meta["source"]["run"], command
    prune_dir = Path(records["prune"]["run_dir"])
    # the pruned file was exported from the pruned checkpoint (bench times that one as its PyTorch twin)
    assert read_onnx_metadata(prune_dir / "model.onnx")["source"]["path"] == str(prune_dir / "model.pt")
    assert read_onnx_metadata(Path(records["quantize"]["run_dir"]) / "model.onnx")["source"]["run"] == str(prune_dir)
    pruned = read_checkpoint(prune_dir / "model.pt")
    assert pruned.extra["source"]["run"] == str(source) and pruned.extra["dataset"]["name"] == "synthetic"
    assert {row.model for row in build_report(outputs).rows} == {"lenet5"}


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not (_has("openvino") and _has("nncf")), reason='needs pip install "cnnlab[openvino]"')
def test_auto_adds_nncf_and_keeps_only_files_every_installed_runtime_loads(cli, outputs: Path, source: Path) -> None:
    """QOperator files do not load in OpenVINO (issue 20: MobileNetV2's chosen qop_u8s8 file could not be deployed
    there): with OpenVINO installed they are measured, recorded as not loadable and never chosen."""
    result = cli("quantize", f"source={source}", *FAST, NO_BUDGET)
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report = record["quantize"]
    assert report["engine"] == "auto" and report["deploy_runtimes"] == ["onnxruntime", "openvino"]
    candidates = {c["name"]: c for c in report["candidates"]}
    assert list(candidates) == ["qdq_u8s8", "qdq_s8s8", "qop_u8s8", "qop_s8s8", "nncf_qdq"]
    for name in ("qop_u8s8", "qop_s8s8"):
        assert "openvino cannot run it" in candidates[name]["error"], candidates[name]
        assert candidates[name]["loads_on"]["onnxruntime"] == "loads"
    nncf = candidates["nncf_qdq"]
    assert nncf["engine"] == "nncf" and nncf["layout"] == "qdq" and "QuantizeLinear" in nncf["int8_ops"]
    assert abs(nncf["acc"] - report["fp32"]["val_acc"]) <= CLOSE_TO_FP32
    assert nncf["loads_on"] == {"onnxruntime": "loads", "openvino": "loads"}
    assert report["chosen"] in ("qdq_u8s8", "qdq_s8s8", "nncf_qdq")
    props = read_onnx_metadata(Path(record["run_dir"]) / "model.onnx")["props"]
    assert props["quantization"]["loads_on"] == ["onnxruntime", "openvino"]
    assert props["quantization"]["engine"] == candidates[report["chosen"]]["engine"]


def test_auto_keeps_fp32_when_no_int8_candidate_is_faster(cli, outputs: Path, source: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """EfficientNet-B0's INT8 file ran at 0.86x FP32: format=auto must not ship a file slower than the one it
    replaces. Here FP32's measured latencies are divided by 1000, so every candidate is slower."""
    from dataclasses import replace as replaced

    import cnnlab.compress.quantization.search as search
    from cnnlab.deploy.paired import PairedTiming, SubjectTiming

    real = search.time_paired

    def fp32_wins(files, settings, **options):  # type: ignore[no-untyped-def]
        timing = real(files, settings, **options)
        fast = timing["fp32"]
        subjects = dict(timing.subjects)
        subjects["fp32"] = SubjectTiming(
            stats={b: replaced(s, p50_ms=s.p50_ms / 1000) for b, s in fast.stats.items()},
            p50_per_round={b: tuple(p / 1000 for p in r) for b, r in fast.p50_per_round.items()})
        return PairedTiming(timing.settings, subjects)

    monkeypatch.setattr(search, "time_paired", fp32_wins)
    result = cli("quantize", f"source={source}", *FAST, *ONNXRUNTIME_ONLY, NO_BUDGET,
                 "quantize.keep_fp32_if_slower=true")
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report, metrics = record["quantize"], record["metrics"]
    assert report["fp32_kept"] and report["shipped"] == "fp32" and report["reason"].startswith("FP32 kept")
    assert metrics["format"] == "fp32" and metrics["speedup"] == 1.0 and metrics["acc_drop"] == 0.0
    assert metrics["int8_best"] == report["chosen"] and metrics["int8_best_speedup"] < 1.0
    assert record["model"]["precision"] == "fp32"
    model_file = Path(record["run_dir"]) / "model.onnx"
    # probe 219: 1.0 was recorded beside two byte counts that differ (the file shipped carries the run's metadata)
    assert metrics["size_ratio"] == metrics["onnx_bytes_fp32"] / model_file.stat().st_size != 1.0
    assert not quantized_ops(model_file)  # the FP32 graph, with the run's identity
    props = read_onnx_metadata(model_file)["props"]
    assert "quantization" not in props and props["fp32_kept"]["reason"].startswith("FP32 kept")
    assert "no INT8 candidate within the budget is measured faster than FP32" in result.stderr
    assert "kept: no INT8 candidate is measured faster" in result.stdout


@pytest.mark.parametrize("override, message", [
    ("quantize.engine=tflite", "quantize.engine=tflite is not an engine"),
    ("quantize.deploy_runtimes=[tvm]", "quantize.deploy_runtimes names tvm, not a CPU runtime"),
    ("quantize.format=nncf_qdq quantize.engine=onnxruntime", "is built by nncf, not quantize.engine=onnxruntime"),
    ("quantize.mode=qat quantize.engine=nncf", "does post-training quantization only"),
    ("quantize.engine=onnxruntime quantize.nncf_accuracy_control=true", "applies to NNCF's candidate"),
    ("quantize.mode=dynamic quantize.nncf_accuracy_control=true", "applies to NNCF's candidate"),
])
def test_engine_and_deployment_settings_are_checked_before_any_work(cli, outputs: Path, source: Path, override: str,
                                                                    message: str) -> None:
    result = cli("quantize", f"source={source}", *FAST, *override.split())
    assert result.code == 2 and message in result.stderr and "Traceback" not in result.output
    for run_dir in run_dirs(outputs, "quantize"):
        assert not (run_dir / "candidates").exists()


def _cpu_has_bf16() -> bool:
    if not HAS_OPENVINO:
        return False
    from cnnlab.deploy.openvino_runtime import cpu_has_bf16

    return cpu_has_bf16()


@pytest.mark.parametrize("override, message", [
    ("quantize.precision=fp16", "quantize.precision=fp16 is not a precision"),
    ("quantize.precision=bf16", "quantize.precision=bf16 runs through OpenVINO, not quantize.runtime=onnxruntime"),
    ("quantize.precision=bf16 quantize.runtime=openvino quantize.mode=qat", "builds no INT8 file"),
])
def test_bf16_settings_are_checked_before_any_work(cli, source: Path, override: str, message: str) -> None:
    if "runtime=openvino" in override and not HAS_OPENVINO:
        pytest.skip('needs pip install "cnnlab[openvino]"')
    result = cli("quantize", f"source={source}", *FAST, *override.split())
    assert result.code == 2 and message in result.stderr and "Traceback" not in result.output


@pytest.mark.skipif(not HAS_OPENVINO or _cpu_has_bf16(), reason="needs OpenVINO on a CPU without bf16")
def test_bf16_on_a_cpu_without_it_is_one_line(cli, source: Path) -> None:
    result = cli("quantize", f"source={source}", *FAST, "quantize.precision=bf16", "quantize.runtime=openvino")
    assert result.code == 2 and "Traceback" not in result.output
    assert "quantize.precision=bf16:" in result.stderr and "quantize.precision=int8" in result.stderr


@pytest.mark.skipif(not _cpu_has_bf16(), reason="needs OpenVINO on a CPU with AVX512-BF16 or AMX")
def test_bf16_is_measured_like_a_candidate_and_ships_the_fp32_graph(cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", *FAST, NO_BUDGET, "quantize.precision=bf16",
                 "quantize.runtime=openvino")
    assert result.code == 0, result.output
    record = only_run(outputs, "quantize")
    report = record["quantize"]
    (candidate,) = report["candidates"]
    assert candidate["name"] == "bf16" and abs(candidate["acc"] - report["fp32"]["val_acc"]) <= CLOSE_TO_FP32
    assert candidate["latency"]["1"]["backend"] == "openvino"
    model_file = Path(record["run_dir"]) / "model.onnx"
    assert not quantized_ops(model_file) and record["model"]["precision"] == "bf16"
    props = read_onnx_metadata(model_file)["props"]
    assert props["inference_precision"]["precision"] == "bf16"


@pytest.mark.skipif(not _has("nncf"), reason='needs pip install "cnnlab[openvino]"')
def test_nncf_alone_with_accuracy_control_records_what_it_did(cli, outputs: Path, source: Path) -> None:
    result = cli("quantize", f"source={source}", *FAST, "quantize.engine=nncf", "quantize.nncf_accuracy_control=true",
                 "quantize.deploy_runtimes=[onnxruntime]", "quantize.max_acc_drop=50")
    assert result.code == 0, result.output
    report = only_run(outputs, "quantize")["quantize"]
    (candidate,) = report["candidates"]
    assert candidate["name"] == "nncf_qdq" and report["reason"].startswith("the only ptq format of quantize.engine=nncf")
    built = candidate["built_by"]
    assert built["engine"] == "nncf" and built["mode"] == "accuracy_control"
    assert built["accuracy_control"]["max_drop_points"] == 50 and built["accuracy_control"]["within_budget"]
    assert built["calibration"]["images"] == 32  # the same calibration images as onnxruntime's formats
