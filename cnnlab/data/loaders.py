"""DataLoaders whose order depends only on (seed, epoch) — the same for one process and for N DDP ranks."""

from __future__ import annotations

import multiprocessing
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cnnlab.interrupts import raise_if_interrupted


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
        for batch in super().__iter__():
            raise_if_interrupted()
            yield batch


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int = 0, rank: int = 0,
                world_size: int = 1, drop_last: bool = False) -> DataLoader:
    """batch_size is per rank; call loader.sampler.set_epoch(epoch) before every epoch.

    A DistributedSampler even for one process: the global permutation is drawn from (seed, epoch)
    alone and rank r takes every world_size-th index of it, so the ranks together see exactly the
    order a single process sees. Worker seeds are drawn from the global torch RNG (no private
    generator): it is seeded at the start of a run and restored from last.pt on resume, so a resumed
    run draws the same augmentations as an uninterrupted one, with or without workers.
    """
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    return InterruptibleLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
                      worker_init_fn=seed_worker, pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0, multiprocessing_context=worker_context() if workers else None)


def worker_context() -> multiprocessing.context.BaseContext:
    """The platform's default start method (fork on Linux), named explicitly: a job that a launcher runs in a
    joblib/loky worker inherits loky's own default, whose processes DataLoader cannot start ("'Process' object has
    no attribute 'env'"): `hydra/launcher=joblib` on a dataset read with workers crashed."""
    return multiprocessing.get_context(multiprocessing.get_all_start_methods()[0])
