"""Whether a run done before still stands for the work asked now, beyond its settings.

A pipeline stage and a sweep's job are recognised by their settings (steps/plan.py `fingerprint`), and settings
do not see two things that change the result: the images of a user folder (`dataset=imagefolder`) edited on disk,
and, for a pipeline stage, an upstream stage that has run again since (its `@stage` now names another run).
Reusing such a run would put a model of other data, or of an older upstream model, in the table with exit 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from cnnlab.data.content import folder_digest
from cnnlab.records import FOLDER_DATASETS, DatasetSection, RecordProblem
from cnnlab.runs import RunInfo


def changed_since(run: RunInfo, inputs: Mapping[str, str] | None = None) -> str | None:
    """Why `run` no longer stands for the same work, or None. `inputs`: the run folders its `@stage` references
    name now (a pipeline stage's), compared with those recorded in its run.json `pipeline.inputs`; a record from
    before either was recorded cannot be checked and is taken as it is."""
    recorded = (run.data.get("pipeline") or {}).get("inputs")
    if inputs and isinstance(recorded, dict):
        for stage, path in inputs.items():
            if recorded.get(stage) != path:
                return f"stage {stage} ran again since ({path})"
    return data_changed(run)


def data_changed(run: RunInfo) -> str | None:
    """Why the images `run` read are not those in its folder now (a user folder: FOLDER_DATASETS), or None."""
    try:
        dataset = DatasetSection.from_dict(run.data.get("dataset"))
    except RecordProblem:
        return None  # RunInfo.read has refused such a record already
    content, root = dataset.extra.get("content"), (dataset.config or {}).get("root")
    if dataset.name not in FOLDER_DATASETS or not isinstance(content, str) or not isinstance(root, str):
        return None
    now = folder_digest(Path(root))
    if now is None:
        return f"its image folder {root} is gone"
    if now != content:
        return f"the images in {root} changed since it ran"
    return None
