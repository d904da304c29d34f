"""Augmentation of whole batches on the training device (data/batch_augment.py): the worker path's ops, ranges
and normalisation, drawn for every image on its own."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from cnnlab.data.batch_augment import AugmentedOnDevice, BatchAugment, StoredPixels, augment_on_of
from cnnlab.data.loaders import make_loader
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import eval_transform
from cnnlab.data.views import ViewSettings
from cnnlab.errors import CnnlabError

SPEC = InputSpec(16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), channels=3, resize="square", resize_to=16)
STILL = ViewSettings(crop_scale=(1.0, 1.0), hflip=False, color_jitter=0.0, grayscale_p=0.0, blur=False)


def _images(n: int, size: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_with_every_random_op_off_a_view_is_the_eval_transform() -> None:
    """The scale and the normalisation are the worker path's: a full-image crop at the stored size changes
    nothing, so the view is what eval_transform makes of the same pixels."""
    images = _images(4)
    views = BatchAugment(SPEC, STILL)(images)
    expected = torch.stack([eval_transform(SPEC)(image) for image in images])
    assert views.dtype == torch.float32 and views.shape == (4, 3, 16, 16)
    torch.testing.assert_close(views, expected, atol=1e-5, rtol=0)


def test_the_crop_resizes_to_the_spec_size() -> None:
    views = BatchAugment(SPEC, ViewSettings(crop_scale=(0.2, 1.0)))(_images(8, size=28))
    assert views.shape == (8, 3, 16, 16) and torch.isfinite(views).all()


def test_every_image_draws_its_own_flip() -> None:
    image = _images(1)
    views = BatchAugment(SPEC, ViewSettings(crop_scale=(1.0, 1.0), hflip=True, color_jitter=0.0,
                                            grayscale_p=0.0, blur=False))(image.repeat(64, 1, 1, 1))
    plain = eval_transform(SPEC)(image[0])
    flipped = [torch.allclose(view, plain.flip(-1), atol=1e-5) for view in views]
    kept = [torch.allclose(view, plain, atol=1e-5) for view in views]
    assert all(a or b for a, b in zip(flipped, kept))
    assert 10 < sum(flipped) < 54  # p = 0.5 each: both occur in one batch


def test_colour_jitter_differs_per_image_and_grayscale_makes_the_channels_equal() -> None:
    image = _images(1).repeat(32, 1, 1, 1)
    jittered = BatchAugment(SPEC, ViewSettings(crop_scale=(1.0, 1.0), hflip=False, color_jitter=0.5,
                                               grayscale_p=0.0, blur=False))(image)
    means = jittered.mean(dim=(1, 2, 3))
    assert means.unique().numel() > 16  # brightness and contrast drawn per image (p = 0.8 each)
    grey = BatchAugment(SPEC, ViewSettings(crop_scale=(1.0, 1.0), hflip=False, color_jitter=0.0, grayscale_p=1.0,
                                           blur=False))(image)
    pixels = grey * torch.tensor(SPEC.std).view(1, 3, 1, 1) + torch.tensor(SPEC.mean).view(1, 3, 1, 1)
    torch.testing.assert_close(pixels[:, 0], pixels[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(pixels[:, 1], pixels[:, 2], atol=1e-5, rtol=0)


def test_one_channel_images_get_no_saturation_hue_or_grayscale_and_blur_follows_its_auto_rule() -> None:
    grey = InputSpec(16, mean=(0.5,) * 3, std=(0.25,) * 3, channels=1, resize="square", resize_to=16)
    names = [type(op).__name__ for op in BatchAugment(grey, ViewSettings()).ops]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
    assert BatchAugment(grey, ViewSettings())(_images(4, channels=1)).shape == (4, 1, 16, 16)
    big = InputSpec(64, channels=3, resize="square", resize_to=64)
    assert "RandomGaussianBlur" in [type(op).__name__ for op in BatchAugment(big, ViewSettings()).ops]


def test_stored_pixels_keep_the_pixels_and_apply_the_channel_rule() -> None:
    picture = Image.new("L", (10, 10), color=77)
    items = StoredPixels([(picture, 3)], channels=3)
    pixels, label = items[0]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 10, 10) and label == 3
    assert (pixels == 77).all()


def test_the_loader_yields_views_on_the_device_and_keeps_the_wrapped_loaders_shape() -> None:
    data = TensorDataset(_images(10), torch.arange(10))
    loader = make_loader(StoredPixels([(image, int(label)) for image, label in data], 3), 4, shuffle=True, seed=0)
    device = torch.device("cpu")
    wrapped = AugmentedOnDevice(loader, BatchAugment(SPEC, ViewSettings()), device, views=2)
    assert len(wrapped) == len(loader) == 3 and wrapped.batch_size == 4 and wrapped.sampler is loader.sampler
    assert wrapped.num_workers == 0 and len(wrapped.dataset) == 10
    batches = list(wrapped)
    assert [len(batch) for batch in batches] == [3, 3, 3]
    first, second, labels = batches[0]
    assert first.shape == second.shape == (4, 3, 16, 16) and labels.shape == (4,)
    assert not torch.allclose(first, second)  # two independent draws of one image
    assert sorted(torch.cat([batch[2] for batch in batches]).tolist()) == list(range(10))


@pytest.mark.parametrize("value", ["auto", "WORKERS", "device", None])
def test_the_setting_takes_its_choices(value) -> None:
    assert augment_on_of(value) in ("auto", "workers", "device")


def test_an_unknown_setting_names_the_choices() -> None:
    with pytest.raises(CnnlabError, match="not a choice") as caught:
        augment_on_of("gpu")
    assert "method.augment_on=auto" in caught.value.fix


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_views_are_made_on_the_gpu_under_autocast() -> None:
    augment = BatchAugment(SPEC, ViewSettings()).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        views = augment(_images(64).cuda())
    assert views.device.type == "cuda" and views.dtype == torch.float32 and torch.isfinite(views).all()
    still = BatchAugment(SPEC, STILL).cuda()(_images(4).cuda()).cpu()
    torch.testing.assert_close(still, BatchAugment(SPEC, STILL)(_images(4)), atol=1e-5, rtol=0)
