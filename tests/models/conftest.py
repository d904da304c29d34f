from __future__ import annotations

from typing import Callable, Iterator

import pytest
import torch
from torch import nn

from cnnlab.models import canonical_name, create_model, small_input_adaptation

NUM_CLASSES = 7


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread() -> Iterator[None]:
    """One intra-op thread while these tests run (restored after each module).

    The tensors here are tiny; with two OpenMP threads on two cores that other processes also use, each
    operator waits for a descheduled thread and a ResNet-50 forward at 32 px takes seconds instead of 50 ms.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built_model() -> Callable[[str, int], nn.Module]:
    """create_model(name, 7, image_size) in eval mode, shared across a module's tests: VGG alone costs seconds to
    build. Not across the session: the VGGs alone held 2 GB of a test process to its end, and each fork of it
    (a subprocess, a DataLoader worker) then copied their page tables.

    The architecture is a pure function of (name, adaptation chosen for the size), so models are cached by
    that pair — VGG16 at 32 and 64 px is built once. Tests must not change the returned models.
    """
    cache: dict[tuple[str, object], nn.Module] = {}

    def get(name: str, image_size: int) -> nn.Module:
        key = (canonical_name(name), small_input_adaptation(name, image_size))
        if key not in cache:
            cache[key] = create_model(name, NUM_CLASSES, image_size).eval()
        return cache[key]

    return get
