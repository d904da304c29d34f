"""torchvision's downloadable datasets, offline first: Flowers-102, CIFAR-10/100, MNIST, Fashion-MNIST, KMNIST,
SVHN and STL-10.

We check for the files ourselves before torchvision does, so that a missing dataset ends in one
message naming each file, where it goes and where it comes from — never in a URLError traceback.
`dataset.download`: auto (fetch only what is missing), true (let torchvision fetch/verify), false (never).
A read-only system copy (Debian's `dataset-fashion-mnist` package, SYSTEM_COPIES) is used when the data
root lacks the files: its archives are decompressed into the data root, never written to.

Splits: train, val and test. Sets with an official validation split (Flowers-102) keep it; for the others
val is carved from the training images by a seeded stratified `dataset.val_fraction`, and the official
test split is `test` — never used for model selection (only `cnnlab evaluate` reads it).
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

from torch.utils.data import Dataset, Subset
from torchvision.datasets import CIFAR10, CIFAR100, KMNIST, MNIST, STL10, SVHN, FashionMNIST, Flowers102

from cnnlab.data.archives import (CIFAR10_FILES, CIFAR100_FILES, FASHION_MNIST_FILES, FLOWERS, KMNIST_FILES,
                                  MNIST_FILES, STL10_FILES, SVHN_FILES, OnDisk)
from cnnlab.data.bundle import RawSplits
from cnnlab.data.decode import load_rgb
from cnnlab.data.file_checks import faults_error, file_faults, idx_faults, image_fault, put_back
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import labels_of, stratified_split
from cnnlab.errors import CnnlabError
from cnnlab.hydra_args import path_argument
from cnnlab.wording import listed

log = logging.getLogger(__name__)

T = TypeVar("T")


def download_mode(value: Any) -> bool | None:
    """dataset.download -> True, False, or None for auto."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    modes = {"auto": None, "true": True, "yes": True, "false": False, "no": False}
    if text not in modes:
        raise CnnlabError(f"dataset.download must be auto, true or false, got {value!r}",
                          fix="set dataset.download=auto")
    return modes[text]


def _cause(exc: BaseException) -> str:
    """'Type: first line' of `exc`; a first line that ends in ":" (MNIST's "Error downloading X.gz:", whose mirrors'
    URLErrors follow on the next lines) goes on with the lines after it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [""]
    first_line = (" ".join(lines) if lines[0].endswith(":") else lines[0])[:300]
    # torchvision's own advice names its keyword argument, not a cnnlab setting (probe 55): the fix says ours
    first_line = first_line.replace(" You can use download=True to download it", "").rstrip()
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def _download_cause(exc: BaseException) -> str:
    """`_cause` of a failed download, less the file torchvision tried first: MNIST's download fetches every file in
    order, present ones too, so "Error downloading train-images-idx3-ubyte.gz" stood beside a message naming the one
    missing file (probe 234); what failed is the address."""
    return re.sub(r"^RuntimeError: Error downloading \S+: ", "", _cause(exc))


def check_downloadable(cfg: Mapping[str, Any], files: OnDisk) -> tuple[Path, bool | None, str]:
    """(root, download mode, state) — or the error that no download could mend: no dataset.root, or files
    missing with dataset.download=false. State `system`: missing from root but in a system copy."""
    if cfg.get("root") in (None, ""):
        raise CnnlabError(f"{files.title} needs dataset.root=DIR",
                          fix=f"set dataset.root=DIR; {files.placement(Path('DIR'))}")
    root = Path(str(cfg["root"])).expanduser()
    copy = files.system_copy()
    # the copy itself, a folder in it, or one above it (/usr/share/datasets: FashionMNIST/ made beside it; probe 132)
    # — probe 127: 55 MB decompressed into the package's folder, which no package owns (docs: "only read")
    where = None if copy is None else "the system copy" if root.resolve() == copy.resolve() else \
        "a folder inside the system copy" if copy.resolve() in root.resolve().parents else \
        "a system folder above the system copy" if root.resolve() in copy.resolve().parents else None
    if where is not None:
        raise CnnlabError(f"dataset.root={root} is {where} of {files.title} ({copy}), which cnnlab only reads: it "
                          "decompresses the files a run reads into dataset.root", fix="drop dataset.root= (the "
                          "default finds the system copy by itself) or set it to a writable folder of your own, e.g. "
                          "dataset.root=./data")
    mode, state = download_mode(cfg.get("download", "auto")), files.state(root)
    if state == "missing":  # a root inside the set's own folders (ROOT/MNIST, ROOT/cifar-10-batches-py): name ROOT
        above = next((a for a in list(root.resolve().parents)[:2] if files.state(a) != "missing"), None)
        if above is not None:
            raise CnnlabError(f"{files.title}'s files are in {above}, and dataset.root={root} names a folder inside "
                              "them", fix=f"use {path_argument('dataset.root', [above])}")
    if state == "missing" and mode is not True and files.system_copy() is not None:
        state = "system"
    if state == "missing" and mode is False:
        absent = files.absent(root)
        raise CnnlabError(f"{_not_there(files, root, absent)} and dataset.download=false",
                          fix=f"{files.placement(root, absent)}; or allow the download with "
                              "dataset.download=auto")
    return root, mode, state


def _not_there(files: OnDisk, root: Path, absent: Sequence[tuple[str, str | None]]) -> str:
    """'SVHN is not in ROOT', or 'SVHN in ROOT lacks ROOT/test_32x32.mat' when some of its files are there (`absent`:
    files.absent(root), taken before a download tried)."""
    if len(absent) == len(files.needs):
        return f"{files.title} is not in {root}"
    return f"{files.title} in {root} lacks {listed([str(root / path) for path, _ in absent])}"


def _set_folders(root: Path, files: OnDisk) -> set[Path]:
    """The folders a download of `files` may make that exist now: `root` with the folders above it (made along with
    it) and those on the way to each of the set's files (ROOT/MNIST, ROOT/MNIST/raw) — not the rest of a root
    shared with other data, which it never touches."""
    candidates = {root, *root.absolute().parents}
    for path in (p for pair in files.needs for p in pair if p):
        parts = Path(path).parts if path.endswith("/") else Path(path).parts[:-1]
        candidates.update(root.joinpath(*parts[:depth]) for depth in range(1, len(parts) + 1))
    return {folder for folder in candidates if folder.is_dir()}


def _remove_empty_folders_made(root: Path, files: OnDisk, before: set[Path]) -> None:
    """Remove the empty folders a failed download made (torchvision makes ROOT/MNIST/raw/ before it fetches): an
    offline try left them behind, to look like a half-placed set (probe 66). Folders that were there stay."""
    for folder in sorted(_set_folders(root, files) - before, key=lambda path: len(path.parts), reverse=True):
        try:
            folder.rmdir()  # only an empty one
        except OSError:
            pass


def _extract(files: OnDisk, root: Path) -> None:
    """Extract the archives that stand in for missing files, or fail naming them: a truncated or foreign archive."""
    needs = [(path, archive) for path, archive in files.needs if archive and not (root / path).exists()]
    try:
        files.extract_archives(root)
    except Exception as exc:  # noqa: BLE001 - EOFError, tarfile.ReadError, OSError: the archive is not whole
        # extracted in order, each renamed into place whole: the first still missing is the one that failed
        failed = next((need for need in needs if not (root / need[0]).exists()), needs[0])
        raise CnnlabError(f"{files.title}: cannot extract {root / str(failed[1])} ({_cause(exc)})",
                          fix=f"replace it with the official file: {files.placement(root, [failed])}") from exc


def open_downloadable(cfg: Mapping[str, Any], files: OnDisk, make: Callable[[str, bool], T]) -> T:
    """Run `make(root, download)` once the files are there, or fail with a message that names them."""
    root, mode, state = check_downloadable(cfg, files)
    if state == "system":
        copy = files.system_copy()
        # said: a mistyped dataset.root is made and filled without a word otherwise (probe 93)
        log.info("%s: decompressing the system copy in %s into %s (dataset.root)", files.title, copy, root)
        try:
            files.extract_archives(root, copy)
        except OSError as exc:
            raise CnnlabError(f"{files.title}: cannot decompress {copy} into {root} ({_cause(exc)})",
                              fix="point dataset.root=DIR to a writable folder") from exc
    folders_before = _set_folders(root, files) if state == "missing" else set()
    absent = files.absent(root) if state == "missing" else []  # before a failed download makes folders
    if state == "archived":
        _extract(files, root)
    bad_idx = idx_faults(files, root) if state != "missing" else []
    if bad_idx:  # torchvision said "shape '[100, 28, 28]' is invalid for input of size 29984" (probe 66)
        raise faults_error(files, root, bad_idx)
    try:
        return make(str(root), mode is True or state == "missing")
    except Exception as exc:  # noqa: BLE001 - URLError, md5 mismatch, bad pickle: all end in one clear message
        if state == "missing":
            _remove_empty_folders_made(root, files, folders_before)
            raise CnnlabError(f"{_not_there(files, root, absent)} and could not be downloaded ({_download_cause(exc)})",
                              fix=f"{files.placement(root, absent)}; or rerun where that address is reachable") \
                from exc
        faults = file_faults(files, root)
        if faults:  # torchvision's "Dataset not found or corrupted": which file, and why (probe 66)
            raise faults_error(files, root, faults) from exc
        raise CnnlabError(f"{files.title} files in {root} are incomplete or corrupted ({_cause(exc)})",
                          fix=put_back(files, root, files.needs)) from exc


def refuse_unusable_splits(splits: Mapping[str, Dataset], classes: list[str], files: OnDisk, root: Path) -> None:
    """CnnlabError, before any work, when a split's label is not one of the `classes` (a corrupt or foreign label
    file: MNIST's label 12 was carved as "class 12", then trained into an IndexError traceback; probe 66) or an
    image file the split lists is missing or cut short (Flowers-102's jpg/: a traceback mid-training)."""
    for split, dataset in splits.items():
        bad = next((label for label in labels_of(dataset) if not 0 <= label < len(classes)), None)
        if bad is not None:
            where = _label_file(dataset, root)
            named = f"{root / where[0][0]}" if where else f"the label file in {root}"
            raise CnnlabError(f"{files.title}'s {split} labels hold {bad}, outside 0-{len(classes) - 1} (its "
                              f"{len(classes)} classes): {named} is corrupt or not {files.title}'s",
                              fix=put_back(files, root, where) if where else
                              f"delete the set's files from {root} and put the official ones there: "
                              f"{files.placement(root)}")
    faults = [(Path(path), why) for dataset in splits.values() for path in getattr(dataset, "_image_files", ())
              if (why := image_fault(str(path))) is not None]
    if faults:
        raise faults_error(files, root, faults)


def _label_file(dataset: Dataset, root: Path) -> list[tuple[str, str | None]]:
    """The need (path under `root`, archive) of an MNIST-style split's own label file; [] for the other sets, whose
    labels share files with their images (probe 67: the fix replaced all four files for one bad label file)."""
    if not isinstance(dataset, MNIST):  # KMNIST and FashionMNIST are MNIST's subclasses
        return []
    name = f"{'train' if dataset.train else 't10k'}-labels-idx1-ubyte"
    path = (Path(dataset.raw_folder) / name).relative_to(root)
    return [(str(path), f"{path}.gz")]


def _open_flowers(root: str, download: bool) -> tuple[str, Flowers102, Flowers102, Flowers102]:
    """(root, train, val, test), each reading its images with decode.load_rgb."""
    loader = functools.partial(load_rgb, fix=put_back(FLOWERS, Path(root), FLOWERS.needs[:1]))  # jpg/
    return (root, *(Flowers102(root, split=split, download=download, loader=loader)
                    for split in ("train", "val", "test")))


def build_flowers(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    """The official splits: train (1,020), val (1,020), test (6,149)."""
    root, train, val, test = open_downloadable(cfg, FLOWERS, _open_flowers)
    # torchvision >= 0.18 carries the 102 Oxford names; older versions only the numbers
    classes = list(getattr(Flowers102, "classes", None) or [str(i) for i in range(1, 103)])
    refuse_unusable_splits({"train": train, "val": val, "test": test}, classes, FLOWERS, Path(root))
    return RawSplits(train=train, val=val, test=test, classes=classes, stored_size=None, in_memory=False)


class Deferred(Dataset):
    """A dataset built on first use: STL-10's unlabeled split is 2.8 GB in memory once loaded."""

    def __init__(self, make: Callable[[], Dataset]) -> None:
        self._make = make
        self._dataset: Dataset | None = None

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = self._make()
        return self._dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]


def carve_val(train: Dataset, cfg: Mapping[str, Any], what: str, classes: Sequence[str] | None = None,
              files_fix: str = "") -> tuple[Subset, Subset]:
    """(train, val) parts of an official training split: a seeded stratified `dataset.val_fraction` (default 0.1,
    seed `dataset.seed`) becomes val, so the official test split stays unseen until `cnnlab evaluate`. `classes`
    names them in the refusal of a class of one image, whose fix is `files_fix` (an idx file takes no image added by
    hand: probe 127); a class with no training image is said in the log (partial files: the model keeps its output)."""
    labels = labels_of(train)
    if classes is not None:
        present = set(labels)
        absent = [f"{name} ({label})" for label, name in enumerate(classes) if label not in present]
        if absent:
            log.warning("%s: the training labels hold no image of %s%s: not the official files? The model still "
                        "has an output for each of the %d classes, never trained to fire", what, ", ".join(absent[:5]),
                        f" and {len(absent) - 5} more" if len(absent) > 5 else "", len(classes))
    train_idx, val_idx = stratified_split(labels, cfg.get("val_fraction", 0.1), cfg.get("seed", 0), what=what,
                                          classes=classes, alone_fix=files_fix or None)
    return Subset(train, train_idx), Subset(train, val_idx)


def _own_classes(dataset: Dataset) -> list[str]:
    return list(dataset.classes)  # type: ignore[attr-defined]


def _official_train_test(title: str, files: OnDisk, stored_size: int,
                         make: Callable[[str, bool, bool], Dataset],
                         classes: Callable[[Dataset], list[str]] = _own_classes,
                         unlabeled: Callable[[str], Dataset] | None = None,
                         ) -> Callable[[Mapping[str, Any], InputSpec], RawSplits]:
    """A builder for a set with official train and test splits: `make(root, download, train)` opens one."""
    def build(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
        root, official_train, test = open_downloadable(cfg, files, lambda root, download: (
            root, make(root, download, True), make(root, download, False)))
        names = classes(official_train)
        refuse_unusable_splits({"train": official_train, "test": test}, names, files, Path(root))
        train, val = carve_val(official_train, cfg, title, names,  # the files there win over archives: delete them
                               f"{put_back(files, Path(root), files.needs)} (they hold thousands of each class)")
        return RawSplits(train=train, val=val, test=test, classes=names, stored_size=stored_size,
                         in_memory=False, unlabeled=None if unlabeled is None else Deferred(lambda: unlabeled(root)))

    build.__doc__ = (f"{title}: train and val (a stratified dataset.val_fraction of the official training images), "
                     f"test (the official test split); {stored_size} px.")
    return build


build_cifar10 = _official_train_test("CIFAR-10", CIFAR10_FILES, 32, lambda r, d, t: CIFAR10(r, train=t, download=d))
build_cifar100 = _official_train_test("CIFAR-100", CIFAR100_FILES, 32,
                                      lambda r, d, t: CIFAR100(r, train=t, download=d))
build_mnist = _official_train_test("MNIST", MNIST_FILES, 28, lambda r, d, t: MNIST(r, train=t, download=d))
build_fashion_mnist = _official_train_test("Fashion-MNIST", FASHION_MNIST_FILES, 28,
                                           lambda r, d, t: FashionMNIST(r, train=t, download=d))
build_kmnist = _official_train_test("KMNIST", KMNIST_FILES, 28, lambda r, d, t: KMNIST(r, train=t, download=d))
build_svhn = _official_train_test("SVHN", SVHN_FILES, 32,
                                  lambda r, d, t: SVHN(r, split="train" if t else "test", download=d),
                                  classes=lambda _: [str(i) for i in range(10)])  # the house-number digits 0-9
build_stl10 = _official_train_test("STL-10", STL10_FILES, 96,
                                   lambda r, d, t: STL10(r, split="train" if t else "test", download=d),
                                   unlabeled=lambda r: STL10(r, split="unlabeled"))
