"""How Hydra's own refusals look to the user (cnnlab/errors_view.py): one line that names a fix that works."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

from helpers import TINY


def _error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("added, plain", [
    # Hydra: "Could not append to config. An item is already at 'dataset.label_fraction'." (docs/datasets.md used to
    # tell users to add it with a plus, after every dataset config had come to declare it)
    ("+dataset.label_fraction=0.5", "dataset.label_fraction=0.5"),
    ("+trainer.epochs=1", "trainer.epochs=1"),
    # a group chosen with a plus: "Multiple values for model. To override a value use 'override model: lenet5'"
    ("+model=lenet5", "model=lenet5"),
    # "trainer appears more than once in the final defaults list"
    ("+trainer=default", "trainer=default"),
])
def test_a_plus_on_what_exists_names_the_override_without_it_and_that_works(cli, added: str, plain: str) -> None:
    args = [a for a in TINY if a.split("=")[0] != plain.split("=")[0]]
    refused = cli("pretrain", *args, added)
    assert refused.code == 2, refused.output
    line = _error_line(refused)
    assert line.startswith(f"error: {added}: ") and line.endswith(f"drop the '+': {plain}"), line
    followed = cli("pretrain", *args, plain)
    assert followed.code == 0, followed.output


def test_a_plus_on_a_new_key_still_adds_it(cli) -> None:
    result = cli("pretrain", *TINY, "+trainer.my_note=1", "--cfg", "job")
    assert result.code == 0 and "my_note: 1" in result.stdout, result.output


@pytest.mark.parametrize("typed, expected, plus_offered", [
    ("foo=1", "unknown setting 'foo' — check the spelling", False),
    ("trainer.epohcs=1", "unknown setting 'trainer.epohcs' — did you mean trainer.epochs?", False),
    ("optim.nesterv=true", "unknown setting 'optim.nesterv' — did you mean optim.nesterov?", True),  # kwargs pass on
    # probe 55: `+sched.foo=1` was offered and then ignored (sched is cnnlab's own LambdaLR, not a library's kwargs)
    ("sched.foo=1", "unknown setting 'sched.foo'", False),
])
def test_an_unknown_setting_offers_plus_only_where_cnnlab_reads_what_it_adds(cli, typed: str, expected: str,
                                                                            plus_offered: bool) -> None:
    """Probe 54: "unknown setting 'foo' — … (use +foo=VALUE to add a new key on purpose)"; followed, `+foo=1` is
    refused as a key nothing reads. `+KEY=` is offered only in optim/sched (a library's keyword arguments)."""
    line = _error_line(cli("pretrain", *TINY, typed))
    assert expected in line, line
    key = typed.split("=")[0]
    assert (f"+{key}=VALUE adds a new key on purpose" in line) == plus_offered, line


@pytest.mark.parametrize("typed", ["bench.batch_sizes=[1,8]", "+bench.batch_sizes=[1,8]", "bench.batch_sizes=1,8",
                                   "+method.temperature=0.2"])
def test_another_commands_setting_is_named_as_such_not_ignored(cli, outputs, typed: str) -> None:
    """Probe 54: `cnnlab pretrain +bench.batch_sizes=[1,8]` trained with exit 0 and the key ignored (check_known
    passes any key some command has); without `+` the fix offered `+`, and with a comma, brackets and `-m`, each
    refused or ignored when followed."""
    from helpers import run_dirs

    command = "finetune" if "method" in typed else "pretrain"
    line = _error_line(cli(command, *TINY, typed))
    owner = "pretrain" if "method" in typed else "bench"
    assert f"`cnnlab {owner}`, not" in line and f"`cnnlab {command}`" in line and "drop" in line, line
    assert "brackets" not in line and "-m" not in line
    assert not any((d / "model.pt").exists() for d in run_dirs(outputs, command))


def test_the_sweep_fix_repeats_the_whole_command_line(cli) -> None:
    """Probe 54: `cnnlab pretrain model=lenet5 'seed=range(2)'` offered `cnnlab pretrain -m 'seed=range(2)'`, which
    typed as printed trained the default model on the default data; probe 55: it also dropped `--device cpu`."""
    from helpers import bash_words

    line = _error_line(cli("pretrain", "--device", "cpu", *TINY, "seed=range(2)"))
    assert bash_words(line.split("add -m: ", 1)[1]) == ["cnnlab", "pretrain", "-m", "--device", "cpu", *TINY,
                                                         "seed=range(2)"], line
    # probe 55: an integer has no comma of its own, so the "quote it (a path)" fix was refused when followed
    line = _error_line(cli("pretrain", *TINY, "trainer.max_steps_per_epoch=1,2"))
    assert "a path" not in line and "add -m: cnnlab pretrain -m" in line, line


def test_another_commands_setting_added_to_a_sweep_is_refused_before_any_job(cli, outputs) -> None:
    """Probe 55: `cnnlab pretrain -m seed=0,1 +bench.rounds=5` was refused inside each job: two failed run folders."""
    from helpers import run_dirs

    result = cli("pretrain", "-m", *TINY, "seed=0,1", "+bench.rounds=5")
    assert result.code == 2 and "bench.* is read by `cnnlab bench`" in result.stderr, result.output
    assert not (outputs / "pretrain").exists() or not run_dirs(outputs, "pretrain")


def test_another_commands_setting_names_this_commands_own_where_there_is_one(cli) -> None:
    """Probe 55: `cnnlab pipeline +bench.rounds=5` named pipeline.bench.rounds, `bench.rounds=5` (the commoner typo)
    did not."""
    for typed in ("bench.rounds=5", "+bench.rounds=5"):
        line = _error_line(cli("pipeline", typed))
        assert "pipeline.bench.rounds=" in line and "`cnnlab bench`, not" in line, line


def test_a_key_of_another_group_choice_is_named_with_the_choice_that_reads_it(cli, outputs) -> None:
    """`sched=cosine sched.gamma=0.5` said "unknown setting 'sched.gamma' — check the spelling" (gamma is spelled
    right: it is step's), and `+sched.gamma=0.5` (or `method=simsiam +method.temperature=0.5`) ran with it ignored."""
    from helpers import bash_words, run_dirs

    line = _error_line(cli("pretrain", *TINY, "sched=cosine", "sched.gamma=0.5"))
    assert "sched.gamma is a setting of sched=step" in line and "spelling" not in line, line
    fix = bash_words(line.split("choose it: ", 1)[1])
    assert fix[:2] == ["cnnlab", "pretrain"] and "sched=step" in fix and "sched=cosine" not in fix, fix
    followed = cli(*fix[1:])
    assert followed.code == 0, followed.output
    [run] = run_dirs(outputs, "pretrain")
    composed = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert composed["sched"] == {"name": "step", "warmup_epochs": 0, "step_epochs": 3, "gamma": 0.5}

    for typed in (["sched=cosine", "+sched.gamma=0.5"], ["method=simsiam", "+method.temperature=0.5"]):
        line = _error_line(cli("pretrain", *TINY, *typed))
        owner = "sched=step" if "sched" in typed[1] else "method=simclr"
        group, name = typed[0].split("=")
        assert f"is a setting of {owner}, not of the {group} this run uses ({group}.name={name})" in line, line
        assert f"choose {owner}" in line, line
    assert not any((d / "model.pt").exists() for d in run_dirs(outputs, "pretrain")[1:])


def test_a_dataset_key_of_another_dataset_added_with_plus_is_refused_but_common_keys_are_read(cli) -> None:
    """`dataset=flowers +dataset.val_fraction=0.2` ran on Flowers' official val split and recorded 0.2 (probe 66);
    dataset.channels and dataset.seed are read for every dataset, so adding them stays allowed."""
    line = _error_line(cli("pretrain", "dataset=flowers", "+dataset.val_fraction=0.2", "model=lenet5",
                           "dataset.root=/nonexistent"))
    assert "dataset.val_fraction is a setting of dataset=cifar10" in line and "(dataset.name=flowers)" in line, line
    assert "remove dataset.val_fraction" in line
    seeded = cli("pretrain", *TINY, "+dataset.channels=3", "trainer.max_steps_per_epoch=1")
    assert seeded.code == 0, seeded.output



@pytest.mark.parametrize("typed, said", [
    # probe 57: each was "unknown setting … check the spelling" (or "did you mean model.arch?", whose fix failed)
    (["student=lenet5", "student.arch=w1_x"], "student.arch is a setting of student=searched, not of the student "
                                              "this run uses — choose it: cnnlab distill"),
    (["dataset=digits", "dataset.train_size=100"], "dataset.train_size is a setting of dataset=synthetic, not of "
                                                   "the dataset this run uses — drop it"),
    (["optim=adamw", "optim.momentum=0.9"], "optim.momentum is a setting of optim=sgd and optim=lars, not of the "
                                            "optim this run uses — choose it:"),
])
def test_a_key_spelled_right_for_another_choice_names_that_choice(cli, typed: list[str], said: str) -> None:
    """Probe 57: each was "unknown setting … check the spelling" for a key spelled right; distill's student.arch was
    told "did you mean model.arch?", then "choose it: … model=searched", which distill refused (it has no model=)."""
    command = "distill" if typed[0].startswith("student") else "pretrain"
    line = _error_line(cli(command, *typed))
    assert said in line and "spelling" not in line and "+" not in line.split(" — ", 1)[1], line


def test_every_key_the_dataset_lacks_is_dropped_by_the_fix_at_once(cli, outputs) -> None:
    """Probe 69: `dataset=fashion_mnist dataset.train_size=2000 dataset.val_size=500` named train_size alone, and the
    command it showed kept dataset.val_size=500, which failed in turn."""
    from helpers import bash_words

    line = _error_line(cli("pretrain", "model=lenet5", "dataset=digits", "dataset.train_size=200",
                           "dataset.val_size=50"))
    assert "dataset.train_size and dataset.val_size are settings of dataset=synthetic" in line and "drop them" in line
    shown = bash_words(line.split("(`", 1)[1].split("`", 1)[0])
    assert shown == ["cnnlab", "pretrain", "model=lenet5", "dataset=digits", "--cfg", "job"], line
    assert cli(*shown[1:-2], "trainer.epochs=1", "trainer.max_steps_per_epoch=2").code == 0  # followed, it runs
    # probe 193: a key the typed dataset has too was named with the one it lacks, and dropped from the command shown
    line = _error_line(cli("pretrain", "model=lenet5", "dataset=imagefolder", "dataset.root=photos",
                           "dataset.channels=1"))
    assert "dataset.channels is a setting of" in line and "dataset.root" not in line.split(" — ", 1)[0], line
    assert "dataset.root=photos" in line.split("(`", 1)[1].split("`", 1)[0], line


def test_in_a_sweep_the_choice_fix_keeps_the_sweep_and_says_which_jobs_read_the_key(cli) -> None:
    """Probe 57: under -m the "choose it" fix dropped -m (typed, it was then refused as a sweep without -m), and
    with the group itself swept (`sched=step,cosine`) it silently dropped the cosine jobs."""
    from helpers import bash_words

    line = _error_line(cli("pretrain", "-m", *TINY, "sched=cosine", "sched.gamma=0.5,0.2"))
    assert bash_words(line.split("choose it: ", 1)[1])[:3] == ["cnnlab", "pretrain", "-m"], line
    line = _error_line(cli("pretrain", "-m", *TINY, "sched=step,cosine", "sched.gamma=0.5"))
    assert "not of every sched this sweep runs (sched=step,cosine)" in line and "the others apart" in line, line



def test_a_choice_key_for_a_group_the_command_lacks_is_not_offered_that_group(cli) -> None:
    line = _error_line(cli("distill", "teacher=lenet5", "student=lenet5", "model.arch=w1_x"))
    assert "`cnnlab distill` has no model= choice" in line and "model=searched" not in line, line
    assert "teacher= and student=" in line


def test_an_unknown_launcher_lists_the_launchers(cli) -> None:
    """Probe 86: `hydra/launcher=ray` said "see cnnlab pretrain --help for the choices", and --help names none."""
    result = cli("pretrain", *TINY, "hydra/launcher=ray")
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")][-1]
    assert result.code == 2 and "Could not find 'hydra/launcher/ray' — choose one of basic, joblib" in line
    assert "submitit_local" in line and "--help" not in line
    import importlib.util

    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:  # probe 151: no install hint
        sweeper = cli("search", "-m", "hydra/sweeper=optuna", "model=lenet5")
        assert sweeper.code == 2 and "Could not find 'hydra/sweeper/optuna'" in sweeper.stderr and \
            "`pip install hydra-optuna-sweeper` adds it" in " ".join(sweeper.stderr.split()), sweeper.output


def test_a_path_too_long_is_one_line_however_deep_it_is_wrapped() -> None:
    """Probe 111: ENAMETOOLONG from pathlib, wrapped by OmegaConf's resolver (the run folder of a long
    paths.outputs) or met by Hydra writing .hydra/ under a working folder near PATH_MAX, read as a cnnlab bug."""
    import errno

    from omegaconf.errors import InterpolationResolutionError

    from cnnlab.errors_view import describe

    deep = "/tmp/" + "/".join(["q" * 200] * 21) + "/.hydra/overrides.yaml"
    for raised in (OSError(errno.ENAMETOOLONG, "File name too long", "/tmp/" + "n" * 300 + "/x"),
                   OSError(errno.ENAMETOOLONG, "File name too long", deep)):
        try:
            try:
                raise raised
            except OSError as inner:
                raise InterpolationResolutionError("OSError raised while resolving interpolation") from inner
        except InterpolationResolutionError as wrapped:
            message, is_bug = describe(wrapped)
        assert not is_bug and "is longer than this system allows — give a shorter name" in message, message
    assert message.startswith(f"the path '/tmp/{'q' * 23}…") and f"({len(deep)} bytes; at most 4096)" in message


def test_a_run_folder_name_too_long_is_named_not_read_as_an_interpolation_to_fix() -> None:
    """Probe 235: `paths.outputs=<a 260-byte name>` reached interpolation_error through the run-folder resolver and
    was told to "give a value, or interpolate a setting that exists" — no interpolation had been typed."""
    import errno

    from omegaconf.errors import InterpolationResolutionError

    from cnnlab.errors_view import interpolation_error

    try:
        try:
            raise OSError(errno.ENAMETOOLONG, "File name too long", "/tmp/" + "a" * 260 + "/pretrain")
        except OSError as inner:
            raise InterpolationResolutionError("OSError raised while resolving interpolation") from inner
    except InterpolationResolutionError as wrapped:
        error = interpolation_error(wrapped, ["paths.outputs=/tmp/" + "a" * 260], {})
    assert "(260 bytes; at most 255) is longer than this system allows" in error.message
    assert "interpolat" not in error.one_line()


@pytest.mark.parametrize("code, said, fix", [
    (errno.ENOSPC, "disk full while writing a file the system did not name", "free space on the disk"),
    (errno.EFBIG, "a file-size limit reached while writing a file the system did not name", "ulimit -f unlimited"),
])
def test_a_write_that_fails_outside_cnnlabs_own_writes_is_one_line(code: int, said: str, fix: str) -> None:
    """Probe 237: under `ulimit -f 2` Hydra's own write of .hydra/hydra.yaml failed before the command began: a
    traceback and "a bug in cnnlab"; /dev/full as standard output was told of a full disk at "."."""
    from cnnlab.errors_view import describe

    try:
        try:
            raise OSError(code, os.strerror(code))
        except OSError as inner:
            raise RuntimeError("Error executing job") from inner
    except RuntimeError as wrapped:
        message, is_bug = describe(wrapped)
    assert not is_bug and message.startswith(said) and fix in message and " . " not in message, message


def test_an_allocation_that_fails_is_one_line_naming_the_sizes_typed() -> None:
    """Probe 118's kind: a setting that sizes a tensor (a head of 10**12 classes, a batch of 10**11, a synthetic
    set of 10**11 images) failed in torch's allocator: a traceback and "this is a bug in cnnlab". Counts of runs
    (bench.warmup, bench.min_iters) size nothing: not named (probe 134)."""
    from cnnlab.errors_view import SettingFacts, describe

    failed = RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                          "you tried to allocate 336000000000000 bytes. Error code 12 (Cannot allocate memory)")
    message, is_bug = describe(failed, "inspect", SettingFacts(typed=("model=lenet5", "inspect.num_classes=10",
                                                                      "seed=3", "bench.warmup=0", "bench.min_iters=1")))
    assert not is_bug and message == ("out of memory: one allocation asked for 336 TB — lower the sizes you set "
                                      "(inspect.num_classes=10)")
    message, is_bug = describe(MemoryError(), "pretrain")
    assert not is_bug and message.startswith("out of memory — lower the batch size (trainer.batch_size)")


def test_an_allocation_no_machine_holds_is_one_line_at_the_command_line(cli, outputs, monkeypatch) -> None:
    from cnnlab.deploy import subject

    # bench's own memory check refuses this batch first (test_bench); here, an allocation that fails all the same
    monkeypatch.setattr(subject, "available_memory", lambda: None)
    result = cli("bench", "model=lenet5", "bench.batch_sizes=[100000000000]", "bench.backends=[torch]")
    assert result.code == 2 and "Traceback" not in result.output and "bug in cnnlab" not in result.output
    assert "error: out of memory: one allocation asked for" in result.stderr
    assert "lower the sizes you set (bench.batch_sizes=[100000000000]" in result.stderr
    assert "Error executing job" not in result.output


def test_a_resumes_setting_of_another_dataset_names_only_the_fix_that_works(cli, outputs) -> None:
    """Probe 145: `resume=RUN dataset.root=/tmp` of a digits run said to add dataset=cifar10 (which resume refuses) or
    to look at `--cfg job` (the default config, not the run's)."""
    digits = ["model=lenet5", "dataset=digits", "dataset.image_size=16", "trainer.epochs=1",
              "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", *digits).code == 0
    run = next(outputs.rglob("run.json")).parent
    result = cli("pretrain", f"resume={run}", "dataset.root=/tmp", "trainer.epochs=2")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "not of the dataset this run uses (dataset.name=digits), so it would be ignored — " \
        "drop dataset.root= (resume continues the run with its own dataset)" in said, result.output
    assert "--cfg job" not in said and "or use that dataset" not in said, said
    typed = cli("pretrain", f"resume={run}", "dataset.num_classes=3", "trainer.epochs=2")
    said = " ".join(typed.stderr.split())
    assert typed.code == 2 and "dataset.num_classes is a setting of dataset=synthetic, not of the dataset this run " \
        "uses (dataset.name=digits)" in said and "drop dataset.num_classes=" in said, typed.output
    # stop 64: Hydra's refusal of the key was logged first, with its own fix (+dataset.num_classes=3), which fails
    assert "could not be composed" not in typed.output and "+dataset.num_classes" not in typed.output, typed.output
    fresh = cli("pretrain", *digits, "resume=null", "dataset.root=/tmp")  # resume=null: a new run, its usual fix
    assert fresh.code == 2 and "not of the dataset this run uses" in " ".join(fresh.stderr.split()), fresh.output


def test_a_mapping_for_a_key_that_holds_one_is_told_it_merges_not_that_the_key_is_unknown(cli, outputs,
                                                                                          tmp_path: Path) -> None:
    """Probe 185: `space.params.width={type:float,low:…}` read "unknown setting 'space.params.width'" — a key the
    space has; its `+` hint merged and kept the old `choices`. The fix the line names works when followed."""
    base = ["dataset=digits", "dataset.image_size=16", "search.trials=1", "search.proxy_epochs=1",
            "search.population=2", "trainer.epochs=1", "search.proxy_train_fraction=0.2",
            "space.base=w1_stem16s2_k3e1c16n1s1_k3e6c24n2s2_head256", "search.latency.warmup=1",
            "search.latency.min_iters=3", "search.latency.min_seconds=0"]
    result = cli("search", *base, "space.params.width={type:float,low:0.3,high:0.5}")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "space.params.width exists, and a mapping given for it is merged" in said, said
    assert "unknown setting" not in said and "no field 'low'" in said and "--config-dir DIR space=mine" in said
    shown = cli("search", *base, "--cfg", "job")  # followed: the space as shown, one entry replaced, in a file
    space = yaml.safe_load(shown.stdout)["space"]
    space["params"]["width"] = {"type": "float", "low": 0.3, "high": 0.5}
    (tmp_path / "mine" / "space").mkdir(parents=True)
    (tmp_path / "mine" / "space" / "mine.yaml").write_text(yaml.safe_dump(space))
    followed = cli("search", *base, "--config-dir", str(tmp_path / "mine"), "space=mine")
    assert followed.code == 0, followed.output
    other = cli("pretrain", "optim={lr:0.1,bogus:1}")
    assert "optim exists, and a mapping given for it is merged" in " ".join(other.stderr.split())
    assert "(optim.lr=…, optim.bogus=…)" in " ".join(other.stderr.split())  # its fields, one by one
