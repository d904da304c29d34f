"""cnnlab.data.decode: every Pillow mode comes out as the RGB picture a viewer shows (tiny files in tmp_path)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import decode
from cnnlab.data.decode import (ALPHA, BACKGROUND, COLOUR16, EXIF_ROTATED, FIRST_FRAME, GRAY16, PALETTE, DecodeSummary,
                                UndecodableImage, decode_image, inspect_image, load_rgb)
from cnnlab.data.folder import DUPLICATE, FOLDER_ALREADY_SCANNED, build_imagefolder
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError

WHITE = BACKGROUND


def saved(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def pixel(path: Path, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    picture = decode_image(path).image
    assert picture.mode == "RGB"
    return picture.getpixel(xy)  # type: ignore[return-value]


def grey16(value: int, rawmode: str = "I;16") -> Image.Image:
    dtype = ">u2" if rawmode == "I;16B" else "<u2"
    return Image.frombytes(rawmode, (3, 2), np.full((2, 3), value, dtype).tobytes())


@pytest.mark.parametrize(("mode", "suffix"), [("I;16", "png"), ("I;16", "tif"), ("I;16B", "tif")])
def test_16_bit_grey_is_scaled_by_its_full_range(tmp_path: Path, mode: str, suffix: str) -> None:
    path = saved(grey16(32896, mode), tmp_path / f"a.{suffix}")
    assert Image.open(path).mode == mode
    assert pixel(path) == (128, 128, 128)  # 32896 / 257; torchvision's pil_loader gives (255, 255, 255)
    assert decode_image(path).kinds == (GRAY16,)
    assert pixel(saved(grey16(65535, mode), tmp_path / f"b.{suffix}")) == (255, 255, 255)


def test_32_bit_int_within_16_bits_is_read_as_16_bit(tmp_path: Path) -> None:
    path = saved(Image.fromarray(np.full((2, 2), 32896, np.int32)), tmp_path / "i.tif")
    assert Image.open(path).mode == "I" and pixel(path) == (128, 128, 128)


def test_32_bit_int_beyond_16_bits_is_min_max_scaled(tmp_path: Path) -> None:
    values = np.array([[-100_000, 50_000, 200_000]], np.int32)
    path = saved(Image.fromarray(values), tmp_path / "i.tif")
    assert [pixel(path, (x, 0))[0] for x in range(3)] == [0, 128, 255]  # 150000 / 300000 * 255 = 127.5


def test_32_bit_planes_of_8_bit_values_are_read_as_they_are(tmp_path: Path) -> None:
    # Probe 182: numpy's int32 / float32 arrays of 8-bit pictures, saved as TIFF, read nearly black (as 16-bit) and
    # stretched min-max (a dark picture bright), so the model saw another class; torchvision reads their values.
    values = np.array([[0, 39, 214, 255]])
    for dtype, name in ((np.int32, "i.tif"), (np.float32, "f.tif")):
        path = saved(Image.fromarray(values.astype(dtype)), tmp_path / name)
        assert [pixel(path, (x, 0))[0] for x in range(4)] == [0, 39, 214, 255]
        assert decode_image(path).kinds[0].endswith("(values 0..255, as 8-bit)")
    dark = saved(Image.fromarray(np.array([[30.0, 39.6, 50.0]], np.float32)), tmp_path / "dark.tif")
    assert [pixel(dark, (x, 0))[0] for x in range(3)] == [30, 40, 50]  # not stretched to 0..255


def test_a_16_bit_pgm_is_read_as_16_bit_whatever_its_values(tmp_path: Path) -> None:
    # Pillow opens a 16-bit PGM as "I", its maxval scaled to 65535: the file says 16 bits, dark values included
    path = tmp_path / "dark.pgm"
    path.write_bytes(b"P5\n2 1\n65535\n" + np.array([100, 255], ">u2").tobytes())
    assert Image.open(path).mode == "I" and [pixel(path, (x, 0))[0] for x in range(2)] == [0, 1]
    assert decode_image(path).kinds == ("32-bit integer grayscale (values 0..65535, as 16-bit)",)


def test_float_in_unit_range_is_times_255(tmp_path: Path) -> None:
    path = saved(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)), tmp_path / "f.tif")
    assert Image.open(path).mode == "F"
    assert [pixel(path, (x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_float_beyond_unit_range_is_min_max_scaled_and_nan_is_black(tmp_path: Path) -> None:
    path = saved(Image.fromarray(np.array([[-1.0, 1.0, 3.0, np.nan]], np.float32)), tmp_path / "f.tif")
    assert [pixel(path, (x, 0))[0] for x in range(4)] == [0, 128, 255, 0]


def palette_image() -> Image.Image:
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1])
    return image


def test_palette_gives_its_colours(tmp_path: Path) -> None:
    path = saved(palette_image(), tmp_path / "p.png")
    assert pixel(path, (0, 0)) == (10, 20, 30) and pixel(path, (1, 0)) == (200, 100, 50)
    assert decode_image(path).kinds == (PALETTE,)


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    path = saved(palette_image(), tmp_path / "p.png", transparency=0)
    assert pixel(path, (0, 0)) == WHITE and pixel(path, (1, 0)) == (200, 100, 50)
    assert decode_image(path).kinds == (PALETTE, ALPHA)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    path = saved(image, tmp_path / "a.png")
    assert [pixel(path, (x, 0)) for x in range(3)] == [WHITE, (0, 0, 255), (127, 127, 127)]
    assert decode_image(path).kinds == (ALPHA,)


def test_grey_with_alpha(tmp_path: Path) -> None:
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (100, 255)])
    path = saved(image, tmp_path / "la.png")
    assert pixel(path, (0, 0)) == WHITE and pixel(path, (1, 0)) == (100, 100, 100)


def test_grey_is_replicated(tmp_path: Path) -> None:
    path = saved(Image.new("L", (2, 2), 77), tmp_path / "l.png")
    assert pixel(path) == (77, 77, 77)


def test_one_bit(tmp_path: Path) -> None:
    image = Image.new("1", (2, 1))
    image.putdata([0, 1])
    path = saved(image, tmp_path / "b.png")
    assert pixel(path, (0, 0)) == (0, 0, 0) and pixel(path, (1, 0)) == (255, 255, 255)


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("CMYK", (0, 255, 0, 0), (255, 0, 255)),
    ("YCbCr", (128, 128, 128), (128, 128, 128)),
    ("LAB", (128, 128, 128), (119, 119, 119)),  # L* = 50, a* = b* = 0: sRGB mid grey
])
def test_other_colour_spaces_use_pillows_conversion(tmp_path: Path, mode: str, value: tuple[int, ...],
                                                    expected: tuple[int, int, int]) -> None:
    path = saved(Image.new(mode, (2, 2), value), tmp_path / "c.tif")
    assert Image.open(path).mode == mode and pixel(path) == expected


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("HSV", (0, 255, 255), (255, 0, 0)),
    ("RGBa", (64, 0, 0, 128), (191, 127, 127)),  # premultiplied: red 127 at half alpha, over white
    ("La", (64, 128), (191, 191, 191)),
    ("I;16N", None, (128, 128, 128)),
])
def test_modes_no_file_format_stores_still_convert(mode: str, value: object, expected: tuple[int, ...]) -> None:
    image = grey16(32896, "I;16N") if value is None else Image.new(mode, (1, 1), value)  # type: ignore[arg-type]
    assert decode._to_rgb(image).getpixel((0, 0)) == expected


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_an_orientation_value_that_turns_nothing_is_not_counted(tmp_path: Path, suffix: str) -> None:
    """Probe 137: Orientation 9 (no such turn; exif_transpose leaves the picture) was counted "EXIF-rotated"."""
    image = Image.new("RGB", (2, 1))
    image.putdata([(255, 0, 0), (0, 0, 255)])
    exif = image.getexif()
    exif[0x0112] = 9
    decoded = decode_image(saved(image, tmp_path / f"o.{suffix}", exif=exif))
    assert decoded.image.size == (2, 1) and decoded.kinds == ()


@pytest.mark.parametrize(("suffix", "params"), [
    ("png", {}), ("webp", {"lossless": True}),
    ("tif", {}),  # Pillow's TIFF loader turns the picture itself at load() and drops the tag: still counted
])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str, params: dict[str, object]) -> None:
    image = Image.new("RGB", (2, 1))
    image.putdata([(255, 0, 0), (0, 0, 255)])
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = saved(image, tmp_path / f"o.{suffix}", exif=exif, **params)
    decoded = decode_image(path)
    assert decoded.image.size == (1, 2) and decoded.kinds == (EXIF_ROTATED,)
    assert decoded.image.getpixel((0, 0)) == (255, 0, 0) and decoded.image.getpixel((0, 1)) == (0, 0, 255)
    assert inspect_image(path) == (EXIF_ROTATED,)


@pytest.mark.parametrize(("suffix", "params"), [
    ("gif", {}), ("webp", {"lossless": True}), ("tif", {}), ("bmp", {}), ("png", {}), ("jpg", {"quality": 100}),
])
def test_common_formats_are_read(tmp_path: Path, suffix: str, params: dict[str, object]) -> None:
    path = saved(Image.new("RGB", (4, 4), (0, 0, 255)), tmp_path / f"x.{suffix}", **params)
    assert max(abs(a - b) for a, b in zip(pixel(path), (0, 0, 255))) <= 2


def test_multi_frame_files_give_their_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (2, 2), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    path = saved(frames[0], tmp_path / "m.gif", save_all=True, append_images=frames[1:])
    assert pixel(path) == (255, 0, 0)
    assert decode_image(path).kinds == (PALETTE, FIRST_FRAME)


def test_mode_without_a_faithful_conversion_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(decode._MODE_KINDS, "CMYK")  # every mode Pillow opens today has a conversion
    path = saved(Image.new("CMYK", (2, 2)), tmp_path / "c.tif")
    with pytest.raises(UndecodableImage) as err:
        decode_image(path)
    assert err.value.reason == "colour mode CMYK not supported"


def test_garbage_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UndecodableImage) as err:
        inspect_image(tmp_path / "x.png")
    assert err.value.reason == decode.UNREADABLE


@pytest.mark.parametrize("where", [0.05, 0.5, 0.95])
def test_a_png_whose_pixel_data_is_corrupt_is_cut_short_not_black(tmp_path: Path, where: float) -> None:
    """Probe 215: one byte flipped in a PNG's IDAT, which Pillow refuses, was read as a black (or part-black)
    picture and predicted at 42.3 %, exit 0: reading its EXIF loaded the pixels, and the failed load was swallowed."""
    rng = np.random.default_rng(0)
    good = saved(Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)), tmp_path / "good.png")
    data = bytearray(good.read_bytes())
    start = data.index(b"IDAT") + 4
    end = start + int.from_bytes(data[start - 8:start - 4], "big")
    data[start + int((end - start) * where)] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    for read in (decode_image, inspect_image):
        with pytest.raises(UndecodableImage) as err:
            read(tmp_path / "bad.png")
        assert err.value.reason == decode.CUT_SHORT
    # a corrupt EXIF block beside good pixels is still the picture, as stored
    import struct
    import zlib

    body = b"not-an-exif-block"
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    end = good.read_bytes().index(b"IEND") - 4
    (tmp_path / "exif.png").write_bytes(good.read_bytes()[:end] + chunk + good.read_bytes()[end:])
    assert np.array_equal(np.asarray(decode_image(tmp_path / "exif.png").image), np.asarray(Image.open(good)))
    # … and Pillow's own warning about such a block stays off stderr (probe 220): the picture reads as stored
    body = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHII", 1, 0x010F, 2, 100, 0x1000) + b"\x00" * 4
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body + struct.pack(">I", zlib.crc32(b"eXIf" + body))
    (tmp_path / "warns.png").write_bytes(good.read_bytes()[:end] + chunk + good.read_bytes()[end:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert decode_image(tmp_path / "warns.png").kinds == ()
    assert not [w for w in caught if issubclass(w.category, UserWarning)], [str(w.message) for w in caught]


def test_file_broken_after_the_scan_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(CnnlabError, match=r"x.jpg can no longer be read \(empty file \(0 bytes\)\); it was readable"):
        load_rgb(str(tmp_path / "x.jpg"))


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_large_images_are_downscaled_and_huge_ones_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           suffix: str) -> None:
    monkeypatch.setattr(decode, "MAX_PIXELS", 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow would warn above it and raise above 2x
    large = saved(Image.new("RGB", (13, 13), (0, 0, 255)), tmp_path / f"large.{suffix}")  # 169 px
    huge = saved(Image.new("RGB", (15, 14)), tmp_path / f"huge.{suffix}")  # 210 px > 2 x 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak
        decoded = decode_image(large)
        assert decoded.image.size == (7, 7) and decoded.kinds == ("downscaled to <= 100 px",)
        with pytest.raises(UndecodableImage) as err:
            inspect_image(huge)
    assert err.value.reason == "too large (over 200 px)"
    assert Image.MAX_IMAGE_PIXELS == 100  # our policy never touches Pillow's global


def image_folder(root: Path) -> None:
    for name, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(2):  # other bytes for each: a val picture that copies a training one is left out of val
            image = Image.new("RGB", (4, 4), colour)
            image.putpixel((3, 3), (i, i, i))
            image.save(root / name / f"{i}.png")


def test_symlink_loop_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image_folder(tmp_path)
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")  # a/loop/loop/loop/...
    os.symlink(tmp_path, tmp_path / "b" / "up")  # b/up/a, b/up/b/up/...
    with caplog.at_level(logging.WARNING):
        raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.5}, InputSpec(4))
    assert len(raw.train) + len(raw.val) == 4
    assert raw.decode is not None and raw.decode.skipped == {FOLDER_ALREADY_SCANNED: 2}
    assert "folder link to a folder already scanned" in caplog.text


def test_duplicate_symlink_across_classes_counts_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image_folder(tmp_path)
    os.symlink(tmp_path / "b" / "1.png", tmp_path / "a" / "0link.png")  # sorts before the real files
    with caplog.at_level(logging.WARNING):
        raw = build_imagefolder({"root": str(tmp_path), "val_fraction": 0.5}, InputSpec(4))
    items = [raw.train[i] for i in range(len(raw.train))] + [raw.val[i] for i in range(len(raw.val))]
    assert len(items) == 4
    # the blue picture stays in class b only: the link in a is the one dropped
    assert {label for image, label in items if image.getpixel((0, 0)) == (0, 0, 255)} == {1}
    assert raw.decode is not None and raw.decode.read == 4 and raw.decode.skipped == {DUPLICATE: 1}
    assert f"{DUPLICATE}: 1, first: {tmp_path / 'a' / '0link.png'}" in caplog.text


def test_summary_line_and_record() -> None:
    summary = DecodeSummary()
    for kinds in [(GRAY16,), (GRAY16, EXIF_ROTATED), ()]:
        summary.add_read(kinds)
    summary.add_skipped("unreadable", "/d/x.jpg")
    summary.add_skipped("unreadable", "/d/y.jpg")
    assert summary.line() == ("read 3 images; converted 2 (16-bit grayscale: 2, EXIF-rotated: 1); "
                              "skipped 2 (unreadable: 2, first: /d/x.jpg)")
    assert summary.as_record() == {"read": 3, "converted": {GRAY16: 2, EXIF_ROTATED: 1}, "skipped": {"unreadable": 2}}
    assert not summary.clean and DecodeSummary(read=5).clean
    assert DecodeSummary(read=1).line() == "read 1 image" and DecodeSummary(read=1200).line() == "read 1,200 images"


def test_the_colour_lost_to_one_channel_is_counted_over_the_pictures_read() -> None:
    """A 1-channel model's colour warning counted every picture scanned (an evaluate of test/ counted train/ too):
    given the files a command reads, it counts those that hold colour (where that is not known: stored in colour)."""
    summary = DecodeSummary()
    for path, kinds, coloured in (("/d/train/a.jpg", (), True), ("/d/train/g.png", (GRAY16,), None),
                                  ("/d/test/b.jpg", (), None), ("/d/test/c.png", (EXIF_ROTATED,), True),
                                  ("/d/test/g.png", (GRAY16,), None), ("/d/test/rgb_grey.png", (), False)):
        summary.add_read(kinds, path=path, coloured=coloured)
    assert summary.colour_files == {"/d/train/a.jpg", "/d/test/b.jpg", "/d/test/c.png"}
    test = ["/d/test/b.jpg", "/d/test/c.png", "/d/test/g.png", "/d/test/rgb_grey.png"]
    assert summary.colour_dropped("imagefolder /d, test split", 1, test).startswith(
        "imagefolder /d, test split: 2 of its 4 pictures hold colour and are read as their "
        "luminance (L = 0.299 R + 0.587 G + 0.114 B) for the model's 1-channel input")
    assert "3 of its 6 pictures" in (summary.colour_dropped("all", 1) or "")  # no files given: every one read
    assert "1 of its 1 picture holds colour and is read as its luminance" in (
        summary.colour_dropped("one", 1, ["/d/train/a.jpg"]) or "")
    assert summary.colour_dropped("grey", 1, ["/d/test/g.png", "/d/test/rgb_grey.png"]) is None  # nothing lost
    assert summary.colour_dropped("rgb", 3, test) is None  # a 3-channel model keeps the colour


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp")])
def test_a_grey_picture_stored_in_colour_holds_no_colour_and_a_colour_one_does(tmp_path: Path, fmt: str,
                                                                               suffix: str) -> None:
    """Probe 194: the warning counted pictures by how they are stored, so a grey set saved as RGB JPEGs was said to
    lose its colour whole. A grey picture stored as RGB holds none (a JPEG's codec rounding included); one with a
    red patch holds some."""
    from PIL import Image

    from cnnlab.data.decode import holds_colour, preview_image

    grey = np.random.default_rng(1).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB").save(tmp_path / f"grey.{suffix}", fmt)
    assert preview_image(tmp_path / f"grey.{suffix}").coloured is False
    coloured = np.stack([grey] * 3, axis=-1)
    coloured[8:24, 8:24] = (200, 30, 30)  # a red patch (a JPEG at 1/8 scale keeps a 2x2 of it)
    Image.fromarray(coloured, "RGB").save(tmp_path / f"red.{suffix}", fmt)
    assert preview_image(tmp_path / f"red.{suffix}").coloured is True
    assert holds_colour(Image.fromarray(grey, "L")) is False


def test_a_jpeg_whose_colour_the_reduced_decode_averages_away_is_decoded_in_full_before_it_is_counted(
        tmp_path: Path) -> None:
    """Probe 195: the scan judged a JPEG at 1/8 scale, where one coloured pixel averages away, so finetune and
    evaluate said nothing while predict (full decode) counted the picture. Such a picture is decoded in full before
    the colour a 1-channel model loses is counted."""
    from PIL import Image

    from cnnlab.data.decode import preview_image

    picture = np.full((64, 64, 3), 128, dtype=np.uint8)
    picture[20, 20] = (170, 100, 128)  # 70 levels apart in full, ~1 averaged over the 8x8 block
    path = tmp_path / "dot.jpg"
    Image.fromarray(picture, "RGB").save(path, "JPEG", quality=100, subsampling=0)
    preview = preview_image(path)
    assert preview.reduced and not preview.coloured  # the dot is gone at 1/8
    summary = DecodeSummary()
    summary.add_read(preview.kinds, preview.size, str(path), coloured=preview.coloured, reduced=preview.reduced)
    assert "1 of its 1 picture holds colour" in (summary.colour_dropped("dot", 1, [str(path)]) or "")
    assert "1 of its 1 picture holds colour" in (summary.colour_dropped("dot", 1) or "")


def test_a_48_bit_png_is_listed_as_16_bit_colour_with_its_high_bytes(tmp_path: Path) -> None:
    """Probe 161: a PNG of 16 bits per colour channel, which Pillow reads as 8-bit RGB (each value's high byte), was
    listed as a plain RGB file: no conversion counted."""
    import struct
    import zlib

    values = np.random.default_rng(0).integers(0, 65536, (4, 5, 3)).astype(">u2")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + row.tobytes() for row in values)  # filter 0 per row
    path = tmp_path / "deep.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 4, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    decoded = decode_image(str(path))
    assert decoded.kinds == (COLOUR16,)
    assert np.array_equal(np.asarray(decoded.image), values >> 8)
