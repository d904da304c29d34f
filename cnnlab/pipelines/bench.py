"""`cnnlab bench [--device cpu|cuda] [source=RUN|PATH | source=[A,B,...] | model=NAME]`: latency per backend and
batch size.

`source=[A,B,...]` times several models in one session, interleaved round by round (A, B, ..., A, B, ...), so that
their ratios compare like with like on a machine whose speed drifts: the only latencies `cnnlab report` turns into
a speed-up (`paired` in run.json).

Settings mistakes (an unknown backend, a batch size < 1, CUDA asked for but absent, onnxruntime without its
CUDA provider on --device cuda, tensorrt on the CPU or openvino on CUDA, a batch size an ONNX source with a fixed
batch dimension cannot take) stop the run with one line. A backend that cannot run in this environment (no
PyTorch model in an ONNX source's chain — or an FP16/INT8 file, whose model.pt is the FP32 model —, TensorRT or
the OpenVINO build of onnxruntime not installed, torch.compile failing) is skipped with the reason, which the
table, bench.json and run.json all show. An ONNX file given as the source is what was asked for: when an ONNX
backend was requested and none timed the file, the run fails with every reason instead of exiting 0 with the
PyTorch rows alone.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig
from rich.table import Table

from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.backends import BackendPlan, SkippedBackend, plan_backends, skipped_summary
from cnnlab.deploy.bench_report import (bench_document, latency_table, paired_table, peak_lines, skipped_lines,
                                        tail_lines, threads_lines, unstable_lines)
from cnnlab.deploy.bench_session import BenchTimings, time_backends, time_paired_backends
from cnnlab.deploy.bench_settings import ONNX_BACKENDS, TORCH_BACKENDS, BenchSettings, bench_device, device_name
from cnnlab.deploy.hardware import bench_hardware
from cnnlab.deploy.peak import peak_estimate
from cnnlab.deploy.subject import (TimedModel, exported_onnx, exported_onnx_all, require_batch_memory,
                                   require_batch_sizes)
from cnnlab.environment import cpu_info, fingerprint, launched_ranks
from cnnlab.errors import CnnlabError
from cnnlab.fileio import write_json
from cnnlab.runs import BENCH_FILE
from cnnlab.steps.bench_models import bench_model, paired_models
from cnnlab.steps.recording import record_warning
from cnnlab.wording import counted


def check(cfg: DictConfig) -> None:
    """What `cnnlab bench` parses itself: BenchSettings (cnnlab/commands.py: `check`); and that it runs as one
    process — under torchrun every rank ran the whole benchmark at once, rank 0's latencies recorded under the
    others' load with only `world_size: 2` to say so (probe 122)."""
    ranks = launched_ranks().world_size
    if ranks > 1:
        raise CnnlabError(f"cnnlab bench under torchrun ({ranks} processes): every rank would time the models at once, "
                          "each slowing the others, and the latencies recorded would be rank 0's under that load",
                          fix="run `cnnlab bench ...` as one process, without torchrun (bench.threads sets its cores)")
    BenchSettings.from_config(cfg.bench)


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    settings = BenchSettings.from_config(cfg.bench)
    where = bench_device(cfg.get("device"))
    device, plan = device_name(where), plan_backends(settings, where.type)
    warn_more_threads_than_cores(ctx, settings, device)
    if isinstance(cfg.get("source"), (list, ListConfig)):
        return run_paired(cfg, ctx, settings, device, plan)
    subject = bench_model(cfg, ctx)
    if subject.model is None:
        plan = plan.without(TORCH_BACKENDS, "; ".join(subject.notes) or "no PyTorch model")
    if not plan.backends:
        raise CnnlabError(f"no backend can run: {skipped_summary(plan.skipped)}",
                          fix="see `cnnlab bench --help` for bench.backends")
    if plan.needs_onnx:  # a fixed-batch ONNX source: one line now, not onnxruntime's error at every batch size
        require_batch_sizes([subject], settings.batch_sizes)
    require_batch_memory([subject.spec], settings.batch_sizes)
    peak = peak_estimate(device, settings.threads, settings.peak_gflops)
    ctx.log.info("bench %s at %d px on %s, %s: %s × batch %s", subject.name, subject.spec.size, device,
                 counted(settings.threads, "thread"), ", ".join(plan.backends), list(settings.batch_sizes))

    with exported_onnx(subject, needed=plan.needs_onnx) as timed:
        timings = time_backends(timed, plan, settings, device, peak.gflops)
        model_info = timed.describe()
    timings.require_records()
    require_source_file_timed(subject, timings, settings.requested(where.type))

    document = bench_document(
        model=model_info, source=subject.describe_source(), settings=settings.describe(device, plan.backends),
        hardware=bench_hardware(peak), environment=fingerprint(), records=timings.record_dicts(),
        skipped=timings.skipped_dicts())
    _write(ctx, document)
    ctx.record.update(model={k: v for k, v in model_info.items() if not k.endswith("_file")},
                      bench=document["settings"])
    if subject.source is not None and subject.source.run is not None:
        ctx.record.update(dataset=subject.source.run.data.get("dataset"))
    _show(document, latency_table(document))
    for line in (*threads_lines(document), *peak_lines(document), *tail_lines(document)):
        record_warning(ctx, line)
    return {"latency": [r.metrics() for r in timings.records], "skipped": timings.skipped_dicts(),
            "params": model_info["params"], "flops": model_info["flops"], "onnx_bytes": model_info["onnx_bytes"]}


def warn_more_threads_than_cores(ctx: RunContext, settings: BenchSettings, device: str) -> None:
    """A warning (log and run.json) when a CPU bench runs more intra-op threads than the cores this process may use:
    they take turns on the cores, and the latencies measure that (a p99 far above the p50), not the model
    (probe 69: bench.threads=8 on 2 cores ran without a word)."""
    cores = int(cpu_info()["usable_cores"] or 1)
    if device == "cpu" and settings.threads > cores:
        record_warning(ctx, f"bench.threads={settings.threads} is more than the {counted(cores, 'core')} this "
                            "process may use: "
                            "the threads take turns, and the latencies measure that, not the model — use "
                            f"bench.threads={cores} or fewer (null: one per physical core)")


def run_paired(cfg: DictConfig, ctx: RunContext, settings: BenchSettings, device: str,
               plan: BackendPlan) -> dict[str, Any]:
    """source=[A,B,...]: every model's ONNX file timed in `bench.rounds` interleaved rounds per backend and batch
    size (cnnlab/deploy/paired.py, the one paired timing of prune, quantize and the report)."""
    subjects = paired_models(cfg, ctx)
    plan = plan.without(TORCH_BACKENDS, "a paired session times ONNX files only")
    if not plan.backends:
        raise CnnlabError("a paired session (source=[A,B,...]) times ONNX files, and no ONNX backend is left",
                          fix="use bench.backends=[onnxruntime]")
    ctx.log.info("bench %d models in %d interleaved rounds on %s, %s: %s × batch %s", len(subjects),
                 settings.rounds, device, counted(settings.threads, "thread"), ", ".join(plan.backends),
                 list(settings.batch_sizes))

    require_batch_sizes(subjects, settings.batch_sizes)
    require_batch_memory([subject.spec for subject in subjects], settings.batch_sizes)
    with exported_onnx_all(subjects) as timed:
        timings = time_paired_backends(timed, plan, settings, device)
        described = [{"model": s.describe(), "source": s.describe_source()} for s in timed]
    timings.require_records()

    document = bench_document(
        model=None, source=None, subjects=described,
        settings={**settings.describe(device, plan.backends), "rounds": settings.rounds},
        hardware=bench_hardware(peak_estimate(device, settings.threads, settings.peak_gflops)),
        environment=fingerprint(), records=timings.record_dicts(), skipped=timings.skipped_dicts())
    _write(ctx, document)
    # the size of the file timed: an ONNX file exported for the timing is gone afterwards (report/rows.py)
    ctx.record.update(bench=document["settings"], paired={"rounds": settings.rounds, "subjects": [
        {"name": d["model"]["name"], "run": (d["source"] or {}).get("run"), "source": d["source"],
         "onnx_origin": d["model"]["onnx_origin"], "onnx_bytes": d["model"]["onnx_bytes"]} for d in described]})
    _show(document, paired_table(document))
    for line in (*threads_lines(document), *peak_lines(document), *tail_lines(document)):
        record_warning(ctx, line)
    for line in unstable_lines(document):
        ctx.log.warning(line)
    return {"latency": [r.metrics() for r in timings.records], "skipped": timings.skipped_dicts(),
            "subjects": len(subjects)}


def require_source_file_timed(subject: TimedModel, timings: BenchTimings, requested: list[str]) -> None:
    """Nothing unless the source is an ONNX file, an ONNX backend was requested (`requested`: the backends asked
    for, before any was skipped) and no record timed that file; then CnnlabError (one line) with every ONNX
    backend's skip reason — a run that timed only the model.pt behind the file would answer another question."""
    path = subject.source_onnx
    if path is None or not any(b in ONNX_BACKENDS for b in requested):
        return
    if any(record.file == path for record in timings.records):
        return
    reasons = [s for s in timings.skipped if s.backend in ONNX_BACKENDS] or \
        [SkippedBackend(b, None, "not run") for b in requested if b in ONNX_BACKENDS]
    raise CnnlabError(f"{path} itself was not timed: {skipped_summary(reasons)}",
                      fix="fix what the reason names; to time only the PyTorch model behind the file, ask for it "
                          "with bench.backends=[torch]")


def _write(ctx: RunContext, document: dict[str, Any]) -> None:
    write_json(ctx.path(BENCH_FILE), document)
    ctx.record.add_artifact("bench", ctx.path(BENCH_FILE))


def _show(document: dict[str, Any], table: Table) -> None:
    out.print(table)
    for line in skipped_lines(document):
        out.print(line, markup=False, highlight=False)
