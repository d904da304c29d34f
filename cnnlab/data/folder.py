"""The user's own images: DIR/train/<class>/*, DIR/val/<class>/* — or DIR/<class>/*, split by val_fraction.
A flat DIR/*.jpg (no class folders) serves self-supervised pretraining only (`build_flat_folder`).

Split folders are found ignoring case (Train/, VALID/, Validation/, Test/): train, training; val, valid, validation;
test, testing (of several spellings present, the first in that order is the split; Kaggle sets use Training/ and
Testing/). Hidden files and folders (a leading dot) are never read.
Images are decoded by cnnlab.data.decode (what a viewer shows: 16-bit, palette, alpha, EXIF rotation, ...).
Files that carry an image extension but cannot be read are skipped; conversions and skips are counted in
one summary line per dataset (a warning when there is anything to say) and in RawSplits.decode.
Everything else that is wrong with the folder is a CnnlabError that shows the expected layout.
"""

from __future__ import annotations

import logging
import os
import shlex
import unicodedata
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from torch.utils.data import ConcatDataset, Dataset, Subset
from torchvision.datasets import ImageFolder

from cnnlab.data.bundle import RawSplits
from cnnlab.data.content import (copies_of, copies_within, folder_digest, is_folder_entry, pixels_of, remember_pixels,
                                 visible_files)
from cnnlab.data.layout import (SPLIT_DIR_NAMES, TEST_DIR_NAMES, TRAIN_DIR_NAMES, VAL_DIR_NAMES, class_dirs,
                                folder_and_training_digests, is_hidden, split_candidates, split_named)
from cnnlab.data.decode import DecodeSummary, UndecodableImage, extension_reason, load_rgb, preview_image
from cnnlab.data.spec import InputSpec
from cnnlab.data.splits import labels_of, stratified_split
from cnnlab.errors import CnnlabError
from cnnlab.fileio import why_missing
from cnnlab.console import RUN_WARNING
from cnnlab.wording import counted, listed

log = logging.getLogger(__name__)

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
_SPLIT_NAMES_TEXT = ", ".join(SPLIT_DIR_NAMES)


def _shown(names: Sequence[str], limit: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e and 3 more'."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class FolderScan:
    """Finds the images of one dataset (all its splits), proves each decodes and counts its conversions.

    Folders are walked in sorted order, hidden files and folders (a leading dot) left out, following symbolic
    links safely: a folder link that leads to a folder already scanned, to a class folder of any split, or back up
    to one of its own parents (a loop) is not entered; a file whose real path is already in the dataset is kept
    once. Files reached without a link win over links to them across all splits of the dataset (every split is
    walked before any file is accepted), so a link never moves a picture to another class or split. Files with an
    extension we read are checked with `decode.preview_image` (reduced decode; truncated files fail);
    image-looking files we cannot read (.heic, ...) are skipped; everything else (README.txt) is ignored.
    Every kept image and every skip is counted in `summary`.
    """

    def __init__(self) -> None:
        self.summary = DecodeSummary()
        self._files: set[str] = set()  # real paths already in the dataset
        self._folders: set[str] = set()  # real paths of the folders walked or claimed as class folders

    def samples(self, splits: Sequence[tuple[Path, Sequence[str]]]) -> list[list[tuple[str, int]]]:
        """For each (split folder, its sorted class names): [(path, class index)], in ImageFolder's order. A class
        folder linked to another is refused before (`_open_splits`, its one caller)."""
        for directory, classes in splits:  # every split's class folders first: a folder link never enters one
            self._folders.update(os.path.realpath(directory / name) for name in classes)
        # Every folder reached without a link is walked before any folder link is entered: a link sorted before the
        # folder it leads to took that folder's pictures into its own class and split (probe 161: test pictures
        # trained on, labelled as the link's class), and the real folder was skipped as "already scanned". A link
        # entered keeps its place in the order.
        deferred: list[tuple[str, str]] = []  # (folder link, real path of the folder holding it)
        walked = [(split, label, item) for split, (directory, classes) in enumerate(splits)
                  for label, name in enumerate(classes)
                  for item in self._walk(directory / name, via_link=(directory / name).is_symlink(), deferred=deferred)]
        entered = [list(self._walk(Path(link), via_link=True)) if self._claim(link, parent) else []
                   for link, parent in deferred]
        found = [(split, path, label, via_link) for split, label, item in walked
                 for path, via_link in (entered[item] if isinstance(item, int) else [item])]
        # files reached without a link, in every split, are checked first: a link never takes a file away from the
        # folder it lives in (sorted() is stable: the order stays ImageFolder's otherwise)
        kept = {index for index in sorted(range(len(found)), key=lambda i: found[i][3])
                if self._accept(found[index][1])}
        result: list[list[tuple[str, int]]] = [[] for _ in splits]
        for index, (split, path, label, _) in enumerate(found):
            if index in kept:
                result[split].append((path, label))
        return result

    def _walk(self, folder: Path, *, via_link: bool,
              deferred: list[tuple[str, str]] | None = None) -> Iterator[tuple[str, bool] | int]:
        """(file path, reached through a symlink) for every visible non-folder entry under `folder`, sorted. A folder
        link is put off: appended to `deferred` (where given), its index yielded in its place."""
        real = os.path.realpath(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:  # unreadable folder: nothing in it can be read either
            return
        for entry in entries:
            if is_hidden(entry.name):
                continue
            link = via_link or entry.is_symlink()
            if not is_folder_entry(entry):  # follows links; a link to nothing is a file that will fail to decode
                yield entry.path, link
            elif deferred is not None and entry.is_symlink():  # a folder link (a class folder that is a link is
                # the class's own: its sub-folders are walked with it — probe 167: deferred, a link sorted first took
                # them into its class)
                deferred.append((entry.path, real))
                yield len(deferred) - 1
            elif self._claim(entry.path, real):
                yield from self._walk(Path(entry.path), via_link=link, deferred=deferred)

    def _claim(self, folder: str, parent: str) -> bool:
        """Whether `folder` (in the folder whose real path is `parent`) is to be walked: not when its real path was
        walked already, is a class folder of its own, or is one of its parents (a loop) — then counted as skipped."""
        target = os.path.realpath(folder)
        if target in self._folders or os.path.commonpath([target, parent]) == target:
            self.summary.add_skipped(FOLDER_ALREADY_SCANNED, folder)
            return False
        self._folders.add(target)
        return True

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
            preview = preview_image(path)
        except UndecodableImage as exc:
            self.summary.add_skipped(exc.reason, path)
            return False
        remember_pixels(path, preview.pixels)  # for copies_of: the pictures are not decoded twice
        self._files.add(real)
        self.summary.add_read(preview.kinds, preview.size, path, coloured=preview.coloured, reduced=preview.reduced)
        return True

    def skipped_text(self) -> str:
        """'' or '; skipped N (reason: n, first: PATH; ...)', to end an error message with."""
        text = self.summary.skipped_text()
        return f"; {text}" if text else ""


def _refuse_class_links_to_classes(folders: Sequence[Path]) -> None:
    """Refuses a class folder that is a link to another class folder of the dataset (any split), or to a folder inside
    one: its pictures would be labelled as two classes, or be in two splits (probe 227: `alias -> zebra` trained
    zebra's sub-folders as class `alias`, exit 0, and the fix "add an image to alias/" put it in zebra/). Of two links
    to one folder, the first in the order keeps it. A class folder linked to a folder outside the dataset is fine."""
    reals = [Path(os.path.realpath(folder)) for folder in folders]
    for i, folder in enumerate(folders):
        if not folder.is_symlink():
            continue
        for j, other in enumerate(folders):
            same = reals[i] == reals[j] and (j < i or not other.is_symlink())
            if j == i or not (same or reals[i].is_relative_to(reals[j]) and reals[i] != reals[j]):
                continue
            where = "" if same else "a folder inside "
            two = ("two classes" if folder.parent == other.parent else
                   f"in two splits ({folder.parent.name}/ and {other.parent.name}/)")
            raise CnnlabError(f"imagefolder: the class folder {folder} is a link to {where}the class folder {other}: "
                              f"one folder's pictures would be {two}",
                              fix=f"remove the link (rm {shlex.quote(str(folder))}); a class of its own needs a folder "
                                  "of its own pictures")


class _VisibleImageFolder(ImageFolder):
    """ImageFolder over classes and samples found beforehand (`_split_classes`, `FolderScan.samples`: hidden
    folders are no classes, links are followed safely, which torchvision's os.walk(followlinks=True) is not),
    decoding with decode.load_rgb."""

    def __init__(self, root: Path, classes: list[str], samples: list[tuple[str, int]]) -> None:
        self._found: tuple[list[str], list[tuple[str, int]]] | None = (classes, samples)  # read in __init__
        super().__init__(str(root), loader=load_rgb, allow_empty=True)
        self._found = None

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        assert self._found is not None, "find_classes is only called from __init__"
        classes = self._found[0]
        return classes, {name: index for index, name in enumerate(classes)}

    def make_dataset(self, directory: str | Path, class_to_idx: dict[str, int],  # type: ignore[override]
                     extensions: tuple[str, ...] | None = None, is_valid_file: Any = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        assert self._found is not None, "make_dataset is only called from __init__"
        return self._found[1]


def checked_root(cfg: Mapping[str, Any]) -> Path:
    if cfg.get("root") in (None, ""):
        raise CnnlabError("imagefolder needs dataset.root=DIR", fix=FIX)
    root = Path(str(cfg["root"])).expanduser()
    if not root.exists():
        raise CnnlabError(f"imagefolder: dataset.root {root} {why_missing(root)}", fix=FIX)
    if not root.is_dir():
        raise CnnlabError(f"imagefolder: dataset.root {root} is a file, not a folder", fix=FIX)
    return root


def _chosen_split(root: Path, names: Sequence[str], what: str) -> Path | None:
    """`split_dir`, with a warning naming the folders of the same split that are not read."""
    candidates = split_candidates(root, names)
    if len(candidates) > 1:
        log.warning("imagefolder %s: %s/ is the %s split; %s not read (of %s, the first present is used)", root,
                    candidates[0].name, what, ", ".join(f"{path.name}/" for path in candidates[1:]),
                    ", ".join(f"{name}/" for name in names))
    return candidates[0] if candidates else None


def _split_classes(directory: Path, root: Path, train: tuple[Path, list[str]] | None = None) -> list[str]:
    """The sorted class names of one split folder (or of the root of a one-level layout), after refusing the
    layouts that would train on wrong classes (`_check_class_folder`). `train`: (the training split's folder, its
    classes) when `directory` is a val or test split beside it."""
    classes = class_dirs(directory)
    if not classes:
        if _loose_images(directory) and train is not None:  # Kaggle's Testing/ of unlabelled pictures
            raise CnnlabError(
                f"imagefolder: {directory} holds images but no class folders: as the split beside {train[0]}/, "
                f"its images need the same class folders ({directory}/<class>/)",
                fix=f"sort them into {directory}/<class>/ (the classes of {train[0].name}/: {_shown(train[1])}; "
                    "`cnnlab evaluate source=RUN split=test` then scores them); or, "
                    f"for unlabelled images to classify, move {directory} out of {root} and run "
                    f"`cnnlab predict source=RUN {directory.name}`")
        if _loose_images(directory):
            raise CnnlabError(f"imagefolder: {directory} holds images but no class folders", fix=FLAT_FIX + (
                "" if directory == root else f"; a folder named {directory.name} is read as a split, so a class "
                f"named {directory.name} must be renamed (e.g. to {directory.name}_class)"))
        # probe 83: a folder of no pictures at all was "no class folders", whichever layout the user meant
        if train is not None:  # an empty val/ or test/ beside train/: the layout is right (probe 137)
            raise CnnlabError(f"imagefolder: no class folders and no pictures in {directory}",
                              fix=f"add its class folders with images ({directory}/<class>/*.jpg, the classes of "
                                  f"{train[0].name}/), or remove the empty {directory}/")
        raise CnnlabError(f"imagefolder: no class folders and no pictures in {directory}",
                          fix=FIX + ("; for self-supervised pretraining, pictures directly in DIR (a flat folder)"
                                     if directory == root else ""))
    loose = _loose_images(directory)
    if loose:  # probe 83: 50 pictures beside one folder sub/ trained a "class" of the folder's 10 alone
        raise CnnlabError(f"imagefolder: {counted(len(loose), 'image')} directly in {directory} (e.g. {loose[0]}), "
                          f"in no class folder beside {_shown(classes)}: not read",
                          fix=f"move each into its class folder ({directory}/<class>/), or out of {directory}"
                              + ("; for self-supervised pretraining on every picture, move the folders out instead "
                                 "(a flat folder: `cnnlab pretrain method=simclr dataset=imagefolder dataset.root=DIR`)"
                                 if directory == root else ""))
    _refuse_folded_twins(directory, classes, () if train is None else train[1])
    if directory == root:
        _refuse_split_lookalikes(directory, classes)
    for name in classes:
        _check_class_folder(directory, name, classes, one_level=directory == root)
    return classes


def _check_class_folder(directory: Path, name: str, classes: list[str], *, one_level: bool) -> None:
    """Refuses a class folder that holds no image directly but sub-folders that make it a layout mistake:
    named like a split in a one-level layout (DIR/test/<class>/ without DIR/train/), or holding folders named like
    a split or like the other classes. Images nested in sub-folders of other names (class/2021/*.jpg) are fine."""
    folder = directory / name
    try:
        if _has_loose_image(folder):
            _warn_of_class_named_subfolders(folder, classes)
            return
        subs = class_dirs(folder)
    except OSError:  # unreadable: the scan finds no image in it, and says so (`_checked_split`)
        return
    if not subs:
        return  # an empty class folder: its split decides (`_checked_split`)
    if one_level and name.lower() in SPLIT_DIR_NAMES:
        others = [other for other in classes if other.lower() not in SPLIT_DIR_NAMES]
        move = (f"move the training class folders ({_shown(others)}) into {directory}/train/" if others else
                f"put the training images in {directory}/train/<class>/")
        raise CnnlabError(f"imagefolder: {folder} holds class folders ({_shown(subs)}) but {directory} has no "
                          f"train/ folder, so {name}/ would be read as one class, not as a split",
                          fix=f"{move}: {directory}/train/<class>/ beside {folder}/<class>/")
    splits = [sub for sub in subs if sub.lower() in SPLIT_DIR_NAMES]
    if splits:
        raise CnnlabError(f"imagefolder: {folder} holds no image directly but split folders ({_shown(splits)}): "
                          "split folders go above the class folders, not inside them",
                          fix=f"lay it out as {LAYOUT} (move {folder}/{splits[0]}/ to "
                              f"{directory}/{splits[0]}/{name}/, and so on)")
    alike = [sub for sub in subs if sub in classes and sub != name]
    if alike:
        raise CnnlabError(f"imagefolder: {folder} holds no image directly but folders named like the class folders "
                          f"beside it ({_shown(alike)}): a class folder holds the images of one class",
                          fix=f"move the images of {folder}/{alike[0]}/ into {directory}/{alike[0]}/ (and so on), "
                              f"or give the sub-folders of {folder} names that are not class names")


def _warn_of_class_named_subfolders(folder: Path, classes: list[str]) -> None:
    """A class folder of images that also holds folders named like the other classes (a drag-and-drop slip, probe
    182: 2/cat dog/ trained as class 2, not a word said): nested images belong to their class folder, so say which."""
    alike = [sub for sub in class_dirs(folder) if sub in classes and sub != folder.name]
    if alike:
        log.warning("imagefolder %s: %s/ holds folders named like other classes (%s): their images are read as "
                    "class %s, the folder they sit in — move them to %s if they are of those classes", folder.parent,
                    folder.name, _shown(alike), folder.name, f"{folder.parent}/{alike[0]}/")


def _split_inside(folder: Path) -> Path:
    """The folder a split-like folder keeps its class folders in: itself, or the one folder of its own name it holds
    (Kaggle's double nesting, training_set/training_set/<class>/)."""
    return folder / folder.name if class_dirs(folder) == [folder.name] else folder


def _refuse_split_lookalikes(directory: Path, classes: list[str]) -> None:
    """Refuses a one-level layout whose "class" folders are splits under other names (`layout.split_named`): Kaggle's
    training_set/training_set/{cats,dogs}/ beside test_set/test_set/... trained a 2-class model of the classes
    test_set and training_set, exit 0 (probe 97). Splits, not classes, when two or more of them read as different
    splits, one holds two or more folders and the others folders of the same names, in any case (probe 100:
    steam_train/2021/ beside bus/2021/ is a class; probe 102: a test split without some class, or with `Cats` for
    `cats`, is still a split). The fix renames each to the split folder cnnlab reads."""
    looks = [c for c in classes if split_named(c) and c.lower() not in SPLIT_DIR_NAMES
             and not _has_loose_image(directory / c)]
    if not looks:
        return
    inner = {c: {n.casefold() for n in class_dirs(_split_inside(directory / c))} for c in looks}
    widest = max(looks, key=lambda c: len(inner[c]))
    alike = [c for c in looks if inner[c] and (c == widest or inner[c] & inner[widest])]
    if len(inner[widest]) < 2 or len({split_named(c) for c in alike}) < 2:
        return
    moves = [f"mv {shlex.quote(str(_split_inside(directory / c)))} {shlex.quote(str(directory / str(split_named(c))))}"
             for c in alike]
    raise CnnlabError(f"imagefolder: the class folders of {directory} ({_shown(classes)}) include {_shown(alike)}, "
                      "named like splits and holding folders of like names, not images: read as classes, the model "
                      "would learn to tell the splits apart", fix=f"give the splits the names cnnlab reads "
                      f"({_SPLIT_NAMES_TEXT}, in any case): {'; '.join(moves)} (classes whose pictures sit in "
                      "sub-folders of like names: rename them without a split's word)")


def _check_train_is_no_class(train_dir: Path, root: Path) -> None:
    """Refuses DIR/train/*.jpg beside class folders DIR/<class>/*.jpg: a class named train (vehicles/{bus,car,train}),
    which the folder name makes the training split."""
    if not _loose_images(train_dir):
        return
    classes = [name for name in class_dirs(root) if name.lower() not in SPLIT_DIR_NAMES
               and _has_loose_image(root / name)]
    if classes:
        raise CnnlabError(f"imagefolder: {train_dir} holds images beside the class folders {_shown(classes)} of "
                          f"{root}: a folder named {train_dir.name} is read as the training split "
                          f"({train_dir}/<class>/), not as a class",
                          fix=f"rename the class folder {train_dir} to {train_dir}_class (any name but "
                              f"{_SPLIT_NAMES_TEXT}, in any case)")


def _check_same_classes(train: list[str], other: list[str], other_dir: Path) -> None:
    if train == other:
        return
    missing, extra = sorted(set(train) - set(other)), sorted(set(other) - set(train))
    # the same name written in two Unicode forms (macOS writes café decomposed, Linux composed): it prints the same,
    # so "missing: café; extra: café" read as nonsense and its fix did not help (probe 91)
    # (both forms in one split — probe 92 — were refused by `_refuse_folded_twins`: a rename would nest them)
    twins = [(a, b) for a in missing for b in extra if _folded(a) == _folded(b)]
    if twins:
        a, b = twins[0]
        raise CnnlabError(f"imagefolder: the class folder {other_dir}/{b!r}/ and the training split's {a!r}/ are one "
                          f"name {_how_names_differ(a, b)}, so they are two classes to Python and torchvision",
                          fix=f"rename it as the training split writes it: mv {shlex.quote(str(other_dir / b))} "
                              f"{shlex.quote(str(other_dir / a))}")
    steps = ([f"create {other_dir}/{missing[0]}/{' and the others missing' if len(missing) > 1 else ''} "
              "(an empty one is fine: no images of that class to score there)"] if missing else []) + (
        [f"remove or rename {other_dir}/{extra[0]}/{' and the other extra ones' if len(extra) > 1 else ''} "
         "(the training split has no such class)"] if extra else [])
    differ = "; ".join(f"{what}: {_shown(names)}" for what, names in (("missing", missing), ("extra", extra)) if names)
    raise CnnlabError(f"imagefolder: the class folders of {other_dir} differ from the training split's "
                      f"({differ or 'the same names in another order'})",
                      fix=f"{'; '.join(steps)}: every split has the same <class> folders ({LAYOUT})")


def _folded(name: str) -> str:
    """A class folder name as a person reads it: one Unicode form, no case, no spaces around it."""
    return unicodedata.normalize("NFC", name).strip().casefold()


def _how_names_differ(a: str, b: str) -> str:
    """How two names that `_folded` makes one differ: 'written in two Unicode forms (...)' or 'differing only in case
    or spaces around it'."""
    if unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b):
        return (f"written in two Unicode forms ({_form(b)} and {_form(a)}: copied between macOS and another "
                "system?)")
    return "differing only in case or spaces around it"


def _refuse_folded_twins(directory: Path, classes: list[str], keep: Sequence[str] = ()) -> None:
    """Refuses two class folders of one split whose names read as one (`_folded`): Cat/ beside cat/, or cat/ beside
    "cat "/, trained as two classes that print alike (probe 97) — and could not both exist on a macOS or Windows
    disk, so they come from merging folders. The fix keeps the spelling in `keep` (the training split's classes)."""
    seen: dict[str, str] = {}
    for name in classes:
        first = seen.setdefault(_folded(name), name)
        if first != name:
            into, other = (name, first) if name in keep else (first, name)
            # probe 227: both held 0.png…3.png, and the move, followed, replaced four pictures with the other four
            both = sorted(set(_entry_names(directory / other)) & set(_entry_names(directory / into)))
            clash = (f"; {counted(len(both), 'file name')} ({listed(both, 2)}) {'is' if len(both) == 1 else 'are'} in "
                     "both: rename those first, or the move replaces them" if both else "")
            # names in two Unicode forms print alike: each is named by its form too (probe 230)
            forms = _unicode_forms(other, into)
            raise CnnlabError(f"imagefolder: {directory} holds the class folders {first!r} and {name!r}, one name "
                              f"{_how_names_differ(first, name)}: two classes to Python and torchvision",
                              fix=f"move the images of {forms[0]}{shlex.quote(str(directory / other) + '/')} into "
                                  f"{forms[1]}{shlex.quote(str(directory / into) + '/')} and remove the empty folder "
                                  f"(or rename one, if they are two classes){clash}")


def _unicode_forms(a: str, b: str) -> tuple[str, str]:
    """("the decomposed (NFD) ", "the composed (NFC) ") for two names that differ only in Unicode form, which print
    alike; ("", "") otherwise."""
    if a == b or unicodedata.normalize("NFC", a) != unicodedata.normalize("NFC", b):
        return "", ""
    return f"the {_form(a)} ", f"the {_form(b)} "


def _entry_names(folder: Path) -> list[str]:
    """The names in `folder` ([] where it cannot be read)."""
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _form(name: str) -> str:
    """'composed (NFC)' or 'decomposed (NFD)' or 'mixed': how a name's accented letters are written."""
    if unicodedata.is_normalized("NFC", name):
        return "composed (NFC)"
    return "decomposed (NFD)" if unicodedata.is_normalized("NFD", name) else "mixed"


def _readable_picture_in(folder: Path) -> bool:
    """Whether `folder` holds a picture cnnlab reads (decoded at reduced scale, as the scan reads it), stopping at
    the first."""
    for path in visible_files(folder):
        if extension_reason(path) is None:
            try:
                preview_image(path)
                return True
            except UndecodableImage:
                continue
    return False


def _empty_classes(empty: Sequence[str], directory: Path, skipped: str = "") -> CnnlabError:
    """The refusal of training class folders without a readable image (`skipped`: the scan's skipped files, said)."""
    return CnnlabError(f"imagefolder: class folder(s) {_shown(empty)} in {directory} hold no readable image{skipped}",
                       fix=f"add images to {directory / empty[0]}/{' and the others' if len(empty) > 1 else ''}, "
                           "or remove that class from every split")


def _checked_split(folder: ImageFolder, directory: Path, scan: FolderScan, *, every_class: bool,
                   source: Path) -> ImageFolder:
    """`folder` if it has images; a class without a readable image is refused where `every_class` (the training
    split), and only logged in val/ and test/ (that class has no images to score there). A val/ or test/ without
    any image is named with its own fix: the set's layout is right (probe 136: the fix described it)."""
    if not folder.samples:
        empty = next(iter(visible_files(directory)), None) is None  # a val/ of damaged pictures is not (probe 137)
        fix = FIX if directory == source else f"add images to its class folders ({directory}/<class>/*.jpg), or " \
            f"remove {'the empty ' if empty else ''}{directory}/"
        raise CnnlabError(f"imagefolder: no readable images in the class folders of {directory}"
                          f"{scan.skipped_text()}", fix=fix)
    present = set(folder.targets)
    empty = [name for index, name in enumerate(folder.classes) if index not in present]
    if empty and every_class:
        raise _empty_classes(empty, directory, scan.skipped_text())
    if empty:
        split = f"{directory.name} " if directory.name.lower() in SPLIT_DIR_NAMES else ""  # not "no photos images"
        log.warning("imagefolder %s: class folder(s) %s hold no readable image: no %simages of those classes to "
                    "score", directory, _shown(empty), split)
    return folder


def _say_pictures_in_two_classes(folder: ImageFolder) -> None:
    """A warning when one picture (the same pixels, as the scan decoded it) lies in folders of two classes of one
    split: its labels contradict each other, so no model scores both (probe 97: a copy under 1/ and 10/ was trained
    and scored twice without a word)."""
    found: dict[str, dict[int, str]] = {}  # pixels → {label: its first file}
    for path, label in folder.samples:
        pixels = pixels_of(path)
        if pixels is not None:
            found.setdefault(pixels, {}).setdefault(label, path)
    clashing = [files for files in found.values() if len(files) > 1]
    if clashing:
        first, second = list(clashing[0].values())[:2]
        log.warning("imagefolder %s: %s %s in the folders of two or more classes (the same pixels; e.g. %s and %s): "
                    "their labels contradict each other, so no model can score every copy right — keep each "
                    "picture in the folder of its class only", folder.root, counted(len(clashing), "picture"),
                    "lies" if len(clashing) == 1 else "lie", first, second)


def _split_dirs(root: Path) -> tuple[Path, Path | None, Path | None]:
    """(the folder of the training images, the val split folder or None, the test split folder or None): with a
    train/ folder, its val/ and test/ beside it; without, `root` is one level of class folders (val carved, no test;
    a val/ or test/ in it is refused by `_check_class_folder`)."""
    train_dir = _chosen_split(root, TRAIN_DIR_NAMES, "training")
    if train_dir is None:
        return root, None, None
    _check_train_is_no_class(train_dir, root)
    loose = _loose_images(root)
    if loose:  # probe 84: pictures beside train/ were in no split, and never read, exit 0
        raise CnnlabError(f"imagefolder: {counted(len(loose), 'image')} directly in {root} (e.g. {loose[0]}), "
                          f"beside its split folder {train_dir.name}/, in no split: not read",
                          fix=f"move each into a split's class folder ({train_dir}/<class>/), or out of {root}")
    return (train_dir, _chosen_split(root, VAL_DIR_NAMES, "validation"),
            _chosen_split(root, TEST_DIR_NAMES, "test"))


def _open_splits(root: Path, dirs: Sequence[Path | None], scan: FolderScan, *, training: bool = True,
                 least_classes: int = 2) -> tuple[ImageFolder, ImageFolder | None, ImageFolder | None]:
    """The ImageFolders of (train source, val, test) with the training split's classes (so labels line up), every
    split's class folders checked before any image is decoded, and the images of all splits found by one scan.
    training=False (the folder is only scored): an empty class folder of the train source is logged, not refused."""
    source = dirs[0]
    assert source is not None
    classes = _split_classes(source, root)
    if training and len(classes) < least_classes:  # found here, with the folder to name, not by the model builder
        raise CnnlabError(f"imagefolder: {source} holds one class folder ({classes[0]}/), and a classifier needs two "
                          "or more", fix=f"add a folder per class beside it ({source}/<class>/*.jpg); unlabeled "
                          "pictures serve self-supervised pretraining as one flat folder: `cnnlab pretrain "
                          f"method=simclr dataset=imagefolder dataset.root=DIR` with the pictures directly in DIR")
    listed_classes = {source: classes}
    for other in dirs[1:]:
        if other is not None:
            listed_classes[other] = _split_classes(other, root, (source, classes))
    # before the splits' class lists are compared: "create val/bird/" for a train/bird that links to train/dog was
    # followed by the link's refusal, then by "remove val/bird/" (probe 230)
    _refuse_class_links_to_classes([folder / name for folder, names in listed_classes.items() for name in names])
    for other, others in list(listed_classes.items())[1:]:
        # a training class the other split lacks: if it holds no readable picture, that is the fault to name —
        # "create val/Coat/" would be undone by "remove that class from every split" (probes 127, 132)
        bare = [name for name in classes if name not in others and not _readable_picture_in(source / name)] \
            if training else []
        if bare and len(bare) < len(classes):
            raise _empty_classes(bare, source)
        _check_same_classes(classes, others, other)
    present = [d for d in dirs if d is not None]
    found = dict(zip(present, scan.samples([(d, classes) for d in present])))
    train, val, test = (None if d is None else _checked_split(_VisibleImageFolder(d, classes, found[d]), d, scan,
                                                              every_class=training and d == source, source=source)
                        for d in dirs)
    assert train is not None
    for split in (train, val, test):
        if split is not None:
            _say_pictures_in_two_classes(split)
    return train, val, test


def build_imagefolder(cfg: Mapping[str, Any], spec: InputSpec, *, carve: bool = True,
                      least_classes: int = 2) -> RawSplits:
    """The splits of a user's image folder: train/ + val/ (+ test/), train/ (+ test/) with val carved from train/,
    or one level of class folders with val carved from it (see the module docstring and docs/datasets.md).
    carve=False leaves train whole and val empty where val would be carved, and lets a class folder be empty
    (`cnnlab evaluate split=all` only scores every image: a folder too small to carve — one picture per class — or
    without pictures of some class is no reason to refuse it). `least_classes`: the class folders training needs
    (2 for a classifier; 1 for self-supervised pretraining, whose pictures need no labels)."""
    root = checked_root(cfg)
    # before reading: what the run saw, should the folder change while it trains
    content, train_content = folder_and_training_digests(root)
    dirs = _split_dirs(root)
    scan = FolderScan()
    train, val, test = _open_splits(root, dirs, scan, training=carve, least_classes=least_classes)
    splits: tuple[Any, Any] = (train, val)
    if val is None and not carve:
        splits = (train, Subset(train, []))
    elif val is None:  # one level of class folders (or a train/ without a val split): split it ourselves
        train_idx, val_idx = _carve(train, cfg, root, dirs[0], scan)
        if test is not None:
            log.info("imagefolder %s: no val/ folder, so val is %g of %s/ (dataset.val_fraction, seeded); %s/ "
                     "stays the test split, read only by `cnnlab evaluate`", root, cfg.get("val_fraction", 0.2),
                     dirs[0].name, Path(test.root).name)
        splits = (Subset(train, train_idx), Subset(train, val_idx))
    if carve:
        splits = (splits[0], one_of_each_picture(_without_copies_of_training_pictures(splits[1], splits[0], root),
                                                 f"imagefolder {root}", "val"))
    test = one_of_each_picture(test, f"imagefolder {root}", "test") if test is not None else None
    # the colour a 1-channel model loses is said by say_colour_dropped, where the splits a command reads are known
    scan.summary.log(log, f"imagefolder {root}")
    return RawSplits(train=splits[0], val=splits[1], test=test, classes=list(train.classes),
                     stored_size=None, in_memory=False, decode=scan.summary, content=content,
                     train_content=train_content)


def _carve(train: ImageFolder, cfg: Mapping[str, Any], root: Path, folder: Path,
           scan: FolderScan) -> tuple[list[int], list[int]]:
    """Indices (train, val) of the val split carved out of `train` (the pictures of `folder`, in `root`) by
    dataset.val_fraction and dataset.seed: data/splits.stratified_split."""
    return stratified_split(train.targets, cfg.get("val_fraction", 0.2), cfg.get("seed", 0),
                            what=f"imagefolder {folder}", classes=train.classes, folder=folder,
                            layout_fix=_VAL_LAYOUT_FIX.format(root=root), skipped=scan.skipped_text())


def carved_training_files(cfg: Mapping[str, Any]) -> list[str] | None:
    """The files of the training part of the image folder `cfg` (an imagefolder dataset config) names, when its val
    split is carved out of them (one level of class folders, or a train/ without val/): the pictures a run with
    that config trained on, as build_imagefolder carves them. None when the folder has a val/ of its own.
    CnnlabError as build_imagefolder's for a folder it cannot read."""
    root = checked_root(cfg)
    dirs = _split_dirs(root)
    if dirs[1] is not None:
        return None
    scan = FolderScan()
    train = _open_splits(root, dirs, scan)[0]
    return [train.samples[i][0] for i in _carve(train, cfg, root, dirs[0], scan)[0]]


def _without_copies_of_training_pictures(val: Dataset, train: Dataset, root: Path) -> Dataset:
    """`val` less its copies of training pictures (the same bytes or pixels: `content.copies_of`): a download that holds
    `img.jpg` and `img (1).jpg` puts one in each split when val is carved, and a val/ folder may hold copies of
    train/ pictures; scored, they measure what the model memorised (probe 62: val 94.44 % for a model at chance on
    noise pictures, 27.78 % without the copies). Logged; CnnlabError when no val picture is left."""
    val_paths, train_paths = split_files(val) or [], split_files(train) or []
    copies = copies_of(val_paths, train_paths)
    if not copies:
        return val
    first = min(copies)
    kept = [i for i, path in enumerate(val_paths) if path not in copies]
    if not kept:
        carved = isinstance(val, Subset)  # a val/ folder is an ImageFolder of its own
        raise CnnlabError(f"imagefolder {root}: every val picture is a copy of a training picture (first: "
                          f"{first}, a copy of {copies[first]}), so val would measure memory, not accuracy",
                          fix=f"keep one file of each picture in {root} (delete the copies)" if carved
                          else f"give {root} a val split of other pictures than its training ones")
    labels = labels_of(val)
    classes = getattr(val.dataset if isinstance(val, Subset) else val, "classes", [])
    lost = sorted({classes[label] for label in labels} - {classes[labels[i]] for i in kept}) if classes else []
    log.warning("imagefolder %s: %d of the %d val pictures left out of val: copies of training pictures "
                "(first: %s, a copy of %s), which would score memory, not accuracy%s", root, len(copies),
                len(val_paths), first, copies[first],
                f"; val now holds no picture of {_shown(lost)}, so its score says nothing of "
                f"{'that class' if len(lost) == 1 else 'those classes'}" if lost else "")  # probe 72: said nowhere
    return Subset(val, kept)


def one_of_each_picture(split: Dataset, where: Path | str, name: str) -> Dataset:
    """`split` (val, test, or evaluate's split=all: `name`) with one file of each picture it holds more than once (the
    same bytes or pixels: `content.copies_of`), the first in file order: a picture saved twice (`img.jpg`,
    `img (1).jpg`) counted twice in the split's accuracy (probe 210: both copies scored in val's outcomes.csv). A
    picture whose copies lie in the folders of two classes has no label to score it by: every copy is left out (probe
    220: the first in file order, `green/p001.png` of a red picture, was kept and `red/p001.png` dropped). Logged,
    beginning with `where` ("imagefolder DIR"). A split whose files are not known (a torchvision set) is returned as
    it is."""
    paths = split_files(split) or []
    copies = copies_within(paths)
    if not copies:
        return split
    group: dict[str, str] = {}  # union-find over "is a copy of": a picture saved three times is one group

    def root_of(path: str) -> str:
        while group.get(path, path) != path:
            path = group[path]
        return path

    for path, match in copies.items():
        a, b = root_of(path), root_of(match)
        if a != b:
            group[max(a, b)] = min(a, b)
    classes_of: dict[str, set[str]] = {}  # group → the class folders its copies lie in
    for path in paths:
        classes_of.setdefault(root_of(path), set()).add(Path(path).parent.name)
    first: dict[str, str] = {}  # group → the file kept
    kept, dropped, unlabelled = [], [], []
    for i, path in enumerate(paths):
        if len(classes_of[root_of(path)]) > 1:
            unlabelled.append(path)
        elif root_of(path) in first:
            dropped.append((path, first[root_of(path)]))
        else:
            first[root_of(path)] = path
            kept.append(i)
    if dropped:
        log.warning("%s: %d of the %d %s pictures left out of %s: copies of other %s pictures (first: %s, a copy of "
                    "%s), so that each picture counts once in its accuracy", where, len(dropped), len(paths), name,
                    name, name, *dropped[0])
    if unlabelled:
        log.warning("%s: %d of the %d %s pictures left out of %s: copies of one picture filed under two or more "
                    "classes (e.g. %s), whose labels contradict each other — keep each picture in the folder of its "
                    "class only", where, len(unlabelled), len(paths), name, name, listed(unlabelled[:2]))
    return Subset(split, kept)


def say_colour_dropped(cfg: Mapping[str, Any], decode: DecodeSummary, channels: int,
                       splits: Mapping[str, Dataset | None]) -> str | None:
    """For a 1-channel model (`channels`), the warning that the pictures of an image folder (`cfg`: its dataset config)
    stored in colour are read as grey (DecodeSummary.colour_dropped), counted over `splits` — name → split, as the
    command reads it (carved, copies left out, label_fraction applied), the splits it reads only (counted over the
    whole folder, an evaluate of test/ counted train/ too). Logged, and kept in run.json's `warnings` (RUN_WARNING:
    it changes what the run's accuracy means); returned. None when nothing is lost. A split whose files are not known
    (a flat folder's) counts every picture the scan read."""
    named = [name for name, split in splits.items() if split is not None and len(split)]  # type: ignore[arg-type]
    files = [split_files(splits[name]) for name in named]  # type: ignore[arg-type]
    paths = None if any(part is None for part in files) else [path for part in files for path in part or []]
    which = f"{listed(named)} split{'s' if len(named) > 1 else ''}" if named else "no split"
    if set(splits) == {"train", "val", "test"} and named == ["train"]:  # evaluate split=all of a folder without
        which = "split=all"  # split folders, all its pictures "train" (probe 195: "train split" of a folder of none)
    line = decode.colour_dropped(f"imagefolder {checked_root(cfg)}, {which}", channels, paths)
    if line is not None:
        log.warning("%s", line, extra=RUN_WARNING)
    return line


def split_files(split: Dataset) -> list[str] | None:
    """The file behind each item of an image-folder split, in item order: through Subsets and the wrappers that keep
    the items' order (a transform, a relabelling, seeded items: their `base`). None for a split not read from files
    (a torchvision set, digits); a ConcatDataset's (`split=all`) are its parts' in turn, None unless all are known."""
    if isinstance(split, ConcatDataset):
        parts = [split_files(part) for part in split.datasets]
        return None if any(part is None for part in parts) else [path for part in parts for path in part or []]
    if isinstance(split, Subset):
        paths = split_files(split.dataset)  # once: a 60,000-image carve asked it once per image
        return None if paths is None else [paths[i] for i in split.indices]
    if isinstance(split, ImageFolder):
        return [path for path, _ in split.samples]
    base = getattr(split, "base", None)
    return split_files(base) if isinstance(base, Dataset) else None


def _loose_images(directory: Path) -> list[str]:
    """The visible files directly in `directory` whose extension is an image's (sorted), not yet decoded."""
    return sorted(entry.path for entry in os.scandir(directory)
                  if not is_folder_entry(entry) and not is_hidden(entry.name) and extension_reason(entry.path) is None)


def _has_loose_image(directory: Path) -> bool:
    """Whether `directory` holds a visible file with an image's extension directly (stops at the first)."""
    return any(not is_folder_entry(entry) and not is_hidden(entry.name) and extension_reason(entry.path) is None
               for entry in os.scandir(directory))


def is_flat_folder(cfg: Mapping[str, Any]) -> bool:
    """dataset.root holds images directly and no class folder (the unlabeled layout)."""
    root = checked_root(cfg)
    return not class_dirs(root) and bool(_loose_images(root))


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
        skipped = scan.skipped_text()  # probe 143: every picture damaged — the layout was never the problem
        raise CnnlabError(f"imagefolder: no readable images in {root}{skipped}",
                          fix="replace the damaged pictures with readable ones (the first is named above), or give "
                              "dataset.root a folder of readable images" if skipped else FLAT_FIX)
    scan.summary.log(log, f"imagefolder {root} (unlabeled)")  # the colour lost: said by say_colour_dropped
    images = FlatImages(paths)
    return RawSplits(train=images, val=Subset(images, []), test=None, classes=[UNLABELED], stored_size=None,
                     in_memory=False, decode=scan.summary, content=content, train_content=content)
