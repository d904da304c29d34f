from __future__ import annotations

import pytest

from cnnlab.data.splits import stratified_split
from cnnlab.errors import CnnlabError


def test_split_keeps_class_proportions_and_covers_everything() -> None:
    labels = [0] * 10 + [1] * 20
    train, val = stratified_split(labels, 0.5, seed=0, what="t")
    assert sorted(train + val) == list(range(30))
    assert sorted(labels[i] for i in val) == [0] * 5 + [1] * 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, None, "half"])
def test_fraction_outside_zero_one_is_a_user_error(fraction: object) -> None:
    with pytest.raises(CnnlabError, match="val_fraction"):
        stratified_split([0, 1] * 5, fraction, seed=0, what="t")


def test_class_with_one_image_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="cannot split"):
        stratified_split([0, 0, 0, 0, 1], 0.4, seed=0, what="t")
