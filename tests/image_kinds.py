"""Save one picture in the storage formats a new user's folder holds (phone photos, scans, exports), each
written so that an image viewer shows the same picture as a plain 8-bit RGB PNG of it.

Used by tests/data/test_mixed_folder.py and benchmarks/mixed_formats.py (the issue's acceptance check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

Writer = Callable[[np.ndarray, Path], Path]  # (H, W, 3) uint8 RGB pixels, path without suffix -> written file


def _gray(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0]


def _png_rgb(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    Image.fromarray(rgb, "RGB").save(path)
    return path


def _png_16bit_gray(rgb: np.ndarray, stem: Path) -> Path:
    """A scanner's or microscope's 16-bit grayscale PNG (0..65535)."""
    path = stem.with_suffix(".png")
    Image.fromarray(_gray(rgb).astype(np.uint16) * 257).save(path)
    return path


def _gif_palette(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".gif")
    grey_palette = [level for value in range(256) for level in (value, value, value)]
    image = Image.fromarray(_gray(rgb), "P")
    image.putpalette(grey_palette)
    image.save(path)
    return path


def _png_rgba_opaque(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(path)
    return path


def _png_gray_alpha(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".png")
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    Image.fromarray(np.stack([_gray(rgb), alpha], axis=2), "LA").save(path)
    return path


def _jpeg_phone_rotated(rgb: np.ndarray, stem: Path) -> Path:
    """A phone photo: pixels stored sideways, EXIF orientation 6 ("rotate 90° clockwise to view")."""
    path = stem.with_suffix(".jpg")
    stored = Image.fromarray(rgb, "RGB").transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, quality=100, subsampling=0, exif=exif)
    return path


def _tiff_cmyk(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".tif")
    Image.fromarray(rgb, "RGB").convert("CMYK").save(path)
    return path


def _tiff_float(rgb: np.ndarray, stem: Path) -> Path:
    """A scientific export: 32-bit float grayscale in [0, 1]."""
    path = stem.with_suffix(".tif")
    Image.fromarray(_gray(rgb).astype(np.float32) / 255.0, "F").save(path)
    return path


def _webp_lossless(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".webp")
    Image.fromarray(rgb, "RGB").save(path, lossless=True)
    return path


def _bmp(rgb: np.ndarray, stem: Path) -> Path:
    path = stem.with_suffix(".bmp")
    Image.fromarray(rgb, "RGB").save(path)
    return path


# Kinds whose pixels survive exactly; JPEG is lossy even at quality 100.
LOSSLESS: dict[str, Writer] = {
    "png_16bit_gray": _png_16bit_gray, "gif_palette": _gif_palette, "png_rgba": _png_rgba_opaque,
    "png_gray_alpha": _png_gray_alpha, "tiff_cmyk": _tiff_cmyk, "tiff_float": _tiff_float,
    "webp_lossless": _webp_lossless, "bmp": _bmp,
}
KINDS: dict[str, Writer] = {**LOSSLESS, "jpeg_phone_rotated": _jpeg_phone_rotated}
GRAY_ONLY = {"png_16bit_gray", "gif_palette", "png_gray_alpha", "tiff_float"}  # need R = G = B


def write_plain(rgb: np.ndarray, stem: Path) -> Path:
    """The reference: an 8-bit RGB PNG."""
    return _png_rgb(rgb, stem)

