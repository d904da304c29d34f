"""`cnnlab bench`'s settings, typed once from the `bench:` config section (cnnlab/conf/command/bench.yaml, the keys
its errors name), and where a benchmark times (`bench_device`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from cnnlab.deploy.bench import MIN_ITERS, MIN_SECONDS, WARMUP, TimingPlan
from cnnlab.deploy.names import BACKENDS, ONNX_BACKENDS, TORCH_BACKENDS  # noqa: F401 - re-exported
from cnnlab.deploy.paired import PairedSettings, default_threads
from cnnlab.engine.runtime import resolve_device
from cnnlab.errors import CnnlabError



@dataclass(frozen=True)
class BenchSettings:
    """The `bench:` section, checked: backends (None: the device's defaults), whether to add torch.compile, batch
    sizes (each >= 1), intra-op threads (>= 1; null: one per physical core), the timing plan of each
    measurement, the device's FP32 peak in GFLOP/s when the user knows it, and the interleaved rounds of a paired
    session (>= 1). Raises CnnlabError naming the key for a value out of range, an empty bench.backends or a
    batch size listed twice."""

    backends: tuple[str, ...] | None      # None: the defaults for the device
    compile: bool
    batch_sizes: tuple[int, ...]
    threads: int
    plan: TimingPlan
    peak_gflops: float | None
    rounds: int                           # interleaved rounds of a paired session (source=[A,B,...])

    @classmethod
    def from_config(cls, section: DictConfig, key: str = "bench") -> "BenchSettings":
        """`section` checked; `key` is where the user set it (`bench`, or `pipeline.bench` for a pipeline's bench
        stage), so each error names a setting that, typed, fixes it."""
        backends = section.get("backends")
        # `auto` (the device's defaults) is offered where the command line takes it: pipeline.bench.backends is a list
        auto = f" (or {key}.backends=auto for the device's defaults)" if key == "bench" else ""
        if backends is not None and str(backends) != "auto":
            backends = tuple(str(b) for b in (backends if isinstance(backends, (list, ListConfig)) else [backends]))
            if not backends:
                raise CnnlabError(f"{key}.backends is empty: it names no backend to time",
                                  fix=f"name at least one, e.g. {key}.backends=[onnxruntime]{auto}")
            unknown = [b for b in backends if b not in BACKENDS]
            if unknown:
                raise CnnlabError(f"unknown backend {', '.join(unknown)} in {key}.backends",
                                  fix=f"choose from {', '.join(BACKENDS)}{auto}")
            _refuse_repeats(f"{key}.backends", list(backends), "backend")
        else:
            backends = None
        sizes = section.get("batch_sizes")
        sizes = list(sizes) if isinstance(sizes, (list, ListConfig)) else [sizes]
        bad = [s for s in sizes if not isinstance(s, int) or isinstance(s, bool) or s < 1]
        if bad or not sizes:
            raise CnnlabError(f"{key}.batch_sizes={sizes}: every batch size must be an integer of at least 1",
                              fix=f"use e.g. {key}.batch_sizes=[1,8,32]")
        _refuse_repeats(f"{key}.batch_sizes", sizes, "batch size")
        threads = section.get("threads")
        threads = default_threads() if threads is None else int(threads)
        if threads < 1:
            raise CnnlabError(f"{key}.threads={threads} must be at least 1 (or null for one per physical core)",
                              fix=f"use {key}.threads=null")
        peak = section.get("peak_gflops")
        rounds = int(section.get("rounds", 3))
        if rounds < 1:
            raise CnnlabError(f"{key}.rounds={rounds} must be at least 1", fix=f"use {key}.rounds=3")
        plan = {"warmup": (WARMUP, 0), "min_iters": (MIN_ITERS, 1), "min_seconds": (MIN_SECONDS, 0)}
        for name, (default, least) in plan.items():
            value = section.get(name, default)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < least:
                raise CnnlabError(f"{key}.{name}={value} must be a number of at least {least}",
                                  fix=f"use {key}.{name}={default}")
        return cls(backends=backends, compile=bool(section.get("compile", False)), batch_sizes=tuple(sizes),
                   threads=threads, plan=TimingPlan(int(section.get("warmup", WARMUP)),
                                                     int(section.get("min_iters", MIN_ITERS)),
                                                     float(section.get("min_seconds", MIN_SECONDS))),
                   peak_gflops=float(peak) if peak is not None else None, rounds=rounds)

    def requested(self, device_kind: str) -> list[str]:
        """The backends to try on `device_kind` (cpu | cuda), in order: the ones asked for, else torch and
        onnxruntime (+ tensorrt on CUDA); torch_compile right after torch with bench.compile=true."""
        backends = list(self.backends or (["torch", "onnxruntime"] + (["tensorrt"] if device_kind == "cuda" else [])))
        if self.compile and "torch_compile" not in backends:
            backends.insert(backends.index("torch") + 1 if "torch" in backends else 0, "torch_compile")
        return backends

    def describe(self, device: str, backends: tuple[str, ...]) -> dict[str, Any]:
        """bench.json's (and run.json's) `bench` settings: device, the backends timed, batch sizes, threads and the
        timing plan (warmup, min_iters, min_seconds)."""
        return {"device": device, "backends": list(backends), "batch_sizes": list(self.batch_sizes),
                "threads": self.threads, **asdict(self.plan)}

    def paired(self, runtime: str, device: str) -> PairedSettings:
        """The paired session of source=[A,B,...] on one ONNX `runtime` at `device` (cpu | cuda[:N])."""
        return PairedSettings(batch_sizes=self.batch_sizes, threads=self.threads, rounds=self.rounds, plan=self.plan,
                              runtime=runtime, device=device, peak_gflops=self.peak_gflops)


def bench_device(spec: str | None) -> torch.device:
    """Where to time. `auto` means the CPU here, unlike training: a GPU in the machine that trains says nothing
    about the one that will serve the model, and timing it silently would make runs on different machines
    incomparable. The GPU is one flag away: --device cuda. Raises CnnlabError for CUDA asked for but absent."""
    return torch.device("cpu") if str(spec or "auto").lower() == "auto" else resolve_device(spec)


def device_name(device: torch.device) -> str:
    """How bench.json names a device: cpu, or cuda:N."""
    return "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"


def _refuse_repeats(key: str, values: list, what: str) -> None:
    """CnnlabError when `values` (the list `key` gives) names one `what` twice: it would be timed twice, into two
    records with different numbers. The fix is the list with each once, in its order."""
    repeated = [str(v) for v in dict.fromkeys(v for v in values if values.count(v) > 1)]
    if repeated:
        once = ",".join(str(v) for v in dict.fromkeys(values))
        raise CnnlabError(f"{key}=[{','.join(map(str, values))}] lists {what} {', '.join(repeated)} more than once "
                          f"(each {what} is timed once)", fix=f"use {key}=[{once}]")

