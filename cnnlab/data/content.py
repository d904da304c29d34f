"""What a user's image folder held when a run read it: a digest of its files' names, sizes and modification times.

A run is recognised again by its settings (a pipeline stage's fingerprint, a sweep job's identity), but settings do
not see the disk: `dataset=imagefolder dataset.root=photos` names the same folder after images were added, removed
or replaced. The digest is recorded with the run (run.json `dataset.content`) so that a later pipeline or sweep can
tell that the folder changed and train again instead of reusing a model of other images (steps/freshness.py).
Like make and rsync it reads file metadata, not file contents: cheap for 70,000 images, and a copied folder
(new modification times) counts as changed, which errs on the side of training again.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from PIL import Image

from cnnlab.data.decode import UndecodableImage, exact_pixels, extension_reason, preview_image
from cnnlab.fileio import FileVersion, file_sha256, file_version, is_regular_file, sha256_of


# What file systems, NAS boxes and archivers put beside a user's pictures, in any case: never part of a dataset.
# Probe 97: a Synology share's @eaDir/ holds two resized thumbnails of every photo, which the copy check cannot
# tell (they are resized), so a carved val held thumbnails of training photos — 96 % for a model at chance.
SYSTEM_NAMES = frozenset(name.casefold() for name in (
    "@eaDir", "#recycle", "#snapshot", "@Recycle", "@Recently-Snapshot",   # Synology, QNAP
    "__MACOSX",                                                          # macOS Finder's zip metadata
    "$RECYCLE.BIN", "System Volume Information", "Thumbs.db", "ehthumbs.db", "desktop.ini",  # Windows
    "lost+found", "__pycache__"))


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is left out of a dataset: a leading dot (.git, .DS_Store, .ipynb_checkpoints,
    ._IMG_0001.jpg), or a system name (SYSTEM_NAMES: @eaDir, __MACOSX, Thumbs.db, ...)."""
    return name.startswith(".") or name.casefold() in SYSTEM_NAMES


def folder_digest(root: Path, *, outside: Path | None = None) -> str | None:
    """16 hex digits over (path relative to `root`, size in bytes, mtime in ns) of every picture under `root` (a file
    with an image extension, read or not: `decode.extension_reason`), folder links followed once (a loop is not
    entered twice); hidden files and folders (a leading dot) and other files (Thumbs.db, notes.txt, a CSV) are left
    out, as the dataset builders leave them out; none under `outside` when given (the test split: data.layout's
    training_digest). None when `root` is not a folder."""
    return folder_digests(root, apart=outside)[1]


def folder_digests(root: Path, *, apart: Path | None = None) -> tuple[str | None, str | None]:
    """(folder_digest of `root`, folder_digest of `root` without the pictures under `apart`), from one walk of the
    folder: a run records both (the whole folder and its training part), and a folder of 70,000 pictures takes a
    moment to stat. (None, None) when `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        return None, None
    whole, rest = hashlib.sha256(), hashlib.sha256()
    skipped = os.path.realpath(apart) if apart is not None else None
    for path in pictures(root):
        try:
            stat = os.stat(path)
        except OSError:  # a dangling link: not an image either way
            continue
        line = f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape")
        whole.update(line)
        if skipped is None or os.path.commonpath([os.path.realpath(path), skipped]) != skipped:
            rest.update(line)
    return whole.hexdigest()[:16], rest.hexdigest()[:16]


def pictures(root: Path, *, outside: Path | None = None) -> Iterator[str]:
    """The pictures under `root` as folder_digest counts them: visible files with an image extension (or an image's
    signature, `decode.extension_reason`); none under `outside` (e.g. the folder's test split) when given."""
    skipped = os.path.realpath(outside) if outside is not None else None
    return (path for path in visible_files(root) if extension_reason(path) != ""
            and (skipped is None or os.path.commonpath([os.path.realpath(path), skipped]) != skipped))


def copies_of(paths: Sequence[str], others: Sequence[str]) -> dict[str, str]:
    """Each file of `paths` that holds the picture of a file in `others`, mapped to the first such file: the same
    bytes, or the same pixels in other bytes (a PNG saved again at another compression level, as BMP or TIFF, a grey
    picture saved as RGB; probe 70: re-saved copies in val read 86.67 % for a model at chance on noise), a JPEG
    converted to PNG, or a JPEG whose metadata was stripped or whose coding was redone without loss (jpegtran).
    An unreadable file or a dangling link is no copy. A JPEG saved again (lossy: other pixels) is not found.

    Cost: only pictures whose width and height a picture of the other list shares are compared. Between JPEGs the
    digest of the 1/8-scale decode the folder scan made anyway picks the candidates and a full decode confirms each;
    a JPEG is decoded in full against a lossless picture of its size only."""
    found = _byte_copies(paths, others)
    rest = [path for path in paths if path not in found]
    return {**found, **_pixel_copies(rest, others)} if rest else found


def copies_within(paths: Sequence[str]) -> dict[str, str]:
    """copies_of among the files of `paths` themselves: each file that holds the picture of another one of them,
    mapped to such a file (a picture saved three times maps each file to another of the three). Only files whose
    byte size, or picture size, another file shares are hashed or compared."""
    def shared(key: Callable[[str], Any]) -> list[str]:
        keys = {path: key(path) for path in paths}
        counts = Counter(value for value in keys.values() if value is not None)
        return [path for path in paths if keys[path] is not None and counts[keys[path]] > 1]

    def byte_size(path: str) -> int | None:
        try:
            return os.path.getsize(path)
        except OSError:
            return None

    same_size = shared(byte_size)
    found = _byte_copies(same_size, same_size)
    same_picture_size = shared(lambda path: None if (header := _header(path)) is None else header.size)
    return {**found, **_pixel_copies([path for path in same_picture_size if path not in found], same_picture_size)}


def _pixel_copies(paths: Sequence[str], others: Sequence[str]) -> dict[str, str]:
    """copies_of by pixels, for the files of `paths` no byte copy was found for."""
    found: dict[str, str] = {}
    headers = {path: _header(path) for path in {*paths, *others}}
    seen_in_others = _sizes_by_kind(others, headers)
    seen_in_rest = _sizes_by_kind(paths, headers)
    candidates: dict[str, list[str]] = {}
    for path in others:
        for key in _pixel_keys(path, headers[path], seen_in_rest):
            candidates.setdefault(key, []).append(path)
    for path in paths:
        for key in _pixel_keys(path, headers[path], seen_in_others):
            match = next((other for other in candidates.get(key, ()) if other != path and (
                not key.startswith("draft:") or exact_pixels_of(path) == exact_pixels_of(other))), None)
            if match is not None:
                found[path] = match
                break
    return found


def _sizes_by_kind(paths: Sequence[str], headers: dict[str, _Header | None]) -> dict[bool, set]:
    """{is JPEG: the picture sizes among `paths` of that kind}."""
    kinds: dict[bool, set] = {True: set(), False: set()}
    for path in paths:
        if headers[path] is not None:
            kinds[headers[path].jpeg].add(headers[path].size)
    return kinds


def _pixel_keys(path: str, header: _Header | None, other_side: dict[bool, set]) -> list[str]:
    """The digests `path` is compared by against pictures of `other_side`'s sizes ({is JPEG: sizes}): "pixels:" the
    whole picture (a JPEG decoded in full only when a lossless picture of its size is there), "draft:" a JPEG's
    1/8-scale decode against JPEGs of its size (equal drafts are confirmed by exact_pixels_of)."""
    if header is None:
        return []
    keys = []
    if header.jpeg:
        if header.size in other_side[True]:
            keys.append(("draft:", pixels_of(path)))
        if header.size in other_side[False]:
            keys.append(("pixels:", exact_pixels_of(path)))
    elif header.size in other_side[True] | other_side[False]:
        keys.append(("pixels:", pixels_of(path)))
    return [kind + digest for kind, digest in keys if digest is not None]


def _byte_copies(paths: Sequence[str], others: Sequence[str]) -> dict[str, str]:
    """copies_of by bytes: sizes are compared first, so a file is hashed (SHA-256) only when a file of the other
    list has its size, and each size's files are looked up by digest (a folder of pictures of one byte size — BMP,
    28 px PNGs of noise — compared every file with every other one: quadratic)."""
    by_size: dict[int, list[str]] = {}
    for path in others:
        try:
            by_size.setdefault(os.path.getsize(path), []).append(path)
        except OSError:
            continue
    by_digest: dict[int, dict[str, list[str]]] = {}  # size -> digest -> the first two files of `others` with it

    def same_bytes(size: int) -> dict[str, list[str]]:
        if size not in by_digest:
            table: dict[str, list[str]] = {}
            for other in by_size[size]:
                digest = file_sha256(other)
                if digest is not None and len(table.setdefault(digest, [])) < 2:
                    table[digest].append(other)
            by_digest[size] = table
        return by_digest[size]

    found = {}
    for path in paths:
        try:
            size = os.path.getsize(path)
        except OSError:
            continue
        digest = file_sha256(path) if size in by_size else None
        match = next((other for other in same_bytes(size).get(digest, ()) if other != path), None) \
            if digest is not None else None
        if match is not None:
            found[path] = match
    return found


# pixel digests by file version (fileio.file_version): the folder scan decodes every picture once
# (decode.preview_image) and leaves its digest here, so that copies_of compares a folder's pictures without decoding
# them again
_PIXELS: dict[FileVersion, str] = {}
_EXACT_JPEG_PIXELS: dict[FileVersion, str] = {}  # a JPEG's full-scale digest, where _PIXELS holds its 1/8


def remember_pixels(path: str, digest: str) -> None:
    """Keep `digest` (decode.pixel_digest of the picture `path` holds) for copies_of."""
    version = file_version(path)
    if version is not None:
        _PIXELS[version] = digest


def pixels_of(path: str) -> str | None:
    """The pixel digest of the picture `path` holds (decode.preview_image), once per version of the file; None for
    a file that does not decode."""
    return _digest_once(_PIXELS, path, lambda: preview_image(path).pixels)


def exact_pixels_of(path: str) -> str | None:
    """decode.exact_pixels of a JPEG `path` (other formats' pixels_of is exact already), once per version of the
    file; None for a file that does not decode."""
    return _digest_once(_EXACT_JPEG_PIXELS, path, lambda: exact_pixels(path))


def _digest_once(cache: dict[FileVersion, str], path: str, digest: Callable[[], str]) -> str | None:
    version = file_version(path)
    if version is None:
        return None
    if version not in cache:
        try:
            cache[version] = digest()
        except UndecodableImage:
            return None
    return cache[version]


class _Header(NamedTuple):
    size: tuple[int, int]  # (shorter side, longer side): an EXIF rotation by 90° swaps width and height
    jpeg: bool  # by content, not by name: hash-named downloads are read by their signature (decode.extension_reason)


def _header(path: str) -> _Header | None:
    """What the file's header alone says, or None when it does not open (or is no regular file: a pipe's open waits)."""
    if not is_regular_file(path):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a header read: decode.py's policy rules
            with Image.open(path) as image:
                return _Header((min(image.size), max(image.size)), image.format == "JPEG")
    except Exception:  # noqa: BLE001 - whatever Pillow raises, it is no picture to compare
        return None


def same_pictures(folder: Path, other: Path) -> bool:
    """Whether `folder` and `other` hold the same pictures under the same names (paths relative to each), each name
    with the same bytes: a copy of a folder as it was. A folder whose files were renumbered holds the same pictures
    under other names, and a split carved by name then differs (probe 61). Sizes are compared first; SHA-256 only
    when every name and size match."""
    mine = {os.path.relpath(path, folder): path for path in pictures(folder)}
    theirs = {os.path.relpath(path, other): path for path in pictures(other)}
    if mine.keys() != theirs.keys():
        return False
    try:
        if any(os.path.getsize(mine[name]) != os.path.getsize(theirs[name]) for name in mine):
            return False
        return all(sha256_of(mine[name]) == sha256_of(theirs[name]) for name in mine)
    except OSError:  # a file gone or unreadable meanwhile: not shown to be the same
        return False


def visible_files(root: Path) -> Iterator[str]:
    """The paths of the files under `root`, folder by folder in sorted order (os.walk's, top-down); hidden files and
    folders (`is_hidden`) left out; folder links followed, each folder once: a link back to `root` or any folder
    above it is not entered (probe 126: `photos/sub/loop -> ..` walked all of photos/ as photos/sub/loop/…; a link
    to / the whole disk), as the imagefolder scan skips it. Every folder reached without a link is walked before any
    folder link is entered, so a folder is listed under its own path, never a link's (probe 161: `photos/alink ->
    sub` listed sub/'s pictures as photos/alink/…); a link entered keeps its place in the order."""
    seen = {(info.st_dev, info.st_ino) for info in map(os.stat, Path(os.path.realpath(root)).parents)}
    deferred: list[str] = []
    walked = list(_visible_walk(str(root), seen, deferred))
    entered = [list(_visible_walk(link, seen, None)) for link in deferred]
    for item in walked:
        yield from entered[item] if isinstance(item, int) else (item,)


def _visible_walk(folder: str, seen: set[tuple[int, int]], deferred: list[str] | None) -> Iterator[str | int]:
    """visible_files of `folder`, not entering a folder in `seen` (by device and inode; each one entered is added).
    `deferred`: where a folder link is put off to, its index yielded in its place (None: links are entered)."""
    try:
        info = os.stat(folder)
        entries = list(os.scandir(folder))
    except OSError:  # gone, unreadable, or no folder: nothing in it to list (os.walk's silence)
        return
    if (info.st_dev, info.st_ino) in seen:
        return
    seen.add((info.st_dev, info.st_ino))
    visible = sorted((entry for entry in entries if not is_hidden(entry.name)), key=lambda entry: entry.name)
    folders = [entry for entry in visible if is_folder_entry(entry)]
    yield from (entry.path for entry in visible if not is_folder_entry(entry))
    for entry in folders:
        if deferred is not None and entry.is_symlink():
            deferred.append(entry.path)
            yield len(deferred) - 1
        else:
            yield from _visible_walk(entry.path, seen, deferred)


def is_folder_entry(entry: os.DirEntry[str]) -> bool:
    """Whether a scandir entry is a folder or a link to one; False for a link that leads nowhere or back to itself
    (DirEntry.is_dir raises OSError ELOOP for a looping link, where Path.is_dir says False: probe 169, a traceback)."""
    try:
        return entry.is_dir()  # a link to a folder too
    except OSError:
        return False
