"""bench.json (the schema `cnnlab report` reads; docs/bench.md) and the terminal table of a benchmark."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from rich.table import Table

SCHEMA = "cnnlab.bench/1"


def bench_document(*, model: dict[str, Any], source: dict[str, Any] | None, settings: dict[str, Any],
                   hardware: dict[str, Any], environment: dict[str, Any], records: Sequence[dict[str, Any]],
                   skipped: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": model,              # name, image_size, num_classes, params, flops (per image), file sizes
        "source": source,            # the source= reference (None for model=NAME)
        "settings": settings,        # device, backends, batch_sizes, threads, warmup, min_iters, min_seconds
        "hardware": hardware,        # cpu, physical_cores, gpus, peak {gflops, basis}, onnxruntime providers
        "environment": environment,  # cnnlab.environment.fingerprint(): versions, platform, git revision
        "records": list(records),    # one per (backend, batch size): LatencyStats + the file that was timed
        "skipped": list(skipped),    # {backend, batch_size (None: every size), reason}
    }


def latency_table(document: dict[str, Any]) -> Table:
    model, settings = document["model"], document["settings"]
    peak = document["hardware"].get("peak") or {}
    title = (f"{model['name']} at {model['image_size']} px on {settings['device']}, {settings['threads']} threads"
             + (f" (peak {peak['gflops']:.0f} GFLOP/s)" if peak.get("gflops") else ""))
    table = Table(title=title, title_justify="left")
    for header in ("backend", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ± std ms", "images/s", "GFLOP/s",
                   "% peak", "runs"):
        table.add_column(header, justify="left" if header == "backend" else "right")
    for r in document["records"]:
        table.add_row(r["backend"], str(r["batch_size"]), f"{r['p50_ms']:.3f}", f"{r['p90_ms']:.3f}",
                      f"{r['p99_ms']:.3f}", f"{r['mean_ms']:.3f} ± {r['std_ms']:.3f}", f"{r['throughput']:.1f}",
                      _maybe(r["gflops_per_s"], "{:.1f}"), _maybe(r["peak_fraction"], "{:.1%}"), str(r["iterations"]))
    return table


def skipped_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for skip in document["skipped"]:
        batch = "" if skip.get("batch_size") is None else f" at batch {skip['batch_size']}"
        lines.append(f"skipped {skip['backend']}{batch}: {skip['reason']}")
    return lines


def _maybe(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)
