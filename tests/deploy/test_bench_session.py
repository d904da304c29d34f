"""A benchmark session over backends and batch sizes: its records, the skips of what cannot run, and the
run.json figures of each record (cnnlab/deploy/bench_session.py). The timers are replaced by fakes here;
tests/deploy/test_bench.py times for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cnnlab.data.spec import InputSpec
from cnnlab.deploy import bench_session
from cnnlab.deploy.backends import BackendPlan, SkippedBackend
from cnnlab.deploy.bench import summarize
from cnnlab.deploy.bench_session import BenchTimings, TimedRecord, time_backends
from cnnlab.deploy.bench_settings import BenchSettings
from cnnlab.deploy.subject import TimedModel
from cnnlab.errors import CnnlabError, ModelLoadError

SETTINGS = BenchSettings.from_config(OmegaConf.create(
    {"backends": None, "batch_sizes": [1, 4], "threads": 2, "warmup": 0, "min_iters": 1, "min_seconds": 0}))


def stats(backend: str, batch: int, ms: float = 2.0):  # type: ignore[no-untyped-def]
    return summarize([ms, ms], backend=backend, device="cpu", batch_size=batch, threads=2, flops=None,
                     peak_gflops=None)


def subject(tmp_path: Path) -> TimedModel:
    return TimedModel(name="lenet5", spec=InputSpec(16), num_classes=3, model=object(),  # type: ignore[arg-type]
                      model_file=tmp_path / "model.pt", onnx=tmp_path / "tmp.onnx",
                      onnx_origin="exported for this benchmark", params=10, flops=100)


def test_every_backend_at_every_batch_size_and_a_failing_one_skipped(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_torch(model, batch, *, compile, **_):  # type: ignore[no-untyped-def]
        if compile:
            raise CnnlabError("torch.compile failed: no compiler")
        return stats("torch", batch)

    def fake_onnx(path, batch, *, runtime, **_):  # type: ignore[no-untyped-def]
        if batch == 4:
            raise CnnlabError("onnxruntime cannot run it at batch 4")
        return stats(runtime, batch)

    monkeypatch.setattr(bench_session, "time_torch", fake_torch)
    monkeypatch.setattr(bench_session, "time_onnx", fake_onnx)
    plan = BackendPlan(("torch", "torch_compile", "onnxruntime"), (SkippedBackend("tensorrt", None, "absent"),))
    timings = time_backends(subject(tmp_path), plan, SETTINGS, "cpu", None)
    assert [(r.stats.backend, r.stats.batch_size) for r in timings.records] == [("torch", 1), ("torch", 4),
                                                                                ("onnxruntime", 1)]
    # The PyTorch records name the model.pt; a temporary ONNX export is not worth naming.
    assert [r.to_dict()["file"] for r in timings.records] == [str(tmp_path / "model.pt")] * 2 + [None]
    assert [(s.backend, s.batch_size) for s in timings.skipped] == [("tensorrt", None), ("torch_compile", None),
                                                                    ("onnxruntime", 4)]
    assert timings.require_records() is timings


def test_a_file_the_runtime_cannot_load_skips_the_backend_by_its_type_not_its_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_onnx(path, batch, *, runtime, **_):  # type: ignore[no-untyped-def]
        calls.append((runtime, batch))
        if runtime == "openvino":
            raise ModelLoadError("openvino rejected the file")
        raise CnnlabError("a message that says cannot load, about one batch size")

    monkeypatch.setattr(bench_session, "time_onnx", fake_onnx)
    timings = time_backends(subject(tmp_path), BackendPlan(("openvino", "onnxruntime"), ()), SETTINGS, "cpu", None)
    assert calls == [("openvino", 1), ("onnxruntime", 1), ("onnxruntime", 4)]
    assert [(s.backend, s.batch_size) for s in timings.skipped] == [("openvino", None), ("onnxruntime", 1),
                                                                    ("onnxruntime", 4)]
    assert timings.skipped[0].reason == "openvino rejected the file"


def test_records_give_bench_json_every_field_and_run_json_the_headline_ones() -> None:
    single, paired = TimedRecord(stats("onnxruntime", 1), Path("m.onnx")), \
        TimedRecord(stats("onnxruntime", 1), None, subject=1, p50_ms_per_round=(2.0, 2.5))
    assert single.to_dict() == {**stats("onnxruntime", 1).to_dict(), "file": "m.onnx"}
    assert single.metrics()["iterations"] == stats("onnxruntime", 1).iterations and single.metrics()["p50_ms"] == 2.0
    assert "min_ms" not in single.metrics()
    assert "subject" not in single.metrics() and "file" not in single.metrics()
    assert paired.to_dict()["p50_ms_per_round"] == [2.0, 2.5]
    assert (paired.metrics()["subject"], paired.metrics()["p50_ms_per_round"]) == (1, [2.0, 2.5])


def test_nothing_timed_is_one_error_with_every_reason() -> None:
    nothing = BenchTimings((), (SkippedBackend("torch", None, "no model"), SkippedBackend("onnxruntime", 1, "bad")))
    with pytest.raises(CnnlabError, match="every backend was skipped: skipped torch: no model; "
                                          "skipped onnxruntime at batch 1: bad"):
        nothing.require_records()


def test_a_file_made_from_an_export_finds_the_model_pt_behind_that_export(tiny_export: Path, tmp_path: Path) -> None:
    """Probe 192: a quantize run that kept FP32 ships its source's ONNX file, whose metadata names that file as its
    source: bench said "skipped torch: the source chain holds no model.pt" of a chain that held one."""
    from cnnlab.deploy.export import read_onnx_metadata
    from cnnlab.deploy.subject import chain_checkpoint
    from cnnlab.runs import Source, model_sha256

    exported = read_onnx_metadata(tiny_export)
    kept = {"source": {"kind": "onnx", "path": str(tiny_export), "sha256": model_sha256(tiny_export)}}
    copy = tmp_path / "kept.onnx"
    copy.write_bytes(tiny_export.read_bytes())
    assert chain_checkpoint(kept, Source(str(copy), "onnx", copy, None)) == Path(exported["source"]["path"])
    stale = {"source": {**kept["source"], "sha256": "0" * 64}}  # the export's file replaced since: said, not followed
    with pytest.raises(CnnlabError, match="the ONNX file kept.onnx was made from, has changed since"):
        chain_checkpoint(stale, Source(str(copy), "onnx", copy, None))  # probe 193: "the chain holds no model.pt"


def test_one_models_bench_beside_other_work_warns_and_records_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Probe 219: a one-model bench read LeNet-5 at 123 ms beside two busy loops (0.4 ms on the quiet machine),
    exit 0, without the busy-machine warning a paired session gives."""
    import logging

    from cnnlab.deploy import contention

    monkeypatch.setattr(bench_session, "time_onnx", lambda path, batch, *, runtime, **_: stats(runtime, batch))
    for others, said in ((1.4, True), (0.05, False)):
        monkeypatch.setattr(contention.CpuWatch, "others_cores", lambda self, value=others: value)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cnnlab"):
            time_backends(subject(tmp_path), BackendPlan(("onnxruntime",), ()), SETTINGS, "cpu", None)
        warned = [r for r in caplog.records if r.getMessage().startswith("other processes kept 1.4 of the ")]
        assert len(warned) == int(said) and all(getattr(r, "run_warning", False) for r in warned), caplog.text
