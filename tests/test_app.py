"""cnnlab/app.py: how a command is handed to Hydra."""

from __future__ import annotations

import json
import shutil
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hydra._internal.hydra import Hydra

from cnnlab.app import _mode_from_the_command_line
from helpers import TINY


def test_hydra_composes_once_unless_hydra_mode_is_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra 1.3 composed every command's config twice, once only for `hydra.mode` (~0.13 s a command,
    docs/benchmarks.md); the mode is the command line's, so that compose is skipped — but not for a typed
    `hydra.mode=`, which Hydra must read."""
    original = Hydra.get_mode
    monkeypatch.setattr(sys, "argv", ["cnnlab", "command=pretrain", "seed=1"])
    with _mode_from_the_command_line():
        assert Hydra.get_mode(None, "config", ["seed=1"]) is None  # type: ignore[arg-type]
    assert Hydra.get_mode is original
    monkeypatch.setattr(sys, "argv", ["cnnlab", "command=pretrain", "hydra.mode=MULTIRUN", "seed=1,2"])
    with _mode_from_the_command_line():
        assert Hydra.get_mode is original


def test_a_typed_hydra_mode_still_sweeps(cli, outputs) -> None:
    from helpers import run_dirs

    result = cli("pretrain", *TINY, "hydra.mode=MULTIRUN", "seed=0,1")
    assert result.code == 0, result.output
    assert len(run_dirs(outputs, "pretrain")) == 2


@pytest.mark.parametrize("args", [
    ("prune", "prune.ratio=1.5"),                       # a setting's rule (settings.check_config)
    ("prune", "prune.method=nosuch"),                   # a setting the command parses itself (pipelines/prune.check)
    ("export", "source=nope"),                          # an input that is not there (steps/sources)
    ("finetune", *TINY, "model.weights=nope.pt"),       # weights that are not there (weights.resolve_weights)
    ("finetune", "dataset=imagefolder", "dataset.root=/nope"),  # data that is not there (data.check_dataset)
    ("finetune", *TINY, "optim=adamw", "+optim.momentum=0.9"),  # a key the optimizer class takes no argument for
    ("search", *TINY, "space=hparams", "+space.params.seed.type=int"),  # a search space (pipelines/search)
    ("pipeline", "pipeline.stages=[nosuch]"),           # a plan (pipelines/pipeline)
    ("pipeline", "pipeline.stages=[prune]"),            # probe 60: a stage whose input stage never ran
    ("pretrain", *TINY, "trainer.batch_size=128"),      # probe 60: a batch larger than the training set (64)
    ("pretrain", *TINY, "device=gpu"),                  # probe 93: a device typo left a failed run
    ("pretrain", *TINY, "device=cuda:7"),               # probe 93: a GPU that is not there (no CUDA, or one GPU)
    ("pretrain", *TINY, "trainer.amp=fp16"),            # session 58: checked by the engine as it picks the precision
    ("bench", "model=lenet5", "bench.backends=[tensorrt]"),  # session 58: a runtime that does not run on the CPU
    ("bench", "source=[/nope,/nope2]"),                 # probe 98: a paired session's sources that are not there
    ("bench", "source=[/nope]"),                        # session 72: one model listed for a paired session
    ("bench", "source=[]"),
    ("pretrain", *TINY, "optim.momentum=0"),           # probe 102: SGD's own refusal (Nesterov needs momentum)
    ("export", "source=latest", "export.opset=99999"),  # probe 114: the exporter's upper bound, checked in the command
    ("evaluate", f"source={'w' * 300}"),                # probe 111: a name over 255 bytes (ENAMETOOLONG, a traceback)
    ("finetune", "dataset=imagefolder", f"dataset.root={'w' * 300}"),
    ("finetune", *TINY, f"model.weights={'w' * 300}.pt"),
    ("pretrain", *TINY, f"paths.outputs=out_{'w' * 300}"),
])
def test_a_run_refused_before_any_work_leaves_no_run_folder(cli, outputs, args) -> None:
    """Probe 58: every refused typo left a `failed` run in `cnnlab list runs` (and each `cnnlab pipeline` two empty
    folders beside its workspace)."""
    result = cli(*args)
    assert result.code == 2 and result.stderr.count("error:") == 1 and "Traceback" not in result.stderr, result.output
    assert [str(p.relative_to(outputs)) for p in outputs.rglob("*")] == []


def test_a_path_longer_than_the_system_allows_is_one_line_naming_it(cli, outputs, tmp_path) -> None:
    """Probe 111: pathlib's exists() raises ENAMETOOLONG rather than answer False, so a 300-character name stopped
    cnnlab with a traceback — in a source=, in Hydra's run folder, under a working folder near PATH_MAX."""
    long = "w" * 300
    for args in (("pretrain", *TINY, f"hydra.run.dir={tmp_path / 'runs' / long}"), ("report", long),
                 ("list", "runs", "--outputs", long)):
        refused = cli(*args)
        assert refused.code == 2 and "Traceback" not in refused.output, refused.output
        assert f"the name '{'w' * 28}…{'w' * 28}' (300 bytes; at most 255) is longer than this system allows — " \
               "give a shorter name" in refused.stderr, refused.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("where", ["execute", "check_config"])
def test_ctrl_c_before_a_run_begins_leaves_no_run_folder(cli, outputs, monkeypatch, where) -> None:
    """Probe 112: Ctrl-C in the second Hydra takes to start a run left a folder holding only .hydra/ and an empty
    run.log, which no command lists or removes; one during the settings checks left an `interrupted` run that had
    done nothing."""
    import cnnlab.app

    def stopped(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cnnlab.app, where, stopped)
    result = cli("pretrain", *TINY)
    assert result.code == 130 and "interrupted" in result.stderr and "Traceback" not in result.output, result.output
    assert [str(p.relative_to(outputs)) for p in outputs.rglob("*")] == []


def test_a_folder_holding_files_of_yours_is_no_run_folder(cli, outputs, tmp_path) -> None:
    """Probe 161: `predict … hydra.run.dir=results` replaced the user's own predictions.csv and .json, exit 0, without
    a word; any run writes files of fixed names (run.json, model.pt, metrics.csv, …) into its folder. Hidden files
    (.gitkeep) are no one's work."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "predictions.csv").write_text("file,label\nx.png,cat\n")
    (mine / "notes.txt").write_text("keep me")
    for command in (["prune", "prune.ratio=1.5"], ["pretrain", *TINY]):
        result = cli(*command, f"hydra.run.dir={mine}")
        assert result.code == 2 and "Traceback" not in result.output, result.output
        assert f"hydra.run.dir={mine}: that folder already holds notes.txt, predictions.csv" in result.stderr
        assert "give a new or empty folder" in result.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "predictions.csv"]
    assert (mine / "predictions.csv").read_text() == "file,label\nx.png,cat\n"
    (mine / "notes.txt").unlink()
    (mine / "predictions.csv").unlink()
    # probe 169: another Hydra app's .hydra/ (hidden, yet Hydra's own files go there) was replaced without a word
    (mine / ".hydra").mkdir()
    (mine / ".hydra" / "config.yaml").write_text("mine: 1\n")
    hydras = cli("pretrain", *TINY, f"hydra.run.dir={mine}")
    assert hydras.code == 2 and "that folder already holds .hydra," in hydras.stderr, hydras.output
    assert (mine / ".hydra" / "config.yaml").read_text() == "mine: 1\n"
    shutil.rmtree(mine / ".hydra")
    (mine / ".gitkeep").write_text("")
    (mine / "a" / "b").mkdir(parents=True)  # probe 169: empty folders were refused, and nothing there could be lost
    assert cli("pretrain", *TINY, f"hydra.run.dir={mine}").code == 0  # the fix, followed



def test_a_refused_run_leaves_a_named_folder_as_it_found_it_so_the_mended_command_may_use_it(cli, outputs,
                                                                                              tmp_path) -> None:
    """Session 60: a refused typo with `hydra.run.dir=DIR` left its failed run.json there, so the same command, its
    typo mended, was refused in turn: "that folder already holds a run". A folder that was missing is gone again (and
    the folders made above it), one that was empty is empty."""
    missing, empty, kept = tmp_path / "new" / "deeper" / "run", tmp_path / "empty", tmp_path / "kept"
    empty.mkdir()
    (kept / "sub").mkdir(parents=True)  # session 68: a .gitkeep kept the refused run's record there
    (kept / ".gitkeep").write_text("")
    for folder in (missing, empty, kept):
        refused = cli("pretrain", *TINY, "trainer.batch_size=128", f"hydra.run.dir={folder}")
        assert refused.code == 2 and "Traceback" not in refused.output, refused.output
    assert not (tmp_path / "new").exists() and empty.is_dir() and not any(empty.iterdir())
    assert sorted(p.name for p in kept.iterdir()) == [".gitkeep", "sub"]
    for folder in (empty, kept):
        mended = cli("pretrain", *TINY, f"hydra.run.dir={folder}")
        assert mended.code == 0, mended.output
        assert json.loads((folder / "run.json").read_text())["status"] == "completed"


def test_a_model_refused_as_input_leaves_no_run_folder(cli, outputs) -> None:
    """Probe 59: `cnnlab evaluate` of a self-supervised backbone (its head never trained) was refused, and left a
    `failed` run folder."""
    assert cli("pretrain", *TINY, "method=simsiam").code == 0
    result = cli("evaluate", "source=latest:pretrain")
    assert result.code == 2 and "its classifier head was never trained" in result.stderr, result.output
    assert not (outputs / "evaluate").exists()
    assert cli("pretrain", *TINY).code == 0
    result = cli("evaluate", "source=latest:pretrain", "split=test")  # probe 60: synthetic has no test split
    assert result.code == 2 and "has no test split" in result.stderr, result.output
    assert not (outputs / "evaluate").exists()


def test_a_setting_refused_once_the_model_is_read_leaves_no_run_folder(cli, outputs) -> None:
    """Session 58: settings a command checks against its source (a runtime, the layers to keep, the ratio, the
    calibration) left a `failed` run each, though nothing was done."""
    assert cli("pretrain", *TINY).code == 0
    before = sorted(outputs.rglob("run.json"))
    for args in (("evaluate", "source=latest", "evaluate.runtime=nosuch"),
                 ("bench", "source=latest", "bench.image_size=32"),
                 ("prune", "source=latest", "prune.ignore=[nosuch]"),
                 ("prune", "source=latest", "prune.ratio=0.99"),
                 ("quantize", "source=latest", "quantize.calib_batches=0"),
                 # probe 100: a stage count, a teacher at chance (the TINY one: 1 epoch on noise)
                 ("finetune", "model.weights=latest", "finetune.mode=partial", "finetune.unfreeze=99"),
                 ("distill", "teacher=lenet5", "teacher.weights=latest", "student=lenet5", *TINY[:5])):
        result = cli(*args)
        assert result.code == 2 and result.stderr.count("error:") == 1, result.output
        assert sorted(outputs.rglob("run.json")) == before, args


def test_a_run_never_writes_into_another_runs_folder(cli, outputs) -> None:
    """Probe 60: `hydra.run.dir=` naming a completed run's folder, on a command refused at once, replaced that run's
    run.json (its metrics, which source= and the report read) with a failed prune's, and its .hydra/ files."""
    from helpers import run_dirs

    assert cli("pretrain", *TINY).code == 0
    victim = run_dirs(outputs, "pretrain")[0]
    before = {p.name: p.read_bytes() for p in [victim / "run.json", *(victim / ".hydra").iterdir()]}
    inside = victim.relative_to(outputs)
    # probe 61: the typed text was checked as it stood; Hydra reads quotes, escapes and resolvers
    # probe 130: a folder that interpolates another setting is known only once composed; Hydra rewrote .hydra/ first
    for spelling in (f"hydra.run.dir={victim}", f'hydra.run.dir="{victim}"',
                     f"hydra.run.dir=${{oc.env:CNNLAB_OUTPUTS}}/{inside}",
                     f"hydra.run.dir=${{paths.outputs}}/{inside}",
                     # probe 133: Hydra's own resolver read Hydra's config, not yet set: the guard warned and went on
                     f"hydra.run.dir=${{hydra:runtime.cwd}}/{os.path.relpath(victim)}"):
        result = cli("prune", "prune.ratio=1.5", spelling)
        assert result.code == 2 and "that folder already holds a run (its run.json)" in result.stderr, result.output
        assert result.stderr.count("error:") == 1 and "Warning" not in result.stderr, result.output
    assert {p.name: p.read_bytes() for p in [victim / "run.json", *(victim / ".hydra").iterdir()]} == before
    inner = cli("pretrain", *TINY, f"hydra.run.dir=${{paths.outputs}}/{inside}/sub")
    assert inner.code == 2 and "lies inside the run" in inner.stderr and not (victim / "sub").exists()
    above = cli("pretrain", *TINY, f"hydra.run.dir={outputs}")  # probe 133: every run below it "inside a run" after
    assert above.code == 2 and "that folder holds runs in folders below it" in above.stderr, above.output
    assert not (outputs / "run.json").exists() and not (outputs / ".hydra").exists()
    unset = cli("pretrain", *TINY, "hydra.run.dir=${oc.env:CNNLAB_TEST_UNSET}/x")
    assert unset.code == 2 and "its interpolation does not resolve" in unset.stderr, unset.output
    assert "Warning" not in unset.stderr
    tilde = cli("pretrain", *TINY, "hydra.run.dir=~/cnnlab-run")  # Hydra makes a folder named "~" here
    assert tilde.code == 2 and "Hydra does not expand ~" in tilde.stderr and "hydra.run.dir=$HOME/cnnlab-run" in \
        tilde.stderr, tilde.output


def test_a_run_or_sweep_folder_that_cannot_be_made_is_one_line(cli, outputs: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 136: `hydra.run.dir=` under a file, or in a folder this process may not write, was Hydra's mkdir
    raising NotADirectoryError / PermissionError: a traceback read as a bug in cnnlab."""
    blocking = tmp_path / "afile"
    blocking.write_text("mine\n")
    for setting, key in ((f"hydra.run.dir={blocking}/run", "hydra.run.dir"), (f"hydra.sweep.dir={blocking}/sweep",
                                                                              "hydra.sweep.dir")):
        result = cli("evaluate", "model=lenet5", *(("-m", setting, "seed=1,2") if "sweep" in key else (setting,)))
        assert result.code == 2 and "Traceback" not in result.output, result.output
        assert f"cannot create that folder: {blocking} is a file, not a folder" in result.stderr, result.output
        assert f"give {key} another folder" in result.stderr and blocking.read_text() == "mine\n"
    # probe 137: a link loop was app.main's resolve() RuntimeError; a dangling link "a file, not a folder"
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for link, said in (("loop1", f"is a link in a loop (to {tmp_path / 'loop2'}, a link to {tmp_path / 'loop1'})"),
                       ("dangling", f"is a link to {tmp_path / 'gone'}, which does not exist")):
        result = cli("evaluate", "model=lenet5", f"hydra.run.dir={tmp_path / link}/run")
        assert result.code == 2 and "Traceback" not in result.output, result.output
        assert f"{tmp_path / link} {said}" in " ".join(result.stderr.split()), result.output
    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkdtemp = tempfile.mkdtemp

    def refused(*args: object, dir: str | None = None, **kwargs: object) -> str:  # noqa: A002 - mkdtemp's name
        if dir is not None and Path(dir) == locked:  # root writes a chmod 555 folder; /sys refuses root
            raise PermissionError(1, "Operation not permitted")
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    result = cli("evaluate", "model=lenet5", f"hydra.run.dir={locked}/run")
    assert result.code == 2 and f"cannot write in {locked} (permission denied)" in result.stderr, result.output
    assert list(locked.iterdir()) == []


def test_a_refused_first_command_leaves_no_outputs_folder(cli, outputs: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the first command of a fresh folder left an empty outputs/ (and CNNLAB_OUTPUTS' new parents)
    behind; an outputs folder that was there before stays, and so does one that holds runs."""
    result = cli("pretrain", *TINY, "trainer.epochs=abc")
    assert result.code == 2 and not outputs.exists()
    deeper = tmp_path / "new" / "runs"
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(deeper))
    assert cli("pretrain", *TINY, "trainer.epochs=abc").code == 2 and not (tmp_path / "new").exists()
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(outputs))
    outputs.mkdir()
    assert cli("pretrain", *TINY, "trainer.epochs=abc").code == 2 and outputs.is_dir()
    assert cli("pretrain", *TINY).code == 0
    assert cli("pretrain", *TINY, "trainer.epochs=abc").code == 2 and len(list(outputs.rglob("run.json"))) == 1


def test_a_skipped_jobs_line_names_every_model_it_started_from() -> None:
    """Probe 94: a skipped distill named its teacher only, though its student's weights were checked too."""
    from cnnlab.app import _started_from

    distill = {"source": {"run": "/runs/teacher"}, "distill": {"student": {"source": {"path": "/w/student.pt"}}}}
    assert _started_from(distill) == " (from /runs/teacher; student from /w/student.pt)"
    assert _started_from({"source": {"run": "/runs/a"}}) == " (from /runs/a)"
    assert _started_from({"source": None}) == "" and _started_from({}) == ""


def test_a_config_dir_file_hidden_by_cnnlabs_own_of_that_name_is_refused(cli, outputs, tmp_path) -> None:
    """Probe 99: myconf/optim/sgd.yaml (lr 0.123) lost to cnnlab's optim/sgd.yaml (Hydra searches the packaged conf/
    first) and the run trained at 0.05 without a word; so did a sched file without `name:` (cosine, its keys unread)."""
    import shlex

    from helpers import read_run, run_dirs

    mine = tmp_path / "myconf" / "optim" / "sgd.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("_target_: torch.optim.SGD\nlr: 0.123\nmomentum: 0.5\nweight_decay: 0\n")
    result = cli("pretrain", *TINY, "--config-dir", str(tmp_path / "myconf"))
    assert result.code == 2 and f"{mine} is not read" in result.stderr and not outputs.exists(), result.output
    fix = result.stderr.split(" — ", 1)[1]
    renamed, choice = shlex.split(fix.removeprefix("rename it to ").replace(" and choose ", " "))
    mine.rename(renamed)  # the fix, followed
    assert cli("pretrain", *TINY, "--config-dir", str(tmp_path / "myconf"), choice, "sched=constant").code == 0
    assert read_run(run_dirs(outputs, "pretrain")[0])["metrics"]["history"][0]["lr"] == 0.123
    (tmp_path / "myconf" / "sched").mkdir()
    (tmp_path / "myconf" / "sched" / "mine.yaml").write_text("warmup_epochs: 0\nstep_epochs: 1\ngamma: 0.5\n")
    result = cli("pretrain", *TINY, "--config-dir", str(tmp_path / "myconf"), "sched=mine")
    assert result.code == 2 and "the sched settings have no name" in result.stderr, result.output
    # probe 100: a launcher file (hydra/launcher) was hidden too; a command file's rename was no command
    from cnnlab.conftree import CONF_DIR

    launcher = tmp_path / "myconf" / "hydra" / "launcher" / "slurm_cpu.yaml"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("partition: mypart\n")
    result = cli("pretrain", *TINY, "--config-dir", str(tmp_path / "myconf"), "hydra/launcher=slurm_cpu", "--cfg", "hydra")
    assert result.code == 2 and f"{launcher} is not read" in result.stderr, result.output
    launcher.unlink()
    (tmp_path / "myconf" / "command").mkdir()
    (tmp_path / "myconf" / "command" / "pretrain.yaml").write_text("# @package _global_\n")
    result = cli("pretrain", *TINY, "--config-dir", str(tmp_path / "myconf"))
    assert result.code == 2 and "pass experiment=mine" in result.stderr and "my_pretrain" not in result.stderr
    assert cli("pretrain", *TINY, "--config-dir", str(CONF_DIR)).code == 0  # cnnlab's own files: nothing hidden
    # probe 102: a copy of cnnlab's conf/ was refused once per file it holds; only an edited file is hidden
    import shutil

    copy = tmp_path / "copied"
    shutil.copytree(CONF_DIR, copy)
    (copy / "model" / "lenet5.yaml").write_text("# my notes\n" + (CONF_DIR / "model" / "lenet5.yaml").read_text())
    assert cli("pretrain", *TINY, "--config-dir", str(copy)).code == 0
    edited = copy / "optim" / "sgd.yaml"
    edited.write_text(edited.read_text().replace("lr: 0.05", "lr: 0.123"))
    result = cli("pretrain", *TINY, "--config-dir", str(copy))
    assert result.code == 2 and f"{edited} is not read" in result.stderr, result.output


@pytest.mark.parametrize("value", ["", "   ", "~/runs"])
def test_an_empty_outputs_variable_is_unset_and_a_tilde_is_home(cli, tmp_path, monkeypatch, value) -> None:
    """Probe 98: `CNNLAB_OUTPUTS=` (empty) made the working folder the outputs root: `list runs` read every folder
    below it and `source=latest` took an unrelated run; a quoted `~/runs` made a folder named ~."""
    from helpers import run_dirs

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNLAB_OUTPUTS", value)
    assert cli("pretrain", *TINY).code == 0
    expected = tmp_path / "home" / "runs" if value.startswith("~") else tmp_path / "outputs"
    assert len(run_dirs(expected, "pretrain")) == 1 and not (tmp_path / "~").exists()
    listed = cli("list", "runs")
    assert listed.code == 0 and "pretrain" in listed.stdout, listed.output
    typed = cli("pretrain", *TINY, "paths.outputs=~/runs2")  # probe 100: Hydra made a folder named ~ here
    assert typed.code == 2 and "paths.outputs=$HOME/runs2" in typed.stderr and not (tmp_path / "~").exists()


def test_an_outputs_variable_holding_an_interpolation_is_refused_before_a_folder_is_made(cli, tmp_path,
                                                                                        monkeypatch) -> None:
    """Probe 98: CNNLAB_OUTPUTS='x${y}' made the folder x${y}/pretrain/<date>/<time>, then stopped with "Interpolation
    key 'y' not found", naming neither the variable nor a fix."""
    monkeypatch.setenv("CNNLAB_OUTPUTS", str(tmp_path / "x${y}"))
    result = cli("pretrain", *TINY)
    assert result.code == 2 and "CNNLAB_OUTPUTS=" in result.stderr and "holds '${'" in result.stderr, result.output
    assert not (tmp_path / "x${y}").exists()


def test_a_command_that_keeps_no_record_runs_with_a_temporary_folder_named_with_a_comma(
        cli, outputs, tmp_path, monkeypatch) -> None:
    """`TMPDIR="/tmp/t mp,x" cnnlab inspect` stopped: its scratch run folder, passed to Hydra as hydra.run.dir, read
    as a sweep ("a comma separates the values of a sweep")."""
    import tempfile

    scratch = tmp_path / "t mp,x"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = cli("inspect", "model=lenet5", "dataset.image_size=32")
    assert result.code == 0 and "total" in result.stdout, result.output
    interpolated = tmp_path / "t${x}"  # probe 106: Hydra's "Interpolation key 'x' not found", TMPDIR unnamed
    interpolated.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(interpolated))
    refused = cli("inspect", "model=lenet5", "dataset.image_size=32")
    assert refused.code == 2 and "holds `${`" in refused.stderr and "set TMPDIR" in refused.stderr, refused.output


def test_an_interpolation_that_does_not_resolve_is_one_line_and_leaves_no_folder(cli, outputs: Path,
                                                                                 tmp_path: Path) -> None:
    """Probe 130: `trainer.epochs=${nosuch}`, `${oc.env:UNSET}` or a --config-dir file's `${nosuch.key}` printed
    Hydra's "Error executing job …" and OmegaConf's bare "Interpolation key 'nosuch' not found" — no setting, no
    file, no fix — and left a half-written folder (.hydra/, an empty run.log) or a failed run."""
    mine = tmp_path / "myconf" / "dataset"
    mine.mkdir(parents=True)
    (mine / "missing.yaml").write_text("defaults: [synthetic, _self_]\nval_fraction: ${nosuch.key}\n")
    cases = [(["trainer.epochs=${nosuch}"], "trainer.epochs=${nosuch}: its interpolation does not resolve "
                                            "(Interpolation key 'nosuch' not found)"),
             (["trainer.epochs=${oc.env:CNNLAB_TEST_UNSET}"], "Environment variable 'CNNLAB_TEST_UNSET' not found"),
             (["--config-dir", str(tmp_path / "myconf"), "dataset=missing"],
              "dataset.val_fraction (from dataset=missing): its interpolation does not resolve")]
    for extra, message in cases:
        result = cli("pretrain", *[o for o in TINY if not o.startswith("dataset=")], *extra)
        [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert result.code == 2 and message in line and "${oc.env:NAME,default}" in line, result.output
        assert "Error executing job" not in result.output and not outputs.exists(), result.output


def test_a_pipeline_recipe_given_to_another_command_is_refused(cli, outputs: Path) -> None:
    """Probe 130: `cnnlab pretrain experiment=quickstart` composed the quickstart's plan and trained the default
    pretrain, exit 0, where typing one key of that plan (`pipeline.name=foo`) is refused."""
    result = cli("pretrain", *TINY, "experiment=quickstart")
    assert result.code == 2 and not outputs.exists(), result.output
    assert "experiment=quickstart is a `cnnlab pipeline` recipe" in result.stderr
    assert "run `cnnlab pipeline experiment=quickstart`" in result.stderr
    listed = cli("pretrain", *TINY, "experiment=[quickstart]")  # probe 133: a list names no choice; it got past
    assert listed.code == 2 and "experiment=[quickstart] is a `cnnlab pipeline` recipe" in listed.stderr


def test_an_empty_pipeline_section_is_refused_as_a_recipe_not_as_a_misspelling(cli, outputs: Path,
                                                                                tmp_path: Path) -> None:
    """Probe 137: an experiment holding `pipeline: null` was refused with "pipeline is not a setting cnnlab reads —
    did you mean pipeline?": the fix named the key it refused."""
    mine = tmp_path / "myconf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "pn.yaml").write_text("# @package _global_\npipeline: null\n")
    result = cli("pretrain", "--config-dir", str(tmp_path / "myconf"), *TINY, "experiment=pn")
    assert result.code == 2 and "experiment=pn is a `cnnlab pipeline` recipe" in result.stderr, result.output
    assert "did you mean pipeline?" not in result.stderr


def test_hydra_job_chdir_is_refused_with_why(cli, outputs: Path) -> None:
    """Probe 130: with `hydra.job.chdir=true` a relative dataset.root "does not exist" and `latest:pretrain`
    "matches no run" — neither naming chdir, the cause."""
    # probe 133: set another way (`hydra.job={chdir:true}`, an experiment file) it got past a check of the typed text
    for spelling in ("hydra.job.chdir=true", "hydra.job.chdir=True", "hydra.job={chdir:true}"):
        result = cli("pretrain", *TINY, spelling)
        assert result.code == 2 and not outputs.exists(), result.output
        assert "hydra.job.chdir=True: cnnlab reads relative paths" in result.stderr, result.output
        assert "drop it (or set hydra.job.chdir=false)" in result.stderr and "Warning" not in result.stderr
    swept = cli("pretrain", "-m", *TINY, "seed=1,2", "hydra.job.chdir=true")
    assert swept.code == 2 and "cnnlab reads relative paths" in swept.stderr and not outputs.exists(), swept.output
    assert cli("pretrain", *TINY, "hydra.job.chdir=false").code == 0  # Hydra's default, said


def test_a_sigterm_while_hydra_starts_the_run_leaves_no_folder(tmp_path: Path) -> None:
    """Probe 143: a pipeline stopped (SIGTERM to its process group) just as a stage started left that stage's folder
    holding only .hydra/ and an empty run.log: no run.json, in no listing. The signal arrives here after Hydra made
    the folder and before the run's own handling begins."""
    import signal
    import subprocess

    script = ("import os, signal, sys\n"
              "import cnnlab.app as app\n"
              "def stop(*a, **k): os.kill(os.getpid(), signal.SIGTERM)\n"
              "app.apply_job_threads = stop\n"
              "from cnnlab.cli import run\n"
              "sys.argv = ['cnnlab', 'pretrain', *sys.argv[1:]]\n"
              "run()\n")
    result = subprocess.run([sys.executable, "-c", script, *TINY], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CNNLAB_OUTPUTS": str(tmp_path / "outputs")})
    assert result.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()], list((tmp_path / "outputs").rglob("*"))


def test_an_outputs_folder_that_is_a_dangling_link_is_named_with_a_fix_that_works(tmp_path: Path) -> None:
    """Probe 235: `paths.outputs=o2` with o2 -> /nonexistent was mkdir's FileExistsError 999 times, then "cannot
    create a run folder under o2/pretrain/<date>" with no reason and no fix."""
    from cnnlab.app import new_run_dir
    from cnnlab.errors import CnnlabError

    (tmp_path / "o2").symlink_to("nothere")
    with pytest.raises(CnnlabError, match=r"o2 is a link to nothere, which does not exist") as info:
        new_run_dir(str(tmp_path / "o2" / "x"), "pretrain")
    assert info.value.fix.startswith(f"create {tmp_path / 'nothere'}, point the link")
    (tmp_path / "nothere").mkdir()  # the fix, followed
    made = Path(new_run_dir(str(tmp_path / "o2" / "x"), "pretrain"))
    assert made.is_dir() and made.resolve().is_relative_to(tmp_path / "nothere" / "x" / "pretrain")
    # probe 237: a chain of links was told to create its first link's target, itself a link; a loop, its other end
    (tmp_path / "out1").symlink_to("nowhere")
    (tmp_path / "out2").symlink_to("out1")
    with pytest.raises(CnnlabError, match="out2 is a link to out1, which does not exist") as info:
        new_run_dir(str(tmp_path / "out2"), "pretrain")
    assert info.value.fix.startswith(f"create {tmp_path / 'nowhere'}, point the link")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    with pytest.raises(CnnlabError, match="loop1 is a link in a loop") as info:
        new_run_dir(str(tmp_path / "loop1"), "pretrain")
    assert info.value.fix.startswith(f"point {tmp_path / 'loop1'} at a folder that exists")
