"""bench.json (the schema `cnnlab report` reads; docs/bench.md) and the terminal table of a benchmark."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from rich.table import Table

from cnnlab.wording import ratio_text

SCHEMA = "cnnlab.bench/1"


def bench_document(*, model: dict[str, Any] | None, source: dict[str, Any] | None, settings: dict[str, Any],
                   hardware: dict[str, Any], environment: dict[str, Any], records: Sequence[dict[str, Any]],
                   skipped: Sequence[dict[str, Any]], subjects: Sequence[dict[str, Any]] | None = None,
                   ) -> dict[str, Any]:
    """One model (`model`, `source`), or several timed in one interleaved session (`subjects`, each
    {model, source}; `model` and `source` are then None and every record names its `subject` index)."""
    document = {
        "schema": SCHEMA,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": model,              # name, image_size, num_classes, params, flops (per image), file sizes
        "source": source,            # the source= reference (None for model=NAME)
        "settings": settings,        # device, backends, batch_sizes, threads, warmup, min_iters, min_seconds
        "hardware": hardware,        # cpu, physical_cores, gpus, peak {gflops, basis}, onnxruntime providers
        "environment": environment,  # cnnlab.environment.fingerprint(): versions, platform, git revision
        "records": list(records),    # one per (backend, batch size[, subject]): LatencyStats + the file timed
        "skipped": list(skipped),    # {backend, batch_size (None: every size), reason}
    }
    if subjects is not None:
        document["subjects"] = list(subjects)
    return document


def paired_table(document: dict[str, Any]) -> Table:
    """Several models timed in interleaved rounds: p50 (the median round), every round's p50, the spread between
    rounds, and each model against the first one, measured in the same rounds."""
    settings = document["settings"]
    table = Table(title=f"{len(document['subjects'])} models timed in {settings['rounds']} interleaved rounds on "
                        f"{settings['device']}, {settings['threads']} threads", title_justify="left")
    for header in ("model", "source", "backend", "batch", "p50 ms", "p50 ms per round", "spread", "vs the first"):
        table.add_column(header, justify="left" if header in ("model", "source", "backend") else "right")
    first: dict[tuple[str, int], float] = {}
    for r in document["records"]:
        subject = document["subjects"][r["subject"]]
        key = (r["backend"], r["batch_size"])
        first.setdefault(key, r["p50_ms"])
        rounds = r["p50_ms_per_round"]
        spread = (max(rounds) - min(rounds)) / sorted(rounds)[len(rounds) // 2] if len(rounds) > 1 else None
        source = subject.get("source") or {}
        table.add_row(subject["model"]["name"], str(source.get("command") or source.get("path") or "—"),
                      r["backend"], str(r["batch_size"]), f"{r['p50_ms']:.3f}", " ".join(f"{v:.3f}" for v in rounds),
                      _maybe(spread, "{:.1%}"), ratio_text(first[key] / r["p50_ms"]))
    return table


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
