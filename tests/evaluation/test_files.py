"""The files `cnnlab evaluate` writes (cnnlab/evaluation/files.py): the confusion picture's class labels."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from cnnlab.evaluation.files import plot_confusion_png, tick_labels


def test_a_label_the_plot_cannot_show_whole_is_elided_and_numbered_as_its_csv_row() -> None:
    """Probe 111: 250-character class names ran off the picture alike (xxx…, yyy…_long, zzz… could not be told
    apart), and CJK or emoji names drew as empty boxes."""
    names = ["cat", "x" * 250, "y" * 200 + "_long", "z" * 200 + "_long", "猫", "école"]
    labels = tick_labels(names, has_glyph=lambda ch: ch != "猫")
    assert labels[0] == "cat" and labels[5] == "école"           # what can be shown whole is shown as it is
    assert labels[1] == f"1: {'x' * 15}…{'x' * 15}" and labels[4] == "4: ?"
    assert len(set(labels)) == len(labels) and all(len(label) <= 32 + 4 for label in labels)
    assert labels[2].endswith("_long") and labels[3].startswith("3: zzz")  # both ends kept: a shared prefix or suffix


def test_the_confusion_picture_warns_nothing_mid_run_for_names_its_font_lacks(tmp_path: Path) -> None:
    """Probe 111: six matplotlib UserWarnings ("Glyph 29483 missing from font(s) DejaVu Sans", "Tight layout not
    applied") were printed between evaluate's log lines."""
    names = ["猫", "🐶dog", "x" * 250, "ok"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_confusion_png(tmp_path / "c.png", torch.eye(4, dtype=torch.long) * 3, names, "test")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
