"""What QAT trains (cnnlab/steps/quantize_model.py): what its source trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import QUANTIZE_QUICK_TIMING, TINY, run_dirs


def test_qat_of_a_linear_probe_trains_its_head_only(cli, outputs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe 115: QAT trained the backbone a linear probe never trained, through its head folded from standardised
    features (|W| 537 on a random LeNet-5's features): 86.67 % → 11.67 % in one epoch, a ResNet-18 94.72 → 10.56 %.
    QAT of a full fine-tune trains everything, as before."""
    from cnnlab.steps.training import RecoveryTraining

    trained: list[dict[str, bool]] = []
    real_train = RecoveryTraining.train

    def recording(self, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        result = real_train(self, model, *args, **kwargs)
        trained.append({name: not torch.equal(before[name], p.detach()) for name, p in model.named_parameters()})
        return result

    monkeypatch.setattr(RecoveryTraining, "train", recording)
    assert cli("pretrain", *TINY).code == 0
    for mode in ("linear", "full"):
        assert cli("finetune", "model.weights=latest:pretrain", *TINY, f"finetune.mode={mode}").code == 0
        result = cli("quantize", "source=latest:finetune", "quantize.mode=qat", "trainer.epochs=1",
                     "trainer.batch_size=16", "quantize.max_acc_drop=100", *QUANTIZE_QUICK_TIMING)
        assert result.code == 0, result.output
        said = " ".join(result.output.split())
        assert ("quantization-aware training of lenet5's head only" in said) == (mode == "linear"), said
    head_only, everything = trained
    assert {name for name, changed in head_only.items() if changed} == {"classifier.4.weight", "classifier.4.bias"}
    assert sum(everything.values()) > 2  # the backbone trains where the source trained it
    assert len(run_dirs(outputs, "quantize")) == 2
