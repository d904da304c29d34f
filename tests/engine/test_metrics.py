"""The scores of `cnnlab evaluate`: expected calibration error, confusion matrix, per-class accuracy."""

from __future__ import annotations

import pytest
import torch

from cnnlab.engine.metrics import ScoreAccumulator, confusion_matrix, expected_calibration_error


def test_ece_equals_a_hand_computation_on_a_known_set() -> None:
    # 15 bins of width 1/15: 0.95 and 0.99 fall in (14/15, 1], 0.6 in (8/15, 9/15], 0.3 in (4/15, 5/15].
    confidences = torch.tensor([0.95, 0.99, 0.6, 0.6, 0.3])
    correct = torch.tensor([True, False, True, True, False])
    # top bin: 2 images, accuracy 1/2, mean confidence 0.97 → |0.5 - 0.97| = 0.47, weight 2/5
    # 0.6 bin: 2 images, accuracy 1, confidence 0.6 → 0.4, weight 2/5; 0.3 bin: accuracy 0 vs 0.3, weight 1/5
    expected = 2 / 5 * 0.47 + 2 / 5 * 0.4 + 1 / 5 * 0.3
    assert expected_calibration_error(confidences, correct) == pytest.approx(expected)


def test_ece_bounds_and_bin_edges() -> None:
    assert expected_calibration_error(torch.ones(4), torch.ones(4, dtype=torch.bool)) == 0.0  # sure and right
    assert expected_calibration_error(torch.ones(4), torch.zeros(4, dtype=torch.bool)) == 1.0  # sure and wrong
    assert expected_calibration_error(torch.empty(0), torch.empty(0, dtype=torch.bool)) == 0.0
    # 1/15 exactly belongs to the first bin (0, 1/15], with 0.05: one bin, mean confidence ~0.0583
    value = expected_calibration_error(torch.tensor([1 / 15, 0.05]), torch.tensor([False, False]))
    assert value == pytest.approx((1 / 15 + 0.05) / 2)
    random = torch.rand(1000)
    assert 0.0 <= expected_calibration_error(random, torch.rand(1000) < 0.5) <= 1.0


def test_confusion_matrix_rows_are_true_classes_and_sum_to_n() -> None:
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]] and int(matrix.sum()) == 6


def test_accumulated_scores_over_batches() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(50, 7), torch.randint(0, 6, (50,))  # class 6 never appears
    accumulator = ScoreAccumulator(7)
    for start in range(0, 50, 16):
        accumulator.update(logits[start:start + 16], targets[start:start + 16])
    scores = accumulator.compute()
    probabilities = logits.softmax(-1)
    assert scores.n == 50 and int(scores.confusion.sum()) == 50
    assert scores.top1 == pytest.approx(float((logits.argmax(-1) == targets).double().mean()))
    assert scores.top5 == pytest.approx(float(logits.topk(5, -1).indices.eq(targets[:, None]).any(-1).double().mean()))
    assert scores.loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, targets)), rel=1e-5)
    assert scores.ece == pytest.approx(expected_calibration_error(probabilities.max(-1).values,
                                                                  logits.argmax(-1) == targets))
    assert scores.per_class[6] is None and all(0 <= a <= 1 for a in scores.per_class[:6])


def test_tied_scores_rank_by_class_index_in_every_scorer() -> None:
    """An INT8 file's dequantized logits tie often; torch.topk ranks ties in no defined order, so quantize's top-1
    (ClassificationMeter) read 18.75 % where evaluate's (ScoreAccumulator, max) read 15.62 % on the same file and
    images (probe 44). Every scorer now ranks equal scores by class index, the lower first, as argmax does."""
    from cnnlab.engine.metrics import ClassificationMeter

    logits = torch.tensor([[2.0, 2.0, 2.0, 2.0], [0.5, 3.0, 3.0, 1.0]] * 16)
    targets = torch.tensor([0, 1] * 16)
    meter = ClassificationMeter(torch.device("cpu"))
    meter.update(torch.tensor(0.0), logits, targets)
    accumulator = ScoreAccumulator(4)
    accumulator.update(logits, targets)
    assert meter.compute()["acc"] == accumulator.compute().top1 == 1.0


def test_top_k_ranks_equal_scores_by_class_index() -> None:
    from cnnlab.engine.metrics import top_k

    scores = torch.tensor([[2.0, 2.0, 2.0, 2.0], [0.5, 3.0, 3.0, 1.0], [1.0, 0.0, 5.0, 1.0]])
    assert top_k(scores, 3).tolist() == [[0, 1, 2], [1, 2, 3], [2, 0, 3]]
