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
