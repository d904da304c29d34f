"""Where torchvision's downloadable datasets lie on disk, and the read-only system copies of them — without torch.

`OnDisk` names each set's files (and the archives that may stand in for them) under `dataset.root`; FILES_OF maps a
`dataset=` name to them; SYSTEM_COPIES holds the folders where a system package puts a set's archives (Debian's
`dataset-fashion-mnist`). `cnnlab list datasets` reads these tables; the dataset builders
(cnnlab/data/torchvision_sets.py) use them to check and extract files before torchvision opens them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


def _exists(root: Path, relative: str) -> bool:
    """Whether `relative` is in `root`: a folder when it ends in "/", else a file."""
    path = root / relative
    return path.is_dir() if relative.endswith("/") else path.is_file()


def extract_archive(source: str, folder: str) -> None:
    """torchvision's `extract_archive`, imported only when an archive is met (listing the sets imports no torch)."""
    from torchvision.datasets.utils import extract_archive as extract

    extract(source, folder)


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
    members: tuple[str, ...] = ()  # the files torchvision reads inside the folders of `needs`

    def state(self, root: Path) -> str:
        """'ready' (all extracted), 'archived' (some only as archives) or 'missing'."""
        if all(_exists(root, path) for path, _ in self.needs):
            return "ready"
        if not self.absent(root):
            return "archived"
        return "missing"

    def absent(self, root: Path) -> list[tuple[str, str | None]]:
        """The needs neither extracted nor archived in `root`: SVHN's test_32x32.mat beside its train_32x32.mat."""
        return [(path, archive) for path, archive in self.needs
                if not (_exists(root, path) or (archive is not None and _exists(root, archive)))]

    def missing_files(self, root: Path) -> list[Path]:
        """The set's files and folders not in `root`, a folder's contents (`members`) where the folder is there:
        a half-extracted cifar-10-batches-py/ lacks data_batch_3."""
        gone = [root / path for path, _ in self.needs if not _exists(root, path)]
        return gone + [root / member for member in self.members
                       if not (root / member).is_file() and not any(folder in (root / member).parents
                                                                    for folder in gone)]

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

    def placement(self, root: Path, needs: Sequence[tuple[str, str | None]] | None = None) -> str:
        """'place ROOT/PATH (or the archive ROOT/ARCHIVE), … — from URL' for `needs` (default: all of them)."""
        items = [f"{root / path}{'/' if path.endswith('/') else ''}"
                 + (f" (or the archive {root / archive})" if archive else "")
                 for path, archive in (self.needs if needs is None else needs)]
        return f"place {', '.join(items)} — from {self.url}" + (f"; {self.hint}" if self.hint else "")


FLOWERS = OnDisk("Flowers-102", (("flowers-102/jpg/", "flowers-102/102flowers.tgz"),
                                 ("flowers-102/imagelabels.mat", None), ("flowers-102/setid.mat", None)),
                 "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/")
CIFAR10_FILES = OnDisk("CIFAR-10", (("cifar-10-batches-py/", "cifar-10-python.tar.gz"),),
                       "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                       members=tuple(f"cifar-10-batches-py/{name}" for name in (
                           *(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")))
CIFAR100_FILES = OnDisk("CIFAR-100", (("cifar-100-python/", "cifar-100-python.tar.gz"),),
                        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                        members=("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"))
SVHN_FILES = OnDisk("SVHN", (("train_32x32.mat", None), ("test_32x32.mat", None)),
                    "http://ufldl.stanford.edu/housenumbers/")
STL10_FILES = OnDisk("STL-10", (("stl10_binary/", "stl10_binary.tar.gz"),),
                     "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                     members=tuple(f"stl10_binary/{name}.bin" for name in (
                         "train_X", "train_y", "unlabeled_X", "test_X", "test_y")))  # torchvision checks all five
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
# dataset= name -> its fixed class count: the head `cnnlab inspect` and `bench model=NAME` build, as training would
# (imagefolder's are its folders, counted only when a command reads them; synthetic has dataset.num_classes)
OFFICIAL_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "stl10": 10, "mnist": 10, "fashion_mnist": 10,
                    "kmnist": 10, "flowers": 102, "digits": 10}
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
