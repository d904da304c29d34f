"""`cnnlab inspect model=NAME [dataset.image_size=N]`: the layer table of a network, on stdout.

Read-only: builds the randomly initialised network, runs one forward pass with hooks and writes no run folder.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from rich.table import Table

from cnnlab.console import out
from cnnlab.context import RunContext
from cnnlab.deploy.layers import LayerTable, layer_table
from cnnlab.deploy.receptive_field import Field
from cnnlab.errors import CnnlabError
from cnnlab.steps.zoo_model import zoo_model


def check(cfg: DictConfig) -> None:
    """device= other than auto: refused, not ignored — inspect counts on the CPU, whatever device is named (probe 146:
    `--device foo` and `--device cuda` on a machine without a GPU both printed the table, exit 0)."""
    if str(cfg.get("device", "auto")) != "auto":
        raise CnnlabError(f"`cnnlab inspect` reads no device (it was given device={cfg.device}): it counts "
                          "parameters, FLOPs and receptive fields on the CPU", fix="drop --device / device=")


def run(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    subject = zoo_model(cfg, num_classes=cfg.inspect.get("num_classes"))
    table = layer_table(subject.model, subject.spec.size, channels=subject.spec.channels)
    out.print(render(table, f"{subject.name} at {subject.spec.size}×{subject.spec.size} px, "
                            f"{subject.num_classes} classes"))
    out.print("RF: receptive field — the input window (px) one output unit sees; +RF: how much this layer widened "
              "it; jump: input pixels between neighbouring units; * the field includes global context from a "
              "squeeze-excitation gate (docs/inspect.md).")
    return {"params": table.total_params, "flops": table.total_flops}


def render(table: LayerTable, title: str) -> Table:
    grid = Table(title=title, title_justify="left", show_footer=True)
    columns = (("#", "", "right"), ("layer", "total", "left"), ("type", "", "left"), ("k / s / p", "", "left"),
               ("output", "", "right"), ("params", f"{table.total_params:,}", "right"),
               ("FLOPs", si(table.total_flops), "right"), ("RF", _field(table.output_field), "right"),
               ("+RF", "", "right"), ("jump", "", "right"))
    for header, footer, justify in columns:
        grid.add_column(header, footer=footer, justify=justify)  # type: ignore[arg-type]
    grid.add_row("", "input", "", "", "×".join(map(str, table.input_shape)), "", "", "1", "", "1")
    for index, row in enumerate(table.rows, start=1):
        grid.add_row(str(index), row.name, row.kind, row.geometry, "×".join(map(str, row.output_shape)),
                     f"{row.params:,}" if row.params else "", si(row.flops) if row.flops else "",
                     _field(row.field), f"+{row.field_growth}" if row.field_growth else "",
                     str(row.field.jump) if row.field is not None and len(row.output_shape) == 3 else "")
    return grid


def _field(field: Field | None) -> str:
    if field is None:
        return "?"
    return f"{field.size}{'*' if field.global_context else ''}"


def si(value: float) -> str:
    """1234567 → '1.23 M'."""
    for factor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {unit}"
    return f"{value:g}"
