"""data/content.py: a user folder's digest changes when its images do, and only then."""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.data.content import copies_of, folder_digest, visible_files


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


def test_a_folder_is_listed_under_its_own_path_even_when_a_link_to_it_sorts_first(tmp_path: Path) -> None:
    """Probe 161: `photos/alink -> sub` listed sub/'s picture as photos/alink/deep.bmp, never as photos/sub/deep.bmp;
    a link to a folder nothing else reaches is walked where it sorts, as os.walk did."""
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    (photos / "sub" / "deep.bmp").write_bytes(b"x")
    (photos / "alink").symlink_to("sub", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "far.png").write_bytes(b"y")
    (photos / "b_far").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (photos / "c.png").write_bytes(b"z")
    assert [os.path.relpath(path, photos) for path in visible_files(photos)] == \
        ["c.png", "b_far/far.png", "sub/deep.bmp"]


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


def test_copies_are_found_by_their_pixels_in_other_bytes(tmp_path: Path) -> None:
    """Probe 70: a picture saved again (another PNG compression level, BMP, a grey picture as RGB) has other bytes
    and the same pixels; compared by bytes alone, such copies in val read 86.67 % for a model at chance."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    colour, grey, other = (rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((9, 7, 3), (9, 7), (9, 7, 3)))
    Image.fromarray(colour).save(tmp_path / "train_colour.png", compress_level=9)
    Image.fromarray(grey).save(tmp_path / "train_grey.png")
    Image.fromarray(colour).save(tmp_path / "resaved.png", compress_level=0)
    Image.fromarray(colour).save(tmp_path / "as.bmp")
    Image.fromarray(grey).convert("RGB").save(tmp_path / "grey_as_rgb.png")
    Image.fromarray(other).save(tmp_path / "new.png")
    Image.fromarray(colour).save(tmp_path / "lossy.jpg", quality=95)
    train = [str(tmp_path / "train_colour.png"), str(tmp_path / "train_grey.png")]
    assert (tmp_path / "resaved.png").read_bytes() != (tmp_path / "train_colour.png").read_bytes()
    found = copies_of([str(tmp_path / name) for name in ("resaved.png", "as.bmp", "grey_as_rgb.png", "new.png",
                                                         "lossy.jpg")], train)
    assert found == {str(tmp_path / "resaved.png"): train[0], str(tmp_path / "as.bmp"): train[0],
                     str(tmp_path / "grey_as_rgb.png"): train[1]}


def test_copies_are_compared_as_pictures_are_read_rotated_by_exif(tmp_path: Path) -> None:
    """Probe 71: the pixel digest was taken before the EXIF rotation cnnlab applies when it reads a picture: a PNG
    that reads as a training picture was kept in val, and one that reads as another picture was dropped."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "train.png")
    turned = Image.fromarray(np.rot90(pixels, k=2).copy())
    exif = turned.getexif()
    exif[0x0112] = 3  # "rotate 180° to display": it reads as train.png
    turned.save(tmp_path / "reads_the_same.png", exif=exif)
    stored = Image.fromarray(pixels)
    exif = stored.getexif()
    exif[0x0112] = 3  # the same stored pixels, read upside down: another picture
    stored.save(tmp_path / "stored_the_same.png", exif=exif)
    found = copies_of([str(tmp_path / "reads_the_same.png"), str(tmp_path / "stored_the_same.png")],
                      [str(tmp_path / "train.png")])
    assert found == {str(tmp_path / "reads_the_same.png"): str(tmp_path / "train.png")}


def test_jpeg_copies_are_found_converted_to_png_or_with_other_metadata(tmp_path: Path) -> None:
    """A JPEG converted to PNG, and a JPEG with a comment added (other bytes, the same compressed picture), were
    not found: JPEGs were compared by their bytes alone. A JPEG saved again at another quality holds other pixels and
    stays apart, as does another picture of the same size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(2)
    picture, other = (rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(2))
    Image.fromarray(picture).save(tmp_path / "train.jpg", quality=90)
    Image.fromarray(other).save(tmp_path / "train_other.jpg", quality=90)
    with Image.open(tmp_path / "train.jpg") as jpeg:
        jpeg.save(tmp_path / "converted.png")
        jpeg.save(tmp_path / "resaved.jpg", quality=70)
    data = (tmp_path / "train.jpg").read_bytes()
    (tmp_path / "commented.jpg").write_bytes(data[:2] + b"\xff\xfe\x00\x07copy!" + data[2:])  # a COM segment
    Image.fromarray(other[::-1].copy()).save(tmp_path / "new.png")
    train = [str(tmp_path / "train_other.jpg"), str(tmp_path / "train.jpg")]
    found = copies_of([str(tmp_path / name) for name in ("converted.png", "commented.jpg", "resaved.jpg", "new.png")],
                      train)
    assert found == {str(tmp_path / "converted.png"): train[1], str(tmp_path / "commented.jpg"): train[1]}
    # and the other way round: a training PNG converted from the JPEG that is in val
    assert copies_of([str(tmp_path / "train.jpg")], [str(tmp_path / "converted.png")]) == {
        str(tmp_path / "train.jpg"): str(tmp_path / "converted.png")}


def test_jpegs_with_the_same_reduced_picture_are_told_apart_by_their_full_pixels(tmp_path: Path) -> None:
    """The 1/8-scale decode only picks candidates among JPEGs: two pictures that agree at 1/8 scale and differ in
    detail are not copies."""
    import numpy as np
    from PIL import Image

    flat = np.full((32, 32, 3), 128, dtype=np.uint8)
    detail = flat.copy()
    detail[(np.indices((32, 32)).sum(axis=0) % 2) == 0] = 140  # a checkerboard around the same mean: each 8x8
    detail[(np.indices((32, 32)).sum(axis=0) % 2) == 1] = 116  # block's average (the 1/8 decode) stays 128
    Image.fromarray(flat).save(tmp_path / "flat.jpg", quality=95)
    Image.fromarray(detail).save(tmp_path / "detail.jpg", quality=95)
    from cnnlab.data.content import exact_pixels_of, pixels_of

    assert exact_pixels_of(str(tmp_path / "flat.jpg")) != exact_pixels_of(str(tmp_path / "detail.jpg"))
    found = copies_of([str(tmp_path / "detail.jpg")], [str(tmp_path / "flat.jpg")])
    assert found == {}
    drafts_agree = pixels_of(str(tmp_path / "flat.jpg")) == pixels_of(str(tmp_path / "detail.jpg"))
    assert drafts_agree, "the pair no longer shares a 1/8 decode: the test no longer reaches the confirmation"
