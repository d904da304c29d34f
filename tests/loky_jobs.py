"""Functions a joblib/loky worker runs for the tests: a module of their own, so that each worker imports torch and
the cnnlab module the job needs, not helpers.py's imports (cnnlab.deploy, OpenVINO's check: ~3 s a worker)."""

from __future__ import annotations


def loader_order_with_one_worker(n: int) -> list[int]:
    """The epoch-0 order of make_loader over items 0..n-1 (batch 4, seed 3) read by one DataLoader worker
    (tests/data/test_loaders.py)."""
    import torch
    from torch.utils.data import TensorDataset

    from cnnlab.data.loaders import make_loader

    loader = make_loader(TensorDataset(torch.arange(n), torch.arange(n)), 4, shuffle=True, seed=3, workers=1)
    loader.sampler.set_epoch(0)
    return [int(i) for batch, _ in loader for i in batch]
