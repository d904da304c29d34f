"""Whether a run done before still stands for the work asked now, beyond its settings.

A pipeline stage and a sweep's job are recognised by their settings (steps/plan.py `fingerprint`), and settings
do not see four things that change the result: the images of a user folder (`dataset=imagefolder`) edited on disk,
for a pipeline stage an upstream stage that has run again since (its `@stage` now names another run), a model
file deleted since, and the model it started from (`latest:<command>` naming a newer run, or a file replaced).
Reusing such a run would put a model of other data, or of an older upstream model, in the table with exit 0, or
fail every later stage that reads the missing file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from cnnlab.data.layout import folder_and_training_digests
from cnnlab.errors import CnnlabError
from cnnlab.links import RunLinks
from cnnlab.records import FOLDER_DATASETS, DatasetSection, RecordProblem
from cnnlab.runs import RunInfo, model_sha256, resolve_source, started_from

_KINDS = ("checkpoint", "onnx")  # what a `latest` source names


# A folder's digests (the whole folder, its training part: data.layout.folder_and_training_digests) per resolved root,
# for the decisions of one process (a pipeline's stages, a sweep job's earlier attempts): their folders do not change
# while they are being decided, and 70,000 pictures take a moment to stat.
Digests = dict[str, "tuple[str | None, str | None]"]


def changed_since(run: RunInfo, inputs: Mapping[str, str] | None = None, digests: Digests | None = None, *,
                  outputs: Path | None = None, hashes: dict[str, str | None] | None = None,
                  links: RunLinks | None = None) -> str | None:
    """Why `run` no longer stands for the same work, or None. `inputs`: the run folders its `@stage` references
    name now (a pipeline stage's), compared (resolved) with those recorded in its run.json `pipeline.inputs`; a record
    from before either was recorded cannot be checked and is taken as it is. `outputs`, `hashes`: source_changed's.
    `links`: where the runs recorded paths name are now (a copied or moved workspace: cnnlab/links.py)."""
    links = links or RunLinks(())
    recorded = (run.data.get("pipeline") or {}).get("inputs")
    if inputs and isinstance(recorded, dict):
        for stage, path in inputs.items():
            then = recorded.get(stage)
            if not isinstance(then, str) or links.where(then) != Path(os.path.realpath(path)):
                return f"stage {stage} ran again since ({path})"
    gone = run.deleted_files()  # what a later stage reads: a run whose model file was deleted does not stand
    if gone:
        return f"its {gone[0]} is gone"
    changed = run.changed_files()  # nor one whose model file was replaced (probe 72: reused as done already)
    if changed:
        return f"its {changed[0]} changed since the run wrote it"
    return source_changed(run, outputs, hashes, links) or data_changed(run, digests=digests)


def source_changed(run: RunInfo, outputs: Path | None = None, hashes: dict[str, str | None] | None = None,
                   links: RunLinks | None = None) -> str | None:
    """Why the model `run` started from (run.json `source`: model.weights, source=, teacher.weights) is not the one
    its settings name now, or None: `latest:<command>` names a newer run in `outputs` (probe 91: a sweep of finetunes
    typed again after another pretrain skipped every job, their accuracies of the old backbone), or the file read
    holds other bytes (a weights file replaced in place; a SHA-256 recorded). `hashes`: SHA-256 per path, filled
    once per process. A record without a source, or from before its SHA-256 was recorded, is taken as it is."""
    hashes = {} if hashes is None else hashes
    # the model it started from, and a distill's student's own starting weights (probe 92: student.weights=latest:...)
    for source in started_from(run.data).values():
        if isinstance(source.get("path"), str):
            changed = _changed_source(_where_now(source, links or RunLinks(())), outputs, hashes)
            if changed:
                return changed
    return None


def _where_now(source: dict, links: RunLinks) -> dict:
    """`source` with its file where its run is now: a run copied or moved since reads the model from its new
    folder (probe 104: a copied pipeline workspace re-ran every stage after the first)."""
    run = source.get("run")
    now = links.where(run) if isinstance(run, str) and run else None
    if now is None or now == Path(os.path.realpath(str(run))):  # not moved
        return source
    return {**source, "run": str(now), "path": str(now / Path(str(source["path"])).name)}


def _changed_source(source: dict, outputs: Path | None, hashes: dict[str, str | None]) -> str | None:
    spec, path = str(source.get("spec") or ""), source["path"]
    if outputs is not None and (spec == "latest" or spec.startswith("latest:")) and source.get("kind") in _KINDS:
        try:
            now = resolve_source(spec, outputs, want=(str(source["kind"]),)).path
        except CnnlabError:
            return f"{spec} names no model now"  # the job itself says why, when it runs
        if os.path.realpath(now) != os.path.realpath(path):
            return f"{spec} now names {now.parent if now.name == 'model.pt' else now}, not {path}"
    recorded = source.get("sha256")
    if not isinstance(recorded, str):
        return None
    if path not in hashes:
        hashes[path] = model_sha256(Path(path)) if Path(path).is_file() else None
    if hashes[path] is None:
        return f"the model it started from, {path}, is gone"
    return f"the model it started from, {path}, changed since" if hashes[path] != recorded else None


def data_changed(run: RunInfo, root: str | None = None, digests: Digests | None = None) -> str | None:
    """Why the images `run` read are not those in its folder now (a user folder: FOLDER_DATASETS), or None.
    `root`: the folder to compare with instead of the recorded one (data that moved: the digest is of paths
    relative to the root, so a moved folder matches). A run that recorded `train_content` read its training and val
    pictures only, unless it is an evaluate run (which may score the test split): a test/ edited since is no change
    for it (probe 75)."""
    try:
        dataset = DatasetSection.from_dict(run.data.get("dataset"))
    except RecordProblem:
        return None  # RunInfo.read has refused such a record already
    training = isinstance(dataset.extra.get("train_content"), str) and run.command != "evaluate"
    content = dataset.extra.get("train_content" if training else "content")
    recorded_root = (dataset.config or {}).get("root")
    root = root or recorded_root
    if dataset.name not in FOLDER_DATASETS or not isinstance(content, str) or not isinstance(root, str):
        return None
    key = os.path.realpath(root)
    both = digests.get(key) if digests is not None else None
    if both is None:
        both = folder_and_training_digests(Path(root))  # one walk for the whole folder and its training part
        if digests is not None:
            digests[key] = both
    now = both[1] if training else both[0]
    if now is None:
        return f"its image folder {root} is gone"
    if now != content:
        return f"the images in {root} changed since it ran"
    return None
