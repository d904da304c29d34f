"""An image folder's class folders name a model's classes: `/` written `_`, any order (cnnlab/data/class_folders.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from cnnlab.data.bundle import DataBundle
from cnnlab.data.class_folders import folder_name, model_class_of_folders, with_model_classes
from cnnlab.data.spec import InputSpec
from cnnlab.errors import CnnlabError

FASHION = ["T-shirt/top", "Trouser", "Pullover"]  # a model's classes, in its own (not sorted) order


def folder_bundle(classes: list[str], labels: list[int], name: str = "imagefolder") -> DataBundle:
    images = TensorDataset(torch.zeros(len(labels), 1, 4, 4), torch.tensor(labels))
    return DataBundle(name=name, train=images, val=TensorDataset(torch.zeros(0, 1, 4, 4), torch.zeros(0).long()),
                      test=None, classes=classes, spec=InputSpec(4), in_memory=True)


def test_a_slash_is_written_as_an_underscore_and_the_folder_order_is_renumbered_to_the_model_s() -> None:
    assert folder_name("T-shirt/top") == "T-shirt_top" and folder_name("Trouser") == "Trouser"
    folders = ["Pullover", "T-shirt_top", "Trouser"]  # the folder's sorted class list
    assert model_class_of_folders(FASHION, folders) == [2, 0, 1]
    data = with_model_classes(folder_bundle(folders, [0, 1, 2, 1]), FASHION, folder_data=True)
    assert data.classes == FASHION  # the records and the confusion matrix use the model's names
    assert [int(data.train[i][1]) for i in range(4)] == [2, 0, 1, 0]  # Pullover, T-shirt/top, Trouser, T-shirt/top
    same = folder_bundle(list(FASHION), [0])
    assert with_model_classes(same, FASHION, folder_data=True) is same


@pytest.mark.parametrize("wrong, right", [
    ("T-shirt∕top", "T-shirt_top"),  # a Unicode division slash: looks like "/", is not the rule
    ("T-shirt:top", "T-shirt_top"),  # what macOS Finder stores for a typed "/"
    ("Trousers", "Trouser"),
    ("t-shirt_top", "T-shirt_top"),  # probe 161: in case alone, once "/" is written "_" — and said so
])
def test_another_spelling_is_refused_with_the_rule_and_the_folder_to_rename(wrong: str, right: str) -> None:
    folders = sorted({"Pullover", "T-shirt_top", "Trouser", wrong} - {right})
    with pytest.raises(CnnlabError) as caught:
        with_model_classes(folder_bundle(folders, [0]), FASHION, folder_data=True)
    text = caught.value.one_line()
    assert "both have 3 classes, but the names differ" in text and "knows 3 classes" not in text
    assert f"rename the class folder {wrong} to {right}" in text
    assert "name the folder T-shirt_top for T-shirt/top" in text and "\n" not in text
    assert ("differ only in case" in text) == (wrong == "t-shirt_top")


def test_a_missing_folder_is_named_without_counting_a_rule_named_one_as_a_difference() -> None:
    with pytest.raises(CnnlabError) as caught:
        with_model_classes(folder_bundle(["T-shirt_top", "Trouser"], [0]), FASHION, folder_data=True)
    text = caught.value.one_line()
    assert "the model knows 3 classes but dataset imagefolder has 2: only the model's: Pullover —" in text
    assert "create the class folder Pullover" in text and "only the data's" not in text


def test_the_rule_is_for_folders_and_an_exact_name_wins() -> None:
    # other data's class names are its own: the rule is for folder names only
    with pytest.raises(CnnlabError, match="both have 3 classes, but the names differ"):
        with_model_classes(folder_bundle(["Pullover", "T-shirt_top", "Trouser"], [0], name="mnist"), FASHION,
                           folder_data=False)
    # the same names in another order are the same classes: renumbered to the model's (was "in another order")
    reordered = with_model_classes(folder_bundle(["Pullover", "T-shirt/top", "Trouser"], [0, 1, 2], name="mnist"),
                                   FASHION, folder_data=False)
    assert [int(reordered.train[i][1]) for i in range(3)] == [2, 0, 1] and reordered.classes == FASHION
    # a model with both a/b and a_b: the folder a_b/ is the class a_b, and a/b has no folder name
    assert model_class_of_folders(["a/b", "a_b"], ["a_b"]) is None
    assert model_class_of_folders(["a_b", "c"], ["a_b", "c"]) == [0, 1]


def test_a_model_trained_on_class_folders_scores_the_named_data_they_were_made_from() -> None:
    """A model trained on a folder export of Fashion-MNIST (classes T-shirt_top, ... in sorted folder order) was
    refused on dataset=fashion_mnist ("the names differ"): the rule now reads the model's classes as folders too."""
    folders = ["Pullover", "T-shirt_top", "Trouser"]  # the model's classes: its training folder's, sorted
    named = with_model_classes(folder_bundle(FASHION, [0, 1, 2, 0], name="fashion_mnist"), folders, folder_data=False)
    assert named.classes == folders and [int(named.train[i][1]) for i in range(4)] == [1, 2, 0, 1]
    with pytest.raises(CnnlabError, match="the names differ"):  # a folder name that is no class of the data
        with_model_classes(folder_bundle(FASHION, [0], name="fashion_mnist"), ["Pullover", "T-shirt-top", "Trouser"],
                           folder_data=False)


def test_a_folder_named_in_another_unicode_form_names_its_class(caplog: pytest.LogCaptureFixture) -> None:
    # Probe 182: a folder café copied from macOS (decomposed, NFD) was refused for a model's café (composed, NFC)
    # with "rename the class folder café to café": one name, printed alike, with no way to type the fix.
    import logging
    import unicodedata

    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        data = with_model_classes(folder_bundle(["tea", decomposed], [0, 1, 1]), [composed, "tea"], folder_data=True)
    assert data.classes == [composed, "tea"] and [int(data.train[i][1]) for i in range(3)] == [1, 0, 0]
    assert "(the same name in another Unicode form)" in caplog.text
    assert model_class_of_folders(["café", "cafe"], ["cafe", decomposed]) == [1, 0]  # an accent still counts
