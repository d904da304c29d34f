"""Two or more ONNX files timed against each other on this machine: one interleaved, paired session.

A latency measured now and one measured a minute later do not divide into a speed-up: the machine changed in
between (turbo, thermal limits, a neighbour's job). So every comparison in cnnlab — `cnnlab bench
source=[A,B,...]` (and the pipeline's bench stage, which runs it), quantize's FP32-vs-candidates timing and
prune's dense-vs-pruned timing — goes through `time_paired`: per round, per batch size, every file once with
`cnnlab.deploy.bench.time_onnx` (warm-up, then timed runs until a minimum count and time), in the same order
(A, B, ..., A, B, ...). Per file and batch size the round with the median p50 is kept, and every round's p50
is kept too. A speed-up is paired round by round: the median of the per-round ratios (`paired_speedup`), never the
ratio of two medians, whose rounds may come from different phases of the machine's speed (probe 192: one file
timed twice read 1.45× faster that way, 1.02× slower round by round); how far the rounds spread says whether the
session was stable.

Threads: one default everywhere, `default_threads()` = the physical cores this process may use. Hyper-threads
share their core's FMA units, so a second thread per core adds contention, not arithmetic; it is what
`cnnlab bench` has always used and what docs/bench.md explains, and a speed-up that prune or quantize
records is then measured at the threads of the bench runs the report reads.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from cnnlab.deploy.contention import CpuWatch, say_if_busy
from cnnlab.deploy.peak import physical_cores
from cnnlab.environment import core_share
from cnnlab.errors import CnnlabError
from cnnlab.interrupts import raise_if_interrupted
from cnnlab.wording import ratio_range_text, ratio_text, ratio_than

if TYPE_CHECKING:  # deploy.bench imports torch; `cnnlab report` reads the stability rule below without it
    from cnnlab.deploy.bench import LatencyStats, TimingPlan

ROUNDS = 3
UNSTABLE_SPREAD = 0.15  # (max - min) / median of the per-round ratios above which a ratio is not trusted
SAME_NETWORK_TOLERANCE = 0.10  # one network timed twice further apart than this (or its rounds' spread): unstable


def default_threads() -> int:
    """Intra-op threads of every timing when none are asked for: the physical cores (see the module docstring),
    shared among the jobs running at once (a joblib sweep of 2 jobs on 2 cores: 1 each; environment.core_share)."""
    return core_share(physical_cores())


def threads_or_default(threads: int | None) -> int:
    """`threads`, or `default_threads()` for None or 0 (a config's "not set")."""
    return default_threads() if threads in (None, 0) else int(threads)  # type: ignore[arg-type]


@dataclass(frozen=True)
class PairedSettings:
    """How a session times: batch sizes, intra-op threads, interleaved rounds, the per-timing plan, and where
    (`runtime`: onnxruntime | openvino | tensorrt; `device`: cpu | cuda[:N])."""

    batch_sizes: tuple[int, ...] = (1,)
    threads: int = field(default_factory=default_threads)
    rounds: int = ROUNDS
    plan: TimingPlan = field(default_factory=lambda: _bench().TimingPlan())
    runtime: str = "onnxruntime"
    device: str = "cpu"
    peak_gflops: float | None = None  # bench.peak_gflops: the % peak basis in place of the estimate (deploy/peak.py)

    def __post_init__(self) -> None:
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise CnnlabError(f"timing batch sizes {list(self.batch_sizes)} must be at least 1",
                              fix="use batch sizes such as [1] or [1,32]")
        if self.rounds < 1 or self.threads < 1:
            raise CnnlabError(f"timing rounds ({self.rounds}) and threads ({self.threads}) must be at least 1")


@dataclass(frozen=True)
class SubjectTiming:
    """One file's latency per batch size: the median round's statistics, and every round's p50 (ms)."""

    stats: Mapping[int, LatencyStats]
    p50_per_round: Mapping[int, tuple[float, ...]]

    def p50_ms(self) -> dict[int, float]:
        return {batch: stats.p50_ms for batch, stats in self.stats.items()}

    def to_dict(self) -> dict[str, object]:
        """Per batch size (as text, a JSON key): the statistics and `p50_ms_per_round`."""
        return {str(batch): {**stats.to_dict(), "p50_ms_per_round": list(self.p50_per_round[batch])}
                for batch, stats in self.stats.items()}


@dataclass(frozen=True)
class PairedTiming:
    """The result of one session: every subject's timing, by the name it was given."""

    settings: PairedSettings
    subjects: Mapping[str, SubjectTiming]
    others_cores: float | None = None  # cores other processes kept busy meanwhile (contention.CpuWatch); None: unknown

    def __getitem__(self, name: str) -> SubjectTiming:
        return self.subjects[name]

    def ratios(self, reference: str, other: str, batch: int) -> tuple[float, ...]:
        """reference p50 / other p50 per round (> 1: `other` is faster), the rounds taken side by side."""
        return tuple(r / o for r, o in zip(self[reference].p50_per_round[batch], self[other].p50_per_round[batch]))

    def speedup(self, reference: str, other: str, batch: int) -> float:
        """The paired speed-up of `other` over `reference`: the median of the per-round ratios (paired_speedup)."""
        return paired_speedup(self.ratios(reference, other, batch),
                              self[reference].stats[batch].p50_ms / self[other].stats[batch].p50_ms)

    def stable(self, reference: str, other: str, batch: int) -> bool:
        """Whether the per-round ratios agree within UNSTABLE_SPREAD (one round: trivially)."""
        return spread(self.ratios(reference, other, batch)) <= UNSTABLE_SPREAD


def paired_speedup(rounds: Sequence[float], unpaired: float | None = None) -> float:
    """The speed-up a paired session measured: the median of its per-round ratios (reference ÷ subject p50 of the
    same round), of an even count the geometric mean of the middle two — so A over B is exactly 1 / (B over A).
    Pairing within a round cancels a change of the machine's speed between rounds; the ratio of each file's median
    round does not. `unpaired`: the ratio of the two p50s, used where no rounds were kept (a record written before
    they were). Raises ValueError for neither."""
    ordered = sorted(r for r in rounds if r > 0)
    if not ordered:
        if unpaired is None:
            raise ValueError("a speed-up needs per-round ratios or the two p50s")
        return unpaired
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else math.sqrt(ordered[middle - 1] * ordered[middle])


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of per-round figures (ratios or ms: a fraction, 0.15 = 15 %); 0 for fewer than two
    values. The median of an even count is the mean of its two middle values (probe 239: the upper one was used,
    so 4 rounds read as steadier than they were)."""
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / statistics.median(values)


@dataclass(frozen=True)
class NetworkKey:
    """What decides whether two timed files compute the same thing: the architecture's name, the parameter count,
    the FLOPs of one image and the precision of the graph. A magnitude prune (zeros, every shape kept), a fine-tune
    of the same network or an FP32 "quantize" that kept its float graph is the same network as its source: it
    should time alike. The same network at another input size is not (its parameters are the same, its FLOPs are
    not: a LeNet-5 at 16 px against 32 px, probe 55)."""

    name: str | None
    params: int | None
    precision: str | None = "fp32"
    flops: int | None = None

    def same_as(self, other: "NetworkKey") -> bool:
        """Same name and precision, parameters and FLOPs within 2 % (a head may differ by a few classes). Without
        both FLOPs counts (an older record) the input size cannot be compared: not the same."""
        if not self.name or self.name != other.name or self.precision != other.precision:
            return False
        return all(a and b and abs(a - b) <= 0.02 * max(a, b)
                   for a, b in ((self.params, other.params), (self.flops, other.flops)))


@dataclass(frozen=True)
class PairedRatio:
    """A speed-up from one interleaved session — the reference's p50 over the subject's — judged by the rules every
    cnnlab table uses (`cnnlab report`, `bench`, the prune table): `rounds` are the per-round ratios; it is
    `unstable` when they spread by more than UNSTABLE_SPREAD; for a `same_network` pair (a magnitude prune, a
    network timed twice) the true ratio is 1, and it is `apart` when it timed further from 1 than
    SAME_NETWORK_TOLERANCE or its rounds' own spread (the session measured the machine's load, not the models)."""

    ratio: float
    rounds: tuple[float, ...] = ()
    same_network: bool = False

    @classmethod
    def of_rounds(cls, rounds: Sequence[float], unpaired: float, *, same_network: bool = False) -> "PairedRatio":
        """The ratio of a session from its per-round ratios (paired_speedup; `unpaired`, the two p50s' ratio, where
        it kept none)."""
        return cls(paired_speedup(rounds, unpaired), tuple(rounds), same_network=same_network)

    @property
    def unstable(self) -> bool:
        return rounds_disagree(self.rounds)

    @property
    def one_round(self) -> bool:
        """Timed in one round: no second one says whether the machine's speed held (probe 192: four one-round
        sessions of one pair read 2.68×, 1.20×, 1.51× and 1.50× slower, each a clean figure)."""
        return len(self.rounds) == 1

    @property
    def checked(self) -> bool:
        """A figure: rounds that agree, two at least (a record without rounds is judged by its ratio)."""
        return not self.unstable and not self.one_round

    @property
    def faster(self) -> bool | None:
        """Whether the subject is measured at least as fast as the reference: by a verdict its ratio and every round
        give alike (all >= 1: True, all < 1: False) — None when they fall on both sides of 1, where the session
        measured no direction, stable or not (probe 105: rounds 2.04, 0.99, 1.94; probe 113: a stable 1.0047 of
        rounds 1.00, 0.88, 0.94 was "measured faster"). A record without rounds is judged by its ratio."""
        sides = {r >= 1.0 for r in self.rounds} | {self.ratio >= 1.0}
        return sides.pop() if len(sides) == 1 else None

    @property
    def apart(self) -> bool:
        return self.same_network and abs(self.ratio - 1) > max(SAME_NETWORK_TOLERANCE, spread(self.rounds))

    def text(self, than: str | None = None) -> str:
        """One table cell: "2.50× faster", "4.02× faster (unstable: 3.73–5.47× faster)"; a same-network pair is
        always noise, with its rounds' range when they spread or lean one way ("1.16× slower (same network:
        noise; rounds 1.03–1.39× slower)"); one round: "1.50× slower (one round: unchecked)". `than` names the
        reference: "2.50× faster than FP32 (unstable: …)"."""
        shown = ratio_text(self.ratio) if than is None else ratio_than(self.ratio, than)
        spanned = ratio_range_text(min(self.rounds), max(self.rounds)) if self.rounds else ""
        if self.same_network:
            return f"{shown} (same network: noise" + (f"; rounds {spanned})" if self.unstable or self.apart else ")")
        if self.one_round:
            return f"{shown} (one round: unchecked)"
        return f"{shown} (unstable: {spanned})" if self.unstable else shown


def rounds_disagree(rounds: Sequence[float]) -> bool:
    """Whether per-round ratios spread by more than UNSTABLE_SPREAD: the session's ratio is not a figure."""
    return spread(rounds) > UNSTABLE_SPREAD


def median_round(rounds: Sequence[LatencyStats]) -> LatencyStats:
    """The round with the median p50 (the upper middle one of an even count)."""
    return sorted(rounds, key=lambda stats: stats.p50_ms)[len(rounds) // 2]


def time_paired(files: Mapping[str, Path], settings: PairedSettings, *,
                flops: int | Mapping[str, int | None] | None = None,
                precisions: Mapping[str, str] | None = None) -> PairedTiming:
    """Time every file at every batch size in `settings.rounds` interleaved rounds. `flops` per image: one
    figure for all files, or one per name; `precisions`: what the runtime computes each name in (f32 unless
    named; bf16 on OpenVINO). Raises CnnlabError when the runtime cannot run a file."""
    time_onnx, plan = _bench().time_onnx, settings.plan
    rounds: dict[str, dict[int, list[LatencyStats]]] = {name: {b: [] for b in settings.batch_sizes} for name in files}
    watch = CpuWatch.start()
    for _ in range(settings.rounds):
        for batch in settings.batch_sizes:
            for name, path in files.items():
                raise_if_interrupted()  # a Ctrl-C dropped inside onnxruntime's clean-up still stops the timing
                rounds[name][batch].append(time_onnx(path, batch, threads=settings.threads, runtime=settings.runtime,
                                                     device=settings.device, plan=plan,
                                                     flops=flops.get(name) if isinstance(flops, Mapping) else flops,
                                                     peak_gflops=settings.peak_gflops,
                                                     precision=(precisions or {}).get(name, "f32")))
    others = say_if_busy(watch)  # said by every command that times (bench, prune, quantize, search)
    return PairedTiming(settings, {
        name: SubjectTiming(stats={b: median_round(r) for b, r in per_batch.items()},
                            p50_per_round={b: tuple(s.p50_ms for s in r) for b, r in per_batch.items()})
        for name, per_batch in rounds.items()}, others_cores=None if others is None else round(others, 3))


def _bench():  # type: ignore[no-untyped-def]
    """cnnlab.deploy.bench, imported when a session is timed (see the TYPE_CHECKING import above)."""
    from cnnlab.deploy import bench

    return bench
