"""cnnlab/console.py: what reaches a terminal, a pipe or a file — tables whole, log lines plain."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console
from rich.table import Table

from cnnlab.console import ResultsConsole, TerminalSafeHandler, whole_cells_width

RUN = "outputs/finetune/2026-12-08/00-12-40"
ROW = [RUN, "finetune", "lenet5", "digits", "76.94%", "75.12 ± 0.31", "61.5 k", "0.42 M", "0.25 MB", "0.031",
       "1.23×"]
HEADERS = ["run", "command", "model", "dataset", "val top-1", "test top-1", "params", "FLOPs", "size", "p50 ms",
           "speed-up"]


def _report_like(footer: bool = False) -> Table:
    table = Table(title="digits (10 classes, 8 px)", show_footer=footer)
    for index, header in enumerate(HEADERS):
        table.add_column(header, footer="total" if footer and index == 0 else "", justify="right" if index > 3 else
                         "left")
    table.add_row(*ROW)
    table.add_row(*ROW[:4], "0.5%", "", "", "", "", "", "")
    return table


def _printed(table: Table, width: int) -> str:
    stream = io.StringIO()
    ResultsConsole(file=stream, width=width, highlight=False).print(table)
    return stream.getvalue()


@pytest.mark.parametrize("width", [40, 80, 100])
def test_a_table_too_wide_for_the_console_shows_every_number_whole(width: int) -> None:
    """Probe 238: on an 80-column terminal the report's val top-1 76.94 % read `76…` and FLOPs `0.…` (and still
    `76.9…` at 100): rich cut cells to fit. A table that cannot show its cells whole is printed expanded, one
    "column  value" block per row (psql's `\\x`)."""
    printed = _printed(_report_like(), width)
    assert "…" not in printed, printed
    for header, value in zip(HEADERS[1:], ROW[1:]):  # each figure on its column's line, whole
        assert any(line.split() == [*header.split(), *value.split()] for line in printed.splitlines()), (header, printed)
    assert "-[ row 1 ]" in printed and "-[ row 2 ]" in printed
    assert RUN in "".join(printed.split())  # a path longer than the width folds: every character kept
    row_two = printed.split("-[ row 2 ]")[1]
    assert "0.5%" in row_two and "FLOPs" not in row_two  # its empty cells are left out
    assert all(len(line) <= width for line in printed.splitlines())


def test_no_cell_is_cut_at_any_width() -> None:
    """Probe 241: between the width where a table's cells just fit whole and its natural width, rich narrowed the
    widest column below its longest word and cut it: the report's run paths read `prune/2026-…` at 98–142 columns,
    `list models` cut weight names. Cells fold there instead; numbers stay on one line."""
    for width in range(30, 201):
        table = _report_like()
        table.add_row("a note with several words that wrap where the table narrows", *ROW[1:])
        printed = _printed(table, width)
        assert "…" not in printed and all(len(line) <= width for line in printed.splitlines()), (width, printed)
        assert all(value in printed for value in ("76.94%", "0.42 M", "0.031", "1.23×")), (width, printed)


def test_a_table_that_fits_is_a_table_and_a_footer_is_kept_when_it_does_not() -> None:
    wide = _report_like(footer=True)
    assert whole_cells_width(wide, Console(width=200)) <= 200
    printed = _printed(wide, 200)
    assert "┃ run" in printed and "76.94%" in printed and "-[ row" not in printed
    narrow = _printed(_report_like(footer=True), 60)
    assert "-[ total ]" in narrow and narrow.split("-[ total ]")[1].split() == ["run", "total"]


def test_a_line_of_text_on_standard_output_is_not_broken_where_the_width_ends() -> None:
    """Probe 238: `no latency for …: not benchmarked (cnnlab bench source=PATH)` was broken over lines at the
    terminal's width, mid-command (and at 40 columns mid-path): copied, the fix no longer ran."""
    stream = io.StringIO()
    hint = f"no latency for /tmp/{RUN}: not benchmarked (cnnlab bench source=/tmp/{RUN})"
    ResultsConsole(file=stream, width=40).print(hint, markup=False)
    assert stream.getvalue() == hint + "\n"


def test_log_lines_to_a_pipe_are_one_plain_line_each_neither_padded_nor_wrapped() -> None:
    """Probe 238: to a file or pipe (`2> train.log`, CI) each log line was padded with spaces to COLUMNS (160 by
    default) and a longer one wrapped onto a second line. A terminal keeps rich's columns."""
    stream = io.StringIO()
    handler = TerminalSafeHandler(console=Console(file=stream, width=40), show_path=False, markup=False)
    logger = logging.getLogger("cnnlab.test_console")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        long = "a message longer than the forty columns of this console, with fix=a.b.c at its end"
        logger.warning(long)
        logger.info("two lines\nthe second \x1b[31m")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(line == line.rstrip() for line in lines), lines
    assert lines[0].endswith(f" WARNING  {long}") and lines[0].startswith("[")
    prefix = len(lines[1]) - len("two lines")
    assert lines[1].endswith(" INFO     two lines") and lines[2] == " " * prefix + "the second \\x1b[31m"


def test_a_closed_standard_output_is_one_line_and_exit_2_before_any_work(monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """Probe 238: `cnnlab list models >&-` (and inspect, report --no-write) exited 0 with nothing written anywhere:
    sys.stdout is None and rich wrote the results to a null file."""
    import sys

    from cnnlab import cli

    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "argv", ["cnnlab", "list", "models"])
    with pytest.raises(SystemExit) as stopped:
        cli.run()
    assert stopped.value.code == 2
    said = capsys.readouterr().err
    assert said.startswith("error: standard output is closed (>&-)") and "> results.txt" in said
