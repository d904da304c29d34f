"""How a prune run is told: the terminal table of dense against pruned, and the note magnitude pruning records."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.table import Table

from cnnlab.compress.pruning.settings import PruneSettings
from cnnlab.deploy.paired import PairedRatio
from cnnlab.wording import ratio_text

SPARSITY_NOTE = ("magnitude pruning zeroes weights but keeps every tensor's shape: dense runtimes (PyTorch, "
                 "onnxruntime) still run every multiply-add, so the model is not faster and model.onnx is not "
                 "smaller; only sparse kernels or a compressed file gain from it. Use prune.method=channel for speed.")


def summary_table(settings: PruneSettings, metrics: dict[str, Any], rounds: Sequence[float] = (), *,
                  removed: bool = True) -> Table:
    """Dense against pruned from a prune run's metrics: parameters, GFLOPs, ONNX size and p50 latency (when
    measured; `rounds`: the speed-up of each interleaved round, which says when it is unstable), accuracy before →
    after pruning → after recovery. `removed`: whether any channel or weight went (else the two are one network)."""
    table = Table(title=f"prune.method={settings.method} prune.ratio={settings.ratio:g}", title_justify="left")
    for column in ("", "dense", "pruned", "ratio"):
        table.add_column(column, justify="right")
    # zeroed weights, every shape kept — or nothing removed (probe 128: ratio 0.001 read "1.09× faster"): one network
    same_network = settings.method == "magnitude" or not removed

    def speed(dense_ms: float, pruned_ms: float) -> str:  # judged as `cnnlab report` judges a speed-up
        return PairedRatio.of_rounds(rounds, dense_ms / pruned_ms, same_network=same_network).text()

    rows: list[tuple[str, str, str, Callable[[Any, Any], str]]] = [
        ("parameters", "params_before", "params_after", lambda a, b: ratio_text(a / b, "fewer", "more")),
        ("GFLOPs", "flops_before", "flops_after", lambda a, b: ratio_text(a / b, "fewer", "more")),
        ("ONNX MB", "onnx_bytes_before", "onnx_bytes_after", lambda a, b: ratio_text(a / b, "smaller", "larger")),
        ("p50 latency ms", "latency_p50_ms_before", "latency_p50_ms_after", speed),
    ]
    scale = {"GFLOPs": 1e-9, "ONNX MB": 1e-6}
    for label, before, after, ratio in rows:
        if before in metrics:
            a, b = metrics[before], metrics[after]
            fmt = (lambda v: f"{v:,}") if label == "parameters" else (lambda v: f"{v * scale.get(label, 1):.3g}")
            table.add_row(label, fmt(a), fmt(b), ratio(a, b))
    recovered = metrics["acc_after_recovery"]
    table.add_row("val accuracy", f"{metrics['acc_before']:.2%}",
                  f"{metrics['acc_after_prune']:.2%} → {recovered:.2%}" if recovered is not None
                  else f"{metrics['acc_after_prune']:.2%}", f"{round(-100 * metrics['acc_drop'], 2) + 0.0:+.2f} pts")  # + 0.0: never "-0.00"
    return table
