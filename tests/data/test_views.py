"""Two-view augmentation (data/views.py) and the unlabeled flat folder (data/folder.py) for self-supervised
pretraining."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from cnnlab.data import build_datasets
from cnnlab.data.folder import UNLABELED, build_imagefolder
from cnnlab.data.spec import InputSpec
from cnnlab.data.views import (BLUR_MIN_SIZE, TwoViewDataset, ViewSettings, blur_kernel, pretraining_images,
                               two_view_dataset, view_transform)
from cnnlab.errors import CnnlabError

SPEC = InputSpec(16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).for_stored_size(16)
SYNTHETIC = {"name": "synthetic", "image_size": 16, "native_size": 16, "num_classes": 4, "train_size": 24,
             "val_size": 8, "seed": 0, "mean": [0.5] * 3, "std": [0.25] * 3}


def _blurs(transform: v2.Compose) -> bool:
    return any(isinstance(t, v2.RandomApply) and isinstance(t.transforms[0], v2.GaussianBlur)
               for t in transform.transforms)


def test_two_views_of_one_image_differ_and_have_the_spec_shape() -> None:
    image = torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)
    torch.manual_seed(0)
    view1, view2, label = TwoViewDataset([(image, 3)], view_transform(SPEC, ViewSettings()))[0]
    assert view1.shape == view2.shape == (3, 16, 16) and view1.dtype == torch.float32 and label == 3
    assert not torch.equal(view1, view2)


def test_a_grayscale_spec_gives_one_channel_views() -> None:
    spec = InputSpec(16, mean=(0.5,) * 3, std=(0.25,) * 3, channels=1).for_stored_size(16)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16), dtype=np.uint8), "L")
    assert view_transform(spec, ViewSettings()).__call__(image).shape == (1, 16, 16)


def test_blur_is_off_below_64_px_unless_asked() -> None:
    auto = ViewSettings()
    assert not auto.blur_on(32) and auto.blur_on(BLUR_MIN_SIZE) and auto.blur_on(96)
    assert not _blurs(view_transform(SPEC, auto))
    assert _blurs(view_transform(SPEC, ViewSettings.from_config({"blur": True})))
    big = InputSpec(96).for_stored_size(96)
    assert _blurs(view_transform(big, auto)) and not _blurs(view_transform(big, ViewSettings(blur=False)))
    assert blur_kernel(96) == 9 and blur_kernel(16) == 3  # 10 % of the side, odd


def test_settings_from_config_and_the_record() -> None:
    views = ViewSettings.from_config({"crop_scale": [0.2, 1.0], "color_jitter": 0.5, "grayscale_p": 0.2,
                                      "blur": "auto", "hflip": False})
    assert views.crop_scale == (0.2, 1.0) and views.blur is None and not views.hflip
    assert views.describe(32) == {"crop_scale": [0.2, 1.0], "hflip": False, "color_jitter": 0.5, "grayscale_p": 0.2,
                                  "blur": False}
    # probe 217: a grey picture gets no grayscale step and only brightness and contrast of the jitter (view_transform)
    grey = views.describe(32, channels=1)
    assert grey["grayscale_p"] == 0.0 and grey["color_jitter_parts"] == "brightness and contrast (one channel)"
    steps = [type(op).__name__ for op in view_transform(InputSpec(32, channels=1), views).transforms]
    assert "RandomGrayscale" not in steps


@pytest.mark.parametrize("scale, why", [([0.0, 1.0], "no area"), ([0.5, 0.2], "above its maximum"),
                                        ([0.2, 1.5], "larger than the image"), ([-0.1, 1.0], "no area")])
def test_crop_scales_that_give_empty_crops_are_refused(scale: list[float], why: str) -> None:
    with pytest.raises(CnnlabError, match=why) as err:
        ViewSettings.from_config({"crop_scale": scale})
    assert "method.views.crop_scale=[0.2,1.0]" in err.value.one_line()


def test_other_bad_view_settings_are_refused() -> None:
    with pytest.raises(CnnlabError, match="color_jitter"):
        ViewSettings.from_config({"color_jitter": 3})
    with pytest.raises(CnnlabError, match="grayscale_p"):
        ViewSettings.from_config({"grayscale_p": 1.5})
    with pytest.raises(CnnlabError, match="method.views.blur"):
        ViewSettings.from_config({"blur": "sometimes"})


def test_a_bundles_training_images_become_two_view_items() -> None:
    data = build_datasets(SYNTHETIC, InputSpec(16, mean=(0.5,) * 3, std=(0.25,) * 3), train_augment=False)
    images = two_view_dataset(data, ViewSettings(), unlabeled=True)
    assert len(images) == len(data.train) == 24
    view1, view2, label = images[0]
    assert view1.shape == view2.shape == (3, 16, 16) and label == data.train[0][1]


def _write(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)


def test_a_flat_folder_serves_pretraining_only(tmp_path: Path) -> None:
    for i in range(5):
        _write(tmp_path / f"{i}.png", i)
    (tmp_path / "notes.txt").write_text("not an image")
    config = {"name": "imagefolder", "root": str(tmp_path), "image_size": 16, "native_size": 16}
    with pytest.raises(CnnlabError, match="holds images but no class folders") as err:
        build_imagefolder(config, InputSpec(16))
    assert "cnnlab pretrain method=simclr" in err.value.one_line()

    data = build_datasets(config, InputSpec(16), train_augment=False, allow_unlabeled=True)
    assert len(data.train) == 5 and len(data.val) == 0 and data.classes == [UNLABELED]
    assert data.train[0][1] == -1 and data.train[0][0].shape == (3, 16, 16)
    view1, _, label = two_view_dataset(data, ViewSettings(), unlabeled=True)[4]
    assert view1.shape == (3, 16, 16) and label == -1

    damaged = tmp_path / "damaged"  # probe 143: every picture damaged — the fix said to run the very same command
    damaged.mkdir()
    for i in range(3):
        (damaged / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(CnnlabError, match="no readable images in") as err:
        build_datasets({**config, "root": str(damaged)}, InputSpec(16), train_augment=False, allow_unlabeled=True)
    assert "replace the damaged pictures" in (err.value.fix or "") and "method=simclr" not in err.value.one_line()


def test_the_stored_training_images_keep_the_models_label_order() -> None:
    """A split relabeled in the model's class order (steps/sources.model_labelled) read back without its transform,
    as the batched augmentation reads it (trainer.augment_on=device: finetune, prune, QAT): the untransformed items
    had the data's own labels, so every image would have trained under another class."""
    from cnnlab.data.class_folders import with_model_classes

    data = build_datasets({"name": "synthetic", "image_size": 16, "num_classes": 3, "train_size": 12, "val_size": 3,
                           "seed": 0}, InputSpec(size=16))
    relabeled = with_model_classes(data, list(reversed(data.classes)), folder_data=True)
    stored = pretraining_images(relabeled, unlabeled=False)
    assert [label for _, label in stored] == [label for _, label in relabeled.train]
    assert [label for _, label in stored] == [2 - label for _, label in pretraining_images(data, unlabeled=False)]
