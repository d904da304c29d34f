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


def test_a_key_value_word_to_list_or_report_is_one_line_naming_the_option(cli, outputs: Path) -> None:
    """Probe 147: `cnnlab list runs outputs=out2` (every other command takes key=value) was Typer's error box."""
    for args, option in ((("list", "runs", "outputs=out2"), "use --outputs DIR"),
                         (("report", str(outputs), "runs=x"), "use OUTPUTS_DIR as its one argument, and --runs")):
        result = cli(*args)
        [line] = result.stderr.splitlines()
        assert result.code == 2 and line.startswith(f"error: `cnnlab {args[0]}` takes no {args[-1]} (it is no Hydra "
                                                    "command") and option in line, result.output
    outputs.mkdir(parents=True, exist_ok=True)
    assert cli("list", "runs", "--outputs", str(outputs)).code == 0  # the fix, followed


def test_a_run_whose_model_file_was_deleted_says_so(cli, outputs: Path) -> None:
    """Probe 57: a run whose model.pt was deleted read `completed` alone; export of it then said "holds no model
    file"."""
    from helpers import TINY, run_dirs

    assert cli("pretrain", *TINY, "trainer.max_steps_per_epoch=1").code == 0
    (run_dirs(outputs, "pretrain")[0] / "model.pt").unlink()
    listed = cli("list", "runs", "--outputs", str(outputs))
    assert listed.code == 0 and "completed (model.pt deleted)" in " ".join(listed.stdout.split()), listed.stdout


def test_an_unfinished_run_of_a_command_that_reads_a_source_names_no_default_model(cli, outputs: Path) -> None:
    """Probe 72: an interrupted quantize of a LeNet-5 was listed as resnet18, the config's default model=."""
    from cnnlab.runs import RunRecord

    run_dir = outputs / "quantize" / "2026-01-01" / "10-00-00"
    RunRecord.start(run_dir, "quantize").finish("interrupted")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text("model:\n  name: resnet18\n")
    listed = cli("list", "runs")
    row = next(line for line in listed.stdout.splitlines() if "quantize" in line)
    assert "resnet18" not in row, listed.stdout


def test_an_unfinished_architecture_search_is_listed_as_searched_not_as_the_config_model(tmp_path: Path) -> None:
    """Probe 74: failed and interrupted `space=mobilenet` searches were listed as `resnet18`, the config's default
    model=, which they never trained; a space=hparams search trains model= and is listed by it."""
    import yaml

    from cnnlab.listing import _model_name
    from cnnlab.runs import RunInfo

    for kind, shown in (("mobilenet", "searched"), ("hparams", "resnet18")):
        run_dir = tmp_path / kind
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "resnet18"},
                                                                        "space": {"kind": kind}}))
        assert _model_name(RunInfo(run_dir, {"command": "search", "status": "failed"})) == shown


def test_a_paired_bench_session_is_listed_by_the_models_it_timed(tmp_path: Path) -> None:
    """Probe 192: a `cnnlab bench source=[A,B]` session's row had a blank model column."""
    from cnnlab.listing import _model_name
    from cnnlab.runs import RunInfo

    session = RunInfo(tmp_path, {"command": "bench", "status": "completed",
                                 "paired": {"rounds": 3, "subjects": [{"name": "resnet18"}, {"name": "lenet5"}]}})
    assert _model_name(session) == "2 paired: resnet18, lenet5"


def test_an_interrupted_run_resumed_to_its_end_says_which_run_continued_it(cli, outputs: Path) -> None:
    """Probe 228: the interrupted run still read `interrupted`, nothing linking it to the run that finished it (its
    `resumed_from` was in the continuation's run.json alone)."""
    from cnnlab.runs import RunRecord

    first = outputs / "pretrain" / "2026-12-07" / "10-00-00"
    RunRecord.start(first, "pretrain").finish("interrupted")
    later = outputs / "pretrain" / "2026-12-07" / "10-05-00"
    record = RunRecord.start(later, "pretrain")
    record.update(resumed_from=str(first))
    record.finish("completed")
    alone = outputs / "pretrain" / "2026-12-07" / "11-00-00"
    RunRecord.start(alone, "pretrain").finish("interrupted")
    listed = " ".join(cli("list", "runs", "--outputs", str(outputs)).stdout.split())
    assert "interrupted (continued by 10-05-00)" in listed, listed
    assert listed.count("continued by") == 1  # not the run nothing continued, nor the continuation itself
