"""steps/sources.py: what a command takes from its source run — the model file, and the data it learned."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import TINY, read_run, run_dirs


def test_a_model_file_replaced_after_its_run_is_refused_and_its_copy_works(
        cli, outputs: Path, tiny_run: Path, tmp_path: Path) -> None:
    """A model.pt (or model.onnx) copied into another run's folder was taken as that run's model: scored on that
    run's val split (which may hold the file's own training images) and trained on as that run's data, exit 0.
    The file's own record of its data (checkpoint extra.dataset, ONNX metadata) now has to match run.json's."""
    assert cli("pretrain", *TINY, "dataset.seed=5").code == 0  # other pictures
    ran, other = run_dirs(outputs, "pretrain")
    shutil.copy(other / "model.pt", ran / "model.pt")
    for command in (["evaluate", f"source={ran}", "split=val"], ["finetune", f"model.weights={ran}"],
                    ["prune", f"source={ran}"], ["quantize", f"source={ran}"], ["bench", f"source={ran}"]):
        result = cli(*command)
        assert result.code == 2, (command, result.output)  # run.json's SHA-256 of the file it wrote tells first
        assert f"{ran / 'model.pt'} is not the file run {ran} wrote: its SHA-256 differs" in \
               " ".join(result.stderr.split()), (command, result.output)
    assert not (outputs / "evaluate").exists()  # refused before work: no run folder
    record = json.loads((ran / "run.json").read_text())
    (ran / "run.json").write_text(json.dumps({k: v for k, v in record.items() if k != "digests"}))
    older = cli("evaluate", f"source={ran}", "split=val")  # a record from before digests: the data records tell
    assert older.code == 2 and f"{ran / 'model.pt'} and its run's run.json record different data (dataset.seed 5 " \
        "in the file, 0 in run.json)" in " ".join(older.stderr.split()), older.output

    shutil.copy(other / "model.pt", ran / "alt.pt")  # a file the run never wrote: read with its own record, its
    named = cli("evaluate", f"source={ran / 'alt.pt'}", "split=val")  # scores not the run's (probes 64, 71, 72)
    assert named.code == 0 and "is not the model.pt or model.onnx run" in " ".join(named.stderr.split()), named.output
    assert read_run(run_dirs(outputs, "evaluate")[-1])["source"]["run"] is None

    copy = tmp_path / "kept" / "model.pt"  # the fix: the copy out of the folder brings its own record
    copy.parent.mkdir()
    shutil.copy(ran / "model.pt", copy)
    scored = cli("evaluate", f"source={copy}", "split=val")
    assert scored.code == 0, scored.output

    shutil.copy(other / "model.pt", ran / "model.pt")
    assert cli("export", f"source={ran}").code == 2
    shutil.copytree(ran, tmp_path / "restored")  # the same kind for an ONNX file: exported runs swapped
    assert cli("export", f"source={other}").code == 0
    export = run_dirs(outputs, "export")[0]
    assert cli("pretrain", *TINY, "hydra.run.dir=" + str(tmp_path / "third")).code == 0
    assert cli("export", f"source={tmp_path / 'third'}").code == 0
    third_export = next(d for d in run_dirs(outputs, "export") if d != export)
    shutil.copy(export / "model.onnx", third_export / "model.onnx")
    result = cli("evaluate", f"source={third_export}", "split=val")
    assert result.code == 2 and "its SHA-256 differs from the one in the run's run.json" in \
        " ".join(result.stderr.split()), result.output
