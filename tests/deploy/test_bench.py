"""The latency harness: the stopping rule, the statistics, and the onnxruntime / PyTorch timers."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cnnlab.data.spec import InputSpec
from cnnlab.deploy import bench
from cnnlab.deploy.bench import TimingPlan, measure, summarize, time_onnx, time_torch
from cnnlab.deploy.export import export_onnx
from cnnlab.errors import CnnlabError

QUICK = {"plan": TimingPlan(warmup=1, min_iters=3, min_seconds=0.0)}


class FakeClock:
    """time.perf_counter / perf_counter_ns that advance only when a step runs."""

    def __init__(self, step_seconds: float) -> None:
        self.now, self.step_seconds = 0.0, step_seconds

    def perf_counter(self) -> float:
        return self.now

    def perf_counter_ns(self) -> int:
        return int(self.now * 1e9)

    def run(self) -> None:
        self.now += self.step_seconds


def test_measure_runs_until_both_the_count_and_the_time_are_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(step_seconds=0.1)
    monkeypatch.setattr(bench, "time", clock)
    times = measure(clock.run, TimingPlan(warmup=2, min_iters=3, min_seconds=1.0))
    assert len(times) == 10 and times == pytest.approx([100.0] * 10)  # 1 s of 0.1 s runs, after the warm-up
    assert clock.now == pytest.approx(1.2)
    assert len(measure(clock.run, TimingPlan(warmup=0, min_iters=25, min_seconds=1.0))) == 25


def test_summary_statistics() -> None:
    stats = summarize([1.0, 2.0, 3.0, 4.0, 10.0], backend="torch", device="cpu", batch_size=4, threads=2,
                      flops=1_000_000, peak_gflops=10.0)
    assert (stats.p50_ms, stats.mean_ms, stats.min_ms, stats.iterations) == (3.0, 4.0, 1.0, 5)
    assert stats.p90_ms == pytest.approx(7.6) and stats.p99_ms == pytest.approx(9.76)
    assert stats.throughput == pytest.approx(4 / 0.003)               # batch / p50 (s)
    assert stats.gflops_per_s == pytest.approx(4 * 1e6 / 0.003 / 1e9)
    assert stats.peak_fraction == pytest.approx(stats.gflops_per_s / 10.0)
    unknown = summarize([1.0], backend="torch", device="cpu", batch_size=1, threads=1, flops=None, peak_gflops=10.0)
    assert unknown.gflops_per_s is None and unknown.peak_fraction is None and unknown.std_ms == 0.0
    assert set(stats.to_dict()) >= {"backend", "device", "batch_size", "threads", "p50_ms", "p99_ms", "throughput"}


def test_throughput_and_gflops_follow_the_p50_not_one_stall() -> None:
    """Probe 105: p50 0.0166 ms but 14,004 images/s — from a mean that one stall of a shared machine made 0.0714 ms.
    Bench, prune and quantize all summarise here: one definition, the p50's."""
    times = [0.0166] * 99 + [5.0]   # one stall of 5 ms in 100 runs
    stats = summarize(times, backend="onnxruntime", device="cpu", batch_size=1, threads=1, flops=833_040,
                      peak_gflops=None)
    assert stats.p50_ms == pytest.approx(0.0166) and stats.mean_ms == pytest.approx(0.0664, rel=1e-3)
    assert stats.throughput == pytest.approx(1 / 0.0166e-3)          # 60,241 images/s, not 15,060
    assert stats.gflops_per_s == pytest.approx(833_040 / 0.0166e-3 / 1e9)


def test_bad_plans_and_batch_sizes_are_user_errors(tmp_path: Path, lively_model) -> None:
    with pytest.raises(CnnlabError, match="min_iters"):
        TimingPlan(warmup=0, min_iters=0, min_seconds=0)
    with pytest.raises(CnnlabError, match="batch size 0"):
        time_torch(lively_model("lenet5", 16), 0, image_size=16, threads=1)


def test_onnx_and_torch_timers(tmp_path: Path, lively_model) -> None:
    model = lively_model("lenet5", 16)
    path = export_onnx(model, tmp_path / "m.onnx", spec=InputSpec(16), classes=list("abcd"))
    before = torch.get_num_threads()
    onnx_stats = time_onnx(path, 3, threads=1, flops=1000, **QUICK)
    torch_stats = time_torch(model, 3, image_size=16, threads=1, flops=1000, **QUICK)
    for stats, backend in ((onnx_stats, "onnxruntime"), (torch_stats, "torch")):
        assert stats.backend == backend and stats.batch_size == 3 and stats.threads == 1 and stats.device == "cpu"
        assert stats.iterations >= 3 and 0 < stats.min_ms <= stats.p50_ms <= stats.p99_ms
        assert stats.gflops_per_s == pytest.approx(3 * 1000 / (stats.p50_ms / 1e3) / 1e9)
    assert torch.get_num_threads() == before  # the timer restores the thread setting
    assert not model.training and next(model.parameters()).device.type == "cpu"


def test_an_onnx_file_with_a_symbolic_image_dim_cannot_be_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="images", shape=["batch", 3, "h", 16])],
                              get_outputs=lambda: [SimpleNamespace(name="logits", shape=["batch", 4])])
    monkeypatch.setattr(bench, "onnx_session", lambda *_, **__: session)
    with pytest.raises(CnnlabError, match=re.escape("m.onnx has a symbolic image shape [3, 'h', 16]; cannot choose "
                                                    "an input size to time")):
        time_onnx(Path("m.onnx"), 2, threads=1, **QUICK)


@pytest.mark.slow
def test_torch_compile_timer(lively_model, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="torch.utils.cpp_extension"):
        stats = time_torch(lively_model("lenet5", 16), 2, image_size=16, threads=1, compile=True, **QUICK)
        level = logging.getLogger("torch.utils.cpp_extension").level
    assert stats.backend == "torch_compile" and stats.iterations >= 3
    # inductor's "No CUDA runtime is found, using CUDA_HOME=..." on a CPU-only machine: noise amid the bench's lines
    assert not [r for r in caplog.records if "CUDA_HOME" in r.getMessage()]
    assert level == logging.WARNING  # the logger's level is given back after the compiled run


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_torch_timer_uses_events(lively_model, monkeypatch: pytest.MonkeyPatch) -> None:
    used = []
    original = bench.cuda_event_clock
    monkeypatch.setattr(bench, "cuda_event_clock", lambda step: used.append(1) or original(step))
    stats = time_torch(lively_model("resnet18", 32), 4, image_size=32, threads=1, device="cuda", **QUICK)
    assert stats.device == "cuda" and stats.iterations >= 3 and len(used) == stats.iterations + QUICK["plan"].warmup


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_cuda_torch_timer_without_a_gpu_is_a_user_error(lively_model) -> None:
    with pytest.raises(CnnlabError, match="no CUDA GPU"):
        time_torch(lively_model("lenet5", 16), 1, image_size=16, threads=1, device="cuda", **QUICK)


def test_a_paired_session_interleaves_keeps_the_median_round_and_flags_unstable_ratios(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.deploy import paired

    # Round r times A at 10, 10, 30 ms and B at 5, 5, 5 ms: A/B ratios 2, 2, 6 — the median round says 2, and the
    # rounds disagree by far more than the stability threshold.
    p50s = {"a.onnx": iter([10.0, 10.0, 30.0]), "b.onnx": iter([5.0, 5.0, 5.0])}
    order: list[str] = []

    def fake_time_onnx(path, batch, *, threads, **_):  # type: ignore[no-untyped-def]
        order.append(Path(path).name)
        stats = summarize([next(p50s[Path(path).name])], backend="onnxruntime", device="cpu", batch_size=batch,
                          threads=threads, flops=None, peak_gflops=None)
        return stats

    monkeypatch.setattr(bench, "time_onnx", fake_time_onnx)
    settings = paired.PairedSettings(threads=2, rounds=3, plan=QUICK["plan"])
    result = paired.time_paired({"A": Path("a.onnx"), "B": Path("b.onnx")}, settings)
    assert order == ["a.onnx", "b.onnx"] * 3  # A, B, A, B, A, B: the machine's drift hits both alike
    assert result["A"].stats[1].p50_ms == 10.0 and result["A"].p50_per_round[1] == (10.0, 10.0, 30.0)
    assert result.ratios("A", "B", 1) == (2.0, 2.0, 6.0) and result.speedup("A", "B", 1) == 2.0
    assert not result.stable("A", "B", 1) and paired.spread([2.0, 2.0, 6.0]) == 2.0
    assert result["B"].to_dict()["1"]["p50_ms_per_round"] == [5.0, 5.0, 5.0]


def test_one_default_thread_count_for_every_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench, prune and quantize time at the same threads unless told otherwise: the physical cores."""
    from omegaconf import OmegaConf

    from cnnlab.compress.pruning import PruneSettings
    from cnnlab.compress.quantization.settings import QuantizeSettings
    from cnnlab.deploy import paired
    from cnnlab.deploy.bench_settings import BenchSettings

    monkeypatch.setattr(paired, "physical_cores", lambda: 3)
    monkeypatch.delenv("CNNLAB_PARALLEL_JOBS", raising=False)  # one job on the machine (conftest.py sets the suite's 2)
    conf = Path(__file__).parents[2] / "cnnlab" / "conf" / "command"
    sections = {name: OmegaConf.load(conf / f"{name}.yaml")[name] for name in ("bench", "prune", "quantize")}
    assert paired.PairedSettings().threads == 3
    assert BenchSettings.from_config(sections["bench"]).threads == 3
    assert PruneSettings.from_config(sections["prune"]).bench_threads == 3
    assert QuantizeSettings.from_config(sections["quantize"]).timing.threads == 3
    with pytest.raises(CnnlabError, match="must be at least 1"):
        paired.PairedSettings(batch_sizes=(0,))


@pytest.mark.parametrize("said", [
    "[ONNXRuntimeError] : 1 : FAIL : BFCArena::AllocateRawInternal(...) Failed to allocate memory for requested "
    "buffer of size 6553600000",
    "[CPU] Convolution node with name 'conv' Check 'ptr' failed at src/plugins/intel_cpu/src/cpu_memory.cpp:257:\n"
    "Failed to allocate 2457600000 bytes of memory",  # OpenVINO: the allocation past its first line
])
def test_a_runtime_out_of_memory_at_a_batch_says_so_with_a_fix(lenet_onnx_once, monkeypatch: pytest.MonkeyPatch,
                                                               said: str) -> None:
    """Probe 137: onnxruntime's arena and OpenVINO's allocator failing at batch 100,000 read as "cannot run" with
    no fix (OpenVINO's reason cut at `cpu_memory.cpp:257:`)."""
    def no_memory(step, plan):  # type: ignore[no-untyped-def]
        raise RuntimeError(said)

    monkeypatch.setattr(bench, "measure", no_memory)
    with pytest.raises(CnnlabError) as caught:
        time_onnx(lenet_onnx_once[1], 4, threads=1)
    assert caught.value.message.startswith("onnxruntime ran out of memory at batch 4 (")
    assert caught.value.fix == "time a smaller batch, or free memory for it"
