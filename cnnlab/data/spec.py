"""What a model expects at its input — the whole preprocessing, from a decoded picture to the input tensor.

The spec travels with every artifact (checkpoint, ONNX metadata) so that a deployed model can be fed
correctly without the config that trained it; `cnnlab.data.transforms.eval_transform(spec)` performs
exactly what the spec describes, so the description and the code that runs cannot drift apart:

1. channels: 3 = RGB; 1 = luminance (ITU-R 601-2: L = 0.299 R + 0.587 G + 0.114 B). A 1-channel picture
   fed to a 3-channel spec has its grey copied into R, G and B.
2. resize (`interpolation`, antialiased when shrinking):
   - "square": to `resize_to` × `resize_to` px (aspect not kept; a picture already that size is untouched);
   - "shorter_side": the shorter side to `resize_to` px, the longer one in proportion (rounded down);
3. crop: a centre crop of `crop` × `crop` px (offsets round((H - crop) / 2), round((W - crop) / 2)); none when null;
4. values: x (0…255) → (x * scale - mean[c]) / std[c], float32, NCHW.

`resize=None` marks a spec that does not record its geometry (files written before it was recorded, or a
spec not yet attached to data): `preprocessing()` reads it as "square" to `size`, which is what a client
following the old metadata literally did; `build_datasets` gives it the geometry of the data instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's reference eval recipe for photos: resize the shorter side to size / 0.875, centre-crop `size`.
EVAL_CROP_RATIO = 0.875
SQUARE, SHORTER_SIDE = "square", "shorter_side"
RESIZE_MODES = (SQUARE, SHORTER_SIDE)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
MAX_SIDE = 8192


@dataclass(frozen=True)
class InputSpec:
    """A `channels` × `size` × `size` input and the preprocessing that makes one (module docstring).

    size: side of the model's input in px; mean/std: per channel, on values scaled to [0, 1] (a 1-channel
    spec uses the first entry); resize/resize_to/crop/interpolation/antialias/scale: steps 2-4 above.
    """

    size: int
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    channels: int = 3
    resize: str | None = None         # "square" | "shorter_side" | None (not recorded: read as "square" to size)
    resize_to: int | None = None      # px: the square's side, or the shorter side's length
    crop: int | None = None           # px: centre crop side after resizing; None = no crop
    interpolation: str = "bilinear"
    antialias: bool = True
    scale: float = 1 / 255            # raw 8-bit value → [0, 1]; recorded for clients, always 1/255 here

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.size, self.size)

    @property
    def recorded(self) -> bool:
        """True when the spec states its resize/crop geometry (see the module docstring)."""
        return self.resize is not None

    def preprocessing(self) -> "InputSpec":
        """This spec with its geometry stated: unrecorded geometry reads as a square resize to `size`."""
        return self if self.recorded else replace(self, resize=SQUARE, resize_to=self.size, crop=None)

    def for_stored_size(self, stored_size: int | None) -> "InputSpec":
        """The geometry cnnlab's eval recipe gives images stored at `stored_size` px squares (synthetic, digits,
        CIFAR, MNIST…: a plain square resize, never a crop that would lose content), or photos of any size and
        aspect (`stored_size=None`: shorter side to size / 0.875, then a centre crop of `size`)."""
        if stored_size is None:
            return replace(self, resize=SHORTER_SIDE, resize_to=int(self.size / EVAL_CROP_RATIO), crop=self.size)
        return replace(self, resize=SQUARE, resize_to=self.size, crop=None)

    def geometry_words(self) -> str:
        """Steps 2-3 in words: "a square resize to 32 px" or "the shorter side resized to 36 px, centre crop 32 px"."""
        spec = self.preprocessing()
        if spec.crop is None:
            return f"a square resize to {spec.resize_to} px"
        side = "the shorter side resized" if spec.resize == SHORTER_SIDE else "a square resize"
        return f"{side} to {spec.resize_to} px, centre crop {spec.crop} px"

    def with_size(self, size: int) -> "InputSpec":
        """Same normalisation and channels at another size; the geometry, which depends on the size and the data,
        is dropped (unrecorded)."""
        return InputSpec(size=int(size), mean=self.mean, std=self.std, channels=self.channels, scale=self.scale)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; what checkpoints and ONNX metadata store (from_dict reads it back). mean and std hold
        one entry per channel: a 1-channel model's three (probe 80) made a client that follows step 4 build a
        3-channel tensor, which the model refuses."""
        channels = int(self.channels)
        return {"size": int(self.size), "mean": [float(m) for m in self.mean[:channels]],
                "std": [float(s) for s in self.std[:channels]],
                "channels": int(self.channels), "resize": self.resize, "resize_to": self.resize_to,
                "crop": self.crop, "interpolation": self.interpolation, "antialias": bool(self.antialias),
                "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputSpec":
        """The spec of `to_dict` output; missing preprocessing fields take their defaults (older files).
        Raises ValueError naming the first field that is missing, of the wrong type or out of range."""
        size = _side(data.get("size"), "size")
        channels = data.get("channels", 3)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise ValueError(f"channels is {channels!r}, expected 1 or 3")
        for name in ("mean", "std"):
            if channels == 3 and isinstance(data.get(name), (list, tuple)) and len(data[name]) == 1:
                raise ValueError(f"{name} is {data[name]!r}: one value for 3 channels")
        resize = data.get("resize")
        if resize is not None and resize not in RESIZE_MODES:
            raise ValueError(f"resize is {resize!r}, expected one of {', '.join(RESIZE_MODES)} or null")
        interpolation = data.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation is {interpolation!r}, expected one of {', '.join(INTERPOLATIONS)}")
        scale = data.get("scale", 1 / 255)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or abs(scale - 1 / 255) > 1e-9:
            raise ValueError(f"scale is {scale!r}, expected 1/255 (8-bit pictures)")
        resize_to = None if data.get("resize_to") is None else _side(data["resize_to"], "resize_to")
        crop = None if data.get("crop") is None else _side(data["crop"], "crop")
        _check_geometry(size, resize, resize_to, crop)
        return cls(size=size, mean=_triple(data.get("mean"), "mean"), std=_triple(data.get("std"), "std", positive=True),
                   channels=int(channels), resize=resize, resize_to=resize_to, crop=crop,
                   interpolation=str(interpolation), antialias=bool(data.get("antialias", True)), scale=float(scale))


def _check_geometry(size: int, resize: str | None, resize_to: int | None, crop: int | None) -> None:
    """ValueError when steps 2-3 cannot make a `size` × `size` picture (probe 155: a hand-edited crop of 40 on a 32 px
    model was an onnxruntime traceback; shorter_side without a crop, a torch.stack one on a picture that was not
    square; a crop larger than the resize padded the picture with zeros, scored without a word)."""
    if resize is None:  # unrecorded: read as a square resize to size
        return
    side = resize_to or size
    if crop is None and resize == SHORTER_SIDE:
        raise ValueError(f"resize is {SHORTER_SIDE} without a crop: a picture that is not square would not come out "
                         f"{size} × {size} px (crop: {size})")
    if crop is None and side != size:
        raise ValueError(f"resize_to is {side} without a crop: pictures would come out {side} px, not size {size}")
    if crop is not None and crop != size:
        raise ValueError(f"crop is {crop}: pictures would come out {crop} px, not size {size}")
    if crop is not None and crop > side:
        raise ValueError(f"crop is {crop}, larger than resize_to {side}: the crop would pad pictures with zeros")


def _side(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise ValueError(f"{where} is {value!r}, expected an integer in [1, {MAX_SIDE}]")
    return value


def _triple(value: Any, where: str, *, positive: bool = False) -> tuple[float, float, float]:
    """Three per-channel values from a list of three, or of one (a 1-channel spec's, repeated)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = [value[0]] * 3
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
            for v in value):
        raise ValueError(f"{where} is {value!r}, expected 3 (or, for 1 channel, 1) finite"
                         f"{' positive' if positive else ''} numbers")
    return (float(value[0]), float(value[1]), float(value[2]))
