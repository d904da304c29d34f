"""What the deploy benchmarks add to _common: the FP32 peak and onnxruntime's threads, and a table printer."""

from __future__ import annotations

from typing import Sequence

from _common import pin_threads, print_machine
from cnnlab.deploy.peak import peak_estimate


def print_header(title: str, threads: int) -> None:
    """Pin torch to `threads` and print the machine, the threads every backend uses and the FP32 peak."""
    print(f"# {title}")
    print_machine(pin_threads(threads))
    print(f"onnxruntime threads: intra-op {threads}, inter-op 1")
    peak = peak_estimate("cpu", threads)
    print(f"FP32 peak for {threads} threads: {peak.gflops} GFLOP/s = {peak.basis}\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
