"""data/content.py: a user folder's digest changes when its images do, and only then."""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.data.content import folder_digest


def _folder(root: Path) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            (root / name / f"{i}.png").write_bytes(bytes([i]) * (10 + i))
    return root


def test_the_digest_follows_added_removed_replaced_and_touched_files(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    first = folder_digest(root)
    assert first is not None and len(first) == 16 and folder_digest(root) == first  # stable while nothing changes
    (root / ".DS_Store").write_bytes(b"finder")  # hidden files are not read by the dataset builders
    (root / "cat" / ".thumbs").mkdir()
    assert folder_digest(root) == first
    seen = {first}
    (root / "cat" / "3.png").write_bytes(b"new")  # added
    seen.add(folder_digest(root))
    (root / "cat" / "3.png").unlink()
    assert folder_digest(root) == first  # removed again: the same files as before
    (root / "dog" / "0.png").write_bytes(b"other size")  # replaced
    seen.add(folder_digest(root))
    stat = (root / "dog" / "1.png").stat()
    os.utime(root / "dog" / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # rewritten, same size
    seen.add(folder_digest(root))
    (root / "dog" / "2.png").rename(root / "cat" / "2b.png")  # moved to another class
    seen.add(folder_digest(root))
    assert len(seen) == 5


def test_links_are_followed_once_and_a_missing_folder_has_no_digest(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    (root / "cat" / "loop").symlink_to(root, target_is_directory=True)  # would walk forever
    (root / "dog" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    assert folder_digest(root) is not None
    assert folder_digest(tmp_path / "missing") is None
    assert folder_digest(root / "cat" / "0.png") is None


def test_files_that_are_no_pictures_do_not_count(tmp_path: Path) -> None:
    """Windows Explorer's Thumbs.db or a notes.txt beside the images made every pipeline stage train again and
    refused export/prune/quantize of the models trained on the folder."""
    root = _folder(tmp_path / "data")
    first = folder_digest(root)
    (root / "Thumbs.db").write_bytes(b"cache")
    (root / "cat" / "notes.txt").write_text("labels checked")
    (root / "labels.csv").write_text("a,b")
    assert folder_digest(root) == first
    (root / "cat" / "photo.heic").write_bytes(b"x")  # a picture, even one cnnlab cannot read, does count
    assert folder_digest(root) != first
