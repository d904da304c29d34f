"""One rich console for logs and progress (stderr) and one for results (stdout).

Logs and progress bars share a console so log lines scroll above a live progress bar;
tables go to stdout so `cnnlab bench ... > table.txt` captures only the results.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import sys
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich._null_file import NullFile
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from cnnlab.wording import visible

# `extra=` of a log call whose line is an entry of run.json's `warnings` too (steps/recording.recorded_warnings keeps
# it there while a command runs): how a layer that has no run context (the data builders) records a warning that
# changes what a run's figures mean, as record_warning does with one.
RUN_WARNING = {"run_warning": True}


# What the characters cnnlab prints in tables and messages become on a stream whose encoding lacks them (ASCII,
# Latin-1: `PYTHONIOENCODING=ascii`, a C locale without UTF-8 mode); anything else is written as a \uXXXX escape.
_PLAIN = {"—": "-", "–": "-", "−": "-", "×": "x", "±": "+/-", "≥": ">=", "≤": "<=", "→": "->", "←": "<-", "↔": "<->",
          "…": "...", "★": "*", "✓": "yes", "✗": "no", "·": ".", "≈": "~", "µ": "u", "•": "*", "‘": "'", "’": "'",
          "“": '"', "”": '"', "²": "^2", "°": " deg"}
_TRANSLITERATE = "cnnlab.transliterate"


def _transliterate(error: UnicodeError) -> tuple[str | bytes, int]:
    """One character its encoding lacks, as plain ASCII (`_PLAIN`, else a \\uXXXX escape); a lone surrogate standing for
    an undecodable byte (a file name, under surrogateescape: what a C locale's stdout does) as that byte again."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    char = error.object[error.start]
    if "\udc80" <= char <= "\udcff":
        return bytes([ord(char) - 0xDC00]), error.start + 1
    return _PLAIN.get(char, char.encode("ascii", "backslashreplace").decode()), error.start + 1


codecs.register_error(_TRANSLITERATE, _transliterate)


def tolerate_narrow_encodings() -> None:
    """Let standard output and error write what their encoding lacks as plain ASCII (× as x, ± as +/-, — as -) instead
    of raising UnicodeEncodeError: under `PYTHONIOENCODING=ascii` or latin-1, `list models`, `inspect` and `report`
    ended in a traceback, and `bench` timed everything, then failed printing its table and recorded the run failed
    (probe 238). A stream that is not a text file of its own (a test's capture) is left as it is."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors in ("strict", "backslashreplace", "surrogateescape") \
                and codecs.lookup(stream.encoding).name != "utf-8":
            with contextlib.suppress(ValueError, OSError):  # a closed stream: nothing will be written to it
                stream.reconfigure(errors=_TRANSLITERATE)


def _width(stream: object) -> int | None:
    """Let rich size a real terminal; elsewhere (CI logs, pipes) don't wrap log lines at 80 columns."""
    is_tty = getattr(stream, "isatty", lambda: False)()
    return None if is_tty else int(os.environ.get("COLUMNS", 160))


# A width no console reaches: what a table measures when nothing squeezes it.
_UNBOUNDED = 100_000


def whole_cells_width(table: Table, console: Console) -> int:
    """The narrowest width (columns) at which `table` shows every cell whole: each column as wide as its longest word
    (rich wraps cells at spaces, but below a word's length it cuts the cell to "76…"), with padding and borders."""
    options = console.options.update(width=_UNBOUNDED)
    return table.__rich_measure__(console, options).minimum


def expanded(table: Table) -> RenderableType:
    """`table` one row per block of "column  value" lines (psql's expanded display, `\\x`): what a table too wide for
    the console shows instead of its numbers cut short (probe 238: val top-1 76.94 % read `76…` on an 80-column
    terminal). A value longer than the width folds onto the next line rather than being cut; row styles and the footer
    row are kept; empty cells are left out."""
    headers = [Text.from_markup(c.header) if isinstance(c.header, str) else c.header for c in table.columns]
    label_width = max((h.cell_len for h in headers), default=0)
    blocks: list[RenderableType] = []
    if table.title:
        blocks.append(Text(table.title, style="italic") if isinstance(table.title, str) else table.title)
    records = [([column._cells[i] for column in table.columns], table.rows[i].style) for i in range(table.row_count)]
    if table.show_footer:
        records.append(([column.footer for column in table.columns], "bold"))
    for number, (cells, style) in enumerate(records, start=1):
        label = "total" if number > table.row_count else f"row {number}"
        blocks.append(Text(f"-[ {label} ]", style="dim"))
        for header, cell in zip(headers, cells):
            value = Text.from_markup(cell) if isinstance(cell, str) else cell
            if isinstance(value, Text) and not value.plain.strip():
                continue  # an empty cell (a footer's blank, a mark not set) says nothing here
            if isinstance(value, Text):
                blocks.append(Text.assemble((header.plain.ljust(label_width), "bold"), "  ", value, style=style or ""))
            else:
                blocks.append(Group(Text(header.plain, style="bold"), value))
    return Group(*blocks)


class ResultsConsole(Console):
    """Standard output's console (tables and results): a table too wide for the console to show its cells whole is
    printed expanded (one "column  value" block per row), never with cells cut to "…": a truncated number is a wrong
    number. Lines of text are soft-wrapped (never broken where the width ends: a `cnnlab bench source=PATH` fix split
    mid-path could not be copied, probe 238). Where a pipe or file takes the output, the width is COLUMNS or 160."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: D102 - Console.print, tables fitted
        kwargs.setdefault("soft_wrap", all(isinstance(o, (str, Text)) for o in objects))
        super().print(*(self._fitted(o) if isinstance(o, Table) else o for o in objects), **kwargs)

    def _fitted(self, table: Table) -> RenderableType:
        """`table` expanded where its cells cannot all be whole at this width; else the table, its numbers (the
        right-justified columns) never wrapped and every cell folded rather than cut where rich narrows a column
        below its longest word (probe 241: run paths read `prune/2026-…` at 98–142 columns)."""
        if whole_cells_width(table, self) > self.width:
            return expanded(table)
        for column in table.columns:
            column.overflow = "fold"
            column.no_wrap = column.no_wrap or column.justify == "right"
        return table


console = Console(stderr=True, highlight=False, width=_width(sys.stderr))
out = ResultsConsole(highlight=False, width=_width(sys.stdout))


class TerminalSafeHandler(RichHandler):
    """RichHandler whose messages reach the terminal with control characters escaped (wording.visible): a file or
    class named "\\x1b[31m…" coloured the terminal, "\\r…" overwrote the line (probes 126, 132: the predict warnings,
    the training log's class list). run.log keeps the text as it was."""

    def render_message(self, record: logging.LogRecord, message: str) -> Any:
        return super().render_message(record, visible(message, lines=True))

    def emit(self, record: logging.LogRecord) -> None:
        """On a terminal, rich's columns; to a pipe or file (CI logs, `2> train.log`), one plain line per record,
        `[HH:MM:SS] LEVEL    message`, neither wrapped at the width nor padded to it with spaces (probe 238), and
        its time on every line, for grep."""
        if self.console.is_terminal or isinstance(self.console.file, NullFile):
            super().emit(record)
            return
        try:
            prefix = f"[{datetime.fromtimestamp(record.created):%X}] {record.levelname:<8} "
            message = visible(self.format(record), lines=True).replace("\n", "\n" + " " * len(prefix))
            self.console.print(Text(prefix + message), soft_wrap=True, highlight=False)
        except Exception:  # noqa: BLE001 - logging's own contract: a handler's failure is handleError's to report
            self.handleError(record)


def make_log_handler() -> logging.Handler:
    """Console log handler (referenced by conf/hydra/job_logging/cnnlab.yaml)."""
    return TerminalSafeHandler(console=console, show_path=False, show_level=True, markup=False,
                               rich_tracebacks=False, log_time_format="[%X]")


def print_error(message: str) -> None:
    """The single line a user sees for a mistake they can fix (soft_wrap: never broken over lines). Under
    torchrun every rank prints its own; a rank other than 0 says which it is (`error (rank 1 of 2):`), so the same
    line twice reads as two ranks, and a line only one rank prints says where it came from."""
    from cnnlab.environment import launched_ranks

    text = visible(message.removeprefix("error:").strip(), lines=True)
    ranks = launched_ranks()
    label = f"error (rank {ranks.rank} of {ranks.world_size}): " if ranks.rank > 0 else "error: "
    console.print(Text.assemble((label, "bold red"), text), soft_wrap=True)


def debug_enabled() -> bool:
    return os.environ.get("CNNLAB_DEBUG", "") not in ("", "0", "false", "False")


class HeldSweepFailureLine:
    """sys.stderr while a sweep runs, holding back Hydra's own "Error executing job with overrides: [...]" line.

    Hydra (hydra/core/utils.py, JobReturn.return_value) writes that line to sys.stderr just before it re-raises a
    failed job's exception. cnnlab's error line says the same and more (the job number, its log, the fix), so the
    held line is dropped when the failure is a user error, and written before the traceback when it is a bug (it
    names the overrides). Anything else written meanwhile lets it through first, in order.
    """

    PREFIX = "Error executing job with overrides:"

    def __init__(self, stream) -> None:  # noqa: ANN001 - a text stream
        self.stream, self.held = stream, ""

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX) and not self.held:
            self.held = text
            return len(text)
        self.release()
        return self.stream.write(text)

    def release(self) -> None:
        """Write the held line, if any."""
        if self.held:
            self.stream.write(self.held)
            self.held = ""

    def drop(self) -> None:
        self.held = ""

    def __getattr__(self, name: str):  # noqa: ANN204 - flush, isatty, fileno... of the real stream
        return getattr(self.stream, name)
