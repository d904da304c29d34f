"""Ctrl-C and SIGTERM stop a run as an `Interrupted` exception, and one that Python drops is raised again.

Python raises KeyboardInterrupt wherever the main thread is when the signal arrives. Inside a weakref callback,
a `__del__` or a garbage-collector finaliser (PyTorch, Optuna and onnxruntime all run some), the exception is
printed as "Exception ignored in: ..." and dropped, and the run carries on as if nothing happened (one Ctrl-C
in about five during a search). The handler here also remembers the interrupt, and `raise_if_interrupted()`,
which every long loop calls at a step boundary, raises it again there.

SIGTERM (what schedulers send before they kill a job, e.g. SLURM's preemption) is handled like Ctrl-C with exit
code 143, so the run record says interrupted and the last checkpoint stays resumable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterator

from cnnlab.environment import launched_ranks
from cnnlab.errors import exception_chain


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a termination signal, with what the command line's one-line hint needs
    (cnnlab.commands.interrupt_hint): how it stopped, the exit code, whether a checkpoint was kept."""

    def __init__(self, how: str = "Ctrl-C", *, exit_code: int = 130) -> None:
        super().__init__(how)
        self.how = how
        self.exit_code = exit_code
        self.checkpoint_kept = False
        self.no_checkpoint: str | None = None  # why the run keeps none by design (run.json `no_checkpoint`)
        self.resume = "resume=true"  # the word that continues this run (hydra_args.resume_argument)


# (how, exit code) of the signal received inside `signals_as_interrupt`, until the block ends
_pending: tuple[str, int] | None = None
_deferring: list[str | None] = []  # the open blocks of `interrupts_deferred`, each what it finishes (for the user)


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a Ctrl-C or SIGTERM arrived in this run, even if Python dropped the exception it
    raised at the time. One global read: cheap enough for every training step."""
    if _pending is not None:
        raise Interrupted(_pending[0], exit_code=_pending[1])


@contextlib.contextmanager
def interrupts_deferred(finishing: str | None = "the epoch's checkpoint") -> Iterator[None]:
    """Within this block a Ctrl-C or SIGTERM is remembered, not raised; it is raised when the block ends. For work
    that must finish once begun: an epoch's last.pt and its record (probe 139: a Ctrl-C during the save lost the
    finished epoch, which the docs promise to keep). Python handles signals between bytecodes of the main thread,
    so a save in C (torch.save's write) already finished; the save's Python around it did not. `finishing`: what
    the user is told is finished first (None: too quick to say)."""
    _deferring.append(finishing)
    try:
        yield
    finally:
        _deferring.pop()
    raise_if_interrupted()


def interruption_behind(exc: BaseException) -> Interrupted | None:
    """The interrupt that `exc` is a consequence of, or None: a KeyboardInterrupt in its chain of causes and
    contexts, or a Ctrl-C / SIGTERM received in this block. A second Ctrl-C during a library's clean-up after the
    first leaves that library's own error instead (Optuna's `_run_trial`: "UnboundLocalError: updated_state"),
    which is still the user stopping the run, not a bug."""
    for link in exception_chain(exc):
        if isinstance(link, KeyboardInterrupt):
            return link if isinstance(link, Interrupted) else Interrupted()
    return None if _pending is None else Interrupted(_pending[0], exit_code=_pending[1])


def _quiet_dropped_interrupts(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`sys.unraisablehook` less the `Interrupted` that Python drops inside a finaliser or weakref callback while it is
    remembered for `raise_if_interrupted`: the run stops at its next step boundary all the same, and Python printed
    "Exception ignored in: <function WeakIdKeyDictionary…> Traceback …" above the one-line message (probe 201: 4
    Ctrl-Cs in 11 during a search). Any other dropped exception is still reported."""
    def quiet(unraisable: Any) -> None:
        if not (isinstance(unraisable.exc_value, Interrupted) and _pending is not None):
            hook(unraisable)
    quiet.quiet_interrupts = True  # type: ignore[attr-defined]
    return quiet


def _signals_arrive_twice() -> bool:
    """True in a job of submitit's local executor (hydra/launcher=submitit_local): the job shares the terminal's
    process group, so one Ctrl-C reaches it directly and again, a moment later, forwarded by submitit's controller,
    which then kills it a second after that (submitit/local/local.py, Controller.kill_tasks). Taken as a second
    Ctrl-C, the forwarded copy cut the clean-up short and left the run recorded `running`."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "local"


# A file a parent process (`cnnlab pipeline`, running a stage) names: created when this process takes a Ctrl-C or
# SIGTERM, so that the parent forwards one only to a stage that did not get it itself (a `kill -INT` of the pipeline's
# pid alone: the stage trained on for a minute and was killed, its run left `running`; probe 173). A second one
# would cut the stage's clean-up short.
SIGNAL_NOTE_ENV = "CNNLAB_SIGNAL_NOTE"


def _note_signal() -> None:
    note = os.environ.get(SIGNAL_NOTE_ENV)
    if note:
        try:
            os.close(os.open(note, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError:
            pass  # the parent then forwards the signal: a second copy at worst, as a second Ctrl-C


def _ignore(signum: int, frame: Any) -> None:
    """A signal handler that does nothing (a pending signal still finds a handler: see signals_as_interrupt)."""


@contextlib.contextmanager
def worker_deaths_quiet() -> Iterator[None]:
    """Within this block a DataLoader worker's death raises nothing: torch's SIGCHLD handler (which raises "DataLoader
    worker (pid N) is killed by signal" for a worker of a loader still alive) is set aside. For the handling of a run's
    failure, whose traceback keeps the loader alive: the handler fired again there, inside cnnlab's own handling
    (probe 172: `evaluate -m` with a worker killed — a traceback, "a bug in cnnlab", a job left `running`)."""
    if not hasattr(signal, "SIGCHLD") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGCHLD, _ignore)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)


def _handover_failure(kind: type[BaseException], traceback: TracebackType | None) -> bool:
    """Whether an error is a DataLoader worker's death while it handed a batch over: a connection error raised in
    multiprocessing's resource-sharer thread. A SIGTERM to the process group (timeout, scancel) reaches the workers
    too, and that thread printed "ConnectionResetError: [Errno 104]" as a traceback beside the one-line message. The
    loader says a worker died itself, where that is news; a stopping run has nothing to add."""
    if not issubclass(kind, (ConnectionError, EOFError)):
        return False
    while traceback is not None:
        if Path(traceback.tb_frame.f_code.co_filename).parts[-2:] == ("multiprocessing", "resource_sharer.py"):
            return True
        traceback = traceback.tb_next
    return False


def _quiet_handover_failures(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`threading.excepthook` less `_handover_failure`s, which the thread raises."""
    def quiet(args: Any) -> None:
        if not _handover_failure(args.exc_type, args.exc_traceback):
            hook(args)
    quiet.quiet_handover = True  # type: ignore[attr-defined]
    return quiet


def _quiet_handover_failures_sys(hook: Callable[..., Any]) -> Callable[..., Any]:
    """`sys.excepthook` less `_handover_failure`s, which the thread also catches itself and hands to sys.excepthook,
    not to threading.excepthook (CI of stop 73: `BrokenPipeError` printed with only the thread filter on)."""
    def quiet(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        if not _handover_failure(kind, traceback):
            hook(kind, error, traceback)
    quiet.quiet_handover = True  # type: ignore[attr-defined]
    return quiet


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Within this block Ctrl-C (SIGINT) and SIGTERM raise `Interrupted` (exit codes 130 and 143) and are
    remembered for `raise_if_interrupted`. A repeated SIGTERM is ignored, so it cannot cut the clean-up short; a
    second Ctrl-C still interrupts the clean-up, as it always does, except where every Ctrl-C arrives twice
    (a submitit_local job). Python handles signals in the main thread
    only; elsewhere (a launcher's worker thread) both keep their previous handling."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        global _pending
        _note_signal()
        how, code = ("Ctrl-C", 130) if signum == signal.SIGINT else (signal.Signals(signum).name, 128 + signum)
        if signum == signal.SIGTERM and launched_ranks().world_size > 1:  # probe 122: read as "someone stopped it"
            how += (": under torchrun also what its agent sends every rank once another has failed — its report "
                    "names it")
        if signum != signal.SIGINT or _signals_arrive_twice():
            signal.signal(signum, signal.SIG_IGN)
        if signum == signal.SIGTERM and hasattr(signal, "SIGCHLD"):
            # sent to the process group (timeout, scancel, kill -- -PGID), it stops the DataLoader workers too, and
            # torch's SIGCHLD handler raised "DataLoader worker ... killed by signal: Terminated" in the clean-up,
            # printed as an "Exception ignored" traceback after the one-line message (probe 71): the run stops
            # anyway, so worker deaths are no longer news. A Python handler that does nothing, not SIG_DFL: a worker's
            # SIGCHLD already pending would find no Python handler and raise "OSError: Signal 17 ignored due to race
            # condition" wherever the clean-up was (a traceback, 1 run in ~10 of the test below)
            signal.signal(signal.SIGCHLD, _ignore)
        if _deferring:  # said once, at once: a save may take a while, and further presses seemed to do nothing
            if _pending is None and _deferring[-1]:
                os.write(2, f"{how}: finishing {_deferring[-1]}, then stopping\n".encode())
            _pending = _pending or (how, code)
            return
        _pending = _pending or (how, code)
        raise Interrupted(how, exit_code=code)

    # A process told to ignore Ctrl-C (SIG_IGN: e.g. a helper that its parent stops) keeps ignoring it.
    signals = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, stop) for signum in signals}
    if hasattr(signal, "SIGCHLD"):
        previous[signal.SIGCHLD] = signal.getsignal(signal.SIGCHLD)  # `stop` may change it: put back after
    # Installed once and kept for the rest of the process: the resource-sharer thread may report a worker's death
    # after this block has ended — the process stopping, its one-line message about to be printed (a CI run of
    # session 73 printed the traceback there). The same error from anywhere else is still printed.
    if not getattr(threading.excepthook, "quiet_handover", False):
        threading.excepthook = _quiet_handover_failures(threading.excepthook)
    if not getattr(sys.excepthook, "quiet_handover", False):
        sys.excepthook = _quiet_handover_failures_sys(sys.excepthook)
    if not getattr(sys.unraisablehook, "quiet_interrupts", False):
        sys.unraisablehook = _quiet_dropped_interrupts(sys.unraisablehook)
    try:
        yield
    finally:
        _pending = None
        for signum, handler in previous.items():
            if handler is not None:  # None: installed outside Python, which cannot be restored from here
                signal.signal(signum, handler)
