"""The sections of run.json as typed, frozen objects: `model`, `dataset`, `source`, `metrics` (with its latency
records) and `artifacts`.

Each has `from_dict`, which checks every field a reader uses and raises `RecordProblem` (a ValueError) saying
which one is wrong, and `to_dict`, which gives back what was read (fields a command records beyond the typed ones
travel in `extra`, unchecked). runs.py validates a whole record with these on read, so a damaged run.json becomes
a run with the status `damaged`, never a crash in a command; readers (the report, `cnnlab list`) then use the
typed fields instead of `.get` chains. No torch here: `cnnlab list` and `report` stay light.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping

from cnnlab.fileio import link_loop


MAX_COUNT = 1e15  # parameters, FLOPs, bytes, classes: far above any network's, far below a float's overflow
MAX_SIDE = 65_536  # px


class RecordProblem(ValueError):
    """A run.json section that cannot be used; the message names the field (`model.params is str, ...`)."""


def type_problem(where: str, value: Any, types: tuple[type, ...], *, required: bool = False) -> str | None:
    """Why `value` (at `where`) is not one of `types`, or None. None passes unless `required`."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, types):  # bool passes isinstance(int): refuse it
        return f"{where} is {type(value).__name__}, expected {' or '.join(t.__name__ for t in types)}"
    return None


def typed(*types: type, required: bool = False, default: Any = None,
          within: tuple[float, float] | None = None) -> Any:
    """A section field declared once: the dataclass field and its check on read, one of `types` (None passes unless
    `required`); a number `within` (low, high) must also be finite and in that closed range."""
    return field(default=default, metadata={"types": types, "required": required, "within": within})


def range_problem(where: str, value: Any, within: tuple[float, float] | None) -> str | None:
    """Why a number is out of its range (NaN included), or None."""
    if within is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = within
    if not low <= value <= high:  # False for NaN too
        return f"{where} is {value!r}, expected a number in [{low:g}, {high:g}]"
    return None


class Section:
    """A run.json section: typed fields (declared with `typed`, checked on read) and `extra` (the rest, as
    recorded)."""

    NAME: ClassVar[str]
    extra: Mapping[str, Any]

    @classmethod
    def checks(cls) -> dict[str, tuple[tuple[type, ...], bool]]:
        """Typed field → (accepted types, required)."""
        return {f.name: (f.metadata["types"], f.metadata["required"])
                for f in fields(cls) if "types" in f.metadata}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None):  # type: ignore[no-untyped-def]
        """The section read from `data` (a dict; None gives an empty section). Raises RecordProblem."""
        where = where or cls.NAME
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RecordProblem(f"{where} is {type(data).__name__}, expected dict")
        checks = cls.checks()
        ranges = {f.name: f.metadata.get("within") for f in fields(cls) if "types" in f.metadata}  # type: ignore[arg-type]
        for key, (types, required) in checks.items():
            problem = (type_problem(f"{where}.{key}", data.get(key), types, required=required)
                       or range_problem(f"{where}.{key}", data.get(key), ranges[key]))
            if problem:
                raise RecordProblem(problem)
        typed_values = {key: data[key] for key in checks if data.get(key) is not None}
        return cls(**typed_values, extra={k: v for k, v in data.items() if k not in checks})  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        """The section as run.json holds it: typed fields that are set, then `extra`."""
        typed_values = {name: getattr(self, name) for name in self.checks()}
        return {**{k: v for k, v in typed_values.items() if v is not None}, **dict(self.extra)}


@dataclass(frozen=True)
class ModelSection(Section):
    """run.json `model`: the network a run produced or read. params: count; flops: multiply-adds of one image at
    image_size px; file_bytes: size of the model file. `extra`: weights, format, opset, precision, input, ..."""

    NAME = "model"
    name: str | None = typed(str)
    # counts no network has are a hand edit (probe 98: params -5 and 1e30, flops Infinity were shown as figures)
    params: int | None = typed(int, within=(0, MAX_COUNT))
    flops: float | None = typed(int, float, within=(0, MAX_COUNT))
    file_bytes: int | None = typed(int, within=(0, MAX_COUNT))
    image_size: int | None = typed(int, within=(1, MAX_SIDE))
    num_classes: int | None = typed(int, within=(1, MAX_COUNT))
    extra: Mapping[str, Any] = field(default_factory=dict)


# Datasets whose images are the user's own folder (dataset.root): two folders are two datasets, whatever their
# name. Every other set is canonical (torchvision, scikit-learn, generated): one name, the same images, wherever a
# machine keeps its copy. tests/report/test_identity.py checks this against conf/dataset/*.yaml.
FOLDER_DATASETS = ("imagefolder",)
# Datasets generated from their settings: each of these settings generates other images (the class count and the
# image size, also settings of `synthetic`, are part of every identity already).
GENERATED_DATASETS: dict[str, tuple[str, ...]] = {"synthetic": ("seed", "train_size", "val_size")}
# What decides which images a validation split holds, where it is carved from the training images: the share
# (dataset.val_fraction), the draw (dataset.seed) and the count recorded (val_size: a partial copy of a set). Val top-1
# on two other splits is on other images — and one run may have trained on the other's val images — so only runs
# with equal values are compared (digits at val_fraction 0.01 scored 18 images, at 0.2 another 360).
VAL_SPLIT = ("val_fraction", "seed", "val_size")


def _hashable(value: Any) -> Any:
    """A recorded setting as a hashable value (run.json is untrusted: a list where a number belongs stays usable)."""
    return value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class DatasetIdentity:
    """What a dataset is, for comparing runs: the name, classes and input size, plus the folder of a user-folder
    set (FOLDER_DATASETS: its resolved root), the settings that generate a generated set (GENERATED_DATASETS) and
    those that decide which images its validation split holds (VAL_SPLIT).
    A canonical set is its name: its copy may lie anywhere. Only runs with equal identities are compared.

    A user folder whose run recorded its `content` (data.content.folder_digest: every picture's relative path,
    size and time) is that content, wherever it lies: a folder moved (`mv` keeps the times) and scored with
    `dataset.root=NEW` is the same data; `folder` then only says where it was read."""

    name: str | None = None
    num_classes: int | None = None
    image_size: int | None = None
    folder: str | None = field(default=None, compare=False)  # a user-folder set: its root, absolute; None: unknown
    settings: tuple[tuple[str, Any], ...] = ()    # a generated set: (setting, value) as recorded
    val_split: tuple[tuple[str, Any], ...] = ()   # VAL_SPLIT's recorded values not among `settings`
    content: str | None = field(default=None, compare=False)  # a user folder's folder_digest, where recorded
    # ... of its pictures without the test split (data.folder.training_digest), where recorded: a test/ edited since
    # is the same data for training and val (probe 75); a record from before it has only `content`
    train_content: str | None = field(default=None, compare=False)
    place: str | None = field(default=None, repr=False)  # what is compared: the content, else the folder

    def __post_init__(self) -> None:
        object.__setattr__(self, "place", self.train_content or self.content or self.folder)

    @property
    def test_images(self) -> "DatasetIdentity":
        """What decides a test split's images: the identity without its val split (the official test images are
        the same however the training images were carved into train and val)."""
        return replace(self, val_split=())

    @property
    def known(self) -> bool:
        """Whether the run recorded which dataset it was: unknown data is never taken for the same data."""
        return self.name is not None and (self.name not in FOLDER_DATASETS or self.folder is not None)


@dataclass(frozen=True)
class DatasetSection(Section):
    """run.json `dataset`: what the model learned from; `config` rebuilds the same data (derived runs).
    `extra`: train_size, val_size, test_size, mean, std, decode, label_fraction, content (a user folder's
    data.content.folder_digest when the run read it)."""

    NAME = "dataset"
    name: str | None = typed(str)
    num_classes: int | None = typed(int, within=(1, MAX_COUNT))
    image_size: int | None = typed(int, within=(1, MAX_SIDE))
    config: dict[str, Any] | None = typed(dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> DatasetIdentity:
        """What must be equal for two runs to be compared: see DatasetIdentity."""
        config = self.config or {}
        root = config.get("root")
        # recorded absolute (steps/recording.py); normalised so data/../data/rgb is data/rgb
        folder = os.path.normpath(str(root)) if self.name in FOLDER_DATASETS and root not in (None, "") else None
        settings = tuple((key, _hashable(config[key])) for key in GENERATED_DATASETS.get(self.name or "", ())
                         if config.get(key) is not None)
        content = self.extra.get("content") if folder is not None else None
        train_content = self.extra.get("train_content") if folder is not None else None
        recorded = {**{key: config.get(key) for key in VAL_SPLIT[:2]}, "val_size": self.extra.get("val_size")}
        val_split = tuple((key, _hashable(recorded[key])) for key in VAL_SPLIT
                          if recorded[key] is not None and key not in dict(settings))
        return DatasetIdentity(self.name, self.num_classes, self.image_size, folder, settings, val_split,
                               content=content if isinstance(content, str) and content else None,
                               train_content=train_content if isinstance(train_content, str) and train_content
                               else None)


@dataclass(frozen=True)
class SourceSection(Section):
    """run.json `source`: the run (folder) and file (path, kind: checkpoint | onnx) a derived run started from."""

    NAME = "source"
    run: str | None = typed(str)
    path: str | None = typed(str)
    kind: str | None = typed(str)
    command: str | None = typed(str)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def run_path(self) -> Path | None:
        """The source run's folder, resolved; None when the run was not started from another run."""
        return Path(self.run).resolve() if self.run else None


# The shortest latency a record may hold: 1 µs, below any real batch's time (onnxruntime's own call overhead is a few
# µs). A 0 passed as a number and divided the report's speed-ups by zero (probe 125: a traceback); 2 ns read
# "0.000 ms" and won the Pareto front (probe 132).
MIN_LATENCY_MS = 1e-3


@dataclass(frozen=True)
class LatencyRecord(Section):
    """One bench measurement (run.json metrics.latency[i]): p50_ms in milliseconds per batch of batch_size
    on `device` with `threads` intra-op threads (None: not recorded). `extra`: p90_ms, images_per_s, ..."""

    NAME = "latency"
    backend: str = typed(str, required=True, default="")
    batch_size: int = typed(int, required=True, default=1, within=(1, MAX_COUNT))
    device: str = typed(str, required=True, default="")
    threads: int | None = typed(int, within=(1, MAX_COUNT))
    p50_ms: float = typed(int, float, required=True, default=0.0, within=(MIN_LATENCY_MS, MAX_COUNT))
    iterations: int | None = typed(int, within=(1, MAX_COUNT))  # timed runs behind the p50 (None: not recorded)
    # a paired session's: which of paired.subjects it times (probe 107: -1 read another model's time, "0" and 0.0
    # stopped the report), and each round's p50 (ms), numbers all
    subject: int | None = typed(int, within=(0, MAX_COUNT))
    p50_ms_per_round: list[float] | None = typed(list)
    # the CPU (or GPU) that timed it: not in metrics.latency; the report fills it from the bench run's environment
    machine: str | None = typed(str)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> "LatencyRecord":
        record = super().from_dict(data, where)
        rounds = record.p50_ms_per_round or []
        if not all(not isinstance(v, bool) and isinstance(v, (int, float)) and MIN_LATENCY_MS <= v <= MAX_COUNT
                   for v in rounds):
            raise RecordProblem(f"{where or cls.NAME}.p50_ms_per_round holds {rounds!r}, expected numbers of at least "
                                f"{MIN_LATENCY_MS:g} ms")
        problem = _timing_problem(where or cls.NAME, record)
        if problem:
            raise RecordProblem(problem)
        return record

    @property
    def setting(self) -> tuple[str, int, str, int | None]:
        """(backend, batch size, device, threads): what must be equal for two latencies to compare."""
        return self.backend, self.batch_size, self.device, self.threads


# The order statistics of one timing (cnnlab.deploy.bench.summarize), fastest first: each at most the next.
_ORDERED_TIMES = ("min_ms", "p50_ms", "p90_ms", "p99_ms")


def _timing_problem(where: str, record: LatencyRecord) -> str | None:
    """Why a latency record's other figures cannot be those of its p50 (probe 209: a p90 below the p50 and a negative
    throughput were reported as measured), or None: every time a duration, the percentiles in order, and the
    throughput batch_size / p50."""
    times = {"p50_ms": record.p50_ms, **{k: record.extra[k] for k in _ORDERED_TIMES + ("mean_ms",)
                                         if record.extra.get(k) is not None}}
    for key, value in times.items():
        problem = type_problem(f"{where}.{key}", value, (int, float)) or \
            range_problem(f"{where}.{key}", value, (MIN_LATENCY_MS, MAX_COUNT))
        if problem:
            return problem
    ordered = [(k, times[k]) for k in _ORDERED_TIMES if k in times]
    for (low, a), (high, b) in zip(ordered, ordered[1:]):
        if a > b:
            return f"{where}.{high} is {b!r}, below its {low} of {a!r}: not one timing's percentiles"
    throughput = record.extra.get("throughput")
    if throughput is not None:
        expected = record.batch_size / (record.p50_ms / 1e3)
        if type_problem(f"{where}.throughput", throughput, (int, float)) or not \
                abs(throughput - expected) <= 1e-6 * expected:  # False for NaN too
            return (f"{where}.throughput is {throughput!r}, not batch_size / p50 ({expected:.6g} images/s): not "
                    "the timing's")
    return None


# The accuracies a run records of what it started from, which the report measures its change against (the KD
# baseline, the network before pruning, the FP32 model, the QAT-trained weights in float): fractions, as val_acc.
REFERENCE_ACCURACIES = ("baseline_val_acc", "acc_before", "fp32_val_acc", "qat_fp32_val_acc", "teacher_val_acc")


@dataclass(frozen=True)
class MetricsSection(Section):
    """run.json `metrics`: val_acc is top-1 on the validation split as a fraction in [0, 1]; test_acc the same on
    the test split (`cnnlab evaluate split=test`, which also records `split`); `latency` the bench records.
    `extra`: every other metric a command records (history, kd_gain, ece, ...)."""

    NAME = "metrics"
    val_acc: float | None = typed(int, float, within=(0.0, 1.0))  # a percentage (97.3) would top every front
    test_acc: float | None = typed(int, float, within=(0.0, 1.0))
    split: str | None = typed(str)
    n: int | None = typed(int, within=(0, MAX_COUNT))  # images an evaluate scored (probe 209: -360 was taken)
    latency: tuple[LatencyRecord, ...] | None = typed(list)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> "MetricsSection":
        section = super().from_dict(data, where)
        for key in REFERENCE_ACCURACIES:  # probe 225: 1.7 and "high" passed, the report falling back to the source's
            value = section.extra.get(key)
            problem = type_problem(f"{cls.NAME}.{key}", value, (int, float)) or \
                range_problem(f"{cls.NAME}.{key}", value, (0.0, 1.0))
            if problem:
                raise RecordProblem(problem)
        if section.latency is None:
            return section
        return replace(section, latency=tuple(LatencyRecord.from_dict(r, f"{cls.NAME}.latency[{i}]")
                                              for i, r in enumerate(section.latency)))

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.latency is not None:
            data["latency"] = [r.to_dict() for r in self.latency]
        return data

    @property
    def latency_records(self) -> tuple[LatencyRecord, ...]:
        return self.latency or ()


def artifact_escape(run_dir: Path, name: str, rel: str) -> str | None:
    """Why artifact `name` at `rel` is not a file inside `run_dir` (absolute, `..`, a symlink out), or None."""
    rel_path = Path(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        return f"artifact '{name}' ({rel}) points outside the run folder"
    try:
        resolved = (run_dir / rel_path).resolve()
    except (OSError, RuntimeError) as exc:  # a link loop: Python 3.11's resolve() raises RuntimeError (probe 209)
        return f"artifact '{name}' ({rel}) is a symbolic link loop" if link_loop(exc) else \
            f"artifact '{name}' ({rel}) cannot be followed ({exc})"
    if not resolved.is_relative_to(run_dir.resolve()):
        return f"artifact '{name}' ({rel}) leads outside the run folder (to {resolved})"
    return None


def artifacts_from_dict(data: Any, run_dir: Path) -> dict[str, str]:
    """run.json `artifacts`: name → path relative to the run folder, each inside it. Raises RecordProblem."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecordProblem(f"artifacts is {type(data).__name__}, expected dict")
    for name, rel in data.items():
        problem = type_problem(f"artifacts.{name}", rel, (str,), required=True) or artifact_escape(run_dir, name, rel)
        if problem:
            raise RecordProblem(problem)
    return dict(data)


SECTIONS: dict[str, type[Section]] = {"model": ModelSection, "dataset": DatasetSection, "source": SourceSection,
                                      "metrics": MetricsSection}
