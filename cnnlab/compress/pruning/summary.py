"""How a prune run is told: the terminal table of dense against pruned, and the note magnitude pruning records."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.table import Table

from cnnlab.compress.pruning.settings import PruneSettings
from cnnlab.deploy.paired import UNSTABLE_SPREAD, spread
from cnnlab.wording import ratio_range_text, ratio_text

SPARSITY_NOTE = ("magnitude pruning zeroes weights but keeps every tensor's shape: dense runtimes (PyTorch, "
                 "onnxruntime) still run every multiply-add, so the model is not faster and model.onnx is not "
                 "smaller; only sparse kernels or a compressed file gain from it. Use prune.method=channel for speed.")


def summary_table(settings: PruneSettings, metrics: dict[str, Any], rounds: Sequence[float] = ()) -> Table:
    """Dense against pruned from a prune run's metrics: parameters, GFLOPs, ONNX size and p50 latency (when
    measured; `rounds`: the speed-up of each interleaved round, which says when it is unstable), accuracy before →
    after pruning → after recovery."""
    table = Table(title=f"prune.method={settings.method} prune.ratio={settings.ratio:g}", title_justify="left")
    for column in ("", "dense", "pruned", "ratio"):
        table.add_column(column, justify="right")
    same_network = settings.method == "magnitude"  # zeroed weights, every shape kept: the same computation

    def speed(dense_ms: float, pruned_ms: float) -> str:
        return speedup_text(dense_ms / pruned_ms, rounds, same_network=same_network)

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


def speedup_text(ratio: float, rounds: Sequence[float] = (), *, same_network: bool = False) -> str:
    """A paired speed-up as `cnnlab report` and `cnnlab bench` judge one: with the range of its rounds when they
    disagree by more than UNSTABLE_SPREAD ("1.16× faster (unstable: 1.12× slower to 1.44× faster)"), and marked as
    noise for a network that computes what its dense source does (magnitude pruning keeps every shape)."""
    if len(rounds) > 1 and spread(rounds) > UNSTABLE_SPREAD:
        return f"{ratio_text(ratio)} (unstable: {ratio_range_text(min(rounds), max(rounds))})"
    return ratio_text(ratio) + (" (same network: noise)" if same_network else "")
