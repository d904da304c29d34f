"""Resources that run out and runs that stop, end to end through the command line (issue 14): a batch larger
than the training set, out of memory, a full disk, SIGTERM and SIGKILL — and what `resume=` does with the
overrides given to it (they win over the restored state). Every hint printed is followed."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from cnnlab.data.loaders import SeededItems
from cnnlab.engine.objectives import ClassificationObjective
from cnnlab.engine.trainer import Trainer
from cnnlab.runs import RunRecord, load_run
from helpers import (TINY, ctrl_c_after_first_checkpoint, hinted_command, only_run, random_image_folder, read_run,
                     run_dirs)


def _lrs(run_dir: Path) -> list[float]:
    return [entry["lr"] for entry in read_run(run_dir)["metrics"]["history"]]


def _resumed_and_straight(outputs: Path) -> tuple[Path, Path]:
    """The completed resumed run and the completed uninterrupted one."""
    completed = [d for d in run_dirs(outputs, "pretrain") if read_run(d)["status"] == "completed"]
    resumed = [d for d in completed if read_run(d).get("resumed_from")]
    straight = [d for d in completed if not read_run(d).get("resumed_from")]
    assert len(resumed) == 1 and len(straight) == 1, completed
    return resumed[0], straight[0]


# ---------------------------------------------------------------------------------------------- resources
def test_a_batch_larger_than_the_training_set_is_refused_before_any_work(cli, outputs: Path) -> None:
    result = cli("pretrain", *TINY, "trainer.batch_size=100000")
    assert result.code == 2 and "Traceback" not in result.output
    assert "trainer.batch_size=100000 is larger than the training set (64 images)" in result.stderr
    assert not (outputs / "pretrain").exists()  # refused before any work: no run (cnnlab.app)
    assert "use trainer.batch_size=64" in result.stderr
    assert cli("pretrain", *TINY, "trainer.batch_size=64").code == 0  # the fix, followed


def test_out_of_memory_in_training_names_the_batch_size_to_use(cli, outputs: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(self, model, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.77 GiB")

    monkeypatch.setattr(ClassificationObjective, "__call__", exhausted)
    result = cli("pretrain", *TINY)
    assert result.code == 2 and "Traceback" not in result.output
    assert "out of memory on cpu at trainer.batch_size=16 — use trainer.batch_size=8" in result.stderr
    record = only_run(outputs, "pretrain")
    assert record["status"] == "failed" and "trainer.batch_size=16" in record["error"]


def test_a_ddp_peer_that_dies_is_one_line_that_says_to_resume(cli, outputs: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 74: `kill -9` of rank 1 under torchrun gave rank 0 Hydra's "Error executing job", a 40-line traceback and
    gloo's "Connection reset by peer ... GLHF!" — no word that another rank died, nor of resume=true, which works."""
    real = ClassificationObjective.__call__
    calls = []

    def peer_gone(self, model, batch):
        calls.append(1)
        if len(calls) > 4:  # the second epoch: the first one's checkpoint is there
            raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:36784: "
                               "Connection reset by peer")
        return real(self, model, batch)

    monkeypatch.setattr(ClassificationObjective, "__call__", peer_gone)
    result = cli("pretrain", *TINY, "trainer.epochs=2")
    assert result.code == 2 and "Traceback" not in result.output
    assert "another rank of this torchrun job stopped" in result.stderr
    assert "-m cnnlab pretrain resume=true" in result.stderr
    assert only_run(outputs, "pretrain")["status"] == "failed"
    monkeypatch.setattr(ClassificationObjective, "__call__", real)
    resumed = cli(*hinted_command(result.stderr.replace("torchrun <the same options> -m cnnlab", "cnnlab")))
    assert resumed.code == 0, resumed.output


@pytest.mark.parametrize("sweep", [[], ["-m"]])
def test_a_loader_worker_killed_mid_run_is_one_line_that_says_to_resume(cli, outputs: Path, sweep: list[str],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A DataLoader worker killed in the second epoch (the OOM killer, a container's /dev/shm, the socket under /tmp
    a clean-up removed) was a traceback and "a bug in cnnlab", and said nothing of resume=true, which works. A sweep
    job's is continued by the sweep typed again (its resume=true continued the job outside the sweep)."""
    real = SeededItems.__getitem__

    def killed_in_epoch_two(self, key):  # type: ignore[no-untyped-def]
        if key[0] == 1 and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, key)

    monkeypatch.setattr(SeededItems, "__getitem__", killed_in_epoch_two)
    typed = ("pretrain", *sweep, *TINY, "trainer.epochs=2", "trainer.workers=1")
    result = cli(*typed)
    assert result.code == 2 and "Traceback" not in result.output and "bug in cnnlab" not in result.output
    assert "the DataLoader's worker processes failed (DataLoader worker (pid" in result.stderr
    assert "trainer.workers=0" in result.stderr
    assert only_run(outputs, "pretrain")["status"] == "failed"
    monkeypatch.setattr(SeededItems, "__getitem__", real)
    assert ("sweep again (it skips the completed jobs and continues this one)" in result.stderr) == bool(sweep)
    resumed = cli(*typed) if sweep else cli(*hinted_command(result.stderr))
    assert resumed.code == 0, resumed.output
    assert "resuming after epoch 1" in resumed.output


def test_a_loader_worker_killed_in_an_evaluate_sweep_is_one_line(cli, outputs: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 172: `cnnlab evaluate -m seed=0,1 trainer.workers=1` with a worker killed: torch's SIGCHLD handler fired
    again inside cnnlab's handling of the failure (the loader kept alive by the traceback) — a traceback, "a bug in
    cnnlab", and once a job left `running`."""
    from cnnlab.data.bundle import TransformedDataset

    assert cli("pretrain", *TINY).code == 0
    real = TransformedDataset.__getitem__

    def killed(self, index):  # type: ignore[no-untyped-def]
        if index == 20 and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, index)

    monkeypatch.setattr(TransformedDataset, "__getitem__", killed)
    result = cli("evaluate", "-m", "source=latest:pretrain", "split=val", "seed=0,1", "trainer.workers=1",
                 "trainer.eval_batch_size=4")
    assert result.code == 2 and "Traceback" not in result.output and "bug in cnnlab" not in result.output, \
        result.output
    assert "the DataLoader's worker processes failed" in result.stderr
    assert all(read_run(d)["status"] == "failed" for d in run_dirs(outputs, "evaluate"))
    # the failed loader is shut down: a child's exit later in this process (the next job of a sweep; in CI, the next
    # test) raised "DataLoader worker (pid N) is killed by signal" for its dead worker again
    subprocess.run(["true"], check=True)
    time.sleep(0.2)


def test_a_full_disk_while_saving_a_checkpoint_fails_the_run_and_keeps_the_last_one(
        cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = Path.write_bytes
    kept: dict[str, bytes] = {}

    def write_bytes(target: Path, data) -> int:  # type: ignore[no-untyped-def]
        previous = target.parent / "last.pt"
        if target.name.startswith(".last.pt.") and previous.exists():  # the second epoch's checkpoint
            kept["last.pt"] = previous.read_bytes()
            real_write(target, b"half a checkpoint")  # what a full disk leaves behind
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_write(target, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    result = cli("pretrain", *TINY, "trainer.epochs=3")
    assert result.code == 2 and "Traceback" not in result.output
    assert "disk full while writing" in result.stderr and "last.pt" in result.stderr
    run_dir = run_dirs(outputs, "pretrain")[0]
    record = read_run(run_dir)
    assert record["status"] == "failed" and "disk full" in record["error"]
    assert (run_dir / "last.pt").read_bytes() == kept["last.pt"]  # the last good checkpoint, untouched
    assert not list(run_dir.glob(".*.tmp"))  # no temporary file left

    monkeypatch.setattr(Path, "write_bytes", real_write)  # space freed: the failed run continues where it stopped
    resumed = cli("pretrain", "resume=true")
    assert resumed.code == 0, resumed.output
    assert [e["epoch"] for e in read_run(run_dirs(outputs, "pretrain")[1])["metrics"]["history"]] == [1, 2, 3]


def test_a_full_disk_met_outside_the_atomic_writes_is_one_line_too(cli, outputs: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.pipelines import pretrain

    def full(*args, **kwargs):
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(outputs / "somewhere.bin"))

    monkeypatch.setattr(pretrain, "save_and_record", full)
    result = cli("pretrain", *TINY)
    assert result.code == 2 and "Traceback" not in result.output
    assert "disk quota exceeded while writing" in result.stderr and "somewhere.bin" in result.stderr
    assert only_run(outputs, "pretrain")["status"] == "failed"


# ---------------------------------------------------------------------------------------------- signals
@pytest.fixture
def long_run(outputs: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """`cnnlab pretrain` in its own process, planned far longer than the test waits; stderr goes to a file. Killed
    when the test ends, whatever happened in it: a test that failed before it stopped the run left it training 1,000
    epochs on one of the machine's two cores (a suite run of session 73)."""
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "CNNLAB_OUTPUTS": str(outputs), "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "pretrain", *TINY, "trainer.epochs=1000"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def _first_checkpoint(outputs: Path, proc: subprocess.Popen, log: Path, timeout: float = 180) -> Path:
    """The run folder, once its first last.pt exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(outputs.glob("pretrain/*/*/last.pt"))
        if found:
            return found[0].parent
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}): {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint in time")


def _epochs_done(run_dir: Path) -> int:
    return int(torch.load(run_dir / "last.pt", weights_only=True)["epoch"])


def test_sigterm_stops_like_ctrl_c_and_the_hint_resumes_it(cli, outputs: Path, long_run) -> None:
    proc, log = long_run
    run_dir = _first_checkpoint(outputs, proc, log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    stderr = log.read_text()
    assert "Traceback" not in stderr
    hint = stderr.strip().splitlines()[-1]
    assert "interrupted (SIGTERM)" in hint and "resume=true" in hint
    record = read_run(run_dir)
    assert record["status"] == "interrupted" and record["error"] == "interrupted (SIGTERM)"

    done = _epochs_done(run_dir)  # the hint, followed (one more epoch rather than the 1000 planned)
    resumed = cli(*hinted_command(hint), f"trainer.epochs={done + 1}")
    assert resumed.code == 0, resumed.output
    record = read_run(run_dirs(outputs, "pretrain")[-1])
    assert record["status"] == "completed" and record["resumed_from"] == str(run_dir)
    assert [e["epoch"] for e in record["metrics"]["history"]] == list(range(1, done + 2))


def test_a_killed_run_is_listed_as_dead_and_resume_true_finds_it(cli, outputs: Path, long_run) -> None:
    proc, log = long_run
    run_dir = _first_checkpoint(outputs, proc, log)
    proc.kill()  # SIGKILL: no handler runs, run.json still says running
    proc.wait(timeout=60)
    assert read_run(run_dir)["status"] == "running" and load_run(run_dir).status == "dead"
    listing = cli("list", "runs", "--outputs", outputs.name).stdout
    assert " dead " in next(line for line in listing.splitlines() if "pretrain/" in line)

    resumed = cli("pretrain", "resume=true", f"trainer.epochs={_epochs_done(run_dir) + 1}")
    assert resumed.code == 0, resumed.output
    assert Path(read_run(run_dirs(outputs, "pretrain")[-1])["resumed_from"]) == run_dir.resolve()
    # Continued once, the dead run is done with: a requeue script's second resume=true must not train it again.
    again = cli("pretrain", "resume=true", f"trainer.epochs={_epochs_done(run_dir) + 1}")
    assert again.code == 2 and "no interrupted or failed" in again.stderr, again.output


# ---------------------------------------------------------------------------------------------- interrupts
def test_ctrl_c_before_the_first_checkpoint_says_to_start_again(cli, outputs: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    train_one_epoch = Trainer.train_one_epoch

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_one_epoch", interrupted)
    result = cli("pretrain", *TINY)
    assert result.code == 130 and "resume=true" not in result.stderr
    assert "no checkpoint had been written yet, so there is none to resume" in result.stderr
    monkeypatch.setattr(Trainer, "train_one_epoch", train_one_epoch)
    again = cli(*hinted_command(result.stderr))  # the hint, followed
    assert again.code == 0, again.output
    assert read_run(run_dirs(outputs, "pretrain")[-1])["status"] == "completed"


# ---------------------------------------------------------------------------------------------- resume
def test_resume_refuses_a_run_whose_process_still_runs(cli, outputs: Path) -> None:
    run_dir = outputs / "pretrain" / "2026-01-01" / "live"
    record = RunRecord.start(run_dir, "pretrain")  # written by this very process: alive
    (run_dir / "last.pt").write_bytes(b"x")
    record.add_artifact("checkpoint", run_dir / "last.pt")
    result = cli("pretrain", f"resume={run_dir}")
    assert result.code == 2 and f"still running (pid {os.getpid()}" in result.stderr
    assert f"kill {os.getpid()}" in result.stderr


def test_resume_with_another_batch_size_ends_with_the_lr_of_an_uninterrupted_run(
        cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130  # batch 16: 4 steps per epoch
    ctrl_c_after_the_first_checkpoint()
    resumed = cli("pretrain", "resume=true", "trainer.batch_size=32")  # 2 steps per epoch
    assert resumed.code == 0, resumed.output
    assert "trainer.batch_size=32 (saved: 16)" in resumed.output
    assert cli("pretrain", *TINY, "trainer.epochs=3", "trainer.batch_size=32").code == 0
    resumed_dir, straight_dir = _resumed_and_straight(outputs)
    assert _lrs(resumed_dir)[1:] == pytest.approx(_lrs(straight_dir)[1:])  # the final lr included


def test_an_lr_given_on_resume_wins_over_the_saved_one(cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim.lr=0.05").code == 130
    ctrl_c_after_the_first_checkpoint()
    resumed = cli("pretrain", "resume=true", "optim.lr=0.01")
    assert resumed.code == 0, resumed.output
    assert "optim.lr=0.01 (saved: 0.05)" in resumed.output  # the log says what was overridden
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim.lr=0.01").code == 0
    resumed_dir, straight_dir = _resumed_and_straight(outputs)
    assert _lrs(resumed_dir)[1:] == pytest.approx(_lrs(straight_dir)[1:])


def test_a_resumed_run_interrupted_again_resumes_with_the_original_settings(
        cli, outputs: Path, ctrl_c_after_the_first_checkpoint) -> None:
    """The second resume read the first resume's .hydra/config.yaml — `resume=true` on the defaults — and lost
    every setting of the original run (trainer.epochs, optim.lr, the dataset)."""
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim.lr=0.05").code == 130  # stops after epoch 1
    assert cli("pretrain", "resume=true").code == 130  # continues, stops again after epoch 2
    ctrl_c_after_the_first_checkpoint()
    resumed = cli("pretrain", "resume=true")
    assert resumed.code == 0, resumed.output
    assert cli("pretrain", *TINY, "trainer.epochs=3", "optim.lr=0.05").code == 0
    completed = [d for d in run_dirs(outputs, "pretrain") if read_run(d)["status"] == "completed"]
    last = next(d for d in completed if read_run(d).get("resumed_from"))
    straight = next(d for d in completed if not read_run(d).get("resumed_from"))
    saved = (last / ".hydra" / "config.yaml").read_text()
    assert "epochs: 3" in saved and "lr: 0.05" in saved and "train_size: 64" in saved
    assert [e["epoch"] for e in read_run(last)["metrics"]["history"]][-1] == 3
    assert _lrs(last)[-1] == pytest.approx(_lrs(straight)[-1])


def test_resume_refuses_a_run_whose_image_folder_changed_since(cli, outputs: Path, tmp_path: Path,
                                                               ctrl_c_after_the_first_checkpoint) -> None:
    """Images added to a one-level folder re-carve its seeded val split: the resumed run went on training on some of
    its old val images and scored on some of its old training images, exit 0."""
    from helpers import random_image_folder

    data = random_image_folder(tmp_path / "photos")
    folder = ["dataset=imagefolder", f"dataset.root={data}", "dataset.image_size=16", "model=lenet5",
              "trainer.batch_size=4", "trainer.epochs=2"]
    assert cli("pretrain", *folder).code == 130
    ctrl_c_after_the_first_checkpoint()
    interrupted = read_run(run_dirs(outputs, "pretrain")[0])
    assert interrupted["dataset"]["content"]  # recorded before the first epoch, so an interrupted run has it
    import shutil

    as_it_was = tmp_path / "as_it_was"
    shutil.copytree(data, as_it_was)  # copy2 keeps names, sizes and times: the same pictures elsewhere
    random_image_folder(tmp_path / "new", per_class=1, classes=("dog",), seed=1)
    (tmp_path / "new" / "dog" / "0.png").rename(data / "dog" / "new.png")
    refused = cli("pretrain", "resume=true")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and f"the images in {data} changed since it ran" in said, refused.output
    assert "drop resume=" in said and "Traceback" not in refused.stderr
    reseeded = cli("pretrain", "resume=true", f"dataset.root={as_it_was}", "dataset.seed=3")  # probe 150
    assert reseeded.code == 2 and "another carve would hold images" in " ".join(reseeded.stderr.split())
    data.rename(tmp_path / "gone")  # probe 150: the recorded folder gone, carves_val read it: FileNotFoundError
    elsewhere = cli("pretrain", "resume=true", f"dataset.root={as_it_was}")  # the fix that names the folder
    assert elsewhere.code == 0, elsewhere.output


def test_a_run_saved_before_a_setting_existed_resumes_with_its_default(cli, outputs: Path, tiny_run: Path) -> None:
    """A run saved by an older cnnlab lacks the settings added since (here finetune.standardize_features); resume
    failed with Hydra's "Missing key standardize_features". Those keys now take today's defaults, and the log says
    so."""
    first = cli("finetune", "model.weights=latest:pretrain", *TINY, "finetune.cache_features=false")
    assert first.code == 0, first.output
    run_dir = run_dirs(outputs, "finetune")[0]
    saved = run_dir / ".hydra" / "config.yaml"
    old = [line for line in saved.read_text().splitlines() if "standardize_features" not in line]
    saved.write_text("\n".join(old) + "\n")
    resumed = cli("finetune", f"resume={run_dir}", "trainer.epochs=2")
    assert resumed.code == 0, resumed.output
    assert "finetune.standardize_features" in resumed.output and "saved no value" in resumed.output, resumed.output
    assert read_run(run_dirs(outputs, "finetune")[-1])["metrics"]["epochs"] == 2


def test_a_section_saved_with_another_choice_is_filled_from_that_choice(cli, outputs: Path) -> None:
    """A run saved with sched=step by an older cnnlab (here: without sched.step_epochs) was filled only from today's
    default composition (sched=cosine, which has no step_epochs): the key stayed missing and the code's own default
    (1) applied where step.yaml says 3. Now the sections it chose otherwise are filled from Hydra's composition of
    those choices."""
    first = cli("finetune", *TINY, "sched=step", "finetune.cache_features=false")
    assert first.code == 0, first.output
    run_dir = run_dirs(outputs, "finetune")[0]
    saved = run_dir / ".hydra" / "config.yaml"
    saved.write_text("\n".join(line for line in saved.read_text().splitlines() if "step_epochs" not in line) + "\n")
    resumed = cli("finetune", f"resume={run_dir}", "trainer.epochs=2")
    assert resumed.code == 0, resumed.output
    assert "sched.step_epochs" in resumed.output and "saved no value" in resumed.output, resumed.output
    import yaml

    again = yaml.safe_load((run_dirs(outputs, "finetune")[-1] / ".hydra" / "config.yaml").read_text())
    assert again["sched"]["name"] == "step" and again["sched"]["step_epochs"] == 3, again["sched"]
    # where the continued training took over, for `cnnlab report` (a resume that changed settings: another course)
    assert read_run(run_dirs(outputs, "finetune")[-1])["resumed_after_epoch"] == 1


def test_a_resumes_settings_are_judged_against_the_runs_own_choices_and_split(cli, outputs: Path) -> None:
    """Probe 147: `dataset.seed=3` on resume carved another val split — 80 % of it images the run had trained on —
    and the run completed, its val top-1 in the report; the run's own `dataset.val_fraction=0.2` (digits: not a key
    of the default dataset) was refused as "not of the dataset the resumed run uses". Keys of the run's choices
    (its dataset, its sched, its optimizer) are judged against those choices now, a new split is refused."""
    digits = ["model=lenet5", "dataset=digits", "dataset.image_size=16", "trainer.epochs=1",
              "trainer.max_steps_per_epoch=2", "sched=step"]
    assert cli("pretrain", *digits).code == 0
    run = run_dirs(outputs, "pretrain")[0]
    for key in ("dataset.seed=3", "dataset.val_fraction=0.3"):
        refused = cli("pretrain", f"resume={run}", "trainer.epochs=2", key)
        said = " ".join(refused.stderr.split())
        assert refused.code == 2 and f"resume={run}: {key}: the model's run" in said and "another carve would hold " \
            "images the model trained on" in said and f"drop {key.split('=')[0]}=" in said, refused.output
    # probe 199: another seed was recorded as the whole run's, its first epochs drawn with the saved one
    seed = cli("pretrain", f"resume={run}", "trainer.epochs=2", "seed=9")
    said = " ".join(seed.stderr.split())
    assert seed.code == 2 and "seed=9 (saved: 0) would draw the rest of its data order and augmentation from " \
        "another seed than its first epochs" in said and "drop seed=" in said, said
    # probe 200: "start a new run at seed=9, without resume=" gave no command; the one it gives now runs as printed
    # with what was typed now (trainer.epochs=2 for the run's 1: probe 204 found it dropped)
    again = [arg for arg in digits if not arg.startswith("trainer.epochs=")]
    assert hinted_command(said) == ["pretrain", *again, "trainer.epochs=2", "seed=9"], said
    # probe 195: another label subset was recorded for the whole run, epochs before the resume included
    fraction = cli("pretrain", f"resume={run}", "trainer.epochs=2", "dataset.label_fraction=0.5")
    said = " ".join(fraction.stderr.split())
    assert fraction.code == 2 and f"resume={run}: dataset.label_fraction=0.5: the run trained on " \
        "dataset.label_fraction=1.0" in said and "drop dataset.label_fraction= (the run goes on at 1.0)" in said, said
    afresh = hinted_command(said)
    assert afresh == ["pretrain", *again, "trainer.epochs=2", "dataset.label_fraction=0.5"], said
    assert cli(*afresh).code == 0
    assert read_run(run_dirs(outputs, "pretrain")[-1])["dataset"]["config"]["label_fraction"] == 0.5
    shutil.rmtree(run_dirs(outputs, "pretrain")[-1])  # the rest of this test counts the resumed run's folders
    typo = cli("pretrain", f"resume={run}", "trainer.epochs=2", "dataset.val_fractoin=0.2")
    said = " ".join(typo.stderr.split())
    assert typo.code == 2 and "dataset.val_fractoin is not a setting cnnlab reads" in said, typo.output
    assert "did you mean dataset.val_fraction?" in said and "typed with +" not in said, said
    betas = cli("pretrain", f"resume={run}", "trainer.epochs=2", "optim.betas=[0.9,0.99]")  # the run's SGD has none
    assert betas.code == 2 and "torch.optim.SGD takes no betas argument — drop optim.betas=[0.9,0.99] from the " \
        "command" in " ".join(betas.stderr.split()), betas.output
    # probe 150: a new shape (KeyError on amsgrad=true of an AdamW run; "put the run's own last.pt back" on another
    # projection_dim), each a failed run: refused before any work
    for key, what in (("optim._target_=torch.optim.Adam", "would change the optimizer whose state its last.pt holds"),
                      ("dataset.channels=1", "would change the network it trains")):
        changed = cli("pretrain", f"resume={run}", "trainer.epochs=2", key)
        assert changed.code == 2 and what in " ".join(changed.stderr.split()), changed.output
        # probe 204: the command printed for these failed as printed (digits has no dataset.channels; Adam takes no
        # momentum): none is printed where a fresh run would refuse the setting
        assert "without resume=: `" not in changed.stderr, changed.stderr
    assert len(run_dirs(outputs, "pretrain")) == 1  # every refusal before any work
    own = cli("pretrain", f"resume={run}", "trainer.epochs=2", "dataset.val_fraction=0.2", "sched.step_epochs=2",
              "optim.momentum=0.8")  # SGD makes a missing momentum buffer itself
    assert own.code == 0, own.output
    assert "sched.step_epochs=2 (saved: 3)" in own.output and "dataset.val_fraction" not in own.stderr, own.output
    added = cli("pretrain", f"resume={run_dirs(outputs, 'pretrain')[-1]}", "trainer.epochs=3", "+sched.step_epochs=1")
    # probe 150: a `+` on a key of the run's own choice warned "could not be composed … An item is already there"
    assert added.code == 0 and "could not be composed" not in added.output, added.output
    # probe 153: the run's own choices, typed again, were refused as "would change it" (the run had set keys in them)
    last = run_dirs(outputs, "pretrain")[-1]
    again = cli("pretrain", f"resume={last}", "trainer.epochs=4", "dataset=digits", "sched=step", "optim=sgd")
    assert again.code == 0, again.output
    other = cli("pretrain", f"resume={run_dirs(outputs, 'pretrain')[-1]}", "trainer.epochs=5", "sched=cosine")
    assert other.code == 2 and "sched=cosine would change it" in " ".join(other.stderr.split()), other.output


def test_a_damaged_hydra_record_is_said_on_resume(cli, outputs: Path) -> None:
    """Without .hydra/hydra.yaml's record of the group choices, the option each saved section came from is told by
    its keys; that was done without a word (a --config-dir option could be taken for a stock one unseen)."""
    first = cli("finetune", *TINY, "sched=step", "finetune.cache_features=false")
    assert first.code == 0, first.output
    run_dir = run_dirs(outputs, "finetune")[0]
    (run_dir / ".hydra" / "hydra.yaml").write_bytes(b"hydra: [unclosed\n")
    resumed = cli("finetune", f"resume={run_dir}", "trainer.epochs=2")
    said = " ".join(resumed.output.split())
    assert resumed.code == 0 and "hydra.yaml is missing or damaged" in said and "told by its keys" in said, said
    assert read_run(run_dirs(outputs, "finetune")[-1])["metrics"]["epochs"] == 2


def test_an_optimizer_saved_with_another_choice_is_filled_from_that_choice(cli, outputs: Path) -> None:
    """optim sections are told by `_target_`: a run saved with optim=adamw that lacks weight_decay resumed with the
    code's 0.0 ("your optimizer settings replace the saved ones: weight_decay 0.05 → 0.0"), not adamw.yaml's 0.05."""
    import yaml

    first = cli("finetune", *TINY, "optim=adamw", "finetune.cache_features=false")
    assert first.code == 0, first.output
    run_dir = run_dirs(outputs, "finetune")[0]
    saved = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(saved.read_text())
    del config["optim"]["weight_decay"]
    saved.write_text(yaml.safe_dump(config))
    resumed = cli("finetune", f"resume={run_dir}", "trainer.epochs=2")
    assert resumed.code == 0, resumed.output
    said = " ".join(resumed.output.split())
    assert "optim.weight_decay" in said and "saved no value" in said and "0.05 → 0.0" not in said, said
    again = yaml.safe_load((run_dirs(outputs, "finetune")[-1] / ".hydra" / "config.yaml").read_text())
    assert again["optim"]["weight_decay"] == 0.05, again["optim"]


@pytest.mark.parametrize("content", [b"- a\n- b\n", bytes(range(128, 256)) * 2, b"a: [unclosed\n",
                                     b"deep: " + b"[" * 5000 + b"]" * 5000 + b"\n"])  # probe 137: RecursionError
def test_a_damaged_saved_config_is_refused_in_one_line(cli, outputs: Path, tiny_run: Path, content: bytes) -> None:
    """A list at the top of the saved .hydra/config.yaml failed with `AssertionError — this is a bug`, binary garbage
    with UnicodeDecodeError; the run's last.pt cannot be continued without its settings."""
    run_dir = run_dirs(outputs, "pretrain")[0]
    (run_dir / ".hydra" / "config.yaml").write_bytes(content)
    result = cli("pretrain", f"resume={run_dir}", "trainer.epochs=2")
    said = " ".join(result.stderr.split())
    assert result.code == 2 and "Traceback" not in result.stderr and "bug in cnnlab" not in said, result.output
    assert "its saved settings (.hydra/config.yaml) cannot be read" in said
    assert "start a new run without resume=" in said



def test_a_hand_edited_saved_config_is_named_and_leaves_no_run(cli, outputs: Path,
                                                                ctrl_c_after_the_first_checkpoint) -> None:
    """The saved .hydra/config.yaml edited to another model (lenet5 → resnet18): the resume failed as "put the run's
    own last.pt back" (it was the run's own), and left a `failed` run holding the restored metrics.csv."""
    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130
    ctrl_c_after_the_first_checkpoint()
    interrupted = run_dirs(outputs, "pretrain")[0]
    saved = interrupted / ".hydra" / "config.yaml"
    saved_text = saved.read_text()
    saved.write_text(saved_text.replace("name: lenet5", "name: resnet18"))
    refused = cli("pretrain", f"resume={interrupted}")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "does not hold the network and optimizer this run's settings build" in said, said
    assert "put the run's own last.pt and its .hydra/config.yaml back as they were" in said
    assert run_dirs(outputs, "pretrain") == [interrupted]  # refused before any work: no run left
    saved.write_text(saved_text)  # the fix, followed
    assert cli("pretrain", f"resume={interrupted}").code == 0


def _interrupted(cli, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    """`cnnlab ARGS` stopped by Ctrl-C once its first last.pt is saved (conftest's ctrl_c_after_the_first_checkpoint,
    for this one command)."""
    with ctrl_c_after_first_checkpoint(monkeypatch) as stop:
        try:
            assert cli(*args).code == 130
        finally:
            stop()


def test_a_fine_tunes_resume_keeps_the_weights_and_data_it_started_from(cli, outputs: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 153: `cnnlab finetune resume=true` of a run started from `model.weights=latest:pretrain` resolved
    `latest` again: after a newer pretrain on other data it trained its last epochs on that run's data and recorded
    its weights, exit 0; `model.weights=OTHER` typed on a resume did the same. Probe 156: a run that recorded no
    source did it still; its own weights, typed by their run folder, were refused."""
    import json
    import shutil

    assert cli("pretrain", *TINY).code == 0
    first = run_dirs(outputs, "pretrain")[0]
    _interrupted(cli, monkeypatch, "finetune", "model.weights=latest:pretrain", "finetune.mode=full",
                 "trainer.epochs=3", "trainer.batch_size=16")
    interrupted = run_dirs(outputs, "finetune")[0]
    row = next(line for line in cli("list", "runs").stdout.splitlines() if "interrupted" in line)
    assert "lenet5" in row and "resnet18" not in row, row  # probe 199: the config's default model= was listed
    other = [a for a in TINY if not a.startswith("dataset.train_size")] + ["dataset.train_size=48"]
    assert cli("pretrain", *other).code == 0  # a newer pretrain, on other data
    typed = cli("finetune", f"resume={interrupted}", f"model.weights={run_dirs(outputs, 'pretrain')[-1]}")
    said = " ".join(typed.stderr.split())
    assert typed.code == 2 and "would change the weights it started from" in said, typed.output
    legacy = shutil.copytree(interrupted, tmp_path / "legacy")  # as recorded before the source was kept at the start
    record = json.loads((legacy / "run.json").read_text())
    del record["source"]
    (legacy / "run.json").write_text(json.dumps(record))
    unknown = cli("finetune", f"resume={legacy}")
    said = " ".join(unknown.stderr.split())
    assert unknown.code == 2 and "does not record which run that was" in said, unknown.output
    moved = first.rename(tmp_path / "moved")  # probe 158: the weights run moved, named where it is now
    # probe 199: the fix "finish it first (`cnnlab finetune resume=RUN`)" dropped the model.weights= it needs
    linear = cli("finetune", f"resume={interrupted}", f"model.weights={moved}", "finetune.mode=linear")
    said = " ".join(linear.stderr.split())
    assert linear.code == 2 and f"finish it first (`cnnlab finetune resume={interrupted} model.weights={moved}`)" \
        in said, said
    resumed = cli("finetune", f"resume={interrupted}", f"model.weights={moved}")  # its own, by its run folder
    assert resumed.code == 0, resumed.output
    record = read_run(run_dirs(outputs, "finetune")[-1])
    assert record["source"]["run"] == str(moved.resolve()) and record["dataset"]["train_size"] == 64, record
    assert "resume_changed" not in record and "replace the saved" not in resumed.output  # probe 199: the same file


def test_a_fine_tune_on_its_weights_runs_data_refuses_another_dataset_on_resume(
        cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 156: a fine-tune on digits (its weights run's data) saved the default dataset section (synthetic), so
    `resume=RUN dataset=synthetic` matched it and trained its last epochs on synthetic shapes, exit 0."""
    digits = ["model=lenet5", "dataset=digits", "dataset.image_size=16", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", *digits, "trainer.epochs=1").code == 0
    _interrupted(cli, monkeypatch, "finetune", "model.weights=latest:pretrain", "finetune.mode=full",
                 "trainer.epochs=3", "trainer.max_steps_per_epoch=2")
    interrupted = run_dirs(outputs, "finetune")[0]
    refused = cli("finetune", f"resume={interrupted}", "dataset=synthetic")
    said = " ".join(refused.stderr.split())
    assert refused.code == 2 and "on the data it trained on (dataset digits" in said, refused.output
    assert cli("finetune", f"resume={interrupted}").code == 0  # the fix: drop dataset=
    assert read_run(run_dirs(outputs, "finetune")[-1])["dataset"]["name"] == "digits"


def ctrl_c_at_the_second_checkpoint(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Ctrl-C where the trainer saves its second checkpoint (epoch 1's is kept); returns the real _save_state."""
    save_state, saves = Trainer._save_state, []

    def interrupted_at_the_second(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt
        save_state(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_save_state", interrupted_at_the_second)
    return save_state


def test_an_interrupted_run_records_the_epochs_it_finished(cli, outputs: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in epoch 2: run.json said `metrics: {}`, epoch 1's scores only in metrics.csv (probe 67). The record
    now keeps up with each epoch, `cnnlab list runs` shows how far the run got, and a resumed run's record has them
    all."""
    save_state = ctrl_c_at_the_second_checkpoint(monkeypatch)
    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130
    record = only_run(outputs, "pretrain")
    run = Path(record["run_dir"])
    assert record["status"] == "interrupted" and record["metrics"]["epochs"] == 1
    epoch = record["metrics"]["history"][0]
    row = (run / "metrics.csv").read_text().splitlines()[1].split(",")
    assert epoch["epoch"] == 1 and f"{epoch['val_acc']:.6g}" in {f"{float(v):.6g}" for v in row[1:] if v}
    listed = cli("list", "runs")
    assert f"{epoch['val_acc']:.2%} (epoch 1)" in listed.stdout, listed.output
    import shutil  # probe 199: its last.pt deleted, "pick a run that completed at least one epoch" of such a run

    copy = shutil.copytree(run, outputs.parent / "copy")
    (copy / "last.pt").unlink()
    gone = cli("pretrain", f"resume={copy}")
    said = " ".join(gone.stderr.split())
    assert gone.code == 2 and "the run's last.pt is gone, though run.json records 1 epoch done — put its last.pt " \
        "back" in said, said
    row = next(line for line in listed.stdout.splitlines() if "(epoch 1)" in line)
    assert "lenet5" in row  # probe 70: the model column was blank until the run recorded its model
    monkeypatch.setattr(Trainer, "_save_state", save_state)
    assert cli("pretrain", "resume=true").code == 0
    resumed = next(d for d in run_dirs(outputs, "pretrain") if d != run)
    history = read_run(resumed)["metrics"]["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3] and history[0] == epoch


def test_the_resume_hint_of_a_run_in_a_folder_of_its_own_names_that_folder(cli, outputs: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 167: a run given `hydra.run.dir=` and stopped said `cnnlab pretrain resume=true`, which looks in
    outputs/pretrain/ only and found no run to continue."""
    save_state = ctrl_c_at_the_second_checkpoint(monkeypatch)
    mine = tmp_path / "my run"
    result = cli("pretrain", *TINY, "trainer.epochs=2", f"hydra.run.dir='{mine}'")
    assert result.code == 130 and "continue with `cnnlab pretrain 'resume=" in result.stderr, result.output
    monkeypatch.setattr(Trainer, "_save_state", save_state)
    resumed = cli(*hinted_command(result.stderr))
    assert resumed.code == 0 and "resuming after epoch 1" in resumed.output, resumed.output
    assert read_run(run_dirs(outputs, "pretrain")[-1])["resumed_from"] == str(mine.resolve())


def test_sigterm_to_the_process_group_with_loader_workers_is_one_line(outputs: Path, tmp_path: Path) -> None:
    """Probe 71: SIGTERM sent to the whole process group (timeout, scancel) also stops the DataLoader workers, and
    torch's SIGCHLD handler printed an "Exception ignored … DataLoader worker … killed by signal" traceback after the
    one-line message."""
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "CNNLAB_OUTPUTS": str(outputs), "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "pretrain", *TINY, "trainer.epochs=1000",
                                 "trainer.workers=1"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
    _first_checkpoint(outputs, proc, log)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    said = log.read_text()
    assert "Traceback" not in said and "Exception ignored" not in said, said
    assert said.strip().splitlines()[-1].startswith("error: interrupted (SIGTERM)")


def test_a_last_pt_that_is_not_the_runs_own_is_refused_before_any_work(cli, outputs: Path,
                                                                       ctrl_c_after_the_first_checkpoint) -> None:
    """Probe 139: another run's last.pt copied into an interrupted run "continued" to a completed run of the other
    run's weights and history, without a word; one of another network failed inside training ("Error(s) in loading
    state_dict for LeNet5:", a fix blaming the settings) and left a failed run; an interrupted run already
    continued by another was resumed again without a word."""
    import shutil

    assert cli("pretrain", *TINY, "trainer.epochs=3").code == 130  # the epoch's save and record, then the stop
    interrupted = run_dirs(outputs, "pretrain")[0]
    assert len(read_run(interrupted)["metrics"]["history"]) == 1  # kept whole (probe 139: lost to a Ctrl-C)
    ctrl_c_after_the_first_checkpoint()
    own = (interrupted / "last.pt").read_bytes()
    assert cli("pretrain", *TINY, "trainer.epochs=1", "seed=99", "optim.lr=0.2").code == 0
    other = run_dirs(outputs, "pretrain")[-1]
    shutil.copy(other / "last.pt", interrupted / "last.pt")
    refused = cli("pretrain", f"resume={interrupted}")
    said = " ".join(refused.stderr.split())
    # told by the runs' ids (probe 145); a run recorded without one, by its epochs (tests/steps/test_resume.py)
    assert refused.code == 2 and "its last.pt was written by another run (run_id" in said, refused.output
    assert "put the run's own last.pt back, or start a new run without resume=" in said
    assert len(run_dirs(outputs, "pretrain")) == 2  # refused before any work: no run left
    (interrupted / "last.pt").write_bytes(own)  # the fix, followed
    assert cli("pretrain", f"resume={interrupted}").code == 0
    again = cli("pretrain", f"resume={interrupted}")  # named again, after a run continued it to completion
    assert again.code == 0 and "continued that run already" in " ".join(again.stderr.split()), again.output


def test_a_resume_keeps_the_data_its_run_trained_on_not_its_weights_runs(cli, outputs: Path, tiny_run: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 158: a fine-tune started with `dataset=digits dataset.label_fraction=0.5` from weights trained on
    synthetic shapes resumed (`resume=true`, the interrupt's own line) on the weights run's data — synthetic, all
    labels — and recorded it, exit 0: the start's typed dataset settings are not on the resume's command line."""
    _interrupted(cli, monkeypatch, "finetune", "model.weights=latest:pretrain", "dataset=digits",
                 "dataset.label_fraction=0.5", "finetune.mode=full", "trainer.epochs=2",
                 "trainer.max_steps_per_epoch=2")
    started = read_run(run_dirs(outputs, "finetune")[0])["dataset"]
    assert cli("finetune", "resume=true").code == 0
    resumed = read_run(run_dirs(outputs, "finetune")[-1])["dataset"]
    assert (resumed["name"], resumed["train_size"], resumed["val_size"]) == \
        ("digits", started["train_size"], started["val_size"]), (started, resumed)
    assert resumed["config"]["label_fraction"] == 0.5


def test_a_fine_tune_on_its_weights_runs_moved_folder_resumes_with_dataset_root(
        cli, outputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 159: the resume's own fix (`dataset.root=DIR` where the pictures moved) was refused as "a setting of …
    not of the dataset this run uses (dataset.name=synthetic)" — its saved section was the default one."""
    from helpers import random_image_folder

    folder = random_image_folder(tmp_path / "pics", per_class=8)
    tiny = ["model=lenet5", "trainer.batch_size=4", "trainer.max_steps_per_epoch=2"]
    assert cli("pretrain", "dataset=imagefolder", f"dataset.root={folder}", *tiny, "trainer.epochs=1").code == 0
    _interrupted(cli, monkeypatch, "finetune", "model.weights=latest:pretrain", "finetune.mode=full", *tiny,
                 "trainer.epochs=2")
    started = read_run(run_dirs(outputs, "finetune")[0])["dataset"]
    moved = folder.rename(tmp_path / "moved")
    gone = cli("finetune", "resume=true")
    assert gone.code == 2 and "dataset.root=DIR" in " ".join(gone.stderr.split()), gone.output
    _interrupted(cli, monkeypatch, "finetune", "resume=true", f"dataset.root={moved}", "trainer.epochs=3")  # the fix
    resumed = cli("finetune", "resume=true")  # and a resume of that resume
    assert resumed.code == 0, resumed.output
    record = read_run(run_dirs(outputs, "finetune")[-1])["dataset"]
    assert (record["config"]["root"], record["train_size"], record["val_size"]) == \
        (str(moved), started["train_size"], started["val_size"]), record


def test_a_new_run_command_printed_from_another_folder_finds_the_pictures(cli, outputs: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 204: the command that starts a run afresh repeated its `dataset.root=imgs` relative to the folder it was
    started in, and failed from any other; the `dataset.root=../imgs` typed on the resume was dropped."""
    random_image_folder(outputs.parent / "imgs", per_class=8)
    first = ["model=lenet5", "dataset=imagefolder", "dataset.root=imgs", "dataset.image_size=16", "trainer.epochs=1",
             "trainer.batch_size=4", "trainer.max_steps_per_epoch=1"]
    assert cli("pretrain", *first).code == 0
    run = run_dirs(outputs, "pretrain")[0]
    (outputs.parent / "elsewhere").mkdir()
    monkeypatch.chdir(outputs.parent / "elsewhere")
    refused = " ".join(cli("pretrain", f"resume={run}", "seed=3").stderr.split())
    afresh = hinted_command(refused)
    assert f"dataset.root={outputs.parent / 'imgs'}" in afresh and afresh[-1] == "seed=3", refused
    assert cli(*afresh).code == 0
    typed = cli("pretrain", f"resume={run}", "seed=3", "dataset.root=../imgs")
    typed = hinted_command(" ".join(typed.stderr.split()))
    assert "dataset.root=../imgs" in typed and not any(a.endswith("/imgs") and "../" not in a for a in typed), typed
    # probe 207: the resume itself read the saved `imgs` from here ("its image folder imgs is gone"), and the hint for
    # a complete run dropped the dataset.root= typed
    nothing = " ".join(cli("pretrain", f"resume={run}", "dataset.root=../imgs").stderr.split())
    assert "there is nothing to continue" in nothing and hinted_command(nothing) == [
        "pretrain", f"resume={run}", "dataset.root=../imgs", "trainer.epochs=2"], nothing
    longer = cli("pretrain", f"resume={run}", "trainer.epochs=2")
    assert longer.code == 0, longer.output



def test_a_last_pt_that_cannot_be_the_runs_past_is_refused_before_any_step(cli, outputs: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 212: a last.pt whose first layer was stored as int32 (all zeros) was resumed, trained on and completed,
    exit 0, and reported beside a clean resume as one seed; NaN weights or `epoch` −5 trained and then blamed
    optim.lr; a `history` of text was an AttributeError traceback."""
    _interrupted(cli, monkeypatch, "pretrain", *TINY[:-2], "trainer.epochs=3", "trainer.batch_size=16")
    run = run_dirs(outputs, "pretrain")[0]
    good = torch.load(run / "last.pt", weights_only=True)
    weight = good["model"]["features.0.weight"]
    damages = {"'features.0.weight' holds int32 values, not floating-point weights":
               {"model": {**good["model"], "features.0.weight": weight.to(torch.int32)}},
               "its weight 'features.0.weight' holds NaN or infinite values":
               {"model": {**good["model"], "features.0.weight": torch.full_like(weight, float("nan"))}},
               "its `epoch` is -5, not a count of epochs done": {"epoch": -5},
               "its `history` is a str, not one record per epoch": {"history": "garbage"}}
    for said, damage in damages.items():
        torch.save({**good, **damage}, run / "last.pt")
        result = cli("pretrain", f"resume={run}")
        line = " ".join(result.stderr.split())
        assert result.code == 2 and said in line and "Traceback" not in result.output, result.output
        assert "put the run's own last.pt back" in line
    assert run_dirs(outputs, "pretrain") == [run]  # refused before any step: no run folder left
