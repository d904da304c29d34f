"""How much of the machine other processes used while cnnlab timed: a busy machine biases a speed-up.

Pairing the rounds of a session cancels a change of the machine's speed between rounds, not a neighbour that runs
during them: on a busy 2-core machine nearly every call of a 2–3 ms dense network is interrupted and few of a pruned
network's 0.3 ms calls are, so every round favours the shorter call (probe 196: a ResNet-18 pruned at 0.5 read 45×
faster beside two busy processes, 27× beside ordinary load, 6.7× on the quiet machine) and the rounds agree on the
wrong figure. What the timing cannot see in its own numbers, the kernel counts: the CPU time every process used
(/proc/stat: all cores' busy time, a VM's stolen time included) less this process's own (its threads' CPU time),
over the wall time, is how many cores others kept busy.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from cnnlab.console import RUN_WARNING
from cnnlab.environment import cpu_info

# Other processes' average use, in cores, above which a timing is said to be disturbed: a quiet VM's own daemons
# stay near 0.02; one busy neighbour on a 2-core machine is ~1.
BUSY_CORES = 0.25
_STAT = "/proc/stat"


def _busy_seconds() -> float | None:
    """Seconds of CPU time all processes have used since boot on the cores this process may run on (its affinity:
    a container pinned to 2 of a host's 64 cores is not disturbed by the other 62), from /proc/stat's per-core lines:
    all but idle and iowait, a VM's `steal` included (time the host gave the core to others); the `cpu` total where
    the affinity is not known. None where the file cannot be read (not Linux)."""
    try:
        with open(_STAT, encoding="ascii") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu")]
    except OSError:
        return None
    try:
        mine = {f"cpu{core}" for core in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        mine = set()
    rows = [fields for fields in lines if fields[0] in mine] or [fields for fields in lines if fields[0] == "cpu"]
    if not rows or any(len(fields) < 5 for fields in rows):
        return None
    busy = 0
    for fields in rows:
        ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal (guest in user)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuWatch:
    """Started before a timing, read after it: `others_cores()` is the cores other processes kept busy meanwhile."""

    wall: float
    own: float
    busy: float | None

    @classmethod
    def start(cls) -> "CpuWatch":
        return cls(time.perf_counter(), time.process_time(), _busy_seconds())

    def others_cores(self) -> float | None:
        """Average cores used by other processes since start (0 or more); None where the kernel's counts cannot be
        read or no time passed."""
        busy, wall = _busy_seconds(), time.perf_counter() - self.wall
        if busy is None or self.busy is None or wall <= 0:
            return None
        return max(0.0, (busy - self.busy) - (time.process_time() - self.own)) / wall


BUSY_PREFIX = "other processes kept"  # how busy_note begins: the report finds it among a bench run's warnings


def busy_note(others: float | None, cores: int) -> str | None:
    """The warning for a timing beside other work (`others`: CpuWatch.others_cores; `cores`: the machine's usable
    cores), None where the machine was quiet or the load is not known."""
    if others is None or others <= BUSY_CORES:
        return None
    return (f"{BUSY_PREFIX} {others:.1f} of the {cores} cores busy while the models were timed: a longer call "
            "is interrupted more often, so latencies read high and speed-ups favour the faster model — time them "
            "again on a quiet machine")


def say_if_busy(watch: CpuWatch) -> float | None:
    """The cores other processes kept busy since `watch` started (CpuWatch.others_cores), and busy_note's warning
    logged where that disturbed the timing — kept in run.json (RUN_WARNING) by every command that times: a paired
    session, and one model's bench (probe 219: a LeNet-5 read 123 ms beside two busy loops, 0.4 ms on the quiet
    machine, without a word)."""
    others = watch.others_cores()
    note = busy_note(others, int(cpu_info()["usable_cores"] or 1))
    if note is not None:
        logging.getLogger("cnnlab").warning("%s", note, extra=RUN_WARNING)
    return others
