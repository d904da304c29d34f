"""`cnnlab bench [--device cpu|cuda] [source=RUN|PATH | source=[A,B,...] | model=NAME]`: latency per backend and
batch size.

`source=[A,B,...]` times several models in one session, interleaved round by round (A, B, ..., A, B, ...), so that
their ratios compare like with like on a machine whose speed drifts: the only latencies `cnnlab report` turns into
a speed-up (`paired` in run.json).

Settings mistakes (an unknown backend, a batch size < 1, CUDA asked for but absent, onnxruntime without its
CUDA provider on --device cuda, tensorrt on the CPU or openvino on CUDA) stop the run with one line. A backend
that cannot run in this environment (no PyTorch model in an ONNX source's chain, TensorRT or the OpenVINO
build of onnxruntime not installed, torch.compile failing) is skipped with the reason, which the table,
bench.json and run.json all show.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.bench import LatencyStats, TimingPlan, time_onnx, time_torch
from cnnlab.deploy.bench_report import bench_document, latency_table, paired_table, skipped_lines
from cnnlab.deploy.ort import ONNX_RUNTIMES, available_providers, check_runtime_device, execution_providers
from cnnlab.deploy.paired import PairedSettings, default_threads, time_paired
from cnnlab.deploy.peak import peak_estimate, physical_cores
from cnnlab.deploy.subject import TimedModel, exported_onnx, timed_model_of
from cnnlab.engine.runtime import resolve_device
from cnnlab.environment import cpu_info, fingerprint, gpu_info
from cnnlab.errors import CnnlabError
from cnnlab.fileio import write_json
from cnnlab.models import count_flops, count_params
from cnnlab.steps.sources import require_source
from cnnlab.steps.zoo_model import zoo_model
from cnnlab.runs import BENCH_FILE, resolve_source

TORCH_BACKENDS = ("torch", "torch_compile")
ONNX_BACKENDS = ONNX_RUNTIMES  # onnxruntime, tensorrt, openvino: onnxruntime sessions with that provider
BACKENDS = TORCH_BACKENDS + ONNX_BACKENDS


@dataclass(frozen=True)
class BenchSettings:
    backends: tuple[str, ...] | None      # None: the defaults for the device
    compile: bool
    batch_sizes: tuple[int, ...]
    threads: int
    plan: TimingPlan
    peak_gflops: float | None
    rounds: int                           # interleaved rounds of a paired session (source=[A,B,...])

    @classmethod
    def from_config(cls, section: DictConfig) -> "BenchSettings":
        backends = section.get("backends")
        if backends is not None and str(backends) != "auto":
            backends = tuple(str(b) for b in (backends if isinstance(backends, (list, ListConfig)) else [backends]))
            unknown = [b for b in backends if b not in BACKENDS]
            if unknown or not backends:
                raise CnnlabError(f"unknown backend {', '.join(unknown) or '(none)'} in bench.backends",
                                  fix=f"choose from {', '.join(BACKENDS)} (or bench.backends=auto)")
        else:
            backends = None
        sizes = section.get("batch_sizes")
        sizes = list(sizes) if isinstance(sizes, (list, ListConfig)) else [sizes]
        bad = [s for s in sizes if not isinstance(s, int) or isinstance(s, bool) or s < 1]
        if bad or not sizes:
            raise CnnlabError(f"bench.batch_sizes={sizes}: every batch size must be an integer of at least 1",
                              fix="use e.g. bench.batch_sizes=[1,8,32]")
        threads = section.get("threads")
        threads = default_threads() if threads is None else int(threads)
        if threads < 1:
            raise CnnlabError(f"bench.threads={threads} must be at least 1 (or null for one per physical core)")
        peak = section.get("peak_gflops")
        rounds = int(section.get("rounds", 3))
        if rounds < 1:
            raise CnnlabError(f"bench.rounds={rounds} must be at least 1", fix="use bench.rounds=3")
        return cls(backends=backends, compile=bool(section.get("compile", False)), batch_sizes=tuple(sizes),
                   threads=threads, plan=TimingPlan(int(section.warmup), int(section.min_iters),
                                                     float(section.min_seconds)),
                   peak_gflops=float(peak) if peak is not None else None, rounds=rounds)

    def requested(self, device_kind: str) -> list[str]:
        backends = list(self.backends or (["torch", "onnxruntime"] + (["tensorrt"] if device_kind == "cuda" else [])))
        if self.compile and "torch_compile" not in backends:
            backends.insert(backends.index("torch") + 1 if "torch" in backends else 0, "torch_compile")
        return backends


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings = BenchSettings.from_config(cfg.bench)
    device = bench_device(cfg.get("device"))
    device_name = "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}"
    backends, skipped = plan_backends(settings, device.type)
    if isinstance(cfg.get("source"), (list, ListConfig)):
        return run_paired(cfg, ctx, settings, device_name, backends, skipped)
    subject = bench_model(cfg, ctx)
    if subject.model is None:
        reason = "; ".join(subject.notes) or "no PyTorch model"
        skipped += [{"backend": b, "batch_size": None, "reason": reason} for b in backends if b in TORCH_BACKENDS]
        backends = [b for b in backends if b not in TORCH_BACKENDS]
    if not backends:
        raise CnnlabError(f"no backend can run: {'; '.join(skipped_lines({'skipped': skipped}))}",
                          fix="see `cnnlab bench --help` for bench.backends")
    peak = peak_estimate(device_name, settings.threads, settings.peak_gflops)
    ctx.log.info("bench %s at %d px on %s, %d threads: %s × batch %s", subject.name, subject.spec.size, device_name,
                 settings.threads, ", ".join(backends), list(settings.batch_sizes))

    with exported_onnx(subject, needed=any(b in ONNX_BACKENDS for b in backends)):
        records = []
        for backend in backends:
            records += time_backend(ctx, backend, subject, settings, device_name, peak.gflops, skipped)
        model_info = subject.describe()
    if not records:
        raise CnnlabError(f"every backend was skipped: {'; '.join(skipped_lines({'skipped': skipped}))}")

    document = bench_document(
        model=model_info, source=subject.source.describe() if subject.source else None,
        settings=_described(settings, device_name, backends), hardware=_hardware(peak.to_dict()),
        environment=fingerprint(), records=records, skipped=skipped)
    write_json(ctx.path(BENCH_FILE), document)
    ctx.record.add_artifact("bench", ctx.path(BENCH_FILE))
    ctx.record.update(model={k: v for k, v in model_info.items() if not k.endswith("_file")},
                      bench=document["settings"])
    if subject.source is not None and subject.source.run is not None:
        ctx.record.update(dataset=subject.source.run.data.get("dataset"))
    out.print(latency_table(document))
    for line in skipped_lines(document):
        out.print(line, markup=False, highlight=False)
    return {"latency": [_compact(r) for r in records], "skipped": skipped,
            "params": model_info["params"], "flops": model_info["flops"], "onnx_bytes": model_info["onnx_bytes"]}


def run_paired(cfg: DictConfig, ctx: RunContext, settings: BenchSettings, device: str, backends: list[str],
               skipped: list[dict[str, Any]]) -> dict[str, Any]:
    """source=[A,B,...]: every model's ONNX file timed in `bench.rounds` interleaved rounds per backend and batch
    size (cnnlab/deploy/paired.py, the one paired timing of prune, quantize and the report); per model the median
    round, and every round's p50 for the report's stability check."""
    subjects = paired_models(cfg, ctx)
    skipped += [{"backend": b, "batch_size": None, "reason": "a paired session times ONNX files only"}
                for b in backends if b in TORCH_BACKENDS]
    backends = [b for b in backends if b in ONNX_BACKENDS]
    if not backends:
        raise CnnlabError("a paired session (source=[A,B,...]) times ONNX files, and no ONNX backend is left",
                          fix="use bench.backends=[onnxruntime]")
    ctx.log.info("bench %d models in %d interleaved rounds on %s, %d threads: %s × batch %s", len(subjects),
                 settings.rounds, device, settings.threads, ", ".join(backends), list(settings.batch_sizes))
    records: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        files = {str(i): stack.enter_context(exported_onnx(s, needed=True)).onnx for i, s in enumerate(subjects)}
        for backend in backends:
            timing = PairedSettings(batch_sizes=settings.batch_sizes, threads=settings.threads, rounds=settings.rounds,
                                    plan=settings.plan, runtime=backend, device=device)
            try:
                timings = time_paired(files, timing, flops={str(i): s.flops for i, s in enumerate(subjects)})
            except CnnlabError as err:
                skipped.append({"backend": backend, "batch_size": None, "reason": err.one_line()})
                ctx.log.warning("skipped %s: %s", backend, err.one_line())
                continue
            records += [{**record_of(timings[str(i)].stats[batch], s.onnx if s.onnx_origin == "source" else None),
                         "subject": i, "p50_ms_per_round": list(timings[str(i)].p50_per_round[batch])}
                        for batch in settings.batch_sizes for i, s in enumerate(subjects)]
        described = [{"model": s.describe(), "source": s.source.describe() if s.source else None} for s in subjects]
    if not records:
        raise CnnlabError(f"every backend was skipped: {'; '.join(skipped_lines({'skipped': skipped}))}")
    document = bench_document(
        model=None, source=None, subjects=described,
        settings={**_described(settings, device, backends), "rounds": settings.rounds},
        hardware=_hardware(peak_estimate(device, settings.threads, settings.peak_gflops).to_dict()),
        environment=fingerprint(), records=records, skipped=skipped)
    write_json(ctx.path(BENCH_FILE), document)
    ctx.record.add_artifact("bench", ctx.path(BENCH_FILE))
    ctx.record.update(bench=document["settings"], paired={"rounds": settings.rounds, "subjects": [
        {"name": d["model"]["name"], "run": (d["source"] or {}).get("run"), "source": d["source"]} for d in described]})
    out.print(paired_table(document))
    for line in skipped_lines(document):
        out.print(line, markup=False, highlight=False)
    return {"latency": [{**_compact(r), "subject": r["subject"], "p50_ms_per_round": r["p50_ms_per_round"]}
                        for r in records], "skipped": skipped, "subjects": len(subjects)}


# ------------------------------------------------------------------------------------------------ subjects
def bench_model(cfg: DictConfig, ctx: RunContext) -> TimedModel:
    settings = cfg.bench
    if cfg.get("source") in (None, "", "null"):
        zoo = zoo_model(cfg, image_size=settings.get("image_size"), num_classes=settings.get("num_classes"))
        return TimedModel(name=zoo.name, spec=zoo.spec, num_classes=zoo.num_classes, model=zoo.model,
                          model_file=None, onnx=None, onnx_origin="exported for this benchmark",
                          params=count_params(zoo.model), flops=count_flops(zoo.model, zoo.spec.size))
    _check_source_only(cfg, ctx)
    return timed_model_of(require_source(cfg, ctx, want=("onnx", "checkpoint")))


def paired_models(cfg: DictConfig, ctx: RunContext) -> list[TimedModel]:
    """`source=[A,B,...]`: every source, for one interleaved session (their ONNX files; PyTorch models only where
    an ONNX file must be exported for the timing)."""
    _check_source_only(cfg, ctx)
    specs = [str(spec) for spec in cfg.source]
    if len(specs) < 2:
        raise CnnlabError(f"source={specs} lists {len(specs)} model(s); a paired session times two or more",
                          fix="pass source=[A,B,...], or source=A for one model")
    return [timed_model_of(resolve_source(spec, ctx.outputs, want=("onnx", "checkpoint")), torch_twin=False)
            for spec in specs]


def _check_source_only(cfg: DictConfig, ctx: RunContext) -> None:
    if ctx.explicitly_set("model", "model.name"):
        raise CnnlabError("bench takes either source=... or model=NAME, not both",
                          fix="drop model= to time the source, or source= to time a random model=NAME")
    if cfg.bench.get("image_size") is not None or cfg.bench.get("num_classes") is not None:
        raise CnnlabError("bench.image_size / bench.num_classes apply to model=NAME only; a source's input is fixed",
                          fix="drop them, or time a fresh model with model=NAME")


def _described(settings: BenchSettings, device: str, backends: list[str]) -> dict[str, Any]:
    return {"device": device, "backends": backends, "batch_sizes": list(settings.batch_sizes),
            "threads": settings.threads, **asdict(settings.plan)}


def _hardware(peak: dict[str, Any]) -> dict[str, Any]:
    return {"cpu": cpu_info(), "physical_cores": physical_cores(), "gpus": gpu_info(), "peak": peak,
            "onnxruntime_providers": available_providers()}


def bench_device(spec: str | None) -> torch.device:
    """Where to time. `auto` means the CPU here, unlike training: a GPU in the machine that trains says nothing
    about the one that will serve the model, and timing it silently would make runs on different machines
    incomparable. The GPU is one flag away: --device cuda."""
    return torch.device("cpu") if str(spec or "auto").lower() == "auto" else resolve_device(spec)


def plan_backends(settings: BenchSettings, device_kind: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(backends to time, skipped ones with the reason). Raises for what the user must change."""
    runnable, skipped = [], []
    for backend in settings.requested(device_kind):
        if backend in ONNX_BACKENDS:
            check_runtime_device(backend, device_kind)  # tensorrt on the CPU, openvino on CUDA: the user must change
            try:
                execution_providers(device_kind, runtime=backend)
            except CnnlabError as err:
                if backend == "onnxruntime" and settings.backends:  # asked for by name: the user must change it
                    raise
                # Not installed here (TensorRT, the OpenVINO build; CPU-only onnxruntime on a GPU machine by
                # default): time the others, say why not this one.
                skipped.append({"backend": backend, "batch_size": None, "reason": err.one_line()})
                continue
        runnable.append(backend)
    return runnable, skipped


def time_backend(ctx: RunContext, backend: str, subject: TimedModel, settings: BenchSettings, device: str,
                 peak_gflops: float | None, skipped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of one backend over the batch sizes; a batch size (or the whole backend, when torch.compile
    fails) that cannot run is added to `skipped`."""
    records = []
    plan = settings.plan
    for batch in settings.batch_sizes:
        try:
            if backend in TORCH_BACKENDS:
                assert subject.model is not None
                stats = time_torch(subject.model, batch, image_size=subject.spec.size, threads=settings.threads,
                                   device=device, compile=backend == "torch_compile", warmup=plan.warmup,
                                   min_iters=plan.min_iters, min_seconds=plan.min_seconds, flops=subject.flops,
                                   peak_gflops=peak_gflops, channels=subject.spec.channels)
                timed_file = subject.model_file
            else:
                assert subject.onnx is not None
                stats = time_onnx(subject.onnx, batch, threads=settings.threads, device=device,
                                  runtime=backend, warmup=plan.warmup, min_iters=plan.min_iters,
                                  min_seconds=plan.min_seconds, flops=subject.flops, peak_gflops=peak_gflops)
                timed_file = subject.onnx if subject.onnx_origin == "source" else None
        except CnnlabError as err:
            whole_backend = backend == "torch_compile"
            skipped.append({"backend": backend, "batch_size": None if whole_backend else batch,
                            "reason": err.one_line()})
            ctx.log.warning("skipped %s%s: %s", backend, "" if whole_backend else f" at batch {batch}", err.one_line())
            if whole_backend:
                break
            continue
        ctx.log.info("%-13s batch %3d: p50 %.3f ms, %.1f images/s", backend, batch, stats.p50_ms, stats.throughput)
        records.append(record_of(stats, timed_file))
    return records


def record_of(stats: LatencyStats, timed_file: Any) -> dict[str, Any]:
    return {**stats.to_dict(), "file": str(timed_file) if timed_file else None}


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("backend", "device", "batch_size", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput",
            "gflops_per_s", "peak_fraction")
    return {key: record[key] for key in keys}
