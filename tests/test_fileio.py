"""Files as cnnlab writes them (cnnlab/fileio.py): CSV files that a spreadsheet opens without running formulas."""

from __future__ import annotations

import csv
import errno
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_paths, disk_full_error, why_missing, why_not_a_file, write_text

# A class or file name a spreadsheet would run as a formula (CSV injection), one for each starting character.
FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-1+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"]


def _cells(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_text_cell_that_starts_like_a_formula_gets_a_leading_quote(cell: str) -> None:
    from cnnlab.fileio import spreadsheet_safe

    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-0.5", "+3", "-1e-06", "-inf", "nan", "0.250000", "", "cat", "a=b", "'=x"])
def test_numbers_and_plain_text_are_left_alone(cell: str) -> None:
    from cnnlab.fileio import spreadsheet_safe

    assert spreadsheet_safe(cell) == cell


def test_a_csv_file_is_neutralised_cell_by_cell_and_untouched_when_safe(tmp_path: Path) -> None:
    from cnnlab.fileio import spreadsheet_safe_csv

    text = "class,loss\r\n=1+2,-0.5\r\n\"a,=b\",@x\r\n"
    write_text(tmp_path / "t.csv", text)
    assert _cells(tmp_path / "t.csv") == [["class", "loss"], ["'=1+2", "-0.5"], ["a,=b", "'@x"]]
    assert (tmp_path / "t.csv").read_bytes().count(b"\r\n") == 3  # the file's own line ending is kept
    safe = "epoch,loss\n1,-0.5\n"
    assert spreadsheet_safe_csv(safe) is safe
    write_text(tmp_path / "notes.txt", "=1+2\n")  # not a CSV file: written as given
    assert (tmp_path / "notes.txt").read_text() == "=1+2\n"


def test_the_evaluate_and_predict_files_neutralise_class_and_file_names(tmp_path: Path) -> None:
    """per_class.csv, confusion.csv, outcomes.csv and predictions.csv held such names raw."""
    from cnnlab.evaluation.files import (Prediction, write_confusion_csv, write_outcomes_csv, write_per_class_csv,
                                         write_predictions)

    classes = ["=1+2", "-cats", "ok"]
    confusion = torch.tensor([[2, 0, 0], [1, 1, 0], [0, 0, 3]])
    per_class = _cells(write_per_class_csv(tmp_path / "per_class.csv", confusion, classes))
    assert [row[0] for row in per_class[1:]] == ["'=1+2", "'-cats", "ok"]
    matrix = _cells(write_confusion_csv(tmp_path / "confusion.csv", confusion, classes))
    assert matrix[0][1:] == ["'=1+2", "'-cats", "ok"] and matrix[1][0] == "'=1+2" and matrix[1][1] == "2"
    outcomes = _cells(write_outcomes_csv(tmp_path / "outcomes.csv", torch.tensor([0, 1]), torch.tensor([1, 1]),
                                         torch.tensor([0.5, 0.25]), classes))
    assert outcomes[1] == ["0", "'=1+2", "'-cats", "0", "0.500000"]
    csv_path, _ = write_predictions(tmp_path, [Prediction("@evil.png", ("=1+2",), (0.75,))], {}, {})
    assert _cells(csv_path)[1] == ["'@evil.png", "1", "'=1+2", "0.750000"]


def test_the_training_log_and_the_search_trials_keep_their_numbers(tmp_path: Path) -> None:
    from cnnlab.engine.epoch_log import csv_text
    from cnnlab.search.results import write_trials_csv

    write_text(tmp_path / "metrics.csv", csv_text([{"epoch": 1, "train_loss": -0.5, "note": "=1"}]))
    assert _cells(tmp_path / "metrics.csv") == [["epoch", "train_loss", "note"], ["1", "-0.5", "'=1"]]
    rows = _cells(write_trials_csv(tmp_path / "trials.csv", [{"trial": 0, "state": "=x", "speedup": -1.25}]))
    assert rows[1][:2] == ["0", "'=x"] and "-1.25" in rows[1]


@pytest.mark.parametrize("name", ["photo\r1.png", "\rcr.png", "two\r\nlines.png", "new\nline.png", "plain.png"])
def test_a_cell_holding_a_line_break_stays_one_cell_in_every_csv(tmp_path: Path, name: str) -> None:
    """csv.writer with lineterminator "\\n" left a lone "\\r" bare: readers split predictions.csv's row in two at it
    (probe 126: a prediction for a file "1.png" that does not exist), and "\\r" at the start escaped the
    formula guard. Every CSV cnnlab writes (evaluate, predict, metrics, trials) goes through fileio.csv_text."""
    from cnnlab.engine.epoch_log import csv_text as epochs_text
    from cnnlab.evaluation.files import Prediction, write_outcomes_csv, write_predictions
    from cnnlab.fileio import csv_text
    from cnnlab.search.results import write_trials_csv

    shown = "'" + name if name.startswith("\r") else name
    text = csv_text([["file", "n"], [name, 1]])
    assert text.endswith("\n") and not text.endswith("\r\n")  # "\n" line ends, as before
    csv_path, _ = write_predictions(tmp_path, [Prediction(name, ("a", "b"), (0.75, 0.25))], {}, {})
    assert _cells(csv_path) == [["file", "rank", "class", "probability"], [shown, "1", "a", "0.750000"],
                                [shown, "2", "b", "0.250000"]]
    outcomes = _cells(write_outcomes_csv(tmp_path / "outcomes.csv", torch.tensor([0]), torch.tensor([0]),
                                         torch.tensor([0.5]), [name]))
    assert outcomes == [["index", "true", "predicted", "correct", "confidence"], ["0", shown, shown, "1", "0.500000"]]
    write_text(tmp_path / "metrics.csv", epochs_text([{"epoch": 1, "note": name}]))
    assert _cells(tmp_path / "metrics.csv") == [["epoch", "note"], ["1", shown]]
    trials = _cells(write_trials_csv(tmp_path / "trials.csv", [{"trial": 0, "state": name}]))
    assert len(trials) == 2 and trials[1][:2] == ["0", shown]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_mode_open_gives_under_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Every atomically written file (model.pt, run.json, CSV) was 0o600 whatever the umask (tempfile.mkstemp), so
    another user or a serving container could not read an exported model; it now gets 0o666 & ~umask, as a file
    made by open(path, "w") (run.log), and the temporary file it was written to is gone."""
    import os
    import stat

    from cnnlab.engine.checkpoint import save_tensors
    from cnnlab.fileio import write_json

    old = os.umask(umask)
    try:
        write_text(tmp_path / "table.csv", "a,b\n1,2\n")
        write_json(tmp_path / "run.json", {"status": "completed"})
        save_tensors(tmp_path / "model.pt", {"w": torch.zeros(2)})
        with (tmp_path / "run.log").open("w") as handle:  # what a plain open gives, for comparison
            handle.write("x\n")
    finally:
        os.umask(old)
    for name in ("table.csv", "run.json", "model.pt", "run.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "run.json", "run.log", "table.csv"]


def test_a_link_that_leads_nowhere_is_named_as_one(tmp_path: Path) -> None:
    """A link loop reads as absent to Path.exists(): "does not exist" sent the user looking for a file the link hid."""
    loop = tmp_path / "model.pt"
    loop.symlink_to(loop.name)  # back to itself
    dangling = tmp_path / "best"
    dangling.symlink_to(tmp_path / "gone")
    assert why_missing(tmp_path / "absent.pt") == "does not exist"
    assert why_missing(loop) == "is a link back to itself"
    assert why_missing(dangling) == f"is a link to {tmp_path / 'gone'}, which does not exist"
    # probe 169: a chain and a loop of two read alike, "to X, which does not exist, or back to itself"
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "chain").symlink_to("best")
    assert why_missing(tmp_path / "a") == "is a link in a loop (to b, a link to a)"
    assert why_missing(tmp_path / "chain") == f"is a link to best, a link to {tmp_path / 'gone'}, which does not exist"
    assert why_not_a_file(tmp_path) == "is a folder, not a file"  # was "does not exist" for an ONNX path
    assert why_not_a_file(loop) == why_missing(loop)


_OVER_A_SIZE_LIMIT = """
import resource, sys
from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    with atomic_path(sys.argv[1]) as temporary:
        temporary.write_bytes(b"x" * 100_000)
except CnnlabError as err:
    print(err.one_line())
"""


def test_a_write_past_the_file_size_limit_is_the_one_line_and_keeps_the_file(tmp_path: Path) -> None:
    """Probe 235: under `ulimit -f` (EFBIG; Python ignores SIGXFSZ) pretrain, export, quantize and prune ended in a
    traceback and "this is a bug in cnnlab"; a full disk already had its one line."""
    target = tmp_path / "model.pt"
    target.write_bytes(b"before")
    done = subprocess.run([sys.executable, "-c", _OVER_A_SIZE_LIMIT, str(target)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    said = done.stdout.strip()
    assert said.startswith(f"{target} grew past the largest file allowed here") and "ulimit -f unlimited" in said
    assert target.read_bytes() == b"before" and [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_full_disk_names_the_file_being_replaced_not_its_temporary_copy(tmp_path: Path) -> None:
    """Probe 235: a full disk met inside torch's ONNX exporter (outside fileio's own mapping) named
    `.model.onnx.e36aead7.tmp`, a file that no longer exists; several files written together are said so."""
    error = disk_full_error(OSError(errno.ENOSPC, "No space left", str(tmp_path / ".model.onnx.e36aead7.tmp")))
    assert error.message.startswith(f"disk full while writing {tmp_path / 'model.onnx'} (")
    assert error.message.endswith("the file was not changed")
    targets = [tmp_path / name for name in ("report.md", "report.csv", "report.json")]
    with pytest.raises(CnnlabError, match="disk full while writing .*report.md .*none of the 3 files written together"):
        with atomic_paths(targets) as (markdown, *_):
            raise OSError(errno.ENOSPC, "No space left on device", str(markdown))
    assert list(tmp_path.iterdir()) == []
