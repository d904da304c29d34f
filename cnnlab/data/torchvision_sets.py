"""torchvision's downloadable datasets (Flowers-102, CIFAR-10/100), offline first.

We check for the files ourselves before torchvision does, so that a missing dataset ends in one
message naming each file, where it goes and where it comes from — never in a URLError traceback.
`dataset.download`: auto (fetch only what is missing), true (let torchvision fetch/verify), false (never).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from torchvision.datasets import CIFAR10, CIFAR100, Flowers102
from torchvision.datasets.utils import extract_archive

from cnnlab.data.bundle import RawSplits
from cnnlab.data.spec import InputSpec
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

    def extract_archives(self, root: Path) -> None:
        for path, archive in self.needs:
            if archive is not None and not (root / path).exists() and (root / archive).is_file():
                extract_archive(str(root / archive), str((root / archive).parent))

    def placement(self, root: Path) -> str:
        items = [f"{root / path}{'/' if path.endswith('/') else ''}"
                 + (f" (or the archive {root / archive})" if archive else "") for path, archive in self.needs]
        return f"place {', '.join(items)} — from {self.url}"


FLOWERS = OnDisk("Flowers-102", (("flowers-102/jpg/", "flowers-102/102flowers.tgz"),
                                 ("flowers-102/imagelabels.mat", None), ("flowers-102/setid.mat", None)),
                 "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/")
CIFAR10_FILES = OnDisk("CIFAR-10", (("cifar-10-batches-py/", "cifar-10-python.tar.gz"),),
                       "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
CIFAR100_FILES = OnDisk("CIFAR-100", (("cifar-100-python/", "cifar-100-python.tar.gz"),),
                        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")


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
    missing with dataset.download=false."""
    if cfg.get("root") in (None, ""):
        raise CnnlabError(f"{files.title} needs dataset.root=DIR",
                          fix=f"set dataset.root=DIR; {files.placement(Path('DIR'))}")
    root = Path(str(cfg["root"])).expanduser()
    mode, state = download_mode(cfg.get("download", "auto")), files.state(root)
    if state == "missing" and mode is False:
        raise CnnlabError(f"{files.title} is not in {root} and dataset.download=false",
                          fix=f"{files.placement(root)}; or allow the download with dataset.download=auto")
    return root, mode, state


def open_downloadable(cfg: Mapping[str, Any], files: OnDisk, make: Callable[[str, bool], T]) -> T:
    """Run `make(root, download)` once the files are there, or fail with a message that names them."""
    root, mode, state = check_downloadable(cfg, files)
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


def _cifar_builder(cls: type[CIFAR10], files: OnDisk) -> Callable[[Mapping[str, Any], InputSpec], RawSplits]:
    def build(cfg: Mapping[str, Any], spec: InputSpec) -> RawSplits:
        """train = the training batches; val = the official test batch."""
        train, val = open_downloadable(cfg, files, lambda root, download: (
            cls(root, train=True, download=download), cls(root, train=False, download=download)))
        return RawSplits(train=train, val=val, test=None, classes=list(train.classes), stored_size=32,
                         in_memory=False)

    return build


build_cifar10 = _cifar_builder(CIFAR10, CIFAR10_FILES)
build_cifar100 = _cifar_builder(CIFAR100, CIFAR100_FILES)
