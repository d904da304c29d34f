"""dataset.num_classes added to a set whose class count is its own: refused, in words that are true for every command
(`cnnlab inspect` does read the key, so "it would be ignored" was not)."""

from __future__ import annotations

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.settings import check_chosen


def test_num_classes_on_a_real_set_is_refused_as_its_own_count_not_as_ignored() -> None:
    config = {"dataset": {"name": "mnist", "root": "data"}}
    with pytest.raises(CnnlabError) as info:
        check_chosen("dataset.num_classes", config)
    assert "not of the dataset this run uses (dataset.name=mnist), whose class count is its own" in info.value.message
    assert "ignored" not in str(info.value)
    assert info.value.fix == ("choose dataset=synthetic, or remove dataset.num_classes (for another head size, "
                              "`cnnlab inspect` takes inspect.num_classes=N, `cnnlab bench model=NAME` "
                              "bench.num_classes=N)")
    check_chosen("dataset.num_classes", {"dataset": {"name": "synthetic", "num_classes": 5}})  # its own: read


def test_other_keys_of_another_dataset_are_still_said_to_be_ignored() -> None:
    with pytest.raises(CnnlabError, match=r"\(dataset.name=flowers\), so it would be ignored"):
        check_chosen("dataset.val_fraction", {"dataset": {"name": "flowers"}})
