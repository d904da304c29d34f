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


# An image agrees when the class the runtime ranks first is, by the reference's own scores, a near-tie of the
# reference's top class: within NEAR_TIE of the gap between the top score and the median one (robust to a class
# scored far below the rest, which widened a range-based tolerance: probe 109), or within ROUNDING of that gap, at
# least ROUNDING (two classes, whose gap is the only spread: probe 109; never of the scores' offset: probe 110). A
# near-tie flipped by rounding agrees (probe 108: 0.0671 vs 0.0672 refused a one-image predict); a class the
# reference ranks far below does not. On probe 105's files:
# sound INT8 files 0.83–1.00 of the images agree (a near-chance EfficientNet-B0 the least; 0.42 by top-1 alone), the
# files OpenVINO computes wrongly at batch 1 0.03–0.19.
NEAR_TIE = 0.3
ROUNDING = 1e-3


def agreement(outputs: np.ndarray, reference: np.ndarray) -> tuple[int, int]:
    """(images that agree, images needed): outputs and reference are [N, classes] scores. An image agrees when the
    runtime's top-1 class is the reference's or a near-tie of it (NEAR_TIE, ROUNDING). Needed: at least halfway from
    chance (1/classes of the images) to all of them — every image of a batch of one or two."""
    count, classes = len(reference), max(int(reference.shape[-1]), 1)
    scores = _as_logits(reference)
    chosen = scores[np.arange(count), np.argmax(outputs, axis=-1)]
    top = scores.max(axis=-1)
    gap = top - np.median(scores, axis=-1)
    same = int((top - chosen <= np.maximum(NEAR_TIE * gap, ROUNDING * np.maximum(1.0, gap))).sum())
    return same, math.ceil(count * (1 + 1 / classes) / 2)


def _as_logits(scores: np.ndarray) -> np.ndarray:
    """`scores` [N, classes] on a scale whose differences mean the same at any offset: probabilities (rows of
    non-negative values summing to 1, a graph ending in Softmax) as their log; -inf (a log of an underflowed
    probability) as the row's lowest finite score. Probe 110: 1000-class probabilities near chance, logits around
    ±1000, or rows half -inf let unrelated outputs agree."""
    scores = np.asarray(scores, dtype=np.float64)
    if (scores >= 0).all() and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3):
        scores = np.log(np.maximum(scores, 1e-300))
    finite = np.isfinite(scores)
    lowest = np.where(finite, scores, np.inf).min(axis=-1, keepdims=True)
    return np.where(finite, scores, np.where(np.isfinite(lowest), lowest, 0.0))


def disagreement(session: Any, images: np.ndarray, reference: np.ndarray, *, batches: tuple[int, ...] | None = None,
                 what: str = "images") -> str | None:
    """None when `session` (onnxruntime's or an OpenVinoSession) gives the top-1 classes of `reference` (the
    reference runtime's [N, classes] outputs for `images`, float32 [N, C, H, W], at batch N) at batch N and for the
    first PROBE_IMAGES one at a time (`batches`: which of those two to run; `what`: the images, in words); else the
    first batch at which it does not, in words: "outputs at batch 1 disagree with onnxruntime's at batch 128: the
    top-1 class (or a near-tie of it) for 7 of 32 images (18 needed)"."""
    from cnnlab.deploy.ort import run_images

    scored = len(images)
    for batch in dict.fromkeys(batches or (scored, 1)):
        outputs = run_images(session, images) if batch == scored else \
            np.concatenate([run_images(session, image[None]) for image in images[:PROBE_IMAGES]])
        same, needed = agreement(outputs, reference[:len(outputs)])
        if same < needed:
            return (f"{DISAGREES} {batch} disagree with {REFERENCE}'s at batch {scored}: the top-1 class (or a "
                    f"near-tie of it) for {same} of {len(outputs)} {what} ({needed} needed)")
    return None
