"""The one exception type for mistakes a user can fix.

Raise `CnnlabError("what is wrong", fix="what to do")` anywhere; the command line prints it as
one line, exits non-zero and shows no traceback (`--debug` or CNNLAB_DEBUG=1 shows it).
It subclasses Hydra's CompactHydraException so that a failed job inside a multirun sweep is
also reported by Hydra as a single message rather than a stack trace.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class CnnlabError(CompactHydraException):
    """A user-facing error: a message and, ideally, the fix."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message

    def __str__(self) -> str:
        return f"error: {self.one_line()}"


class ModelLoadError(CnnlabError):
    """A runtime cannot load a model file at all (read, convert or compile it), so it can run that file at no batch
    size: a benchmark skips the whole backend rather than each batch size (cnnlab/deploy/bench_session.py)."""
