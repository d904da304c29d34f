"""Image files -> the RGB picture an image viewer shows: the one decoder for every image file cnnlab reads.

`decode_image(path)` opens any file Pillow can read and returns an 8-bit "RGB" `PIL.Image.Image`
whose pixels match what a viewer (a browser, macOS Preview, GIMP's default view) displays:

| Pillow mode | what a viewer shows, and so what we return | kind in the summary |
| --- | --- | --- |
| RGB, RGBX | unchanged | - |
| RGB, RGBA of 16 bits a channel (48/64-bit PNG) | Pillow's 8-bit read: each value's high byte (v >> 8) | 16-bit colour (high byte kept) |
| L | grey copied into R, G and B | 8-bit grayscale |
| 1 | 0 -> black, 1 -> white | 1-bit |
| I;16, I;16L, I;16B, I;16N | value / 257, rounded: 0..65535 -> 0..255 | 16-bit grayscale |
| I (32-bit int) | 0..255: as is; 0..65535 or a PGM/PPM: as 16-bit; else min-max (*) | 32-bit integer grayscale |
| F (32-bit float) | [0, 1]: x 255; [0, 255]: rounded; else min-max; NaN/inf -> 0 (*) | 32-bit float grayscale |
| P | the palette's colours | palette |
| RGBA, RGBa, LA, La, PA, and P/L/RGB with a transparent colour | composited on `BACKGROUND` (white) | alpha on white |
| CMYK | Pillow's CMYK -> RGB conversion (no ICC profile) | CMYK |
| YCbCr, LAB, HSV | Pillow's conversion to RGB (LAB: CIE L*a*b* D50 -> sRGB) | YCbCr, CIELAB, HSV |

(*) By the range of the values the file holds (all of them within it), one image at a time; a PGM/PPM declares 16
bits (Pillow scales its maxval to 65535). Values in 0..255 are 8-bit values: what numpy's int32/float32 arrays of
pictures save as, and what torchvision reads. Min-max: of the image's finite values, to 0..255. The kind names the
rule that read the file ("32-bit integer grayscale (values 0..255, as 8-bit)").

and for every mode:

- the EXIF orientation tag is applied (`PIL.ImageOps.exif_transpose`): kind "EXIF-rotated";
- multi-frame files (animated GIF/WebP/PNG, multi-page TIFF, MPO) give their first frame: kind
  "first frame of many";
- images above `MAX_PIXELS` (Pillow's default decompression-bomb limit, ~89.5 Mpx) are downscaled on
  load to at most `MAX_PIXELS` by the smallest integer factor (JPEG: decoded directly at 1/2, 1/4 or 1/8
  scale with `Image.draft`; other formats: `Image.reduce`): kind "downscaled to <= 89 Mpx"; above
  `REFUSE_FACTOR` x `MAX_PIXELS` they are refused (`UndecodableImage`, reason "too large"). Pillow's own
  DecompressionBombWarning is silenced while we decode (the summary reports the policy instead);
  `Image.MAX_IMAGE_PIXELS` is never changed.
- Modes with no faithful RGB picture (anything not in the table) raise `UndecodableImage`.
- Embedded ICC colour profiles are not applied (neither does torchvision's loader, on which pretrained
  weights were trained): wide-gamut photos come out slightly less saturated than in a colour-managed viewer.

`inspect_image(path)` runs the same steps on a reduced decode (cheap for JPEG) and returns only the kinds:
the folder scan uses it once per file to prove the file decodes and to count its conversions (the
DataLoader workers decode again per item, so their counts never need to travel back).
`DecodeSummary` collects those counts into the one line per dataset that the builders log.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import ExifTags, Image, ImageChops, ImageOps, features

from cnnlab.errors import CnnlabError
from cnnlab.fileio import is_regular_file
from cnnlab.wording import counted

# What browsers and most viewers show under transparent pixels; a constant so that it is one decision.
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
# Pillow's default Image.MAX_IMAGE_PIXELS (1024 * 1024 * 1024 // 4 // 3), fixed here so that a library
# that changes Pillow's global does not change what a dataset contains.
MAX_PIXELS = 89_478_485
REFUSE_FACTOR = 2  # Pillow too raises DecompressionBombError beyond 2 x its limit

# File extensions we try to decode; a file with one of these that fails is skipped and counted.
READ_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff",
     ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".psd", ".qoi"}
    | {ext for ext, feature in ((".webp", "webp"), (".avif", "avif"), (".jp2", "jpg_2000"), (".j2k", "jpg_2000"))
       if features.check(feature)})
# Extensions that name pictures this Pillow build cannot read: counted as skipped, never read.
IMAGE_LOOKING_EXTENSIONS = frozenset(
    {".webp", ".avif", ".jp2", ".j2k", ".heic", ".heif", ".jxl", ".svg", ".eps", ".exr", ".hdr", ".raw", ".dng",
     ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"}) - READ_EXTENSIONS

# Conversion kinds (the keys of DecodeSummary.converted).
GRAY = "8-bit grayscale"
BILEVEL = "1-bit"
GRAY16 = "16-bit grayscale"
COLOUR16 = "16-bit colour (high byte kept)"
INT32 = "32-bit integer grayscale"
FLOAT32 = "32-bit float grayscale"
PALETTE = "palette"
ALPHA = "alpha on white"
EXIF_ROTATED = "EXIF-rotated"
FIRST_FRAME = "first frame of many"

# Kinds of pictures stored without colour (INT32 and FLOAT32 carry the rule that read them after the name).
GREY_KINDS = (GRAY, BILEVEL, GRAY16, INT32, FLOAT32)

# Kinds whose RGB picture holds exactly the file's values (a grey, black-and-white or palette image, each value copied):
# worth a line in the summary, not a warning (probe 69: every grayscale folder warned, also for a 1-channel model).
EXACT_KINDS = frozenset({GRAY, BILEVEL, PALETTE})

# Skip reasons that do not depend on the file (the others name the format, mode or limit).
UNREADABLE = "unreadable"  # not a picture Pillow knows (text, HTML, an unknown format)
EMPTY = "empty file (0 bytes)"  # an interrupted copy or download: converting it cannot help (probe 126)
CUT_SHORT = "damaged or cut short"  # a picture's header, then data that ends or breaks
NOT_A_FILE = "not a regular file"  # a named pipe, a device, a socket (or a link to one): opening it may never return
GONE = "missing (a link to nothing, or removed while read)"  # probe 146: a dangling link was a traceback

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_COLOUR_KEY_MODES = ("1", "L", "P", "RGB")  # a "transparency" entry in .info makes one colour transparent
_MODE_KINDS: dict[str, tuple[str, ...]] = {
    "RGB": (), "RGBX": (), "RGBA": (), "RGBa": (),
    "L": (GRAY,), "LA": (GRAY,), "La": (GRAY,), "1": (BILEVEL,),
    "P": (PALETTE,), "PA": (PALETTE,),
    **{mode: (GRAY16,) for mode in _SIXTEEN_BIT}, "I": (INT32,), "F": (FLOAT32,),
    "CMYK": ("CMYK",), "YCbCr": ("YCbCr",), "LAB": ("CIELAB",), "HSV": ("HSV",),
}


class UndecodableImage(Exception):
    """A file `decode_image` will not turn into a picture; `reason` is its key in DecodeSummary.skipped."""

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str = "") -> None:
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Decoded:
    """decode_image's result: `image` is mode "RGB", size (W, H) after EXIF rotation and any downscale;
    `kinds` names the conversions applied (empty for a plain 8-bit RGB file)."""

    image: Image.Image
    kinds: tuple[str, ...]


def _pixels(count: int) -> str:
    return f"{count / 1e6:.0f} Mpx" if count >= 1_000_000 else f"{count} px"


def too_large_reason() -> str:
    """The skip reason for images over REFUSE_FACTOR x MAX_PIXELS, e.g. 'too large (over 179 Mpx)'."""
    return f"too large (over {_pixels(REFUSE_FACTOR * MAX_PIXELS)})"


def downscaled_kind() -> str:
    """The conversion kind of images between MAX_PIXELS and the refusal limit, e.g. 'downscaled to <= 89 Mpx'."""
    return f"downscaled to <= {_pixels(MAX_PIXELS)}"


# Formats whose files start with an unmistakable signature: a file without an extension is read when Pillow
# identifies it as one of these (hash-named downloads, camera exports); a lenient one (TGA) could take any bytes.
SNIFFED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"})


# The first bytes of the formats cameras, browsers and scanners write (JPEG, PNG, GIF, BMP, TIFF both byte orders,
# WebP's RIFF container): a file that starts so and does not open is a damaged or cut-short picture.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def _starts_like_a_picture(path: str) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(12)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) and (not head.startswith(b"RIFF") or head[8:12] == b"WEBP")


def _sniffed_format(path: str) -> str | None:
    """The format Pillow identifies from the file's first bytes (its header only), None when it names none."""
    if not is_regular_file(path):
        return None
    try:
        with Image.open(path) as image:
            return image.format
    except Exception:  # noqa: BLE001 - not an image Pillow knows (or unreadable): what matters is "no format"
        return None


def extension_reason(path: str | os.PathLike[str]) -> str | None:
    """None if the file's extension is one we read; "format .heic not supported" if it names a picture we
    cannot read; "" for files that are not images at all (README.txt, .DS_Store: ignored silently). A file with
    no extension is read when its content is an image in SNIFFED_FORMATS (None), ignored otherwise ("")."""
    root, ext = os.path.splitext(str(path))
    ext = ext.lower()
    if ext in READ_EXTENSIONS:
        return None
    if not ext and not os.path.basename(root).startswith("."):
        return None if _sniffed_format(str(path)) in SNIFFED_FORMATS else ""
    return f"format {ext} not supported" if ext in IMAGE_LOOKING_EXTENSIONS else ""


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or (image.mode in _COLOUR_KEY_MODES and "transparency" in image.info)


def _downscale_factor(size: tuple[int, int]) -> float:
    """How much each side must shrink so that W x H <= MAX_PIXELS (1.0 = not at all)."""
    return max(1.0, math.sqrt(size[0] * size[1] / MAX_PIXELS))


def _header_kinds(path: str, image: Image.Image) -> list[str]:
    """The conversions the file needs, from its header alone; raises for modes and sizes we refuse."""
    if image.mode not in _MODE_KINDS:
        raise UndecodableImage(path, f"colour mode {image.mode} not supported")
    if image.size[0] * image.size[1] > REFUSE_FACTOR * MAX_PIXELS:
        raise UndecodableImage(path, too_large_reason(), f"{image.size[0]}x{image.size[1]}")
    kinds = list(_MODE_KINDS[image.mode])
    if image.mode in ("RGB", "RGBA") and any(";16" in str(tile[3]) for tile in getattr(image, "tile", None) or ()):
        kinds.append(COLOUR16)  # probe 161: a 48-bit PNG, which Pillow reads as 8-bit RGB, was listed as plain RGB
    if _has_alpha(image):
        kinds.append(ALPHA)
    if getattr(image, "is_animated", False):  # before load(): GIF checks by seeking to frame 1 and back
        kinds.append(FIRST_FRAME)
    if _downscale_factor(image.size) > 1:
        kinds.append(downscaled_kind())
    return kinds


# The Orientation values that turn or mirror the picture (ImageOps.exif_transpose applies them; 1 is as stored,
# and 0, 9 or any other value is none it applies: probe 137 counted a 9 "EXIF-rotated" with nothing turned)
_TURNS = range(2, 9)


def _orientation(image: Image.Image, path: str) -> int:
    """The picture's EXIF Orientation (1: as stored). Raises UndecodableImage where reading it failed to decode the
    pixels: Pillow's PNG reads its EXIF by loading the whole picture, and a load that fails leaves the picture
    marked loaded (its tiles consumed), so the real load() after it passed a black picture as read (probe 215: one
    byte flipped in IDAT, which Pillow itself refuses, predicted at 42.3 %, exit 0)."""
    pending = bool(image.tile)
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - a corrupt EXIF block is no reason to lose the picture …
        if pending and not image.tile:  # … but broken pixel data is: the failed read loaded the picture, or tried
            try:
                with Image.open(path) as fresh:
                    fresh.load()
            except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on its pixels
                raise UndecodableImage(path, CUT_SHORT, f"{type(exc).__name__}: {exc}") from exc
        return 1


# How a 32-bit grey plane is read (_value_rule): the words after its kind in the summary.
AS_8_BIT, AS_16_BIT, TIMES_255, MIN_MAX = "values 0..255, as 8-bit", "values 0..65535, as 16-bit", \
    "values in [0, 1], x 255", "stretched min-max"


def _value_rule(values: np.ndarray, mode: str, declared_16_bit: bool = False) -> str:
    """Which rule of the module docstring reads a 32-bit plane ("I" or "F"). Probe 182: an int32 TIFF of an 8-bit
    picture (numpy's int32 array, saved) was read as 16-bit, nearly black, and a float32 one of 0..255 values
    stretched min-max, so dark read as bright: the model saw another class, exit 0."""
    if declared_16_bit:
        return AS_16_BIT
    finite = values[np.isfinite(values)] if mode == "F" else values
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode == "F" and low >= 0.0 and high <= 1.0:
        return TIMES_255
    if low >= 0.0 and high <= 255.0:
        return AS_8_BIT
    if mode == "I" and low >= 0 and high <= 65535:
        return AS_16_BIT
    return MIN_MAX


def _scaled_to_uint8(values: np.ndarray, mode: str, declared_16_bit: bool = False) -> np.ndarray:
    """One grey plane (uint16, int32 or float32) -> uint8 by the rules in the module docstring."""
    rule = AS_16_BIT if mode in _SIXTEEN_BIT else _value_rule(values, mode, declared_16_bit)
    if rule == AS_16_BIT:
        # round(v * 255 / 65535) == round(v / 257) in integer arithmetic
        return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    values = values.astype(np.float64)
    finite = np.isfinite(values)
    if rule == AS_8_BIT:
        return np.where(finite, np.rint(values), 0).astype(np.uint8)
    low, high = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 0.0)
    if rule == TIMES_255:
        low, high = 0.0, 1.0
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.where(finite, np.rint(np.clip(scaled, 0, 255)), 0).astype(np.uint8)


def _plane_kind(image: Image.Image) -> str | None:
    """The kind of a loaded 32-bit grey image with the rule that reads it ("32-bit integer grayscale (values 0..255,
    as 8-bit)"): a folder whose files are read by different rules says so in its summary. None for other modes."""
    if image.mode not in ("I", "F"):
        return None
    rule = _value_rule(np.asarray(image), image.mode, image.format == "PPM")
    return f"{INT32 if image.mode == 'I' else FLOAT32} ({rule})"


def _to_rgb(image: Image.Image, declared_16_bit: bool = False) -> Image.Image:
    """`declared_16_bit`: a PGM/PPM file (Pillow scales its maxval to 65535), known from the file, not the values."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        plane = _scaled_to_uint8(np.asarray(image), image.mode, declared_16_bit)
        return Image.fromarray(plane, "L").convert("RGB")
    if _has_alpha(image):
        # La (premultiplied) has no direct path to RGBA in Pillow; LA does
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        picture = Image.new("RGB", rgba.size, BACKGROUND)
        picture.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return picture
    return image if image.mode == "RGB" else image.convert("RGB")


def pixel_digest(image: Image.Image, declared_16_bit: bool = False) -> str:
    """SHA-256 over the size and RGB values of a loaded picture: equal for files that hold the same pixels in other
    bytes (another PNG compression level, BMP or TIFF, a grey or palette file saved as RGB)."""
    return _rgb_digest(_to_rgb(image, declared_16_bit))


def _rgb_digest(rgb: Image.Image) -> str:
    return hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}\0".encode() + rgb.tobytes()).hexdigest()


# The most two channels of a grey pixel may differ by: a grey picture saved as a colour JPEG decodes to R = G = B
# within the codec's rounding.
COLOUR_TOLERANCE = 2


def holds_colour(picture: Image.Image) -> bool:
    """Whether an RGB `picture` holds colour: somewhere two of its channels differ by more than COLOUR_TOLERANCE
    (of 255). A grey picture stored as RGB, a grey palette or a grey JPEG holds none, and loses nothing when read as
    its luminance."""
    # an RGB picture (the scan's, predict's) is split as it is: convert would copy it
    red, green, blue = (picture if picture.mode == "RGB" else picture.convert("RGB")).split()
    return any(ImageChops.difference(a, b).getextrema()[1] > COLOUR_TOLERANCE
               for a, b in ((red, green), (green, blue)))


def _holds_colour_in_full(path: str) -> bool:
    """holds_colour of the picture `path` holds, decoded at full scale (False for one that no longer decodes): probe
    195, a JPEG whose one coloured pixel the 1/8 preview averaged away was counted grey, where predict counted it."""
    try:
        return holds_colour(decode_image(path).image)
    except UndecodableImage:
        return False


def _decode(path: str | os.PathLike[str], *,
            digest: str | None) -> tuple[tuple[str, ...], Image.Image, tuple[int, int]]:
    """(kinds, RGB picture, (W, H) as stored); digest="preview" stops after a reduced decode (JPEG at 1/8) and
    digest="exact" after a full-scale one (never reduced, even past MAX_PIXELS), each giving the picture for its
    pixel_digest, as it is read (rotated), never made smaller."""
    preview = digest == "preview"
    path = str(path)
    if not is_regular_file(path):
        raise UndecodableImage(path, NOT_A_FILE)
    try:
        empty = os.path.getsize(path) == 0
    except OSError as exc:  # probe 146: a dangling link in a folder (is_regular_file lets a failing stat through)
        raise UndecodableImage(path, GONE, f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    if empty:
        raise UndecodableImage(path, EMPTY)
    with warnings.catch_warnings():
        # our MAX_PIXELS policy replaces Pillow's warning; the summary says what happened, once per dataset
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Pillow's own lines on stderr beside cnnlab's ("Corrupt EXIF data…", "Tag data larger than file…") said
        # nothing the user can act on (probe 220): a corrupt EXIF block reads as "not rotated" (_orientation), and
        # what decoding converted or could not read is in the scan's summary
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            opened = Image.open(path)
        except Image.DecompressionBombError as exc:  # Pillow's global limit, if someone lowered it
            raise UndecodableImage(path, too_large_reason(), str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - whatever Pillow raises, the file is not a picture we can read
            # a picture's signature, then a header Pillow cannot finish: cut short, not another format (probe 132)
            reason = CUT_SHORT if _starts_like_a_picture(path) else UNREADABLE
            raise UndecodableImage(path, reason, f"{type(exc).__name__}: {exc}") from exc
        with opened as image:
            kinds = _header_kinds(path, image)
            stored = image.size  # before draft() reduces it
            # read before load(): Pillow's TIFF loader applies the Orientation tag itself and drops it
            rotated = _orientation(image, path) in _TURNS
            try:
                if preview:  # JPEG: decode at 1/8 scale — still reads every byte, so a truncated file fails
                    image.draft(None, (1, 1))
                elif digest is None and _downscale_factor(image.size) > 1:
                    # JPEG decodes at 1/2 (1/4, 1/8) scale directly: the size reduce() below would give,
                    # without ever holding the full-size picture
                    factor = math.ceil(_downscale_factor(image.size))
                    image.draft(None, (max(1, image.size[0] // factor), max(1, image.size[1] // factor)))
                image.load()
            except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
                raise UndecodableImage(path, CUT_SHORT, f"{type(exc).__name__}: {exc}") from exc
            plane = _plane_kind(image)
            if plane is not None:
                kinds[kinds.index(INT32 if image.mode == "I" else FLOAT32)] = plane
            declared_16_bit = image.format == "PPM"  # read before exif_transpose, whose copy has no format
            if rotated:
                kinds.append(EXIF_ROTATED)
                rotated = _orientation(image, path) in _TURNS  # still to do (JPEG, PNG, WebP); done (TIFF)
            if digest is not None:  # the picture as it is read: rotated (probe 71: a copy told by its stored pixels)
                return tuple(kinds), _to_rgb(ImageOps.exif_transpose(image) if rotated else image,
                                             declared_16_bit), stored
            picture = _to_rgb(ImageOps.exif_transpose(image) if rotated else image, declared_16_bit)
    factor = math.ceil(_downscale_factor(picture.size))
    if factor > 1:  # draft() only helps JPEG, and only by powers of two
        picture = picture.reduce(factor)
    return tuple(kinds), picture, stored


def decode_image(path: str | os.PathLike[str]) -> Decoded:
    """Decode `path` to the RGB picture a viewer shows (rules: module docstring).

    Returns a `Decoded`: `.image` mode "RGB", 8 bits per channel, (W, H) as displayed; `.kinds` the
    conversions applied. Raises `UndecodableImage` (with `.reason`) for files that cannot be opened or
    decoded, modes with no faithful RGB picture, and images over REFUSE_FACTOR x MAX_PIXELS pixels.
    """
    kinds, picture, _ = _decode(path, digest=None)
    return Decoded(picture, kinds)


@dataclass(frozen=True)
class Preview:
    """preview_image's result: the conversion kinds decode_image will report, and the pixel_digest of the picture
    decoded at reduced scale (JPEG at 1/8, other formats in full: the whole picture's pixels), and its size as
    stored, (W, H) in pixels (before any EXIF rotation); `coloured`: whether it holds colour (holds_colour, on the
    picture decoded), and `reduced`: whether that picture is smaller than stored (a JPEG at 1/8, where a small mark of
    colour may average out)."""

    kinds: tuple[str, ...]
    pixels: str
    size: tuple[int, int]
    coloured: bool = False
    reduced: bool = False


def _stored_grey(kinds: Iterable[str]) -> bool:
    """Whether a picture with these conversion `kinds` was stored grey (one of GREY_KINDS): it holds no colour."""
    return any(kind.startswith(GREY_KINDS) for kind in kinds)


def preview_image(path: str | os.PathLike[str]) -> Preview:
    """What decoding `path` at reduced scale shows (JPEG at 1/8; other formats are still decoded in full, which is
    what proves a truncated file bad): the kinds and a digest of the pixels. Raises `UndecodableImage` exactly where
    decode_image would."""
    kinds, picture, size = _decode(path, digest="preview")
    grey = _stored_grey(kinds)
    return Preview(kinds, _rgb_digest(picture), size, coloured=not grey and holds_colour(picture),
                   reduced=picture.size not in (size, size[::-1]))


def exact_pixels(path: str | os.PathLike[str]) -> str:
    """pixel_digest of the whole picture `path` holds, decoded at full scale (a JPEG too, where preview_image decodes
    at 1/8: equal for a JPEG and a PNG saved from its pixels) and rotated as read. Raises `UndecodableImage` as
    decode_image does."""
    return _rgb_digest(_decode(path, digest="exact")[1])


def inspect_image(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The conversion kinds `decode_image(path)` will report (preview_image)."""
    return preview_image(path).kinds


def load_rgb(path: str, *, fix: str | None = None) -> Image.Image:
    """A `loader=` for torchvision datasets: `decode_image(path).image`, or a CnnlabError for a file that does not
    decode. Without `fix`, the file was decoded when the dataset was scanned, so it changed since; with it (a set
    whose scan checks names and sizes only, Flowers-102's jpg/), the line names that fix."""
    try:
        return decode_image(path).image
    except UndecodableImage as exc:
        if fix is not None:
            raise CnnlabError(f"image {path} cannot be read ({exc.detail or exc.reason})", fix=fix) from exc
        why = f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason
        raise CnnlabError(f"image {path} can no longer be read ({why}); "
                          "it was readable when the dataset was scanned",
                          fix="restore the file, or remove it and start the run again") from exc


@dataclass
class DecodeSummary:
    """Counts for one dataset: images read, conversions by kind, skipped files by reason.

    `converted[kind]` counts images (one image may count under several kinds); `skipped[reason]` counts
    files, `first_skipped[reason]` names the first of them; `shorter_sides` the shorter side of each image read
    whose size was given (pixels, as stored); `colour_images` how many hold colour (holds_colour; where not
    known, stored in colour: not GREY_KINDS), and `colour_files` the path, as given, of each of them whose path was
    given: what a command that reads some splits counts of them; `unsure_files` those stored in colour that showed
    none decoded smaller than stored, which colour_dropped decodes in full before it counts them.
    """

    read: int = 0
    converted: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    first_skipped: dict[str, str] = field(default_factory=dict)
    converted_images: int = 0
    shorter_sides: list[int] = field(default_factory=list)
    colour_images: int = 0
    colour_files: set[str] = field(default_factory=set)
    unsure_files: set[str] = field(default_factory=set)

    def add_read(self, kinds: Iterable[str], size: tuple[int, int] | None = None, path: str | None = None,
                 coloured: bool | None = None, reduced: bool = False) -> None:
        """One image read: its conversion `kinds`, its (width, height) `size` in pixels, its `path` and whether it
        holds colour (`coloured`, holds_colour) when known, judged on a picture decoded smaller (`reduced`)."""
        kinds = tuple(kinds)
        self.read += 1
        self.converted.update(kinds)
        self.converted_images += bool(kinds)
        grey = _stored_grey(kinds)
        if size is not None:
            self.shorter_sides.append(min(size))
        coloured = not grey if coloured is None else coloured
        self.colour_images += coloured
        if path is not None and coloured:
            self.colour_files.add(path)
        elif path is not None and reduced and not grey:
            self.unsure_files.add(path)

    def typical_side(self) -> int | None:
        """The median shorter side of the images read (pixels), None when no size was given."""
        return int(statistics.median_low(self.shorter_sides)) if self.shorter_sides else None

    def add_skipped(self, reason: str, path: str) -> None:
        self.skipped[reason] += 1
        self.first_skipped.setdefault(reason, path)

    @property
    def clean(self) -> bool:
        """True when every image was plain 8-bit RGB and nothing was skipped."""
        return not self.converted and not self.skipped

    def converted_text(self) -> str:
        """'converted 43 (16-bit grayscale: 40, palette: 3)' or ''."""
        if not self.converted:
            return ""
        kinds = ", ".join(f"{kind}: {count}" for kind, count in self.converted.most_common())
        return f"converted {self.converted_images} ({kinds})"

    def skipped_text(self) -> str:
        """'skipped 3 (unreadable: 2, first: PATH; format .heic not supported: 1, first: PATH)' or ''."""
        if not self.skipped:
            return ""
        reasons = "; ".join(f"{reason}: {count}, first: {self.first_skipped[reason]}"
                            for reason, count in self.skipped.most_common())
        return f"skipped {sum(self.skipped.values())} ({reasons})"

    def line(self) -> str:
        """The summary line: 'read N images; converted ...; skipped ...'."""
        return "; ".join(part for part in ("read " + counted(self.read, "image"), self.converted_text(),
                                                   self.skipped_text())
                         if part)

    def log(self, logger: logging.Logger, what: str) -> None:
        """One line: a warning when a file was skipped or an image's values changed in the conversion (16-bit,
        alpha, CMYK, EXIF rotation, ...), info otherwise (plain RGB, or only exact conversions: EXACT_KINDS)."""
        changed = self.skipped or any(kind not in EXACT_KINDS for kind in self.converted)
        logger.log(logging.WARNING if changed else logging.INFO, "%s: %s", what, self.line())

    def colour_dropped(self, what: str, channels: int, files: Sequence[str] | None = None) -> str | None:
        """For a 1-channel model (`channels`), the warning that the pictures read that hold colour lose it (probe
        191: a folder of photos fine-tuned from a Fashion-MNIST run trained on grey without a word; its two classes
        that differ by colour alone scored 0 %); None when there are none, or for 3 channels.
        `files`: the paths (as given to add_read) of the pictures the command reads — the splits it scores or trains
        on, not every one scanned (an evaluate of test/ counted train/ too); None: every picture read. `what` names
        them in the line ("imagefolder DIR, test split")."""
        if channels != 1:
            return None
        if files is None:
            colour, total = self.colour_images + sum(map(_holds_colour_in_full, self.unsure_files)), self.read
        else:
            colour = sum(path in self.colour_files or (path in self.unsure_files and _holds_colour_in_full(path))
                         for path in files)
            total = len(files)
        if colour == 0:
            return None
        one = colour == 1
        return (f"{what}: {colour} of its {counted(total, 'picture')} {'holds' if one else 'hold'} colour and "
                f"{'is' if one else 'are'} read as {'its' if one else 'their'} luminance (L = 0.299 R + 0.587 G + "
                "0.114 B) for the model's 1-channel input: any colour that tells classes apart is lost (a 3-channel "
                "model keeps it)")

    def as_record(self) -> dict[str, Any]:
        """For run.json: {"read": N, "converted": {kind: n}, "skipped": {reason: n}}."""
        return {"read": self.read, "converted": dict(self.converted), "skipped": dict(self.skipped)}
