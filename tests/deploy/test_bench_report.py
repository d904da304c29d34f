"""The paired table of `cnnlab bench source=[A,B,...]`: ratios to the first model, and when they are not figures."""

from __future__ import annotations

from rich.console import Console

from cnnlab.deploy.bench_report import paired_table, peak_lines, unstable_lines


def _document(rounds: dict[int, list[float]]) -> dict:
    """A paired bench.json: subject index → its p50 (ms) per round, onnxruntime at batch 1."""
    records = [{"backend": "onnxruntime", "batch_size": 1, "subject": index, "p50_ms_per_round": per_round,
                "p50_ms": sorted(per_round)[len(per_round) // 2]} for index, per_round in rounds.items()]
    return {"settings": {"rounds": 9, "device": "cpu", "threads": 2}, "records": records,
            "subjects": [{"model": {"name": f"net{index}"}, "source": {"command": "export"}} for index in rounds]}


def _text(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_a_session_whose_rounds_disagree_marks_the_ratio_unstable() -> None:
    """Measured on a VM that alternated between two speeds: the median rounds gave the pruned network 3.83× where
    the rounds taken side by side gave 2.02–4.12× (median 2.65×); the table printed 3.83× with nothing to doubt. The
    headline is now that median: the two median rounds were rounds 6 and 4, two moments of the machine."""
    dense = [1.848, 1.215, 1.533, 0.987, 0.971, 1.016, 1.587, 1.801, 1.601]
    pruned = [0.449, 0.426, 0.753, 0.391, 0.391, 0.383, 0.400, 0.891, 0.389]
    document = _document({0: dense, 1: pruned})
    text = _text(paired_table(document))
    assert "2.65× faster (unstable: 2.02–4.12× faster)" in text and "3.83" not in text
    [line] = unstable_lines(document)
    assert "net1 (model 2)" in line and "2.02–4.12× faster over 9 rounds" in line and "more than 15% apart" in line
    assert "time again with nothing else running" in line
    assert "cnnlab report compares each model with its own source instead" in line  # probe 124: two ranges, unsaid


def test_an_unstable_slowdown_says_its_range_in_the_units_of_its_headline() -> None:
    """An INT8 file slower than its FP32 source printed "2.45× slower (unstable: 0.41–0.55)": the headline in words,
    the range as the raw ratio (< 1 = slower); one that crossed 1 ("0.45–1.04") mixed slower and faster unsaid."""
    fp32, int8 = [1.0, 1.0, 1.0], [2.45, 1.82, 2.44]
    document = _document({0: fp32, 1: int8})
    assert "2.44× slower (unstable: 1.82–2.45× slower)" in _text(paired_table(document))
    [line] = unstable_lines(document)
    assert "gave 1.82–2.45× slower over 3 rounds" in line

    crossing = _document({0: [1.0, 1.0, 1.0], 1: [2.22, 1.6, 0.9615]})
    text = _text(paired_table(crossing))
    assert "1.60× slower (unstable: 2.22× slower to 1.04× faster)" in text
    [line] = unstable_lines(crossing)
    assert "gave 2.22× slower to 1.04× faster over 3 rounds" in line


def test_a_steady_session_gives_plain_ratios() -> None:
    document = _document({0: [1.0, 1.02, 0.99], 1: [0.5, 0.51, 0.5], 2: [1.0, 1.0, 1.01]})
    text = _text(paired_table(document))
    assert "2.00× faster" in text and "unstable" not in text
    assert unstable_lines(document) == []


def test_a_magnitude_prune_beside_its_source_is_the_same_network_as_in_the_prune_table() -> None:
    """Probe 54: the prune table called a magnitude prune against its dense source "same network: noise"; `cnnlab
    bench source=[DENSE,PRUNED]` timed the same pair and said only "(unstable: …)" (deploy.paired.NetworkKey)."""
    document = _document({0: [0.0899, 0.0890, 0.1133], 1: [0.0911, 0.1385, 0.1138]})
    for subject in document["subjects"]:
        subject["model"] = {"name": "lenet5", "params": 61_706, "precision": "fp32", "flops": 1_730_640}
    # the median per-round ratio (1.01× slower), not the ratio of the median rounds (0.0899 / 0.1138: 1.27× slower)
    assert "1.01× slower (same network: noise; rounds 1.00–1.56× slower)" in _text(paired_table(document))
    document["subjects"][1]["model"]["precision"] = "int8"  # INT8 is another computation: its ratio is a figure
    assert "1.01× slower (unstable: 1.00–1.56× slower)" in _text(paired_table(document))
    # probe 55: the same LeNet-5 at 16 px (same parameters, a quarter of the FLOPs) was "same network: noise"
    document["subjects"][1]["model"] = {"name": "lenet5", "params": 61_706, "precision": "fp32", "flops": 425_040}
    assert "same network" not in _text(paired_table(document))


def test_paired_rows_of_an_int8_and_an_fp32_kept_quantize_run_can_be_told_apart() -> None:
    """Probe 78: `cnnlab bench source=[INT8 quantize run, FP32-kept quantize run]` printed two rows reading
    `resnet18 | quantize | onnxruntime`: only their order told which was which."""
    document = _document({0: [1.0, 1.0, 1.0], 1: [2.0, 2.0, 2.0]})
    for index, (precision, run) in enumerate((("int8", "21-29-39"), ("fp32", "21-31-28"))):
        document["subjects"][index] = {"model": {"name": "resnet18", "precision": precision},
                                       "source": {"command": "quantize", "run": f"/o/quantize/2026-12-04/{run}"}}
    lines = [line for line in _text(paired_table(document)).splitlines() if "resnet18" in line]
    assert "1. resnet18 (int8)" in lines[0] and "quantize/2026-12-04/21-29-39" in lines[0]
    assert "2. resnet18 " in lines[1] and "(int8)" not in lines[1] and "quantize/2026-12-04/21-31-28" in lines[1]


def test_percent_peak_above_100_is_called_no_figure() -> None:
    """Probe 78: bench printed `106.8%` of peak for an FP32 file with nothing to doubt it."""
    def document(precision: str, fraction: float) -> dict:
        return {"model": {"precision": precision}, "hardware": {"peak": {"basis": "1 cores × … (base clock)"}},
                "records": [{"backend": "onnxruntime", "batch_size": 8, "peak_fraction": fraction}]}

    [line] = peak_lines(document("fp32", 1.068))
    assert "onnxruntime at batch 8: 106.8%" in line and "bench.peak_gflops=N" in line and "base clock" in line
    [line] = peak_lines(document("int8", 1.5))
    assert "INT8" in line
    assert peak_lines(document("fp32", 0.9)) == []
    [line] = peak_lines(document("int8", 0.3))  # probe 192: below 100 %, as much no figure
    assert "% peak of an INT8 file (onnxruntime at batch 8: 30.0%)" in line and "not a figure" in line


def test_the_latency_tables_throughput_column_says_it_comes_from_the_p50() -> None:
    """Probe 113: the column read "images/s (mean)" over batch / p50 (123.7 = 1 / 8.084 ms where the mean, 12.482 ms,
    gives 80.1): a reader took the typical figure for the average one."""
    from cnnlab.deploy.bench_report import latency_table

    record = {"backend": "onnxruntime", "batch_size": 1, "p50_ms": 8.084, "p90_ms": 26.54, "p99_ms": 30.706,
              "mean_ms": 12.482, "std_ms": 11.224, "throughput": 1 / 8.084e-3, "gflops_per_s": None,
              "peak_fraction": None, "iterations": 30}
    text = _text(latency_table({"model": {"name": "net", "image_size": 32}, "hardware": {},
                                "settings": {"device": "cpu", "threads": 2}, "records": [record]}))
    assert "images/s (p50)" in text and "(mean)" not in text and "123.7" in text, text


def test_a_backend_that_ran_other_threads_says_so_in_its_row_and_a_warning() -> None:
    """Probe 134: bench.threads=8 on 2 cores: OpenVINO ran 2 threads, and its row read as the title's 8."""
    from cnnlab.deploy.bench_report import latency_table, threads_lines

    def record(backend: str, threads: int) -> dict:
        return {"backend": backend, "batch_size": 1, "threads": threads, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0,
                "mean_ms": 1.0, "std_ms": 0.0, "throughput": 1000.0, "gflops_per_s": None, "peak_fraction": None,
                "iterations": 30}

    document = {"model": {"name": "net", "image_size": 32}, "hardware": {}, "settings": {"device": "cpu", "threads": 8},
                "records": [record("onnxruntime", 8), record("openvino", 2)]}
    text = _text(latency_table(document))
    assert "openvino (2 threads)" in text and "onnxruntime (" not in text, text
    [line] = threads_lines(document)
    assert line.startswith("openvino ran 2 inference threads, not the 8 of bench.threads") and \
        "bench.threads=2" in line
    one = {**document, "settings": {"device": "cpu", "threads": 1}, "records": [record("openvino", 1)]}
    assert _text(latency_table(one)).split("\n")[0].rstrip().endswith("cpu, 1 thread")  # probe 137: "1 threads"
    lone = {**document, "settings": {"device": "cpu", "threads": 2}, "records": [record("openvino", 1)]}
    assert "openvino (1 thread)" in _text(latency_table(lone)) and threads_lines(lone)[0].startswith(
        "openvino ran 1 inference thread, not the 2")


def test_a_row_whose_p90_is_far_past_its_p50_says_its_runs_were_not_alike() -> None:
    """Probe 179: torch's p90 of 533 ms beside its p50 of 76.6 ms, on a machine shared with other work, and the
    unpaired table said nothing (a paired session says "unstable")."""
    from cnnlab.deploy.bench_report import tail_lines

    def record(backend: str, p50: float, p90: float, subject: int | None = None) -> dict:
        return {"backend": backend, "batch_size": 1, "p50_ms": p50, "p90_ms": p90, "iterations": 40,
                **({"subject": subject} if subject is not None else {})}

    [line] = tail_lines({"records": [record("torch", 76.6, 533.0), record("onnxruntime", 1.53, 1.9)]})
    assert line.startswith("torch at batch 1: p90 533 ms is 7.0× the p50 (76.6 ms) over 40 runs")
    assert "bench.min_seconds" in line
    paired = {"subjects": [{"model": {"name": "lenet5"}}, {"model": {"name": "resnet18"}}],
              "records": [record("onnxruntime", 1.0, 1.1, 0), record("onnxruntime", 2.0, 4.5, 1)]}
    [line] = tail_lines(paired)
    assert line.startswith("resnet18 (model 2), onnxruntime at batch 1: p90 4.5 ms is 2.2× the p50")
    # probe 211: 2 of 30 runs stalled for seconds (threads=1000): the p90 stayed low, the mean did not
    stalled = record("onnxruntime", 0.224, 0.3) | {"mean_ms": 398.0, "p99_ms": 6070.0, "iterations": 30}
    steady = record("onnxruntime", 0.224, 0.3) | {"mean_ms": 0.25, "p99_ms": 0.9}
    [line] = tail_lines({"records": [stalled, steady]})
    assert line.startswith("onnxruntime at batch 1: a few runs stalled: the mean, 398 ms (p99 6.07e+03 ms), is "
                           "1776.8× the p50 (0.224 ms) over 30 runs — the runs were not alike"), line


def test_a_ratio_of_one_round_is_said_to_be_unchecked() -> None:
    """Probe 192: four one-round sessions of one INT8 file against its FP32 source read 2.68×, 1.20×, 1.51× and
    1.50× slower, each printed as a clean ratio: one round has no second to say whether the machine's speed held."""
    document = _document({0: [1.0], 1: [2.68]})
    assert "2.68× slower (one round: unchecked)" in _text(paired_table(document))
    [line] = unstable_lines(document)
    assert "net1 (model 2)" in line and "timed in one round (bench.rounds=1)" in line and "bench.rounds=3" in line


def test_one_timed_run_shows_no_spread_of_zero() -> None:
    """Probe 192: `bench.min_iters=1` printed "0.412 ± 0.000": the spread of one run is unknown, not zero."""
    from cnnlab.deploy.bench_report import latency_table

    record = {"backend": "onnxruntime", "batch_size": 1, "p50_ms": 0.412, "p90_ms": 0.412, "p99_ms": 0.412,
              "mean_ms": 0.412, "std_ms": 0.0, "throughput": 2427.2, "gflops_per_s": None, "peak_fraction": None,
              "iterations": 1}
    document = {"model": {"name": "lenet5", "image_size": 16}, "settings": {"device": "cpu", "threads": 1},
                "hardware": {}, "records": [record, {**record, "iterations": 30, "std_ms": 0.013}]}
    text = _text(latency_table(document))
    assert "0.412 (one run)" in text and "± 0.000" not in text and "0.412 ± 0.013" in text
