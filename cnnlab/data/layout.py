"""The layout of a user's image folder, without reading a picture: which folders are its splits, which names are
hidden, and the digest of the pictures its training and val splits come from. Torch-free, so `cnnlab report` can tell
whether a folder's test split changed without loading a runtime."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from cnnlab.data.content import folder_digest, folder_digests, is_folder_entry, is_hidden

# split folder names, lower case; a folder matches ignoring case (Train/, VALID/). Of several present, the first in
# the tuple's order is the split (val/ before valid/ before validation/), the others are not read (a warning says so)
TRAIN_DIR_NAMES = ("train", "training")
VAL_DIR_NAMES = ("val", "valid", "validation")
# test/ is only ever the test split: model selection on it would make the test score read high (issue 16's rule)
TEST_DIR_NAMES = ("test", "testing")
SPLIT_DIR_NAMES = TRAIN_DIR_NAMES + VAL_DIR_NAMES + TEST_DIR_NAMES


def split_named(name: str) -> str | None:
    """The split ("train", "val" or "test") a folder name reads as, beside the exact names above: a word of it
    (training_set, train_data, seg_train, "Training Images", trainset) or the name with spaces around it ("train ");
    None for other names. Kaggle's cats-and-dogs set is training_set/training_set/<class>/ beside
    test_set/test_set/<class>/ (probe 97)."""
    for word in re.split(r"[^a-z0-9]+", name.strip().lower()):
        for split, names in (("train", TRAIN_DIR_NAMES), ("val", VAL_DIR_NAMES), ("test", TEST_DIR_NAMES)):
            if any(word == n or word in (n + "set", n + "data") for n in names):
                return split
    return None


def class_dirs(directory: Path) -> list[str]:
    """The sorted names of the visible (no leading dot) folders in `directory`, links to folders included."""
    return sorted(entry.name for entry in os.scandir(directory) if is_folder_entry(entry) and not is_hidden(entry.name))


def split_candidates(root: Path, names: Sequence[str]) -> list[Path]:
    """The folders of `root` named like one split (`names`, lower case; matched ignoring case), best first: in the
    order of `names`, then the lower-case spelling, then sorted. The first is the split; the others are not read."""
    found = [name for name in class_dirs(root) if name.lower() in names]
    return [root / name for name in sorted(found, key=lambda n: (names.index(n.lower()), n != n.lower(), n))]


def split_dir(root: Path, names: Sequence[str]) -> Path | None:
    """The folder of `root` that is the split named by `names` (see `split_candidates`), or None."""
    candidates = split_candidates(root, names)
    return candidates[0] if candidates else None


def training_digest(root: Path) -> str | None:
    """content.folder_digest of the pictures train and val are read from: `root` without its test split. A test/
    edited — the copies `cnnlab evaluate` refuses removed, as its fix says — changes no model's training or val data
    (probe 75: prune and quantize then refused the model, saying its carved val would hold trained images)."""
    return folder_digest(root, outside=_test_dir(root))


def folder_and_training_digests(root: Path) -> tuple[str | None, str | None]:
    """(content.folder_digest, training_digest) of `root` from one walk of the folder."""
    return folder_digests(root, apart=_test_dir(root))


def _test_dir(root: Path) -> Path | None:
    return split_dir(root, TEST_DIR_NAMES) if Path(root).is_dir() else None
