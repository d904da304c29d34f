from __future__ import annotations

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from cnnlab.data.loaders import make_loader
from cnnlab.errors import CnnlabError


def index_dataset(n: int) -> TensorDataset:
    """Item i is (i, i): the batches spell out the sampling order."""
    return TensorDataset(torch.arange(n), torch.arange(n))


def epoch_order(loader, epoch: int) -> list[int]:
    loader.sampler.set_epoch(epoch)
    return [int(i) for batch, _ in loader for i in batch]


def test_two_ranks_together_see_the_single_process_order() -> None:
    data = index_dataset(24)
    single = epoch_order(make_loader(data, 4, shuffle=True, seed=7), epoch=3)
    ranks = [epoch_order(make_loader(data, 2, shuffle=True, seed=7, rank=r, world_size=2), epoch=3) for r in (0, 1)]
    interleaved = [index for pair in zip(*ranks) for index in pair]
    assert interleaved == single
    assert sorted(single) == list(range(24))


@pytest.mark.parametrize("n, per_rank, kept", [(21, 4, 21), (25, 2, 24), (29, 4, 29), (23, 2, 20), (17, 4, 16),
                                                (19, 4, 16)])
def test_ranks_share_a_set_that_does_not_divide_by_them_without_repeating_an_image(n: int, per_rank: int,
                                                                                  kept: int) -> None:
    """Probe 89: DistributedSampler padded 199 images over 2 ranks to 200 (one image trained and counted twice an
    epoch). Now the ranks' shares of the last global batch may differ by one image; a last global batch that would
    give some rank fewer than 2 images (a BatchNorm of one value) sits out the epoch, as one process's does."""
    data = index_dataset(n)
    single = epoch_order(make_loader(data, 2 * per_rank, shuffle=True, seed=7, min_share=2), epoch=1)
    ranks = [make_loader(data, per_rank, shuffle=True, seed=7, rank=r, world_size=2, min_share=2) for r in (0, 1)]
    orders = [epoch_order(loader, epoch=1) for loader in ranks]
    assert len(ranks[0]) == len(ranks[1])  # the same number of steps: DDP would wait forever for a missing one
    interleaved = [index for pair in zip(*orders) for index in pair] + orders[0][len(orders[1]):]
    assert interleaved == single[:kept] and len(set(interleaved)) == kept == sum(map(len, orders))


def test_order_depends_on_seed_and_epoch_only() -> None:
    data = index_dataset(32)
    order = epoch_order(make_loader(data, 8, shuffle=True, seed=1), epoch=0)
    assert order == epoch_order(make_loader(data, 8, shuffle=True, seed=1), epoch=0)
    assert order != epoch_order(make_loader(data, 8, shuffle=True, seed=1), epoch=1)
    assert order != epoch_order(make_loader(data, 8, shuffle=True, seed=2), epoch=0)
    assert order != list(range(32))


def test_no_shuffle_keeps_dataset_order_and_drop_last_drops_the_tail() -> None:
    data = index_dataset(10)
    assert epoch_order(make_loader(data, 4, shuffle=False, seed=0), epoch=5) == list(range(10))
    loader = make_loader(data, 4, shuffle=False, seed=0, drop_last=True)
    assert epoch_order(loader, epoch=0) == list(range(8))


class RandomItems(torch.utils.data.Dataset):
    """Items drawn from torch's RNG, as a random augmentation would."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(1) + index


def test_workers_are_seeded_so_runs_repeat() -> None:
    """Worker seeds come from the loader's own generator, seeded with the run's seed."""

    def run() -> torch.Tensor:
        torch.manual_seed(5)
        loader = make_loader(RandomItems(), 3, shuffle=False, seed=5, workers=1)
        loader.sampler.set_epoch(0)
        return torch.cat(list(loader))

    first = run()
    assert torch.equal(first, run())
    assert make_loader(RandomItems(), 3, shuffle=False, seed=5).pin_memory == torch.cuda.is_available()


def test_workers_start_inside_a_joblib_job() -> None:
    from joblib import Parallel, delayed

    # loky's own start method is the default there; DataLoader could not start its workers with it
    from loky_jobs import loader_order_with_one_worker  # importable by the loky worker (tests/ is on its path)

    inside = Parallel(n_jobs=2, backend="loky")(delayed(loader_order_with_one_worker)(8) for _ in range(2))
    assert inside[0] == epoch_order(make_loader(index_dataset(8), 4, shuffle=True, seed=3), epoch=0)


def augmentations_by_index(workers: int = 0, *, epoch: int = 1, seed: int = 5, rank: int = 0,
                           world_size: int = 1) -> dict[int, float]:
    """{index: the random draw of its item} for one shuffled epoch, read as a training loader reads it."""
    loader = make_loader(RandomItems(), 2 // world_size, shuffle=True, seed=seed, workers=workers, rank=rank,
                         world_size=world_size)
    loader.sampler.set_epoch(epoch)
    drawn = torch.cat(list(loader)).flatten().tolist()
    return {int(value): value - int(value) for value in drawn}


def test_an_image_gets_the_same_augmentation_with_any_worker_count_and_on_any_rank() -> None:
    """Each worker used to draw from its own stream, so the worker count changed a run's augmentations (and its
    metrics: up to 3.8 points after one epoch); now an item's draw depends on (seed, epoch, index) alone."""
    torch.manual_seed(0)
    single = augmentations_by_index(workers=0)
    assert augmentations_by_index(workers=1) == single
    assert augmentations_by_index(workers=2) == single
    ranks = [augmentations_by_index(rank=r, world_size=2) for r in (0, 1)]
    assert {**ranks[0], **ranks[1]} == single and not ranks[0].keys() & ranks[1].keys()


def test_augmentations_change_with_the_epoch_and_the_seed() -> None:
    first = augmentations_by_index(epoch=1)
    assert augmentations_by_index(epoch=1) == first
    assert augmentations_by_index(epoch=2) != first
    assert augmentations_by_index(seed=6) != first
    assert len(set(first.values())) == len(first)  # neighbouring indices draw unrelated values


def test_reading_batches_leaves_the_global_rng_alone() -> None:
    """Dropout and mixup draw from the global RNG: reading a training epoch, with or without workers, must not move
    it, or the worker count would change them too (a new iterator per epoch drew a worker seed from it)."""
    torch.manual_seed(3)
    expected = torch.rand(4)
    for workers in (0, 1):
        torch.manual_seed(3)
        loader = make_loader(RandomItems(), 3, shuffle=True, seed=5, workers=workers)
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            list(loader)
        assert torch.equal(torch.rand(4), expected), f"{workers} workers moved the global RNG"


class CountedReads(TensorDataset):
    """A TensorDataset that counts the items read one at a time."""

    reads = 0

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        CountedReads.reads += 1
        return super().__getitem__(index)


def test_a_tensor_dataset_is_read_a_batch_at_a_time_with_the_per_item_batches() -> None:
    """Cached features (a linear probe reads 54,000 of them per epoch) were read item by item and stacked: half the
    probe's time on a CPU. Now one indexing op per batch, and the same batches, value for value, shuffled or not."""
    features, labels = torch.randn(37, 5), torch.randint(0, 3, (37,))
    CountedReads.reads = 0
    batched = make_loader(CountedReads(features, labels), 8, shuffle=True, seed=3, drop_last=True)
    per_item = make_loader(Subset(TensorDataset(features, labels), range(37)), 8, shuffle=True, seed=3,
                           drop_last=True)  # not a TensorDataset: read item by item
    for epoch in (0, 2):
        batched.sampler.set_epoch(epoch)
        per_item.sampler.set_epoch(epoch)
        pairs = list(zip(batched, per_item, strict=True))
        assert len(pairs) == 4
        for (x, y), (x_ref, y_ref) in pairs:
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and y.dtype == torch.int64
    in_order = make_loader(CountedReads(features, labels), 10, shuffle=False, seed=0)
    x, y = next(iter(in_order))
    assert torch.equal(x, features[:10]) and torch.equal(y, labels[:10])
    assert CountedReads.reads == 0


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        if index == 2:
            raise CnnlabError("image x/2.jpg cannot be read (OSError: broken data stream)", fix="delete x/2.jpg")
        return torch.zeros(3), index


@pytest.mark.parametrize("workers", [0, 1])
def test_a_one_line_error_raised_in_a_worker_stays_one_line(workers: int) -> None:
    """torch re-raised a worker's CnnlabError with the worker's whole traceback as its message: `error:` followed by
    a traceback, where 0 workers gave one line (a Flowers JPEG damaged inside, read mid-epoch)."""
    with pytest.raises(CnnlabError) as caught:
        list(make_loader(_Unreadable(), 2, shuffle=False, seed=0, workers=workers))
    assert str(caught.value) == "error: image x/2.jpg cannot be read (OSError: broken data stream) — delete x/2.jpg"
