"""The command line as a user meets it: help, version, overrides, Hydra flags, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import TINY, bash_words, only_run, read_run, run_dirs, run_subprocess


def _output_without_torch(*args: str) -> str:
    """`cnnlab ARGS`'s output in a fresh interpreter, asserting that torch, torchvision and onnxruntime were never
    imported (what a user waits for on paths that need none of them)."""
    code = ("import sys; from typer.testing import CliRunner; from cnnlab.cli import app; "
            f"r = CliRunner().invoke(app, {list(args)!r}); print(r.stdout); "
            "assert r.exit_code == 0, r.exit_code; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'torchvision') if m in sys.modules]; "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_lists_commands_and_does_not_import_torch() -> None:
    stdout = _output_without_torch("finetune", "--help")
    assert "finetune.mode" in stdout and "resnet18*" in stdout and "imagefolder" in stdout
    assert "mobilenet_v3_small" in stdout


def test_list_datasets_does_not_import_torch() -> None:
    """It imported torchvision (through cnnlab.data's __init__) to look for a system copy: 6.8 s against 0.5 s for
    `--help` on a 2-core machine. The file tables live in the torch-free cnnlab.data.archives."""
    stdout = _output_without_torch("list", "datasets")
    assert "fashion_mnist" in stdout and "imagefolder" in stdout


def test_a_ctrl_c_while_the_package_reads_its_version_is_an_interrupt_not_a_name_error() -> None:
    """Probe 144: Ctrl-C in the first 0.3 s hit the import inside cnnlab/__init__.py's try; its except clause then
    named what was never imported: a NameError chained to the KeyboardInterrupt."""
    code = ("import sys, types\n"
            "class Stopped(types.ModuleType):\n"
            "    def __getattr__(self, name): raise KeyboardInterrupt\n"
            "sys.modules['importlib.metadata'] = Stopped('importlib.metadata')\n"
            "import cnnlab\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and result.stderr.rstrip().endswith("KeyboardInterrupt"), result.stderr
    assert "NameError" not in result.stderr


def test_top_level_help_and_version(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("pretrain", "finetune", "list"):
        assert command in result.stdout
    version = cli("--version")
    assert version.code == 0 and version.stdout.startswith("cnnlab ")


@pytest.mark.parametrize("command", ["pretrain", "finetune", "prune", "quantize", "search", "distill", "export",
                                     "bench", "evaluate", "predict", "inspect", "pipeline", "report", "list"])
def test_every_commands_help_text_flows_as_paragraphs(cli, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 154: `cnnlab report --help` kept its docstring's line breaks ("with the latency its bench runs" /
    "measured; …"), mid-sentence, at any width: a line of the description shorter than half the width is a
    paragraph's last."""
    monkeypatch.setenv("COLUMNS", "100")
    result = cli(command, "--help")
    assert result.code == 0, result.output
    described = result.stdout.split("╭", 1)[0].splitlines()
    text = [line.strip() for line in described if not line.strip().startswith("Usage:")]
    for line, following in zip(text, text[1:]):
        assert not (line and following and len(line) < 50), f"{line!r} then {following!r}"


@pytest.mark.parametrize("args, expected", [
    (["model=nosuchnet"], "unknown model 'nosuchnet' — choose one of: alexnet"),
    # probe 181: a misspelt name was given the whole list, none picked out
    (["model=resnet-18"], "unknown model 'resnet-18' (did you mean model=resnet18?) — choose one of: alexnet"),
    (["model=VGG11"], "unknown model 'VGG11' (did you mean model=vgg11?)"),
    (["optim=adamm"], "unknown optim 'adamm' (did you mean optim=adamw?)"),
    (["dataset=imagenet21k"], "unknown dataset 'imagenet21k'"),
    (["optim=null"], "optim=null leaves the command with no optim — choose one of: adamw"),  # was a traceback
    (["trainer.epochs"], "malformed override 'trainer.epochs'"),
    (["trainer.epoch=3"], "unknown setting 'trainer.epoch'"),
    (["optim.lr=[0.1"], "malformed override"),
    # probe 142: which of several overrides Hydra could not parse
    (["seed=3", "hydra.run.dir=out/distill.alpha=0.3", "trainer.batch_size=8"],
     "malformed override hydra.run.dir=out/distill.alpha=0.3: mismatched input"),
    # probe 197: a flag's value (--config-dir DIR) was named as the malformed override
    (["--config-dir", str(Path(__file__).parent / "data"), "optim.lr=[0.1"], "malformed override optim.lr=[0.1:"),
    (["finetune.mode=sideways", "model=lenet5"], "finetune.mode=sideways is not a mode"),
    (["dataset=imagefolder", "model=lenet5"], "dataset.root"),
    (["model.weights=outputs/nothing/here"], "model.weights=outputs/nothing/here: no such file or folder"),
    (["model.weights=latest:pretrain"], "matches no completed `cnnlab pretrain` run"),
    # A group only another command selects (Hydra: "Could not override ... No match in the defaults list").
    (["method=simclr"], "method=simclr is a setting of `cnnlab pretrain`; `cnnlab finetune` has no method"),
    # probe 157: its fix offered source=, which finetune refuses
    (["method=simclr"], "first and start from its run (model.weights=latest:pretrain)"),
    (["teacher=resnet18"], "run `cnnlab distill teacher=resnet18` first"),
    (["-m", "seed=0,1", "--cfg", "hydra"], "--cfg shows one run's configuration and cannot be combined with -m"),
    # finetune trained from random weights, exit 0, when given another command's source= (a silent wrong start)
    (["source=outputs/pretrain/x", "model=lenet5"], "does not read source= (it was given outputs/pretrain/x) — use "
                                                    "model.weights=outputs/pretrain/x"),
    # a deleted setting: "unknown setting 'weights'" after Hydra's own "Error executing job" line; ~optim.lr trained
    # at lr 0, exit 0
    (["~model.weights", *TINY], "~model.weights deletes a setting of `cnnlab finetune`; a deleted setting would fall "
                                "back silently to a built-in value — drop ~model.weights"),
    (["~model", *TINY[:5]], "~model deletes a setting of `cnnlab finetune`"),
    (["~optim.lr", *TINY], "~optim.lr deletes a setting of `cnnlab finetune`"),
    (["~optim._target_", *TINY], "~optim._target_ deletes a setting of `cnnlab finetune`"),
    (["~model.stem"], "~model.stem: there is no model.stem value to delete (the setting is absent or already null) — "
                      "drop ~model.stem"),  # Hydra's "Could not delete from config", which named no fix
])
def test_bad_input_is_one_line_without_traceback(cli, args: list[str], expected: str) -> None:
    result = cli("finetune", *args)
    assert result.code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]  # log lines may come before
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.output and "Error executing job" not in result.output


def test_the_optimizer_s_own_fix_deletes_an_argument_and_works_when_followed(cli) -> None:
    """Deleting settings is refused, except an argument of the optimizer class: another torch.optim class drops
    SGD's nesterov with ~optim.nesterov, as build_optimizer's error says."""
    rmsprop = [*TINY, "optim._target_=torch.optim.RMSprop"]
    refused = cli("pretrain", *rmsprop)
    assert refused.code == 2 and "add ~optim.nesterov to the command" in refused.stderr, refused.output
    assert cli("pretrain", *rmsprop, "~optim.nesterov").code == 0
    # probe 130: an argument the user added (`+optim.amsgrad=true`) was to be deleted by a second override after it
    added = cli("pretrain", *TINY, "+optim.amsgrad=true")
    assert added.code == 2 and "SGD takes no amsgrad argument — drop +optim.amsgrad=true from the command" in \
        added.stderr, added.output


def test_a_model_setting_of_a_command_without_one_is_refused_not_ignored(cli) -> None:
    """`cnnlab pipeline model=resnet50` ran the experiment's own models, exit 0."""
    result = cli("pipeline", "model=resnet50")
    assert result.code == 2 and "`cnnlab pipeline` has no model= setting: model=resnet50 would be ignored" \
        in result.stderr, result.output
    assert "conf/experiment/<name>.yaml" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["evaluate", "export", "predict", "quantize", "prune", "bench"])
@pytest.mark.parametrize("setting", ["model.stem=imagenet", "model=vgg11"])
def test_a_model_setting_that_the_source_overrides_is_refused_not_ignored(cli, command: str, setting: str) -> None:
    """`cnnlab evaluate source=RUN model.stem=imagenet` scored the run's own network, exit 0."""
    result = cli(command, "source=outputs/pretrain/x", setting)
    assert result.code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and f"{setting} would be ignored" in lines[0] and f"drop {setting}" in lines[0], lines
    assert "Traceback" not in result.output


def test_a_state_dict_given_as_source_beside_a_model_is_refused_as_a_state_dict(cli, outputs: Path) -> None:
    """Probe 172: `evaluate source=sd.pth model=lenet5` was told the file "brings its own architecture" — drop model=
    — and, that followed, that a plain state dict brings none."""
    from cnnlab.models import create_model

    plain = outputs.parent / "sd.pth"
    torch.save(create_model("lenet5", 4, 16).state_dict(), plain)
    result = cli("evaluate", f"source={plain}", "model=lenet5")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "is a plain state dict, not a cnnlab model checkpoint" in said, result.output
    assert "brings its own architecture" not in said


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU-only machine's refusal")
def test_cuda_without_gpu_is_a_clear_error_that_leaves_no_run(cli, outputs: Path) -> None:
    """Refused before any work: no `failed` run in `cnnlab list runs` (probe 93; docs/runs.md)."""
    result = cli("pretrain", *TINY, "--device", "cuda")
    assert result.code == 2
    assert "no CUDA GPU is visible" in result.stderr and "device=cpu" in result.stderr
    assert not run_dirs(outputs, "pretrain")


def test_debug_shows_the_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_DEBUG", "0")  # --debug sets it to 1; monkeypatch restores the original after
    result = cli("finetune", "--debug", *TINY, "finetune.mode=sideways")
    assert result.code == 2
    assert "Traceback" in result.stderr and "finetune.mode=sideways" in result.stderr


def test_a_pipeline_s_config_shown_leaves_no_folder(cli, outputs: Path) -> None:
    """`cnnlab pipeline --cfg job` left an empty outputs/pipeline/<date>/<time>/ (its run folder, resolved to show)."""
    result = cli("pipeline", "experiment=quickstart", "--cfg", "job")
    assert result.code == 0 and "name: quickstart" in result.stdout, result.output
    assert not outputs.exists() or not any(p.is_dir() for p in outputs.rglob("*")), list(outputs.rglob("*"))


def test_cfg_job_prints_config_without_running(cli, outputs: Path) -> None:
    result = cli("pretrain", "--cfg", "job", "model=lenet5", "trainer.epochs=7")
    assert result.code == 0, result.output
    assert "epochs: 7" in result.stdout and "name: lenet5" in result.stdout
    assert not run_dirs(outputs, "pretrain")


@pytest.mark.parametrize("args, shows", [(["--info"], "Installed Hydra Plugins"),
                                         (["--info", "model=lenet5"], "Installed Hydra Plugins"),
                                         (["model=lenet5", "-i", "searchpath"], "Config search path"),
                                         # probe 130: "Could not override 'command'. No match in the defaults list."
                                         (["--hydra-help"], "== Flags =="),
                                         (["--hydra-help", "model=lenet5"], "--hydra-help : Hydra's help")])
def test_info_with_or_without_its_value(cli, outputs: Path, args: list[str], shows: str) -> None:
    """Probe 99: a bare `--info` took the `command=pretrain` cnnlab puts after the flags as its value ("invalid
    choice: 'command=pretrain'", an argument the user never typed)."""
    result = cli("pretrain", *args)
    assert result.code == 0 and shows in result.stdout, result.output
    assert not run_dirs(outputs, "pretrain")
    deleted = cli("pretrain", "--info", "~trainer.grad_clip")  # probe 102: a deletion after --info is no --info value
    assert "--info takes one of" not in deleted.stderr, deleted.output
    wrong = cli("pretrain", "--info", "nosuch")  # probe 100: the whole --info, then "malformed override 'nosuch'"
    assert wrong.code == 2 and "--info takes one of all, config" in wrong.stderr and wrong.stdout == "", wrong.output


@pytest.mark.parametrize("args, says", [(["--config-dir"], "--config-dir takes a value — e.g. --config-dir myconf"),
                                        (["--cfg"], "--cfg takes a value"), (["-cn", "-m"], "-cn takes a value"),
                                        (["--package"], "--package takes a value"),
                                        (["--cfg", "nosuch"], "--cfg takes one of job, hydra, all"),
                                        # probe 172: the `--flag=value` and `-f=value` forms, and flags that need
                                        # another (Hydra's ValueError, "a bug in cnnlab")
                                        (["--cfg=nosuch"], "--cfg takes one of job, hydra, all"),
                                        (["--config-dir="], "--config-dir takes a value"),
                                        (["-cd=nosuch_folder"], "--config-dir nosuch_folder is not a folder"),
                                        (["--resolve"], "`cnnlab pretrain --cfg job --resolve`"),
                                        (["-sc"], "`cnnlab pretrain --shell-completion install=bash`")])
def test_a_value_flag_without_its_value(cli, outputs: Path, args: list[str], says: str) -> None:
    """Probe 167: a value flag given last took the `command=pretrain` cnnlab puts after the flags as its value
    ("Additional config directory '.../command=pretrain' not found"; `--cfg` printed argparse's usage page)."""
    result = cli("pretrain", "model=lenet5", *args)
    assert result.code == 2 and says in " ".join(result.stderr.split()) and "command=" not in result.output, \
        result.output
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert not run_dirs(outputs, "pretrain")
    if args == ["-sc"]:  # the fix, followed
        assert cli("pretrain", "-sc", "install=bash").code == 0


def test_hydras_short_flag_with_its_value_in_one_word_is_read_as_hydra_reads_it(cli, outputs: Path) -> None:
    """Probe 172: Click read `-p=model` as short options, the `m` of "model" as -m: "--cfg ... cannot be combined with
    -m"; `-c=job` likewise."""
    result = cli("pretrain", "--cfg", "job", "-p=model", "model=lenet5")
    assert result.code == 0 and "name: lenet5" in result.stdout, result.output
    assert cli("pretrain", "-c=job", "model=lenet5").code == 0


@pytest.mark.parametrize("multirun", [[], ["-m"]])
def test_an_interval_sweep_names_what_samples_a_range(cli, outputs: Path, multirun: list[str]) -> None:
    """Probe 99: `optim.lr=interval(1e-4,1e-2)` was told to add -m, and with -m Hydra's basic sweeper refused it
    ("does not support sweep type : INTERVAL_SWEEP") with no fix."""
    result = cli("pretrain", *multirun, "model=lenet5", "optim.lr=interval(1e-4,1e-2)")
    assert result.code == 2 and result.stderr.count("error:") == 1, result.output
    assert "interval() is a range to sample from" in result.stderr and "cnnlab search space=hparams" in result.stderr
    grid = bash_words(result.stderr.split("for a grid of values: ", 1)[1])
    assert grid == ["cnnlab", "pretrain", "-m", "model=lenet5", "optim.lr=VALUE1,VALUE2,VALUE3"]


def test_multirun_sweeps_into_one_folder_per_job(cli, outputs: Path) -> None:
    result = cli("pretrain", "-m", *TINY, "optim.lr=0.01,0.1")
    assert result.code == 0, result.output
    dirs = run_dirs(outputs, "pretrain")
    assert len(dirs) == 2 and all(d.parent.name.endswith("-multirun") for d in dirs)
    records = [read_run(d) for d in dirs]
    assert all(r["status"] == "completed" for r in records)
    assert sorted(o for r in records for o in r["overrides"] if o.startswith("optim.lr")) == \
        ["optim.lr=0.01", "optim.lr=0.1"]


def test_a_failed_sweep_job_is_one_cnnlab_line_without_hydras_own_or_library_warnings(tmp_path: Path) -> None:
    """Hydra wrote "Error executing job with overrides: [...]" above cnnlab's line, which says the same and more. And
    a fresh `pip install -e ".[test]"` resolved Hydra's release candidate (through the launcher plugins'
    `>=1.1.0.dev7`), and every command began with ~20 lines of its deprecation warnings: job #0 trains as a plain
    run does (one process for both: each imports torch)."""
    import re

    # a batch larger than the training set: refused by job #1 itself (a value its rule refuses is refused before
    # any job: the next test)
    result = run_subprocess("pretrain", "-m", *TINY, "trainer.batch_size=16,100000,200000",
                            env={"CNNLAB_OUTPUTS": str(tmp_path / "outputs")}, cwd=tmp_path)
    assert result.code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    # probe 229: the last line named the first failed job alone
    assert "(job #1, log: " in last and "; 2 of the sweep's 3 jobs failed: #1 and #2, each run.log beside" in last, last
    assert "Error executing job" not in result.output and "Traceback" not in result.output
    assert "cnnlab pretrain completed" in " ".join(result.output.split())  # job #0
    assert not re.findall(r"\w*Warning: .*", result.stdout + result.stderr)


def test_a_bad_value_in_a_sweep_is_refused_before_the_first_job(cli, outputs: Path) -> None:
    """Probe 74: `-m optim.lr=0.01,abc` trained job #0 before job #1 refused `abc`."""
    for sweep in ("optim.lr=0.01,abc", "trainer.epochs=range(-1,2)", "optim.lr=choice(0.1,-5)",
                  'optim.lr="0.1,abc"'):  # quoted: one value, set for every job (probe 75)
        result = cli("pretrain", "-m", *TINY, sweep)
        assert result.code == 2 and "is not allowed" in result.stderr, (sweep, result.output)
        assert "job #" not in result.output and "Traceback" not in result.output
    deleted = cli("pretrain", "-m", *TINY, "~optim.lr", "seed=0,1")  # probe 77: refused in each job, folders left
    assert deleted.code == 2 and "~optim.lr deletes a setting" in deleted.stderr and "job #" not in deleted.output
    result = cli("pretrain", "-m", *TINY, "seed=range(0,-2)")  # probe 75: no job, exit 0, not a word
    assert result.code == 2 and "seed=range(0,-2): the sweep holds no value" in result.stderr
    assert not (outputs / "pretrain").exists()  # no job ran


def test_a_glob_that_matches_no_option_and_an_unknown_added_key_are_refused_before_the_first_job(
        cli, outputs: Path, tmp_path: Path) -> None:
    """`-m model=glob(xyz*)` launched 0 jobs and exited 0 without a word; `-m +foo=1,2` ran every job to refuse it."""
    result = cli("inspect", "-m", "model=glob(xyz*)")
    assert result.code == 2 and "model=glob(xyz*) matches none of model's options" in result.stderr
    plain = cli("inspect", "-m", "trainer.epochs=glob(*)")  # probe 84: a setting, not a group: 0 jobs, exit 0
    assert plain.code == 2 and "glob() picks among a config group's options" in plain.stderr
    assert "lenet5" in result.stderr and "Traceback" not in result.output
    added = cli("inspect", "-m", "model=lenet5", "+foo=1,2")
    assert added.code == 2 and "foo is not a setting cnnlab reads" in added.stderr and "job #" not in added.output
    assert not (outputs / "inspect").exists()  # no job ran
    mine = tmp_path / "myconf" / "model"  # a --config-dir option the glob matches is a job
    mine.mkdir(parents=True)
    (mine / "xyz_net.yaml").write_text("defaults:\n  - lenet5\n  - _self_\n")
    result = cli("inspect", "--config-dir", str(tmp_path / "myconf"), "-m", "model=glob(xyz*)")
    assert result.code == 0 and "matches none" not in result.output


def test_a_sweep_over_an_option_and_its_alias_says_it_trains_one_network_twice(cli, capsys) -> None:
    """`-m model=glob(*)` held mobilenet and mobilenet_v2 (one file says the other's settings): the same network
    trained twice, as two rows of the report, without a word."""
    result = cli("inspect", "-m", "model=mobilenet,mobilenet_v2", "dataset.image_size=32")
    assert result.code == 0
    assert "model=mobilenet is model=mobilenet_v2 under another name" in result.stderr
    assert "drop mobilenet from the list" in result.stderr
    globbed = cli("inspect", "-m", "model=glob(mobilenet*,exclude=mobilenet_v3*)", "dataset.image_size=32")
    fix = "model='glob(mobilenet*,exclude=[mobilenet_v3*,mobilenet])'"  # the typed patterns kept (probe 92)
    assert globbed.code == 0 and fix in globbed.stderr
    followed = cli("inspect", "-m", fix.split("=", 1)[1].strip("'").join(["model=", ""]), "dataset.image_size=32")
    assert followed.code == 0 and "under another name" not in followed.stderr
    assert "mobilenet_v2" in followed.output and "mobilenet_v3" not in followed.output
    # a student or teacher is a model entry too (its file takes the model's in)
    from cnnlab.launch_checks import check_sweep_values

    check_sweep_values(["student=mobilenet,mobilenet_v2"], "distill")
    assert "student=mobilenet is student=mobilenet_v2 under another name" in capsys.readouterr().err
    assert "under another name" not in cli("inspect", "-m", "model=lenet5,mobilenet", "dataset.image_size=32").stderr


def test_a_sweep_of_outputs_folders_or_of_folders_written_with_a_tilde_is_refused(cli, outputs: Path) -> None:
    """`-m paths.outputs=~/x,~/y` trained both jobs into ./outputs (the sweep's folder is chosen before any job) while
    each recorded another outputs folder; `-m paths.data=~/d,/tmp/d` took a folder named '~' that a single run
    refuses. Neither was refused: `~` is no token of Hydra's grammar, so the sweep's values went unread."""
    swept = cli("pretrain", "-m", *TINY, "paths.outputs=/tmp/a,/tmp/b")
    assert swept.code == 2 and "a sweep's runs all go into one folder" in swept.stderr, swept.output
    assert "CNNLAB_OUTPUTS=DIR" in swept.stderr
    for typed in ("paths.outputs=~/x,~/y", "paths.data=~/d,/tmp/d"):
        refused = cli("pretrain", "-m", *TINY, typed)
        assert refused.code == 2 and "Traceback" not in refused.output, refused.output
    assert "Hydra does not expand ~, so ~/d is a folder named '~'" in refused.stderr
    globbed = cli("pretrain", "-m", *TINY, "paths.outputs=glob(*)")  # probe 106: told to list values, then refused
    assert globbed.code == 2 and "one sweep per outputs folder" in globbed.stderr, globbed.output
    assert "$HOME/d" in refused.stderr and not outputs.exists()


def test_a_sweep_whose_jobs_would_start_from_each_others_runs_is_refused(cli, outputs: Path) -> None:
    """Probe 92: `finetune -m model.weights=latest seed=0,1` fine-tuned seed 1 from seed 0's model (the newest run
    when job 1 started); the report showed them as two seeds."""
    for typed in ("model.weights=latest", "model.weights=latest:finetune", "model.weights='latest'",
                  "model.weights=choice(none,latest)"):
        result = cli("finetune", "-m", typed, "seed=0,1")
        assert result.code == 2 and "its jobs would start from each other's models" in result.stderr, result.output
    assert not (outputs / "finetune").exists()
    other = cli("prune", "-m", "source=latest:pretrain", "seed=0,1")  # pretrain runs: no job of this sweep makes one
    assert "each other's models" not in other.output
    alone = cli("finetune", "-m", "model.weights=latest", "seed=0")  # one job: nothing to clash with (probe 95)
    assert "each other's models" not in alone.output


def test_hydras_failed_job_line_is_kept_above_a_traceback() -> None:
    """A bug's traceback keeps the line naming the job's overrides; other output is never held back."""
    import io

    from cnnlab.console import HeldSweepFailureLine

    stream = io.StringIO()
    held = HeldSweepFailureLine(stream)
    held.write("progress\n")
    held.write("Error executing job with overrides: ['seed=1']\n")
    assert stream.getvalue() == "progress\n"
    held.release()
    held.write("Traceback (most recent call last):\n")
    assert stream.getvalue().splitlines() == ["progress", "Error executing job with overrides: ['seed=1']",
                                              "Traceback (most recent call last):"]
    held.write("Error executing job with overrides: ['seed=2']\n")
    held.drop()
    held.release()
    assert "seed=2" not in stream.getvalue()


def test_user_config_dir_adds_a_dataset(cli, outputs: Path, tmp_path: Path) -> None:
    user = tmp_path / "myconf" / "dataset"
    user.mkdir(parents=True)
    (user / "tinyshapes.yaml").write_text(
        "defaults:\n  - synthetic\n  - _self_\nnum_classes: 3\nimage_size: 16\ntrain_size: 48\nval_size: 24\n")
    result = cli("pretrain", "--config-dir", str(tmp_path / "myconf"), "dataset=tinyshapes", "model=lenet5",
                 "trainer.epochs=1", "trainer.batch_size=16")
    assert result.code == 0, result.output
    record = only_run(outputs, "pretrain")
    assert record["dataset"]["num_classes"] == 3 and record["dataset"]["train_size"] == 48


def test_a_config_dir_option_that_is_no_regular_file_is_named_not_missing(cli, outputs: Path, tmp_path: Path) -> None:
    """A named pipe (or a folder) at DIR/dataset/birds.yaml: Hydra passes it over, and the user read "Could not find
    'dataset/birds'" of a file that was there."""
    import os

    user = tmp_path / "myconf" / "dataset"
    user.mkdir(parents=True)
    os.mkfifo(user / "birds.yaml")
    (user / "flowers2.yaml").mkdir()
    (user / "cars.yaml").symlink_to(tmp_path / "gone.yaml")
    os.mkfifo(user / "digits.yaml")  # a name cnnlab ships: it was passed over in silence (probe 123)
    for name, what in (("birds", "not a regular file (a named pipe"), ("flowers2", "is a folder"),
                       ("cars", "is a broken link"), ("digits", "not a regular file")):
        result = cli("pretrain", "--config-dir", str(tmp_path / "myconf"), f"dataset={name}", "model=lenet5")
        assert result.code == 2 and what in result.stderr and str(user / f"{name}.yaml") in result.stderr
        assert "Traceback" not in result.output and "Could not find" not in result.output
    assert not run_dirs(outputs, "pretrain")


def test_list_datasets_and_runs(cli, outputs: Path) -> None:
    assert "synthetic" in cli("list", "datasets").stdout
    assert "no runs" in cli("list", "runs").stdout
    assert cli("pretrain", *TINY).code == 0
    listing = cli("list", "runs")
    assert "pretrain" in listing.stdout and "completed" in listing.stdout
    bad = cli("list", "everything")
    assert bad.code == 2 and "choose models, datasets or runs" in bad.stderr


def test_list_datasets_says_where_a_system_package_put_a_set(cli, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Fashion-MNIST read offline from Debian's package was listed as "downloads once"."""
    from cnnlab.data import archives

    system = tmp_path / "fashion-mnist"
    system.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (system / f"{name}.gz").write_bytes(b"")
    monkeypatch.setitem(archives.SYSTEM_COPIES, "Fashion-MNIST", system)
    assert archives.system_copy_of("fashion_mnist") == system
    assert archives.system_copy_of("mnist") is None and archives.system_copy_of("digits") is None
    rows = {line.split("│")[1].strip(): line for line in cli("list", "datasets").stdout.splitlines()
            if line.count("│") > 2 and line.split("│")[1].strip()}  # a row's first line (the cells wrap)
    assert "here, in" in rows["fashion_mnist"] and "downloads once" in rows["mnist"], rows



def test_list_datasets_describes_each_in_a_whole_sentence(cli) -> None:
    """Probe 165: imagefolder's description stopped mid-sentence ("…/val/<class>/*.jpg,"): its YAML comment's first
    line; the one-level layout on the next line was lost."""
    text = " ".join(cell.strip() for line in cli("list", "datasets").stdout.splitlines() if line.count("│") > 2
                    for cell in line.split("│")[2:3])
    assert "DIR/val/<class>/*.jpg, or DIR/<class>/*.jpg, split by val_fraction." in text, text


def test_list_models_shows_the_zoo(cli) -> None:
    result = cli("list", "models")
    assert result.code == 0
    for name in ("lenet5", "alexnet", "vgg16", "googlenet", "resnet50", "mobilenet_v3_small", "efficientnet_b0"):
        assert name in result.stdout
    stem_line = next(line for line in result.stdout.splitlines() if "model.stem=cifar" in line)
    assert "resnet18, resnet34, resnet50, mobilenet_v2;" in stem_line and "vgg" not in stem_line


def test_ctrl_c_during_quantize_names_a_command_that_works(cli, outputs: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """quantize cannot resume: its interrupt hint is the same command again, and following it works."""
    from cnnlab.pipelines import quantize
    from helpers import hinted_command

    assert cli("pretrain", *TINY).code == 0
    fast = ["source=latest:pretrain", "quantize.format=qdq_u8s8", "quantize.max_acc_drop=100",
            "quantize.calib_batches=1", "quantize.bench_rounds=1", "quantize.bench_warmup=1",
            "quantize.bench_min_iters=2", "quantize.bench_min_seconds=0", "quantize.bench_threads=1"]
    measure = quantize.search_formats  # where the candidates are timed: a long step to stop in

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "search_formats", interrupted)
    stopped = cli("quantize", *fast)
    assert stopped.code == 130 and "resume=" not in stopped.stderr
    assert "`cnnlab quantize` does not resume" in stopped.stderr
    assert only_run(outputs, "quantize")["status"] == "interrupted"
    monkeypatch.setattr(quantize, "search_formats", measure)
    again = cli(*hinted_command(stopped.stderr))  # the hint, followed
    assert again.code == 0, again.output
    assert read_run(run_dirs(outputs, "quantize")[-1])["status"] == "completed"


def test_every_interrupt_hint_names_a_command_of_its_kind() -> None:
    """The hints the command line can print: resume only where the command resumes and a checkpoint exists."""
    from cnnlab.commands import COMMANDS, interrupt_hint
    from cnnlab.settings import resumed_by
    from helpers import hinted_command

    for name, info in COMMANDS.items():
        for kept in (False, True):
            hint = interrupt_hint(name, ["a=1"], checkpoint_kept=kept)
            command = hinted_command(hint)
            assert command == ([name, "resume=true"] if info.resumable and kept else [name, "a=1"]), hint
    # a resume= stopped before its first new epoch: the run it continues still holds its epochs (not "no epoch")
    for args, named in ((["resume=outputs/finetune/RUN"], "outputs/finetune/RUN"), (["resume=true"], "the latest run"),
                        (["resume=latest:finetune"], "the latest run")):
        hint = interrupt_hint("finetune", args, resumed=resumed_by("finetune", args))
        assert hinted_command(hint) == ["finetune", *args] and f"since resuming {named}, which is as it" in hint, hint
    assert resumed_by("finetune", ["resume=false"]) is None and resumed_by("finetune", ["seed=1"]) is None
    assert "no checkpoint had been written yet, so" in interrupt_hint("finetune", ["resume=false"])
    # what is kept is what resume= continues: a search keeps its study, not an epoch's checkpoint
    assert "study.db" in interrupt_hint("search", [], checkpoint_kept=True)
    assert "last checkpoint (last.pt)" in interrupt_hint("pretrain", [], checkpoint_kept=True)

    # a sweep's job: `cnnlab pretrain resume=true` would continue that one job outside its sweep
    for name in COMMANDS:
        sweep = interrupt_hint(name, ["-m", "seed=0,1"], checkpoint_kept=True, multirun=True)
        assert hinted_command(sweep) == [name, "-m", "seed=0,1"] and "skips the completed jobs" in sweep, sweep
    # probe 229: a sweep stopped before its job's first checkpoint said "continues the interrupted one from its
    # checkpoint", and none was there
    early = interrupt_hint("pretrain", ["-m", "seed=0,1"], checkpoint_kept=False, multirun=True)
    assert "or starts it again where it saved none" in early and "continues the interrupted one" not in early, early
    # probe 214: a rerun=true sweep typed again as told ran its completed jobs again; without rerun= it skips the
    # jobs completed before it, which rerun=true was typed to redo: both commands, each with what it does
    sweep = interrupt_hint("finetune", ["-m", "seed=0,1", "rerun=true"], checkpoint_kept=True, multirun=True)
    assert "`cnnlab finetune -m seed=0,1 rerun=true` runs every job again" in sweep, sweep
    assert "`cnnlab finetune -m seed=0,1` (no rerun=) skips every completed job, those completed before" in sweep, sweep


def test_the_start_again_hint_leaves_out_a_run_folder_that_holds_the_stopped_run(tmp_path: Path) -> None:
    """Probe 169: `hydra.run.dir=DIR` repeated in the hint of a stopped quantize, and followed, was refused: DIR holds
    the stopped run's run.json."""
    from cnnlab.commands import interrupt_hint
    from cnnlab.launch_checks import run_dir_in_use
    from helpers import hinted_command

    used, free = tmp_path / "q run", tmp_path / "free"
    used.mkdir()
    (used / "run.json").write_text("{}")
    for folder, kept in ((used, False), (free, True)):
        args = ["source=outputs/r18", f"hydra.run.dir='{folder}'"]
        hint = interrupt_hint("quantize", args, taken=run_dir_in_use(args))
        assert hinted_command(hint) == ["quantize", *(args if kept else args[:1])], hint
        assert (f"in a new run folder: {used} holds this run's record" in hint) != kept, hint


def test_facts_about_commands_come_from_the_one_table() -> None:
    """The pipeline's plan and the report ask the table which commands make models, write ONNX, resume."""
    from cnnlab.commands import commands_where
    from cnnlab.steps import plan
    from cnnlab.report import rows

    models = commands_where(produces_model=True)
    assert models == ("pretrain", "finetune", "distill", "search", "prune", "quantize")
    assert plan.MODEL_COMMANDS == rows.MODEL_COMMANDS == models
    assert plan.HAS_OWN_ONNX == commands_where(writes_onnx=True) == commands_where(produces_model=True,
                                                                                   writes_onnx=True)
    assert plan.RESUMABLE == ("pretrain", "finetune", "distill", "search")
    with pytest.raises(AttributeError):
        commands_where(no_such_fact=True)


def test_predict_paths_become_one_inputs_override(tmp_path: Path) -> None:
    from cnnlab.cli import positional_inputs

    odd = tmp_path / "a b's=1.jpg"
    odd.write_bytes(b"")
    args = ["source=latest", "--config-dir", "conf", "photo.jpg", str(odd), "predict.topk=3"]
    out = positional_inputs(args)
    assert out[:4] == ["source=latest", "--config-dir", "conf", "predict.topk=3"]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(out[-1])
    assert parsed.key_or_group == "predict.inputs" and parsed.value() == ["photo.jpg", str(odd)]
    assert positional_inputs(["source=latest"]) == ["source=latest"]
    # probe 111: a list of 30 files typed as one override is longer than a file name may be: ENAMETOOLONG, traceback
    many = "predict.inputs=[" + ",".join(f"img{i:04d}.png" for i in range(30)) + "]"
    assert positional_inputs(["source=latest", many]) == ["source=latest", many]
    # probe 80: `predict.inputs=[a.png]` beside a positional file: the later override replaced the typed list
    merged = positional_inputs(["source=latest", "predict.inputs=[a.png,b c.png]", "photo.jpg"])
    assert merged[0] == "source=latest" and len(merged) == 2
    assert OverridesParser.create().parse_override(merged[-1]).value() == ["a.png", "b c.png", "photo.jpg"]
    two = positional_inputs(["predict.inputs=[a.png]", "predict.inputs=[b.png]", "c.png"])
    assert OverridesParser.create().parse_override(two[-1]).value() == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("name", ["x${y}.png", "m\\n.png", "end\\", "it\\'s.png", "\\${a}.png", "$${b}",
                                  "a\\\\b.png", "c,d [e].png"])
def test_a_predict_path_reads_back_exactly_through_hydra_and_omegaconf(name: str) -> None:
    """`cnnlab predict x${y}.png` stopped with "Interpolation key 'y' not found" and `m\\n.png` was looked for as
    `m\\\\n.png`: the override must come back as the very path once Hydra parsed it and OmegaConf resolved it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from cnnlab.cli import positional_inputs

    override = positional_inputs([name])[-1]
    value = OverridesParser.create().parse_override(override).value()
    assert OmegaConf.to_container(OmegaConf.create({"inputs": value}), resolve=True)["inputs"] == [name]


def test_a_file_named_like_an_option_is_one_line_and_dashdash_predicts_it(cli, outputs: Path, tmp_path: Path) -> None:
    from PIL import Image

    assert cli("pretrain", *TINY).code == 0
    Image.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "-name.png")  # the working directory
    result = cli("predict", "source=latest:pretrain", "-name.png")  # was Hydra's usage page, and -m (multirun) on
    assert result.code == 2 and "Traceback" not in result.output and "usage:" not in result.output, result.output
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("error")] == [
        "error: no such option: -name.png — for a file whose name starts with '-', write ./-name.png or put it "
        "after -- (cnnlab predict source=RUN -- -name.png)"]
    assert not run_dirs(outputs, "predict")
    for typed in (["--", "-name.png"], ["./-name.png"], ["predict.topk=2", "--", "-name.png"]):  # the fix, followed
        result = cli("predict", "source=latest:pretrain", *typed)
        assert result.code == 0, result.output
        assert read_run(run_dirs(outputs, "predict")[-1])["metrics"] == {"images": 1, "unreadable": 0}
    result = cli("finetune", "--foo")
    assert result.code == 2 and result.stderr.strip() == (
        "error: no such option: --foo — settings are key=value, e.g. trainer.epochs=3 (see `cnnlab finetune --help`)")


def test_the_flags_cnnlab_lets_through_are_exactly_hydras() -> None:
    """cli's copy of Hydra's command-line flags (which take a value, which do not) must follow Hydra's own parser:
    a flag Hydra added would otherwise be refused as unknown, a removed one would reach Hydra's usage page."""
    from hydra._internal.utils import get_args_parser

    from cnnlab.cli import _HYDRA_FLAGS
    from cnnlab.hydra_args import HYDRA_VALUE_FLAGS

    actions = [a for a in get_args_parser()._actions if a.option_strings]
    assert _HYDRA_FLAGS == {flag for a in actions for flag in a.option_strings}
    assert HYDRA_VALUE_FLAGS == {flag for a in actions if a.nargs != 0 for flag in a.option_strings}


@pytest.mark.parametrize("name", ["1", "nan"])
def test_a_config_named_like_a_number_is_chosen_quoted(cli, outputs: Path, tmp_path: Path, name: str) -> None:
    """Hydra reads model=1 or space=nan as a number: it failed inside Hydra with a traceback blamed on cnnlab, after
    the unknown-name error had said to add that very file."""
    import shutil

    from cnnlab import conftree

    (tmp_path / "myconf" / "model").mkdir(parents=True)
    shutil.copy(conftree.CONF_DIR / "model" / "lenet5.yaml", tmp_path / "myconf" / "model" / f"{name}.yaml")
    conf = ["--config-dir", str(tmp_path / "myconf"), *[a for a in TINY if not a.startswith("model=")]]
    bare = cli("pretrain", *conf, f"model={name}")
    assert bare.code == 2 and "Traceback" not in bare.output
    assert f"\"model='{name}'\"" in bare.stderr  # the shell keeps the inner quotes only inside double quotes
    assert cli("pretrain", *conf, f"model='{name}'").code == 0  # what the shell hands over
    assert only_run(outputs, "pretrain")["status"] == "completed"
    sweep = cli("pretrain", *conf, "-m", f"model=lenet5,{name}")
    assert f"\"model=lenet5,'{name}'\"" in sweep.stderr  # a sweep keeps its other choices


def test_under_torchrun_a_rank_other_than_0_says_which_it_is(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rank printed the identical `error:` line, so each mistake read twice under torchrun."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = cli("pretrain", "model=nosuchnet")
    assert result.code == 2 and "error (rank 1 of 2): unknown model 'nosuchnet'" in result.stderr
    monkeypatch.setenv("RANK", "0")
    assert "error: unknown model 'nosuchnet'" in cli("pretrain", "model=nosuchnet").stderr


def test_a_slurm_launcher_without_slurm_is_one_line_with_the_local_launcher_named(cli, monkeypatch) -> None:
    """submitit raised 'Could not detect "srun"' from inside Hydra's launcher: a traceback called a cnnlab bug."""
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    result = cli("pretrain", "-m", "hydra/launcher=slurm_cpu", "seed=0,1")
    assert result.code == 2 and "Traceback" not in result.output
    assert "no SLURM (no srun on the PATH)" in result.stderr and "hydra/launcher=submitit_local" in result.stderr


@pytest.mark.parametrize("launcher", ["slurm_gpu", "joblib", "submitit_local"])
def test_a_launcher_without_a_sweep_is_refused_not_ignored(cli, outputs, launcher: str) -> None:
    """Probe 148: `hydra/launcher=slurm_gpu` without -m trained on the machine it was typed on (Hydra uses no launcher
    for one run), exit 0, without a word."""
    result = cli("pretrain", f"hydra/launcher={launcher}", "model=lenet5", "dataset=digits", "trainer.epochs=1")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and f"hydra/launcher={launcher} launches the jobs of a sweep (-m), and without -m Hydra " \
        "runs this one here" in said and "add -m" in said, result.output
    assert not outputs.exists() or not list(outputs.rglob("run.json"))
    assert cli("pretrain", "hydra/launcher=basic", "--cfg", "job").code == 0  # Hydra's own single-run launcher


def test_a_launcher_an_experiment_file_chooses_without_a_sweep_is_refused(cli, outputs, tmp_path, monkeypatch) -> None:
    """Probe 150: `override /hydra/launcher: slurm_gpu` in a --config-dir experiment ran here without -m, unsaid."""
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "far.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/launcher: joblib\n  - override /model: lenet5\n"
        "  - override /dataset: digits\ntrainer: {epochs: 1, max_steps_per_epoch: 1}\n")
    result = cli("pretrain", "--config-dir", str(tmp_path / "myconf"), "experiment=far")
    assert result.code == 2 and "hydra/launcher=joblib launches the jobs of a sweep (-m)" in result.stderr, \
        result.output
    assert not outputs.exists() or not list(outputs.rglob("run.json"))
    import shutil  # probe 152: its fix (-m) with a SLURM launcher the file chooses, no SLURM here: a traceback

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    far = tmp_path / "myconf" / "experiment" / "far.yaml"
    far.write_text(far.read_text().replace("joblib", "slurm_cpu"))
    swept = cli("pretrain", "-m", "--config-dir", str(tmp_path / "myconf"), "experiment=far")
    said = " ".join(swept.stderr.split())
    assert swept.code == 2 and "Traceback" not in swept.output and "this machine has no SLURM (no srun on the PATH)" \
        in said and "hydra/launcher=submitit_local" in said, swept.output


def test_under_torchrun_only_rank_0_says_what_to_continue_from(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM under torchrun: rank 1 (which writes no checkpoint) said "no epoch had completed, so there is no
    checkpoint", beside rank 0's "the checkpoint is kept; continue with `cnnlab pretrain resume=true`"."""
    import os

    from cnnlab import app
    from cnnlab.interrupts import Interrupted

    def stopped(**_: object) -> None:
        stop = Interrupted("SIGTERM", exit_code=143)
        stop.checkpoint_kept = os.environ["RANK"] == "0"
        raise stop

    monkeypatch.setattr(app, "main", stopped)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    other = cli("pretrain", *TINY)
    assert other.code == 143 and "error (rank 1 of 2): interrupted (SIGTERM) — rank 0's line says" in other.stderr
    assert "no checkpoint" not in other.stderr
    monkeypatch.setenv("RANK", "0")
    first = cli("pretrain", *TINY)
    assert "continue with `cnnlab pretrain resume=true` (under torchrun, as this run was started)" in first.stderr


def test_a_typed_val_fraction_the_data_does_not_carve_with_is_refused(cli, tmp_path: Path) -> None:
    """A folder with train/ and val/ keeps its val split:
    `dataset.val_fraction=0.5` changed nothing, exit 0, and run.json recorded it as used."""
    from helpers import random_image_folder

    random_image_folder(tmp_path / "photos" / "train", per_class=6)
    random_image_folder(tmp_path / "photos" / "val", per_class=1, seed=1)
    folder = ["dataset=imagefolder", f"dataset.root={tmp_path / 'photos'}", "dataset.image_size=16",
              "model=lenet5", "trainer.epochs=1", "trainer.batch_size=4"]
    refused = cli("pretrain", *folder, "dataset.val_fraction=0.5")
    assert refused.code == 2 and "dataset.val_fraction=0.5 has no effect" in refused.stderr, refused.output
    assert "drop dataset.val_fraction=" in refused.stderr and "Traceback" not in refused.stderr
    assert cli("pretrain", *folder).code == 0  # the fix, followed
    (tmp_path / "photos" / "val").rename(tmp_path / "held_out")  # now val is carved from train/: the setting applies
    assert cli("pretrain", *folder, "dataset.val_fraction=0.5").code == 0


def test_a_path_as_the_docs_write_it_reaches_the_command(cli, outputs: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`dataset.root=~/photos` (README, `cnnlab finetune --help`: the shell does not expand `~` there) and a file
    name with a letter outside ASCII were "malformed override … quoting values with spaces": Hydra's grammar reads
    neither unquoted. A plain value is quoted for it; one with structure stays Hydra's error, with a fix that works."""
    from helpers import random_image_folder

    from cnnlab.hydra_args import quote_plain_value

    random_image_folder(tmp_path / "home" / "phötos", per_class=5)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = cli("pretrain", "model=lenet5", "dataset=imagefolder", "dataset.root=~/phötos", "dataset.image_size=16",
                 "trainer.epochs=1", "trainer.batch_size=4")
    assert result.code == 0, result.output
    assert only_run(outputs, "pretrain")["dataset"]["config"]["root"] == str(tmp_path / "home" / "phötos")
    assert quote_plain_value("+a.b=~/x") == "+a.b='~/x'" and quote_plain_value("seed=0,1") == "seed=0,1"
    # a sweep's items each (the fix the error named made `-m dataset.root=~/a,~/b` one job of a folder "~/a,~/b")
    assert quote_plain_value("dataset.root=~/a,~/b") == "dataset.root='~/a','~/b'"
    broken = cli("finetune", "optim.lr=[0.1")  # structure: not quoted, and the fix it names is followed
    assert broken.code != 0 and "'key=\"text\"'" in broken.stderr, broken.stderr


def test_a_comma_in_a_single_run_names_fixes_that_work_when_typed(cli, outputs: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose name holds a comma was Hydra's "Ambiguous value for argument ..." and nothing more (its
    three fixes, on lines the one-line view drops, quote with a backslash no shell passes on as typed)."""
    from helpers import random_image_folder

    random_image_folder(tmp_path / "home" / "cats,dogs", per_class=5)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    args = ("model=lenet5", "dataset=imagefolder", "dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=4")
    for value in (f"{tmp_path}/home/cats,dogs", "~/cats,dogs"):
        refused = cli("pretrain", *args, f"dataset.root={value}")
        assert refused.code == 2 and "Traceback" not in refused.stderr and "Ambiguous" not in refused.stderr
        assert f"""'dataset.root="{value}"'""" in refused.stderr, refused.stderr
        fix = refused.stderr.split("add -m: ", 1)[1].strip()  # typed into bash, one job per folder
        assert bash_words(fix) == ["cnnlab", "pretrain", "-m", *args, f"dataset.root={value}"], refused.stderr
        assert "for a list" not in refused.stderr  # dataset.root takes one path: `[a,b]` was refused when followed
    followed = cli("pretrain", *args, 'dataset.root="~/cats,dogs"')  # the fix, as the shell passes it on
    assert followed.code == 0, followed.output
    assert only_run(outputs, "pretrain")["dataset"]["config"]["root"] == str(tmp_path / "home" / "cats,dogs")
    sweep = cli("evaluate", "source=latest:pretrain", "seed=range(2)")
    assert sweep.code == 2 and "seed=range(2): a sweep runs several jobs" in sweep.stderr, sweep.stderr
    assert bash_words(sweep.stderr.split("add -m: ", 1)[1]) == ["cnnlab", "evaluate", "-m", "source=latest:pretrain",
                                                                 "seed=range(2)"]
    as_list = cli("bench", "source=latest:pretrain", "bench.batch_sizes=1,2")  # a list key: brackets come first
    fix = as_list.stderr.split("for a list, put it in brackets: ", 1)[1].split(";")[0]
    assert as_list.code == 2 and bash_words(fix) == ["bench.batch_sizes=[1,2]"], as_list.stderr
    # session 60: a list setting whose default is null was told to quote "torch,onnxruntime" as one value
    quick = ["bench.batch_sizes=[1]", "bench.warmup=1", "bench.min_iters=3", "bench.min_seconds=0"]
    backends = cli("bench", "source=latest:pretrain", *quick, "bench.backends=torch,onnxruntime")
    fix = backends.stderr.split("for a list, put it in brackets: ", 1)[1].split(";")[0]
    assert backends.code == 2 and "quote it" not in backends.stderr, backends.stderr
    followed = cli("bench", "source=latest:pretrain", *quick, *bash_words(fix))
    assert followed.code == 0 and {row["backend"] for row in only_run(outputs, "bench")["metrics"]["latency"]} == \
        {"torch", "onnxruntime"}, followed.output
    two = cli("bench", "source=latest:pretrain,latest:pretrain")  # probe 109: the paired session was not named
    fix = two.stderr.split("for one paired session of those models: ", 1)[1].split(";")[0]
    assert two.code == 2 and bash_words(fix) == ["source=[latest:pretrain,latest:pretrain]"], two.stderr
    # probe 230: a key no command reads, with commas, was told to quote them; quoted, "unknown setting 'images'"
    unknown = cli("predict", "source=latest:pretrain", "images=a.png,b.png")
    assert unknown.code == 2 and "comma" not in unknown.stderr and "images" in unknown.stderr, unknown.stderr
    assert unknown.stderr == cli("predict", "source=latest:pretrain", "images=a.png").stderr  # as for one value


def test_an_interrupted_pipeline_stage_points_to_the_pipeline_not_its_own_resume(
        cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 87: after Ctrl-C a stage printed `cnnlab pretrain resume=true`, which trains it again outside the
    pipeline's workspace, where the pipeline does not look; the same `cnnlab pipeline` continues it."""
    import cnnlab.app
    from cnnlab.runs import PIPELINE_TAG_ENV

    def stopped(**_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cnnlab.app, "main", stopped)
    monkeypatch.setenv(PIPELINE_TAG_ENV, '{"stage": "teacher"}')
    result = cli("pretrain", *TINY)
    # stopped before its first checkpoint: the pipeline runs it again, and says so (probe 175: "it continues")
    assert result.code == 130 and "run the same `cnnlab pipeline` again: it runs this stage again (it had written " \
        "no checkpoint)" in result.stderr, result.stderr
    assert "resume=" not in result.stderr
    export = cli("export", "source=latest:pretrain")
    assert export.code == 130 and "again: it runs this stage again" in export.stderr and "(it had" not in export.stderr


def test_help_with_a_config_dir_lists_its_choices(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 130: `cnnlab pretrain --config-dir DIR --help` listed only the shipped choices, though the help says
    --config-dir adds DIR/dataset/mydata.yaml as dataset=mydata."""
    mine = tmp_path / "myconf" / "dataset"
    mine.mkdir(parents=True)
    (mine / "mydigits.yaml").write_text("defaults: [digits, _self_]\n")
    args = ["pretrain", "--config-dir", str(tmp_path / "myconf"), "--help"]
    monkeypatch.setattr(sys, "argv", ["cnnlab", *args])  # what the real command line reads
    result = cli(*args)
    [row] = [line for line in result.stdout.splitlines() if "dataset " in line and "digits" in line]
    assert result.code == 0 and "mydigits" in row, result.stdout


def test_help_lists_as_experiments_only_those_the_command_reads(cli, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shipped experiment is a pipeline recipe, which `cnnlab pretrain experiment=quickstart` refuses: pretrain's
    help listed all three as its choices; a user's experiment without `pipeline:` stays listed."""
    mine = tmp_path / "myconf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "small.yaml").write_text("# @package _global_\ntrainer:\n  epochs: 1\n")
    (mine / "deep.yaml").write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")  # probe 137: --help's RecursionError
    # probe 137: a recipe taken in through the defaults list is a recipe too
    (mine / "inherit.yaml").write_text("# @package _global_\ndefaults:\n  - /experiment/quickstart\n")
    (mine / "nearby.yaml").write_text("# @package _global_\ndefaults:\n  - inherit\n  - _self_\n")
    for command, listed, unlisted in [("pretrain", {"small"}, {"quickstart", "ssl_quickstart", "inherit", "nearby"}),
                                      ("pipeline", {"quickstart", "ssl_quickstart", "small", "inherit"}, set())]:
        args = [command, "--config-dir", str(tmp_path / "myconf"), "--help"]
        monkeypatch.setattr(sys, "argv", ["cnnlab", *args])
        result = cli(*args)
        [row] = [line for line in result.stdout.splitlines() if line.lstrip("│ ").startswith("experiment ")]
        words = set(row.replace("*", " ").replace("│", " ").split())
        assert result.code == 0 and listed <= words and not unlisted & words, row
    monkeypatch.setattr(sys, "argv", ["cnnlab", "pretrain", "--help"])
    shipped = " ".join(cli("pretrain", "--help").stdout.split())  # none of its own: the row says why
    assert "experiment (none: flowers_resnet50, quickstart, ssl_quickstart are `cnnlab pipeline` recipes)" in shipped


@pytest.mark.parametrize("command, key", [
    ("evaluate", "source"), ("finetune", "model.weights"), ("bench", "source"), ("export", "source"),
    ("pretrain", "dataset.root"),
])
def test_a_link_loop_given_as_an_input_is_named_as_one(cli, outputs: Path, command: str, key: str) -> None:
    """`source=best.pt` where best.pt is a link back to itself (or to a file since deleted) read "no such file or
    folder" — the file is there, as a link; what is wrong is where it leads."""
    loop = outputs.parent / "best.pt"
    loop.symlink_to(loop.name)
    extra = ["dataset=imagefolder"] if key == "dataset.root" else []
    result = cli(command, *extra, f"{key}={loop}", *(TINY[5:] if command in ("pretrain", "finetune") else []))
    assert result.code == 2 and "Traceback" not in result.output, result.output
    assert "is a link back to itself" in " ".join(result.stderr.split()) and "best.pt" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["nosuchcmd"], "error: no such command 'nosuchcmd' — choose one of pretrain, finetune,"),
    (["pretrian"], "error: no such command 'pretrian' — did you mean 'pretrain'? (see `cnnlab --help`)"),
    (["--foo"], "error: no such option: --foo — see `cnnlab --help`"),
    (["list"], "error: missing argument 'what' — see `cnnlab list --help`"),
    (["list", "--foo", "runs"], "error: no such option: --foo — see `cnnlab list --help`"),
    (["report", "--backend"], "error: option '--backend' requires an argument — see `cnnlab report --help`"),
    (["report", "--batch", "x"], "error: invalid value for '--batch': "),
    (["bench", "--device"], "error: option '--device' requires an argument — see `cnnlab bench --help`"),
])
def test_a_usage_error_of_the_command_line_is_one_line(cli, args: list[str], expected: str) -> None:
    """Typer drew these in a box under a usage block; `cnnlab nosuchcmd` named no command."""
    result = cli(*args)
    assert result.code == 2 and "╭" not in result.output and "Usage:" not in result.output, result.output
    assert result.stderr.startswith(expected) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "report" in cli("nosuchcmd").stderr  # every command, those Typer parses too


@pytest.mark.parametrize("words", [["list", "models"], ["list", "datasets"], ["inspect", "model=lenet5"]])
def test_a_reader_that_stops_reading_is_no_traceback(words: list[str]) -> None:
    """Probe 208: `cnnlab list models | true` (a pager quit, `| head -3`) printed a BrokenPipeError traceback and
    "this is a bug in cnnlab", exit 1. Now it stops quietly, as `git log | head` does — a command run through Hydra
    too (probe 238: `inspect ... | head -1` exited 1, rich's exit caught before the pipe was looked at)."""
    import subprocess
    import sys

    code = f"import sys; sys.argv = ['cnnlab', *{words!r}]; from cnnlab.cli import run; run()"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first line
    said = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141 and said == "", said


def test_an_output_encoding_without_the_tables_characters_gets_plain_ascii_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 238: under PYTHONIOENCODING=ascii (or latin-1) `list models`, `inspect` and `report` ended in a
    UnicodeEncodeError traceback ("a bug in cnnlab") on their ×, —, ±; under a C locale without UTF-8 mode every log
    line with a dash or an arrow was also a "--- Logging error ---" traceback, as run.log was opened as ASCII, and the
    config files were read as ASCII."""
    import io

    from cnnlab.console import tolerate_narrow_encodings
    from cnnlab.listing import print_models

    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    tolerate_narrow_encodings()
    print_models()
    ascii_out.flush()
    listed = ascii_out.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    assert "8-10x the FLOPs at 16 px" in " ".join(listed.split()) and "<= 64 px" in listed, listed
    monkeypatch.undo()
    c_locale = {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    trained = run_subprocess("pretrain", *TINY, "trainer.epochs=1", env=c_locale, cwd=tmp_path)
    assert trained.code == 0 and "Logging error" not in trained.stderr and "Traceback" not in trained.stderr, \
        trained.stderr
    run = Path(trained.stderr.split("cnnlab pretrain -> ")[1].split()[0])  # the arrow, in ASCII
    assert "cnnlab pretrain → " in (run / "run.log").read_text(encoding="utf-8")  # the file keeps its UTF-8
