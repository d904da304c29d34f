"""DataLoaders whose order and augmentations depend only on (seed, epoch, index) — the same for one process, for
any number of DataLoader workers and for N DDP ranks."""

from __future__ import annotations

import multiprocessing
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, TensorDataset

from cnnlab.errors import CnnlabError
from cnnlab.interrupts import raise_if_interrupted


MASK64 = 2**64 - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 64-bit seed for item `index` in epoch `epoch` of a run seeded with `seed`: the three mixed by SplitMix64's
    finaliser (Steele et al. 2014), so neighbouring indices and epochs get unrelated random streams."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xD1B54A32D192ED03 + index) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class EpochSampler(Sampler[tuple[int, int]]):
    """Rank `rank`'s share of one shuffled pass: DistributedSampler's permutation of (seed + epoch), every
    `world_size`-th index of it from `rank` on, as (epoch, index) pairs so that the dataset knows which epoch asks.

    Unlike DistributedSampler, nothing is padded: it repeated images to make the set divide by the ranks (199
    images over 2 ranks trained one image twice an epoch and counted 200; probe 89), so a run under torchrun was not
    the run of one process. Here the ranks' shares of the last global batch (`batch_size` a rank) may differ by one
    image (the trainer weighs their losses by their sizes: engine/trainer.py); where some rank would get fewer than
    `min_share` images of it (0: it would take one step less and DDP would wait for it forever; 1: a BatchNorm of
    one value per channel cannot train — the trainer lowers it to 1 for a network without BatchNorm), that last
    global batch sits out the epoch — other images each epoch, as they are shuffled."""

    def __init__(self, dataset: Dataset, *, rank: int, world_size: int, seed: int, batch_size: int,
                 min_share: int = 1) -> None:
        self.size = len(dataset)  # type: ignore[arg-type]
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.global_batch = batch_size * world_size
        self.epoch = 0
        self.min_share = min_share

    @property
    def kept(self) -> int:
        """How many images the epoch holds: all, or all but a last global batch that would give a rank fewer than
        `min_share` images."""
        last = self.size % self.global_batch or self.global_batch
        return self.size - last if self.size > last and last // self.world_size < self.min_share else self.size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.kept, self.world_size))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)  # DistributedSampler's: runs before it keep their order
        order = torch.randperm(self.size, generator=generator)[:self.kept]
        epoch = self.epoch
        return ((epoch, int(index)) for index in order[self.rank::self.world_size])


class SeededItems(Dataset):
    """Item (epoch, i) is item i of `base`, drawn with torch's CPU RNG seeded by sample_seed(seed, epoch, i) and
    restored afterwards. The random transforms (torchvision.transforms.v2 draws from torch's CPU RNG) then give an
    image the same augmentation whichever process reads it: the main process (0 workers), any of N workers, or
    any DDP rank. Before, each worker had its own stream, so the worker count changed the augmentations and the
    metrics of a run (up to 3.8 points of val top-1 after one LeNet-5 epoch on Fashion-MNIST)."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base = base
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        state = torch.get_rng_state()  # the caller's stream (dropout, mixup in the main process) stays untouched
        torch.default_generator.manual_seed(sample_seed(self.seed, epoch, index))
        try:
            return self.base[index]
        finally:
            torch.set_rng_state(state)


class TensorBatches(Dataset):
    """A TensorDataset read a batch at a time: DataLoader hands a batch's keys to __getitems__, which one indexing
    op per tensor answers, instead of a read per item and a stack. A linear probe reads its cached features
    20 epochs × 54,000 times: item by item, that was half its time on a CPU and most of it on a GPU. A TensorDataset
    draws nothing random, so its keys (indices, or EpochSampler's (epoch, index) pairs) need no seeding, and the
    batches are the per-item path's, value for value."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, ...]:
        return self.base[_index(key)]

    def __getitems__(self, keys: list[int | tuple[int, int]]) -> list[torch.Tensor]:
        index = torch.tensor([_index(key) for key in keys], dtype=torch.long)
        return [tensor[index] for tensor in self.base.tensors]


def _index(key: int | tuple[int, int]) -> int:
    return key[1] if isinstance(key, tuple) else key


def _made_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """collate_fn of TensorBatches: __getitems__ already made the batch (a list, as default_collate gives)."""
    return batch


def seed_worker(worker_id: int) -> None:
    """worker_init_fn: torch already seeds each worker (base seed + id); give numpy and random the same seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class InterruptibleLoader(DataLoader):
    """A DataLoader that raises, between batches, a Ctrl-C or SIGTERM whose exception Python dropped (one that
    arrived inside a weakref callback or a finaliser; cnnlab/interrupts.py). Every long loop in cnnlab — training,
    evaluation, calibration, the kNN monitor, feature caches — reads its batches from one of these, so none of them
    runs on after such a signal."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        try:
            for batch in super().__iter__():
                raise_if_interrupted()
                yield batch
        except CnnlabError as exc:
            raise as_raised_in_the_worker(exc) from None

    def check_worker_number_rationality(self) -> None:
        """Silenced: torch's UserWarning for more workers than cores came twice per run (train and val loaders);
        steps/training.py loader_workers says it once, in the setting's own name."""


def as_raised_in_the_worker(exc: CnnlabError) -> CnnlabError:
    """The one-line CnnlabError a DataLoader worker raised (an image that does not decode, mid-epoch), as it was
    raised. torch re-raises a worker's exception in the main process as its type called with the worker's whole
    traceback as text ("Caught CnnlabError in DataLoader worker process 0. Original Traceback ..."), so the user's
    one line became a traceback. Any other CnnlabError is returned as it is."""
    lines = exc.message.rstrip().splitlines()
    if not (lines and lines[0].startswith("Caught ") and " in DataLoader worker process " in lines[0]):
        return exc
    last = lines[-1]  # "cnnlab.errors.CnnlabError: error: MESSAGE — FIX", traceback's last line
    clean = CnnlabError(last.split(": error: ", 1)[1] if ": error: " in last else last)
    clean.before_work = exc.before_work
    return clean


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int = 0, rank: int = 0,
                world_size: int = 1, drop_last: bool = False, min_share: int = 1) -> DataLoader:
    """batch_size is per rank; call loader.sampler.set_epoch(epoch) before every epoch. `min_share`: EpochSampler's.

    A shuffled loader's sampler is EpochSampler even for one process: the global permutation is drawn
    from (seed, epoch) alone and rank r takes every world_size-th index of it, so the ranks together
    see exactly the order a single process sees, no image twice. An unshuffled one (evaluation) is a
    DistributedSampler of one process: each rank evaluates a disjoint Subset of its own. A shuffled
    (training) loader reads its items through SeededItems: each image's augmentation is drawn from
    (seed, epoch, index), so a run's batches are the same
    with 0, 1 or 4 workers, on one process or split over ranks, and after a resume. The loader's own
    seeds (worker base seeds) come from a private generator: how many iterators a worker count
    creates must not move the global RNG that dropout and mixup draw from. A TensorDataset (cached
    features) is read a batch at a time (TensorBatches), in the same order.
    """
    sampler = EpochSampler(dataset, rank=rank, world_size=world_size, seed=seed, batch_size=batch_size,
                           min_share=min_share) if shuffle else \
        DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False, seed=seed)
    if isinstance(dataset, TensorDataset):
        items, collate = TensorBatches(dataset), _made_batch
    else:
        items, collate = (SeededItems(dataset, seed) if shuffle else dataset), None
    return InterruptibleLoader(items, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                               collate_fn=collate, worker_init_fn=seed_worker, pin_memory=torch.cuda.is_available(),
                               generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
                               multiprocessing_context=worker_context() if workers else None)


def worker_context() -> multiprocessing.context.BaseContext:
    """The platform's default start method (fork on Linux), named explicitly: a job that a launcher runs in a
    joblib/loky worker inherits loky's own default, whose processes DataLoader cannot start ("'Process' object has
    no attribute 'env'"): `hydra/launcher=joblib` on a dataset read with workers crashed."""
    return multiprocessing.get_context(multiprocessing.get_all_start_methods()[0])
