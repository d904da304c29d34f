"""The one exception type for mistakes a user can fix.

Raise `CnnlabError("what is wrong", fix="what to do")` anywhere; the command line prints it as
one line, exits non-zero and shows no traceback (`--debug` or CNNLAB_DEBUG=1 shows it).
It subclasses Hydra's CompactHydraException so that a failed job inside a multirun sweep is
also reported by Hydra as a single message rather than a stack trace.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from hydra.errors import CompactHydraException


class CnnlabError(CompactHydraException):
    """A user-facing error: a message and, ideally, the fix."""

    exit_code = 2
    before_work = False  # set by `found_before_work`: a refusal of settings or inputs, before the run did anything

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.message} — {self.fix}" if self.fix else self.message

    def __str__(self) -> str:
        return f"error: {self.one_line()}"


@contextlib.contextmanager
def found_before_work() -> Iterator[None]:
    """Marks the CnnlabErrors raised inside (a block, or a decorated function) as refusals of the run's settings or
    inputs, found before it did any work: such a run leaves no run folder behind (cnnlab.app), so a typo does not
    add a `failed` run to `cnnlab list runs`. Usable as `with found_before_work():` and as `@found_before_work()`."""
    try:
        yield
    except CnnlabError as exc:
        exc.before_work = True
        raise


class ModelLoadError(CnnlabError):
    """A runtime cannot load a model file at all (read, convert or compile it), so it can run that file at no batch
    size: a benchmark skips the whole backend rather than each batch size (cnnlab/deploy/bench_session.py)."""


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    """`exc` and what it was raised from or while handling (`__cause__`, else `__context__`), in turn, each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__

