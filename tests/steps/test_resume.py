from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from cnnlab.errors import CnnlabError
from cnnlab.runs import RunInfo
from cnnlab.steps.resume import TRAINING_STATE, check_work_left, epochs_left


def _run(tmp_path: Path, status: str, metrics: Any) -> RunInfo:
    return RunInfo(tmp_path / "old", {"status": status, "metrics": metrics})


@pytest.mark.parametrize("trained, asked, refused", [(1, 1, True), (3, 2, True), (3, 4, False)])
def test_a_completed_training_resumes_only_to_train_longer(tmp_path: Path, trained: int, asked: int,
                                                           refused: bool) -> None:
    run, cfg = _run(tmp_path, "completed", {"epochs": trained}), OmegaConf.create({"trainer": {"epochs": asked}})
    if not refused:
        check_work_left(run, cfg, "finetune", TRAINING_STATE)
        return
    with pytest.raises(CnnlabError) as err:
        check_work_left(run, cfg, "finetune", TRAINING_STATE)
    noun = "epoch" if trained == 1 else "epochs"
    assert err.value.message == (f"resume={run.path}: that run is complete (it trained for {trained} {noun}), so "
                                 "there is nothing to continue")
    assert err.value.fix == (f"train it longer: `cnnlab finetune resume={run.path} trainer.epochs={2 * trained}`, "
                             "or start a new run without resume=")


def test_an_unfinished_run_always_has_work_left(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"trainer": {"epochs": 1}})
    for status in ("interrupted", "failed", "running"):
        check_work_left(_run(tmp_path, status, {"epochs": 1}), cfg, "pretrain", TRAINING_STATE)


@pytest.mark.parametrize("metrics", [None, "5", {"epochs": "5"}, {"epochs": True}, {"epochs": -1}, {}])
def test_a_record_without_a_usable_epoch_count_is_not_judged(tmp_path: Path, metrics: Any) -> None:
    """run.json is untrusted: a count that is not a count refuses nothing (and raises no TypeError)."""
    assert epochs_left(_run(tmp_path, "completed", metrics), OmegaConf.create({"trainer": {"epochs": 1}})) is None


def test_a_run_whose_recorded_checkpoint_was_never_written_resumes_from_its_point_file(tmp_path: Path) -> None:
    """A search stopped (or extended with nothing to train) before its chosen model wrote last.pt records last.pt
    as its checkpoint, yet holds its study: resume= refused it, naming the study.db that was there."""
    from cnnlab.steps.resume import ResumePoint, resume_file

    run_dir = tmp_path / "search"
    run_dir.mkdir()
    run = RunInfo(run_dir, {"status": "completed", "artifacts": {"checkpoint": "last.pt"}})
    study = ResumePoint("study.db", "started its trials")
    assert resume_file(run, study) is None and resume_file(run, TRAINING_STATE) is None
    (run_dir / "study.db").write_bytes(b"")
    assert resume_file(run, study) == run_dir / "study.db"
    (run_dir / "last.pt").write_bytes(b"")
    assert resume_file(run, study) == run_dir / "last.pt"  # the recorded one, once it exists


def test_missing_settings_are_filled_only_within_the_same_choice_and_never_inside_a_search_space() -> None:
    from cnnlab.steps.resume import fill_missing

    saved = OmegaConf.create({"optim": {"_target_": "torch.optim.SGD", "lr": 0.1},
                              "model": {"name": "lenet5"}, "trainer": {"epochs": 3},
                              "space": {"kind": "mobilenet", "params": {"width": [0.5, 1.0]}}})
    today = OmegaConf.create({"optim": {"_target_": "torch.optim.AdamW", "lr": 1e-3, "betas": [0.9, 0.999]},
                              "model": {"name": "lenet5", "stem": None}, "trainer": {"epochs": 5, "new_knob": 20},
                              "paths": {"outputs": "${oc.env:CNNLAB_OUTPUTS,outputs}"},
                              "space": {"kind": "mobilenet", "params": {"width": [1.0], "depth": [1, 2]}}})
    added = fill_missing(saved, today)
    assert sorted(added) == ["model.stem", "paths", "trainer.new_knob"]
    assert "betas" not in saved.optim and saved.trainer.epochs == 3  # another optimizer's key; a saved value kept
    assert list(saved.space.params) == ["width"]  # a space's parameters are the user's: none added
    assert OmegaConf.to_container(saved.paths)["outputs"] == "${oc.env:CNNLAB_OUTPUTS,outputs}"  # unresolved


def test_a_search_resumed_with_a_setting_its_saved_config_lacks_is_not_refused_for_it(tmp_path: Path) -> None:
    """A filled-in default was compared with the saved file's nothing ("trainer.precise_bn_batches=20 (saved:
    null) would judge new trials differently"), with a fix (drop the override) the user could not follow."""
    from cnnlab.pipelines.search import check_same_search
    from cnnlab.steps.resume import fill_missing

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("trainer:\n  epochs: 1\nsearch:\n  proxy_epochs: 2\n")
    cfg = OmegaConf.load(tmp_path / ".hydra" / "config.yaml")
    fill_missing(cfg, OmegaConf.create({"trainer": {"epochs": 1, "precise_bn_batches": 20},
                                        "search": {"proxy_epochs": 2}}))
    check_same_search(RunInfo(tmp_path, {}), cfg)  # no error: the run never saved precise_bn_batches
    cfg.search.proxy_epochs = 3
    with pytest.raises(CnnlabError, match=r"search.proxy_epochs=3 \(saved: 2\)"):
        check_same_search(RunInfo(tmp_path, {}), cfg)  # a saved setting that changed is still refused


@pytest.mark.parametrize("spec", [1, "on", "yes", True])
def test_resume_one_or_on_means_the_latest_run_as_resume_zero_or_off_means_none(tmp_path: Path, spec: Any) -> None:
    """resume=0 and resume=off resumed nothing, but resume=1 looked for a folder named "1"."""
    from types import SimpleNamespace

    from cnnlab.steps.resume import resume_target

    ctx = SimpleNamespace(command="finetune", outputs=tmp_path)
    with pytest.raises(CnnlabError, match="no interrupted or failed"):
        resume_target(OmegaConf.create({"resume": spec}), ctx)  # type: ignore[arg-type]
    for nothing in (0, "off", "no", False, None):
        assert resume_target(OmegaConf.create({"resume": nothing}), ctx) is None  # type: ignore[arg-type]


def test_resume_zero_or_one_names_a_run_folder_of_that_name_where_there_is_one(tmp_path: Path, monkeypatch) -> None:
    """Sweep jobs' folders are called 0, 1, ...: `resume=0` there resumed nothing and trained a fresh default run."""
    import json
    from types import SimpleNamespace

    from cnnlab.steps.resume import resume_target

    monkeypatch.chdir(tmp_path)
    for name in ("0", "1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "last.pt").write_bytes(b"")
        (tmp_path / name / "run.json").write_text(json.dumps({"command": "finetune", "status": "interrupted",
                                                              "artifacts": {"checkpoint": "last.pt"}}))
    ctx = SimpleNamespace(command="finetune", outputs=tmp_path / "outputs")
    for spec, name in ((0, "0"), (1, "1"), ("0", "0")):
        run = resume_target(OmegaConf.create({"resume": spec}), ctx)  # type: ignore[arg-type]
        assert run is not None and run.path.name == name


def test_the_option_a_saved_section_came_from_is_the_recorded_one_else_the_one_whose_choice_keys_fit(
        tmp_path: Path) -> None:
    """An optimizer section is told by `_target_`, not `name`: a run saved with optim=adamw was never filled from
    adamw.yaml (weight_decay fell to the code's 0.0). A user's sched/mystep.yaml (`name: step`) is mystep, not the
    stock step, when the run recorded it; and when that option is gone, nothing is guessed."""
    from cnnlab.steps.resume import saved_choice

    adamw = OmegaConf.create({"_target_": "torch.optim.AdamW", "lr": 0.001})
    assert saved_choice("optim", adamw, None, []) == "adamw"
    assert saved_choice("optim", adamw, "sgd", []) == "adamw"  # a resumed run's record: its resume= invocation's
    mine = tmp_path / "conf"
    (mine / "sched").mkdir(parents=True)
    (mine / "sched" / "mystep.yaml").write_text("name: step\nstep_epochs: 1\ngamma: 0.5\n")
    step = OmegaConf.create({"name": "step", "gamma": 0.5})
    assert saved_choice("sched", step, "mystep", [mine]) == "mystep"
    assert saved_choice("sched", step, None, [mine]) == "step"  # no record: cnnlab's own option first
    assert saved_choice("sched", step, "mystep", []) is None  # --config-dir not given again: no guess
    teacher = OmegaConf.create({"name": "resnet50", "weights": "none"})  # teacher/resnet50.yaml: a defaults list
    assert saved_choice("teacher", teacher, "resnet50", []) == "resnet50"
    assert saved_choice("optim", OmegaConf.create({"lr": 0.1}), None, []) is None  # no choice keys: not told


def test_a_search_that_failed_with_every_trial_finished_and_none_feasible_resumes_only_to_search_more(
        tmp_path: Path) -> None:
    """Probe 74: `cnnlab search resume=true` resumed a search whose trials had all finished outside its constraint,
    failed the same way, left a new failed run — and the next `resume=true` resumed that one."""
    from cnnlab.pipelines.search import SEARCH_STATE

    def failed(finished: int, feasible: int) -> RunInfo:
        return RunInfo(tmp_path / "old", {"status": "failed", "metrics": {},
                                          "search": {"finished": finished, "feasible": feasible}})

    cfg = OmegaConf.create({"search": {"trials": 2}, "trainer": {"epochs": 1}})
    with pytest.raises(CnnlabError) as err:
        check_work_left(failed(2, 0), cfg, "search", SEARCH_STATE)
    assert "failed after its work was done (2 trials finished, none within its constraints" in err.value.message
    assert f"`cnnlab search resume={tmp_path / 'old'} search.trials=4`" in err.value.fix
    check_work_left(failed(2, 0), OmegaConf.create({"search": {"trials": 4}, "trainer": {"epochs": 1}}), "search",
                    SEARCH_STATE)  # more trials: work left
    check_work_left(failed(1, 0), cfg, "search", SEARCH_STATE)  # stopped before its trials were done
    check_work_left(failed(2, 1), cfg, "search", SEARCH_STATE)  # failed otherwise (its final training)
    # probe 75: a hyperparameter space trains one network: more trials cannot meet a params limit it breaks
    hparams = RunInfo(tmp_path / "old", {"status": "failed", "metrics": {}, "search": {
        "finished": 2, "feasible": 0, "space": {"kind": "hparams"}}})
    with pytest.raises(CnnlabError, match="a hyperparameter space trains one network") as err:
        check_work_left(hparams, OmegaConf.create({"search": {"trials": 4}, "trainer": {"epochs": 1}}), "search",
                        SEARCH_STATE)
    assert "search.trials" not in (err.value.fix or "")


def _state(tmp_path: Path, history: list[dict[str, Any]]) -> Path:
    import torch

    path = tmp_path / "old" / "last.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "cnnlab.train-state/1", "epoch": len(history), "history": history}, path)
    return path


def test_another_runs_last_pt_copied_in_is_refused_before_any_work(tmp_path: Path) -> None:
    """Probe 139: a seed-99 run's last.pt copied into an interrupted seed-7 run "continued" to a completed run with
    the other run's weights and history under seed 7's settings; nothing compared the file with the run."""
    from cnnlab.steps.resume import check_state_is_the_runs

    own = [{"epoch": 1, "train_loss": 1.5, "val_acc": 0.2861}, {"epoch": 2, "train_loss": 1.1, "val_acc": 0.5}]
    run = _run(tmp_path, "interrupted", {"epochs": 2, "history": own})
    check_state_is_the_runs(run, _state(tmp_path, own))  # its own
    check_state_is_the_runs(run, _state(tmp_path, own[:1]))  # trainer.checkpoint_every=2: saved every 2nd epoch
    check_state_is_the_runs(_run(tmp_path, "dead", {"history": own[:1]}), _state(tmp_path, own))  # killed between
    # the save and the record: one epoch past it
    check_state_is_the_runs(_run(tmp_path, "dead", {}), _state(tmp_path, own[:1]))  # killed after its first save
    for recorded in ({}, {"history": None}):  # probe 144: no epoch recorded yet, or none left, is no licence
        with pytest.raises(CnnlabError, match=r"\(2 epochs in it; run.json: 0 epochs\)"):
            check_state_is_the_runs(_run(tmp_path, "interrupted", recorded), _state(tmp_path, own))
    # ... but a continuation that took over 1 epoch and was stopped right after saving its first: its own
    continuation = RunInfo(tmp_path / "old", {"status": "interrupted", "metrics": {}, "resumed_after_epoch": 1})
    check_state_is_the_runs(continuation, _state(tmp_path, own))
    with pytest.raises(CnnlabError, match=r"\(4 epochs in it; run.json: 1 epoch\)"):
        check_state_is_the_runs(continuation, _state(tmp_path, own + own))
    # probe 145: a one-epoch file of another run, into a run that recorded none: told apart by the runs' ids
    import torch

    mine = RunInfo(tmp_path / "old", {"status": "interrupted", "metrics": {}, "run_id": "a" * 32})
    state = _state(tmp_path, own[:1])
    torch.save({**torch.load(state, weights_only=True), "extra": {"run_id": "a" * 32}}, state)
    check_state_is_the_runs(mine, state)
    torch.save({**torch.load(state, weights_only=True), "extra": {"run_id": "b" * 32}}, state)
    with pytest.raises(CnnlabError, match="was written by another run"):
        check_state_is_the_runs(mine, state)
    nan = [{**own[0], "train_loss": float("nan")}]
    check_state_is_the_runs(_run(tmp_path, "failed", {"history": nan}), _state(tmp_path, nan))
    other = [{"epoch": 1, "train_loss": 2.0, "val_acc": 0.25}]
    with pytest.raises(CnnlabError) as caught:
        check_state_is_the_runs(run, _state(tmp_path, other))
    assert "its last.pt is not the training its run.json records (epoch 1 differs" in caught.value.message
    assert caught.value.fix == "put the run's own last.pt back, or start a new run without resume="
    further = own + [{"epoch": e, "train_loss": 1.0, "val_acc": 0.6} for e in (3, 4)]  # a completed run's, 4 epochs
    with pytest.raises(CnnlabError, match=r"\(4 epochs in it; run.json: 2 epochs\)"):
        check_state_is_the_runs(run, _state(tmp_path, further))
