"""bench.json (the schema `cnnlab report` reads; docs/bench.md) and the terminal table of a benchmark."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from cnnlab.deploy.paired import UNSTABLE_SPREAD, NetworkKey, PairedRatio, rounds_disagree, spread
from cnnlab.wording import counted, ratio_range_text, ratio_text

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
    rounds, and each model against the first one, measured in the same rounds — marked unstable when the
    per-round ratios are more than UNSTABLE_SPREAD apart (the rule `cnnlab report` applies to a speed-up)."""
    settings = document["settings"]
    table = Table(title=f"{len(document['subjects'])} models timed in {settings['rounds']} interleaved rounds on "
                        f"{settings['device']}, {counted(settings['threads'], 'thread')}", title_justify="left")
    for header in ("model", "source", "backend", "batch", "p50 ms", "p50 ms per round", "spread", "vs the first"):
        table.add_column(header, justify="left" if header in ("model", "source", "backend") else "right")
    first = _first_records(document)
    for r in document["records"]:
        subject = document["subjects"][r["subject"]]
        reference = first[(r["backend"], r["batch_size"])]
        rounds = r["p50_ms_per_round"]
        same_network = _key(subject).same_as(_key(document["subjects"][reference["subject"]]))
        judged = PairedRatio.of_rounds(_round_ratios(reference, r), reference["p50_ms"] / r["p50_ms"],
                                       same_network=same_network)
        versus = ratio_text(judged.ratio) if r is reference else judged.text()
        table.add_row(_subject_name(subject, r["subject"]), _subject_source(subject),
                      _backend_cell(r, settings), str(r["batch_size"]), f"{r['p50_ms']:.3f}",
                      " ".join(f"{v:.3f}" for v in rounds),
                      _maybe(spread(rounds) if len(rounds) > 1 else None, "{:.1%}"), versus)
    return table


def unstable_lines(document: dict[str, Any]) -> list[str]:
    """A paired session's ratios to the first model whose rounds disagree by more than UNSTABLE_SPREAD, in words:
    the machine's speed changed during the session, so those ratios are not figures. The report's speed-ups are
    against each model's source, so its ranges differ: the line says so (probe 124 read two ranges for one model)."""
    first, lines = _first_records(document), []
    for r in document.get("records") or []:
        reference = first[(r["backend"], r["batch_size"])]
        ratios = _round_ratios(reference, r)
        which = (f"{document['subjects'][r['subject']]['model']['name']} (model {r['subject'] + 1}) against the "
                 f"first on {r['backend']} at batch {r['batch_size']}")
        if r is not reference and len(ratios) == 1:  # probe 192: one round read as a clean ratio
            lines.append(f"unchecked: {which} was timed in one round (bench.rounds=1): no second round says "
                         "whether the machine's speed held — time again with bench.rounds=3 or more; cnnlab report "
                         "shows such a ratio as unstable")
        elif r is not reference and rounds_disagree(ratios):
            lines.append(f"unstable: {which} gave "
                         f"{ratio_range_text(min(ratios), max(ratios))} over {len(ratios)} rounds, more than "
                         f"{UNSTABLE_SPREAD:.0%} apart: the machine's speed changed during the session — time again "
                         "with nothing else running, or with more rounds (bench.rounds); cnnlab report compares "
                         "each model with its own source instead (other ranges) and shows an unstable one as such")
    return lines


# A p90 this many times the p50: the timed runs were not alike (probe 179: torch's p90 533 ms beside a p50 of 77 ms,
# on a machine shared with other work, and the table said nothing).
DISTURBED_TAIL = 2.0


def tail_lines(document: dict[str, Any]) -> list[str]:
    """A line per row whose p90 is more than DISTURBED_TAIL times its p50 — a tenth of its runs took that much
    longer — or, where its p90 is not, whose mean is: a few runs stalled (probe 211: 2 of 30 runs at threads=1000
    took seconds, mean 398 ms beside a p50 of 0.224 ms, and no line said so). Something else ran on these cores or the
    clock changed: the p50 may stand, the mean and spread do not."""
    subjects = document.get("subjects") or []
    lines = []
    for r in document.get("records") or []:
        if r["p50_ms"] <= 0:
            continue
        if r["p90_ms"] > DISTURBED_TAIL * r["p50_ms"]:
            what = f"p90 {r['p90_ms']:.3g} ms is {r['p90_ms'] / r['p50_ms']:.1f}× the p50"
        elif r.get("mean_ms") is not None and r["mean_ms"] > DISTURBED_TAIL * r["p50_ms"]:
            what = (f"a few runs stalled: the mean, {r['mean_ms']:.3g} ms (p99 {r['p99_ms']:.3g} ms), is "
                    f"{r['mean_ms'] / r['p50_ms']:.1f}× the p50")
        else:
            continue
        lines.append(f"{_row_name(r, subjects)}: {what} ({r['p50_ms']:.3g} ms) over {r['iterations']} runs — the runs "
                     "were not alike (another program on these cores, or the clock changed); time again with nothing "
                     "else running, or longer (bench.min_seconds)")
    return lines


def _row_name(record: dict[str, Any], subjects: list[dict[str, Any]]) -> str:
    """"torch at batch 1", with the model of a paired session's row ("resnet18 (model 2), …")."""
    index = record.get("subject")
    model = (f"{subjects[index]['model']['name']} (model {index + 1}), " if isinstance(index, int)
             and index < len(subjects) else "")
    return f"{model}{record['backend']} at batch {record['batch_size']}"


def _subject_name(subject: dict[str, Any], index: int) -> str:
    """"2. resnet18 (int8)": numbered as the unstable lines name it, with a precision other than FP32 — an INT8
    quantize run and one that kept FP32 read alike as "resnet18 | quantize" (probe 78)."""
    model = subject.get("model") or {}
    precision = model.get("precision")
    return f"{index + 1}. {model.get('name')}" + (f" ({precision})" if precision and precision != "fp32" else "")


def _subject_source(subject: dict[str, Any]) -> str:
    """The run a subject came from, "quantize/2026-12-04/21-29-39" (its last three folders); a file's name."""
    source = subject.get("source") or {}
    if source.get("run"):
        return "/".join(Path(str(source["run"])).parts[-3:])
    return Path(str(source["path"])).name if source.get("path") else "—"


def _key(subject: dict[str, Any]) -> NetworkKey:
    model = subject.get("model") or {}
    return NetworkKey(model.get("name"), model.get("params"), model.get("precision"), model.get("flops"))


def _first_records(document: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (backend, batch size), the record of the first model timed there: what the others are compared with."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for r in document.get("records") or []:
        first.setdefault((r["backend"], r["batch_size"]), r)
    return first


def _round_ratios(reference: dict[str, Any], record: dict[str, Any]) -> list[float]:
    """reference p50 / record p50 of each round, the rounds taken side by side (the paired figures)."""
    return [a / b for a, b in zip(reference.get("p50_ms_per_round") or [], record.get("p50_ms_per_round") or [])
            if b > 0]


def _mean_and_std(record: dict[str, Any]) -> str:
    """'0.412 ± 0.013'; of one timed run, its time alone: its spread is unknown, not 0 (probe 192: "± 0.000")."""
    if record["iterations"] < 2:
        return f"{record['mean_ms']:.3f} (one run)"
    return f"{record['mean_ms']:.3f} ± {record['std_ms']:.3f}"


def latency_table(document: dict[str, Any]) -> Table:
    model, settings = document["model"], document["settings"]
    peak = document["hardware"].get("peak") or {}
    title = (f"{model['name']} at {model['image_size']} px on {settings['device']}, "
             f"{counted(settings['threads'], 'thread')}"
             + (f" (peak {peak['gflops']:.3g} GFLOP/s)" if peak.get("gflops") else ""))  # 0.5 read "0"
    table = Table(title=title, title_justify="left")
    for header in ("backend", "batch", "p50 ms", "p90 ms", "p99 ms", "mean ± std ms", "images/s (p50)", "GFLOP/s",
                   "% peak", "runs"):
        table.add_column(header, justify="left" if header == "backend" else "right")
    for r in document["records"]:
        table.add_row(_backend_cell(r, settings), str(r["batch_size"]), f"{r['p50_ms']:.3f}",
                      f"{r['p90_ms']:.3f}",
                      f"{r['p99_ms']:.3f}", _mean_and_std(r), f"{r['throughput']:.1f}",
                      _maybe(r["gflops_per_s"], "{:.1f}"), _maybe(r["peak_fraction"], "{:.1%}"), str(r["iterations"]))
    return table


def peak_lines(document: dict[str, Any]) -> list[str]:
    """Why a "% peak" is not a figure: above 100 % for an FP32 or FP16 file, the estimate is below what the CPU did
    (probe 78: 106.8 % on a VM whose /proc/cpuinfo gives the base clock, which boost exceeds); any for an INT8 file,
    whose arithmetic (VNNI/AMX) the FP32 peak does not bound. A paired session's records each name their model (probe
    177: none was said of its 107.6 %)."""
    subjects = document.get("subjects") or []

    def model_of(record: dict[str, Any]) -> dict[str, Any]:
        index = record.get("subject")
        return (subjects[index].get("model") or {}) if isinstance(index, int) and index < len(subjects) \
            else document.get("model") or {}

    def cells(records: list[dict[str, Any]]) -> str:
        return ", ".join((f"{model_of(r).get('name', '?')} (model {r['subject'] + 1}) " if subjects else "")
                         + f"{r['backend']} at batch {r['batch_size']}: {r['peak_fraction']:.1%}" for r in records)

    records = document.get("records") or []
    basis = (document.get("hardware", {}).get("peak") or {}).get("basis", "")
    # any INT8 one, above 100 % or not (probe 192: 30 % of the FP32 peak read as a figure)
    int8 = [r for r in records if r.get("peak_fraction") is not None and model_of(r).get("precision") == "int8"]
    fp = [r for r in records if (r.get("peak_fraction") or 0) > 1 and r not in int8]
    lines = [f"% peak of an INT8 file ({cells(int8)}): its FLOPs against the FP32 peak, which bounds no INT8 "
             "arithmetic (VNNI, AMX, or AVX2's 8-bit products): not a figure"] if int8 else []
    if fp:
        lines.append(f"% peak above 100 % ({cells(fp)}): the FP32 peak ({basis}) is below what this machine did, so "
                     "its fractions are not figures — give the peak of the cores the threads occupy with "
                     "bench.peak_gflops=N (the estimate's formula at the boost clock, or a data sheet's whole-chip "
                     "figure × those cores / the chip's cores)")
    return lines


def threads_lines(document: dict[str, Any]) -> list[str]:
    """A line per backend that ran other than bench.threads threads: OpenVINO takes no more than the cores this
    process may use (probe 134: 8 asked on 2 cores ran 2, beside onnxruntime's 8 taking turns, both read "8")."""
    asked = document["settings"]["threads"]
    ran = {r["backend"]: r["threads"] for r in document["records"] if r.get("threads", asked) != asked}
    return [f"{backend} ran {counted(threads, 'inference thread')}, not the {asked} of bench.threads (it takes no more "
            f"than the cores this process may use); its rows are recorded at {threads} — for a like-for-like "
            f"comparison use bench.threads={threads}" for backend, threads in ran.items()]


def _backend_cell(record: dict[str, Any], settings: dict[str, Any]) -> str:
    """"openvino (2 threads)" for a record that ran other than the title's threads, else the backend."""
    threads = record.get("threads", settings["threads"])
    return record["backend"] if threads == settings["threads"] else \
        f"{record['backend']} ({counted(threads, 'thread')})"


def skipped_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for skip in document["skipped"]:
        batch = "" if skip.get("batch_size") is None else f" at batch {skip['batch_size']}"
        lines.append(f"skipped {skip['backend']}{batch}: {skip['reason']}")
    return lines


def _maybe(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)
