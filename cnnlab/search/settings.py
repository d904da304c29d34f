"""`cnnlab search`'s settings, typed once from the `search:` config section (conf/command/search.yaml, whose keys
the errors name)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from cnnlab.deploy.bench import TimingPlan
from cnnlab.deploy.ort import ONNX_RUNTIMES
from cnnlab.deploy.paired import PairedSettings, threads_or_default
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class LatencySettings:
    """How every candidate is timed: onnxruntime-based `runtime` on `device`, `threads`, batch size, interleaved
    rounds and the per-round plan — the same harness and knobs as `cnnlab bench`."""

    runtime: str = "onnxruntime"
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    rounds: int = 3
    plan: TimingPlan = field(default_factory=TimingPlan)

    def paired(self) -> PairedSettings:
        return PairedSettings(batch_sizes=(self.batch_size,), threads=self.threads, rounds=self.rounds,
                              plan=self.plan, runtime=self.runtime, device=self.device)

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "device": self.device, "threads": self.threads,
                "batch_size": self.batch_size, "rounds": self.rounds, "warmup": self.plan.warmup,
                "min_iters": self.plan.min_iters, "min_seconds": self.plan.min_seconds}

    @property
    def key(self) -> str:
        """What makes two latencies comparable (the cache keeps one setting's figures)."""
        return f"{self.runtime}/{self.device}/{self.threads}t/b{self.batch_size}"


@dataclass(frozen=True)
class SearchSettings:
    """The `search:` section, checked: trial budget, constraints (None: none), the proxy training, the
    successive-halving rule (eta, min_rung_trials), NSGA-II's population and the latency measurement.

    `reference` (a zoo model name, None: none) is timed beside every candidate in the same interleaved rounds;
    `min_speedup` constrains the ratio reference p50 ÷ candidate p50, which the machine's drift between trials
    cannot move the way it moves an absolute budget (search.max_latency_ms)."""

    trials: int
    max_latency_ms: float | None
    max_params: int | None
    proxy_epochs: int
    proxy_train_fraction: float
    population: int
    eta: int
    min_rung_trials: int
    train_infeasible: bool
    latency: LatencySettings
    reference: str | None = None
    min_speedup: float | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "SearchSettings":
        """Raises CnnlabError, naming the key, for a value out of range or a runtime cnnlab does not know."""
        def number(key: str, low: float, *, whole: bool = False, optional: bool = False,
                   example: float | None = None) -> Any:
            """A finite number >= low (> low with an `example`: the value the fix suggests)."""
            value = section.get(key)
            if value is None and optional:
                return None
            above = example is not None
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and (value > low if above else value >= low)
            if not ok or (whole and value != int(value)):
                kind = "an integer" if whole else "a number"
                suggest = example if above else (int(low) if whole else low)
                raise CnnlabError(f"search.{key}={value} is not allowed: it takes {'null or ' if optional else ''}"
                                  f"{kind} {'>' if above else '>='} {low:g}",
                                  fix=f"set e.g. search.{key}={suggest:g}" + (", or null" if optional else ""))
            return int(value) if whole else float(value)

        fraction = number("proxy_train_fraction", 0.0)
        if not 0 < fraction <= 1:
            raise CnnlabError(f"search.proxy_train_fraction={fraction:g} must be in (0, 1]",
                              fix="set e.g. search.proxy_train_fraction=0.25")
        latency = dict(section.get("latency") or {})
        runtime = str(latency.get("runtime", "onnxruntime"))
        if runtime not in ONNX_RUNTIMES:
            raise CnnlabError(f"search.latency.runtime={runtime} is not a runtime cnnlab times",
                              fix=f"use one of {', '.join(ONNX_RUNTIMES)}")
        timing = cls._latency(latency, runtime)
        max_latency = number("max_latency_ms", 0.0, optional=True, example=2.0)
        reference, min_speedup = cls._reference(section.get("reference"),
                                                number("min_speedup", 0.0, optional=True, example=1.5))
        return cls(trials=number("trials", 1, whole=True), max_latency_ms=max_latency,
                   max_params=number("max_params", 1, whole=True, optional=True),
                   proxy_epochs=number("proxy_epochs", 1, whole=True), proxy_train_fraction=fraction,
                   population=number("population", 2, whole=True), eta=number("eta", 2, whole=True),
                   min_rung_trials=number("min_rung_trials", 1, whole=True),
                   train_infeasible=bool(section.get("train_infeasible", False)), latency=timing,
                   reference=reference, min_speedup=min_speedup)

    @staticmethod
    def _reference(name: Any, min_speedup: float | None) -> tuple[str | None, float | None]:
        """The reference's registry name (None: none) and the speed-up asked of candidates against it."""
        if name in (None, "", "none", "null"):
            if min_speedup is not None:
                raise CnnlabError("search.min_speedup needs search.reference: the model the speed-up is measured "
                                  "against", fix="add e.g. search.reference=mobilenet_v2")
            return None, None
        from cnnlab.models import canonical_name

        # `searched` is refused below with its reason, so an unknown name is not offered it
        name = canonical_name(str(name), role="search.reference", refused=("searched",))
        if name == "searched":  # without an architecture string it is only MobileNetV2 under another name
            raise CnnlabError("search.reference=searched names no architecture: the reference is a zoo model",
                              fix="use e.g. search.reference=mobilenet_v2 (or mobilenet_v3_small, resnet18, lenet5)")
        return name, min_speedup

    @staticmethod
    def _latency(section: Mapping[str, Any], runtime: str) -> LatencySettings:
        def whole(key: str, low: int, default: int | None) -> int | None:
            value = section.get(key, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise CnnlabError(f"search.latency.{key}={value} must be an integer >= {low}",
                                  fix=f"set e.g. search.latency.{key}={max(low, 1)}")
            return value

        seconds = section.get("min_seconds", 0.3)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise CnnlabError(f"search.latency.min_seconds={seconds} must be a number >= 0",
                              fix="set e.g. search.latency.min_seconds=0.3")
        plan = TimingPlan(whole("warmup", 0, 5) or 0, whole("min_iters", 1, 30) or 1, float(seconds))
        return LatencySettings(runtime=runtime, device=str(section.get("device", "cpu")),
                               threads=threads_or_default(whole("threads", 1, None)),
                               batch_size=whole("batch_size", 1, 1) or 1, rounds=whole("rounds", 1, 3) or 1, plan=plan)

    @property
    def constrained(self) -> bool:
        return self.max_latency_ms is not None or self.max_params is not None or self.min_speedup is not None

    def violations(self, latency_ms: float, params: int, speedup: float | None = None) -> dict[str, float]:
        """Optuna's constraint values (<= 0: met): latency over its budget (ms), parameters over theirs (in
        millions), speed-up under search.min_speedup — only the constraints that are set."""
        values = {}
        if self.max_latency_ms is not None:
            values["latency_ms"] = latency_ms - self.max_latency_ms
        if self.max_params is not None:
            values["params_m"] = (params - self.max_params) / 1e6
        if self.min_speedup is not None:
            values["speedup"] = self.min_speedup - (speedup if speedup is not None else 0.0)
        return values

    def describe(self) -> dict[str, Any]:
        return {"trials": self.trials, "max_latency_ms": self.max_latency_ms, "max_params": self.max_params,
                "proxy_epochs": self.proxy_epochs, "proxy_train_fraction": self.proxy_train_fraction,
                "population": self.population, "eta": self.eta, "min_rung_trials": self.min_rung_trials,
                "train_infeasible": self.train_infeasible, "reference": self.reference,
                "min_speedup": self.min_speedup, "latency": self.latency.describe()}
