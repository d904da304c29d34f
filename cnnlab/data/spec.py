"""What a model expects at its input: image size and normalisation.

The spec travels with every artifact (checkpoint, ONNX metadata) so that a deployed model
can be fed correctly without the config that trained it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """Square RGB input of `size` pixels, normalised as (x/255 - mean) / std."""

    size: int
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    channels: int = 3

    def shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.channels, self.size, self.size)

    def to_dict(self) -> dict[str, Any]:
        return {"size": int(self.size), "mean": [float(m) for m in self.mean],
                "std": [float(s) for s in self.std], "channels": int(self.channels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputSpec":
        return cls(size=int(data["size"]), mean=tuple(float(m) for m in data["mean"]),  # type: ignore[arg-type]
                   std=tuple(float(s) for s in data["std"]),  # type: ignore[arg-type]
                   channels=int(data.get("channels", 3)))

    def with_size(self, size: int) -> "InputSpec":
        return InputSpec(size=int(size), mean=self.mean, std=self.std, channels=self.channels)
