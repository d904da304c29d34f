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
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
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


console = Console(stderr=True, highlight=False, width=_width(sys.stderr))
out = Console(highlight=False, width=_width(sys.stdout))


class TerminalSafeHandler(RichHandler):
    """RichHandler whose messages reach the terminal with control characters escaped (wording.visible): a file or
    class named "\\x1b[31m…" coloured the terminal, "\\r…" overwrote the line (probes 126, 132: the predict warnings,
    the training log's class list). run.log keeps the text as it was."""

    def render_message(self, record: logging.LogRecord, message: str) -> Any:
        return super().render_message(record, visible(message, lines=True))


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
