"""steps/training.py: the default DataLoader workers follow the job's share of the cores."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cnnlab import environment
from cnnlab.environment import PARALLEL_JOBS_ENV
from cnnlab.steps.training import loader_workers


@pytest.mark.parametrize(("cores", "jobs", "expected"), [(2, 1, 1), (2, 2, 0), (8, 2, 3), (16, 1, 4), (1, 1, 0)])
def test_default_workers_are_the_jobs_share_less_one(monkeypatch: pytest.MonkeyPatch, cores: int, jobs: int,
                                                    expected: int) -> None:
    monkeypatch.setattr(environment, "cpu_info", lambda: {"usable_cores": cores})
    monkeypatch.setenv(PARALLEL_JOBS_ENV, str(jobs))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    files = SimpleNamespace(in_memory=False)
    assert loader_workers(SimpleNamespace(workers=None), files) == expected  # type: ignore[arg-type]
    assert loader_workers(SimpleNamespace(workers=None), SimpleNamespace(in_memory=True)) == 0  # type: ignore[arg-type]
    assert loader_workers(SimpleNamespace(workers=3), files) == 3  # type: ignore[arg-type]


def test_more_workers_than_cores_is_said_once_in_cnnlab_words(monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """torch's UserWarning ("This DataLoader will create 4 worker processes in total...") came twice per run."""
    import os
    import warnings

    import torch
    from torch.utils.data import TensorDataset

    from cnnlab.data.loaders import make_loader

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(environment, "cpu_info", lambda: {"usable_cores": cores})
    assert loader_workers(SimpleNamespace(workers=cores + 1), SimpleNamespace(in_memory=False)) == cores + 1  # type: ignore[arg-type]
    assert f"trainer.workers={cores + 1} starts more loader processes than the {cores} usable cores" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's warning would fail the test
        loader = make_loader(TensorDataset(torch.arange(8)), 4, shuffle=True, seed=0, workers=cores + 1)
        loader.sampler.set_epoch(0)
        assert sorted(int(i) for (batch,) in loader for i in batch) == list(range(8))


def test_a_resumed_training_with_no_epoch_left_keeps_the_state_it_continued(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An extended search that chose the same trial again trained no epoch and wrote no last.pt, yet recorded it
    as its checkpoint: extending that run again failed."""
    from cnnlab.steps.training import keep_state

    old, new = tmp_path / "old" / "last.pt", tmp_path / "new" / "last.pt"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_bytes(b"state")
    ctx = SimpleNamespace(is_main=True)
    keep_state(ctx, new, None)  # a fresh run: nothing to keep
    assert not new.exists()
    keep_state(ctx, new, old)
    assert new.read_bytes() == b"state"
    new.write_bytes(b"trained on")  # a run that trained writes its own: never replaced
    keep_state(ctx, new, old)
    assert new.read_bytes() == b"trained on"


def test_an_epoch_capped_by_max_steps_says_how_many_images_it_trains_on(cli, outputs) -> None:  # type: ignore
    """Probe 56: the split's size was the only count said ("on 1,437 images"), where trainer.max_steps_per_epoch
    trained each epoch on 1,280 of them."""
    from helpers import TINY, run_dirs

    assert cli("pretrain", *TINY, "trainer.max_steps_per_epoch=3").code == 0
    log = (run_dirs(outputs, "pretrain")[0] / "run.log").read_text()
    assert "trainer.max_steps_per_epoch=3: each epoch trains 3 of 4 batches (48 of 64 images)" in log
    assert cli("pretrain", *TINY, "trainer.max_steps_per_epoch=4").code == 0  # no cap: nothing to say
    assert "max_steps_per_epoch" not in (run_dirs(outputs, "pretrain")[1] / "run.log").read_text()


@pytest.mark.parametrize(("device", "workers", "expected"), [("cuda", 14, 2), ("cuda", 4, 8), ("cuda", 0, 8),
                                                              ("cuda", 20, 1), ("cpu", 14, 8)])
def test_on_cuda_the_training_process_leaves_the_workers_their_cores(monkeypatch: pytest.MonkeyPatch, device: str,
                                                                    workers: int, expected: int) -> None:
    """An H200 host, 16 cores, 14 workers: torch's 16 threads made a SimCLR step 98 ms instead of 31 ms."""
    import logging

    import torch

    from cnnlab.steps.training import cores_left_to_workers

    monkeypatch.setattr(environment, "cpu_info", lambda: {"usable_cores": 16})
    monkeypatch.delenv(PARALLEL_JOBS_ENV, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    ctx = SimpleNamespace(is_main=True, log=logging.getLogger("test"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        runtime = SimpleNamespace(device=torch.device(device))
        with cores_left_to_workers(ctx, runtime, workers) as threads:  # type: ignore[arg-type]
            assert torch.get_num_threads() == threads == expected
        assert torch.get_num_threads() == 8  # what the process had before, after training
    finally:
        torch.set_num_threads(before)


def test_a_warm_up_longer_than_the_run_is_a_recorded_warning(cli, outputs) -> None:
    """Probe 81: `sched.warmup_epochs=5 trainer.epochs=2` was cut to all steps but one without a word, so the
    learning rate never decayed and the run ended at its peak."""
    from helpers import TINY, read_run, run_dirs

    result = cli("pretrain", *TINY, "sched.warmup_epochs=3")
    assert result.code == 0, result.output
    [warning] = read_run(run_dirs(outputs, "pretrain")[0])["warnings"]
    assert "sched.warmup_epochs=3 would take (nearly) all of the run's 4 steps" in warning, warning
    assert "the warm-up is cut to 2 of them (half the run at most, two steps after it where the run has them), then " \
        "cosine" in " ".join(warning.split())
    said = cli("pretrain", *TINY, "sched.warmup_epochs=1")  # the default: as long as a 1-epoch run
    assert said.code == 0 and "the warm-up is cut to 2 of them" in " ".join(said.output.split())
    assert not read_run(run_dirs(outputs, "pretrain")[-1]).get("warnings")
    lrs = [e["lr"] for e in read_run(run_dirs(outputs, "pretrain")[-1])["metrics"]["history"]]
    assert lrs[-1] < 0.05 * 0.6  # the 1-epoch run decays (probe 103: it ended at its peak, 0.05)


def test_a_batch_larger_than_the_set_is_offered_one_that_splits_over_the_ranks() -> None:
    """Probe 92: 2 ranks, 51 training images, batch 64: the fix offered batch 51, which does not split over 2."""
    from types import SimpleNamespace

    from cnnlab.errors import CnnlabError
    from cnnlab.steps.training import check_batch

    with pytest.raises(CnnlabError) as caught:
        check_batch(SimpleNamespace(batch_size=64), SimpleNamespace(world_size=2), 51)  # type: ignore[arg-type]
    assert "use trainer.batch_size=50 (at most 51, a multiple of the 2 ranks)" in (caught.value.fix or "")
    with pytest.raises(CnnlabError) as caught:
        check_batch(SimpleNamespace(batch_size=64), SimpleNamespace(world_size=1), 51)  # type: ignore[arg-type]
    assert caught.value.fix == "use trainer.batch_size=51 (at most 51)"


@pytest.mark.parametrize("batch", [64, 5, 4])
def test_fewer_training_images_than_ranks_are_refused_with_a_fix_that_can_work(batch: int) -> None:
    """Probe 148: 5 ranks, 4 images: "use trainer.batch_size=5 (at most 4, a multiple of the 5 ranks)", which looped;
    a batch of 4 was told to use a multiple of 5. No batch splits 4 images over 5 ranks."""
    from types import SimpleNamespace

    from cnnlab.errors import CnnlabError
    from cnnlab.steps.training import check_batch

    with pytest.raises(CnnlabError) as caught:
        check_batch(SimpleNamespace(batch_size=batch), SimpleNamespace(world_size=5), 4)  # type: ignore[arg-type]
    assert caught.value.message == "the training set (4 images) is smaller than the 5 processes: each needs at " \
        "least one image a step"
    assert caught.value.fix == "start at most 4 (torchrun --nproc_per_node=4), or add training images"
    check_batch(SimpleNamespace(batch_size=4), SimpleNamespace(world_size=4), 4)  # type: ignore[arg-type]


def test_images_that_sit_out_every_epoch_under_torchrun_are_a_recorded_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 94: 193 images, batch 64, 2 ranks: the last batch's one image sat out every epoch (counted 192, the
    schedule planned 3 steps an epoch, not 4), silently."""
    from types import SimpleNamespace

    import torch
    from torch.utils.data import TensorDataset

    from cnnlab.data.loaders import make_loader
    from cnnlab.steps import training

    said: list[str] = []
    monkeypatch.setattr(training, "record_warning", lambda ctx, message: said.append(message))
    data = TensorDataset(torch.arange(193), torch.arange(193))
    loader = make_loader(data, 32, shuffle=True, seed=0, rank=0, world_size=2, min_share=1)
    training.say_images_left_out(SimpleNamespace(), SimpleNamespace(world_size=2), loader)  # type: ignore[arg-type]
    assert said == ["1 of the 193 training images sit out each epoch (other ones each epoch): the last batch would "
                    "give a rank no image, where one process trains them — a training set or trainer.batch_size that "
                    "leaves at least 2 images for the last batch keeps every image"]
    whole = make_loader(TensorDataset(torch.arange(195), torch.arange(195)), 32, shuffle=True, seed=0, rank=0,
                        world_size=2, min_share=1)
    training.say_images_left_out(SimpleNamespace(), SimpleNamespace(world_size=2), whole)  # type: ignore[arg-type]
    assert len(said) == 1  # 2 + 1 of the last 3: every image trains, nothing said


def test_one_process_says_the_image_its_batchnorm_leaves_out(caplog) -> None:
    """Probe 129: 70 images at batch 69: the last batch's one image sat out each epoch unsaid ("70 train")."""
    import logging
    from types import SimpleNamespace

    import torch
    from torch.utils.data import TensorDataset

    from cnnlab.data.loaders import make_loader
    from cnnlab.steps import training

    log = logging.getLogger("cnnlab.test")
    loader = make_loader(TensorDataset(torch.arange(70), torch.arange(70)), 69, shuffle=True, seed=0, min_share=2)
    with caplog.at_level(logging.INFO, logger="cnnlab.test"):
        training.say_images_left_out(SimpleNamespace(log=log), SimpleNamespace(world_size=1), loader)  # type: ignore
    [line] = caplog.messages
    assert line.startswith("1 of the 70 training images sits out each epoch") and "trainer.batch_size=68" in line
    assert 70 % 68 >= 2  # the batch size named keeps every image
    caplog.clear()
    whole = make_loader(TensorDataset(torch.arange(70), torch.arange(70)), 68, shuffle=True, seed=0, min_share=2)
    training.say_images_left_out(SimpleNamespace(log=log), SimpleNamespace(world_size=1), whole)  # type: ignore
    assert not caplog.messages
