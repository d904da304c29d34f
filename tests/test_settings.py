"""cnnlab.settings: every knob checked once, against rules derived from the YAML defaults plus known ranges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from helpers import bash_words

from cnnlab.commands import COMMANDS
from cnnlab.errors import CnnlabError
from cnnlab.settings import (check_config, check_resume, check_setting, derived_rule, packaged_defaults,
                             rule_for)


def composed(command: str, *overrides: str) -> dict[str, Any]:
    import cnnlab.app  # noqa: F401 - registers the run-dir resolver the config refers to

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"command={command}", *COMMANDS[command].default_overrides, *overrides])
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_commands_defaults_pass(command: str) -> None:
    check_config(composed(command), command)


@pytest.mark.parametrize("key, value, allowed", [
    ("trainer.epochs", "abc", "an integer >= 1"),
    ("trainer.epochs", 2.5, "an integer >= 1"),
    ("trainer.epochs", 0, "an integer >= 1"),
    ("trainer.batch_size", -4, "an integer >= 1"),
    ("optim.lr", "fast", "a number in (0, 1000000]"),
    ("optim.lr", 0, "a number in (0, 1000000]"),
    ("optim.lr", float("nan"), "a number in (0, 1000000]"),
    ("optim.lr", 1e300, "a number in (0, 1000000]"),  # was a traceback: float32 overflow inside the optimizer
    ("dataset.image_size", 2, "null or an integer in [16, 4096]"),
    ("dataset.image_size", 100000, "null or an integer in [16, 4096]"),
    ("prune.ratio", 1.0, "a number in [0, 1)"),
    ("prune.ratio", True, "a number in [0, 1)"),
    ("trainer.amp", "fp8", "one of auto, bf16, fp16, none"),
    ("trainer.channels_last", "maybe", "true, false or auto"),
    ("trainer.workers", -1, "an integer >= 0 or auto"),
    ("trainer.max_steps_per_epoch", 0, "null or an integer >= 1"),  # probe 70: 0 meant "no cap", said nowhere
    ("dataset.mean", [0.5, 0.5], "a list of 3 numbers"),
    ("bench.batch_sizes", [1, 0], "a list of integers >= 1"),
    ("export.evaluate", "yes", "true or false"),
    ("dataset.root", ["a", "b"], "null or a text"),  # its example `${paths.data}/...` was bash's "bad substitution"
    ("dataset.augment.crop_scale", [1, 0.5], "the smaller first"),  # probe 99: torch's uniform_ failed (traceback)
    # probe 118: told "write it as a list 'method.views.crop_scale=[0.2]'", then refused as "not two numbers"
    ("method.views.crop_scale", 0.2, "a list of 2 numbers"),
    # probe 120: "set e.g. inspect.num_classes=1", then "a classifier needs at least 2 classes … check the dataset"
    ("inspect.num_classes", 0, "null or an integer in [2, 1000000]"),
    ("bench.num_classes", 1, "null or an integer in [2, 1000000]"),
    # probe 118's kind: 10**12 classes allocated 336 TB (a traceback)
    ("inspect.num_classes", 10**12, "null or an integer in [2, 1000000]"),
    ("dataset.num_classes", 10**12, "an integer in [2, 1000000]"),
])
def test_wrong_type_or_range_names_key_value_and_what_is_allowed(key: str, value: Any, allowed: str) -> None:
    with pytest.raises(CnnlabError) as info:
        check_setting(key, value, "pretrain")
    line = info.value.one_line()
    assert line.startswith(f"{key}=") and allowed in line, line
    example = bash_words(info.value.fix or "")[-1]  # "set e.g. K=V", "quote it …: 'K="V"'", as the shell passes it
    key_, _, text = example.partition("=")
    assert key_ == key
    check_setting(key, yaml.safe_load(text), "pretrain")  # the value the fix suggests passes


def test_one_value_where_a_list_goes_gets_a_fix_that_passes_for_every_list_setting() -> None:
    """The kind of probe 118's finding: each list setting, given one value, names a fix its own rule accepts."""
    from cnnlab.settings import packaged_defaults, rule_for

    for key in packaged_defaults():
        rule = rule_for(key, "pretrain")
        if rule is None or rule.kind != "list":
            continue
        item = rule.item.example if rule.item is not None and rule.item.example is not None else 0.5
        try:
            check_setting(key, "x" if rule.item is not None and rule.item.kind == "str" else item, "pretrain")
            continue  # one value taken as the list of it (prune.ignore=conv1)
        except CnnlabError as err:
            fix = err.fix or ""
        example = bash_words(fix)[-1]  # "set e.g. K=V" or "write it as a list K=[V]"
        assert example.startswith(f"{key}="), (key, fix)
        check_setting(key, yaml.safe_load(example.partition("=")[2]), "pretrain")


def test_one_mean_or_std_passes_and_a_fix_for_one_channel_offers_one_value() -> None:
    """Probe: `dataset=fashion_mnist 'dataset.mean=[0.3]'` (and `evaluate source=GREY_RUN 'dataset.mean=[0.286]'`)
    was refused — the rule took its default's length, 3 — with CIFAR's R, G, B mean as the example, for a grey
    network. One value passes here (the channels are known where the data is read: data/registry.stated_triple);
    a one-channel refusal for another reason offers one value, not an RGB triple."""
    for key, value in (("dataset.mean", [0.3]), ("dataset.std", [0.35])):
        check_setting(key, value, "pretrain")
        check_setting(key, value, "evaluate")
    check_config(composed("pretrain", "dataset=fashion_mnist", "model=lenet5", "dataset.mean=[0.3]",
                          "dataset.std=[0.35]"), "pretrain")
    for key, value, one_channel in (("dataset.std", [0], False), ("dataset.mean", ["x"], False),
                                    ("dataset.mean", [0.3, 0.3], True)):
        with pytest.raises(CnnlabError) as info:
            check_setting(key, value, "pretrain", one_channel=one_channel)
        assert "takes a list of 3 numbers" in info.value.message and "or of 1, for pictures read in one channel" \
            in info.value.message, info.value.message
        example = yaml.safe_load(bash_words(info.value.fix or "")[-1].partition("=")[2])
        assert isinstance(example, list) and len(example) == 1, info.value.fix
        check_setting(key, example, "pretrain")
    with pytest.raises(CnnlabError) as info:  # the composed config reads one channel: its fix is one value too
        check_config(composed("pretrain", "dataset=fashion_mnist", "dataset.mean=[0.3,0.3]"), "pretrain")
    assert len(yaml.safe_load(bash_words(info.value.fix or "")[-1].partition("=")[2])) == 1, info.value.fix
    with pytest.raises(CnnlabError) as info:  # an RGB set: three, as before
        check_setting("dataset.mean", [0.3, 0.3], "pretrain")
    assert "'dataset.mean=[0.4914,0.4822,0.4465]'" in (info.value.fix or "")


def test_the_class_count_bound_is_the_one_a_checkpoint_may_hold() -> None:
    from cnnlab.engine import checkpoint
    from cnnlab.settings import MAX_CLASSES

    assert MAX_CLASSES == checkpoint.MAX_CLASSES


def test_a_fix_suggests_a_value_that_does_what_the_setting_is_for() -> None:
    """Probe 103: `trainer.grad_clip=-1` was told "set e.g. trainer.grad_clip=0", and 0 turns clipping off."""
    with pytest.raises(CnnlabError) as info:
        check_setting("trainer.grad_clip", -1, "pretrain")
    assert info.value.fix == "set e.g. trainer.grad_clip=1.0"


def test_rules_are_derived_from_the_yaml_defaults() -> None:
    assert derived_rule((5,)).describe() == "an integer"
    assert derived_rule((64, None)).describe() == "null or an integer"     # synthetic: 64, imagefolder: null
    assert derived_rule((0.001, 0.05)).describe() == "a number"
    assert derived_rule((1, 0.5)).describe() == "a number"
    assert derived_rule((True,)).describe() == "true or false"
    assert derived_rule(([1, 8, 32],)).describe() == "a list of integers"
    assert derived_rule(("auto",)).describe() == "a single value"          # words may become true/false
    assert derived_rule((None,)) is None                                    # says nothing
    defaults = packaged_defaults()
    assert defaults["trainer.epochs"] == (5,) and None in defaults["dataset.image_size"]
    # every int/float/bool knob of the packaged YAML has a rule, whether or not it is listed in RULES
    for key, values in defaults.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float)) for v in present):
            assert rule_for(key) is not None, key


def test_a_command_can_give_a_knob_another_range() -> None:
    check_setting("trainer.epochs", 0, "prune")  # prune without recovery training
    with pytest.raises(CnnlabError):
        check_setting("trainer.epochs", 0, "finetune")


def test_composed_config_with_a_bad_override_is_refused() -> None:
    with pytest.raises(CnnlabError, match="trainer.batch_size=abc"):
        check_config(composed("pretrain", "trainer.batch_size=abc"), "pretrain")
    with pytest.raises(CnnlabError, match="teacher.weights"):
        check_config(composed("distill", "teacher.weights=[1,2]"), "distill")


def test_an_optimizer_key_its_class_takes_no_argument_for_is_refused_with_the_settings() -> None:
    """`optim=adamw +optim.momentum=0.9` was refused when the optimizer was built, after the data had been read
    (and features cached); it is refused with every other setting, before the run starts."""
    with pytest.raises(CnnlabError, match="AdamW takes no momentum argument — drop it: add ~optim.momentum"):
        check_config(composed("finetune", "optim=adamw", "+optim.momentum=0.9"), "finetune")
    check_config(composed("finetune", "optim=adamw", "optim.weight_decay=0.01"), "finetune")


def _run(tmp_path: Path, command: str, status: str = "completed", artifact: str | None = "model",
         started: str = "2026-11-01T10:00:00+00:00") -> Path:
    run_dir = tmp_path / command / "r"
    run_dir.mkdir(parents=True)
    files = {"model": "model.pt", "checkpoint": "last.pt"}
    if artifact:
        (run_dir / files[artifact]).write_bytes(b"")
    (run_dir / "run.json").write_text(json.dumps({"command": command, "status": status, "started": started,
                                                  "artifacts": {artifact: files[artifact]} if artifact else {}}))
    return run_dir


@pytest.mark.parametrize("command, run_of, fix", [
    ("finetune", "pretrain", "cnnlab finetune model.weights="),
    ("prune", "finetune", "cnnlab prune source="),
    ("distill", "finetune", "cnnlab distill teacher.weights="),
    ("pretrain", "finetune", "cnnlab finetune model.weights="),
])
def test_resume_takes_a_run_of_the_same_command(tmp_path: Path, command: str, run_of: str, fix: str) -> None:
    run_dir = _run(tmp_path, run_of)
    with pytest.raises(CnnlabError, match=f"is a `cnnlab {run_of}` run") as info:
        check_resume(str(run_dir), command)
    assert fix + str(run_dir) in (info.value.fix or "")
    if command == "prune":
        assert "but `cnnlab prune` does not resume" in str(info.value)
        return  # prune does not resume at all: the test below
    check_resume(str(_run(tmp_path / "same", command)), command)  # its own command: fine
    for spec in (None, True, "true", "latest", str(tmp_path / "nothing-here")):
        check_resume(spec, command)  # resolved (and refused) later with their own messages


@pytest.mark.parametrize("command", ["prune", "quantize", "export", "bench", "evaluate", "predict", "pipeline"])
def test_resume_is_refused_by_a_command_that_does_not_resume(tmp_path: Path, command: str) -> None:
    """`cnnlab prune resume=RUN` and `cnnlab quantize quantize.mode=qat resume=RUN` were ignored: the run silently
    started over. A command that keeps no checkpoint refuses resume= and says to run it again without it."""
    own = _run(tmp_path, command, "interrupted")
    for spec in (True, "true", "latest", f"latest:{command}", str(own), str(tmp_path / "nothing-here")):
        with pytest.raises(CnnlabError, match=f"`cnnlab {command}` (does not resume|takes no resume=)") as info:
            check_resume(spec, command, tmp_path)
        assert f"run `cnnlab {command}` again without resume=" in (info.value.fix or "")
    with pytest.raises(CnnlabError, match=f"`cnnlab {command}` (does not resume|takes no resume=)"):
        check_resume("latest:distill", command, tmp_path)  # no distill run here: not "pass resume=true"
    for spec in (None, False, "false", "null", "none", "off", 0):
        check_resume(spec, command, tmp_path)  # resumes nothing: the same as leaving resume= out
    if command == "pipeline":  # a re-run of the pipeline is what resumes its interrupted stage
        assert "an interrupted training stage resumes" in (info.value.fix or "")


@pytest.mark.parametrize("status, artifact, fix", [
    ("interrupted", "checkpoint", "to continue that run, use `cnnlab pretrain resume={run}`"),
    ("failed", "checkpoint", "to continue that run, use `cnnlab pretrain resume={run}`"),
    ("interrupted", None, "pick a `cnnlab search` run"),  # nothing to continue, no model to start from
])
def test_resume_given_another_commands_run_names_a_fix_that_works_for_it(tmp_path: Path, status: str,
                                                                         artifact: str | None, fix: str) -> None:
    """An interrupted pretrain run given to `search resume=` was sent to `finetune model.weights=`, which fails:
    the run has no model.pt."""
    run_dir = _run(tmp_path, "pretrain", status, artifact)
    with pytest.raises(CnnlabError, match=f"is a `cnnlab pretrain` run \\({status}\\)") as info:
        check_resume(str(run_dir), "search")
    assert fix.format(run=run_dir) in (info.value.fix or "")


def test_resume_latest_of_another_command_names_the_fix_for_that_commands_newest_run(tmp_path: Path) -> None:
    """`resume=latest:pretrain` on search sent the user to `pretrain resume=true`, which fails when the newest
    pretrain run completed: the fix is the one for the run it names."""
    check_resume("latest:search", "search", tmp_path)  # the same as resume=true
    with pytest.raises(CnnlabError, match="there is no pretrain run here either") as info:
        check_resume("latest:pretrain", "search", tmp_path)
    assert "resume=true" in (info.value.fix or "")
    completed = _run(tmp_path, "pretrain")
    with pytest.raises(CnnlabError, match=f"resume=latest:pretrain \\({completed}\\) is a `cnnlab pretrain` run "
                                          "\\(completed\\)") as info:
        check_resume("latest:pretrain", "finetune", tmp_path)
    assert f"cnnlab finetune model.weights={completed}" in (info.value.fix or "")
    interrupted = _run(tmp_path / "later", "pretrain", "interrupted", "checkpoint", started="2026-11-01T11:00:00+00:00")
    with pytest.raises(CnnlabError) as info:
        check_resume("latest:pretrain", "finetune", tmp_path)
    assert f"cnnlab pretrain resume={interrupted}" in (info.value.fix or "")


@pytest.mark.parametrize("command, typed, owner", [
    ("pretrain", ["sched=cosine", "+sched.gamma=0.5"], "sched=step"),
    ("pretrain", ["method=simsiam", "+method.temperature=0.5"], "method=simclr"),
    ("pretrain", ["model=lenet5", "+model.arch=w1_stem16s1_k3e1c16n1s1_head64"], "model=searched"),
    # probe 57: teacher and student options are model entries; +teacher.arch ran with it ignored
    ("distill", ["teacher=lenet5", "+teacher.arch=w1_stem16s1_k3e1c16n1s1_head64"], "teacher=searched"),
])
def test_a_key_of_another_group_choice_is_refused(command: str, typed: list[str], owner: str) -> None:
    """The code a group's `name` picks reads its own file's keys only: sched=cosine ran with +sched.gamma ignored."""
    config = composed(command, *typed)
    with pytest.raises(CnnlabError) as info:
        check_config(config, command)
    group, name = typed[0].split("=")
    assert f"is a setting of {owner}, not of the {group} this run uses ({group}.name={name})" in \
        info.value.one_line()
    group = typed[0].split("=")[0]
    config[group]["name"] = "my_own"  # a choice from the user's --config-dir: its keys are its own business
    check_config(config, command)


@pytest.mark.parametrize("command, typed", [("bench", "trainer.batch_size=32"), ("bench", "optim=adamw"),
                                            ("inspect", "trainer.epochs=3"), ("export", "+sched.foo=1"),
                                            ("evaluate", "optim.lr=0.1"), ("predict", "trainer.batch_size=8"),
                                            ("pipeline", "trainer.epochs=1"), ("pipeline", "dataset=digits"),
                                            # probe 58: export and evaluate read 3 of trainer's keys, not all
                                            ("export", "trainer.epochs=3"), ("evaluate", "trainer.mixup=0.5")])
def test_a_section_the_command_never_reads_is_refused(command: str, typed: str) -> None:
    """`cnnlab bench trainer.batch_size=32` (bench.batch_sizes is bench's) and `cnnlab pipeline trainer.epochs=1`
    (each stage takes its own) ran without them, exit 0."""
    from cnnlab.settings import check_sections_read

    with pytest.raises(CnnlabError) as info:
        check_sections_read([typed], command)
    line = info.value.one_line()
    assert line.startswith(f"{typed}: `cnnlab {command}` ") and f"drop {typed}" in line, line


def test_a_section_the_command_reads_passes() -> None:
    from cnnlab.settings import check_sections_read

    check_sections_read(["trainer.eval_batch_size=64", "trainer.batch_size=8", "trainer.workers=0",
                         "dataset.val_fraction=0.3"], "export")  # its val images
    check_sections_read(["optim.lr=0.1", "trainer.epochs=2"], "prune")  # recovery fine-tuning
    plan = '{"a": {"overrides": ["trainer.epochs=${trainer.epochs}"]}}'
    check_sections_read(["trainer.epochs=1"], "pipeline", plan)
    with pytest.raises(CnnlabError):  # probe 58: the plan reads trainer.epochs, not every trainer.* key
        check_sections_read(["trainer.max_steps_per_epoch=3"], "pipeline", plan)


def test_a_misspelled_section_or_group_is_matched_against_the_sections() -> None:
    """Probe 74: `modle=lenet5` got no suggestion and `datset=mnist` was offered `dataset.std`: a key without a dot
    was compared with the leaf settings only."""
    from cnnlab.settings import closest_setting

    assert closest_setting("modle") == "model"
    assert closest_setting("datset") == "dataset"
    assert closest_setting("sed") == "seed"
    assert closest_setting("optim.lrr") == "optim.lr"
    # probe 119: the shared "search." made any search key "close" to search.eta
    assert closest_setting("search.sampler") is None and closest_setting("search.pruner") is None
    assert closest_setting("search.trails") == "search.trials"
    # probe 123: a short key's typo kept its suggestion; one level down, no unrelated word either
    assert closest_setting("optim.lt") == "optim.lr" and closest_setting("trainer.epoch") == "trainer.epochs"
    assert closest_setting("dataset.augment.mixup") is None and closest_setting("search.latency.sampler") is None
    # probe 123: any key under method.views "was a setting of method=simclr", though simclr was the method chosen
    from cnnlab.settings import choices_with

    assert choices_with("method.views.crop_scal") == ()
    assert set(choices_with("method.views.crop_scale")) == {"method=simclr", "method=simsiam"}
    assert choices_with("method.predictor_hidden_dim") == ("method=simsiam",)


def test_a_quoted_number_is_told_to_drop_its_quotes() -> None:
    """Probe 77: `optim.lr="0.01"` read "optim.lr=0.01 is not allowed: optim.lr takes a number in (0, 1000000]"."""
    from cnnlab.errors import CnnlabError
    from cnnlab.settings import check_setting

    with pytest.raises(CnnlabError) as caught:
        check_setting("optim.lr", "0.01")
    assert caught.value.message.startswith('optim.lr="0.01" is text (quoted, or read from an environment variable')
    assert (caught.value.fix or "").startswith("drop the quotes: optim.lr=0.01; ")
    check_setting("optim.lr", 0.01)  # the fix, followed


def test_a_number_read_from_the_environment_is_told_how_to_decode_it(cli, outputs, monkeypatch) -> None:
    """Probe 99: `optim.lr=${oc.env:MYLR}` (text) was told it "is quoted" and to drop quotes it never had."""
    from helpers import TINY, bash_words, read_run, run_dirs

    monkeypatch.setenv("MYLR", "1e-3")
    refused = cli("pretrain", *TINY, "optim.lr=${oc.env:MYLR}")
    assert refused.code == 2 and "read from an environment variable" in refused.stderr, refused.output
    [typed] = bash_words(refused.stderr.split("decode it: ", 1)[1].replace("NAME", "MYLR"))
    assert cli("pretrain", *TINY, "sched=constant", typed).code == 0  # the fix, followed
    assert read_run(run_dirs(outputs, "pretrain")[0])["metrics"]["history"][0]["lr"] == 1e-3


def test_one_value_where_a_list_goes_is_told_to_be_written_as_a_list() -> None:
    """Probe 80: `predict.inputs=a.png` was told "set e.g. 'predict.inputs=[]'", which then failed with "needs
    images"."""
    from cnnlab.errors import CnnlabError
    from cnnlab.settings import check_setting

    for key, value, fix in (("predict.inputs", "a.png", "write it as a list 'predict.inputs=[a.png]'"),
                            ("bench.batch_sizes", 4, "write it as a list 'bench.batch_sizes=[4]'")):
        with pytest.raises(CnnlabError) as caught:
            check_setting(key, value, key.split(".")[0])
        assert caught.value.fix == fix
        check_setting(key, [value], key.split(".")[0])  # the fix, followed


def test_an_infinite_or_nan_number_is_called_not_finite() -> None:
    """Probe 83: `method.temperature=inf` read "is not allowed: … takes a number" — it is one, just not finite."""
    from cnnlab.errors import CnnlabError
    from cnnlab.settings import check_setting

    for value in (float("inf"), float("nan"), float("-inf")):
        with pytest.raises(CnnlabError, match="is not a finite number"):
            check_setting("method.temperature", value, "pretrain")


def test_a_section_chosen_by_name_without_a_name_is_refused() -> None:
    """Probe 99: a --config-dir sched file of `step_epochs: 1, gamma: 0.5` without `name: step` trained the cosine
    schedule (lr 0.0346, 0.0019 for 0.05, 0.025), its keys unread and shown in the saved config."""
    config = composed("pretrain")
    config["sched"] = {"warmup_epochs": 0, "step_epochs": 1, "gamma": 0.5}
    with pytest.raises(CnnlabError, match="the sched settings have no name") as error:
        check_config(config, "pretrain")
    assert "add `name: constant`" in (error.value.fix or "") and "step" in (error.value.fix or "")
    config["sched"]["name"] = "step"
    check_config(config, "pretrain")


def test_a_text_setting_read_as_a_list_says_to_quote_it() -> None:
    """Probe 130: a folder named "[br]" (`dataset.root=[br]`) read "takes null or a text — set e.g. …", not that Hydra
    read the brackets as a list nor that quoting it for Hydra (the fix that works) keeps it text."""
    from cnnlab.settings import _unquoted, check_setting

    with pytest.raises(CnnlabError) as info:
        check_setting("dataset.root", ["br"], "pretrain")
    assert "dataset.root=[br] was read as a list" in info.value.message
    assert info.value.fix.endswith("""'dataset.root="[br]"'""")
    check_setting("dataset.root", _unquoted('"[br]"'), "pretrain")  # the fix, followed: the text [br]


def test_an_unread_key_is_never_offered_as_its_own_correction() -> None:
    """Probe 137: `pipeline` (a section other commands do not read) was "did you mean pipeline?"."""
    from cnnlab.settings import check_known

    with pytest.raises(CnnlabError) as caught:
        check_known("pipeline", "pretrain")
    assert "did you mean" not in caught.value.fix and "rename or remove it" in caught.value.fix


def test_a_list_of_choices_for_a_one_choice_setting_is_told_to_sweep_them() -> None:
    """Probe 184: `split=[test,val]` was told to quote it ('split="[test,val]"'), and the quoted text was refused
    in turn: no split is called "[test,val]"."""
    from cnnlab.settings import _unquoted, check_setting

    with pytest.raises(CnnlabError) as info:
        check_setting("split", ["test", "val"], "evaluate")
    assert info.value.message.startswith("split=[test,val] was read as a list")
    assert info.value.fix.endswith("one sweep — the same command with -m and split=test,val")
    for value in _unquoted("test"), _unquoted("val"):  # the fix, followed: each of them is a split
        check_setting("split", value, "evaluate")
    with pytest.raises(CnnlabError) as other:
        check_setting("split", ["foo"], "evaluate")
    assert other.value.fix == "set e.g. split=test"
