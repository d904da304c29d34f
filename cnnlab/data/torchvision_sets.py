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

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from torch.utils.data import Dataset, Subset
from torchvision.datasets import CIFAR10, CIFAR100, KMNIST, MNIST, STL10, SVHN, FashionMNIST, Flowers102
from torchvision.datasets.utils import extract_archive

from cnnlab.data.bundle import RawSplits
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import labels_of, stratified_split
from cnnlab.errors import CnnlabError

T = TypeVar("T")


@dataclass(frozen=True)
class OnDisk:
    """Where a torchvision dataset's files lie under dataset.root.

    `needs`: (path, archive or None) pairs; a path ending in "/" is a folder. An archive may stand in
    for its extracted path: we extract it in place, offline (its contents start at the archive's folder).
    """

    title: str
    needs: tuple[tuple[str, str | None], ...]
    url: str
    hint: str = ""  # another way to get the files, said in the message when they are missing

    def state(self, root: Path) -> str:
        """'ready' (all extracted), 'archived' (some only as archives) or 'missing'."""
        def exists(relative: str) -> bool:
            path = root / relative
            return path.is_dir() if relative.endswith("/") else path.is_file()

        if all(exists(path) for path, _ in self.needs):
            return "ready"
        if all(exists(path) or (archive is not None and exists(archive)) for path, archive in self.needs):
            return "archived"
        return "missing"

    def extract_archives(self, root: Path, copy: Path | None = None) -> None:
        """Extract each archive standing in for a missing path, from `root` or, when given, from the read-only
        folder `copy` that holds the archives under their own names (a system package).

        Atomic: each archive is extracted into a private folder beside its target and renamed into place, so
        another process (the jobs of a parallel sweep all open the set at once) never reads a half-written file,
        and an interrupted extraction leaves nothing that looks ready."""
        for path, archive in self.needs:
            if archive is None or (root / path).exists():
                continue
            source = copy / Path(archive).name if copy is not None else root / archive
            if source.is_file():
                folder = (root / archive).parent
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(prefix=".extracting-", dir=folder) as private:
                    extract_archive(str(source), private)
                    for entry in Path(private).iterdir():
                        _move_into_place(entry, folder / entry.name)

    def system_copy(self) -> Path | None:
        """The folder of SYSTEM_COPIES that holds every archive of this set, or None."""
        folder = SYSTEM_COPIES.get(self.title)
        if folder is None or not all(archive is not None and (Path(folder) / Path(archive).name).is_file()
                                     for _, archive in self.needs):
            return None
        return Path(folder)

    def placement(self, root: Path) -> str:
        items = [f"{root / path}{'/' if path.endswith('/') else ''}"
                 + (f" (or the archive {root / archive})" if archive else "") for path, archive in self.needs]
        return f"place {', '.join(items)} — from {self.url}" + (f"; {self.hint}" if self.hint else "")


FLOWERS = OnDisk("Flowers-102", (("flowers-102/jpg/", "flowers-102/102flowers.tgz"),
                                 ("flowers-102/imagelabels.mat", None), ("flowers-102/setid.mat", None)),
                 "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/")
CIFAR10_FILES = OnDisk("CIFAR-10", (("cifar-10-batches-py/", "cifar-10-python.tar.gz"),),
                       "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
CIFAR100_FILES = OnDisk("CIFAR-100", (("cifar-100-python/", "cifar-100-python.tar.gz"),),
                        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
SVHN_FILES = OnDisk("SVHN", (("train_32x32.mat", None), ("test_32x32.mat", None)),
                    "http://ufldl.stanford.edu/housenumbers/")
STL10_FILES = OnDisk("STL-10", (("stl10_binary/", "stl10_binary.tar.gz"),),
                     "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
# title -> a read-only folder where a system package puts a set's archives (looked up at call time).
SYSTEM_COPIES: dict[str, Path] = {"Fashion-MNIST": DEBIAN_FASHION_MNIST}
_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_files(title: str, folder: str, url: str, hint: str = "") -> OnDisk:
    """The four idx files torchvision's MNIST-style classes read from ROOT/<folder>/raw/ (or their .gz)."""
    return OnDisk(title, tuple((f"{folder}/raw/{name}", f"{folder}/raw/{name}.gz") for name in _IDX), url, hint)


MNIST_FILES = _idx_files("MNIST", "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/")
FASHION_MNIST_FILES = _idx_files(
    "Fashion-MNIST", "FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    hint=f"or, on Debian/Ubuntu, `apt-get install dataset-fashion-mnist` (found in {DEBIAN_FASHION_MNIST}/)")
KMNIST_FILES = _idx_files("KMNIST", "KMNIST", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/")
# dataset= name -> the files it reads
FILES_OF = {"cifar10": CIFAR10_FILES, "cifar100": CIFAR100_FILES, "svhn": SVHN_FILES, "stl10": STL10_FILES,
            "mnist": MNIST_FILES, "fashion_mnist": FASHION_MNIST_FILES, "kmnist": KMNIST_FILES, "flowers": FLOWERS}


def system_copy_of(dataset: str) -> Path | None:
    """The read-only folder where a system package put every archive of `dataset` (fashion_mnist: Debian's
    dataset-fashion-mnist), found offline without configuration; None when there is none."""
    files = FILES_OF.get(dataset)
    return files.system_copy() if files is not None else None


def _move_into_place(entry: Path, target: Path) -> None:
    """Rename `entry` to `target` atomically; a file replaces, a folder that another process has already put
    there (with the same contents, from the same archive) is kept and ours dropped."""
    try:
        os.replace(entry, target)
    except OSError:
        if not (entry.is_dir() and target.is_dir()):
            raise


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
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


def check_downloadable(cfg: Mapping[str, Any], files: OnDisk) -> tuple[Path, bool | None, str]:
    """(root, download mode, state) — or the error that no download could mend: no dataset.root, or files
    missing with dataset.download=false. State `system`: missing from root but in a system copy."""
    if cfg.get("root") in (None, ""):
        raise CnnlabError(f"{files.title} needs dataset.root=DIR",
                          fix=f"set dataset.root=DIR; {files.placement(Path('DIR'))}")
    root = Path(str(cfg["root"])).expanduser()
    mode, state = download_mode(cfg.get("download", "auto")), files.state(root)
    if state == "missing" and mode is not True and files.system_copy() is not None:
        state = "system"
    if state == "missing" and mode is False:
        raise CnnlabError(f"{files.title} is not in {root} and dataset.download=false",
                          fix=f"{files.placement(root)}; or allow the download with dataset.download=auto")
    return root, mode, state


def open_downloadable(cfg: Mapping[str, Any], files: OnDisk, make: Callable[[str, bool], T]) -> T:
    """Run `make(root, download)` once the files are there, or fail with a message that names them."""
    root, mode, state = check_downloadable(cfg, files)
    if state == "system":
        copy = files.system_copy()
        try:
            files.extract_archives(root, copy)
        except OSError as exc:
            raise CnnlabError(f"{files.title}: cannot decompress {copy} into {root} ({_cause(exc)})",
                              fix="point dataset.root=DIR to a writable folder") from exc
    try:
        if state == "archived":
            files.extract_archives(root)
        return make(str(root), mode is True or state == "missing")
    except Exception as exc:  # noqa: BLE001 - URLError, md5 mismatch, bad pickle: all end in one clear message
        if state == "missing":
            raise CnnlabError(f"{files.title} is not in {root} and could not be downloaded ({_cause(exc)})",
                              fix=f"{files.placement(root)}; or rerun where that address is reachable") from exc
        raise CnnlabError(f"{files.title} files in {root} are incomplete or corrupted ({_cause(exc)})",
                          fix=f"replace them: {files.placement(root)}") from exc


def build_flowers(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
    """The official splits: train (1,020), val (1,020), test (6,149)."""
    train, val, test = open_downloadable(cfg, FLOWERS, lambda root, download: [
        Flowers102(root, split=split, download=download) for split in ("train", "val", "test")])
    # torchvision >= 0.18 carries the 102 Oxford names; older versions only the numbers
    classes = list(getattr(Flowers102, "classes", None) or [str(i) for i in range(1, 103)])
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


def carve_val(train: Dataset, cfg: Mapping[str, Any], what: str) -> tuple[Subset, Subset]:
    """(train, val) parts of an official training split: a seeded stratified `dataset.val_fraction` (default 0.1,
    seed `dataset.seed`) becomes val, so the official test split stays unseen until `cnnlab evaluate`."""
    train_idx, val_idx = stratified_split(labels_of(train), cfg.get("val_fraction", 0.1), cfg.get("seed", 0),
                                          what=what)
    return Subset(train, train_idx), Subset(train, val_idx)


def _official_train_test(title: str, files: OnDisk, stored_size: int,
                         make: Callable[[str, bool, bool], Dataset],
                         classes: Callable[[Dataset], list[str]] = lambda d: list(d.classes),  # type: ignore[attr-defined]
                         unlabeled: Callable[[str], Dataset] | None = None,
                         ) -> Callable[[Mapping[str, Any], InputSpec], RawSplits]:
    """A builder for a set with official train and test splits: `make(root, download, train)` opens one."""
    def build(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
        root, official_train, test = open_downloadable(cfg, files, lambda root, download: (
            root, make(root, download, True), make(root, download, False)))
        train, val = carve_val(official_train, cfg, title)
        return RawSplits(train=train, val=val, test=test, classes=classes(official_train), stored_size=stored_size,
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
