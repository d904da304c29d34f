"""The prune table says a speed-up as `cnnlab report` judges one (cnnlab/compress/pruning/summary.py)."""

from __future__ import annotations

from cnnlab.compress.pruning.summary import speedup_text
from cnnlab.wording import ratio_text


def test_an_unstable_speedup_shows_its_rounds_and_a_magnitude_prune_is_noise() -> None:
    """Probe 52: magnitude pruning (every shape kept) printed "1.16× faster" from rounds of 0.89×, 0.99× and 1.44×,
    which its own run.json called unstable; a channel prune printed "4.02× faster" from rounds of 3.73–5.47×."""
    assert speedup_text(1.16, (0.89, 0.99, 1.44), same_network=True) == \
        "1.16× faster (unstable: 1.12× slower to 1.44× faster)"
    assert speedup_text(4.02, (3.73, 5.47, 4.54)) == "4.02× faster (unstable: 3.73–5.47× faster)"
    assert speedup_text(1.02, (1.01, 1.02, 1.03), same_network=True) == "1.02× faster (same network: noise)"
    assert speedup_text(2.5, (2.45, 2.5, 2.55)) == speedup_text(2.5) == "2.50× faster"


def test_a_ratio_that_prints_as_one_has_no_direction() -> None:
    assert ratio_text(44_800_000 / 44_800_029, "smaller", "larger") == "1.00×"  # was "1.00× larger" (29 bytes)
    assert ratio_text(1.006) == "1.01× faster" and ratio_text(0.994) == "1.01× slower"
