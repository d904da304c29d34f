"""Seed groups: runs that differ only in `seed` (a `-m seed=0,1,2` sweep) become one row, mean ± std over seeds.

Two runs belong to one group when their saved configuration (`.hydra/config.yaml` in the run folder, which
Hydra writes for every run) is equal once `seed`, `paths` and the run references are set aside, and the runs
they were made from (run.json `source`: the fine-tuned model a prune started from, a distillation's teacher)
belong to one group themselves — so the pruned models of three fine-tuning seeds form one group. A reference to
a run (`source=`, `model.weights=RUN`, `teacher.weights=latest:finetune`, `resume=`) is compared through that
recorded source, never as text. A run without a saved config is grouped by the overrides run.json records;
with neither, it stays a group of its own: settings that cannot be read are never taken for equal.

Paths in the saved config are relative to the folder the run was started from (Hydra records it: `.hydra/hydra.yaml`
`hydra.runtime.cwd`), so `dataset.root=data/rgb` typed in two folders names two datasets: such paths are compared
resolved, never as text — a user folder's root (a canonical set's copy may lie anywhere: its root is set aside), a
model file named without a recorded source run. And the data each run recorded in run.json (its dataset identity,
resolved dataset config and split sizes) must be equal too: runs on different data are never one group.

Runs of a group's settings that did not complete (failed, interrupted, killed, still running) are listed with the
group as missing seeds, so a partial group says so instead of looking complete.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping, Sequence

from cnnlab.evaluation.files import OUTCOMES_FILE, read_outcomes_csv
from cnnlab.records import FOLDER_DATASETS, DatasetIdentity
from cnnlab.report.rows import Row, recorded_fraction, run_section
from cnnlab.report.stats import Change, Spread, paired_bootstrap
from cnnlab.fileio import read_yaml_mapping
from cnnlab.links import RunLinks
from cnnlab.runs import SAVED_CONFIG, RunInfo, hydra_runtime
from cnnlab.settings import HOW_IT_RUNS, changes_the_course, resumes_nothing, within

IGNORED = ("seed", "paths", "hydra")  # top-level settings that do not make another experiment; nor do HOW_IT_RUNS
# settings that name a run (or a file): compared through the run.json source, not as text
REFERENCES = ("source", "resume", "model.weights", "teacher.weights", "student.weights")
UNFINISHED = ("failed", "interrupted", "dead", "running")
RUN = "<run>"
# run.json model fields that describe the file or where the weights came from, not the network: everything else
# recorded there (name, arch, params, flops, image_size, num_classes, precision, quantization, ...) defines it
NOT_THE_NETWORK = ("weights", "file_bytes", "onnx_bytes", "pt_bytes", "onnx_origin")
MODEL_FILES = (".pt", ".pth", ".onnx")
# recorded split sizes that tell two copies of "the same" data apart (a folder that gained images, a partial set)
SPLIT_SIZES = ("train_size", "val_size")
Lineage = tuple[int | None, ...]  # the seeds of a run's sources, then its own (see SeedKeys.lineage)

# command → (what the difference is called, the run's own recorded reference accuracy, what it is against)
CHANGES = {
    "distill": ("KD gain", "baseline_val_acc", "the student alone, same budget"),
    "prune": ("pruning top-1 change", "acc_before", "before pruning"),
    "quantize": ("INT8 top-1 change", "fp32_val_acc", "FP32"),
}
# quantize runs that shipped another precision: the FP32 graph kept (no change to measure), or bf16
PRECISION_CHANGES = {"bf16": "bf16 top-1 change"}
# quantization-aware training changes the weights as well as their precision (probe 105: "+4.90 points INT8 top-1
# change" was one more epoch of training): on val against the QAT-trained weights in float where the run scored
# them, and against its FP32 source (test; val too for records without that score) as what QAT as a whole did
QAT_INT8 = ("INT8 top-1 change", "qat_fp32_val_acc", "the QAT-trained weights in FP32")
QAT_WHOLE = ("QAT top-1 change (training + INT8)", "fp32_val_acc", "the FP32 source")


def saved_config(run: RunInfo) -> dict[str, Any] | None:
    """The run's composed configuration as Hydra saved it; None when it is missing or unreadable."""
    return read_yaml_mapping(run.path / SAVED_CONFIG)


def started_in(run: RunInfo) -> Path | None:
    """The folder the run was started from (Hydra's hydra.runtime.cwd): what its relative paths are relative to;
    None when Hydra's record is missing or unreadable."""
    cwd = hydra_runtime(run.path).get("cwd")  # untrusted: any YAML value
    return Path(cwd) if isinstance(cwd, str) and Path(cwd).is_absolute() else None


def resolved_path(text: Any, cwd: Path | None) -> str | None:
    """A path setting as an absolute, normalised path; None when it is relative and `cwd` is unknown."""
    path = Path(os.path.expanduser(str(text)))
    if not path.is_absolute():
        if cwd is None:
            return None
        path = cwd / path
    return os.path.normpath(path)


def data_key(row: Row) -> str:
    """The data the run trained and was validated on, as run.json records it: the dataset identity (a user folder's
    resolved root, a generated set's settings), the resolved dataset config (a canonical set's root set aside: its
    copy may lie anywhere) and the split sizes."""
    section = row.run.dataset
    config = {key: value for key, value in (section.config or {}).items() if key != "root"}  # the root: in identity
    identity = section.identity
    return json.dumps({"identity": [identity.name, identity.num_classes, identity.image_size, identity.place,
                                    list(identity.settings)],
                       "config": config, **{key: section.extra.get(key) for key in SPLIT_SIZES}},
                      sort_keys=True, default=str)


def _names_a_run(value: Any) -> bool:
    """A reference to a run or a model file (a path, latest, latest:<command>), not a word like none/imagenet."""
    text = str(value)
    return value is not None and ("/" in text or "\\" in text or text.startswith("latest")
                                  or text.endswith((".pt", ".pth", ".onnx")))


def network_key(row: Row) -> str:
    """What defines the network a run produced, from run.json's model section (name, arch string, parameters,
    FLOPs, input size, classes, precision, ...): runs of one recipe that produced different networks (a search that
    chose another architecture, a prune that kept other channels) are never one seed group."""
    model = row.run.model
    fields = {key: value for key, value in model.extra.items() if key not in NOT_THE_NETWORK}
    fields.update(name=model.name, params=model.params, flops=model.flops, image_size=model.image_size,
                  num_classes=model.num_classes, arch=row.arch, precision=row.precision)
    return json.dumps(fields, sort_keys=True, default=str)


def _comparable_config(config: dict[str, Any]) -> str:
    """The configuration without seed, paths and run references, as canonical text (resume=false is no resume)."""
    config = copy.deepcopy(config)
    for key in IGNORED:
        config.pop(key, None)
    for dotted in HOW_IT_RUNS:  # where and how visibly a seed ran (probe 88: trainer.log_every=5 split a group)
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    if resumes_nothing(config.get("resume")):
        config["resume"] = None
    for dotted in REFERENCES:
        *parents, leaf = dotted.split(".")
        node: Any = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and _names_a_run(node.get(leaf)):
            node[leaf] = RUN
    return json.dumps(config, sort_keys=True, default=str)


def _override_value(text: str) -> Any:
    """An override's value as Hydra reads it (`1e-3` is the float 0.001, which YAML 1.1 reads as text); the text
    itself when Hydra's grammar rejects it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        value = OverridesParser.create().parse_override(f"k={text}").value()
    except (HydraException, ValueError):  # a recorded override is untrusted text: what it says stays comparable
        return text
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else text  # not a sweep


def _with_overrides(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The config with `key.sub=value` overrides applied (what resuming with trainer.epochs=20 trains with)."""
    config = copy.deepcopy(config)
    for override in overrides:
        key, _, text = override.partition("=")
        *parents, leaf = key.lstrip("+~").split(".")
        value = _override_value(text) if text else None
        node: Any = config
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict) and not (isinstance(node.get(leaf), dict) and not isinstance(value, dict)):
            node[leaf] = value  # not a group choice (model=lenet5: the section it composed is already there)
    return config


def _comparable_overrides(overrides: Sequence[str]) -> tuple[str, ...]:
    kept = []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in IGNORED or key.split(".")[0] in ("paths", "hydra") or within(key, HOW_IT_RUNS) or \
                (key == "resume" and resumes_nothing(value)):
            continue
        kept.append(f"{key}={RUN}" if key in REFERENCES and _names_a_run(value) else f"{key}={value}")
    return tuple(sorted(kept))


@dataclass(frozen=True)
class Resumption:
    """A run that continued another (`resume=`), and the overrides it was given besides resume=."""

    run: RunInfo
    overrides: list[str]

    @property
    def took_over(self) -> int | str:
        """Where it took over: the epochs the continued training had done (run.json `resumed_after_epoch`), else
        (a run recorded before it was kept, or an untrusted value) its own folder: a course that cannot be told is
        equal to no other."""
        epoch = self.run.data.get("resumed_after_epoch")
        valid = isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0
        return epoch if valid else str(self.run.path.resolve())


class SeedKeys:
    """What a run is apart from its seed (`key`), and its seed; results are kept per run folder."""

    def __init__(self, links: RunLinks | None = None) -> None:
        self._keys: dict[Path, Hashable] = {}
        self._configs: dict[Path, dict[str, Any] | None] = {}
        self._lineages: dict[Path, Lineage] = {}
        self._cwds: dict[Path, Path | None] = {}
        self.links = links or RunLinks(())  # where the runs records name are now (cnnlab/links.py)

    def config(self, run: RunInfo) -> dict[str, Any] | None:
        path = run.path.resolve()
        if path not in self._configs:
            self._configs[path] = saved_config(run)
        return self._configs[path]

    def seed(self, run: RunInfo) -> int | None:
        """The run's own `seed`: from its saved config, else from the override it was given (for a resumed run,
        those of the run it continued)."""
        run = (self._origin(run) or (run, ()))[0]
        seed = (self.config(run) or {}).get("seed")
        if seed is None:
            for override in run.data.get("overrides") or []:
                key, _, value = override.partition("=")
                seed = value if key.lstrip("+~") == "seed" else seed
        try:
            return None if seed is None or isinstance(seed, bool) else int(seed)
        except (TypeError, ValueError):
            return None

    def lineage(self, run: RunInfo) -> Lineage:
        """The seeds of the run's sources, oldest first, then its own: the pruned model of fine-tuning seed 2
        is (2, 0) — its own seed stays at the default while the one that made it varies."""
        path = run.path.resolve()
        if path not in self._lineages:
            self._lineages[path] = (self.seed(run),)  # a loop of sources ends here
            parent, student = self.source_of(run), self._student_start(run)
            self._lineages[path] = (*(self.lineage(parent) if parent else ()),
                                    *(self.lineage(student) if student else ()), self.seed(run))
        return self._lineages[path]

    def _student_start(self, run: RunInfo) -> RunInfo | None:
        """The run a distill run's student started from (run.json distill.student.source; its `source` is the
        teacher's), where its folder holds that model still."""
        link = self.links.source(_recorded_student(run), reader=run.path)
        return None if link is None or link.path is None else self.links.run(link.path)

    def source_of(self, run: RunInfo) -> RunInfo | None:
        """The run the run was made from, when its folder (where it is now) holds a sound record of the model that
        was read."""
        link = self.links.source_of(run)
        return None if link is None or link.path is None else self.links.run(link.path)

    def key(self, run: RunInfo) -> Hashable | None:
        """Equal for runs that differ only in seed; None when the run's settings cannot be read."""
        path = run.path.resolve()
        if path not in self._keys:
            self._keys[path] = None  # a source that leads back here (a loop) is not followed twice
            self._keys[path] = self._key(run)
        return self._keys[path]

    def _key(self, run: RunInfo) -> Hashable | None:
        settings = self._settings(run)
        if settings is None:
            return None
        return run.command, settings, self._source_key(run), self._student_key(run)

    def _student_key(self, run: RunInfo) -> Hashable | None:
        """What a distill run's student started from, as _source_key says a source (probe 171: a sweep over
        `student.weights=A,B` — two students of 86.67 % and 55.00 % — was one "2 runs, 1 seed" row of 70.83 %: the
        reference is set aside in the config and a distill's `source` is its teacher): the key of the run it names,
        else the model file's SHA-256; None for a student of random weights."""
        recorded = _recorded_student(run)
        if recorded is None:
            return None
        start = self._student_start(run)
        start_key = None if start is None else self.key(start)
        return start_key if start_key is not None else ("file", recorded.get("sha256") or recorded.get("path"))

    def _origin(self, run: RunInfo) -> tuple[RunInfo, list[Resumption]] | None:
        """The run a resumed run continued (followed to the first), with each resumption after it, oldest first;
        (run, []) for a run that was not resumed; None when a run on the way cannot be read."""
        origin, resumed, seen = run, [], set()
        while origin.data.get("resumed_from") and origin.path.resolve() not in seen:
            # a resumed run's own saved config holds the resume= invocation, not the settings it trained with
            seen.add(origin.path.resolve())
            given = [o for o in origin.data.get("overrides") or []
                     if o.partition("=")[0].lstrip("+~") not in ("resume", "command")]
            resumed[:0] = [Resumption(origin, given)]
            continued = self.links.where(origin.data["resumed_from"])
            found = self.links.run(continued) if continued is not None else None
            if found is None:  # no record there (a path that names nothing): what it continued cannot be told
                return None
            origin = found
        return origin, resumed

    def cwd(self, run: RunInfo) -> Path | None:
        path = run.path.resolve()
        if path not in self._cwds:
            self._cwds[path] = started_in(run)
        return self._cwds[path]

    def _settings(self, run: RunInfo) -> Hashable | None:
        found = self._origin(run)
        if found is None:
            return None
        origin, resumptions = found
        config = self.config(origin)
        if config is not None:
            # A resume that changed a setting (trainer.epochs=6 after 4, optim.lr after a NaN stop) trained another
            # course than a fresh run of the final settings: where it took over and what it changed are part of
            # the key. One that changed nothing (plain resume=true; a sweep run again) is the run it continued.
            course = []
            for resumption in resumptions:
                changed = _with_overrides(config, [o for o in resumption.overrides if changes_the_course(o)])
                if _comparable_config(changed) != _comparable_config(config):
                    course.append((resumption.took_over, _comparable_config(changed)))
                config = changed
            config = self._resolved_root(config, origin, run)
            return None if config is None else ("config", _comparable_config(config), tuple(course))
        overrides = [*(origin.data.get("overrides") or []), *(o for r in resumptions for o in r.overrides)]
        return ("overrides", _comparable_overrides(overrides)) if overrides else None

    def _resolved_root(self, config: dict[str, Any], origin: RunInfo, run: RunInfo) -> dict[str, Any] | None:
        """`config` with dataset.root resolved where it names the data (a user folder: relative to the folder the
        run started in, else as `run` recorded it) and set aside where it does not (a canonical set's copy); None
        when a user folder's root cannot be resolved: unreadable settings are never taken for equal."""
        dataset = config.get("dataset")
        if not isinstance(dataset, dict) or dataset.get("root") in (None, ""):
            return config
        config = {**config, "dataset": dict(dataset)}
        if dataset.get("name") not in FOLDER_DATASETS:  # a canonical set's copy may lie anywhere
            del config["dataset"]["root"]
            return config
        content = run.dataset.identity.content
        if content:  # a user folder whose pictures (test split too) the run recorded is them, wherever it was read:
            # through a link, or moved (probe 101: a symlinked root split three seeds of one recipe into two rows);
            # two folders of one training set and other test splits stay apart (probe 102: a test score was dropped)
            config["dataset"]["root"] = f"content:{content}"
            return config
        root = resolved_path(dataset["root"], self.cwd(origin))
        if root is None and run.dataset.name == dataset.get("name"):
            root = run.dataset.identity.folder
        if root is None:
            return None
        config["dataset"]["root"] = root
        return config

    def _source_key(self, run: RunInfo) -> Hashable | None:
        source = run.source
        if source.run_path is None:
            if source.path:  # a model file outside any run: the file itself, wherever the run was started
                return "file", self._file(source.path, run)
            return self._named_files(run)
        parent = self.source_of(run)
        parent_key = None if parent is None else self.key(parent)
        return parent_key if parent_key is not None else ("run", str(source.run_path))

    def _named_files(self, run: RunInfo) -> Hashable | None:
        """The model files a run's references name when it recorded no source (a torchvision state dict,
        `model.weights=x.pth`): resolved, so x.pth in two folders is two files; None when it names none."""
        origin = (self._origin(run) or (run, ()))[0]
        config = self.config(origin)
        named = []
        for dotted in REFERENCES:
            node: Any = config
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str) and node.lower().endswith(MODEL_FILES):
                named.append((dotted, self._file(node, origin)))
        return ("files", tuple(named)) if named else None

    def _file(self, text: str, run: RunInfo) -> str:
        """A file the run named, resolved; a relative name whose folder is unknown stays the run's own (equal to
        no other run's: it cannot be told which file it was)."""
        return resolved_path(text, self.cwd(run)) or f"{text} (relative to where {run.path} started)"


def _recorded_student(run: RunInfo) -> Mapping[str, Any] | None:
    """A distill run's record of the model its student started from (run.json distill.student.source), or None."""
    distill = run.data.get("distill") if run.command == "distill" else None
    student = distill.get("student") if isinstance(distill, Mapping) else None
    source = student.get("source") if isinstance(student, Mapping) else None
    return source if isinstance(source, Mapping) else None


@dataclass
class SeedGroup:
    """Runs of one model setting over seeds: one row of the report, mean ± std over its members.
    A run whose settings cannot be read forms a group of its own."""

    members: list[tuple[Lineage, Row]]                                 # (seeds, row), by seed
    missing: list[tuple[Lineage, str, Path]] = field(default_factory=list)  # (seeds, status, run folder)
    # (run folder, why its source run cannot be read: gone, unreadable, or its folder holds another model now) for
    # members whose group cannot be told (the source's settings decide it), so they stand apart; the report says so
    # (probes 63, 104)
    sources_gone: list[tuple[Path, str]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    pareto: bool = False
    source_ranked: bool = False     # repeats its source's network, and the source is ranked (pareto.py)

    @property
    def rows(self) -> list[Row]:
        return [row for _, row in self.members]

    @property
    def first(self) -> Row:
        return self.members[0][1]

    @property
    def lineages(self) -> list[Lineage]:
        return [lineage for lineage, _ in self.members]

    def varying_seeds(self, lineage: Lineage) -> tuple[int | None, ...]:
        """The seeds of `lineage` that vary within the group (a pruned model: its fine-tuning's seed), oldest first.
        When none varies: its levels with a run of equal seeds read once (a lone prune, seed 0, of a seed-4 fine-tune
        is "4/0", not 0: probe 63; its quantize too, not "4/0/0/0"); the run's own seed when all are equal. None: a
        seed the run did not record."""
        known = self.lineages + [m[0] for m in self.missing]
        varying = [i for i in range(len(lineage)) if len({s[i] if i < len(s) else None for s in known}) > 1] \
            or [i for i in range(len(lineage)) if i == len(lineage) - 1 or lineage[i] != lineage[i + 1]]
        return tuple(lineage[i] for i in varying if 0 <= i < len(lineage))

    def seed_label(self, lineage: Lineage) -> str:
        """For people: "seed 2", "seed 2/1" when two levels vary, "seed not recorded" (a part: "—")."""
        seeds = self.varying_seeds(lineage)
        if all(seed is None for seed in seeds):
            return "seed not recorded"
        return "seed " + "/".join("—" if seed is None else str(seed) for seed in seeds)

    def seed_value(self, lineage: Lineage) -> int | str | None:
        """For report.csv / report.json: the varying seed as an integer, None when not recorded; when two levels vary,
        "2/1" (oldest first, a part not recorded left empty)."""
        seeds = self.varying_seeds(lineage)
        if len(seeds) == 1 or all(seed is None for seed in seeds):
            return seeds[0] if seeds else None
        return "/".join("" if seed is None else str(seed) for seed in seeds)

    @property
    def replicates(self) -> list[Lineage]:
        """Each member's replicate, as the seed lineage that stands for it: its own, or — where members of other seeds
        wrote the very same model file (equal recorded digests) — the first of those. Probe 141: three seeds of a
        prune that no seed changes wrote one file, read as three replicates: "± 0.00" and a zero-width interval
        called significant."""
        stands_for: dict[frozenset[str], Lineage] = {}
        return [stands_for.setdefault(row.model_digests, lineage) if row.model_digests else lineage
                for lineage, row in self.members]

    @property
    def model_digests(self) -> frozenset[str]:
        """The model files its members wrote (their recorded SHA-256s)."""
        return frozenset().union(*(row.model_digests for row in self.rows))

    @property
    def seeds(self) -> int:
        """n replicates: distinct seed lineages among the members (a repeated seed counts once; seeds that wrote one
        model file count once: `replicates`)."""
        return len(set(self.replicates))

    @property
    def distinct_seeds(self) -> int:
        """Distinct seed lineages among the members, whatever they wrote."""
        return len(set(self.lineages))

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def dataset_key(self) -> DatasetIdentity:
        return self.first.dataset_key

    @property
    def repeats_source(self) -> bool:
        return self.first.repeats_source

    @property
    def run_paths(self) -> frozenset[Path]:
        return frozenset().union(*(row.run_paths for row in self.rows))

    @property
    def source_paths(self) -> frozenset[Path]:
        return frozenset().union(*(row.source_paths for row in self.rows))

    @property
    def read_at(self) -> set[str]:
        return set().union(*(row.read_at for row in self.rows))

    @property
    def label(self) -> str:
        return self.first.label

    def per_seed(self, values: Sequence[float | None],
                 mean: Callable[[list[float]], float] = statistics.fmean) -> list[float | None]:
        """`values` (one per member, in member order) as one value per seed, in the order seeds first appear: the
        `mean` of that seed's runs (a ratio's: stats.ratio_mean), so a seed run twice counts once in a mean, a std
        and an interval over seeds; None for a seed with no value."""
        by_seed: dict[Lineage, list[float]] = {}
        for lineage, value in zip(self.replicates, values):
            runs = by_seed.setdefault(lineage, [])
            if value is not None and math.isfinite(value):
                runs.append(float(value))
        return [mean(runs) if runs else None for runs in by_seed.values()]

    @property
    def val(self) -> Spread:
        spread = Spread.of(self.per_seed([row.accuracy for row in self.rows]))
        assert spread is not None  # every row has a validation accuracy
        return spread

    @property
    def test(self) -> Spread | None:
        return Spread.of(self.per_seed([row.test_accuracy for row in self.rows]))

    @property
    def latency(self) -> Spread | None:
        return Spread.of(self.per_seed([row.p50_ms for row in self.rows]))

    @property
    def accuracy(self) -> float:
        """Mean val top-1: what the Pareto front and the order use."""
        return self.val.mean

    @property
    def p50_ms(self) -> float | None:
        latency = self.latency
        return None if latency is None else latency.mean

    @property
    def file_size(self) -> tuple[int, str, int] | None:
        """(mean bytes, file kind, how many runs) over the runs whose size is of the kind most of them have (ONNX on a
        tie): an ONNX file and a model.pt of one network differ in size, so their mean is no file's (probe 98: one
        exported seed and two not read "0.26 MB onnx", the mean of both kinds); None when no run has a size."""
        kinds = Counter(row.file_kind for row in self.rows if row.file_bytes is not None)
        if not kinds:
            return None
        kind = max(kinds, key=lambda k: (kinds[k], k == "onnx"))
        sizes = [row.file_bytes for row in self.rows if row.file_bytes is not None and row.file_kind == kind]
        return round(sum(sizes) / len(sizes)), kind, len(sizes)

    @property
    def file_bytes(self) -> int | None:
        size = self.file_size
        return None if size is None else size[0]


def _changes(group: SeedGroup) -> list[Change]:
    """The group's highlighted differences, one value per seed: on val top-1 (against the reference the run
    recorded, else its source's row), and on test top-1 where the run and its source were both evaluated. The
    source's row is the one build_rows found, shown or only beside the runs reported (probe 184)."""
    command = group.first.command
    if command not in CHANGES:
        return []
    what, recorded, against = CHANGES[command]
    test_what, test_against = what, against
    if command == "quantize" and group.first.precision != "int8":
        if group.first.precision not in PRECISION_CHANGES:
            return []  # FP32 kept: model.onnx is the source's network, there is no change to report
        what = test_what = PRECISION_CHANGES[group.first.precision]
    elif command == "quantize" and run_section(group.first.run, "quantize").get("mode") == "qat":
        scored = all(recorded_fraction(row.run.metrics.extra.get(QAT_INT8[1])) is not None for row in group.rows)
        what, recorded, against = QAT_INT8 if scored else QAT_WHOLE
        test_what, _, test_against = QAT_WHOLE
    val: list[float | None] = []
    test: list[float | None] = []
    outcomes: dict[Lineage, list[tuple[list[bool], list[bool]] | None]] = {}  # each seed's runs' pairs
    for lineage, row in zip(group.replicates, group.rows):
        source = row.source_row
        if source is not None and not _same_data(row.dataset_key, source.dataset_key):
            source = None  # scored on other data: no difference of the two means anything
        reference = recorded_fraction(row.run.metrics.extra.get(recorded))
        if reference is None and source is not None and command != "distill":
            reference = source.accuracy
        val.append(row.accuracy - reference if reference is not None else None)
        if command != "distill" and source is not None and None not in (row.test_accuracy, source.test_accuracy):
            test.append(row.test_accuracy - source.test_accuracy)  # type: ignore[operator]
            outcomes.setdefault(lineage, []).append(_outcome_pair(source.evaluate_run, row.evaluate_run))
        else:
            test.append(None)
    # one difference per seed (a seed run twice counts once: its runs' mean), as the spreads over seeds
    val, test = ([v for v in group.per_seed(values) if v is not None] for values in (val, test))
    # a distill resumed with changed settings: its baseline did not follow the student's course (pipelines/distill.py)
    unlike = command == "distill" and any(row.run.data.get("resume_changed") for row in group.rows)
    caveat = "resumed with changed settings: unlike courses, see the run's warnings" if unlike else ""
    own = {lineage[-1] for lineage in group.lineages if lineage}
    # distinct lineages: two runs of one teacher and one seed (a run and its resumed twin) are no spread of teachers
    if command == "distill" and not caveat and len(set(group.lineages)) > 1 and len(own) == 1 and None not in own:
        # probe 88: a sweep over teacher.weights of three seeds, each distill at seed 0: the students started from
        # one initialisation and data order (the baseline was one run counted three times)
        caveat = (f"every student trained with seed {own.pop()}: the spread is the teachers' alone — give each "
                  "distill run its own seed= for the students'")
    if command == "prune" and any(run_section(row.run, "prune").get("ratio") == 0 for row in group.rows):
        # probe 84: +5.68 "pruning"; probe 196: without recovery epochs, no training made it either
        trained = any((row.run.data.get("metrics") or {}).get("acc_after_recovery") is not None for row in group.rows)
        caveat = "prune.ratio=0: nothing removed, the change is the recovery training's" if trained else \
            "prune.ratio=0: nothing removed and nothing trained: the same network"
    changes = [Change(what, "val", against, tuple(val), caveat=caveat)] if val else []  # type: ignore[arg-type]
    if test:
        pairs = [pair for runs in outcomes.values() for pair in runs if pair is not None]
        interval = None
        if pairs and len(pairs) == sum(map(len, outcomes.values())) and len({len(a) for p in pairs for a in p}) == 1:
            seeds = [_seed_outcomes(runs) for runs in outcomes.values()]  # type: ignore[arg-type]
            interval = paired_bootstrap([a for a, _ in seeds], [b for _, b in seeds])
        changes.append(Change(test_what, "test", test_against, tuple(test),  # type: ignore[arg-type]
                              image_interval=interval, images=len(pairs[0][0]) if interval is not None else 0,
                              caveat=caveat))
    return changes


def _seed_outcomes(runs: Sequence[tuple[list[bool], list[bool]]]) -> tuple[list[float], list[float]]:
    """One seed's per-image outcomes (reference, changed): for a seed run several times, the share of its runs that
    got each image right — so the bootstrap's difference is the seed's mean difference, as in the table."""
    return ([sum(column) / len(runs) for column in zip(*(a for a, _ in runs))],
            [sum(column) / len(runs) for column in zip(*(b for _, b in runs))])


def _same_data(a: DatasetIdentity, b: DatasetIdentity) -> bool:
    """Both recorded their data, and it is the same (cnnlab/records.py DatasetIdentity)."""
    return a.known and a == b


def _outcome_pair(reference: Path | None, changed: Path | None) -> tuple[list[bool], list[bool]] | None:
    """The per-image outcomes (evaluate's outcomes.csv) of a model and its source on the same test images; None
    when either evaluate run has none (an older cnnlab) or the file is damaged."""
    if reference is None or changed is None:
        return None
    try:
        return read_outcomes_csv(reference / OUTCOMES_FILE), read_outcomes_csv(changed / OUTCOMES_FILE)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def group_by_seed(rows: Sequence[Row], unfinished: Sequence[RunInfo] = (), keys: SeedKeys | None = None
                  ) -> list[SeedGroup]:
    """The rows as seed groups (in the order of their first row), each with its missing seeds and its changes."""
    keys = keys or SeedKeys()
    groups: dict[Hashable, SeedGroup] = {}
    for row in rows:
        settings = keys.key(row.run)
        # the network too (model name, arch, params, FLOPs, precision, ...): one recipe can produce different
        # networks — a search choosing another architecture, a quantize shipping INT8 on one seed and FP32 on another;
        # and the data as recorded (the resolved folder, config and split sizes): one recipe typed in two folders
        key = (settings, data_key(row), network_key(row)) if settings is not None else ("alone", row.run.path)
        group = groups.setdefault(key, SeedGroup(members=[]))
        group.members.append((keys.lineage(row.run), row))
        link = keys.links.source_of(row.run)
        if link is not None and keys.source_of(row.run) is None:
            group.sources_gone.append((row.run.path, link.problem or f"its source run {link.recorded} is unreadable"))
    for group in groups.values():
        group.members.sort(key=lambda m: ([(s is None, s or 0) for s in m[0]], m[1].run.started_at))
    for run in unfinished:
        settings = keys.key(run)
        if settings is None:
            continue
        lineage = keys.lineage(run)
        for key, group in groups.items():
            if key[0] == settings and lineage not in group.lineages + [m[0] for m in group.missing]:
                group.missing.append((lineage, run.status, run.path))
    for group in groups.values():
        group.changes = _changes(group)
    return list(groups.values())
