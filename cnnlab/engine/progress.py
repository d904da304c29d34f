"""Rich progress bars for long work (epochs, batches, calibration, benchmarks).

Shown on an interactive terminal of the main process; elsewhere (CI logs, DDP ranks > 0) the
per-epoch log lines carry the same information.
"""

from __future__ import annotations

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from cnnlab.console import console


def make_progress(enabled: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("<"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    )
