"""Whether a runtime computes, for an ONNX file, the classes onnxruntime computes for it: at the batch the file is
scored at, and one image at a time.

Probe 105: OpenVINO 2026.4 gave NNCF's MobileNetV2 and EfficientNet-B0 INT8 files at 32 px chance-level classes at
batch 1 with a dynamic batch axis (a per-channel activation QuantizeLinear after a 1x1 convolution on a 1x1 map),
and the right ones at batch 8 and up — so a score at batch 128 said nothing of what one image at a time (`cnnlab
predict`, a deployment) gets. `cnnlab quantize` checks every candidate this way (compress/quantization/
portability.py), and `cnnlab evaluate` / `predict` on OpenVINO check the file on their first batch (deploy/infer.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

REFERENCE = "onnxruntime"  # the runtime whose outputs of the same file the others are compared with
PROBE_IMAGES = 32  # images run one at a time (batch 1) on the runtime checked
DISAGREES = "outputs at batch"  # how a disagreement starts (`disagreement`)


def agreement(outputs: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """(images whose top-1 class is the reference's, images needed): outputs and reference are [N, classes] scores.
    Needed: at least halfway from chance (1/classes of the images) to all of them — rounding differences between
    two runtimes' integer kernels flip near-ties only (measured: 72–100 % agreement on INT8 files, near-chance models
    included), a runtime computing something else agrees by chance (probe 105: 0–22 %)."""
    count, classes = len(reference), max(int(reference.shape[-1]), 1)
    same = int((np.argmax(outputs, axis=-1) == np.argmax(reference, axis=-1)).sum())
    return same, math.ceil(count * (1 + 1 / classes) / 2)


def disagreement(session: Any, images: np.ndarray, reference: np.ndarray, *, batches: tuple[int, ...] | None = None
                 ) -> str | None:
    """None when `session` (onnxruntime's or an OpenVinoSession) gives the top-1 classes of `reference` (the
    reference runtime's [N, classes] outputs for `images`, float32 [N, C, H, W], at batch N) at batch N and for the
    first PROBE_IMAGES one at a time (`batches`: which of those two to run); else the first batch at which it does
    not, in words: "outputs at batch 1 disagree with onnxruntime's at batch 128: the same top-1 class for 7 of 32
    images (18 needed)"."""
    from cnnlab.deploy.ort import run_images

    scored = len(images)
    for batch in dict.fromkeys(batches or (scored, 1)):
        outputs = run_images(session, images) if batch == scored else \
            np.concatenate([run_images(session, image[None]) for image in images[:PROBE_IMAGES]])
        same, needed = agreement(outputs, reference[:len(outputs)])
        if same < needed:
            return (f"{DISAGREES} {batch} disagree with {REFERENCE}'s at batch {scored}: the same top-1 class for "
                    f"{same} of {len(outputs)} images ({needed} needed)")
    return None
