"""The user's own images: DIR/train/<class>/*, DIR/val/<class>/* — or DIR/<class>/*, split by val_fraction.
A flat DIR/*.jpg (no class folders) serves self-supervised pretraining only (`build_flat_folder`).

Images are decoded by cnnlab.data.decode (what a viewer shows: 16-bit, palette, alpha, EXIF rotation, ...).
Files that carry an image extension but cannot be read are skipped; conversions and skips are counted in
one summary line per dataset (a warning when there is anything to say) and in RawSplits.decode.
Everything else that is wrong with the folder is a CnnlabError that shows the expected layout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from torch.utils.data import Dataset, Subset
from torchvision.datasets import ImageFolder

from cnnlab.data.bundle import RawSplits
from cnnlab.data.content import folder_digest
from cnnlab.data.decode import DecodeSummary, UndecodableImage, extension_reason, inspect_image, load_rgb
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import stratified_split
from cnnlab.errors import CnnlabError

log = logging.getLogger(__name__)

VAL_DIR_NAMES = ("val", "valid")  # the first one present is the validation split
# test/ is only ever the test split: model selection on it would make the test score read high (issue 16's rule)
TEST_DIR_NAME = "test"
LAYOUT = "DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg, or DIR/<class>/*.jpg (split by dataset.val_fraction)"
FIX = f"set dataset.root=DIR to a folder laid out as {LAYOUT}"
DUPLICATE = "duplicate of a file already read (symlink)"
FOLDER_ALREADY_SCANNED = "folder link to a folder already scanned (loop or repeat)"
UNLABELED = "unlabeled"  # the one class name of a flat folder's images (label -1)
# an image folder that cannot be split by dataset.val_fraction: give it its own validation split instead
_VAL_LAYOUT_FIX = ("give it a validation split: training images in {root}/train/<class>/, validation images of "
                   "every class in {root}/val/<class>/")
FLAT_FIX = (f"sort the images into class folders ({LAYOUT}); a flat folder of unlabeled images serves "
            "self-supervised pretraining only: `cnnlab pretrain method=simclr dataset=imagefolder dataset.root=DIR`")


class FolderScan:
    """Finds the images of one dataset (all its splits), proves each decodes and counts its conversions.

    Folders are walked in sorted order, following symbolic links safely: a folder link that leads to a
    folder already scanned, to a class folder of the split, or back up to one of its own parents (a loop)
    is not entered; a file whose real path is already in the dataset is kept once (files reached without a
    link win over links to them within a split, so a link never moves a picture to another class). Files with an
    extension we read are checked with `decode.inspect_image` (reduced decode; truncated files fail);
    image-looking files we cannot read (.heic, ...) are skipped; everything else (README.txt) is ignored.
    Every kept image and every skip is counted in `summary`.
    """

    def __init__(self) -> None:
        self.summary = DecodeSummary()
        self._files: set[str] = set()  # real paths already in the dataset
        self._folders: set[str] = set()  # real paths of the folders walked or claimed as class folders

    def samples(self, directory: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
        """[(path, class index)] for the class folders of one split, in ImageFolder's order."""
        class_dirs = {name: directory / name for name in sorted(class_to_idx)}
        self._folders.update(os.path.realpath(path) for path in class_dirs.values())
        found = [(path, class_to_idx[name], via_link) for name, folder in class_dirs.items()
                 for path, via_link in self._walk(folder, via_link=folder.is_symlink())]
        # files reached without a link are checked first, so that a link never takes a file away from
        # the class folder it lives in (sorted() is stable: the order stays ImageFolder's otherwise)
        kept = set()
        for index in sorted(range(len(found)), key=lambda i: found[i][2]):
            if self._accept(found[index][0]):
                kept.add(index)
        return [(path, label) for index, (path, label, _) in enumerate(found) if index in kept]

    def _walk(self, folder: Path, *, via_link: bool) -> Iterator[tuple[str, bool]]:
        """(file path, reached through a symlink) for every non-folder entry under `folder`, sorted."""
        real = os.path.realpath(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:  # unreadable folder: nothing in it can be read either
            return
        for entry in entries:
            link = via_link or entry.is_symlink()
            if not entry.is_dir():  # follows links; a dangling link is a file that will fail to decode
                yield entry.path, link
            elif not entry.name.startswith("."):  # .ipynb_checkpoints, .git: not part of the dataset
                target = os.path.realpath(entry.path)
                # already walked, a class folder of its own, or one of our parents (a loop): not again
                if target in self._folders or os.path.commonpath([target, real]) == target:
                    self.summary.add_skipped(FOLDER_ALREADY_SCANNED, entry.path)
                    continue
                self._folders.add(target)
                yield from self._walk(Path(entry.path), via_link=link)

    def _accept(self, path: str) -> bool:
        reason = extension_reason(path)
        if reason is not None:
            if reason:
                self.summary.add_skipped(reason, path)
            return False
        real = os.path.realpath(path)
        if real in self._files:
            self.summary.add_skipped(DUPLICATE, path)
            return False
        try:
            kinds = inspect_image(path)
        except UndecodableImage as exc:
            self.summary.add_skipped(exc.reason, path)
            return False
        self._files.add(real)
        self.summary.add_read(kinds)
        return True

    def skipped_text(self) -> str:
        """'' or '; skipped N (reason: n, first: PATH; ...)', to end an error message with."""
        text = self.summary.skipped_text()
        return f"; {text}" if text else ""


class _VisibleImageFolder(ImageFolder):
    """ImageFolder that ignores hidden folders (.ipynb_checkpoints, .git) instead of taking them for classes,
    finds its files with a FolderScan (torchvision's os.walk(followlinks=True) loops on a link to a parent)
    and decodes them with decode.load_rgb."""

    def __init__(self, root: str, scan: FolderScan) -> None:
        self._scan: FolderScan | None = scan  # make_dataset runs inside ImageFolder.__init__
        super().__init__(root, loader=load_rgb, allow_empty=True)
        self._scan = None  # DataLoader workers get a copy of the dataset: leave the scan's path sets behind

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = _class_dirs(Path(directory))
        return classes, {name: index for index, name in enumerate(classes)}

    def make_dataset(self, directory: str | Path, class_to_idx: dict[str, int],  # type: ignore[override]
                     extensions: tuple[str, ...] | None = None, is_valid_file: Any = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        assert self._scan is not None, "make_dataset is only called from __init__"
        return self._scan.samples(Path(directory), class_to_idx)


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


def _open_split(directory: Path, scan: FolderScan) -> ImageFolder:
    if not _class_dirs(directory):
        if _loose_images(directory):
            raise CnnlabError(f"imagefolder: {directory} holds images but no class folders", fix=FLAT_FIX)
        raise CnnlabError(f"imagefolder: no class folders in {directory}", fix=FIX)
    folder = _VisibleImageFolder(str(directory), scan)
    if not folder.samples:
        raise CnnlabError(f"imagefolder: no readable images in the class folders of {directory}"
                          f"{scan.skipped_text()}", fix=FIX)
    counts = {name: 0 for name in folder.classes}
    for _, label in folder.samples:
        counts[folder.classes[label]] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise CnnlabError(f"imagefolder: class folder(s) {', '.join(empty)} in {directory} hold no readable image"
                          f"{scan.skipped_text()}",
                          fix="add images to those folders or remove them")
    return folder


def _check_same_classes(train: ImageFolder, other: ImageFolder, other_dir: Path) -> None:
    if train.classes == other.classes:
        return
    missing, extra = sorted(set(train.classes) - set(other.classes)), sorted(set(other.classes) - set(train.classes))
    raise CnnlabError(f"imagefolder: the class folders of {other_dir} differ from train/ "
                      f"(missing: {', '.join(missing) or '-'}; extra: {', '.join(extra) or '-'})",
                      fix=f"give every split the same <class> folders: {LAYOUT}")


def _test_split(train: ImageFolder, test_dir: Path, scan: FolderScan) -> ImageFolder | None:
    if not test_dir.is_dir():
        return None
    test = _open_split(test_dir, scan)
    _check_same_classes(train, test, test_dir)
    return test


def build_imagefolder(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    root = checked_root(cfg)
    content = folder_digest(root)  # before reading: what the run saw, should the folder change while it trains
    scan = FolderScan()
    train_dir = root / "train"
    split_dirs = [root / name for name in VAL_DIR_NAMES if (root / name).is_dir()]
    test_dir = root / TEST_DIR_NAME
    if train_dir.is_dir() and split_dirs:
        train, val = _open_split(train_dir, scan), _open_split(split_dirs[0], scan)
        _check_same_classes(train, val, split_dirs[0])
        splits = (train, val, _test_split(train, test_dir, scan))
    else:  # one level of class folders (or a train/ without a val split): split it ourselves
        source = train_dir if train_dir.is_dir() else root
        train = _open_split(source, scan)
        train_idx, val_idx = stratified_split(train.targets, cfg.get("val_fraction", 0.2), cfg.get("seed", 0),
                                              what=f"imagefolder {source}", classes=train.classes, folder=source,
                                              layout_fix=_VAL_LAYOUT_FIX.format(root=root))
        # with train/, a test/ beside it is the test split (without, root/test/ would be a class folder)
        test = _test_split(train, test_dir, scan) if train_dir.is_dir() else None
        if test is not None:
            log.info("imagefolder %s: no val/ folder, so val is %g of train/ (dataset.val_fraction, seeded); test/ "
                     "stays the test split, read only by `cnnlab evaluate`", root, cfg.get("val_fraction", 0.2))
        splits = (Subset(train, train_idx), Subset(train, val_idx), test)
    scan.summary.log(log, f"imagefolder {root}")
    return RawSplits(train=splits[0], val=splits[1], test=splits[2], classes=list(train.classes),
                     stored_size=None, in_memory=False, decode=scan.summary, content=content)


def _loose_images(directory: Path) -> list[str]:
    """The files directly in `directory` whose extension is an image's (sorted), not yet decoded."""
    return sorted(entry.path for entry in os.scandir(directory)
                  if not entry.is_dir() and not entry.name.startswith(".") and extension_reason(entry.path) is None)


def is_flat_folder(cfg: Mapping[str, Any]) -> bool:
    """dataset.root holds images directly and no class folder (the unlabeled layout)."""
    root = checked_root(cfg)
    return not _class_dirs(root) and bool(_loose_images(root))


class FlatImages(Dataset):
    """(image, -1) for every readable image file of one flat folder, decoded by decode.load_rgb."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return load_rgb(self.paths[index]), -1


def build_flat_folder(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    """A flat folder of unlabeled images (`is_flat_folder`) as one training split: every readable image with
    label -1, an empty val split, and the single class name UNLABELED (a model needs at least one output)."""
    root = checked_root(cfg)
    content = folder_digest(root)
    scan = FolderScan()
    paths = [path for path in _loose_images(root) if scan._accept(path)]
    if not paths:
        raise CnnlabError(f"imagefolder: no readable images in {root}{scan.skipped_text()}", fix=FLAT_FIX)
    scan.summary.log(log, f"imagefolder {root} (unlabeled)")
    images = FlatImages(paths)
    return RawSplits(train=images, val=Subset(images, []), test=None, classes=[UNLABELED], stored_size=None,
                     in_memory=False, decode=scan.summary, content=content)
