"""Speed-ups from paired measurements only: two models timed interleaved in one bench session.

A latency measured today and one measured yesterday (or a minute later, under another load) do not divide
into a speed-up: the machine changed in between. `cnnlab bench source=[A,B,...]` (the pipeline's bench
stage) times its models round by round — A, B, ..., A, B, ... — and records every round's p50; a
speed-up is the median over those rounds of source p50 / model p50 in the same round (deploy/paired.py's
paired_speedup), and it is reported only when it is stable:

- the ratio of each round (taken side by side) varies by at most UNSTABLE_SPREAD between rounds (the stability
  rule of cnnlab/deploy/paired.py, the module that timed them), and
- no network appears twice in the session with timings further apart than SAME_NETWORK_TOLERANCE (deploy/paired.py;
  or the rounds' own spread): two copies of one network must time alike, else the session measured the machine's
  load, not the models (e.g. a pretrained and a fine-tuned ResNet-18).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cnnlab.deploy.paired import UNSTABLE_SPREAD, PairedRatio
from cnnlab.runs import RunInfo
from cnnlab.hydra_args import path_argument
from cnnlab.wording import ratio_range_text

PAIRED = "paired"
SAME_NETWORK = "same network"
UNSTABLE = "unstable"
UNPAIRED = "unpaired"
PLAUSIBLE_RATIO = 1e4          # a recorded search speed-up beyond 10,000× either way is a damaged record, not a timing
REFERENCE = "vs reference"   # a search's chosen network against search.reference, from the search's own paired timing


@dataclass(frozen=True)
class Timing:
    """One model's latency in a session: the median round's record and every round's p50 (ms)."""

    record: dict[str, Any]
    per_round: tuple[float, ...]

    @property
    def p50_ms(self) -> float:
        return float(self.record["p50_ms"])


@dataclass(frozen=True)
class Session:
    """A paired bench run: per subject, the model run it times (export runs traced back to their model)."""

    run: RunInfo
    subjects: tuple[Path | None, ...]

    def timing(self, model_run: Path, matches: Callable[[dict[str, Any]], bool]) -> Timing | None:
        """The timing of `model_run` among the records that `matches` (backend, batch, device, threads, and the
        machine that timed them: machine_label)."""
        for record in (self.run.data.get("metrics") or {}).get("latency") or []:
            record = {**record, "machine": machine_label(self.run.data.get("environment"), str(record.get("device")))}
            index = record.get("subject")
            if index is not None and index < len(self.subjects) and self.subjects[index] == model_run \
                    and matches(record):
                return Timing(record, tuple(float(v) for v in record.get("p50_ms_per_round") or [record["p50_ms"]]))
        return None

    def members(self) -> list[Path]:
        return [s for s in dict.fromkeys(self.subjects) if s is not None]


@dataclass(frozen=True)
class SpeedUp:
    """A model against the one it was derived from. `ratio`: the median of the rounds' source p50 / this p50
    (> 1: faster), from one paired session (`bench_run`); shown only when status is `paired` or `same network`
    (then the difference is noise). A search run, which derives from no model, is instead shown against its
    search.reference (`versus`)."""

    status: str                       # paired | same network | unstable | unpaired | vs reference
    ratio: float | None = None
    per_round: tuple[float, ...] = ()
    bench_run: Path | None = None
    note: str | None = None           # why it is not shown, or what it means
    versus: str | None = None         # status `vs reference`: the reference model's name

    @property
    def shown(self) -> float | None:
        return self.ratio if self.status in (PAIRED, SAME_NETWORK, REFERENCE) else None

    @property
    def vs_source(self) -> float | None:
        """The shown ratio when it is against the model's source (report.json `speedup_vs_source`)."""
        return None if self.status == REFERENCE else self.shown


def machine_label(environment: Any, device: str) -> str | None:
    """The machine a bench run timed `device` on, as its run.json `environment` (untrusted) names it: the GPU for
    cuda, else the CPU ("AMD EPYC (family 26, model 2)": the numbers tell CPU generations apart that a VM names
    alike). None where the record does not say (runs from before it was recorded). Latencies of two machines are no
    comparison (probe 107: a seed group averaged this machine's 0.025 ms with a laptop's 0.151 ms)."""
    if not isinstance(environment, Mapping):
        return None
    if device.startswith("cuda"):
        gpus = environment.get("gpus")
        index = int(device.partition(":")[2]) if device.partition(":")[2].isdigit() else 0
        gpu = gpus[index] if isinstance(gpus, list) and index < len(gpus) else None
        return str(gpu["name"]) if isinstance(gpu, Mapping) and gpu.get("name") else None
    cpu = environment.get("cpu")
    if not isinstance(cpu, Mapping) or not isinstance(cpu.get("model"), str):
        return None
    numbers = [f"{key} {cpu[field]}" for key, field in (("family", "family"), ("model", "model_number"))
               if isinstance(cpu.get(field), int) and not isinstance(cpu.get(field), bool)]
    return f"{cpu['model']} ({', '.join(numbers)})" if numbers else cpu["model"]


def reference_speedup(run: RunInfo) -> SpeedUp | None:
    """A search run's recorded speed-up over its search.reference (metrics `speedup_vs_reference`: the median of
    the per-round ratios reference ÷ candidate, timed interleaved by the search), or None when it has none or the
    record does not hold a plausible ratio (within PLAUSIBLE_RATIO either way) and the reference's name (run.json is
    untrusted input). Unstable, by the rule of every paired ratio, where the rounds it records (search.chosen
    `speedup_per_round`) spread by more than UNSTABLE_SPREAD; a record without them is judged by its ratio."""
    if run.command != "search":
        return None
    ratio = run.metrics.extra.get("speedup_vs_reference")
    search = run.data.get("search")
    settings = search.get("settings") if isinstance(search, dict) else None
    name = settings.get("reference") if isinstance(settings, dict) else None
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) \
            or not 1 / PLAUSIBLE_RATIO <= ratio <= PLAUSIBLE_RATIO or not isinstance(name, str) or not name:
        return None
    chosen = search.get("chosen") if isinstance(search, dict) else None
    recorded = chosen.get("speedup_per_round") if isinstance(chosen, dict) else None
    plausible = isinstance(recorded, list) and all(
        isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) and r > 0 for r in recorded)
    rounds = tuple(float(r) for r in recorded) if plausible else ()  # type: ignore[union-attr]
    judged = PairedRatio(float(ratio), rounds)
    if judged.unstable:  # probe 194: rounds 3.81 and 5.08 (29 % apart) read "4.40× faster vs mobilenet_v3_small"
        return SpeedUp(UNSTABLE, float(ratio), rounds, run.path,
                       f"unstable: the search's rounds against search.reference={name} gave "
                       f"{ratio_range_text(min(rounds), max(rounds))} (more than {UNSTABLE_SPREAD:.0%} apart)",
                       versus=name)
    if judged.one_round:
        return SpeedUp(UNSTABLE, float(ratio), rounds, run.path, "unstable: the search timed it against "
                       f"search.reference={name} in one round (search.latency.rounds=1), which cannot say whether the "
                       "machine's speed held", versus=name)
    return SpeedUp(REFERENCE, float(ratio), rounds, bench_run=run.path, versus=name,
                   note=f"over search.reference={name}, timed interleaved by the search itself")


def sessions(runs: Sequence[RunInfo], subject_run: Callable[[Mapping[str, Any]], Path | None]) -> list[Session]:
    """Every paired bench run, newest first; `subject_run`: the model run a session's subject (run.json
    paired.subjects[i]) is now (cnnlab/links.py), None where it is no run or another model."""
    found = []
    for run in runs:
        paired = run.data.get("paired") if run.command == "bench" else None
        if paired:
            subjects = tuple(subject_run(s) for s in paired["subjects"])
            found.append(Session(run, subjects))
    return sorted(found, key=lambda s: s.run.started_at, reverse=True)


def speedup(model: Path, source: Path, found: Sequence[Session], matches: Callable[[dict[str, Any]], bool],
            same_network: Callable[[Path, Path], bool], unpaired: str | None = None) -> SpeedUp:
    """`model` against `source` from the newest session that timed both; see the module docstring. `unpaired`: the
    note where no session timed the two (the report's names the setting it compares, and a source file outside any
    run)."""
    for session in found:
        ours, theirs = session.timing(model, matches), session.timing(source, matches)
        if ours is None or theirs is None:
            continue
        rounds = tuple(t / o for t, o in zip(theirs.per_round, ours.per_round))
        where = session.run.path
        judged = PairedRatio.of_rounds(rounds, theirs.p50_ms / ours.p50_ms, same_network=same_network(model, source))
        ratio = judged.ratio
        if judged.unstable:
            return SpeedUp(UNSTABLE, ratio, rounds, where,
                           f"unstable: the rounds gave {ratio_range_text(min(rounds), max(rounds))} (more than "
                           f"{UNSTABLE_SPREAD:.0%} apart)")
        if judged.apart:
            return SpeedUp(UNSTABLE, ratio, rounds, where,
                           f"unstable: the same network timed {ratio:.2f}× apart in one session")
        disagreement = _disagreement(session, matches, same_network)  # every ratio of such a session (probe 88:
        if disagreement:                                                 # distill's "same network" ones read noise)
            return SpeedUp(UNSTABLE, ratio, rounds, where, f"unstable session: {disagreement}")
        if judged.same_network:
            return SpeedUp(SAME_NETWORK, ratio, rounds, where, "same network: the difference is noise")
        if judged.one_round:  # probe 192: a one-round ratio shown as a clean speed-up
            return SpeedUp(UNSTABLE, ratio, rounds, where, "unstable: timed in one round (bench.rounds=1), which "
                                                           "cannot say whether the machine's speed held; time both "
                                                           "again with bench.rounds=3 or more")
        return SpeedUp(PAIRED, ratio, rounds, where)
    if any(model in session.subjects and source in session.subjects for session in found):
        # timed together, but not at the backend, batch, device and threads the report compares
        return SpeedUp(UNPAIRED, note="no paired timing with its source in the setting compared (its sessions "
                                      "with its source timed another backend, batch, device, thread count or machine)")
    return SpeedUp(UNPAIRED, note=unpaired or "no paired timing with its source: time both in one session, e.g. "
                                              f"cnnlab bench {path_argument('source', [source, model])}")


def _disagreement(session: Session, matches: Callable[[dict[str, Any]], bool],
                  same_network: Callable[[Path, Path], bool]) -> str | None:
    """Two copies of one network in the session that timed further apart than the noise, in words."""
    members = session.members()
    for i, a in enumerate(members):
        for b in members[i + 1:]:
            if not same_network(a, b):
                continue
            ta, tb = session.timing(a, matches), session.timing(b, matches)
            if ta is None or tb is None:
                continue
            judged = PairedRatio.of_rounds(tuple(x / y for x, y in zip(ta.per_round, tb.per_round)),
                                           ta.p50_ms / tb.p50_ms, same_network=True)
            if judged.apart:
                named = ", ".join(f"{run.parent.name}/{run.name}" for run in (a, b))  # a sweep's jobs: 0, 1
                return f"the same network ({named}) timed {judged.ratio:.2f}× apart"
    return None
