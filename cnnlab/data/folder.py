"""The user's own images: DIR/train/<class>/*, DIR/val/<class>/* — or DIR/<class>/*, split by val_fraction.

Files that carry an image extension but cannot be decoded are skipped (counted in one warning);
everything else that is wrong with the folder is a CnnlabError that shows the expected layout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

from PIL import Image
from torch.utils.data import Subset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

from cnnlab.data.bundle import RawSplits
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import stratified_split
from cnnlab.errors import CnnlabError

log = logging.getLogger(__name__)

VAL_DIR_NAMES = ("val", "valid", "test")  # the first one present is the validation split
LAYOUT = "DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg, or DIR/<class>/*.jpg (split by dataset.val_fraction)"
FIX = f"set dataset.root=DIR to a folder laid out as {LAYOUT}"


class ReadableImageFilter:
    """ImageFolder's is_valid_file hook: keeps image files that decode, records the ones that do not."""

    def __init__(self) -> None:
        self.unreadable: list[str] = []

    def __call__(self, path: str) -> bool:
        if not has_file_allowed_extension(path, IMG_EXTENSIONS):
            return False  # README.txt, .DS_Store: not images, not worth a warning
        try:
            with Image.open(path) as image:
                # JPEG: decode at reduced scale — still reads every byte, so a truncated file fails here
                image.draft("RGB", (1, 1))
                image.load()
        except Exception:  # noqa: BLE001 - whatever PIL raises, the file is unusable
            self.unreadable.append(path)
            return False
        return True

    def summary(self) -> str:
        """'' or ' (skipped N unreadable image file(s), first: PATH)'."""
        if not self.unreadable:
            return ""
        return f" (skipped {len(self.unreadable)} unreadable image file(s), first: {self.unreadable[0]})"


class _VisibleImageFolder(ImageFolder):
    """ImageFolder that ignores hidden folders (.ipynb_checkpoints, .git) instead of taking them for classes."""

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = _class_dirs(Path(directory))
        return classes, {name: index for index, name in enumerate(classes)}


def _class_dirs(directory: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith("."))


def checked_root(cfg: Mapping[str, Any]) -> Path:
    if cfg.get("root") in (None, ""):
        raise CnnlabError("imagefolder needs dataset.root=DIR", fix=FIX)
    root = Path(str(cfg["root"])).expanduser()
    if not root.exists():
        raise CnnlabError(f"imagefolder: dataset.root {root} does not exist", fix=FIX)
    if not root.is_dir():
        raise CnnlabError(f"imagefolder: dataset.root {root} is a file, not a folder", fix=FIX)
    return root


def _open_split(directory: Path, checker: ReadableImageFilter) -> ImageFolder:
    if not _class_dirs(directory):
        raise CnnlabError(f"imagefolder: no class folders in {directory}", fix=FIX)
    folder = _VisibleImageFolder(str(directory), is_valid_file=checker, allow_empty=True)
    if not folder.samples:
        raise CnnlabError(f"imagefolder: no readable images in the class folders of {directory}"
                          f"{checker.summary()}", fix=FIX)
    counts = {name: 0 for name in folder.classes}
    for _, label in folder.samples:
        counts[folder.classes[label]] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise CnnlabError(f"imagefolder: class folder(s) {', '.join(empty)} in {directory} hold no readable image"
                          f"{checker.summary()}",
                          fix="add images to those folders or remove them")
    return folder


def _check_same_classes(train: ImageFolder, other: ImageFolder, other_dir: Path) -> None:
    if train.classes == other.classes:
        return
    missing, extra = sorted(set(train.classes) - set(other.classes)), sorted(set(other.classes) - set(train.classes))
    raise CnnlabError(f"imagefolder: the class folders of {other_dir} differ from train/ "
                      f"(missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})",
                      fix=f"give every split the same <class> folders: {LAYOUT}")


def build_imagefolder(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    root = checked_root(cfg)
    checker = ReadableImageFilter()
    train_dir = root / "train"
    split_dirs = [root / name for name in VAL_DIR_NAMES if (root / name).is_dir()]
    if train_dir.is_dir() and split_dirs:
        train, val = _open_split(train_dir, checker), _open_split(split_dirs[0], checker)
        _check_same_classes(train, val, split_dirs[0])
        test = None
        if (root / "test").is_dir() and split_dirs[0] != root / "test":
            test = _open_split(root / "test", checker)
            _check_same_classes(train, test, root / "test")
        splits = (train, val, test)
    else:  # one level of class folders (or a train/ without a val split): split it ourselves
        source = train_dir if train_dir.is_dir() else root
        train = _open_split(source, checker)
        train_idx, val_idx = stratified_split(train.targets, cfg.get("val_fraction", 0.2), cfg.get("seed", 0),
                                              what=f"imagefolder {source}")
        splits = (Subset(train, train_idx), Subset(train, val_idx), None)
    if checker.unreadable:
        log.warning("imagefolder %s%s", root, checker.summary())
    return RawSplits(train=splits[0], val=splits[1], test=splits[2], classes=list(train.classes),
                     stored_size=None, in_memory=False)
