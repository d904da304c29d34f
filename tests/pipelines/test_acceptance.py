"""The core issue's acceptance, end to end through the command line (slow: a few CPU minutes).

`cnnlab pretrain dataset=synthetic` with its defaults, then `cnnlab finetune dataset=imagefolder
dataset.root=DIR model.weights=latest:pretrain finetune.mode=full` on a folder of real digit images
must reach >= 90 % validation accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.data.digits import write_image_folder
from helpers import only_run


@pytest.mark.slow
def test_pretrain_synthetic_then_full_finetune_on_a_digit_folder(cli, outputs: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(2)
    folder = write_image_folder(tmp_path / "digits", size=32)
    assert cli("pretrain", "dataset=synthetic").code == 0
    pretrain = only_run(outputs, "pretrain")
    result = cli("finetune", "dataset=imagefolder", f"dataset.root={folder}", "model.weights=latest:pretrain",
                 "finetune.mode=full")
    assert result.code == 0, result.output
    finetune = only_run(outputs, "finetune")
    print(f"pretrain: {pretrain['model']['name']} val_acc {pretrain['metrics']['val_acc']:.3f} in "
          f"{pretrain['duration_s']:.0f} s; finetune on digit folder: val_acc {finetune['metrics']['val_acc']:.3f} "
          f"in {finetune['duration_s']:.0f} s")
    assert finetune["dataset"]["image_size"] == pretrain["dataset"]["image_size"]  # the backbone's own size
    assert finetune["metrics"]["val_acc"] >= 0.90
