from __future__ import annotations

import torch
from PIL import Image

from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import Augment, eval_transform, train_transform

SPEC = InputSpec(16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_augment_config_and_randomness_flag() -> None:
    assert not Augment.from_config(None).is_random
    augment = Augment.from_config({"hflip": False, "random_crop": True, "crop_scale": [0.5, 1.0]})
    assert augment.is_random and augment.crop_scale == (0.5, 1.0)
    assert Augment.from_config({"randaugment": True}).is_random


def test_eval_of_a_photo_resizes_then_centre_crops() -> None:
    photo = Image.new("RGB", (40, 20), (255, 0, 0))
    out = eval_transform(SPEC, stored_size=None)(photo)
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, 16, 16)
    # (1 - 0.5) / 0.25 = 2 for red, (0 - 0.5) / 0.25 = -2 elsewhere
    assert torch.allclose(out[0], torch.full((16, 16), 2.0)) and torch.allclose(out[1:], torch.full((2, 16, 16), -2.0))


def test_eval_of_in_memory_images_only_resizes_when_sizes_differ() -> None:
    image = torch.arange(3 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 16, 16)
    same = eval_transform(SPEC, stored_size=16)(image)
    assert torch.allclose(same, (image.float() / 255 - 0.5) / 0.25, atol=1e-6)  # untouched geometry
    assert eval_transform(SPEC, stored_size=8)(image[:, :8, :8]).shape == (3, 16, 16)


def test_train_transform_without_random_ops_equals_eval() -> None:
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    assert torch.equal(train_transform(SPEC, 24, Augment())(image), eval_transform(SPEC, 24)(image))


def test_random_train_transform_varies_and_keeps_the_size() -> None:
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    transform = train_transform(SPEC, 24, Augment(hflip=True, random_crop=True, crop_scale=(0.3, 1.0),
                                                  randaugment=True))
    torch.manual_seed(0)
    outs = [transform(image) for _ in range(4)]
    assert all(out.shape == (3, 16, 16) for out in outs)
    assert not all(torch.equal(outs[0], out) for out in outs[1:])
