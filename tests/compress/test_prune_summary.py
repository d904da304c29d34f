"""The prune table says a speed-up as `cnnlab report` judges one (cnnlab/deploy/paired.py's PairedRatio)."""

from __future__ import annotations

from cnnlab.deploy.paired import PairedRatio
from cnnlab.wording import ratio_text


def test_an_unstable_speedup_shows_its_rounds() -> None:
    """Probe 52: a channel prune printed "4.02× faster" from rounds of 3.73–5.47×, which its own run.json called
    unstable."""
    assert PairedRatio(4.02, (3.73, 5.47, 4.54)).text() == "4.02× faster (unstable: 3.73–5.47× faster)"
    assert PairedRatio(2.5, (2.45, 2.5, 2.55)).text() == PairedRatio(2.5).text() == "2.50× faster"


def test_a_magnitude_prune_is_the_same_network_however_its_rounds_lean() -> None:
    """Probe 53: a magnitude prune (every shape kept) whose rounds all ran slower (1.22×, 1.39×, 1.03×) printed
    "1.16× slower (unstable: …)" — as if pruning had slowed the identical network down."""
    leaning = PairedRatio(1 / 1.16, (1 / 1.22, 1 / 1.39, 1 / 1.03), same_network=True)
    assert leaning.unstable and leaning.text() == "1.16× slower (same network: noise; rounds 1.03–1.39× slower)"
    assert PairedRatio(1.16, (0.89, 0.99, 1.44), same_network=True).text() == \
        "1.16× faster (same network: noise; rounds 1.12× slower to 1.44× faster)"
    apart = PairedRatio(1.3, (1.28, 1.3, 1.32), same_network=True)  # stable rounds, but one network 1.3× apart
    assert apart.apart and not apart.unstable and apart.text().startswith("1.30× faster (same network: noise; rounds")
    assert PairedRatio(1.02, (1.01, 1.02, 1.03), same_network=True).text() == "1.02× faster (same network: noise)"


def test_a_ratio_that_prints_as_one_has_no_direction() -> None:
    assert ratio_text(44_800_000 / 44_800_029, "smaller", "larger") == "1.00×"  # was "1.00× larger" (29 bytes)
    assert ratio_text(1.006) == "1.01× faster" and ratio_text(0.994) == "1.01× slower"


def test_a_channel_prune_that_removed_nothing_times_one_network() -> None:
    """Probe 128: prune.ratio=0.001 rounded every width back ("nothing was removed"), yet the table read "1.09×
    faster (unstable …)" where magnitude pruning's one network reads "same network: noise"."""
    from hydra import compose, initialize_config_module
    from rich.console import Console

    import cnnlab.app  # noqa: F401 - registers the run-dir resolver the config refers to
    from cnnlab.compress.pruning import PruneSettings
    from cnnlab.compress.pruning.summary import summary_table

    with initialize_config_module("cnnlab.conf", version_base="1.3"):
        settings = PruneSettings.from_config(compose("config", overrides=["command=prune", "prune.ratio=0.001"]).prune)
    metrics = {"params_before": 100, "params_after": 100, "flops_before": 10, "flops_after": 10,
               "latency_p50_ms_before": 1.09, "latency_p50_ms_after": 1.0, "acc_before": 0.9,
               "acc_after_prune": 0.9, "acc_after_recovery": 0.91, "acc_drop": -0.01}

    def latency_cell(**kwargs: bool) -> str:
        console = Console(record=True, width=200)
        console.print(summary_table(settings, metrics, (0.71, 1.09, 2.02), **kwargs))
        return next(line for line in console.export_text().splitlines() if "latency" in line)

    assert "same network: noise" in latency_cell(removed=False)
    assert "same network" not in latency_cell(removed=True) and "unstable" in latency_cell(removed=True)
