from __future__ import annotations

import pytest
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


def test_the_spec_records_the_geometry_of_the_data_and_eval_performs_it() -> None:
    photos, stored = SPEC.for_stored_size(None), SPEC.for_stored_size(24)
    assert (photos.resize, photos.resize_to, photos.crop) == ("shorter_side", 18, 16)  # 16 / 0.875 → 18
    assert (stored.resize, stored.resize_to, stored.crop) == ("square", 16, None)
    photo = Image.new("RGB", (40, 20), (255, 0, 0))
    assert torch.equal(eval_transform(photos)(photo), eval_transform(SPEC, stored_size=None)(photo))
    image = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    assert torch.equal(eval_transform(stored)(image), eval_transform(SPEC, stored_size=24)(image))
    # a recorded geometry wins over the stored size: the artifact's preprocessing is performed as recorded
    assert torch.equal(eval_transform(stored, stored_size=None)(image), eval_transform(stored)(image))


def test_spec_round_trips_and_old_records_load_with_the_old_behaviour() -> None:
    spec = SPEC.for_stored_size(None)
    assert InputSpec.from_dict(spec.to_dict()) == spec
    old = InputSpec.from_dict({"size": 16, "mean": [0.5] * 3, "std": [0.25] * 3})  # written before the geometry
    assert not old.recorded and old.channels == 3
    assert (old.preprocessing().resize, old.preprocessing().resize_to, old.preprocessing().crop) == ("square", 16, None)
    assert old.with_size(20).size == 20 and spec.with_size(20).resize is None  # another size: geometry re-derived
    for bad in ({"resize": "stretch"}, {"crop": 0}, {"channels": 2}, {"interpolation": "lanczos"}, {"scale": 1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            InputSpec.from_dict({**spec.to_dict(), **bad})


@pytest.mark.parametrize("geometry, said", [
    ({"crop": 40}, "crop is 40: pictures would come out 40 px"),
    ({"resize": "shorter_side", "crop": None}, "shorter_side without a crop"),
    ({"resize": "square", "resize_to": 16, "crop": 32}, "larger than resize_to 16: the crop would pad"),
    ({"resize": "square", "resize_to": 20, "crop": None}, "resize_to is 20 without a crop"),
])
def test_a_geometry_that_cannot_make_the_input_size_is_refused(geometry: dict, said: str) -> None:
    """Probe 155: a hand-edited crop of 40 on a 32 px model was an onnxruntime traceback in predict and evaluate,
    shorter_side without a crop a torch.stack one; a crop past the resize scored zero-padded pictures, exit 0."""
    spec = InputSpec(32).for_stored_size(None).to_dict()
    with pytest.raises(ValueError, match=said):
        InputSpec.from_dict({**spec, **geometry})
    for fine in (InputSpec(32).for_stored_size(None), InputSpec(32).for_stored_size(28),
                 InputSpec(1).for_stored_size(None)):
        assert InputSpec.from_dict(fine.to_dict()) == fine


def test_a_one_channel_spec_records_one_mean_and_std() -> None:
    """Probe 80: a 1-channel model's metadata held three means and stds, so a client that normalises per channel
    as docs/predict.md writes it built a 3-channel tensor, which the model refused. Older files (three) still load."""
    one = InputSpec(28, mean=(0.286,) * 3, std=(0.353,) * 3, channels=1).for_stored_size(28)
    recorded = one.to_dict()
    assert recorded["mean"] == [0.286] and recorded["std"] == [0.353]
    assert InputSpec.from_dict(recorded) == one
    assert InputSpec.from_dict({**recorded, "mean": [0.286] * 3, "std": [0.353] * 3}) == one  # written before
    with pytest.raises(ValueError, match="one value for 3 channels"):
        InputSpec.from_dict({**recorded, "channels": 3})


def test_channels_follow_the_spec() -> None:
    grey = Image.new("L", (16, 16), 128)
    rgb_out = eval_transform(SPEC.for_stored_size(16))(grey)
    assert rgb_out.shape == (3, 16, 16) and torch.equal(rgb_out[0], rgb_out[1])  # grey copied into R, G, B
    one = InputSpec(16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), channels=1).for_stored_size(16)
    colour = Image.new("RGB", (16, 16), (255, 0, 0))
    out = eval_transform(one)(colour)
    assert out.shape == (1, 16, 16)  # luminance: 0.299 × 255 ≈ 76 → (76/255 - 0.5) / 0.25
    assert torch.allclose(out, torch.full((1, 16, 16), (76 / 255 - 0.5) / 0.25), atol=0.02)
    assert train_transform(one, 16, Augment(random_crop=True, hflip=True))(colour).shape == (1, 16, 16)


def test_rgb_to_one_channel_rounds_as_pil_does() -> None:
    """torchvision's rgb_to_grayscale truncates uint8 luminance: a grey picture saved as RGB lost one grey level
    (200 → 199), so predict fed a one-channel model other pixels than evaluate did from the stored grey images."""
    import numpy as np

    from cnnlab.data.transforms import ToChannels

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    pixels[0] = 200  # a grey row: R = G = B
    picture = Image.fromarray(pixels)
    ours = ToChannels(1)(torch.from_numpy(pixels).permute(2, 0, 1))
    assert ours.dtype == torch.uint8 and ours.shape == (1, 9, 11)
    assert torch.equal(ours[0], torch.from_numpy(np.array(picture.convert("L"))))
    assert (ours[0, 0] == 200).all()
    spec = InputSpec(9, channels=1, mean=(0.0,), std=(1.0,))
    grey = Image.fromarray(np.full((9, 9), 200, np.uint8))
    assert torch.equal(eval_transform(spec)(grey.convert("RGB")), eval_transform(spec)(grey))


def test_an_extreme_strip_is_cut_to_what_its_resize_can_hold(monkeypatch) -> None:
    """Probe 97: a 1 x 6000 px picture was resized to 256 x 1,536,000 before its centre crop (2 GB for one file)."""
    import numpy as np
    from torchvision.transforms import v2

    import cnnlab.data.transforms as transforms

    spec = InputSpec(224).for_stored_size(None)
    resized: list[tuple[int, ...]] = []
    real_resize = v2.Resize.forward

    def watch(self, *inputs):  # the size each Resize is given
        resized.append(tuple(inputs[0].shape))
        return real_resize(self, *inputs)

    monkeypatch.setattr(v2.Resize, "forward", watch)
    strip = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1, 6000, 3), dtype=np.uint8))
    assert eval_transform(spec)(strip).shape == (3, 224, 224)
    height, width = resized[-1][-2:]
    assert height == 1 and width * 256 * 256 <= transforms.MAX_RESIZED_PIXELS  # cut before the resize
    # as much cut off each end (probe 100: an odd cut moved the crop half a source pixel, 9 of 32 crop pixels); the
    # cap lowered so that the literal resize it is compared with stays small (at the real cap: 21 s, 12 GB)
    monkeypatch.setattr(transforms, "MAX_RESIZED_PIXELS", 1 << 20)
    odd = Image.fromarray(np.random.default_rng(1).integers(0, 255, (2, 301, 3), dtype=np.uint8))
    literal = v2.Compose([v2.ToImage(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                          v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std))])
    monkeypatch.setattr(v2.Resize, "forward", watch)
    cut = eval_transform(spec)(odd)
    assert resized[-1][-2:] == (2, 31)  # cut before the resize: the centre 31 of its 301 columns (135 off each end)
    monkeypatch.setattr(v2.Resize, "forward", real_resize)
    assert torch.equal(cut, literal(odd))
    monkeypatch.setattr(transforms, "MAX_RESIZED_PIXELS", 1 << 24)
    monkeypatch.setattr(v2.Resize, "forward", watch)
    photo = Image.new("RGB", (4000, 30))  # 1 : 133 at 256 px: within the cap, resized whole as a client would
    eval_transform(spec)(photo)
    assert resized[-1][-2:] == (30, 4000)


@pytest.mark.parametrize("side, fixed", [(8, "a maximum of at least 0.25 on 8-px pictures"),
                                         (3, "dataset.augment.random_crop=false draws no crop, or use pictures of "
                                             "at least 4 × 4 pixels")])
def test_a_crop_scale_fix_names_a_scale_only_where_one_can_pass(side: int, fixed: str) -> None:
    """Probe 169: 3-px pictures were offered "a maximum of at least 1.8", outside the (0, 1] a scale takes, and a
    range refused again word for word."""
    from cnnlab.data.transforms import check_crop_scale
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError) as caught:
        check_crop_scale((0.1, 0.2), side, "dataset.augment.crop_scale", "[0.08,1.0]",
                         off="dataset.augment.random_crop=false draws no crop")
    assert fixed in caught.value.one_line() and "at least 1." not in caught.value.one_line()
