"""`cnnlab list runs`: a folder that does not exist is not a folder without runs."""

from __future__ import annotations

from pathlib import Path


def test_list_runs_of_a_folder_that_does_not_exist_is_one_error_line(cli, outputs: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexist"
    result = cli("list", "runs", "--outputs", str(missing))
    [line] = result.stderr.splitlines()
    assert result.code == 2 and result.stdout == "" and "Traceback" not in result.output
    assert line.startswith(f"error: --outputs {missing}: no such folder — ") and "yet" not in line
    # the default outputs folder of a fresh project does not exist before the first run: no runs yet, not an error
    fresh = cli("list", "runs")
    assert fresh.code == 0 and "no runs in" in fresh.stdout and "does not exist yet" in fresh.stdout


def test_a_run_whose_model_file_was_deleted_says_so(cli, outputs: Path) -> None:
    """Probe 57: a run whose model.pt was deleted read `completed` alone; export of it then said "holds no model
    file"."""
    from helpers import TINY, run_dirs

    assert cli("pretrain", *TINY, "trainer.max_steps_per_epoch=1").code == 0
    (run_dirs(outputs, "pretrain")[0] / "model.pt").unlink()
    listed = cli("list", "runs", "--outputs", str(outputs))
    assert listed.code == 0 and "completed (model.pt deleted)" in " ".join(listed.stdout.split()), listed.stdout
