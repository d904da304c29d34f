"""Measured latency and its cache (cnnlab/search/latency.py), and the search settings (search/settings.py)."""

from __future__ import annotations

import sys

from pathlib import Path

import pytest

from cnnlab.data.spec import InputSpec
from cnnlab.deploy.bench import TimingPlan
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.search import latency as latency_module
from cnnlab.search.latency import LatencyCache, Timed, cached_latency, check_runtime
from cnnlab.search.settings import LatencySettings, SearchSettings

FAST = LatencySettings(threads=1, rounds=2, plan=TimingPlan(warmup=1, min_iters=3, min_seconds=0.0))
ARCH = "w0.5_stem8s2_k3e1c8n1s1_k3e3c16n1s2_head32"


def test_a_candidate_is_timed_once_per_setting_and_the_cache_survives(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = LatencyCache(tmp_path / "latency.json")
    model = create_model("searched", 3, 16, arch=ARCH)
    spec = InputSpec(16, (0.5,) * 3, (0.25,) * 3)
    first = cached_latency(cache, FAST, "a@16px", model, spec, ["a", "b", "c"])
    assert first.p50_ms > 0 and len(first.p50_ms_per_round) == 2 and not first.cached
    assert not list(tmp_path.glob(".latency-*"))  # the temporary ONNX file is gone

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(latency_module, "measure", no_timing)
    again = cached_latency(LatencyCache(tmp_path / "latency.json"), FAST, "a@16px", model, spec, ["a", "b", "c"])
    assert again == Timed(first.p50_ms, first.p50_ms_per_round, cached=True)
    with pytest.raises(AssertionError):  # another thread count is another setting
        cached_latency(cache, LatencySettings(threads=2), "a@16px", model, spec, ["a", "b", "c"])


def test_a_runtime_that_is_not_installed_is_one_line_with_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError: not installed
    with pytest.raises(CnnlabError) as caught:
        check_runtime(LatencySettings(runtime="openvino"))
    assert "openvino package is not importable" in caught.value.one_line() and "cnnlab[openvino]" in caught.value.fix


BASE = {"trials": 4, "max_latency_ms": None, "max_params": None, "proxy_epochs": 3, "proxy_train_fraction": 0.5,
        "population": 4, "eta": 3, "min_rung_trials": 2, "train_infeasible": False,
        "latency": {"runtime": "onnxruntime", "threads": 1}}


def test_settings_and_constraints() -> None:
    settings = SearchSettings.from_config({**BASE, "max_latency_ms": 2.0, "max_params": 1_000_000})
    assert settings.constrained and settings.latency.threads == 1 and settings.latency.key == "onnxruntime/cpu/1t/b1"
    assert settings.violations(2.5, 500_000) == {"latency_ms": 0.5, "params_m": -0.5}
    assert not SearchSettings.from_config(BASE).constrained and SearchSettings.from_config(BASE).violations(9, 9) == {}


@pytest.mark.parametrize("change, key", [
    ({"trials": 0}, "search.trials=0"), ({"proxy_train_fraction": 0}, "search.proxy_train_fraction=0"),
    ({"max_latency_ms": 0}, "search.max_latency_ms"), ({"max_params": -1}, "search.max_params=-1"),
    ({"latency": {"runtime": "tflite"}}, "search.latency.runtime=tflite"),
    ({"latency": {"batch_size": 0}}, "search.latency.batch_size=0"),
])
def test_bad_settings_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(CnnlabError) as caught:
        SearchSettings.from_config({**BASE, **change})
    assert key in caught.value.one_line() and caught.value.fix


def _stats(p50: float):  # type: ignore[no-untyped-def]
    from cnnlab.deploy.bench import LatencyStats

    return LatencyStats(backend="onnxruntime", device="cpu", threads=1, batch_size=1, iterations=3, mean_ms=p50,
                        p50_ms=p50, p90_ms=p50, p99_ms=p50, std_ms=0.0, min_ms=p50, throughput=1e3 / p50,
                        gflops_per_s=None, peak_fraction=None)


def test_a_reference_timed_beside_the_candidate_gives_a_speedup_the_machines_drift_cannot_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine slows 3x between rounds (turbo off, a neighbour's job): the candidate's own p50 moves with it,
    but the per-round ratio to the reference timed in the same round stays the true 2x."""
    from cnnlab.deploy import bench
    from cnnlab.search.latency import export_reference, measure

    slowdown = iter([1.0, 1.0, 3.0, 3.0, 1.5, 1.65])  # round by round, reference then candidate

    def fake_time_onnx(path: Path, batch: int, **kwargs):  # type: ignore[no-untyped-def]
        true_ms = 4.0 if path.name == "reference.onnx" else 2.0
        return _stats(true_ms * next(slowdown))

    monkeypatch.setattr(bench, "time_onnx", fake_time_onnx)
    spec = InputSpec(16, (0.5,) * 3, (0.25,) * 3)
    reference = export_reference(create_model("searched", 3, 16, arch=ARCH), "searched", spec, ["a", "b", "c"],
                                 tmp_path / "reference.onnx")
    assert reference.key == "searched@16px" and reference.path.is_file()
    settings = LatencySettings(threads=1, rounds=3, plan=FAST.plan)
    timed = measure(create_model("searched", 3, 16, arch=ARCH), spec, ["a", "b", "c"], settings, folder=tmp_path,
                    reference=reference)
    assert timed.speedup == pytest.approx(2.0) and timed.relative == pytest.approx(0.5)
    assert timed.p50_ms_per_round == pytest.approx((2.0, 6.0, 3.3)) and timed.reference_ms == 6.0  # median round's
    assert timed.speedup_per_round == pytest.approx((2.0, 2.0, 2.0 / 1.1))  # kept: the noise a limit leaves room for

    cache = LatencyCache(tmp_path / "latency.json")
    cache.put("onnxruntime/cpu/1t/b1 vs searched@16px", "a@16px", timed)
    again = LatencyCache(tmp_path / "latency.json").get("onnxruntime/cpu/1t/b1 vs searched@16px", "a@16px")
    assert again is not None and again.speedup == timed.speedup and again.reference_ms == 6.0 and again.cached
    assert again.speedup_per_round == timed.speedup_per_round


@pytest.mark.parametrize("rounds, room", [((), 0.08), ((1.0,), 0.08), ((0.99, 1.0, 1.01), 0.08),
                                          ((0.9, 1.0, 1.2), 0.3)])
def test_the_noise_room_of_a_timing_is_its_rounds_spread_at_least_the_documented_noise(rounds: tuple,
                                                                                      room: float) -> None:
    from cnnlab.search.latency import LATENCY_NOISE, TIMING_NOISE, noise_room

    assert TIMING_NOISE == 0.08  # docs/search.md: repeated paired speed-ups of one network, ± 8 % between sessions
    assert noise_room(rounds) == pytest.approx(room)
    assert noise_room(rounds, LATENCY_NOISE) == pytest.approx(max(room, 0.35))  # a p50 in ms drifts more


def test_timings_against_a_reference_are_cached_apart_from_plain_ones(tmp_path: Path) -> None:
    from cnnlab.search.latency import Reference, setting_key

    reference = Reference("mobilenet_v2", tmp_path / "reference.onnx", 28)
    assert setting_key(FAST, None) == FAST.key
    assert setting_key(FAST, reference) == f"{FAST.key} vs mobilenet_v2@28px" != setting_key(FAST, None)


def test_a_speedup_constraint_against_a_reference() -> None:
    settings = SearchSettings.from_config({**BASE, "reference": "MobileNet", "min_speedup": 1.5})
    assert settings.reference == "mobilenet_v2" and settings.constrained  # aliases resolve to the zoo name
    assert settings.violations(1.0, 10, speedup=1.2) == {"speedup": pytest.approx(0.3)}
    assert settings.violations(1.0, 10, speedup=1.8)["speedup"] < 0
    assert settings.describe()["reference"] == "mobilenet_v2" and settings.describe()["min_speedup"] == 1.5
    only_reference = SearchSettings.from_config({**BASE, "reference": "resnet18"})
    assert only_reference.reference == "resnet18" and not only_reference.constrained


@pytest.mark.parametrize("change, message, fix", [
    ({"min_speedup": 1.5}, "search.min_speedup needs search.reference", "search.reference=mobilenet_v2"),
    ({"reference": "mobilenet_v2", "min_speedup": 0}, "search.min_speedup=0 is not allowed: it takes null or a "
     "number > 0", "search.min_speedup=1.5, or null"),
    ({"reference": "mobilenet_v2", "min_speedup": -1}, "number > 0", "search.min_speedup=1.5"),
    ({"reference": "mobilenet_v2", "min_speedup": "abc"}, "search.min_speedup=abc", "search.min_speedup=1.5"),
    ({"reference": "mobilenet_v2", "min_speedup": float("inf")}, "search.min_speedup=inf", "search.min_speedup=1.5"),
    ({"max_latency_ms": -1.0}, "search.max_latency_ms=-1.0 is not allowed", "search.max_latency_ms=2, or null"),
    ({"reference": "searched"}, "search.reference=searched names no architecture", "search.reference=mobilenet_v2"),
    ({"reference": "mobilnet_v2"}, "unknown search.reference 'mobilnet_v2'",
     "did you mean search.reference=mobilenet_v2"),
])
def test_bad_reference_settings_are_one_line(change: dict, message: str, fix: str) -> None:
    with pytest.raises(CnnlabError) as caught:
        SearchSettings.from_config({**BASE, **change})
    assert message in caught.value.one_line() and fix in caught.value.fix


@pytest.mark.parametrize("runtime, device, named", [("tensorrt", "cpu", "use search.latency.device=cuda"),
                                                    ("openvino", "cuda", "use search.latency.device=cpu")])
def test_a_runtime_on_the_wrong_device_names_the_search_setting(runtime: str, device: str, named: str) -> None:
    """The search said `use --device cuda` (bench's flag), which `cnnlab search` does not take."""
    from cnnlab.search.latency import check_runtime

    with pytest.raises(CnnlabError) as error:
        check_runtime(LatencySettings(runtime=runtime, device=device))
    assert error.value.fix == named
