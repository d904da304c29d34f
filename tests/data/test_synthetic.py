from __future__ import annotations

import pytest
import torch

from cnnlab.data.spec import InputSpec
from cnnlab.data.synthetic import MAX_CLASSES, PAIRS, build_synthetic, class_table, generate
from cnnlab.errors import CnnlabError


def test_same_seed_gives_identical_images_and_labels() -> None:
    first, second = generate(40, 10, 24, seed=3), generate(40, 10, 24, seed=3)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_different_seed_or_split_gives_different_images() -> None:
    images, _ = generate(40, 10, 24, seed=3)
    assert not torch.equal(images, generate(40, 10, 24, seed=4)[0])
    assert not torch.equal(images, generate(40, 10, 24, seed=3, split="val")[0])


def test_images_are_uint8_rgb_and_classes_balanced() -> None:
    images, labels = generate(60, 6, 20, seed=0)
    assert images.shape == (60, 3, 20, 20) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=6).tolist() == [10] * 6
    assert images.float().std() > 20  # not blank: shapes, colours and noise


def test_images_differ_within_a_class() -> None:
    images, labels = generate(40, 4, 24, seed=0)
    same_class = images[labels == 0].float()
    assert (same_class[0] - same_class[1]).abs().mean() > 10


def test_class_names_are_readable_and_unique() -> None:
    _, names = class_table(10)
    assert names[:2] == ["circle-solid", "square-stripes"]
    assert len(set(names)) == 10
    # the diagonal walk already uses every shape and every texture with 10 classes
    assert {n.split("-")[0] for n in names} == {"circle", "square", "triangle", "cross", "ring", "diamond"}
    assert {n.split("-")[1] for n in names} == {"solid", "stripes", "checker", "dots", "gradient"}


def test_more_classes_than_pairs_adds_colour_families() -> None:
    table, names = class_table(PAIRS + 5)
    assert len(set(names)) == PAIRS + 5
    assert names[0] == "circle-solid-red" and names[PAIRS].endswith("-cyan")
    assert len({tuple(row) for row in table.tolist()}) == PAIRS + 5


@pytest.mark.parametrize("count", [1, MAX_CLASSES + 1])
def test_class_count_out_of_range_is_a_user_error(count: int) -> None:
    with pytest.raises(CnnlabError, match="num_classes"):
        class_table(count)


def test_val_images_do_not_depend_on_train_size() -> None:
    cfg = {"num_classes": 5, "train_size": 20, "val_size": 10, "seed": 1}
    small = build_synthetic(cfg, InputSpec(16))
    large = build_synthetic({**cfg, "train_size": 30}, InputSpec(16))
    assert torch.equal(small.val.tensors[0], large.val.tensors[0])
    assert len(small.train) == 20 and len(large.train) == 30


def test_build_generates_at_spec_size_in_memory() -> None:
    raw = build_synthetic({"num_classes": 3, "train_size": 9, "val_size": 6, "seed": 0}, InputSpec(28))
    assert raw.stored_size == 28 and raw.in_memory and raw.test is None
    assert raw.train[0][0].shape == (3, 28, 28) and len(raw.classes) == 3


def test_non_positive_split_size_is_a_user_error() -> None:
    with pytest.raises(CnnlabError, match="train_size"):
        build_synthetic({"num_classes": 3, "train_size": 0, "val_size": 6}, InputSpec(16))
