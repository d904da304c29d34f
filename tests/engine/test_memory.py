"""One training batch's memory, estimated before it is allocated (cnnlab/engine/memory.py)."""

from __future__ import annotations

import pytest
from torch import nn

from cnnlab.data.spec import InputSpec
from cnnlab.engine.memory import training_batch_bytes


def test_the_estimate_counts_every_leaf_output_of_the_batch_and_its_gradient() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    before = [p.clone() for p in model.parameters()]
    # conv 4x8x8 + relu 4x8x8 + flatten 256 + linear 5 = 773 values an image; x 2 images x 4 bytes x 2
    assert training_batch_bytes(model, 3, 8, 2) == 773 * 2 * 4 * 2
    assert all(p.device.type == "cpu" and (p == b).all() for p, b in zip(model.parameters(), before))  # untouched


def test_a_candidate_too_large_for_the_memory_fails_its_trial_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Probe 185: a space's resolution multiplier of 100 (1,600-px images) took all 24 GB; the kernel killed the search.
    from cnnlab.steps import search_trials

    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
    monkeypatch.setattr(search_trials, "available_memory", lambda: 10**9)
    search_trials.require_training_memory(model, InputSpec(64), 32)  # 0.07 GB: trains
    with pytest.raises(search_trials.TooLargeToTrain) as caught:
        search_trials.require_training_memory(model, InputSpec(1600), 32)
    assert caught.value.message == ("one training batch of 32 images at 1600 px needs about 41.9 GB of "
                                    "activations, more than the 1.0 GB of memory available here")
    assert "space.params.resolution" in (caught.value.fix or "")
    assert search_trials.TooLargeToTrain in search_trials.TRIAL_ERRORS  # the search goes on without it
