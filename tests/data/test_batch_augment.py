"""Augmentation of whole batches on the training device (data/batch_augment.py): the worker path's ops, ranges
and normalisation, drawn for every image on its own."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cnnlab.data.batch_augment import (AugmentedOnDevice, BatchAugment, BatchResizedCrop, StoredPixels,
                                       crop_boxes)
from cnnlab.data.loaders import make_loader
from cnnlab.data.spec import InputSpec
from cnnlab.data.transforms import eval_transform
from cnnlab.data.views import ViewSettings

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


def test_crops_are_drawn_as_torchvisions_random_resized_crop_draws_them() -> None:
    """Area fraction and aspect ratio of 4,000 batched crops against 4,000 of torchvision's make_params."""
    torch.manual_seed(0)
    boxes = crop_boxes(4000, 28, 28, (0.08, 1.0))
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 28).all() and (boxes[:, 3] <= 28).all()
    ours = torch.stack([width * height / 784, width / height], 1)
    crop = v2.RandomResizedCrop(16, scale=(0.08, 1.0))
    theirs = []
    for _ in range(4000):
        params = crop.make_params([torch.zeros(1, 28, 28)])
        theirs.append([params["width"] * params["height"] / 784, params["width"] / params["height"]])
    reference = torch.tensor(theirs)
    for quantile in (0.1, 0.5, 0.9):
        torch.testing.assert_close(ours.quantile(quantile, dim=0), reference.quantile(quantile, dim=0),
                                   atol=0.03, rtol=0.05)


def test_a_crop_that_cannot_fit_falls_back_to_the_centre_with_its_aspect_clamped() -> None:
    boxes = crop_boxes(5, 10, 40, (1.0, 1.0))  # 4:1 never fits in ten tries of a full-area 3/4-4/3 crop
    assert boxes.tolist() == [[13.0, 0.0, 26.0, 10.0]] * 5  # height 10, width 10 x 4/3 = 13, centred
    fallback = v2.RandomResizedCrop(8, scale=(1.0, 1.0)).make_params([torch.zeros(1, 10, 40)])
    assert [fallback["left"], fallback["top"], fallback["left"] + fallback["width"],
            fallback["top"] + fallback["height"]] == boxes[0].tolist()


def test_the_crop_is_resampled_on_torchvisions_grid() -> None:
    """Inside the crop the batched resample is torchvision's resized_crop to within rounding; only the outermost
    output pixels may differ (they read the image around the crop instead of repeating its edge)."""
    images = _images(2, size=28).float()
    crop = BatchResizedCrop(32, (0.3, 0.3))
    torch.manual_seed(3)
    views = crop(images)
    torch.manual_seed(3)
    left, top, right, bottom = (int(v) for v in crop_boxes(2, 28, 28, (0.3, 0.3))[0])
    expected = TF.resized_crop(images[:1], top, left, bottom - top, right - left, [32, 32], antialias=False)
    torch.testing.assert_close(views[:1, :, 2:-2, 2:-2], expected[:, :, 2:-2, 2:-2], atol=1e-3, rtol=0)


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
    assert names == ["BatchResizedCrop", "RandomHorizontalFlip", "ColorJitter"]
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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_the_views_are_made_on_the_gpu_under_autocast() -> None:
    augment = BatchAugment(SPEC, ViewSettings()).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        views = augment(_images(64).cuda())
    assert views.device.type == "cuda" and views.dtype == torch.float32 and torch.isfinite(views).all()
    still = BatchAugment(SPEC, STILL).cuda()(_images(4).cuda()).cpu()
    torch.testing.assert_close(still, BatchAugment(SPEC, STILL)(_images(4)), atol=1e-5, rtol=0)
