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
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

from cnnlab.data.decode import UndecodableImage, extension_reason, preview_image
from cnnlab.fileio import sha256_of


def folder_digest(root: Path) -> str | None:
    """16 hex digits over (path relative to `root`, size in bytes, mtime in ns) of every picture under `root` (a file
    with an image extension, read or not: `decode.extension_reason`), folder links followed once (a loop is not
    entered twice); hidden files and folders (a leading dot) and other files (Thumbs.db, notes.txt, a CSV) are left
    out, as the dataset builders leave them out. None when `root` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        return None
    digest = hashlib.sha256()
    for path in pictures(root):
        try:
            stat = os.stat(path)
        except OSError:  # a dangling link: not an image either way
            continue
        relative = os.path.relpath(path, root)
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def pictures(root: Path, *, outside: Path | None = None) -> Iterator[str]:
    """The pictures under `root` as folder_digest counts them: visible files with an image extension (or an image's
    signature, `decode.extension_reason`); none under `outside` (e.g. the folder's test split) when given."""
    skipped = os.path.realpath(outside) if outside is not None else None
    return (path for path in visible_files(root) if extension_reason(path) != ""
            and (skipped is None or os.path.commonpath([os.path.realpath(path), skipped]) != skipped))


def copies_of(paths: Sequence[str], others: Sequence[str]) -> dict[str, str]:
    """Each file of `paths` that holds the picture of a file in `others`, mapped to the first such file: the same
    bytes, or the same pixels in other bytes (a PNG saved again at another compression level, as BMP or TIFF, a grey
    picture saved as RGB; probe 70: re-saved copies in val read 86.67 % for a model at chance on noise). An
    unreadable file or a dangling link is no copy. JPEG files are compared by their bytes alone (saved again, a JPEG
    holds other pixels; a JPEG converted to PNG is not found)."""
    found = _byte_copies(paths, others)
    rest = [path for path in paths if path not in found and not _is_jpeg(path)]
    if not rest:
        return found
    lossless = [path for path in others if not _is_jpeg(path)]
    sizes = {path: _picture_size(path) for path in [*rest, *lossless]}  # headers only: which pixels could match
    shared = {sizes[path] for path in rest} & {sizes[path] for path in lossless} - {None}
    by_pixels: dict[str, str] = {}
    for path in lossless:
        digest = pixels_of(path) if sizes[path] in shared else None
        if digest is not None:
            by_pixels.setdefault(digest, path)
    for path in rest:
        match = by_pixels.get(pixels_of(path) or "") if sizes[path] in shared else None
        if match is not None and match != path:
            found[path] = match
    return found


def _byte_copies(paths: Sequence[str], others: Sequence[str]) -> dict[str, str]:
    """copies_of by bytes: sizes are compared first, so a file is hashed (SHA-256) only when a file of the other
    list has its size."""
    by_size: dict[int, list[str]] = {}
    for path in others:
        try:
            by_size.setdefault(os.path.getsize(path), []).append(path)
        except OSError:
            continue
    hashes: dict[str, str | None] = {}

    def sha256(path: str) -> str | None:
        if path not in hashes:
            try:
                hashes[path] = sha256_of(path)
            except OSError:
                hashes[path] = None
        return hashes[path]

    found = {}
    for path in paths:
        try:
            candidates = by_size.get(os.path.getsize(path), [])
        except OSError:
            continue
        if candidates and sha256(path) is not None:
            match = next((c for c in candidates if c != path and sha256(c) == sha256(path)), None)
            if match is not None:
                found[path] = match
    return found


# pixel digests by (path, modification time, size): the folder scan decodes every picture once (decode.preview_image)
# and leaves its digest here, so that copies_of compares a folder's pictures without decoding them again
_PIXELS: dict[tuple[str, int, int], str] = {}


def _stamp(path: str) -> tuple[str, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return os.path.realpath(path), info.st_mtime_ns, info.st_size


def remember_pixels(path: str, digest: str) -> None:
    """Keep `digest` (decode.pixel_digest of the picture `path` holds) for copies_of."""
    stamp = _stamp(path)
    if stamp is not None:
        _PIXELS[stamp] = digest


def pixels_of(path: str) -> str | None:
    """The pixel digest of the picture `path` holds (decode.preview_image), once per version of the file; None for
    a file that does not decode."""
    stamp = _stamp(path)
    if stamp is None:
        return None
    if stamp not in _PIXELS:
        try:
            _PIXELS[stamp] = preview_image(path).pixels
        except UndecodableImage:
            return None
    return _PIXELS[stamp]


def _picture_size(path: str) -> tuple[int, int] | None:
    """(shorter side, longer side) from the file's header alone (an EXIF rotation by 90° swaps width and height),
    or None when it does not open."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a header read: decode.py's policy rules
            with Image.open(path) as image:
                return min(image.size), max(image.size)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, it is no picture to compare
        return None


def _is_jpeg(path: str) -> bool:
    return Path(path).suffix.lower() in (".jpg", ".jpeg", ".jpe", ".jfif")


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
    """The paths of the files under `root`, folder by folder in sorted order; hidden files and folders (a leading
    dot: .git, .DS_Store, .ipynb_checkpoints) left out; folder links followed, each folder once (a link back up is not
    walked again)."""
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (os.path.join(folder, name) for name in sorted(files) if not name.startswith("."))
