"""Files of the evaluate and predict runs, each written atomically (cnnlab.fileio)."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # tensors are only passed through: `cnnlab report` reads outcomes.csv without torch
    import torch

from cnnlab.fileio import atomic_path, csv_text, write_json, write_text

OUTCOMES_FILE = "outcomes.csv"  # per image: evaluate writes it, the report pairs two of them


def write_confusion_csv(path: Path, confusion: torch.Tensor, classes: Sequence[str]) -> Path:
    """Header `true \\ predicted, <class>…`, then one row per true class: image counts (rows sum to the class's
    images in the split, the whole to N)."""
    rows: list[list[object]] = [["true \\ predicted", *classes]]
    rows += [[name, *(int(v) for v in row)] for name, row in zip(classes, confusion.tolist())]
    write_text(path, csv_text(rows))
    return path


def write_outcomes_csv(path: Path, targets: torch.Tensor, predicted: torch.Tensor, confidence: torch.Tensor,
                       classes: Sequence[str], files: Sequence[str] | None = None) -> Path:
    """One row per image in the split's order: `index, true, predicted, correct (0/1), confidence` (top-1
    probability), and `file` where the images were read from files (`files`, one per image: an image folder; probe
    154: which of a folder's photos were wrong could not be told). Two evaluate runs of one split list the same
    images in the same order, so their `correct` columns pair up image by image (report/stats.py
    `paired_bootstrap`)."""
    named = files is not None and len(files) == len(targets)
    rows: list[list[object]] = [["index", "true", "predicted", "correct", "confidence", *(["file"] if named else [])]]
    rows += [[i, classes[t], classes[p], int(t == p), f"{c:.6f}", *([files[i]] if named else [])]  # type: ignore
             for i, (t, p, c) in enumerate(zip(targets.tolist(), predicted.tolist(), confidence.tolist()))]
    write_text(path, csv_text(rows))
    return path


def read_outcomes_csv(path: Path) -> list[bool]:
    """The `correct` column of an outcomes file, per image. ValueError for a file not in that layout."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "correct" not in reader.fieldnames:
            raise ValueError(f"{path} has no `correct` column")
        return [row["correct"] == "1" for row in reader]


def write_per_class_csv(path: Path, confusion: torch.Tensor, classes: Sequence[str]) -> Path:
    """class, images, correct, accuracy (empty for a class without images)."""
    rows: list[list[object]] = [["class", "images", "correct", "accuracy"]]
    for i, name in enumerate(classes):
        total, hits = int(confusion[i].sum()), int(confusion[i, i])
        rows.append([name, total, hits, f"{hits / total:.6f}" if total else ""])
    write_text(path, csv_text(rows))
    return path


def plot_confusion_png(path: Path, confusion: torch.Tensor, classes: Sequence[str], title: str) -> Path:
    """The confusion matrix as a heat map normalised per true class (row), counts written in the cells when there
    are at most 20 classes; class names on the axes up to 40 classes."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    counts = confusion.double()
    rates = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(classes)
    side = min(4 + 0.45 * n, 24)
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 40:
        labels = tick_labels(classes, has_glyph=_font_glyphs())
        ax.set_xticks(range(n), labels=labels, rotation=90)
        ax.set_yticks(range(n), labels=labels)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    with warnings.catch_warnings():  # a layout that cannot fit is drawn as it is, not warned about mid-run
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def tick_labels(classes: Sequence[str], width: int = 32,
                has_glyph: Callable[[str], bool] = lambda _: True) -> list[str]:
    """The class names as a plot's axes can show them: at most `width` characters (the middle elided, so that names
    sharing a long prefix stay apart), characters the font cannot draw as "?" — and such a changed label prefixed
    by the class's index ("3: ?", "7: xxxx…xxxx"), the row of per_class.csv and confusion.csv that names it in full
    (probe 111: CJK and emoji names drew as empty boxes, 250-character names ran off the picture alike)."""
    labels = []
    for index, name in enumerate(classes):
        shown = "".join(ch if has_glyph(ch) else "?" for ch in name)
        if len(shown) > width:
            shown = f"{shown[:width // 2 - 1]}…{shown[-(width // 2 - 1):]}"
        labels.append(shown if shown == name else f"{index}: {shown}")
    return labels


def _font_glyphs() -> Callable[[str], bool]:
    """Whether matplotlib's default font draws a character (its character map), for tick_labels."""
    from matplotlib import font_manager, ft2font, rcParams

    try:
        font = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
        charmap = ft2font.FT2Font(font).get_charmap()
    except (OSError, RuntimeError, ValueError, IndexError):
        return lambda _: True
    return lambda ch: ch.isspace() or ord(ch) in charmap


@dataclass(frozen=True)
class Prediction:
    """One image's top-k: `labels` and `probabilities` (softmax, in [0, 1]), most likely first; `converted`: what
    decoding did to the file's picture (data.decode's kinds: "alpha on white", "16-bit", "EXIF-rotated", ...);
    `coloured`: whether the picture holds colour (data.decode.holds_colour), where a 1-channel model reads it as grey
    (None: not asked)."""

    file: str
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]
    converted: tuple[str, ...] = ()
    coloured: bool | None = None


def write_predictions(folder: Path, predictions: Sequence[Prediction], unreadable: dict[str, str],
                      context: dict[str, object]) -> tuple[Path, Path]:
    """predictions.csv (file, rank, class, probability: one row per file and rank) and predictions.json
    ({context…, "predictions": [{file, top: [{class, probability}], converted?}], "unreadable": {file: reason}});
    `converted` only for a file whose picture decoding changed."""
    rows: list[list[object]] = [["file", "rank", "class", "probability"]]
    for p in predictions:
        rows += [[p.file, rank, label, f"{prob:.6f}"]
                 for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), start=1)]
    csv_path, json_path = folder / "predictions.csv", folder / "predictions.json"
    write_text(csv_path, csv_text(rows))
    write_json(json_path, {**context, "predictions": [
        {"file": p.file, "top": [{"class": c, "probability": prob} for c, prob in zip(p.labels, p.probabilities)],
         **({"converted": list(p.converted)} if p.converted else {})}
        for p in predictions], "unreadable": dict(unreadable)})
    return csv_path, json_path
