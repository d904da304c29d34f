"""The FP32 peak estimates behind bench's `% peak`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.deploy import peak


@pytest.fixture
def fake_cpu(monkeypatch: pytest.MonkeyPatch):
    def install(flags: list[str], clock: float | None, cores: int) -> None:
        info = {"model": "Test CPU", "arch": "x86_64", "logical_cores": cores, "usable_cores": cores, "flags": flags}
        monkeypatch.setattr(peak, "cpu_info", lambda: info)
        monkeypatch.setattr(peak, "cpu_clock_ghz", lambda: (clock, "test"))
        monkeypatch.setattr(peak, "physical_cores", lambda: cores)

    return install


def test_cpu_peak_is_cores_lanes_fma_units_and_clock(fake_cpu) -> None:
    fake_cpu(["avx2", "avx512f", "fma"], 2.0, cores=8)
    estimate = peak.cpu_peak(threads=4)  # the threads' cores, not the machine's
    assert estimate.gflops == pytest.approx(4 * 16 * 2 * 2 * 2.0)
    assert "AVX-512" in estimate.basis and "4 cores" in estimate.basis
    assert peak.cpu_peak(threads=64).gflops == pytest.approx(8 * 16 * 2 * 2 * 2.0)  # capped at physical cores


def test_cpu_peak_without_avx512_or_clock(fake_cpu) -> None:
    fake_cpu(["avx2", "fma"], 3.0, cores=2)
    assert peak.cpu_peak(threads=2).gflops == pytest.approx(2 * 8 * 2 * 2 * 3.0)
    fake_cpu(["avx2", "fma"], None, cores=2)
    unknown = peak.cpu_peak(threads=2)
    assert unknown.gflops is None and "bench.peak_gflops" in unknown.basis


def test_override_wins(fake_cpu) -> None:
    fake_cpu(["avx2", "fma"], 3.0, cores=2)
    assert peak.peak_estimate("cuda:0", 2, override=123.0).to_dict() == {"gflops": 123.0, "basis": "bench.peak_gflops"}
    # probe 170: on a CPU the figure is that of the cores the threads occupy, and the record says so
    for threads, cores in ((1, "1 core"), (5, "2 cores")):
        assert peak.peak_estimate("cpu", threads, override=123.0).to_dict() == {
            "gflops": 123.0, "basis": f"bench.peak_gflops, given for the {cores} the run's threads occupy"}


def test_cuda_peak_from_device_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    h100 = SimpleNamespace(name="NVIDIA H100", major=9, minor=0, multi_processor_count=132, clock_rate=1_980_000)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: h100)
    assert peak.cuda_peak(0).gflops == pytest.approx(132 * 128 * 2 * 1.98, rel=1e-3)  # ~67 TFLOP/s, the data sheet's
    future = SimpleNamespace(name="Future GPU", major=99, minor=0, multi_processor_count=1, clock_rate=1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: future)
    assert peak.cuda_peak(0).gflops is None


def _cpuinfo(*cpus: tuple[int, int, int]) -> str:
    """A /proc/cpuinfo text with one block per (processor, physical id, core id)."""
    return "\n\n".join(f"processor\t: {p}\nphysical id\t: {s}\ncore id\t\t: {c}\ncpu MHz\t\t: 2450.000"
                       for p, s, c in cpus) + "\n"


def test_hyper_threads_of_one_core_count_once() -> None:
    two_cores_four_threads = _cpuinfo((0, 0, 0), (1, 0, 1), (2, 0, 0), (3, 0, 1))
    assert peak.cores_from(two_cores_four_threads) == 2
    assert peak.cores_from(two_cores_four_threads, allowed={0, 2}) == 1  # both threads of core 0
    two_sockets = _cpuinfo((0, 0, 0), (1, 1, 0))
    assert peak.cores_from(two_sockets) == 2  # same core id on another socket is another core
    assert peak.cores_from("") == 0


def test_clock_prefers_cpufreq_then_model_name_then_cpuinfo() -> None:
    info = _cpuinfo((0, 0, 0))
    assert peak.clock_from("3700000\n", "AMD EPYC @ 2.10GHz", info) == (3.7, "cpufreq max")
    assert peak.clock_from(None, "Intel Xeon Gold 6338 CPU @ 2.00GHz", info) == (2.0, "model name")
    assert peak.clock_from("garbage", "AMD EPYC", info) == (2.45, "/proc/cpuinfo cpu MHz")
    assert peak.clock_from(None, "AMD EPYC", None) == (None, "no clock reported")


def test_zen4_runs_avx512_at_half_the_rate_of_two_full_fma_units() -> None:
    """Zen 4 (AMD family 25) executes a 512-bit FMA as two 256-bit halves: 32 FP32 FLOPs a cycle, not 64; Zen 5
    (family 26) has full 512-bit pipes. A "% peak" on Zen 4 read half of what it was."""
    flags = ["avx2", "avx512f", "fma"]
    zen4 = peak.fp32_peak(1, flags, (3.0, "test"), vendor="AuthenticAMD", family=25)
    zen5 = peak.fp32_peak(1, flags, (3.0, "test"), vendor="AuthenticAMD", family=26)
    assert zen4.gflops == pytest.approx(16 * 1 * 2 * 3.0) and "Zen 4" in zen4.basis
    assert zen5.gflops == pytest.approx(16 * 2 * 2 * 3.0)
    assert peak.fp32_peak(1, flags, (3.0, "test"), vendor="GenuineIntel", family=6).gflops == zen5.gflops


def test_a_base_clock_from_cpuinfo_says_that_percent_peak_can_pass_100() -> None:
    """Probe 78: an FP32 file read 106.8 % of peak on a VM whose only clock is /proc/cpuinfo's base `cpu MHz`."""
    estimate = peak.fp32_peak(1, ["avx2", "fma"], peak.clock_from(None, "AMD EPYC", _cpuinfo((0, 0, 0))))
    assert "base clock" in estimate.basis and "above 100 %" in estimate.basis
