"""Where pretraining augments (steps/augment_on.py): auto, workers, device, and what device cannot do."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cnnlab.data.transforms import Augment
from cnnlab.data.views import ViewSettings
from cnnlab.errors import CnnlabError
from cnnlab.steps.augment_on import place_augmentation, supervised_views

CPU, CUDA = (SimpleNamespace(device=torch.device(kind)) for kind in ("cpu", "cuda"))
BILINEAR, BICUBIC = (SimpleNamespace(interpolation=kind) for kind in ("bilinear", "bicubic"))
FIXED = SimpleNamespace(name="fashion_mnist", stored_size=28, spec=BILINEAR)
PHOTOS = SimpleNamespace(name="imagefolder", stored_size=None, spec=BILINEAR)
SMOOTH = SimpleNamespace(name="cifar10", stored_size=32, spec=BICUBIC)
VIEWS = ViewSettings()


def test_auto_augments_on_the_device_only_when_training_on_cuda() -> None:
    assert place_augmentation("auto", CUDA, FIXED, VIEWS, 256).where == "device"
    on_cpu = place_augmentation("auto", CPU, FIXED, VIEWS, 256)
    assert on_cpu.where == "workers" and "training on cpu" in on_cpu.why


@pytest.mark.parametrize("data, views, batch, why", [
    (PHOTOS, VIEWS, 256, "reads each image at its own size"),
    (FIXED, "dataset.augment.randaugment=true: RandAugment runs only in the workers' path", 256,
     "RandAugment runs only"),
    (FIXED, VIEWS, 1, "a batch of one image"),
    (SMOOTH, VIEWS, 256, "resamples bilinearly"),
])
def test_what_the_device_cannot_do_falls_back_under_auto_and_is_refused_when_asked(data, views, batch, why) -> None:
    fallback = place_augmentation("auto", CUDA, data, views, batch)
    assert fallback.where == "workers" and why in fallback.why
    with pytest.raises(CnnlabError, match=why) as caught:
        place_augmentation("device", CUDA, data, views, batch)
    assert "method.augment_on=workers" in caught.value.fix


def test_asked_for_it_is_done_where_asked() -> None:
    assert place_augmentation("device", CPU, FIXED, VIEWS, 2).record() == {"where": "device",
                                                                           "why": "method.augment_on=device"}
    assert place_augmentation("workers", CUDA, FIXED, VIEWS, 256).where == "workers"


def test_supervised_augmentation_as_one_batched_view() -> None:
    views = supervised_views(Augment(hflip=True, random_crop=True, crop_scale=(0.8, 1.0)))
    assert views == ViewSettings(crop_scale=(0.8, 1.0), hflip=True, color_jitter=0.0, grayscale_p=0.0, blur=False)
    assert "random_crop=false" in supervised_views(Augment(hflip=True))  # a plain resize: workers only
    assert "randaugment=true" in supervised_views(Augment(random_crop=True, randaugment=True))
