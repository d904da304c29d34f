"""Per-epoch training logs in the run folder: `metrics.csv` (one row per epoch, rewritten atomically after every
epoch), `curves.png` (loss and accuracy per epoch, train and val) and, with `logger=tensorboard`, TensorBoard event files.

An `EpochLog` takes the engine's epoch entries (`Trainer.fit`'s `on_epoch_end`) and knows nothing of run folders
or configs: it gets the paths (`EpochLogFiles`) and a typed `EpochLogSettings`. Only the process that writes the
run (rank 0) makes one.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Mapping

from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path, write_text
from cnnlab.fileio import csv_text as rows_text

log = logging.getLogger("cnnlab")

LOGGERS = ("none", "tensorboard")
TENSORBOARD_INSTALL = 'pip install "cnnlab[tensorboard]"'
# The engine's keys first, in this order; any other key follows in the order it first appears.
COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "images_per_s",
           "train_seconds", "bn_seconds")


# One epoch is one point per panel, no curve: its numbers are in metrics.csv and the log, and drawing it cost
# about as much as a tiny run's training (matplotlib, ~0.3 s).
MIN_PLOTTED_EPOCHS = 2


@dataclass(frozen=True)
class EpochLogSettings:
    """`tensorboard`: also write TensorBoard event files (logger=tensorboard). `plot_every_s`: curves.png is
    redrawn after an epoch when at least this many seconds passed since it was last drawn (0: after every
    epoch); it is always drawn when training ends, however it ends, once there are `MIN_PLOTTED_EPOCHS`."""

    tensorboard: bool = False
    plot_every_s: float = 30.0

    @classmethod
    def from_logger(cls, value: Any) -> "EpochLogSettings":
        """The root config key `logger` (none | tensorboard; null reads as none). Raises CnnlabError for another
        value, and for tensorboard when the package is not installed (so a run fails before it trains)."""
        choice = "none" if value is None else str(value).strip().lower()
        if choice == "null":
            choice = "none"
        if choice not in LOGGERS:
            raise CnnlabError(f"logger={value} is not a choice", fix=f"use one of: {', '.join(LOGGERS)}")
        settings = cls(tensorboard=choice == "tensorboard")
        if settings.tensorboard:
            summary_writer_class()
        return settings


def summary_writer_class() -> type:
    """torch's SummaryWriter; CnnlabError naming the install command when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises ImportError (not ModuleNotFoundError) when tensorboard is missing
        raise CnnlabError("logger=tensorboard needs the tensorboard package, which is not installed",
                          fix=TENSORBOARD_INSTALL) from exc
    return SummaryWriter


@dataclass(frozen=True)
class EpochLogFiles:
    """Where one training's logs go: the CSV, the PNG and (logger=tensorboard) the event-file folder."""

    csv: Path
    png: Path
    tensorboard: Path

    @classmethod
    def in_folder(cls, folder: Path, suffix: str = "") -> "EpochLogFiles":
        """metrics{suffix}.csv, curves{suffix}.png and tensorboard{suffix}/ in `folder`."""
        return cls(folder / f"metrics{suffix}.csv", folder / f"curves{suffix}.png", folder / f"tensorboard{suffix}")


def columns(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The CSV header for `entries`: the engine's keys that occur (in COLUMNS order), then the others."""
    seen: dict[str, None] = {}
    for entry in entries:
        seen.update(dict.fromkeys(entry))
    return [key for key in COLUMNS if key in seen] + [key for key in seen if key not in COLUMNS]


def csv_text(entries: Iterable[Mapping[str, Any]]) -> str:
    """One row per entry under `columns(entries)`; blank where an entry lacks a key. Floats are written in full
    (repr), so a value read back is the value the run recorded."""
    entries = list(entries)
    header = columns(entries)
    return rows_text([header, *([_cell(entry.get(key)) for key in header] for entry in entries)])


def _cell(value: Any) -> Any:
    return "" if value is None else value


def plot_curves(path: Path, entries: Iterable[Mapping[str, Any]], title: str = "") -> Path:
    """Two panels over the epochs: loss (train_loss, val_loss and any other *_loss) and accuracy in % (train_acc,
    val_acc and any other *_acc, e.g. a kNN monitor's knn_acc). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    entries = list(entries)
    keys = columns(entries)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, metric, scale, label in ((loss_ax, "_loss", 1.0, "loss"), (acc_ax, "_acc", 100.0, "accuracy (%)")):
        for key in (k for k in keys if k.endswith(metric)):
            points = [(e["epoch"], scale * e[key]) for e in entries if _number(e.get(key)) and _number(e.get("epoch"))]
            if points:
                ax.plot(*zip(*points), "-o", markersize=3, label=key[: -len(metric)])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def scalar_tag(key: str) -> str:
    """TensorBoard tag of an entry key: train_loss → loss/train, val_top5 → top5/val, lr → lr."""
    for split in ("train", "val"):
        if key.startswith(f"{split}_") and key != "train_seconds":
            return f"{key[len(split) + 1:]}/{split}"
    return key


class EpochLog:
    """Collects the epoch entries of one training and writes its logs; use as a context manager
    (`with EpochLog(files, settings, history=restored) as epochs: ... epochs.add(entry)`). Entering writes the
    restored history of a resumed run; leaving draws the final curves and closes the event files, also when
    training stopped with an error or Ctrl-C (then a failure to draw is logged, not raised over the real error) —
    except a refusal found before the first new epoch (CnnlabError.before_work: a last.pt that does not fit the
    network), which takes back what entering wrote, so that the run leaves no folder (cnnlab.app)."""

    def __init__(self, files: EpochLogFiles, settings: EpochLogSettings = EpochLogSettings(), *,
                 history: Iterable[Mapping[str, Any]] = (), title: str = "") -> None:
        self.files = files
        self.settings = settings
        self.title = title
        self.entries: list[dict[str, Any]] = [dict(e) for e in history]
        self._restored = len(self.entries)
        self._written = False
        self._writer: Any = None
        self._plotted_at = time.monotonic()
        self._plotted = False

    def __enter__(self) -> "EpochLog":
        if self.settings.tensorboard:
            self._writer = summary_writer_class()(log_dir=str(self.files.tensorboard))
            for entry in self.entries:
                self._write_scalars(entry)
        if self.entries:
            self._write_csv()
        return self

    def add(self, entry: Mapping[str, Any]) -> None:
        """One finished epoch: rewrite the CSV, add the TensorBoard scalars, redraw the curves if it is time."""
        self.entries.append(dict(entry))
        self._write_csv()
        if self._writer is not None:
            self._write_scalars(self.entries[-1])
        if time.monotonic() - self._plotted_at >= self.settings.plot_every_s:
            self._plot()

    def close(self) -> None:
        """Draw the final curves (from MIN_PLOTTED_EPOCHS epochs on) and close the event files."""
        try:
            self._plot()
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        if getattr(error, "before_work", False) and len(self.entries) == self._restored:
            self._take_back()
            return
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - the error that stopped training is the one to report
            log.warning("could not finish the training curves after the run stopped: %s", exc)

    def written(self) -> dict[str, Path]:
        """What exists so far, by kind: csv, png, tensorboard."""
        found = {"csv": self.files.csv if self._written else None, "png": self.files.png if self._plotted else None,
                 "tensorboard": self.files.tensorboard if self.settings.tensorboard else None}
        return {kind: path for kind, path in found.items() if path is not None}

    def _write_csv(self) -> None:
        write_text(self.files.csv, csv_text(self.entries))
        self._written = True

    def _take_back(self) -> None:
        """Remove what entering wrote (the restored history's CSV and event files)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            shutil.rmtree(self.files.tensorboard, ignore_errors=True)
        self.files.csv.unlink(missing_ok=True)
        self._written = False

    def _write_scalars(self, entry: Mapping[str, Any]) -> None:
        step = entry.get("epoch")
        if not _number(step):
            return
        for key, value in entry.items():
            if key != "epoch" and _number(value):
                self._writer.add_scalar(scalar_tag(key), value, int(step))
        self._writer.flush()  # an interrupted run keeps every finished epoch

    def _plot(self) -> None:
        if len(self.entries) < MIN_PLOTTED_EPOCHS:
            return
        plot_curves(self.files.png, self.entries, self.title)
        self._plotted, self._plotted_at = True, time.monotonic()
