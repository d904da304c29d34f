"""What is wrong with a dataset's files on disk, file by file, in words: a file missing from a half-extracted folder,
an idx file (MNIST's format) cut short or not idx at all, a file whose MD5 sum is not the official one's, an image
a split lists that is missing or cut short. torchvision reports these as "Dataset not found or corrupted", a shape
error or a traceback mid-training (probe 66); data/torchvision_sets.py turns them into one line naming the file."""

from __future__ import annotations

import functools
import gzip
import os
import struct
import tarfile
from math import prod
from pathlib import Path
from typing import BinaryIO, Sequence

from torchvision.datasets import CIFAR10, CIFAR100, STL10, SVHN, Flowers102
from torchvision.datasets import utils as torchvision_utils

from cnnlab.data.archives import OnDisk
from cnnlab.data.decode import UndecodableImage, inspect_image
from cnnlab.errors import CnnlabError
from cnnlab.fileio import is_regular_file
from cnnlab.wording import counted


_IDX_DIMENSIONS = {b"\x00\x00\x08\x01": 1, b"\x00\x00\x08\x03": 3}  # unsigned bytes: labels N; images N x H x W
_NAMED_DIMENSIONS = {"-idx3-": 3, "-idx1-": 1}  # train-images-idx3-ubyte, t10k-labels-idx1-ubyte
IDX_SIDE = 28  # MNIST, Fashion-MNIST and KMNIST, the idx sets cnnlab reads, all store 28 x 28 images


def idx_fault(path: Path) -> str | None:
    """What keeps torchvision from reading an idx file (MNIST's format: a magic number, the dimensions, one byte per
    value), in words; None when it holds the values its header promises."""
    with path.open("rb") as file:
        head = file.read(16)
    size, dimensions = path.stat().st_size, _IDX_DIMENSIONS.get(head[:4])
    if size == 0:
        return "is empty"
    if dimensions is None:
        return f"is not an idx file (it starts with 0x{head[:4].hex()}, not 0x00000801 or 0x00000803)"
    header = 4 + 4 * dimensions
    if size < header:
        return f"ends inside its header ({counted(size, 'byte')})"
    named = _NAMED_DIMENSIONS.get(next((key for key in _NAMED_DIMENSIONS if key in path.name), ""))
    if named is not None and dimensions != named:  # probe 127: torchvision's "x should have 3 dimension instead of 1"
        return (f"holds {'labels (1-D)' if dimensions == 1 else 'images (3-D)'} where its name says "
                f"{'images' if named == 3 else 'labels'}: are the image and label files swapped?")
    shape = struct.unpack(f">{dimensions}I", head[4:header])
    if shape[0] == 0:  # probe 127: a buffer-offset error from torchvision, the file unnamed
        return "holds no items (its header counts 0)"
    if size - header != prod(shape):
        total = f" = {prod(shape):,}" if dimensions > 1 else ""
        return (f"holds {counted(size - header, 'byte')} of values where its header promises "
                f"{' x '.join(f'{d:,}' for d in shape)}{total}: it is cut short or not whole")
    if dimensions == 3 and shape[1:] != (IDX_SIDE, IDX_SIDE):  # read at 28 x 28, its bytes would train as noise
        return (f"holds {shape[1]} x {shape[2]} images, not the {IDX_SIDE} x {IDX_SIDE} of MNIST, Fashion-MNIST and "
                "KMNIST")
    return None


def _idx_count(path: Path) -> int:
    """The first dimension an idx file's header gives: its number of images or labels."""
    with path.open("rb") as file:
        return struct.unpack(">4xI", file.read(8))[0]


def idx_faults(files: OnDisk, root: Path) -> list[tuple[Path, str]]:
    """The MNIST-style set's idx files (train images, labels, test images, labels) that cannot be read, or whose
    label file counts other than its image file."""
    paths = [root / path for path, _ in files.needs if "-idx" in path and (root / path).is_file()]
    faults = [(path, why) for path in paths if (why := idx_fault(path)) is not None]
    if faults or len(paths) != 4:
        return faults
    count = {path: _idx_count(path) for path in paths}
    return [(labels, f"holds {counted(count[labels], 'label')} for the {counted(count[images], 'image')} of "
                     f"{images.name}") for images, labels in zip(paths[0::2], paths[1::2])
            if count[images] != count[labels]]


@functools.lru_cache(maxsize=1)
def _official_sums() -> dict[str, dict[str, str]]:
    """Set title -> {file under dataset.root: the MD5 sum torchvision requires of it}."""
    def under(folder: str, pairs: Sequence[Sequence[str]]) -> dict[str, str]:
        return {f"{folder}/{name}": md5 for name, md5 in pairs}

    def cifar(kind: type[CIFAR10]) -> dict[str, str]:
        return under(kind.base_folder, [*kind.train_list, *kind.test_list, (kind.meta["filename"], kind.meta["md5"])])

    return {"CIFAR-10": cifar(CIFAR10), "CIFAR-100": cifar(CIFAR100),
            "STL-10": under(STL10.base_folder, [*STL10.train_list, *STL10.test_list]),
            "SVHN": {name: md5 for split, (_, name, md5) in SVHN.split_list.items() if split != "extra"},
            "Flowers-102": under("flowers-102", [Flowers102._file_dict[key] for key in ("label", "setid")])}


def _sum_faults(files: OnDisk, root: Path) -> list[tuple[Path, str]]:
    """The set's files whose MD5 sum is not the official file's (torchvision refuses them)."""
    return [(root / name, "is not the official file (its MD5 sum differs)")
            for name, md5 in _official_sums().get(files.title, {}).items()
            if (root / name).is_file() and not torchvision_utils.check_integrity(str(root / name), md5)]


def file_faults(files: OnDisk, root: Path) -> list[tuple[Path, str]]:
    """What is wrong with the set's files in `root`, file by file: the missing ones; else idx files that do not
    hold what their header says; else files whose MD5 sum is not the official one's."""
    return [(path, "is missing") for path in files.missing_files(root)] or idx_faults(files, root) \
        or _sum_faults(files, root)


def _packed_inside(path: Path, archive: Path) -> bool:
    """Whether `archive` is where `path` came from: a .gz that decompresses to exactly the file `path`'s bytes, or a
    tar archive (CIFAR's .tar.gz) that holds every file of the folder `path` byte for byte. Then deleting `path`
    alone would extract the same files again (probe 67: a fix that looped, for an idx .gz and a foreign CIFAR
    archive)."""
    if not archive.is_file() or not path.exists():
        return False
    try:
        if path.is_dir():
            return tarfile.is_tarfile(archive) and _folder_packed_inside(path, archive)
        if archive.suffix != ".gz":
            return False
        with gzip.open(archive, "rb") as packed, path.open("rb") as plain:
            return _same_bytes(packed, plain)
    except (OSError, EOFError, tarfile.TarError):  # an archive that does not read is not where readable files came from
        return False


def _same_bytes(one: BinaryIO, other: BinaryIO) -> bool:
    while True:
        chunk = one.read(1 << 20)
        if chunk != other.read(1 << 20):
            return False
        if not chunk:
            return True


def _folder_packed_inside(folder: Path, archive: Path) -> bool:
    """Whether every file under `folder` is a member of the tar `archive` (its path from the folder's parent, as the
    set's archives hold them) with the same bytes. Only read: member names are untrusted, so a name is only compared,
    never written."""
    files = {path.relative_to(folder.parent).as_posix(): path for path in folder.rglob("*") if path.is_file()}
    found = 0
    with tarfile.open(archive) as packed:
        for member in packed:
            path = files.get(member.name.removeprefix("./"))
            if path is None or not member.isfile():
                continue
            content = packed.extractfile(member)
            if content is None or member.size != path.stat().st_size:
                return False
            with content, path.open("rb") as plain:
                if not _same_bytes(content, plain):
                    return False
            found += 1
    return found == len(files) > 0


def put_back(files: OnDisk, root: Path, needs: Sequence[tuple[str, str | None]]) -> str:
    """The fix for `needs` that are there but not whole: delete them first (an archive beside a folder that exists is
    never extracted), with the .gz they were extracted from, then place the official files — or, where a system
    package holds the set (archives.SYSTEM_COPIES), nothing more: the next run extracts them from it."""
    there = [str(root / path) for path, _ in needs if (root / path).exists()]
    there += [str(root / archive) for path, archive in needs if archive and _packed_inside(root / path, root / archive)]
    copy = files.system_copy()
    if there and copy is not None:  # probe 184: "apt-get install" named where the package was installed already
        return f"delete {', '.join(there)}: the next run puts them back from the copy installed in {copy}/"
    put = files.placement(root, needs)
    return f"delete {', '.join(there)} and put the official files there: {put}" if there else put


def faults_error(files: OnDisk, root: Path, faults: Sequence[tuple[Path, str]]) -> CnnlabError:
    """One line naming the faulty files (the first two) and the fix for the needs that hold them."""
    shown = "; ".join(f"{path} {why}" for path, why in faults[:2])
    more = f" (and {len(faults) - 2} more)" if len(faults) > 2 else ""
    needs = [(path, archive) for path, archive in files.needs
             if any(root / path == faulty or root / path in faulty.parents for faulty, _ in faults)]
    return CnnlabError(f"{files.title} files in {root} are incomplete or corrupted: {shown}{more}",
                       fix=put_back(files, root, needs))


def image_fault(path: str) -> str | None:
    """Why an image file a split lists cannot be read, or None. A file that ends in JPEG's end-of-image marker is taken
    as whole (a download or extraction cut short lacks it: 0.1 s for Flowers' 8,189); any other is decoded to see."""
    if not is_regular_file(path):  # a named pipe's open waits for a writer (probe 112)
        return "is not a regular file"
    try:
        with open(path, "rb") as file:
            file.seek(-2, os.SEEK_END)
            if file.read(2) == b"\xff\xd9":
                return None
    except FileNotFoundError:
        return "is missing"
    except OSError:  # under 2 bytes, or unreadable: the decoder says which
        pass
    try:
        inspect_image(path)
    except UndecodableImage as exc:
        return f"cannot be read ({exc.detail or exc.reason})"
    return None
